"""The e-invoice demo (docs/invoice-demo.md): a one-validator network; the actors
enrolled through the real `tide member enrol`; then, with the SDK, a merchant
authorised, an invoice issued (its content sealed to the parties and the tax
authority: another member cannot open it), claimed, submitted, locked and reimbursed
exactly once, partly reversed by a red-letter invoice the employer confirms, and the
tax authority's statistics for the month. Every call goes through one `Session` per
actor: one round trip each, its receipt verified against the network's trust file.
Reads are members-only (ADR 0015): each actor reads with its own key, and sees an
invoice only as a party to it (the tax authority sees every one); a member that is no
party is refused the record, and could not open its sealed content anyway.

CLI steps are printed as the command a user would type; SDK steps as what they do.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

from tidechain.cli.invoice import fen_text
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.client.files import read_key
from tidechain.client.sdk import Client
from tidechain.client.session import Session
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import ContractError, Rejected
from tidechain.demo import demo_network, run_tide

MERCHANT_TAX_ID = "91350100M000100Y43"
"""A valid unified social credit code (check characters correct) for the merchant."""
QUOTA_FEN = 10_000_000
INVOICE_NO = "04400000000000000001"
RED_NO = "04400000000000000002"

ACTORS = {  # key file stem: (certificate name, role)
    "tax": ("State Taxation Bureau", "tax_authority"),
    "merchant": ("Huangpu Coffee Co.", "invoice_issuer"),
    "buyer": ("Li Wei", "depositor"),
    "employer": ("Acme Shipping Ltd.", "enterprise"),
    "other": ("Other Trading Co.", "enterprise"),
}


def _yuan(fen: int) -> str:
    return f"CNY {fen_text(fen)}"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


class _Actors:
    """One SDK client (its reads signed by the actor's key) and one signing session per
    actor: call, read, print the outcome."""

    def __init__(self, clients: dict[str, Client], keys: dict[str, SigningKey]) -> None:
        self.clients = clients
        self.keys = keys
        self.sessions = {actor: Session(clients[actor], key) for actor, key in keys.items()}

    def send(self, actor: str, method: str, args: dict[str, Any]) -> None:
        """`invoice.method(args)` signed by `actor`: one round trip, receipt verified."""
        outcome = self.sessions[actor].call(tb.INVOICE, method, args)
        print(f"   {actor}: committed at log index {outcome.log_index} "
              f"({', '.join(outcome.event_types())}); receipt verified")

    def refused(self, actor: str, method: str, args: dict[str, Any]) -> ContractError:
        """Send a call the contract must refuse; the typed refusal it gave."""
        try:
            self.send(actor, method, args)
        except ContractError as exc:
            print(f"   {actor}: refused: {exc.code}: {exc.reason}")
            return exc
        raise SystemExit("the contract accepted a call it must refuse: this is a bug")

    def read(self, actor: str, number: str, record: dict[str, Any]) -> None:
        """Read the invoice with `actor`'s key and open its sealed content client-side.
        Refused the record (no party to it), show that the record, as `record` was
        read by one that may, would not open with `actor`'s key either."""
        try:
            content = self.clients[actor].invoice_content(number, key=self.keys[actor])
        except sealing.NotAReader as exc:
            print(f"   {actor}: cannot read it ({exc.code})")
            return
        except Rejected as exc:
            if exc.http_status != 403:
                raise
            try:
                sealing.open_content(record, key=self.keys[actor])
            except sealing.NotAReader as sealed:
                print(f"   {actor}: cannot read it ({exc.code}: no party to it); "
                      f"nor would the record open with its key ({sealed.code})")
                return
            raise SystemExit(f"{actor} opened content it is no reader of: this is a bug"
                             ) from None
        items = "; ".join(f"{line['name']} x{line['quantity']}" for line in content["lines"])
        print(f"   {actor}: reads {items}; total {_yuan(content['total'])}")

    def show(self, actor: str, number: str) -> dict[str, Any]:
        """The invoice's public fields, as `actor` (a party, or the tax authority)
        reads them."""
        record = self.clients[actor].invoice(number)
        print(f"   invoice {number}: {record['kind']}, {record['state']}, "
              f"total {_yuan(record['total'])}, reversed {_yuan(record['reversed'])}, "
              f"reimbursed {_yuan(record['reimbursed'])} (read by {actor})")
        return record


def _enrol(root: Path, env: dict[str, str]) -> dict[str, SigningKey]:
    keys_dir = root / "keys"
    keys_dir.mkdir(exist_ok=True)
    keys = {}
    for stem, (name, role) in ACTORS.items():
        path = keys_dir / f"{stem}.key"
        run_tide(["member", "enrol", "--role", role, "--name", name, "--new-key", str(path)], env)
        keys[stem] = read_key(path).key
    return keys


def _invoice_flow(s: _Actors) -> None:
    merchant, buyer = s.keys["merchant"].public_key, s.keys["buyer"].public_key
    employer = s.keys["employer"].public_key
    _step(f"The tax authority authorises the merchant, quota {_yuan(QUOTA_FEN)}, and "
          "registers its audit key")
    s.send("tax", "authorise_issuer", tb.authorise_issuer_args(
        merchant, ACTORS["merchant"][0], MERCHANT_TAX_ID, QUOTA_FEN))
    s.send("tax", "set_auditors", {"keys": [s.keys["tax"].public_key]})
    auditors = s.clients["merchant"].invoice_auditors()  # public: the audit keys
    _step("The merchant issues an invoice to the buyer at the sale, sealed to the "
          "parties and the tax authority")
    lines = [tb.invoice_line("coffee beans, 1 kg", 2, 12_800, 1300, spec="arabica",
                             unit="bag"),
             tb.invoice_line("espresso cups", 4, 3_500, 1300, unit="piece")]
    plain = tb.invoice_args(INVOICE_NO, {"key": buyer}, lines, remark="table 7",
                            drawer="Wang Fang")
    s.send("merchant", "issue", tb.issue_args(plain, merchant, auditors=auditors))
    issued = s.show("merchant", INVOICE_NO)
    for actor in ("buyer", "tax", "employer", "other"):
        s.read(actor, INVOICE_NO, issued)
    _step("The buyer claims it and submits it to the employer, sharing the content key")
    s.send("buyer", "claim", tb.invoice_action_args("claim", INVOICE_NO))
    shared = sealing.share_key(s.clients["buyer"].invoice(INVOICE_NO), s.keys["buyer"],
                               employer)
    s.send("buyer", "submit", tb.invoice_action_args("submit", INVOICE_NO, employer=employer,
                                                     wrapped=shared))
    s.read("employer", INVOICE_NO, issued)
    _step("The employer locks and reimburses it")
    s.send("employer", "lock", tb.invoice_action_args("lock", INVOICE_NO))
    s.send("employer", "reimburse", tb.invoice_action_args("reimburse", INVOICE_NO))
    s.show("employer", INVOICE_NO)
    _step("A second reimbursement is refused")
    s.refused("employer", "lock", tb.invoice_action_args("lock", INVOICE_NO))
    s.refused("employer", "reimburse", tb.invoice_action_args("reimburse", INVOICE_NO))
    _step("The merchant reverses the cups (returned) by a red-letter invoice")
    red = tb.red_letter_args(RED_NO, INVOICE_NO, "sales_return",
                             [tb.invoice_line("espresso cups", 4, 3_500, 1300)])
    readers = sealing.red_letter_readers(s.clients["merchant"].invoice(INVOICE_NO), auditors)
    print("   directly: the invoice is reimbursed, so the employer must confirm")
    s.refused("merchant", tb.red_letter_method(confirm=False),
              tb.sealed_red_args(red, readers=readers))
    print("   so the merchant requests the reversal, and the employer confirms it")
    s.send("merchant", tb.red_letter_method(confirm=True),
           tb.sealed_red_args(red, readers=readers))
    s.send("employer", "confirm_reversal",
           tb.invoice_action_args("confirm_reversal", INVOICE_NO))
    s.show("merchant", RED_NO)
    period = str(s.show("tax", INVOICE_NO)["period"])
    _step(f"The tax authority's statistics for {MERCHANT_TAX_ID} in {period}")
    stats = s.clients["tax"].invoice_stats(MERCHANT_TAX_ID, period)
    print(f"   issued      {_yuan(stats['issued'])} in {stats['issued_count']} invoice(s)")
    print(f"   reversed    {_yuan(stats['reversed'])}")
    print(f"   reimbursed  {_yuan(stats['reimbursed'])}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo in `--dir` (default: a new temp dir); 0 when every step went as
    the rules say."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", help="where to create the demo (default: a new temp dir)")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tidechain-invoice-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"tidechain e-invoice demo in {root}")
    with demo_network(root, "invoice-demo") as demo:
        keys = _enrol(root, demo.env)
        trust = (demo.net / "trust.txt").read_text()
        with contextlib.ExitStack() as stack:
            clients = {actor: stack.enter_context(Client(demo.url, trust=trust, key=key))
                       for actor, key in keys.items()}
            _invoice_flow(_Actors(clients, keys))
    print(f"\nDemo complete. The network and keys are in {root} (node log: {demo.log_path}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
