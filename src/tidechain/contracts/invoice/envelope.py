"""Sealed invoice content (ADR 0012): what the chain stores instead of the content.

An invoice's content (buyer, lines, figures, remark, a random salt) is one CBOR map,
encrypted once under a fresh 32-byte content key with XChaCha20-Poly1305; the key is
wrapped to each authorised reader's Ed25519 member key (converted to X25519) by a
libsodium sealed box. The chain keeps, beside the public fields its rules need, only:

* ``ciphertext``, ``nonce`` (24 bytes): the encrypted content;
* ``commitment`` (32 bytes): SHA-256 over a domain tag and the content's CBOR, salt
  included, so a reader can prove what it decrypted and nobody can test guesses;
* ``readers``: ``[[member key, wrapped content key], ...]``, checked against who must
  be able to read (issuer, titled buyer, tax authority's audit keys, and later the
  employer the buyer submits to);
* ``code_wrap`` (optional): the content key under a key derived from the claim code,
  for a buyer named by name and USCC who is not a member yet.

Nothing here encrypts or decrypts (client/sealing.py does); the contract only checks
shapes and the set of readers, because it cannot see inside.
"""

from __future__ import annotations

from typing import Any

from tidechain.core import cbor
from tidechain.core.crypto import sha256

from .content import (
    DIGEST_BYTES,
    KEY_BYTES,
    MAX_AMOUNT,
    REASONS,
    bad,
    check_int,
    check_key,
    check_keys,
    check_number,
)

NONCE_BYTES = 24
COMMITMENT_BYTES = 32
CONTENT_KEY_BYTES = 32
WRAPPED_KEY_BYTES = CONTENT_KEY_BYTES + 48
"""A sealed box adds an ephemeral X25519 key (32) and a Poly1305 tag (16)."""
CODE_WRAP_BYTES = CONTENT_KEY_BYTES + 16
"""XChaCha20-Poly1305 of the content key (its nonce is derived, see client/sealing.py)."""
MAX_READERS = 8
"""Issuer, buyer, up to four audit keys, and employers the buyer submitted to."""
MAX_AUDITORS = 4
MAX_CIPHERTEXT_BYTES = 6 * 1024
"""Sixteen lines of 256-byte names, the buyer and a remark stay well inside this."""

COMMITMENT_TAG = b"tidechain/invoice-content/v1\n"
AAD_TAG = b"tidechain/invoice/v1\n"
ENVELOPE_FIELDS = {"ciphertext", "nonce", "commitment", "readers", "code_wrap"}


def commitment(content: dict[str, Any]) -> bytes:
    """The commitment to a content map (which carries its own random salt)."""
    return sha256(COMMITMENT_TAG + cbor.encode(content))


def associated_data(number: str) -> bytes:
    """Binds a ciphertext to its invoice number: content cannot be moved to another."""
    return AAD_TAG + number.encode("ascii")


def _check_bytes(value: Any, name: str, low: int, high: int) -> bytes:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        size = str(low) if low == high else f"{low}..{high}"
        raise bad(f"'{name}' must be {size} bytes", "bad_envelope")
    return value


def check_envelope(value: Any) -> dict[str, Any]:
    """The sealed content's shape; readers are distinct keys, at most MAX_READERS."""
    envelope = check_keys(value, ENVELOPE_FIELDS, "'sealed'")
    readers = envelope.get("readers")
    if not isinstance(readers, list) or not 1 <= len(readers) <= MAX_READERS:
        raise bad(f"'sealed.readers' must list 1..{MAX_READERS} readers", "bad_envelope")
    checked = [check_reader(reader) for reader in readers]
    if len({key for key, _ in checked}) != len(checked):
        raise bad("'sealed.readers' names a key twice", "bad_envelope")
    out = {
        "ciphertext": _check_bytes(envelope.get("ciphertext"), "sealed.ciphertext", 16,
                                   MAX_CIPHERTEXT_BYTES),
        "nonce": _check_bytes(envelope.get("nonce"), "sealed.nonce", NONCE_BYTES, NONCE_BYTES),
        "commitment": _check_bytes(envelope.get("commitment"), "sealed.commitment",
                                   COMMITMENT_BYTES, COMMITMENT_BYTES),
        "readers": [[key, wrapped] for key, wrapped in checked],
    }
    if envelope.get("code_wrap") is not None:
        out["code_wrap"] = _check_bytes(envelope["code_wrap"], "sealed.code_wrap",
                                        CODE_WRAP_BYTES, CODE_WRAP_BYTES)
    return out


def check_reader(value: Any) -> tuple[bytes, bytes]:
    """One `[member key, wrapped content key]` pair."""
    if not isinstance(value, list) or len(value) != 2:
        raise bad("a reader is [member key, wrapped content key]", "bad_envelope")
    key = _check_bytes(value[0], "reader key", KEY_BYTES, KEY_BYTES)
    wrapped = _check_bytes(value[1], "wrapped content key", WRAPPED_KEY_BYTES,
                           WRAPPED_KEY_BYTES)
    return key, wrapped


def reader_keys(envelope: dict[str, Any]) -> set[bytes]:
    return {bytes(key) for key, _ in envelope["readers"]}


def require_readers(envelope: dict[str, Any], required: set[bytes], what: str) -> None:
    """The readers must be exactly `required`: a missing one could not read what it is
    entitled to, an extra one could read what it is not."""
    present = reader_keys(envelope)
    if present != required:
        missing, extra = len(required - present), len(present - required)
        raise bad(f"{what}: its content must be sealed to exactly the issuer, the titled "
                  f"buyer, the employer it is submitted to and the tax authority's audit "
                  f"keys ({missing} missing, {extra} not entitled)", "wrong_readers")


# --- the public arguments of sealed calls ------------------------------------------------

SEALED_BLUE_FIELDS = {"number", "total", "holder", "claim_digest", "sealed"}
SEALED_RED_FIELDS = {"number", "original", "reason", "total", "sealed"}


def _check_total(value: Any) -> int:
    total = check_int(value, "total", 0, MAX_AMOUNT)
    if total == 0:
        raise bad("an invoice's total must be positive", "bad_amount")
    return total


def check_sealed_blue(args: Any) -> dict[str, Any]:
    """`invoice.issue` arguments: the number, the public total (quota, reversals and
    statistics need it), the titled buyer's key or the claim digest, the sealed content."""
    invoice = check_keys(args, SEALED_BLUE_FIELDS, "the invoice")
    holder = invoice.get("holder")
    sealed = check_envelope(invoice.get("sealed"))
    digest = invoice.get("claim_digest")
    if holder is not None:
        holder = check_key(holder, "holder")
        if digest is not None or "code_wrap" in sealed:
            raise bad("'claim_digest' and 'sealed.code_wrap' are only for a buyer named "
                      "without a member key")
    elif not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES \
            or "code_wrap" not in sealed:
        raise bad("a buyer without a member key needs a 32-byte 'claim_digest' (SHA-256 "
                  "of the claim code handed over at the sale) and 'sealed.code_wrap'")
    return {"number": check_number(invoice.get("number")),
            "total": _check_total(invoice.get("total")), "holder": holder,
            "claim_digest": digest, "sealed": sealed}


def check_sealed_red(args: Any) -> dict[str, Any]:
    """`invoice.red_letter` / `request_reversal` arguments: numbers, the public reason
    and reversed total, the sealed reversed lines."""
    red = check_keys(args, SEALED_RED_FIELDS, "the red-letter invoice")
    reason = red.get("reason")
    if reason not in REASONS:
        raise bad(f"'reason' must be one of {', '.join(REASONS)}")
    sealed = check_envelope(red.get("sealed"))
    if "code_wrap" in sealed:
        raise bad("a red-letter invoice is sealed to members only: no 'sealed.code_wrap'")
    return {"number": check_number(red.get("number")),
            "original": check_number(red.get("original"), "original"), "reason": reason,
            "total": _check_total(red.get("total")), "sealed": sealed}
