"""Checkpoints (c2sp.org/tlog-checkpoint) and receipts (c2sp.org/tlog-proof@v1)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core import limits
from tidechain.core.checkpoint import (
    Checkpoint,
    add_signatures,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import DecodeError, ProofError, Rejected, TooLarge
from tidechain.core.note import NoteSignature, Signer, encode_base64, parse_note, sign_note
from tidechain.core.receipt import (
    HEADER,
    Receipt,
    format_receipt,
    parse_receipt,
    verify_receipt,
)
from tidechain.core.trust import Trust, parse_trust

ORIGIN = "tidechain/devnet/00112233aabbccdd"
SIGNERS = [Signer(f"devnet/node-{i}", SigningKey(sha256(f"node-{i}".encode()))) for i in range(4)]
TRUST_4 = Trust.of([s.verifier() for s in SIGNERS], origin=ORIGIN)  # quorum 3
TRUST_1 = Trust.of([SIGNERS[0].verifier()], origin=ORIGIN)
STRANGER = Signer("devnet/stranger", SigningKey(sha256(b"stranger")))


# --- a test-only RFC 6962 tree, independent of tidechain.core.merkle ----------------


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(tree_root(leaves[:k]), tree_root(leaves[k:]))


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*audit_path(index, leaves[:k]), tree_root(leaves[k:])]
    return [*audit_path(index - k, leaves[k:]), tree_root(leaves[:k])]


def entries(size: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(size)]


def make_receipt(index: int, size: int, signers: Sequence[Signer] = SIGNERS[:1]) -> str:
    leaves = [_leaf(e) for e in entries(size)]
    checkpoint = Checkpoint(ORIGIN, size, tree_root(leaves))
    receipt = Receipt(
        index=index,
        proof=tuple(audit_path(index, leaves)),
        checkpoint_note=sign_checkpoint(checkpoint, signers),
        extra=entries(size)[index],
    )
    return format_receipt(receipt)


ROOT = bytes(range(32))
CHECKPOINT = Checkpoint(ORIGIN, 7, ROOT)


# --- checkpoint bodies --------------------------------------------------------------


def test_body_layout() -> None:
    assert CHECKPOINT.body() == f"{ORIGIN}\n7\n{encode_base64(ROOT)}\n"
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "ext two"))
    assert with_ext.body().endswith("\next one\next two\n")
    assert parse_checkpoint_body(with_ext.body()) == with_ext


def test_spec_example_body_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint_body(text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)


GOOD_ROOT = encode_base64(ROOT)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{ORIGIN}\n7\n{GOOD_ROOT}",  # no final newline
        f"{ORIGIN}\n7\n",
        f"\n7\n{GOOD_ROOT}\n",  # empty origin
        f"{ORIGIN}\n07\n{GOOD_ROOT}\n",  # leading zero
        f"{ORIGIN}\n00\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n-1\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n+7\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n 7\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n\u0667\n{GOOD_ROOT}\n",  # Arabic-Indic digit seven
        f"{ORIGIN}\n7.0\n{GOOD_ROOT}\n",
        f"{ORIGIN}\n{2**63}\n{GOOD_ROOT}\n",  # beyond int64
        f"{ORIGIN}\n7\n{encode_base64(bytes(31))}\n",
        f"{ORIGIN}\n7\n{encode_base64(bytes(33))}\n",
        f"{ORIGIN}\n7\n{GOOD_ROOT[:-2]}B=\n",  # non-canonical base64
        f"{ORIGIN}\n7\n{GOOD_ROOT}\n\n",  # empty extension line
        f"{ORIGIN}\n7\n{GOOD_ROOT}\next\n\n",
        f"{'x' * 200}\n7\n{GOOD_ROOT}\n",
    ],
)
def test_bad_bodies_are_rejected(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_checkpoint_body(text)


def test_largest_size_is_accepted() -> None:
    text = f"{ORIGIN}\n{2**63 - 1}\n{GOOD_ROOT}\n"
    assert parse_checkpoint_body(text).size == 2**63 - 1


def test_constructor_rejects_bad_fields() -> None:
    for bad in [
        lambda: Checkpoint("", 1, ROOT),
        lambda: Checkpoint("a\nb", 1, ROOT),
        lambda: Checkpoint(ORIGIN, -1, ROOT),
        lambda: Checkpoint(ORIGIN, 1, ROOT[:31]),
        lambda: Checkpoint(ORIGIN, 1, ROOT, ("",)),
        lambda: Checkpoint(ORIGIN, 1, ROOT, ("a\nb",)),
    ]:
        with pytest.raises(DecodeError):
            bad()


@settings(max_examples=80, deadline=None)
@given(
    origin=st.text(
        st.characters(exclude_characters="\n", exclude_categories=("Cs",)), min_size=1
    ).filter(lambda s: len(s.encode()) <= limits.MAX_NAME_BYTES),
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), min_size=1),
        max_size=3,
    ),
)
def test_body_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint_body(checkpoint.body()) == checkpoint


# --- signed checkpoints -------------------------------------------------------------


def test_sign_orders_lines_by_key_name() -> None:
    signed = sign_checkpoint(CHECKPOINT, [SIGNERS[2], SIGNERS[0], SIGNERS[1]])
    names = [s.name for s in parse_note(signed).signatures]
    assert names == ["devnet/node-0", "devnet/node-1", "devnet/node-2"]


def test_quorum_of_three_out_of_four() -> None:
    checkpoint, signers = verify_checkpoint(sign_checkpoint(CHECKPOINT, SIGNERS[1:]), TRUST_4)
    assert checkpoint == CHECKPOINT
    assert signers == ["devnet/node-1", "devnet/node-2", "devnet/node-3"]


def test_all_four_sign() -> None:
    _, signers = verify_checkpoint(sign_checkpoint(CHECKPOINT, SIGNERS), TRUST_4)
    assert len(signers) == 4


def test_below_quorum_is_rejected() -> None:
    with pytest.raises(ProofError, match="signed by 2 trusted validators, quorum is 3"):
        verify_checkpoint(sign_checkpoint(CHECKPOINT, SIGNERS[:2]), TRUST_4)


def test_unknown_signer_does_not_count() -> None:
    signed = sign_checkpoint(CHECKPOINT, [*SIGNERS[:2], STRANGER])
    with pytest.raises(ProofError, match="quorum is 3"):
        verify_checkpoint(signed, TRUST_4)
    with pytest.raises(ProofError, match="no signature from a known key"):
        verify_checkpoint(sign_checkpoint(CHECKPOINT, [STRANGER]), TRUST_4)


def test_duplicate_signer_is_counted_once() -> None:
    line = parse_note(sign_checkpoint(CHECKPOINT, SIGNERS[:1])).signatures[0].line()
    tripled = CHECKPOINT.body() + "\n" + line * 3
    with pytest.raises(ProofError, match="signed by 1 trusted validators"):
        verify_checkpoint(tripled, TRUST_4)


def test_wrong_origin_is_rejected() -> None:
    foreign = Checkpoint("tidechain/othernet/0000000000000000", 7, ROOT)
    with pytest.raises(ProofError, match="not the trusted origin"):
        verify_checkpoint(sign_checkpoint(foreign, SIGNERS), TRUST_4)


def test_trust_without_origin_accepts_any_origin() -> None:
    trust = Trust.of(TRUST_4.validators)
    foreign = Checkpoint("example.com/log", 7, ROOT)
    assert verify_checkpoint(sign_checkpoint(foreign, SIGNERS), trust)[0] == foreign


def test_one_bad_signature_from_a_validator_rejects_the_checkpoint() -> None:
    note = parse_note(sign_checkpoint(CHECKPOINT, SIGNERS[:3]))
    bad = NoteSignature(SIGNERS[3].name, SIGNERS[3].key_id, bytes(64))
    tampered = CHECKPOINT.body() + "\n" + "".join(s.line() for s in note.signatures) + bad.line()
    with pytest.raises(ProofError, match="does not verify"):
        verify_checkpoint(tampered, TRUST_4)


def test_a_signed_note_that_is_not_a_checkpoint_is_rejected() -> None:
    with pytest.raises(DecodeError):
        verify_checkpoint(sign_note("hello\n", SIGNERS), TRUST_4)


# --- assembling a quorum checkpoint -------------------------------------------------


def test_add_signatures_assembles_a_quorum() -> None:
    parts = [sign_checkpoint(CHECKPOINT, [s]) for s in reversed(SIGNERS)]
    merged = parts[0]
    for part in parts[1:]:
        merged = add_signatures(merged, part)
    assert merged == sign_checkpoint(CHECKPOINT, SIGNERS)
    assert len(verify_checkpoint(merged, TRUST_4)[1]) == 4


def test_add_signatures_is_order_independent_and_idempotent() -> None:
    a = sign_checkpoint(CHECKPOINT, SIGNERS[:2])
    b = sign_checkpoint(CHECKPOINT, SIGNERS[1:3])
    assert add_signatures(a, b) == add_signatures(b, a)
    assert add_signatures(a, a) == a
    assert len(parse_note(add_signatures(a, b)).signatures) == 3


def test_add_signatures_refuses_different_checkpoints() -> None:
    other = Checkpoint(ORIGIN, 8, ROOT)
    with pytest.raises(ProofError, match="different checkpoints"):
        add_signatures(
            sign_checkpoint(CHECKPOINT, SIGNERS[:1]), sign_checkpoint(other, SIGNERS[1:])
        )


def test_add_signatures_refuses_non_checkpoints() -> None:
    with pytest.raises(DecodeError):
        add_signatures(sign_note("hi\n", SIGNERS[:1]), sign_note("hi\n", SIGNERS[1:2]))


# --- receipts: layout and parsing ---------------------------------------------------


def test_receipt_layout() -> None:
    text = make_receipt(2, 3)
    lines = text.split("\n")
    assert lines[0] == HEADER
    assert lines[1] == "extra " + encode_base64(b"entry 2")
    assert lines[2] == "index 2"
    assert len(lines[3]) == 44 and lines[4] == ""  # one proof hash, then a blank line
    assert lines[5] == ORIGIN


def test_receipt_round_trip() -> None:
    text = make_receipt(5, 11)
    receipt = parse_receipt(text)
    assert receipt.index == 5 and receipt.extra == b"entry 5"
    assert format_receipt(receipt) == text


def test_receipt_without_extra_round_trips_but_does_not_verify() -> None:
    receipt = parse_receipt(make_receipt(0, 1))
    bare = format_receipt(Receipt(receipt.index, receipt.proof, receipt.checkpoint_note))
    assert parse_receipt(bare).extra is None
    with pytest.raises(ProofError, match="no extra line"):
        verify_receipt(bare, TRUST_1)


@settings(max_examples=40, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2**62),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=limits.MAX_PROOF_HASHES),
    extra=st.none() | st.binary(min_size=1, max_size=300),
)
def test_receipt_round_trip_property(index: int, proof: list[bytes], extra: bytes | None) -> None:
    receipt = Receipt(index, tuple(proof), sign_checkpoint(CHECKPOINT, SIGNERS[:1]), extra)
    assert parse_receipt(format_receipt(receipt)) == receipt


# --- receipts: verification ---------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_every_index_verifies(size: int) -> None:
    for index in range(size):
        verified = verify_receipt(make_receipt(index, size), TRUST_1)
        assert verified.index == index
        assert verified.entry == entries(size)[index]
        assert verified.checkpoint.size == size
        assert verified.signers == ("devnet/node-0",)


def test_quorum_receipt_verifies() -> None:
    verified = verify_receipt(make_receipt(3, 6, SIGNERS[1:]), TRUST_4)
    assert verified.signers == ("devnet/node-1", "devnet/node-2", "devnet/node-3")
    assert verify_receipt(make_receipt(3, 6, SIGNERS[1:]).encode(), TRUST_4) == verified


def test_receipt_below_quorum_is_rejected() -> None:
    with pytest.raises(ProofError, match="quorum"):
        verify_receipt(make_receipt(3, 6, SIGNERS[:2]), TRUST_4)


def test_receipt_from_another_network_is_rejected() -> None:
    other = Trust.of(TRUST_4.validators, origin="tidechain/othernet/ffffffffffffffff")
    with pytest.raises(ProofError, match="origin"):
        verify_receipt(make_receipt(1, 2, SIGNERS), other)


def _replace_line(text: str, number: int, line: str) -> str:
    lines = text.split("\n")
    lines[number] = line
    return "\n".join(lines)


def test_wrong_index_is_rejected() -> None:
    text = make_receipt(2, 5)
    for index in ["index 3", "index 1", "index 5", "index 99"]:
        with pytest.raises(ProofError):
            verify_receipt(_replace_line(text, 2, index), TRUST_1)


def test_wrong_entry_is_rejected() -> None:
    text = make_receipt(2, 5)
    with pytest.raises(ProofError, match="inclusion proof"):
        verify_receipt(_replace_line(text, 1, "extra " + encode_base64(b"entry 3")), TRUST_1)


def test_proof_of_wrong_length_is_rejected() -> None:
    text = make_receipt(2, 5)
    lines = text.split("\n")
    with pytest.raises(ProofError):
        verify_receipt("\n".join(lines[:3] + lines[4:]), TRUST_1)  # one hash missing
    with pytest.raises(ProofError):
        verify_receipt("\n".join([*lines[:4], lines[3], *lines[4:]]), TRUST_1)  # one extra


@pytest.mark.parametrize(
    ("line_number", "line"),
    [
        (0, "c2sp.org/tlog-proof@v2"),
        (0, "c2sp.org/tlog-proof@v1 "),
        (1, "extra "),  # empty extra
        (1, "extra  " + encode_base64(b"entry 2")),
        (1, "Extra " + encode_base64(b"entry 2")),
        (2, "index 02"),
        (2, "index -2"),
        (2, "index  2"),
        (2, "index 2 "),
        (2, "index"),
        (2, "index 99999999999999999999"),
        (3, "not base64"),
        (3, encode_base64(bytes(31))),
    ],
)
def test_malformed_receipt_lines(line_number: int, line: str) -> None:
    with pytest.raises(DecodeError):
        parse_receipt(_replace_line(make_receipt(2, 5), line_number, line))


def test_receipt_with_lines_in_the_wrong_order_is_rejected() -> None:
    lines = make_receipt(2, 5).split("\n")
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    with pytest.raises(DecodeError):
        parse_receipt("\n".join(swapped))


def test_every_truncation_is_rejected() -> None:
    text = make_receipt(6, 9)
    for length in range(len(text)):
        with pytest.raises(Rejected):
            verify_receipt(text[:length], TRUST_1)


@pytest.mark.parametrize("suffix", ["\n", "x", "x\n", " ", "\n\n", "\u2014\n", HEADER + "\n"])
def test_trailing_data_is_rejected(suffix: str) -> None:
    with pytest.raises(Rejected):
        verify_receipt(make_receipt(6, 9) + suffix, TRUST_1)


def test_crlf_line_endings_are_rejected() -> None:
    with pytest.raises(DecodeError, match="control character"):
        parse_receipt(make_receipt(1, 2).replace("\n", "\r\n"))


def test_every_bit_flip_is_rejected() -> None:
    # With every signature needed for the quorum, no bit of the receipt is free:
    # the header, extra, index, path, checkpoint and each signature line all matter.
    signers = SIGNERS[:2]
    trust = Trust.of([s.verifier() for s in signers], quorum=2, origin=ORIGIN)
    raw = make_receipt(5, 13, signers).encode()
    assert verify_receipt(raw, trust).index == 5
    for position in range(len(raw)):
        for bit in range(8):
            tampered = bytearray(raw)
            tampered[position] ^= 1 << bit
            with pytest.raises(Rejected):
                verify_receipt(bytes(tampered), trust)


def test_an_unknown_extra_signature_is_ignored() -> None:
    # The spec requires ignoring unknown signatures (witnesses, rotated keys).
    text = make_receipt(1, 3, SIGNERS[:1])
    unknown = NoteSignature("witness.example", b"\x01\x02\x03\x04", bytes(64)).line()
    assert verify_receipt(text + unknown, TRUST_1).index == 1


def test_receipt_bounds() -> None:
    note = sign_checkpoint(CHECKPOINT, SIGNERS[:1])
    with pytest.raises(TooLarge):
        Receipt(0, tuple([ROOT] * (limits.MAX_PROOF_HASHES + 1)), note, b"x")
    too_many = HEADER + "\nindex 0\n" + (GOOD_ROOT + "\n") * (limits.MAX_PROOF_HASHES + 1)
    with pytest.raises(TooLarge):
        parse_receipt(too_many + "\n" + note)
    huge_extra = Receipt(0, (), note, b"x" * limits.MAX_RECEIPT_BYTES)
    with pytest.raises(TooLarge):
        parse_receipt(format_receipt(huge_extra))


def test_receipt_constructor_rejects_bad_fields() -> None:
    note = sign_checkpoint(CHECKPOINT, SIGNERS[:1])
    for bad in [
        lambda: Receipt(-1, (), note, b"x"),
        lambda: Receipt(0, (ROOT[:31],), note, b"x"),
        lambda: Receipt(0, (), note, b""),
    ]:
        with pytest.raises(DecodeError):
            bad()


def test_receipt_with_invalid_utf8_is_rejected() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        parse_receipt(make_receipt(0, 1).encode() + b"\xff")


# --- the example in docs/formats.md stays true ------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "formats.md"


def docs_example(name: str) -> str:
    """The fenced block that follows `<!-- example: NAME -->` in docs/formats.md."""
    text = DOCS.read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->\n```\n"
    start = text.index(marker) + len(marker)
    return text[start : text.index("```", start)]


def test_docs_example_receipt_verifies() -> None:
    trust = parse_trust(docs_example("trust.txt"))
    assert trust.quorum == 3 and len(trust.validators) == 4
    verified = verify_receipt(docs_example("receipt.tlog-proof"), trust)
    assert verified.entry == b"example entry 3"
    assert verified.signers == ("devnet/node0", "devnet/node1", "devnet/node3")


def test_a_checkpoint_verifies_with_the_keys_valid_for_its_size() -> None:
    rotated = Signer("devnet/node-0", SigningKey(sha256(b"node-0 rotated")))
    size = CHECKPOINT.size
    text = (SIGNERS[0].verifier().key_text() + f" sizes=0-{size}\n"
            + rotated.verifier().key_text() + f" sizes={size + 1}-\n"
            + "".join(s.verifier().key_text() + "\n" for s in SIGNERS[1:]))
    trust = parse_trust(text)
    # Signed before the rotation by the old key: still verifies with the new file.
    _, signers = verify_checkpoint(sign_checkpoint(CHECKPOINT, SIGNERS[:3]), trust)
    assert signers == ["devnet/node-0", "devnet/node-1", "devnet/node-2"]
    # The new key does not count for a checkpoint before its range starts.
    with pytest.raises(ProofError, match="quorum is 3"):
        verify_checkpoint(sign_checkpoint(CHECKPOINT, [rotated, SIGNERS[1], SIGNERS[2]]), trust)
