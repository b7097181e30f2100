"""Sealing and opening invoice content (ADR 0012; the stored shape is
contracts/invoice/envelope.py).

* The content (buyer, lines, figures, remark, optional source) gets a random 16-byte
  salt and is CBOR-encoded, then encrypted once with XChaCha20-Poly1305 under a fresh
  32-byte content key; the associated data binds it to the invoice number.
* The content key is wrapped to each reader by a libsodium sealed box to the X25519
  form of the reader's Ed25519 member key, so members need no second key pair.
* A buyer named by name and USCC (no member key yet) gets the content key wrapped
  under a key derived from the claim code handed over at the sale; when it claims, it
  re-wraps the key to its member key.
* Opening checks everything the chain cannot: the commitment, the line arithmetic
  (the same checks `content.py` applied when sealing) and that the content's total is
  the public total the chain enforced quotas and reversals on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

from tidechain.contracts.invoice import content as invoice_content
from tidechain.contracts.invoice import envelope
from tidechain.core import cbor
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import DecodeError, Rejected

SALT_BYTES = 16
CODE_KEY_TAG = b"tidechain/invoice-claim-key/v1\n"
CODE_NONCE_TAG = b"tidechain/invoice-claim-nonce/v1\n"
RandomBytes = Callable[[int], bytes]


class NotAReader(Rejected):
    """The key (or claim code) given cannot open this invoice: it is not sealed to it."""

    code = "not_reader"


class BrokenSeal(Rejected):
    """The sealed content does not open to what the public record says: a wrong key
    wrap, a commitment that does not match, or figures that do not add up."""

    code = "broken_seal"


# --- keys ---------------------------------------------------------------------------------


def _x25519_public(member_key: bytes) -> bytes:
    try:
        converted: bytes = sodium.crypto_sign_ed25519_pk_to_curve25519(member_key)
    except nacl.exceptions.RuntimeError:
        raise DecodeError("not an Ed25519 public key that can receive content") from None
    return converted


def _x25519_keypair(key: SigningKey) -> tuple[bytes, bytes]:
    _, secret = sodium.crypto_sign_seed_keypair(key.seed)
    return (_x25519_public(key.public_key),
            sodium.crypto_sign_ed25519_sk_to_curve25519(secret))


def wrap_key(content_key: bytes, reader: bytes) -> bytes:
    """The content key sealed to one member key."""
    wrapped: bytes = sodium.crypto_box_seal(content_key, _x25519_public(reader))
    return wrapped


def _code_key(code: bytes) -> bytes:
    # Not the claim digest itself (SHA-256 of the code, public on chain): another tag.
    return sha256(CODE_KEY_TAG + code)


def _code_nonce(number: str) -> bytes:
    # One code seals one invoice's key, so a nonce derived from the number is unique.
    return sha256(CODE_NONCE_TAG + number.encode("ascii"))[:envelope.NONCE_BYTES]


def _aead_encrypt(plain: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes:
    sealed: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, aad, nonce, key)
    return sealed


def _aead_decrypt(sealed: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes:
    try:
        plain: bytes = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce,
                                                                         key)
    except nacl.exceptions.CryptoError:
        raise BrokenSeal("the content does not decrypt with the wrapped key") from None
    return plain


# --- sealing --------------------------------------------------------------------------------


def seal_content(number: str, content: dict[str, Any], readers: Iterable[bytes], *,
                 code: bytes | None = None, random: RandomBytes = os.urandom
                 ) -> dict[str, Any]:
    """The envelope of checked `content` for invoice `number`, readable by `readers`
    (member keys) and, with `code`, by whoever holds the claim code."""
    salted = {**content, "salt": random(SALT_BYTES)}
    content_key = random(envelope.CONTENT_KEY_BYTES)
    nonce = random(envelope.NONCE_BYTES)
    sealed: dict[str, Any] = {
        "ciphertext": _aead_encrypt(cbor.encode(salted), envelope.associated_data(number),
                                    nonce, content_key),
        "nonce": nonce,
        "commitment": envelope.commitment(salted),
        "readers": [[key, wrap_key(content_key, key)] for key in sorted(set(readers))],
    }
    if code is not None:
        sealed["code_wrap"] = _aead_encrypt(content_key, envelope.associated_data(number),
                                            _code_nonce(number), _code_key(code))
    return envelope.check_envelope(sealed)


def sealed_invoice_args(plain: dict[str, Any], issuer: bytes, auditors: Iterable[bytes], *,
                        code: bytes | None = None, random: RandomBytes = os.urandom
                        ) -> dict[str, Any]:
    """`invoice.issue` arguments from plain ones (txbuilder.invoice_args): the content
    sealed to the issuer, the buyer's member key and the audit keys; a buyer named by
    name and USCC also through the claim `code` (whose SHA-256 is the claim digest)."""
    checked = invoice_content.check_blue(plain)
    number, content, digest = checked["number"], checked["content"], checked["claim_digest"]
    holder = content["buyer"].get("key")
    readers = {issuer, *auditors}
    args: dict[str, Any] = {"number": number, "total": content["total"]}
    if holder is not None:
        readers.add(holder)
        args["holder"] = holder
        code = None
    else:
        if code is None or sha256(code) != digest:
            raise DecodeError("a buyer named by USCC needs the claim code whose SHA-256 is "
                              "the invoice's claim digest")
        args["claim_digest"] = digest
    args["sealed"] = seal_content(number, content, readers, code=code, random=random)
    return envelope.check_sealed_blue(args)


def sealed_red_args(plain: dict[str, Any], readers: Iterable[bytes], *,
                    random: RandomBytes = os.urandom) -> dict[str, Any]:
    """`invoice.red_letter` / `request_reversal` arguments from plain ones
    (txbuilder.red_letter_args), sealed to `readers` (see `red_letter_readers`)."""
    checked = invoice_content.check_red(plain)
    args = {"number": checked["number"], "original": checked["original"],
            "reason": checked["content"]["reason"], "total": checked["content"]["total"],
            "sealed": seal_content(checked["number"], checked["content"], readers,
                                   random=random)}
    return envelope.check_sealed_red(args)


def red_letter_readers(original: dict[str, Any], auditors: Iterable[bytes]) -> set[bytes]:
    """Who a red-letter invoice on `original` (its record) must be sealed to: the
    contract's rule, `contract.red_readers`, from the client side."""
    record = record_from_json(original)
    parties = {record.get("issuer"), record.get("holder"), record.get("locked_by")}
    return {key for key in parties if isinstance(key, bytes)} | set(auditors)


# --- opening ----------------------------------------------------------------------------


def content_key(record: dict[str, Any], *, key: SigningKey | None = None,
                code: bytes | None = None) -> bytes:
    """The content key of an invoice record, unwrapped with a member key if it is a
    reader, else with the claim code."""
    record = record_from_json(record)
    sealed, number = record["sealed"], record["number"]
    if key is not None:
        for reader, wrapped in sealed["readers"]:
            if reader == key.public_key:
                public, secret = _x25519_keypair(key)
                try:
                    opened: bytes = sodium.crypto_box_seal_open(wrapped, public, secret)
                except nacl.exceptions.CryptoError:
                    raise BrokenSeal(f"invoice {number}: the content key wrapped to this "
                                     "member does not open") from None
                return opened
        if code is None:
            raise NotAReader(f"invoice {number} is not sealed to member key "
                             f"{key.public_key.hex()[:16]}...: only its issuer, buyer, "
                             "reimbursing employer and the tax authority can read it")
    if code is not None and "code_wrap" in sealed:
        if sha256(code) != record.get("claim_digest"):
            raise NotAReader(f"wrong claim code for invoice {number}")
        return _aead_decrypt(sealed["code_wrap"], envelope.associated_data(number),
                             _code_nonce(number), _code_key(code))
    raise NotAReader(f"invoice {number}: give a reader's member key or the claim code")


def open_content(record: dict[str, Any], *, key: SigningKey | None = None,
                 code: bytes | None = None) -> dict[str, Any]:
    """The checked content of an invoice record (as stored, or as the API returns it)."""
    record = record_from_json(record)
    number, sealed = record["number"], record["sealed"]
    plain = _aead_decrypt(sealed["ciphertext"], envelope.associated_data(number),
                          sealed["nonce"], content_key(record, key=key, code=code))
    try:
        content = cbor.decode(plain)
    except Rejected:
        raise BrokenSeal(f"invoice {number}: the content is not CBOR") from None
    if not isinstance(content, dict) or envelope.commitment(content) != sealed["commitment"]:
        raise BrokenSeal(f"invoice {number}: the content does not match its commitment")
    _check_opened(record, content)
    return content


def _check_opened(record: dict[str, Any], content: dict[str, Any]) -> None:
    """The figures add up (content.py's checks) and agree with the public record."""
    fields = {k: v for k, v in content.items() if k != "salt"}
    try:
        if record["kind"] == "red":
            invoice_content.check_red({**fields, "number": record["number"],
                                       "original": record["original"]})
        else:
            digest = record.get("claim_digest")
            invoice_content.check_blue({**fields, "number": record["number"],
                                        **({"claim_digest": digest} if digest else {})})
    except Rejected as exc:
        raise BrokenSeal(f"invoice {record['number']}: sealed content refused: "
                         f"{exc.reason}") from None
    if content.get("total") != record["total"]:
        raise BrokenSeal(f"invoice {record['number']}: sealed total {content.get('total')} "
                         f"is not the public total {record['total']}")
    if record["kind"] == "red" and content.get("reason") != record.get("reason"):
        raise BrokenSeal(f"invoice {record['number']}: sealed reason {content.get('reason')} "
                         f"is not the public reason {record.get('reason')}")


def share_key(record: dict[str, Any], key: SigningKey, to: bytes, *,
              code: bytes | None = None) -> bytes:
    """The content key, opened with `key` (or the claim `code`) and wrapped to `to`:
    what a buyer's `submit` gives its employer, and its own `claim` by code."""
    return wrap_key(content_key(record, key=key, code=code), to)


def record_from_json(record: dict[str, Any]) -> dict[str, Any]:
    """An invoice record with the byte fields as bytes, whether it came from state
    (bytes) or from the API (lowercase hex)."""
    def raw(value: Any) -> Any:
        return bytes.fromhex(value) if isinstance(value, str) else value

    sealed = dict(record["sealed"])
    for field in ("ciphertext", "nonce", "commitment", "code_wrap"):
        if field in sealed:
            sealed[field] = raw(sealed[field])
    sealed["readers"] = [[raw(k), raw(w)] for k, w in sealed["readers"]]
    out = {**record, "sealed": sealed}
    for field in ("issuer", "holder", "locked_by", "submitted_to", "claim_digest"):
        if out.get(field) is not None:
            out[field] = raw(out[field])
    return out
