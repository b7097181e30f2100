"""Node-level runs of the simulator (issue 12, docs/simulator.md "Node-level runs").

`NodeWorld(seed).run()` runs n copies of the shipped node core (`node.node.Node`: its
replica, ledger, mempool, block sync and state sync, unchanged) in one process, each on
a `MemoryStore` (the modelled disk: a crash keeps exactly what the store made durable),
with a virtual clock, a seeded fake network carrying the node's own wire encoding, and
a seeded stream of client transactions. The world plays the part of `node.runtime`:
it ticks every node (`Tick` then `poll_sync`) every TICK_MS, feeds peers' bytes to
`decode_peer` / `handle_peer` as `NodeRuntime.on_peer_message` does (gossiped
signatures checked in-line instead of on threads), and after every call drains the
node's `outbox`, `gossip`, `replies` and `commits` as `NodeRuntime._deliver` does.

A run has a fault phase (loss, duplicates, delays that reorder, partitions, crashes,
one long outage that sends a node into state sync, and a crash in the middle of that
state sync) and then a heal: synchronous links, every node up, no more faults. The
checkers:

* safety: every node's committed block at a height has the same hash and log root;
  a node restarted from its disk resumes at the height it had committed;
* acknowledged: every transaction a node acknowledged as committed (a `Committed` with
  a log index and an ok result, drained from `node.commits`) is in every node's log at
  that log index, once the node's chain reaches that height;
* liveness: after the heal every node commits `HEAL_HEIGHTS` heights past the highest
  height any node had at the heal, within the heal budget;
* crash: no exception escapes a node, and no node raises PeerError on an honest
  peer's bytes (every peer is honest here).

Everything comes from one `random.Random(seed)`; nothing reads a clock or iterates a
set, so a seed replays exactly (`NodeResult.digest` covers the trace and every node's
final head).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tidechain.consensus import (
    Action,
    Broadcast,
    MessageReceived,
    PersistSafety,
    Proposal,
    SendTo,
    Start,
    Tick,
    Vote,
)
from tidechain.consensus import Event as ConsensusInput
from tidechain.consensus.replica import RULE_NAMES
from tidechain.consensus.safety import SafetyState, lock_at
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import PeerError, Rejected
from tidechain.core.note import Signer
from tidechain.identity import Role, issue_member_cert, make_org_ca
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxBody
from tidechain.node.core import Instruments, Mode, NodeCore, SyncPolicy
from tidechain.node.effects import Committed, Gossip, Reply
from tidechain.node.node import Node
from tidechain.node.statesync import StateSync
from tidechain.node.wire import (
    Entries,
    Headers,
    OutgoingMessage,
    SnapshotOffer,
    StateChunk,
    SyncBlocks,
    TxGossip,
    encode_message,
)
from tidechain.sim.checkers import SimFailure
from tidechain.sim.conformance import COUNTS as AUDIT_COUNTS
from tidechain.sim.conformance import StepAuditor
from tidechain.sim.mutations import applied
from tidechain.sim.network import FakeNetwork
from tidechain.sim.node_byzantine import NodeEquivocator
from tidechain.sim.node_reconfig import Reconfiguration, plan
from tidechain.sim.scenario import SIM_PARAMS, TICK_MS, Faults
from tidechain.storage.memory import DiskImage, MemoryStore
from tidechain.storage.protocol import NodeStorage

LOCKED_RESTART = "locked validator restarted"
OTHER_BLOCK = "locked validator got another block"
POL_PROPOSAL = "proof-of-lock proposal received"
HARD_CASES = (LOCKED_RESTART, OTHER_BLOCK, POL_PROPOSAL)
"""The paths the scenario steers towards (issue 12), counted at honest nodes: a
validator locked at the height it resumes restarted; a locked validator received, at
its height, a proposal of another block for a round after its lock (and not before its
own round); a re-proposal with a proof-of-lock (pol_round >= 0) was received."""
BLOCK_SYNC_TRAP = 0.15
"""Chance that a node crashes right after applying a block-sync batch."""
RECONFIGURE_SHARE = 0.5
"""Seeds whose validator set changes by governance during the run (by default)."""
NODE_FAULT_MS = 8_000
"""Length of the fault phase (virtual ms): room for a node to fall SYNC_MIN_BLOCKS
behind and state-sync while the others go on."""
NODE_HEAL_BUDGET_MS = 20_000
"""Virtual time allowed after the heal for every node to commit HEAL_HEIGHTS more."""
HEAL_HEIGHTS = 2
NODE_PARAMS = dataclasses.replace(SIM_PARAMS, create_empty_blocks=False)
"""The simulator's short timeouts; no empty blocks, as the shipped node's default: blocks
come from the client stream."""
GENESIS_TIME_MS = 1_760_000_000_000
START_MS = GENESIS_TIME_MS + 1_000
CLIENTS = 4  # depositor keys the client stream signs with
CLIENT_GAP_MS = (5, 60)  # between two submissions
TX_TTL_MS = 600_000
SYNC_LEAD = 2
"""The long outage ends once f + 1 peers are SYNC_MIN_BLOCKS + SYNC_LEAD ahead."""
SYNC_MIN_BLOCKS = 8
"""The nodes' `SyncPolicy.min_blocks` (16 in the shipped default): a node this far
behind state-syncs, so that runs of a few virtual seconds reach state sync often."""
STATE_CACHE_NODES = 48
"""The nodes' state-tree cache (NODE_CACHE_NODES, 200,000, in the shipped node): a few
dozen nodes, so that every seed evicts and reloads the tree's nodes from its
MemoryStore, pins a step's writes until the next step and reopens the tree at restarts,
which the shipped cache is too large to do in a run of a few hundred transactions
(ADR 0021)."""
_NETWORK_NAME = "sim-net"
_USCC = "91350100M000100Y43"  # a valid code (the one tests use)
_ORG = "sim-org"


class NodeFailure(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind  # safety, liveness or crash
        self.reason = reason


@dataclass(frozen=True)
class NodeResult:
    seed: int
    validators: int
    kind: str | None  # None: passed
    reason: str | None
    digest: str  # of the trace, final heads included
    end_ms: int  # virtual time the run lasted
    heights: tuple[int, ...]  # each node's committed height at the end
    stats: dict[str, int]
    fault_ms: int = NODE_FAULT_MS
    heal_budget_ms: int = NODE_HEAL_BUDGET_MS
    options: str = ""  # the command-line options that replay it besides these

    @property
    def ok(self) -> bool:
        return self.kind is None


# --- the cast -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cast:
    genesis: Genesis
    signers: tuple[Signer, ...]  # one per validator, genesis order
    clients: tuple[SigningKey, ...]  # depositors of the founding organisation
    admin: SigningKey  # the organisation's admin: it proposes and votes set changes
    spare: Signer  # a node that observes until governance adds it (reconfiguration)
    new_keys: tuple[SigningKey, ...]  # each validator's replacement key, genesis order


def make_cast(seed: int, validators: int) -> Cast:
    """A network of `validators` nodes with keys derived from the seed, and CLIENTS
    depositors in one founding organisation."""
    def seeded(what: bytes) -> bytes:
        return sha256(b"tidechain/sim/nodes/%d/" % seed + what)

    keys = [SigningKey(seeded(b"validator %d" % i)) for i in range(validators)]
    clients = tuple(SigningKey(seeded(b"client %d" % i)) for i in range(CLIENTS))
    ca_seed = seeded(b"org ca")
    day_ms = 86_400_000
    ca = make_org_ca(_ORG, "Sim Org Co., Ltd.", _USCC, ca_seed, GENESIS_TIME_MS - day_ms,
                     GENESIS_TIME_MS + 3650 * day_ms, 1000)
    admin = SigningKey(seeded(b"admin"))  # a founding organisation needs one
    members = tuple(issue_member_cert(ca, ca_seed, f"client {i}", k.public_key, roles,
                                      GENESIS_TIME_MS - day_ms,
                                      GENESIS_TIME_MS + 365 * day_ms, 1_000_000 + i)
                    for i, (k, roles) in enumerate([*((c, (Role.DEPOSITOR,)) for c in clients),
                                                    (admin, (Role.ADMIN,))]))
    names = [f"{_NETWORK_NAME}/node{i}" for i in range(validators)]
    genesis = Genesis(_NETWORK_NAME, GENESIS_TIME_MS,
                      tuple(GenesisValidator(n, k.public_key) for n, k in zip(names, keys,
                                                                                 strict=True)),
                      (GenesisOrg(ca, members),))
    spare = Signer(f"{_NETWORK_NAME}/node{validators}", SigningKey(seeded(b"spare")))
    new_keys = tuple(SigningKey(seeded(b"new key %d" % i)) for i in range(validators))
    return Cast(genesis, tuple(Signer(n, k) for n, k in zip(names, keys, strict=True)), clients,
                admin, spare, new_keys)


# --- what one seed runs ---------------------------------------------------------------------

@dataclass(frozen=True)
class NodeScenario:
    faults: Faults  # link faults of the fault phase (FakeNetwork)
    partitions: tuple[tuple[int, int, tuple[tuple[str, ...], ...]], ...]  # at, length, groups
    crashes: tuple[tuple[int, str, int], ...]  # at, node, down ms
    outage: tuple[int, str] | None  # at, node: down until far behind (state sync)
    sync_trap: int | None
    """The outage node, once back, crashes after handling this many state-sync answers
    (offer, headers, entries, state chunks) in a session (down 50 ms to 0.5 s): a crash
    after the offer, after the headers, with blocks staged, or as it finishes."""
    lock_traps: tuple[int, ...] = ()
    """Crash traps, each armed at that time: the next honest validator that persists a
    lock crashes in that call (its sends cut or not), so it restarts locked."""
    byzantine: tuple[str, ...] = ()  # equivocating validators (f of them by default)
    equivocation: float = 0.0  # chance a Byzantine validator splits a message it signs
    invalid_blocks: float = 0.0  # chance its conflicting proposal fails re-execution


def draw_node_scenario(rng: random.Random, names: list[str], fault_ms: int,
                       byzantine: int = 0) -> NodeScenario:
    faults = Faults(fault_ms=fault_ms,
                    drop=rng.choice((0.0, 0.02, 0.05, 0.1, 0.2)),
                    duplicate=rng.choice((0.0, 0.05, 0.2)),
                    max_delay_ms=rng.choice((5, 20, 60, 150)),
                    spike=rng.choice((0.0, 0.01, 0.03)),
                    partitions=rng.randint(0, 3),
                    crashes=rng.randint(0, len(names)))
    partitions = []
    for _ in range(faults.partitions):
        shuffled = list(names)
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(names)), rng.randint(1, min(2, len(names) - 1))))
        groups = tuple(tuple(sorted(shuffled[a:b]))
                       for a, b in zip([0, *cuts], [*cuts, len(names)], strict=True))
        partitions.append((START_MS + rng.randint(0, fault_ms), rng.randint(200, 3_000),
                           groups))
    crashes = tuple((START_MS + rng.randint(0, fault_ms), rng.choice(names),
                     rng.randint(50, 2_000)) for _ in range(faults.crashes))
    outage = None
    sync_trap = None
    if rng.random() < 0.6:
        outage = (START_MS + rng.randint(200, fault_ms // 4), rng.choice(names))
        if rng.random() < 0.7:
            sync_trap = rng.randint(1, 4)
    lock_traps = tuple(sorted(START_MS + rng.randint(0, fault_ms)
                              for _ in range(rng.randint(1, 3))))
    cast = tuple(sorted(rng.sample(names, byzantine)))
    return NodeScenario(faults, tuple(sorted(partitions)), tuple(sorted(crashes)), outage,
                        sync_trap, lock_traps, cast, rng.choice((0.3, 0.7, 1.0)),
                        rng.choice((0.0, 0.3, 0.7)))


# --- one node and its host ------------------------------------------------------------------

@dataclass
class Host:
    """A node's process: the node while up, its disk while down."""

    name: str
    signer: Signer
    node: Node | None = None  # None while down
    image: DiskImage | None = None  # the disk while down
    incarnation: int = 0
    durable_height: int = 0  # the height committed when it last crashed
    seen_height: int = 0  # heights up to here were checked against the others
    session: StateSync | None = None  # the node's state sync, as last seen
    crash_armed: int | None = None  # down ms: crash after its next call
    outage: bool = False  # down until far behind (no scheduled restart)
    trap: int | None = None  # state-sync answers to handle before its crash
    stalled_since: int = 0
    byzantine: NodeEquivocator | None = None  # splits what it signs; None: honest
    locked_now: bool = False  # persisted a lock in the call under way


# --- the world ------------------------------------------------------------------------------

Event = tuple[int, int, str, Any]  # at ms, sequence, kind, payload


class NodeWorld:
    def __init__(self, seed: int, validators: int = 4, *, fault_ms: int = NODE_FAULT_MS,
                 heal_budget_ms: int = NODE_HEAL_BUDGET_MS, byzantine: int | None = None,
                 reconfigure: bool | None = None, conformance: bool = True,
                 sink: Callable[[str], None] | None = None) -> None:
        """`byzantine`: how many validators equivocate (default f, the most the
        protocol tolerates). `reconfigure`: the set changes three times by governance
        during the fault phase (sim/node_reconfig.py); None: in RECONFIGURE_SHARE of
        the seeds, drawn from the seed."""
        self.seed = seed
        self.validators = validators
        self.fault_ms = fault_ms
        self.heal_budget_ms = heal_budget_ms
        self.rng = random.Random(seed)
        self.cast = make_cast(seed, validators)
        self.genesis = self.cast.genesis
        self.names = [s.name for s in self.cast.signers]
        f = (validators - 1) // 3
        self.byzantine_max = f
        self.byzantine = f if byzantine is None else byzantine
        self.scenario = draw_node_scenario(self.rng, self.names, fault_ms, self.byzantine)
        self.network = FakeNetwork(self.rng, self.scenario.faults)
        self.hosts = {s.name: Host(s.name, s) for s in self.cast.signers}
        for name in self.scenario.byzantine:
            self.hosts[name].byzantine = NodeEquivocator(
                name, self.rng, self.scenario.equivocation, self.scenario.invalid_blocks)
        self.reconfig: Reconfiguration | None = None
        self._new_signers: dict[str, Signer] = {}
        if reconfigure if reconfigure is not None else self.rng.random() < RECONFIGURE_SHARE:
            self._plan_reconfiguration()
        self.now_ms = START_MS
        self.healed_at: int | None = None
        self.heal_target = 0
        self.stats: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()  # honest replicas' upon-rules, by name
        # Judges every message an honest replica signs (None: off, to show what the
        # other checkers miss).
        self.auditor: StepAuditor | None = StepAuditor() if conformance else None
        self.lock_traps_armed = 0
        self.acked: dict[bytes, tuple[int, int]] = {}  # tx id -> (log index, height)
        self.blocks: dict[int, tuple[bytes, bytes]] = {}  # height -> (hash, log root)
        self._queue: list[Event] = []
        self._seq = 0
        self._nonce = 0
        self._trace = hashlib.sha256()
        self._sink = sink
        self._done = False

    def _plan_reconfiguration(self) -> None:
        honest = [i for i, n in enumerate(self.names) if n not in self.scenario.byzantine]
        rotate, remove = self.rng.sample(honest, 2)
        spare = self.cast.spare
        new_key = self.cast.new_keys[rotate]
        self.reconfig = plan(self.rng, self.cast.admin, self.genesis.chain_id,
                             spare=(spare.name, spare.key.public_key),
                             rotate=(self.names[rotate], new_key.public_key),
                             remove=self.names[remove], org=_ORG,
                             start_ms=START_MS + 200, fault_ms=self.fault_ms)
        self._new_signers[self.names[rotate]] = Signer(self.names[rotate], new_key)
        self.hosts[spare.name] = Host(spare.name, spare)
        self.names = [*self.names, spare.name]

    # --- the run ----------------------------------------------------------------------
    def run(self) -> NodeResult:
        kind: str | None = None
        reason: str | None = None
        try:
            self._start()
            self._loop()
            self._final_checks()
        except NodeFailure as failure:
            kind, reason = failure.kind, failure.reason
            self.note("-", f"FAIL {kind}: {reason}")
        heights = tuple(self._height(h) for h in self.hosts.values())
        for host in self.hosts.values():
            node = host.node
            if node is not None:
                self.note(host.name, f"HEAD h{node.chain.height} "
                          f"{node.chain.head_hash.hex()[:16]} log {node.chain.frontier.size} "
                          f"state {node.chain.state.root().hex()[:16]}")
        self.stats["acknowledged"] = len(self.acked)
        if self.reconfig is not None:
            self.stats["set changes applied"] = self.reconfig.done
        for rule, count in self.rules.items():
            self.stats[f"rule {rule}"] = count
        for what, count in (self.auditor.counts if self.auditor else {}).items():
            self.stats[f"audit: {what}"] = count
        self.stats["Byzantine splits"] = sum(h.byzantine.split_count for h in self.hosts.values()
                                             if h.byzantine is not None)
        self.stats["Byzantine re-proposals of an old polka"] = sum(
            h.byzantine.old_polkas_proposed for h in self.hosts.values()
            if h.byzantine is not None)
        self.note("-", f"STATS {sorted(self.stats.items())}")
        return NodeResult(self.seed, self.validators, kind, reason, self._trace.hexdigest(),
                          self.now_ms - START_MS, heights, dict(sorted(self.stats.items())),
                          self.fault_ms, self.heal_budget_ms)

    def note(self, who: str, text: str) -> None:
        line = f"{self.now_ms - START_MS:>7} {who.removeprefix(_NETWORK_NAME + '/'):<5} {text}"
        self._trace.update(line.encode() + b"\n")
        if self._sink is not None:
            self._sink(line)

    def _start(self) -> None:
        s = self.scenario
        f = s.faults
        self.note("-", f"scenario: drop {f.drop} dup {f.duplicate} delay<={f.max_delay_ms} "
                  f"spike {f.spike}; {len(s.partitions)} partitions, {len(s.crashes)} "
                  f"crashes, outage {s.outage}, sync trap {s.sync_trap}; Byzantine "
                  f"{[n.rsplit('/', 1)[1] for n in s.byzantine]} split {s.equivocation} "
                  f"invalid {s.invalid_blocks}")
        for host in self.hosts.values():
            self._open(host, MemoryStore(name=host.name))
        self._push(START_MS + TICK_MS, "tick", None)
        self._push(START_MS + self.rng.randint(*CLIENT_GAP_MS), "submit", None)
        for at, length, groups in s.partitions:
            self._push(at, "partition", (length, groups))
        for at, name, down_ms in s.crashes:
            self._push(at, "crash", (name, down_ms))
        for at in s.lock_traps:
            self._push(at, "lock_trap", None)
        if s.outage is not None:
            self._push(s.outage[0], "outage", s.outage[1])
        self._push(START_MS + self.fault_ms, "heal", None)

    def _loop(self) -> None:
        deadline = START_MS + self.fault_ms + self.heal_budget_ms
        while self._queue and not self._done:
            at, _, kind, payload = heapq.heappop(self._queue)
            if at > deadline:
                self.now_ms = deadline
                self._liveness_failure()
            self.now_ms = at
            getattr(self, "_on_" + kind)(payload)

    def _push(self, at_ms: int, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, kind, payload))

    # --- events -----------------------------------------------------------------------
    def _on_tick(self, _: None) -> None:
        now = self.now_ms

        def tick(node: Node) -> None:  # as NodeRuntime.run's loop
            node.step(Tick(now))
            node.poll_sync(now)

        for host in self.hosts.values():
            if host.node is not None:
                self._call(host, tick)
        self._end_outage()
        if self.reconfig is not None:
            self._reconfigure()
        if self.healed_at is not None and all(
                self._height(h) >= self.heal_target for h in self.hosts.values()) and (
                self.reconfig is None or self.reconfig.done == len(self.reconfig.changes)):
            self._done = True
            return
        self._push(now + TICK_MS, "tick", None)

    def _reconfigure(self) -> None:
        reconfig = self.reconfig
        assert reconfig is not None
        up = [h.node for h in self.hosts.values() if h.node is not None]
        reconfig.tick(self.now_ms, up, self._submit_tx)
        for line in reconfig.log:
            self.note("-", line)
        reconfig.log.clear()
        for name, signer in self._new_signers.items():
            host = self.hosts[name]
            node = host.node
            if node is None or host.signer is signer:
                continue
            info = node.validators.get(name)
            if info is not None and info.public_key == signer.key.public_key:
                # The operator restarts the node with its new key (ADR 0011).
                self.stats["restarts with a new key"] += 1
                host.signer = signer
                self._crash(host, None)
                self._restart(host)

    def _submit_tx(self, tx: SignedTx) -> None:
        """A client transaction to a random node that is up (`_on_submit` for one)."""
        up = [h for h in self.hosts.values() if h.node is not None]
        if not up:
            return
        host = self.rng.choice(up)
        now = self.now_ms

        def admit(node: Node) -> None:
            (rejection,) = node.admit([tx], now)
            if rejection is None:
                node.wake()

        self._call(host, admit)

    def _on_submit(self, _: None) -> None:
        self._push(self.now_ms + self.rng.randint(*CLIENT_GAP_MS), "submit", None)
        up = [h for h in self.hosts.values() if h.node is not None]
        if not up:
            return
        host = self.rng.choice(up)
        self._nonce += 1
        body = TxBody(chain_id=self.genesis.chain_id,
                      sender=self.rng.choice(self.cast.clients).public_key,
                      nonce=self._nonce.to_bytes(16, "big"), expires_ms=self.now_ms + TX_TTL_MS,
                      contract="evidence", method="deposit",
                      args={"digest": self.rng.randbytes(32), "meta": {"n": str(self._nonce)}})
        key = next(k for k in self.cast.clients if k.public_key == body.sender)
        tx = SignedTx.decode(SignedTx.create(body, key).encode())  # as the API receives it
        tx.verify_signature()  # the runtime's verify threads, in-line
        self.stats["submitted"] += 1
        now = self.now_ms

        def admit(node: Node) -> None:
            (rejection,) = node.admit([tx], now)
            if rejection is not None:
                self.stats["refused at submit"] += 1
                return
            node.wake()

        self._call(host, admit)

    def _on_msg(self, payload: tuple[str, int, str, bytes]) -> None:
        dest, incarnation, sender, data = payload
        host = self.hosts[dest]
        if host.node is None or host.incarnation != incarnation:
            self.stats["lost to a crash"] += 1
            return
        now = self.now_ms
        in_sync = host.session is not None

        def deliver(node: Node) -> None:
            message = node.decode_peer(sender, data)
            if host.byzantine is not None and isinstance(message, Proposal | Vote):
                host.byzantine.observe(message)  # its polkas, to re-propose later
            if self._sink is not None and not isinstance(message, Proposal | Vote):
                self._detail(dest, f"<- {sender.rsplit('/', 1)[1]}: {_describe(message)}")
            if in_sync and isinstance(message, SnapshotOffer | Headers | Entries | StateChunk):
                self._spring_sync_trap(host)
            if isinstance(message, TxGossip):
                try:
                    for tx in message.txs:
                        if not node.seen.is_verified(tx):
                            tx.verify_signature()
                except Rejected as exc:
                    raise PeerError(sender, exc.reason) from exc
                node.seen.remember(message.txs, verified=True)
            elif isinstance(message, SyncBlocks):
                node.prefetch_sync(sender, message, now)  # as the runtime, before applying
                before = node.blocks_committed
                node.handle_peer(sender, message, now)
                if node.blocks_committed > before:
                    self.stats["block sync batches"] += 1
                    self.stats["blocks by block sync"] += node.blocks_committed - before
                    self._spring_block_sync_trap(host)
                return
            node.handle_peer(sender, message, now)

        self._call(host, deliver, sender)

    def _spring_block_sync_trap(self, host: Host) -> None:
        """Block-sync traps: a node that applied a batch crashes right after it
        (BLOCK_SYNC_TRAP of the batches, fault phase only), the next batch asked for
        and on its way if the peer had more: a restart in the middle of block sync."""
        if (self.healed_at is None and host.crash_armed is None
                and not self._outage_needs_quorum() and self.rng.random() < BLOCK_SYNC_TRAP):
            host.crash_armed = self.rng.randint(50, 500)
            self.stats["block sync traps sprung"] += 1
            self.note(host.name, "BLOCK SYNC TRAP: crash after this batch")

    def _spring_sync_trap(self, host: Host) -> None:
        """Count a state-sync answer towards the host's trap: at zero, the host crashes
        right after handling this one (`_call`)."""
        if host.trap is None:
            return
        host.trap -= 1
        if host.trap <= 0:
            host.trap = None
            host.crash_armed = self.rng.randint(50, 500)
            self.stats["state sync traps sprung"] += 1
            self.note(host.name, "STATE SYNC TRAP: crash after this answer")

    def _detail(self, who: str, text: str) -> None:
        """A trace line for `--verbose` only: not in the digest (sync traffic)."""
        if self._sink is not None:
            self._sink(f"{self.now_ms - START_MS:>7} {who.rsplit('/', 1)[1]:<5} {text}")

    def _on_partition(self, payload: tuple[int, tuple[tuple[str, ...], ...]]) -> None:
        if self.healed_at is not None:
            return
        length, groups = payload
        self.network.partition(groups)
        self.stats["partitions"] += 1
        self.note("-", f"PARTITION {[[n.rsplit('/', 1)[1] for n in g] for g in groups]} "
                  f"for {length} ms")
        self._push(self.now_ms + length, "reconnect", None)

    def _on_reconnect(self, _: None) -> None:
        if self.healed_at is None:
            self.network.reconnect()
            self.note("-", "RECONNECT")

    def _on_crash(self, payload: tuple[str, int]) -> None:
        name, down_ms = payload
        host = self.hosts[name]
        if (self.healed_at is None and host.node is not None and host.crash_armed is None
                and not self._outage_needs_quorum()):
            host.crash_armed = down_ms  # at its next call, cut or not

    def _outage_needs_quorum(self) -> bool:
        """While a node is out for long (to fall behind far enough to state-sync), the
        others must go on committing: no crash brings more than f nodes down."""
        down = sum(1 for h in self.hosts.values() if h.node is None)
        return any(h.outage for h in self.hosts.values()) and down >= self.byzantine_max

    def _on_lock_trap(self, _: None) -> None:
        if self.healed_at is None:
            self.lock_traps_armed += 1

    def _on_outage(self, name: str) -> None:
        host = self.hosts[name]
        if self.healed_at is not None or host.node is None:
            return
        host.outage = True
        self.stats["long outages"] += 1
        self._crash(host, None)

    def _on_restart(self, payload: tuple[str, int]) -> None:
        name, incarnation = payload
        host = self.hosts[name]
        if host.node is None and host.incarnation == incarnation and not host.outage:
            self._restart(host)

    def _on_heal(self, _: None) -> None:
        self.healed_at = self.now_ms
        self.network.heal()
        for host in self.hosts.values():
            host.crash_armed = None
            host.trap = None
            host.outage = False
            if host.node is None:
                self._restart(host)
        self.heal_target = max(self._height(h) for h in self.hosts.values()) + HEAL_HEIGHTS
        self.note("-", f"HEAL: every node up; target height {self.heal_target}")

    # --- crashes ----------------------------------------------------------------------
    def _crash(self, host: Host, down_ms: int | None) -> None:
        node = host.node
        assert node is not None and isinstance(node.store, MemoryStore)
        self.stats["crashes"] += 1
        if node.mode is Mode.BLOCK_SYNC:
            self.stats["crashes in block sync"] += 1
        if host.session is not None:
            self.stats["state syncs cut"] += 1
            self.stats[f"state syncs cut: {_phase(host.session)}"] += 1
        host.session = None
        host.durable_height = node.chain.height
        host.image = node.store.crash()
        host.node = None
        host.incarnation += 1
        self.note(host.name, f"CRASH at height {host.durable_height}"
                  + ("" if down_ms is None else f", down {down_ms} ms"))
        if down_ms is not None:
            self._push(self.now_ms + down_ms, "restart", (host.name, host.incarnation))

    def _restart(self, host: Host) -> None:
        assert host.image is not None
        self.stats["restarts"] += 1
        self._open(host, MemoryStore(host.image, name=host.name))
        node = host.node
        assert node is not None
        self.note(host.name, f"RESTART at height {node.chain.height}")
        locked_round, _ = lock_at(node.replica.safety_state, node.chain.height + 1)
        if locked_round >= 0 and host.byzantine is None:
            self._hard_case(host, LOCKED_RESTART)
        if node.chain.height != host.durable_height:
            raise NodeFailure("safety", f"{host.name} restarted at height {node.chain.height}, "
                              f"had committed {host.durable_height} before its crash")
        self._check_acks(host)

    def _open(self, host: Host, store: MemoryStore) -> None:
        honest = host.byzantine is None
        instruments = (Instruments(rule_counter=self.rules,
                                   on_replica_step=functools.partial(self._on_replica_step, host),
                                   on_replica_start=self._on_replica_start)
                       if honest else None)
        try:
            host.node = Node(self.genesis, store, host.signer, params=NODE_PARAMS,
                             sync=SyncPolicy(min_blocks=SYNC_MIN_BLOCKS),
                             instruments=instruments, state_cache_nodes=STATE_CACHE_NODES)
        except Exception as exc:
            raise NodeFailure("crash", f"{host.name} failed to open its disk: "
                              f"{type(exc).__name__}: {exc}") from exc
        host.image = None
        host.incarnation += 1
        now = self.now_ms
        self._call(host, lambda n: n.step(Start(now)))

    def _end_outage(self) -> None:
        """The long outage ends once f + 1 peers are far enough ahead to send the node
        into a state sync (`Node._wants_state_sync`)."""
        for host in self.hosts.values():
            if not (host.outage and host.node is None):
                continue
            ahead = sorted((self._height(h) for h in self.hosts.values() if h is not host),
                           reverse=True)
            weak = (self.validators - 1) // 3 + 1
            if ahead[weak - 1] >= host.durable_height + SYNC_MIN_BLOCKS + SYNC_LEAD:
                host.outage = False
                host.trap = self.scenario.sync_trap
                self._restart(host)

    # --- calling a node ---------------------------------------------------------------
    def _call(self, host: Host, fn: Callable[[Node], object], sender: str | None = None
              ) -> None:
        """Run `fn` on the node, check what changed, and send what it queued; a crash
        armed on the host happens after the call, its outputs lost or sent (a
        `kill -9` after the writes, before or after the sends)."""
        node = host.node
        assert node is not None
        try:
            fn(node)
        except SimFailure as exc:  # the step auditor's verdict on an honest replica
            raise NodeFailure(exc.kind, f"{host.name}: {exc.reason}") from exc
        except PeerError as exc:  # the transport drops the peer: only a Byzantine one
            if sender is None or self.hosts[sender].byzantine is None:
                raise NodeFailure("crash", f"{host.name} rejected honest {sender}'s "
                                  f"message: {exc}") from exc
            self.stats["Byzantine messages rejected"] += 1
        except Exception as exc:
            raise NodeFailure("crash", f"{host.name}: {type(exc).__name__}: {exc}") from exc
        self._observe(host, node)
        if host.locked_now:
            host.locked_now = False
            if (self.lock_traps_armed and host.crash_armed is None and self.healed_at is None
                    and not self._outage_needs_quorum()):
                self.lock_traps_armed -= 1
                host.crash_armed = self.rng.randint(50, 1_000)
                self.stats["lock traps sprung"] += 1
                self.note(host.name, "LOCK TRAP: crash after this call")
        down_ms = host.crash_armed
        cut = down_ms is not None and self.rng.random() < 0.5
        self._drain(host, node, cut)
        if down_ms is not None:
            host.crash_armed = None
            if cut:
                self.stats["crashes before the sends"] += 1
            self._crash(host, down_ms)

    def _on_replica_step(self, host: Host, core: NodeCore, event: ConsensusInput,
                         actions: list[Action]) -> None:
        """Every step of an honest replica: each message it signs judged by the step
        auditor, the hard cases it reaches, and whether it persisted a lock (for the
        lock traps)."""
        if self.auditor is not None:
            self.auditor.on_step(core.signer.name, core.validators, event, actions)
        if any(isinstance(a, PersistSafety) and a.lock is not None for a in actions):
            host.locked_now = True
        if not (isinstance(event, MessageReceived) and isinstance(event.message, Proposal)):
            return
        proposal = event.message
        replica = core.replica
        if proposal.height != replica.height or proposal.proposer == host.name:
            return
        if proposal.pol_round >= 0:
            self._hard_case(host, POL_PROPOSAL)
        locked_round, locked_hash = lock_at(replica.safety_state, replica.height)
        if (0 <= locked_round < proposal.round and proposal.round >= replica.round
                and proposal.block_hash != locked_hash):
            self._hard_case(host, OTHER_BLOCK)

    def _on_replica_start(self, core: NodeCore, safety: SafetyState | None,
                          lock_proof: tuple[Vote, ...]) -> None:
        if self.auditor is not None:
            self.auditor.on_restart(core.signer.name, core.validators, core.chain.height + 1,
                                    safety, lock_proof)

    def _hard_case(self, host: Host, case: str) -> None:
        self.stats[f"hard case: {case}"] += 1
        self.note(host.name, f"HARD CASE: {case}")

    def _observe(self, host: Host, node: Node) -> None:
        height = node.chain.height
        if height > host.seen_height:
            for header, _ in node.store.headers(host.seen_height + 1, height):
                self._check_block(host, header.height, header.block_hash, header.log_root)
            host.seen_height = height
        session = node.core.state_sync
        if session is not host.session:
            if host.session is not None:
                target = host.session.target
                if target is not None and height >= target.height:
                    self.stats["state syncs finished"] += 1
                    self.note(host.name, f"STATE SYNC done at height {height}")
                else:
                    self.stats["state syncs abandoned"] += 1
                    self.note(host.name, "STATE SYNC abandoned")
            if session is not None:
                self.stats["state syncs started"] += 1
                self.note(host.name, f"STATE SYNC from height {height}")
            host.session = session

    def _check_block(self, host: Host, height: int, block_hash: bytes, log_root: bytes) -> None:
        known = self.blocks.setdefault(height, (block_hash, log_root))
        if known != (block_hash, log_root):
            raise NodeFailure("safety", f"{host.name} has block {block_hash.hex()[:16]} "
                              f"(log root {log_root.hex()[:16]}) at height {height}, another "
                              f"node {known[0].hex()[:16]} (log root {known[1].hex()[:16]})")
        self.note(host.name, f"COMMIT h{height} {block_hash.hex()[:12]}")

    def _drain(self, host: Host, node: Node, cut: bool) -> None:
        effects = node.take_effects()
        if cut:
            return
        gossip: list[SignedTx] = []
        for effect in effects:
            if isinstance(effect, Committed):
                self._check_outcome(host, node, effect)
            elif isinstance(effect, Gossip):
                gossip.extend(effect.txs)
            elif isinstance(effect, Broadcast | SendTo) and host.byzantine is not None:
                peers = ([n for n in self.names if n != host.name]
                         if isinstance(effect, Broadcast) else [effect.peer])
                for to, message in host.byzantine.split(node, effect.message, peers):
                    for peer in to:
                        self._send(host, peer, message)
            elif isinstance(effect, Broadcast):
                self._send(host, None, effect.message)
            elif isinstance(effect, SendTo | Reply):
                self._send(host, effect.peer, effect.message)
        if gossip:
            self._send(host, None, TxGossip(tuple(gossip)))

    def _check_outcome(self, host: Host, node: Node, committed: Committed) -> None:
        if committed.log_index is None or committed.result is None:
            self.stats["dropped transactions"] += 1
            found = node.store.entry_by_tx(committed.tx_id)
            if found is not None:
                # A waiter on this node would be told "dropped" for a committed
                # transaction (a state sync that imported it left it pending, fixed
                # in NodeCore._settle_imported): a client-visible lie, so a failure.
                self.stats["committed but reported dropped"] += 1
                raise NodeFailure("safety", f"{host.name} reported transaction "
                                  f"{committed.tx_id.hex()[:16]} dropped "
                                  f"({committed.rejection}) but it is committed at "
                                  f"log index {found[0]}")
        elif committed.result.ok:
            ack = (committed.log_index, committed.height or 0)
            known = self.acked.setdefault(committed.tx_id, ack)
            if known != ack:
                raise NodeFailure("safety", f"transaction {committed.tx_id.hex()[:16]} "
                                  f"acknowledged at {known} and at {ack} by {host.name}")

    def _send(self, host: Host, peer: str | None, message: OutgoingMessage) -> None:
        data = encode_message(message)
        for dest in ([peer] if peer is not None else self.names):
            if dest == host.name or dest not in self.hosts:
                continue
            target = self.hosts[dest]
            delays = self.network.delays_ms(host.name, dest)
            self.stats["messages"] += 1
            self.stats["messages lost"] += not delays
            if target.node is None:
                continue  # no connection to a process that is down
            for delay in delays:
                self._push(self.now_ms + delay, "msg",
                           (dest, target.incarnation, host.name, data))

    # --- checkers ---------------------------------------------------------------------
    def _height(self, host: Host) -> int:
        return host.node.chain.height if host.node is not None else host.durable_height

    def _check_acks(self, host: Host) -> None:
        """Every acknowledged transaction at a height this node has is in its log, at
        the log index it was acknowledged with."""
        node = host.node
        assert node is not None
        height = node.chain.height
        for tx_id, (log_index, at_height) in self.acked.items():
            if at_height > height:
                continue
            found = node.store.entry_by_tx(tx_id)
            if found is None or found[0] != log_index:
                raise NodeFailure("safety", f"transaction {tx_id.hex()[:16]} acknowledged at "
                                  f"log index {log_index} (height {at_height}) is "
                                  f"{'missing' if found is None else f'at {found[0]}'} "
                                  f"on {host.name} (height {height})")

    def _liveness_failure(self) -> None:
        heights = {h.name.rsplit("/", 1)[1]: self._height(h) for h in self.hosts.values()}
        raise NodeFailure("liveness", f"after the heal, heights {heights} did not all reach "
                          f"{self.heal_target} within {self.heal_budget_ms} ms")

    def _final_checks(self) -> None:
        if not self._done:
            self._liveness_failure()
        for host in self.hosts.values():
            self._check_acks(host)
        check_agreement((h.name, h.node.store) for h in self.hosts.values()
                        if h.node is not None)


def _phase(session: StateSync) -> str:
    """Where a state sync was when its node crashed."""
    if session.offer is None:
        return "before the offer"
    if session.target is None:
        return "in the headers"
    if session.applied_to == session.base_height and not session.chunks:
        return "nothing staged"  # the offer checked against verified headers
    return "data staged"  # blocks or state in the store's staged rows


def _describe(message: object) -> str:
    if isinstance(message, SyncBlocks):
        heights = [b.header.height for b in message.blocks]
        span = f"{heights[0]}..{heights[-1]}" if heights else "none"
        return f"SyncBlocks {span}, head {message.head}"
    if isinstance(message, TxGossip):
        return f"TxGossip of {len(message.txs)}"
    return type(message).__name__


def check_agreement(stores: Iterable[tuple[str, NodeStorage]]) -> None:
    """Every pair of stores has the same block hash and log root at every height both
    have (what `NodeWorld` checks as blocks commit; for a set of disks at rest)."""
    seen: dict[int, tuple[str, bytes, bytes]] = {}
    for name, store in stores:
        head = store.head()
        for header, _ in store.headers(1, head.header.height if head else 0):
            other = seen.setdefault(header.height, (name, header.block_hash, header.log_root))
            if other[1:] != (header.block_hash, header.log_root):
                raise NodeFailure("safety", f"{name} and {other[0]} differ at height "
                                  f"{header.height}")


# --- campaigns ------------------------------------------------------------------------------

def run_node_seed(seed: int, validators: int = 4, fault_ms: int = NODE_FAULT_MS,
                  heal_budget_ms: int = NODE_HEAL_BUDGET_MS,
                  byzantine: int | None = None, reconfigure: bool | None = None,
                  mutation: str | None = None, conformance: bool = True) -> NodeResult:
    """One seed, with `mutation` (sim/mutations.py) applied in this process for the run."""
    return replay_node_seed(seed, validators, fault_ms, heal_budget_ms, byzantine,
                            reconfigure, mutation, conformance)


def replay_node_seed(seed: int, validators: int = 4, fault_ms: int = NODE_FAULT_MS,
                     heal_budget_ms: int = NODE_HEAL_BUDGET_MS,
                     byzantine: int | None = None, reconfigure: bool | None = None,
                     mutation: str | None = None, conformance: bool = True,
                     sink: Callable[[str], None] | None = None) -> NodeResult:
    options = "".join([
        f" --byzantine {byzantine}" if byzantine is not None else "",
        " --reconfigure" if reconfigure else "",
        f" --mutation {mutation}" if mutation else "",
        "" if conformance else " --no-conformance"])
    with applied(mutation):
        result = NodeWorld(seed, validators, fault_ms=fault_ms, heal_budget_ms=heal_budget_ms,
                           byzantine=byzantine, reconfigure=reconfigure,
                           conformance=conformance, sink=sink).run()
    return dataclasses.replace(result, options=options)


def node_replay_command(result: NodeResult) -> str:
    extra = "" if result.fault_ms == NODE_FAULT_MS else f" --fault-ms {result.fault_ms}"
    if result.heal_budget_ms != NODE_HEAL_BUDGET_MS:
        extra += f" --heal-budget-ms {result.heal_budget_ms}"
    return (f"python -m tidechain.sim --validators {result.validators}{extra}{result.options} "
            f"--seed {result.seed} --verbose")


def node_failure_line(result: NodeResult) -> str:
    return (f"FAIL seed={result.seed} {result.kind}: {result.reason}\n"
            f"     replay: {node_replay_command(result)}")


SYNC_PHASES = ("before the offer", "in the headers", "nothing staged", "data staged")
SUMMARY_STATS = ("crashes", "crashes before the sends", "crashes in block sync",
                 "block sync traps sprung", "state sync traps sprung",
                 "long outages", "partitions", "state syncs started", "state syncs finished",
                 "state syncs cut", *(f"state syncs cut: {p}" for p in SYNC_PHASES),
                 "state syncs abandoned", "block sync batches",
                 "blocks by block sync", "submitted", "acknowledged", "dropped transactions",
                 "committed but reported dropped", "Byzantine splits",
                 "Byzantine re-proposals of an old polka",
                 "Byzantine messages rejected", "lock traps sprung", "set changes applied",
                 "restarts with a new key",
                 *(f"hard case: {case}" for case in HARD_CASES))


@dataclass
class NodeSummary:
    validators: int
    runs: int = 0
    failures: list[NodeResult] = field(default_factory=list)
    virtual_ms: int = 0
    stats: Counter[str] = field(default_factory=Counter)
    seeds_with: Counter[str] = field(default_factory=Counter)

    def add(self, result: NodeResult) -> None:
        self.runs += 1
        self.virtual_ms += result.end_ms
        for name, count in result.stats.items():
            self.stats[name] += count
            self.seeds_with[name] += count > 0
        if not result.ok:
            self.failures.append(result)

    def count(self, kind: str) -> int:
        return sum(1 for r in self.failures if r.kind == kind)

    def text(self, seconds: float) -> str:
        kinds = Counter(r.kind for r in self.failures)
        return (f"nodes n={self.validators}: {self.runs} seeds, {kinds['safety']} safety "
                f"violations, {kinds['conformance']} honest-step violations, "
                f"{kinds['liveness']} liveness failures, {kinds['crash']} crashes; "
                f"{self.virtual_ms / 1000:.0f} s virtual time, {seconds:.1f} s wall")

    def detail_text(self) -> str:
        lines = ["faults, sync and hard cases (all seeds): total, seeds it happened in"]
        lines += [f"  {name:<44} {self.stats[name]:>8} {self.seeds_with[name]:>6}/{self.runs}"
                  for name in SUMMARY_STATS]
        lines.append("honest-step audit (sim/conformance.py): total, seeds")
        lines += [f"  {what:<44} {self.stats['audit: ' + what]:>8} "
                  f"{self.seeds_with['audit: ' + what]:>6}/{self.runs}" for what in AUDIT_COUNTS]
        lines.append("rule coverage (honest replicas): firings, seeds it fired in")
        lines += [f"  {rule:<44} {self.stats['rule ' + rule]:>8} "
                  f"{self.seeds_with['rule ' + rule]:>6}/{self.runs}" for rule in RULE_NAMES]
        return "\n".join(lines)
