"""Writing network and node directories: `tide init` (a new network) and `tide node
join` (an organisation's node joining a running one, ADR 0011).

These compose the node's files (node.toml, TLS, validator keys: node/config.py,
node/tls.py) with the client's (keys, organisation CAs, the trust file:
client/files.py), which is why they live here and not in either package.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tidechain.client.files import (
    DEFAULT_LEGAL_NAME,
    DEFAULT_ORG,
    DEFAULT_USCC,
    ORGS_DIR,
    SEED_BYTES,
    TRUST_FILE,
    OrgDir,
    init_org,
    issue_member,
    trust_file_text,
    write_key,
)
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import ConfigError, Rejected
from tidechain.core.limits import MAX_VALIDATORS
from tidechain.identity import Role, make_org_ca, read_org_ca, to_pem
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator
from tidechain.node.config import (
    DEFAULT_API_PORT,
    PEER_PORT_OFFSET,
    NodeConfig,
    PeerAddress,
    bounded_int,
    write_node_toml,
)
from tidechain.node.tls import (
    TlsError,
    certificate_fingerprint,
    check_node_name,
    issue_node_certificate,
    make_network_ca,
    write_node_tls,
    write_private_pem,
)


def init_network(
    directory: Path, name: str, *, validators: int = 1, base_port: int = DEFAULT_API_PORT,
    host: str = "127.0.0.1", org: str = DEFAULT_ORG, legal_name: str = DEFAULT_LEGAL_NAME,
    uscc: str = DEFAULT_USCC, standby: int = 0, api_tls: bool = False,
) -> list[NodeConfig]:
    """Create a new network: keys, genesis, trust file, node configs, and one founding
    organisation whose CA enrols client.key as a depositor and admin.key as an admin.
    `standby` more nodes get a directory, a key, TLS and a place in every node's peer
    list, but not in the genesis: each follows the chain until governance adds it as a
    validator (`tide gov propose add_validator`, ADR 0011), with no file edited then.

    Every node gets an API certificate from the founding organisation's CA
    (`api-tls/`); `api_tls` turns HTTPS on in each node.toml and puts `https://` API
    addresses and the CA that verifies them (`api_ca`) in network.toml. Without it the
    API stays plain HTTP, and setting `api_tls = true` in a node.toml later is enough."""
    total = validators + standby
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty; refusing to overwrite a network")
    if not 1 <= base_port <= 65535 - PEER_PORT_OFFSET - total + 1:
        raise ConfigError(f"ports {base_port}..{base_port + PEER_PORT_OFFSET + total - 1}"
                          " are not all in 1..65535")
    if not 1 <= validators <= MAX_VALIDATORS or not 0 <= standby <= MAX_VALIDATORS - validators:
        raise ConfigError(f"validators must be between 1 and {MAX_VALIDATORS}, with standby "
                          "nodes at most as many in all")
    if not name or any(c in name for c in " +/\t\n") or not name.isascii():
        raise ConfigError("network name must be ASCII without spaces, '+' or '/'")
    try:  # bad org arguments fail before anything is written
        make_org_ca(org, legal_name, uscc, bytes(32), 0, 1000, 1)
    except Rejected as exc:
        raise ConfigError(f"organisation: {exc.reason}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    now_ms = int(time.time() * 1000)
    try:
        ca = make_network_ca(name, now_ms)
    except TlsError as exc:
        raise ConfigError(exc.reason) from exc
    (directory / "ca.pem").write_bytes(ca[0])
    write_private_pem(directory / "ca.key", ca[1])
    addresses = [PeerAddress(f"node{i}", host, base_port + PEER_PORT_OFFSET + i)
                 for i in range(total)]
    nodes: list[NodeConfig] = []
    gen_validators = []
    for i, me in enumerate(addresses):
        node_dir = directory / me.name
        node_dir.mkdir()
        node = NodeConfig(node_dir, me.name, f"{name}/{me.name}", host, base_port + i,
                          peer_host=host, peer_port=me.port,
                          peers=tuple(a for a in addresses if a != me), api_tls=api_tls,
                          tsa=True)
        write_node_tls(node.tls_files.cert.parent, ca[0],
                       issue_node_certificate(ca, me.name, now_ms, ip_addresses=(host,)))
        signer = write_key(node.key_path, node.key_name, os.urandom(SEED_BYTES))
        if i < validators:
            gen_validators.append(GenesisValidator(node.key_name, signer.key.public_key))
        write_node_toml(node)
        nodes.append(node)
    genesis_ms = int(time.time() * 1000)
    client = write_key(directory / "client.key", f"{name}/client", os.urandom(SEED_BYTES))
    admin = write_key(directory / "admin.key", f"{name}/admin", os.urandom(SEED_BYTES))
    org_dir = OrgDir(directory / ORGS_DIR / org)
    founder = _founding_org(org_dir.directory, org, legal_name, uscc, genesis_ms,
                            [("client", client.key, (Role.DEPOSITOR,)),
                             ("admin", admin.key, (Role.ADMIN,))])
    for node in nodes:
        write_api_tls(node, org_dir, genesis_ms)
        write_tsa(node, org_dir, genesis_ms, directory / "client.key")
    genesis = Genesis(name, genesis_ms, tuple(gen_validators), (founder,),
                      newest_contract_versions())
    (directory / "genesis.cbor").write_bytes(genesis.encode())
    (directory / TRUST_FILE).write_text(trust_file_text(genesis))
    api_ca = org_dir.cert_path.relative_to(directory).as_posix()
    (directory / "network.toml").write_text(
        f'name = "{name}"\nchain_id = "{genesis.chain_id.hex()}"\norigin = "{genesis.origin}"\n'
        # The CA a client verifies the nodes' API certificates with, beside the switch.
        + (f'api_tls = true\napi_ca = "{api_ca}"\n' if api_tls else "")
        + "".join(f'\n[[nodes]]\nname = "{n.name}"\napi = "{n.api_url}"\n'
                  f'peer = "{n.peer_host}:{n.peer_port}"\n' for n in nodes)
    )
    return nodes


def newest_contract_versions() -> tuple[tuple[str, int], ...]:
    """The contracts a new network starts on a version above 1: the newest this software
    has, so a fresh network has every rule without a governance vote (evidence v2)."""
    from tidechain.contracts import default_registry

    return tuple((name, versions[-1])
                 for name, versions in default_registry().versions().items()
                 if versions[-1] > 1)


def write_api_tls(node: NodeConfig, org: OrgDir, now_ms: int) -> None:
    """The node's API certificate (`api_cert`, `api_key`, and `api-tls/ca.pem`) from
    the organisation's CA: ECDSA P-256 signed by the CA's Ed25519 key, for the node's
    name and the host its API is reached at (IP or DNS subjectAltName; with a wildcard
    host, loopback too)."""
    host = node.api_host
    ips: tuple[str, ...] = (host,) if _is_ip(host) else ()
    if ips and ipaddress.ip_address(host).is_unspecified:  # 0.0.0.0 or ::: not an address
        ips = ("127.0.0.1", "::1")
    dns = () if ips else (host,)
    ca_pem = org.cert_path.read_bytes()
    try:
        cert, key = issue_node_certificate((ca_pem, org.key_path.read_bytes()), node.name,
                                           now_ms, ip_addresses=ips, dns_names=dns)
    except TlsError as exc:
        raise ConfigError(f"API certificate from {org.directory}: {exc.reason}") from exc
    node.api_cert_path.parent.mkdir(parents=True, exist_ok=True)
    node.api_cert_path.write_bytes(cert)
    write_private_pem(node.api_key_path, key)
    node.api_ca_path.parent.mkdir(parents=True, exist_ok=True)
    node.api_ca_path.write_bytes(ca_pem)


def write_tsa(node: NodeConfig, org: OrgDir, now_ms: int, depositor: Path) -> None:
    """The node's RFC 3161 time-stamp authority files (`tsa/`): an ECDSA P-256 key and
    its certificate from the organisation's CA (critical EKU timeStamping only), the CA
    as the chain tokens carry, and the member key that deposits each imprint (the
    network's depositor, `client.key`)."""
    from tidechain.timestamp.tsa_cert import issue_tsa_certificate

    ca_pem = org.cert_path.read_bytes()
    try:
        cert, key = issue_tsa_certificate(ca_pem, org.key_path.read_bytes(), node.name,
                                          now_ms)
    except Rejected as exc:
        raise ConfigError(f"TSA certificate from {org.directory}: {exc.reason}") from exc
    tsa = node.directory / "tsa"
    tsa.mkdir(parents=True, exist_ok=True)
    (node.directory / node.tsa_cert).write_bytes(cert)
    write_private_pem(node.directory / node.tsa_key, key)
    (node.directory / node.tsa_chain).write_bytes(ca_pem)
    write_private_pem(node.directory / node.tsa_depositor, depositor.read_bytes())


def rotate_tsa(node: NodeConfig, org: OrgDir, now_ms: int) -> Path:
    """Replace the node's TSA key and certificate with new ones from the organisation's
    CA. The old certificate is kept in `tsa/retired/` (a token carries its own
    certificate, so old tokens verify against the same CA without it; it is kept for
    the record). Returns where it went."""
    from tidechain.timestamp.tsa_cert import issue_tsa_certificate

    cert_path = node.directory / node.tsa_cert
    if not cert_path.exists():
        raise ConfigError(f"{cert_path} not found: this node has no time-stamp authority")
    try:
        cert, key = issue_tsa_certificate(org.cert_path.read_bytes(),
                                          org.key_path.read_bytes(), node.name, now_ms)
    except Rejected as exc:
        raise ConfigError(f"TSA certificate from {org.directory}: {exc.reason}") from exc
    retired_dir = cert_path.parent / "retired"
    retired_dir.mkdir(exist_ok=True)
    retired = retired_dir / f"tsa-{now_ms}.pem"
    retired.write_bytes(cert_path.read_bytes())
    write_private_pem(node.directory / node.tsa_key, key)
    cert_path.write_bytes(cert)
    return retired


def _founding_org(directory: Path, org_id: str, legal_name: str, uscc: str, now_ms: int,
                  initial: list[tuple[str, SigningKey, tuple[Role, ...]]]) -> GenesisOrg:
    org = init_org(directory, org_id, legal_name, uscc, now_ms)
    certs = []
    for name, key, roles in initial:
        cert = issue_member(org, name, key.public_key, roles, now_ms)
        (directory / f"{name}.pem").write_bytes(to_pem(cert))
        certs.append(cert)
    return GenesisOrg(org.cert(), tuple(certs))

@dataclass(frozen=True)
class JoinedNode:
    """What `join_node` made, and what the organisation hands to the admins."""

    config: NodeConfig
    org_id: str
    public_key: bytes
    tls_fingerprint: bytes

    @property
    def address(self) -> str:
        return f"{self.config.peer_host}:{self.config.peer_port}"

    def proposal_args(self) -> list[str]:
        """`tide gov propose` arguments that add this node as a validator."""
        return ["add_validator", "--name", self.config.key_name, "--key",
                self.public_key.hex(), "--org", self.org_id, "--address", self.address,
                "--tls-fingerprint", self.tls_fingerprint.hex()]

def join_node(directory: Path, genesis_bytes: bytes, network_ca_pem: bytes, org: OrgDir,
              name: str, bootstrap: tuple[PeerAddress, ...], *, host: str = "127.0.0.1",
              api_port: int = DEFAULT_API_PORT,
              peer_port: int = DEFAULT_API_PORT + PEER_PORT_OFFSET) -> JoinedNode:
    """A node directory for an organisation joining a running network (ADR 0011), made
    without the network CA's key or any other node's files: a consensus key, a TLS
    certificate from the organisation's own CA, node.toml with its own addresses and
    the bootstrap peers; the network's public genesis (and its trust file) beside it,
    in `directory.parent`; an API certificate from the same CA (`api-tls/`, used once
    `api_tls = true` is set). Nothing is written if an argument is bad."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty; refusing to overwrite a node")
    try:
        genesis = Genesis.decode(genesis_bytes)
        check_node_name(name)
    except TlsError as exc:
        raise ConfigError(exc.reason) from exc
    except Rejected as exc:
        raise ConfigError(f"genesis: {exc.reason}") from exc
    if name in {p.name for p in bootstrap}:
        raise ConfigError(f"{name} cannot be its own bootstrap peer")
    for port, what in ((api_port, "api port"), (peer_port, "peer port")):
        bounded_int(port, what, 1, 65535)
    _check_ca_pem(network_ca_pem)
    network_dir = directory.parent
    existing = network_dir / "genesis.cbor"
    if existing.exists() and existing.read_bytes() != genesis_bytes:
        raise ConfigError(f"{existing} holds another network's genesis")
    org_id = read_org_ca(org.cert()).org_id
    now_ms = int(time.time() * 1000)
    ips = (host,) if _is_ip(host) else ()
    try:
        tls = issue_node_certificate((org.cert_path.read_bytes(), org.key_path.read_bytes()),
                                     name, now_ms, ip_addresses=ips)
    except TlsError as exc:
        raise ConfigError(f"organisation CA {org.directory}: {exc.reason}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    existing.write_bytes(genesis_bytes)
    if not (network_dir / TRUST_FILE).exists():
        (network_dir / TRUST_FILE).write_text(trust_file_text(genesis))
    node = NodeConfig(directory, name, f"{genesis.name}/{name}", host, api_port,
                      peer_host=host, peer_port=peer_port, peers=bootstrap)
    write_node_tls(node.tls_files.cert.parent, network_ca_pem, tls)
    signer = write_key(node.key_path, node.key_name, os.urandom(SEED_BYTES))
    write_node_toml(node)
    write_api_tls(node, org, now_ms)  # for `api_tls = true`; the CA issued one already
    return JoinedNode(node, org_id, signer.key.public_key, certificate_fingerprint(tls[0]))


def _check_ca_pem(pem: bytes) -> None:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"network CA: not PEM certificates: {exc}") from exc
    if not certs:
        raise ConfigError("network CA: no certificate")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
