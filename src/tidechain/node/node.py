"""A node: the node core (`node.core.NodeCore`) and the store it runs on.

`Node` is the synchronous half of the shell (ADR 0020). It feeds the core its inputs,
carries out the core's writes on the store, in order, and keeps the other effects
(messages for peers, outcomes for waiters, committed checkpoints) in one ordered queue,
`effects`, for whoever does the I/O: the asyncio runtime (`node.runtime`), the
simulator (`sim/nodes.py`) or a test. It decides nothing itself.

The read-only queries the API serves are a plain object over the store and the core,
`views` (`node.queries.ChainQueries`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tidechain.consensus import CommitCertificate, ConsensusParams, Event, Replica, ValidatorSet
from tidechain.contracts import cert_expiry, default_registry
from tidechain.core.errors import InvariantViolation, PeerError, Rejected, invariant
from tidechain.core.note import Signer
from tidechain.ledger.chain import Chain, PreparedBlock, genesis_state
from tidechain.ledger.runtime import MissingContractVersion, Registry
from tidechain.ledger.state_tree import NODE_CACHE_NODES
from tidechain.ledger.types import Genesis, SignedTx
from tidechain.node.core import Instruments, Mode, NodeCore, SyncPolicy
from tidechain.node.effects import (
    STATE_SYNC_WRITES,
    AbandonStateSync,
    Admitted,
    CertifiedBlock,
    CommitBlock,
    Committed,
    ConsensusEvent,
    Effect,
    FinishStateSync,
    Halted,
    ImportBlocks,
    ImportState,
    NodeInput,
    PeerFault,
    PeerInput,
    PollSync,
    Prefetch,
    PrepareImports,
    SaveSafety,
    StateSyncStored,
    StoreFailed,
    Submit,
    Wake,
    Write,
)
from tidechain.node.mempool import Mempool
from tidechain.node.queries import ChainQueries
from tidechain.node.seen import SeenTxs
from tidechain.node.wire import PeerMessage, SyncBlocks, TxGossip
from tidechain.storage.imports import ImportFailed
from tidechain.storage.protocol import NodeStorage

__all__ = ["Committed", "Mode", "Node", "SyncPolicy"]

log = logging.getLogger("tidechain.node")


class Node:
    def __init__(
        self,
        genesis: Genesis,
        store: NodeStorage,
        signer: Signer,
        *,
        params: ConsensusParams | None = None,
        mempool: Mempool | None = None,
        cert_warn_days: int = cert_expiry.DEFAULT_WARN_DAYS,
        registry: Registry | None = None,
        sync: SyncPolicy | None = None,
        instruments: Instruments | None = None,
        state_cache_nodes: int = NODE_CACHE_NODES,
    ) -> None:
        self.genesis = genesis
        self.store: NodeStorage = store
        self.signer = signer
        registry = registry if registry is not None else default_registry()
        store.init_genesis(genesis, genesis_state(genesis, registry))
        self.core = NodeCore(genesis, store, signer, registry, safety=store.load_safety(),
                             lock=store.load_lock(), params=params, mempool=mempool,
                             sync=sync, instruments=instruments,
                             state_cache_nodes=state_cache_nodes)
        self.views = ChainQueries(self.core, store, cert_warn_days)
        # What the core asked for besides writes, in order, for the I/O half to take.
        self.effects: list[Effect] = []

    # --- the shell's half: inputs in, writes carried out --------------------------------
    def execute(self, input: NodeInput) -> None:
        """One core step: its writes done on the store in order, the rest queued in
        `effects`. A halt raises MissingContractVersion once the effects before it are
        done (the runtime's loop then ends the process); a misbehaving peer raises
        PeerError naming it, once the step's effects are done."""
        pending: list[NodeInput] = [input]
        fault: PeerError | None = None
        while pending:
            effects = self.core.step(pending.pop(0))
            failed = False
            for effect in effects:
                # Not a write first: a block's commit brings one `Committed` per
                # transaction, and each used to pass every write's isinstance check.
                if not isinstance(effect, Write):
                    if isinstance(effect, Halted):
                        raise effect.reason
                    if isinstance(effect, PeerFault):
                        fault = effect.error
                    else:
                        self.effects.append(effect)
                    continue
                if failed and isinstance(effect, STATE_SYNC_WRITES):
                    continue  # the state sync they belong to is abandoned (next input)
                try:
                    answer = self._write(effect)
                except ImportFailed as exc:  # the import process, not a peer
                    failed = True
                    pending.append(StoreFailed(str(exc), self.core.clock_ms))
                    continue
                if answer is not None:
                    pending.append(answer)
        if fault is not None:
            raise fault

    def _write(self, effect: Effect) -> NodeInput | None:
        store = self.store
        if isinstance(effect, SaveSafety):
            store.save_safety(effect.state, effect.lock)
        elif isinstance(effect, CommitBlock):
            try:
                store.commit_block(effect.prepared, effect.certificate, effect.checkpoint)
            except InvariantViolation:
                raise
            except Exception as exc:
                # The core has already advanced past this block (ADR 0020) and its
                # tree reads the block's nodes and values from memory until the next
                # step (ADR 0021, 0023): a node whose memory is ahead of its store must
                # stop, and a restart resumes from what the store holds. On the peer
                # path only an InvariantViolation stops the node (serve.py).
                raise InvariantViolation(
                    f"block {effect.prepared.header.height} was committed but could not "
                    f"be written: {type(exc).__name__}: {exc}") from exc
        elif isinstance(effect, PrepareImports):
            store.prepare_imports()
        elif isinstance(effect, ImportBlocks):
            store.import_blocks(effect.blocks)
        elif isinstance(effect, ImportState):
            store.import_state(effect.records)
        elif isinstance(effect, FinishStateSync):
            store.finish_state_sync(blocks=effect.blocks, entries=effect.entries,
                                    records=effect.records, tree=effect.state)
            return StateSyncStored(self.core.clock_ms)
        elif isinstance(effect, AbandonStateSync):
            store.abandon_state_sync()
        return None

    def take_effects(self) -> list[Effect]:
        """The queued effects, oldest first; the queue is left empty."""
        effects, self.effects = self.effects, []
        return effects

    # --- inputs, by name ----------------------------------------------------------------
    def step(self, event: Event) -> None:
        """A consensus event (`Start`, `Tick`, `TransactionsAvailable`)."""
        self.execute(ConsensusEvent(event))

    def poll_sync(self, now_ms: int) -> None:
        """Called on every tick by the runtime."""
        self.execute(PollSync(now_ms))

    def wake(self) -> None:
        """Tell consensus that transactions are pending. The runtime calls it after
        answering the submitter, so a block is never built inside a submit request."""
        if len(self.core.mempool):
            self.execute(Wake())

    def admit(self, txs: Sequence[SignedTx], now_ms: int, *, from_peer: bool = False
              ) -> list[Rejected | None]:
        """Admit decoded, signature-checked transactions to the mempool; each gets None
        or its typed rejection. `now_ms` is the node's clock: expiry is judged against
        the later of it and the head's block time (an idle chain's head may be old)."""
        before = len(self.effects)
        self.execute(Submit(tuple(txs), now_ms, from_peer))
        answers = [e for e in self.effects[before:] if isinstance(e, Admitted)]
        invariant(len(answers) == 1, "a submit without its one answer")
        self.effects = [e for e in self.effects if not isinstance(e, Admitted)]
        return list(answers[0].outcomes)

    def decode_peer(self, sender: str, data: bytes) -> PeerMessage:
        return self.core.decode_peer(sender, data)

    def handle_peer(self, sender: str, message: PeerMessage, now_ms: int) -> None:
        """A decoded peer message; gossiped transactions must be signature-checked."""
        self.execute(PeerInput(sender, message, now_ms))

    def receive(self, sender: str, data: bytes, now_ms: int) -> None:
        """A message from a peer. Bad bytes raise PeerError naming the peer; gossiped
        signatures are checked here, in line (the runtime uses verify threads)."""
        message = self.decode_peer(sender, data)
        try:
            if isinstance(message, TxGossip):
                for tx in message.txs:  # a peer's word is not a signature check
                    tx.verify_signature()
        except Rejected as exc:
            raise PeerError(sender, exc.reason) from exc
        self.handle_peer(sender, message, now_ms)

    def prefetch_sync(self, peer: str, message: SyncBlocks, now_ms: int) -> None:
        """Before applying a full batch, ask the same peer for the blocks after it."""
        self.execute(Prefetch(peer, message, now_ms))

    def commit_certified(self, prepared: PreparedBlock, certificate: CommitCertificate) -> None:
        """Commit an executed block whose certificate the caller has verified (tools
        that build a certified chain)."""
        self.execute(CertifiedBlock(prepared, certificate))

    # --- what the core holds, read-only for the shell -----------------------------------
    @property
    def chain(self) -> Chain:
        return self.core.chain

    @property
    def replica(self) -> Replica:
        return self.core.replica

    @property
    def validators(self) -> ValidatorSet:
        return self.core.validators

    @property
    def mempool(self) -> Mempool:
        return self.core.mempool

    @property
    def seen(self) -> SeenTxs:
        return self.core.seen

    @property
    def params(self) -> ConsensusParams:
        return self.core.params

    @property
    def mode(self) -> Mode:
        return self.core.mode

    @property
    def halted(self) -> MissingContractVersion | None:
        return self.core.halted

    @property
    def dropped(self) -> dict[bytes, Rejected]:
        return self.core.dropped

    @property
    def blocks_committed(self) -> int:
        return self.core.blocks_committed

    def validators_for_height(self, height: int) -> ValidatorSet:
        return self.core.validators_for_height(height)

    def chain_peers(self) -> dict[str, tuple[str, int]]:
        return self.core.chain_peers()

    def sync_status(self) -> dict[str, Any]:
        return self.core.sync_status()
