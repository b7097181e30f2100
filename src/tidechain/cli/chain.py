"""`tide status`, `tide tx get`, `tide block get`, `tide proof`, `tide log
consistency`, `tide checkpoint`, `tide trust export`: reading the chain itself, each
proof checked against the trust file when there is one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import (
    Output,
    add,
    client,
    fields,
    group,
    network_dir,
    node_url,
    trust_option,
)
from tidechain.client.files import load_genesis, trust_file_from_chain, trust_file_text
from tidechain.core.errors import ConfigError
from tidechain.core.timefmt import iso_utc


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        status = sdk.status()
    lines = [
        f"network    {status.get('network')}  (chain {status.get('chain_id')})",
        f"node       {status.get('node')} at {sdk.base_url}",
        f"height     {status.get('height')}  block time "
        f"{iso_utc(int(status.get('block_time_ms', 0)))}",
        f"log        size {status.get('log_size')}  root {status.get('log_root')}",
        f"state root {status.get('state_root')}",
        f"mempool    {mempool_line(status.get('mempool'))}",
        f"sync       {sync_line(status.get('height'), status.get('sync'))}",
        f"validators {', '.join(status.get('validators', []))}  "
        f"(quorum {status.get('quorum')})",
        f"certificates  {certificates_line(status.get('certificates'))}",
    ]
    out.result(status, lines)
    return EXIT_OK


def certificates_line(report: Any) -> str:
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
    named = [f"{c.get('org')}/{c.get('name')} ({days_text(c.get('days_left'))})"
             for c in shown]
    more = ", ..." if len(shown) < expired + expiring else ""
    return f"{', '.join(counts)}: {', '.join(named)}{more}"


def days_text(days_left: Any) -> str:
    if not isinstance(days_left, int):
        return "?"
    if days_left < 0:
        return "expired"
    return "less than a day" if days_left == 0 else f"{days_left} day{'s' * (days_left != 1)}"


def sync_line(height: Any, sync: Any) -> str:
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


def mempool_line(mempool: Any) -> str:
    if not isinstance(mempool, dict):
        return "?"
    return (f"{mempool.get('transactions')} transactions, {mempool.get('bytes')} bytes "
            f"(capacity {mempool.get('capacity')})")


def cmd_trust_export(args: argparse.Namespace, out: Output) -> int:
    """The trust file for the network's validator keys, as the chain knows them: every
    key that has signed, each with the checkpoint sizes it signed for (ADR 0011), so
    receipts made before a key rotation keep verifying. Asks a node (--node, or the
    network's first); with --genesis, or when no node answers, the genesis keys."""
    from tidechain.client.sdk import Client, NodeUnreachable
    from tidechain.core.trust import parse_trust

    genesis = load_genesis(network_dir(args))
    source, text = "genesis", trust_file_text(genesis)
    if not args.genesis:
        try:
            with Client(node_url(args)) as sdk:
                status = sdk.status()
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
    with client(args) as sdk:
        text = sdk.checkpoint()
        verified = sdk.trust is not None
    out.result({"checkpoint": text, "verified": verified}, [text.rstrip("\n")])
    return EXIT_OK


def cmd_tx_get(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        found = sdk.tx(args.tx_id)
    out.result(found, [f"transaction {found.get('tx_id')}", *fields(found)])
    return EXIT_OK


def cmd_block_get(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        block = sdk.block(args.height)
    shown = {k: v for k, v in block.items() if k != "checkpoint"}
    lines = [f"block {block.get('height')}", *fields(shown)]
    if "checkpoint" in block:
        lines += ["  checkpoint:", *(f"    {line}" for line in
                                     str(block["checkpoint"]).rstrip("\n").split("\n"))]
    out.result(block, lines)
    return EXIT_OK


def cmd_proof(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        receipt = sdk.receipt(args.index)
        verified = sdk.trust is not None
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
    with client(args) as sdk:
        report = sdk.verified_consistency(args.old, args.new)
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


def register(commands: Any) -> None:
    add(commands, "status", cmd_status, "show the node's status")

    tx = group(commands, "tx", "transactions")
    p = add(tx, "get", cmd_tx_get, "show a transaction")
    p.add_argument("tx_id", metavar="TX_ID")

    block = group(commands, "block", "blocks")
    p = add(block, "get", cmd_block_get, "show a block")
    p.add_argument("height", type=int, metavar="HEIGHT")

    p = add(commands, "proof", cmd_proof, "fetch the receipt of a log entry")
    p.add_argument("index", type=int, metavar="INDEX")
    p.add_argument("-o", "--output", metavar="FILE", help="write the receipt to FILE")
    trust_option(p)

    log_group = group(commands, "log", "the global log")
    p = add(log_group, "consistency", cmd_log_consistency,
            "fetch and verify a consistency proof between two log sizes")
    p.add_argument("old", type=int, metavar="OLD")
    p.add_argument("new", type=int, nargs="?", metavar="NEW", help="default: current size")
    trust_option(p)

    p = add(commands, "checkpoint", cmd_checkpoint, "show the latest signed checkpoint")
    trust_option(p)

    trust = group(commands, "trust", "the trust file receipts are verified against")
    p = add(trust, "export", cmd_trust_export,
            "write the trust file of the network's validator keys (stdout or -o FILE)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE (atomically)")
    p.add_argument("--genesis", action="store_true",
                   help="the genesis keys only, without asking a node")
