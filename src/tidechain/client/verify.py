"""Offline verification of evidence receipts: a receipt file and a trust file, no node.

What a successful `verify_deposit_receipt` proves, step by step:

1. the checkpoint in the receipt is signed by a quorum of the validators the trust
   file lists (and is of the trusted log, when the trust file names its origin);
2. the receipt's entry is in that log at the stated index (RFC 9162 inclusion proof);
3. the entry is a well-formed tidechain log entry whose transaction carries a valid
   Ed25519 signature of its sender and belongs to the log's chain;
4. the transaction is an evidence deposit (or amendment) that succeeded on chain;
5. when a document digest is given, it is the deposited digest.

Each step that fails raises a `Rejected` subclass (ProofError, DecodeError,
BadSignature, TooLarge) whose reason names the step. This module must never import
anything that talks to the network: it is what a court or an auditor runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tidechain.contracts import evidence
from tidechain.core.errors import ProofError, Rejected
from tidechain.core.receipt import VerifiedReceipt, verify_receipt
from tidechain.core.timefmt import iso_utc
from tidechain.core.trust import Trust, parse_trust
from tidechain.ledger.types import LogEntry

__all__ = ["VerifiedDeposit", "iso_utc", "load_trust", "verify_deposit_receipt"]

_EVIDENCE_METHODS = ("deposit", "amend")
_ORIGIN_CHAIN_PREFIX = re.compile(r"tidechain/[^/]+/([0-9a-f]{16})")
"""Genesis.origin: `tidechain/<network>/<first 8 bytes of the chain id, hex>`."""


@dataclass(frozen=True)
class VerifiedDeposit:
    """What a receipt proves about one evidence deposit."""

    digest: bytes
    meta: dict[str, str]
    depositor: str  # Ed25519 public key, hex
    method: str  # "deposit" or "amend"
    amends: int | None  # for an amendment: the log index of the deposit it amends
    height: int
    time_ms: int
    log_index: int
    tx_id: bytes
    chain_id: bytes
    origin: str
    checkpoint_size: int
    signers: tuple[str, ...]
    cosigned: bool = False
    """The deposit names co-signers (evidence v2): this receipt proves the deposit, and
    its proof set (`client/deposit_proof.py`) proves its status."""

    @property
    def time_iso(self) -> str:
        """Block time as ISO-8601 UTC with milliseconds, e.g. 2024-05-01T08:30:00.123Z."""
        return iso_utc(self.time_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest.hex(),
            "meta": dict(self.meta),
            "depositor": self.depositor,
            "method": self.method,
            "amends": self.amends,
            "height": self.height,
            "time_ms": self.time_ms,
            "time": self.time_iso,
            "log_index": self.log_index,
            "tx_id": self.tx_id.hex(),
            "chain_id": self.chain_id.hex(),
            "origin": self.origin,
            "checkpoint_size": self.checkpoint_size,
            "signers": list(self.signers),
            "cosigned": self.cosigned,
        }


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Prefix any rejection raised inside with the verification step that failed."""
    try:
        yield
    except Rejected as exc:
        reason = f"{what}: {exc.reason}"
        try:
            rephrased = type(exc)(reason, code=exc.code)
        except TypeError:  # a subclass with another constructor: keep the meaning
            rephrased = ProofError(reason, code=exc.code)
        raise rephrased from exc


def load_trust(trust: str | bytes | Trust) -> Trust:
    """A parsed trust file (pass a `Trust` through unchanged)."""
    if isinstance(trust, Trust):
        return trust
    with _step("trust file is not valid"):
        return parse_trust(trust)


def _check_entry_chain(entry: LogEntry, origin: str) -> None:
    # The origin names the chain; an entry of another chain cannot be this log's.
    match = _ORIGIN_CHAIN_PREFIX.fullmatch(origin)
    if match is not None and entry.tx.body.chain_id[:8].hex() != match.group(1):
        raise ProofError(f"the transaction belongs to chain {entry.tx.body.chain_id.hex()}, "
                         f"not to the log {origin!r}")


def _deposit_args(entry: LogEntry) -> tuple[bytes, dict[str, str], int | None]:
    body = entry.tx.body
    if body.contract != evidence.NAME or body.method not in _EVIDENCE_METHODS:
        raise ProofError(f"the entry is a {body.contract}.{body.method} transaction, "
                         "not an evidence deposit")
    if not entry.result.ok:
        raise ProofError(f"the deposit was refused on chain ({entry.result.error}: "
                         f"{entry.result.reason}); it proves nothing")
    digest = body.args.get("digest")
    if not isinstance(digest, bytes) or len(digest) != evidence.DIGEST_BYTES:
        raise ProofError("the deposit carries no 32-byte digest")
    meta = dict(evidence.validate_meta(body.args.get("meta")))
    amends = body.args.get("of") if body.method == "amend" else None
    if amends is not None and (not isinstance(amends, int) or isinstance(amends, bool)):
        raise ProofError("the amendment does not name the deposit it amends")
    return digest, meta, amends


def _check_document(digest: bytes, document_digest: bytes) -> None:
    if document_digest != digest:
        raise ProofError(
            f"the document's SHA-256 is {document_digest.hex()}, but the receipt is for "
            f"{digest.hex()}: a different or modified document")


def verify_deposit_receipt(
    receipt_text: str | bytes,
    trust_text: str | bytes | Trust,
    document_digest: bytes | None = None,
) -> VerifiedDeposit:
    """Verify an evidence receipt offline against a trust file (and, when given, the
    SHA-256 of the document). Returns what is proven; raises a Rejected subclass whose
    reason says which check failed."""
    trust = load_trust(trust_text)
    with _step("receipt does not verify against the trust file"):
        proven: VerifiedReceipt = verify_receipt(receipt_text, trust)
    return deposit_proven(proven, document_digest)


def deposit_proven(proven: VerifiedReceipt,
                   document_digest: bytes | None = None) -> VerifiedDeposit:
    """What a receipt already verified against a trust file (`verify_receipt`) proves
    about an evidence deposit; raises a Rejected subclass naming the failed check."""
    with _step("the receipt's entry is not a valid tidechain log entry"):
        entry = LogEntry.decode(proven.entry)
    with _step("the transaction in the receipt is not validly signed by its sender"):
        entry.tx.verify_signature()
    with _step("the receipt is not for an evidence deposit"):
        _check_entry_chain(entry, proven.checkpoint.origin)
        digest, meta, amends = _deposit_args(entry)
    if document_digest is not None:
        with _step("document does not match"):
            _check_document(digest, document_digest)
    return VerifiedDeposit(
        digest=digest,
        meta=meta,
        depositor=entry.tx.body.sender.hex(),
        method=entry.tx.body.method,
        amends=amends,
        height=entry.height,
        time_ms=entry.time_ms,
        log_index=proven.index,
        tx_id=entry.tx.tx_id,
        chain_id=entry.tx.body.chain_id,
        origin=proven.checkpoint.origin,
        checkpoint_size=proven.checkpoint.size,
        signers=proven.signers,
        cosigned=any(e.kind == "deposited" and "slots" in e.data
                     for e in entry.result.events),
    )
