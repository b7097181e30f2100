"""`tide deposit`, `tide verify`, `tide evidence lookup`: documents anchored by their
SHA-256 digest (contracts/evidence). The document never leaves this machine; a deposit
is one round trip once the chain id is known, and its receipt is verified before it
is written next to the file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK, EXIT_VERIFICATION_FAILED
from tidechain.cli.base import (
    Output,
    add,
    client,
    group,
    hash_with_progress,
    network_dir,
    progress_line,
    session,
    trust_option,
)
from tidechain.client.files import client_signer
from tidechain.client.verify import VerifiedDeposit, verify_deposit_receipt
from tidechain.core.errors import Rejected
from tidechain.core.hexcodec import parse_hex
from tidechain.core.timefmt import iso_utc


def parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    """--meta KEY=VALUE pairs, each key once."""
    meta: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise Rejected(f"--meta expects key=value, got {pair!r}", code="bad_argument")
        if key in meta:
            raise Rejected(f"--meta key {key!r} given twice", code="bad_argument")
        meta[key] = value
    return meta


def proven_lines(proven: VerifiedDeposit) -> list[str]:
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


def cmd_deposit(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    meta = parse_meta(args.meta or [])
    signer = client_signer(network_dir(args), args.key).key
    progress = progress_line(path, out.err)
    with client(args, need_trust=True) as sdk:
        outcome = session(sdk, signer).deposit_file(path, meta, progress, amends=args.amends)
    lines = [f"deposited {path} (committed and verified)", *proven_lines(outcome.proven),
             f"  receipt          {outcome.receipt_path}"]
    out.result(outcome.to_json(), lines)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    if args.receipt is None:  # `tide verify RECEIPT`: any application's entry
        return verify_entry(args, out)
    path = Path(args.file)
    receipt = Path(args.receipt).read_bytes()
    trust = Path(args.trust).read_bytes()
    digest = hash_with_progress(path, out.err)
    try:
        proven = verify_deposit_receipt(receipt, trust, digest)
    except Rejected as exc:
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    lines = [f"verification OK: {path} is the document deposited in {args.receipt}",
             *proven_lines(proven),
             f"  trusted keys     {args.trust} (offline: no node was contacted)"]
    out.result({"verified": True, "file": str(path), **proven.to_json()}, lines)
    return EXIT_OK


def verify_entry(args: argparse.Namespace, out: Output) -> int:
    """Verify a receipt of any entry, offline, and say what it proves: the call, its
    sender and block, and what the entry's application says of it (`describe_entry`)."""
    from tidechain.cli.generic import registry
    from tidechain.client.verify import load_trust
    from tidechain.core.receipt import verify_receipt
    from tidechain.ledger.types import LogEntry

    try:
        proven = verify_receipt(Path(args.file).read_bytes(),
                                load_trust(Path(args.trust).read_bytes()))
        entry = LogEntry.decode(proven.entry)
    except Rejected as exc:
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    body, result = entry.tx.body, entry.result
    outcome = "applied" if result.ok else f"refused by its contract: {result.error}"
    lines = [f"verification OK: {args.file} proves log entry {proven.index}",
             f"  call             {body.contract}.{body.method} ({outcome})",
             f"  sender           {body.sender.hex()} (Ed25519 public key)",
             f"  block height     {entry.height}",
             f"  block time       {iso_utc(entry.time_ms)} ({entry.time_ms} ms)",
             f"  transaction      {entry.tx.tx_id.hex()}",
             f"  signed by        {', '.join(proven.signers)}"]
    app = registry(args).applications.get(body.contract)
    described = (app.describe_entry(body.method, body.args, result.events)
                 if app is not None and app.describe_entry is not None and result.ok else [])
    lines += [f"  {line}" for line in described]
    lines.append(f"  trusted keys     {args.trust} (offline: no node was contacted)")
    out.result({"verified": True, "index": proven.index, "contract": body.contract,
                "method": body.method, "sender": body.sender.hex(), "height": entry.height,
                "time_ms": entry.time_ms, "tx_id": entry.tx.tx_id.hex(), "ok": result.ok,
                "signers": list(proven.signers), "described": described}, lines)
    return EXIT_OK


def cmd_evidence_lookup(args: argparse.Namespace, out: Output) -> int:
    if (args.file is None) == (args.digest is None):
        raise Rejected("give either FILE or --digest HEX", code="bad_argument")
    digest = (parse_hex(args.digest.removeprefix("sha256:"), 32, "--digest (a SHA-256 digest)")
              if args.digest else hash_with_progress(Path(args.file), out.err))
    with client(args) as sdk:
        deposits, more = sdk.gather("evidence", "deposits", digest=digest.hex())
    lines = [f"{len(deposits)} deposit(s) of sha256:{digest.hex()}"
             + ("" if more is None else ", the newest (there are more)")]
    for d in deposits:
        meta = ", ".join(f"{k}={v}" for k, v in sorted(dict(d.get("meta") or {}).items()))
        amends = f"  amends {d['amends']}" if d.get("amends") is not None else ""
        lines.append(f"  log index {d.get('index')}  block {d.get('height')}  "
                     f"{iso_utc(int(d.get('time', 0)))}  by {d.get('depositor')}"
                     f"{amends}  {meta}".rstrip())
    if more is not None:
        lines.append(f"(more: tide query evidence deposits --param digest={digest.hex()} "
                     f"--param cursor={more})")
    data: dict[str, Any] = {"digest": digest.hex(), "deposits": deposits, "next": more}
    out.result(data, lines)
    return EXIT_OK


def register(commands: Any) -> None:
    p = add(commands, "deposit", cmd_deposit,
            "deposit a file's SHA-256 digest and write FILE.tlog-proof")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata (repeatable)")
    p.add_argument("--amends", type=int, metavar="INDEX",
                   help="deposit as a new version of the deposit at this log index")
    p.add_argument("--key", metavar="KEYFILE", help="depositor key (default: NET/client.key)")
    trust_option(p)

    p = add(commands, "verify", cmd_verify,
            "verify a file against its receipt (FILE RECEIPT), or any receipt (RECEIPT), "
            "offline")
    p.add_argument("file", metavar="FILE")
    p.add_argument("receipt", metavar="RECEIPT", nargs="?")
    trust_option(p, required=True)

    evidence_group = group(commands, "evidence", "evidence deposits")
    p = add(evidence_group, "lookup", cmd_evidence_lookup, "list the deposits of a document")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--digest", metavar="HEX", help="look up a SHA-256 digest instead of a file")
