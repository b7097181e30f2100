"""The supply-chain finance demo (`python -m tidechain.scf_demo`, scripts/scf-demo) runs
end to end on a four-validator cluster and shows every step of the story (acceptance 2
of the supply-chain finance issue): each step's output, each refusal with its code,
every holder paid at maturity, and every write's receipt verified offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.demo]

DEMO_TIMEOUT_S = 240
"""The demo takes under a minute on a laptop, half of it waiting for maturity."""


def _legend(out: str) -> dict[str, str]:
    """Actor -> the key prefix the demo shows for it ("Who is who")."""
    table = out.split("Who is who", 1)[1].split("\n==", 1)[0]
    return dict(re.findall(r"^   (\w+)\s+([0-9a-f]{12})\.\.\.", table, re.MULTILINE))


@pytest.mark.timeout(DEMO_TIMEOUT_S + 30)
def test_the_scf_demo_runs_every_step_on_four_validators(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    root = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "tidechain.scf_demo", "--dir", str(root)],
        env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
        stdin=subprocess.DEVNULL)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    who = _legend(out)
    assert set(who) == {"tax", "steel", "bank", "regulator", "tier1", "tier2a", "tier2b",
                        "tier3"}
    for expected in [
        # A network of four validators, the parties enrolled.
        "$ tide init net --name scf-demo --validators 4",
        "$ tide cluster up net",
        "node3  pid",
        "$ tide member enrol --role tax_authority",
        "$ tide member enrol --role funder",
        "$ tide member enrol --role regulator",
        "$ tide member enrol --role enterprise --role invoice_issuer",
        # The trade background: the supplier authorised, its invoice to the steel group.
        "invoice.set_auditors: committed at log index",
        "invoice.authorise_issuer: committed at log index",
        "invoice 04400000000000000001 issued: committed at log index",
        "wrote receipt of log entry",
        # The line and the issue; an invoice never backs more than its total.
        f"credit line of {who['steel']}... set to CNY 5,000,000.00: committed at log index",
        f"certificate #0: CNY 1,000,000.00 to {who['tier1']}..., matures",
        "error: insufficient_background: the cited e-invoices back",
        # Accept, split to two tier-2 suppliers, one refuses: back to tier 1.
        f"#0  tier 1  CNY 1,000,000.00  pending, awaiting {who['tier1']}...",
        f"certificate #0 accepted: held by {who['tier1']}...",
        f"#1  CNY 300,000.00 to {who['tier2a']}..., awaiting its acceptance",
        f"#2  CNY 200,000.00 to {who['tier2b']}..., awaiting its acceptance",
        "#3  the remainder, kept",
        f"certificate #1 accepted: held by {who['tier2a']}...",
        f"certificate #2 refused by {who['tier2b']}...: back with {who['tier1']}...",
        f"#2  tier 1  CNY 200,000.00  active  holder {who['tier1']}...",  # refused: back at tier 1
        f"#3  tier 1  CNY 500,000.00  active  holder {who['tier1']}...",
        # Tier 2 to tier 3.
        f"#4  CNY 100,000.00 to {who['tier3']}..., awaiting its acceptance",
        "#5  the remainder, kept",
        f"certificate #4 accepted: held by {who['tier3']}...",
        # Financing at the bank: frozen, then bought at the contract's price.
        f"certificate #5 offered to {who['bank']}... at 450 bp a year: frozen until it "
        "answers",
        "error: not_active: certificate 5 is frozen, not active",
        f"certificate #5 financed: price CNY 199,975.35 paid to {who['tier2a']}... (1 "
        f"day(s) to maturity); now held by {who['bank']}...",
        "paid CNY 199,975.35 for CNY 200,000.00 (discount CNY 24.65: 450 bp a year, "
        "1 day(s)), ref PCB-DISC-2026-0001",
        # The regulator looks through.
        "certificate #4 back to its issue (穿透):",
        f"<- the issue, by core {who['steel']}...",
        "e-invoice 04400000000000000001  backs CNY 1,000,000.00",
        "certificates under root #0 (6 you may read):",
        f"      #4  tier 3  CNY 100,000.00  active  holder {who['tier3']}...",
        f"      #5  tier 2  CNY 200,000.00  active  holder {who['bank']}...",
        "  outstanding  CNY 1,000,000.00 (CNY 4,000,000.00 of the line left)",
        "  tier 3       CNY 100,000.00",
        f"{who['bank']}... financed 1 certificate(s): face CNY 200,000.00, paid "
        "CNY 199,975.35 (discount CNY 24.65)",
        "error: forbidden: ",
        # The red letter flags the certificates.
        "(SDK) tier1: invoice.red_letter 04400000000000000002 reversing CNY 54,240.00 of "
        "04400000000000000001 (sales_return)",
        "  FLAGGED     red-letter reversal of backing e-invoice(s) 04400000000000000001: "
        "check the trade background",
        f"#5  tier 2  CNY 200,000.00  active, FLAGGED: red letter  holder {who['bank']}...",
        # Maturity: overdue until paid; every holder paid.
        "settled #4: committed at log index",
        f"certificate #4 settled: paid to {who['tier3']}...",
        "  3 certificate(s), CNY 900,000.00 in total",
        "settled #2, #3, #5: committed at log index",
        f"certificate #2 settled: paid to {who['tier1']}...",
        f"certificate #3 settled: paid to {who['tier1']}...",
        f"certificate #5 settled: paid to {who['bank']}...",
        f"paid to {who['tier3']}... ref DSG-PAY-2026-0004",
        f"paid to {who['bank']}... ref DSG-PAY-2026-BATCH1",
        "  outstanding  CNY 0.00 (CNY 5,000,000.00 of the line left)",
        "stopped 4 node process(es)",
        "Demo complete",
    ]:
        assert expected in out, f"missing {expected!r} in:\n{out}"
    overdue = out.split("certificates unpaid past maturity")
    assert len(overdue) == 3 and "  0 certificate(s), CNY 0.00 in total" in overdue[2]
    assert out.count("active, OVERDUE, FLAGGED: red letter") == 3
    # Every write's receipt, verified offline with the trust file alone.
    receipts = sorted(p.name for p in (root / "receipts").iterdir())
    assert len(receipts) == 16
    for name in receipts:
        assert f"verification OK: receipts/{name} proves log entry" in out, name
    assert out.count("verification OK") == len(receipts)
    assert "verification FAILED" not in out
    assert f"{len(receipts)} receipts verified offline" in out
    for log in (root / "net").glob("node*/node.log"):
        assert "Traceback" not in log.read_text(), log
