"""TLS admission by organisation CAs registered on chain (ADR 0005 as amended, ADR 0011):
a node whose certificate comes from its organisation's own CA (Ed25519) connects over
real sockets once that CA is added to the live contexts as a trust anchor, and only
with the certificate the chain pins for its name; another organisation's CA cannot
speak for a name it does not own."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.test_peers import FAST, LOGGER, Inbox, eventually, free_ports, logged, run, running
from tidechain.client.files import OrgDir, init_org
from tidechain.identity import from_pem
from tidechain.node.peers import PeerNetwork
from tidechain.node.tls import (
    TlsFiles,
    admission_refusal,
    ca_ders,
    certificate_fingerprint,
    client_context,
    issue_node_certificate,
    make_network_ca,
    server_context,
    write_node_tls,
)


def _now_ms() -> int:
    """ssl checks validity against the wall clock; X.509 stores whole seconds."""
    return int(time.time()) * 1000


NET_CAS: list[bytes] = []
"""The network CA (DER), filled by the `material` fixture."""


def _org_pair(org: OrgDir) -> tuple[bytes, bytes]:
    return org.cert_path.read_bytes(), org.key_path.read_bytes()


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """node0 from the network CA; node3 from org "delta"'s CA (trusting the network
    CA, as `tide node join` writes it); "fake1" is a node1 certificate from delta."""
    root = tmp_path_factory.mktemp("admission")
    now = _now_ms()
    ca = make_network_ca("test-net", now)
    delta = init_org(root / "delta", "delta", "Delta Co., Ltd.", "91350100M000100Y43", now)
    node0 = write_node_tls(root / "node0", ca[0], issue_node_certificate(ca, "node0", now, 1))
    node3 = write_node_tls(root / "node3", ca[0],
                           issue_node_certificate(_org_pair(delta), "node3", now, 1))
    other3 = write_node_tls(root / "other3", ca[0],
                            issue_node_certificate(_org_pair(delta), "node3", now, 1))
    fake1 = issue_node_certificate(_org_pair(delta), "node1", now, 1)
    NET_CAS[:] = ca_ders(ca[0])
    return {"node0": node0, "node3": node3, "other3": other3, "fake1": fake1,
            "delta": from_pem(delta.cert_path.read_bytes()),
            "network_ca": ca[0]}


def _network(files: TlsFiles, me: str, ports: dict[str, int], inbox: Inbox) -> PeerNetwork:
    peers: dict[str, tuple[str, int] | None] = {
        n: ("127.0.0.1", p) for n, p in ports.items() if n != me}
    return PeerNetwork(me, "127.0.0.1", ports[me], peers, server_context(files),
                       client_context(files), inbox, rng=random.Random(me),
                       timing=FAST, max_frame_bytes=64 * 1024, queue_limit=64,
                       queue_max_bytes=1024 * 1024)


def _nodes(material: dict[str, object]) -> tuple[TlsFiles, TlsFiles, TlsFiles, bytes]:
    """node0 (network CA), node3 (delta's CA), other3 (an impostor's), and delta's CA."""
    node0, node3, other3 = (material[n] for n in ("node0", "node3", "other3"))
    assert isinstance(node0, TlsFiles) and isinstance(node3, TlsFiles)
    assert isinstance(other3, TlsFiles)
    delta = material["delta"]
    assert isinstance(delta, bytes)
    return node0, node3, other3, delta


def _der(files: TlsFiles) -> bytes:
    return from_pem(files.cert.read_bytes())


def test_the_pinned_fingerprint_is_sha256_of_the_der(material: dict[str, object]) -> None:
    node3 = material["node3"]
    assert isinstance(node3, TlsFiles)
    assert certificate_fingerprint(node3.cert.read_bytes()) == certificate_fingerprint(
        _der(node3))
    assert len(certificate_fingerprint(_der(node3))) == 32


def test_admission_rules(material: dict[str, object]) -> None:
    node0, node3, other3, delta = _nodes(material)
    fake1 = material["fake1"]
    assert isinstance(fake1, tuple)
    pin = certificate_fingerprint(_der(node3))
    # Pinned: exactly that certificate, whoever issued another.
    assert admission_refusal(_der(node3), pin=pin, org_cas=[delta], chain_cas=[delta],
                             network_cas=NET_CAS) is None
    assert "pinned" in str(admission_refusal(_der(other3), pin=pin, org_cas=[delta],
                                             chain_cas=[delta], network_cas=NET_CAS))
    # Not pinned: the owning organisation's CA may vouch for its node.
    assert admission_refusal(_der(other3), pin=b"", org_cas=[delta], chain_cas=[delta],
                             network_cas=NET_CAS) is None
    # A genesis name (no pin, no org): the network CA's certificate, never an org's.
    assert admission_refusal(_der(node0), pin=b"", org_cas=[], chain_cas=[delta],
                             network_cas=NET_CAS) is None
    refusal = admission_refusal(from_pem(fake1[0]), pin=b"", org_cas=[], chain_cas=[delta],
                                network_cas=NET_CAS)
    assert refusal is not None and "does not own" in refusal


def test_an_org_ca_node_connects_once_its_ca_is_trusted_and_its_pin_matches(
        material: dict[str, object], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    node0, node3, _, delta = _nodes(material)
    ports = dict(zip(["node0", "node3"], free_ports(2), strict=True))
    inbox0, inbox3 = Inbox(), Inbox()
    net0 = _network(node0, "node0", ports, inbox0)
    net3 = _network(node3, "node3", ports, inbox3)
    pins = {"node3": certificate_fingerprint(_der(node3))}

    def admit(name: str, der: bytes) -> str | None:
        return admission_refusal(der, pin=pins.get(name, b""),
                                 org_cas=[delta] if name == "node3" else [],
                                 chain_cas=[delta], network_cas=NET_CAS)

    net0.admit = admit

    async def scenario() -> None:
        async with running(net0, net3):
            # node0 dials node3; without delta's CA the handshake fails on node0's side.
            await eventually(lambda: logged(caplog, "node3@", "TLS handshake failed"))
            assert net0.connected_peers() == set()
            net0.add_trust_anchors([delta])
            await eventually(lambda: net0.connected_peers() == {"node3"})
            assert net0.send("node3", b"welcome")
            await eventually(lambda: inbox3.from_peer("node0") == [b"welcome"])

    run(scenario)


def test_a_wrong_certificate_for_a_pinned_name_is_refused(
        material: dict[str, object], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    node0, node3, other3, delta = _nodes(material)
    ports = dict(zip(["node0", "node3"], free_ports(2), strict=True))
    net0 = _network(node0, "node0", ports, Inbox())
    impostor = _network(other3, "node3", ports, Inbox())
    pin = certificate_fingerprint(_der(node3))
    net0.admit = lambda name, der: admission_refusal(der, pin=pin, org_cas=[delta],
                                                     chain_cas=[delta], network_cas=NET_CAS)
    net0.add_trust_anchors([delta])

    async def scenario() -> None:
        async with running(net0, impostor):
            await eventually(lambda: logged(caplog, "node3@", "not the one pinned"))
            assert net0.connected_peers() == set()

    run(scenario)


def test_org_ca_certificates_carry_the_node_name(tmp_path: Path) -> None:
    now = _now_ms()
    org = init_org(tmp_path / "org", "delta", "Delta Co., Ltd.", "91350100M000100Y43", now)
    cert_pem, _ = issue_node_certificate(_org_pair(org), "node7", now, 1)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(org.cert_path.read_bytes()))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node7"]


def test_an_org_cannot_mint_a_genesis_name_through_an_intermediate_it_signed(
        material: dict[str, object], tmp_path: Path) -> None:
    """OpenSSL accepts a chain through any intermediate an organisation's CA signed;
    admission accepts only certificates issued directly by the owning CA."""
    import datetime

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = _now_ms()
    delta = init_org(tmp_path / "delta2", "delta", "Delta Co., Ltd.", "91350100M000100Y43", now)
    delta_key = serialization.load_pem_private_key(delta.key_path.read_bytes(), None)
    delta_cert = x509.load_pem_x509_certificate(delta.cert_path.read_bytes())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.fromtimestamp(now / 1000, datetime.UTC)
    inter = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(
        x509.NameOID.COMMON_NAME, "delta intermediate")])).issuer_name(delta_cert.subject)
        .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(delta_key, None))  # type: ignore[arg-type]
    inter_pem = inter.public_bytes(serialization.Encoding.PEM)
    inter_key_pem = inter_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    forged = issue_node_certificate((inter_pem, inter_key_pem), "node0", now, 1)
    delta_der = from_pem(delta.cert_path.read_bytes())
    refusal = admission_refusal(from_pem(forged[0]), pin=b"", org_cas=[], chain_cas=[delta_der],
                                network_cas=NET_CAS)
    assert refusal is not None and "network CA" in refusal
    # Nor can it speak for its own organisation's node through the intermediate.
    assert admission_refusal(from_pem(forged[0]), pin=b"", org_cas=[delta_der],
                             chain_cas=[delta_der], network_cas=NET_CAS) is not None
