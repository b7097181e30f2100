"""The state transition: a block of transactions applied to the chain's head.

Pure: the head (state tree, log frontier, last header) is held in memory; reading the
set of already-committed transaction ids is the only outside knowledge, passed in as a
function. Storage persists a `PreparedBlock` in one transaction, then `Chain.advance`
moves the in-memory head to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tidechain.core import merkle
from tidechain.core.errors import ContractError, Rejected, TxRejected, invariant
from tidechain.core.limits import MAX_BLOCK_TXS, MAX_TX_VALIDITY_MS
from tidechain.ledger.runtime import (
    CallContext,
    Forbidden,
    Overlay,
    Registry,
    StateReader,
    governed_param,
)
from tidechain.ledger.state_tree import StagedBatch, StateTree
from tidechain.ledger.types import (
    BlockHeader,
    Genesis,
    LogEntry,
    SignedTx,
    TxResult,
)
from tidechain.ledger.validators import next_validators_hash

ZERO_HASH = bytes(32)

MAX_BLOCK_TXS_PARAM = "consensus.max_block_txs"
"""The governance parameter that bounds a block's transactions (1..MAX_BLOCK_TXS)."""

CommittedFilter = Callable[[Sequence[bytes]], set[bytes]]
"""Given tx ids, returns those already committed (replay protection)."""


@dataclass(frozen=True)
class PreparedBlock:
    """A block executed against the current head, not yet committed."""

    header: BlockHeader
    txs: tuple[SignedTx, ...]
    entries: tuple[bytes, ...]  # encoded LogEntry per tx, in order
    results: tuple[TxResult, ...]
    writes: dict[bytes, bytes | None]
    index_entries: tuple[tuple[str, bytes, int], ...]  # (index name, key, log index)
    log_nodes: tuple[tuple[int, int, bytes], ...]
    staged_state: StagedBatch = field(repr=False)
    frontier_after: merkle.CompactRange = field(repr=False)
    origin: str = ""

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash

    @property
    def checkpoint_body(self) -> bytes:
        return self.header.checkpoint_body(self.origin)

    @property
    def first_log_index(self) -> int:
        return self.header.log_size - len(self.txs)


def check_tx_static(tx: SignedTx, chain_id: bytes) -> None:
    """Checks that need no state: chain id, signature. Raises a Rejected subclass."""
    if tx.body.chain_id != chain_id:
        raise TxRejected("transaction is for another chain", code="wrong_chain")
    tx.verify_signature()


def check_tx_time(tx: SignedTx, time_ms: int) -> None:
    if tx.body.expires_ms < time_ms:
        raise TxRejected("transaction expired", code="expired")
    if tx.body.expires_ms > time_ms + MAX_TX_VALIDITY_MS:
        raise TxRejected(
            f"expiry is more than {MAX_TX_VALIDITY_MS // 1000} s ahead of block time",
            code="expiry_too_far",
        )


def governed_max_block_txs(state: StateReader) -> int | None:
    """The block-size limit set by governance in `state`, None if never set."""
    value = governed_param(state, MAX_BLOCK_TXS_PARAM)
    invariant(value is None or (isinstance(value, int) and 0 < value <= MAX_BLOCK_TXS),
              f"corrupt {MAX_BLOCK_TXS_PARAM} in state")
    return None if value is None else int(value)


def genesis_state(genesis: Genesis, registry: Registry) -> dict[bytes, bytes]:
    """The world state before block 1 (the founding organisations and members): what
    the store holds, and the state tree starts from, before any block."""
    return registry.genesis_state(genesis)


def tx_root(txs: Iterable[SignedTx]) -> bytes:
    return merkle.root_from_leaf_hashes([merkle.leaf_hash(tx.encode()) for tx in txs])


class Chain:
    """The chain head in memory."""

    def __init__(
        self,
        genesis: Genesis,
        registry: Registry,
        head: BlockHeader | None,
        state: StateTree,
        frontier: merkle.CompactRange,
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.origin = genesis.origin
        self.registry = registry
        self.head = head
        self.state = state
        self.frontier = frontier
        if head is not None:
            invariant(head.log_size == frontier.size, "log frontier does not match head")
            invariant(head.log_root == frontier.root(), "log root does not match head")
            invariant(head.state_root == state.root(), "state root does not match head")
        else:
            invariant(frontier.size == 0, "a log without blocks")
            genesis_root = StateTree.from_items(genesis_state(genesis, registry).items()).root()
            invariant(state.root() == genesis_root, "state root does not match the genesis")

    @classmethod
    def at_genesis(cls, genesis: Genesis, registry: Registry) -> Chain:
        """A chain with no block yet, its state the genesis state."""
        state = StateTree.from_items(genesis_state(genesis, registry).items())
        return cls(genesis, registry, None, state, merkle.CompactRange())

    @property
    def height(self) -> int:
        return 0 if self.head is None else self.head.height

    @property
    def head_time_ms(self) -> int:
        return self.genesis.time_ms if self.head is None else self.head.time_ms

    @property
    def head_hash(self) -> bytes:
        return ZERO_HASH if self.head is None else self.head.block_hash

    @property
    def max_block_txs(self) -> int:
        """Transactions the next block may hold: the limit in the state after the head
        (a value governance applied in block h counts from h + 1), else MAX_BLOCK_TXS.
        Every validator refuses a larger block."""
        governed = governed_max_block_txs(self.state)
        return MAX_BLOCK_TXS if governed is None else governed

    def check_permission(self, tx: SignedTx, time_ms: int) -> None:
        """Admission's permission check, against the committed head at `time_ms`:
        raises Forbidden (a 403) if the sender may not call the method. An unknown
        contract or method is left to execution, which commits it as failed."""
        try:
            self.registry.check_caller(self.state, tx.body.sender, tx.body.contract,
                                       tx.body.method, time_ms, self.height + 1)
        except Forbidden:
            raise
        except ContractError:
            return

    def select(
        self, candidates: Sequence[SignedTx], time_ms: int, committed: CommittedFilter
    ) -> tuple[list[SignedTx], list[tuple[SignedTx, Rejected]]]:
        """The proposer's filter: which candidates may go into a block at `time_ms`.
        Returns (accepted, dropped with the reason). Signatures were checked on
        admission to the mempool, so they are not checked again here."""
        already = committed([tx.tx_id for tx in candidates])
        accepted: list[SignedTx] = []
        dropped: list[tuple[SignedTx, Rejected]] = []
        seen: set[bytes] = set()
        limit = self.max_block_txs
        for tx in candidates:
            if len(accepted) >= limit:
                break
            if tx.tx_id in already or tx.tx_id in seen:
                dropped.append((tx, TxRejected("transaction already committed", code="replay")))
                continue
            try:
                check_tx_time(tx, time_ms)
            except Rejected as exc:
                dropped.append((tx, exc))
                continue
            seen.add(tx.tx_id)
            accepted.append(tx)
        return accepted, dropped

    def prepare(self, txs: Sequence[SignedTx], time_ms: int, proposer: str) -> PreparedBlock:
        """Execute `txs` (already selected) as the next block."""
        invariant(len(txs) <= self.max_block_txs, "block over the state's block-size limit")
        invariant(time_ms > self.head_time_ms, "block time must increase")
        height = self.height + 1
        block_state = Overlay(self.state)
        frontier = self.frontier.copy()
        results: list[TxResult] = []
        entries: list[bytes] = []
        nodes: list[tuple[int, int, bytes]] = []
        index_entries: list[tuple[str, bytes, int]] = []
        # Begin-block hooks (governance decisions due at this height) run before the
        # transactions, on the same block state: part of this block's state root.
        self.registry.begin_block(block_state, height, time_ms, frontier.size)
        for tx in txs:
            result = self._execute(tx, block_state, height, time_ms, frontier.size,
                                   index_entries)
            entry = LogEntry(tx, height, time_ms, result).encode()
            nodes.extend(frontier.append(merkle.leaf_hash(entry)))
            results.append(result)
            entries.append(entry)
        staged = self.state.stage(block_state.writes)  # committed only in `advance`
        state_root = staged.root
        header = BlockHeader(
            chain_id=self.chain_id,
            height=height,
            prev_hash=self.head_hash,
            time_ms=time_ms,
            proposer=proposer,
            tx_root=tx_root(txs),
            tx_count=len(txs),
            log_size=frontier.size,
            log_root=frontier.root(),
            state_root=state_root,
            # The set that signs the next block (ADR 0011): a governance decision
            # applied by this block's begin-block hook shows here first.
            validators_hash=next_validators_hash(block_state, self.genesis),
        )
        return PreparedBlock(
            header, tuple(txs), tuple(entries), tuple(results), staged.changes,
            tuple(index_entries), tuple(nodes), staged, frontier, self.origin,
        )

    def validate(
        self, header: BlockHeader, txs: Sequence[SignedTx], committed: CommittedFilter,
        already_verified: Callable[[SignedTx], bool] = lambda tx: False,
    ) -> PreparedBlock:
        """Re-execute a block proposed by another validator (or fetched by sync) and
        check that its header is exactly what execution gives. Raises Rejected.
        `already_verified` names transactions whose signature this node has checked
        before (its own mempool's), so each signature is verified once per node."""
        if header.chain_id != self.chain_id:
            raise Rejected("block is for another chain", code="wrong_chain")
        if header.height != self.height + 1 or header.prev_hash != self.head_hash:
            raise Rejected("block does not extend the head", code="not_next")
        if header.time_ms <= self.head_time_ms:
            raise Rejected("block time does not increase", code="bad_block")
        if len(txs) > self.max_block_txs:
            raise Rejected(f"block has {len(txs)} transactions; the limit at height "
                           f"{self.height + 1} is {self.max_block_txs}", code="too_large")
        for tx in txs:
            if tx.body.chain_id != self.chain_id or not already_verified(tx):
                check_tx_static(tx, self.chain_id)
        accepted, dropped = self.select(txs, header.time_ms, committed)
        if dropped or len(accepted) != len(txs):
            raise Rejected("block contains an invalid, expired or replayed transaction",
                           code="bad_block")
        prepared = self.prepare(txs, header.time_ms, header.proposer)
        if prepared.header != header:
            raise Rejected("block header does not match its execution", code="bad_block")
        return prepared

    def advance(self, prepared: PreparedBlock) -> None:
        """Move the head to a block that storage has durably committed."""
        invariant(prepared.header.prev_hash == self.head_hash, "advance out of order")
        self.state.commit(prepared.staged_state)
        self.head = prepared.header
        self.frontier = prepared.frontier_after

    def _execute(
        self, tx: SignedTx, block_state: Overlay, height: int, time_ms: int, log_index: int,
        index_entries: list[tuple[str, bytes, int]],
    ) -> TxResult:
        tx_state = Overlay(block_state)
        ctx = CallContext(
            contract=tx.body.contract,
            caller=tx.body.sender,
            height=height,
            time_ms=time_ms,
            log_index=log_index,
            tx_id=tx.tx_id,
            _state=tx_state,
        )
        try:
            # The permission check reads the block's state so far: an enrolment or a
            # revocation earlier in this block counts for the transactions after it.
            spec = self.registry.check_caller(block_state, tx.body.sender, tx.body.contract,
                                              tx.body.method, time_ms, height)
            spec.fn(ctx, tx.body.args)
        except ContractError as exc:
            return TxResult(ok=False, error=exc.code, reason=exc.reason)
        block_state.merge(tx_state.writes)
        index_entries.extend((name, key, log_index) for name, key in
                             self.registry.index_rows(tx.body.contract, ctx.events))
        return TxResult(ok=True, events=tuple(ctx.events))
