"""Opt-in soak of one validator: `benchmarks/bench_soak.py` holds a real node at 80% of
its measured throughput and its verdict must be PASS: node RSS growth under 5% after
warm-up, the lag (accepted - committed) not growing and under 2 s of offered deposits,
p99 commit latency under 1 s in the last minute, no refusal.

Both tests are marked `soak`, which the default suite deselects (`addopts`):

    pytest -m soak tests/test_soak_node.py            # both: about 15 minutes
    pytest -m soak tests/test_soak_node.py -k short   # the 90-second version only

They start their own node on 127.0.0.1 and load both cores: run them on a quiet
machine. A failure shows the verdict lines; the whole report stays as JSON in the test's
tmp_path (`bench_soak.py --report FILE` prints its table).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.soak

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_soak.py"


def _soak(out: Path, *options: str, timeout_s: float) -> dict[str, Any]:
    """Run the script with --json, keep its report in OUT, return it. In a session of
    its own, so that a timeout kills its node too (same process group)."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--json", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the nodes' clean shutdown, then SIGKILL
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise
    assert proc.returncode in (0, 2), f"bench_soak.py failed:\n{stderr[-4000:]}"
    out.write_text(stdout)
    report: dict[str, Any] = json.loads(stdout)
    return report


def _assert_pass(report: dict[str, Any], out: Path) -> None:
    rate, verdict = report["rate"], report["verdict"]
    assert rate["offered_per_s"] > 0
    lines = [f"{rate['offered_per_s']:,.0f} deposits/s offered ({rate['from']})"]
    lines += [f"{'PASS' if c['pass'] else 'FAIL'}  {c['check']}: {c['value']}"
              for c in verdict["checks"]]
    lines.append(f"RSS {verdict['rss_mib_per_min']:+,.1f} MiB/min after warm-up, "
                 f"{verdict['rss_bytes_per_committed_deposit']:+,.0f} bytes per committed "
                 f"deposit; the whole table: bench_soak.py --report {out}")
    assert verdict["pass"], "\n".join(lines)


@pytest.mark.timeout(1800)
def test_ten_minutes_at_80_percent_keeps_memory_flat_and_commits_up(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    _assert_pass(_soak(out, "--minutes", "10", "--fraction", "0.8", timeout_s=1700), out)


@pytest.mark.timeout(900)
def test_short_soak_90_seconds_at_80_percent(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    _assert_pass(_soak(out, "--minutes", "1.5", "--warmup-s", "30", "--fraction", "0.8",
                       timeout_s=800), out)
