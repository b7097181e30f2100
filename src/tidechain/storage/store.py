"""The block store: the only module that touches the node's disk.

One SQLite file per node (ADR 0002). WAL journal with `synchronous=FULL`, so a
committed SQLite transaction has been fsynced; every block is committed in exactly one
SQLite transaction (entries, log nodes, state writes, secondary index rows, header,
certificate), so after a `kill -9` at any instant the file holds a prefix of the chain
and nothing half-written.
Consensus safety data is written (and fsynced) in its own transaction before any vote
leaves the node.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tidechain.core import cbor
from tidechain.core.errors import InvariantViolation, NotFound, Rejected, invariant
from tidechain.ledger.chain import PreparedBlock
from tidechain.ledger.state_tree import StateTree
from tidechain.ledger.statesync import ImportedBlock
from tidechain.ledger.types import BlockHeader, Genesis
from tidechain.storage.held_index_rows import HeldIndexRows, IndexRow
from tidechain.storage.held_nodes import HeldNodeWrites
from tidechain.storage.held_tx_ids import HeldTxIds, TxIdMark
from tidechain.storage.imports import (
    BUSY_TIMEOUT_MS,
    CACHE_KIB,
    STATE_SYNC_MARK,
    ImportBatch,
    ImportFailed,
    ImportWriter,
    immediate,
)

SCHEMA_VERSION = 5
"""3: `state_node_log` (ADR 0022). 4: leaf records in `state_nodes` hold no value (ADR
0023). 5: committed transaction ids are looked up in `tx_ids`, written in sorted
batches (ADR 0024), and index rows are logged in `index_log` and written into
`indexes` in batches (ADR 0025). A store at 2 to 4 is upgraded when opened: the log
tables are created empty, the leaves written before keep their values, which nothing
reads any more, and `tx_ids` is filled from `entries` (whose old UNIQUE index on
`tx_id` stays, since SQLite cannot drop it without copying the table). Software that
knows only 4 refuses a store at 5 by name instead of missing the transactions and
index rows held out of its tables."""
_UPGRADABLE_SCHEMAS = (2, 3, 4)
CHECKPOINT_INTERVAL_S = 0.5
"""How often the background thread folds the WAL into the database file when no block
commits (each commit wakes it at once)."""
PAGE_BYTES = 4096
"""SQLite page size of a new store (see Store.__init__)."""
WAL_LIMIT_BYTES = 256 * 1024 * 1024
"""Past this, a block's commit waits for a full checkpoint that empties the WAL. The
background checkpoints never block the writer, so under a steady stream of blocks they
may never catch up and start the WAL over: measured, 13 GB of WAL in 2.5 minutes at
3,300 deposits/s, every block slower than the last."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS safety (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS lock (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state_nodes (position BLOB PRIMARY KEY, record BLOB NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_node_log (height INTEGER PRIMARY KEY, writes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tx_ids (tx_id BLOB PRIMARY KEY, log_index INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_log (height INTEGER PRIMARY KEY, rows BLOB NOT NULL);
"""
STATE_FLUSH_NODES = 200_000
"""Node writes a store holds back from `state_nodes` (ADR 0022) before it freezes them
into a batch for `state_nodes`: about 46 MiB, and at most two batches are held. Each
block logs its writes as one row of `state_node_log`, appended, and the store answers
reads of held writes from memory. A batch's rows share pages only when it is large
against the table: from 50,000 to 200,000, `bench_scale.py` went from 8,139 to 9,628
deposits/s at 1.2 million deposits and from 7,132 to 8,155 at 2 million."""
STATE_FLUSH_ROWS = 256
"""Blocks logged before their writes are frozen into a batch however few positions they
hold: the log, and what an open replays, stay bounded under any workload."""
STATE_FLUSH_CHUNK = 2_000
"""Positions of a frozen batch written per block at least, in position order; a block
writes 1.5 times its own node writes if that is more (`HeldNodeWrites._chunk_for`).
A batch is written over many blocks, not in one long commit."""
TX_ID_FLUSH = 100_000
"""Committed transaction ids the store holds back from `tx_ids` (ADR 0024) before it
freezes them into a batch that later blocks write in id order, at least
STATE_FLUSH_CHUNK per block: about 15 MiB held per batch, at most two batches."""
INDEX_FLUSH = 100_000
"""Index rows the store holds back from `indexes` (ADR 0025) before it freezes them into
a batch that later blocks write in table order, at least STATE_FLUSH_CHUNK per block."""
_INDEX_LOG_CHUNK_ROWS = 1365
"""Rows per CBOR array of an `index_log` row (three items each, under MAX_CBOR_ITEMS)."""
_TX_ID_MARK = "tx_id_mark"
"""Meta key: what `tx_ids` holds (`TxIdMark`), written with every block. Its absence
means `tx_ids` is not yet built from `entries` (a store before schema 5)."""
_NODE_LOG_CHUNK_PAIRS = 2048
"""(position, record) pairs per CBOR array of a log row, under MAX_CBOR_ITEMS."""
_STATE_SIZE = "state_size"
"""Meta key: the state's key count, written with the state tree's nodes (ADR 0021).
Its absence means `state_nodes` is not yet built from `state` (a store from before
ADR 0021): the store builds it when opened."""
_CHAIN_TABLES = {
    "blocks": """(
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    txs BLOB NOT NULL,
    certificate BLOB NOT NULL,
    checkpoint TEXT NOT NULL
)""",
    "entries": """(
    log_index INTEGER PRIMARY KEY,
    tx_id BLOB NOT NULL,
    height INTEGER NOT NULL,
    entry BLOB NOT NULL
)""",
    "log_nodes": """(
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID""",
    "indexes": """(
    name TEXT NOT NULL,
    key BLOB NOT NULL,
    log_index INTEGER NOT NULL,
    PRIMARY KEY (name, key, log_index)
) WITHOUT ROWID""",
    "state": "(key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
}
"""The chain's tables, each with a twin `sync_<name>` of the same shape where a state
sync stages what it imports (ADR 0009): nothing a session writes is visible in the
chain's own tables before `finish_state_sync` moves it there."""
_STAGED_BESIDE = ("blocks", "entries", "log_nodes", "indexes")
"""Staged tables whose rows join the chain's at the switch-over (`state` is replaced)."""


def _create_table(table: str, name: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} {_CHAIN_TABLES[table]}"


def _write_state_nodes(db: sqlite3.Connection, rows: Sequence[tuple[bytes, bytes | None]]
                       ) -> None:
    """Inside the caller's transaction: put or remove (None) node records by position."""
    if not rows:
        return
    db.executemany("INSERT OR REPLACE INTO state_nodes VALUES (?, ?)",
                   [(p, r) for p, r in rows if r is not None])
    db.executemany("DELETE FROM state_nodes WHERE position = ?",
                   [(p,) for p, r in rows if r is None])


def _pack_node_writes(writes: Mapping[bytes, bytes | None]) -> bytes:
    """One block's node writes as a log row: a CBOR array of arrays, each holding up
    to _NODE_LOG_CHUNK_PAIRS pairs flattened (position, record or null, ...)."""
    return _pack_flat(writes.items(), 2 * _NODE_LOG_CHUNK_PAIRS)


def _pack_flat(rows: Iterable[Sequence[object]], step: int) -> bytes:
    """Rows flattened into CBOR arrays of at most `step` items: a log row."""
    flat = list(itertools.chain.from_iterable(rows))
    return cbor.encode([flat[start:start + step] for start in range(0, len(flat), step)])


def _flat_chunks(packed: bytes, width: int, what: str) -> Iterator[list[Any]]:
    """The rows of `width` items that `_pack_flat` wrote; anything else is a broken
    store."""
    chunks = cbor.decode(packed)
    invariant(isinstance(chunks, list), f"{what} row is not an array")
    for chunk in chunks:
        invariant(isinstance(chunk, list) and len(chunk) % width == 0,
                  f"{what} chunk is not a list of rows")
        for at in range(0, len(chunk), width):
            yield chunk[at:at + width]


def _pack_index_rows(rows: Sequence[IndexRow]) -> bytes:
    """One block's index rows as a log row: a CBOR array of arrays, each holding up to
    _INDEX_LOG_CHUNK_ROWS rows flattened (name, key, log index, ...)."""
    return _pack_flat(rows, 3 * _INDEX_LOG_CHUNK_ROWS)


def _unpack_index_rows(packed: bytes) -> Iterator[IndexRow]:
    """The rows `_pack_index_rows` wrote; a row it did not write is a broken store."""
    for name, key, log_index in _flat_chunks(packed, 3, "index_log"):
        invariant(isinstance(name, str) and isinstance(key, bytes)
                  and isinstance(log_index, int) and log_index >= 0,
                  "index_log row is not (text, bytes, index)")
        yield name, key, log_index


def _unpack_node_writes(packed: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    """The pairs `_pack_node_writes` wrote, in order; a row it did not write is a
    broken store."""
    for position, record in _flat_chunks(packed, 2, "state_node_log"):
        invariant(isinstance(position, bytes) and (record is None or isinstance(record, bytes)),
                  "state_node_log pair is not (bytes, bytes or null)")
        yield position, record


@dataclass(frozen=True)
class StoredBlock:
    header: BlockHeader
    txs: bytes  # CBOR array of transaction envelopes
    certificate: bytes
    checkpoint: str  # the quorum-signed checkpoint note


class Store:
    def __init__(self, path: Path, *, state_flush_nodes: int = STATE_FLUSH_NODES,
                 state_flush_chunk: int = STATE_FLUSH_CHUNK,
                 state_flush_rows: int = STATE_FLUSH_ROWS,
                 tx_id_flush: int = TX_ID_FLUSH, index_flush: int = INDEX_FLUSH) -> None:
        self.path = path
        # Node writes of committed blocks that are logged and not yet in state_nodes
        # (ADR 0022).
        self._held = HeldNodeWrites(state_flush_nodes, state_flush_chunk, state_flush_rows)
        # Ids of committed transactions not yet in tx_ids (ADR 0024).
        self._held_tx_ids = HeldTxIds(tx_id_flush, state_flush_chunk)
        # Index rows logged and not yet in indexes (ADR 0025).
        self._held_index = HeldIndexRows(index_flush, state_flush_chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _exclusive_lock(path.with_name(path.name + ".lock"))
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per block.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # A new database only (an existing one keeps its page size). SQLite's default,
        # written out: 1 KiB pages wrote 2.5x less WAL per block of random rows, but the
        # node spent 111 us of main-thread CPU per deposit on them against 84 us with
        # 4 KiB (bench_node.py, 60,000 deposits, back to back on 2026-12-07).
        self._db.execute(f"PRAGMA page_size={PAGE_BYTES}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        # Checkpoints (copying the WAL into the database file) run on a background
        # thread instead of inside a block's COMMIT: measured, a 1,000-deposit commit
        # took 53 ms with automatic checkpoints and 32.5 ms without.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        for table in _CHAIN_TABLES:
            self._db.execute(_create_table(table, table))
            self._db.execute(_create_table(table, f"sync_{table}"))
        version = self._meta("schema")
        schema = None if version is None else cbor.decode(version)
        if schema is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)",
                             (cbor.encode(SCHEMA_VERSION),))
        elif schema in _UPGRADABLE_SCHEMAS:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                             (cbor.encode(SCHEMA_VERSION),))
        elif schema != SCHEMA_VERSION:
            raise InvariantViolation(f"{path}: schema {schema} unsupported")

        self._flush_node_log()  # what a stop or a crash left logged
        self._flush_index_log()
        if self._meta(_STATE_SIZE) is None:
            self._build_state_nodes()
        self._checkpointer = _Checkpointer(path)
        self._wal_path = path.with_name(path.name + "-wal")
        self._importer: ImportWriter | None = None
        # Sticky until the session is abandoned: a session whose import failed never
        # switches over, whatever the node calls next.
        self._import_failure: ImportFailed | None = None
        self._state_rows: list[tuple[bytes, bytes]] = []  # for the importer, batched
        self.abandon_state_sync()  # a crash mid-sync: start it over (ADR 0009)
        self._restore_tx_ids()

    def close(self) -> None:
        if self._importer is not None:
            with contextlib.suppress(ImportFailed):  # the next open cleans up
                self._drain_imports()
        self._checkpointer.stop()
        self._db.close()
        self._lock.close()  # releases the lock

    # --- meta ---------------------------------------------------------------------
    def _meta(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def genesis(self) -> Genesis | None:
        raw = self._meta("genesis")
        return None if raw is None else Genesis.decode(raw)

    def init_genesis(self, genesis: Genesis, state: Mapping[bytes, bytes]) -> None:
        """Record the genesis and the world state it gives (`ledger.chain.genesis_state`)
        in one transaction; on a store that has them already, check it is this network."""
        existing = self.genesis()
        if existing is not None:
            if existing != genesis:
                raise InvariantViolation(f"{self.path} belongs to another network")
            return
        db = self._db
        tree = StateTree.from_items(state.items())
        with immediate(db):
            db.execute("INSERT INTO meta VALUES ('genesis', ?)", (genesis.encode(),))
            db.executemany("INSERT INTO state VALUES (?, ?)", sorted(state.items()))
            self._replace_state_tree(tree)
        self._held.clear()

    # --- the state tree's nodes (ADR 0021) -----------------------------------------
    def state_node(self, position: bytes) -> bytes | None:
        """The committed state tree's node record at `position`, or None."""
        held, record = self._held.lookup(position)
        if held:
            return record
        row = self._db.execute("SELECT record FROM state_nodes WHERE position = ?",
                               (position,)).fetchone()
        return None if row is None else bytes(row[0])

    def state_size(self) -> int:
        """The committed state's key count."""
        raw = self._meta(_STATE_SIZE)
        invariant(raw is not None, "state size missing")
        assert raw is not None
        size = cbor.decode(raw)
        invariant(isinstance(size, int) and size >= 0, "corrupt state size")
        assert isinstance(size, int)
        return size

    def _build_state_nodes(self) -> None:
        """Build `state_nodes` from `state`, in one transaction: a store from before
        ADR 0021, opened once (in memory while it runs, as every start was before)."""
        tree = StateTree.from_items(self.iter_state())
        with immediate(self._db):
            self._replace_state_tree(tree)
        self._held.clear()

    def _replace_state_tree(self, tree: StateTree) -> None:
        """Inside the caller's transaction: `tree` (in memory) is the state's tree. The
        caller clears `_held` once the transaction has committed."""
        db = self._db
        db.execute("DELETE FROM state_nodes")
        db.execute("DELETE FROM state_node_log")
        # In position order, as the table stores them: appends, not scattered inserts.
        db.executemany("INSERT INTO state_nodes VALUES (?, ?)", sorted(tree.node_items()))
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                   (_STATE_SIZE, cbor.encode(len(tree))))

    # --- blocks -------------------------------------------------------------------
    def commit_block(self, prepared: PreparedBlock, certificate: bytes, checkpoint: str) -> None:
        """Persist a block and everything it changes, atomically and durably."""
        failure = self._checkpointer.failure
        invariant(failure is None, f"WAL checkpoints failed: {failure}")
        header = prepared.header
        first = prepared.first_log_index
        tx_ids = [tx.tx_id for tx in prepared.txs]
        self._refuse_held_replays(tx_ids)
        tx_step = self._held_tx_ids.plan(tx_ids, first)
        index_step = self._held_index.plan(header.height, prepared.index_entries)
        db = self._db
        with immediate(db):
            db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                (header.height, header.block_hash, header.encode(),
                 cbor.encode([cbor.Encoded(tx.encoded) for tx in prepared.txs]),
                 certificate, checkpoint),
            )
            db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?)",
                [(first + i, tx.tx_id, header.height, entry)
                 for i, (tx, entry) in enumerate(zip(prepared.txs, prepared.entries, strict=True))],
            )
            db.executemany("INSERT INTO log_nodes VALUES (?, ?, ?)", prepared.log_nodes)
            puts = [(k, v) for k, v in prepared.writes.items() if v is not None]
            deletes = [(k,) for k, v in prepared.writes.items() if v is None]
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", puts)
            db.executemany("DELETE FROM state WHERE key = ?", deletes)
            index_rows = prepared.index_entries
            if index_rows:
                db.execute("INSERT INTO index_log VALUES (?, ?)",
                           (header.height, _pack_index_rows(index_rows)))
            db.executemany("INSERT INTO indexes VALUES (?, ?, ?)", index_step.rows)
            if index_step.log_through is not None:
                db.execute("DELETE FROM index_log WHERE height <= ?", (index_step.log_through,))
            staged = prepared.staged_state
            node_writes = staged.node_writes
            step = self._held.plan(header.height, node_writes)
            db.execute("INSERT INTO state_node_log VALUES (?, ?)",
                       (header.height, _pack_node_writes(node_writes)))
            _write_state_nodes(db, step.rows)
            if step.log_through is not None:
                db.execute("DELETE FROM state_node_log WHERE height <= ?", (step.log_through,))
            db.execute("UPDATE meta SET value = ? WHERE key = ?",
                       (cbor.encode(staged.size), _STATE_SIZE))
            # A plain INSERT: an id already in tx_ids is a replay that got this far.
            db.executemany("INSERT INTO tx_ids VALUES (?, ?)", tx_step.rows)
            if tx_step.mark != self._held_tx_ids.mark:
                db.execute("UPDATE meta SET value = ? WHERE key = ?",
                           (tx_step.mark.encode(), _TX_ID_MARK))
        # Only now that the transaction committed: a failed one left the rows as they were.
        self._held.applied(step, header.height, node_writes)
        self._held_tx_ids.applied(tx_step, tx_ids, first)
        self._held_index.applied(index_step, header.height, prepared.index_entries)
        self._bound_wal()
        # After the bound: a background checkpoint woken first would hold the lock the
        # TRUNCATE needs, and the WAL past its limit would wait for the next block.
        self._checkpointer.nudge()

    def _refuse_held_replays(self, tx_ids: Sequence[bytes]) -> None:
        """The store's own net under the node's replay check, before anything is
        written: no id twice in a block, none already held. An id already in `tx_ids`
        fails later, at the INSERT that writes its batch (ADR 0024)."""
        held = self._held_tx_ids
        if held.holds_any(tx_ids):
            again = next(tx_id for tx_id in tx_ids if held.lookup(tx_id) is not None)
            raise InvariantViolation(
                f"transaction {again.hex()} is committed already (held, ADR 0024)")
        if len(set(tx_ids)) != len(tx_ids):
            raise InvariantViolation("a block holds a transaction twice")

    def _restore_tx_ids(self) -> None:
        """Hold again the ids of the entries `tx_ids` does not hold; on a store before
        schema 5, fill `tx_ids` from `entries` first, in one transaction."""
        db = self._db
        raw = self._meta(_TX_ID_MARK)
        if raw is None:
            (size,), = db.execute("SELECT coalesce(max(log_index) + 1, 0) FROM entries")
            with immediate(db):
                # Sorted, so the rows are appended: a fill, not scattered inserts.
                db.execute("INSERT INTO tx_ids SELECT tx_id, log_index FROM entries "
                           "ORDER BY tx_id")
                db.execute("INSERT INTO meta VALUES (?, ?)",
                           (_TX_ID_MARK, TxIdMark(size, size).encode()))
            raw = self._meta(_TX_ID_MARK)
            assert raw is not None
        mark = TxIdMark.decode(raw)
        rows = db.execute("SELECT tx_id, log_index FROM entries WHERE log_index >= ? "
                          "ORDER BY log_index", (mark.through,))
        self._held_tx_ids.restore(mark, ((bytes(i), int(n)) for i, n in rows))

    def _flush_node_log(self) -> None:
        """Write every logged node write into `state_nodes` and empty the log, in one
        transaction, in height order (a later block's write wins)."""
        db = self._db
        rows = db.execute("SELECT height, writes FROM state_node_log ORDER BY height").fetchall()
        if not rows:
            return
        merged: dict[bytes, bytes | None] = {}
        for _, packed in rows:
            merged.update(_unpack_node_writes(bytes(packed)))
        with immediate(db):
            _write_state_nodes(db, list(merged.items()))
            db.execute("DELETE FROM state_node_log")
        self._held.clear()

    def _flush_index_log(self) -> None:
        """Write every logged index row into `indexes` and empty the log, in one
        transaction. Part of a batch may be in the table already: the same rows."""
        db = self._db
        rows = db.execute("SELECT rows FROM index_log ORDER BY height").fetchall()
        if not rows:
            return
        logged = sorted(row for (packed,) in rows for row in _unpack_index_rows(bytes(packed)))
        with immediate(db):
            db.executemany("INSERT OR IGNORE INTO indexes VALUES (?, ?, ?)", logged)
            db.execute("DELETE FROM index_log")
        self._held_index.clear()

    def _bound_wal(self) -> None:
        """Empty the WAL if it outgrew WAL_LIMIT_BYTES: a TRUNCATE checkpoint from the
        writer's own connection (it returns busy, and the next block tries again, while
        the background thread checkpoints)."""
        try:
            size = self._wal_path.stat().st_size
        except FileNotFoundError:
            return
        if size > WAL_LIMIT_BYTES:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def head(self) -> StoredBlock | None:
        row = self._db.execute(
            "SELECT header, txs, certificate, checkpoint FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        return None if row is None else self._stored(row)

    def block(self, height: int) -> StoredBlock:
        row = self._db.execute(
            "SELECT header, txs, certificate, checkpoint FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no block at height {height}")
        return self._stored(row)

    @staticmethod
    def _stored(row: tuple[bytes, bytes, bytes, str]) -> StoredBlock:
        header = BlockHeader.from_cbor(cbor.decode(bytes(row[0])))
        return StoredBlock(header, bytes(row[1]), bytes(row[2]), row[3])

    # --- the log ------------------------------------------------------------------
    def get_node(self, level: int, index: int) -> bytes:
        row = self._db.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        invariant(row is not None, f"log node ({level}, {index}) missing")
        return bytes(row[0])

    def entry(self, log_index: int) -> tuple[int, bytes]:
        """(height, entry bytes) of a log entry."""
        row = self._db.execute(
            "SELECT height, entry FROM entries WHERE log_index = ?", (log_index,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no log entry at index {log_index}")
        return int(row[0]), bytes(row[1])

    def entry_by_tx(self, tx_id: bytes) -> tuple[int, int, bytes] | None:
        """(log index, height, entry bytes) of a committed transaction."""
        log_index = self._held_tx_ids.lookup(tx_id)
        if log_index is None:
            row = self._db.execute("SELECT log_index FROM tx_ids WHERE tx_id = ?",
                                   (tx_id,)).fetchone()
            if row is None:
                return None
            log_index = int(row[0])
        height, entry = self.entry(log_index)
        return log_index, height, entry

    def committed(self, tx_ids: Sequence[bytes]) -> set[bytes]:
        held = self._held_tx_ids
        found = {tx_id for tx_id in tx_ids if held.lookup(tx_id) is not None}
        rest = [tx_id for tx_id in tx_ids if tx_id not in found]
        # Chunks stay under SQLite's bound on host parameters.
        for start in range(0, len(rest), 500):
            chunk = rest[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT tx_id FROM tx_ids WHERE tx_id IN ({marks})", chunk
            ).fetchall()
            found.update(bytes(r[0]) for r in rows)
        return found

    # --- state --------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def index_lookup(self, name: str, key: bytes, limit: int) -> list[int]:
        """Log indexes filed under (name, key), oldest first; a negative `limit` is
        none, as SQLite's LIMIT. The table holds a key's oldest, memory the newest."""
        rows = self._db.execute(
            "SELECT log_index FROM indexes WHERE name = ? AND key = ? ORDER BY log_index LIMIT ?",
            (name, key, limit)).fetchall()
        found = [int(r[0]) for r in rows]
        if limit < 0 or len(found) < limit:
            held = self._held_index.lookup(name, key)
            found.extend(held if limit < 0 else held[:limit - len(found)])
        return found

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]:
        """Log indexes filed under (name, key), newest first, below `before` if given."""
        bound = 2**63 - 1 if before is None else before
        held = [i for i in reversed(self._held_index.lookup(name, key)) if i < bound]
        if 0 <= limit <= len(held):
            return held[:limit]
        rows = self._db.execute(
            "SELECT log_index FROM indexes WHERE name = ? AND key = ? AND log_index < ? "
            "ORDER BY log_index DESC LIMIT ?",
            (name, key, bound, limit - len(held) if limit >= 0 else -1)).fetchall()
        return held + [int(r[0]) for r in rows]

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        """Up to `limit` state entries under `prefix`, in key order, strictly after the
        key `after` if given; `descending`: in reverse key order, strictly before `after`."""
        invariant(bool(prefix) and prefix[0] != 0xFF, "state_page prefix")
        end = prefix_end(prefix)
        if descending:
            high, op = (end, "<") if after is None else (after, "<")
            sql = (f"SELECT key, value FROM state WHERE key {op} ? AND key >= ? "
                   "ORDER BY key DESC LIMIT ?")
            rows = self._db.execute(sql, (high, prefix, limit)).fetchall()
        else:
            start, op = (prefix, ">=") if after is None else (after, ">")
            sql = f"SELECT key, value FROM state WHERE key {op} ? AND key < ? ORDER BY key LIMIT ?"
            rows = self._db.execute(sql, (start, end, limit)).fetchall()
        return [(bytes(k), bytes(v)) for k, v in rows]

    def headers_page(self, below: int | None, limit: int) -> list[BlockHeader]:
        """Up to `limit` block headers, highest first, below height `below` if given:
        headers only, so a page of a list never reads the blocks' transactions."""
        bound = 2**63 - 1 if below is None else below
        rows = self._db.execute(
            "SELECT header FROM blocks WHERE height < ? ORDER BY height DESC LIMIT ?",
            (bound, limit)).fetchall()
        return [BlockHeader.from_cbor(cbor.decode(bytes(r[0]))) for r in rows]

    def entries_page(self, below: int | None, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` (log index, entry bytes), newest first, below `below` if given."""
        bound = 2**63 - 1 if below is None else below
        rows = self._db.execute(
            "SELECT log_index, entry FROM entries WHERE log_index < ? "
            "ORDER BY log_index DESC LIMIT ?", (bound, limit)).fetchall()
        return [(int(i), bytes(e)) for i, e in rows]

    def block_by_hash(self, block_hash: bytes) -> int | None:
        row = self._db.execute("SELECT height FROM blocks WHERE hash = ?",
                               (block_hash,)).fetchone()
        return None if row is None else int(row[0])

    def state_range(self, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` state entries whose key starts with `prefix`, in key order."""
        invariant(bool(prefix) and prefix[0] != 0xFF, "state_range prefix")
        end = prefix_end(prefix)  # a range scan on the primary key
        rows = self._db.execute(
            "SELECT key, value FROM state WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
            (prefix, end, limit)).fetchall()
        return [(bytes(k), bytes(v)) for k, v in rows]

    def iter_state(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self._db.execute("SELECT key, value FROM state")  # BLOBs are bytes

    # --- state sync (ADR 0009) -----------------------------------------------------
    # A state sync stages verified blocks, entries, log nodes, index rows and state
    # records in the `sync_*` twins of the chain's tables, in several transactions;
    # nothing reads them. `finish_state_sync` then moves them into the chain's tables
    # and replaces the state in one transaction. Until then the head, its state, its
    # log and its indexes are untouched, and a crash leaves a mark that the next open
    # (`abandon_state_sync`) cleans up.
    def import_blocks(self, blocks: Sequence[tuple[ImportedBlock, bytes, str]]) -> None:
        """Queue verified blocks (with certificate and checkpoint note) of a state sync
        for writing. Durable only from `finish_state_sync` on: nothing claims them
        before. Written by a process of its own (`storage.imports`), on the other core
        while this one checks the next blocks."""
        if not blocks:
            return
        rows = [(block.header.height, block.header.block_hash, block.header.encode(),
                 cbor.encode([cbor.Encoded(e) for e in block.envelopes]), certificate,
                 checkpoint, block.entries, block.log_nodes, block.index_rows)
                for block, certificate, checkpoint in blocks]
        self._submit(rows)

    def import_state(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue verified state records of a state sync, staged until
        `finish_state_sync` makes them the state. Written in batches of at least
        _STATE_IMPORT_BATCH records: each transaction costs milliseconds (measured:
        256 chunk-sized ones took 8 s of the importer's time, 7 large ones under 1 s)."""
        self._state_rows.extend(records)
        if len(self._state_rows) >= _STATE_IMPORT_BATCH:
            rows, self._state_rows = self._state_rows, []
            self._submit(rows)

    def prepare_imports(self) -> None:
        """Start the import process now, while a state sync waits for its first
        answers, rather than at its first batch."""
        self._importer_started()

    def _importer_started(self) -> ImportWriter:
        if self._importer is None:
            # The importer's write transactions may briefly hold the write lock: wait
            # for it rather than fail (only a state sync ever contends).
            self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            try:
                self._importer = ImportWriter(self.path)
            except OSError as exc:  # no process to be had (EMFILE, ENOMEM): not a bug
                raise ImportFailed(f"state sync import process not started: {exc}") from exc
        return self._importer

    def _submit(self, rows: ImportBatch) -> None:
        """Hand a batch to the import process; raise ImportFailed (sticky) if it or
        anything before it failed."""
        if self._import_failure is not None:
            raise self._import_failure
        try:
            self._importer_started().submit(rows)
        except ImportFailed as exc:
            self._import_failure = exc
            raise

    def _drain_imports(self) -> None:
        """Wait until everything queued is written, and end the import process (even
        when a batch cannot be queued); raise ImportFailed (sticky) if anything
        failed."""
        try:
            if self._state_rows:
                rows, self._state_rows = self._state_rows, []
                self._submit(rows)
        finally:
            if self._importer is not None:
                importer, self._importer = self._importer, None
                try:
                    importer.stop()
                except ImportFailed as exc:
                    self._import_failure = self._import_failure or exc
        if self._import_failure is not None:
            raise self._import_failure

    def finish_state_sync(self, *, blocks: int, entries: int, records: int,
                          tree: StateTree | None = None) -> None:
        """Make the imported blocks the chain and the imported records the world state,
        atomically and durably (the caller checked the records against the last
        block's state root). `blocks`, `entries` and `records` are what the caller
        verified and imported: if the staged tables hold anything else (an import that
        failed), nothing is switched and ImportFailed is raised. `tree` is those records'
        state tree, in memory, which the caller built checking them (ADR 0021); without
        it the tree is built here from the records."""
        self._drain_imports()
        db = self._db
        with immediate(db):
            staged = {table: db.execute(f"SELECT count(*) FROM sync_{table}").fetchone()[0]
                      for table in ("blocks", "entries", "state")}
            if staged != {"blocks": blocks, "entries": entries, "state": records}:
                failure = ImportFailed(f"staged rows {staged} are not the {blocks} blocks, "
                                       f"{entries} entries and {records} records verified")
                self._import_failure = failure
                raise failure
            # Each staged table joins its twin by the cheaper way round: the smaller
            # side is copied into the other, which then takes the chain's name (a node
            # with no history copies nothing; one with a long history copies only what
            # it imported). DDL is transactional in SQLite: a crash leaves either the
            # old chain or the new one, whole. One decision for the four tables, by the
            # log sizes, which they follow.
            (have,), = db.execute("SELECT coalesce(max(log_index) + 1, 0) FROM entries")
            # Every id into tx_ids, the held ones and the imported: an open holds only
            # the entries past the mark, which moves to the new log size.
            db.executemany("INSERT INTO tx_ids VALUES (?, ?)", self._held_tx_ids.drain())
            db.executemany("INSERT INTO indexes VALUES (?, ?, ?)", self._held_index.held_rows())
            db.execute("DELETE FROM index_log")
            db.execute("INSERT INTO tx_ids SELECT tx_id, log_index FROM sync_entries "
                       "ORDER BY tx_id")
            for table in _STAGED_BESIDE:
                if have < entries:
                    db.execute(f"INSERT INTO sync_{table} SELECT * FROM {table}")
                    self._take_staged(table)
                else:
                    db.execute(f"INSERT INTO {table} SELECT * FROM sync_{table}")
                    db.execute(f"DELETE FROM sync_{table}")
            self._take_staged("state")  # the staged records are the whole state
            self._replace_state_tree(StateTree.from_items(self.iter_state())
                                     if tree is None else tree)
            (size,), = db.execute("SELECT coalesce(max(log_index) + 1, 0) FROM entries")
            db.execute("UPDATE meta SET value = ? WHERE key = ?",
                       (TxIdMark(size, size).encode(), _TX_ID_MARK))
            db.execute("DELETE FROM meta WHERE key = ?", (STATE_SYNC_MARK,))
        self._held.clear()  # the old tree's writes: replaced, log and all
        self._held_tx_ids.applied_all(size)
        self._held_index.clear()

    def _take_staged(self, table: str) -> None:
        """Make `sync_<table>` the table `table` (inside the caller's transaction),
        leaving an empty `sync_<table>`: renamed rather than copied (measured for the
        state at 100,000 records: 0.6 s less)."""
        db = self._db
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE sync_{table} RENAME TO {table}")
        db.execute(_create_table(table, f"sync_{table}"))

    def headers(self, low: int, high: int) -> list[tuple[BlockHeader, bytes]]:
        """(header, certificate) of the committed blocks low..high that exist."""
        rows = self._db.execute(
            "SELECT header, certificate FROM blocks WHERE height BETWEEN ? AND ? "
            "ORDER BY height", (low, high)).fetchall()
        return [(BlockHeader.from_cbor(cbor.decode(bytes(h))), bytes(c)) for h, c in rows]

    def entries_between(self, start: int, end: int) -> list[bytes]:
        """The log entries with index start..end - 1, in order."""
        rows = self._db.execute(
            "SELECT entry FROM entries WHERE log_index >= ? AND log_index < ? "
            "ORDER BY log_index", (start, end)).fetchall()
        return [bytes(r[0]) for r in rows]

    def abandon_state_sync(self) -> None:
        """Drop what an unfinished state sync staged. A no-op without one."""
        self._state_rows = []
        if self._importer is not None:
            with contextlib.suppress(ImportFailed):  # its rows go anyway
                self._drain_imports()
        self._import_failure = None
        if self._meta(STATE_SYNC_MARK) is None:
            return
        head = self.head()
        size = head.header.log_size if head else 0
        db = self._db
        with immediate(db):
            for table in _CHAIN_TABLES:
                db.execute(f"DELETE FROM sync_{table}")
            # Rows past the head in the chain's own tables are never the chain's: the
            # store before 2026-11-22 imported entries, log nodes and index rows there.
            db.execute("DELETE FROM entries WHERE log_index >= ?", (size,))
            # Log node (level, idx) covers leaves idx * 2**level .. (idx + 1) * 2**level.
            db.execute("DELETE FROM log_nodes WHERE ((idx + 1) << level) > ?", (size,))
            db.execute("DELETE FROM indexes WHERE log_index >= ?", (size,))
            db.execute("DELETE FROM meta WHERE key = ?", (STATE_SYNC_MARK,))

    # --- consensus safety data -----------------------------------------------------
    def save_safety(self, data: bytes, lock: bytes | None = None) -> None:
        """Durable before return (WAL + synchronous=FULL fsyncs at commit); `lock`
        (a new lock's proof) in the same transaction."""
        if lock is None:
            self._db.execute("INSERT OR REPLACE INTO safety VALUES (1, ?)", (data,))
            return
        self._db.execute("BEGIN")
        self._db.execute("INSERT OR REPLACE INTO safety VALUES (1, ?)", (data,))
        self._db.execute("INSERT OR REPLACE INTO lock VALUES (1, ?)", (lock,))
        self._db.execute("COMMIT")

    def load_lock(self) -> bytes | None:
        row = self._db.execute("SELECT data FROM lock WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def load_safety(self) -> bytes | None:
        row = self._db.execute("SELECT data FROM safety WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])


class StoreInUse(Rejected):
    code = "store_in_use"


def _exclusive_lock(lock_path: Path) -> IO[bytes]:
    """One process per store: two nodes writing one SQLite file would both commit
    blocks at the same height. The lock is released when the process dies."""
    handle = lock_path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(f"{lock_path.parent} is in use by another process "
                         "(is this node already running?)") from None
    return handle


_STATE_IMPORT_BATCH = 16_384


class _Checkpointer:
    """Folds the WAL into the database file from its own connection and thread.

    PASSIVE checkpoints never block the writer; sqlite3 releases the GIL while it
    copies pages and fsyncs, so this runs beside block execution on the other core.

    Each block's commit wakes it (`nudge`), so it copies one block's frames while the
    next block executes. The WAL starts over only when a commit begins after a
    checkpoint has copied every frame; checkpoints every 0.5 s, each copying what
    several commits wrote, almost never finished between two commits, and the WAL grew
    until a commit emptied it on the main thread (`_bound_wal`). Measured over 3,000
    blocks of 130 deposits: 0 of those commits instead of 29, commit p99 26 ms instead
    of 83 ms, 15% less commit CPU (docs/benchmarks.md).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self.failure: sqlite3.Error | None = None
        self._stop = threading.Event()
        self._committed = threading.Event()
        self.checkpoints = 0
        """Checkpoints run so far (read by tests)."""
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """A block committed: checkpoint its frames now."""
        self._committed.set()

    def _run(self) -> None:
        db = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._committed.wait(CHECKPOINT_INTERVAL_S)
                if self._stop.is_set():
                    break  # the store's close checkpoints what is left
                self._committed.clear()
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
        except sqlite3.Error as exc:
            # Without checkpoints the WAL grows without bound: the next block commit
            # sees `failure` and stops the node (see Store.commit_block).
            self.failure = exc
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._committed.set()  # wakes the thread, which then ends
        self._thread.join(timeout=10)




def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`: its last byte below 0xff
    incremented, the 0xff bytes after it dropped (a prefix may end in 0xff: a member key
    or an id inside it). A prefix starting with 0xff has no such key; none does, as
    every state key starts with its ASCII namespace."""
    stripped = prefix.rstrip(b"\xff")
    invariant(bool(stripped), "a state prefix of 0xff bytes only")
    return stripped[:-1] + bytes([stripped[-1] + 1])
