"""The state-sync import process and the switch-over (storage/imports.py, ADR 0009):
rows go through a child process into real SQLite files; a failed write is reported,
never lost in silence; a child whose node dies goes with it; the staged blocks and
state become the chain whichever side is bigger."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tidechain.storage.imports import ImportFailed
from tidechain.storage.store import Store


def _raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path, isolation_level=None))


def _block_row(height: int, table: str) -> tuple[object, ...]:
    return (height, b"hash%d" % height, b"header", b"txs", b"cert", f"{table} {height}")


def test_state_records_written_by_the_child_become_the_state(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = Store(path)
    records = [(b"key %05d" % i, b"value %d" % i) for i in range(20_000)]
    store.prepare_imports()
    store.import_state(records[:17_000])  # one batch goes to the child at once
    store.import_state(records[17_000:])  # the rest at the switch-over
    store.finish_state_sync(blocks=0, entries=0, records=len(records))
    assert dict(store.iter_state()) == dict(records)
    store.close()
    with _raw(path) as raw:
        assert raw.execute("SELECT count(*) FROM sync_state").fetchone() == (0,)
        assert raw.execute("SELECT count(*) FROM meta WHERE key = 'state_sync'").fetchone() \
            == (0,)


def test_a_failed_write_in_the_child_is_raised_not_lost(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    store.import_state([(b"same key", b"1"), (b"same key", b"2")])  # a primary key twice
    with pytest.raises(ImportFailed, match="exited with 1"):
        store.finish_state_sync(blocks=0, entries=0, records=2)
    store.close()
    reopened = Store(tmp_path / "node.sqlite")
    assert list(reopened.iter_state()) == []  # nothing half-switched
    reopened.close()


@pytest.mark.parametrize(("have", "staged"), [(0, 3), (1, 3), (4, 2)])
def test_staged_rows_join_the_chain_whichever_side_is_bigger(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, have: int, staged: int) -> None:
    path = tmp_path / "node.sqlite"
    Store(path).close()  # the schema
    chain = range(1, have + 1)
    imported = range(have + 1, have + staged + 1)
    with _raw(path) as raw:
        for prefix, heights in (("", chain), ("sync_", imported)):
            raw.executemany(f"INSERT INTO {prefix}blocks VALUES (?, ?, ?, ?, ?, ?)",
                            [_block_row(h, prefix or "chain") for h in heights])
            # One entry per block, its log node and an index row.
            raw.executemany(f"INSERT INTO {prefix}entries VALUES (?, ?, ?, ?)",
                            [(h - 1, b"tx%d" % h, h, b"entry") for h in heights])
            raw.executemany(f"INSERT INTO {prefix}log_nodes VALUES (0, ?, ?)",
                            [(h - 1, b"leaf%d" % h) for h in heights])
            raw.executemany(f"INSERT INTO {prefix}indexes VALUES ('evidence/digest', ?, ?)",
                            [(b"digest%d" % h, h - 1) for h in heights])
        raw.execute("INSERT INTO meta VALUES ('state_sync', x'01')")
    # Opened without the clean-up of an unfinished sync, which would drop the rows
    # written by hand above.
    monkeypatch.setattr(Store, "abandon_state_sync", lambda self: None)
    store = Store(path)
    monkeypatch.undo()
    store.finish_state_sync(blocks=staged, entries=staged, records=0)
    store.close()
    everything = range(1, have + staged + 1)
    with _raw(path) as raw:
        rows = raw.execute("SELECT height, checkpoint FROM blocks ORDER BY height").fetchall()
        assert rows == [(h, f"{'chain' if h <= have else 'sync_'} {h}") for h in everything]
        assert raw.execute("SELECT log_index, tx_id FROM entries ORDER BY log_index"
                           ).fetchall() == [(h - 1, b"tx%d" % h) for h in everything]
        assert raw.execute("SELECT count(*) FROM log_nodes").fetchone() == (have + staged,)
        assert raw.execute("SELECT count(*) FROM indexes").fetchone() == (have + staged,)
        for table in ("blocks", "entries", "log_nodes", "indexes", "state"):
            assert raw.execute(f"SELECT count(*) FROM sync_{table}").fetchone() == (0,)
        with pytest.raises(sqlite3.IntegrityError):  # still one block per hash
            raw.execute("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?)",
                        (99, b"hash1", b"h", b"t", b"c", "x"))
        # Every id is in tx_ids, held ones and imported ones alike (ADR 0024), and
        # still once.
        assert raw.execute("SELECT tx_id, log_index FROM tx_ids ORDER BY log_index"
                           ).fetchall() == [(b"tx%d" % h, h - 1) for h in everything]
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute("INSERT INTO tx_ids VALUES (?, 99)", (b"tx1",))


def test_the_import_process_dies_with_its_node(tmp_path: Path) -> None:
    """Killed by the kernel with its node (PR_SET_PDEATHSIG), not only by the end of
    its input: a sleeper here holds the pipe's write end open after the node dies."""
    script = textwrap.dedent(f"""
        import subprocess, time
        from pathlib import Path
        from tidechain.storage.store import Store
        store = Store(Path({str(tmp_path / "node.sqlite")!r}))
        store.prepare_imports()
        child = store._importer._child
        holder = subprocess.Popen(["sleep", "60"], pass_fds=(child.stdin.fileno(),))
        time.sleep(1)  # the child is past its start-up
        print(child.pid, holder.pid, flush=True)
        time.sleep(60)
    """)
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    holder = 0
    try:
        assert node.stdout is not None
        child, holder = (int(pid) for pid in node.stdout.readline().split())
        assert _alive(child)
    finally:
        node.send_signal(signal.SIGKILL)
        node.wait()
    try:
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child)
        assert _alive(holder)  # the pipe was still open: the kernel killed the child
    finally:
        if holder:
            os.kill(holder, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it can write nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_import_process_never_lets_the_switch_over_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    records = [(b"key %05d" % i, b"value") for i in range(20_000)]
    store.import_state(records[:17_000])
    importer = store._importer
    assert importer is not None
    importer._child.kill()  # before or while it writes: what it was given is lost
    store.import_state(records[17_000:])
    for _ in range(2):  # and stays refused: no later call switches half the state in
        with pytest.raises(ImportFailed):
            store.finish_state_sync(blocks=0, entries=0, records=len(records))
    assert list(store.iter_state()) == []
    store.abandon_state_sync()  # the node starts over: a new session works
    store.import_state(records)
    store.finish_state_sync(blocks=0, entries=0, records=len(records))
    assert dict(store.iter_state()) == dict(records)
    store.close()


def test_staged_rows_that_are_not_what_was_verified_are_never_switched_in(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    store.import_state([(b"a", b"1"), (b"b", b"2")])
    with pytest.raises(ImportFailed, match="not the 0 blocks, 0 entries and 3 records"):
        store.finish_state_sync(blocks=0, entries=0, records=3)
    assert list(store.iter_state()) == []
    store.close()


def test_the_import_process_ignores_a_tidechain_in_the_working_directory(
        tmp_path: Path) -> None:
    """python -m puts the working directory first on sys.path: a planted package there
    must not run in the import process (it runs with -P)."""
    planted = tmp_path / "cwd" / "tidechain" / "storage"
    planted.mkdir(parents=True)
    marker = tmp_path / "planted-code-ran"
    (planted.parent / "__init__.py").write_text("")
    (planted / "__init__.py").write_text("")
    (planted / "imports.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from tidechain.storage.store import Store
        store = Store(Path({str(tmp_path / "node.sqlite")!r}))
        store.import_state([(b"k", b"v")])
        store.finish_state_sync(blocks=0, entries=0, records=1)
        store.close()
    """)
    # The node itself runs with -P here too, or it would import the plant first.
    subprocess.run([sys.executable, "-P", "-c", script], cwd=planted.parents[1], check=True)
    assert not marker.exists()


def test_no_process_to_be_had_is_an_import_failure_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidechain.storage import store as store_module

    def no_process(path: Path) -> None:
        raise OSError(24, "Too many open files")

    store = Store(tmp_path / "node.sqlite")
    monkeypatch.setattr(store_module, "ImportWriter", no_process)
    with pytest.raises(ImportFailed, match="not started"):
        store.prepare_imports()
    monkeypatch.undo()
    store.prepare_imports()  # not sticky: the next session may start
    store.import_state([(b"k", b"v")])
    store.finish_state_sync(blocks=0, entries=0, records=1)
    assert list(store.iter_state()) == [(b"k", b"v")]
    store.close()
