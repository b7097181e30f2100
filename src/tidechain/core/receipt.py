"""Receipts: C2SP transparency-log proofs (c2sp.org/tlog-proof@v1, files `*.tlog-proof`).

    c2sp.org/tlog-proof@v1
    extra <base64 of the log entry>
    index <zero-based index>
    <base64 audit path hash, leaf sibling first>   (zero or more lines)
    <blank line>
    <quorum-signed checkpoint note, verbatim>

The spec leaves `extra` to the application. In tidechain it carries the log entry
itself (the canonical bytes of the committed transaction with its height, time and
result); the leaf is `leaf_hash(entry)`, so a receipt plus a trust file proves the
entry without any node. `extra` is unauthenticated until the inclusion proof checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tidechain.core import limits, merkle
from tidechain.core.checkpoint import Checkpoint, parse_checkpoint_body, verify_checkpoint_note
from tidechain.core.errors import DecodeError, ProofError, TooLarge
from tidechain.core.note import (
    Note,
    decode_base64,
    encode_base64,
    parse_note,
    reject_control_chars,
    text_from_input,
    utf8_size,
)
from tidechain.core.trust import Trust

HEADER = "c2sp.org/tlog-proof@v1"
PROOF_HASH_BYTES = 32
_INDEX_LINE = re.compile(r"index (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class Receipt:
    """A parsed receipt; nothing in it is trusted until `verify_receipt` accepts it."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if self.index < 0:
            raise DecodeError(f"receipt index {self.index} is negative")
        if len(self.proof) > limits.MAX_PROOF_HASHES:
            raise TooLarge(f"receipt has more than {limits.MAX_PROOF_HASHES} proof hashes")
        for node in self.proof:
            if len(node) != PROOF_HASH_BYTES:
                raise DecodeError(f"proof hashes must be {PROOF_HASH_BYTES} bytes")
        if self.extra is not None and not self.extra:
            raise DecodeError("receipt extra data is empty (omit the line instead)")


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a valid receipt proves: `entry` is leaf `index` of the quorum-signed `checkpoint`."""

    index: int
    entry: bytes
    checkpoint: Checkpoint
    signers: tuple[str, ...]


def format_receipt(receipt: Receipt) -> str:
    """The receipt's file text (UTF-8, newline-terminated lines)."""
    lines = [HEADER]
    if receipt.extra is not None:
        lines.append(f"extra {encode_base64(receipt.extra)}")
    lines.append(f"index {receipt.index}")
    lines.extend(encode_base64(node) for node in receipt.proof)
    return "".join(line + "\n" for line in lines) + "\n" + receipt.checkpoint_note


def _parse_head(head_lines: list[str]) -> tuple[bytes | None, int, tuple[bytes, ...]]:
    """Read header, optional extra, index and proof lines (the part before the blank line)."""
    if not head_lines or head_lines[0] != HEADER:
        raise DecodeError(f"receipt must start with {HEADER!r}")
    rest = head_lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = decode_base64(rest[0].removeprefix("extra "), "receipt extra")
        rest = rest[1:]
    if not rest:
        raise DecodeError("receipt has no index line")
    index_match = _INDEX_LINE.fullmatch(rest[0])
    if index_match is None:
        raise DecodeError("receipt index line must be 'index N' with N a canonical decimal")
    hash_lines = rest[1:]
    if len(hash_lines) > limits.MAX_PROOF_HASHES:
        raise TooLarge(f"receipt has more than {limits.MAX_PROOF_HASHES} proof hashes")
    proof = tuple(decode_base64(line, "receipt proof hash") for line in hash_lines)
    return extra, int(index_match.group(1)), proof


def parse_receipt(text: str | bytes) -> Receipt:
    """Parse a receipt strictly; the checkpoint must be a well-formed signed checkpoint."""
    return _parse_receipt(text)[0]


def _parse_receipt(text: str | bytes) -> tuple[Receipt, Note]:
    text = text_from_input(text, "receipt")
    if utf8_size(text) > limits.MAX_RECEIPT_BYTES:
        raise TooLarge(f"receipt is larger than {limits.MAX_RECEIPT_BYTES} bytes")
    reject_control_chars(text, "receipt")
    # Proof lines are never empty, so the first blank line ends them.
    head, blank, checkpoint_note = text.partition("\n\n")
    if not blank:
        raise DecodeError("receipt has no blank line before its checkpoint")
    extra, index, proof = _parse_head(head.split("\n"))
    note = parse_note(checkpoint_note)
    parse_checkpoint_body(note.text)
    receipt = Receipt(index=index, proof=proof, checkpoint_note=checkpoint_note, extra=extra)
    return receipt, note


def verify_receipt(text: str | bytes, trust: Trust) -> VerifiedReceipt:
    """Check a receipt against a trust file: quorum-signed checkpoint, then inclusion
    of `leaf_hash(extra)` at `index`. Raises a Rejected subclass (ProofError,
    DecodeError, TooLarge) with the reason on any failure."""
    receipt, note = _parse_receipt(text)
    checkpoint, signers = verify_checkpoint_note(note, trust)
    if receipt.extra is None:
        raise ProofError("receipt has no extra line: tidechain receipts carry the entry there")
    if receipt.index >= checkpoint.size:
        raise ProofError(
            f"receipt index {receipt.index} is outside the checkpoint of size {checkpoint.size}"
        )
    merkle.verify_inclusion(
        merkle.leaf_hash(receipt.extra),
        receipt.index,
        checkpoint.size,
        receipt.proof,
        checkpoint.root,
    )
    return VerifiedReceipt(
        index=receipt.index,
        entry=receipt.extra,
        checkpoint=checkpoint,
        signers=tuple(signers),
    )
