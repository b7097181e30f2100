"""Four validators as real processes on 127.0.0.1 over mutual TLS (`tide cluster up`):
they commit together, one killed with SIGKILL and restarted catches up, with two of
four down nothing commits, and when one returns commits resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.nodes import free_port_block, tide
from tidechain.client import Client, deposit_tx
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.node.config import client_signer

pytestmark = pytest.mark.slow


def _status(port: int) -> dict[str, object] | None:
    try:
        data: dict[str, object] = httpx.get(f"http://127.0.0.1:{port}/v1/status",
                                            timeout=2).json()
        return data
    except httpx.HTTPError:
        return None


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


class Net:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = root / "net"
        self.port = free_port_block(4)
        made = tide("init", str(self.net), "--name", "c4", "--validators", "4",
                    "--port", str(self.port))
        assert made.returncode == 0, made.stderr
        self.extra: list[subprocess.Popen[bytes]] = []
        self.restarted: dict[int, int] = {}  # node -> pid of its restarted process

    def api(self, i: int) -> int:
        return self.port + i

    def pids(self) -> list[int]:
        return [int(p) for p in (self.net / "cluster.pids").read_text().split()]

    def kill(self, i: int) -> None:
        os.kill(self.restarted.get(i, self.pids()[i]), signal.SIGKILL)
        _wait(lambda: _status(self.api(i)) is None, 10, f"node{i} to die")

    def restart(self, i: int) -> None:
        with (self.net / f"node{i}" / "node.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tidechain.cli.main", "node", "start",
                 str(self.net / f"node{i}")], stdout=log, stderr=subprocess.STDOUT)
        self.extra.append(process)
        self.restarted[i] = process.pid
        _wait(lambda: _status(self.api(i)) is not None, 30, f"node{i} to restart")

    def heads(self, nodes: range = range(4)) -> set[tuple[object, object]]:
        out = set()
        for i in nodes:
            s = _status(self.api(i))
            out.add((None, None) if s is None else (s["log_size"], s["log_root"]))
        return out


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Net]:
    net = Net(tmp_path)
    up = tide("cluster", "up", "--net", str(net.net), timeout_s=90)
    assert up.returncode == 0, up.stderr
    try:
        yield net
    finally:
        for p in net.extra:
            p.terminate()
        tide("cluster", "down", "--net", str(net.net), timeout_s=60)
        for p in net.extra:
            p.wait(timeout=20)
        for i in range(4):
            log = (net.net / f"node{i}" / "node.log").read_text(errors="replace")
            assert "Traceback" not in log, log


def test_four_validators_survive_kills_and_need_a_quorum(cluster: Net) -> None:
    trust = parse_trust((cluster.net / "trust.txt").read_text())
    key = client_signer(cluster.net).key
    clients = [Client(f"http://127.0.0.1:{cluster.api(i)}") for i in range(4)]
    chain_id = clients[0].chain_id()
    counter = iter(range(10**6))

    def deposit(via: int, wait: bool = True) -> dict[str, object]:
        n = next(counter)
        tx = deposit_tx(key, chain_id, hashlib.sha256(b"doc %d" % n).digest(), {},
                        now_ms=int(time.time() * 1000), nonce=n.to_bytes(16, "big"))
        return clients[via].submit(tx, wait=wait, timeout_ms=30_000)

    acknowledged = [deposit(i % 4) for i in range(8)]
    _wait(lambda: len(cluster.heads()) == 1, 30, "all four to agree")

    cluster.kill(3)  # one of four down: the other three keep committing
    acknowledged += [deposit(i % 3) for i in range(6)]
    cluster.restart(3)
    _wait(lambda: len(cluster.heads()) == 1, 60, "node3 to catch up")

    cluster.kill(2)
    cluster.kill(3)  # two of four down: no quorum
    (size_before, _), = cluster.heads(range(2))
    pending = deposit(0, wait=False)
    time.sleep(5)
    assert cluster.heads(range(2)) == {(size_before, cluster.heads(range(1)).pop()[1])}
    cluster.restart(2)  # a quorum again: commits resume, the pending deposit included
    done = clients[0].wait(str(pending["tx_id"]), timeout_ms=60_000)
    assert done["status"] == "committed"
    cluster.restart(3)
    _wait(lambda: len(cluster.heads()) == 1, 60, "all four to agree again")

    for ack in acknowledged:
        receipt = clients[1].receipt(int(str(ack["log_index"])))
        verified = verify_receipt(receipt, trust)
        assert verified.index == ack["log_index"] and len(verified.signers) >= 3
