"""`tide invoice ...`: e-invoices from the command line (docs/invoices.md).

Content is sealed (ADR 0012): `show` prints the public record for anyone, and the
content only when `--key` is one of the invoice's readers (or `--code` is the buyer's
claim code); it is opened here, never by the node. Writes sign with `--key`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, client, committed_line, group, key_file, session
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.contracts.invoice.content import REASONS
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected
from tidechain.core.hexcodec import parse_hex, to_json


def _key(args: argparse.Namespace) -> SigningKey:
    if not args.key:
        raise Rejected("give the signing member's key: --key FILE", code="bad_argument")
    return key_file(args.key)


def _send(out: Output, key: SigningKey, sdk: Any, method: str, args: dict[str, Any],
          what: str) -> int:
    outcome = session(sdk, key).call(tb.INVOICE, method, args)
    out.result(outcome.to_json(), [committed_line(outcome, what)])
    return EXIT_OK


def fen_text(value: int) -> str:
    """An amount in fen as yuan with two decimals: 44748 -> '447.48'."""
    return f"{value // 100:,}.{value % 100:02d}"


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        record = sdk.invoice(args.number)
    lines = [f"invoice {record['number']}: {record['kind']}, {record['state']}, total "
             f"{fen_text(record['total'])}, reversed {fen_text(record['reversed'])}, reimbursed "
             f"{fen_text(record['reimbursed'])}",
             f"  issuer {record['issuer']}  holder {record.get('holder') or '-'}",
             f"  sealed to {len(record['sealed']['readers'])} reader(s); commitment "
             f"{record['sealed']['commitment']}"]
    data: dict[str, Any] = {"record": record}
    if args.key or args.code:
        key = key_file(args.key) if args.key else None
        code = args.code.encode() if args.code else None
        content = sealing.open_content(record, key=key, code=code)
        data["content"] = to_json(content)
        lines.append("  content (opened with your key, checked against its commitment):")
        for line in content["lines"]:
            lines.append(f"    {line['name']}: {line['quantity']} x "
                         f"{fen_text(line['unit_price'])} = {fen_text(line['amount'])} + tax "
                         f"{fen_text(line['tax'])} ({line['tax_rate_bp'] / 100:g} %)")
        lines.append(f"    amount {fen_text(content['amount'])}, tax {fen_text(content['tax'])}, "
                     f"total {fen_text(content['total'])}")
        if content.get("remark"):
            lines.append(f"    remark: {content['remark']}")
    else:
        lines.append("  content: sealed (give --key FILE of a reader to open it)")
    out.result(data, lines)
    return EXIT_OK


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        stats = sdk.invoice_stats(args.issuer, args.month)
    out.result(stats, [f"{args.issuer} in {args.month}:",
                       f"  issued      {fen_text(stats['issued'])} in {stats['issued_count']} "
                       "invoice(s)",
                       f"  reversed    {fen_text(stats['reversed'])}",
                       f"  reimbursed  {fen_text(stats['reimbursed'])}"])
    return EXIT_OK


def cmd_set_auditors(args: argparse.Namespace, out: Output) -> int:
    key = _key(args)
    auditors = [parse_hex(a, 32, "auditor key") for a in args.auditor] or [key.public_key]
    with client(args, need_trust=True) as sdk:
        return _send(out, key, sdk, "set_auditors", {"keys": auditors}, "audit keys set")


def _line(text: str) -> dict[str, Any]:
    """NAME,QUANTITY,UNIT_PRICE_FEN,TAX_RATE_BP"""
    name, quantity, price, rate = text.rsplit(",", 3)
    try:
        return tb.invoice_line(name, int(quantity), int(price), int(rate))
    except ValueError:
        raise Rejected(f"--line {text!r}: NAME,QUANTITY,UNIT_PRICE_FEN,TAX_RATE_BP",
                       code="bad_argument") from None


def cmd_issue(args: argparse.Namespace, out: Output) -> int:
    key = _key(args)
    if not args.line:
        raise Rejected("give at least one --line", code="bad_argument")
    buyer = {"key": parse_hex(args.buyer_key, 32, "buyer key")}
    plain = tb.invoice_args(args.number, buyer, [_line(t) for t in args.line],
                            remark=args.remark or "")
    with client(args, need_trust=True) as sdk:
        sealed = tb.issue_args(plain, key.public_key, auditors=sdk.invoice_auditors())
        return _send(out, key, sdk, "issue", sealed, f"invoice {args.number} issued")


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    """Issue from an EN 16931 UBL 2.1 document: an Invoice as an invoice, a CreditNote
    (with --original) as a red-letter invoice; the XML's SHA-256 is sealed with it."""
    from tidechain.client import ubl

    key = _key(args)
    data = Path(args.file).read_bytes()
    with client(args, need_trust=True) as sdk:
        auditors = sdk.invoice_auditors()
        if args.original:
            red = ubl.red_letter_args(data, args.number, args.original, reason=args.reason,
                                      validate=args.validate)
            readers = sealing.red_letter_readers(sdk.invoice(args.original), auditors)
            return _send(out, key, sdk, tb.red_letter_method(args.confirm),
                         tb.sealed_red_args(red, readers=readers),
                         f"credit note {red['source']['id']} as red-letter invoice "
                         f"{args.number}")
        buyer = parse_hex(args.buyer_key, 32, "buyer key") if args.buyer_key else None
        plain = ubl.invoice_args(data, args.number, buyer_key=buyer, validate=args.validate)
        return _send(out, key, sdk, "issue",
                     tb.issue_args(plain, key.public_key, auditors=auditors),
                     f"invoice {plain['source']['id']} as {args.number}")


def cmd_action(args: argparse.Namespace, out: Output) -> int:
    key = _key(args)
    with client(args, need_trust=True) as sdk:
        wrapped = None
        employer_hex = getattr(args, "employer", None)
        employer = parse_hex(employer_hex, 32, "employer key") if employer_hex else None
        if args.action == "submit":
            if employer is None:
                raise Rejected("submit needs --employer KEY", code="bad_argument")
            wrapped = sealing.share_key(sdk.invoice(args.number), key, employer)
        action = tb.invoice_action_args(args.action, args.number, employer=employer,
                                        wrapped=wrapped)
        return _send(out, key, sdk, args.action, action, f"{args.action} {args.number}")


def register(commands: Any) -> None:
    """Register `tide invoice ...` under the top-level command table."""
    invoice = group(commands, "invoice", "e-invoices: issue, read (sealed), act, statistics")
    p = add(invoice, "show", cmd_show, "an invoice's public record, and its content if "
            "--key is one of its readers")
    p.add_argument("number", metavar="NUMBER")
    p.add_argument("--key", metavar="FILE", help="a reader's member key file")
    p.add_argument("--code", metavar="TEXT", help="the buyer's claim code from the sale")

    p = add(invoice, "stats", cmd_stats, "the tax authority's counters for one month")
    p.add_argument("issuer", metavar="ISSUER", help="tax id (USCC) or issuer key (hex)")
    p.add_argument("--month", required=True, metavar="YYYY-MM")

    p = add(invoice, "set-auditors", cmd_set_auditors,
            "tax authority: register the audit keys every invoice is sealed to")
    p.add_argument("--key", metavar="FILE", help="a tax authority member's key")
    p.add_argument("--auditor", action="append", default=[], metavar="HEX",
                   help="an audit key (repeatable; default: --key's own)")

    p = add(invoice, "issue", cmd_issue, "issuer: issue a sealed invoice to a member buyer")
    p.add_argument("number", metavar="NUMBER", help="20-digit invoice number")
    p.add_argument("--key", metavar="FILE", help="the issuer's member key")
    p.add_argument("--buyer-key", required=True, metavar="HEX")
    p.add_argument("--line", action="append", metavar="NAME,QTY,PRICE_FEN,RATE_BP",
                   help="a line item (repeatable)")
    p.add_argument("--remark", metavar="TEXT")

    p = add(invoice, "import", cmd_import,
            "issuer: issue from an EN 16931 UBL 2.1 Invoice, or a CreditNote as a "
            "red-letter invoice (docs/ubl-import.md)")
    p.add_argument("file", metavar="FILE", help="the UBL 2.1 XML document")
    p.add_argument("number", metavar="NUMBER", help="our 20-digit number for it")
    p.add_argument("--key", metavar="FILE", help="the issuer's member key")
    p.add_argument("--buyer-key", metavar="HEX", help="the buyer's member key")
    p.add_argument("--original", metavar="NUMBER",
                   help="for a CreditNote: the number of the invoice it reverses")
    p.add_argument("--reason", choices=sorted(REASONS),
                   help="for a CreditNote: why (default: a note of the document naming one)")
    p.add_argument("--confirm", action="store_true",
                   help="for a CreditNote on a claimed or locked invoice: request the "
                        "reversal for the buyer side to confirm")
    p.add_argument("--validate", action="store_true",
                   help="check the UBL 2.1 XSD first (needs the `ubl` extra)")

    for action, text in (("claim", "buyer: claim an invoice titled to you"),
                         ("submit", "buyer: submit it to --employer, sharing its content"),
                         ("lock", "employer: lock a submitted invoice"),
                         ("unlock", "employer: release a locked invoice"),
                         ("reimburse", "employer: close a locked invoice as paid")):
        p = add(invoice, action, cmd_action, text)
        p.add_argument("number", metavar="NUMBER")
        p.add_argument("--key", metavar="FILE", help="your member key")
        if action == "submit":
            p.add_argument("--employer", metavar="HEX", help="the employer's member key")
        p.set_defaults(action=action)
