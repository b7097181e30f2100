"""MemoryStore (storage/memory.py) against the SQLite Store it stands for (issue 12):
the same operations give the same answers from every read; real Nodes run on it, one
validator alone and four in a network, a state sync included; and a crash keeps
exactly what Store keeps after a `kill -9`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.helpers import GENESIS_TIME_MS, genesis, key, tx
from tests.node_effects import take_sends
from tidechain.client.files import trust_file_text
from tidechain.consensus import PRECOMMIT, Broadcast, CommitCertificate, Start, Tick
from tidechain.consensus.messages import sign_vote
from tidechain.contracts import default_registry
from tidechain.core import cbor, merkle
from tidechain.core.checkpoint import verify_checkpoint
from tidechain.core.errors import InvariantViolation, NotFound
from tidechain.core.limits import STATE_SYNC_MIN_BLOCKS
from tidechain.core.note import Signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger.chain import Chain, PreparedBlock, genesis_state
from tidechain.ledger.state_tree import StateTree, verify_state_proof
from tidechain.ledger.statesync import ImportedBlock, IndexRules, LogFeed
from tidechain.ledger.types import Genesis, SignedTx
from tidechain.node.node import Node
from tidechain.node.wire import StateChunk, encode_message
from tidechain.storage.held_tx_ids import TxIdMark
from tidechain.storage.imports import ImportFailed
from tidechain.storage.memory import MemoryStore
from tidechain.storage.protocol import NodeStorage
from tidechain.storage.store import Store

# --- a source chain, executed once by the real ledger ---------------------------------------

SOURCE_BLOCKS = 12


@dataclasses.dataclass(frozen=True)
class Source:
    genesis: Genesis
    blocks: tuple[PreparedBlock, ...]  # blocks[h - 1] is block h
    states: tuple[dict[bytes, bytes], ...]  # states[h]: the state after block h
    frontiers: tuple[merkle.CompactRange, ...]  # frontiers[h]: the log after block h

    def imported(self, low: int, high: int) -> list[tuple[ImportedBlock, bytes, str]]:
        """Blocks low..high as a state sync imports them (LogFeed checks each)."""
        feed = LogFeed(self.frontiers[low - 1].copy(), IndexRules(default_registry()))
        return [(feed.add_block(b.header, b.entries), b"cert %d" % b.height,
                 f"note {b.height}") for b in self.blocks[low - 1:high]]


def _block_txs(g: Genesis, height: int, first_index: int) -> list[SignedTx]:
    """0-3 deposits (digests repeat, so index keys gather several entries), an
    amendment every third block, a failing call every fifth."""
    txs = [tx(g, key((height + i) % 10), args={
        "digest": hashlib.sha256(b"doc %d" % ((height + i) % 4)).digest(),
        "meta": {"n": str(height)}}, nonce=height * 100 + i) for i in range(height % 4)]
    if height % 3 == 0 and first_index > 0:
        txs.append(tx(g, key(1), "amend", {"of": first_index - 1, "digest": bytes(32),
                                            "meta": {}}, nonce=height * 100 + 50))
    if height % 5 == 0:
        txs.append(tx(g, key(2), "nope", {}, nonce=height * 100 + 60))
    return txs


@functools.cache
def source() -> Source:
    g = genesis()
    registry = default_registry()
    chain = Chain.at_genesis(g, registry)
    state = dict(genesis_state(g, registry))
    blocks, states, frontiers = [], [dict(state)], [merkle.CompactRange()]
    for height in range(1, SOURCE_BLOCKS + 1):
        prepared = chain.prepare(_block_txs(g, height, chain.frontier.size),
                                 GENESIS_TIME_MS + height * 1000, g.validators[0].name)
        chain.advance(prepared)
        for k, v in prepared.writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        blocks.append(prepared)
        states.append(dict(state))
        frontiers.append(prepared.frontier_after.copy())
    return Source(g, tuple(blocks), tuple(states), tuple(frontiers))


def certificate(block: PreparedBlock) -> tuple[bytes, str]:
    return b"cert %d" % block.height, f"note {block.height}"


# --- every read, with probes that cover hits, misses and edges ------------------------------

def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        found = fn(*args)
        return "ok", list(found) if isinstance(found, Iterator) else found
    except NotFound as exc:
        return "NotFound", str(exc)
    except InvariantViolation as exc:
        return "InvariantViolation", str(exc)


@functools.cache
def _probes() -> dict[str, list[Any]]:
    src = source()
    keys = sorted({k for state in src.states for k in state})
    sample = [*keys[::max(1, len(keys) // 6)], keys[-1]]
    prefixes = {b"a", b"zz/", b"\x00", b"evidence/\xff"}
    for k in sample:
        namespace = k[:k.index(b"/") + 1]
        prefixes.update({namespace, k[:1], k[:-1] or k, k})
    index_keys = sorted({(n, k) for b in src.blocks for n, k, _ in b.index_entries})
    size = src.frontiers[-1].size
    return {
        "heights": list(range(-1, SOURCE_BLOCKS + 2)),
        "hashes": [b.block_hash for b in src.blocks] + [bytes(32)],
        "tx_ids": [t.tx_id for b in src.blocks for t in b.txs] + [bytes(32)],
        "log_indexes": list(range(-1, size + 2)),
        "nodes": [(level, i) for level in range(5) for i in range((size >> level) + 2)],
        "keys": [*sample, b"zz/extra 1", b"missing"],
        "prefixes": sorted(prefixes),
        "afters": [None, b"a", b"zzz", *sample[::2]],
        "index_keys": [*index_keys[:6], ("evidence/digest", bytes(32))],
        "belows": [None, 0, 1, 3, 7, 10**6],
        "limits": [-1, 0, 1, 3],
        "spans": [(0, 100), (1, 1), (2, 5), (5, 2), (-3, 0), (3, 10**6)],
    }


def observe(store: NodeStorage | Store | MemoryStore, counts: Counter[str]) -> list[Any]:
    """The answer of every read method over the probes."""
    p = _probes()
    seen: list[Any] = []

    def read(name: str, *args: Any) -> None:
        outcome = _outcome(getattr(store, name), *args)
        counts[f"read {outcome[0]}"] += 1
        seen.append((name, args, outcome))

    read("head")
    read("genesis")
    read("load_safety")
    read("load_lock")
    read("iter_state")
    read("state_size")
    for position in [b"", *(bytes([i]) for i in range(16)),
                     *(bytes([i, j]) for i in range(0, 16, 5) for j in range(16)), b"\x10"]:
        read("state_node", position)
    # The tree the store keeps (ADR 0021) is the tree of its state, read through a cache
    # too small to hold it.
    stored = StateTree.stored(store.state_node, store.get, store.state_size(), cache_nodes=4)
    whole = StateTree.from_items(store.iter_state())
    assert stored.root() == whole.root() and len(stored) == len(whole)
    counts["stored tree checked"] += 1
    read("committed", p["tx_ids"])
    for h in p["heights"]:
        read("block", h)
    for block_hash in p["hashes"]:
        read("block_by_hash", block_hash)
    for tx_id in p["tx_ids"]:
        read("entry_by_tx", tx_id)
    for i in p["log_indexes"]:
        read("entry", i)
    for level, i in p["nodes"]:
        read("get_node", level, i)
    for k in p["keys"]:
        read("get", k)
    for low, high in p["spans"]:
        read("headers", low, high)
        read("entries_between", low, high)
    for below in p["belows"]:
        for limit in p["limits"]:
            read("headers_page", below, limit)
            read("entries_page", below, limit)
    for name, k in p["index_keys"]:
        for limit in p["limits"]:
            read("index_lookup", name, k, limit)
            for before in p["belows"][:4]:
                read("index_page", name, k, before, limit)
    for prefix in [*p["prefixes"], b"", b"\xffx"]:
        read("state_range", prefix, 5)
        for after in p["afters"]:
            for descending in (False, True):
                read("state_page", prefix, after, 4, descending)
    return seen


# --- the differential test ------------------------------------------------------------------

FLUSH_NODES = 6
FLUSH_CHUNK = 2
FLUSH_ROWS = 3
TX_ID_FLUSH = 5
INDEX_FLUSH = 4
"""The Store's bounds on node writes held back from `state_nodes` (positions, log rows)
and the chunk of a frozen batch it writes per block (ADR 0022), on transaction ids held
back from `tx_ids` (ADR 0024) and on index rows held back from `indexes` (ADR 0025):
small, so that commits hold, freeze, write chunks and finish batches, and crashes
replay the logs and hold ids again."""


class Pair:
    """A Store in a temporary directory and a MemoryStore, given the same operations."""

    def __init__(self, root: Path, counts: Counter[str]) -> None:
        self.path = root / "chain.sqlite"
        self.sqlite = self._open_sqlite()
        self.memory = MemoryStore()
        self.counts = counts
        g = source().genesis
        for store in self.both():
            store.init_genesis(g, genesis_state(g, default_registry()))

    def both(self) -> tuple[NodeStorage, NodeStorage]:
        return self.sqlite, self.memory

    @property
    def height(self) -> int:
        head = self.memory.head()
        return 0 if head is None else head.header.height

    def check(self) -> None:
        assert observe(self.sqlite, self.counts) == observe(self.memory, Counter())
        self.counts["comparisons"] += 1

    def crash(self) -> None:
        """Store: closed (its import process drained) and opened again, which drops an
        unfinished state sync; MemoryStore: crashed and opened on what survived."""
        self.sqlite.close()
        if self.logged_nodes():
            self.counts["node log replayed at open"] += 1
        mark = self.tx_id_mark()
        if mark.through < mark.end:
            self.counts["tx ids held again mid-batch at open"] += 1
        if self.logged_index_rows():
            self.counts["index log written at open"] += 1
        self.sqlite = self._open_sqlite()
        assert self.logged_nodes() == 0
        self.memory = MemoryStore(self.memory.crash())
        self.counts["crashes"] += 1

    def _open_sqlite(self) -> Store:
        return Store(self.path, state_flush_nodes=FLUSH_NODES, state_flush_chunk=FLUSH_CHUNK,
                     state_flush_rows=FLUSH_ROWS, tx_id_flush=TX_ID_FLUSH,
                     index_flush=INDEX_FLUSH)

    def logged_index_rows(self) -> int:
        """Rows of the index log (ADR 0025), read past the Store."""
        with contextlib.closing(sqlite3.connect(self.path)) as raw:
            (rows,), = raw.execute("SELECT count(*) FROM index_log")
        return int(rows)

    def tx_id_mark(self) -> TxIdMark:
        """What `tx_ids` holds (ADR 0024), read past the Store."""
        with contextlib.closing(sqlite3.connect(self.path)) as raw:
            (value,), = raw.execute("SELECT value FROM meta WHERE key = 'tx_id_mark'")
        return TxIdMark.decode(bytes(value))

    def logged_nodes(self) -> int:
        """Rows of the state tree's node log (ADR 0022), read past the Store."""
        with contextlib.closing(sqlite3.connect(self.path)) as raw:
            (rows,), = raw.execute("SELECT count(*) FROM state_node_log")
        return int(rows)

    def both_raise(self, call: Callable[[NodeStorage], None],
                   sqlite_error: type[Exception], memory_error: type[Exception]) -> None:
        with pytest.raises(sqlite_error):
            call(self.sqlite)
        with pytest.raises(memory_error):
            call(self.memory)

    def commit(self, extra: str) -> None:
        height = self.height + 1
        if height > SOURCE_BLOCKS:
            return
        block = source().blocks[height - 1]
        if extra == "delete":  # a write that deletes a key this block leaves alone
            victim = next(k for k, _ in self.memory.iter_state() if k not in block.writes)
            block = dataclasses.replace(block, writes={**block.writes, victim: None})
        elif extra == "put":
            block = dataclasses.replace(block, writes={**block.writes,
                                                       b"zz/extra %d" % height: b"x"})
        # The state tree's node writes against this state, which an earlier forged
        # write may have made differ from the source's (ADR 0021).
        tree = StateTree.from_items(self.memory.iter_state())
        block = dataclasses.replace(block, staged_state=tree.stage(block.writes))
        logged, marked = self.logged_nodes(), self.tx_id_mark()
        indexes_logged = self.logged_index_rows() + (1 if block.index_entries else 0)
        for store in self.both():
            store.commit_block(block, *certificate(block))
        self.counts[f"commit {extra}"] += 1
        if self.logged_index_rows() < indexes_logged:
            self.counts["commit finished an index batch"] += 1
        mark = self.tx_id_mark()
        if mark.through > marked.through:
            self.counts["commit finished a tx id batch"] += 1
        elif mark.last != marked.last:
            self.counts["commit wrote part of a tx id batch"] += 1
        self.counts["commit finished a batch" if self.logged_nodes() <= logged
                    else "commit held its nodes"] += 1

    def recommit(self) -> None:
        """The head block again: refused whole by both (Store refuses its held
        transaction ids, ADR 0024, or lets SQLite's IntegrityError out for a block
        without any; MemoryStore raises InvariantViolation)."""
        if self.height == 0:
            return
        block = source().blocks[self.height - 1]
        error = InvariantViolation if block.txs else sqlite3.IntegrityError
        self.both_raise(lambda s: s.commit_block(block, *certificate(block)),
                        error, InvariantViolation)
        self.counts["recommit refused"] += 1

    def safety(self, data: bytes, lock: bytes | None) -> None:
        for store in self.both():
            store.save_safety(data, lock)
        self.counts["safety with lock" if lock else "safety"] += 1

    def sync(self, blocks: int, ending: str, chunks: int) -> None:
        src = source()
        low = self.height + 1 - (ending == "overlap")
        high = low + blocks - 1
        if low < 1 or high > SOURCE_BLOCKS:
            return
        imported = src.imported(low, high)
        records = sorted(src.states[high].items())
        entries = sum(len(b.entries) for b, _, _ in imported)
        if ending == "dup_record":
            records.append(records[0])
        for store in self.both():
            store.prepare_imports()
            for i in range(chunks):
                store.import_blocks(imported[i::chunks])
                store.import_state(records[i::chunks])
        counts = {"blocks": blocks, "entries": entries, "records": len(src.states[high])}
        if ending == "finish":
            for store in self.both():
                store.finish_state_sync(**counts)
        elif ending == "abandon":
            for store in self.both():
                store.abandon_state_sync()
        elif ending == "crash":
            self.crash()
        elif ending == "overlap":  # staged blocks the chain has: nothing switched
            self.both_raise(lambda s: s.finish_state_sync(**counts),
                            sqlite3.IntegrityError, InvariantViolation)
        else:  # a failed import: refused, and sticky until abandoned
            if ending == "bad_count":
                counts["records"] += 1
            for _ in range(2):
                self.both_raise(lambda s: s.finish_state_sync(**counts),
                                ImportFailed, ImportFailed)
            self.check()
            self.both_raise(lambda s: s.import_blocks(imported), ImportFailed, ImportFailed)
        if ending not in ("finish", "crash"):
            for store in self.both():
                store.abandon_state_sync()
        self.counts[f"sync {ending}"] += 1

    def close(self) -> None:
        self.sqlite.close()
        self.memory.close()


OPS = st.one_of(
    st.tuples(st.just("commit"), st.sampled_from(["plain", "plain", "delete", "put"])),
    st.tuples(st.just("safety"), st.binary(min_size=1, max_size=4),
              st.none() | st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("recommit")),
    st.tuples(st.just("sync"), st.integers(1, 3),
              st.sampled_from(["finish", "abandon", "crash", "bad_count", "dup_record",
                               "overlap"]),
              st.integers(1, 3)),
    st.tuples(st.just("crash")),
)
EVERY_KIND = [("commit", "plain"), ("safety", b"s1", b"l1"), ("commit", "delete"),
              ("sync", 2, "finish", 2), ("safety", b"s2", None), ("recommit",),
              ("sync", 1, "abandon", 1), ("commit", "put"), ("sync", 2, "crash", 3),
              ("sync", 1, "bad_count", 1), ("sync", 2, "dup_record", 2),
              ("sync", 2, "overlap", 1), ("crash",), ("commit", "plain")]
MID_BATCH_CRASH = [("commit", "plain")] * 3 + [("crash",)] + [("commit", "plain")] * 9
"""Blocks 1-3 hold 1, 2 and 4 transactions: block 3 freezes 7 ids and writes 6, so the
crash reopens a store whose `tx_ids` holds part of a batch (ADR 0024); the other nine
blocks freeze and finish batches of index rows (ADR 0025)."""


def apply(pair: Pair, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "commit":
        pair.commit(*args)
    elif kind == "safety":
        pair.safety(*args)
    elif kind == "recommit":
        pair.recommit()
    elif kind == "sync":
        pair.sync(*args)
    else:
        pair.crash()


def test_memory_store_answers_as_the_sqlite_store_does() -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=50)
    @given(st.lists(OPS, min_size=1, max_size=7))
    @example(EVERY_KIND)
    @example(MID_BATCH_CRASH)
    def run(ops: list[tuple[Any, ...]]) -> None:
        with tempfile.TemporaryDirectory() as root:
            pair = Pair(Path(root), counts)
            try:
                pair.check()
                for op in ops:
                    apply(pair, op)
                    pair.check()
            finally:
                pair.close()

    run()
    print(dict(sorted(counts.items())))
    for kind in ("commit plain", "commit delete", "commit put", "recommit refused",
                 "safety", "safety with lock", "sync finish", "sync abandon", "sync crash",
                 "sync bad_count", "sync dup_record", "sync overlap", "crashes",
                 "commit held its nodes", "commit finished a batch",
                 "node log replayed at open", "commit finished a tx id batch",
                 "commit wrote part of a tx id batch", "tx ids held again mid-batch at open",
                 "commit finished an index batch", "index log written at open",
                 "comparisons", "read ok", "read NotFound", "read InvariantViolation"):
        assert counts[kind] > 0, kind


@pytest.mark.parametrize("duplicate", [False, True])
def test_state_imports_over_a_batch_of_the_import_process_fail_and_finish_alike(
        tmp_path: Path, duplicate: bool) -> None:
    """Store hands state records to its import process in batches of 16,384; a batch
    that cannot be written fails the state sync at its finish, and every later batch."""
    pair = Pair(tmp_path, Counter())
    records = [(b"evidence/r %06d" % i, b"v %d" % i) for i in range(17_000)]
    first = records[:16_500] + ([records[0]] if duplicate else [])
    try:
        for store in pair.both():
            store.import_state(first)  # a batch goes at once
            store.import_state(records[16_500:])  # buffered until the finish
        counts = {"blocks": 0, "entries": 0, "records": len(records)}
        if duplicate:
            pair.both_raise(lambda s: s.finish_state_sync(**counts), ImportFailed, ImportFailed)
            pair.both_raise(lambda s: s.import_state(records), ImportFailed, ImportFailed)
            for store in pair.both():
                store.abandon_state_sync()
        else:
            for store in pair.both():
                store.finish_state_sync(**counts)
            assert list(pair.memory.iter_state()) == records
        pair.check()
    finally:
        pair.close()


# --- a crash: what a kill -9 leaves ---------------------------------------------------------

CRASH_OPS = [("commit", "plain"), ("commit", "plain"), ("safety", b"s1", b"lock 1"),
             ("commit", "plain"), ("safety", b"s2", None)]


def _stage(store: NodeStorage, height: int) -> None:
    """A state sync in progress: the next two blocks and the state staged."""
    store.prepare_imports()
    store.import_blocks(source().imported(height + 1, height + 2))
    store.import_state(sorted(source().states[height + 2].items()))


def test_a_crash_keeps_what_a_killed_sqlite_store_keeps(tmp_path: Path) -> None:
    """A child process does CRASH_OPS on a Store, starts a state sync, waits until the
    import process has written staged blocks, and kills itself (SIGKILL); the
    MemoryStore does the same and crashes. The reopened stores answer alike: committed
    blocks and the safety record kept, the state sync dropped."""
    path = tmp_path / "chain.sqlite"
    script = textwrap.dedent(f"""
        import os, signal, sqlite3, time
        from pathlib import Path
        from tests.test_memory_store import CRASH_OPS, Pair, _stage, apply
        from collections import Counter
        pair = Pair(Path({str(tmp_path)!r}), Counter())
        for op in CRASH_OPS:
            apply(pair, op)
        _stage(pair.sqlite, pair.height)
        raw = sqlite3.connect({str(path)!r})
        deadline = time.monotonic() + 30
        while raw.execute("SELECT count(*) FROM sync_blocks").fetchone()[0] < 2:
            assert time.monotonic() < deadline, "the import process wrote nothing"
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with sqlite3.connect(path) as raw:  # staged on disk, under the mark, before the open
        assert raw.execute("SELECT count(*) FROM sync_blocks").fetchone() == (2,)

    counts: Counter[str] = Counter()
    memory = Pair(tmp_path / "memory", counts)
    for op in CRASH_OPS:
        apply(memory, op)
    _stage(memory.memory, memory.height)
    reopened_memory = MemoryStore(memory.memory.crash())
    reopened = Store(path)
    try:
        assert observe(reopened, counts) == observe(reopened_memory, Counter())
        head = reopened_memory.head()
        assert head is not None and head.header.height == 3
        assert (reopened_memory.load_safety(), reopened_memory.load_lock()) == (b"s2", b"lock 1")
        # Nothing staged survived: a switch-over finds no rows.
        for store in (reopened, reopened_memory):
            with pytest.raises(ImportFailed, match="staged rows"):
                store.finish_state_sync(blocks=2, entries=1, records=1)
            store.abandon_state_sync()
    finally:
        reopened.close()
        memory.sqlite.close()


# --- real nodes on MemoryStores -------------------------------------------------------------

def _run_alone(node: Node, now_ms: int, size: int) -> int:
    """Tick a single validator until its log holds `size` entries."""
    for _ in range(500):
        if node.chain.frontier.size >= size:
            return now_ms
        now_ms += 10
        node.step(Tick(now_ms))
    raise AssertionError(f"stuck at {node.chain.frontier.size} entries")


def _single(store: NodeStorage) -> tuple[Node, int]:
    """One validator: ten deposits committed, through Start, admit and ticks."""
    g = genesis()
    node = Node(g, store, Signer(g.validators[0].name, key(1000)))
    now_ms = GENESIS_TIME_MS + 1000
    node.step(Start(now_ms))
    assert node.admit([tx(g, key(7), nonce=i) for i in range(10)], now_ms) == [None] * 10
    node.wake()
    return node, _run_alone(node, now_ms, 10)


def test_a_single_validator_commits_on_a_memory_store_and_resumes_after_a_crash(
        tmp_path: Path) -> None:
    g = genesis()
    node, now_ms = _single(MemoryStore())
    sqlite_node, _ = _single(Store(tmp_path / "chain.sqlite"))
    try:  # the same events give the same blocks on either store
        assert node.store.head() == sqlite_node.store.head()
    finally:
        sqlite_node.store.close()
    trust = parse_trust(trust_file_text(g))
    assert verify_receipt(node.views.receipt(4), trust).index == 4
    # A single validator's votes never leave it: it commits with no safety record.
    saved = node.store.load_safety()

    assert isinstance(node.store, MemoryStore)
    restarted = Node(g, MemoryStore(node.store.crash()), node.signer)
    assert (restarted.chain.height, restarted.chain.head_hash, restarted.chain.state.root(),
            restarted.chain.frontier.root()) == (
        node.chain.height, node.chain.head_hash, node.chain.state.root(),
        node.chain.frontier.root())
    assert restarted.store.load_safety() == saved
    assert restarted.views.checkpoint() == node.views.checkpoint()
    restarted.step(Start(now_ms))
    assert restarted.admit([tx(g, key(7), nonce=100 + i) for i in range(5)],
                           now_ms) == [None] * 5
    restarted.wake()
    _run_alone(restarted, now_ms, 15)
    assert restarted.chain.height > node.chain.height


class MemoryCluster:
    """tests/test_multinode.py's Cluster, on MemoryStores: four validators in one
    process, the real wire encoding routed by hand."""

    def __init__(self, g: Genesis, stores: list[MemoryStore]) -> None:
        self.genesis = g
        self.nodes = [Node(g, store, Signer(v.name, key(1000 + i)))
                      for i, (v, store) in enumerate(zip(g.validators, stores, strict=True))]
        self.now_ms = GENESIS_TIME_MS + 1000
        self.lost: tuple[type, ...] = ()  # messages of these types never arrive
        for node in self.nodes:
            node.step(Start(self.now_ms))

    def route(self) -> None:
        """Deliver queued messages until none is left."""
        moved = True
        while moved:
            moved = False
            for node in self.nodes:
                # As tests/test_multinode.py: the wire carries more than consensus.
                sends = take_sends(node)
                for action in sends:
                    moved = True
                    if isinstance(action.message, self.lost):
                        continue
                    data = encode_message(action.message)
                    for other in self.nodes:
                        if other is not node and (isinstance(action, Broadcast)
                                                  or other.signer.name == action.peer):
                            other.receive(node.signer.name, data, self.now_ms)

    def run(self, ms: int) -> None:
        for _ in range(ms // 10):
            self.now_ms += 10
            for node in self.nodes:
                node.step(Tick(self.now_ms))
                node.poll_sync(self.now_ms)
            self.route()

    def submit(self, txs: list[SignedTx], at: int) -> None:
        assert self.nodes[at].admit(txs, self.now_ms) == [None] * len(txs)
        self.nodes[at].wake()
        self.route()


def test_four_validators_on_memory_stores_commit_the_same_log_through_a_crash() -> None:
    g = genesis(validators=4)
    cluster = MemoryCluster(g, [MemoryStore() for _ in range(4)])
    cluster.submit([tx(g, key(7), nonce=i) for i in range(10)], at=0)
    cluster.run(2_000)
    # node2's process dies; restarted on its disk, it is where it was, safety record
    # and lock included, and goes on with the others.
    crashed = cluster.nodes[2]
    assert isinstance(crashed.store, MemoryStore)
    saved = (crashed.store.load_safety(), crashed.store.load_lock())
    assert saved[0] is not None
    restarted = Node(g, MemoryStore(crashed.store.crash()), crashed.signer)
    assert (restarted.store.load_safety(), restarted.store.load_lock()) == saved
    assert (restarted.chain.height, restarted.chain.head_hash, restarted.views.checkpoint()) == (
        crashed.chain.height, crashed.chain.head_hash, crashed.views.checkpoint())
    cluster.nodes[2] = restarted
    restarted.step(Start(cluster.now_ms))
    cluster.submit([tx(g, key(7), nonce=100 + i) for i in range(10)], at=1)
    cluster.run(2_000)
    heads = {(n.chain.height, n.chain.frontier.size, n.chain.frontier.root())
             for n in cluster.nodes}
    assert len(heads) == 1, heads
    (height, size, _), = heads
    assert size == 20 and height >= 2
    trust = parse_trust(trust_file_text(g))
    for node in cluster.nodes:
        _, signers = verify_checkpoint(node.views.checkpoint(), trust)
        assert len(signers) >= trust.quorum
        assert verify_receipt(node.views.receipt(13), trust).index == 13


SYNC_BLOCKS = STATE_SYNC_MIN_BLOCKS + 4


@functools.cache
def _certified_chain() -> Any:
    """A chain of SYNC_BLOCKS certified blocks (every validator precommits) on a
    MemoryStore: its disk image."""
    g = genesis(validators=4)
    store = MemoryStore()
    node = Node(g, store, Signer(g.validators[0].name, key(1000)))
    for height in range(1, SYNC_BLOCKS + 1):
        txs = [tx(g, key(7), nonce=height * 100 + i) for i in range(3)]
        prepared = node.chain.prepare(txs, node.chain.head_time_ms + 10,
                                      g.validators[height % 4].name)
        votes = tuple(sign_vote(key(1000 + i), v.name, node.validators.digest, PRECOMMIT,
                                height, 0, prepared) for i, v in enumerate(g.validators))
        node.commit_certified(prepared, CommitCertificate(height, 0, prepared.block_hash,
                                                          votes))
    return store.crash()


def test_a_node_far_behind_state_syncs_on_memory_stores_and_a_crash_drops_the_session(
        ) -> None:
    g = genesis(validators=4)
    image = _certified_chain()
    cluster = MemoryCluster(g, [*(MemoryStore(image) for _ in range(3)), MemoryStore()])
    behind = cluster.nodes[3]
    # The state never arrives: the session stages the verified blocks and waits, and
    # then the node's process dies.
    cluster.lost = (StateChunk,)
    cluster.run(100)
    assert isinstance(behind.store, MemoryStore)
    session = behind.core.state_sync
    assert session is not None and session.applied_to == SYNC_BLOCKS
    assert len(behind.store._staged.blocks) == SYNC_BLOCKS  # staged, not the chain's
    assert behind.store.head() is None and behind.chain.height == 0
    cluster.lost = ()
    restarted = Node(g, MemoryStore(behind.store.crash()), behind.signer)
    assert restarted.chain.height == 0 and restarted.store.head() is None  # dropped
    cluster.nodes[3] = restarted
    restarted.step(Start(cluster.now_ms))
    cluster.run(300)
    source, synced = cluster.nodes[0], restarted
    assert synced.chain.height == source.chain.height == SYNC_BLOCKS
    assert synced.blocks_committed == 0  # adopted by state sync, nothing re-executed
    assert (synced.chain.state.root(), synced.chain.frontier.root()) == (
        source.chain.state.root(), source.chain.frontier.root())
    assert list(synced.store.iter_state()) == list(source.store.iter_state())
    assert synced.store.block(SYNC_BLOCKS) == source.store.block(SYNC_BLOCKS)
    trust = parse_trust(trust_file_text(g))
    assert verify_receipt(synced.views.receipt(5, synced.views.reader(key(7).public_key,
                                                          synced.chain.head_time_ms)),
                          trust).index == 5
    # And it keeps up by consensus afterwards.
    cluster.submit([tx(g, key(7), nonce=99_999)], at=0)
    cluster.run(3_000)
    assert {n.chain.frontier.size for n in cluster.nodes} == {SYNC_BLOCKS * 3 + 1}


def test_a_closed_or_crashed_memory_store_answers_nothing() -> None:
    store = MemoryStore()
    image = store.crash()
    with pytest.raises(InvariantViolation, match="closed"):
        store.head()
    reopened = MemoryStore(image)
    reopened.close()
    reopened.close()  # twice, as Store allows
    with pytest.raises(InvariantViolation, match="closed"):
        reopened.save_safety(b"x")


def test_a_store_from_before_adr_0021_builds_its_state_tree_nodes_when_opened(
        tmp_path: Path) -> None:
    """A store without `state_nodes` rows and `state_size` (as every store written
    before ADR 0021) gets them on open, in one transaction, from its state table."""
    src = source()
    path = tmp_path / "chain.sqlite"
    store = Store(path)
    store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
    for block in src.blocks[:5]:
        store.commit_block(block, *certificate(block))
    expected = StateTree.from_items(store.iter_state())
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM state_nodes")
        db.execute("DELETE FROM meta WHERE key = 'state_size'")
    store = Store(path)
    try:
        assert store.state_size() == len(expected) > 0
        reopened = StateTree.stored(store.state_node, store.get, store.state_size(), cache_nodes=3)
        assert reopened.root() == expected.root() == src.blocks[4].header.state_root
        node = Node(src.genesis, store, Signer(src.genesis.validators[0].name, key(1000)))
        assert node.chain.height == 5 and node.chain.state.root() == expected.root()
    finally:
        store.close()


@pytest.mark.parametrize(("flush_nodes", "chunk", "tx_id_flush"),
                         [(1_000_000, 8_000, 1_000_000), (9, 2, 7)])
def test_a_killed_store_writes_its_logged_node_writes_when_opened(
        tmp_path: Path, flush_nodes: int, chunk: int, tx_id_flush: int) -> None:
    # Index rows (ADR 0025) are held with the same bound as transaction ids.
    """ADR 0022: a child process commits blocks, logging their state tree node writes
    (a bound it never reaches, or one it crosses now and then, with batches written two
    positions per block), and is killed (SIGKILL). The reopened store writes the log
    into `state_nodes`, and its tree is the tree of its state, at the killed store's
    head. ADR 0024 likewise: the transaction ids it held (all of them, or those past a
    batch it was writing two ids per block) are held again, and every transaction is
    found. ADR 0025: its logged index rows are written when opened, and every key's
    rows read back."""
    path = tmp_path / "chain.sqlite"
    blocks = 12
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from tests.test_memory_store import certificate, default_registry, source
        from tidechain.ledger.chain import genesis_state
        from tidechain.storage.store import Store
        src = source()
        store = Store(Path({str(path)!r}), state_flush_nodes={flush_nodes},
                      state_flush_chunk={chunk}, tx_id_flush={tx_id_flush},
                      index_flush={tx_id_flush})
        store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
        for block in src.blocks[:{blocks}]:
            store.commit_block(block, *certificate(block))
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with contextlib.closing(sqlite3.connect(path)) as raw:
        (logged,), = raw.execute("SELECT count(*) FROM state_node_log")
    assert 0 < logged < blocks if flush_nodes < 1000 else logged == blocks
    with contextlib.closing(sqlite3.connect(path)) as raw:
        (value,), = raw.execute("SELECT value FROM meta WHERE key = 'tx_id_mark'")
        (written,), = raw.execute("SELECT count(*) FROM tx_ids")
        (index_logged,), = raw.execute("SELECT count(*) FROM index_log")
    mark = TxIdMark.decode(bytes(value))
    txs = [(t.tx_id, b.first_log_index + i)
           for b in source().blocks[:blocks] for i, t in enumerate(b.txs)]
    # Killed while writing a batch: the table holds part of it.
    assert mark.through < mark.end and 0 < written < len(txs) if tx_id_flush < 1000 \
        else written == 0
    assert index_logged > 0
    store = Store(path)
    try:
        with contextlib.closing(sqlite3.connect(path)) as raw:
            assert raw.execute("SELECT count(*) FROM state_node_log").fetchone() == (0,)
        head = store.head()
        assert head is not None and head.header.height == blocks
        expected = StateTree.from_items(store.iter_state())
        reopened = StateTree.stored(store.state_node, store.get, store.state_size(), cache_nodes=3)
        assert reopened.root() == expected.root() == head.header.state_root
        assert len(reopened) == len(expected)
        for position, record in expected.node_items():  # every node, not just the root
            assert store.state_node(position) == record
        for tx_id, index in txs:
            assert store.entry_by_tx(tx_id)[0] == index  # type: ignore[index]
        assert store.committed([t for t, _ in txs] + [bytes(32)]) == {t for t, _ in txs}
        filed: dict[tuple[str, bytes], list[int]] = {}
        for block in source().blocks[:blocks]:
            for name, index_key, log_index in block.index_entries:
                filed.setdefault((name, index_key), []).append(log_index)
        for (name, index_key), indexes in filed.items():
            assert store.index_lookup(name, index_key, -1) == indexes
            assert store.index_page(name, index_key, None, -1) == indexes[::-1]
        with contextlib.closing(sqlite3.connect(path)) as raw:
            assert raw.execute("SELECT count(*) FROM index_log").fetchone() == (0,)
    finally:
        store.close()


def test_older_schemas_are_upgraded_and_a_later_schema_refused(tmp_path: Path) -> None:
    """Schema 3 added `state_node_log` (ADR 0022), 4 leaves without values (ADR 0023), 5
    `tx_ids` (ADR 0024): a store at 2 to 4 opens and is marked 5; a store at a schema
    this software does not know is refused by name."""
    path = tmp_path / "chain.sqlite"
    Store(path).close()
    for older, opens in ((2, True), (3, True), (4, True), (6, False)):
        with contextlib.closing(sqlite3.connect(path)) as raw, raw:
            raw.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (cbor.encode(older),))
        if opens:
            Store(path).close()
            with contextlib.closing(sqlite3.connect(path)) as raw:
                (value,), = raw.execute("SELECT value FROM meta WHERE key = 'schema'")
            assert cbor.decode(bytes(value)) == 5
        else:
            with pytest.raises(InvariantViolation, match="schema 6 unsupported"):
                Store(path)


def test_a_store_before_tx_ids_fills_them_from_its_entries_when_opened(tmp_path: Path) -> None:
    """ADR 0024: a store at schema 4 has no `tx_ids` and no mark. Opened, it fills
    `tx_ids` from `entries` in one transaction, holds nothing, and finds every
    transaction."""
    path = tmp_path / "chain.sqlite"
    src = source()
    store = Store(path)
    store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
    for block in src.blocks:
        store.commit_block(block, *certificate(block))
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("DROP TABLE tx_ids")
        raw.execute("DELETE FROM meta WHERE key = 'tx_id_mark'")
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (cbor.encode(4),))
    txs = {t.tx_id: b.first_log_index + i for b in src.blocks for i, t in enumerate(b.txs)}
    size = src.frontiers[-1].size
    assert len(txs) == size > 10
    store = Store(path)
    try:
        for tx_id, index in txs.items():
            assert store.entry_by_tx(tx_id)[0] == index  # type: ignore[index]
        with contextlib.closing(sqlite3.connect(path)) as raw:
            assert dict(raw.execute("SELECT tx_id, log_index FROM tx_ids")) == txs
            (value,), = raw.execute("SELECT value FROM meta WHERE key = 'tx_id_mark'")
        assert TxIdMark.decode(bytes(value)) == TxIdMark(size, size)
    finally:
        store.close()


def test_leaves_written_with_their_values_before_adr_0023_still_read(tmp_path: Path) -> None:
    """A store at schema 3 holds each leaf's value after its 65-byte preimage. Opened
    now, its tree reads every value from the state rows (the walk, the cache and the
    proofs agree), a block staged over the old leaves gives the in-memory tree's root,
    and every leaf the block writes holds no value."""
    path = tmp_path / "chain.sqlite"
    src = source()
    store = Store(path)
    store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
    for block in src.blocks[:5]:
        store.commit_block(block, *certificate(block))
    state = dict(store.iter_state())
    store.close()
    Store(path).close()  # opening writes the logged node writes into state_nodes
    by_hash = {hashlib.sha256(k).digest(): v for k, v in state.items()}
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        leaves = [(bytes(p), bytes(r)) for p, r in raw.execute(
            "SELECT position, record FROM state_nodes WHERE substr(record, 1, 1) = x'10'")]
        assert all(len(record) == 65 for _, record in leaves) and len(leaves) == len(state)
        raw.executemany("UPDATE state_nodes SET record = ? WHERE position = ?",
                        [(r + by_hash[r[1:33]], p) for p, r in leaves])
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (cbor.encode(3),))
    store = Store(path)
    try:
        fat = sum(len(store.state_node(p) or b"") > 65 for p, _ in leaves)
        assert fat == len(leaves) > 10
        tree = StateTree.stored(store.state_node, store.get, store.state_size(), cache_nodes=3)
        memory = StateTree.from_items(state.items())
        assert tree.root() == memory.root() == src.blocks[4].header.state_root
        for key, value in state.items():
            assert tree.get(key) == tree.read(key) == value
            verify_state_proof(tree.root(), key, value, tree.prove(key))
        changes: dict[bytes, bytes | None] = {k: b"new " + k for k in list(state)[:8]}
        changes.update({b"test/new %d" % i: b"v" for i in range(40)})
        changes[list(state)[9]] = None
        staged = tree.stage(changes)
        assert staged.root == memory.preview_root(changes)
        written = [r for r in staged.node_writes.values() if r is not None and r[0] == 0x10]
        assert len(written) >= 48 and all(len(r) == 65 for r in written)
        moved = 0  # a delete that leaves a lone leaf moves it up: without its value too
        for doomed in state:
            staged = tree.stage({doomed: None})
            rest = StateTree.from_items((k, v) for k, v in state.items() if k != doomed)
            assert staged.root == rest.root()
            written = [r for r in staged.node_writes.values() if r is not None and r[0] == 0x10]
            assert all(len(r) == 65 for r in written)
            moved += len(written)
        assert moved > 0
    finally:
        store.close()


def test_a_block_the_store_cannot_write_stops_the_node(tmp_path: Path) -> None:
    """The core has advanced past a block when the shell writes it (ADR 0020), so a
    failed write (here SQLite's "disk I/O error") is a broken invariant, which stops the
    node on every path, not an error that only ends a peer's connection. Reopened, the
    store holds what it held before the block."""
    g = genesis()
    store = Store(tmp_path / "chain.sqlite")
    node = Node(g, store, Signer(g.validators[0].name, key(1000)))
    now_ms = GENESIS_TIME_MS + 1000
    node.step(Start(now_ms))
    assert node.admit([tx(g, key(7), nonce=i) for i in range(5)], now_ms) == [None] * 5
    node.wake()
    now_ms = _run_alone(node, now_ms, 5)
    height = node.chain.height

    def failing(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    store.commit_block = failing  # type: ignore[method-assign]
    assert node.admit([tx(g, key(7), nonce=100 + i) for i in range(5)], now_ms) == [None] * 5
    node.wake()
    with pytest.raises(InvariantViolation, match=f"block {height + 1} was committed but "
                                                 "could not be written: OperationalError"):
        _run_alone(node, now_ms, 10)
    store.close()
    reopened = Store(tmp_path / "chain.sqlite")
    try:
        head = reopened.head()
        assert head is not None and head.header.height == height
    finally:
        reopened.close()


def _commit_watching_the_wal(path: Path, *, wait_for_checkpoints: bool) -> tuple[list[int], int]:
    """Commit the source's blocks (with `wait_for_checkpoints`, waiting after each
    until the background thread has run a checkpoint): the WAL's size after each
    commit, and the checkpoints run."""
    src = source()
    store = Store(path)
    wal = path.with_name(path.name + "-wal")
    sizes = []
    try:
        store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
        for block in src.blocks:
            before = store._checkpointer.checkpoints
            store.commit_block(block, *certificate(block))
            sizes.append(wal.stat().st_size)
            deadline = time.monotonic() + 60  # a bound on a hung thread, not a timing
            while wait_for_checkpoints and store._checkpointer.checkpoints == before:
                assert time.monotonic() < deadline, "no checkpoint after a commit"
                time.sleep(0.005)
        return sizes, store._checkpointer.checkpoints
    finally:
        store.close()


def test_every_commit_wakes_the_checkpointer_so_the_wal_starts_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit wakes the background checkpointer at once (its timer is an hour here),
    and a commit that begins after a complete checkpoint starts the WAL over, so the
    file stops growing. Without the wake-up no checkpoint
    runs between commits and the WAL holds every block."""
    from tidechain.storage import store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    woken, runs = _commit_watching_the_wal(tmp_path / "woken.sqlite",
                                           wait_for_checkpoints=True)
    assert runs >= SOURCE_BLOCKS
    monkeypatch.setattr(store_module._Checkpointer, "nudge", lambda self: None)
    unwoken, no_runs = _commit_watching_the_wal(tmp_path / "unwoken.sqlite",
                                                wait_for_checkpoints=False)
    assert no_runs == 0
    assert unwoken == sorted(set(unwoken)), unwoken  # grew with every commit
    # Woken: every later block's frames overwrite the file's start, which the first
    # commit (with the genesis state's frames) made larger than any block's.
    assert woken == [woken[0]] * SOURCE_BLOCKS and woken[0] < unwoken[-1], (woken, unwoken)


def test_a_block_commit_empties_a_wal_past_its_limit(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The background checkpoints never block the writer, so under a steady stream of
    blocks the WAL could grow without end; past WAL_LIMIT_BYTES a commit empties it
    (a TRUNCATE checkpoint, retried at the next block if the background thread held
    the checkpoint). The background thread is kept idle here, so that every commit
    past the limit is the one that empties the WAL. New stores use PAGE_BYTES pages."""
    from tidechain.storage import store as store_module

    monkeypatch.setattr(store_module, "WAL_LIMIT_BYTES", 16 * 1024)
    monkeypatch.setattr(store_module, "CHECKPOINT_INTERVAL_S", 3600.0)
    monkeypatch.setattr(store_module._Checkpointer, "nudge", lambda self: None)
    src = source()
    path = tmp_path / "chain.sqlite"
    store = Store(path)
    wal = path.with_name(path.name + "-wal")
    emptied = 0
    try:
        store.init_genesis(src.genesis, genesis_state(src.genesis, default_registry()))
        for block in src.blocks:
            store.commit_block(block, *certificate(block))
            emptied += wal.stat().st_size == 0
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA page_size").fetchone()[0] == store_module.PAGE_BYTES
    finally:
        store.close()
    assert emptied >= len(src.blocks) // 2, emptied
    reopened = Store(path)
    try:
        head = reopened.head()
        assert head is not None and head.header == src.blocks[-1].header
        assert dict(reopened.iter_state()) == src.states[-1]
    finally:
        reopened.close()
