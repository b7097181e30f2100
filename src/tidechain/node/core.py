"""The node core: every decision of a node, as one sans-IO state machine (ADR 0020).

`NodeCore.step(input) -> list[Effect]`: block building and validation, block sync, state
sync, admission, validator-set boundaries and restart, around the consensus replica. It
reads the store through `StorageReader` and never writes it: writes are effects
(`node.effects`) that its shell carries out in order, with the messages and outcomes.
The shell is `node.node.Node` (a store executor) under the asyncio runtime, or the
simulator (`sim/nodes.py`), which runs the same core on an in-memory store. Nothing here
reads a clock, the environment or a socket: time comes in with the inputs.

`mode` says what the node is doing: CONSENSUS, BLOCK_SYNC (a peer is known to be ahead:
blocks are fetched from peers in turn), STATE_SYNC (a session imports a snapshot beside
the chain). Consensus messages are taken in every mode but HALTED: a block committed by
consensus ends a state sync (ADR 0009) or HALTED (the chain needs a contract version this
software lacks; every step answers `Halted`).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tidechain.consensus import (
    Action,
    BlockLike,
    Broadcast,
    BuildProposal,
    Commit,
    CommitCertificate,
    ConsensusParams,
    Event,
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
    TransactionsAvailable,
    ValidateProposal,
    ValidatorInfo,
    ValidatorSet,
    Vote,
)
from tidechain.consensus.params import with_governed_timeouts
from tidechain.contracts import governance
from tidechain.core import cbor, merkle
from tidechain.core.errors import (
    Busy,
    NotFound,
    PeerError,
    ProofError,
    Rejected,
    TxRejected,
    invariant,
)
from tidechain.core.limits import (
    BLOCK_TIME_DELAY_MS,
    CLOCK_PRECISION_MS,
    MAX_BLOCK_TXS,
    MAX_BLOCK_TXS_SHARED,
    MAX_DROPPED_REMEMBERED,
    MAX_ENTRIES_ANSWER_BYTES,
    MAX_PEER_MESSAGE_BYTES,
    MAX_SYNC_BLOCKS,
    MAX_SYNC_HEADERS,
    STATE_SYNC_MIN_BLOCKS,
    SYNC_PROBE_MS,
)
from tidechain.core.note import Note, NoteSignature, Signer, Verifier
from tidechain.ledger import validators as validator_sets
from tidechain.ledger.chain import (
    Chain,
    PreparedBlock,
    check_tx_time,
    governed_max_block_txs,
)
from tidechain.ledger.runtime import MissingContractVersion, Registry
from tidechain.ledger.state_tree import NODE_CACHE_NODES, StateTree
from tidechain.ledger.statesync import (
    ImportedBlock,
    IndexRules,
    LogFeed,
    Snapshot,
    Tip,
    make_snapshot,
)
from tidechain.ledger.types import BlockHeader, Genesis, LogEntry, SignedTx
from tidechain.node.effects import (
    AbandonStateSync,
    Admitted,
    CertifiedBlock,
    CheckpointCommitted,
    CommitBlock,
    Committed,
    ConsensusEvent,
    Effect,
    FinishStateSync,
    Gossip,
    Halted,
    ImportBlocks,
    ImportState,
    NodeInput,
    PeerFault,
    PeerInput,
    PollSync,
    Prefetch,
    PrepareImports,
    Reply,
    SaveSafety,
    StateSyncStored,
    StoreFailed,
    Submit,
    Wake,
)
from tidechain.node.mempool import Mempool
from tidechain.node.seen import SeenTxs
from tidechain.node.statesync import StateSync
from tidechain.node.wire import (
    Entries,
    EntriesRequest,
    Headers,
    HeadersRequest,
    HeadRequest,
    OutgoingMessage,
    PeerMessage,
    SnapshotOffer,
    SnapshotRequest,
    StateChunk,
    StateRequest,
    StateSyncMessage,
    SyncAnswer,
    SyncBlocks,
    SyncRequest,
    TxGossip,
    WireBlock,
    decode_message,
    encode_message,
)
from tidechain.storage.protocol import StorageReader

log = logging.getLogger("tidechain.node")

STARTUP_PROBE_MS = SYNC_PROBE_MS // 8
"""How often `poll_sync` asks for heads until a first peer has answered."""
STATE_SYNC_RETRY_MS = 10 * SYNC_PROBE_MS
"""After a state sync gave up, block sync alone for this long before another try."""


@dataclass(frozen=True)
class SyncPolicy:
    """How the node catches up, chosen by its shell (node/serve.py), never read from the
    environment here: `state_sync` off catches up by block replay only (to measure one
    against the other, `bench_catchup.py --replay`)."""

    state_sync: bool = True
    min_blocks: int = STATE_SYNC_MIN_BLOCKS
    """How far behind (by f + 1 peers' word) a node state-syncs rather than replays
    blocks; the simulator lowers it so that short runs reach state sync often."""


@dataclass
class Instruments:
    """What the simulator watches (never set by the node's own shell): each upon-rule
    of the replica counted by name (`Replica` `rule_counter`), and each replica step
    with what it was fed and what it did (the honest-step checks, the hard cases)."""

    rule_counter: Counter[str] | None = None
    on_replica_step: Callable[[NodeCore, Event, list[Action]], None] | None = None
    on_replica_start: Callable[[NodeCore, SafetyState | None, tuple[Vote, ...]], None] | None = (
        None)
    """A replica was (re)built, before its first step: from this safety record and lock
    proof (a restart, a block sync, a new validator set)."""


class Mode(Enum):
    CONSENSUS = "consensus"
    BLOCK_SYNC = "block sync"
    STATE_SYNC = "state sync"
    HALTED = "halted"


class NodeCore:
    def __init__(
        self,
        genesis: Genesis,
        reader: StorageReader,
        signer: Signer,
        registry: Registry,
        *,
        safety: bytes | None,
        lock: bytes | None,
        params: ConsensusParams | None = None,
        mempool: Mempool | None = None,
        sync: SyncPolicy | None = None,
        instruments: Instruments | None = None,
        state_cache_nodes: int = NODE_CACHE_NODES,
    ) -> None:
        """`safety` and `lock` are what the store holds (`load_safety`, `load_lock`);
        the genesis state must be in the store already (`init_genesis`).
        `state_cache_nodes` bounds the state tree's nodes held in memory (ADR 0021)."""
        self.genesis = genesis
        self.reader = reader
        self._state_cache_nodes = state_cache_nodes
        self.instruments = instruments or Instruments()
        self._effects: list[Effect] = []  # what the current step asks of the shell
        # Transactions of blocks committed in this step: the shell writes them after it.
        self._unflushed: set[bytes] = set()
        self.signer = signer
        self.mempool = mempool if mempool is not None else Mempool()
        self.chain = _load_chain(genesis, reader, registry, state_cache_nodes)
        self.mode = Mode.CONSENSUS
        # The set that signs the next block, from the state (ADR 0011); rebuilt when a
        # commit changes it (`_restart_replica`).
        self.validators = self.validators_for_height(self.chain.height + 1)
        self._replica_stale = False  # the set or the governed timeouts changed at a commit
        # Set when the chain activated a contract version this software lacks.
        self.halted: MissingContractVersion | None = None
        # The last safety record handed to the shell: durable before anything after it.
        self._durable_safety = safety
        state = SafetyState.decode(safety) if safety is not None else None
        # No empty blocks: an idle network writes nothing (the replica only starts a
        # round once transactions are pending or a peer has started one).
        self._configured_params = params or ConsensusParams(create_empty_blocks=False)
        # The configuration with the timeouts governance set on chain (rebuilt when a
        # commit changes them, as for the validator set).
        self.params = self._governed_params()
        self._prepared: dict[bytes, PreparedBlock] = {}
        self.seen = SeenTxs()  # decoded from peers, by bytes: decode and verify once
        locked_block, lock_proof = self._saved_lock(state, lock)
        self.replica = self._new_replica(state, locked_block, lock_proof)
        self._sync_asked_for = 0  # the height we last asked a peer to send blocks from
        self._sync_asked_at = 0  # when (node clock, ms)
        self._sync_seen_height = self.chain.height  # head at the last poll_sync
        self._sync_turn = 0  # which peer poll_sync asks next
        self._heads_asked_at = -SYNC_PROBE_MS  # when a head answer last made us ask all
        self._state_sync: StateSync | None = None  # the session while mode is STATE_SYNC
        self._finishing = False  # FinishStateSync handed to the shell, answer pending
        self._state_sync_after_ms = 0  # no new state sync before (one gave up)
        self._sync_policy = sync or SyncPolicy()
        self._state_sync_enabled = self._sync_policy.state_sync
        self._snapshot: Snapshot | None = None  # the state this node serves to state syncs
        self._peer_names: list[str] = []
        self._peer_heads: dict[str, int] = {}  # heights peers claim
        self._heads_heard = False  # whether any peer has told us its head yet
        self._follow_peers()
        self._warn_if_key_retired()
        self.clock_ms = 0  # the node's clock at the last input that carried it
        self.blocks_committed = 0  # since start, by consensus or block sync (/metrics)
        # Why recently dropped transactions were dropped, for late `wait` calls.
        self.dropped: OrderedDict[bytes, Rejected] = OrderedDict()
        head = reader.head()
        self.checkpoint: str | None = head.checkpoint if head else None

    # --- the one entry point -----------------------------------------------------------
    def step(self, input: NodeInput) -> list[Effect]:
        """Decide on one input; the effects, in the order the shell must carry them out.
        Once halted, every step answers `Halted` and decides nothing."""
        self._effects = []
        self._unflushed.clear()  # the shell carried out the last step's writes
        self.chain.state.settle()  # so the state tree's nodes it wrote may be evicted
        if self.halted is not None:
            return [Halted(self.halted)]
        fault: PeerError | None = None
        try:
            self._dispatch(input)
        except MissingContractVersion as exc:
            self._note_halt(exc)
        except PeerError as exc:  # what was decided before it stands
            fault = exc
        effects, self._effects = self._effects, []
        if fault is not None:
            effects.append(PeerFault(fault))
        if self.halted is not None:
            effects.append(Halted(self.halted))
        return effects

    def _dispatch(self, input: NodeInput) -> None:
        if isinstance(input, ConsensusEvent):
            self._consensus(input.event)
        elif isinstance(input, PollSync):
            self._poll_sync(input.now_ms)
        elif isinstance(input, PeerInput):
            self._handle_peer(input.sender, input.message, input.now_ms)
        elif isinstance(input, Prefetch):
            self._prefetch_sync(input.sender, input.message, input.now_ms)
        elif isinstance(input, Submit):
            self._effects.append(Admitted(tuple(
                self._admit(input.txs, input.now_ms, from_peer=input.from_peer))))
        elif isinstance(input, Wake):
            self._wake()
        elif isinstance(input, CertifiedBlock):
            self._prepared[input.prepared.block_hash] = input.prepared
            self._commit(_BlockRef(input.prepared), input.certificate)
        elif isinstance(input, StateSyncStored):
            self._state_sync_stored(input.now_ms)
        elif isinstance(input, StoreFailed):
            self._abandon_state_sync(input.now_ms, input.reason)
        else:
            invariant(False, f"unknown node input {input!r}")

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _note_halt(self, exc: MissingContractVersion) -> None:
        """Stop at this height rather than run another version and diverge."""
        if self.halted is None:
            log.critical("stopping at height %d: %s", self.chain.height + 1, exc)
            self.halted = exc
            self.mode = Mode.HALTED

    def _committed(self, tx_ids: Sequence[bytes]) -> set[bytes]:
        """Which of these transactions are committed: in the store, or in a block this
        step committed (its write is an effect not carried out yet)."""
        found = self.reader.committed(tx_ids)
        if self._unflushed:
            found |= {tx_id for tx_id in tx_ids if tx_id in self._unflushed}
        return found

    def _committed_unless_pending(self, tx_ids: Sequence[bytes]) -> set[bytes]:
        """`_committed` for the transactions of a block this node proposes or
        validates, looking up only those not pending here. A pending transaction is
        not committed: admission checked it against the store, and every commit takes
        its transactions out of the mempool (`_commit`, `_settle_imported`). A block's
        transactions are mostly pending already, and this second lookup of each was
        about 2.5% of a validator's main thread on four validators (py-spy, 2026-12-07).
        Should that invariant ever break, both stores refuse a second entry for a
        transaction id, and the failed write stops the node (`Node._write`)."""
        pending = self.mempool
        return self._committed([tx_id for tx_id in tx_ids if tx_id not in pending])

    # --- consensus drive ---------------------------------------------------------------
    def _consensus(self, event: Event) -> None:
        """Feed one event to the replica and carry out its actions, in order. A commit
        that changes the validator set ends the old replica's batch there: what it
        did for the next height was for the old set (`_restart_replica`)."""
        if isinstance(event, Tick | Start):
            self.clock_ms = event.now_ms
        pending: list[Event] = [event]
        if self._replica_stale:  # block sync committed a set or timeout change
            starting = self._restart_replica()
            pending = [event] if isinstance(event, Start) else [*starting, event]
        observe = self.instruments.on_replica_step
        while pending:
            fed = pending.pop(0)
            actions = self.replica.step(fed)
            if observe is not None:
                observe(self, fed, actions)
            for i, action in enumerate(actions):
                follow_up = self._execute(action)
                if follow_up is not None:
                    pending.append(follow_up)
                if self._replica_stale:
                    self._release_committed_height(actions[i + 1:])
                    pending = self._restart_replica()
                    break

    # --- validator set ----------------------------------------------------------------
    def validators_for_height(self, height: int) -> ValidatorSet:
        """The validator set whose quorum certifies block `height`, for any height up
        to the head + 1: the set in the state after block `height - 1` (ADR 0011).
        Block sync and state sync check certificates with it."""
        if not 1 <= height <= self.chain.height + 1:
            raise NotFound(f"the validator set of height {height} is not known here "
                           f"(head {self.chain.height})")
        records = validator_sets.set_at_height(self.chain.state, self.genesis, height)
        return ValidatorSet(tuple(ValidatorInfo(r.name, r.public_key) for r in records))

    def chain_peers(self) -> dict[str, tuple[str, int]]:
        """The current validators' transport names and addresses as registered on
        chain (`add_validator`), without this node: what the peer network should dial
        once the set changes (ADR 0011). The transport name is the key name without
        the network's prefix, as the runtime maps them."""
        prefix = self.genesis.name + "/"
        peers: dict[str, tuple[str, int]] = {}
        for record in validator_sets.current_set(self.chain.state, self.genesis):
            host, _, port = record.address.rpartition(":")
            if record.name == self.signer.name or not host or not port.isdigit():
                continue
            peers[record.name.removeprefix(prefix)] = (host, int(port))
        return peers

    def _warn_if_key_retired(self) -> None:
        info = self.validators.get(self.signer.name)
        if info is not None and info.public_key != self.signer.key.public_key:
            log.warning("validator %s has another key on chain (replaced by governance, or "
                        "a wrong key file): this node follows without voting until it is "
                        "started with that key", self.signer.name)

    def _follow_peers(self) -> None:
        """Sync and liveness follow the current set: new validators become peers to
        ask, removed ones are forgotten (the map stays bounded by the set)."""
        self._peer_names = [v.name for v in self.validators.validators
                            if v.name != self.signer.name]
        self._peer_heads = {name: self._peer_heads.get(name, 0) for name in self._peer_names}

    def _governed_params(self) -> ConsensusParams:
        return with_governed_timeouts(self._configured_params,
                                      governance.consensus_timeouts(self.chain.state))

    def _note_params_change(self) -> None:
        """After a commit: if governance changed the consensus timeouts, the replica of
        the next height is rebuilt with them (the same boundary as a set change)."""
        governed = self._governed_params()
        if governed == self.params:
            return
        log.info("consensus timeouts change at height %d: %s", self.chain.height + 1,
                 governance.consensus_timeouts(self.chain.state))
        self.params = governed
        self._replica_stale = True

    def _note_validator_change(self) -> None:
        """After a commit: if the set (or the governed timeouts, `_note_params_change`)
        for the next height differs, switch to it."""
        self._note_params_change()
        upcoming = self.validators_for_height(self.chain.height + 1)
        if upcoming.digest == self.validators.digest:
            return
        log.info("validator set changes at height %d: %s (quorum %d)", self.chain.height + 1,
                 ", ".join(v.name for v in upcoming.validators), upcoming.quorum)
        self.validators = upcoming
        self._replica_stale = True
        self._follow_peers()

    def _release_committed_height(self, rest: Sequence[Action]) -> None:
        """Of the old replica's actions after a set-changing commit, send only its
        messages of the committed height (its precommits, which peers may still
        need); the rest were signed for the next height under the old set and were
        never made durable, so dropping them unsigns nothing."""
        for action in rest:
            if isinstance(action, Broadcast | SendTo) and (
                    action.message.height <= self.chain.height):
                self._emit(action)

    def _new_replica(self, safety: SafetyState | None, locked_block: BlockLike | None = None,
                     lock_proof: tuple[Vote, ...] = ()) -> Replica:
        """A replica at the height after the head, resuming from `safety`."""
        replica = Replica.restore(
            validators=self.validators, key=self.signer.key, name=self.signer.name,
            params=self.params, safety=safety, committed_height=self.chain.height,
            locked_block=locked_block, lock_proof=lock_proof, retired_key_observes=True,
            rule_counter=self.instruments.rule_counter)
        if self.instruments.on_replica_start is not None:
            self.instruments.on_replica_start(self, safety, lock_proof)
        return replica

    def _saved_lock(self, safety: SafetyState | None, raw: bytes | None
                    ) -> tuple[BlockLike | None, tuple[Vote, ...]]:
        """The block our safety record is locked on and its proof-of-lock, if kept
        (`PersistSafety.lock`) for the height being resumed; the block is re-executed here
        so that it can be committed."""
        if raw is None or safety is None or safety.height != self.chain.height + 1:
            return None, ()
        proposal_bytes, vote_bytes = cbor.decode(raw)
        proposal = decode_message(proposal_bytes, self.genesis.origin)
        votes = tuple(decode_message(v, self.genesis.origin) for v in vote_bytes)
        if (not isinstance(proposal, Proposal) or proposal.height != safety.height
                or proposal.block_hash != safety.locked_hash
                or not self._validate(proposal)):
            return None, ()
        return proposal.block, tuple(v for v in votes if isinstance(v, Vote))

    def _restart_replica(self) -> list[Event]:
        """A replica for the new set at the next height, from the last safety record
        made durable (signatures only in memory never left this node); and the events
        that start it."""
        saved = self._durable_safety
        self.replica = self._new_replica(SafetyState.decode(saved) if saved else None)
        self._replica_stale = False
        self._warn_if_key_retired()
        events: list[Event] = [Start(self.clock_ms)]
        if len(self.mempool):
            events.append(TransactionsAvailable())
        return events

    def _execute(self, action: Action) -> Event | None:
        if isinstance(action, PersistSafety):
            lock = action.lock
            self._durable_safety = action.state.encode()
            self._emit(SaveSafety(self._durable_safety, None if lock is None else cbor.encode(
                [encode_message(lock.proposal), [encode_message(v) for v in lock.prevotes]])))
        elif isinstance(action, Broadcast | SendTo):
            self._emit(action)
        elif isinstance(action, BuildProposal):
            return self._build_proposal(action)
        elif isinstance(action, ValidateProposal):
            proposal = action.proposal
            return ProposalValidated(proposal, self._validate(proposal),
                                     timely=self._built_by_proposer(proposal)
                                     and self._timely(proposal))
        elif isinstance(action, Commit):
            self._commit(action.block, action.certificate)
            if len(self.mempool):
                return TransactionsAvailable()
        else:
            invariant(False, f"unknown consensus action {action!r}")
        return None

    def _build_proposal(self, action: BuildProposal) -> Event:
        time_ms = max(action.time_ms, self.chain.head_time_ms + 1)
        # The state's limit when governance set one (every validator refuses more);
        # else the local default, smaller when others must re-execute the block in time.
        governed = governed_max_block_txs(self.chain.state)
        shared = len(self.validators.validators) > 1
        local = MAX_BLOCK_TXS_SHARED if shared else MAX_BLOCK_TXS
        candidates = self.mempool.peek(local if governed is None else governed)
        accepted, dropped = self.chain.select(candidates, time_ms,
                                                 self._committed_unless_pending)
        if dropped:
            self.mempool.remove([tx.tx_id for tx, _ in dropped])
            for tx, why in dropped:
                self._emit(Committed(tx.tx_id, None, None, None, why))
                self.dropped[tx.tx_id] = why
            while len(self.dropped) > MAX_DROPPED_REMEMBERED:
                self.dropped.popitem(last=False)
        prepared = self.chain.prepare(accepted, time_ms, self.signer.name)
        self._prepared[prepared.block_hash] = prepared
        return ProposalBuilt(action.height, action.round, _BlockRef(prepared))

    def _validate(self, proposal: Proposal) -> bool:
        """Re-execute a proposed block; keep it for the commit if it is valid."""
        block = proposal.block
        if block.block_hash in self._prepared:  # our own proposal, or seen before
            return True
        if not isinstance(block, WireBlock):
            return False
        try:
            prepared = self.chain.validate(block.header, block.txs,
                                           self._committed_unless_pending, self._verified_here)
        except Rejected as exc:
            log.warning("invalid block %s at height %d proposed by %s: %s",
                        block.block_hash.hex()[:16], block.height, block.header.proposer,
                        exc.reason)
            return False
        self.seen.remember(block.txs, verified=True)  # every signature in it was checked
        self._prepared[prepared.block_hash] = prepared
        return True

    def _built_by_proposer(self, proposal: Proposal) -> bool:
        """A new block names its proposer. A block re-proposed with a proof-of-lock
        (pol_round >= 0) was built by an earlier round's proposer: any validator may
        carry it, or a validator that restarted without it could never unlock. Like
        timeliness, a verdict on the proposal, not on the block."""
        block = proposal.block
        if (proposal.pol_round < 0 and isinstance(block, WireBlock)
                and block.header.proposer != proposal.proposer):
            log.warning("block %s at height %d: proposed by %s but built by %s; prevoting nil",
                        block.block_hash.hex()[:16], block.height, proposal.proposer,
                        block.header.proposer)
            return False
        return True

    def _timely(self, proposal: Proposal) -> bool:
        """Proposer-based timestamps (docs/adr/0006): a validator prevotes a new block
        only if its time is close to its own clock, so every committed block time was
        found plausible by a quorum, and no proposer can date a block far ahead or
        behind. A re-proposal with a proof-of-lock (pol_round >= 0) was found timely by
        a quorum already and is not judged again, or the lock could never be released."""
        if proposal.pol_round >= 0 or proposal.proposer == self.signer.name:
            return True
        if not isinstance(proposal.block, WireBlock):
            return True  # not a block from the wire (never happens for a peer's proposal)
        time_ms = proposal.block.header.time_ms
        late = CLOCK_PRECISION_MS + BLOCK_TIME_DELAY_MS + BLOCK_TIME_DELAY_MS * proposal.round // 10
        if self.clock_ms - late <= time_ms <= self.clock_ms + CLOCK_PRECISION_MS:
            return True
        log.warning("block %s at height %d proposed by %s: time %d is %+d ms from this "
                    "node's clock; prevoting nil", proposal.block.block_hash.hex()[:16],
                    proposal.height, proposal.proposer, time_ms, time_ms - self.clock_ms)
        return False

    def _verified_here(self, tx: SignedTx) -> bool:
        """Its signature was checked on this node, on the very same bytes: admitted to
        the mempool, or part of a proposal validated before."""
        pending = self.mempool.get(tx.tx_id)
        return (pending is not None and pending.encoded == tx.encoded) or (
            self.seen.is_verified(tx))

    def decode_peer(self, sender: str, data: bytes) -> PeerMessage:
        """Decode a peer's bytes (no effects: the transactions it carries are kept to
        decode and verify once). Bad bytes raise PeerError naming the peer."""
        try:
            message = decode_message(data, self.genesis.origin, self._known_tx)
        except Rejected as exc:
            raise PeerError(sender, exc.reason) from exc
        if isinstance(message, TxGossip):
            self.seen.remember(message.txs, verified=False)
        elif isinstance(message, Proposal) and isinstance(message.block, WireBlock):
            self.seen.remember(message.block.txs, verified=False)
        return message

    def _known_tx(self, encoded: bytes) -> SignedTx | None:
        return self.mempool.by_encoding(encoded) or self.seen.get(encoded)

    def _handle_peer(self, sender: str, message: PeerMessage, now_ms: int) -> None:
        """A decoded peer message; gossiped transactions must be signature-checked."""
        self.clock_ms = now_ms
        if isinstance(message, TxGossip):
            # Duplicates, replays and a full mempool are normal here: drop quietly.
            self._admit(message.txs, now_ms, from_peer=True)
            self._wake()
        elif isinstance(message, SyncRequest):
            self._answer_sync(sender, message.from_height)
        elif isinstance(message, HeadRequest):
            self._answer_sync(sender, self.chain.height + 1)  # no blocks, just the head
        elif isinstance(message, SyncBlocks):
            self._apply_synced(sender, message, now_ms)
        elif isinstance(message, StateSyncMessage):
            self._state_sync_message(sender, message, now_ms)
        else:
            self._note_peer_head(sender, message.height - 1)
            if self.mode is Mode.STATE_SYNC:
                pass  # catching up already; its blocks would collide with the import
            elif self._wants_state_sync(message.height - 1, now_ms):
                self._start_state_sync(sender, now_ms)  # far ahead: state sync
            elif message.height > self.chain.height + 1:
                self._ask_sync(sender, now_ms)  # it is ahead of us: fetch what we missed
            self._consensus(MessageReceived(sender, message))

    # --- block sync ---------------------------------------------------------------------
    # A node that fell behind asks one peer at a time for the committed blocks after its
    # head and trusts none of them: every block needs a commit certificate from a quorum
    # (checked against its header before any work) and must re-execute to that header.
    # The next batch is asked for before the current one is applied (`prefetch_sync`),
    # and while no block commits, peers are asked in turn (`poll_sync`; for their head
    # only while none is known to be ahead): so a node restarted in an idle network
    # still learns it is behind, and a peer that does not answer costs one
    # SYNC_PROBE_MS. A node far behind state-syncs instead (below, ADR 0009).
    def _poll_sync(self, now_ms: int) -> None:
        """On every tick."""
        if self.mode is Mode.STATE_SYNC:
            self._drive_state_sync(now_ms)
            return
        if self.mode is Mode.BLOCK_SYNC and self._caught_up():
            self.mode = Mode.CONSENSUS
        if self.chain.height != self._sync_seen_height:  # progress: nothing to ask yet
            self._sync_seen_height = self.chain.height
            self._sync_asked_at = now_ms
            return
        # Until a peer has told us its head, probe more often: at start-up the first
        # probe often goes out before the connections are up, and is lost.
        probe_ms = SYNC_PROBE_MS if self._heads_heard else STARTUP_PROBE_MS
        if now_ms - self._sync_asked_at < probe_ms or not self._peer_names:
            return
        peer = self._peer_names[self._sync_turn % len(self._peer_names)]
        self._sync_turn += 1
        if max(self._peer_heads.values(), default=0) <= self.chain.height:
            # Nobody is known to be ahead: ask every peer for its head only. A node far
            # behind would otherwise decode a batch of blocks that state sync then
            # skips, and state sync needs f + 1 peers' word (`_wants_state_sync`).
            self._sync_asked_at = now_ms
            self._effects.extend(Reply(name, HeadRequest()) for name in self._peer_names)
            return
        self._ask_sync(peer, now_ms, force=True)

    def _ask_sync(self, peer: str, now_ms: int, from_height: int | None = None, *,
                  force: bool = False) -> None:
        wanted = self.chain.height + 1 if from_height is None else from_height
        if not force and wanted <= self._sync_asked_for and (
                now_ms - self._sync_asked_at < SYNC_PROBE_MS):
            return  # asked already and the answer may be on its way
        self._sync_asked_for = wanted
        self._sync_asked_at = now_ms
        if self.mode is Mode.CONSENSUS:
            self.mode = Mode.BLOCK_SYNC
        self._emit(Reply(peer, SyncRequest(wanted)))

    def _prefetch_sync(self, peer: str, message: SyncBlocks, now_ms: int) -> None:
        """Before applying a full batch, ask the same peer for the blocks after it."""
        blocks = message.blocks
        if self.mode is Mode.STATE_SYNC or self._wants_state_sync(message.head, now_ms):
            return  # state sync takes over
        if (len(blocks) == MAX_SYNC_BLOCKS and blocks[0].header.height == self.chain.height + 1
                and message.head > blocks[-1].header.height):
            self._ask_sync(peer, now_ms, blocks[-1].header.height + 1)

    def _answer_sync(self, peer: str, from_height: int) -> None:
        blocks: list[tuple[BlockHeader, tuple[bytes, ...], bytes]] = []
        size = 0
        for height in range(from_height, min(self.chain.height, from_height +
                                             MAX_SYNC_BLOCKS - 1) + 1):
            stored = self.reader.block(height)
            size += len(stored.txs) + len(stored.certificate) + 1024
            if blocks and size > MAX_PEER_MESSAGE_BYTES:
                break
            txs = tuple(cbor.array_items(stored.txs))
            blocks.append((stored.header, txs, stored.certificate))
        self._emit(Reply(peer, SyncAnswer(tuple(blocks), self.chain.height)))

    def _apply_synced(self, peer: str, message: SyncBlocks, now_ms: int) -> None:
        """Commit the blocks a peer sent, then resume consensus at the new height."""
        self._note_peer_head(peer, message.head)
        if self.mode is Mode.STATE_SYNC:
            return  # its blocks would collide with what state sync imports
        if self._wants_state_sync(message.head, now_ms):
            self._start_state_sync(peer, now_ms)
            return
        if (not message.blocks and self._state_sync_enabled
                and now_ms >= self._state_sync_after_ms
                and message.head - self.chain.height >= self._sync_policy.min_blocks):
            # Far ahead by one peer's word (a head answer): ask the others for theirs
            # before fetching blocks, so that f + 1 answers can start a state sync.
            # Block sync still follows from `poll_sync` if they do not answer. Once per
            # SYNC_PROBE_MS: their answers are head answers too, and answering each
            # with a round of requests grew without bound (found by the simulator, a
            # node behind while a state sync retry waited, `_state_sync_after_ms`).
            if now_ms - self._heads_asked_at >= SYNC_PROBE_MS:
                self._heads_asked_at = now_ms
                self._effects.extend(Reply(name, HeadRequest()) for name in self._peer_names
                                     if name != peer)
            return
        applied = False
        for block in message.blocks:
            if block.header.height != self.chain.height + 1:
                continue  # already have it (or a gap: asked again below)
            try:
                certificate = CommitCertificate.decode(block.certificate)
                if certificate.block_hash != block.header.block_hash:
                    raise ProofError("its certificate is for another block")
                certificate.verify(self.validators,
                                   block.header.checkpoint_body(self.genesis.origin))
                # A quorum signed this header, so at least one honest validator checked
                # every signature in it before voting: they are not checked again here.
                prepared = self.chain.validate(block.header, block.txs, self._committed,
                                               already_verified=_certified)
            except MissingContractVersion:
                raise  # halts, after the blocks before it (`step`)
            except Rejected as exc:
                raise PeerError(peer, f"synced block {block.header.height}: {exc.reason}") from exc
            self._prepared[prepared.block_hash] = prepared
            self._commit(_BlockRef(prepared), certificate)
            applied = True
        if applied:
            self.replica = self._new_replica(self.replica.safety_state)
            self._consensus(Start(now_ms))
            self._wake()
        if message.head > self.chain.height:
            self._ask_sync(peer, now_ms)  # there is more
        elif self.mode is Mode.BLOCK_SYNC and self._caught_up():
            self.mode = Mode.CONSENSUS

    def _caught_up(self) -> bool:
        return max(self._peer_heads.values(), default=0) <= self.chain.height

    def _note_peer_head(self, peer: str, height: int) -> None:
        if peer in self._peer_heads:  # validators only: the map stays bounded
            self._heads_heard = True
            self._peer_heads[peer] = max(self._peer_heads[peer], height)

    # --- state sync (ADR 0009) ---------------------------------------------------------
    # A node STATE_SYNC_MIN_BLOCKS or more behind fetches a peer's snapshot offer (height
    # H), the certified headers up to H, the log entries up to H and the state at H,
    # verifying everything (`ledger.statesync`), imports it beside its chain and then
    # switches to it in one transaction; block sync and consensus go on from H.
    def _wants_state_sync(self, peer_head: int, now_ms: int) -> bool:
        """Far enough behind by the word of at least f + 1 validators (so of at least
        one honest one), not of `peer_head`'s sender alone: a peer lying about its head
        must not send an up-to-date validator into a state sync while consensus goes on."""
        # On every consensus message: the one-claim test first, the sort only then.
        return (self.mode in (Mode.CONSENSUS, Mode.BLOCK_SYNC) and self._state_sync_enabled
                and now_ms >= self._state_sync_after_ms
                and peer_head - self.chain.height >= self._sync_policy.min_blocks
                and self._head_of_weak_quorum() - self.chain.height
                >= self._sync_policy.min_blocks)

    def _head_of_weak_quorum(self) -> int:
        """The greatest height that f + 1 validator peers all claim to have reached."""
        claims = sorted(self._peer_heads.values(), reverse=True)
        needed = self.validators.weak_quorum
        return claims[needed - 1] if len(claims) >= needed else 0

    def _start_state_sync(self, peer: str, now_ms: int) -> None:
        # The importer starts before the session's first request: it cannot run
        # without it (if it fails, the shell answers StoreFailed: abandoned).
        self._emit(PrepareImports())
        # Certificates are checked against the set signing the block after our head,
        # from our own state (ADR 0011), and only while the headers name that same set.
        validators_hash = validator_sets.next_validators_hash(self.chain.state, self.genesis)
        tip = Tip(self.chain.height, self.chain.head_hash, self.chain.head_time_ms,
                  self.chain.frontier.size, validators_hash)
        self._state_sync = StateSync(
            self.chain.chain_id, self.genesis.origin, list(self._peer_names), tip,
            LogFeed(self.chain.frontier.copy(), IndexRules(self.chain.registry)),
            self.validators_for_height(tip.height + 1),
            validators_hash)
        log.info("%s claims height %d, %d blocks ahead: state sync", peer,
                 self._peer_heads.get(peer, 0), self._peer_heads.get(peer, 0) - tip.height)
        self.mode = Mode.STATE_SYNC
        self._replies(self._state_sync.start(peer, self._peer_heads.get(peer, 0), now_ms))

    def _replies(self, outgoing: Sequence[tuple[str, OutgoingMessage]]) -> None:
        self._effects.extend(Reply(peer, message) for peer, message in outgoing)

    def _drive_state_sync(self, now_ms: int) -> None:
        session = self._state_sync
        if session is None or self._finishing:
            return
        if session.done:
            self._finish_state_sync(session)
        elif session.stuck:
            self._abandon_state_sync(now_ms, "no peer left to ask, or a validator-set "
                                             "change in its range")
        elif (stall := session.stalled(now_ms)) is not None:
            self._abandon_state_sync(now_ms, stall)
        else:
            self._replies(session.pump(now_ms))

    def _state_sync_message(self, peer: str, message: StateSyncMessage, now_ms: int) -> None:
        if isinstance(message, SnapshotRequest | HeadersRequest | EntriesRequest | StateRequest):
            self._serve_state_sync(peer, message)
            return
        session = self._state_sync
        if session is None or self._finishing:
            return  # a late answer to a state sync that ended
        try:
            if isinstance(message, SnapshotOffer):
                session.on_offer(peer, message, self.chain.height + 1)
            elif isinstance(message, Headers):
                session.on_headers(peer, message)
            elif isinstance(message, Entries):
                session.on_entries(peer, message, self._importer)
            else:
                session.on_state(peer, message, self._importer)
        finally:  # a bad answer's request goes to the next peer at once
            self._drive_state_sync(now_ms)

    def import_blocks(self, blocks: list[tuple[ImportedBlock, bytes, str]]) -> None:
        if blocks:
            self._emit(ImportBlocks(tuple(blocks)))

    def import_state(self, records: tuple[tuple[bytes, bytes], ...]) -> None:
        self._emit(ImportState(records))

    @property
    def _importer(self) -> NodeCore:
        """Where the session's verified rows go (`node.statesync.Importer`): effects."""
        return self

    def _finish_state_sync(self, session: StateSync) -> None:
        """Everything verified: the shell switches the store over in one transaction
        and answers StateSyncStored (then the head moves) or StoreFailed."""
        target = session.target
        assert target is not None
        assert session.assembly is not None
        state = session.assembly.tree  # built from the verified chunks as they came
        invariant(state.root() == target.state_root, "verified state chunks miss the root")
        self._finishing = True
        self._emit(FinishStateSync(blocks=target.height - session.base_height,
                                   entries=target.log_size - session.base_log_size,
                                   records=len(state), state=state))

    def _state_sync_stored(self, now_ms: int) -> None:
        session = self._state_sync
        invariant(session is not None and self._finishing,
                  "a state sync stored that this node never finished")
        assert session is not None and session.assembly is not None
        target = session.target
        assert target is not None
        # The store now keeps the verified tree's nodes: read them from there, and let
        # the assembly's copy in memory go (ADR 0021).
        records = len(session.assembly.tree)
        state = StateTree.stored(self.reader.state_node, self.reader.get,
                                 self.reader.state_size(),
                                 self._state_cache_nodes)
        invariant(state.root() == target.state_root and len(state) == records,
                  "the state sync's tree is not what the store keeps")
        self.chain = Chain(self.genesis, self.chain.registry, target, state, session.frontier)
        head = self.reader.head()
        invariant(head is not None and head.header == target, "state sync head not stored")
        assert head is not None
        self.checkpoint = head.checkpoint
        self._state_sync = None
        self._finishing = False
        self.mode = Mode.CONSENSUS
        self._prepared.clear()
        self._settle_imported()
        log.info("state sync done: height %d, %d log entries, %d state records",
                 target.height, target.log_size, records)
        self._emit(CheckpointCommitted(target.height, target.block_hash, head.checkpoint))
        self._note_validator_change()
        for event in self._restart_replica():
            self._consensus(event)
        self._ask_sync(session.offer_peer, now_ms, force=True)  # blocks after H, if any

    def _settle_imported(self) -> None:
        """Transactions admitted while a state sync ran, that the imported blocks
        committed: out of the mempool, and their waiters told where they committed (a
        later proposal would otherwise drop them as replays, and a waiter would hear
        "dropped" for a committed transaction; found by the node-level simulator)."""
        for tx_id in self._committed(self.mempool.ids()):
            found = self.reader.entry_by_tx(tx_id)
            invariant(found is not None, "a committed transaction without its entry")
            assert found is not None
            log_index, height, entry = found
            self.mempool.remove([tx_id])
            self._emit(Committed(tx_id, log_index, height, LogEntry.decode(entry).result))

    def _abandon_state_sync(self, now_ms: int, reason: str) -> None:
        """Drop an unfinished state sync (no peer left to ask, no progress for
        STATE_SYNC_STALL_MS, a validator-set change in its range, or its writes failed);
        block sync goes on, and state sync may be tried again later."""
        if self.mode is not Mode.STATE_SYNC:
            return  # ended already (a late failure of its writes)
        log.warning("state sync abandoned (%s) at %s; block sync continues", reason,
                    self._state_sync.status() if self._state_sync else None)
        self._emit(AbandonStateSync())
        self._state_sync = None
        self._finishing = False
        self.mode = Mode.CONSENSUS
        self._state_sync_after_ms = now_ms + STATE_SYNC_RETRY_MS

    def _serve_state_sync(self, peer: str, message: SnapshotRequest | HeadersRequest
                          | EntriesRequest | StateRequest) -> None:
        answer: OutgoingMessage
        if isinstance(message, SnapshotRequest):
            snapshot = self._snapshot_to_offer()
            answer = SnapshotOffer(snapshot.offer() if snapshot else None)
        elif isinstance(message, HeadersRequest):
            high = min(message.to_height, self.chain.height,
                       message.from_height + MAX_SYNC_HEADERS - 1)
            answer = Headers(tuple(self.reader.headers(message.from_height, high)))
        elif isinstance(message, EntriesRequest):
            answer = self._entries_answer(message)
        else:
            snapshot = self._snapshot
            if (snapshot is None or snapshot.height != message.height) and (
                    message.height == self.chain.height):
                snapshot = self._take_snapshot()
            records = (tuple(snapshot.chunk(message.chunk)) if snapshot is not None
                       and snapshot.height == message.height else None)
            answer = StateChunk(message.height, message.chunk, records)
        self._emit(Reply(peer, answer))

    def _snapshot_to_offer(self) -> Snapshot | None:
        """A snapshot of the head (one at a time: it holds the whole state in memory).
        Always of the head: a syncing node fetches entries up to the head a peer
        claimed before the offer arrives, so an offer must not be older."""
        if self.chain.height == 0:
            return None
        kept = self._snapshot
        if kept is not None and kept.height == self.chain.height:
            return kept
        return self._take_snapshot()

    def _take_snapshot(self) -> Snapshot | None:
        self._snapshot = make_snapshot(self.chain.height, self.reader.iter_state(),
                                       tree=self.chain.state)
        return self._snapshot

    def _entries_answer(self, message: EntriesRequest) -> Entries:
        high = min(message.to_height, self.chain.height, message.from_height + MAX_SYNC_HEADERS - 1)
        blocks: list[tuple[bytes, ...]] = []
        size = 0
        for header, _ in self.reader.headers(message.from_height, high):
            entries = self.reader.entries_between(header.log_size - header.tx_count,
                                                 header.log_size)
            size += sum(len(entry) for entry in entries)
            if blocks and size > MAX_ENTRIES_ANSWER_BYTES:
                break
            blocks.append(tuple(entries))
        return Entries(message.from_height, tuple(blocks))

    @property
    def state_sync(self) -> StateSync | None:
        """The state sync session, while the mode is STATE_SYNC."""
        return self._state_sync

    @property
    def peer_heads(self) -> dict[str, int]:
        """The heights validator peers claim (a claim, not a proof)."""
        return self._peer_heads

    def sync_status(self) -> dict[str, Any]:
        """How far behind this node is, by what its peers claim (a claim, not a proof:
        blocks are trusted only with their certificates)."""
        best = max(self._peer_heads.values(), default=0)
        behind = max(0, best - self.chain.height)
        status: dict[str, Any] = {"peer_height": max(best, self.chain.height),
                                  "behind_blocks": behind, "catching_up": behind > 1}
        status["mode"] = self.mode.value
        if self._state_sync is not None and self._state_sync.offer is not None:
            status["state_sync"] = self._state_sync.status()  # fetched of the totals
        return status

    def _commit(self, block: BlockLike, certificate: CommitCertificate) -> None:
        if self.mode is Mode.STATE_SYNC:
            # The chain moved on by consensus: the session's staged rows start where
            # this block does. Start over later (ADR 0009).
            self._abandon_state_sync(self.clock_ms, "a block committed by consensus")
        prepared = self._prepared.get(block.block_hash)
        invariant(prepared is not None, "commit of a block this node never executed")
        assert prepared is not None
        note = self._quorum_checkpoint(prepared, certificate)
        self._emit(CommitBlock(prepared, certificate.encode(), note))
        self._unflushed.update(tx.tx_id for tx in prepared.txs)
        self.chain.advance(prepared)
        self.blocks_committed += 1
        self._note_validator_change()
        self.checkpoint = note
        self._prepared.clear()
        self.mempool.remove([tx.tx_id for tx in prepared.txs])
        first = prepared.first_log_index
        self._effects.extend(
            Committed(tx.tx_id, first + i, prepared.height, result)
            for i, (tx, result) in enumerate(zip(prepared.txs, prepared.results, strict=True))
        )
        self._emit(CheckpointCommitted(prepared.height, prepared.block_hash, note))

    def _quorum_checkpoint(self, prepared: PreparedBlock, certificate: CommitCertificate) -> str:
        body = prepared.checkpoint_body.decode()
        signatures = []
        signers = self.validators  # the set of this height: the commit changes it after
        for vote in certificate.precommits:
            info = signers.get(vote.voter)
            invariant(info is not None, f"precommit of {vote.voter!r}, not a validator")
            assert info is not None
            verifier = _verifier(info.name, info.public_key)
            invariant(vote.checkpoint_signature is not None, "precommit without checkpoint sig")
            assert vote.checkpoint_signature is not None
            signatures.append(NoteSignature(vote.voter, verifier.key_id, vote.checkpoint_signature))
        signatures.sort(key=lambda s: s.name)
        return Note(body, tuple(signatures)).format()

    # --- submit ------------------------------------------------------------------------
    def _admit(self, txs: Sequence[SignedTx], now_ms: int, *, from_peer: bool = False
               ) -> list[Rejected | None]:
        """Admit decoded, signature-checked transactions to the mempool; each gets None
        or its typed rejection. `now_ms` is the node's clock: expiry is judged against
        the later of it and the head's block time (an idle chain's head may be old)."""
        time_ms = max(now_ms, self.chain.head_time_ms)
        already = self._committed([tx.tx_id for tx in txs])
        outcome: list[Rejected | None] = []
        gossip: list[SignedTx] = []
        for tx in txs:
            try:
                if tx.body.chain_id != self.chain.chain_id:
                    raise TxRejected("transaction is for another chain", code="wrong_chain")
                if tx.tx_id in already:
                    raise TxRejected("transaction already committed", code="replay")
                check_tx_time(tx, time_ms)
                # Same rule as execution, against the committed head: a client learns
                # at once (403) that its key may not call this method.
                self._check_permission(tx, time_ms)
                self.mempool.add(tx)
                outcome.append(None)
                if not from_peer and len(self.validators.validators) > 1:
                    gossip.append(tx)
            except Rejected as exc:
                outcome.append(exc)
        if gossip:
            self._emit(Gossip(tuple(gossip)))
        return outcome

    def _check_permission(self, tx: SignedTx, time_ms: int) -> None:
        """The chain's permission check; a contract version this software lacks halts
        the node (its next step raises) and refuses the transaction meanwhile."""
        if self.halted is None:
            try:
                self.chain.check_permission(tx, time_ms)
                return
            except MissingContractVersion as exc:
                self._note_halt(exc)
        assert self.halted is not None
        raise Busy(f"this node has stopped: {self.halted}", retry_after_s=60)

    def _wake(self) -> None:
        if len(self.mempool):
            self._consensus(TransactionsAvailable())


class _BlockRef:
    """A block this node built: what consensus needs (height, hash, checkpoint) and
    what a proposal carries to peers (header, transactions)."""

    def __init__(self, prepared: PreparedBlock) -> None:
        self.height = prepared.height
        self.block_hash = prepared.block_hash
        self.checkpoint_body = prepared.checkpoint_body
        self.header = prepared.header
        self.txs = prepared.txs


def _certified(tx: SignedTx) -> bool:
    return True


@functools.lru_cache(maxsize=256)
def _verifier(name: str, public_key: bytes) -> Verifier:
    """The note verifier of a validator key (its key id is a hash: computed once)."""
    return Verifier.of(name, public_key)


def _load_chain(genesis: Genesis, store: StorageReader, registry: Registry,
                cache_nodes: int) -> Chain:
    """Rebuild the in-memory head from the store, checking what was read."""
    head = store.head()
    # Read through a bounded cache from the store, which keeps the tree's nodes: memory
    # does not grow with the state, and a start does not rehash it (ADR 0021).
    state = StateTree.stored(store.state_node, store.get, store.state_size(), cache_nodes)
    frontier = (merkle.CompactRange.from_nodes(head.header.log_size, store)
                if head else merkle.CompactRange())
    # Chain's constructor checks the rebuilt roots against the stored header (or, before
    # block 1, the state against the genesis state).
    return Chain(genesis, registry, head.header if head else None, state, frontier)
