"""C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint), signed by a validator quorum.

A checkpoint is a signed note whose text is

    <origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n]...

tidechain's validators each sign the same text under their own key name; a
checkpoint is final once it carries valid signatures from `trust.quorum` distinct
trusted validators (see trust.py). Origins follow `tidechain/<network>/<chain id
prefix>`; see docs/formats.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tidechain.core import limits
from tidechain.core.errors import DecodeError, ProofError, TooLarge
from tidechain.core.note import (
    Note,
    Signer,
    decode_base64,
    encode_base64,
    parse_note,
    sign_note,
    utf8_size,
    verify_note,
)
from tidechain.core.trust import Trust

ROOT_BYTES = 32
MAX_TREE_SIZE = 2**63 - 1
"""Sizes beyond a signed 64-bit integer are refused: no log gets there, and the Go
reference implementation could not read them."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """A log's origin, size and root hash (and, rarely, opaque extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if utf8_size(self.origin) > limits.MAX_NAME_BYTES:
            raise DecodeError(f"checkpoint origin is longer than {limits.MAX_NAME_BYTES} bytes")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise DecodeError(f"checkpoint size {self.size} is out of range")
        if len(self.root) != ROOT_BYTES:
            raise DecodeError(f"checkpoint root must be {ROOT_BYTES} bytes")
        for extension in self.extensions:
            _check_line(extension, "extension line")

    def body(self) -> str:
        """The note text that validators sign."""
        lines = [self.origin, str(self.size), encode_base64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def _check_line(value: str, what: str) -> None:
    if not value:
        raise DecodeError(f"checkpoint {what} is empty")
    if "\n" in value:
        raise DecodeError(f"checkpoint {what} contains a newline")


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly: origin, size (no leading zeros), 32-byte root."""
    if not text.endswith("\n"):
        raise DecodeError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise DecodeError("checkpoint text needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text) or len(size_text) > len(str(MAX_TREE_SIZE)):
        raise DecodeError(f"checkpoint size {size_text!r} is not a canonical decimal")
    return Checkpoint(
        origin=origin,
        size=int(size_text),
        root=decode_base64(root_text, "checkpoint root"),
        extensions=tuple(extensions),
    )


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[Signer]) -> str:
    """A signed note of the checkpoint, its signature lines ordered by key name."""
    ordered = sorted(signers, key=lambda s: (s.name, s.key_id))
    return sign_note(checkpoint.body(), ordered)


def _check_origin(checkpoint: Checkpoint, trust: Trust) -> None:
    if trust.origin is not None and checkpoint.origin != trust.origin:
        raise ProofError(
            f"checkpoint origin {checkpoint.origin!r} is not the trusted origin {trust.origin!r}"
        )


def verify_checkpoint(note_text: str | bytes, trust: Trust) -> tuple[Checkpoint, list[str]]:
    """Verify a quorum-signed checkpoint; return it and the sorted names of its signers.

    Raises ProofError unless the origin matches the trust file's (when it names one)
    and at least `trust.quorum` distinct trusted validators signed validly.
    """
    return verify_checkpoint_note(parse_note(note_text), trust)


def verify_checkpoint_note(note: Note, trust: Trust) -> tuple[Checkpoint, list[str]]:
    """`verify_checkpoint` for a note already parsed."""
    # The body is read before the signatures only to give a clear error for a
    # checkpoint of another log; nothing is trusted until the quorum check passes.
    checkpoint = parse_checkpoint_body(note.text)
    _check_origin(checkpoint, trust)
    trust = trust.at_size(checkpoint.size)  # the keys that may sign a log of this size
    verified = verify_note(note, trust.validators)
    signers = sorted({v.name for v in verified.signers})
    if len(signers) < trust.quorum:
        raise ProofError(
            f"checkpoint signed by {len(signers)} trusted validators, quorum is {trust.quorum}"
        )
    return checkpoint, signers


def add_signatures(note_text: str | bytes, other_note_text: str | bytes) -> str:
    """Merge the signature lines of two signed notes of the same checkpoint.

    Identical lines are kept once and lines are sorted by key name, so the result
    does not depend on the order validators answered in. Nothing is verified here:
    use `verify_checkpoint` on the result.
    """
    note, other = parse_note(note_text), parse_note(other_note_text)
    if note.text != other.text:
        raise ProofError("cannot merge signatures of two different checkpoints")
    parse_checkpoint_body(note.text)
    merged = sorted(set(note.signatures) | set(other.signatures))
    if len(merged) > limits.MAX_NOTE_SIGNATURES:
        raise TooLarge(f"merged note would have more than {limits.MAX_NOTE_SIGNATURES} signatures")
    return Note(text=note.text, signatures=tuple(merged)).format()
