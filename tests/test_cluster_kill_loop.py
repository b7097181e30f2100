"""Four validators as real processes under a stream of deposits while a seeded loop
kills one of them with SIGKILL and restarts it, again and again (issue 2, acceptance
point 2).

Phase 1, one down at a time: submitter threads send deposits through the SDK to all
four nodes in turn (including the one that is down: those submissions fail, which is
fine; only deposits acknowledged as committed count) while the loop kills a seeded
choice of validator (sometimes the same one again, sometimes another, sometimes again
while it is still starting), waits a seeded while and restarts it.

Phase 2, two down: with no quorum nothing may commit (no acknowledgement, no log
growth, no new checkpoint), a deposit sent meanwhile stays pending; when one of the two
returns, commits resume and that deposit commits.

At the end all four nodes reach the same log size and root; every acknowledged
deposit is on every node at its acknowledged index; every receipt verifies against
trust.txt with at least a quorum of signatures; every checkpoint seen during the run
verifies, never contradicts another of the same size, and is consistent (RFC 9162) with
the final one; no node log holds a traceback.

`TIDE_CLUSTER_SEED` (random by default) fixes the schedule and `TIDE_CLUSTER_KILLS` its
length; both are printed, and are in every failure message. Process timing is not
deterministic, so a seed replays the schedule, not the exact interleaving.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import StoppableThreads
from tests.test_cluster import VALIDATORS, ClusterNet, running_cluster, status_of, wait_for
from tidechain.client import Client, deposit_tx, verify_deposit_receipt
from tidechain.client.files import client_signer
from tidechain.core.checkpoint import Checkpoint, verify_checkpoint
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected
from tidechain.core.trust import Trust, parse_trust
from tidechain.ledger.types import SignedTx

SEED_ENV = "TIDE_CLUSTER_SEED"
KILLS_ENV = "TIDE_CLUSTER_KILLS"
DEFAULT_KILLS = 4
"""Short enough for CI (the whole test stays well under a minute on an idle 2-core box)."""

SUBMITTERS = 6
"""Threads each blocked on one commit at a time (wait=true): several deposits per block,
and a kill always lands among requests in flight."""
COMMIT_WAIT_MS = 8_000
EXPECTED_REFUSALS = frozenset({"unreachable", "timeout", "busy"})
"""What a submission may get besides an acknowledgement: the node is down or was killed
mid-request, there was no quorum in time, or back-pressure. Anything else is a finding."""

UP_TIME_S = (0.5, 2.5)
"""How long the cluster runs with all four up between a restart and the next kill."""
DOWN_TIME_S = (0.2, 2.0)
SAME_VICTIM_CHANCE = 0.35
EARLY_KILL_CHANCE = 0.2
EARLY_KILL_S = (0.05, 0.8)
"""Sometimes the restarted node is killed again while it is still starting."""

SETTLE_S = 1.5
"""With two down, how long each live head must stay still before it counts as frozen
(a block whose votes were in flight at the second kill may still land)."""
NO_QUORUM_WATCH_S = 4.0
CHECKPOINT_POLL_S = 0.2
"""The poller asks one node per period (round robin) for its checkpoint and status."""
TIMELINE_SHOWN = 60
CONVERGE_TIMEOUT_S = 120.0
RESUME_TIMEOUT_MS = 60_000


def _test_timeout_s() -> int:
    kills = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
    return 300 + 30 * kills


pytestmark = [pytest.mark.slow, pytest.mark.timeout(_test_timeout_s())]


# --- the schedule: everything random is drawn from the seed before anything runs --------


@dataclass(frozen=True)
class Kill:
    victim: int
    up_s: float  # all four up this long before the kill
    down_s: float
    early_kill_s: float | None  # kill again this long after the restart, if set

    def __str__(self) -> str:
        early = "" if self.early_kill_s is None else f", again after {self.early_kill_s:.2f} s"
        return f"node{self.victim} after {self.up_s:.2f} s, down {self.down_s:.2f} s{early}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    kills: tuple[Kill, ...]
    no_quorum: tuple[int, int]  # the two nodes down in phase 2, the first returns first

    @classmethod
    def from_env(cls) -> Schedule:
        raw = os.environ.get(SEED_ENV)
        seed = int(raw) if raw else secrets.randbits(32)
        count = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
        rng = random.Random(seed)
        kills: list[Kill] = []
        for _ in range(count):
            same = bool(kills) and rng.random() < SAME_VICTIM_CHANCE
            victim = kills[-1].victim if same else rng.randrange(VALIDATORS)
            early = rng.uniform(*EARLY_KILL_S) if rng.random() < EARLY_KILL_CHANCE else None
            kills.append(Kill(victim, rng.uniform(*UP_TIME_S), rng.uniform(*DOWN_TIME_S), early))
        first, second = rng.sample(range(VALIDATORS), 2)
        return cls(seed, tuple(kills), (first, second))

    def tag(self) -> str:
        return f"[{SEED_ENV}={self.seed} {KILLS_ENV}={len(self.kills)}]"

    def describe(self) -> str:
        lines = [f"kill {n}: {k}" for n, k in enumerate(self.kills)]
        lines.append(f"no quorum: node{self.no_quorum[0]} and node{self.no_quorum[1]} down")
        return "\n".join(lines)


@contextlib.contextmanager
def reported(schedule: Schedule, net: ClusterNet, seen: Observations) -> Iterator[None]:
    """Re-raise any failure with the seed to replay it and the end of every node log."""
    try:
        yield
    except Exception as exc:
        tails = "\n".join(f"--- node{i} log tail:\n{net.log_tail(i)}" for i in range(VALIDATORS))
        raise AssertionError(
            f"{schedule.tag()} {type(exc).__name__}: {exc}\n{schedule.describe()}\n"
            f"now: {consensus_states(net)}\nlast state changes seen:\n"
            + "\n".join(seen.timeline[-TIMELINE_SHOWN:]) + f"\n{tails}"
        ) from exc


def node_state(status: dict[str, Any] | None) -> str:
    """A node's log size, consensus height and round and mempool fill, in one line."""
    if status is None:
        return "down"
    consensus = status.get("consensus") or {}
    return (f"log {status['log_size']} h{consensus.get('height')} r{consensus.get('round')} "
            f"mempool {status['mempool']['transactions']}")


def consensus_states(net: ClusterNet) -> str:
    return "; ".join(f"node{i} {node_state(status_of(net.api(i)))}" for i in range(VALIDATORS))


# --- what the clients saw ----------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    tx_id: bytes
    digest: bytes
    log_index: int
    via: int


@dataclass
class Observations:
    """Shared by the load threads: acknowledgements, refusals, checkpoints, anomalies."""

    acks: list[Ack] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    checkpoints: dict[str, int] = field(default_factory=dict)  # note -> node that served it
    timeline: list[str] = field(default_factory=list)  # changes of each node's head/round
    last_state: dict[int, str] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, ack: Ack) -> None:
        with self.lock:
            self.acks.append(ack)

    def refused(self, code: str) -> None:
        with self.lock:
            self.refusals[code] += 1

    def anomaly(self, what: str) -> None:
        with self.lock:
            self.anomalies.append(what)

    def saw_checkpoint(self, note: str, node: int) -> None:
        with self.lock:
            self.checkpoints.setdefault(note, node)

    def saw_state(self, node: int, state: str) -> None:
        """Keep a timeline of changes only: enough to see where a stall began."""
        with self.lock:
            if self.last_state.get(node) != state:
                self.last_state[node] = state
                self.timeline.append(f"{stamp()} node{node} {state}")

    def snapshot(self) -> tuple[list[Ack], list[str]]:
        with self.lock:
            return list(self.acks), list(self.checkpoints)


class Depositor:
    """Distinct signed deposits (unique digest, random nonce) for one submitter thread."""

    def __init__(self, key: SigningKey, chain_id: bytes, name: str) -> None:
        self.key, self.chain_id, self.name = key, chain_id, name
        self.count = 0

    def next(self) -> tuple[bytes, SignedTx]:
        self.count += 1
        digest = hashlib.sha256(f"kill loop {self.name} doc {self.count}".encode()).digest()
        tx = deposit_tx(self.key, self.chain_id, digest, {"by": self.name},
                        now_ms=int(time.time() * 1000), nonce=os.urandom(16))
        return digest, tx


def submit_one(client: Client, via: int, depositor: Depositor, seen: Observations) -> None:
    digest, tx = depositor.next()
    tx_id = tx.tx_id
    try:
        answer = client.submit(tx, wait=True, timeout_ms=COMMIT_WAIT_MS)
    except Rejected as exc:
        seen.refused(exc.code)
        if exc.code not in EXPECTED_REFUSALS:
            seen.anomaly(f"node{via} refused tx {tx_id.hex()}: {exc.code}: {exc.reason}")
        time.sleep(0.05)  # a dead node refuses at once: do not spin on it
        return
    if answer.get("status") != "committed" or answer.get("tx_id") != tx_id.hex():
        seen.anomaly(f"node{via} acknowledged tx {tx_id.hex()} as {answer}")
        return
    seen.ack(Ack(tx_id, digest, int(answer["log_index"]), via))


def run_submitter(n: int, net: ClusterNet, depositor: Depositor, seen: Observations,
                  stop: threading.Event) -> None:
    """Deposit to node (n + k) % 4 for the k-th deposit: every node gets a share."""
    clients = [Client(net.url(i)) for i in range(VALIDATORS)]
    try:
        k = 0
        while not stop.is_set():
            via = (n + k) % VALIDATORS
            submit_one(clients[via], via, depositor, seen)
            k += 1
    except Exception as exc:  # a bug in the test harness must not pass silently
        seen.anomaly(f"submitter{n} crashed: {exc!r}")
    finally:
        for client in clients:
            client.close()


def run_checkpoint_poller(net: ClusterNet, seen: Observations, stop: threading.Event) -> None:
    """Record each node's checkpoint in turn. Before its first block a node has none
    (404); once it served one it must always have one, restarts included (the head
    checkpoint is in its store)."""
    served: set[int] = set()
    k = 0
    while not stop.wait(CHECKPOINT_POLL_S):
        via = k % VALIDATORS
        k += 1
        seen.saw_state(via, node_state(status_of(net.api(via))))
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{net.url(via)}/v1/checkpoint", timeout=2)
            if response.status_code == 200:
                served.add(via)
                seen.saw_checkpoint(response.text, via)
            elif response.status_code != 404 or via in served:
                seen.anomaly(f"node{via} GET /v1/checkpoint: HTTP {response.status_code} "
                             f"{response.text[:200]}")


def load(net: ClusterNet, key: SigningKey, chain_id: bytes,
         seen: Observations) -> StoppableThreads:
    """The submitter threads and the checkpoint poller, started and stopped together."""
    threads = StoppableThreads(join_timeout_s=COMMIT_WAIT_MS / 1000 + 20)
    for n in range(SUBMITTERS):
        threads.add(f"submitter{n}", run_submitter,
                    n, net, Depositor(key, chain_id, f"submitter{n}"), seen)
    threads.add("poller", run_checkpoint_poller, net, seen)
    return threads


# --- the phases --------------------------------------------------------------------------


def kill_loop(net: ClusterNet, schedule: Schedule) -> None:
    """Phase 1: one validator down at a time, on the seeded schedule."""
    for n, kill in enumerate(schedule.kills):
        time.sleep(kill.up_s)
        say(f"kill {n}: {kill}")
        net.kill(kill.victim)
        time.sleep(kill.down_s)
        net.start(kill.victim)
        if kill.early_kill_s is not None:
            time.sleep(kill.early_kill_s)
            net.kill(kill.victim)
            net.start(kill.victim)
        net.wait_ready(kill.victim)


def frozen_heads(net: ClusterNet, live: list[int]) -> dict[int, tuple[int, str]]:
    """The live nodes' heads once none has moved for SETTLE_S."""
    def heads() -> dict[int, tuple[int, str]]:
        out = {}
        for i in live:
            status = status_of(net.api(i))
            assert status is not None, f"node{i} stopped answering with two nodes down"
            out[i] = (int(status["log_size"]), str(status["log_root"]))
        return out

    deadline = time.monotonic() + 30
    last = heads()
    while time.monotonic() < deadline:
        time.sleep(SETTLE_S)
        now = heads()
        if now == last:
            return now
        last = now
    raise AssertionError(f"live heads kept moving with two of four down: {last}")


def no_quorum_then_resume(net: ClusterNet, schedule: Schedule, key: SigningKey,
                          chain_id: bytes, seen: Observations) -> None:
    """Phase 2: two down, nothing commits; one back, commits resume."""
    first, second = schedule.no_quorum
    live = [i for i in range(VALIDATORS) if i not in schedule.no_quorum]
    say(f"no quorum: node{first} and node{second} down")
    net.kill(first)
    net.kill(second)
    frozen = frozen_heads(net, live)
    top_head = max(frozen.values())
    top = top_head[0]
    acks_before, _ = seen.snapshot()
    with Client(net.url(live[0]), key=key) as client:  # the depositor reads its own
        digest = hashlib.sha256(b"kill loop: sent without a quorum").digest()
        tx = deposit_tx(key, chain_id, digest, {}, now_ms=int(time.time() * 1000),
                        nonce=os.urandom(16))
        pending = client.submit(tx, wait=False)
        time.sleep(NO_QUORUM_WATCH_S)
        acks, notes = seen.snapshot()
        # A lagging live node may still learn a block committed before the second kill
        # (catch up to the top head); nothing may go beyond it.
        moved = {i: h for i, h in frozen_heads(net, live).items()
                 if h not in (frozen[i], top_head)}
        assert not moved, f"with no quorum the log moved: {frozen} -> {moved}"
        late = [a for a in acks[len(acks_before):] if a.log_index >= top]
        assert not late, f"acknowledged with no quorum: {late[:5]}"
        assert client.tx(tx.tx_id)["status"] == "pending"
        grown = [n for n in notes if checkpoint_size(n) > top]
        assert not grown, f"checkpoint past the frozen log size {top}: {grown[:2]}"

        say(f"no quorum held at log sizes {frozen}; restarting node{first}")
        net.restart(first)  # a quorum again: the pending deposit commits
        try:
            done = client.wait(str(pending["tx_id"]), timeout_ms=RESUME_TIMEOUT_MS)
        except Rejected as exc:
            raise AssertionError(
                f"commits did not resume within {RESUME_TIMEOUT_MS} ms of node{first}'s "
                f"return (three of four up): {exc.code}: {exc.reason}") from exc
        assert done["status"] == "committed" and int(done["log_index"]) >= top, done
        seen.ack(Ack(tx.tx_id, digest, int(done["log_index"]), live[0]))
    say(f"commits resumed; restarting node{second}")
    net.restart(second)


def stamp() -> str:
    """Wall-clock time as the node logs print it, to read both side by side."""
    now = time.time()
    return f"{time.strftime('%H:%M:%S', time.localtime(now))},{int(now * 1000) % 1000:03d}"


def say(what: str) -> None:
    """Progress on stdout (`-s`)."""
    print(f"{stamp()} {what}")


def checkpoint_size(note: str) -> int:
    """The size line of a checkpoint note, without verifying it."""
    return int(note.split("\n")[1])


# --- the final checks ---------------------------------------------------------------------


def converge(net: ClusterNet) -> tuple[int, str]:
    """Until all four report the same (log_size, log_root) with empty mempools."""
    def agreed() -> bool:
        statuses = [status_of(net.api(i)) for i in range(VALIDATORS)]
        if any(s is None or s["mempool"]["transactions"] for s in statuses):
            return False
        return len({(s["log_size"], s["log_root"]) for s in statuses if s}) == 1

    try:
        wait_for(agreed, CONVERGE_TIMEOUT_S, "all four nodes to agree with empty mempools")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[status_of(net.api(i)) for i in range(VALIDATORS)]}") \
            from None
    (size, root), = net.heads()
    return int(str(size)), str(root)


def final_checkpoint(clients: list[Client], trust: Trust, size: int, root: str) -> Checkpoint:
    """Every node serves a quorum-signed checkpoint of exactly the agreed head."""
    finals = set()
    for i, client in enumerate(clients):
        checkpoint, signers = verify_checkpoint(client.checkpoint(), trust)
        assert (checkpoint.size, base64.b64encode(checkpoint.root).decode()) == (size, root), (
            f"node{i} checkpoint {checkpoint} is not the agreed head {size} {root}")
        assert len(signers) >= trust.quorum, signers
        finals.add(checkpoint)
    (final,) = finals
    return final


def check_acknowledged_everywhere(clients: list[Client], acks: list[Ack]) -> None:
    """Every acknowledged deposit is committed on every node, at its acknowledged index
    and found by its digest."""
    for ack in acks:
        for i, client in enumerate(clients):
            found = client.tx(ack.tx_id)
            assert found["status"] == "committed", f"node{i}: {ack} is {found['status']}"
            assert int(found["log_index"]) == ack.log_index, (
                f"node{i}: {ack} is at {found['log_index']}")
        by_digest = clients[ack.log_index % VALIDATORS].deposits(ack.digest)
        assert [d["index"] for d in by_digest] == [ack.log_index], (ack, by_digest)


def check_receipts(clients: list[Client], trust: Trust, acks: list[Ack],
                   final: Checkpoint) -> None:
    """Every acknowledged deposit's receipt, from any node, proves it offline."""
    for ack in acks:
        receipt = clients[ack.log_index % VALIDATORS].receipt(ack.log_index)
        proven = verify_deposit_receipt(receipt, trust, ack.digest)
        assert (proven.tx_id, proven.log_index) == (ack.tx_id, ack.log_index), (ack, proven)
        assert proven.checkpoint_size == final.size, (ack, proven.checkpoint_size)
        assert len(proven.signers) >= 3, (ack, proven.signers)


def check_checkpoints(client: Client, trust: Trust, notes: dict[str, int],
                      final: Checkpoint) -> int:
    """Every checkpoint seen verifies, no two of one size differ, and the final log
    extends each (RFC 9162 proof, checked against the roots the checkpoints carry).
    Returns how many were checked."""
    roots: dict[int, tuple[bytes, int]] = {}
    for note, node in notes.items():
        if checkpoint_size(note) == 0:
            continue  # the empty log's unsigned placeholder, served before the first block
        old, _ = verify_checkpoint(note, trust)
        seen_root, seen_at = roots.setdefault(old.size, (old.root, node))
        assert seen_root == old.root, (
            f"fork: size {old.size} has one root at node{seen_at}, another at node{node}")
        assert old.size <= final.size, f"node{node} checkpoint {old.size} > final {final.size}"
        if old.size == final.size:
            assert old.root == final.root, f"node{node} checkpoint at the final size differs"
            continue
        proof = client.consistency(old.size, final.size)  # the SDK checks the proof
        assert base64.b64decode(proof["old_root"]) == old.root, (old, proof)
        assert base64.b64decode(proof["new_root"]) == final.root, (final, proof)
    return len(roots)


# --- the test ------------------------------------------------------------------------------


@pytest.fixture
def kill_loop_cluster(tmp_path: Path) -> Iterator[ClusterNet]:
    with running_cluster(tmp_path) as net:
        yield net


def test_cluster_keeps_every_acknowledged_deposit_under_a_kill_loop(
    kill_loop_cluster: ClusterNet,
) -> None:
    net = kill_loop_cluster
    schedule = Schedule.from_env()
    print(f"cluster kill loop {schedule.tag()}\n{schedule.describe()}")
    trust = parse_trust(net.trust_text)
    key = client_signer(net.net).key
    # Every deposit is signed by NET/client.key, which reads its own entries, receipts
    # and deposits (ADR 0015): the checks read as that depositor.
    clients = [Client(net.url(i), key=key) for i in range(VALIDATORS)]
    seen = Observations()
    started = time.monotonic()
    with reported(schedule, net, seen):
        chain_id = clients[0].chain_id()
        with load(net, key, chain_id, seen):
            kill_loop(net, schedule)
            no_quorum_then_resume(net, schedule, key, chain_id, seen)
            time.sleep(UP_TIME_S[0])  # some load on the healed cluster too
        loaded = time.monotonic()
        say("load stopped; waiting for the four nodes to agree")
        size, root = converge(net)
        say(f"agreed on log size {size}; checking")
        acks, _ = seen.snapshot()
        assert not seen.anomalies, f"unexpected answers: {seen.anomalies[:10]}"
        assert len(acks) > SUBMITTERS, f"only {len(acks)} deposits acknowledged"
        final = final_checkpoint(clients, trust, size, root)
        check_acknowledged_everywhere(clients, acks)
        check_receipts(clients, trust, acks, final)
        checked = check_checkpoints(clients[0], trust, seen.checkpoints, final)
        bad = net.tracebacks()
        assert not bad, f"tracebacks in the logs of nodes {bad}"
    for client in clients:
        client.close()
    print(f"{len(acks)} acknowledged, refusals {dict(seen.refusals)}, {checked} checkpoint "
          f"sizes checked, final log size {size}; load {loaded - started:.1f} s, "
          f"checks {time.monotonic() - loaded:.1f} s")
