"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, signature type 0x01.

A signed note is a text ending in a newline, a blank line, then one or more lines
`— <key name> base64(key id || signature)`. Checkpoints and receipts are built on it.

Parsing is strict: everything this module emits, it accepts, and the spec's own
example and the Go reference implementation's signing test are known answers
(tests/test_note.py). Base64 must be canonical (no stray padding bits), so that one
note has exactly one spelling and a flipped bit can never go unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from tidechain.core import limits
from tidechain.core.crypto import PUBLIC_KEY_BYTES, SigningKey, is_valid_signature, sha256
from tidechain.core.errors import DecodeError, ProofError, TooLarge

ED25519_SIGNATURE_TYPE = 0x01
KEY_ID_BYTES = 4
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
SIGNER_KEY_PREFIX = "PRIVATE+KEY+"

"""A note never travels alone in something larger than a receipt, which holds one."""

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_CONTROL_CHAR = re.compile("[\x00-\x09\x0b-\x1f]")
"""The spec forbids ASCII control characters other than newline anywhere in a note."""


# --- small strict decoders shared by checkpoint.py and receipt.py -------------------


def decode_base64(text: str, what: str) -> bytes:
    """Decode standard base64 (RFC 4648 section 4), accepting only its canonical spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise DecodeError(f"{what}: not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise DecodeError(f"{what}: base64 is not in canonical form")
    return raw


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def text_from_input(data: str | bytes, what: str) -> str:
    """Strictly decode UTF-8 input; refuse strings that could not be written as UTF-8."""
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{what}: not valid UTF-8") from exc
    try:
        data.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise DecodeError(f"{what}: not valid UTF-8") from exc
    return data


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


# --- key names, key ids and key texts -----------------------------------------------


def validate_key_name(name: str) -> None:
    """Raise DecodeError unless `name` is a valid note key name.

    The spec forbids empty names, '+' and Unicode spaces; we also refuse control
    characters and names longer than limits.MAX_NAME_BYTES.
    """
    if not name:
        raise DecodeError("key name is empty")
    if utf8_size(name) > limits.MAX_NAME_BYTES:
        raise DecodeError(f"key name is longer than {limits.MAX_NAME_BYTES} bytes")
    if "+" in name:
        raise DecodeError(f"key name {name!r} contains '+'")
    if name.isascii() and name.isprintable() and " " not in name:
        return  # the common case, decided without a per-character look-up
    for char in name:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Zs", "Zl", "Zp"):
            raise DecodeError(f"key name {name!r} contains a space")
        if category in ("Cc", "Cs"):
            raise DecodeError(f"key name {name!r} contains a control character")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key
    return sha256(material)[:KEY_ID_BYTES]


def _typed_key(key: bytes) -> str:
    return encode_base64(bytes([ED25519_SIGNATURE_TYPE]) + key)


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key text `name+hex8+base64(0x01 || public key)`."""
    validate_key_name(name)
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise DecodeError(f"Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes")
    return f"{name}+{key_id(name, public_key).hex()}+{_typed_key(public_key)}"


def _split_key_text(text: str, what: str) -> tuple[str, bytes, bytes]:
    """Split `name+hex8+base64(0x01 || key)` into name, claimed id and 32-byte key."""
    parts = text.split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3:
        raise DecodeError(f"{what}: expected name+keyid+key")
    name, id_hex, key_b64 = parts
    validate_key_name(name)
    if not _HEX8.fullmatch(id_hex):
        raise DecodeError(f"{what}: key id must be 8 hex digits")
    typed = decode_base64(key_b64, what)
    if len(typed) == 0 or typed[0] != ED25519_SIGNATURE_TYPE:
        raise DecodeError(f"{what}: unsupported signature type (only Ed25519, 0x01)")
    if len(typed) != 1 + PUBLIC_KEY_BYTES:
        raise DecodeError(f"{what}: Ed25519 key must be {PUBLIC_KEY_BYTES} bytes")
    return name, bytes.fromhex(id_hex), typed[1:]


@dataclass(frozen=True)
class Verifier:
    """A known Ed25519 note key. Build it with `parse_verifier_key` or `Verifier.of`."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.key_id) != KEY_ID_BYTES:
            raise DecodeError(f"key id must be {KEY_ID_BYTES} bytes")
        if len(self.public_key) != PUBLIC_KEY_BYTES:
            raise DecodeError(f"Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes")

    @classmethod
    def of(cls, name: str, public_key: bytes) -> Verifier:
        """The verifier of `public_key` under `name`, with its key id computed."""
        return cls(name=name, key_id=key_id(name, public_key), public_key=public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        return is_valid_signature(self.public_key, text, signature)

    def key_text(self) -> str:
        return verifier_key(self.name, self.public_key)


def parse_verifier_key(text: str) -> Verifier:
    """Parse `name+hex8+base64(0x01 || pubkey)`, checking that the key id matches."""
    name, claimed_id, public_key = _split_key_text(text, "verifier key")
    if claimed_id != key_id(name, public_key):
        raise DecodeError(f"verifier key {name!r}: key id does not match the key")
    return Verifier(name=name, key_id=claimed_id, public_key=public_key)


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 note signing key."""

    name: str
    key: SigningKey

    def __post_init__(self) -> None:
        validate_key_name(self.name)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key.public_key)

    def verifier(self) -> Verifier:
        return Verifier(name=self.name, key_id=self.key_id, public_key=self.key.public_key)

    def sign(self, text: bytes) -> bytes:
        return self.key.sign(text)


def signer_key(name: str, seed: bytes) -> str:
    """The private key text `PRIVATE+KEY+name+hex8+base64(0x01 || seed)` (as Go writes it).

    The key id is that of the *public* key, as in the verifier key.
    """
    signer = Signer(name=name, key=SigningKey(seed))
    return f"{SIGNER_KEY_PREFIX}{name}+{signer.key_id.hex()}+{_typed_key(seed)}"


def parse_signer_key(text: str) -> Signer:
    """Parse a `PRIVATE+KEY+...` text; the key id must match the derived public key."""
    if not text.startswith(SIGNER_KEY_PREFIX):
        raise DecodeError("signer key must start with PRIVATE+KEY+")
    name, claimed_id, seed = _split_key_text(text[len(SIGNER_KEY_PREFIX) :], "signer key")
    signer = Signer(name=name, key=SigningKey(seed))
    if claimed_id != signer.key_id:
        raise DecodeError(f"signer key {name!r}: key id does not match the key")
    return signer


# --- notes ----------------------------------------------------------------------------


class NoteSignature(NamedTuple):
    """One signature line: key name, 4-byte key id, signature bytes (without the id)."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {encode_base64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A parsed, not yet verified, signed note. `text` includes its final newline."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def format(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)


@dataclass(frozen=True)
class VerifiedNote:
    """A note of which `signers` (distinct known keys, in order of appearance) signed."""

    text: str
    signers: tuple[Verifier, ...]
    note: Note


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise DecodeError("note text must end with a newline")
    reject_control_chars(text, "note")


def reject_control_chars(text: str, what: str) -> None:
    """Raise DecodeError if `text` holds an ASCII control character other than newline."""
    found = _CONTROL_CHAR.search(text)
    if found is not None:
        raise DecodeError(f"{what} contains control character U+{ord(found.group()):04X}")


def sign_note(text: str, signers: Iterable[Signer]) -> str:
    """Sign `text` (which must end in a newline) with each signer, in the order given."""
    _check_note_text(text)
    message = text.encode("utf-8")
    signatures = tuple(
        NoteSignature(signer.name, signer.key_id, signer.sign(message)) for signer in signers
    )
    if not signatures:
        raise DecodeError("a signed note needs at least one signer")
    return Note(text=text, signatures=signatures).format()


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise DecodeError("signature line must start with an em dash and a space")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not encoded:
        raise DecodeError("signature line must be '— <name> <base64>'")
    validate_key_name(name)
    raw = decode_base64(encoded, f"signature of {name!r}")
    if len(raw) <= KEY_ID_BYTES:
        raise DecodeError(f"signature of {name!r} is too short")
    return NoteSignature(name, raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES:])


def parse_note(data: str | bytes) -> Note:
    """Parse a signed note strictly per the spec, without verifying any signature."""
    text = text_from_input(data, "note")
    if utf8_size(text) > limits.MAX_NOTE_BYTES:
        raise TooLarge(f"note is larger than {limits.MAX_NOTE_BYTES} bytes")
    reject_control_chars(text, "note")
    # The text is separated from the signatures by the *last* blank line.
    split = text.rfind("\n\n")
    if split < 0:
        raise DecodeError("note has no blank line before its signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block.endswith("\n"):
        raise DecodeError("note must end with a signature line and a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > limits.MAX_NOTE_SIGNATURES:
        raise TooLarge(f"note has more than {limits.MAX_NOTE_SIGNATURES} signatures")
    return Note(text=body, signatures=tuple(_parse_signature_line(line) for line in lines))


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise DecodeError(f"two different known keys share name and id {verifier.name!r}")
        known[slot] = verifier
    return known


def open_note(data: str | bytes, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Parse a note and verify the signatures of known keys (see `verify_note`)."""
    return verify_note(parse_note(data), verifiers)


def verify_note(note: Note, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Verify the signatures of known keys on a parsed note.

    Signatures whose (name, key id) is unknown are ignored, as the spec requires. A
    signature that claims a known name and key id but does not verify rejects the
    whole note. At least one known key must have signed. A key that signed twice is
    listed once.
    """
    known = _index_verifiers(verifiers)
    message = note.text.encode("utf-8")
    signers: dict[tuple[str, bytes], Verifier] = {}
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, signature.signature):
            raise ProofError(f"signature by {signature.name!r} does not verify")
        signers.setdefault((verifier.name, verifier.key_id), verifier)
    if not signers:
        raise ProofError("note has no signature from a known key")
    return VerifiedNote(text=note.text, signers=tuple(signers.values()), note=note)
