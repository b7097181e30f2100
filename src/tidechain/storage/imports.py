"""Writing a state sync's verified rows into the store from a process of its own.

A state sync (ADR 0009) verifies peers' answers on the node's main thread and writes
what passed (entries, log nodes, index rows, staged blocks and state records: ~500,000
rows for 100,000 transactions) to SQLite. Written from a thread of the node's process,
the writes and the checks took turns on the GIL (sqlite3 binds every row's parameters
under it, and re-takes it for each row); measured at 100,000 transactions, the writes
then cost the catch-up ~1.5 s of its 6.3 s. A child process has its own interpreter:
the two run on two cores.

The parent (`ImportWriter`, a thread in the node) sends batches down the child's stdin
as length-prefixed `marshal` frames (a pipe between two processes of this program,
carrying only tuples, lists, ints, bytes and str; never data from a file or a peer),
then an END frame; the child (`python -m tidechain.storage.imports DB`) writes each
batch in one transaction and exits 0 after END. A child whose parent dies is killed
by the kernel (Linux: PR_SET_PDEATHSIG), so it never commits after its node is gone;
what it committed before carries the state-sync mark, which the next open of the store
cleans up (`Store.abandon_state_sync`).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

STATE_SYNC_MARK = "state_sync"
"""Meta key present while a state sync has imported rows that no block claims yet."""

BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 256 * 1024
"""SQLite page cache: the random-key indexes (tx ids, digests) stay in memory."""

IMPORT_QUEUE = 4
"""Batches (each ~1-3 MiB) waiting for the child: a bound, so verification waits for
the disk rather than piling up memory."""

_LENGTH = struct.Struct(">Q")
_END = b""
"""The frame after the last batch: the child exits 0 once everything is written."""

ImportRow = tuple[int, bytes, bytes, bytes, bytes, str, list[tuple[int, bytes, int, bytes]],
                  list[tuple[int, int, bytes]], list[tuple[str, bytes, int]]]
ImportBatch = list[ImportRow] | list[tuple[bytes, bytes]]
"""Blocks (height, hash, header, txs, certificate, checkpoint, entries, log nodes,
index rows), or state records (key, value)."""


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed if the block ends normally, rolled back on any
    exception (a failed COMMIT may have rolled back already)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def write_imports(db: sqlite3.Connection, batch: ImportBatch) -> None:
    """One batch in one transaction, with the mark that says it is unclaimed."""
    with immediate(db):
        db.execute("INSERT OR IGNORE INTO meta VALUES (?, x'01')", (STATE_SYNC_MARK,))
        if batch and len(batch[0]) == 2:  # state records
            # In key order, as the table stores them: appends to a few pages at a time
            # instead of landing all over the B-tree (measured: 0.32 s instead of
            # 0.57 s for 100,000 records).
            db.executemany("INSERT INTO sync_state VALUES (?, ?)",
                           sorted(batch))
            return
        for height, block_hash, header, txs, certificate, checkpoint, entries, nodes, \
                index_rows in cast(list[ImportRow], batch):
            db.execute("INSERT INTO sync_blocks VALUES (?, ?, ?, ?, ?, ?)",
                       (height, block_hash, header, txs, certificate, checkpoint))
            db.executemany("INSERT INTO sync_entries VALUES (?, ?, ?, ?)", entries)
            db.executemany("INSERT INTO sync_log_nodes VALUES (?, ?, ?)", nodes)
            db.executemany("INSERT INTO sync_indexes VALUES (?, ?, ?)", index_rows)


class ImportFailed(Exception):
    """The import process failed or died (a full disk, an I/O error, the OOM killer, a
    signal): what it was given may not all be written. Not a broken invariant of the
    node's logic: the node abandons the state sync and may try again later. Sticky:
    every later call of the same writer raises it too."""


class ImportWriter:
    """The node's side: starts the child, and feeds it from a thread of its own so the
    main thread never waits for the child's start-up or a pipe write; `submit` waits
    only when IMPORT_QUEUE batches are already waiting."""

    def __init__(self, path: Path) -> None:
        self._queue: queue.Queue[ImportBatch | None] = queue.Queue(IMPORT_QUEUE)
        self.failure: str | None = None
        # -P: the child must import this installation, never a `tidechain/` that happens
        # to sit in the node's working directory (python -m would put it first). The
        # parent's pid lets the child check it still has its parent once it can be
        # killed with it (see module doc).
        self._child = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__, str(path), str(os.getpid())],
            stdin=subprocess.PIPE)
        self._thread = threading.Thread(target=self._feed, name="state-sync-import",
                                        daemon=True)
        self._thread.start()

    def submit(self, rows: ImportBatch) -> None:
        """Queue a batch; raise ImportFailed if anything failed so far."""
        self._check()
        while True:  # never wait for a feeder that has stopped
            try:
                self._queue.put(rows, timeout=0.5)
                return
            except queue.Full:
                self._check()

    def stop(self) -> None:
        """Write what is queued, then end the child; raise ImportFailed if any write
        failed."""
        while self._thread.is_alive():  # never wait for a feeder that has stopped
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        code = self._child.wait()
        if code != 0 and self.failure is None:
            self.failure = f"the import process exited with {code}"
        self._check(feeding=False)

    def _check(self, *, feeding: bool = True) -> None:
        if self.failure is None and feeding and not self._thread.is_alive():
            self.failure = "the import feeder stopped"
        if self.failure is not None:
            raise ImportFailed(f"state sync import failed: {self.failure}")

    def _feed(self) -> None:
        pipe = self._child.stdin
        assert pipe is not None
        try:
            while (rows := self._queue.get()) is not None:
                if self.failure is None:
                    _send(pipe, marshal.dumps(rows, 4))
            _send(pipe, _END)
        except BaseException as exc:  # the child died (its exit code tells why), or a bug
            self.failure = f"{exc!r}"
        finally:
            with contextlib.suppress(OSError):
                pipe.close()


def _send(pipe: IO[bytes], frame: bytes) -> None:
    pipe.write(_LENGTH.pack(len(frame)))
    pipe.write(frame)
    pipe.flush()


def _receive(pipe: IO[bytes]) -> bytes | None:
    """The next frame, or None at end of input (the parent is gone without END)."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    frame = pipe.read(length)
    return frame if len(frame) == length else None


def _die_with_parent(parent: int) -> bool:
    """Ask Linux to SIGKILL this process when its parent exits (elsewhere the child
    stops at its next read, which sees end of input); False if the parent is gone
    already (it died while this interpreter started)."""
    if sys.platform.startswith("linux"):
        import ctypes
        pr_set_pdeathsig, sigkill = 1, 9
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)
    return os.getppid() == parent


def connect_for_imports(path: Path) -> sqlite3.Connection:
    """The import connection: no fsync per transaction (synchronous=OFF) and no
    checkpoints of its own (wal_autocheckpoint=0). In WAL mode a commit without fsync
    risks only its own frames, which the checksums drop after a power loss, and
    checkpoints stay with the node's checkpointer, which syncs the WAL before copying
    it; so a power loss may drop imports that no head claims yet, never corrupt the
    file, and `finish_state_sync` commits with FULL, which makes everything before
    durable. Measured: 1.2 s instead of 1.8 s for 100,000 entries with NORMAL."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return db


def main(argv: list[str]) -> int:
    """The child (argv: the database, the parent's pid): write each batch from stdin;
    0 after END, 3 if the parent is gone or the input ended without END (nothing more
    is written then)."""
    if not _die_with_parent(int(argv[2])):
        return 3
    db = connect_for_imports(Path(argv[1]))
    try:
        while (frame := _receive(sys.stdin.buffer)) is not None:
            if frame == _END:
                return 0
            write_imports(db, marshal.loads(frame))
        return 3
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
