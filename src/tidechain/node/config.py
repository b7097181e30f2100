"""The network directory that `tide init` writes and every command reads.

    net/
      network.toml        name, chain id, origin, the nodes and their API addresses
      genesis.cbor        the genesis (canonical CBOR; chain id = SHA-256 of it)
      trust.txt           validators' C2SP verifier keys + quorum: what verifiers need
      client.key          a depositor key for the CLI (C2SP PRIVATE+KEY form)
      admin.key           an admin key of the founding organisation (enrols members)
      orgs/<org id>/      the founding organisation: ca.pem, ca.key (0600), and the
                          certificates of client.key and admin.key (client.pem, admin.pem)
      ca.pem, ca.key      the network CA that issues node TLS certificates (key 0600)
      node0/
        node.toml         this node's name, API and peer addresses, its peers
        validator.key     the validator's signing key (mode 0600)
        tls/              ca.pem, node.pem, node.key (0600): peer TLS (ADR 0005)
        data/chain.sqlite the node's store (created on first start)

An organisation that joins later (`tide node join`, ADR 0011) has a directory of its
own with the network's public files only: genesis.cbor, trust.txt, and its node's
directory, whose tls/ca.pem is the network CA's certificate (to recognise the genesis
validators) and whose node.pem comes from the organisation's own CA.
"""

from __future__ import annotations

import ipaddress
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected
from tidechain.core.limits import MAX_VALIDATORS, MEMPOOL_MAX_TXS
from tidechain.core.note import Signer, Verifier, parse_signer_key, signer_key
from tidechain.core.trust import SizeRange, Trust, format_trust
from tidechain.identity import (
    Role,
    from_pem,
    issue_member_cert,
    make_org_ca,
    parse_org_ca,
    private_key_from_pem,
    private_key_to_pem,
    read_org_ca,
    to_pem,
)
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator
from tidechain.node.tls import (
    TlsError,
    TlsFiles,
    certificate_fingerprint,
    check_node_name,
    issue_node_certificate,
    make_network_ca,
    write_node_tls,
    write_private_pem,
)

DEFAULT_API_PORT = 8680
PEER_PORT_OFFSET = 100  # node i listens for peers on base_port + PEER_PORT_OFFSET + i
NET_ENV = "TIDE_NET"

DEFAULT_ORG = "acme"
DEFAULT_LEGAL_NAME = "Acme Supply Chain Management Co., Ltd."
DEFAULT_USCC = "91350100M000100Y43"
"""GB 32100-2015's worked example: a valid code for a demo organisation."""
ORG_CA_VALIDITY_MS = 10 * 365 * 86_400_000
MEMBER_VALIDITY_MS = 2 * 365 * 86_400_000
CLOCK_SLACK_MS = 60_000
"""Certificates start a minute early, so a node whose clock is a little behind the
machine that issued them still finds them valid."""
ORGS_DIR = "orgs"
DEFAULT_CERT_WARN_DAYS = 30
MAX_CERT_WARN_DAYS = 3650
"""`cert_warn_days` bound: ten years, the lifetime of a CA made by `tide org init`."""


class ConfigError(Rejected):
    code = "config"


@dataclass(frozen=True)
class PeerAddress:
    name: str  # the peer's node name = the CN of its TLS certificate
    host: str
    port: int


@dataclass(frozen=True)
class NodeConfig:
    directory: Path
    name: str  # the node's short name, e.g. "node0"
    key_name: str  # its C2SP key name, "<network>/<node>"
    api_host: str
    api_port: int
    mempool_max_txs: int = MEMPOOL_MAX_TXS
    peer_host: str = "127.0.0.1"
    peer_port: int = 0  # 0: no peer listener (a network of one)
    peers: tuple[PeerAddress, ...] = ()
    cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
    """Warn (status, log) about certificates that end within this many days."""

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles.in_directory(self.directory / "tls")

    def peer_addresses(self) -> dict[str, tuple[str, int]]:
        """The `peers` argument of `PeerNetwork`."""
        return {p.name: (p.host, p.port) for p in self.peers}

    @property
    def data_path(self) -> Path:
        return self.directory / "data" / "chain.sqlite"

    @property
    def key_path(self) -> Path:
        return self.directory / "validator.key"

    @property
    def network_dir(self) -> Path:
        return self.directory.parent

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def signer(self) -> Signer:
        return read_key(self.key_path)


def resolve_network_dir(explicit: str | None) -> Path:
    """--net DIR, else $TIDE_NET, else ./net."""
    return Path(explicit or os.environ.get(NET_ENV) or "net")


def write_key(path: Path, name: str, seed: bytes) -> Signer:
    write_private_pem(path, (signer_key(name, seed) + "\n").encode())  # 0600 from the start
    return parse_signer_key(signer_key(name, seed))


def read_key(path: Path) -> Signer:
    try:
        return parse_signer_key(path.read_text().strip())
    except FileNotFoundError as exc:
        raise ConfigError(f"key file {path} not found") from exc


def init_network(
    directory: Path, name: str, *, validators: int = 1, base_port: int = DEFAULT_API_PORT,
    host: str = "127.0.0.1", org: str = DEFAULT_ORG, legal_name: str = DEFAULT_LEGAL_NAME,
    uscc: str = DEFAULT_USCC, standby: int = 0,
) -> list[NodeConfig]:
    """Create a new network: keys, genesis, trust file, node configs, and one founding
    organisation whose CA enrols client.key as a depositor and admin.key as an admin.
    `standby` more nodes get a directory, a key, TLS and a place in every node's peer
    list, but not in the genesis: each follows the chain until governance adds it as a
    validator (`tide gov propose add_validator`, ADR 0011), with no file edited then."""
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
                          peers=tuple(a for a in addresses if a != me))
        write_node_tls(node.tls_files.cert.parent, ca[0],
                       issue_node_certificate(ca, me.name, now_ms, ip_addresses=(host,)))
        signer = write_key(node.key_path, node.key_name, os.urandom(32))
        if i < validators:
            gen_validators.append(GenesisValidator(node.key_name, signer.key.public_key))
        _write_node_toml(node)
        nodes.append(node)
    genesis_ms = int(time.time() * 1000)
    client = write_key(directory / "client.key", f"{name}/client", os.urandom(32))
    admin = write_key(directory / "admin.key", f"{name}/admin", os.urandom(32))
    founder = _founding_org(directory / ORGS_DIR / org, org, legal_name, uscc, genesis_ms,
                            [("client", client.key, (Role.DEPOSITOR,)),
                             ("admin", admin.key, (Role.ADMIN,))])
    genesis = Genesis(name, genesis_ms, tuple(gen_validators), (founder,))
    (directory / "genesis.cbor").write_bytes(genesis.encode())
    (directory / "trust.txt").write_text(trust_file_text(genesis))
    (directory / "network.toml").write_text(
        f'name = "{name}"\nchain_id = "{genesis.chain_id.hex()}"\norigin = "{genesis.origin}"\n'
        + "".join(f'\n[[nodes]]\nname = "{n.name}"\napi = "{n.api_url}"\n'
                  f'peer = "{n.peer_host}:{n.peer_port}"\n' for n in nodes)
    )
    return nodes


@dataclass(frozen=True)
class OrgDir:
    """An organisation's CA on disk: `ca.pem` (the certificate) and `ca.key` (its
    Ed25519 key, unencrypted PKCS#8 PEM, mode 0600)."""

    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    def cert(self) -> bytes:
        try:
            return from_pem(self.cert_path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.cert_path} not found: is {self.directory} an "
                              "organisation directory (`tide org init`)?") from exc

    def key_seed(self) -> bytes:
        try:
            return private_key_from_pem(self.key_path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.key_path} not found: the CA key is needed to issue "
                              "certificates") from exc


def random_serial() -> int:
    """A certificate serial: 63 random bits (non-zero), unique with overwhelming odds."""
    return (int.from_bytes(os.urandom(8), "big") >> 1) or 1


def init_org(directory: Path, org_id: str, legal_name: str, uscc: str, now_ms: int,
             validity_ms: int = ORG_CA_VALIDITY_MS) -> OrgDir:
    """Create an organisation CA (key and self-signed certificate) in `directory`."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty; refusing to overwrite a CA")
    seed = os.urandom(32)
    start = now_ms - CLOCK_SLACK_MS
    try:
        cert = make_org_ca(org_id, legal_name, uscc, seed, start, start + validity_ms,
                           random_serial())
    except Rejected as exc:
        raise ConfigError(f"organisation: {exc.reason}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    org = OrgDir(directory)
    write_private_pem(org.key_path, private_key_to_pem(seed))
    org.cert_path.write_bytes(to_pem(cert))
    return org


def issue_member(org: OrgDir, name: str, public_key: bytes, roles: tuple[Role, ...],
                 now_ms: int, validity_ms: int = MEMBER_VALIDITY_MS) -> bytes:
    """A member certificate (DER) from the organisation's CA, valid from a minute ago
    for `validity_ms`, or until the CA ends if that comes first."""
    ca_der = org.cert()
    ca = parse_org_ca(ca_der, now_ms)
    start = now_ms - CLOCK_SLACK_MS
    end = min(start + validity_ms, ca.not_after_ms)
    return issue_member_cert(ca_der, org.key_seed(), name, public_key, roles, start, end,
                             random_serial())


def _founding_org(directory: Path, org_id: str, legal_name: str, uscc: str, now_ms: int,
                  initial: list[tuple[str, SigningKey, tuple[Role, ...]]]) -> GenesisOrg:
    org = init_org(directory, org_id, legal_name, uscc, now_ms)
    certs = []
    for name, key, roles in initial:
        cert = issue_member(org, name, key.public_key, roles, now_ms)
        (directory / f"{name}.pem").write_bytes(to_pem(cert))
        certs.append(cert)
    return GenesisOrg(org.cert(), tuple(certs))


def org_dirs(network_dir: Path) -> list[OrgDir]:
    """The organisation directories under NET/orgs/, by name."""
    root = network_dir / ORGS_DIR
    if not root.is_dir():
        return []
    return [OrgDir(d) for d in sorted(root.iterdir()) if (d / "ca.pem").is_file()]


def trust_file_text(genesis: Genesis) -> str:
    verifiers = [Verifier.of(v.name, v.public_key) for v in genesis.validators]
    trust = Trust.of(verifiers, origin=genesis.origin)
    return format_trust(trust, f"tidechain network {genesis.name}: validators' verifier keys")


def trust_file_from_chain(genesis: Genesis, keys: list[dict[str, Any]]) -> str:
    """The trust file of every validator key that has signed, each with the checkpoint
    sizes it may sign (`sizes=A-B`, ADR 0011), from a node's `validator_set.keys`.
    A chain whose set never changed gives one open range per key, which the file
    writes as no range at all: the same file as `trust_file_text`."""
    verifiers, ranges, heights = [], [], []
    for entry in keys:
        verifiers.append(Verifier.of(str(entry["name"]), bytes.fromhex(entry["key"])))
        first, last = entry["sizes"]
        ranges.append(SizeRange(int(first), None if last is None else int(last)))
        low, high = entry["heights"]
        heights.append(f"{entry['name']}: heights {low}-{'' if high is None else high}")
    trust = Trust.of(verifiers, origin=genesis.origin, ranges=ranges)
    comment = f"tidechain network {genesis.name}: validators' verifier keys"
    if trust.ranges:
        comment += "\n" + "\n".join(heights)
    return format_trust(trust, comment)


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


def parse_bootstrap(text: str) -> tuple[PeerAddress, ...]:
    """`NAME@HOST:PORT[,NAME@HOST:PORT...]`: the peers a joining node dials first. The
    name is the peer's node name (its certificate CN), which TLS checks."""
    peers = []
    for item in (part.strip() for part in text.split(",")):
        name, at, address = item.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not host or not port.isdigit():
            raise ConfigError(f"bootstrap peer {item!r} is not NAME@HOST:PORT")
        try:
            check_node_name(name)
        except TlsError as exc:
            raise ConfigError(f"bootstrap peer {item!r}: {exc.reason}") from exc
        peers.append(PeerAddress(name, host, _bounded(int(port), "bootstrap port", 1, 65535)))
    if not 0 < len(peers) < MAX_VALIDATORS or len({p.name for p in peers}) != len(peers):
        raise ConfigError(f"1..{MAX_VALIDATORS - 1} bootstrap peers, each named once")
    return tuple(peers)


def join_node(directory: Path, genesis_bytes: bytes, network_ca_pem: bytes, org: OrgDir,
              name: str, bootstrap: tuple[PeerAddress, ...], *, host: str = "127.0.0.1",
              api_port: int = DEFAULT_API_PORT,
              peer_port: int = DEFAULT_API_PORT + PEER_PORT_OFFSET) -> JoinedNode:
    """A node directory for an organisation joining a running network (ADR 0011), made
    without the network CA's key or any other node's files: a consensus key, a TLS
    certificate from the organisation's own CA, node.toml with its own addresses and
    the bootstrap peers; the network's public genesis (and its trust file) beside it,
    in `directory.parent`. Nothing is written if an argument is bad."""
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
        _bounded(port, what, 1, 65535)
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
    if not (network_dir / "trust.txt").exists():
        (network_dir / "trust.txt").write_text(trust_file_text(genesis))
    node = NodeConfig(directory, name, f"{genesis.name}/{name}", host, api_port,
                      peer_host=host, peer_port=peer_port, peers=bootstrap)
    write_node_tls(node.tls_files.cert.parent, network_ca_pem, tls)
    signer = write_key(node.key_path, node.key_name, os.urandom(32))
    _write_node_toml(node)
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


def _write_node_toml(node: NodeConfig) -> None:
    (node.directory / "node.toml").write_text(
        f'name = "{node.name}"\nkey_name = "{node.key_name}"\n'
        f'api_host = "{node.api_host}"\napi_port = {node.api_port}\n'
        f'peer_host = "{node.peer_host}"\npeer_port = {node.peer_port}\n'
        + "".join(f'\n[[peers]]\nname = "{p.name}"\nhost = "{p.host}"\nport = {p.port}\n'
                  for p in node.peers)
    )


def load_node(directory: Path) -> NodeConfig:
    path = directory / "node.toml"
    try:
        data = tomllib.loads(path.read_text())
        return NodeConfig(
            directory, str(data["name"]), str(data["key_name"]),
            str(data.get("api_host", "127.0.0.1")),
            _bounded(data.get("api_port", DEFAULT_API_PORT), "api_port", 1, 65535),
            _bounded(data.get("mempool_max_txs", MEMPOOL_MAX_TXS), "mempool_max_txs",
                     1, MEMPOOL_MAX_TXS),
            peer_host=str(data.get("peer_host", "127.0.0.1")),
            peer_port=_bounded(data.get("peer_port", 0), "peer_port", 0, 65535),
            peers=_peer_addresses(data.get("peers", [])),
            cert_warn_days=_bounded(data.get("cert_warn_days", DEFAULT_CERT_WARN_DAYS),
                                    "cert_warn_days", 0, MAX_CERT_WARN_DAYS),
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: is {directory} a node directory?") from exc
    except (KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except TlsError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from exc


def _peer_addresses(entries: list[dict[str, object]]) -> tuple[PeerAddress, ...]:
    if len(entries) >= MAX_VALIDATORS:
        raise ConfigError(f"at most {MAX_VALIDATORS - 1} peers")
    return tuple(_peer_address(entry) for entry in entries)


def _peer_address(entry: dict[str, object]) -> PeerAddress:
    name = str(entry["name"])
    check_node_name(name)  # it must match a certificate CN
    return PeerAddress(name, str(entry["host"]), _bounded(entry["port"], "peer port", 1, 65535))


def _bounded(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}")
    return value


def load_genesis(network_dir: Path) -> Genesis:
    path = network_dir / "genesis.cbor"
    try:
        return Genesis.decode(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `tide init` first or pass --net") from exc


def node_urls(network_dir: Path) -> list[str]:
    path = network_dir / "network.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `tide init` first or pass --net") from exc
    return [str(n["api"]) for n in data.get("nodes", [])]


def client_signer(network_dir: Path, key_file: str | None = None) -> Signer:
    return read_key(Path(key_file) if key_file else network_dir / "client.key")
