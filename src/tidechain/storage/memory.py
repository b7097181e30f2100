"""`MemoryStore`: the node's storage (`storage.protocol.NodeStorage`) in memory.

It stands for a disk in the seeded simulator (issue 12) and gives the same answers as
the SQLite `storage.store.Store`, in the same order, with the same `NotFound`,
`InvariantViolation` and `ImportFailed` on the same misuse (tests/test_memory_store.py
checks it against a real Store, operation by operation).

Durability is modelled on what Store's transactions guarantee (ADR 0002, ADR 0009):

* durable when the call returns, whole: `init_genesis`, `commit_block`, `save_safety`
  (with its lock record, in the same write) and `finish_state_sync`;
* never durable: a state sync's staged rows. Store's import process commits them into
  `sync_*` tables under a mark that the next open drops; here they are kept apart and
  a crash loses them.

`snapshot()` is what a `kill -9` at this instant would leave for the next open (the
durable tables, nothing staged); `crash()` is that `kill -9`: this store is dead (every
later call is our bug and raises InvariantViolation) and its disk is returned;
`MemoryStore(image)` opens a store on a disk, as `Store(path)` opens a file.

What Store lets escape as `sqlite3.IntegrityError` (a block at a height, hash, log
index, tx id, log node or index row stored already) is an `InvariantViolation` here:
the same misuse refused the same way (nothing written), under the error type of our
own bugs: nothing here names `sqlite3` (it comes in only through `storage.store`, for
`StoredBlock`, `prefix_end` and the import batch size).

Failures of Store's import process are asynchronous: a staged row that conflicts with
another (the child's INSERT fails) is noticed at the latest by `finish_state_sync`.
Here it is noticed exactly then, and every later import or finish raises it too until
`abandon_state_sync`, as Store's failure is sticky.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from tidechain.core import cbor
from tidechain.core.errors import InvariantViolation, NotFound, invariant
from tidechain.ledger.chain import PreparedBlock
from tidechain.ledger.state_tree import StateTree
from tidechain.ledger.statesync import ImportedBlock
from tidechain.ledger.types import BlockHeader, Genesis
from tidechain.storage.imports import ImportFailed
from tidechain.storage.store import _STATE_IMPORT_BATCH, StoredBlock, prefix_end

if TYPE_CHECKING:
    from tidechain.storage.protocol import NodeStorage
    from tidechain.storage.store import Store

__all__ = ["DiskImage", "MemoryStore"]

_CHILD_FAILED = "state sync import failed: the import process exited with 1"
"""What Store's ImportFailed says when its import process's INSERT failed."""

_LogNode = tuple[int, int]  # (level, index)
_Key = TypeVar("_Key", int, bytes)
_IndexRow = tuple[str, bytes, int]  # (index name, key, log index)


@dataclass
class _Block:
    block_hash: bytes
    header: BlockHeader  # decoded from the stored bytes, as Store reads it
    txs: bytes
    certificate: bytes
    checkpoint: str

    def stored(self) -> StoredBlock:
        return StoredBlock(self.header, self.txs, self.certificate, self.checkpoint)


@dataclass
class _Tables:
    """One copy of the chain's tables (the chain's own, or a state sync's staged twins),
    each with the orders its reads need."""

    blocks: dict[int, _Block] = field(default_factory=dict)
    heights: list[int] = field(default_factory=list)  # sorted
    by_hash: dict[bytes, int] = field(default_factory=dict)
    # log index -> (tx id, height, entry bytes)
    entries: dict[int, tuple[bytes, int, bytes]] = field(default_factory=dict)
    log_indexes: list[int] = field(default_factory=list)  # sorted
    by_tx: dict[bytes, int] = field(default_factory=dict)
    log_nodes: dict[_LogNode, bytes] = field(default_factory=dict)
    indexes: dict[tuple[str, bytes], list[int]] = field(default_factory=dict)  # sorted lists
    index_rows: int = 0
    state: dict[bytes, bytes] = field(default_factory=dict)
    state_keys: list[bytes] = field(default_factory=list)  # sorted
    state_nodes: dict[bytes, bytes] = field(default_factory=dict)  # the tree's, ADR 0021
    state_size: int = 0

    def copy(self) -> _Tables:
        return _Tables(dict(self.blocks), list(self.heights), dict(self.by_hash),
                       dict(self.entries), list(self.log_indexes), dict(self.by_tx),
                       dict(self.log_nodes), {k: list(v) for k, v in self.indexes.items()},
                       self.index_rows, dict(self.state), list(self.state_keys),
                       dict(self.state_nodes), self.state_size)

    # --- uniqueness, as the tables' keys enforce it ------------------------------------
    def conflict(self, blocks: Sequence[tuple[int, _Block]],
                 entries: Sequence[tuple[int, bytes, int, bytes]],
                 nodes: Sequence[tuple[int, int, bytes]],
                 rows: Sequence[_IndexRow]) -> str | None:
        """Why these rows cannot all be inserted (a key taken already, or twice among
        them), or None."""
        taken = (
            ("block height", [h for h, _ in blocks], self.blocks.keys()),
            ("block hash", [b.block_hash for _, b in blocks], self.by_hash.keys()),
            ("log index", [e[0] for e in entries], self.entries.keys()),
            ("tx id", [e[1] for e in entries], self.by_tx.keys()),
            ("log node", [(level, idx) for level, idx, _ in nodes], self.log_nodes.keys()),
        )
        for what, keys, stored in taken:
            if len(set(keys)) != len(keys) or any(k in stored for k in keys):
                return f"{what} stored already"
        if len(set(rows)) != len(rows) or any(self.has_index_row(r) for r in rows):
            return "index row stored already"
        return None

    def has_index_row(self, row: _IndexRow) -> bool:
        found = self.indexes.get((row[0], row[1]))
        if not found:
            return False
        at = bisect.bisect_left(found, row[2])
        return at < len(found) and found[at] == row[2]

    # --- inserts (after `conflict` said None) ------------------------------------------
    def insert(self, blocks: Sequence[tuple[int, _Block]],
               entries: Sequence[tuple[int, bytes, int, bytes]],
               nodes: Sequence[tuple[int, int, bytes]], rows: Sequence[_IndexRow]) -> None:
        for height, block in blocks:
            self.blocks[height] = block
            self.by_hash[block.block_hash] = height
            _insort_new(self.heights, height)
        for log_index, tx_id, height, entry in entries:
            self.entries[log_index] = (tx_id, height, entry)
            self.by_tx[tx_id] = log_index
            _insort_new(self.log_indexes, log_index)
        for level, idx, node in nodes:
            self.log_nodes[(level, idx)] = node
        for name, key, log_index in rows:
            bisect.insort(self.indexes.setdefault((name, key), []), log_index)
        self.index_rows += len(rows)

    def put_state(self, key: bytes, value: bytes) -> None:
        if key not in self.state:
            _insort_new(self.state_keys, key)
        self.state[key] = value

    def delete_state(self, key: bytes) -> None:
        if self.state.pop(key, None) is not None:
            del self.state_keys[bisect.bisect_left(self.state_keys, key)]

    def rows(self) -> tuple[list[tuple[int, _Block]], list[tuple[int, bytes, int, bytes]],
                            list[tuple[int, int, bytes]], list[_IndexRow]]:
        """Every block, entry, log node and index row, as `insert` takes them."""
        return (list(self.blocks.items()),
                [(i, *self.entries[i]) for i in self.log_indexes],
                [(level, idx, node) for (level, idx), node in self.log_nodes.items()],
                [(name, key, i) for (name, key), found in self.indexes.items()
                 for i in found])


def _insort_new(keys: list[_Key], key: _Key) -> None:
    """Insert a key known to be absent, keeping `keys` sorted (appends in the usual
    case: heights and log indexes grow)."""
    if not keys or keys[-1] < key:
        keys.append(key)
    else:
        bisect.insort(keys, key)


def _limited(count: int, limit: int) -> int:
    """How many of `count` rows SQLite's `LIMIT limit` returns (negative: no limit)."""
    return count if limit < 0 else min(count, limit)


@dataclass(frozen=True)
class DiskImage:
    """What a MemoryStore's disk holds: everything durable, nothing staged. Opened any
    number of times (`MemoryStore(image)` copies it)."""

    _genesis: bytes | None
    _tables: _Tables
    _safety: bytes | None
    _lock: bytes | None


class MemoryStore:
    """NodeStorage in memory (see the module doc for its durability model)."""

    def __init__(self, image: DiskImage | None = None, name: str = "memory store") -> None:
        self.name = name
        self._dead = False
        self._genesis: bytes | None = None
        self._tables = _Tables()
        self._safety: bytes | None = None
        self._lock: bytes | None = None
        if image is not None:
            self._genesis, self._safety, self._lock = image._genesis, image._safety, image._lock
            self._tables = image._tables.copy()
        # A state sync's staged rows (Store's `sync_*` tables), its state records not
        # yet handed to the import process, and its failures: the one the import
        # process met (Store learns it at the latest when it drains the process), and
        # the one raised, sticky until the session is abandoned.
        self._staged = _Tables()
        self._state_rows: list[tuple[bytes, bytes]] = []
        self._child_failure: ImportFailed | None = None
        self._import_failure: ImportFailed | None = None

    # --- the disk -------------------------------------------------------------------
    def snapshot(self) -> DiskImage:
        """What the next open would find if the process died now."""
        return DiskImage(self._genesis, self._tables.copy(), self._safety, self._lock)

    def crash(self) -> DiskImage:
        """The process dies here (`kill -9`): this store answers nothing more, and its
        disk, with what was durable, is returned for the next open."""
        self._dead = True
        return self.snapshot()

    def close(self) -> None:
        """As Store's: what was durable stays, staged rows go; closing twice is fine."""
        self._dead = True

    def _live(self) -> None:
        invariant(not self._dead, f"{self.name} is closed")

    # --- genesis --------------------------------------------------------------------
    def genesis(self) -> Genesis | None:
        self._live()
        return None if self._genesis is None else Genesis.decode(self._genesis)

    def init_genesis(self, genesis: Genesis, state: Mapping[bytes, bytes]) -> None:
        existing = self.genesis()
        if existing is not None:
            if existing != genesis:
                raise InvariantViolation(f"{self.name} belongs to another network")
            return
        tables = self._tables
        if any(key in tables.state for key in state):
            raise InvariantViolation("genesis state key stored already")
        self._genesis = genesis.encode()
        for key, value in state.items():
            tables.put_state(key, value)
        self._keep_tree(StateTree.from_items(state.items()))

    def _keep_tree(self, tree: StateTree) -> None:
        """`tree` (in memory) is the state's tree: its nodes and size, as Store keeps them."""
        self._tables.state_nodes = dict(tree.node_items())
        self._tables.state_size = len(tree)

    # --- blocks ---------------------------------------------------------------------
    def commit_block(self, prepared: PreparedBlock, certificate: bytes, checkpoint: str) -> None:
        self._live()
        header = prepared.header
        first = prepared.first_log_index
        encoded = header.encode()
        block = _Block(header.block_hash, BlockHeader.from_cbor(cbor.decode(encoded)),
                       cbor.encode([cbor.Encoded(tx.encoded) for tx in prepared.txs]),
                       certificate, checkpoint)
        entries = [(first + i, tx.tx_id, header.height, entry)
                   for i, (tx, entry) in enumerate(zip(prepared.txs, prepared.entries,
                                                       strict=True))]
        tables = self._tables
        why = tables.conflict([(header.height, block)], entries, prepared.log_nodes,
                              prepared.index_entries)
        if why is not None:
            raise InvariantViolation(f"block {header.height} not committed: {why}")
        tables.insert([(header.height, block)], entries, prepared.log_nodes,
                      prepared.index_entries)
        for key, value in prepared.writes.items():
            if value is None:
                tables.delete_state(key)
            else:
                tables.put_state(key, value)
        nodes = tables.state_nodes
        for position, record in prepared.staged_state.node_writes.items():
            if record is None:
                nodes.pop(position, None)
            else:
                nodes[position] = record
        tables.state_size = prepared.staged_state.size

    def head(self) -> StoredBlock | None:
        self._live()
        heights = self._tables.heights
        return self._tables.blocks[heights[-1]].stored() if heights else None

    def block(self, height: int) -> StoredBlock:
        self._live()
        found = self._tables.blocks.get(height)
        if found is None:
            raise NotFound(f"no block at height {height}")
        return found.stored()

    def block_by_hash(self, block_hash: bytes) -> int | None:
        self._live()
        return self._tables.by_hash.get(block_hash)

    def headers(self, low: int, high: int) -> list[tuple[BlockHeader, bytes]]:
        self._live()
        tables = self._tables
        heights = tables.heights
        span = heights[bisect.bisect_left(heights, low):bisect.bisect_right(heights, high)]
        return [(tables.blocks[h].header, tables.blocks[h].certificate) for h in span]

    def headers_page(self, below: int | None, limit: int) -> list[BlockHeader]:
        self._live()
        tables = self._tables
        return [tables.blocks[h].header for h in _newest(tables.heights, below, limit)]

    # --- the log --------------------------------------------------------------------
    def get_node(self, level: int, index: int) -> bytes:
        self._live()
        found = self._tables.log_nodes.get((level, index))
        invariant(found is not None, f"log node ({level}, {index}) missing")
        assert found is not None
        return found

    def entry(self, log_index: int) -> tuple[int, bytes]:
        self._live()
        found = self._tables.entries.get(log_index)
        if found is None:
            raise NotFound(f"no log entry at index {log_index}")
        return found[1], found[2]

    def entry_by_tx(self, tx_id: bytes) -> tuple[int, int, bytes] | None:
        self._live()
        tables = self._tables
        log_index = tables.by_tx.get(tx_id)
        if log_index is None:
            return None
        _, height, entry = tables.entries[log_index]
        return log_index, height, entry

    def committed(self, tx_ids: Sequence[bytes]) -> set[bytes]:
        self._live()
        by_tx = self._tables.by_tx
        return {tx_id for tx_id in tx_ids if tx_id in by_tx}

    def entries_page(self, below: int | None, limit: int) -> list[tuple[int, bytes]]:
        self._live()
        entries = self._tables.entries
        return [(i, entries[i][2]) for i in _newest(self._tables.log_indexes, below, limit)]

    def entries_between(self, start: int, end: int) -> list[bytes]:
        self._live()
        tables = self._tables
        order = tables.log_indexes
        span = order[bisect.bisect_left(order, start):bisect.bisect_left(order, end)]
        return [tables.entries[i][2] for i in span]

    # --- state and indexes ----------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        self._live()
        return self._tables.state.get(key)

    def index_lookup(self, name: str, key: bytes, limit: int) -> list[int]:
        self._live()
        found = self._tables.indexes.get((name, key), [])
        return found[:_limited(len(found), limit)]

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]:
        self._live()
        return _newest(self._tables.indexes.get((name, key), []), before, limit)

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        self._live()
        invariant(bool(prefix) and prefix[0] != 0xFF, "state_page prefix")
        end = prefix_end(prefix)
        keys = self._tables.state_keys
        # The same bounds as Store's SQL: `after` is not required to lie under `prefix`.
        if descending:
            low = bisect.bisect_left(keys, prefix)
            high = bisect.bisect_left(keys, end if after is None else after)
            span = keys[high - _limited(max(0, high - low), limit):high][::-1]
        else:
            low = (bisect.bisect_left(keys, prefix) if after is None
                   else bisect.bisect_right(keys, after))
            high = bisect.bisect_left(keys, end)
            span = keys[low:low + _limited(max(0, high - low), limit)]
        state = self._tables.state
        return [(k, state[k]) for k in span]

    def state_range(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        self._live()
        invariant(bool(prefix) and prefix[0] != 0xFF, "state_range prefix")
        keys = self._tables.state_keys
        low = bisect.bisect_left(keys, prefix)
        high = bisect.bisect_left(keys, prefix_end(prefix))
        state = self._tables.state
        return [(k, state[k]) for k in keys[low:low + _limited(high - low, limit)]]

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        self._live()
        state = self._tables.state
        return iter([(k, state[k]) for k in self._tables.state_keys])

    def state_node(self, position: bytes) -> bytes | None:
        self._live()
        return self._tables.state_nodes.get(position)

    def state_size(self) -> int:
        self._live()
        return self._tables.state_size

    # --- consensus safety data ------------------------------------------------------
    def save_safety(self, data: bytes, lock: bytes | None = None) -> None:
        self._live()
        self._safety = data
        if lock is not None:
            self._lock = lock

    def load_safety(self) -> bytes | None:
        self._live()
        return self._safety

    def load_lock(self) -> bytes | None:
        self._live()
        return self._lock

    # --- state sync (ADR 0009) ------------------------------------------------------
    def prepare_imports(self) -> None:
        self._live()  # no process to start

    def import_blocks(self, blocks: Sequence[tuple[ImportedBlock, bytes, str]]) -> None:
        self._live()
        if not blocks:
            return
        self._submit_blocks(blocks)

    def import_state(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Buffered as Store buffers them for its import process, so that a failure
        raises at the same calls."""
        self._live()
        self._state_rows.extend(records)
        if len(self._state_rows) >= _STATE_IMPORT_BATCH:
            rows, self._state_rows = self._state_rows, []
            self._submit_state(rows)

    def _submitting(self) -> bool:
        """Whether a batch is written: raise the sticky failure if there is one; False
        once the import process has died (what it is sent is lost)."""
        if self._import_failure is not None:
            raise self._import_failure
        return self._child_failure is None

    def _submit_blocks(self, blocks: Sequence[tuple[ImportedBlock, bytes, str]]) -> None:
        if not self._submitting():
            return
        staged_blocks: list[tuple[int, _Block]] = []
        entries: list[tuple[int, bytes, int, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        rows: list[_IndexRow] = []
        for imported, certificate, checkpoint in blocks:
            header = imported.header
            staged_blocks.append((header.height, _Block(
                header.block_hash, BlockHeader.from_cbor(cbor.decode(header.encode())),
                cbor.encode([cbor.Encoded(e) for e in imported.envelopes]),
                certificate, checkpoint)))
            entries.extend(imported.entries)
            nodes.extend(imported.log_nodes)
            rows.extend(imported.index_rows)
        # The import process writes a batch in one transaction, or fails and dies.
        if self._staged.conflict(staged_blocks, entries, nodes, rows) is not None:
            self._child_failure = ImportFailed(_CHILD_FAILED)
            return
        self._staged.insert(staged_blocks, entries, nodes, rows)

    def _submit_state(self, rows: Sequence[tuple[bytes, bytes]]) -> None:
        if not self._submitting():
            return
        staged = self._staged
        keys = [key for key, _ in rows]
        if len(set(keys)) != len(keys) or any(key in staged.state for key in keys):
            self._child_failure = ImportFailed(_CHILD_FAILED)
            return
        for key, value in rows:
            staged.put_state(key, value)

    def _drain_imports(self) -> None:
        """Everything buffered written; raise the import's failure (sticky) if any."""
        try:
            if self._state_rows:
                rows, self._state_rows = self._state_rows, []
                self._submit_state(rows)
        finally:
            self._import_failure = self._import_failure or self._child_failure
            self._child_failure = None
        if self._import_failure is not None:
            raise self._import_failure

    def finish_state_sync(self, *, blocks: int, entries: int, records: int,
                          tree: StateTree | None = None) -> None:
        self._live()
        self._drain_imports()
        staged = self._staged
        counts = {"blocks": len(staged.blocks), "entries": len(staged.entries),
                  "state": len(staged.state)}
        if counts != {"blocks": blocks, "entries": entries, "state": records}:
            failure = ImportFailed(f"staged rows {counts} are not the {blocks} blocks, "
                                   f"{entries} entries and {records} records verified")
            self._import_failure = failure
            raise failure
        # Store's switch-over inserts one side's rows into the other's: a key on both
        # sides fails that transaction (nothing switched, the staged rows kept).
        tables = self._tables
        rows = staged.rows()
        why = tables.conflict(*rows)
        if why is not None:
            raise InvariantViolation(f"state sync not switched over: {why}")
        tables.insert(*rows)
        tables.state, tables.state_keys = staged.state, staged.state_keys
        self._keep_tree(StateTree.from_items(staged.state.items()) if tree is None else tree)
        self._staged = _Tables()

    def abandon_state_sync(self) -> None:
        self._live()
        self._state_rows = []
        self._child_failure = None
        self._import_failure = None
        self._staged = _Tables()


def _newest(order: list[int], below: int | None, limit: int) -> list[int]:
    """Up to `limit` of the sorted `order`, greatest first, below `below` if given."""
    end = len(order) if below is None else bisect.bisect_left(order, below)
    return order[end - _limited(end, limit):end][::-1]


if TYPE_CHECKING:
    def _both_are_node_storage(memory: MemoryStore, sqlite: Store) -> list[NodeStorage]:
        """mypy checks here that both stores keep the protocol."""
        return [memory, sqlite]
