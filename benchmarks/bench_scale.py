"""Where one validator's CPU goes per deposit as its store grows, in one process.

A one-validator network is made with `tide init` in a temporary directory (under
--dir, /tmp by default: the store reaches ~1.6 KB per deposit, 3 GB at 2 million).
Its real SQLite store and `Node` are opened as `tide node start` would, and blocks of
pre-signed evidence deposits are executed (`Chain.prepare`) and committed
(`Store.commit_block`) back to back, with the background WAL checkpointer running as
in a node. After every --every blocks it prints, per deposit over those blocks:

    decode    SignedTx.decode of each envelope
    prepare   Chain.prepare: execution, the state root (`stage` is its share)
    commit    Store.commit_block: CPU, and wall time with the fsync
    sql       the commit's CPU by statement (COMMIT: writing the WAL pages)

and the rate of the loop. No signature is checked and no HTTP is served, so the rate is
an upper bound on what the node can do at that size; what grows with the size is the
point. Nothing here is a threshold; it is a tool for deciding what to optimise next.

    .venv/bin/python benchmarks/bench_scale.py                          # 1.2 M, ~4 min
    .venv/bin/python benchmarks/bench_scale.py --blocks 1000 --block-txs 2000 --every 100
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_node import presign

from tidechain.client.files import client_signer
from tidechain.consensus.certificate import CommitCertificate
from tidechain.ledger import state_tree
from tidechain.ledger.types import Genesis, SignedTx
from tidechain.node.config import load_node
from tidechain.node.node import Node
from tidechain.storage.store import Store


class TimedConnection:
    """The store's connection, with each statement's CPU added to `spent` by its text."""

    def __init__(self, db: sqlite3.Connection, spent: collections.defaultdict[str, float]
                 ) -> None:
        self._db = db
        self._spent = spent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        started = time.thread_time()
        try:
            return self._db.execute(sql, *args)
        finally:
            self._spent[_label(sql)] += time.thread_time() - started

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        started = time.thread_time()
        try:
            return self._db.executemany(sql, rows)
        finally:
            self._spent[_label(sql)] += time.thread_time() - started


def _label(sql: str) -> str:
    words = sql.split()
    if words[0] in ("INSERT", "DELETE", "UPDATE") and "INTO" in words:
        return f"{words[0]} {words[words.index('INTO') + 1]}"
    if words[0] == "DELETE":
        return f"DELETE {words[2]}"
    return " ".join(words[:2])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=600)
    p.add_argument("--block-txs", type=int, default=2000)
    p.add_argument("--every", type=int, default=100, help="blocks per printed line")
    p.add_argument("--dir", default=None, help="where the store goes (default: /tmp)")
    args = p.parse_args()
    if args.blocks < 1 or args.block_txs < 1 or args.every < 1:
        p.error("--blocks, --block-txs and --every must be positive")
    spent_staging = [0.0]
    stage = state_tree.StateTree.stage

    def timed_stage(tree: state_tree.StateTree, changes: Any) -> state_tree.StagedBatch:
        started = time.thread_time()
        try:
            return stage(tree, changes)
        finally:
            spent_staging[0] += time.thread_time() - started

    state_tree.StateTree.stage = timed_stage  # type: ignore[method-assign,assignment]
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.dir) as tmp:
        net = Path(tmp) / "net"
        subprocess.run([sys.executable, "-m", "tidechain", "init", str(net), "--name", "scale",
                        "--validators", "1", "--port", "29000"], check=True, capture_output=True)
        genesis = Genesis.decode((net / "genesis.cbor").read_bytes())
        config = load_node(net / "node0")
        store = Store(config.data_path)
        node = Node(genesis, store, config.signer())
        chain = node.chain
        seed = client_signer(net).key.seed
        # As `tide node start` tunes the collector (node/serve.py).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, *gc.get_threshold()[1:])
        done = 0
        for first in range(0, args.blocks, args.every):
            blocks = min(args.every, args.blocks - first)
            count = blocks * args.block_txs
            signed = presign(genesis.chain_id, seed, b"s%07d" % first, count,
                             int(time.time() * 1000) + 3_600_000)
            cpu: collections.defaultdict[str, float] = collections.defaultdict(float)
            sql: collections.defaultdict[str, float] = collections.defaultdict(float)
            spent_staging[0] = 0.0
            started = time.perf_counter()
            for b in range(blocks):
                chunk = signed[b * args.block_txs:(b + 1) * args.block_txs]
                t = time.thread_time()
                txs = [SignedTx.decode(raw) for raw, _ in chunk]
                cpu["decode"] += time.thread_time() - t
                t = time.thread_time()
                prepared = chain.prepare(txs, chain.head_time_ms + 1000, "node0")
                cpu["prepare"] += time.thread_time() - t
                certificate = CommitCertificate(prepared.header.height, 0, prepared.block_hash, ())
                real = store._db
                store._db = TimedConnection(real, sql)  # type: ignore[assignment]
                t, wall = time.thread_time(), time.perf_counter()
                try:
                    store.commit_block(prepared, certificate.encode(), "")
                finally:
                    store._db = real
                cpu["commit"] += time.thread_time() - t
                cpu["commit wall"] += time.perf_counter() - wall
                chain.advance(prepared)
                chain.state.settle()  # as the core does at its next step
            rate = count / (time.perf_counter() - started)
            done += count
            size = os.path.getsize(config.data_path) / 2**30
            per = {k: v / count * 1e6 for k, v in cpu.items()}
            print(f"at {done / 1e6:.2f} M deposits ({size:.2f} GiB): decode {per['decode']:.1f}, "
                  f"prepare {per['prepare']:.1f} (stage {spent_staging[0] / count * 1e6:.1f}), "
                  f"commit {per['commit']:.1f} (wall {per['commit wall']:.1f}) µs per deposit; "
                  f"{rate:,.0f} deposits/s", flush=True)
            costliest = sorted(sql.items(), key=lambda kv: -kv[1])[:8]
            print("    sql: " + "; ".join(f"{k} {v / count * 1e6:.1f}" for k, v in costliest),
                  flush=True)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
