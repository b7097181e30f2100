"""Build signed evidence and membership transactions, and hash documents without
loading them whole.

Transaction building is pure: the current time and the nonce are
arguments, so a caller (the SDK, a test, another language's test vectors) decides
them. The argument checks are the contract's own (`evidence.validate_meta`), so the
client refuses exactly what the chain would refuse, before anything is signed.
Invoice content is the exception to purity: sealing it draws a fresh content key and
nonces from os.urandom (client/sealing.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tidechain.client import sealing
from tidechain.contracts import evidence
from tidechain.contracts.invoice import content as invoice_content
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


# --- e-invoices (contracts/invoice) -----------------------------------------------------
# Each builder checks its arguments with the contract's own checks
# (`contracts.invoice.content`), so it raises the ContractError the chain would give.

INVOICE = "invoice"
"""The e-invoice contract's name (contracts/invoice)."""


def invoice_line(name: str, quantity: int, unit_price: int, tax_rate_bp: int, *,
                 spec: str | None = None, unit: str | None = None) -> dict[str, Any]:
    """A line item with its amount (quantity x unit price) and its tax (rate in basis
    points, rounded half up), computed exactly as the chain checks them; `spec`
    (specification or model) and `unit` (of measure) are optional."""
    amount = quantity * unit_price
    line: dict[str, Any] = {"name": name, "quantity": quantity, "unit_price": unit_price,
                            "amount": amount, "tax_rate_bp": tax_rate_bp,
                            "tax": invoice_content.line_tax(amount, tax_rate_bp)}
    if spec is not None:
        line["spec"] = spec
    if unit is not None:
        line["unit"] = unit
    return invoice_content.check_line(line, 0)


def _with_totals(fields: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    amount = sum(line["amount"] for line in lines)
    tax = sum(line["tax"] for line in lines)
    return {**fields, "lines": lines, "amount": amount, "tax": tax, "total": amount + tax}


def invoice_args(number: str, buyer: dict[str, Any], lines: list[dict[str, Any]],
                 *, remark: str = "", claim_digest: bytes | None = None,
                 source: dict[str, Any] | None = None, drawer: str | None = None
                 ) -> dict[str, Any]:
    """The plain arguments of `invoice.issue` (one element of `issue_batch`), totals
    computed. `buyer` is {"key": member key} or {"name", "uscc"} (then `claim_digest`
    is needed); `source` anchors an imported document (client/ubl.py)."""
    fields: dict[str, Any] = {"number": number, "buyer": buyer, "remark": remark}
    if claim_digest is not None:
        fields["claim_digest"] = claim_digest
    if source is not None:
        fields["source"] = source
    if drawer is not None:
        fields["drawer"] = drawer
    args = _with_totals(fields, lines)
    invoice_content.check_blue(args)
    return args


def red_letter_args(number: str, original: str, reason: str, lines: list[dict[str, Any]],
                    *, remark: str = "", source: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The plain arguments of `invoice.red_letter` / `request_reversal`: the reversed
    part as positive line items, totals computed."""
    fields: dict[str, Any] = {"number": number, "original": original, "reason": reason,
                              "remark": remark}
    if source is not None:
        fields["source"] = source
    args = _with_totals(fields, lines)
    invoice_content.check_red(args)
    return args


def _invoice_tx(key: SigningKey, chain_id: bytes, method: str, args: dict[str, Any],
                now_ms: int, nonce: bytes, ttl_ms: int) -> SignedTx:
    return call_tx(key, chain_id, INVOICE, method, args, now_ms=now_ms, nonce=nonce,
                   ttl_ms=ttl_ms)


def authorise_issuer_tx(
    tax_key: SigningKey, chain_id: bytes, issuer: bytes, name: str, tax_id: str, quota: int,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.authorise_issuer`: let `issuer` issue up to `quota` fen in total."""
    args = {"issuer": invoice_content.check_key(issuer, "issuer"), "name": name,
            "tax_id": invoice_content.check_tax_id(tax_id), "quota": quota}
    return _invoice_tx(tax_key, chain_id, "authorise_issuer", args, now_ms, nonce, ttl_ms)


def suspend_issuer_tx(
    tax_key: SigningKey, chain_id: bytes, issuer: bytes,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.suspend_issuer`."""
    args = {"issuer": invoice_content.check_key(issuer, "issuer")}
    return _invoice_tx(tax_key, chain_id, "suspend_issuer", args, now_ms, nonce, ttl_ms)


def set_quota_tx(
    tax_key: SigningKey, chain_id: bytes, issuer: bytes, quota: int,
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.set_quota`."""
    args = {"issuer": invoice_content.check_key(issuer, "issuer"), "quota": quota}
    return _invoice_tx(tax_key, chain_id, "set_quota", args, now_ms, nonce, ttl_ms)


def issue_invoice_tx(
    issuer_key: SigningKey, chain_id: bytes, invoice: dict[str, Any], *,
    auditors: Sequence[bytes], code: bytes | None = None,
    now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.issue` of `invoice` (plain, from `invoice_args`), its content sealed to
    the issuer, the buyer and the tax authority's `auditors` (`Client.invoice_auditors`);
    a buyer named by USCC also through the claim `code`."""
    args = sealing.sealed_invoice_args(invoice, issuer_key.public_key, auditors, code=code)
    return _invoice_tx(issuer_key, chain_id, "issue", args, now_ms, nonce, ttl_ms)


def issue_batch_tx(
    issuer_key: SigningKey, chain_id: bytes, invoices: list[dict[str, Any]], *,
    auditors: Sequence[bytes], codes: Sequence[bytes | None] | None = None,
    now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.issue_batch`: all of `invoices` (plain) or none, each sealed as by
    `issue_invoice_tx`; `codes[i]` is the claim code of invoice i, if it needs one."""
    codes = list(codes) if codes is not None else [None] * len(invoices)
    sealed = [sealing.sealed_invoice_args(invoice, issuer_key.public_key, auditors, code=code)
              for invoice, code in zip(invoices, codes, strict=True)]
    return _invoice_tx(issuer_key, chain_id, "issue_batch", {"invoices": sealed}, now_ms,
                       nonce, ttl_ms)


def red_letter_tx(
    issuer_key: SigningKey, chain_id: bytes, red: dict[str, Any], *, readers: Iterable[bytes],
    confirm: bool = False, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """`invoice.red_letter` of `red` (plain, from `red_letter_args`), sealed to `readers`
    (`sealing.red_letter_readers` of the original's record), or with `confirm=True`
    `invoice.request_reversal` (a claimed or locked original)."""
    args = sealing.sealed_red_args(red, readers)
    method = "request_reversal" if confirm else "red_letter"
    return _invoice_tx(issuer_key, chain_id, method, args, now_ms, nonce, ttl_ms)


def invoice_action_tx(
    key: SigningKey, chain_id: bytes, method: str, number: str, *, code: bytes | None = None,
    employer: bytes | None = None, wrapped: bytes | None = None,
    now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A buyer's or employer's call on one invoice: `claim` (with `code` for a buyer
    named by USCC), `submit` (to `employer`), `lock`, `unlock`, `reimburse`, or
    `confirm_reversal` (`number` is then the original's). `wrapped` is the content key
    sealed to the new reader (`sealing.share_key`): the employer on `submit`, the
    claimer itself on a `claim` by code."""
    args: dict[str, Any]
    if method == "confirm_reversal":
        args = {"original": invoice_content.check_number(number, "original")}
    elif method in ("claim", "submit", "lock", "unlock", "reimburse"):
        args = {"number": invoice_content.check_number(number)}
    else:
        raise DecodeError(f"{method!r} is not an invoice action")
    if method == "claim" and code is not None:
        args["code"] = code
    if method in ("claim", "submit") and wrapped is not None:
        args["wrapped"] = wrapped
    if method == "submit":
        args["employer"] = invoice_content.check_key(employer, "employer")
    return _invoice_tx(key, chain_id, method, args, now_ms, nonce, ttl_ms)
