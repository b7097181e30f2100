"""What the node layer needs of its storage, as protocols (issue 12).

Two implementations: `storage.store.Store`, the SQLite file a real node runs on (ADR
0002), and `storage.memory.MemoryStore`, the same behaviour in memory, standing for a
disk in the seeded simulator. `Node`, `ChainQueries` and `StateSync` are typed against
these protocols, never against either class.

`StorageReader` is what reads of the committed chain need (the queries the API serves,
`HeadView`, Merkle proofs over `get_node`, block sync's answers); `NodeStorage` adds
what the node writes: the genesis, committed blocks, the consensus safety record and a
state sync's staged imports.

Contracts every implementation keeps (the tests in tests/test_memory_store.py hold
MemoryStore to Store's answers):

* Reads see every write that returned before them, and never a staged import before
  `finish_state_sync` switched it over.
* Durability: `init_genesis`, `commit_block`, `save_safety` and `finish_state_sync` are
  durable when they return (a crash after the return keeps them, whole); a crash
  before the return keeps none of the call. Nothing else is durable: the rows a state
  sync stages are dropped by a crash (and on the next open) unless it finished.
* Atomicity: each of those four calls is all or nothing; a call that raises changed
  nothing it was asked to write.
* Ordering: every list comes in the order its method names (by height, log index or
  key); `limit` bounds every page (a negative limit, as SQLite's LIMIT, none).
* Misuse: a missing block or entry raises `NotFound`; a missing log node, a bad state
  prefix or a store of another network raises `InvariantViolation`; a staged import
  that failed raises `ImportFailed` (sticky until `abandon_state_sync`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from tidechain.ledger.chain import PreparedBlock
from tidechain.ledger.state_tree import StateTree
from tidechain.ledger.statesync import ImportedBlock
from tidechain.ledger.types import BlockHeader, Genesis
from tidechain.storage.store import StoredBlock

__all__ = ["NodeStorage", "StorageReader", "StoredBlock"]


class StorageReader(Protocol):
    """Reads of the committed chain: blocks, the log, the state, the indexes."""

    # --- blocks -------------------------------------------------------------------
    def head(self) -> StoredBlock | None:
        """The committed block of the greatest height, or None before block 1."""
        ...

    def block(self, height: int) -> StoredBlock:
        """The committed block at `height`; NotFound if there is none."""
        ...

    def block_by_hash(self, block_hash: bytes) -> int | None:
        """The height of the committed block with this hash, or None."""
        ...

    def headers(self, low: int, high: int) -> list[tuple[BlockHeader, bytes]]:
        """(header, commit certificate) of the committed blocks low..high (both
        included) that exist, by height ascending."""
        ...

    def headers_page(self, below: int | None, limit: int) -> list[BlockHeader]:
        """Up to `limit` headers, highest first, of heights below `below` if given."""
        ...

    # --- the log ------------------------------------------------------------------
    def entry(self, log_index: int) -> tuple[int, bytes]:
        """(height, entry bytes) of a committed log entry; NotFound if there is none."""
        ...

    def entry_by_tx(self, tx_id: bytes) -> tuple[int, int, bytes] | None:
        """(log index, height, entry bytes) of a committed transaction, or None."""
        ...

    def entries_page(self, below: int | None, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (log index, entry bytes), newest first, below `below` if given."""
        ...

    def entries_between(self, start: int, end: int) -> list[bytes]:
        """The entries with log index start..end - 1 that exist, in log order."""
        ...

    def committed(self, tx_ids: Sequence[bytes]) -> set[bytes]:
        """Those of `tx_ids` that a committed block holds (replay protection)."""
        ...

    def get_node(self, level: int, index: int) -> bytes:
        """The hash of the complete Merkle subtree (level, index) of the committed log
        (`merkle.NodeReader`); InvariantViolation if it is not stored (a proof is asked
        only for sizes the head covers, so a missing node is our bug)."""
        ...

    # --- state and indexes --------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        """The committed state's value under `key`, or None."""
        ...

    def state_range(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` state entries whose key starts with `prefix`, in key order;
        InvariantViolation for an empty prefix or one starting with 0xff."""
        ...

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        """Up to `limit` state entries under `prefix`, in key order, with keys above
        `after` if given (and below the prefix's end); `descending`: in reverse key
        order, with keys below `after` if given (and from the prefix on). The
        same prefix rule as `state_range`."""
        ...

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        """Every committed state entry, in key order."""
        ...

    def state_node(self, position: bytes) -> bytes | None:
        """The committed state tree's node record at `position` (ADR 0021), or None.
        Every committed state has its nodes: genesis, each block and a state sync's
        switch-over write them with the state, in the same transaction."""
        ...

    def state_size(self) -> int:
        """The committed state's key count, kept with its tree's nodes."""
        ...

    def index_lookup(self, name: str, key: bytes, limit: int) -> list[int]:
        """Up to `limit` log indexes filed under (name, key), oldest first."""
        ...

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]:
        """Up to `limit` log indexes filed under (name, key), newest first, below
        `before` if given."""
        ...


class NodeStorage(StorageReader, Protocol):
    """Everything a `Node` does with its storage: the reads, and its writes."""

    def init_genesis(self, genesis: Genesis, state: Mapping[bytes, bytes]) -> None:
        """Record the genesis and its world state, atomically and durably; on a store
        that has a genesis already, nothing is written, and InvariantViolation if it is
        not this one."""
        ...

    def commit_block(self, prepared: PreparedBlock, certificate: bytes, checkpoint: str) -> None:
        """Persist a block with everything it changes (header, transactions,
        certificate, checkpoint note, entries, log nodes, state writes, index rows),
        atomically and durably before return. Nothing is checked but uniqueness (a
        height, block hash, log index, tx id, log node or index row stored already
        refuses the whole block): the caller commits blocks in order."""
        ...

    # --- the consensus safety record ------------------------------------------------
    def save_safety(self, data: bytes, lock: bytes | None = None) -> None:
        """Replace the safety record, durably before return (a vote that depends on it
        leaves only after). With `lock`, replace the lock record too, in the same
        atomic write; without, the lock record stays as it was."""
        ...

    def load_safety(self) -> bytes | None:
        """The last safety record saved, or None."""
        ...

    def load_lock(self) -> bytes | None:
        """The last lock record saved, or None."""
        ...

    # --- state sync (ADR 0009) -------------------------------------------------------
    def prepare_imports(self) -> None:
        """Get ready for a state sync's imports; ImportFailed if that cannot be."""
        ...

    def import_blocks(self, blocks: Sequence[tuple[ImportedBlock, bytes, str]]) -> None:
        """Stage verified blocks (with certificate and checkpoint note), their entries,
        log nodes and index rows. Nothing reads staged rows; they are durable only from
        `finish_state_sync` on. ImportFailed if an earlier import failed."""
        ...

    def import_state(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Stage verified state records, to become the whole state at
        `finish_state_sync`. ImportFailed if an earlier import failed."""
        ...

    def finish_state_sync(self, *, blocks: int, entries: int, records: int,
                          tree: StateTree | None = None) -> None:
        """Switch over atomically and durably: the staged blocks, entries, log nodes and
        index rows join the chain's, the staged records become the state, `tree` (built
        from the records when None) its tree, kept by the store (ADR 0021). If the staged
        rows are not exactly `blocks` blocks, `entries` entries and `records` records,
        or an import failed, nothing is switched and ImportFailed is raised (sticky
        until `abandon_state_sync`)."""
        ...

    def abandon_state_sync(self) -> None:
        """Drop everything staged and any import failure; a no-op without a state sync."""
        ...

    def close(self) -> None:
        """Release the store; what was durable stays for the next open."""
        ...
