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
    now_ms,
    progress_line,
    session,
    trust_option,
)
from tidechain.client.files import client_signer
from tidechain.client.sdk import write_atomically
from tidechain.client.verify import VerifiedDeposit, verify_deposit_receipt
from tidechain.core.errors import Rejected
from tidechain.core.hexcodec import parse_hex
from tidechain.core.timefmt import iso_utc

PROOF_SET_SUFFIX = ".tlog-proofs"


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


def parse_cosigner(text: str) -> dict[str, Any]:
    """--cosigner: ORG:ROLE, or a member's key (64 hex digits, a key file or a member
    certificate)."""
    from tidechain.cli.scf import member_key

    org, colon, role = text.partition(":")
    if colon and not Path(text).is_file():
        return {"org": org, "role": role}
    return {"key": member_key(text, "--cosigner")}


def cosign_terms(args: argparse.Namespace) -> dict[str, Any] | None:
    """The co-signing arguments of `tide deposit`, or None without --cosigner."""
    from tidechain.cli.scf import parse_maturity
    from tidechain.client.txbuilder import cosign_args

    if not args.cosigner:
        if args.threshold is not None or args.deadline is not None:
            raise Rejected("--threshold and --deadline need --cosigner", code="bad_argument")
        return None
    try:
        deadline = None if args.deadline is None else parse_maturity(args.deadline, now_ms())
    except Rejected as exc:
        raise Rejected(exc.reason.replace("--maturity", "--deadline"),
                       code=exc.code) from None
    return cosign_args([parse_cosigner(c) for c in args.cosigner], args.threshold, deadline)


def cmd_deposit(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    meta = parse_meta(args.meta or [])
    terms = cosign_terms(args)
    signer = client_signer(network_dir(args), args.key).key
    progress = progress_line(path, out.err)
    with client(args, need_trust=True) as sdk:
        outcome = session(sdk, signer).deposit_file(path, meta, progress, amends=args.amends,
                                                    cosign=terms, public=args.public)
    lines = [f"deposited {path} (committed and verified)", *proven_lines(outcome.proven),
             f"  receipt          {outcome.receipt_path}"]
    if terms is not None:
        k, n = terms.get("threshold", len(terms["cosigners"])), len(terms["cosigners"])
        lines.append(f"  status           pending: {k} of {n} co-signers must sign "
                     f"(tide evidence sign {outcome.log_index} FILE); the receipt proves "
                     "the deposit, `tide evidence proof` its status")
    if args.public:
        lines.append("  public           anyone may look it up by its digest")
    out.result(outcome.to_json(), lines)
    return EXIT_OK


def cmd_evidence_sign(args: argparse.Namespace, out: Output) -> int:
    """Co-sign a deposit after checking that it is of the file you hold."""
    digest = (parse_hex(args.digest.removeprefix("sha256:"), 32, "--digest")
              if args.digest else hash_with_progress(Path(args.file), out.err))
    signer = client_signer(network_dir(args), args.key).key
    with client(args, need_trust=True) as sdk:
        outcome = session(sdk, signer).sign_deposit(args.index, digest)
    # The signed event of the proven entry says how many slots are filled: signing is
    # refused after the deadline, so the deposit is effective or still pending.
    event: dict[str, Any] = next((e["data"] for e in outcome.events if e["type"] == "signed"), {})
    status = "effective" if event.get("signed", 0) >= event.get("threshold", 1) else "pending"
    lines = [f"signed deposit {args.index} (committed and verified at log index "
             f"{outcome.log_index})",
             f"  slot             {event.get('slot')}",
             f"  signatures       {event.get('signed')} of {event.get('threshold')} needed",
             f"  status           {status}"]
    if args.output:
        write_atomically(Path(args.output), outcome.receipt)
        lines.append(f"  receipt          {args.output}")
    out.result({**outcome.to_json(), "status": status}, lines)
    return EXIT_OK


def cmd_evidence_show(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        d = sdk.query("evidence", "deposit", index=args.index)
    meta = ", ".join(f"{k}={v}" for k, v in sorted(dict(d.get("meta") or {}).items()))
    lines = [f"deposit {d['index']}: {d['status']}" + ("  (public)" if d.get("public") else ""),
             f"  digest           sha256:{d['digest']}",
             f"  depositor        {d['depositor']}",
             f"  block            {d['height']} at {iso_utc(int(d['time']))}",
             f"  metadata         {meta or '(none)'}"]
    terms = d.get("cosign")
    if terms:
        lines.append(f"  co-signers       {terms['threshold']} of {len(terms['cosigners'])} "
                     f"by {iso_utc(int(terms['deadline']))}")
        signed = {s["slot"]: s for s in terms["signed"]}
        for i, slot in enumerate(terms["cosigners"]):
            who = slot.get("key") or f"{slot.get('org')} as {slot.get('role')}"
            s = signed.get(i)
            how = (f"signed by {s['key'][:16]}... at {iso_utc(int(s['time']))} "
                   f"(log index {s['index']})" if s else "not signed")
            lines.append(f"    [{i}] {who}: {how}")
        if terms.get("effective"):
            e = terms["effective"]
            lines.append(f"  effective        at block {e['height']}, "
                         f"{iso_utc(int(e['time']))} (log index {e['index']})")
    out.result(d, lines)
    return EXIT_OK


def cmd_evidence_publish(args: argparse.Namespace, out: Output) -> int:
    signer = client_signer(network_dir(args), args.key).key
    with client(args, need_trust=True) as sdk:
        outcome = session(sdk, signer).call("evidence", "publish", {"of": args.index})
    out.result(outcome.to_json(), [f"deposit {args.index} is public (log index "
                                   f"{outcome.log_index}): anyone may look it up by digest"])
    return EXIT_OK


def cmd_evidence_proof(args: argparse.Namespace, out: Output) -> int:
    """Fetch the proof set of a co-signed deposit, verify it, write it."""
    from tidechain.client.deposit_proof import verify_deposit_proof
    from tidechain.client.session import deposit_proof

    with client(args, need_trust=True) as sdk:
        text = deposit_proof(sdk, args.index)
        trust = sdk.trust
    assert trust is not None
    proven = verify_deposit_proof(text, trust)
    path = Path(args.output or f"deposit-{args.index}{PROOF_SET_SUFFIX}")
    write_atomically(path, text)
    out.result({"path": str(path), **proven.to_json()},
               [f"wrote the proof of deposit {args.index} to {path} (verified)",
                *cosign_lines(proven)])
    return EXIT_OK


def cosign_lines(proven: Any) -> list[str]:
    """What a co-signed deposit's proof set proves, for people."""
    lines = [*proven_lines(proven.deposit),
             f"  co-signers       {proven.threshold} of {len(proven.slots)} needed by "
             f"{iso_utc(proven.deadline_ms)}"]
    for s in proven.signatures:
        slot = proven.slots[s.slot]
        lines.append(f"    signed [{s.slot}] {slot.describe()} by {s.signer} "
                     + (f"of {s.org} " if s.org else "")
                     + f"at {iso_utc(s.time_ms)} (log index {s.log_index})")
    if proven.status == "effective" and proven.effective is not None:
        lines.append(f"  status           EFFECTIVE at block {proven.effective.height}, "
                     f"{iso_utc(proven.effective.time_ms)} (log index "
                     f"{proven.effective.log_index}): {proven.threshold} named parties "
                     "signed, each with its own key")
    elif proven.state_height is not None:
        lines.append(f"  status           {proven.status.upper()} as of block "
                     f"{proven.state_height} ({iso_utc(proven.state_time_ms or 0)}): "
                     f"{len(proven.signatures)} of {proven.threshold} signed")
    else:
        lines.append(f"  status           {proven.status}")
    lines += [f"  note             {n}" for n in proven.notes]
    return lines


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    from tidechain.core.proofset import is_proof_set

    single = args.receipt is None
    if single and not is_proof_set(Path(args.file).read_bytes()[:64]):
        return verify_entry(args, out)  # `tide verify RECEIPT`: any application's entry
    path = None if single else Path(args.file)
    receipt_path = args.file if single else args.receipt
    receipt = Path(receipt_path).read_bytes()
    trust = Path(args.trust).read_bytes()
    digest = None if path is None else hash_with_progress(path, out.err)
    try:
        if is_proof_set(receipt[:64]):
            from tidechain.client.deposit_proof import verify_deposit_proof

            cosigned = verify_deposit_proof(receipt, trust, digest)
            what = (f"{path} is the document deposited" if path else "a co-signed deposit")
            lines = [f"verification OK: {what} in {receipt_path}", *cosign_lines(cosigned),
                     f"  trusted keys     {args.trust} (offline: no node was contacted)"]
            out.result({"verified": True, "file": str(path), **cosigned.to_json()}, lines)
            return EXIT_OK
        assert digest is not None
        proven = verify_deposit_receipt(receipt, trust, digest)
    except Rejected as exc:
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    lines = [f"verification OK: {path} is the document deposited in {receipt_path}",
             *proven_lines(proven)]
    if proven.cosigned:
        lines.append("  co-signed        this receipt proves the deposit, not that its "
                     "co-signers signed: verify its proof set (tide evidence proof)")
    lines.append(f"  trusted keys     {args.trust} (offline: no node was contacted)")
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
    p.add_argument("--cosigner", action="append", metavar="WHO",
                   help="a party that must co-sign (repeatable): ORG:ROLE, or a member key "
                        "(64 hex digits, a key file or a member certificate)")
    p.add_argument("--threshold", type=int, metavar="K",
                   help="co-signatures that make it effective (default: all)")
    p.add_argument("--deadline", metavar="WHEN",
                   help="signing closes then: +7d, +12h, a date or an ISO instant "
                        "(default and limit: the governed evidence.max_cosign_ms)")
    p.add_argument("--public", action="store_true",
                   help="anyone may look it up by digest and fetch its receipt (公示)")
    trust_option(p)

    p = add(commands, "verify", cmd_verify,
            "verify a file against its receipt (FILE RECEIPT), or any receipt (RECEIPT), "
            "offline")
    p.add_argument("file", metavar="FILE")
    p.add_argument("receipt", metavar="RECEIPT", nargs="?",
                   help="a receipt (.tlog-proof) or a co-signed deposit's proof set "
                        "(.tlog-proofs)")
    trust_option(p, required=True)

    evidence_group = group(commands, "evidence", "evidence deposits")
    p = add(evidence_group, "sign", cmd_evidence_sign,
            "co-sign a deposit that names you, after checking it is of FILE")
    p.add_argument("index", type=int, metavar="INDEX")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--digest", metavar="HEX", help="the document's SHA-256 instead of FILE")
    p.add_argument("--key", metavar="KEYFILE", help="your key (default: NET/client.key)")
    p.add_argument("-o", "--output", metavar="FILE", help="write your signature's receipt")
    trust_option(p)
    p = add(evidence_group, "show", cmd_evidence_show,
            "a deposit: status, co-signers, who signed and when")
    p.add_argument("index", type=int, metavar="INDEX")
    p = add(evidence_group, "publish", cmd_evidence_publish,
            "make your deposit public: anyone may look it up (公示)")
    p.add_argument("index", type=int, metavar="INDEX")
    p.add_argument("--key", metavar="KEYFILE", help="depositor key (default: NET/client.key)")
    trust_option(p)
    p = add(evidence_group, "proof", cmd_evidence_proof,
            "fetch and verify the proof set of a co-signed deposit (its status, offline)")
    p.add_argument("index", type=int, metavar="INDEX")
    p.add_argument("-o", "--output", metavar="FILE",
                   help=f"where to write it (default: deposit-INDEX{PROOF_SET_SUFFIX})")
    p.add_argument("--anonymous", action="store_true",
                   help="read without credentials (a public deposit)")
    trust_option(p)
    p = add(evidence_group, "lookup", cmd_evidence_lookup, "list the deposits of a document")
    p.add_argument("file", nargs="?", metavar="FILE")
    p.add_argument("--digest", metavar="HEX", help="look up a SHA-256 digest instead of a file")
    p.add_argument("--anonymous", action="store_true",
                   help="read without credentials: only public deposits answer")
