"""`tide init`, `tide node start|keygen|join`, `tide cluster up|down`."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, group, network_dir, org_options
from tidechain.client.files import (
    ORGS_DIR,
    SEED_BYTES,
    TRUST_FILE,
    OrgDir,
    load_genesis,
    write_key,
)
from tidechain.core.errors import ConfigError
from tidechain.node.config import DEFAULT_API_PORT, PEER_PORT_OFFSET, load_node, parse_bootstrap
from tidechain.ops.network import init_network, join_node

if TYPE_CHECKING:
    from tidechain.api.epcis import EpcisConfig
    from tidechain.api.tsa import TsaConfig
    from tidechain.node.config import NodeConfig


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    directory = Path(args.dir)
    nodes = init_network(directory, args.name, validators=args.validators, base_port=args.port,
                         org=args.org, legal_name=args.legal_name, uscc=args.uscc,
                         standby=args.standby, api_tls=args.api_tls)
    genesis = load_genesis(directory)
    api_ca = directory / ORGS_DIR / args.org / "ca.pem"
    data = {
        "network": genesis.name,
        "chain_id": genesis.chain_id.hex(),
        "origin": genesis.origin,
        "directory": str(directory),
        "trust": str(directory / TRUST_FILE),
        "client_key": str(directory / "client.key"),
        "admin_key": str(directory / "admin.key"),
        "org": args.org,
        "api_tls": args.api_tls,
        "api_ca": str(api_ca),
        "nodes": [{"name": n.name, "directory": str(n.directory), "api": n.api_url}
                  for n in nodes],
    }
    lines = [
        f"created network {genesis.name} in {directory}",
        f"  chain id    {genesis.chain_id.hex()}",
        f"  origin      {genesis.origin}",
        f"  trust file  {directory / TRUST_FILE}  (give this to verifiers)",
        f"  client key  {directory / 'client.key'}  (depositor of {args.org})",
        f"  admin key   {directory / 'admin.key'}  (admin of {args.org}: tide member enrol)",
        *(f"  {n.name}       {n.directory}  API {n.api_url}" for n in nodes),
        *([f"  API CA      {api_ca}  (verifies the nodes' HTTPS certificates)"]
          if args.api_tls else []),
        f"next: tide node start {nodes[0].directory}",
    ]
    out.result(data, lines)
    return EXIT_OK


def cmd_node_start(args: argparse.Namespace, out: Output) -> int:
    node_dir = Path(args.node_dir)
    load_node(node_dir)  # a clear error before any I/O starts
    from tidechain.api.server import Api  # the node's stack only for this command
    from tidechain.node.serve import run_node

    run_node(node_dir, lambda runtime, config: Api(
        runtime, reads_per_s=config.api_reads_per_s, tsa=tsa_config(config),
        epcis=epcis_config(config),
        events_max_subscribers=config.events_max_subscribers).app(),
        port=args.port)
    return EXIT_OK


def tsa_config(config: NodeConfig) -> TsaConfig | None:
    """The time-stamp authority's settings when node.toml turns it on (`tsa = true`)."""
    from tidechain.api.tsa import load_tsa_config

    if not config.tsa:
        return None
    return load_tsa_config(config.directory, config.tsa_cert, config.tsa_key,
                           config.tsa_chain, config.tsa_depositor, config.tsa_policy,
                           config.tsa_access, config.tsa_requests_per_s, config.tsa_users)


def epcis_config(config: NodeConfig) -> EpcisConfig | None:
    """The EPCIS repository's settings when node.toml turns it on (`epcis = true`)."""
    from tidechain.api.epcis import load_epcis_config

    if not config.epcis:
        return None
    return load_epcis_config(config.directory, config.epcis_schemas,
                             config.epcis_capturer, config.epcis_users)


def cmd_node_tsa_rotate(args: argparse.Namespace, out: Output) -> int:
    """A new TSA key and certificate; the old certificate moves to tsa/retired/."""
    import time

    from tidechain.ops.network import rotate_tsa

    config = load_node(Path(args.node_dir))
    retired = rotate_tsa(config, OrgDir(Path(args.org_dir)), int(time.time() * 1000))
    out.result({"node": config.name, "retired": str(retired)},
               [f"issued a new time-stamp key and certificate for {config.name}",
                f"  old certificate  kept as {retired} (its tokens stay valid)",
                "  restart the node to sign with the new key"])
    return EXIT_OK


def cmd_node_tsa_user(args: argparse.Namespace, out: Output) -> int:
    """A basic-auth user of the TSA: a random password, stored as an scrypt hash."""
    config = load_node(Path(args.node_dir))
    return _add_basic_user(config.directory / config.tsa_users, str(args.name), out)


def cmd_node_epcis_user(args: argparse.Namespace, out: Output) -> int:
    """A basic-auth user of the EPCIS repository: captures and queries as the node's
    capturing member (api/epcis.py)."""
    config = load_node(Path(args.node_dir))
    return _add_basic_user(config.directory / config.epcis_users, str(args.name), out)


def _add_basic_user(path: Path, name: str, out: Output) -> int:
    """A user with a random password, stored as an scrypt hash in `path`."""
    import secrets

    from tidechain.api.tsa import hash_password, read_users

    if not name or ":" in name or not name.isprintable() or len(name) > 64:
        raise ConfigError("a user name is 1..64 printable characters without ':'")
    if name in read_users(path):
        raise ConfigError(f"{name!r} is already a user in {path}")
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    with path.open("a") as users:
        users.write(f"{name}:{hash_password(password, os.urandom(16))}\n")
    out.result({"user": name, "password": password, "file": str(path)},
               [f"added {name!r} to {path}", f"  password  {password}  (shown once)",
                "  restart the node to use it"])
    return EXIT_OK


def cmd_node_keygen(args: argparse.Namespace, out: Output) -> int:
    """A new Ed25519 consensus key under a validator's key name (ADR 0011)."""
    from tidechain.ledger.types import check_key_name

    check_key_name(args.name, "validator")
    path = Path(args.output)
    if path.exists():
        raise ConfigError(f"{path} exists: refusing to overwrite a key")
    signer = write_key(path, args.name, os.urandom(SEED_BYTES))
    public = signer.key.public_key.hex()
    out.result({"name": args.name, "key": public, "file": str(path)},
               [f"wrote {path}: validator key {args.name}", f"  public key  {public}"])
    return EXIT_OK


def cmd_node_join(args: argparse.Namespace, out: Output) -> int:
    """A node directory for an organisation joining a running network (ADR 0011), and
    the `tide gov propose add_validator` line its admins are to vote on."""
    try:
        genesis = Path(args.genesis).read_bytes()
        network_ca = Path(args.network_ca).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    joined = join_node(Path(args.dir), genesis, network_ca, OrgDir(Path(args.org_dir)),
                       args.name, parse_bootstrap(args.bootstrap), host=args.host,
                       api_port=args.api_port, peer_port=args.peer_port)
    propose = shlex.join(["tide", "gov", "propose", *joined.proposal_args()])
    config = joined.config
    out.result({"node_dir": str(config.directory), "name": config.name,
                "key_name": config.key_name, "key": joined.public_key.hex(),
                "org": joined.org_id, "address": joined.address,
                "tls_fingerprint": joined.tls_fingerprint.hex(), "propose": propose}, [
        f"wrote {config.directory}: node {config.name} of organisation {joined.org_id}",
        f"  validator key    {joined.public_key.hex()}",
        f"  peer address     {joined.address}",
        f"  TLS fingerprint  {joined.tls_fingerprint.hex()}",
        f"start it: tide node start {config.directory}",
        "then the admins, once the organisation is registered (add_org), propose:",
        f"  {propose}"])
    return EXIT_OK


def _cluster_dir(args: argparse.Namespace) -> Path:
    return Path(args.network) if args.network else network_dir(args)


def cmd_cluster_up(args: argparse.Namespace, out: Output) -> int:
    from tidechain.node.cluster import cluster_up

    started = cluster_up(_cluster_dir(args))
    out.result({"nodes": [{"name": n, "pid": p, "api": u} for n, p, u in started]},
               [f"{n}  pid {p}  {u}" for n, p, u in started])
    return EXIT_OK


def cmd_cluster_down(args: argparse.Namespace, out: Output) -> int:
    from tidechain.node.cluster import cluster_down

    stopped = cluster_down(_cluster_dir(args))
    out.result({"stopped": stopped}, [f"stopped {stopped} node process(es)"])
    return EXIT_OK


def register(commands: Any) -> None:
    """`tide init`, `tide node ...`, `tide cluster ...` into the top-level table."""
    p = add(commands, "init", cmd_init, "create a new network directory")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--name", required=True, help="network name (ASCII, no spaces, '+' or '/')")
    p.add_argument("--validators", type=int, default=1, metavar="N")
    p.add_argument("--standby", type=int, default=0, metavar="N",
                   help="N more nodes that follow the chain until governance adds them as "
                        "validators (add_validator)")
    p.add_argument("--port", type=int, default=DEFAULT_API_PORT, metavar="P",
                   help="API port of node0 (node i gets P + i)")
    p.add_argument("--api-tls", action="store_true",
                   help="serve each node's API over HTTPS (api_tls = true), with a "
                        "certificate from the founding organisation's CA; members may "
                        "then present their member certificate (mutual TLS)")
    org_options(p, required=False)

    node = group(commands, "node", "run a node")
    p = add(node, "start", cmd_node_start, "start a node and serve its REST API")
    p.add_argument("node_dir", metavar="NODE_DIR")
    p.add_argument("--port", type=int, default=None, metavar="P",
                   help="API port (default: node.toml's)")
    p = add(node, "keygen", cmd_node_keygen,
            "make a validator's consensus key file (0600) and print its public key, for "
            "`tide gov propose add_validator` or `replace_validator_key`")
    p.add_argument("output", metavar="FILE", help="the key file to create (refused if it exists)")
    p.add_argument("--name", required=True, metavar="NAME",
                   help="the validator's key name, <network>/<node>")
    p = add(node, "tsa-rotate", cmd_node_tsa_rotate,
            "issue the node's time-stamp authority a new key and certificate from the "
            "organisation's CA (the old certificate is kept; tokens it signed stay valid); "
            "restart the node to use it")
    p.add_argument("node_dir", metavar="NODE_DIR")
    p.add_argument("--org-dir", required=True, metavar="ORGDIR",
                   help="the organisation's CA directory (e.g. NET/orgs/acme)")
    p = add(node, "tsa-user", cmd_node_tsa_user,
            "add a user name and a new password for HTTP basic authentication to the "
            "node's time-stamp authority (tsa_access = \"members\"); prints the password "
            "once; restart the node to use it")
    p.add_argument("node_dir", metavar="NODE_DIR")
    p.add_argument("name", metavar="NAME", help="the user name (e.g. the member's org)")
    p = add(node, "epcis-user", cmd_node_epcis_user,
            "add a user name and a new password for HTTP basic authentication to the "
            "node's EPCIS repository (capture clients that cannot sign requests act as the "
            "node's capturing member); prints the password once; restart the node to use it")
    p.add_argument("node_dir", metavar="NODE_DIR")
    p.add_argument("name", metavar="NAME", help="the user name (e.g. the scanner's name)")
    p = add(node, "join", cmd_node_join,
            "make the node directory of an organisation joining a running network: "
            "consensus key, TLS certificate from the organisation's CA, node.toml with "
            "bootstrap peers; prints the add_validator proposal")
    p.add_argument("dir", metavar="DIR",
                   help="the node directory to create; the genesis is copied to its parent")
    p.add_argument("--genesis", required=True, metavar="FILE",
                   help="the network's genesis.cbor (public: copied from any member)")
    p.add_argument("--network-ca", required=True, metavar="FILE",
                   help="the network CA's certificate, ca.pem (public), which the genesis "
                        "validators' certificates chain to")
    p.add_argument("--org-dir", required=True, metavar="ORGDIR",
                   help="the organisation's CA directory (`tide org init`): issues the "
                        "node's TLS certificate")
    p.add_argument("--name", required=True, metavar="NODE",
                   help="the node's name (a DNS label; key name <network>/NODE)")
    p.add_argument("--bootstrap", required=True, metavar="NAME@HOST:PORT[,...]",
                   help="peers to sync from first: node name and peer address of each")
    p.add_argument("--host", default="127.0.0.1", metavar="HOST",
                   help="address to listen on and to register on chain")
    p.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, metavar="P")
    p.add_argument("--peer-port", type=int, default=DEFAULT_API_PORT + PEER_PORT_OFFSET,
                   metavar="P")

    cluster = group(commands, "cluster", "run every node of --net as local processes")
    for name, command, text in (
            ("up", cmd_cluster_up, "start all nodes of the network (logs in NET/nodeN/)"),
            ("down", cmd_cluster_down, "stop the nodes started by `tide cluster up`")):
        sub = add(cluster, name, command, text)
        sub.add_argument("network", nargs="?", metavar="NET",
                         help="network directory (same as --net)")
