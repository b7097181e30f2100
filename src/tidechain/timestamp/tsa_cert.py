"""The time-stamping authority's key and certificate, issued by an organisation's CA.

Profile (RFC 3161 section 2.3 and OpenSSL's `check_purpose_timestamp_sign`, which
`openssl ts -verify` applies to the signer):

* ECDSA P-256: OpenSSL 3.0 refuses Ed25519 TSA keys, and every RFC 3161 client verifies
  P-256 with SHA-256. The organisation CA that signs it stays Ed25519 (identity/certs.py).
* extendedKeyUsage = timeStamping and nothing else, critical: RFC 3161 says "MUST";
  OpenSSL and rfc3161-client refuse a TSA certificate without it.
* keyUsage digitalSignature + nonRepudiation, critical (OpenSSL allows only those two);
  basicConstraints CA:false, critical; subject and authority key identifiers.
* Subject CN "<name> TSA", O = the organisation's id (as member certificates have it).
* Valid from an hour before `now_ms` (clock skew) for `days`, never beyond the CA.

Issuing draws a fresh key and a random serial; everything else is a function of the
arguments (time comes in as `now_ms`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tidechain.core.errors import Rejected
from tidechain.identity.certs import from_pem, parse_org_ca, private_key_from_pem
from tidechain.timestamp.rfc3161 import TsaSigner, ecdsa_algorithm

TSA_VALIDITY_DAYS = 365
"""A TSA key is rotated yearly; tokens it signed stay verifiable (validity is checked at
genTime), so a short life only limits what a stolen key can back-date."""

CLOCK_SKEW_ALLOWANCE_MS = 3_600_000
"""Valid from an hour before `now_ms`, as node certificates (node/tls.py), so a verifier
whose clock lags a little still accepts a certificate issued moments ago."""

MAX_TSA_NAME_CHARS = 60
"""X.509 caps a CN at 64 characters (RFC 5280 ub-common-name); " TSA" takes four."""

MIN_RSA_BITS = 2048
"""Below this an RSA key is breakable well within a token's lifetime (NIST SP 800-57)."""

MAX_PEM_BYTES = 64 * 1024
"""A key or certificate chain file; anything bigger is not one of ours."""

CN_SUFFIX = " TSA"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ALLOWED_KEY_USAGE = frozenset({"digital_signature", "content_commitment"})
"""What OpenSSL lets a TSA certificate's keyUsage hold (content_commitment is
nonRepudiation); anything else makes `openssl ts -verify` refuse the signer."""
_KEY_USAGE_FLAGS = ("digital_signature", "content_commitment", "key_encipherment",
                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


class TsaCertError(Rejected):
    """TSA certificate material we cannot issue or sign with."""

    code = "tsa_cert"


def issue_tsa_certificate(ca_cert_pem: bytes, ca_key_pem: bytes, name: str, now_ms: int, *,
                          days: int = TSA_VALIDITY_DAYS) -> tuple[bytes, bytes]:
    """A fresh ECDSA P-256 key and its TSA certificate, signed by the organisation CA
    (`ca.pem` and `ca.key` of `tide org init`). Returns (certificate PEM, key PEM)."""
    _require_tsa_name(name)
    if days < 1:
        raise TsaCertError("a TSA certificate must be valid for at least one day")
    ca_der = from_pem(ca_cert_pem)
    ca = parse_org_ca(ca_der, now_ms)  # Ed25519, a CA, self-signed, valid now
    ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(private_key_from_pem(ca_key_pem))
    if ca_key.public_key().public_bytes_raw() != ca.public_key:
        raise TsaCertError("the CA key does not match the CA certificate")
    ca_cert = x509.load_der_x509_certificate(ca_der)
    not_before_ms = max(now_ms - CLOCK_SKEW_ALLOWANCE_MS, ca.not_before_ms)
    not_after_ms = min(now_ms + days * 86_400_000, ca.not_after_ms)
    if not_after_ms // 1000 <= not_before_ms // 1000:
        raise TsaCertError("the CA's validity leaves no time for a TSA certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, name + CN_SUFFIX),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.org_id),
        ]))
        .issuer_name(ca_cert.subject).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_from_ms(not_before_ms)).not_valid_after(_from_ms(not_after_ms))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_tsa_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, None)  # Ed25519 signs the message itself: no separate hash
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def load_tsa_signer(cert_pem: bytes, key_pem: bytes, chain_pems: Sequence[bytes] = ()
                    ) -> TsaSigner:
    """The signer `granted_response` needs: the TSA certificate (PEM), its private key
    (unencrypted PKCS#8 or traditional PEM: ECDSA P-256 or RSA of 2048 bits or more)
    and the certificates above it (PEM files, each holding one or more). Refuses a
    certificate that clients would refuse: no critical timeStamping-only EKU, or a
    keyUsage beyond digitalSignature and nonRepudiation."""
    cert = _load_cert(cert_pem)
    _require_timestamping_eku(cert)
    _require_signing_key_usage(cert)
    key = _load_key(key_pem)
    if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    ) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TsaCertError("the private key does not match the TSA certificate")
    chain: list[bytes] = []
    for pem in chain_pems:
        if len(pem) > MAX_PEM_BYTES:
            raise TsaCertError(f"a chain file is {len(pem)} bytes; the limit is "
                               f"{MAX_PEM_BYTES}")
        try:
            chain += [c.public_bytes(serialization.Encoding.DER)
                      for c in x509.load_pem_x509_certificates(pem)]
        except ValueError as exc:
            raise TsaCertError(f"chain: not PEM certificates: {exc}") from None
    return TsaSigner(key=key, cert_der=cert.public_bytes(serialization.Encoding.DER),
                     chain_ders=tuple(chain))


def _require_tsa_name(name: str) -> None:
    if not 0 < len(name.encode()) <= MAX_TSA_NAME_CHARS:
        raise TsaCertError(f"TSA name must be 1-{MAX_TSA_NAME_CHARS} bytes in UTF-8")
    if not name.isprintable() or name != name.strip():
        raise TsaCertError(f"TSA name {name!r} has control characters or surrounding blanks")


def _require_timestamping_eku(cert: x509.Certificate) -> None:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TsaCertError("TSA certificate has no extendedKeyUsage (RFC 3161 2.3 requires "
                           "a critical timeStamping-only one)") from None
    except ValueError as exc:
        raise TsaCertError(f"TSA certificate extensions do not decode: {exc}") from None
    if not eku.critical:
        raise TsaCertError("TSA certificate's extendedKeyUsage is not critical")
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TsaCertError("TSA certificate's extendedKeyUsage must be timeStamping only, "
                           f"got {[oid.dotted_string for oid in eku.value]}")


def _require_signing_key_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # optional: OpenSSL checks keyUsage only when it is present
    granted = {flag for flag in _KEY_USAGE_FLAGS if getattr(usage, flag)}
    if not granted & _ALLOWED_KEY_USAGE or granted - _ALLOWED_KEY_USAGE:
        raise TsaCertError("TSA certificate's keyUsage must be digitalSignature and/or "
                           f"nonRepudiation only, got {sorted(granted)}")


def _load_cert(pem: bytes) -> x509.Certificate:
    if len(pem) > MAX_PEM_BYTES:
        raise TsaCertError(f"certificate file is {len(pem)} bytes; the limit is {MAX_PEM_BYTES}")
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TsaCertError(f"not a PEM certificate: {exc}") from None


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if len(pem) > MAX_PEM_BYTES:
        raise TsaCertError(f"key file is {len(pem)} bytes; the limit is {MAX_PEM_BYTES}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TsaCertError(f"not an unencrypted PEM private key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        try:
            ecdsa_algorithm()
        except UnsupportedAlgorithm as exc:
            raise TsaCertError(f"cannot sign time stamps here: {exc}") from None
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise TsaCertError(f"TSA key must be ECDSA P-256 or RSA of {MIN_RSA_BITS} bits or more; "
                       f"got {type(key).__name__}")


def _tsa_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=True, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def _from_ms(ms: int) -> datetime.datetime:
    """X.509 times are whole seconds: round down, as identity/certs.py does."""
    return _EPOCH + datetime.timedelta(seconds=ms // 1000)
