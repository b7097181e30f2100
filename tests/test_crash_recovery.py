"""Crash recovery with real processes (issue 2, acceptance point 4).

A real node runs as a subprocess on a loopback port while the test streams deposits
into it and polls its checkpoint; the node is killed with SIGKILL at seeded random
moments and restarted on the same directory and port. At the end, everything the node
ever acknowledged must still be there and provable:

* every deposit acknowledged as committed is at its acknowledged log index, once, and
  its receipt verifies against the trust file;
* every checkpoint seen before a crash verifies and is consistent (RFC 9162 proof,
  checked against both roots) with the final one, and no crash made the log shrink;
* the node keeps accepting work, and its log shows no traceback.

The kill schedule comes from a seed (`TIDE_CRASH_SEED`, random by default) and the
number of kills from `TIDE_CRASH_KILLS`; both are printed in every failure message.
Process timing is not deterministic, so a seed replays the schedule, not the exact
interleaving. See docs/testing.md for longer soak runs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import StoppableThreads, free_port, lift_read_limit
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import client_signer
from tidechain.core import cbor
from tidechain.core.checkpoint import Checkpoint, verify_checkpoint
from tidechain.core.crypto import SigningKey
from tidechain.core.merkle import verify_consistency
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import Trust, parse_trust
from tidechain.ledger.types import Genesis, LogEntry, SignedTx, TxBody
from tidechain.ops.network import init_network

pytestmark = pytest.mark.slow

SEED_ENV = "TIDE_CRASH_SEED"
KILLS_ENV = "TIDE_CRASH_KILLS"
DEFAULT_KILLS = 5

SUBMITTERS = 8
"""Concurrent depositors, each blocked on its own commit (wait=true), so blocks hold
several transactions and a kill lands among requests in every phase."""

UP_TIME_S = (0.3, 1.5)
"""How long the node runs under load between its restart and the next kill."""

EARLY_KILL_CHANCE = 0.3
EARLY_KILL_S = (0.05, 0.6)
"""Sometimes a restarted node is killed again while it is still starting (opening the
store, rebuilding its state), before it serves anything."""

CHECKPOINT_POLL_S = 0.1
READY_TIMEOUT_S = 30.0
"""A restart rebuilds the state tree from the store; generous for a slow CI machine."""

COMMIT_WAIT_MS = 10_000
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=1.0)
RETRY_PAUSE_S = 0.05
"""Pause before a submitter retries after a refused connection (the node is down)."""

BATCH_SIZE = 3000
OVERSHOOT = 1.3
"""Kill points are drawn over 1.3x the measured commit window, so most land inside it
and some just after the commit (the batch must then be kept whole)."""
RECEIPT_SAMPLE = 40
TX_VALIDITY_MS = 3_600_000


# --- the run's identity: seed and kill count, in every failure message ---------------


@dataclass(frozen=True)
class Schedule:
    seed: int
    kills: int

    @classmethod
    def from_env(cls) -> Schedule:
        raw_seed = os.environ.get(SEED_ENV)
        seed = int(raw_seed) if raw_seed else secrets.randbits(32)
        kills = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
        return cls(seed, kills)

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def batch_rounds(self) -> int:
        """Kill-during-batch rounds: 3 for the default 5 kills, scaling for soak runs."""
        return max(1, self.kills * 3 // 5)

    def tag(self) -> str:
        return f"[{SEED_ENV}={self.seed} {KILLS_ENV}={self.kills}]"


@contextlib.contextmanager
def reported(schedule: Schedule, node: NodeProcess) -> Iterator[None]:
    """Re-raise any failure with the seed to replay it and the node's last log lines."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(
            f"{schedule.tag()} {type(exc).__name__}: {exc}\nnode log tail:\n{node.log_tail()}"
        ) from exc


# --- the node as a real process --------------------------------------------------------


class NodeProcess:
    """`tide node start DIR` as a subprocess whose output (all runs) goes to one file."""

    def __init__(self, node_dir: Path, url: str, log_path: Path) -> None:
        self.node_dir = node_dir
        self.url = url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None, "node already running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tidechain", "node", "start", str(self.node_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.starts += 1

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Poll /v1/status until it answers; fail early if the process died."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.url, timeout=httpx.Timeout(2.0, connect=0.5)) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                code = self.proc.poll()
                if code is not None:
                    raise AssertionError(
                        f"node exited with {code} while starting:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    response = client.get("/v1/status")
                    if response.status_code == 200:
                        status: dict[str, Any] = response.json()
                        return status
                time.sleep(0.05)
        raise AssertionError(f"node not ready after {timeout_s} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed but what was already durable."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """A clean stop (SIGTERM); escalates to SIGKILL if the node hangs."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@dataclass(frozen=True)
class Network:
    directory: Path
    genesis: Genesis
    trust: Trust
    node: NodeProcess


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    port = free_port()
    net_dir = tmp_path / "net"
    [config] = init_network(net_dir, "crash-net", validators=1, base_port=port)
    # The checks read back every acknowledged entry and receipt as one depositor, faster
    # than the default per-caller read rate.
    lift_read_limit(config.directory)
    genesis = Genesis.decode((net_dir / "genesis.cbor").read_bytes())
    trust = parse_trust((net_dir / "trust.txt").read_text())
    node = NodeProcess(config.directory, config.api_url, tmp_path / "node.log")
    node.start()
    try:
        yield Network(net_dir, genesis, trust, node)
    finally:
        node.stop()


def depositor_client(network: Network) -> httpx.Client:
    """A client whose requests are signed by the network's depositor (NET/client.key),
    which signs every deposit here and so reads their entries and receipts (ADR 0015)."""
    return httpx.Client(base_url=network.node.url, timeout=HTTP_TIMEOUT,
                        auth=MemberSignatures(client_signer(network.directory).key))


# --- deposits --------------------------------------------------------------------------


class Depositor:
    """Builds distinct signed deposits (unique digest and nonce) from any thread."""

    def __init__(self, network: Network, name: str) -> None:
        self.chain_id = network.genesis.chain_id
        self.name = name
        # The network's enrolled depositor key: only members may deposit. Digests
        # differ per name, so transactions of different submitters never collide.
        self.key: SigningKey = client_signer(network.directory).key
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def deposit(self) -> SignedTx:
        with self._lock:
            n = next(self._counter)
        body = TxBody(
            chain_id=self.chain_id,
            sender=self.key.public_key,
            nonce=n.to_bytes(16, "big"),
            expires_ms=int(time.time() * 1000) + TX_VALIDITY_MS,
            contract="evidence",
            method="deposit",
            args={"digest": hashlib.sha256(f"{self.name} doc {n}".encode()).digest(),
                  "meta": {"n": str(n), "by": self.name}},
        )
        return SignedTx.create(body, self.key)


def submit_and_wait(client: httpx.Client, tx: SignedTx) -> httpx.Response:
    return client.post(
        "/v1/tx", params={"wait": "true", "timeout_ms": str(COMMIT_WAIT_MS)},
        content=tx.encode(), headers={"content-type": "application/cbor"},
    )


# --- the load generator -----------------------------------------------------------------


@dataclass
class Observations:
    """What the clients learned from the node, shared by the load threads."""

    acked: dict[bytes, int] = field(default_factory=dict)  # tx id -> acknowledged log index
    replayed: set[bytes] = field(default_factory=set)  # "already committed" after a retry
    checkpoints: list[tuple[int, str]] = field(default_factory=list)  # (kills so far, note)
    anomalies: list[str] = field(default_factory=list)
    kills: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, tx_id: bytes, log_index: int) -> None:
        with self.lock:
            if tx_id in self.acked and self.acked[tx_id] != log_index:
                self.anomalies.append(
                    f"tx {tx_id.hex()} acknowledged at {self.acked[tx_id]} and at {log_index}")
            self.acked[tx_id] = log_index

    def anomaly(self, what: str) -> None:
        with self.lock:
            self.anomalies.append(what)

    def saw_checkpoint(self, note: str) -> None:
        with self.lock:
            if not self.checkpoints or self.checkpoints[-1][1] != note:
                self.checkpoints.append((self.kills, note))


def submit_until_answered(
    client: httpx.Client, tx: SignedTx, seen: Observations, stop: threading.Event
) -> None:
    """Submit one deposit, retrying the *same* transaction across node downtime (as a
    real client would), until the node answers or the load stops. A deposit never
    acknowledged is not counted: it may or may not have committed."""
    retried = False
    while not stop.is_set():
        try:
            response = submit_and_wait(client, tx)
        except httpx.TransportError:
            retried = True
            time.sleep(RETRY_PAUSE_S)
            continue
        if record_answer(tx, response, seen, retried=retried):
            return
        retried = True
        time.sleep(RETRY_PAUSE_S)


def record_answer(tx: SignedTx, response: httpx.Response, seen: Observations, *,
                  retried: bool) -> bool:
    """Record what one answer proves; False if the submission should be retried."""
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else {}
    error = body.get("error")
    if response.status_code == 200:
        if body.get("tx_id") != tx.tx_id.hex():
            seen.anomaly(f"acknowledgement names tx {body.get('tx_id')}, sent {tx.tx_id.hex()}")
        seen.ack(tx.tx_id, int(body["log_index"]))
        return True
    if response.status_code == 503 or error in ("duplicate", "timeout"):
        return False  # back-pressure, or still pending: ask again
    if error == "replay" and retried:
        with seen.lock:
            seen.replayed.add(tx.tx_id)
        return True
    seen.anomaly(f"tx {tx.tx_id.hex()}: HTTP {response.status_code} {response.text[:300]}")
    return True


def run_submitter(url: str, depositor: Depositor, seen: Observations,
                  stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT) as client:
        while not stop.is_set():
            submit_until_answered(client, depositor.deposit(), seen, stop)


def run_checkpoint_poller(url: str, seen: Observations, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=httpx.Timeout(2.0, connect=0.5)) as client:
        while not stop.wait(CHECKPOINT_POLL_S):
            with contextlib.suppress(httpx.TransportError):
                response = client.get("/v1/checkpoint")
                if response.status_code == 200:
                    seen.saw_checkpoint(response.text)
                else:
                    seen.anomaly(f"GET /v1/checkpoint: HTTP {response.status_code}")


def load(url: str, network: Network, seen: Observations) -> StoppableThreads:
    """Submitter threads plus the checkpoint poller, started and stopped together."""
    threads = StoppableThreads(join_timeout_s=HTTP_TIMEOUT.read or 15.0)
    for i in range(SUBMITTERS):
        threads.add(f"submitter{i}", run_submitter,
                    url, Depositor(network, f"submitter{i}"), seen)
    threads.add("poller", run_checkpoint_poller, url, seen)
    return threads


# --- checks against the final state ----------------------------------------------------


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, (
        f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return response.json()


def quiesce(client: httpx.Client, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until the mempool is empty, so the checkpoint stops moving."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status: dict[str, Any] = get_json(client, "/v1/status")
        if status["mempool"]["transactions"] == 0:
            return status
        time.sleep(0.05)
    raise AssertionError("mempool did not drain")


def final_checkpoint(client: httpx.Client, trust: Trust) -> tuple[str, Checkpoint]:
    """The quiescent node's checkpoint, verified, and matching its status."""
    status = quiesce(client)
    response = client.get("/v1/checkpoint")
    assert response.status_code == 200
    checkpoint, _ = verify_checkpoint(response.text, trust)
    assert checkpoint.size == status["log_size"], (checkpoint.size, status)
    assert base64.b64encode(checkpoint.root).decode() == status["log_root"], status
    return response.text, checkpoint


def check_receipt(client: httpx.Client, trust: Trust, index: int, final: Checkpoint) -> LogEntry:
    """Entry `index`'s receipt verifies against the final checkpoint; returns the entry."""
    response = client.get(f"/v1/proof/{index}")
    assert response.status_code == 200, f"proof {index}: {response.status_code} {response.text}"
    verified = verify_receipt(response.text, trust)
    assert verified.index == index
    assert verified.checkpoint == final, f"receipt {index} is against another checkpoint"
    return LogEntry.decode(verified.entry)


def check_acknowledged(client: httpx.Client, trust: Trust, final: Checkpoint,
                       acked: dict[bytes, int]) -> None:
    """Every acknowledged deposit is where it was acknowledged, provably."""
    for tx_id, log_index in acked.items():
        found = get_json(client, f"/v1/tx/{tx_id.hex()}")
        assert found["status"] == "committed", found
        assert found["log_index"] == log_index, (
            f"tx {tx_id.hex()} acknowledged at {log_index}, now at {found['log_index']}")
        entry = check_receipt(client, trust, log_index, final)
        assert entry.tx.tx_id == tx_id, f"receipt {log_index} holds another transaction"
        assert entry.result.ok, f"acknowledged deposit {log_index} failed: {entry.result}"


def check_present(client: httpx.Client, tx_ids: set[bytes], size: int) -> None:
    """Transactions the node once called committed are still in the log."""
    for tx_id in tx_ids:
        found = get_json(client, f"/v1/tx/{tx_id.hex()}")
        assert found["status"] == "committed" and found["log_index"] < size, found


def log_tx_ids(client: httpx.Client, final: Checkpoint) -> list[bytes]:
    """All transaction ids of the log in log order, from the blocks; checks that the
    blocks tile the log exactly (each block's log size = previous + its tx count)."""
    status = get_json(client, "/v1/status")
    tx_ids: list[bytes] = []
    for height in range(1, status["height"] + 1):
        block = get_json(client, f"/v1/block/{height}")
        tx_ids.extend(bytes.fromhex(t) for t in block["txs"])
        assert block["log_size"] == len(tx_ids), f"block {height} does not tile the log"
    assert len(tx_ids) == final.size, (len(tx_ids), final.size)
    return tx_ids


def check_no_duplicates(tx_ids: list[bytes]) -> None:
    duplicates = [t.hex() for t, n in Counter(tx_ids).items() if n > 1]
    assert not duplicates, f"tx ids committed twice: {duplicates[:5]}"


def check_consistent(client: httpx.Client, trust: Trust, note: str, final: Checkpoint) -> None:
    """An earlier checkpoint verifies and the final log extends it (RFC 9162 proof,
    checked against the roots both checkpoints carry, not the node's word)."""
    old, _ = verify_checkpoint(note, trust)
    assert old.size <= final.size, f"log shrank from {old.size} to {final.size}"
    if old.size == 0:
        return  # nothing to prove from the empty log
    body = get_json(client, "/v1/log/consistency", old=old.size, new=final.size)
    proof = [base64.b64decode(h) for h in body["proof"]]
    verify_consistency(old.size, final.size, proof, old.root, final.root)


def is_empty_log_checkpoint(note: str) -> bool:
    """Before its first block the node serves the empty log's checkpoint body unsigned
    (no quorum has signed anything yet). It proves nothing, so the checks skip it."""
    lines = note.split("\n")
    return len(lines) > 2 and lines[1] == "0"


def signed_sizes(notes: list[str], trust: Trust) -> list[int]:
    return [verify_checkpoint(n, trust)[0].size for n in notes]


def assert_no_traceback(node: NodeProcess) -> None:
    log = node.log_text()
    assert "Traceback" not in log, f"node log has a traceback:\n{log[-6000:]}"


def deposit_once(client: httpx.Client, depositor: Depositor) -> tuple[bytes, int]:
    tx = depositor.deposit()
    response = submit_and_wait(client, tx)
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return tx.tx_id, int(response.json()["log_index"])


# --- test 1: kill -9 under a stream of deposits -------------------------------------------


def test_acknowledged_deposits_survive_repeated_sigkill(network: Network) -> None:
    schedule = Schedule.from_env()
    print(f"crash schedule {schedule.tag()}")
    rng = schedule.rng()
    node = network.node
    seen = Observations()
    with reported(schedule, node):
        node.wait_ready()
        started = time.monotonic()
        with load(node.url, network, seen):
            for _ in range(schedule.kills):
                time.sleep(rng.uniform(*UP_TIME_S))
                crash_and_restart(node, seen, rng)
            # Let the load run against the last incarnation too.
            time.sleep(rng.uniform(*UP_TIME_S))
        loaded = time.monotonic()
        verify_after_crashes(network, seen)
        print(f"load and kills {loaded - started:.1f} s, checks {time.monotonic() - loaded:.1f} s")


def crash_and_restart(node: NodeProcess, seen: Observations, rng: random.Random) -> None:
    node.kill()
    with seen.lock:
        seen.kills += 1
    node.start()
    if rng.random() < EARLY_KILL_CHANCE:
        time.sleep(rng.uniform(*EARLY_KILL_S))
        node.kill()
        node.start()
    node.wait_ready()


def verify_after_crashes(network: Network, seen: Observations) -> None:
    node, trust = network.node, network.trust
    anomalies = list(seen.anomalies)
    assert not anomalies, f"unexpected answers: {anomalies[:10]}"
    assert seen.acked, "no deposit was ever acknowledged"
    with depositor_client(network) as client:
        # The node keeps accepting work after the last restart.
        new_id, new_index = deposit_once(client, Depositor(network, "after"))
        acked = dict(seen.acked) | {new_id: new_index}
        note, final = final_checkpoint(client, trust)
        check_acknowledged(client, trust, final, acked)
        check_present(client, seen.replayed, final.size)
        check_no_duplicates(log_tx_ids(client, final))
        signed = [(k, n) for k, n in seen.checkpoints if not is_empty_log_checkpoint(n)]
        assert any(kills < seen.kills for kills, _ in signed), "no checkpoint seen before a crash"
        for _, old in signed:
            check_consistent(client, trust, old, final)
        sizes = signed_sizes([n for _, n in signed] + [note], trust)
        assert sizes == sorted(sizes), f"checkpoint sizes went backwards: {sizes}"
    print(f"{len(acked)} acknowledged deposits, {len(seen.replayed)} replays after retry, "
          f"{len(seen.checkpoints)} checkpoints seen, final log size {final.size}")
    assert_no_traceback(node)


# --- test 2: kill -9 while a big batch commits ---------------------------------------------


def post_batch(client: httpx.Client, txs: list[SignedTx]) -> list[dict[str, Any]]:
    response = client.post("/v1/tx/batch", content=cbor.encode([tx.encode() for tx in txs]),
                           headers={"content-type": "application/cbor"})
    assert response.status_code == 200, f"batch: {response.status_code} {response.text[:300]}"
    results: list[dict[str, Any]] = response.json()["results"]
    return results


class BatchSender:
    """POSTs one batch from a thread; its answer is lost if the node is killed first."""

    def __init__(self, url: str, txs: list[SignedTx]) -> None:
        self.url = url
        self.txs = txs
        self.refused: list[dict[str, Any]] | None = None  # None: no answer
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._send, name="batch")
        self.thread.start()

    def _send(self) -> None:
        with contextlib.suppress(httpx.TransportError), \
                httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT) as client:
            self.refused = [r for r in post_batch(client, self.txs) if "tx_id" not in r]

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def join(self) -> None:
        self.thread.join(timeout=HTTP_TIMEOUT.read)
        assert not self.thread.is_alive(), "batch request did not finish"
        assert not self.refused, f"batch items refused: {self.refused[:3]}"


@dataclass(frozen=True)
class CommitWindow:
    """When, counted from the start of a batch upload, the node is busy committing the
    batch: from its last answer before the commit to its first answer showing the
    grown log. In between its event loop is blocked admitting the batch, executing it
    as a block and writing that block. Uploading, decoding and checking signatures
    come earlier (the loop still answers then) and are not what this test is after."""

    start_s: float
    end_s: float

    def kill_point(self, rng: random.Random) -> float:
        return rng.uniform(self.start_s, self.start_s + OVERSHOOT * (self.end_s - self.start_s))


def log_size(client: httpx.Client) -> int:
    size: int = get_json(client, "/v1/status")["log_size"]
    return size


def measure_commit_window(client: httpx.Client, url: str,
                          txs: list[SignedTx]) -> CommitWindow:
    """Commit one batch undisturbed while probing the node's status."""
    size_before = log_size(client)
    sender = BatchSender(url, txs)
    last_answer_s = 0.0
    while sender.elapsed_s() < READY_TIMEOUT_S:
        grew = log_size(client) > size_before
        answered_s = sender.elapsed_s()
        if grew:
            sender.join()
            assert log_size(client) == size_before + len(txs)
            return CommitWindow(last_answer_s, answered_s)
        last_answer_s = answered_s
        time.sleep(0.005)
    raise AssertionError("the calibration batch was never committed")


def kill_during_commit(node: NodeProcess, txs: list[SignedTx], at_s: float) -> None:
    """Send the batch, kill the node `at_s` after the upload started, restart it."""
    sender = BatchSender(node.url, txs)
    time.sleep(max(0.0, at_s - sender.elapsed_s()))
    node.kill()
    sender.join()
    node.start()
    node.wait_ready()


def check_reopened_store(client: httpx.Client, trust: Trust, rng: random.Random,
                         previous_note: str) -> tuple[str, Checkpoint]:
    """After a restart: status, checkpoint and head block agree; a sample of entries
    (always the first and last) has verifying receipts; the log extends the checkpoint
    seen before the kill."""
    note, final = final_checkpoint(client, trust)
    status = get_json(client, "/v1/status")
    head = get_json(client, f"/v1/block/{status['height']}")
    assert head["log_size"] == final.size and head["checkpoint"] == note, head
    assert head["state_root"] == status["state_root"], (head, status)
    sample = {0, final.size - 1} | {rng.randrange(final.size) for _ in range(RECEIPT_SAMPLE)}
    for index in sorted(sample):
        check_receipt(client, trust, index, final)
    beyond = client.get(f"/v1/log/entry/{final.size}")
    assert beyond.status_code == 404, f"entry past the log end: {beyond.text[:200]}"
    check_consistent(client, trust, previous_note, final)
    return note, final


def resubmit_until_all_committed(client: httpx.Client, txs: list[SignedTx]) -> None:
    """Send every batch transaction again: those that survived a kill are refused as
    replays, the others are admitted; then all must commit, each exactly once."""
    for start in range(0, len(txs), BATCH_SIZE):
        chunk = txs[start:start + BATCH_SIZE]
        odd = [r for r in post_batch(client, chunk)
               if "tx_id" not in r and r.get("error") != "replay"]
        assert not odd, f"resubmitted batch items refused: {odd[:3]}"


def test_store_reopens_consistently_after_sigkill_during_big_batch(network: Network) -> None:
    schedule = Schedule.from_env()
    print(f"crash schedule {schedule.tag()}")
    rng = schedule.rng()
    node, trust = network.node, network.trust
    depositor = Depositor(network, "batch")
    with reported(schedule, node):
        node.wait_ready()
        with depositor_client(network) as client:
            window = measure_commit_window(client, node.url, batch_of(depositor))
            note, _ = final_checkpoint(client, trust)
            sent: list[SignedTx] = []
            for round_ in range(schedule.batch_rounds()):
                batch = batch_of(depositor)
                sent.extend(batch)
                at_s = window.kill_point(rng)
                size_before = log_size(client)
                kill_during_commit(node, batch, at_s)
                note, final = check_reopened_store(client, trust, rng, note)
                # Only this batch was submitted in the round, so the growth is its part.
                print(f"round {round_}: killed at {at_s:.2f} s (commit window "
                      f"{window.start_s:.2f}-{window.end_s:.2f} s); "
                      f"{final.size - size_before} of {len(batch)} committed")
            resubmit_until_all_committed(client, sent)
            _, final = final_checkpoint(client, trust)
            in_log = log_tx_ids(client, final)
            check_no_duplicates(in_log)
            missing = {tx.tx_id for tx in sent} - set(in_log)
            assert not missing, f"{len(missing)} resubmitted deposits never committed"
        assert_no_traceback(node)


def batch_of(depositor: Depositor) -> list[SignedTx]:
    return [depositor.deposit() for _ in range(BATCH_SIZE)]
