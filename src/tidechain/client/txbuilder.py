"""Transactions and their arguments, built without I/O, and documents hashed without
loading them whole.

One low-level builder, `call_tx`, signs any call; the current time and the nonce are
arguments, so a caller decides them (the SDK's `Session` from its injected clock and
nonce source; a test or a benchmark that crafts a deliberately odd transaction; another
language's test vectors). Everything else here produces a method's *arguments* only,
checked with the application's own checks (`evidence.validate_meta`, the invoice
content checks), so the client refuses exactly what the chain would refuse before
anything is signed. Send them with `Session.call(app, method, args)`.

Invoice content is the exception to purity: sealing it draws a fresh content key and
nonces from os.urandom (client/sealing.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
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

EVIDENCE = evidence.NAME
"""The evidence contract's name (contracts/evidence)."""
MEMBERS = "members"
"""The membership contract's name (contracts/members.py)."""
GOV = "gov"
"""The governance contract's name (contracts/governance.py)."""
INVOICE = "invoice"
"""The e-invoice contract's name (contracts/invoice)."""
SCF = "scf"
"""The supply-chain finance contract's name (contracts/scf)."""

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


def deposit_tx(
    signer_key: SigningKey, chain_id: bytes, digest: bytes, meta: dict[str, str],
    *, now_ms: int, nonce: bytes, ttl_ms: int = DEFAULT_TTL_MS,
) -> SignedTx:
    """A signed `evidence.deposit`, for callers that submit transactions their own way
    (benchmarks, tests, batches); `Session.call` is the ordinary way to send one."""
    return call_tx(signer_key, chain_id, EVIDENCE, "deposit", deposit_args(digest, meta),
                   now_ms=now_ms, nonce=nonce, ttl_ms=ttl_ms)


# --- evidence (contracts/evidence) ---------------------------------------------------------


def deposit_args(digest: bytes, meta: dict[str, str] | None = None) -> dict[str, Any]:
    """`evidence.deposit` of `digest` with `meta`. Raises ContractError for what the
    chain would refuse."""
    return {"digest": evidence.check_digest(digest),
            "meta": dict(evidence.validate_meta(meta))}


def cosign_args(cosigners: Sequence[Mapping[str, Any]], threshold: int | None = None,
                deadline_ms: int | None = None) -> dict[str, Any]:
    """The co-signing fields of an evidence v2 deposit: the named signers ({"key": 32
    bytes} or {"org", "role"}), k (default: all of them) and the deadline (default: the
    governed window). Raises ContractError for what the chain would refuse."""
    from tidechain.contracts.evidence import cosign

    slots = cosign.parse_slots([dict(c) for c in cosigners])
    args: dict[str, Any] = {"cosigners": [slot.to_cbor() for slot in slots]}
    if threshold is not None:
        args["threshold"] = cosign.check_threshold(threshold, slots)
    if deadline_ms is not None:
        args["deadline"] = deadline_ms
    return args


def sign_args(of: int, digest: bytes) -> dict[str, Any]:
    """`evidence.sign` of co-signed deposit `of`, whose document has `digest`."""
    return {"of": evidence.check_of(of), "digest": evidence.check_digest(digest)}


def amend_args(of: int, digest: bytes, meta: dict[str, str] | None = None) -> dict[str, Any]:
    """`evidence.amend`: deposit `digest` as a new version of deposit `of` (a log
    index). Only the original depositor may amend; the chain checks that."""
    return {"of": evidence.check_of(of), **deposit_args(digest, meta)}


# --- membership (contracts/members.py) -----------------------------------------------------


def enrol_args(cert_der: bytes) -> dict[str, Any]:
    """`members.enrol` of a member certificate (DER), by an admin of its org."""
    return {"cert": cert_der}


def revoke_args(ca_fingerprint: bytes, serial: int) -> dict[str, Any]:
    """`members.revoke` of the certificate (CA fingerprint, serial)."""
    from tidechain.contracts import members  # x509 underneath: see contracts/registry.py

    serial = members.check_serial(serial)
    return {"ca": members.check_fingerprint(ca_fingerprint),
            "serial": serial.to_bytes(members.SERIAL_BYTES, "big")}


def add_ca_args(ca_der: bytes) -> dict[str, Any]:
    """`members.add_ca`: another CA certificate (DER) of the admin's organisation, the
    first step of a CA rotation."""
    return {"ca": ca_der}


def remove_ca_args(ca_fingerprint: bytes) -> dict[str, Any]:
    """`members.remove_ca` of the CA with this fingerprint (SHA-256 of its DER): the
    last step of a CA rotation; its members stop counting."""
    from tidechain.contracts import members  # x509 underneath: see contracts/registry.py

    return {"fingerprint": members.check_fingerprint(ca_fingerprint)}


# --- governance (contracts/governance.py) --------------------------------------------------


def propose_args(action: str, action_args: dict[str, Any],
                 effective_height: int = 0) -> dict[str, Any]:
    """`gov.propose` of `action` with `action_args`, to take effect at
    `effective_height` (0: the block after it passes). The chain checks the action."""
    if effective_height < 0:
        raise DecodeError("effective_height must not be negative")
    return {"action": action, "args": action_args, "effective_height": effective_height}


def vote_args(proposal: int, approve: bool) -> dict[str, Any]:
    """`gov.vote` on proposal `proposal` (its log index) for the signer's org."""
    if proposal < 0:
        raise DecodeError("proposal must be a log index")
    return {"proposal": proposal, "approve": bool(approve)}


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


# --- e-invoices (contracts/invoice) -------------------------------------------------------
# Each helper checks its arguments with the contract's own checks
# (`contracts.invoice.content`), so it raises the ContractError the chain would give.


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


def authorise_issuer_args(issuer: bytes, name: str, tax_id: str, quota: int
                          ) -> dict[str, Any]:
    """`invoice.authorise_issuer`: let `issuer` issue up to `quota` fen in total."""
    return {"issuer": invoice_content.check_key(issuer, "issuer"), "name": name,
            "tax_id": invoice_content.check_tax_id(tax_id), "quota": quota}


def suspend_issuer_args(issuer: bytes) -> dict[str, Any]:
    """`invoice.suspend_issuer`."""
    return {"issuer": invoice_content.check_key(issuer, "issuer")}


def set_quota_args(issuer: bytes, quota: int) -> dict[str, Any]:
    """`invoice.set_quota`."""
    return {"issuer": invoice_content.check_key(issuer, "issuer"), "quota": quota}


def issue_args(invoice: dict[str, Any], issuer: bytes, *, auditors: Sequence[bytes],
               code: bytes | None = None) -> dict[str, Any]:
    """`invoice.issue` of `invoice` (plain, from `invoice_args`), its content sealed to
    the `issuer` (its public key), the buyer and the tax authority's `auditors`
    (`Client.invoice_auditors`); a buyer named by USCC also through the claim `code`."""
    return sealing.sealed_invoice_args(invoice, issuer, auditors, code=code)


def issue_batch_args(invoices: list[dict[str, Any]], issuer: bytes, *,
                     auditors: Sequence[bytes],
                     codes: Sequence[bytes | None] | None = None) -> dict[str, Any]:
    """`invoice.issue_batch`: all of `invoices` (plain) or none, each sealed as by
    `issue_args`; `codes[i]` is the claim code of invoice i, if it needs one."""
    codes = list(codes) if codes is not None else [None] * len(invoices)
    return {"invoices": [sealing.sealed_invoice_args(invoice, issuer, auditors, code=code)
                         for invoice, code in zip(invoices, codes, strict=True)]}


def sealed_red_args(red: dict[str, Any], *, readers: Iterable[bytes]) -> dict[str, Any]:
    """`invoice.red_letter` (or, for a claimed or locked original,
    `invoice.request_reversal`) of `red` (plain, from `red_letter_args`), sealed to
    `readers` (`sealing.red_letter_readers` of the original's record)."""
    return sealing.sealed_red_args(red, readers)


def red_letter_method(confirm: bool) -> str:
    """`request_reversal` when the buyer side must confirm, else `red_letter`."""
    return "request_reversal" if confirm else "red_letter"


INVOICE_ACTIONS = ("claim", "submit", "lock", "unlock", "reimburse", "confirm_reversal")


def invoice_action_args(method: str, number: str, *, code: bytes | None = None,
                        employer: bytes | None = None, wrapped: bytes | None = None
                        ) -> dict[str, Any]:
    """A buyer's or employer's call on one invoice: `claim` (with `code` for a buyer
    named by USCC), `submit` (to `employer`), `lock`, `unlock`, `reimburse`, or
    `confirm_reversal` (`number` is then the original's). `wrapped` is the content key
    sealed to the new reader (`sealing.share_key`): the employer on `submit`, the
    claimer itself on a `claim` by code."""
    args: dict[str, Any]
    if method == "confirm_reversal":
        args = {"original": invoice_content.check_number(number, "original")}
    elif method in INVOICE_ACTIONS:
        args = {"number": invoice_content.check_number(number)}
    else:
        raise DecodeError(f"{method!r} is not an invoice action")
    if method == "claim" and code is not None:
        args["code"] = code
    if method in ("claim", "submit") and wrapped is not None:
        args["wrapped"] = wrapped
    if method == "submit":
        args["employer"] = invoice_content.check_key(employer, "employer")
    return args
