"""Organisation CAs and member certificates: round trips, every rejection, rotation,
validity edges, and an independent check by the openssl command line."""

from __future__ import annotations

import ast
import datetime
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidechain.core.crypto import SigningKey, sha256
from tidechain.identity import (
    MS_PER_DAY,
    BadKeyFile,
    BadUscc,
    CertBadKey,
    CertBadRoles,
    CertExpired,
    CertMalformed,
    CertNotCa,
    CertNotYetValid,
    CertProfileError,
    CertRequestError,
    CertTooLarge,
    CertUntrusted,
    Role,
    UnknownRole,
    days_until_expiry,
    expiry_warning,
    from_pem,
    issue_member_cert,
    make_org_ca,
    parse_org_ca,
    parse_role,
    parse_roles,
    private_key_from_pem,
    private_key_to_pem,
    to_pem,
    verify_member_cert,
    verify_member_cert_with_ca,
)
from tidechain.identity import certs as certs_module

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CA_START = T0 - MS_PER_DAY
CA_END = T0 + 3650 * MS_PER_DAY
MEMBER_END = T0 + 365 * MS_PER_DAY
CA_SEED = bytes(range(32))
OTHER_CA_SEED = bytes(range(1, 33))
ALICE = SigningKey(b"\x07" * 32)
USCC = "91350100M000100Y43"
LEGAL_NAME = "厦门示例供应链管理有限公司"


def _ca(seed: bytes = CA_SEED, org_id: str = "acme", not_before_ms: int = CA_START,
        not_after_ms: int = CA_END, serial: int = 1) -> bytes:
    return make_org_ca(org_id, LEGAL_NAME, USCC, seed, not_before_ms, not_after_ms, serial)


def _member(ca_der: bytes, seed: bytes = CA_SEED, roles: Sequence[Role] = (Role.DEPOSITOR,),
            not_before_ms: int = T0, not_after_ms: int = MEMBER_END, serial: int = 42) -> bytes:
    return issue_member_cert(ca_der, seed, "alice", ALICE.public_key, roles,
                             not_before_ms, not_after_ms, serial)


# --- round trips ---------------------------------------------------------------------
def test_member_round_trip() -> None:
    ca = _ca()
    member = verify_member_cert(_member(ca, roles=[Role.ADMIN, Role.FUNDER]), ca, T0 + 1)
    assert member.name == "alice"
    assert member.org_id == "acme"
    assert member.roles == frozenset({Role.ADMIN, Role.FUNDER})
    assert member.public_key == ALICE.public_key
    assert member.serial == 42
    assert (member.not_before_ms, member.not_after_ms) == (T0, MEMBER_END)
    assert member.ca_fingerprint == sha256(ca)


def test_org_ca_round_trip() -> None:
    ca_der = _ca()
    ca = parse_org_ca(ca_der, T0)
    assert (ca.org_id, ca.legal_name, ca.uscc) == ("acme", LEGAL_NAME, USCC)
    assert ca.public_key == SigningKey(CA_SEED).public_key
    assert (ca.serial, ca.not_before_ms, ca.not_after_ms) == (1, CA_START, CA_END)
    assert ca.fingerprint == sha256(ca_der)


def test_uscc_is_in_the_organization_identifier_attribute() -> None:
    subject = x509.load_der_x509_certificate(_ca()).subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)] \
        == [USCC]


def test_uscc_is_normalised_before_it_is_written() -> None:
    ca = make_org_ca("acme", LEGAL_NAME, " 91350100m000100y43 ", CA_SEED, T0, CA_END, 1)
    assert parse_org_ca(ca, T0).uscc == USCC


def test_certificates_are_a_function_of_their_inputs() -> None:
    assert _ca() == _ca()
    assert _member(_ca()) == _member(_ca())


def test_a_parsed_ca_can_be_reused() -> None:
    ca_der = _ca()
    ca = parse_org_ca(ca_der, T0)
    assert verify_member_cert_with_ca(_member(ca_der), ca, T0 + 5).name == "alice"
    with pytest.raises(CertExpired, match="CA certificate"):
        verify_member_cert_with_ca(_member(ca_der), ca, CA_END + 1)


@settings(max_examples=25, deadline=None)
@given(st.frozensets(st.sampled_from(list(Role)), min_size=1),
       st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=64)
       .filter(lambda name: len(name.encode()) <= 64),
       st.integers(1, 2**159 - 1))
# A Chinese company name near the bound: 19 characters, 57 bytes of UTF-8.
@example(frozenset({Role.DEPOSITOR}), "深圳市前海某某供应链管理有限公司分公司", 1)
def test_any_roles_name_and_serial_round_trip(roles: frozenset[Role], name: str,
                                              serial: int) -> None:
    ca = _ca()
    der = issue_member_cert(ca, CA_SEED, name, ALICE.public_key, roles, T0, MEMBER_END, serial)
    member = verify_member_cert(der, ca, T0)
    assert (member.roles, member.name, member.serial) == (roles, name, serial)


# --- validity edges ----------------------------------------------------------------
def test_valid_exactly_at_not_before_and_not_after() -> None:
    ca = _ca()
    der = _member(ca)
    assert verify_member_cert(der, ca, T0).serial == 42
    assert verify_member_cert(der, ca, MEMBER_END).serial == 42
    with pytest.raises(CertNotYetValid, match="member certificate"):
        verify_member_cert(der, ca, T0 - 1)
    with pytest.raises(CertExpired, match="member certificate"):
        verify_member_cert(der, ca, MEMBER_END + 1)


def test_requested_times_are_rounded_down_to_whole_seconds() -> None:
    ca = _ca()
    der = _member(ca, not_before_ms=T0 + 1999, not_after_ms=MEMBER_END + 999)
    member = verify_member_cert(der, ca, T0 + 1999)  # valid from the requested instant
    assert (member.not_before_ms, member.not_after_ms) == (T0 + 1000, MEMBER_END)
    with pytest.raises(CertExpired):
        verify_member_cert(der, ca, MEMBER_END + 1)  # never past the requested end


def test_ca_validity_is_checked_too() -> None:
    ca = _ca()
    with pytest.raises(CertNotYetValid, match="CA certificate"):
        parse_org_ca(ca, CA_START - 1)
    with pytest.raises(CertExpired, match="CA certificate"):
        parse_org_ca(ca, CA_END + 1)


# --- trust -------------------------------------------------------------------------
def test_a_certificate_from_another_ca_is_refused() -> None:
    other_ca = _ca(seed=OTHER_CA_SEED, org_id="globex")
    with pytest.raises(CertUntrusted, match="issued by"):
        verify_member_cert(_member(other_ca, seed=OTHER_CA_SEED), _ca(), T0)


def test_a_rotated_ca_verifies_only_the_certificates_it_issued() -> None:
    old_ca = _ca()
    new_seed = b"\x42" * 32
    new_ca = _ca(seed=new_seed, serial=2)  # same org and subject name, new key
    old_cert, new_cert = _member(old_ca), _member(new_ca, seed=new_seed, serial=43)
    assert verify_member_cert(old_cert, old_ca, T0).serial == 42
    assert verify_member_cert(new_cert, new_ca, T0).serial == 43
    with pytest.raises(CertUntrusted, match="signature does not verify"):
        verify_member_cert(old_cert, new_ca, T0)
    with pytest.raises(CertUntrusted, match="signature does not verify"):
        verify_member_cert(new_cert, old_ca, T0)
    assert parse_org_ca(old_ca, T0).fingerprint != parse_org_ca(new_ca, T0).fingerprint


def test_a_tampered_signature_is_refused() -> None:
    ca = _ca()
    der = bytearray(_member(ca))
    der[-1] ^= 0x01
    with pytest.raises(CertUntrusted):
        verify_member_cert(bytes(der), ca, T0)


def test_a_tampered_ca_self_signature_is_refused() -> None:
    der = bytearray(_ca())
    der[-1] ^= 0x01
    with pytest.raises(CertUntrusted, match="its own key"):
        parse_org_ca(bytes(der), T0)


def test_a_member_certificate_not_signed_with_ed25519_is_refused() -> None:
    p256 = ec.derive_private_key(12345, ec.SECP256R1())
    key = ed25519.Ed25519PublicKey.from_public_bytes(ALICE.public_key)
    der = (_builder(_member_name(), _ca_name(), key, ca=False)
           .sign(p256, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertUntrusted, match="not Ed25519"):
        verify_member_cert(der, _ca(), T0)


def test_a_member_claiming_another_organisation_is_refused() -> None:
    ca = _ca()
    forged = _craft(_member_name(org="globex"), _ca_name(), ALICE.public_key)
    with pytest.raises(CertUntrusted, match="globex"):
        verify_member_cert(forged, ca, T0)


# --- malformed input ----------------------------------------------------------------
@pytest.mark.parametrize("der", [b"", b"hello", b"\x30\x03\x02\x01\x01"])
def test_not_der_x509_is_refused(der: bytes) -> None:
    with pytest.raises(CertMalformed):
        verify_member_cert(der, _ca(), T0)
    with pytest.raises(CertMalformed):
        parse_org_ca(der, T0)


def test_truncated_or_padded_der_is_refused() -> None:
    ca = _ca()
    der = _member(ca)
    with pytest.raises(CertMalformed):
        verify_member_cert(der[:-1], ca, T0)
    with pytest.raises(CertMalformed):
        verify_member_cert(der + b"\x00", ca, T0)


def test_oversized_input_is_refused_before_parsing() -> None:
    huge = b"\x30" * (certs_module.MAX_CERT_DER_BYTES + 1)
    with pytest.raises(CertTooLarge):
        verify_member_cert(huge, _ca(), T0)
    with pytest.raises(CertTooLarge):
        parse_org_ca(huge, T0)


# --- keys, CA-ness, roles and profile -------------------------------------------------
def test_a_member_key_that_is_not_ed25519_is_refused() -> None:
    p256 = ec.derive_private_key(12345, ec.SECP256R1()).public_key()
    der = _craft(_member_name(), _ca_name(), p256)
    with pytest.raises(CertBadKey, match="not an Ed25519 key"):
        verify_member_cert(der, _ca(), T0)


def test_a_ca_key_that_is_not_ed25519_is_refused() -> None:
    key = ec.derive_private_key(12345, ec.SECP256R1())
    name = _ca_name()
    der = (_builder(name, name, key.public_key(), ca=True)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertBadKey):
        parse_org_ca(der, T0)


def test_a_certificate_that_is_not_a_ca_cannot_act_as_one() -> None:
    ca = _ca()
    with pytest.raises(CertNotCa):
        verify_member_cert(_member(ca), _member(ca), T0)  # a member cert as the CA
    no_cert_sign = _craft(_ca_name(), _ca_name(), SigningKey(CA_SEED).public_key, ca=True,
                          key_cert_sign=False)
    with pytest.raises(CertNotCa, match="keyCertSign"):
        parse_org_ca(no_cert_sign, T0)


def test_a_ca_that_is_not_self_signed_is_refused() -> None:
    issuer = _ca_name(org="globex")
    der = _craft(_ca_name(), issuer, SigningKey(CA_SEED).public_key, ca=True)
    with pytest.raises(CertUntrusted, match="not self-signed"):
        parse_org_ca(der, T0)


def test_a_ca_with_a_bad_uscc_is_refused() -> None:
    name = _ca_name(uscc="91350100M000100Y44")
    with pytest.raises(BadUscc):
        parse_org_ca(_craft(name, name, SigningKey(CA_SEED).public_key, ca=True), T0)


@pytest.mark.parametrize(("ous", "reason"), [
    ([], "no role"),
    (["pirate"], "unknown role 'pirate'"),
    (["admin", "admin"], "repeats a role"),
])
def test_role_problems_are_refused(ous: list[str], reason: str) -> None:
    der = _craft(_member_name(ous=ous), _ca_name(), ALICE.public_key)
    with pytest.raises(CertBadRoles, match=reason):
        verify_member_cert(der, _ca(), T0)


def test_a_member_certificate_that_claims_ca_is_refused() -> None:
    der = _craft(_member_name(), _ca_name(), ALICE.public_key, ca=True)
    with pytest.raises(CertProfileError, match="CA=false"):
        verify_member_cert(der, _ca(), T0)


def test_an_unknown_critical_extension_is_refused() -> None:
    der = _craft(_member_name(), _ca_name(), ALICE.public_key, extra_critical=True)
    with pytest.raises(CertProfileError, match="critical extension"):
        verify_member_cert(der, _ca(), T0)


def test_an_unexpected_subject_attribute_is_refused() -> None:
    name = x509.Name([*_member_name(), x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")])
    with pytest.raises(CertProfileError, match="unexpected attribute"):
        verify_member_cert(_craft(name, _ca_name(), ALICE.public_key), _ca(), T0)


# --- requests that are refused ------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"org_id": "Acme"}, {"org_id": ""}, {"org_id": "-acme"}, {"org_id": "a" * 33},
    {"legal_name": ""}, {"legal_name": "x" * 65}, {"legal_name": " Acme"},
    {"legal_name": "Acme\nLtd"}, {"ca_key_seed": b"short"}, {"serial": 0},
    {"serial": 2**159}, {"not_after_ms": T0 + 999}, {"not_before_ms": -1},
])
def test_bad_ca_requests_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"org_id": "acme", "legal_name": LEGAL_NAME, "uscc": USCC,
                               "ca_key_seed": CA_SEED, "not_before_ms": T0,
                               "not_after_ms": CA_END, "serial": 1, **kwargs}
    with pytest.raises(CertRequestError):
        make_org_ca(**args)  # type: ignore[arg-type]


def test_a_ca_request_with_a_bad_uscc_is_refused() -> None:
    with pytest.raises(BadUscc):
        make_org_ca("acme", LEGAL_NAME, "91350100M000100Y4Z", CA_SEED, T0, CA_END, 1)


def test_bad_member_requests_are_refused() -> None:
    ca = _ca()
    with pytest.raises(CertRequestError, match="at least one role"):
        _member(ca, roles=[])
    with pytest.raises(UnknownRole):
        _member(ca, roles=["pirate"])  # type: ignore[list-item]
    with pytest.raises(CertRequestError, match="after its CA"):
        _member(ca, not_after_ms=CA_END + 1000)
    with pytest.raises(CertRequestError, match="does not match"):
        _member(ca, seed=OTHER_CA_SEED)
    with pytest.raises(CertNotYetValid):
        _member(ca, not_before_ms=CA_START - 1000)
    with pytest.raises(CertRequestError, match="32 raw"):
        issue_member_cert(ca, CA_SEED, "alice", b"\x01" * 31, [Role.ADMIN], T0, MEMBER_END, 1)
    with pytest.raises(CertRequestError, match="member name"):
        issue_member_cert(ca, CA_SEED, "", ALICE.public_key, [Role.ADMIN], T0, MEMBER_END, 1)


# --- roles -------------------------------------------------------------------------
def test_role_names_are_stable() -> None:
    assert [r.value for r in Role] == ["admin", "depositor", "invoice_issuer", "tax_authority",
                                       "enterprise", "funder", "carrier", "regulator"]
    assert parse_role("tax_authority") is Role.TAX_AUTHORITY
    assert parse_roles(["admin", "carrier", "admin"]) == {Role.ADMIN, Role.CARRIER}


def test_an_unknown_role_is_a_typed_rejection() -> None:
    with pytest.raises(UnknownRole, match="funder") as caught:
        parse_role("bank")
    assert caught.value.code == "unknown_role"
    with pytest.raises(UnknownRole):
        parse_role("Admin")


# --- expiry ------------------------------------------------------------------------
def test_days_until_expiry_rounds_down() -> None:
    assert days_until_expiry(MEMBER_END, MEMBER_END - 3 * MS_PER_DAY) == 3
    assert days_until_expiry(MEMBER_END, MEMBER_END - 3 * MS_PER_DAY + 1) == 2
    assert days_until_expiry(MEMBER_END, MEMBER_END) == 0
    assert days_until_expiry(MEMBER_END, MEMBER_END + 1) == -1


def test_expiry_warning() -> None:
    assert expiry_warning(MEMBER_END, MEMBER_END - 31 * MS_PER_DAY, 30) is None
    assert expiry_warning(MEMBER_END, MEMBER_END - 30 * MS_PER_DAY, 30) == (
        "certificate expires in 30 days, at 2027-01-01T00:00:00Z")
    assert expiry_warning(MEMBER_END, MEMBER_END - 1000, 0) is None  # 0 days: no warning ahead
    assert expiry_warning(MEMBER_END, MEMBER_END - 1000, 1) == (
        "certificate expires in less than a day, at 2027-01-01T00:00:00Z")
    assert expiry_warning(MEMBER_END, MEMBER_END + 2 * MS_PER_DAY, 30) == (
        "certificate expired 2 days ago, at 2027-01-01T00:00:00Z")
    with pytest.raises(CertRequestError):
        expiry_warning(MEMBER_END, T0, -1)


# --- files -------------------------------------------------------------------------
def test_pem_round_trip() -> None:
    der = _member(_ca())
    pem = to_pem(der)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == der
    assert from_pem(pem) == der
    assert from_pem(pem.replace(b"\n", b"\r\n")) == der


@pytest.mark.parametrize("pem", [b"", b"hello", b"-----BEGIN CERTIFICATE-----\n!!\n"
                                 b"-----END CERTIFICATE-----\n"])
def test_bad_pem_is_refused(pem: bytes) -> None:
    with pytest.raises(CertMalformed):
        from_pem(pem)


def test_two_pem_blocks_are_refused() -> None:
    pem = to_pem(_ca())
    with pytest.raises(CertMalformed):
        from_pem(pem + pem)


def test_private_key_pem_round_trip() -> None:
    pem = private_key_to_pem(CA_SEED)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert private_key_from_pem(pem) == CA_SEED
    p256 = ec.derive_private_key(1, ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(BadKeyFile, match="not Ed25519"):
        private_key_from_pem(p256)
    with pytest.raises(BadKeyFile):
        private_key_from_pem(b"junk")


# --- an independent verifier ---------------------------------------------------------
def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30,
                          check=False)


def test_openssl_accepts_our_certificates(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not on PATH, so no independent cross-check")
    ca = _ca()
    (tmp_path / "ca.pem").write_bytes(to_pem(ca))
    (tmp_path / "member.pem").write_bytes(to_pem(_member(ca, roles=[Role.ADMIN, Role.FUNDER])))
    (tmp_path / "ca.key").write_bytes(private_key_to_pem(CA_SEED))
    at = str((T0 + MS_PER_DAY) // 1000)
    for strict in ([], ["-x509_strict"]):
        result = _openssl("verify", *strict, "-attime", at, "-CAfile", str(tmp_path / "ca.pem"),
                          str(tmp_path / "member.pem"))
        assert result.returncode == 0, result.stdout + result.stderr
    expired = _openssl("verify", "-attime", str(MEMBER_END // 1000 + 1), "-CAfile",
                       str(tmp_path / "ca.pem"), str(tmp_path / "member.pem"))
    assert expired.returncode != 0
    text = _openssl("x509", "-in", str(tmp_path / "member.pem"), "-noout", "-text").stdout
    assert "OU = admin, OU = funder" in text and "CA:FALSE" in text
    ca_text = _openssl("x509", "-in", str(tmp_path / "ca.pem"), "-noout", "-text").stdout
    assert f"organizationIdentifier = {USCC}" in ca_text and "CA:TRUE, pathlen:0" in ca_text
    public = _openssl("pkey", "-in", str(tmp_path / "ca.key"), "-pubout").stdout.encode()
    key = serialization.load_pem_public_key(public)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert key.public_bytes_raw() == SigningKey(CA_SEED).public_key


# --- purity ------------------------------------------------------------------------
def test_identity_package_reads_no_clock_and_does_no_io() -> None:
    package = Path(__file__).resolve().parents[1] / "src" / "tidechain" / "identity"
    forbidden = {"asyncio", "socket", "time", "random", "os", "secrets", "subprocess"}
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


# --- helpers that build certificates outside our profile ------------------------------
def _ca_name(org: str = "acme", uscc: str = USCC) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{org} CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, LEGAL_NAME),
                      x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, uscc)])


def _member_name(org: str = "acme", ous: Sequence[str] = ("depositor",)) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in ous)])


def _builder(subject: x509.Name, issuer: x509.Name,
             public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey, *, ca: bool,
             key_cert_sign: bool | None = None,
             extra_critical: bool = False) -> x509.CertificateBuilder:
    cert_sign = ca if key_cert_sign is None else key_cert_sign
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(public_key).serial_number(7)
        .not_valid_before(datetime.datetime.fromtimestamp(T0 // 1000, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(MEMBER_END // 1000, datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=not ca, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
            crl_sign=cert_sign, encipher_only=False, decipher_only=False), critical=True)
    )
    if extra_critical:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True)
    return builder


def _craft(subject: x509.Name, issuer: x509.Name,
           public_key: bytes | ec.EllipticCurvePublicKey, *, ca: bool = False,
           key_cert_sign: bool | None = None, extra_critical: bool = False) -> bytes:
    """A certificate signed by the CA_SEED key, with whatever content a test needs."""
    key = (ed25519.Ed25519PublicKey.from_public_bytes(public_key)
           if isinstance(public_key, bytes) else public_key)
    builder = _builder(subject, issuer, key, ca=ca, key_cert_sign=key_cert_sign,
                       extra_critical=extra_critical)
    signer = ed25519.Ed25519PrivateKey.from_private_bytes(CA_SEED)
    return builder.sign(signer, None).public_bytes(serialization.Encoding.DER)


def test_a_name_over_64_utf8_bytes_is_refused_typed() -> None:
    """RFC 5280's bound is 64 characters, the certificate library's 64 UTF-8 bytes: a
    23-character Chinese company name (69 bytes) is refused with a typed error, not a
    ValueError from deep inside `cryptography` (found by the property above)."""
    ca_der = _ca()
    with pytest.raises(CertRequestError, match="64 bytes in UTF-8"):
        issue_member_cert(ca_der, CA_SEED, "深圳市前海某某某某供应链管理有限公司分公司第三",
                          ALICE.public_key, [Role.DEPOSITOR], T0, MEMBER_END, 1)
