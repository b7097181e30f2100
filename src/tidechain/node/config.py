"""A node's own directory, and the network directory around it, as the node reads them.

    net/
      network.toml        name, chain id, origin, the nodes and their API addresses
      genesis.cbor        the genesis (canonical CBOR; chain id = SHA-256 of it)
      trust.txt           validators' C2SP verifier keys + quorum: what verifiers need
      ca.pem, ca.key      the network CA that issues node TLS certificates (key 0600)
      node0/
        node.toml         this node's name, API and peer addresses, its peers
        validator.key     the validator's signing key (mode 0600)
        tls/              ca.pem, node.pem, node.key (0600): peer TLS (ADR 0005)
        api-tls/          cert.pem, key.pem (0600), ca.pem: the API's HTTPS certificate
                          from the organisation's CA, used when `api_tls = true`
        data/chain.sqlite the node's store (created on first start)

`tide init` and `tide node join` write these directories (ops/network.py), with the
client's keys, organisation CAs and trust file beside them (client/files.py); the node
only reads its own. Its key file is parsed by `core.note.parse_signer_key`, the one
parser of the format, shared with the client.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from tidechain.core.errors import ConfigError
from tidechain.core.limits import (
    MAX_API_READS_PER_S,
    MAX_VALIDATORS,
    MEMPOOL_MAX_TXS,
    READS_PER_S_PER_CALLER,
)
from tidechain.core.note import Signer, parse_signer_key
from tidechain.ledger.types import Genesis
from tidechain.node.tls import TlsError, TlsFiles, check_node_name

__all__ = [
    "DEFAULT_API_CERT",
    "DEFAULT_API_KEY",
    "DEFAULT_API_PORT",
    "PEER_PORT_OFFSET",
    "ConfigError",
    "NodeConfig",
    "PeerAddress",
    "bounded_int",
    "load_genesis",
    "load_node",
    "parse_bootstrap",
    "write_node_toml",
]

DEFAULT_API_PORT = 8680
DEFAULT_API_CERT = "api-tls/cert.pem"
DEFAULT_API_KEY = "api-tls/key.pem"
"""The API's HTTPS certificate and key (`api_tls`), relative to the node directory."""
API_TLS_CA = "api-tls/ca.pem"
"""The CA that issued the API certificate, beside it: what a client verifies it with."""
PEER_PORT_OFFSET = 100  # node i listens for peers on base_port + PEER_PORT_OFFSET + i
DEFAULT_CERT_WARN_DAYS = 30
MAX_CERT_WARN_DAYS = 3650
"""`cert_warn_days` bound: ten years, the lifetime of a CA made by `tide org init`."""
DEFAULT_EVENT_SUBSCRIBERS = 100
"""Open `GET /v1/events` streams a node serves at once (`events_max_subscribers`); 503
with Retry-After beyond. Each holds a socket (a file descriptor: the default soft limit
is 1,024, shared with peers, API requests and the store) and a handler for as long as it
lasts. Dashboards with many viewers belong behind a proxy that fans one stream out."""
MAX_EVENT_SUBSCRIBERS = 10_000
"""The most node.toml may allow: past a few thousand, raise the open-files limit too."""


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
    applications: tuple[str, ...] = ()
    """Modules of applications served beside the built-in ones (ADR 0013); every
    validator of the network must list the same."""
    api_tls: bool = False
    """Serve the API over HTTPS (TLS 1.2 or later) with `api_cert` and `api_key`; a
    caller may then present its member certificate (mutual TLS, optional)."""
    api_cert: str = DEFAULT_API_CERT
    """The API's certificate (PEM), relative to the node directory or absolute."""
    api_key: str = DEFAULT_API_KEY
    """Its private key (PEM, mode 0600), relative to the node directory or absolute."""
    api_reads_per_s: int = READS_PER_S_PER_CALLER
    """Requests per second each caller may make to the API (a member by its key,
    anyone else by its address), with bursts of twice that; 429 beyond it."""
    tsa: bool = False
    """Serve the RFC 3161 time-stamp authority at POST /v1/timestamp (api/tsa.py)."""
    tsa_cert: str = "tsa/tsa.pem"
    """The TSA certificate (PEM) from the organisation's CA, relative to the node
    directory: ECDSA P-256, critical extended key usage timeStamping only."""
    tsa_key: str = "tsa/tsa.key"
    tsa_chain: str = "tsa/ca.pem"
    """The certificates above the TSA's (the organisation CA), put in tokens."""
    tsa_depositor: str = "tsa/depositor.key"
    """The member key (a depositor of the operating organisation) that deposits each
    time stamp's imprint."""
    tsa_policy: str = "1.3.6.1.4.1.65535.7171.1"
    tsa_access: str = "anyone"
    """`anyone` (rate-limited per address) or `members` (a member certificate over
    mutual TLS, or an RFC 9421 signature)."""
    tsa_requests_per_s: int = 20
    tsa_users: str = "tsa/users"
    """HTTP basic-auth users of a `members` TSA (`tide node tsa-user`)."""
    """Time-stamp requests per second per caller, bursts of twice that; 429 beyond."""
    events_max_subscribers: int = DEFAULT_EVENT_SUBSCRIBERS
    """Open `GET /v1/events` streams served at once (api/events.py)."""
    epcis: bool = False
    """Serve the GS1 EPCIS 2.0 REST binding at /v1/epcis and traces at /v1/trace
    (api/epcis.py, docs/traceability.md)."""
    epcis_schemas: str = ""
    """A folder holding GS1's EPCIS 2.0 JSON Schema and XSDs (`schema/`, `xsd/`), laid
    out as GS1 publishes them: GS1's files, not shipped with tidechain. Required when
    `epcis` is on; `$TIDE_EPCIS_SCHEMAS` is the default."""
    epcis_capturer: str = "epcis/capturer.key"
    """The member key (an enterprise or carrier of the operating organisation) that
    signs the events standard capture clients send; absent: the node answers queries
    only."""
    epcis_users: str = "epcis/users"
    """HTTP basic-auth users who capture and query as the capturer (`tide node
    epcis-user`), for capture clients that cannot sign requests."""

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
        return f"{'https' if self.api_tls else 'http'}://{self.api_host}:{self.api_port}"

    @property
    def api_cert_path(self) -> Path:
        return self.directory / self.api_cert

    @property
    def api_key_path(self) -> Path:
        return self.directory / self.api_key

    @property
    def api_ca_path(self) -> Path:
        """Where `tide init` puts the CA that issued the default API certificate."""
        return self.directory / API_TLS_CA

    def signer(self) -> Signer:
        """The validator's signing key, from its key file."""
        try:
            return parse_signer_key(self.key_path.read_text().strip())
        except FileNotFoundError as exc:
            raise ConfigError(f"key file {self.key_path} not found") from exc


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
        peers.append(PeerAddress(name, host, bounded_int(int(port), "bootstrap port", 1, 65535)))
    if not 0 < len(peers) < MAX_VALIDATORS or len({p.name for p in peers}) != len(peers):
        raise ConfigError(f"1..{MAX_VALIDATORS - 1} bootstrap peers, each named once")
    return tuple(peers)


def write_node_toml(node: NodeConfig) -> None:
    (node.directory / "node.toml").write_text(
        f'name = "{node.name}"\nkey_name = "{node.key_name}"\n'
        f'api_host = "{node.api_host}"\napi_port = {node.api_port}\n'
        f'peer_host = "{node.peer_host}"\npeer_port = {node.peer_port}\n'
        # Written only when on, so that appending `api_tls = true` turns it on.
        + (f'api_tls = true\napi_cert = "{node.api_cert}"\napi_key = "{node.api_key}"\n'
           if node.api_tls else "")
        # The RFC 3161 time-stamp authority (api/tsa.py), its files in tsa/.
        + ("tsa = true\n" if node.tsa else "")
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
            bounded_int(data.get("api_port", DEFAULT_API_PORT), "api_port", 1, 65535),
            bounded_int(data.get("mempool_max_txs", MEMPOOL_MAX_TXS), "mempool_max_txs",
                     1, MEMPOOL_MAX_TXS),
            peer_host=str(data.get("peer_host", "127.0.0.1")),
            peer_port=bounded_int(data.get("peer_port", 0), "peer_port", 0, 65535),
            peers=_peer_addresses(data.get("peers", [])),
            cert_warn_days=bounded_int(data.get("cert_warn_days", DEFAULT_CERT_WARN_DAYS),
                                    "cert_warn_days", 0, MAX_CERT_WARN_DAYS),
            applications=_module_names(data.get("applications", [])),
            api_tls=_flag(data.get("api_tls", False), "api_tls"),
            api_cert=str(data.get("api_cert", DEFAULT_API_CERT)),
            api_key=str(data.get("api_key", DEFAULT_API_KEY)),
            api_reads_per_s=bounded_int(data.get("api_reads_per_s", READS_PER_S_PER_CALLER),
                                        "api_reads_per_s", 1, MAX_API_READS_PER_S),
            tsa=_flag(data.get("tsa", False), "tsa"),
            tsa_cert=str(data.get("tsa_cert", "tsa/tsa.pem")),
            tsa_key=str(data.get("tsa_key", "tsa/tsa.key")),
            tsa_chain=str(data.get("tsa_chain", "tsa/ca.pem")),
            tsa_depositor=str(data.get("tsa_depositor", "tsa/depositor.key")),
            tsa_policy=str(data.get("tsa_policy", "1.3.6.1.4.1.65535.7171.1")),
            tsa_access=str(data.get("tsa_access", "anyone")),
            tsa_requests_per_s=bounded_int(data.get("tsa_requests_per_s", 20),
                                           "tsa_requests_per_s", 1, MAX_API_READS_PER_S),
            tsa_users=str(data.get("tsa_users", "tsa/users")),
            events_max_subscribers=bounded_int(
                data.get("events_max_subscribers", DEFAULT_EVENT_SUBSCRIBERS),
                "events_max_subscribers", 1, MAX_EVENT_SUBSCRIBERS),
            epcis=_flag(data.get("epcis", False), "epcis"),
            epcis_schemas=str(data.get("epcis_schemas", "")),
            epcis_capturer=str(data.get("epcis_capturer", "epcis/capturer.key")),
            epcis_users=str(data.get("epcis_users", "epcis/users")),
        )
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: is {directory} a node directory?") from exc
    except (KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except TlsError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from exc


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _module_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
            isinstance(v, str) and v.replace("_", "").replace(".", "").isalnum() for v in value):
        raise ValueError("applications must be a list of module names")
    return tuple(value)


def _peer_addresses(entries: list[dict[str, object]]) -> tuple[PeerAddress, ...]:
    if len(entries) >= MAX_VALIDATORS:
        raise ConfigError(f"at most {MAX_VALIDATORS - 1} peers")
    return tuple(_peer_address(entry) for entry in entries)


def _peer_address(entry: dict[str, object]) -> PeerAddress:
    extra = sorted(set(entry) - {"name", "host", "port"})
    if extra:
        # TOML puts a key written after a [[peers]] table inside that table: an operator
        # appending a setting to node.toml would otherwise see it silently ignored.
        raise ConfigError(f"[[peers]] has unknown key(s) {', '.join(extra)}: node settings "
                          "go above the first [[peers]] table")
    name = str(entry["name"])
    check_node_name(name)  # it must match a certificate CN
    return PeerAddress(name, str(entry["host"]), bounded_int(entry["port"], "peer port", 1, 65535))


def bounded_int(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}")
    return value


def load_genesis(network_dir: Path) -> Genesis:
    path = network_dir / "genesis.cbor"
    try:
        return Genesis.decode(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `tide init` first or pass --net") from exc
