"""`tide scf ...` (cli/scf.py) as subprocesses against a real node: each verb, its
refusals with the contract's codes and reasons, `--json`, receipts verified offline,
and the text helpers (CNY amounts, maturities, member keys) without a node."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.nodes import RunningNode, running_node, tide
from tidechain.cli.scf import (
    member_key,
    parse_cny,
    parse_maturity,
    parse_parts,
    settle_refs,
)
from tidechain.client import Client, sealing
from tidechain.client import txbuilder as tb
from tidechain.client.files import read_key, write_key
from tidechain.client.session import Session
from tidechain.core.errors import Rejected

TAX_ID = "91350100M000100Y43"
BIG_INVOICE = "04400000000000000101"   # CNY 10,000,000.00: backs most certificates here
SMALL_INVOICE = "04400000000000000102"  # CNY 1,000.00
RED_INVOICE = "04400000000000000103"    # CNY 100,000.00, partly reversed by a test
RED_NO = "04400000000000000104"
DAY_MS = 86_400_000
MEMBERS = {  # key file stem: roles
    "tax": ("tax_authority",),
    "core": ("enterprise",),
    "tier1": ("enterprise", "invoice_issuer"),
    "tier2": ("enterprise",),
    "tier2b": ("enterprise",),
    "bank": ("funder",),
    "bank2": ("funder",),
    "reg": ("regulator",),
    "outsider": ("enterprise",),
}


@dataclass
class Scf:
    """The node, a directory with the members' key files, and `tide` run in it."""

    node: RunningNode
    root: Path
    keys: dict[str, bytes] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = tide(*args, cwd=self.root, env={"TIDE_NET": str(self.node.net)})
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def refused(self, code: str, *args: str) -> str:
        """The command fails with exit 2 and `error: CODE: reason`; the reason."""
        done = self.run(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        prefix = f"error: {code}: "
        assert done.stderr.startswith(prefix), (code, done.stderr)
        as_json = self.run(*args, "--json") if code in ("bad_argument", "forbidden") else None
        if as_json is not None:  # the same refusal as one JSON document on stdout
            assert json.loads(as_json.stdout)["error"] == code, as_json.stdout
        return done.stderr[len(prefix):].strip()

    def key(self, name: str) -> str:
        return f"keys/{name}.key"

    def cert(self, name: str) -> str:
        return f"keys/{name}.key.pem"

    def issue(self, amount: str = "1,000.00", *, to: str = "tier1",
              maturity: str = "+90d", invoice: str = BIG_INVOICE) -> int:
        done = self.json("scf", "issue", "--to", self.cert(to), "--amount", amount,
                         "--maturity", maturity, "--contract-sha256", "ab" * 32,
                         "--invoice", invoice, "--key", self.key("core"))
        [event] = done["events"]
        assert event["type"] == "issued"
        return int(event["data"]["id"])

    def accepted(self, amount: str = "1,000.00", *, to: str = "tier1",
                 maturity: str = "+90d", invoice: str = BIG_INVOICE) -> int:
        cert_id = self.issue(amount, to=to, maturity=maturity, invoice=invoice)
        self.ok("scf", "accept", str(cert_id), "--key", self.key(to))
        return cert_id

    def show(self, cert_id: int, reader: str = "reg") -> dict[str, Any]:
        shown: dict[str, Any] = self.json("scf", "show", str(cert_id), "--key",
                                          self.key(reader))["certificate"]
        return shown


@pytest.fixture(scope="module")
def scf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scf]:
    root = tmp_path_factory.mktemp("cli-scf")
    with running_node(root, "scf-cli-net") as node:
        net = Scf(node, root)
        (root / "keys").mkdir()
        for name, roles in MEMBERS.items():
            role_args = [a for role in roles for a in ("--role", role)]
            net.ok("member", "enrol", *role_args, "--name", name, "--new-key",
                   net.key(name))
            net.keys[name] = read_key(root / net.key(name)).key.public_key
        net.ok("call", "invoice.set_auditors", "--arg", f'keys=["{net.keys["tax"].hex()}"]',
               "--key", net.key("tax"))
        net.ok("call", "invoice.authorise_issuer", "--arg", f"issuer={net.keys['tier1'].hex()}",
               "--arg", "name=Tier One", "--arg", f"tax_id={TAX_ID}", "--arg",
               "quota=10000000000", "--key", net.key("tax"))
        for number, fen in ((BIG_INVOICE, 1_000_000_000), (SMALL_INVOICE, 100_000),
                            (RED_INVOICE, 10_000_000)):
            net.ok("invoice", "issue", number, "--key", net.key("tier1"), "--buyer-key",
                   net.keys["core"].hex(), "--line", f"steel coil,1,{fen},0")
        net.ok("scf", "line", "--core", net.cert("core"), "--limit", "50,000,000.00",
               "--key", net.key("bank"))
        yield net
    assert "Traceback" not in node.log()


# --- text helpers (no node) -------------------------------------------------------------------


def test_amounts_are_cny_with_two_decimals_or_fen() -> None:
    assert parse_cny("1,234.56") == 123_456
    assert parse_cny("1234.5") == 123_450
    assert parse_cny("CNY 5,000,000") == 500_000_000
    assert parse_cny("¥12") == 1_200
    assert parse_cny("123456fen") == 123_456
    assert parse_cny("0") == 0
    for bad in ("1.234", "1,23.00", "-5", "12,3456", "ten", "1e6", ""):
        with pytest.raises(Rejected, match="expected CNY"):
            parse_cny(bad)


def test_maturities_are_dates_instants_or_offsets() -> None:
    now = 1_800_000_000_000
    assert parse_maturity("+90d", now) == now + 90 * DAY_MS
    assert parse_maturity("+20s", now) == now + 20_000
    assert parse_maturity("+12h", now) == now + 12 * 3_600_000
    # A date is 00:00 Beijing time (UTC+08:00): 16:00 UTC the day before.
    assert parse_maturity("2027-06-30", now) == 1_814_284_800_000
    assert parse_maturity("2027-06-30T09:00:00+08:00", now) == 1_814_317_200_000
    assert parse_maturity("2027-06-30T01:00:00Z", now) == 1_814_317_200_000
    assert parse_maturity("1814284800000", now) == 1_814_284_800_000
    for bad in ("2027-06-31", "2027-06-30T09:00:00", "+90", "+3w", "tomorrow"):
        with pytest.raises(Rejected, match="--maturity"):
            parse_maturity(bad, now)


def test_members_are_hex_key_files_or_certificates(tmp_path: Path) -> None:
    signer = write_key(tmp_path / "a.key", "a", b"\x07" * 32)
    public = signer.key.public_key
    assert member_key(public.hex(), "--to") == public
    assert member_key(str(tmp_path / "a.key"), "--to") == public
    with pytest.raises(Rejected, match="neither a key file"):
        member_key(str(tmp_path / "missing.key"), "--to")
    (tmp_path / "junk").write_text("not a key\n")
    with pytest.raises(Rejected, match="neither a key file nor a certificate"):
        member_key(str(tmp_path / "junk"), "--to")
    with pytest.raises(Rejected, match="64 hex digits"):
        member_key("zz" * 32, "--to")
    parts = parse_parts([f"{public.hex()}=300,000.00", f"{tmp_path / 'a.key'}=1fen"])
    assert parts == [{"to": public, "amount": 30_000_000}, {"to": public, "amount": 1}]
    with pytest.raises(Rejected, match="KEY=CNY"):
        parse_parts(["300"])


def test_settlement_references_one_each_or_one_for_all() -> None:
    assert settle_refs([1, 2], ["A"]) == ["A", "A"]
    assert settle_refs([1, 2], ["A", "B"]) == ["A", "B"]
    with pytest.raises(Rejected, match="one --ref per certificate"):
        settle_refs([1, 2, 3], ["A", "B"])


def test_help_lists_every_verb() -> None:
    shown = tide("scf", "--help").stdout
    for verb in ("line", "issue", "accept", "refuse", "split", "finance", "approve",
                 "decline", "settle", "show", "tree", "held", "incoming", "issued",
                 "outstanding", "overdue", "financed"):
        assert verb in shown, verb


# --- against the node ---------------------------------------------------------------------------


def test_a_write_prints_its_log_index_and_a_receipt_that_verifies_offline(scf: Scf) -> None:
    out = scf.ok("scf", "line", "--core", scf.keys["core"].hex(), "--limit", "50,000,000.00",
                 "--key", scf.key("bank"), "-o", "line.tlog-proof")
    assert "credit line of " in out and "set to CNY 50,000,000.00: committed at log index" in out
    assert "receipt verified (scf-cli-net/node0)" in out
    assert "receipt  line.tlog-proof" in out
    verified = scf.ok("verify", "line.tlog-proof", "--trust", str(scf.node.net / "trust.txt"))
    assert "verification OK" in verified and "scf.set_line (applied)" in verified
    assert "limit=5000000000" in verified


def test_issue_hashes_the_contract_locally_and_reports_the_certificate(scf: Scf) -> None:
    (scf.root / "contract.txt").write_text("supply contract 7\n")
    out = scf.ok("scf", "issue", "--to", scf.cert("tier1"), "--amount", "2,500.00",
                 "--maturity", "+30d", "--contract", "contract.txt", "--invoice",
                 BIG_INVOICE, "--key", scf.key("core"))
    assert "certificate of CNY 2,500.00 issued to " in out
    assert "committed at log index" in out and "(issued)" in out
    cert_id = int(out.split("certificate #", 1)[1].split(":", 1)[0])
    shown = scf.json("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    assert shown["background"]["contract"] == hashlib.sha256(b"supply contract 7\n").hexdigest()
    assert shown["background"]["invoices"] == [[BIG_INVOICE, 250_000]]
    assert shown["certificate"]["status"] == "pending"
    assert shown["certificate"]["pending"] == scf.keys["tier1"].hex()


def test_issue_refusals_carry_the_contracts_codes(scf: Scf) -> None:
    base = ["scf", "issue", "--contract-sha256", "ab" * 32, "--key", scf.key("core")]
    tier1 = ["--to", scf.cert("tier1")]
    reason = scf.refused("over_line", *base, *tier1, "--amount", "60,000,000.00",
                         "--maturity", "+90d", "--invoice", BIG_INVOICE)
    assert "credit line" in reason and "committed as tx" in reason
    assert "invoice backs certificates up to its total" in scf.refused(
        "insufficient_background", *base, *tier1, "--amount", "2,000.00", "--maturity",
        "+90d", "--invoice", SMALL_INVOICE)
    assert "no e-invoice" in scf.refused(
        "no_invoice", *base, *tier1, "--amount", "10.00", "--maturity", "+90d",
        "--invoice", "04400000000000009999")
    assert "at most 183 days away" in scf.refused(
        "bad_maturity", *base, *tier1, "--amount", "10.00", "--maturity", "+200d",
        "--invoice", BIG_INVOICE)
    scf.refused("bad_maturity", *base, *tier1, "--amount", "10.00", "--maturity",
                "2020-01-01", "--invoice", BIG_INVOICE)
    scf.refused("bad_counterparty", *base, "--to", scf.cert("core"), "--amount", "10.00",
                "--maturity", "+90d", "--invoice", BIG_INVOICE)
    scf.refused("bad_counterparty", *base, "--to", scf.cert("bank"), "--amount", "10.00",
                "--maturity", "+90d", "--invoice", BIG_INVOICE)
    # Not a core enterprise's call: the bank has no enterprise role.
    assert "enterprise" in scf.refused("forbidden", "scf", "issue", *tier1, "--amount",
                                       "10.00", "--maturity", "+90d", "--contract-sha256",
                                       "ab" * 32, "--invoice", BIG_INVOICE, "--key",
                                       scf.key("bank"))
    # Refused here, before anything is signed.
    assert "expected CNY" in scf.refused("bad_argument", *base, *tier1, "--amount", "1.234",
                                         "--maturity", "+90d", "--invoice", BIG_INVOICE)
    assert "--maturity" in scf.refused("bad_argument", *base, *tier1, "--amount", "1.00",
                                       "--maturity", "soon", "--invoice", BIG_INVOICE)
    assert "--contract FILE" in scf.refused(
        "bad_argument", "scf", "issue", *tier1, "--amount", "1.00", "--maturity", "+9d",
        "--invoice", BIG_INVOICE, "--key", scf.key("core"))
    assert "--key FILE" in scf.refused(
        "bad_argument", "scf", "issue", *tier1, "--amount", "1.00", "--maturity", "+9d",
        "--invoice", BIG_INVOICE, "--contract-sha256", "ab" * 32)
    assert "neither a key file" in scf.refused(
        "bad_argument", *base, "--to", "keys/nobody.key.pem", "--amount", "1.00",
        "--maturity", "+9d", "--invoice", BIG_INVOICE)


def test_a_line_is_a_funders_and_never_below_what_is_outstanding(scf: Scf) -> None:
    scf.refused("below_outstanding", "scf", "line", "--core", scf.cert("core"), "--limit",
                "0", "--key", scf.key("bank"))
    scf.refused("forbidden", "scf", "line", "--core", scf.cert("core"), "--limit", "1.00",
                "--key", scf.key("core"))


def test_accept_refuse_and_split_with_their_refusals(scf: Scf) -> None:
    cert_id = scf.issue("3,000.00")
    incoming = scf.ok("scf", "incoming", "--key", scf.key("tier1"))
    assert f"#{cert_id}  tier 1  CNY 3,000.00  pending, awaiting" in incoming
    scf.refused("not_recipient", "scf", "accept", str(cert_id), "--key", scf.key("tier2"))
    scf.refused("not_active", "scf", "split", str(cert_id), "--part",
                f"{scf.cert('tier2')}=100.00", "--key", scf.key("core"))
    out = scf.ok("scf", "accept", str(cert_id), "--key", scf.key("tier1"))
    assert f"accept certificate #{cert_id}: committed at log index" in out
    assert f"certificate #{cert_id} accepted: held by {scf.keys['tier1'].hex()[:12]}" in out
    scf.refused("not_pending", "scf", "accept", str(cert_id), "--key", scf.key("tier1"))
    scf.refused("not_holder", "scf", "split", str(cert_id), "--part",
                f"{scf.cert('tier2')}=100.00", "--key", scf.key("tier2"))
    scf.refused("over_amount", "scf", "split", str(cert_id), "--part",
                f"{scf.cert('tier2')}=3,000.01", "--key", scf.key("tier1"))
    assert "at least 10000 fen" in scf.refused(
        "below_min_split", "scf", "split", str(cert_id), "--part",
        f"{scf.cert('tier2')}=99.99", "--key", scf.key("tier1"))
    scf.refused("bad_counterparty", "scf", "split", str(cert_id), "--part",
                f"{scf.cert('tier1')}=100.00", "--key", scf.key("tier1"))
    split = scf.json("scf", "split", str(cert_id), "--part", f"{scf.cert('tier2')}=1,000.00",
                     "--part", f"{scf.keys['tier2b'].hex()}=500.00", "--key", scf.key("tier1"))
    [event] = split["events"]
    first, second, rest = event["data"]["children"]
    out = scf.ok("scf", "refuse", str(second), "--key", scf.key("tier2b"))
    assert f"certificate #{second} refused by {scf.keys['tier2b'].hex()[:12]}" in out
    assert f"back with {scf.keys['tier1'].hex()[:12]}" in out
    back = scf.show(second, "tier1")
    assert (back["status"], back["holder"]) == ("active", scf.keys["tier1"].hex())
    assert scf.show(rest)["amount"] == 150_000 and scf.show(cert_id)["status"] == "consumed"
    held = scf.ok("scf", "held", scf.cert("tier1"), "--key", scf.key("reg"))
    assert f"#{second}  tier 1  CNY 500.00  active" in held  # back at its sender's tier
    assert f"#{rest}  tier 1  CNY 1,500.00  active" in held
    assert f"#{first}  tier 2  CNY 1,000.00  pending, awaiting" in held  # until accepted


def test_finance_decline_approve_at_the_contracts_price(scf: Scf) -> None:
    cert_id = scf.accepted("36,500.00")
    scf.refused("bad_counterparty", "scf", "finance", str(cert_id), "--funder",
                scf.cert("tier2"), "--rate-bp", "500", "--key", scf.key("tier1"))
    out = scf.ok("scf", "finance", str(cert_id), "--funder", scf.cert("bank"), "--rate-bp",
                 "500", "--key", scf.key("tier1"))
    assert "at 500 bp a year: frozen until it answers" in out
    frozen = scf.ok("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    assert f"certificate #{cert_id}: frozen, CNY 36,500.00" in frozen
    assert f"offered to funder {scf.keys['bank'].hex()}" in frozen
    scf.refused("not_active", "scf", "split", str(cert_id), "--part",
                f"{scf.cert('tier2')}=100.00", "--key", scf.key("tier1"))
    scf.refused("not_funder", "scf", "approve", str(cert_id), "--ref", "X", "--key",
                scf.key("bank2"))
    assert "financing declined" in scf.ok("scf", "decline", str(cert_id), "--key",
                                         scf.key("bank"))
    scf.refused("not_frozen", "scf", "approve", str(cert_id), "--ref", "X", "--key",
                scf.key("bank"))
    scf.ok("scf", "finance", str(cert_id), "--funder", scf.cert("bank"), "--rate-bp", "500",
           "--key", scf.key("tier1"))
    approved = scf.json("scf", "approve", str(cert_id), "--ref", "BANK-TX-1", "--key",
                        scf.key("bank"))
    [event] = approved["events"]
    days = event["data"]["days"]
    assert 89 <= days <= 91
    # floor(N * R * D / (10,000 * 365)) off the face value, in the holder's favour.
    price = 3_650_000 - 3_650_000 * 500 * days // (10_000 * 365)
    assert event["data"]["price"] == price
    shown = scf.show(cert_id, "bank")
    assert shown["holder"] == scf.keys["bank"].hex()
    [financing] = shown["financings"]
    assert (financing["price"], financing["ref"], financing["seller"]) == (
        price, "BANK-TX-1", scf.keys["tier1"].hex())
    text = scf.ok("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    assert f"financed    by {scf.keys['bank'].hex()[:12]}..." in text
    assert f"(discount {'CNY'} " in text and "500 bp a year" in text and "ref BANK-TX-1" in text
    financed = scf.json("scf", "financed", "--key", scf.key("bank"))
    assert cert_id in [c["id"] for c in financed["items"]]
    assert financed["totals"]["count"] >= 1 and financed["totals"]["price"] >= price
    listing = scf.ok("scf", "financed", scf.cert("bank"), "--key", scf.key("reg"))
    assert f"paid CNY {price // 100:,}.{price % 100:02d} for CNY 36,500.00" in listing


def test_reads_are_members_only_each_party_its_own(scf: Scf) -> None:
    cert_id = scf.accepted("100.00")
    reason = scf.refused("forbidden", "scf", "show", str(cert_id), "--key",
                         scf.key("outsider"))
    assert "party" in reason
    scf.refused("forbidden", "scf", "outstanding", scf.cert("core"), "--key",
                scf.key("outsider"))
    assert scf.show(cert_id, "reg")["id"] == cert_id  # the regulator reads everything
    assert scf.show(cert_id, "core")["id"] == cert_id  # the issuer
    assert scf.show(cert_id, "tier1")["id"] == cert_id  # the holder
    assert scf.json("scf", "held", "--key", scf.key("outsider"))["items"] == []
    # A list filters to what the reader may see: the outsider sees none of tier 1's.
    assert scf.json("scf", "held", scf.cert("tier1"), "--key", scf.key("outsider"))[
        "items"] == []
    assert "whose?" in scf.refused("bad_argument", "scf", "held", "--net",
                                   str(scf.root / "nowhere"), "--node", scf.node.url)


def test_tree_shows_the_lineage_background_and_every_part(scf: Scf) -> None:
    root = scf.accepted("5,000.00")
    [event] = scf.json("scf", "split", str(root), "--part", f"{scf.cert('tier2')}=2,000.00",
                       "--key", scf.key("tier1"))["events"]
    child, rest = event["data"]["children"]
    scf.ok("scf", "accept", str(child), "--key", scf.key("tier2"))
    [event] = scf.json("scf", "split", str(child), "--part", f"{scf.cert('tier2b')}=500.00",
                       "--key", scf.key("tier2"))["events"]
    grandchild, child_rest = event["data"]["children"]
    out = scf.ok("scf", "tree", str(grandchild), "--key", scf.key("reg"))
    lines = out.splitlines()
    assert lines[0] == f"certificate #{grandchild} back to its issue (穿透):"
    assert lines[1].startswith(f"  #{grandchild}  tier 3  CNY 500.00  pending")
    assert lines[2].startswith(f"  #{child}  tier 2  CNY 2,000.00  consumed")
    assert lines[3].startswith(f"  #{root}  tier 1  CNY 5,000.00  consumed")
    assert "<- the issue, by core" in lines[3]
    assert f"  e-invoice {BIG_INVOICE}  backs CNY 5,000.00" in out
    assert "supply contract  sha256:" + "ab" * 32 in out
    assert f"certificates under root #{root} (5 you may read):" in out
    tree = out.split("you may read):\n", 1)[1].splitlines()
    assert [t.split("  tier")[0] for t in tree] == [
        f"  #{root}", f"    #{child}", f"      #{grandchild}", f"      #{child_rest}",
        f"    #{rest}"]
    as_json = scf.json("scf", "tree", str(grandchild), "--key", scf.key("reg"))
    assert [c["id"] for c in as_json["lineage"]["chain"]] == [grandchild, child, root]
    assert sorted(c["id"] for c in as_json["tree"]) == sorted(
        [root, child, rest, grandchild, child_rest])
    # The tier-3 recipient sees its own line of descent, and of the tree only its part.
    mine = scf.json("scf", "tree", str(grandchild), "--key", scf.key("tier2b"))
    assert [c["id"] for c in mine["tree"]] == [grandchild]
    outstanding = scf.json("scf", "outstanding", "--key", scf.key("core"))
    assert outstanding["core"] == scf.keys["core"].hex() and outstanding["limit"] == 5_000_000_000
    by_tier = dict((int(t), fen) for t, fen in outstanding["by_tier"])
    assert by_tier[3] >= 50_000 and by_tier[2] >= 150_000
    text = scf.ok("scf", "outstanding", scf.cert("core"), "--key", scf.key("bank"))
    assert "credit line of " in text and ": CNY 50,000,000.00, set by " in text
    assert "  tier 3       CNY " in text
    issued = scf.json("scf", "issued", "--key", scf.key("core"))
    assert root in [c["id"] for c in issued["items"]]


def test_a_red_letter_reversal_flags_the_certificates_it_backs(scf: Scf) -> None:
    cert_id = scf.accepted("50,000.00", invoice=RED_INVOICE)
    assert scf.show(cert_id)["flagged"] is False
    assert "flagged     no" in scf.ok("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    key = read_key(scf.root / scf.key("tier1")).key
    with Client(scf.node.url, trust=scf.node.trust_text, key=key) as sdk:
        readers = sealing.red_letter_readers(sdk.invoice(RED_INVOICE), sdk.invoice_auditors())
        red = tb.red_letter_args(RED_NO, RED_INVOICE, "sales_return",
                                 [tb.invoice_line("steel coil", 1, 1_000_000, 0)])
        Session(sdk, key).call(tb.INVOICE, "red_letter",
                               tb.sealed_red_args(red, readers=readers))
    shown = scf.json("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    assert shown["certificate"]["flagged"] is True
    assert shown["background"]["flagged"] == [RED_INVOICE]
    text = scf.ok("scf", "show", str(cert_id), "--key", scf.key("tier1"))
    assert (f"FLAGGED     red-letter reversal of backing e-invoice(s) {RED_INVOICE}: check "
            "the trade background") in text
    assert "REVERSED by a red-letter invoice since" in text
    assert "FLAGGED: red letter" in scf.ok("scf", "held", "--key", scf.key("tier1"))


def test_settle_at_maturity_overdue_and_batches(scf: Scf) -> None:
    first = scf.accepted("100.00", maturity="+6s")
    second = scf.accepted("200.00", maturity="+6s")
    unaccepted = scf.issue("300.00", maturity="+6s")
    maturity = scf.show(first)["maturity"]
    # Before maturity, on a certificate maturing in a day: the three above may be
    # matured already by the time this runs on a loaded machine.
    later = scf.accepted("50.00", maturity="+1d")
    assert "matures at" in scf.refused("not_matured", "scf", "settle", str(later), "--ref",
                                       "P-1", "--key", scf.key("core"))
    time.sleep(max(0.0, maturity / 1000 - time.time()) + 1)
    scf.refused("not_issuer", "scf", "settle", str(first), "--ref", "P-1", "--key",
                scf.key("tier1"))
    scf.refused("matured", "scf", "split", str(second), "--part",
                f"{scf.cert('tier2')}=100.00", "--key", scf.key("tier1"))
    assert "one --ref per certificate" in scf.refused(
        "bad_argument", "scf", "settle", str(first), str(second), "--ref", "A", "B", "C",
        "--key", scf.key("core"))
    out = scf.ok("scf", "settle", str(first), "--ref", "PAY-1", "--key", scf.key("core"),
                 "-o", "settle.tlog-proof")
    assert f"settled #{first}: committed at log index" in out
    assert f"certificate #{first} settled: paid to {scf.keys['tier1'].hex()[:12]}" in out
    assert "settled: id=" in scf.ok("verify", "settle.tlog-proof", "--trust",
                                    str(scf.node.net / "trust.txt"))
    scf.refused("not_settleable", "scf", "settle", str(first), "--ref", "PAY-1", "--key",
                scf.key("core"))
    overdue = scf.ok("scf", "overdue", "--key", scf.key("reg"))
    assert "as of the head block's time" in overdue
    assert f"#{second}  tier 1  CNY 200.00  active, OVERDUE" in overdue
    assert f"#{unaccepted} " not in overdue  # lapsed unaccepted: not overdue
    assert second in [c["id"] for c in scf.json("scf", "overdue", "--key",
                                                scf.key("tier1"))["items"]]
    settled = scf.json("scf", "settle", "--due", "--ref", "BATCH-1", "--key", scf.key("core"))
    assert {second, unaccepted} <= set(settled["settled"])
    [batch] = settled["batches"]
    statuses = {e["data"]["id"]: e["data"]["status"] for e in batch["events"]}
    assert (statuses[second], statuses[unaccepted]) == ("settled", "lapsed")
    paid = scf.show(second)
    assert paid["settled"] == {"to": scf.keys["tier1"].hex(), "ref": "BATCH-1",
                               "time": paid["settled"]["time"]}
    text = scf.ok("scf", "show", str(second), "--key", scf.key("tier1"))
    assert f"settled     paid CNY 200.00 to {scf.keys['tier1'].hex()}, ref BATCH-1" in text
    assert second not in [c["id"] for c in scf.json("scf", "overdue", "--key",
                                                    scf.key("reg"))["items"]]
    assert "none is due" in scf.refused("bad_argument", "scf", "settle", "--due", "--ref",
                                        "X", "--key", scf.key("core"))


def test_more_than_a_batch_settle_in_several_calls_each_with_its_receipt(scf: Scf) -> None:
    core = read_key(scf.root / scf.key("core")).key
    maturity = int(time.time() * 1000) + 8_000
    issued = []
    with Client(scf.node.url, trust=scf.node.trust_text, key=core) as sdk:
        session = Session(sdk, core)
        for _ in range(11):  # never accepted: they lapse, and settling closes them
            outcome = session.call(tb.SCF, "issue", {
                "to": scf.keys["tier2"], "amount": 10_000, "maturity": maturity,
                "contract": b"\xab" * 32, "invoices": [BIG_INVOICE]})
            issued.append(int(outcome.events[0]["data"]["id"]))
    time.sleep(max(0.0, maturity / 1000 - time.time()) + 1)
    settled = scf.json("scf", "settle", "--due", "--ref", "BULK-1", "--key", scf.key("core"),
                       "-o", "bulk.tlog-proof")
    assert sorted(settled["settled"]) == issued
    batches = settled["batches"]
    assert [len(b["ids"]) for b in batches] == [5, 5, 1]  # MAX_SETTLE_BATCH each
    assert batches[0]["receipt_path"] == "bulk-1.tlog-proof"
    for batch in batches:
        assert {e["data"]["status"] for e in batch["events"]} == {"lapsed"}
        assert (scf.root / batch["receipt_path"]).read_text() == batch["receipt"]
        assert "verification OK" in scf.ok("verify", batch["receipt_path"], "--trust",
                                           str(scf.node.net / "trust.txt"))
    assert scf.show(issued[-1])["status"] == "lapsed"
