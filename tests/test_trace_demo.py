"""The traceability demo on four validators with real processes (issue 14, acceptance
2): `python -m tidechain.trace_demo` (scripts/trace-demo) runs end to end; the trace it
wrote from the sold pack reaches exactly the story's events and organisations; every
event's receipt verifies offline with the trust file alone and re-hashes to the event
the trace names; the retailer saw the events it may not read only as stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidechain import trace_scenario as story
from tidechain.client.trace import verify_event_receipt
from tidechain.contracts.trace.identifiers import canonical_id
from tidechain.core.errors import ProofError, Rejected
from tidechain.trace_demo import VECTORS_BESIDE

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not VECTORS_BESIDE.is_dir() and not os.environ.get(
                  "TIDE_EPCIS_SCHEMAS"), reason="GS1's EPCIS schemas not found: set "
                                                "TIDE_EPCIS_SCHEMAS")]
DEMO_TIMEOUT_S = 300
"""About 50 s here: four validators, four governance admissions, thirteen captures."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    root = tmp_path_factory.mktemp("trace") / "demo"
    done = subprocess.run([sys.executable, "-m", "tidechain.trace_demo", "--dir", str(root)],
                          env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done.stdout


def _events_in_story() -> int:
    return sum(len(json.loads(s.document)["epcisBody"]["eventList"]) if s.media == "json"
               else s.document.count(b"<ObjectEvent>") for s in story.scenario(1_760_000_000_000))


@pytest.mark.timeout(DEMO_TIMEOUT_S + 30)
def test_the_trace_reaches_every_event_and_party(demo: tuple[Path, str]) -> None:
    root, out = demo
    found = json.loads((root / "trace.json").read_text())
    assert found["start"] == canonical_id(story.SOLD_PACK) and not found["truncated"]
    assert len(found["events"]) == _events_in_story() == 13
    assert found["organisations"] == sorted(story.EXPECTED_TRACE_ORGS)
    assert not any(e.get("hidden") for e in found["events"])  # the regulator reads all
    recalled = {i["id"] for i in found["identifiers"] if i["recalled_by"] is not None}
    assert {canonical_id(p) for p in story.PACKS} | {canonical_id(story.FARM_LOT)} <= recalled
    assert "[not yours to read]" in out  # the retailer's view: stubs
    assert "affects 8 identifier(s)" in out


@pytest.mark.timeout(DEMO_TIMEOUT_S + 30)
def test_every_receipt_verifies_offline_and_rehashes(demo: tuple[Path, str]) -> None:
    root, _ = demo
    trust = (root / "net" / "trust.txt").read_text()
    found = json.loads((root / "trace.json").read_text())
    by_ref = {e["ref"]: e["hash"] for e in found["events"]}
    receipts = sorted((root / "receipts").glob("*.tlog-proof"))
    assert len(receipts) == len(by_ref)
    for path in receipts:
        proven = verify_event_receipt(path.read_text(), trust)
        assert by_ref[proven.index] == proven.hash
        assert len(proven.signers) >= 3  # a quorum of the four validators
    # One flipped byte of the entry, or another trust file, and it fails.
    text = receipts[0].read_text()
    extra = next(line for line in text.splitlines() if line.startswith("extra "))
    tampered = text.replace(extra, extra[:-6] + ("A" if extra[-6] != "A" else "B")
                            + extra[-5:])
    with pytest.raises((ProofError, Rejected)):
        verify_event_receipt(tampered, trust)
