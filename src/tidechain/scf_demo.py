"""The supply-chain finance demo (docs/scf.md): a core enterprise, a bank, three tiers of
suppliers, the tax authority and the regulator on a four-validator network run by
`tide cluster up`, every step the `tide` command a user would type.

The tax authority authorises the tier-1 supplier's invoicing; the supplier invoices the
steel group (the core enterprise) for coil it delivered; the bank sets the steel
group's credit line; the steel group issues a receivable certificate to the supplier,
citing the invoice and the supply contract's hash (the contract itself stays here).
The supplier accepts and splits it to two tier-2 suppliers: one accepts, one refuses
(its part goes back); a tier-2 supplier passes part on to tier 3 and finances the rest
at the bank, at a price the contract computes. The regulator looks through the whole
chain. A red-letter reversal of the backing invoice flags the certificates. At
maturity the steel group settles and every holder is paid. Every write's receipt is
verified offline with `tide verify` and the trust file alone.

Maturity is seconds away (the chain's block time follows the wall clock, and the
contract requires a maturity after now), so the demo waits for it; the one SDK step
(the red-letter invoice, whose content is sealed client-side) is printed as what it
does.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tidechain.cli.scf import cny
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.client.files import read_key
from tidechain.client.sdk import Client, write_atomically
from tidechain.client.session import Session
from tidechain.core.crypto import SigningKey

TIDE = [sys.executable, "-m", "tidechain"]
VALIDATORS = 4
MATURITY_S = 40
"""How far away the certificate matures: long enough for every move before it (about
ten calls and a few reads, a few seconds on a laptop), short enough to wait for."""
SUPPLIER_TAX_ID = "91350100M000100Y43"
"""A valid unified social credit code (check characters correct) for the supplier."""
QUOTA_FEN = 1_000_000_000
INVOICE_NO = "04400000000000000001"
RED_NO = "04400000000000000002"
COIL = "hot-rolled steel coil (t)"
COIL_PRICE_FEN = 480_000
VAT_BP = 1300
CONTRACT_TEXT = ("Supply contract 2026-SC-019\nSeller: Minhang Coil Processing Co.\n"
                 "Buyer: Dongfang Steel Group Co.\nHot-rolled steel coil, 200 t at "
                 "CNY 4,800.00/t + 13 % VAT, delivery December 2026\n")
PORT_LOW, PORT_HIGH = 20000, 32000
"""API and peer ports below Linux's ephemeral range (as tests/nodes.py picks them)."""
PEER_OFFSET = 100

ACTORS = {  # key file stem: (certificate name, roles, what it is in the story)
    "tax": ("Shanghai Tax Service", ("tax_authority",), "the tax authority"),
    "steel": ("Dongfang Steel Group Co.", ("enterprise",), "the core enterprise"),
    "bank": ("Pudong Commercial Bank", ("funder",), "the bank"),
    "regulator": ("Financial Regulator", ("regulator",), "the regulator"),
    "tier1": ("Minhang Coil Processing Co.", ("enterprise", "invoice_issuer"),
              "tier-1 supplier"),
    "tier2a": ("Jiading Auto Parts Co.", ("enterprise",), "tier-2 supplier"),
    "tier2b": ("Songjiang Fasteners Co.", ("enterprise",), "tier-2 supplier"),
    "tier3": ("Qingpu Castings Co.", ("enterprise",), "tier-3 supplier"),
}
_LOG_INDEX = re.compile(r"committed at log index (\d+)")
_VERIFY_SKIP = ("  sender ", "  block height ", "  block time ", "  transaction ",
                "  trusted keys ")


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _say(text: str) -> None:
    print(f"   ({text})", flush=True)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block() -> int:
    """A base port P with P..P+3 and P+100..P+103 free: the four nodes' API and peer
    ports of `tide init --validators 4 --port P`."""
    for base in range(PORT_LOW + os.getpid() % 5000, PORT_HIGH - PEER_OFFSET - VALIDATORS,
                      VALIDATORS + 1):
        ports = [base + i for i in range(VALIDATORS)]
        if all(_bindable(p) for p in ports + [p + PEER_OFFSET for p in ports]):
            return base
    raise SystemExit("no free block of ports for four validators")


class Demo:
    """The demo's directory (commands run in it, paths printed relative to it), the
    network's environment, and the receipts written so far."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k != "TIDE_NODE"}
        self.env["TIDE_NET"] = str(root / "net")
        self.receipts: list[str] = []
        self.keys: dict[str, SigningKey] = {}
        (root / "receipts").mkdir(exist_ok=True)

    def tide(self, *args: str, expect: str | None = None, show: bool = True) -> str:
        """Print `tide ARGS`, run it in the demo directory and print what it printed.
        `expect`: the contract's refusal code it must fail with (else it must succeed).
        Its output (stdout, then stderr)."""
        shown = " ".join(shlex.quote(a) for a in ["tide", *args])
        print(f"\n$ {shown}", flush=True)
        done = subprocess.run([*TIDE, *args], cwd=self.root, env=self.env, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL)
        text = done.stdout + done.stderr
        if show:
            print(text.rstrip("\n"), flush=True)
        if expect is None and done.returncode != 0:
            raise SystemExit(f"demo step failed with exit code {done.returncode}: {shown}\n"
                             f"{text}")
        if expect is not None and (done.returncode == 0 or f"error: {expect}:" not in text):
            raise SystemExit(f"expected the refusal {expect!r}, got exit code "
                             f"{done.returncode}: this is a bug\n{text}")
        return text

    def write(self, name: str, *args: str) -> str:
        """A write whose receipt goes to receipts/NN-name.tlog-proof."""
        path = f"receipts/{len(self.receipts) + 1:02d}-{name}.tlog-proof"
        self.receipts.append(path)
        return self.tide(*args, "-o", path)

    def receipt_of(self, name: str, text: str, reader: str) -> None:
        """Fetch the receipt of the write whose output is `text` (a verb without -o),
        read as `reader` (a log entry is read by its sender and its parties)."""
        found = _LOG_INDEX.search(text)
        if found is None:
            raise SystemExit(f"no log index in {text!r}")
        path = f"receipts/{len(self.receipts) + 1:02d}-{name}.tlog-proof"
        self.receipts.append(path)
        self.tide("proof", found.group(1), "-o", path, "--as", f"keys/{reader}.key")

    def verify(self, receipts: list[str]) -> None:
        """`tide verify` each receipt offline; print what it proves."""
        for path in receipts:
            shown = f"tide verify {path} --trust net/trust.txt"
            print(f"\n$ {shown}", flush=True)
            done = subprocess.run([*TIDE, "verify", path, "--trust", "net/trust.txt"],
                                  cwd=self.root, env=self.env, text=True,
                                  capture_output=True, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                raise SystemExit(f"{shown} failed: {done.stdout}{done.stderr}")
            for line in done.stdout.splitlines():
                if not line.startswith(_VERIFY_SKIP):
                    print(line)

    def hex(self, actor: str) -> str:
        return self.keys[actor].public_key.hex()


def network(demo: Demo, name: str) -> None:
    """`tide init` a network of VALIDATORS validators named `name` in the demo's
    directory, and start them (`tide cluster up`)."""
    port = free_port_block()
    _step(f"A consortium network of {VALIDATORS} validators on this machine")
    demo.tide("init", "net", "--name", name, "--validators", str(VALIDATORS),
              "--port", str(port))
    demo.tide("cluster", "up", "net")


def _network(demo: Demo) -> None:
    network(demo, "scf-demo")


def _enrol(demo: Demo) -> None:
    _step("The platform's organisation enrols the parties (each gets a key and a member "
          "certificate)")
    (demo.root / "keys").mkdir(exist_ok=True)
    for stem, (name, roles, _) in ACTORS.items():
        role_args = [a for role in roles for a in ("--role", role)]
        demo.tide("member", "enrol", *role_args, "--name", name, "--new-key",
                  f"keys/{stem}.key")
        demo.keys[stem] = read_key(demo.root / "keys" / f"{stem}.key").key
    print("\nWho is who (keys are shown by their first 12 hex digits):")
    for stem, (name, _, what) in ACTORS.items():
        print(f"   {stem:<10} {demo.hex(stem)[:12]}...  {name} ({what})")


def _trade(demo: Demo) -> None:
    _step("The tax authority authorises the tier-1 supplier's e-invoicing")
    demo.write("auditors", "call", "invoice.set_auditors", "--arg",
               f'keys=["{demo.hex("tax")}"]', "--key", "keys/tax.key")
    demo.write("authorise", "call", "invoice.authorise_issuer", "--arg",
               f"issuer={demo.hex('tier1')}", "--arg", f"name={ACTORS['tier1'][0]}",
               "--arg", f"tax_id={SUPPLIER_TAX_ID}", "--arg", f"quota={QUOTA_FEN}",
               "--key", "keys/tax.key")
    _step("The tier-1 supplier invoices the steel group for 200 t of coil (sealed to "
          "the parties and the tax authority)")
    issued = demo.tide("invoice", "issue", INVOICE_NO, "--key", "keys/tier1.key",
                       "--buyer-key", demo.hex("steel"), "--line",
                       f"{COIL},200,{COIL_PRICE_FEN},{VAT_BP}")
    demo.receipt_of("invoice", issued, "tier1")


def _issue(demo: Demo) -> None:
    _step("The bank sets the steel group's credit line (授信)")
    demo.write("line", "scf", "line", "--core", "keys/steel.key.pem", "--limit",
               "5,000,000.00", "--key", "keys/bank.key")
    _step("The steel group issues a certificate to its tier-1 supplier (开立), citing the "
          "invoice and the supply contract's SHA-256 (the contract stays here)")
    (demo.root / "documents").mkdir(exist_ok=True)
    (demo.root / "documents" / "supply-contract-2026-SC-019.txt").write_text(CONTRACT_TEXT)
    demo.write("issue", "scf", "issue", "--to", "keys/tier1.key.pem", "--amount",
               "1,000,000.00", "--maturity", f"+{MATURITY_S}s", "--contract",
               "documents/supply-contract-2026-SC-019.txt", "--invoice", INVOICE_NO,
               "--key", "keys/steel.key")
    _say("the invoice totals CNY 1,084,800.00: it cannot back another CNY 200,000.00")
    demo.tide("scf", "issue", "--to", "keys/tier1.key.pem", "--amount", "200,000.00",
              "--maturity", f"+{MATURITY_S}s", "--contract",
              "documents/supply-contract-2026-SC-019.txt", "--invoice", INVOICE_NO,
              "--key", "keys/steel.key", expect="insufficient_background")


def _tiers(demo: Demo) -> None:
    _step("Tier 1 accepts it (签收) and splits it to two tier-2 suppliers (拆分)")
    demo.tide("scf", "incoming", "--key", "keys/tier1.key")
    demo.write("accept", "scf", "accept", "0", "--key", "keys/tier1.key")
    demo.write("split", "scf", "split", "0", "--part", "keys/tier2a.key.pem=300,000.00",
               "--part", "keys/tier2b.key.pem=200,000.00", "--key", "keys/tier1.key")
    _step("One tier-2 supplier accepts; the other refuses (拒签): its part goes back to "
          "tier 1")
    demo.write("accept", "scf", "accept", "1", "--key", "keys/tier2a.key")
    demo.write("refuse", "scf", "refuse", "2", "--key", "keys/tier2b.key")
    demo.tide("scf", "held", "--key", "keys/tier1.key")
    _step("The tier-2 supplier passes part of its certificate on to tier 3 (多级流转)")
    demo.write("split", "scf", "split", "1", "--part", "keys/tier3.key.pem=100,000.00",
               "--key", "keys/tier2a.key")
    demo.write("accept", "scf", "accept", "4", "--key", "keys/tier3.key")


def _finance(demo: Demo) -> None:
    _step("The tier-2 supplier finances the rest at the bank (贴现): frozen while the "
          "bank decides")
    demo.write("finance", "scf", "finance", "5", "--funder", "keys/bank.key.pem",
               "--rate-bp", "450", "--key", "keys/tier2a.key")
    _say("a frozen certificate cannot move")
    demo.tide("scf", "split", "5", "--part", "keys/tier3.key.pem=100,000.00", "--key",
              "keys/tier2a.key", expect="not_active")
    _say("the price: face minus floor(face x rate x days / (10,000 x 365)); maturity is "
         "seconds away here, and a started day counts as a day")
    demo.write("approve", "scf", "approve", "5", "--ref", "PCB-DISC-2026-0001", "--key",
               "keys/bank.key")
    demo.tide("scf", "show", "5", "--key", "keys/bank.key")


def _look_through(demo: Demo) -> None:
    _step("The regulator looks through the whole chain (穿透): the deepest certificate "
          "back to its issue and trade background, outstanding by tier, financing")
    demo.tide("scf", "tree", "4", "--key", "keys/regulator.key")
    demo.tide("scf", "outstanding", "keys/steel.key.pem", "--key", "keys/regulator.key")
    demo.tide("scf", "financed", "keys/bank.key.pem", "--key", "keys/regulator.key")
    _say("each party sees its own: tier 3 is no party to what tier 2 financed")
    demo.tide("scf", "show", "5", "--key", "keys/tier3.key", expect="forbidden")


def _red_letter(demo: Demo, url: str) -> None:
    _step("The supplier reverses 10 t of the invoice (a return) by a red-letter invoice: "
          "the certificates it backs are flagged")
    trust = (demo.root / "net" / "trust.txt").read_text()
    key = demo.keys["tier1"]
    with Client(url, trust=trust, key=key) as sdk:
        auditors = sdk.invoice_auditors()
        readers = sealing.red_letter_readers(sdk.invoice(INVOICE_NO), auditors)
        red = tb.red_letter_args(RED_NO, INVOICE_NO, "sales_return",
                                 [tb.invoice_line(COIL, 10, COIL_PRICE_FEN, VAT_BP)])
        outcome = Session(sdk, key).call(tb.INVOICE, "red_letter",
                                         tb.sealed_red_args(red, readers=readers))
    path = f"receipts/{len(demo.receipts) + 1:02d}-red-letter.tlog-proof"
    demo.receipts.append(path)
    write_atomically(demo.root / path, outcome.receipt)
    print(f"\n(SDK) tier1: invoice.red_letter {RED_NO} reversing {cny(red['total'])} of "
          f"{INVOICE_NO} (sales_return), content sealed to its readers: committed at log "
          f"index {outcome.log_index} ({', '.join(outcome.event_types())}); receipt "
          f"verified, written to {path}")
    demo.tide("scf", "show", "4", "--key", "keys/tier3.key")
    demo.tide("scf", "held", "--key", "keys/bank.key")


def _settle(demo: Demo, maturity_at: float) -> None:
    wait = maturity_at - time.time()
    _step("Maturity: the steel group settles (兑付); every holder is paid its face value")
    if wait > 0:
        _say(f"waiting {wait:.0f} s for maturity")
        time.sleep(wait + 1)
    demo.write("settle", "scf", "settle", "4", "--ref", "DSG-PAY-2026-0004", "--key",
               "keys/steel.key")
    _say("the head block is past maturity now: what is unpaid is overdue, for its "
         "holders, funders and the regulator")
    demo.tide("scf", "overdue", "--key", "keys/regulator.key")
    demo.write("settle", "scf", "settle", "--due", "--ref", "DSG-PAY-2026-BATCH1",
               "--key", "keys/steel.key")
    demo.tide("scf", "tree", "0", "--key", "keys/regulator.key")
    demo.tide("scf", "outstanding", "--key", "keys/steel.key")
    demo.tide("scf", "overdue", "--key", "keys/regulator.key")


def run(root: Path) -> None:
    demo = Demo(root)
    _network(demo)
    try:
        url = _api_url(root)
        _enrol(demo)
        _trade(demo)
        _issue(demo)
        maturity_at = time.time() + MATURITY_S
        _tiers(demo)
        _finance(demo)
        _look_through(demo)
        _red_letter(demo, url)
        _step("While the certificates mature, every receipt so far is verified offline "
              "(the trust file alone: no node is asked)")
        before = list(demo.receipts)
        demo.verify(before)
        _settle(demo, maturity_at)
        _step("The settlements' receipts, verified offline")
        demo.verify(demo.receipts[len(before):])
        print(f"\n{len(demo.receipts)} receipts verified offline: one per write of the story "
              "that the chain applied.")
    finally:
        demo.tide("cluster", "down", "net")


def _api_url(root: Path) -> str:
    from tidechain.client.files import node_urls

    urls = node_urls(root / "net")
    if not urls:
        raise SystemExit("the network lists no node")
    return urls[0]


def main(argv: list[str] | None = None) -> int:
    """Run the demo in `--dir` (default: a new temp dir); 0 when every step went as
    the rules say."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="where to create the demo (default: a new temp dir)")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tidechain-scf-demo-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"tidechain supply-chain finance demo in {root}")
    print(f"(the commands run there, with TIDE_NET={root / 'net'})")
    started = time.monotonic()
    run(root)
    print(f"\nDemo complete in {time.monotonic() - started:.0f} s. The network, keys, "
          f"documents and receipts are in {root} (node logs: net/nodeN/node.log).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
