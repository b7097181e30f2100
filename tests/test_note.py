"""C2SP signed notes: known answers from the spec and the Go reference, rejections, round trips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core import limits
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import DecodeError, ProofError, Rejected, TooLarge
from tidechain.core.note import (
    Note,
    NoteSignature,
    Signer,
    Verifier,
    decode_base64,
    encode_base64,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signer_key,
    validate_key_name,
    verifier_key,
)

VECTORS = Path(__file__).resolve().parents[1] / ".." / "shared" / "vectors" / "c2sp"


def load_cases() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "signed_note_kat.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["cases"]
    return cases


def case(name: str) -> dict[str, Any]:
    return next(c for c in load_cases() if c["name"] == name)


def make_signer(name: str, label: str | None = None) -> Signer:
    return Signer(name=name, key=SigningKey(sha256((label or name).encode())))


ALICE = make_signer("example.org/alice")
BOB = make_signer("example.org/bob")
TEXT = "tidechain/test\n42\n" + "A" * 43 + "=\n"


# --- known answers ------------------------------------------------------------------


@pytest.mark.parametrize("kat", load_cases(), ids=lambda c: c["name"])
def test_known_notes_verify(kat: dict[str, Any]) -> None:
    verifier = parse_verifier_key(kat["verifier_key"])
    opened = open_note(kat["note"], [verifier])
    assert kat["want_valid"] is True
    assert opened.signers == (verifier,)
    assert opened.note.format() == kat["note"]


def test_go_signing_test_is_reproduced_byte_for_byte() -> None:
    kat = case("go-x-mod-TestSign")
    signer = parse_signer_key(kat["signer_key"])
    assert sign_note(kat["text"], [signer]) == kat["note"]


def test_key_texts_round_trip_exactly() -> None:
    kat = case("go-x-mod-TestSign")
    signer = parse_signer_key(kat["signer_key"])
    assert signer_key(signer.name, signer.key.seed) == kat["signer_key"]
    assert verifier_key(signer.name, signer.key.public_key) == kat["verifier_key"]
    assert signer.verifier() == parse_verifier_key(kat["verifier_key"])


def test_key_id_is_the_spec_hash() -> None:
    verifier = parse_verifier_key(case("spec-example")["verifier_key"])
    assert key_id(verifier.name, verifier.public_key) == bytes.fromhex("530d903a")
    expected = sha256(b"example.com/foo\n\x01" + verifier.public_key)[:4]
    assert verifier.key_id == expected


def test_spec_example_rejects_the_other_key() -> None:
    other = parse_verifier_key(case("go-x-mod-TestSign")["verifier_key"])
    with pytest.raises(ProofError, match="no signature from a known key"):
        open_note(case("spec-example")["note"], [other])


# --- key texts ----------------------------------------------------------------------


GOOD_VKEY = case("spec-example")["verifier_key"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com/foo",
        "example.com/foo+530d903a",
        GOOD_VKEY.replace("530d903a", "530d903b"),  # id does not match
        GOOD_VKEY.replace("530d903a", "530d903"),  # 7 hex digits
        GOOD_VKEY.replace("530d903a", "530d903g"),
        GOOD_VKEY.replace("example.com/foo", "example.com/ foo"),
        GOOD_VKEY.replace("example.com/foo", ""),
        GOOD_VKEY.replace("+Aek", "+Aek="),  # broken base64
        "example.com/foo+530d903a+" + encode_base64(b"\x02" + bytes(32)),  # not Ed25519
        "example.com/foo+530d903a+" + encode_base64(b"\x01" + bytes(31)),  # short key
        "example.com/foo+530d903a+" + encode_base64(b""),
    ],
)
def test_bad_verifier_keys_are_rejected(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_verifier_key(text)


def test_signer_key_rejections() -> None:
    good = case("go-x-mod-TestSign")["signer_key"]
    with pytest.raises(DecodeError, match="PRIVATE"):
        parse_signer_key(good.removeprefix("PRIVATE+"))
    with pytest.raises(DecodeError, match="does not match"):
        parse_signer_key(good.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(DecodeError):
        parse_signer_key(good.replace("PeterNeumann", "Peter Neumann"))


@pytest.mark.parametrize(
    "name",
    ["", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2028b", "a\u3000b", "a\x00b", "a\x7fb", "x" * 129],
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(DecodeError):
        validate_key_name(name)


@pytest.mark.parametrize("name", ["example.com/foo", "tidechain/devnet/node-1", "节点/一", "a"])
def test_good_key_names(name: str) -> None:
    validate_key_name(name)


def test_canonical_base64_only() -> None:
    assert decode_base64("YQ==", "x") == b"a"
    for bad in ["YR==", "YQ", "YQ=", "Y Q==", "YQ==\n", "ÿQ=="]:
        with pytest.raises(DecodeError):
            decode_base64(bad, "x")


# --- note parsing -------------------------------------------------------------------


GOOD_NOTE = sign_note(TEXT, [ALICE])


def test_parse_note_splits_text_and_signatures() -> None:
    note = parse_note(GOOD_NOTE)
    assert note.text == TEXT
    assert [s.name for s in note.signatures] == [ALICE.name]
    assert note.signatures[0].key_id == ALICE.key_id
    assert note.format() == GOOD_NOTE
    assert parse_note(GOOD_NOTE.encode()) == note


def test_text_may_contain_blank_lines() -> None:
    text = "first\n\nsecond\n\n\nthird\n"
    signed = sign_note(text, [ALICE])
    assert open_note(signed, [ALICE.verifier()]).text == text


@pytest.mark.parametrize(
    "data",
    [
        "",
        "\n",
        TEXT,  # no signatures at all
        TEXT + "\n",  # blank line, no signature
        GOOD_NOTE.removesuffix("\n"),  # last line not terminated
        GOOD_NOTE + "\n",  # trailing blank line
        GOOD_NOTE + "trailing\n",  # not a signature line
        GOOD_NOTE.replace("\u2014", "-"),  # hyphen instead of em dash
        GOOD_NOTE.replace("\u2014 ", "\u2014"),
        GOOD_NOTE.replace("\u2014 example.org/alice ", "\u2014  example.org/alice "),
        GOOD_NOTE.replace("example.org/alice ", "example.org/alice"),
        GOOD_NOTE.replace("alice ", "alice+x "),
        GOOD_NOTE.replace("42\n", "4\t2\n"),  # control character in the text
        GOOD_NOTE.replace("42\n", "42\r\n"),
        "text\n\n\u2014 example.org/alice " + encode_base64(b"\x01\x02\x03\x04") + "\n",  # id only
        "text\n\n\u2014 example.org/alice AAAAAAB=\n",  # non-canonical base64
        "text\n\n\u2014 example.org/alice\n",
        "text\n\u2014 example.org/alice " + encode_base64(bytes(68)) + "\n",  # no blank line
    ],
)
def test_malformed_notes_are_rejected(data: str) -> None:
    with pytest.raises(DecodeError):
        parse_note(data)


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        parse_note(GOOD_NOTE.encode().replace(b"42", b"4\xff"))
    with pytest.raises(DecodeError, match="UTF-8"):
        parse_note(GOOD_NOTE.replace("42", "4\udc80"))


def test_signature_count_is_bounded() -> None:
    line = NoteSignature(ALICE.name, ALICE.key_id, bytes(64)).line()
    at_limit = TEXT + "\n" + line * limits.MAX_NOTE_SIGNATURES
    assert len(parse_note(at_limit).signatures) == limits.MAX_NOTE_SIGNATURES
    with pytest.raises(TooLarge):
        parse_note(at_limit + line)


def test_note_size_is_bounded() -> None:
    huge = "x" * limits.MAX_RECEIPT_BYTES + "\n"
    with pytest.raises(TooLarge):
        parse_note(huge + "\n" + NoteSignature(ALICE.name, ALICE.key_id, bytes(64)).line())


def test_the_spec_requires_accepting_sixteen_signatures() -> None:
    signers = [make_signer(f"example.org/v{i}") for i in range(16)]
    signed = sign_note(TEXT, signers)
    assert len(open_note(signed, [s.verifier() for s in signers]).signers) == 16


def test_sign_note_refuses_bad_input() -> None:
    with pytest.raises(DecodeError, match="newline"):
        sign_note("no newline", [ALICE])
    with pytest.raises(DecodeError, match="control"):
        sign_note("bell\x07\n", [ALICE])
    with pytest.raises(DecodeError, match="at least one"):
        sign_note(TEXT, [])


# --- opening (verification) ---------------------------------------------------------


def test_two_signers_both_verified_in_order() -> None:
    signed = sign_note(TEXT, [BOB, ALICE])
    opened = open_note(signed, [ALICE.verifier(), BOB.verifier()])
    assert [v.name for v in opened.signers] == [BOB.name, ALICE.name]


def test_unknown_keys_are_ignored() -> None:
    stranger = make_signer("example.org/stranger")
    signed = sign_note(TEXT, [stranger, ALICE])
    opened = open_note(signed, [ALICE.verifier()])
    assert opened.signers == (ALICE.verifier(),)
    assert len(opened.note.signatures) == 2


def test_same_name_other_key_is_ignored_not_failed() -> None:
    impostor = make_signer(ALICE.name, label="other seed")
    signed = sign_note(TEXT, [impostor, ALICE])
    assert open_note(signed, [ALICE.verifier()]).signers == (ALICE.verifier(),)


def test_same_key_id_other_name_is_ignored() -> None:
    forged = NoteSignature("example.org/mallory", ALICE.key_id, bytes(64))
    signed = Note(TEXT, (forged, *parse_note(GOOD_NOTE).signatures)).format()
    assert open_note(signed, [ALICE.verifier()]).signers == (ALICE.verifier(),)


def test_known_key_with_bad_signature_rejects_the_note() -> None:
    forged = NoteSignature(ALICE.name, ALICE.key_id, bytes(64))
    signed = Note(TEXT, (*parse_note(sign_note(TEXT, [BOB])).signatures, forged)).format()
    with pytest.raises(ProofError, match="does not verify"):
        open_note(signed, [ALICE.verifier(), BOB.verifier()])


def test_known_key_with_wrong_length_signature_rejects_the_note() -> None:
    forged = NoteSignature(ALICE.name, ALICE.key_id, bytes(10))
    with pytest.raises(ProofError):
        open_note(Note(TEXT, (forged,)).format(), [ALICE.verifier()])


def test_duplicate_signature_counted_once() -> None:
    line = parse_note(GOOD_NOTE).signatures[0].line()
    doubled = GOOD_NOTE + line
    assert open_note(doubled, [ALICE.verifier()]).signers == (ALICE.verifier(),)


def test_no_known_signature_rejects() -> None:
    with pytest.raises(ProofError):
        open_note(GOOD_NOTE, [BOB.verifier()])
    with pytest.raises(ProofError):
        open_note(GOOD_NOTE, [])


def test_ambiguous_verifier_list_is_refused() -> None:
    alias = Verifier(ALICE.name, ALICE.key_id, BOB.key.public_key)
    with pytest.raises(DecodeError, match="share"):
        open_note(GOOD_NOTE, [ALICE.verifier(), alias])


def test_every_single_byte_change_is_rejected() -> None:
    raw = GOOD_NOTE.encode()
    verifier = ALICE.verifier()
    for position in range(len(raw)):
        for bit in (0x01, 0x20, 0x80):
            tampered = bytearray(raw)
            tampered[position] ^= bit
            with pytest.raises(Rejected):
                open_note(bytes(tampered), [verifier])


# --- properties ---------------------------------------------------------------------

NOTE_CHARS = st.characters(
    exclude_categories=("Cs",), exclude_characters=[chr(c) for c in range(0x20) if c != 10]
)
NAME_CHARS = st.characters(
    exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="+\x1c\x1d\x1e\x1f"
)


@settings(max_examples=60, deadline=None)
@given(
    body=st.text(NOTE_CHARS, max_size=200),
    names=st.lists(st.text(NAME_CHARS, min_size=1, max_size=20), min_size=1, max_size=4),
)
def test_sign_parse_open_round_trip(body: str, names: list[str]) -> None:
    names = [n for n in dict.fromkeys(names) if not any(c.isspace() for c in n)]
    if not names:
        return
    signers = [make_signer(name) for name in names]
    text = body + "\n"
    signed = sign_note(text, signers)
    note = parse_note(signed)
    assert note.text == text
    assert note.format() == signed
    opened = open_note(signed, [s.verifier() for s in signers])
    assert [v.name for v in opened.signers] == names


@settings(max_examples=60, deadline=None)
@given(name=st.text(NAME_CHARS, min_size=1, max_size=30), seed=st.binary(min_size=32, max_size=32))
def test_key_text_round_trip(name: str, seed: bytes) -> None:
    if any(c.isspace() for c in name) or len(name.encode()) > limits.MAX_NAME_BYTES:
        return
    signer = Signer(name, SigningKey(seed))
    assert parse_signer_key(signer_key(name, seed)) == signer
    vkey = verifier_key(name, signer.key.public_key)
    assert parse_verifier_key(vkey) == signer.verifier()
