"""RFC 3161 time stamps (timestamp/) against tools that share no code with ours: the
OpenSSL 3.0 CLI (`openssl ts` makes the requests and verifies the tokens) and Trail of
Bits' rfc3161-client (a Rust ASN.1 parser and verifier, which also builds requests).
The certificate chain is the real one: an Ed25519 organisation CA (identity/certs.py)
signing the ECDSA P-256 TSA certificate.

A Hypothesis property feeds parse_request random bytes, mutated OpenSSL requests and
random DER; it must never raise, and each refusal must come back as a status-2 response
with exactly its failure bit. `pytest -s` prints how often each failure was hit."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc3161_client
from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidechain.core.errors import InvariantViolation
from tidechain.identity import CertExpired, make_org_ca, private_key_to_pem, to_pem
from tidechain.timestamp import (
    DEPOSIT_INDEX_OID,
    Rejection,
    TimestampFormatError,
    TimeStampRequest,
    TsaCertError,
    TsaSigner,
    describe_token,
    granted_response,
    issue_tsa_certificate,
    load_tsa_signer,
    parse_request,
    parse_token_deposit_index,
    rejection_response,
)
from tidechain.timestamp.rfc3161 import MAX_REQUEST_BYTES, generalized_time
from tidechain.timestamp.tsa_cert import CN_SUFFIX

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.usefixtures("openssl_installed")
"""The OpenSSL CLI is the reference client: skipped locally without it, required under
CI=true."""

POLICY = "1.2.3.4.1"
"""The test TSA's policy (an example OID)."""
ACCEPTED = frozenset({POLICY})
USCC = "91350100M000100Y43"
DAY_MS = 86_400_000
SHA256, SHA384, SHA512 = ("2.16.840.1.101.3.4.2.1", "2.16.840.1.101.3.4.2.2",
                          "2.16.840.1.101.3.4.2.3")
SHA1 = "1.3.14.3.2.26"
HMAC_SHA256 = "1.2.840.113549.2.9"
"""asn1crypto names it "sha256" too: the codec must go by OID."""

FAILURE_BITS = {"badAlg": 0, "badRequest": 2, "badDataFormat": 5, "timeNotAvailable": 14,
                "unacceptedPolicy": 15, "unacceptedExtension": 16,
                "addInfoNotAvailable": 17, "systemFailure": 25}
"""RFC 3161 section 2.4.2's PKIFailureInfo bits, written out here from the RFC."""

OPENSSL_FAILURE_TEXT = {
    "badAlg": "unrecognized or unsupported algorithm identifier",
    "badRequest": "transaction not permitted or supported",
    "badDataFormat": "the data submitted has the wrong format",
    "timeNotAvailable": "the TSA's time source is not available",
    "unacceptedPolicy": "the requested TSA policy is not supported by the TSA",
    "unacceptedExtension": "the requested extension is not supported by the TSA",
    "addInfoNotAvailable": "the additional information requested could not be understood "
                           "or is not available",
    "systemFailure": "the request cannot be handled due to system failure",
}
"""What `openssl ts -reply -text` prints for each bit (crypto/ts/ts_rsp_print.c)."""

OPENSSL_REQUEST = bytes.fromhex(
    "30440201013031300d060960864801650304020105000420"
    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    "0209008928 17aaf7b428c9 0101ff".replace(" ", ""))
"""`openssl ts -query -data doc.txt -sha256 -cert` from OpenSSL 3.0.19 (doc.txt is
"hello\\n"): the seed of the mutation strategy, so it runs without the CLI too."""


@pytest.fixture(scope="session")
def openssl_installed() -> None:
    if OPENSSL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is not installed; CI must run: apt-get install -y openssl")
        pytest.skip("openssl is not installed")


@dataclass(frozen=True)
class Pki:
    """An organisation CA and its TSA, on disk for the CLI and in memory for us."""

    directory: Path
    now_ms: int
    ca_pem: bytes
    ca_key_pem: bytes
    tsa_pem: bytes
    tsa_key_pem: bytes
    signer: TsaSigner

    def path(self, name: str) -> Path:
        return self.directory / name


def _org_ca(org: str, now_ms: int, days: int = 3650) -> tuple[bytes, bytes]:
    """(CA certificate PEM, CA key PEM) as `tide org init` writes them."""
    seed = hashlib.sha256(b"tsa test ca " + org.encode()).digest()
    der = make_org_ca(org, f"{org} Co., Ltd.", USCC, seed, now_ms - DAY_MS,
                      now_ms + days * DAY_MS, 4242)
    return to_pem(der), private_key_to_pem(seed)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # `openssl ts -verify` checks the chain at the current time, so the CA and the TSA
    # certificate are made for now (the codec itself never reads a clock).
    now_ms = time.time_ns() // 1_000_000
    directory = tmp_path_factory.mktemp("tsa")
    ca_pem, ca_key_pem = _org_ca("acme", now_ms)
    tsa_pem, tsa_key_pem = issue_tsa_certificate(ca_pem, ca_key_pem, "acme-tsa", now_ms)
    for name, data in (("ca.pem", ca_pem), ("tsa.pem", tsa_pem),
                       ("doc.txt", b"hello world\n"), ("other.txt", b"hello world!\n")):
        (directory / name).write_bytes(data)
    other_ca, _ = _org_ca("other", now_ms)
    (directory / "other-ca.pem").write_bytes(other_ca)
    signer = load_tsa_signer(tsa_pem, tsa_key_pem, [ca_pem])
    return Pki(directory, now_ms, ca_pem, ca_key_pem, tsa_pem, tsa_key_pem, signer)


def openssl(pki: Pki, *args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, args)], cwd=pki.directory, capture_output=True,
                          text=True, timeout=30, check=False)


def query(pki: Pki, name: str, *options: str) -> bytes:
    """An `openssl ts -query` request for doc.txt, written to `name` and returned."""
    done = openssl(pki, "ts", "-query", "-data", "doc.txt", *options, "-out", name)
    assert done.returncode == 0, done.stderr
    return pki.path(name).read_bytes()


def verifies(pki: Pki, response: str, *options: str) -> bool:
    done = openssl(pki, "ts", "-verify", "-in", response, *options)
    assert ("Verification: OK" in done.stdout) == (done.returncode == 0), done
    return done.returncode == 0


def stamp(pki: Pki, request_der: bytes, name: str = "resp.tsr", **options: Any) -> bytes:
    """Our response to `request_der`, written to `name` and returned."""
    request = parse_request(request_der, accepted_policies=ACCEPTED)
    assert isinstance(request, TimeStampRequest), request
    arguments: dict[str, Any] = {"serial": 42, "gen_time_ms": pki.now_ms, "policy": POLICY,
                                 "signer": pki.signer}
    response = granted_response(request, **(arguments | options))
    pki.path(name).write_bytes(response)
    return response


def token_of(response: bytes) -> bytes:
    der: bytes = _RespSchema.load(response)["time_stamp_token"].dump()
    return der


def signed_data(response: bytes) -> Any:
    return cms.ContentInfo.load(token_of(response))["content"]


class _StatusSchema(core.Sequence):  # type: ignore[misc]
    """PKIStatusInfo declared here from the RFC, failInfo a plain BIT STRING (no names)."""

    _fields = [("status", core.Integer),  # noqa: RUF012 (asn1crypto's schema idiom)
               ("status_string", tsp.PKIFreeText, {"optional": True}),
               ("fail_info", core.BitString, {"optional": True})]


class _RespSchema(core.Sequence):  # type: ignore[misc]
    """TimeStampResp with the token OPTIONAL, as the RFC has it (asn1crypto's own
    tsp.TimeStampResp cannot read a rejection: it makes the token mandatory)."""

    _fields = [("status", _StatusSchema),  # noqa: RUF012
               ("time_stamp_token", cms.ContentInfo, {"optional": True})]


# --- the chain: Ed25519 CA, ECDSA TSA ---------------------------------------------------
@needs_openssl
def test_the_tsa_certificate_is_for_time_stamping_under_an_ed25519_ca(pki: Pki) -> None:
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    tsa = x509.load_pem_x509_certificate(pki.tsa_pem)
    assert ca.signature_algorithm_oid == SignatureAlgorithmOID.ED25519
    assert tsa.signature_algorithm_oid == SignatureAlgorithmOID.ED25519
    assert isinstance(tsa.public_key(), ec.EllipticCurvePublicKey)
    done = openssl(pki, "verify", "-purpose", "timestampsign", "-CAfile", "ca.pem", "tsa.pem")
    assert done.returncode == 0 and "tsa.pem: OK" in done.stdout, done
    # The same certificate is not one for TLS: the EKU names time stamping only.
    done = openssl(pki, "verify", "-purpose", "sslserver", "-CAfile", "ca.pem", "tsa.pem")
    assert done.returncode != 0


def test_the_tsa_certificate_follows_the_profile(pki: Pki) -> None:
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    tsa = x509.load_pem_x509_certificate(pki.tsa_pem)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    usage = tsa.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not (usage.value.key_cert_sign or usage.value.key_encipherment)
    constraints = tsa.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    assert tsa.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "acme-tsa TSA"
    assert tsa.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "acme"
    assert tsa.issuer == ca.subject
    aki = tsa.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert tsa.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    tsa.verify_directly_issued_by(ca)


def test_the_tsa_certificate_never_outlives_its_ca(pki: Pki) -> None:
    ca_pem, ca_key = _org_ca("short", pki.now_ms, days=10)
    cert_pem, _ = issue_tsa_certificate(ca_pem, ca_key, "short", pki.now_ms, days=365)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.not_valid_after_utc == x509.load_pem_x509_certificate(
        ca_pem).not_valid_after_utc
    with pytest.raises(CertExpired):
        issue_tsa_certificate(ca_pem, ca_key, "late", pki.now_ms + 11 * DAY_MS)


def test_issuing_needs_the_cas_own_key_and_a_name(pki: Pki) -> None:
    _, other_key = _org_ca("other", pki.now_ms)
    with pytest.raises(TsaCertError, match="does not match"):
        issue_tsa_certificate(pki.ca_pem, other_key, "acme-tsa", pki.now_ms)
    for name in ("", " padded", "x" * 61, "tab\there"):
        with pytest.raises(TsaCertError):
            issue_tsa_certificate(pki.ca_pem, pki.ca_key_pem, name, pki.now_ms)


def _tsa_cert_with(pki: Pki, extensions: list[tuple[x509.ExtensionType, bool]],
                   key: Any = None) -> tuple[bytes, bytes]:
    """A certificate from the test CA with the given extensions (bad ones included)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    ca_key = serialization.load_pem_private_key(pki.ca_key_pem, None)
    assert isinstance(ca_key, ed25519.Ed25519PrivateKey)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad" +
                                                            CN_SUFFIX)]))
               .issuer_name(ca.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(ca.not_valid_before_utc)
               .not_valid_after(ca.not_valid_after_utc))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    cert = builder.sign(ca_key, None)
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


@pytest.mark.parametrize(("extensions", "reason"), [
    ([], "no extendedKeyUsage"),
    ([(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), False)], "not critical"),
    ([(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING,
                              ExtendedKeyUsageOID.SERVER_AUTH]), True)], "timeStamping only"),
    ([(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
      (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                     crl_sign=False, encipher_only=False, decipher_only=False), True)],
     "keyUsage"),
])
def test_a_signer_needs_a_time_stamping_certificate(
        pki: Pki, extensions: list[tuple[x509.ExtensionType, bool]], reason: str) -> None:
    cert_pem, key_pem = _tsa_cert_with(pki, extensions)
    with pytest.raises(TsaCertError, match=reason):
        load_tsa_signer(cert_pem, key_pem)


def test_a_signer_needs_the_certificates_own_usable_key(pki: Pki) -> None:
    _, other_key = issue_tsa_certificate(pki.ca_pem, pki.ca_key_pem, "acme-tsa", pki.now_ms)
    with pytest.raises(TsaCertError, match="does not match"):
        load_tsa_signer(pki.tsa_pem, other_key)
    with pytest.raises(TsaCertError, match="ECDSA P-256 or RSA"):
        load_tsa_signer(pki.tsa_pem, pki.ca_key_pem)  # the CA's Ed25519 key
    with pytest.raises(TsaCertError, match="not PEM certificates"):
        load_tsa_signer(pki.tsa_pem, pki.tsa_key_pem, [b"garbage"])
    assert "PRIVATE" not in repr(pki.signer) and "key" not in repr(pki.signer)


# --- granted: OpenSSL verifies ----------------------------------------------------------
@needs_openssl
def test_openssl_verifies_our_token_by_data_digest_and_query(pki: Pki) -> None:
    request = query(pki, "req.tsq", "-sha256", "-cert")
    response = stamp(pki, request, deposit_index=1234)
    digest = hashlib.sha256(pki.path("doc.txt").read_bytes()).hexdigest()
    assert verifies(pki, "resp.tsr", "-data", "doc.txt", "-CAfile", "ca.pem")
    assert verifies(pki, "resp.tsr", "-digest", digest, "-CAfile", "ca.pem")
    # -queryfile also compares the nonce (and the policy, when the request names one).
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem")
    # The certificates asked for (certReq) are there: the TSA's and the CA above it, in
    # DER's order for a SET OF (sorted by encoding), not in chain order.
    certificates = [c.chosen.dump() for c in signed_data(response)["certificates"]]
    assert certificates == sorted(
        x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        for pem in (pki.tsa_pem, pki.ca_pem))


@needs_openssl
def test_openssl_refuses_another_document_another_ca_and_another_nonce(pki: Pki) -> None:
    query(pki, "req.tsq", "-sha256", "-cert")
    stamp(pki, pki.path("req.tsq").read_bytes())
    assert not verifies(pki, "resp.tsr", "-data", "other.txt", "-CAfile", "ca.pem")
    assert not verifies(pki, "resp.tsr", "-data", "doc.txt", "-CAfile", "other-ca.pem")
    query(pki, "req2.tsq", "-sha256", "-cert")  # the same document, a fresh nonce
    assert not verifies(pki, "resp.tsr", "-queryfile", "req2.tsq", "-CAfile", "ca.pem")


def _tampered(pki: Pki, response: bytes) -> bytes:
    """`response` with one byte of its TSTInfo changed: the year of genTime, so the
    TSTInfo still decodes and only the signature can tell."""
    text = generalized_time(pki.now_ms).encode()
    assert response.count(text) == 1
    changed = response.replace(text, b"21" + text[2:])
    assert len(changed) == len(response) and changed != response
    return changed


@needs_openssl
def test_openssl_and_rfc3161_client_refuse_a_tampered_token(pki: Pki) -> None:
    response = stamp(pki, query(pki, "req.tsq", "-sha256", "-cert"))
    pki.path("tampered.tsr").write_bytes(_tampered(pki, response))
    assert verifies(pki, "resp.tsr", "-data", "doc.txt", "-CAfile", "ca.pem")
    assert not verifies(pki, "tampered.tsr", "-data", "doc.txt", "-CAfile", "ca.pem")
    verifier = rfc3161_client.VerifierBuilder().add_root_certificate(
        x509.load_pem_x509_certificate(pki.ca_pem)).build()
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(rfc3161_client.decode_timestamp_response(
            _tampered(pki, response)), b"hello world\n")


@needs_openssl
def test_without_cert_req_the_token_carries_no_certificate(pki: Pki) -> None:
    response = stamp(pki, query(pki, "req.tsq", "-sha256", "-no_nonce"))
    assert isinstance(signed_data(response)["certificates"], core.Void)
    assert describe_token(response).nonce is None
    # OpenSSL must be handed the TSA certificate; with it, the token verifies.
    assert not verifies(pki, "resp.tsr", "-data", "doc.txt", "-CAfile", "ca.pem")
    assert verifies(pki, "resp.tsr", "-data", "doc.txt", "-CAfile", "ca.pem",
                    "-untrusted", "tsa.pem")
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem",
                    "-untrusted", "tsa.pem")
    verifier = rfc3161_client.VerifierBuilder(
        tsa_certificate=x509.load_pem_x509_certificate(pki.tsa_pem),
        roots=[x509.load_pem_x509_certificate(pki.ca_pem)]).build()
    assert verifier.verify_message(rfc3161_client.decode_timestamp_response(response),
                                   b"hello world\n")


@needs_openssl
@pytest.mark.parametrize("algorithm", ["-sha256", "-sha384", "-sha512"])
def test_every_accepted_hash_is_verified_by_openssl(pki: Pki, algorithm: str) -> None:
    request = query(pki, "req.tsq", algorithm, "-cert")
    stamp(pki, request)
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem")


@needs_openssl
def test_a_requested_policy_is_stamped_and_checked_by_openssl(pki: Pki) -> None:
    request = query(pki, "req.tsq", "-sha256", "-cert", "-tspolicy", POLICY)
    response = stamp(pki, request)
    assert describe_token(response).policy == POLICY
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem")
    with pytest.raises(InvariantViolation, match="policy"):
        stamp(pki, request, policy="1.2.3.4.2")


@needs_openssl
def test_the_token_states_serial_nonce_time_accuracy_and_tsa_name(pki: Pki) -> None:
    request_der = query(pki, "req.tsq", "-sha256", "-cert")
    request = parse_request(request_der, accepted_policies=ACCEPTED)
    assert isinstance(request, TimeStampRequest)
    serial = (1 << 159) + 12345
    gen_time_ms = 1_767_225_600_120  # 2026-01-01T00:00:00.12Z
    response = stamp(pki, request_der, serial=serial, gen_time_ms=gen_time_ms,
                     accuracy_ms=1500, tsa_name=True)
    summary = describe_token(response)
    assert (summary.status, summary.serial, summary.nonce, summary.gen_time_ms) == (
        0, serial, request.nonce, gen_time_ms)
    assert (summary.hash_alg, summary.imprint, summary.policy) == (
        "sha256", hashlib.sha256(b"hello world\n").digest(), POLICY)
    text = openssl(pki, "ts", "-reply", "-in", "resp.tsr", "-text").stdout
    assert "Time stamp: Jan  1 00:00:00.12 2026 GMT" in text
    assert f"Serial number: 0x{serial:X}" in text
    assert f"Nonce: 0x{request.nonce:016X}" in text
    assert "Accuracy: 0x01 seconds, 0x01F4 millis, unspecified micros" in text
    assert "TSA: DirName:/CN=acme-tsa TSA/O=acme" in text
    # The messageImprint is echoed exactly as requested (OpenSSL sends NULL parameters).
    tst = cms.ContentInfo.load(token_of(response))["content"]["encap_content_info"][
        "content"].parsed
    assert tst["message_imprint"].dump() == tsp.TimeStampReq.load(request_der)[
        "message_imprint"].dump()
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem")


def test_the_signed_attributes_follow_rfc_5816(pki: Pki) -> None:
    response = stamp(pki, OPENSSL_REQUEST)
    data = signed_data(response)
    assert data["version"].native == "v3"
    assert len(data["signer_infos"]) == 1
    signer_info = data["signer_infos"][0]
    attributes = {a["type"].native: a["values"] for a in signer_info["signed_attrs"]}
    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attributes["content_type"][0].native == "tst_info"
    tst_der = data["encap_content_info"]["content"].contents
    assert attributes["message_digest"][0].native == hashlib.sha256(tst_der).digest()
    cert_der = x509.load_pem_x509_certificate(pki.tsa_pem).public_bytes(
        serialization.Encoding.DER)
    ess = attributes["signing_certificate_v2"][0]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(cert_der).digest()
    assert ess["issuer_serial"]["serial_number"].native == x509.load_pem_x509_certificate(
        pki.tsa_pem).serial_number
    # RFC 5816: the hash algorithm is SHA-256, its DEFAULT, and so left out in DER: the
    # ESSCertIDv2 starts with the certHash OCTET STRING.
    assert ess.contents[:1] == b"\x04"
    assert signer_info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"


def test_the_same_arguments_give_the_same_token(pki: Pki) -> None:
    # Pure: no clock, no randomness (RFC 6979 deterministic ECDSA).
    assert stamp(pki, OPENSSL_REQUEST) == stamp(pki, OPENSSL_REQUEST)
    assert stamp(pki, OPENSSL_REQUEST) != stamp(pki, OPENSSL_REQUEST, serial=43)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"serial": 0}, "serial"),
    ({"serial": 1 << 160}, "serial"),
    ({"gen_time_ms": -1}, "gen_time_ms"),
    ({"policy": "not an oid"}, "policy"),
    ({"accuracy_ms": 0}, "accuracy"),
    ({"deposit_index": -1}, "deposit index"),
    ({"deposit_index": 1 << 63}, "deposit index"),
])
def test_bad_arguments_from_our_own_service_are_bugs(pki: Pki, arguments: dict[str, Any],
                                                       message: str) -> None:
    with pytest.raises(InvariantViolation, match=message):
        stamp(pki, OPENSSL_REQUEST, **arguments)


@needs_openssl
def test_openssl_verifies_an_rsa_signer(pki: Pki) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert_pem, key_pem = _tsa_cert_with(pki, [
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)], key)
    (pki.directory / "rsa-tsa.pem").write_bytes(cert_pem)
    signer = load_tsa_signer(cert_pem, key_pem)
    stamp(pki, query(pki, "req.tsq", "-sha256"), name="rsa.tsr", signer=signer)
    assert verifies(pki, "rsa.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem",
                    "-untrusted", "rsa-tsa.pem")


# --- the deposit index ------------------------------------------------------------------
@needs_openssl
def test_the_deposit_index_rides_in_a_tstinfo_extension_clients_accept(pki: Pki) -> None:
    index = 2**63 - 1
    response = stamp(pki, query(pki, "req.tsq", "-sha256", "-cert"), deposit_index=index)
    assert parse_token_deposit_index(token_of(response)) == index
    assert describe_token(response).deposit_index == index
    text = openssl(pki, "ts", "-reply", "-in", "resp.tsr", "-text").stdout
    assert DEPOSIT_INDEX_OID in text
    assert verifies(pki, "resp.tsr", "-queryfile", "req.tsq", "-CAfile", "ca.pem")
    verifier = rfc3161_client.VerifierBuilder().add_root_certificate(
        x509.load_pem_x509_certificate(pki.ca_pem)).build()
    assert verifier.verify_message(rfc3161_client.decode_timestamp_response(response),
                                   b"hello world\n")
    # Non-critical and an INTEGER, read here with asn1crypto's schema.
    tst = cms.ContentInfo.load(token_of(response))["content"]["encap_content_info"][
        "content"].parsed
    [extension] = tst["extensions"]
    assert (extension["extn_id"].dotted, extension["critical"].native) == (
        DEPOSIT_INDEX_OID, False)
    assert core.Integer.load(extension["extn_value"].native).native == index


def test_a_token_without_deposit_index_names_none(pki: Pki) -> None:
    response = stamp(pki, OPENSSL_REQUEST)
    assert parse_token_deposit_index(token_of(response)) is None
    assert describe_token(response).deposit_index is None


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"\x30\x03\x02\x01", OPENSSL_REQUEST,
                                     b"\x00" * (MAX_REQUEST_BYTES * 20)])
def test_reading_tokens_refuses_garbage_with_a_typed_error(garbage: bytes) -> None:
    with pytest.raises(TimestampFormatError):
        describe_token(garbage)
    with pytest.raises(TimestampFormatError):
        parse_token_deposit_index(garbage)


# --- rfc3161-client ---------------------------------------------------------------------
def test_rfc3161_client_verifies_our_token_for_its_own_request(pki: Pki) -> None:
    request = (rfc3161_client.TimestampRequestBuilder().data(b"hello world\n")
               .cert_request(cert_request=True).build())
    response = stamp(pki, request.as_bytes(), deposit_index=7)
    decoded = rfc3161_client.decode_timestamp_response(response)
    assert decoded.status == 0 and decoded.tst_info.serial_number == 42
    assert decoded.tst_info.nonce == request.nonce
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    verifier = (rfc3161_client.VerifierBuilder.from_request(request)
                .add_root_certificate(ca).build())
    assert verifier.verify_message(decoded, b"hello world\n")
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(decoded, b"hello world!\n")
    other = x509.load_pem_x509_certificate(pki.path("other-ca.pem").read_bytes())
    with pytest.raises(rfc3161_client.VerificationError):
        rfc3161_client.VerifierBuilder().add_root_certificate(other).build().verify_message(
            decoded, b"hello world\n")


def test_rfc3161_client_reads_our_rejection(pki: Pki) -> None:
    response = rejection_response(Rejection("badAlg", "sha1 is not accepted"))
    decoded = rfc3161_client.decode_timestamp_response(response)
    assert decoded.status == 2
    assert decoded.status_string == ["sha1 is not accepted"]


# --- rejections -------------------------------------------------------------------------
def _check_rejection(rejection: Rejection) -> None:
    """The response for `rejection`, read with the schema above: status 2, the text, and
    exactly the one failure bit; no token."""
    response = rejection_response(rejection)
    decoded = _RespSchema.load(response, strict=True)
    assert decoded.dump(force=True) == response  # DER
    status = decoded["status"]
    assert status["status"].native == 2
    assert status["status_string"].native == [rejection.text]
    bits = status["fail_info"].native
    assert [i for i, bit in enumerate(bits) if bit] == [FAILURE_BITS[rejection.failure_info]]
    assert bits[-1] == 1  # DER: no trailing zero bits in a named bit string
    assert isinstance(decoded["time_stamp_token"], core.Void)
    summary = describe_token(response)
    assert (summary.status, summary.failure_info, summary.status_text) == (
        2, (rejection.failure_info,), rejection.text)


@needs_openssl
@pytest.mark.parametrize("failure", sorted(FAILURE_BITS))
def test_openssl_prints_each_rejection(pki: Pki, failure: Any) -> None:
    rejection = Rejection(failure, f"refused: {failure}")
    pki.path("rejected.tsr").write_bytes(rejection_response(rejection))
    done = openssl(pki, "ts", "-reply", "-in", "rejected.tsr", "-text")
    assert done.returncode == 0, done.stderr
    assert "Status: Rejected." in done.stdout
    assert f"Status description: {rejection.text}" in done.stdout
    assert f"Failure info: {OPENSSL_FAILURE_TEXT[failure]}\n" in done.stdout
    assert "TST info:\nNot included." in done.stdout
    _check_rejection(rejection)


class _AlgorithmSchema(core.Sequence):  # type: ignore[misc]
    _fields = [("algorithm", core.ObjectIdentifier),  # noqa: RUF012
               ("parameters", core.Any, {"optional": True})]


class _ImprintSchema(core.Sequence):  # type: ignore[misc]
    _fields = [("hash_algorithm", _AlgorithmSchema),  # noqa: RUF012
               ("hashed_message", core.OctetString)]


class _RequestSchema(core.Sequence):  # type: ignore[misc]
    """TimeStampReq declared here from the RFC, with any parameters allowed (asn1crypto's
    DigestAlgorithm would force NULL on SHA-2)."""

    _fields = [("version", core.Integer),  # noqa: RUF012
               ("message_imprint", _ImprintSchema),
               ("req_policy", core.ObjectIdentifier, {"optional": True}),
               ("nonce", core.Integer, {"optional": True}),
               ("cert_req", core.Boolean, {"default": False}),
               ("extensions", tsp.Extensions, {"implicit": 0, "optional": True})]


def _request(*, version: int = 1, hash_oid: str = SHA256, imprint: bytes | None = None,
             params: Any = None, policy: str | None = None, nonce: int | None = 5,
             cert_req: bool | None = None, extensions: list[Any] | None = None) -> bytes:
    """A TimeStampReq built with asn1crypto, each field as given (parameters absent
    unless given)."""
    algorithm: dict[str, Any] = {"algorithm": hash_oid}
    if params is not None:
        algorithm["parameters"] = params
    fields: dict[str, Any] = {"version": version, "message_imprint": {
        "hash_algorithm": algorithm, "hashed_message": b"\x11" * 32 if imprint is None
        else imprint}}
    for name, value in (("req_policy", policy), ("nonce", nonce), ("cert_req", cert_req),
                        ("extensions", extensions)):
        if value is not None:
            fields[name] = value
    der: bytes = _RequestSchema(fields).dump()
    return der


def _long_form(der: bytes) -> bytes:
    """The same SEQUENCE with its (short) length in BER's long form."""
    assert der[1] < 0x80
    return der[:1] + b"\x81" + der[1:]


EXTENSION = {"extn_id": "1.2.3.4.5", "critical": False, "extn_value": b"\x05\x00"}

REFUSED = [
    ("oversized", b"\x30" * (MAX_REQUEST_BYTES + 1), "badRequest"),
    ("oversized but well formed", _request(extensions=[
        dict(EXTENSION, extn_value=b"\x00" * MAX_REQUEST_BYTES)]), "badRequest"),
    ("empty", b"", "badDataFormat"),
    ("trailing byte", OPENSSL_REQUEST + b"\x00", "badDataFormat"),
    ("truncated", OPENSSL_REQUEST[:-1], "badDataFormat"),
    ("long-form length (BER)", _long_form(OPENSSL_REQUEST), "badDataFormat"),
    ("BOOLEAN TRUE as 0x01 (BER)", OPENSSL_REQUEST[:-1] + b"\x01", "badDataFormat"),
    ("not a TimeStampReq", b"\x02\x01\x01", "badDataFormat"),
    ("version 2", _request(version=2), "badRequest"),
    ("version 0", _request(version=0), "badRequest"),
    ("sha1", _request(hash_oid=SHA1, imprint=b"\x11" * 20), "badAlg"),
    ("hmac-sha256", _request(hash_oid=HMAC_SHA256), "badAlg"),
    ("huge OID", _request(hash_oid="1.3." + ".".join(["99999999999"] * 300)), "badAlg"),
    ("hash parameters", _request(params=core.Integer(0)), "badAlg"),
    ("short imprint", _request(imprint=b"\x11" * 31), "badDataFormat"),
    ("sha512 with a sha256 imprint", _request(hash_oid=SHA512), "badDataFormat"),
    ("another policy", _request(policy="1.2.3.4.2"), "unacceptedPolicy"),
    ("an extension", _request(extensions=[EXTENSION]), "unacceptedExtension"),
    ("161-bit nonce", _request(nonce=1 << 160), "badRequest"),
    ("negative nonce", _request(nonce=-1), "badRequest"),
]


@pytest.mark.parametrize(("der", "failure"), [(d, f) for _, d, f in REFUSED],
                         ids=[name for name, _, _ in REFUSED])
def test_parse_request_refuses_with_the_right_failure(der: bytes, failure: str) -> None:
    rejection = parse_request(der, accepted_policies=ACCEPTED)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.failure_info == failure, rejection
    _check_rejection(rejection)


@needs_openssl
def test_openssl_requests_we_refuse(pki: Pki) -> None:
    sha1 = parse_request(query(pki, "sha1.tsq", "-sha1"), accepted_policies=ACCEPTED)
    assert isinstance(sha1, Rejection) and sha1.failure_info == "badAlg"
    other = parse_request(query(pki, "pol.tsq", "-sha256", "-tspolicy", "1.2.3.4.2"),
                          accepted_policies=ACCEPTED)
    assert isinstance(other, Rejection) and other.failure_info == "unacceptedPolicy"


@pytest.mark.parametrize(("der", "expected"), [
    (_request(nonce=(1 << 160) - 1), {"nonce": (1 << 160) - 1}),
    (_request(nonce=None), {"nonce": None, "cert_req": False}),
    (_request(hash_oid=SHA384, imprint=b"\x22" * 48, policy=POLICY, cert_req=True),
     {"hash_alg": "sha384", "policy": POLICY, "cert_req": True, "null_params": False}),
    (_request(params=core.Null()), {"null_params": True}),
    (OPENSSL_REQUEST, {"hash_alg": "sha256", "nonce": 0x892817AAF7B428C9, "cert_req": True,
                       "null_params": True, "policy": None}),
])
def test_parse_request_accepts(der: bytes, expected: dict[str, Any]) -> None:
    request = parse_request(der, accepted_policies=ACCEPTED)
    assert isinstance(request, TimeStampRequest), request
    assert {name: getattr(request, name) for name in expected} == expected


@pytest.mark.parametrize("params", [None, core.Null()], ids=["absent", "NULL"])
def test_the_token_echoes_the_message_imprint_as_requested(pki: Pki, params: Any) -> None:
    request = _request(params=params)
    tst = cms.ContentInfo.load(token_of(stamp(pki, request)))["content"][
        "encap_content_info"]["content"].parsed
    assert tst["message_imprint"].dump() == _RequestSchema.load(request)[
        "message_imprint"].dump()


# --- property: parse_request never raises -----------------------------------------------
_OIDS = st.one_of(
    st.sampled_from([SHA256, SHA384, SHA512, SHA1, HMAC_SHA256, "1.2.840.113549.2.5",
                     "2.16.840.1.101.3.4.2.4"]),
    st.lists(st.integers(0, 2**70), min_size=1, max_size=12).map(
        lambda arcs: "1.3." + ".".join(map(str, arcs))),
)


@st.composite
def _structured_requests(draw: st.DrawFn) -> bytes:
    """TimeStampReqs field by field, each field mostly valid so that every check is
    reached (a request must pass the earlier checks to be refused by a later one)."""
    hash_oid = draw(st.one_of(st.sampled_from([SHA256, SHA384, SHA512]), _OIDS))
    right_length = {SHA256: 32, SHA384: 48, SHA512: 64}.get(hash_oid, 20)
    version = draw(st.one_of(st.just(1), st.just(1), st.integers(-(2**80), 2**80)))
    imprint = draw(st.one_of(st.binary(min_size=right_length, max_size=right_length),
                             st.binary(min_size=right_length, max_size=right_length),
                             st.binary(max_size=80)))
    params = draw(st.sampled_from([None, None, core.Null(), core.Integer(0),
                                   core.OctetString(b"")]))
    policy = draw(st.one_of(st.none(), st.just(POLICY), _OIDS))
    nonce = draw(st.one_of(st.none(), st.integers(0, 2**64),
                           st.integers(-(2**200), 2**200)))
    cert_req = draw(st.sampled_from([None, True, False]))
    extensions = draw(st.one_of(st.none(), st.none(), st.none(), st.lists(
        st.builds(lambda oid, critical, value: {"extn_id": oid, "critical": critical,
                                                "extn_value": value},
                  _OIDS, st.booleans(), st.binary(max_size=20)), min_size=1, max_size=2)))
    return _request(version=version, hash_oid=hash_oid, imprint=imprint, params=params,
                    policy=policy, nonce=nonce, cert_req=cert_req, extensions=extensions)


def _mutate(base: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    data = bytearray(base)
    for kind, position, chunk in edits:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= chunk[0] or 1
        elif kind == "truncate":
            del data[at:]
        elif kind == "append":
            data += chunk
        elif kind == "insert":
            data[at:at] = chunk
        elif kind == "delete":
            del data[at:at + len(chunk)]
    return bytes(data)


_MUTATED = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "append", "insert",
                                               "delete"]),
                              st.integers(0, 1000), st.binary(min_size=1, max_size=8)),
                    min_size=1, max_size=4)


def _tlv(tag: int, inner: bytes) -> bytes:
    """A constructed DER element: `tag` (one byte), the definite length, `inner`."""
    size = len(inner)
    if size < 0x80:
        return bytes([tag, size]) + inner
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + inner


_PRIMITIVES = st.one_of(
    st.integers(-(2**200), 2**200).map(lambda n: core.Integer(n).dump()),
    st.binary(max_size=40).map(lambda b: core.OctetString(b).dump()),
    st.booleans().map(lambda b: core.Boolean(b).dump()),
    _OIDS.map(lambda oid: core.ObjectIdentifier(oid).dump()),
    st.just(core.Null().dump()),
    st.text(max_size=10).map(lambda t: core.UTF8String(t).dump()),
    st.just(core.GeneralizedTime("20250101120000.5Z").dump()),
)
_RANDOM_DER = st.recursive(_PRIMITIVES, lambda children: st.tuples(
    st.sampled_from([0x30, 0x31, 0xA0, 0xA1, 0x80 | 0x20]),  # SEQUENCE, SET, [0], [1]
    st.lists(children, max_size=6).map(b"".join),
).map(lambda t: _tlv(*t)), max_leaves=20)
"""Random DER trees: asn1crypto's primitives inside SEQUENCEs, SETs and context tags."""


def test_parse_request_never_raises_and_every_refusal_is_a_valid_response(pki: Pki) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.binary(max_size=200),
        st.binary(min_size=MAX_REQUEST_BYTES - 2, max_size=MAX_REQUEST_BYTES + 2),
        _MUTATED.map(lambda edits: _mutate(OPENSSL_REQUEST, edits)),
        _structured_requests(),
        _structured_requests(),  # twice: the later checks need requests passing the earlier
        st.tuples(_structured_requests(), _MUTATED).map(lambda t: _mutate(*t)),
        _RANDOM_DER,
    ))
    def check(der: bytes) -> None:
        result = parse_request(der, accepted_policies=ACCEPTED)
        if isinstance(result, Rejection):
            counts[result.failure_info] += 1
            _check_rejection(result)
        else:
            counts["granted"] += 1
            assert len(result.imprint) == {"sha256": 32, "sha384": 48,
                                           "sha512": 64}[result.hash_alg]
            assert result.policy in (None, POLICY)
            assert result.nonce is None or 0 <= result.nonce < 1 << 160
            summary = describe_token(granted_response(
                result, serial=1, gen_time_ms=pki.now_ms, policy=POLICY, signer=pki.signer))
            assert (summary.imprint, summary.hash_alg, summary.nonce) == (
                result.imprint, result.hash_alg, result.nonce)

    check()
    print("\nparse_request outcomes:", dict(sorted(counts.items())))
    assert {"granted", "badAlg", "badRequest", "badDataFormat", "unacceptedPolicy",
            "unacceptedExtension"} <= counts.keys(), counts


# --- genTime ----------------------------------------------------------------------------
@pytest.mark.parametrize(("time_ms", "text"), [
    (0, "19700101000000Z"),
    (1_500, "19700101000001.5Z"),
    (1_010, "19700101000001.01Z"),
    (1_001, "19700101000001.001Z"),
    (1_767_225_599_999, "20251231235959.999Z"),
    (253_402_300_799_000, "99991231235959Z"),
])
def test_gen_time_drops_trailing_zeros(time_ms: int, text: str) -> None:
    assert generalized_time(time_ms) == text


@given(st.integers(0, 253_402_300_799_999))
def test_gen_time_reads_back_as_the_same_instant(time_ms: int) -> None:
    text = generalized_time(time_ms)
    expected = (datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
                + datetime.timedelta(milliseconds=time_ms))
    assert core.GeneralizedTime(text).native == expected
    assert "." not in text or not text.endswith("0Z")


def test_gen_time_in_a_token_is_gen_time_ms(pki: Pki) -> None:
    for time_ms in (pki.now_ms, pki.now_ms - pki.now_ms % 1000, 1_000_000_000_007):
        assert describe_token(stamp(pki, OPENSSL_REQUEST, gen_time_ms=time_ms)).gen_time_ms \
            == time_ms
