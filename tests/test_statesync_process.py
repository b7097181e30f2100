"""State sync with real processes over mutual TLS (ADR 0009): three validators hold a
certified chain of 2,000 deposits; a fourth starts with an empty store, state-syncs
to their head instead of re-executing, and then serves receipts for old entries and
its indexes like they do. The chain is built as `benchmarks/bench_catchup.py` builds
it (the same function), so the test and the benchmark exercise one path."""

from __future__ import annotations

import hashlib
import importlib.util
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_cluster import VALIDATORS, ClusterNet, status_of, wait_for
from tidechain.client import Client
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import client_signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust

pytestmark = pytest.mark.slow

DEPOSITS = 2000
BLOCK_TXS = 100  # 20 blocks: beyond STATE_SYNC_MIN_BLOCKS, so state sync, not replay
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_catchup.py"


def _bench_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_catchup", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peers_up(net: ClusterNet) -> dict[str, Any] | None:
    """Start node1..node3 (which hold the built chain); node1's status once all answer."""
    for i in range(1, VALIDATORS):
        net.start(i)
    for i in range(1, VALIDATORS):
        net.wait_ready(i)
    return status_of(net.api(1))


@pytest.mark.timeout(120)
def test_an_empty_validator_state_syncs_from_real_peers(tmp_path: Path) -> None:
    net = ClusterNet(tmp_path)
    height, _ = _bench_module().build_chain(net.net, DEPOSITS, BLOCK_TXS)
    try:
        target = _peers_up(net)
        assert target is not None and target["height"] == height
        started = time.monotonic()
        net.start(0)
        net.wait_ready(0)
        wait_for(lambda: (status_of(net.api(0)) or {}).get("log_root") == target["log_root"],
                 60, "node0 to reach its peers' log root")
        elapsed = time.monotonic() - started
        synced = status_of(net.api(0))
        assert synced is not None
        assert (synced["height"], synced["state_root"]) == (height, target["state_root"])
        assert "state sync done" in net.log_text(0), net.log_tail(0)
        # What a node that executed every block serves, the synced one serves too.
        # Read as NET/client.key, the depositor of every built entry (ADR 0015).
        trust = parse_trust(net.trust_text)
        depositor = client_signer(net.net).key
        with Client(net.url(0), key=depositor) as client:
            receipt = client.receipt(17)
        assert verify_receipt(receipt, trust).index == 17
        digest = hashlib.sha256(b"catch-up %d" % 1234).hexdigest()  # as build_chain makes
        signed = MemberSignatures(depositor)
        for path in ("/v1/log/entry/1234", "/v1/block/7",
                     f"/v1/apps/evidence/deposits?digest={digest}"):
            ours = httpx.get(net.url(0) + path, timeout=10, auth=signed)
            theirs = httpx.get(net.url(1) + path, timeout=10, auth=signed)
            assert ours.status_code == theirs.status_code == 200, (path, ours.text)
            assert ours.json() == theirs.json()
        print(f"state sync of {DEPOSITS} deposits: {elapsed:.1f} s from process start")
    finally:
        net.stop()
    assert not net.tracebacks(), net.log_tail(0)


@pytest.mark.timeout(180)
def test_a_validator_killed_mid_sync_restarts_cleanly_and_finishes(tmp_path: Path) -> None:
    net = ClusterNet(tmp_path)
    # 40 blocks of 1,000: a few seconds of state sync, so the kill lands inside it.
    height, _ = _bench_module().build_chain(net.net, 20 * DEPOSITS, 10 * BLOCK_TXS)
    try:
        target = _peers_up(net)
        assert target is not None
        net.start(0)

        def mid_sync() -> bool:
            """A state-sync session is under way and not yet switched over: whatever
            it has imported so far is on disk beside the chain."""
            status = status_of(net.api(0)) or {}
            under_way = ((status.get("sync") or {}).get("state_sync") or {}).get("phase")
            return under_way is not None and status.get("height") == 0

        deadline = time.monotonic() + 60
        while not mid_sync():  # polled without a pause: the window is a few seconds
            assert time.monotonic() < deadline, "node0 never started its state sync"
            assert status_of(net.api(0)) is None or \
                (status_of(net.api(0)) or {}).get("height") == 0, "synced before the kill"
            time.sleep(0.02)
        net.kill(0)  # SIGKILL: no handler runs, the store is left as the kill found it
        net.start(0)
        net.wait_ready(0)
        restarted = status_of(net.api(0))
        # Its head is the old one (0) or, if it finished already, the whole sync's.
        assert restarted is not None and restarted["height"] in (0, height)
        wait_for(lambda: (status_of(net.api(0)) or {}).get("log_root") == target["log_root"],
                 60, "node0 to finish after its restart")
        synced = status_of(net.api(0))
        assert synced is not None
        assert (synced["height"], synced["state_root"]) == (height, target["state_root"])
    finally:
        net.stop()
    assert not net.tracebacks(), net.log_tail(0)
