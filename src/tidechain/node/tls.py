"""Certificate material for the peer network (ADR 0005).

Each network has its own certificate authority; each node holds a certificate from
it with the node's name as subject CN and as a DNS subjectAltName. Peers authenticate
each other with TLS 1.3 and both sides must present a certificate that chains to the
network CA. A peer's identity is the verified CN, never the address it came from.

Keys are ECDSA P-256: RFC 8446 section 9.1 makes ecdsa_secp256r1_sha256 mandatory for
every TLS 1.3 implementation, whereas Ed25519 certificates are optional (OpenSSL here
accepts both; Windows SChannel, many HSMs and corporate CAs do not take Ed25519). The
organisations' own CAs (issue 4) will then work whatever issued them.

Organisations that join later (ADR 0005 as amended, ADR 0011) have no certificate from
the network CA: their nodes' certificates come from the organisation's own CA, which
the chain registers. The runtime adds those CAs to the live contexts as extra trust
anchors (`add_trust_anchors`) and, after each handshake, `admission_refusal` decides
whether the verified certificate may speak for the name it carries.

Time comes in as an argument (`now_ms`); only `ssl` reads the wall clock, to check
the validity period during a handshake.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tidechain.core.errors import Rejected

PemPair = tuple[bytes, bytes]
"""(certificate PEM, private key PEM)."""

CA_VALIDITY_DAYS = 10 * 365
"""A network CA outlives its node certificates; issue 4 adds rotation of both."""

NODE_VALIDITY_DAYS = 365
"""Node certificates are renewed yearly (or rotated sooner, issue 4)."""

CLOCK_SKEW_ALLOWANCE = datetime.timedelta(hours=1)
"""Certificates are valid from an hour before `now`, so a peer whose clock is a
little behind still accepts a certificate issued moments ago."""

MAX_NODE_NAME_BYTES = 63
"""The node name is a DNS label in the subjectAltName (RFC 1035: at most 63)."""


class TlsError(Rejected):
    """Bad certificate material: a name, a file or a certificate we cannot use."""

    code = "tls"


@dataclass(frozen=True)
class TlsFiles:
    """Where one node's TLS material lives: the trusted CA(s), its certificate, its key."""

    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> TlsFiles:
        """The layout `tide init` writes: `<node>/tls/{ca.pem,node.pem,node.key}`."""
        return cls(directory / "ca.pem", directory / "node.pem", directory / "node.key")


def make_network_ca(
    network_name: str, now_ms: int, *, validity_days: int = CA_VALIDITY_DAYS,
) -> PemPair:
    """A new self-signed CA for one network: (certificate PEM, private key PEM)."""
    if not network_name or not network_name.isascii() or len(network_name) > 64:
        # X.509 caps CN and O at 64 characters (RFC 5280, ub-common-name).
        raise TlsError("network name must be 1..64 ASCII characters")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, network_name),
        x509.NameAttribute(NameOID.COMMON_NAME, network_name),
    ])
    not_before, not_after = _validity(now_ms, validity_days)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        # path_length=0: the network CA signs node certificates, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def issue_node_certificate(
    ca: PemPair, node_name: str, now_ms: int, validity_days: int = NODE_VALIDITY_DAYS,
    *, ip_addresses: tuple[str, ...] = ("127.0.0.1",), dns_names: tuple[str, ...] = (),
) -> PemPair:
    """A certificate for `node_name` signed by `ca`: CN and DNS SAN = the node name,
    IP SANs = `ip_addresses`, more DNS SANs = `dns_names` (e.g. the host name clients
    reach the API at); usable as TLS server and client. Returns (cert, key) PEM."""
    check_node_name(node_name)
    ca_cert = _load_cert(ca[0])
    try:
        ca_key = serialization.load_pem_private_key(ca[1], password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"not an unencrypted PEM private key: {exc}") from exc
    # The network CA's key is ECDSA; an organisation's CA (identity.certs) is Ed25519,
    # which OpenSSL verifies in a chain even where a peer could not sign with it.
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise TlsError("the CA key is neither an ECDSA nor an Ed25519 key")
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(now_ms, validity_days)
    sans: list[x509.GeneralName] = [x509.DNSName(node_name)]
    try:
        sans += [x509.DNSName(name) for name in dns_names if name != node_name]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    except ValueError as exc:
        raise TlsError(f"not a DNS name or IP address for a certificate: {exc}") from exc
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            *ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
            x509.NameAttribute(NameOID.COMMON_NAME, node_name),
        ]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(not_before, ca_cert.not_valid_before_utc))
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_node_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, algorithm)
    )
    return _cert_pem(cert), _key_pem(key)


def write_node_tls(directory: Path, ca_cert_pem: bytes, node: PemPair) -> TlsFiles:
    """Write a node's TLS files into `directory` (created); the key gets mode 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles.in_directory(directory)
    files.ca_cert.write_bytes(ca_cert_pem)
    files.cert.write_bytes(node[0])
    write_private_pem(files.key, node[1])
    return files


def write_private_pem(path: Path, key_pem: bytes) -> None:
    """Write a private key readable by its owner only (created 0600, never wider)."""
    path.touch(mode=stat.S_IRUSR | stat.S_IWUSR, exist_ok=True)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(key_pem)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """Context for accepting peers: TLS 1.3 only, a client certificate from the CA(s)
    in `files.ca_cert` is required. Which *name* may connect is checked by the caller."""
    return _context(ssl.PROTOCOL_TLS_SERVER, files)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """Context for dialling peers: TLS 1.3 only, the server must present a certificate
    from the CA(s) whose DNS SAN matches the `server_hostname` (the peer's node name)."""
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, files)
    ctx.check_hostname = True  # PROTOCOL_TLS_CLIENT's default; stated because we rely on it
    return ctx


def peer_name(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> str:
    """The subject CN of the peer's *verified* certificate. Raises TlsError when there
    is no verified certificate or the CN is missing, repeated or not a node name."""
    cert = ssl_object.getpeercert()
    if not cert:
        raise TlsError("peer presented no verified certificate")
    names = _common_names(cert.get("subject", ()))
    if len(names) != 1:
        raise TlsError(f"peer certificate has {len(names)} common names, expected 1")
    check_node_name(names[0])
    return names[0]


def _common_names(subject: object) -> list[str]:
    """CN values of a `getpeercert()` subject: a tuple of RDNs, each a tuple of
    (attribute, value) pairs."""
    if not isinstance(subject, tuple):
        return []
    return [pair[1] for rdn in subject if isinstance(rdn, tuple) for pair in rdn
            if isinstance(pair, tuple) and len(pair) == 2 and pair[0] == "commonName"]


def check_node_name(name: str) -> None:
    """Node names are DNS labels: they go into subjectAltName and into log lines."""
    if not (0 < len(name) <= MAX_NODE_NAME_BYTES and name.isascii()
            and all(c.isalnum() or c == "-" for c in name)
            and not name.startswith("-") and not name.endswith("-")):
        raise TlsError(f"node name {name!r} is not a DNS label (letters, digits, '-')")


def _context(protocol: int, files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    # TLS 1.3 only: encrypted certificates in the handshake, no renegotiation, no
    # legacy cipher suites to configure.
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        # cafile may hold several CA certificates: issue 4 trusts one per organisation.
        ctx.load_verify_locations(cafile=str(files.ca_cert))
        ctx.load_cert_chain(certfile=str(files.cert), keyfile=str(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load TLS files {files}: {exc}") from exc
    return ctx


def _validity(now_ms: int, validity_days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if validity_days < 1:
        raise TlsError("validity must be at least one day")
    now = datetime.datetime.fromtimestamp(now_ms / 1000, tz=datetime.UTC)
    return now - CLOCK_SKEW_ALLOWANCE, now + datetime.timedelta(days=validity_days)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )


def _node_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def _load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TlsError(f"not a PEM certificate: {exc}") from exc


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def certificate_fingerprint(cert: bytes) -> bytes:
    """SHA-256 of a certificate's DER (given as DER or PEM): what `add_validator
    --tls-fingerprint` pins on chain."""
    der = cert if not cert.lstrip().startswith(b"-----") else _load_cert(cert).public_bytes(
        serialization.Encoding.DER)
    return hashlib.sha256(der).digest()


def add_trust_anchors(ctx: ssl.SSLContext, ca_ders: list[bytes]) -> None:
    """Trust more CAs (DER) on a live context: handshakes started afterwards use them.
    OpenSSL cannot forget an anchor, so `admission_refusal` is what keeps a CA that
    left the chain from vouching for anyone."""
    if not ca_ders:
        return
    try:
        ctx.load_verify_locations(cadata=b"".join(ca_ders))
    except ssl.SSLError as exc:
        raise TlsError(f"cannot trust these CA certificates: {exc}") from exc


def admission_refusal(leaf_der: bytes, *, pin: bytes, org_cas: list[bytes],
                      chain_cas: list[bytes], network_cas: list[bytes]) -> str | None:
    """Why a peer's verified certificate (`leaf_der`) may not speak for its name, or
    None if it may (ADR 0005 as amended).

    `pin` is the fingerprint the chain records for the name (empty: none), `org_cas`
    the CAs (DER) of the organisation the chain records for it (none for a genesis or
    a configured peer), `chain_cas` every CA the runtime ever trusted from the chain,
    `network_cas` the network CA(s) of node.toml's TLS directory.
    - A pinned name is admitted with exactly the pinned certificate.
    - Otherwise a certificate issued directly by the name's own organisation's CA.
    - Otherwise only one issued directly by the network CA. "Directly" matters:
      OpenSSL accepts a chain through any intermediate an organisation's CA signed,
      so an organisation could otherwise mint certificates in any node's name."""
    if pin:
        if certificate_fingerprint(leaf_der) == pin:
            return None
        return "certificate is not the one pinned on chain for this name"
    leaf = _load_der(leaf_der)
    if any(_issued_by(leaf, ca) for ca in org_cas):
        return None
    if any(_issued_by(leaf, ca) for ca in chain_cas):
        return "certificate is from an organisation's CA that does not own this name"
    if any(_issued_by(leaf, ca) for ca in network_cas):
        return None
    return ("certificate is neither pinned on chain for this name nor issued directly by "
            "its organisation's CA or the network CA")


def ca_ders(pem: bytes) -> list[bytes]:
    """The certificates (DER) of a PEM bundle such as a node's `tls/ca.pem`."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsError(f"not PEM certificates: {exc}") from exc
    return [c.public_bytes(serialization.Encoding.DER) for c in certificates]


def _issued_by(leaf: x509.Certificate, ca_der: bytes) -> bool:
    try:
        leaf.verify_directly_issued_by(_load_der(ca_der))
    except (ValueError, TypeError, InvalidSignature, TlsError):
        return False
    return True


def _load_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise TlsError(f"not a DER certificate: {exc}") from exc
