"""Four validators as real processes on 127.0.0.1 over mutual TLS (`tide cluster up`):
they commit together, one killed with SIGKILL and restarted catches up, with two of
four down nothing commits, and when one returns commits resume.

`ClusterNet` and `running_cluster` are shared with tests/test_cluster_kill_loop.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import free_port_block, tide
from tidechain.client import Client, deposit_tx
from tidechain.client.files import client_signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust

pytestmark = pytest.mark.slow

VALIDATORS = 4
READY_TIMEOUT_S = 30.0
"""A restart rebuilds the node's state from its store; generous for a busy 2-core box."""
STOP_TIMEOUT_S = 20.0

Head = tuple[object, object]
"""(log_size, log_root) of a node, or (None, None) when its API does not answer."""


def status_of(port: int) -> dict[str, Any] | None:
    """A node's /v1/status, or None if it does not answer (down, or not yet up)."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=2)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    data: dict[str, Any] = response.json()
    return data


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until `predicate()` holds; AssertionError (not a hang) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class ClusterNet:
    """A 4-validator network directory started with `tide cluster up`, whose nodes the
    test kills with SIGKILL and restarts one by one (`tide node start NODE_DIR`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = root / "net"
        self.port = free_port_block(VALIDATORS)
        made = tide("init", str(self.net), "--name", "c4", "--validators", str(VALIDATORS),
                    "--port", str(self.port))
        assert made.returncode == 0, made.stderr
        # Each node runs either as its `cluster up` process (not our child: known by
        # pid only) or as a process this test restarted (a child we reap), or not at all.
        self.original: dict[int, int] = {}
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts = 0

    @property
    def trust_text(self) -> str:
        return (self.net / "trust.txt").read_text()

    def api(self, i: int) -> int:
        return self.port + i

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.api(i)}"

    def up(self) -> None:
        done = tide("cluster", "up", "--net", str(self.net), timeout_s=120)
        assert done.returncode == 0, done.stderr
        pids = [int(p) for p in (self.net / "cluster.pids").read_text().split()]
        self.original = dict(enumerate(pids))

    def running(self, i: int) -> bool:
        return i in self.original or i in self.children

    def kill(self, i: int) -> None:
        """SIGKILL node i (no handler runs) and wait until its API is gone."""
        if i in self.children:
            child = self.children.pop(i)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=STOP_TIMEOUT_S)
        else:
            os.kill(self.original.pop(i), signal.SIGKILL)
            # `cluster down` must not signal a dead pid that the OS may give to another
            # process: keep the pid file to the `cluster up` processes still running.
            (self.net / "cluster.pids").write_text(
                "".join(f"{pid}\n" for pid in self.original.values()))
        wait_for(lambda: status_of(self.api(i)) is None, 10, f"node{i} to die")

    def start(self, i: int) -> None:
        """Start node i again on its directory and ports, without waiting for it."""
        assert not self.running(i), f"node{i} is already running"
        node_dir = self.net / f"node{i}"
        with (node_dir / "node.log").open("ab") as log:
            log.write(f"--- test restart {self.restarts} ---\n".encode())
            log.flush()
            self.children[i] = subprocess.Popen(
                [sys.executable, "-m", "tidechain", "node", "start", str(node_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.restarts += 1

    def wait_ready(self, i: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until node i's API answers; fails at once if the process exits."""
        def ready() -> bool:
            child = self.children.get(i)
            if child is not None and child.poll() is not None:
                raise AssertionError(f"node{i} exited with {child.returncode} while "
                                     f"starting:\n{self.log_tail(i)}")
            return status_of(self.api(i)) is not None
        wait_for(ready, timeout_s, f"node{i} to answer after a restart")

    def restart(self, i: int) -> None:
        self.start(i)
        self.wait_ready(i)

    def heads(self, nodes: range | list[int] = range(VALIDATORS)) -> set[Head]:
        out: set[Head] = set()
        for i in nodes:
            s = status_of(self.api(i))
            out.add((None, None) if s is None else (s["log_size"], s["log_root"]))
        return out

    def log_text(self, i: int) -> str:
        path = self.net / f"node{i}" / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, i: int, lines: int = 30) -> str:
        return "\n".join(self.log_text(i).splitlines()[-lines:])

    def tracebacks(self) -> list[int]:
        """Nodes whose log (all their runs) contains a Python traceback."""
        return [i for i in range(VALIDATORS) if "Traceback" in self.log_text(i)]

    def stop(self) -> None:
        """Stop our restarted children (SIGTERM, then SIGKILL) and `cluster down` the rest."""
        for child in self.children.values():
            child.terminate()
        tide("cluster", "down", "--net", str(self.net), timeout_s=60)
        for child in self.children.values():
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=STOP_TIMEOUT_S)
        self.children.clear()
        self.original.clear()


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[ClusterNet]:
    """`tide init` + `tide cluster up` in `root`; everything stopped on exit, and no node
    log may hold a traceback."""
    net = ClusterNet(root)
    net.up()
    try:
        yield net
    finally:
        net.stop()
    bad = net.tracebacks()
    assert not bad, "\n".join(f"node{i} log:\n{net.log_text(i)[-6000:]}" for i in bad)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterNet]:
    with running_cluster(tmp_path) as net:
        yield net


@pytest.mark.timeout(300)
def test_four_validators_survive_kills_and_need_a_quorum(cluster: ClusterNet) -> None:
    trust = parse_trust(cluster.trust_text)
    key = client_signer(cluster.net).key
    # The depositor signs its reads too (ADR 0015): it reads its own deposits' entries.
    clients = [Client(cluster.url(i), key=key) for i in range(VALIDATORS)]
    chain_id = clients[0].chain_id()
    counter = iter(range(10**6))

    def deposit(via: int, wait: bool = True) -> dict[str, object]:
        n = next(counter)
        tx = deposit_tx(key, chain_id, hashlib.sha256(b"doc %d" % n).digest(), {},
                        now_ms=int(time.time() * 1000), nonce=n.to_bytes(16, "big"))
        return clients[via].submit(tx, wait=wait, timeout_ms=30_000)

    acknowledged = [deposit(i % 4) for i in range(8)]
    wait_for(lambda: len(cluster.heads()) == 1, 30, "all four to agree")

    cluster.kill(3)  # one of four down: the other three keep committing
    acknowledged += [deposit(i % 3) for i in range(6)]
    cluster.restart(3)
    wait_for(lambda: len(cluster.heads()) == 1, 60, "node3 to catch up")

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
    wait_for(lambda: len(cluster.heads()) == 1, 60, "all four to agree again")

    for ack in acknowledged:
        receipt = clients[1].receipt(int(str(ack["log_index"])))
        verified = verify_receipt(receipt, trust)
        assert verified.index == ack["log_index"] and len(verified.signers) >= 3
    for client in clients:
        client.close()
