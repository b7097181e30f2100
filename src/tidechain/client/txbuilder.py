"""Build signed evidence and membership transactions, and hash documents without
loading them whole.

Transaction building is pure: the current time and the nonce are
arguments, so a caller (the SDK, a test, another language's test vectors) decides
them. The argument checks are the contract's own (`evidence.validate_meta`), so the
client refuses exactly what the chain would refuse, before anything is signed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidechain.contracts import evidence
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import DecodeError
from tidechain.core.limits import MAX_TX_VALIDITY_MS
from tidechain.ledger.types import HASH_BYTES, MAX_NONCE_BYTES, MIN_NONCE_BYTES, SignedTx, TxBody

DEFAULT_TTL_MS = 600_000
"""Ten minutes: long enough for a busy mempool, short enough that a lost transaction
stops being replayable soon."""

HASH_CHUNK_BYTES = 1 << 20
"""Read documents 1 MiB at a time: constant memory for any file size."""

MEMBERS = "members"
"""The membership contract's name (contracts/members.py)."""
GOV = "gov"
"""The governance contract's name (contracts/governance.py)."""

Progress = Callable[[int, int], None]
"""progress(bytes_done, bytes_total), called after each chunk."""


def _check_envelope(chain_id: bytes, nonce: bytes, now_ms: int, ttl_ms: int) -> None:
    if len(chain_id) != HASH_BYTES:
        raise DecodeError(f"chain id must be {HASH_BYTES} bytes")
    if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        raise DecodeError(f"nonce must be {MIN_NONCE_BYTES}..{MAX_NONCE_BYTES} bytes")
    if now_ms < 0:
        raise DecodeError("now_ms must not be negative")
    if not 0 < ttl_ms <= MAX_TX_VALIDITY_MS:
        raise DecodeError(f"ttl_ms must be between 1 and {MAX_TX_VALIDITY_MS}")


def call_tx(
    key: SigningKey, chain_id: bytes, contract: str, method: str, args: dict[str, Any],
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed call of `contract.method` with `args`, expiring `ttl_ms` after `now_ms`."""
    _check_envelope(chain_id, nonce, now_ms, ttl_ms)
    body = TxBody(
        chain_id=chain_id,
        sender=key.public_key,
        nonce=nonce,
        expires_ms=now_ms + ttl_ms,
        contract=contract,
        method=method,
        args=args,
    )
    return SignedTx.create(body, key)


def _evidence_tx(
    key: SigningKey, chain_id: bytes, method: str, args: dict[str, Any],
    now_ms: int, nonce: bytes, ttl_ms: int,
) -> SignedTx:
    return call_tx(key, chain_id, evidence.NAME, method, args, now_ms=now_ms, nonce=nonce,
                   ttl_ms=ttl_ms)


def enrol_tx(
    admin_key: SigningKey, chain_id: bytes, cert_der: bytes,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `members.enrol` of a member certificate (DER), by an admin of its org."""
    return call_tx(admin_key, chain_id, MEMBERS, "enrol", {"cert": cert_der},
                   now_ms=now_ms, nonce=nonce, ttl_ms=ttl_ms)


def revoke_tx(
    admin_key: SigningKey, chain_id: bytes, ca_fingerprint: bytes, serial: int,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `members.revoke` of the certificate (CA fingerprint, serial)."""
    from tidechain.contracts import members  # x509 underneath: see contracts/__init__.py

    serial = members.check_serial(serial)
    args: dict[str, Any] = {"ca": members.check_fingerprint(ca_fingerprint),
                            "serial": serial.to_bytes(members.SERIAL_BYTES, "big")}
    return call_tx(admin_key, chain_id, MEMBERS, "revoke", args, now_ms=now_ms,
                   nonce=nonce, ttl_ms=ttl_ms)


def add_ca_tx(
    admin_key: SigningKey, chain_id: bytes, ca_der: bytes,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `members.add_ca`: register another CA certificate (DER) of the admin's
    organisation, the first step of a CA rotation."""
    return call_tx(admin_key, chain_id, MEMBERS, "add_ca", {"ca": ca_der}, now_ms=now_ms,
                   nonce=nonce, ttl_ms=ttl_ms)


def remove_ca_tx(
    admin_key: SigningKey, chain_id: bytes, ca_fingerprint: bytes,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `members.remove_ca` of the CA with this fingerprint (SHA-256 of its
    DER): the last step of a CA rotation; its members stop counting."""
    from tidechain.contracts import members  # x509 underneath: see contracts/__init__.py

    args = {"fingerprint": members.check_fingerprint(ca_fingerprint)}
    return call_tx(admin_key, chain_id, MEMBERS, "remove_ca", args, now_ms=now_ms,
                   nonce=nonce, ttl_ms=ttl_ms)


def propose_tx(
    admin_key: SigningKey, chain_id: bytes, action: str, action_args: dict[str, Any],
    effective_height: int = 0, *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `gov.propose` of `action` with `action_args`, to take effect at
    `effective_height` (0: the block after it passes). The chain checks the action."""
    if effective_height < 0:
        raise DecodeError("effective_height must not be negative")
    args = {"action": action, "args": action_args, "effective_height": effective_height}
    return call_tx(admin_key, chain_id, GOV, "propose", args, now_ms=now_ms, nonce=nonce,
                   ttl_ms=ttl_ms)


def vote_tx(
    admin_key: SigningKey, chain_id: bytes, proposal: int, approve: bool,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `gov.vote` on proposal `proposal` (its log index) for the signer's org."""
    if proposal < 0:
        raise DecodeError("proposal must be a log index")
    return call_tx(admin_key, chain_id, GOV, "vote", {"proposal": proposal,
                                                      "approve": bool(approve)},
                   now_ms=now_ms, nonce=nonce, ttl_ms=ttl_ms)


def deposit_tx(
    signer_key: SigningKey, chain_id: bytes, digest: bytes, meta: dict[str, str],
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `evidence.deposit` of `digest` with `meta`, expiring `ttl_ms` after
    `now_ms`. Raises ContractError/DecodeError/TooLarge for what the chain would refuse."""
    args = {"digest": evidence.check_digest(digest), "meta": dict(evidence.validate_meta(meta))}
    return _evidence_tx(signer_key, chain_id, "deposit", args, now_ms, nonce, ttl_ms)


def amend_tx(
    signer_key: SigningKey, chain_id: bytes, of: int, digest: bytes, meta: dict[str, str],
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `evidence.amend`: deposit `digest` as a new version of deposit `of`
    (a log index). Only the original depositor may amend; the chain checks that."""
    args = {"of": evidence.check_of(of), "digest": evidence.check_digest(digest),
            "meta": dict(evidence.validate_meta(meta))}
    return _evidence_tx(signer_key, chain_id, "amend", args, now_ms, nonce, ttl_ms)


def hash_file(path: str | Path, progress: Progress | None = None) -> bytes:
    """SHA-256 of a file's contents, read in HASH_CHUNK_BYTES chunks. Raises OSError
    if the file cannot be read."""
    path = Path(path)
    hasher = hashlib.sha256()
    with path.open("rb") as stream:
        total = os.fstat(stream.fileno()).st_size
        done = 0
        if progress is not None:
            progress(0, total)
        while chunk := stream.read(HASH_CHUNK_BYTES):
            hasher.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, max(total, done))
    return hasher.digest()
