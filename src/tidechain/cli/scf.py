"""`tide scf ...`: supply-chain finance from the command line (docs/scf.md, ADR 0016).

The friendly layer over `tide call scf.*` and `tide query scf ...`: amounts in CNY
(`1,234.56`, or fen as `123456fen`), maturities as dates (`2027-06-30`, 00:00 Beijing
time), instants (`2027-06-30T09:00:00+08:00`) or offsets from now (`+90d`, `+20s`),
members as key files, their certificates (`KEYFILE.pem`) or hex keys, the supply
contract hashed here (it never leaves this machine). Every rule is the contract's:
a refusal prints its code and reason (`error: over_line: ...`).

Writes sign with `--key FILE`, are sent by the one signing `Session` and print the
committed log index once the receipt is verified against the trust file (`-o FILE`
writes it). Reads are members-only (ADR 0015): signed by `--as`, `$TIDE_KEY`, else
`--key`; each party sees the certificates it holds, was sent, issued or financed, and
the regulator sees everything.
"""

from __future__ import annotations

import argparse
import datetime
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import (
    Output,
    add,
    client,
    committed_line,
    group,
    hash_with_progress,
    key_file,
    now_ms,
    reader_key,
    session,
    trust_option,
)
from tidechain.cli.invoice import fen_text
from tidechain.client import txbuilder as tb
from tidechain.client.files import read_key
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected
from tidechain.core.hexcodec import parse_hex
from tidechain.core.timefmt import iso_utc

if TYPE_CHECKING:
    from tidechain.client.sdk import Client
    from tidechain.client.session import Outcome

SETTLE_BATCH = 5
"""Certificates one `scf.settle` closes: the contract's MAX_SETTLE_BATCH (what always
fits the per-transaction write bound); more are sent as several calls."""
BEIJING = datetime.timezone(datetime.timedelta(hours=8), "CST")
"""A maturity given as a date is 00:00 of that day, China Standard Time (UTC+08:00)."""
KEY_HEX_DIGITS = 64
SHORT_KEY_DIGITS = 12
"""A member key in a list line: its first 12 hex digits (the full key in `show` and
with --json)."""
_UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}
_YUAN = re.compile(r"^(?:CNY|RMB|¥)?\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$")
_FEN = re.compile(r"^(\d+)\s*fen$")
_OFFSET = re.compile(r"^\+(\d+)\s*([dhms])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _bad(reason: str) -> Rejected:
    return Rejected(reason, code="bad_argument")


# --- text to arguments ------------------------------------------------------------------------


def parse_cny(text: str, what: str = "amount") -> int:
    """An amount as fen: `1,234.56`, `1234.5`, `CNY 1,234.56` (yuan, at most two
    decimals) or `123456fen`."""
    cleaned = text.strip()
    fen = _FEN.match(cleaned)
    if fen:
        return int(fen.group(1))
    yuan = _YUAN.match(cleaned)
    if not yuan:
        raise _bad(f"{what}: expected CNY like 1,234.56 (at most two decimals) or fen "
                   f"like 123456fen, got {text!r}")
    cents = (yuan.group(2) or "").ljust(2, "0")
    return int(yuan.group(1).replace(",", "")) * 100 + int(cents)


def cny(fen: int) -> str:
    """Fen as `CNY 1,234.56`."""
    return f"CNY {fen_text(fen)}"


def parse_maturity(text: str, now: int) -> int:
    """A maturity in ms since the epoch: `+90d` / `+12h` / `+30m` / `+20s` after `now`,
    a date (00:00 Beijing time that day), an ISO-8601 instant with its offset, or ms."""
    cleaned = text.strip()
    offset = _OFFSET.match(cleaned)
    if offset:
        return now + int(offset.group(1)) * _UNITS_MS[offset.group(2)]
    if cleaned.isdigit():
        return int(cleaned)
    try:
        if _DATE.match(cleaned):
            day = datetime.date.fromisoformat(cleaned)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        else:
            moment = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad(f"--maturity: expected a date (2027-06-30), an instant with its offset "
                   f"(2027-06-30T09:00:00+08:00), or an offset (+90d, +12h, +20s), got "
                   f"{text!r}")
    return int(moment.timestamp() * 1000)


def member_key(text: str, what: str) -> bytes:
    """A member's public key from 64 hex digits, a key file (its public half) or a
    member certificate (PEM, e.g. the `KEYFILE.pem` that `tide member enrol` writes)."""
    cleaned = text.strip()
    if len(cleaned) == KEY_HEX_DIGITS and not Path(cleaned).is_file():
        return parse_hex(cleaned, KEY_HEX_DIGITS // 2, what)
    path = Path(cleaned)
    if not path.is_file():
        raise _bad(f"{what}: {text!r} is neither a key file, a member certificate nor "
                   f"{KEY_HEX_DIGITS} hex digits")
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        from cryptography import x509  # only for a certificate given as the member
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        try:
            public = x509.load_pem_x509_certificate(data).public_key()
        except ValueError as exc:
            raise _bad(f"{what}: {path} is not a readable certificate ({exc})") from None
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise _bad(f"{what}: the certificate {path} is not for an Ed25519 member key")
        return public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        return read_key(path).key.public_key
    except (Rejected, ValueError) as exc:
        raise _bad(f"{what}: {path} is neither a key file nor a certificate ({exc})"
                   ) from None


def parse_parts(texts: Sequence[str]) -> list[dict[str, Any]]:
    """`--part KEY=CNY` (repeatable) as the split's parts, in order."""
    parts = []
    for text in texts:
        who, equals, amount = text.rpartition("=")
        if not equals or not who:
            raise _bad(f"--part: expected KEY=CNY (e.g. supplier.key.pem=300,000.00), got "
                       f"{text!r}")
        parts.append({"to": member_key(who, "--part"), "amount": parse_cny(amount, "--part")})
    return parts


def settle_refs(ids: Sequence[int], refs: Sequence[str]) -> list[str]:
    """One payment reference per certificate: as many --ref as IDs, or one for all (a
    batch payment)."""
    if len(refs) == 1:
        return list(refs) * len(ids)
    if len(refs) != len(ids):
        raise _bad(f"give one --ref per certificate ({len(ids)}) or a single one for all, "
                   f"not {len(refs)}")
    return list(refs)


# --- printing ---------------------------------------------------------------------------------


def short(key_hex: str) -> str:
    return key_hex[:SHORT_KEY_DIGITS] + "..."


def _status(cert: dict[str, Any]) -> str:
    marks = [cert["status"]]
    if cert.get("pending"):
        marks.append(f"awaiting {short(cert['pending'])}")
    if cert.get("finance_requested_from"):
        marks.append(f"offered to {short(cert['finance_requested_from'])}")
    if cert.get("overdue"):
        marks.append("OVERDUE")
    if cert.get("flagged"):
        marks.append("FLAGGED: red letter")
    return ", ".join(marks)


def cert_line(cert: dict[str, Any], indent: str = "  ") -> str:
    """One certificate in a list: id, tier, face value, status, holder, maturity."""
    line = (f"{indent}#{cert['id']}  tier {cert['tier']}  {cny(cert['amount'])}  "
            f"{_status(cert)}  holder {short(cert['holder'])}  matures "
            f"{iso_utc(cert['maturity'])}")
    settled = cert.get("settled")
    if settled:
        line += f"  paid to {short(settled['to'])} ref {settled['ref']}"
    return line


def financing_line(f: dict[str, Any], face: int) -> str:
    return (f"by {short(f['funder'])} from {short(f['seller'])}: paid {cny(f['price'])} for "
            f"{cny(face)} (discount {cny(face - f['price'])}: {f['rate_bp']} bp a year, "
            f"{f['days']} day(s)), ref {f['ref']}, at {iso_utc(f['time'])}")


def background_lines(background: dict[str, Any], indent: str = "  ") -> list[str]:
    flagged = set(background["flagged"])
    lines = [f"{indent}supply contract  sha256:{background['contract']} (the document stays "
             "off chain)"]
    for number, fen in background["invoices"]:
        mark = ("  REVERSED by a red-letter invoice since: certificates flagged"
                if number in flagged else "")
        lines.append(f"{indent}e-invoice {number}  backs {cny(fen)}{mark}")
    return lines


def show_lines(cert: dict[str, Any], background: dict[str, Any]) -> list[str]:
    parent = "" if cert["parent"] is None else f", parent #{cert['parent']}"
    lines = [f"certificate #{cert['id']}: {cert['status']}, {cny(cert['amount'])} (tier "
             f"{cert['tier']}, root #{cert['root']}{parent})",
             f"  holder      {cert['holder']}",
             f"  core        {cert['core']}",
             f"  maturity    {iso_utc(cert['maturity'])}",
             f"  created     {iso_utc(cert['issued'])} in tx {cert['tx']}"]
    if cert["pending"]:
        lines.append(f"  sent to     {cert['pending']} (awaiting its acceptance)")
    if cert["finance_requested_from"]:
        lines.append(f"  frozen      offered to funder {cert['finance_requested_from']}, "
                     "until it answers")
    for f in cert["financings"]:
        lines.append(f"  financed    {financing_line(f, cert['amount'])}")
    if cert["settled"]:
        s = cert["settled"]
        lines.append(f"  settled     paid {cny(cert['amount'])} to {s['to']}, ref {s['ref']}, "
                     f"at {iso_utc(s['time'])}")
    if cert["children"]:
        lines.append(f"  split into  {', '.join(f'#{c}' for c in cert['children'])}")
    if cert["overdue"]:
        lines.append("  OVERDUE     unpaid past maturity")
    if cert["flagged"]:
        lines.append(f"  FLAGGED     red-letter reversal of backing e-invoice(s) "
                     f"{', '.join(background['flagged'])}: check the trade background")
    else:
        lines.append("  flagged     no (no backing e-invoice reversed)")
    lines.append(f"  trade background of root #{cert['root']}:")
    return lines + background_lines(background, "    ")


def tree_lines(items: list[dict[str, Any]]) -> list[str]:
    """Certificates as an indented tree by parent; one whose parent is not among them
    (not the reader's to see) starts its own branch."""
    by_id = {c["id"]: c for c in items}
    lines: list[str] = []

    def walk(cert: dict[str, Any], depth: int) -> None:
        lines.append(cert_line(cert, "  " + "  " * depth))
        for child in cert["children"]:
            if child in by_id:
                walk(by_id[child], depth + 1)

    for cert in items:
        if cert["parent"] not in by_id:
            walk(cert, 0)
    return lines


def _event_lines(outcome: Outcome, parts: Sequence[dict[str, Any]] = ()) -> list[str]:
    """What the committed call did, from its proven events."""
    lines = []
    for event in outcome.events:
        kind, d = event["type"], event["data"]
        if kind == "line_set":
            lines.append(f"  credit line of {short(d['core'])} set to {cny(d['limit'])} by "
                         f"{short(d['funder'])}")
        elif kind == "issued":
            lines.append(f"  certificate #{d['id']}: {cny(d['amount'])} to {short(d['to'])}, "
                         f"matures {iso_utc(d['maturity'])}; awaiting its acceptance")
        elif kind == "accepted":
            lines.append(f"  certificate #{d['id']} accepted: held by {short(d['holder'])}")
        elif kind == "refused":
            back = f": back with {short(d['to'])}" if d.get("to") else ""
            lines.append(f"  certificate #{d['id']} refused by {short(d['by'])}{back} (an "
                         "issue closes; a transfer goes back to its sender)")
        elif kind == "split":
            children = list(d["children"])
            for child, part in zip(children, parts, strict=False):
                lines.append(f"  #{child}  {cny(part['amount'])} to {short(part['to'].hex())}"
                             ", awaiting its acceptance")
            for child in children[len(parts):]:
                lines.append(f"  #{child}  the remainder, kept")
        elif kind == "finance_requested":
            lines.append(f"  certificate #{d['id']} offered to {short(d['funder'])} at "
                         f"{d['rate_bp']} bp a year: frozen until it answers")
        elif kind == "financed":
            lines.append(f"  certificate #{d['id']} financed: price {cny(d['price'])} paid to "
                         f"{short(d['from'])} ({d['days']} day(s) to maturity); now held by "
                         f"{short(d['funder'])}")
        elif kind == "finance_declined":
            lines.append(f"  certificate #{d['id']}: financing declined; free again")
        elif kind == "settled" and d["status"] == "settled":
            lines.append(f"  certificate #{d['id']} settled: paid to {short(d['to'])}")
        elif kind == "settled":
            lines.append(f"  certificate #{d['id']} {d['status']}: never accepted, closed "
                         "(its share of the line and the invoices freed)")
    return lines


# --- writes -----------------------------------------------------------------------------------


def _signer(args: argparse.Namespace) -> SigningKey:
    if not args.key:
        raise _bad("give the signing member's key: --key FILE")
    return key_file(args.key)


def _receipt_path(args: argparse.Namespace, batch: int, batches: int) -> Path | None:
    if not args.output:
        return None
    path = Path(args.output)
    return path if batches == 1 else path.with_name(f"{path.stem}-{batch}{path.suffix}")


def _write(args: argparse.Namespace, out: Output, method: str, call: dict[str, Any],
           what: str, parts: Sequence[dict[str, Any]] = ()) -> int:
    key = _signer(args)
    with client(args, need_trust=True) as sdk:
        outcome = session(sdk, key).call(tb.SCF, method, call)
    out.result(_recorded(outcome, _receipt_path(args, 1, 1)),
               [committed_line(outcome, what), *_event_lines(outcome, parts),
                *_receipt_lines(_receipt_path(args, 1, 1))])
    return EXIT_OK


def _recorded(outcome: Outcome, path: Path | None) -> dict[str, Any]:
    """The outcome as JSON, its receipt written to `path` (atomically) if given."""
    if path is not None:
        from tidechain.client.sdk import write_atomically

        write_atomically(path, outcome.receipt)
    return outcome.to_json() | {"receipt_path": None if path is None else str(path)}


def _receipt_lines(path: Path | None) -> list[str]:
    return [] if path is None else [f"  receipt  {path}"]


def cmd_line(args: argparse.Namespace, out: Output) -> int:
    core = member_key(args.core, "--core")
    limit = parse_cny(args.limit, "--limit")
    return _write(args, out, "set_line", {"core": core, "limit": limit},
                  f"credit line of {short(core.hex())} set to {cny(limit)}")


def cmd_issue(args: argparse.Namespace, out: Output) -> int:
    to = member_key(args.to, "--to")
    amount = parse_cny(args.amount, "--amount")
    maturity = parse_maturity(args.maturity, now_ms())
    if (args.contract is None) == (args.contract_sha256 is None):
        raise _bad("give the supply contract: --contract FILE (hashed here, never sent) or "
                   "--contract-sha256 HEX")
    digest = (hash_with_progress(Path(args.contract), out.err) if args.contract
              else parse_hex(args.contract_sha256.removeprefix("sha256:"), 32,
                             "--contract-sha256"))
    call = {"to": to, "amount": amount, "maturity": maturity, "contract": digest,
            "invoices": list(args.invoice)}
    return _write(args, out, "issue", call,
                  f"certificate of {cny(amount)} issued to {short(to.hex())}")


def cmd_one(args: argparse.Namespace, out: Output) -> int:
    """accept, refuse, decline: one certificate id."""
    return _write(args, out, args.method, {"id": args.id},
                  f"{args.verb} certificate #{args.id}")


def cmd_split(args: argparse.Namespace, out: Output) -> int:
    parts = parse_parts(args.part)
    shown = ", ".join(f"{cny(p['amount'])} to {short(p['to'].hex())}" for p in parts)
    return _write(args, out, "split", {"id": args.id, "parts": parts},
                  f"certificate #{args.id} split: {shown}", parts)


def cmd_finance(args: argparse.Namespace, out: Output) -> int:
    funder = member_key(args.funder, "--funder")
    return _write(args, out, "finance",
                  {"id": args.id, "funder": funder, "rate_bp": args.rate_bp},
                  f"certificate #{args.id} offered to {short(funder.hex())} at "
                  f"{args.rate_bp} bp")


def cmd_approve(args: argparse.Namespace, out: Output) -> int:
    return _write(args, out, "approve", {"id": args.id, "ref": args.ref},
                  f"certificate #{args.id} financed (ref {args.ref})")


def _due(sdk: Client, core: bytes, now: int) -> list[int]:
    """The certificates `core` has to settle at `now` (the contract's `due` query)."""
    return [int(c["id"]) for c in sdk.walk("scf", "due", core=core.hex(), at=now)]


def cmd_settle(args: argparse.Namespace, out: Output) -> int:
    key = _signer(args)
    if not args.ref:
        raise _bad("give the payment reference(s): --ref REF (one per certificate, or "
                   "one for all)")
    with client(args, need_trust=True) as sdk:
        ids = list(args.ids)
        if args.due:
            ids += [i for i in _due(sdk, key.public_key, now_ms()) if i not in ids]
        if not ids:
            raise _bad("nothing to settle: give certificate IDs, or --due for every "
                       "matured certificate you issued" + (" (none is due)" if args.due
                                                            else ""))
        refs = settle_refs(ids, args.ref)
        signing = session(sdk, key)
        batches = [(ids[i:i + SETTLE_BATCH], refs[i:i + SETTLE_BATCH])
                   for i in range(0, len(ids), SETTLE_BATCH)]
        done: list[dict[str, Any]] = []
        lines: list[str] = []
        for n, (batch_ids, batch_refs) in enumerate(batches, start=1):
            try:
                outcome = signing.call(tb.SCF, "settle", {"ids": batch_ids,
                                                          "refs": batch_refs})
            except Rejected as exc:
                if done:  # say what did commit before the refusal
                    settled = ", ".join(f"#{i}" for b in done for i in b["ids"])
                    exc.reason += (f" (batch {n} of {len(batches)}; the batches before it "
                                   f"were committed: {settled})")
                raise
            path = _receipt_path(args, n, len(batches))
            done.append(_recorded(outcome, path) | {"ids": batch_ids})
            lines += [committed_line(outcome, f"settled {', '.join(f'#{i}' for i in batch_ids)}"),
                      *_event_lines(outcome), *_receipt_lines(path)]
    out.result({"settled": ids, "batches": done}, lines)
    return EXIT_OK


# --- reads ------------------------------------------------------------------------------------


def _own_key(args: argparse.Namespace, given: str | None, what: str) -> bytes:
    """The member named, else the reader's own key."""
    if given:
        return member_key(given, what)
    reader = reader_key(args)
    if reader is None:
        raise _bad(f"whose? give {what} or your key (--key FILE)")
    return reader.public_key


def _gather(sdk: Client, name: str, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    items, more = sdk.gather("scf", name, **params)
    return [dict(i) for i in items], more


def _more_line(more: str | None, query: str) -> list[str]:
    return [] if more is None else [f"(more: tide query scf {query} --param cursor={more})"]


def _total_line(items: list[dict[str, Any]]) -> str:
    return (f"  {len(items)} certificate(s), {cny(sum(c['amount'] for c in items))} in "
            "total")


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        lineage = sdk.query("scf", "lineage", id=args.id)
    cert = lineage["chain"][0]
    out.result({"certificate": cert, "background": lineage["background"]},
               show_lines(cert, lineage["background"]))
    return EXIT_OK


def cmd_tree(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        lineage = sdk.query("scf", "lineage", id=args.id)
        root = lineage["chain"][-1]["id"]
        items, more = _gather(sdk, "tree", id=root)
    chain = lineage["chain"]
    lines = [f"certificate #{args.id} back to its issue (穿透):"]
    for n, cert in enumerate(chain):
        note = ("  <- the issue, by core " + short(cert["core"])
                if n == len(chain) - 1 else "")
        lines.append(cert_line(cert) + note)
    lines.append(f"trade background of root #{root}:")
    lines += background_lines(lineage["background"])
    lines.append(f"certificates under root #{root} ({len(items)} you may read):")
    lines += tree_lines(items)
    out.result({"lineage": lineage, "tree": items, "next": more},
               lines + _more_line(more, f"tree --param id={root}"))
    return EXIT_OK


def _list(args: argparse.Namespace, out: Output, query: str, param: str, title: str) -> int:
    with client(args) as sdk:
        member = _own_key(args, args.member, param.upper())
        items, more = _gather(sdk, query, **{param: member.hex()})
    lines = [f"{title} {short(member.hex())}:", *[cert_line(c) for c in items],
             _total_line(items)]
    out.result({param: member.hex(), "items": items, "next": more},
               lines + _more_line(more, f"{query} --param {param}={member.hex()}"))
    return EXIT_OK


def cmd_held(args: argparse.Namespace, out: Output) -> int:
    return _list(args, out, "held", "member", "certificates held by")


def cmd_incoming(args: argparse.Namespace, out: Output) -> int:
    return _list(args, out, "incoming", "member", "certificates awaiting the acceptance of")


def cmd_issued(args: argparse.Namespace, out: Output) -> int:
    return _list(args, out, "issued", "core", "certificates issued by")


def cmd_outstanding(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        core = _own_key(args, args.member, "CORE")
        found = sdk.query("scf", "outstanding", core=core.hex())
    funder = found["funder"]
    lines = [f"credit line of {short(core.hex())}: {cny(found['limit'])}"
             + ("" if funder is None else f", set by {short(funder)}"),
             f"  outstanding  {cny(found['outstanding'])} "
             f"({cny(found['limit'] - found['outstanding'])} of the line left)"]
    lines += [f"  tier {tier:<7} {cny(fen)}" for tier, fen in found["by_tier"]]
    out.result(found, lines)
    return EXIT_OK


def cmd_overdue(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        head = sdk.status()
        items, more = _gather(sdk, "overdue")
    as_of = int(head["block_time_ms"])
    when = f" (as of the head block's time, {iso_utc(as_of)})"
    lines = [f"certificates unpaid past maturity{when}:", *[cert_line(c) for c in items],
             _total_line(items)]
    out.result({"items": items, "next": more, "as_of_ms": as_of},
               lines + _more_line(more, "overdue"))
    return EXIT_OK


def cmd_financed(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        funder = _own_key(args, args.member, "FUNDER")
        totals = sdk.query("scf", "funder_totals", funder=funder.hex())
        items, more = _gather(sdk, "financed", funder=funder.hex())
    lines = [f"{short(funder.hex())} financed {totals['count']} certificate(s): face "
             f"{cny(totals['face'])}, paid {cny(totals['price'])} (discount "
             f"{cny(totals['face'] - totals['price'])})"]
    for cert in items:
        lines.append(cert_line(cert))
        lines += [f"      {financing_line(f, cert['amount'])}" for f in cert["financings"]
                  if f["funder"] == funder.hex()]
    out.result({"totals": totals, "items": items, "next": more},
               lines + _more_line(more, f"financed --param funder={funder.hex()}"))
    return EXIT_OK


# --- the verbs ----------------------------------------------------------------------------------


def _write_options(p: argparse.ArgumentParser, who: str) -> None:
    p.add_argument("--key", metavar="FILE", help=f"{who}'s member key (signs the call)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the verified receipt to FILE (tide verify FILE --trust ...)")
    trust_option(p)


def _read_options(p: argparse.ArgumentParser, member: str | None = None) -> None:
    p.add_argument("--key", metavar="FILE",
                   help="your member key: signs the read (or --as FILE, $TIDE_KEY)")
    if member is not None:
        p.add_argument("member", nargs="?", metavar=member,
                       help=f"{member}: key file, certificate or hex (default: --key's)")


def _id(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", type=int, metavar="ID", help="certificate id")


def _one(scf: Any, verb: str, text: str, who: str) -> None:
    """A verb on one certificate id (the contract's method of the same name)."""
    p = add(scf, verb, cmd_one, text)
    _id(p)
    _write_options(p, who)
    p.set_defaults(method=verb, verb=verb)


def register(commands: Any) -> None:
    """Register `tide scf ...` under the top-level command table."""
    scf = group(commands, "scf", "supply-chain finance: receivable certificates issued, "
                "split, financed and settled (docs/scf.md)")

    p = add(scf, "line", cmd_line, "funder: set a core enterprise's credit line")
    p.add_argument("--core", required=True, metavar="KEY",
                   help="the core enterprise: key file, certificate or hex")
    p.add_argument("--limit", required=True, metavar="CNY", help="e.g. 5,000,000.00")
    _write_options(p, "the funder")

    p = add(scf, "issue", cmd_issue, "core enterprise: issue a certificate to a supplier")
    p.add_argument("--to", required=True, metavar="KEY", help="the tier-1 supplier")
    p.add_argument("--amount", required=True, metavar="CNY", help="face value")
    p.add_argument("--maturity", required=True, metavar="DATE",
                   help="2027-06-30 (00:00 Beijing time), an ISO instant with offset, or "
                        "+90d / +12h / +20s from now")
    p.add_argument("--contract", metavar="FILE",
                   help="the supply contract: hashed here, never sent")
    p.add_argument("--contract-sha256", metavar="HEX", help="or its SHA-256")
    p.add_argument("--invoice", required=True, action="extend", nargs="+",
                   metavar="NUMBER", help="e-invoice(s) the supplier issued to you")
    _write_options(p, "the core enterprise")

    for verb, text in (("accept", "accept a certificate sent to you (签收)"),
                       ("refuse", "refuse a certificate sent to you (拒签)")):
        _one(scf, verb, text, "the recipient")

    p = add(scf, "split", cmd_split, "holder: split a certificate and send the parts to your "
            "suppliers; the remainder stays yours")
    _id(p)
    p.add_argument("--part", required=True, action="append", metavar="KEY=CNY",
                   help="a part for a supplier (repeatable)")
    _write_options(p, "the holder")

    p = add(scf, "finance", cmd_finance, "holder: ask a funder to finance a certificate "
            "(frozen until it answers)")
    _id(p)
    p.add_argument("--funder", required=True, metavar="KEY")
    p.add_argument("--rate-bp", required=True, type=int, metavar="N",
                   help="yearly discount rate in basis points (450 = 4.50 %%)")
    _write_options(p, "the holder")

    p = add(scf, "approve", cmd_approve, "funder: finance a certificate offered to you "
            "(you pay the price off chain and become its holder)")
    _id(p)
    p.add_argument("--ref", required=True, metavar="REF", help="the payment reference")
    _write_options(p, "the funder")
    _one(scf, "decline", "funder: decline to finance a certificate offered to you",
         "the funder")

    p = add(scf, "settle", cmd_settle, "core enterprise: pay matured certificates you "
            "issued to their holders (兑付)")
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.add_argument("--due", action="store_true",
                   help="every certificate you issued that has matured and is unpaid")
    p.add_argument("--ref", action="extend", nargs="+", metavar="REF",
                   help="payment reference(s): one per certificate, or one for all")
    _write_options(p, "the core enterprise")

    p = add(scf, "show", cmd_show, "one certificate: status, holder, amount, maturity, "
            "red-letter flag, financings, settlement, trade background")
    _id(p)
    _read_options(p)

    p = add(scf, "tree", cmd_tree, "look through (穿透): a certificate back to its issue "
            "with the trade background, and every certificate under that issue")
    _id(p)
    _read_options(p)

    for verb, command, text, member in (
            ("held", cmd_held, "the live certificates a member holds", "KEY"),
            ("incoming", cmd_incoming, "certificates sent to a member, awaiting its "
             "acceptance", "KEY"),
            ("issued", cmd_issued, "the certificates a core enterprise issued", "CORE"),
            ("outstanding", cmd_outstanding, "a core enterprise's credit line and what "
             "is outstanding, per tier", "CORE"),
            ("financed", cmd_financed, "what a funder financed: volume, prices",
             "FUNDER")):
        p = add(scf, verb, command, text)
        _read_options(p, member)

    p = add(scf, "overdue", cmd_overdue, "certificates unpaid past maturity")
    _read_options(p)
