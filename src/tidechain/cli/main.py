"""The `tide` command.

A thin layer over the SDK (`tidechain.client`) and the node configuration: it parses
arguments, finds the network directory and the node, and prints results. No rule of
the chain lives here.

Exit codes: 0 success, 1 verification failed, 2 input rejected (by us or by the
node), 3 node unreachable. A `Rejected` is printed as `error: <code>: <reason>`,
never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tidechain.cli import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_VERIFICATION_FAILED,
)
from tidechain.cli import governance as governance_commands
from tidechain.cli import invoice as invoice_commands
from tidechain.client.txbuilder import Progress, hash_file
from tidechain.client.verify import VerifiedDeposit, iso_utc, verify_deposit_receipt
from tidechain.core.errors import ProofError, Rejected
from tidechain.core.hexcodec import parse_hex
from tidechain.node.config import (
    DEFAULT_LEGAL_NAME,
    DEFAULT_ORG,
    DEFAULT_USCC,
    ConfigError,
    OrgDir,
    client_signer,
    init_network,
    init_org,
    issue_member,
    load_genesis,
    load_node,
    node_urls,
    org_dirs,
    read_key,
    resolve_network_dir,
    trust_file_from_chain,
    trust_file_text,
    write_key,
)

if TYPE_CHECKING:
    from tidechain.client.sdk import Client


NODE_ENV = "TIDE_NODE"
TRUST_FILE = "trust.txt"
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
"""Files larger than this show a progress line while being hashed (~50 ms of work)."""

Command = Callable[[argparse.Namespace, "Output"], int]


class Output:
    """Where results go: human lines, or one JSON document with --json."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def result(self, data: Any, lines: Sequence[str]) -> None:
        if self.as_json:
            json.dump(data, self.out, indent=2, sort_keys=True)
            self.out.write("\n")
        else:
            for line in lines:
                self.out.write(line + "\n")

    def error(self, code: str, reason: str) -> None:
        """A rejection: `error: <code>: <reason>` on stderr (and as JSON with --json)."""
        self._json_error(code, reason)
        self.err.write(f"error: {code}: {reason}\n")

    def failed(self, code: str, reason: str) -> None:
        """A verification that failed: `verification FAILED: <reason>`."""
        self._json_error(code, reason)
        self.err.write(f"verification FAILED: {reason}\n")

    def _json_error(self, code: str, reason: str) -> None:
        if self.as_json:
            json.dump({"error": code, "reason": reason, "ok": False}, self.out, sort_keys=True)
            self.out.write("\n")


# --- resolving the network, the node and the trust file ------------------------------


def _network_dir(args: argparse.Namespace) -> Path:
    return resolve_network_dir(args.net)


def _node_url(args: argparse.Namespace) -> str:
    if args.node:
        return str(args.node)
    from_env = os.environ.get(NODE_ENV)
    if from_env:
        return from_env
    net = _network_dir(args)
    try:
        urls = node_urls(net)
    except ConfigError as exc:
        raise ConfigError(f"no node to ask: pass --node URL, set {NODE_ENV}, or point --net "
                          f"at a network directory ({exc.reason})") from exc
    if not urls:
        raise ConfigError(f"{net}/network.toml lists no node: pass --node URL")
    return urls[0]


def _trust_path(args: argparse.Namespace) -> Path | None:
    """--trust FILE, else the network directory's trust.txt if there is one."""
    explicit: str | None = getattr(args, "trust", None)
    if explicit:
        return Path(explicit)
    default = _network_dir(args) / TRUST_FILE
    return default if default.is_file() else None


def _client(args: argparse.Namespace, *, need_trust: bool = False) -> Client:
    from tidechain.client.sdk import Client  # the HTTP client only for commands that need it

    trust_path = _trust_path(args)
    if need_trust and trust_path is None:
        raise ConfigError(f"no trust file: pass --trust FILE or --net DIR (with {TRUST_FILE})")
    trust = trust_path.read_bytes() if trust_path is not None else None
    return Client(_node_url(args), trust=trust)


def _hash_with_progress(path: Path, err: TextIO) -> bytes:
    """SHA-256 of a file, with a progress line on `err` for files over 8 MiB."""
    return hash_file(path, _progress_line(path, err))


def _progress_line(path: Path, err: TextIO) -> Progress | None:
    if path.stat().st_size <= PROGRESS_MIN_BYTES:
        return None
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent == shown[0]:
            return
        shown[0] = percent
        err.write(f"\rhashing {path.name}: {percent:3d}% "
                  f"({done / 2**20:.1f} of {total / 2**20:.1f} MiB)")
        if done >= total:
            err.write("\n")
        err.flush()

    return progress


def _parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise Rejected(f"--meta expects key=value, got {pair!r}", code="bad_argument")
        if key in meta:
            raise Rejected(f"--meta key {key!r} given twice", code="bad_argument")
        meta[key] = value
    return meta


def _hex_digest(text: str) -> bytes:
    return parse_hex(text.removeprefix("sha256:"), 32, "--digest (a SHA-256 digest)")


def _fields(data: dict[str, Any], indent: str = "  ") -> list[str]:
    """A JSON object as aligned `key  value` lines (nested objects indented)."""
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.extend(_fields(value, indent + "  "))
        elif isinstance(value, list):
            shown = ", ".join(json.dumps(v) if isinstance(v, dict) else str(v) for v in value)
            lines.append(f"{indent}{key.ljust(width)}  [{shown}]")
        elif key.endswith("time_ms") and isinstance(value, int):
            lines.append(f"{indent}{key.ljust(width)}  {value} ({iso_utc(value)})")
        else:
            lines.append(f"{indent}{key.ljust(width)}  {value}")
    return lines


def _proven_lines(proven: VerifiedDeposit) -> list[str]:
    meta = ", ".join(f"{k}={v}" for k, v in sorted(proven.meta.items())) or "(none)"
    lines = [
        f"  document digest  sha256:{proven.digest.hex()}",
        f"  deposited by     {proven.depositor} (Ed25519 public key)",
        f"  metadata         {meta}",
        f"  block height     {proven.height}",
        f"  block time       {proven.time_iso} ({proven.time_ms} ms)",
        f"  log index        {proven.log_index} of log {proven.origin} "
        f"(checkpoint size {proven.checkpoint_size})",
        f"  transaction      {proven.tx_id.hex()}",
        f"  signed by        {', '.join(proven.signers)}",
    ]
    if proven.amends is not None:
        lines.insert(3, f"  amends deposit   {proven.amends}")
    return lines


# --- commands ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    directory = Path(args.dir)
    nodes = init_network(directory, args.name, validators=args.validators, base_port=args.port,
                         org=args.org, legal_name=args.legal_name, uscc=args.uscc,
                         standby=args.standby)
    genesis = load_genesis(directory)
    data = {
        "network": genesis.name,
        "chain_id": genesis.chain_id.hex(),
        "origin": genesis.origin,
        "directory": str(directory),
        "trust": str(directory / TRUST_FILE),
        "client_key": str(directory / "client.key"),
        "admin_key": str(directory / "admin.key"),
        "org": args.org,
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
        f"next: tide node start {nodes[0].directory}",
    ]
    out.result(data, lines)
    return EXIT_OK


def cmd_node_start(args: argparse.Namespace, out: Output) -> int:
    node_dir = Path(args.node_dir)
    load_node(node_dir)  # a clear error before any I/O starts
    from tidechain.node.serve import run_node  # the node's stack only for this command

    run_node(node_dir, port=args.port)
    return EXIT_OK


def cmd_cluster_up(args: argparse.Namespace, out: Output) -> int:
    from tidechain.node.cluster import cluster_up

    net = resolve_network_dir(args.network or args.net)
    started = cluster_up(net)
    out.result({"nodes": [{"name": n, "pid": p, "api": u} for n, p, u in started]},
               [f"{n}  pid {p}  {u}" for n, p, u in started])
    return EXIT_OK


def cmd_cluster_down(args: argparse.Namespace, out: Output) -> int:
    from tidechain.node.cluster import cluster_down

    stopped = cluster_down(resolve_network_dir(args.network or args.net))
    out.result({"stopped": stopped}, [f"stopped {stopped} node process(es)"])
    return EXIT_OK


def cmd_deposit(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    meta = _parse_meta(args.meta or [])
    signer = client_signer(_network_dir(args), args.key).key
    progress = _progress_line(path, out.err)
    with _client(args, need_trust=True) as client:
        outcome = client.deposit_file(path, signer, meta, progress,
                                      amends=args.amends)
    lines = [f"deposited {path} (committed and verified)", *_proven_lines(outcome.proven),
             f"  receipt          {outcome.receipt_path}"]
    out.result(outcome.to_json(), lines)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    receipt = Path(args.receipt).read_bytes()
    trust = Path(args.trust).read_bytes()
    digest = _hash_with_progress(path, out.err)
    try:
        proven = verify_deposit_receipt(receipt, trust, digest)
    except Rejected as exc:
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    lines = [f"verification OK: {path} is the document deposited in {args.receipt}",
             *_proven_lines(proven),
             f"  trusted keys     {args.trust} (offline: no node was contacted)"]
    out.result({"verified": True, "file": str(path), **proven.to_json()}, lines)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        status = client.status()
    lines = [
        f"network    {status.get('network')}  (chain {status.get('chain_id')})",
        f"node       {status.get('node')} at {client.base_url}",
        f"height     {status.get('height')}  block time "
        f"{iso_utc(int(status.get('block_time_ms', 0)))}",
        f"log        size {status.get('log_size')}  root {status.get('log_root')}",
        f"state root {status.get('state_root')}",
        f"mempool    {_mempool_line(status.get('mempool'))}",
        f"sync       {_sync_line(status.get('height'), status.get('sync'))}",
        f"validators {', '.join(status.get('validators', []))}  "
        f"(quorum {status.get('quorum')})",
        f"certificates  {_certificates_line(status.get('certificates'))}",
    ]
    out.result(status, lines)
    return EXIT_OK


def _certificates_line(report: Any) -> str:
    """e.g. `2 expire within 30 days: acme/alice (12 days), acme/acme CA (29 days)`."""
    if not isinstance(report, dict):
        return "?"
    expired, expiring = int(report.get("expired", 0)), int(report.get("expiring", 0))
    warn_days = report.get("warn_days")
    if not expired and not expiring:
        return f"none expire within {warn_days} days ({report.get('checked')} checked)"
    counts = []
    if expired:
        counts.append(f"{expired} expired")
    if expiring:
        counts.append(f"{expiring} expire{'s' * (expiring == 1)} within {warn_days} days")
    shown = report.get("soonest") or []
    named = [f"{c.get('org')}/{c.get('name')} ({_days_text(c.get('days_left'))})"
             for c in shown]
    more = ", ..." if len(shown) < expired + expiring else ""
    return f"{', '.join(counts)}: {', '.join(named)}{more}"


def _days_text(days_left: Any) -> str:
    if not isinstance(days_left, int):
        return "?"
    if days_left < 0:
        return "expired"
    return "less than a day" if days_left == 0 else f"{days_left} day{'s' * (days_left != 1)}"


def _sync_line(height: Any, sync: Any) -> str:
    if not isinstance(sync, dict) or not isinstance(height, int):
        return "?"
    peer_height, behind = sync.get("peer_height"), sync.get("behind_blocks")
    if not behind:
        return f"in step with its peers (height {peer_height})"
    state_sync = sync.get("state_sync")
    if isinstance(state_sync, dict):  # ADR 0009: fetching a verified snapshot
        parts = [f"{what} {state_sync.get(what)}/{state_sync.get(f'{what}_total')}"
                 for what in ("entries", "records") if f"{what}_total" in state_sync]
        return (f"state sync to height {state_sync.get('height')} "
                f"({state_sync.get('phase')}): {', '.join(parts) or 'starting'}; "
                f"{behind} blocks behind (as its peers report)")
    done = 100 * height / peer_height if isinstance(peer_height, int) and peer_height else 0
    return (f"catching up: height {height} of {peer_height} ({done:.0f}%), "
            f"{behind} blocks behind (as its peers report)")


def _mempool_line(mempool: Any) -> str:
    if not isinstance(mempool, dict):
        return "?"
    return (f"{mempool.get('transactions')} transactions, {mempool.get('bytes')} bytes "
            f"(capacity {mempool.get('capacity')})")


def cmd_node_keygen(args: argparse.Namespace, out: Output) -> int:
    """A new Ed25519 consensus key under a validator's key name (ADR 0011)."""
    from tidechain.ledger.types import check_key_name

    check_key_name(args.name, "validator")
    path = Path(args.output)
    if path.exists():
        raise ConfigError(f"{path} exists: refusing to overwrite a key")
    signer = write_key(path, args.name, os.urandom(32))
    public = signer.key.public_key.hex()
    out.result({"name": args.name, "key": public, "file": str(path)},
               [f"wrote {path}: validator key {args.name}", f"  public key  {public}"])
    return EXIT_OK


def cmd_node_join(args: argparse.Namespace, out: Output) -> int:
    """A node directory for an organisation joining a running network (ADR 0011), and
    the `tide gov propose add_validator` line its admins are to vote on."""
    import shlex

    from tidechain.node.config import join_node, parse_bootstrap

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


def cmd_trust_export(args: argparse.Namespace, out: Output) -> int:
    """The trust file for the network's validator keys, as the chain knows them: every
    key that has signed, each with the checkpoint sizes it signed for (ADR 0011), so
    receipts made before a key rotation keep verifying. Asks a node (--node, or the
    network's first); with --genesis, or when no node answers, the genesis keys."""
    from tidechain.client.sdk import Client, NodeUnreachable
    from tidechain.core.trust import parse_trust

    genesis = load_genesis(_network_dir(args))
    source, text = "genesis", trust_file_text(genesis)
    if not args.genesis:
        try:
            with Client(_node_url(args)) as client:
                status = client.status()
            if status.get("chain_id") == genesis.chain_id.hex() and "validator_set" in status:
                source = "chain"
                text = trust_file_from_chain(genesis, status["validator_set"]["keys"])
        except (NodeUnreachable, ConfigError):
            pass  # a network not started yet: its keys are the genesis ones
    trust = parse_trust(text)  # what we write must read back
    if args.output:
        from tidechain.client.sdk import write_atomically

        write_atomically(Path(args.output), text)
    data = {"trust": text, "validators": list(trust.names()), "quorum": trust.quorum,
            "origin": trust.origin, "written_to": args.output, "source": source}
    lines = ([f"wrote {args.output}: {len(trust.validators)} validator keys, quorum "
              f"{trust.quorum} (from the {source})"] if args.output else [text.rstrip("\n")])
    out.result(data, lines)
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        text = client.checkpoint()
        verified = client.trust is not None
    out.result({"checkpoint": text, "verified": verified}, [text.rstrip("\n")])
    return EXIT_OK


def cmd_tx_get(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        found = client.tx(args.tx_id)
    out.result(found, [f"transaction {found.get('tx_id')}", *_fields(found)])
    return EXIT_OK


def cmd_block_get(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        block = client.block(args.height)
    shown = {k: v for k, v in block.items() if k != "checkpoint"}
    lines = [f"block {block.get('height')}", *_fields(shown)]
    if "checkpoint" in block:
        lines += ["  checkpoint:", *(f"    {line}" for line in
                                     str(block["checkpoint"]).rstrip("\n").split("\n"))]
    out.result(block, lines)
    return EXIT_OK


def cmd_proof(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        receipt = client.receipt(args.index)
        verified = client.trust is not None
    note = "verified against the trust file" if verified else "NOT verified (no trust file)"
    if args.output:
        from tidechain.client.sdk import write_atomically

        write_atomically(Path(args.output), receipt)
        lines = [f"wrote receipt of log entry {args.index} to {args.output} ({note})"]
    else:
        lines = [receipt.rstrip("\n")]
    out.result({"index": args.index, "receipt": receipt, "path": args.output,
                "verified": verified}, lines)
    return EXIT_OK


def cmd_log_consistency(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        report = client.verified_consistency(args.old, args.new)
    lines = [
        f"consistent: the log of size {report.old.size} is a prefix of the log of size "
        f"{report.new.size} (RFC 9162 proof of {len(report.proof)} hashes verified locally)",
    ]
    for label, checked in (("old", report.old), ("new", report.new)):
        root = checked.to_json()["root"]
        if checked.signers:
            attested = f"matches the checkpoint signed by {', '.join(checked.signers)}"
        else:
            attested = "no signed checkpoint at exactly this size (or no trust file)"
        lines.append(f"  {label} size {checked.size:<8} root {root}  {attested}")
    out.result(report.to_json(), lines)
    return EXIT_OK


def cmd_evidence_lookup(args: argparse.Namespace, out: Output) -> int:
    if (args.file is None) == (args.digest is None):
        raise Rejected("give either FILE or --digest HEX", code="bad_argument")
    digest = _hex_digest(args.digest) if args.digest else _hash_with_progress(
        Path(args.file), out.err)
    with _client(args) as client:
        deposits = client.deposits(digest)
    lines = [f"{len(deposits)} deposit(s) of sha256:{digest.hex()}"]
    for d in deposits:
        meta = ", ".join(f"{k}={v}" for k, v in sorted(dict(d.get("meta") or {}).items()))
        amends = f"  amends {d['amends']}" if d.get("amends") is not None else ""
        lines.append(f"  log index {d.get('index')}  block {d.get('height')}  "
                     f"{iso_utc(int(d.get('time', 0)))}  by {d.get('depositor')}"
                     f"{amends}  {meta}".rstrip())
    out.result({"digest": digest.hex(), "deposits": deposits}, lines)
    return EXIT_OK


def cmd_contracts_describe(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        contracts = client.contracts()
    lines = []
    for contract in contracts:
        lines.append(f"{contract['name']}: {contract['description']}")
        for method in contract["methods"]:
            roles = ", ".join(method["roles"])
            lines.append(f"  {contract['name']}.{method['name']:<12} roles: {roles:<14} "
                         f"{method['summary']}")
    out.result({"contracts": contracts}, lines)
    return EXIT_OK


# --- organisations and members -------------------------------------------------------------


def cmd_org_init(args: argparse.Namespace, out: Output) -> int:
    directory = Path(args.dir)
    org = init_org(directory, args.org, args.legal_name, args.uscc, _now_ms())
    from tidechain.identity import parse_org_ca

    ca = parse_org_ca(org.cert(), _now_ms())
    data = {"org": ca.org_id, "legal_name": ca.legal_name, "uscc": ca.uscc,
            "fingerprint": ca.fingerprint.hex(), "cert": str(org.cert_path),
            "key": str(org.key_path), "not_after_ms": ca.not_after_ms}
    out.result(data, [
        f"created the CA of organisation {ca.org_id} in {directory}",
        f"  legal name   {ca.legal_name}",
        f"  USCC         {ca.uscc}",
        f"  fingerprint  {ca.fingerprint.hex()}",
        f"  certificate  {org.cert_path}",
        f"  key          {org.key_path}  (mode 0600: keep it offline)",
        "issue its first admin's certificate with `tide org issue`, then an organisation",
        "on chain proposes it: `tide gov propose add_org --ca-cert ... --member-cert ...`;",
        "an organisation already on chain registers this CA with `tide org add-ca DIR`",
    ])
    return EXIT_OK


def _now_ms() -> int:
    return int(time.time() * 1000)


def _org_dir(args: argparse.Namespace) -> OrgDir:
    """--org-dir DIR, else the only organisation under NET/orgs/."""
    if args.org_dir:
        return OrgDir(Path(args.org_dir))
    found = org_dirs(_network_dir(args))
    if len(found) != 1:
        raise ConfigError(f"{len(found)} organisations under {_network_dir(args)}/orgs: "
                          "pass --org-dir DIR")
    return found[0]


def _admin_key(args: argparse.Namespace) -> Any:
    return read_key(Path(args.admin_key) if args.admin_key
                    else _network_dir(args) / "admin.key").key


def _member_key(args: argparse.Namespace) -> tuple[bytes, Path]:
    """The public key to enrol and the file holding its private key."""
    if args.new_key:
        path = Path(args.new_key)
        if path.exists():
            raise ConfigError(f"{path} exists; refusing to overwrite a key")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", args.name).strip("-") or "member"
        signer = write_key(path, f"{load_genesis(_network_dir(args)).name}/{slug}",
                           os.urandom(32))
        return signer.key.public_key, path
    if args.key:
        return read_key(Path(args.key)).key.public_key, Path(args.key)
    raise ConfigError("give the member's key: --key FILE (existing) or --new-key FILE")


def _submit(args: argparse.Namespace, tx: Any) -> dict[str, Any]:
    with _client(args) as client:
        committed: dict[str, Any] = client.submit(tx, wait=True)
    return committed


@dataclass(frozen=True)
class _Issued:
    cert: bytes
    member: Any  # identity.Member (imported lazily: cryptography.x509 is slow to load)
    roles: tuple[Any, ...]
    public_key: bytes
    key_path: Path
    cert_path: Path


def _issue_certificate(org: OrgDir, args: argparse.Namespace, now_ms: int) -> _Issued:
    """Issue --name/--role's certificate for the member key with the org's CA, check it
    as the chain will, and write it next to the key as KEY.pem."""
    from tidechain.identity import parse_roles, to_pem, verify_member_cert

    roles = tuple(sorted(parse_roles(args.role)))
    public_key, key_path = _member_key(args)
    cert = issue_member(org, args.name, public_key, roles, now_ms)
    member = verify_member_cert(cert, org.cert(), now_ms)
    cert_path = key_path.with_name(key_path.name + ".pem")
    cert_path.write_bytes(to_pem(cert))
    return _Issued(cert, member, roles, public_key, key_path, cert_path)


def cmd_member_enrol(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client.txbuilder import enrol_tx

    org = _org_dir(args)
    admin = _admin_key(args)
    now_ms = _now_ms()
    issued = _issue_certificate(org, args, now_ms)
    cert, member, roles = issued.cert, issued.member, issued.roles
    public_key, key_path, cert_path = issued.public_key, issued.key_path, issued.cert_path
    with _client(args) as client:
        tx = enrol_tx(admin, client.chain_id(), cert, now_ms=now_ms, nonce=os.urandom(16))
        committed = client.submit(tx, wait=True)
    data = {"org": member.org_id, "name": member.name, "key": public_key.hex(),
            "roles": [r.value for r in roles], "serial": member.serial,
            "ca": member.ca_fingerprint.hex(), "not_after_ms": member.not_after_ms,
            "key_file": str(key_path), "cert": str(cert_path),
            "tx_id": committed["tx_id"], "log_index": committed["log_index"]}
    out.result(data, [
        f"enrolled {member.name} in {member.org_id} (log index {committed['log_index']})",
        f"  key          {public_key.hex()}  ({key_path})",
        f"  roles        {', '.join(r.value for r in roles)}",
        f"  serial       {member.serial}",
        f"  certificate  {cert_path}  (valid until {iso_utc(member.not_after_ms)})",
    ])
    return EXIT_OK


def cmd_member_list(args: argparse.Namespace, out: Output) -> int:
    org_id = args.org
    if not org_id:
        genesis = load_genesis(_network_dir(args))
        if not genesis.orgs:
            raise ConfigError("the genesis has no organisation: pass --org ID")
        from tidechain.identity import parse_org_ca

        org_id = parse_org_ca(genesis.orgs[0].ca, genesis.time_ms).org_id
    with _client(args) as client:
        found = client.members(org_id)
    lines = [f"organisation {found['org']}: {found['legal_name']} (USCC {found['uscc']})",
             *(f"  CA {fp}" for fp in found["cas"])]
    for m in found["members"]:
        lines.append(f"  {m['key']}  {m['status']:<10} {','.join(m['roles']):<20} "
                     f"serial {m['serial']}  {m['name']}")
    if found.get("truncated"):
        lines.append("  (list truncated)")
    out.result(found, lines)
    return EXIT_OK


def cmd_member_revoke(args: argparse.Namespace, out: Output) -> int:
    from tidechain.client.txbuilder import revoke_tx
    from tidechain.identity import parse_org_ca

    admin = _admin_key(args)
    with _client(args) as client:
        if args.serial is not None:
            ca = (parse_hex(args.ca, 32, "--ca") if args.ca
                  else parse_org_ca(_org_dir(args).cert(), _now_ms()).fingerprint)
            serial = int(args.serial)
        else:
            if args.key:
                target = read_key(Path(args.key)).key.public_key.hex()
            elif args.member:
                target = args.member
            else:
                raise ConfigError("say which certificate: --member HEX, --key FILE, "
                                  "or --serial N [--ca FINGERPRINT]")
            ca, serial = _certificate_of(client, target)
        tx = revoke_tx(admin, client.chain_id(), ca, serial, now_ms=_now_ms(),
                       nonce=os.urandom(16))
        committed = client.submit(tx, wait=True)
    data = {"ca": ca.hex(), "serial": serial, "tx_id": committed["tx_id"],
            "log_index": committed["log_index"]}
    out.result(data, [f"revoked certificate serial {serial} of CA {ca.hex()} "
                      f"(log index {committed['log_index']})"])
    return EXIT_OK


def _certificate_of(client: Client, member: str) -> tuple[bytes, int]:
    """(CA fingerprint, serial) of the certificate of the member with key `member` (hex)."""
    record = client.member(member)
    return bytes.fromhex(record["ca"]), int(record["serial"])


def cmd_org_add_ca(args: argparse.Namespace, out: Output) -> int:
    """Register the CA in DIR (made with `tide org init` with the same org id and USCC)
    as another CA of an organisation already on chain: members.add_ca."""
    from tidechain.client.txbuilder import add_ca_tx
    from tidechain.identity import parse_org_ca

    org = OrgDir(Path(args.dir))
    ca_der = org.cert()
    ca = parse_org_ca(ca_der, _now_ms())
    admin = _admin_key(args)
    with _client(args) as client:
        tx = add_ca_tx(admin, client.chain_id(), ca_der, now_ms=_now_ms(),
                       nonce=os.urandom(16))
        committed = client.submit(tx, wait=True)
    data = {"org": ca.org_id, "fingerprint": ca.fingerprint.hex(),
            "not_after_ms": ca.not_after_ms, "tx_id": committed["tx_id"],
            "log_index": committed["log_index"]}
    out.result(data, [
        f"added CA {ca.fingerprint.hex()} to organisation {ca.org_id} "
        f"(log index {committed['log_index']})",
        f"  valid until  {iso_utc(ca.not_after_ms)}",
        f"next: enrol members under it (tide member enrol --org-dir {args.dir} ...), "
        "the admin first, then retire the old CA with `tide org remove-ca`",
    ])
    return EXIT_OK


def cmd_org_remove_ca(args: argparse.Namespace, out: Output) -> int:
    """Retire one of the organisation's CAs: members.remove_ca. Its members stop
    counting at once; the chain refuses to remove the last CA or the admin's own."""
    from tidechain.client.txbuilder import remove_ca_tx
    from tidechain.contracts.members import parse_fingerprint

    if (args.fingerprint is None) == (args.dir is None):
        raise ConfigError("say which CA: --fingerprint HEX or --dir DIR (its ca.pem)")
    fingerprint = (parse_hex(args.fingerprint, 32, "--fingerprint") if args.fingerprint
                   else parse_fingerprint(OrgDir(Path(args.dir)).cert()))
    admin = _admin_key(args)
    with _client(args) as client:
        tx = remove_ca_tx(admin, client.chain_id(), fingerprint, now_ms=_now_ms(),
                          nonce=os.urandom(16))
        committed = client.submit(tx, wait=True)
    data = {"fingerprint": fingerprint.hex(), "tx_id": committed["tx_id"],
            "log_index": committed["log_index"]}
    out.result(data, [f"removed CA {fingerprint.hex()} (log index {committed['log_index']}); "
                      "the members it certified no longer count"])
    return EXIT_OK


def cmd_org_issue(args: argparse.Namespace, out: Output) -> int:
    """A member certificate from an organisation's CA, written next to the key as
    KEY.pem, without enrolling it (for an organisation that governance will add)."""
    issued = _issue_certificate(OrgDir(Path(args.dir)), args, _now_ms())
    member, roles, public_key = issued.member, issued.roles, issued.public_key
    cert_path, key_path = issued.cert_path, issued.key_path
    data = {"org": member.org_id, "name": member.name, "key": public_key.hex(),
            "roles": [r.value for r in roles], "serial": member.serial,
            "cert": str(cert_path), "key_file": str(key_path)}
    out.result(data, [f"issued a certificate for {member.name} of {member.org_id} "
                      f"({', '.join(r.value for r in roles)}): {cert_path}"])
    return EXIT_OK


# --- argument parsing ----------------------------------------------------------------------


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On subcommands the defaults are suppressed, so `tide --json status` and
    # `tide status --json` both work and neither overwrites the other.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--net", metavar="DIR", default=default,
                        help="network directory (default: $TIDE_NET, else ./net)")
    parser.add_argument("--node", metavar="URL", default=default,
                        help=f"node API URL (default: ${NODE_ENV}, else the first node "
                             "in network.toml)")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="machine-readable output")


def _add(
    subparsers: Any, name: str, command: Command, help_text: str,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text,
                                                            description=help_text)
    _common_options(parser, suppress=True)
    parser.set_defaults(command=command)
    return parser


def _group(subparsers: Any, name: str, help_text: str) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _trust_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    help_text = "trust file with the validators' keys" + (
        "" if required else f" (default: {TRUST_FILE} in the network directory)")
    parser.add_argument("--trust", metavar="TRUST", required=required, help=help_text)


def _org_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--org", required=required, metavar="ID",
                        default=None if required else DEFAULT_ORG,
                        help="org id: lower-case letters, digits, inner hyphens"
                             + ("" if required else f" (default: {DEFAULT_ORG})"))
    parser.add_argument("--legal-name", required=required, metavar="NAME",
                        default=None if required else DEFAULT_LEGAL_NAME,
                        help="the organisation's registered legal name")
    parser.add_argument("--uscc", required=required, metavar="CODE",
                        default=None if required else DEFAULT_USCC,
                        help="unified social credit code (GB 32100-2015)")


def _member_admin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org-dir", metavar="DIR",
                        help="the organisation's CA directory (default: the only one "
                             "under NET/orgs/)")
    parser.add_argument("--admin-key", metavar="FILE",
                        help="an admin key of the organisation (default: NET/admin.key)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tide", description="tidechain: consortium chain node, client and verifier.",
        epilog="exit codes: 0 ok, 1 verification failed, 2 rejected input, 3 node unreachable",
    )
    _common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    p = _add(commands, "init", cmd_init, "create a new network directory")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--name", required=True, help="network name (ASCII, no spaces, '+' or '/')")
    p.add_argument("--validators", type=int, default=1, metavar="N")
    p.add_argument("--standby", type=int, default=0, metavar="N",
                   help="N more nodes that follow the chain until governance adds them as "
                        "validators (add_validator)")
    p.add_argument("--port", type=int, default=8680, metavar="P",
                   help="API port of node0 (node i gets P + i)")
    _org_options(p, required=False)

    node = _group(commands, "node", "run a node")
    p = _add(node, "start", cmd_node_start, "start a node and serve its REST API")
    p.add_argument("node_dir", metavar="NODE_DIR")
    p.add_argument("--port", type=int, default=None, metavar="P",
                   help="API port (default: node.toml's)")
    p = _add(node, "keygen", cmd_node_keygen,
             "make a validator's consensus key file (0600) and print its public key, for "
             "`tide gov propose add_validator` or `replace_validator_key`")
    p.add_argument("output", metavar="FILE", help="the key file to create (refused if it exists)")
    p.add_argument("--name", required=True, metavar="NAME",
                   help="the validator's key name, <network>/<node>")
    p = _add(node, "join", cmd_node_join,
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
    p.add_argument("--api-port", type=int, default=8680, metavar="P")
    p.add_argument("--peer-port", type=int, default=8780, metavar="P")

    cluster = _group(commands, "cluster", "run every node of --net as local processes")
    for name, command, text in (
            ("up", cmd_cluster_up, "start all nodes of the network (logs in NET/nodeN/)"),
            ("down", cmd_cluster_down, "stop the nodes started by `tide cluster up`")):
        sub = _add(cluster, name, command, text)
        sub.add_argument("network", nargs="?", metavar="NET",
                         help="network directory (same as --net)")

    p = _add(commands, "deposit", cmd_deposit,
             "deposit a file's SHA-256 digest and write FILE.tlog-proof")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata (repeatable)")
    p.add_argument("--amends", type=int, metavar="INDEX",
                   help="deposit as a new version of the deposit at this log index")
    p.add_argument("--key", metavar="KEYFILE", help="depositor key (default: NET/client.key)")
    _trust_option(p)

    p = _add(commands, "verify", cmd_verify, "verify a file against its receipt, offline")
    p.add_argument("file", metavar="FILE")
    p.add_argument("receipt", metavar="RECEIPT")
    _trust_option(p, required=True)

    _add(commands, "status", cmd_status, "show the node's status")
    invoice_commands.add_commands(commands, _add, _group)
    trust = _group(commands, "trust", "the trust file receipts are verified against")
    p = _add(trust, "export", cmd_trust_export,
             "write the trust file of the network's validator keys (stdout or -o FILE)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (atomically)")
    p.add_argument("--genesis", action="store_true",
                   help="the genesis keys only, without asking a node")
    p = _add(commands, "checkpoint", cmd_checkpoint, "show the latest signed checkpoint")
    _trust_option(p)

    tx = _group(commands, "tx", "transactions")
    p = _add(tx, "get", cmd_tx_get, "show a transaction")
    p.add_argument("tx_id", metavar="TX_ID")

    block = _group(commands, "block", "blocks")
    p = _add(block, "get", cmd_block_get, "show a block")
    p.add_argument("height", type=int, metavar="HEIGHT")

    p = _add(commands, "proof", cmd_proof, "fetch the receipt of a log entry")
    p.add_argument("index", type=int, metavar="INDEX")
    p.add_argument("-o", "--output", metavar="FILE", help="write the receipt to FILE")
    _trust_option(p)

    log_group = _group(commands, "log", "the global log")
    p = _add(log_group, "consistency", cmd_log_consistency,
             "fetch and verify a consistency proof between two log sizes")
    p.add_argument("old", type=int, metavar="OLD")
    p.add_argument("new", type=int, nargs="?", metavar="NEW", help="default: current size")
    _trust_option(p)

    contracts = _group(commands, "contracts", "the built-in contracts")
    _add(contracts, "describe", cmd_contracts_describe,
         "list every contract method and the roles allowed to call it")

    org = _group(commands, "org", "organisations")
    p = _add(org, "init", cmd_org_init,
             "create an organisation CA (key + certificate) in DIR: for an organisation "
             "joining later (tide gov propose add_org), or a new CA of one already on "
             "chain (tide org add-ca)")
    p.add_argument("dir", metavar="DIR")
    _org_options(p, required=True)

    p = _add(org, "issue", cmd_org_issue,
             "issue a member certificate from the CA in DIR without enrolling it (for "
             "an organisation that `tide gov propose add_org` will register)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--role", action="append", required=True, metavar="ROLE",
                   help="a role (repeatable)")
    p.add_argument("--name", required=True, help="the member's name (certificate CN)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", metavar="FILE", help="certify this existing key file")
    keys.add_argument("--new-key", metavar="FILE", help="create a new key in FILE")

    p = _add(org, "add-ca", cmd_org_add_ca,
             "register the CA in DIR as another CA of the admin's organisation "
             "(members.add_ca: a CA rotation's first step)")
    p.add_argument("dir", metavar="DIR", help="a CA directory made by `tide org init` "
                   "with the organisation's own org id and USCC")
    p.add_argument("--admin-key", metavar="FILE",
                   help="an admin key of the organisation (default: NET/admin.key)")

    p = _add(org, "remove-ca", cmd_org_remove_ca,
             "retire one of the admin's organisation's CAs (members.remove_ca); its "
             "members stop counting")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--fingerprint", metavar="HEX", help="the CA's SHA-256 fingerprint")
    which.add_argument("--dir", metavar="DIR", help="the CA directory (its ca.pem)")
    p.add_argument("--admin-key", metavar="FILE",
                   help="an admin key of the organisation (default: NET/admin.key)")

    governance_commands.add_commands(commands, _add, _group)

    member = _group(commands, "member", "members of an organisation")
    p = _add(member, "enrol", cmd_member_enrol,
             "issue a member certificate with the org's CA and enrol it on chain "
             "(members.enrol, signed by an admin key)")
    p.add_argument("--role", action="append", required=True, metavar="ROLE",
                   help="a role (repeatable): admin, depositor, invoice_issuer, "
                        "tax_authority, enterprise, funder, carrier, regulator")
    p.add_argument("--name", required=True, help="the member's name (certificate CN)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--key", metavar="FILE", help="enrol this existing key file")
    keys.add_argument("--new-key", metavar="FILE", help="create a new key in FILE and enrol it")
    _member_admin_options(p)

    p = _add(member, "list", cmd_member_list, "list an organisation's members")
    p.add_argument("--org", metavar="ID", help="org id (default: the genesis's first)")

    p = _add(member, "revoke", cmd_member_revoke,
             "revoke a member certificate (members.revoke, signed by an admin key)")
    p.add_argument("--member", metavar="HEX", help="the member's public key")
    p.add_argument("--key", metavar="FILE", help="the member's key file")
    p.add_argument("--serial", type=int, metavar="N", help="the certificate's serial")
    p.add_argument("--ca", metavar="FINGERPRINT",
                   help="with --serial: the issuing CA (default: the org dir's CA)")
    _member_admin_options(p)

    evidence_group = _group(commands, "evidence", "evidence deposits")
    p = _add(evidence_group, "lookup", cmd_evidence_lookup, "list the deposits of a document")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--digest", metavar="HEX", help="look up a SHA-256 digest instead of a file")
    return parser


def _exit_code(exc: Rejected) -> int:
    from tidechain.client.sdk import NodeUnreachable

    if isinstance(exc, NodeUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, ProofError):
        return EXIT_VERIFICATION_FAILED
    return EXIT_REJECTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tide` with `argv` (default: sys.argv[1:]); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (argparse exits with 2)
        return exc.code if isinstance(exc.code, int) else EXIT_REJECTED
    out = Output(bool(args.json))
    command: Command = args.command
    try:
        return command(args, out)
    except ProofError as exc:  # something the node sent did not verify
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    except Rejected as exc:
        out.error(exc.code, exc.reason)
        return _exit_code(exc)
    except BrokenPipeError:  # `tide ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a file that cannot be read or written, a port in use
        out.error("io", str(exc))
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
