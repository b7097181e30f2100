"""Sealed invoice content (client/sealing.py, ADR 0012): exactly the readers open it,
the opened content is the sealed one, and any change to the envelope is detected."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import key
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.contracts.invoice import envelope
from tidechain.core.crypto import sha256
from tidechain.core.errors import Rejected

NUMBER = "04400000000000000001"
ISSUER, BUYER, TAX, OUTSIDER = (key(n) for n in (500, 501, 502, 503))

LINES = st.lists(st.builds(tb.invoice_line, st.text(min_size=1, max_size=40),
                           st.integers(1, 1000), st.integers(0, 10**6),
                           st.integers(0, 10_000)), min_size=1, max_size=4)


def _record(args: dict[str, Any]) -> dict[str, Any]:
    """The stored record as the contract writes its public part."""
    return {"number": args["number"], "kind": "blue", "total": args["total"],
            "sealed": args["sealed"], "holder": args.get("holder"),
            "claim_digest": args.get("claim_digest")}


def _sealed(lines: list[dict[str, Any]], remark: str = "") -> dict[str, Any]:
    plain = tb.invoice_args(NUMBER, {"key": BUYER.public_key}, lines, remark=remark)
    return sealing.sealed_invoice_args(plain, ISSUER.public_key, [TAX.public_key])


@settings(max_examples=60)
@given(lines=LINES.filter(lambda ls: sum(line["amount"] + line["tax"] for line in ls) > 0),
       remark=st.text(max_size=60))
def test_every_reader_opens_what_was_sealed_and_nobody_else(
        lines: list[dict[str, Any]], remark: str) -> None:
    args = _sealed(lines, remark)
    for reader in (ISSUER, BUYER, TAX):
        content = sealing.open_content(_record(args), key=reader)
        assert content["lines"] == lines and content["remark"] == remark
        assert envelope.commitment(content) == args["sealed"]["commitment"]
    with pytest.raises(sealing.NotAReader):
        sealing.open_content(_record(args), key=OUTSIDER)
    assert remark.encode() not in args["sealed"]["ciphertext"] or len(remark) < 4


SEALED = _sealed([tb.invoice_line("coffee", 2, 1500, 600)], "table 7")


def _flip(value: bytes, position: int) -> bytes:
    i = position % len(value)
    return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1:]


@settings(max_examples=200)
@given(field=st.sampled_from(["ciphertext", "nonce", "commitment", "wrapped", "number",
                              "total"]),
       position=st.integers(0, 10_000))
def test_any_change_to_the_sealed_record_is_detected(field: str, position: int) -> None:
    record = _record(SEALED)
    sealed = dict(record["sealed"])
    if field == "wrapped":
        sealed["readers"] = [[k, _flip(w, position) if k == BUYER.public_key else w]
                             for k, w in sealed["readers"]]
    elif field == "number":
        record["number"] = "04400000000000000002"
    elif field == "total":
        record["total"] += 1 + position
    else:
        sealed[field] = _flip(sealed[field], position)
    record["sealed"] = sealed
    with pytest.raises(Rejected) as refused:
        sealing.open_content(record, key=BUYER)
    assert refused.value.code == "broken_seal"


def test_a_claim_code_opens_the_content_of_a_buyer_without_a_member_key() -> None:
    code = b"0123456789abcdef"
    plain = tb.invoice_args(NUMBER, {"name": "Buyer Co.", "uscc": "91350100M000100Y43"},
                            [tb.invoice_line("tea", 1, 100, 0)], claim_digest=sha256(code))
    args = sealing.sealed_invoice_args(plain, ISSUER.public_key, [TAX.public_key], code=code)
    assert args["holder"] is None and "code_wrap" in args["sealed"]
    assert sealing.open_content(_record(args), code=code)["buyer"]["name"] == "Buyer Co."
    with pytest.raises(sealing.NotAReader):
        sealing.open_content(_record(args), code=b"wrong code")
    with pytest.raises(Rejected):  # sealing needs the code whose digest it names
        sealing.sealed_invoice_args(plain, ISSUER.public_key, [TAX.public_key], code=b"x")
    # The claimer re-wraps the key to itself; then its member key opens it.
    wrapped = sealing.share_key(_record(args), BUYER, BUYER.public_key, code=code)
    record = _record(args)
    record["sealed"] = {**record["sealed"],
                        "readers": [*record["sealed"]["readers"], [BUYER.public_key, wrapped]]}
    assert sealing.open_content(record, key=BUYER)["lines"][0]["name"] == "tea"


def test_the_api_form_of_a_record_opens_like_the_stored_one() -> None:
    from tidechain.core.hexcodec import to_json

    record = to_json(_record(SEALED))
    assert isinstance(record["sealed"]["ciphertext"], str)
    assert sealing.open_content(record, key=TAX)["total"] == 3180


@settings(max_examples=100)
@given(st.one_of(st.none(), st.integers(), st.binary(max_size=100),
                 st.dictionaries(st.sampled_from([*sorted(envelope.ENVELOPE_FIELDS), "x"]),
                                 st.one_of(st.binary(max_size=100), st.integers(),
                                           st.lists(st.binary(max_size=90), max_size=3)),
                                 max_size=6)))
def test_malformed_envelopes_are_refused_with_a_typed_error(value: Any) -> None:
    try:
        envelope.check_envelope(value)
    except Rejected as exc:
        assert exc.code in ("bad_envelope", "bad_argument")


def test_the_fully_digitised_invoice_fields_travel_sealed() -> None:
    line = tb.invoice_line("coffee beans", 2, 12_800, 1300, spec="arabica, 1 kg", unit="bag")
    plain = tb.invoice_args(NUMBER, {"key": BUYER.public_key}, [line], drawer="Wang Fang")
    args = sealing.sealed_invoice_args(plain, ISSUER.public_key, [TAX.public_key])
    content = sealing.open_content(_record(args), key=BUYER)
    assert content["lines"][0]["spec"] == "arabica, 1 kg" and content["lines"][0]["unit"] == "bag"
    assert content["drawer"] == "Wang Fang"
    with pytest.raises(Rejected):
        tb.invoice_line("x", 1, 1, 0, unit="u" * 33)


def test_a_red_letter_invoice_opens_only_with_its_public_reason() -> None:
    plain = tb.red_letter_args("04400000000000000002", NUMBER, "sales_return",
                               [tb.invoice_line("tea", 1, 100, 0)])
    args = sealing.sealed_red_args(plain, {ISSUER.public_key, BUYER.public_key})
    record = {"number": args["number"], "kind": "red", "original": NUMBER,
              "reason": args["reason"], "total": args["total"], "sealed": args["sealed"]}
    assert sealing.open_content(record, key=BUYER)["reason"] == "sales_return"
    with pytest.raises(sealing.BrokenSeal):
        sealing.open_content({**record, "reason": "issue_error"}, key=BUYER)
