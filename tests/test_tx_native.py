"""The compiled twin of `SignedTx.decode`'s checks against the Python reference.

`SignedTx.decode_reference` (the strict CBOR reference decoder and `SignedTx.from_cbor`)
is the specification. `_cbor_native.decode_signed_tx` must accept exactly the envelopes
it accepts, giving the same fields, and raise ValueError for every one it refuses;
`SignedTx.decode` then falls back to the reference, so a refusal still carries the
reference's typed rejection and message. Envelopes are generated around a valid deposit,
each field either valid or wrong in one of the ways the reference checks (type, length,
range, key set), the body sometimes not canonical and the envelope sometimes random
bytes. Every property counts what it accepted and refused and asserts both are
positive, so agreement cannot hold vacuously.

Without the compiled module these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.helpers import compiled_module_required
from tidechain.core import cbor
from tidechain.core.errors import DecodeError, Rejected, TooLarge
from tidechain.core.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, MAX_TX_BYTES
from tidechain.ledger import types
from tidechain.ledger.types import MAX_NONCE_BYTES, MIN_NONCE_BYTES, SignedTx

native = cbor.compiled("decode_signed_tx")

ACCEPTED = "accepted"
REFUSED = "refused"


@pytest.fixture(autouse=True, scope="module")
def _native_twin() -> None:
    compiled_module_required("the compiled transaction decoder")
    assert native is not None, "the compiled module predates decode_signed_tx: rebuild it"


def fields_of(tx: SignedTx) -> tuple[Any, ...]:
    b = tx.body
    return (tx.body_bytes, tx.signature, b.chain_id, b.sender, b.nonce, b.expires_ms,
            b.contract, b.method, b.args)


def typed(value: Any) -> Any:
    """`value` with every item tagged by its exact type (True is not 1)."""
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((typed(k), typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def agree(data: bytes) -> str:
    """Asserts the twin and the reference agree on `data`, and that `SignedTx.decode`
    (the twin with its fallback) gives what the reference gives."""
    try:
        expected = typed(fields_of(SignedTx.decode_reference(data)))
    except (DecodeError, TooLarge):
        expected = None
    try:
        got = typed(native(data, MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, types._TX_LIMITS))
    except ValueError:
        got = None
    assert got == expected, f"twin {got!r} != reference {expected!r} on {data.hex()}"
    if expected is None:
        with pytest.raises(Rejected) as refused:
            SignedTx.decode(data)
        with pytest.raises(type(refused.value)) as by_reference:
            SignedTx.decode_reference(data)
        assert str(refused.value) == str(by_reference.value)
        return REFUSED
    tx = SignedTx.decode(data)
    reference = SignedTx.decode_reference(data)
    assert typed(fields_of(tx)) == expected
    assert tx == reference and tx.encoded == data
    # Every attribute, as the dataclasses' constructors set them: `decode` builds both
    # objects without their __init__.
    assert vars(tx) | {"body": None} == vars(reference) | {"body": None}
    assert vars(tx.body) == vars(reference.body)
    return ACCEPTED


def assert_both_outcomes(tally: Counter[str]) -> None:
    print(f"\n  {tally[ACCEPTED]} accepted, {tally[REFUSED]} refused", end="")
    assert tally[ACCEPTED] > 0, tally
    assert tally[REFUSED] > 0, tally


# --- strategies -----------------------------------------------------------------------

WRONG = st.sampled_from([None, True, False, -1, 0, 2**64 - 1, -(2**64), "", "x", b"", [], {}])


def sized_bytes(low: int, high: int) -> st.SearchStrategy[bytes]:
    """Mostly the right length, sometimes one byte short or over."""
    return mostly(st.binary(min_size=low, max_size=high),
                  st.sampled_from([b"\x00" * max(low - 1, 0), b"\x01" * (high + 1)]))




def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` nine times in ten: most envelopes stay valid but for one field."""
    return st.integers(0, 9).flatmap(lambda n: good if n else bad)


idents = mostly(st.sampled_from(["evidence", "deposit", "a", "x" * 64, "tab\t", "\x00"]),
                st.sampled_from(["x" * 65, "", "é", "dé"]) | st.text(max_size=70))
args_values = st.dictionaries(
    st.text(max_size=6) | st.integers(-3, 3),
    st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=8) | st.text(max_size=4) | st.none(),
    max_size=3)
body_fields: dict[str, st.SearchStrategy[Any]] = {
    "v": mostly(st.just(1), st.sampled_from([0, 2, -1, 2**64 - 1])),
    "chain": sized_bytes(32, 32),
    "from": sized_bytes(32, 32),
    "nonce": sized_bytes(MIN_NONCE_BYTES, MAX_NONCE_BYTES),
    "exp": mostly(st.integers(0, 2**64 - 1), st.sampled_from([-1, -(2**64)])),
    "contract": idents,
    "method": idents,
    "args": args_values,
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[Any, Any]:
    body: dict[Any, Any] = {}
    for name, good in body_fields.items():
        kind = draw(st.sampled_from(["good"] * 30 + ["wrong", "missing"]))
        if kind == "good":
            body[name] = draw(good)
        elif kind == "wrong":
            body[name] = draw(WRONG)
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(["extra", "V", "vv", 1, -1]))] = 0
    return body


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    body = draw(bodies())
    body_bytes = cbor.encode_reference(body)
    how = draw(st.sampled_from(["canonical"] * 20 + ["trailing", "not a map", "truncated"]))
    if how == "trailing":
        body_bytes += b"\x00"
    elif how == "not a map":
        body_bytes = cbor.encode_reference([body])
    elif how == "truncated":
        body_bytes = body_bytes[:-1]
    envelope: dict[Any, Any] = {
        "body": body_bytes,
        "sig": draw(sized_bytes(64, 64)),
    }
    shape = draw(st.sampled_from(["good"] * 20 + ["no sig", "no body", "extra", "body text",
                                                 "sig int", "huge body"]))
    if shape == "no sig":
        del envelope["sig"]
    elif shape == "no body":
        del envelope["body"]
    elif shape == "extra":
        envelope["x"] = b""
    elif shape == "body text":
        envelope["body"] = "text"
    elif shape == "sig int":
        envelope["sig"] = 7
    elif shape == "huge body":
        envelope["body"] = b"\x00" * (MAX_TX_BYTES + 1)
    data = cbor.encode_reference(envelope)
    if draw(st.integers(0, 19)) == 0:
        data += b"\x00"  # trailing bytes after the envelope
    return data


def run_counted(strategy: st.SearchStrategy[bytes], max_examples: int) -> Counter[str]:
    tally: Counter[str] = Counter()

    @settings(max_examples=max_examples, deadline=None)
    @given(strategy)
    def check(data: bytes) -> None:
        result = agree(data)
        event(result)
        tally[result] += 1

    check()
    return tally


# --- properties ---------------------------------------------------------------------------


def test_generated_envelopes_agree() -> None:
    tally = run_counted(envelopes(), 3000)
    assert_both_outcomes(tally)
    assert tally[ACCEPTED] >= 100, tally  # the generator makes valid envelopes often


def test_random_bytes_agree() -> None:
    assert_both_outcomes(run_counted(
        st.binary(max_size=200) | envelopes().map(lambda data: data[: len(data) // 2]), 1000)
        + Counter([agree(valid_envelope())]))


def valid_envelope(**changes: Any) -> bytes:
    body = {"v": 1, "chain": b"c" * 32, "from": b"f" * 32, "nonce": b"n" * 16,
            "exp": 10**13, "contract": "evidence", "method": "deposit",
            "args": {"digest": b"d" * 32, "meta": {"name": "a.pdf"}}}
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not ...}
    return cbor.encode_reference({"body": cbor.encode_reference(body), "sig": b"s" * 64})


@pytest.mark.parametrize("changes, accepted", [
    ({}, True),
    ({"nonce": b"n" * MIN_NONCE_BYTES}, True),
    ({"nonce": b"n" * MAX_NONCE_BYTES}, True),
    ({"nonce": b"n" * (MIN_NONCE_BYTES - 1)}, False),
    ({"nonce": b"n" * (MAX_NONCE_BYTES + 1)}, False),
    ({"contract": "c" * 64}, True),
    ({"contract": "c" * 65}, False),
    ({"method": ""}, False),
    ({"method": "dépôt"}, False),  # not ASCII
    ({"exp": 0}, True),
    ({"exp": 2**64 - 1}, True),
    ({"exp": -1}, False),
    ({"exp": True}, False),  # a bool is never an integer
    ({"v": True}, False),
    ({"v": 2}, False),
    ({"args": []}, False),
    ({"args": {}}, True),
    ({"from": b"f" * 31}, False),
    ({"chain": "c" * 32}, False),
    ({"exp": ...}, False),  # missing
])
def test_hand_made_bodies(changes: dict[str, Any], accepted: bool) -> None:
    assert agree(valid_envelope(**changes)) == (ACCEPTED if accepted else REFUSED)


def test_a_refusal_keeps_the_reference_message() -> None:
    with pytest.raises(DecodeError, match=r"nonce must be 8\.\.32 bytes"):
        SignedTx.decode(valid_envelope(nonce=b"short"))
    with pytest.raises(TooLarge):
        SignedTx.decode(b"\x00" * (MAX_TX_BYTES + 1))


def test_the_twin_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        native(bytearray(valid_envelope()), MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, types._TX_LIMITS)
    with pytest.raises(TypeError):
        native(valid_envelope(), MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, (1, 2))
    with pytest.raises(OverflowError):
        native(valid_envelope(), -1, MAX_CBOR_ITEMS, types._TX_LIMITS)
