"""Who a caller is, from the credential it presented: a member certificate over mutual
TLS (the API's `api_tls`, node/api_tls.py).

A TLS handshake proves that the client holds the private key of the certificate it
presented, and OpenSSL checked the certificate chains to some organisation CA the
node trusts. That CA may have left the chain since (OpenSSL cannot forget an anchor),
and a handshake says nothing of enrolment: `certificate_member` names the member the
certificate is *enrolled* as, from the world state, or refuses with `BadCredential`.

Identification only. Whether that member may read what it asks for (revoked,
expired, its CA or organisation removed, its roles) is the caller's standing check,
made afterwards against the same state, exactly as for a signed request.

Pure: the state and the time come in as arguments.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519

from tidechain.contracts.members.contract import member_of, org, parse_fingerprint
from tidechain.core.errors import Rejected
from tidechain.core.limits import MAX_CERT_DER_BYTES
from tidechain.identity.certs import CertError, read_org_ca, verify_member_cert_with_ca
from tidechain.ledger.runtime import StateReader

__all__ = ["BadCredential", "certificate_member"]


class BadCredential(Rejected):
    """The credential names no member: not a member certificate, not enrolled, or not
    the certificate its key is enrolled with. 401: present another one, or none."""

    code = "bad_certificate"
    http_status = 401


def certificate_member(state: StateReader, cert_der: bytes, time_ms: int) -> bytes:
    """The Ed25519 public key of the member that `cert_der` (a verified TLS client
    certificate, DER) is enrolled as; `BadCredential` if it is none.

    The certificate must be exactly the enrolled one: the member record of its key
    names its serial and its CA's fingerprint, and its signature must verify with the
    CA certificate the chain holds under that fingerprint. Identification does not
    depend on `time_ms` (the handshake checked the validity period against the clock;
    the standing check that follows checks the record's against `time_ms`): a member
    whose certificate expired is identified, then refused by standing, with its reason.
    """
    cert = _parse(cert_der)
    public_key = _ed25519_key(cert)
    record = member_of(state, public_key)
    if record is None:
        raise BadCredential(f"no member is enrolled with the certificate's key "
                            f"{public_key.hex()[:16]}...")
    enrolled_serial = int.from_bytes(record["serial"], "big")
    serial = cert.serial_number
    if serial != enrolled_serial:
        raise BadCredential(f"certificate serial {serial} is not the one member "
                            f"{_label(record)} is enrolled with ({enrolled_serial}): "
                            "enrol the renewed certificate first")
    ca_der = _enrolled_ca(state, record)
    try:
        # As of the enrolled certificate's start, so that the validity period plays no
        # part; a certificate from another CA, or not by the book, fails here.
        member = verify_member_cert_with_ca(cert_der, read_org_ca(ca_der), record["not_before"])
    except CertError as exc:
        raise BadCredential(f"not the certificate member {_label(record)} is enrolled "
                            f"with: {exc.reason}") from None
    if (member.not_before_ms, member.not_after_ms) != (record["not_before"],
                                                       record["not_after"]):
        raise BadCredential(f"not the certificate member {_label(record)} is enrolled "
                            "with: its validity period differs")
    return public_key


def _parse(cert_der: bytes) -> x509.Certificate:
    if len(cert_der) > MAX_CERT_DER_BYTES:
        raise BadCredential(f"certificate is {len(cert_der)} bytes; the limit is "
                            f"{MAX_CERT_DER_BYTES}")
    try:
        return x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise BadCredential(f"not a DER X.509 certificate: {exc}") from None


def _ed25519_key(cert: x509.Certificate) -> bytes:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise BadCredential(f"certificate has a key we cannot read: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadCredential(f"certificate certifies a {type(key).__name__}; a member's "
                            "key is Ed25519")
    return key.public_bytes_raw()


def _enrolled_ca(state: StateReader, record: dict[str, Any]) -> bytes:
    """The CA certificate (DER) the member was enrolled under, as the chain holds it in
    the organisation's record. Gone when that CA or the organisation was removed: the
    certificate can then not be checked, and its member has no standing anyway."""
    organisation = org(state, record["org"])
    fingerprint = bytes(record["ca"])
    for der in [] if organisation is None else organisation["cas"]:
        if parse_fingerprint(der) == fingerprint:
            return bytes(der)
    raise BadCredential(f"the CA {fingerprint.hex()[:16]}... that issued member "
                        f"{_label(record)}'s certificate is no longer registered on chain")


def _label(record: dict[str, Any]) -> str:
    return f"{record['org']}/{record['name']}"
