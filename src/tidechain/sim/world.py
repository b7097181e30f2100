"""One simulated network: replicas, their disks, the fake network and the virtual clock.

The world is the shell of every replica (see `consensus/events.py`): it executes
actions in order, persists `PersistSafety` and `Commit` to the node's fake disk before
anything later, answers `BuildProposal` and `ValidateProposal` after a short delay, and
delivers messages through `FakeNetwork`. A crash can cut a step's actions between any
two of them; the node restarts with `Replica.restore` from its disk as it was.

A run has two phases. During the fault phase messages are lost, duplicated, delayed,
reordered and partitioned, and honest nodes crash and restart. Then the network heals
(synchronous links, everybody up) and every honest node must commit `HEAL_HEIGHTS`
more heights within `HEAL_BUDGET_MS`. Byzantine validators misbehave throughout.

Block sync is modelled too, because consensus alone cannot bring back a node that is
two heights behind (ADR 0004): nodes ask a random peer for committed blocks with
their certificates, verify them, and rebuild their replica at the new height.

Reconfiguration runs (`reconfigure=True`, ADR 0011) change the validator set three
times, at heights drawn from the seed: a spare honest node (`v<n>`, an observer until
then) is added, and then an honest validator's key is rotated and another honest
validator removed, in either order, one change per height. The set of height h is
the set after the change decided at height h - 1, as the chain's state gives it; every
node rebuilds its replica at the boundary as `Node` does (only its messages of the
committed height leave after the Commit) and the rotated validator's node switches to
its new key there. Certificates and honest signatures are checked against the set of
their height.

All randomness comes from one `random.Random(seed)`; nothing iterates a set or reads
a clock, so a seed replays exactly.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tidechain.consensus import (
    Action,
    Broadcast,
    BuildProposal,
    Commit,
    CommitCertificate,
    Event,
    Message,
    MessageReceived,
    PersistSafety,
    Proposal,
    ProposalBuilt,
    ProposalValidated,
    Replica,
    SafetyState,
    SendTo,
    Start,
    Tick,
    ValidateProposal,
    ValidatorInfo,
    ValidatorSet,
    Vote,
    VoteKind,
)
from tidechain.consensus.messages import BlockLike, sign_vote
from tidechain.consensus.safety import lock_at
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import PeerError
from tidechain.core.limits import BLOCK_TIME_DELAY_MS, CLOCK_PRECISION_MS
from tidechain.sim.blocks import make_block
from tidechain.sim.byzantine import Equivocator
from tidechain.sim.checkers import Checkers, SimFailure, signer_of
from tidechain.sim.conformance import StepAuditor
from tidechain.sim.network import FakeNetwork
from tidechain.sim.scenario import (
    HEAL_BUDGET_MS,
    HEAL_HEIGHTS,
    SIM_PARAMS,
    TICK_MS,
    Mode,
    Scenario,
    draw_scenario,
)
from tidechain.sim.trace import Trace, describe_action, describe_event, describe_message, short

DEFAULT_FAULT_MS = 6_000
"""Length of the fault phase (virtual ms): long enough for dozens of rounds."""

SYNC_INTERVAL_MS = 500  # how often each node asks a random peer for blocks
SYNC_BATCH = 8  # blocks per sync answer
SYNC_STALL_MS = 3_000
"""Adopt blocks only one height ahead after this long without progress, so block sync
does not hide consensus's own catch-up (one height behind is the replica's job)."""
LOCKED_RESTART = "locked validator restarted"
OTHER_BLOCK = "locked validator got another block"
POL_PROPOSAL = "proof-of-lock proposal received"
HARD_CASES = (LOCKED_RESTART, OTHER_BLOCK, POL_PROPOSAL)
"""The paths the scenario steers towards (issue 12), counted per run at honest nodes:
a validator locked at the height it resumes crashed and restarted; a locked validator
received, at its height, a proposal of another block for a round after its lock (and
not before its own round); a re-proposal with a proof-of-lock (pol_round >= 0) was
received at the receiver's height."""

CRASH_WINDOW_MS = 200  # an armed crash waits this long for a step with actions to cut
_ANSWER_DELAY_MS = (1, 20)  # the shell's build / validate latency


@dataclass(frozen=True)
class SyncRequest:
    requester: str  # node id to answer
    from_height: int


@dataclass(frozen=True)
class SyncResponse:
    committed_height: int  # the responder's
    entries: tuple[tuple[BlockLike, CommitCertificate], ...]


Payload = Event | SyncRequest | SyncResponse
_NETWORK = -1  # "incarnation" of queue items that come over the network


@dataclass
class Disk:
    """What survives a crash: the safety record's bytes, committed blocks with their
    certificates, and the block the safety record is locked on (if the node had it)."""

    safety: bytes | None = None
    blocks: list[tuple[BlockLike, CommitCertificate]] = field(default_factory=list)
    locked_block: BlockLike | None = None
    lock_proof: tuple[Vote, ...] = ()
    """The prevote quorum of the lock, kept with the safety record as the node keeps it
    (`PersistSafety.lock`): a restarted locked validator re-proposes with it."""

    @property
    def height(self) -> int:
        return len(self.blocks)

    def safety_state(self) -> SafetyState | None:
        return None if self.safety is None else SafetyState.decode(self.safety)


@dataclass
class SimNode:
    node_id: str  # unique (twins share a name and key, not an id)
    name: str  # validator name
    key: SigningKey
    honest: bool
    peers: list[str]  # node ids it exchanges messages with, sorted
    equivocator: Equivocator | None = None
    disk: Disk = field(default_factory=Disk)
    replica: Replica | None = None  # None while crashed
    incarnation: int = 0
    seen: dict[bytes, BlockLike] = field(default_factory=dict)  # memory: lost on crash
    persisted: SafetyState | None = None  # decoded disk.safety, for the checker
    up_at_ms: int = 0
    crash_armed_ms: int | None = None
    progress_ms: int = 0  # last time its committed height moved


@dataclass(frozen=True)
class SimResult:
    seed: int
    validators: int
    byzantine: int
    kind: str | None  # None: passed; else safety, conformance, liveness or crash
    reason: str | None
    digest: str  # of the trace
    end_ms: int
    min_height: int  # lowest committed height among honest nodes at the end
    evidence: int  # equivocations honest replicas recorded
    stats: dict[str, int]  # how much of each fault the run exercised
    reconfigure: bool = False  # the run changed its validator set
    rules: dict[str, int] = field(default_factory=dict)
    """How often each `Replica._rule_*` fired in honest replicas (rule coverage)."""
    hard_cases: dict[str, int] = field(default_factory=dict)
    """How often each of `HARD_CASES` happened to an honest node."""
    conformance: dict[str, int] = field(default_factory=dict)
    """What the step auditor checked (`conformance.COUNTS`); empty if it was off."""

    @property
    def ok(self) -> bool:
        return self.kind is None


def sim_keys(validators: int) -> list[SigningKey]:
    return [SigningKey(sha256(b"tidechain/sim/key/%d" % i)) for i in range(validators)]


def _rotated_key(name: str) -> SigningKey:
    return SigningKey(sha256(b"tidechain/sim/rotated/" + name.encode()))


@dataclass(frozen=True)
class SetChange:
    """A validator-set change decided at `height`: the set differs from height + 1."""

    height: int
    kind: str  # add, rotate or remove
    name: str


class World:
    """One seeded run. `run()` returns a `SimResult`; it never raises for a failure."""

    def __init__(self, seed: int, validators: int, byzantine: int, *,
                 fault_ms: int = DEFAULT_FAULT_MS, heal_budget_ms: int = HEAL_BUDGET_MS,
                 sink: Callable[[str], None] | None = None, reconfigure: bool = False,
                 conformance: bool = True) -> None:
        self.rng = random.Random(seed)
        self.scenario: Scenario = draw_scenario(self.rng, seed, validators, byzantine,
                                                fault_ms)
        self.keys = sim_keys(validators)
        self.validator_set = ValidatorSet(tuple(
            ValidatorInfo(f"v{i}", k.public_key) for i, k in enumerate(self.keys)))
        self.reconfigure = reconfigure
        self.changes: list[SetChange] = []
        self._sets: list[tuple[int, ValidatorSet]] = [(1, self.validator_set)]
        self._signing_keys = {k.public_key: k for k in self.keys}
        self.invalid: set[bytes] = set()
        self._built: dict[bytes, tuple[str, int]] = {}  # block -> (builder, virtual ms)
        self.checkers = Checkers(self.validator_set, self.invalid,
                                 self.set_at if reconfigure else None)
        self.auditor = StepAuditor() if conformance else None  # honest steps (conformance.py)
        self.network = FakeNetwork(self.rng, self.scenario.faults)
        self.trace = Trace(sink)
        self.stats: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()  # honest replicas' rule firings
        self.hard_cases: Counter[str] = Counter()
        self.now_ms = 0
        self.healed_at_ms: int | None = None
        self.heal_budget_ms = heal_budget_ms
        self.heal_target = 0
        self._queue: list[tuple[int, int, str, int, Payload]] = []
        self._schedule: list[tuple[int, int, str, tuple[str, ...], int]] = []
        self._seq = 0
        self._partition: int | None = None  # the partition episode in force
        self._cut_short = False  # the crash being executed cut a step's actions
        self._lock_traps: list[int] = []  # armed lock traps' downtimes, oldest first
        self._split_traps = 0  # armed split traps
        self._split: tuple[int, int, bytes] | None = None  # (height, round, block) split
        self.nodes: dict[str, SimNode] = {}
        self._build_nodes()
        if reconfigure:
            self._draw_changes()
        self._draw_schedule()

    # --- setup ------------------------------------------------------------------------
    def _build_nodes(self) -> None:
        scenario, faults = self.scenario, self.scenario.faults
        modes = dict(zip(scenario.byzantine, scenario.modes, strict=True))
        for i, key in enumerate(self.keys):
            name, mode = f"v{i}", modes.get(i)
            ids = [f"{name}a", f"{name}b"] if mode is Mode.TWINS else [name]
            for node_id in ids:
                node = SimNode(node_id, name, key, honest=mode is None, peers=[])
                if mode is Mode.EQUIVOCATE:
                    node.equivocator = Equivocator(
                        name=name, key=key, validators=self.validator_set, rng=self.rng,
                        chance=faults.equivocation, invalid_chance=faults.invalid_blocks,
                        mark_invalid=self.invalid.add)
                self.nodes[node_id] = node
        if self.reconfigure:  # the spare: follows the chain until it is added
            spare = sim_keys(len(self.keys) + 1)[-1]
            self._signing_keys[spare.public_key] = spare
            name = f"v{len(self.keys)}"
            self.nodes[name] = SimNode(name, name, spare, honest=True, peers=[])
        self._draw_links()

    def _draw_changes(self) -> None:
        """Add the spare, then rotate one honest validator's key and remove another
        (in either order), at increasing heights: one change per height, and Byzantine
        validators stay within f of every set (n + 1, then n validators)."""
        rng = self.rng
        honest = [f"v{i}" for i in range(len(self.keys)) if i not in self.scenario.byzantine]
        rotate = rng.choice(honest)
        others = [name for name in honest if name != rotate]
        later = [("rotate", rotate)] + ([("remove", rng.choice(others))] if others else [])
        rng.shuffle(later)
        height = rng.randint(1, 4)
        plan = [SetChange(height, "add", f"v{len(self.keys)}")]
        for kind, name in later:
            height += rng.randint(1, 3)
            plan.append(SetChange(height, kind, name))
        members = list(self.validator_set.validators)
        for change in plan:
            if change.kind == "add":
                members.append(ValidatorInfo(change.name,
                                             self.nodes[change.name].key.public_key))
            elif change.kind == "rotate":
                key = _rotated_key(change.name)
                self._signing_keys[key.public_key] = key
                members = [ValidatorInfo(m.name, key.public_key) if m.name == change.name
                           else m for m in members]
            else:
                members = [m for m in members if m.name != change.name]
            self._sets.append((change.height + 1, ValidatorSet(tuple(members))))
        self.changes = plan
        self.stats["set changes planned"] = len(plan)

    def set_at(self, height: int) -> ValidatorSet:
        """The validator set that signs block `height`."""
        chosen = self._sets[0][1]
        for start, validators in self._sets:
            if start <= height:
                chosen = validators
        return chosen

    def _key_for(self, node: SimNode, validators: ValidatorSet) -> SigningKey:
        """The key a node's operator runs it with for `validators`: its registered one
        (a rotated validator's node switches at the boundary), else its own."""
        info = validators.get(node.name)
        return node.key if info is None else self._signing_keys[info.public_key]

    def _draw_links(self) -> None:
        """Everyone talks to everyone, except that each node sees twin a, twin b or
        both of every twinned validator (twins never talk to each other)."""
        ids = list(self.nodes)
        twinned = [n for n in dict.fromkeys(self.nodes[i].name for i in ids)
                   if f"{n}a" in self.nodes]
        view = {(x, t): self.rng.choice(("a", "b", "ab")) for x in ids for t in twinned}

        def sees(x: str, y: str) -> bool:
            name = self.nodes[y].name
            return name not in twinned or y[-1] in view[(x, name)]

        for x in ids:
            self.nodes[x].peers = [y for y in ids if self.nodes[y].name != self.nodes[x].name
                                   and sees(x, y) and sees(y, x)]

    def _draw_schedule(self) -> None:
        faults, rng = self.scenario.faults, self.rng
        honest = [i for i, n in self.nodes.items() if n.honest]
        for _ in range(faults.crashes):
            at = rng.randint(0, faults.fault_ms - 1)
            self._plan(at, "crash", (rng.choice(honest),), rng.randint(50, 3_000))
        for _ in range(faults.lock_crashes):
            self._plan(rng.randint(0, faults.fault_ms * 2 // 3), "lock trap", (),
                       rng.randint(50, 3_000))
        for _ in range(faults.split_rounds):
            self._plan(rng.randint(0, faults.fault_ms * 2 // 3), "split trap", (), 0)
        ids = list(self.nodes)
        for episode in range(faults.partitions):
            at = rng.randint(0, faults.fault_ms - 1)
            groups = rng.choice((2, 3))
            side = [str(rng.randrange(groups)) for _ in ids]
            self._plan(at, "partition", tuple(f"{i}={g}" for i, g in zip(ids, side,
                                                                          strict=True)),
                       episode)
            self._plan(at + rng.randint(200, 4_000), "reconnect", (), episode)

    def _plan(self, at_ms: int, what: str, args: tuple[str, ...], number: int) -> None:
        self._seq += 1
        heapq.heappush(self._schedule, (at_ms, self._seq, what, args, number))

    # --- the run ------------------------------------------------------------------------
    def run(self) -> SimResult:
        kind = reason = None
        try:
            self._run()
        except SimFailure as failure:
            kind, reason = failure.kind, failure.reason
        except Exception as exc:  # any other exception is a bug: report it with the seed
            kind, reason = "crash", f"{type(exc).__name__}: {exc}"
        if reason is not None:
            self.trace.add(self.now_ms, "-", f"FAILED ({kind}): {reason}")
        honest = [n for n in self.nodes.values() if n.honest]
        return SimResult(
            seed=self.scenario.seed, validators=self.scenario.validators,
            byzantine=len(self.scenario.byzantine), kind=kind, reason=reason,
            digest=self.trace.digest, end_ms=self.now_ms,
            min_height=min(n.disk.height for n in honest),
            evidence=sum(len(n.replica.evidence) for n in honest if n.replica is not None),
            stats=dict(sorted(self.stats.items())), reconfigure=self.reconfigure,
            rules=dict(sorted(self.rules.items())),
            hard_cases=dict(sorted(self.hard_cases.items())),
            conformance={} if self.auditor is None else dict(sorted(
                self.auditor.counts.items())))

    def _run(self) -> None:
        self.trace.add(0, "-", f"scenario {self.scenario}")
        for node_id in self._shuffled_ids():
            self._boot(self.nodes[node_id])
        fault_ms = self.scenario.faults.fault_ms
        while True:
            self.now_ms += TICK_MS
            self._apply_schedule()
            if self.healed_at_ms is None and self.now_ms >= fault_ms:
                self._heal()
            self._deliver_due()
            self._restart_due()
            for node_id in self._shuffled_ids():
                node = self.nodes[node_id]
                if node.replica is not None:
                    self._step(node, Tick(self.now_ms))
            if self.now_ms % SYNC_INTERVAL_MS == 0:
                self._ask_for_blocks()
            if self.healed_at_ms is not None and self._recovered():
                return

    def _shuffled_ids(self) -> list[str]:
        ids = list(self.nodes)
        self.rng.shuffle(ids)
        return ids

    def _recovered(self) -> bool:
        assert self.healed_at_ms is not None
        lagging = [n for n in self.nodes.values()
                   if n.honest and n.disk.height < self.heal_target]
        if not lagging:
            return True
        if self.now_ms - self.healed_at_ms > self.heal_budget_ms:
            raise SimFailure("liveness", f"target height {self.heal_target} not reached "
                                         f"{self.heal_budget_ms} ms after the heal; "
                                         f"{self._positions()}")
        return False

    def _positions(self) -> str:
        """Where every node is: committed height and replica (height, round)."""
        parts = []
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            where = "down" if node.replica is None else (
                f"h{node.replica.height}r{node.replica.round}")
            honesty = "" if node.honest else "*"
            parts.append(f"{node_id}{honesty}@{node.disk.height}:{where}")
        return " ".join(parts)

    def _heal(self) -> None:
        self.healed_at_ms = self.now_ms
        self.network.heal()
        honest = [n for n in self.nodes.values() if n.honest]
        self.heal_target = max(n.disk.height for n in honest) + HEAL_HEIGHTS
        self.trace.add(self.now_ms, "-", f"HEAL target height {self.heal_target}")
        self._lock_traps.clear()
        self._split_traps = 0
        self._split = None
        for node in self.nodes.values():
            node.crash_armed_ms = None
            if node.replica is None:
                self._boot(node)

    # --- fault schedule -----------------------------------------------------------------
    def _apply_schedule(self) -> None:
        while self._schedule and self._schedule[0][0] <= self.now_ms:
            _, _, what, args, number = heapq.heappop(self._schedule)
            if self.healed_at_ms is not None:
                continue  # the heal ended all faults
            if what == "crash":
                node = self.nodes[args[0]]
                if node.replica is not None and node.crash_armed_ms is None:
                    node.crash_armed_ms = self.now_ms
                    node.up_at_ms = self.now_ms + number  # number: downtime
            elif what == "partition":
                groups: dict[str, list[str]] = {}
                for item in args:
                    node_id, group = item.split("=")
                    groups.setdefault(group, []).append(node_id)
                self.network.partition(groups.values())
                self.stats["partitions"] += 1
                self._partition = number
                self.trace.add(self.now_ms, "-", f"PARTITION {sorted(groups.values())}")
            elif what == "lock trap":
                self._lock_traps.append(number)  # number: downtime
            elif what == "split trap":
                self._split_traps += 1
            elif what == "reconnect" and self._partition == number:
                self.network.reconnect()
                self.trace.add(self.now_ms, "-", "RECONNECT")

    def _crash(self, node: SimNode) -> None:
        node.replica = None
        node.crash_armed_ms = None
        node.seen = {}
        node.incarnation += 1
        self.stats["crashes"] += 1
        self.stats["crashes mid-step"] += bool(self._cut_short)
        self.trace.add(self.now_ms, node.node_id, f"CRASH (disk height {node.disk.height})")

    def _restart_due(self) -> None:
        for node in self.nodes.values():
            if node.replica is None and node.up_at_ms <= self.now_ms:
                self._boot(node)

    def _boot(self, node: SimNode) -> None:
        """(Re)start a node's replica from its disk as it is."""
        restarted = node.replica is None  # a crash, not block sync or a new set
        node.incarnation += 1
        node.persisted = node.disk.safety_state()
        validators = self.set_at(node.disk.height + 1)
        if (restarted and node.honest and node.persisted is not None
                and lock_at(node.persisted, node.disk.height + 1)[0] >= 0):
            self._hard_case(node, LOCKED_RESTART)
        if node.equivocator is not None:
            node.equivocator.use_set(validators)
        node.replica = Replica.restore(
            validators=validators, key=self._key_for(node, validators), name=node.name,
            params=SIM_PARAMS, safety=node.persisted, committed_height=node.disk.height,
            locked_block=node.disk.locked_block, lock_proof=node.disk.lock_proof,
            retired_key_observes=True, rule_counter=self.rules if node.honest else None)
        self.trace.add(self.now_ms, node.node_id,
                       f"BOOT at height {node.replica.height} round {node.replica.round}")
        if node.honest and self.auditor is not None:
            self.auditor.on_restart(node.name, validators, node.disk.height + 1,
                                    node.persisted, node.disk.lock_proof)
        self._step(node, Start(self.now_ms))

    # --- stepping a replica -------------------------------------------------------------
    def _step(self, node: SimNode, event: Event) -> None:
        replica = node.replica
        assert replica is not None
        height = replica.height
        try:
            actions = replica.step(event)
        except PeerError as exc:
            self._rejected(node, event, exc)
            return
        if node.honest and self.auditor is not None:  # all of it: a crash cuts it later
            self.auditor.on_step(node.name, self.set_at(height), event, actions)
        if actions or not isinstance(event, Tick):
            self.trace.add(self.now_ms, node.node_id, describe_event(event))
        cut = len(actions)
        armed = node.crash_armed_ms
        crash = armed is not None and (bool(actions) or self.now_ms >= armed + CRASH_WINDOW_MS)
        if crash:
            cut = self.rng.randint(0, len(actions))
            self._cut_short = cut < len(actions)
        for i, action in enumerate(actions):
            if i == cut:
                break
            self.trace.add(self.now_ms, node.node_id, describe_action(action))
            self._execute(node, action)
            if isinstance(action, Commit) and self._set_changes_after(node.disk.height):
                self._cross_boundary(node, actions[i + 1:cut], crash)
                return
            if not crash and self._springs_lock_trap(node, action):
                crash = True
                cut = self.rng.randint(i + 1, len(actions))
                self._cut_short = cut < len(actions)
        if crash:
            self._crash(node)

    def _springs_lock_trap(self, node: SimNode, action: Action) -> bool:
        """An armed lock trap crashes the honest node that just persisted a lock, in
        this step: what is left of it (the precommit, usually) runs up to a random
        point. The lock is on its disk, so it restarts locked (`LOCKED_RESTART`)."""
        if not (self._lock_traps and node.honest and isinstance(action, PersistSafety)
                and action.lock is not None):
            return False
        node.up_at_ms = self.now_ms + self._lock_traps.pop(0)
        self.stats["lock traps sprung"] += 1
        self.trace.add(self.now_ms, node.node_id, "LOCK TRAP")
        return True

    def _splits(self, node: SimNode, proposal: Proposal) -> bool:
        """Split traps: the first honest node asked about a new, valid proposal of an
        honest proposer after a split trap is armed finds it untimely (it prevotes
        nil), and the Byzantine validators prevote the block to the proposer alone
        (their own replicas' prevotes for it reach nobody else: `_split_audience`).
        The proposer can then see a polka, nobody else can, as in bug L1: a lock that
        outlives its round, later rounds that propose other blocks, and the locked
        proposer's re-proposal with its proof-of-lock."""
        slot = (proposal.height, proposal.round, proposal.block_hash)
        if (proposal.pol_round >= 0 or self.healed_at_ms is not None or not node.honest
                or not self._split_traps or self._split == slot
                or not self._is_honest(proposal.proposer)
                or proposal.block_hash in self.invalid):
            return False
        self._split_traps -= 1
        self._split = slot
        self.stats["rounds split"] += 1
        self.trace.add(self.now_ms, node.node_id,
                       f"SPLIT h{slot[0]} r{slot[1]} {short(slot[2])}")
        validators = self.set_at(proposal.height)
        audience = [i for i in self.nodes if self.nodes[i].name == proposal.proposer]
        for name in dict.fromkeys(n.name for n in self.nodes.values() if not n.honest):
            byzantine = next(n for n in self.nodes.values() if n.name == name)
            if validators.get(name) is None:
                continue
            vote = sign_vote(self._key_for(byzantine, validators), name, validators.digest,
                             VoteKind.PREVOTE, proposal.height, proposal.round, proposal.block)
            self.trace.add(self.now_ms, byzantine.node_id,
                           f"SPLIT PREVOTE to {audience}: {describe_message(vote)}")
            for dest in audience:
                self._transmit(byzantine.node_id, dest, MessageReceived(name, vote))
        return True

    def _split_audience(self, node: SimNode, message: Message) -> list[str] | None:
        """The node ids a Byzantine prevote for the split round's block may reach."""
        if (node.honest or not isinstance(message, Vote)
                or message.kind is not VoteKind.PREVOTE
                or self._split != (message.height, message.round, message.block_hash)):
            return None
        proposer = self.set_at(message.height).proposer(message.height, message.round).name
        return [i for i in self.nodes if self.nodes[i].name == proposer]

    def _set_changes_after(self, height: int) -> bool:
        return self.set_at(height + 1).digest != self.set_at(height).digest

    def _cross_boundary(self, node: SimNode, rest: list[Action], crash: bool) -> None:
        """As `Node._restart_replica`: after a Commit that changes the set, only the
        old replica's messages of the committed height leave; what it did for the next
        height (unpersisted, unsent) is dropped, and a replica for the new set starts
        from the disk."""
        for action in rest:
            if isinstance(action, Broadcast | SendTo) and (
                    action.message.height <= node.disk.height):
                self.trace.add(self.now_ms, node.node_id, describe_action(action))
                self._execute(node, action)
        self.stats["set boundaries crossed"] += 1
        validators = self.set_at(node.disk.height + 1)
        self.trace.add(self.now_ms, node.node_id, "NEW SET from height "
                       f"{node.disk.height + 1}: {[v.name for v in validators.validators]}")
        if crash:
            self._crash(node)
        else:
            self._boot(node)

    def _rejected(self, node: SimNode, event: Event, exc: PeerError) -> None:
        """A real shell would drop the peer. Only a Byzantine signer may cause this."""
        if isinstance(event, MessageReceived) and self._is_honest(signer_of(event.message)):
            raise SimFailure("crash", f"{node.node_id} rejected an honest message: {exc}")
        self.trace.add(self.now_ms, node.node_id, f"rejected: {exc}")

    def _is_honest(self, name: str) -> bool:
        node = self.nodes.get(name)
        return node is not None and node.honest

    def _execute(self, node: SimNode, action: Action) -> None:
        if isinstance(action, PersistSafety):
            node.disk.safety = action.state.encode()
            node.persisted = action.state
            if action.lock is not None:  # as the node: the block and its proof, together
                node.disk.locked_block = action.lock.proposal.block
                node.disk.lock_proof = action.lock.prevotes
        elif isinstance(action, Broadcast):
            self._send(node, node.peers, action.message)
        elif isinstance(action, SendTo):
            self._send(node, [p for p in node.peers if self.nodes[p].name == action.peer],
                       action.message)
        elif isinstance(action, BuildProposal):
            self._build(node, action)
        elif isinstance(action, ValidateProposal):
            block = action.proposal.block
            node.seen[block.block_hash] = block
            timely = self._timely(action.proposal) and not self._splits(node, action.proposal)
            self._answer(node, ProposalValidated(action.proposal,
                                                 block.block_hash not in self.invalid,
                                                 timely=timely))
        elif isinstance(action, Commit):
            self._commit(node, action.block, action.certificate)

    def _build(self, node: SimNode, action: BuildProposal) -> None:
        if node.equivocator is not None:
            block: BlockLike = node.equivocator.fresh_block(action.height, b"build")
        else:
            tag = f"{node.node_id}/{action.round}/".encode() + self.rng.randbytes(8)
            block = make_block(action.height, tag)
        node.seen[block.block_hash] = block
        self._built[block.block_hash] = (node.name, self.now_ms)
        self._answer(node, ProposalBuilt(action.height, action.round, block))

    def _timely(self, proposal: Proposal) -> bool:
        """The node's verdicts on a new proposal (one with a proof-of-lock is exempt, as
        in the node): a block proposed by another than its builder is refused
        (`Node._built_by_proposer`), a block built longer ago than the node's window
        is late (`Node._timely`: a re-sent or re-proposed old block), and during the
        fault phase a new proposal is also found untimely by chance (late delivery,
        skewed clocks)."""
        if proposal.pol_round >= 0:
            return True
        built = self._built.get(proposal.block_hash)
        if built is not None:
            builder, at_ms = built
            window_ms = (CLOCK_PRECISION_MS + BLOCK_TIME_DELAY_MS
                         + BLOCK_TIME_DELAY_MS * proposal.round // 10)
            if builder != proposal.proposer or self.now_ms - at_ms > window_ms:
                self.stats["late or foreign proposals"] += 1
                return False
        if self.healed_at_ms is not None:
            return True
        timely = self.rng.random() >= self.scenario.faults.untimely
        self.stats["untimely proposals"] += not timely
        return timely

    def _answer(self, node: SimNode, event: Event) -> None:
        """The shell's answer arrives a little later, unless the node crashes first."""
        self._push(self.now_ms + self.rng.randint(*_ANSWER_DELAY_MS), node.node_id,
                   node.incarnation, event)

    def _commit(self, node: SimNode, block: BlockLike, certificate: CommitCertificate) -> None:
        self.checkers.on_commit(node.node_id, node.honest, node.disk.height, block,
                                certificate)
        node.disk.blocks.append((block, certificate))
        node.progress_ms = self.now_ms

    # --- the network ----------------------------------------------------------------------
    def _send(self, node: SimNode, dests: list[str], message: Message) -> None:
        if node.honest and signer_of(message) == node.name:
            self.checkers.on_honest_send(node.node_id, message, node.persisted,
                                         node.disk.height)
        only_to = self._split_audience(node, message)
        plan = [(dests, message)]
        if node.equivocator is not None:
            plan = node.equivocator.split(message, dests, only_to=only_to)
        elif only_to is not None:  # a twin: its prevote for the block reaches the proposer
            plan = [([d for d in dests if d in only_to], message)]
        for targets, outgoing in plan:
            if outgoing is not message:
                self.stats["equivocations"] += 1
                self.trace.add(self.now_ms, node.node_id,
                               f"EQUIVOCATE to {targets}: {describe_message(outgoing)}")
            for dest in targets:
                self._transmit(node.node_id, dest, MessageReceived(node.name, outgoing))

    def _transmit(self, src: str, dest: str, payload: Payload) -> None:
        delays = self.network.delays_ms(src, dest)
        self.stats["messages"] += 1
        self.stats["lost"] += not delays
        self.stats["duplicated"] += len(delays) > 1
        for delay in delays:
            self._push(self.now_ms + delay, dest, _NETWORK, payload)

    def _push(self, at_ms: int, node_id: str, incarnation: int, payload: Payload) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at_ms, self._seq, node_id, incarnation, payload))

    def _deliver_due(self) -> None:
        while self._queue and self._queue[0][0] <= self.now_ms:
            _, _, node_id, incarnation, payload = heapq.heappop(self._queue)
            node = self.nodes[node_id]
            if node.replica is None:
                continue  # lost: the node is down
            if incarnation not in (_NETWORK, node.incarnation):
                continue  # an answer meant for the replica before a crash or sync
            if isinstance(payload, SyncRequest):
                self._serve_blocks(node, payload)
            elif isinstance(payload, SyncResponse):
                self._adopt_blocks(node, payload)
            else:
                if isinstance(payload, MessageReceived) and isinstance(payload.message,
                                                                       Proposal):
                    if node.equivocator is not None:
                        node.equivocator.learn(payload.message.block)
                    if node.honest:
                        self._note_proposal(node, payload.message)
                self._step(node, payload)

    def _note_proposal(self, node: SimNode, proposal: Proposal) -> None:
        """Count the hard cases a proposal arriving at an honest node makes."""
        replica = node.replica
        assert replica is not None
        if proposal.height != replica.height or proposal.proposer == node.name:
            return
        if proposal.pol_round >= 0:
            self._hard_case(node, POL_PROPOSAL)
        locked_round, locked_hash = lock_at(replica.safety_state, replica.height)
        if (0 <= locked_round < proposal.round and proposal.round >= replica.round
                and proposal.block_hash != locked_hash):
            self._hard_case(node, OTHER_BLOCK)

    def _hard_case(self, node: SimNode, case: str) -> None:
        self.hard_cases[case] += 1
        self.trace.add(self.now_ms, node.node_id, f"HARD CASE: {case}")

    # --- block sync -----------------------------------------------------------------------
    def _ask_for_blocks(self) -> None:
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.replica is not None and node.peers:
                peer = self.rng.choice(node.peers)
                self._transmit(node_id, peer, SyncRequest(node_id, node.disk.height + 1))

    def _serve_blocks(self, node: SimNode, request: SyncRequest) -> None:
        start = request.from_height - 1
        if node.disk.height <= start:
            return
        entries = tuple(node.disk.blocks[start:start + SYNC_BATCH])
        self._transmit(node.node_id, request.requester,
                       SyncResponse(node.disk.height, entries))

    def _adopt_blocks(self, node: SimNode, response: SyncResponse) -> None:
        ahead = response.committed_height - node.disk.height
        stalled = self.now_ms - node.progress_ms >= SYNC_STALL_MS
        if ahead < 2 and not (ahead >= 1 and stalled):
            return
        adopted = 0
        for block, certificate in response.entries:
            if block.height == node.disk.height + 1:
                self._commit(node, block, certificate)
                adopted += 1
        if adopted:
            self.stats["blocks synced"] += adopted
            self.trace.add(self.now_ms, node.node_id,
                           f"SYNCED {adopted} blocks to height {node.disk.height} "
                           f"(last {short(node.disk.blocks[-1][0].block_hash)})")
            self._boot(node)
