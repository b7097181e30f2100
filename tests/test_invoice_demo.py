"""The e-invoice demo (`python -m tidechain.invoice_demo`, scripts/invoice-demo) runs
end to end and shows each step of acceptance 1 of the e-invoice issue, each actor
reading with its own member key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO_TIMEOUT_S = 120


def test_the_invoice_demo_runs_every_step(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    done = subprocess.run(
        [sys.executable, "-m", "tidechain.invoice_demo", "--dir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for expected in [
        "$ tide member enrol --role tax_authority",
        "$ tide member enrol --role invoice_issuer",
        "$ tide member enrol --role enterprise",
        "tax: committed at log index 5 (issuer_authorised)",
        "tax: committed at log index 6 (auditors_set)",
        "merchant: committed at log index 7 (issued)",
        "tax: reads coffee beans, 1 kg x2; espresso cups x4; total CNY 447.48",
        # Reads are members-only (ADR 0015): no party is refused the record, and its
        # sealed content would not open with its key anyway.
        "other: cannot read it (forbidden: no party to it); "
        "nor would the record open with its key (not_reader)",
        "employer: cannot read it (forbidden: no party to it); "
        "nor would the record open with its key (not_reader)",
        "employer: reads coffee beans, 1 kg x2",
        "employer: committed at log index 11 (reimbursed)",
        "employer: refused: not_issued: invoice 04400000000000000001 is reimbursed",
        "employer: refused: not_locked:",
        "merchant: refused: confirmation_required:",
        "(reversal_requested)",
        "employer: committed at log index 16 (reversed)",
        "invoice 04400000000000000001: blue, reimbursed, total CNY 447.48, "
        "reversed CNY 158.20",
        "issued      CNY 447.48 in 1 invoice(s)",
        "reversed    CNY 158.20",
        "reimbursed  CNY 447.48",
        "Demo complete.",
    ]:
        assert expected in out, f"missing {expected!r} in:\n{out}"
    assert "Traceback" not in (tmp_path / "demo" / "node0.log").read_text()
