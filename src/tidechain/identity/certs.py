"""X.509 certificates for consortium members: an organisation's CA and its members.

Profile (docs/identity.md has the full table):

* Org CA: self-signed, Ed25519; subject CN "<org id> CA", O = legal name,
  organizationIdentifier (2.5.4.97) = unified social credit code; basicConstraints
  CA=true pathLen=0 and keyUsage keyCertSign+cRLSign, both critical; a subject key id.
* Member: issued by the org CA, Ed25519 (the very key that signs the member's
  transactions); subject CN = member name, O = org id, one OU per role; basicConstraints
  CA=false and keyUsage digitalSignature, both critical; subject and authority key ids.

Everything here is a function of its arguments: time comes in as milliseconds since
the epoch (the chain's block time), no trust store or system clock is consulted, and
Ed25519 signing is deterministic, so the same inputs always give the same DER. That is
what lets contract code on every validator verify a certificate and agree.

X.509 times are whole seconds. Requested times are rounded down to the second: a
certificate is valid at the instant it was asked to start from and never past the end
it was asked for. It is valid at `at_ms` iff notBefore <= at_ms <= notAfter (RFC 5280
makes both ends inclusive), comparing in milliseconds.

This module imports `datetime` only because cryptography's builder and accessors
speak `datetime`; it converts with explicit UTC and never asks for the current time.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from tidechain.core import crypto
from tidechain.core.errors import BadSignature, Rejected, invariant
from tidechain.core.limits import MAX_CERT_DER_BYTES
from tidechain.identity.roles import Role, UnknownRole, parse_role
from tidechain.identity.uscc import validate_uscc

_MAX_PEM_BYTES = 2 * MAX_CERT_DER_BYTES
"""Base64 grows DER by 4/3, plus line breaks and the armour lines."""

MS_PER_DAY = 86_400_000

_MAX_TIME_MS = 253_402_300_799_000
"""9999-12-31T23:59:59Z, the last instant an X.509 GeneralizedTime can state."""

_SERIAL_LIMIT = 1 << 159
"""RFC 5280 4.1.2.2: a positive serial of at most 20 octets (cryptography's bound)."""

_MAX_NAME_CHARS = 64
"""RFC 5280 upper bounds for commonName and organizationName (ub-common-name etc.)."""

_ORG_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
"""An org id is a short lower-case name ("acme", "sz-tax"): it appears in member
certificates, key names and permission rules, so it stays plain ASCII."""

_CA_CN_SUFFIX = " CA"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ONE_SECOND = datetime.timedelta(seconds=1)
_CA_NAME_OIDS = frozenset({NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME,
                           NameOID.ORGANIZATION_IDENTIFIER})
_MEMBER_NAME_OIDS = frozenset({NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME,
                               NameOID.ORGANIZATIONAL_UNIT_NAME})
_ATTRIBUTE_NAMES = {NameOID.COMMON_NAME: "commonName (CN)",
                    NameOID.ORGANIZATION_NAME: "organizationName (O)",
                    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier"}
_E = TypeVar("_E", bound=x509.ExtensionType)
_UNDERSTOOD_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})


# --- errors ------------------------------------------------------------------------
class CertError(Rejected):
    """A certificate (or a request to make one) was refused."""

    code = "bad_certificate"


class CertTooLarge(CertError):
    code = "cert_too_large"
    http_status = 413


class CertMalformed(CertError):
    """Not DER, not X.509, not canonical, or not PEM."""

    code = "cert_malformed"


class CertUntrusted(CertError):
    """Not issued by this CA: issuer name, signature algorithm or signature wrong."""

    code = "cert_untrusted"


class CertExpired(CertError):
    code = "cert_expired"


class CertNotYetValid(CertError):
    code = "cert_not_yet_valid"


class CertBadKey(CertError):
    """The certified key is not an Ed25519 key."""

    code = "cert_bad_key"


class CertNotCa(CertError):
    """The certificate offered as an organisation's CA may not issue certificates."""

    code = "cert_not_ca"


class CertBadRoles(CertError):
    """A member certificate with no role, a repeated role or an unknown one."""

    code = "cert_bad_roles"


class CertProfileError(CertError):
    """Well-formed X.509 that does not follow tidechain's certificate profile."""

    code = "cert_profile"


class CertRequestError(CertError):
    """Bad arguments for making a certificate (names, times, serial, keys)."""

    code = "cert_bad_request"


class BadKeyFile(Rejected):
    code = "bad_key_file"


# --- results -----------------------------------------------------------------------
@dataclass(frozen=True)
class OrgCa:
    """A verified organisation CA certificate."""

    org_id: str
    legal_name: str
    uscc: str
    public_key: bytes
    serial: int
    not_before_ms: int
    not_after_ms: int
    fingerprint: bytes
    """SHA-256 of the CA certificate's DER: how the chain names this CA."""
    subject_der: bytes = field(repr=False)
    """The DER of the CA's subject name, which members' issuer names must equal."""


@dataclass(frozen=True)
class Member:
    """A verified member certificate."""

    name: str
    org_id: str
    roles: frozenset[Role]
    public_key: bytes
    serial: int
    not_before_ms: int
    not_after_ms: int
    ca_fingerprint: bytes


# --- making certificates -------------------------------------------------------------
def make_org_ca(org_id: str, legal_name: str, uscc: str, ca_key_seed: bytes,
                not_before_ms: int, not_after_ms: int, serial: int) -> bytes:
    """A self-signed organisation CA certificate (DER) for the Ed25519 key `ca_key_seed`.

    `uscc` is validated and normalised (BadUscc otherwise); other bad arguments raise
    CertRequestError."""
    _require_org_id(org_id, CertRequestError)
    _require_name_text("legal name", legal_name, CertRequestError)
    code = validate_uscc(uscc)
    key = _private_key(ca_key_seed)
    not_before, not_after = _validity_for_request(not_before_ms, not_after_ms)
    _require_serial(serial)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, org_id + _CA_CN_SUFFIX),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, legal_name),
        x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, code),
    ])
    builder = (
        _base_builder(subject, subject, key.public_key(), serial, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
    )
    return _sign(builder, key)


def issue_member_cert(ca_cert_der: bytes, ca_key_seed: bytes, member_name: str,
                      member_public_key: bytes, roles: Iterable[Role],
                      not_before_ms: int, not_after_ms: int, serial: int) -> bytes:
    """A member certificate (DER) binding `member_public_key` (raw Ed25519, 32 bytes) to
    `member_name` and `roles`, signed by the CA whose seed is `ca_key_seed`.

    The CA must be valid when the member certificate starts and the member certificate
    may not outlive it."""
    _require_name_text("member name", member_name, CertRequestError)
    role_set = frozenset(parse_role(str(role)) for role in roles)
    if not role_set:
        raise CertRequestError("a member needs at least one role")
    if len(member_public_key) != crypto.PUBLIC_KEY_BYTES:
        raise CertRequestError(f"member public key must be {crypto.PUBLIC_KEY_BYTES} raw "
                               f"Ed25519 bytes, got {len(member_public_key)}")
    not_before, not_after = _validity_for_request(not_before_ms, not_after_ms)
    _require_serial(serial)
    ca_cert = _load(ca_cert_der, "CA certificate")
    ca = _org_ca_from(ca_cert, ca_cert_der)
    _require_valid_at("CA certificate", ca.not_before_ms, ca.not_after_ms, _to_ms(not_before))
    if _to_ms(not_after) > ca.not_after_ms:
        raise CertRequestError(f"member certificate would end at {_iso(_to_ms(not_after))}, "
                               f"after its CA ({_iso(ca.not_after_ms)})")
    key = _private_key(ca_key_seed)
    if key.public_key().public_bytes_raw() != ca.public_key:
        raise CertRequestError("the CA key does not match the CA certificate")
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, member_name),
         x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca.org_id)]
        + [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value)
           for role in sorted(role_set, key=lambda r: r.value)]
    )
    member_key = ed25519.Ed25519PublicKey.from_public_bytes(member_public_key)
    builder = (
        _base_builder(subject, ca_cert.subject, member_key, serial, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
    )
    return _sign(builder, key)


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key: ed25519.Ed25519PublicKey,
                  serial: int, not_before: datetime.datetime,
                  not_after: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def _sign(builder: x509.CertificateBuilder, key: ed25519.Ed25519PrivateKey) -> bytes:
    der = builder.sign(key, None).public_bytes(serialization.Encoding.DER)
    invariant(len(der) <= MAX_CERT_DER_BYTES, f"we made a {len(der)}-byte certificate")
    return der


def _private_key(seed: bytes) -> ed25519.Ed25519PrivateKey:
    if len(seed) != crypto.SEED_BYTES:
        raise CertRequestError(f"Ed25519 key seed must be {crypto.SEED_BYTES} bytes")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def _validity_for_request(not_before_ms: int,
                          not_after_ms: int) -> tuple[datetime.datetime, datetime.datetime]:
    for label, value in (("not_before_ms", not_before_ms), ("not_after_ms", not_after_ms)):
        if not 0 <= value <= _MAX_TIME_MS:
            raise CertRequestError(f"{label} must be between 0 and {_MAX_TIME_MS}, got {value}")
    not_before_s, not_after_s = not_before_ms // 1000, not_after_ms // 1000
    if not_after_s <= not_before_s:
        raise CertRequestError("not_after_ms must be at least a second past not_before_ms")
    return _from_seconds(not_before_s), _from_seconds(not_after_s)


def _require_serial(serial: int) -> None:
    if not 0 < serial < _SERIAL_LIMIT:
        raise CertRequestError("serial must be a positive integer below 2**159")


# --- verifying certificates ----------------------------------------------------------
def parse_org_ca(ca_cert_der: bytes, at_ms: int) -> OrgCa:
    """Verify an organisation CA certificate as of `at_ms` and return what it states."""
    ca = read_org_ca(ca_cert_der)
    _require_valid_at("CA certificate", ca.not_before_ms, ca.not_after_ms, at_ms)
    return ca


def read_org_ca(ca_cert_der: bytes) -> OrgCa:
    """As parse_org_ca, but time-free: every check except the validity period. For
    reports about CAs the chain verified when it registered them, which may have
    expired since (contracts.cert_expiry)."""
    return _org_ca_from(_load(ca_cert_der, "CA certificate"), ca_cert_der)


def verify_member_cert(cert_der: bytes, ca_cert_der: bytes, at_ms: int) -> Member:
    """Verify a member certificate against its organisation's CA certificate, both as
    of `at_ms`, and return the member it certifies."""
    return verify_member_cert_with_ca(cert_der, parse_org_ca(ca_cert_der, at_ms), at_ms)


def verify_member_cert_with_ca(cert_der: bytes, ca: OrgCa, at_ms: int) -> Member:
    """As verify_member_cert, with a CA parsed earlier (the chain keeps them parsed)."""
    _require_valid_at("CA certificate", ca.not_before_ms, ca.not_after_ms, at_ms)
    cert = _load(cert_der, "member certificate")
    _require_issued_by(cert, ca)
    not_before_ms, not_after_ms = _validity_of(cert)
    _require_valid_at("member certificate", not_before_ms, not_after_ms, at_ms)
    public_key = _ed25519_key(cert, "member certificate")
    _require_member_extensions(cert)
    name, org_id, roles = _member_subject(cert)
    if org_id != ca.org_id:
        raise CertUntrusted(f"member certificate names organisation {org_id!r}, "
                            f"but its CA is {ca.org_id!r}'s")
    return Member(name=name, org_id=org_id, roles=roles, public_key=public_key,
                  serial=cert.serial_number, not_before_ms=not_before_ms,
                  not_after_ms=not_after_ms, ca_fingerprint=ca.fingerprint)


def _org_ca_from(cert: x509.Certificate, der: bytes) -> OrgCa:
    public_key = _ed25519_key(cert, "CA certificate")
    _require_ca_extensions(cert)
    if cert.issuer.public_bytes() != cert.subject.public_bytes():
        raise CertUntrusted("CA certificate is not self-signed (issuer differs from subject)")
    _require_signed_by(cert, public_key, "CA certificate", "its own key")
    org_id, legal_name, uscc = _ca_subject(cert)
    not_before_ms, not_after_ms = _validity_of(cert)
    return OrgCa(org_id=org_id, legal_name=legal_name, uscc=uscc, public_key=public_key,
                 serial=cert.serial_number, not_before_ms=not_before_ms,
                 not_after_ms=not_after_ms, fingerprint=crypto.sha256(der),
                 subject_der=cert.subject.public_bytes())


def _load(der: bytes, what: str) -> x509.Certificate:
    """Parse DER strictly: bounded, canonical, v3, every extension decodable."""
    if len(der) > MAX_CERT_DER_BYTES:
        raise CertTooLarge(f"{what} is {len(der)} bytes; the limit is {MAX_CERT_DER_BYTES}")
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
        reencoded = cert.public_bytes(serialization.Encoding.DER)
    except (ValueError, x509.InvalidVersion, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType) as exc:
        raise CertMalformed(f"{what} is not a DER X.509 certificate: {exc}") from None
    if reencoded != der:
        raise CertMalformed(f"{what} is not in canonical DER (or has trailing bytes)")
    if cert.version != x509.Version.v3:
        raise CertProfileError(f"{what} is X.509 {cert.version.name}, not v3")
    for extension in extensions:
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise CertProfileError(f"{what} has an unsupported critical extension "
                                   f"{extension.oid.dotted_string}")
    return cert


def _ed25519_key(cert: x509.Certificate, what: str) -> bytes:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise CertBadKey(f"{what} has a key we cannot read: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CertBadKey(f"{what} certifies a {type(key).__name__}, not an Ed25519 key")
    return key.public_bytes_raw()


def _require_signed_by(cert: x509.Certificate, signer_key: bytes, what: str,
                       signer: str) -> None:
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ED25519:
        raise CertUntrusted(f"{what} is signed with {cert.signature_algorithm_oid.dotted_string}"
                            f", not Ed25519")
    try:
        crypto.verify(signer_key, cert.tbs_certificate_bytes, cert.signature)
    except BadSignature:
        raise CertUntrusted(f"{what}'s signature does not verify with {signer}") from None


def _require_issued_by(cert: x509.Certificate, ca: OrgCa) -> None:
    if cert.issuer.public_bytes() != ca.subject_der:
        raise CertUntrusted(f"member certificate was issued by {cert.issuer.rfc4514_string()!r}"
                            f", not by {ca.org_id!r}'s CA")
    _require_signed_by(cert, ca.public_key, "member certificate", f"{ca.org_id!r}'s CA key")


def _require_ca_extensions(cert: x509.Certificate) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise CertNotCa("certificate is not a CA (basicConstraints CA is not true)")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.key_cert_sign:
        raise CertNotCa("CA certificate's keyUsage does not allow keyCertSign")


def _require_member_extensions(cert: x509.Certificate) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or constraints.ca:
        raise CertProfileError("member certificate must carry basicConstraints CA=false")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.digital_signature or usage.key_cert_sign:
        raise CertProfileError("member certificate's keyUsage must be digitalSignature "
                               "without keyCertSign")


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _ca_subject(cert: x509.Certificate) -> tuple[str, str, str]:
    subject = cert.subject
    _require_attribute_set(subject, _CA_NAME_OIDS, "CA certificate")
    common_name = _single(subject, NameOID.COMMON_NAME, "CA certificate")
    if not common_name.endswith(_CA_CN_SUFFIX):
        raise CertProfileError(f"CA certificate CN {common_name!r} is not '<org id> CA'")
    org_id = common_name.removesuffix(_CA_CN_SUFFIX)
    _require_org_id(org_id, CertProfileError)
    legal_name = _single(subject, NameOID.ORGANIZATION_NAME, "CA certificate")
    _require_name_text("legal name", legal_name, CertProfileError)
    uscc = validate_uscc(_single(subject, NameOID.ORGANIZATION_IDENTIFIER, "CA certificate"))
    return org_id, legal_name, uscc


def _member_subject(cert: x509.Certificate) -> tuple[str, str, frozenset[Role]]:
    subject = cert.subject
    _require_attribute_set(subject, _MEMBER_NAME_OIDS, "member certificate")
    name = _single(subject, NameOID.COMMON_NAME, "member certificate")
    _require_name_text("member name", name, CertProfileError)
    org_id = _single(subject, NameOID.ORGANIZATION_NAME, "member certificate")
    role_names = [str(a.value) for a in subject.get_attributes_for_oid(
        NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if not role_names:
        raise CertBadRoles("member certificate carries no role (no OU attribute)")
    if len(set(role_names)) != len(role_names):
        raise CertBadRoles(f"member certificate repeats a role: {role_names}")
    try:
        roles = frozenset(parse_role(role_name) for role_name in role_names)
    except UnknownRole as exc:
        raise CertBadRoles(f"member certificate OU: {exc.reason}") from None
    return name, org_id, roles


def _require_attribute_set(name: x509.Name, allowed: frozenset[x509.ObjectIdentifier],
                           what: str) -> None:
    for rdn in name.rdns:
        if len(rdn) != 1:
            raise CertProfileError(f"{what} subject has a multi-valued RDN")
    for attribute in name:
        if attribute.oid not in allowed:
            raise CertProfileError(f"{what} subject has an unexpected attribute "
                                   f"{attribute.oid.dotted_string}")


def _single(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str:
    attributes = name.get_attributes_for_oid(oid)
    if len(attributes) != 1 or not isinstance(attributes[0].value, str):
        raise CertProfileError(f"{what} subject needs exactly one {_ATTRIBUTE_NAMES[oid]} "
                               f"string, has {len(attributes)}")
    return attributes[0].value


def _require_org_id(org_id: str, error: type[CertError]) -> None:
    if not _ORG_ID.fullmatch(org_id):
        raise error(f"org id {org_id!r} must be 1-32 lower-case letters, digits or inner "
                    f"hyphens")


def _require_name_text(label: str, text: str, error: type[CertError]) -> None:
    if not 0 < len(text) <= _MAX_NAME_CHARS:
        raise error(f"{label} must be 1-{_MAX_NAME_CHARS} characters, got {len(text)}")
    if len(text.encode()) > _MAX_NAME_CHARS:
        # `cryptography` counts the bound in UTF-8 bytes: 22 Chinese characters at most.
        raise error(f"{label} must be at most {_MAX_NAME_CHARS} bytes in UTF-8, got "
                    f"{len(text.encode())}")
    if not text.isprintable() or text != text.strip():
        raise error(f"{label} {text!r} has control characters or surrounding blanks")


# --- time ----------------------------------------------------------------------------
def _validity_of(cert: x509.Certificate) -> tuple[int, int]:
    return _to_ms(cert.not_valid_before_utc), _to_ms(cert.not_valid_after_utc)


def _require_valid_at(what: str, not_before_ms: int, not_after_ms: int, at_ms: int) -> None:
    if at_ms < not_before_ms:
        raise CertNotYetValid(f"{what} is not valid before {_iso(not_before_ms)} "
                              f"(checked at {_iso(at_ms)})")
    if at_ms > not_after_ms:
        raise CertExpired(f"{what} expired at {_iso(not_after_ms)} (checked at {_iso(at_ms)})")


def _from_seconds(seconds: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(seconds=seconds)


def _to_ms(moment: datetime.datetime) -> int:
    return (moment - _EPOCH) // _ONE_SECOND * 1000


def _iso(ms: int) -> str:
    """UTC, to the millisecond when there are any: for messages only."""
    moment = _EPOCH + datetime.timedelta(milliseconds=ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def days_until_expiry(not_after_ms: int, now_ms: int) -> int:
    """Whole days left before `not_after_ms`, rounded down; negative once it has passed
    (-1 during the first day after expiry)."""
    return (not_after_ms - now_ms) // MS_PER_DAY


def expiry_warning(not_after_ms: int, now_ms: int, warn_days: int) -> str | None:
    """A line for the operator when a certificate ends within `warn_days` days (or has
    ended), else None."""
    if warn_days < 0:
        raise CertRequestError(f"warn_days must not be negative, got {warn_days}")
    if now_ms > not_after_ms:
        ago = (now_ms - not_after_ms) // MS_PER_DAY
        when = "less than a day ago" if ago == 0 else f"{ago} day{'s' * (ago != 1)} ago"
        return f"certificate expired {when}, at {_iso(not_after_ms)}"
    if not_after_ms - now_ms > warn_days * MS_PER_DAY:
        return None
    days = days_until_expiry(not_after_ms, now_ms)
    within = "less than a day" if days == 0 else f"{days} day{'s' * (days != 1)}"
    return f"certificate expires in {within}, at {_iso(not_after_ms)}"


# --- files ---------------------------------------------------------------------------
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def to_pem(cert_der: bytes) -> bytes:
    """RFC 7468 PEM text of a DER certificate (64-character lines)."""
    body = base64.b64encode(cert_der)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"\n".join([_PEM_BEGIN, *lines, _PEM_END]) + b"\n"


def from_pem(pem: bytes) -> bytes:
    """The DER inside exactly one PEM CERTIFICATE block (CertMalformed otherwise)."""
    if len(pem) > _MAX_PEM_BYTES:
        raise CertTooLarge(f"PEM file is {len(pem)} bytes; the limit is {_MAX_PEM_BYTES}")
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _PEM_BEGIN or lines[-1].strip() != _PEM_END:
        raise CertMalformed("not a single PEM CERTIFICATE block")
    try:
        return base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise CertMalformed(f"PEM body is not base64: {exc}") from None


def private_key_to_pem(seed: bytes) -> bytes:
    """An Ed25519 seed as an unencrypted PKCS#8 PEM file (what `openssl pkey` reads)."""
    return _private_key(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes) -> bytes:
    """The 32-byte seed in an unencrypted PKCS#8 PEM Ed25519 key (BadKeyFile otherwise)."""
    if len(pem) > _MAX_PEM_BYTES:
        raise BadKeyFile(f"key file is {len(pem)} bytes; the limit is {_MAX_PEM_BYTES}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadKeyFile(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BadKeyFile(f"key is a {type(key).__name__}, not Ed25519")
    return key.private_bytes_raw()
