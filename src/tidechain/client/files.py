"""The client's files: keys, organisation CA directories, trust files, and what a
network directory tells a client (where the nodes are, which genesis).

    net/
      network.toml        name, chain id, origin, the nodes and their API addresses
      genesis.cbor        the genesis (its SHA-256 is the chain id)
      trust.txt           validators' C2SP verifier keys + quorum: what verifiers need
      client.key          a depositor key (C2SP PRIVATE+KEY form, mode 0600)
      admin.key           an admin key of the founding organisation
      orgs/<org id>/      an organisation CA: ca.pem, ca.key (0600), members' .pem files

`tide init` (ops/network.py) writes such a directory; the node reads only its own
directory (node/config.py). Nothing here imports the node.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidechain.core.errors import ConfigError, Rejected
from tidechain.core.note import Signer, Verifier, parse_signer_key, signer_key
from tidechain.core.trust import Trust, format_trust, trust_text_of_keys
from tidechain.identity import (
    Role,
    from_pem,
    issue_member_cert,
    make_org_ca,
    parse_org_ca,
    private_key_from_pem,
    private_key_to_pem,
    to_pem,
)
from tidechain.ledger.types import Genesis

__all__ = [
    "ConfigError",
    "OrgDir",
    "client_signer",
    "export_key_pem",
    "init_org",
    "issue_member",
    "load_genesis",
    "node_urls",
    "org_dirs",
    "read_key",
    "resolve_network_dir",
    "trust_file_from_chain",
    "trust_file_text",
    "write_key",
    "write_private",
]

NET_ENV = "TIDE_NET"
TRUST_FILE = "trust.txt"
ORGS_DIR = "orgs"

DEFAULT_ORG = "acme"
DEFAULT_LEGAL_NAME = "Acme Supply Chain Management Co., Ltd."
DEFAULT_USCC = "91350100M000100Y43"
"""GB 32100-2015's worked example: a valid code for a demo organisation."""
ORG_CA_VALIDITY_MS = 10 * 365 * 86_400_000
MEMBER_VALIDITY_MS = 2 * 365 * 86_400_000
CLOCK_SLACK_MS = 60_000
"""Certificates start a minute early, so a node whose clock is a little behind the
machine that issued them still finds them valid."""
SEED_BYTES = 32
SERIAL_RANDOM_BYTES = 8
"""63 random bits per certificate serial (RFC 5280 allows 20 octets, positive)."""
_OWNER_ONLY = stat.S_IRUSR | stat.S_IWUSR


def resolve_network_dir(explicit: str | None) -> Path:
    """--net DIR, else $TIDE_NET, else ./net."""
    return Path(explicit or os.environ.get(NET_ENV) or "net")


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only: created 0600, never wider."""
    path.touch(mode=_OWNER_ONLY, exist_ok=True)
    path.chmod(_OWNER_ONLY)
    path.write_bytes(data)


def write_key(path: Path, name: str, seed: bytes) -> Signer:
    """An Ed25519 key file (C2SP PRIVATE+KEY form) named `name`, mode 0600."""
    text = signer_key(name, seed)
    write_private(path, (text + "\n").encode())
    return parse_signer_key(text)


def read_key(path: Path) -> Signer:
    try:
        return parse_signer_key(path.read_text().strip())
    except FileNotFoundError as exc:
        raise ConfigError(f"key file {path} not found") from exc


def export_key_pem(key_file: Path, pem_file: Path) -> Signer:
    """Write the key in `key_file` (our C2SP form) to `pem_file` as an unencrypted
    PKCS#8 PEM private key, mode 0600: what OpenSSL, curl (`--key`) and most TLS
    libraries read. Refuses to overwrite an existing file."""
    signer = read_key(key_file)
    if pem_file.exists():
        raise ConfigError(f"{pem_file} exists: refusing to overwrite a key")
    write_private(pem_file, private_key_to_pem(signer.key.seed))
    return signer


def client_signer(network_dir: Path, key_file: str | None = None) -> Signer:
    """--key FILE, else the network directory's client.key."""
    return read_key(Path(key_file) if key_file else network_dir / "client.key")


def load_genesis(network_dir: Path) -> Genesis:
    path = network_dir / "genesis.cbor"
    try:
        return Genesis.decode(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `tide init` first or pass --net") from exc


def node_urls(network_dir: Path) -> list[str]:
    """The API addresses network.toml lists, node0 first."""
    path = network_dir / "network.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} not found: run `tide init` first or pass --net") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return [str(n["api"]) for n in data.get("nodes", [])]


def network_api_ca(network_dir: Path) -> Path | None:
    """The CA of the nodes' HTTPS certificates that network.toml names (`api_ca`,
    relative to the network directory), or None when the API is plain HTTP."""
    try:
        data = tomllib.loads((network_dir / "network.toml").read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return None
    ca = data.get("api_ca")
    return network_dir / str(ca) if ca else None


# --- organisation CAs --------------------------------------------------------------------


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
    return (int.from_bytes(os.urandom(SERIAL_RANDOM_BYTES), "big") >> 1) or 1


def init_org(directory: Path, org_id: str, legal_name: str, uscc: str, now_ms: int,
             validity_ms: int = ORG_CA_VALIDITY_MS) -> OrgDir:
    """Create an organisation CA (key and self-signed certificate) in `directory`."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty; refusing to overwrite a CA")
    seed = os.urandom(SEED_BYTES)
    start = now_ms - CLOCK_SLACK_MS
    try:
        cert = make_org_ca(org_id, legal_name, uscc, seed, start, start + validity_ms,
                           random_serial())
    except Rejected as exc:
        raise ConfigError(f"organisation: {exc.reason}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    org = OrgDir(directory)
    write_private(org.key_path, private_key_to_pem(seed))
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


def org_dirs(network_dir: Path) -> list[OrgDir]:
    """The organisation directories under NET/orgs/, by name."""
    root = network_dir / ORGS_DIR
    if not root.is_dir():
        return []
    return [OrgDir(d) for d in sorted(root.iterdir()) if (d / "ca.pem").is_file()]


# --- trust files -------------------------------------------------------------------------


def trust_file_text(genesis: Genesis) -> str:
    """The trust file of the genesis validators' keys."""
    verifiers = [Verifier.of(v.name, v.public_key) for v in genesis.validators]
    trust = Trust.of(verifiers, origin=genesis.origin)
    return format_trust(trust, f"tidechain network {genesis.name}: validators' verifier keys")


def trust_file_from_chain(genesis: Genesis, keys: list[dict[str, Any]]) -> str:
    """The trust file of every validator key that has signed, each with the checkpoint
    sizes it may sign (ADR 0011), from a node's `validator_set.keys`. A chain whose set
    never changed gives the same file as `trust_file_text`."""
    return trust_text_of_keys(genesis.name, genesis.origin, keys)
