"""Benchmark of the world-state tree (ADR 0003).

Prints, for each tree size: the rebuild time (`StateTree.from_items`), the cost of a
block-sized batch (stage + commit) in updates/s, the memory per key, and the size,
build and verification time of proofs. Every figure is measured in this run.

Reproduce with (from the repository root):

    .venv/bin/python benchmarks/bench_state_tree.py
    .venv/bin/python benchmarks/bench_state_tree.py --sizes 10000,100000 --batches 10

A batch is 4,000 changes on random keys: half overwrite existing keys, 40% insert new
keys and 10% delete existing keys. Values are 32 bytes. Times are the median over the
batches, wall clock and CPU (CPU is steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from tidechain.ledger.state_tree import StateProof, StateTree, verify_state_proof

P = ParamSpec("P")
R = TypeVar("R")
SEED = 20_260_101
VALUE_BYTES = 32


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float


def timed(action: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> tuple[R, Timing]:
    """Run `action(*args, **kwargs)`; return its result and how long it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action(*args, **kwargs)
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def key_of(index: int) -> bytes:
    return b"acct/%09d" % index


def value_of(index: int, version: int) -> bytes:
    return hashlib.sha256(b"%d/%d" % (index, version)).digest()[:VALUE_BYTES]


def initial_items(size: int) -> Iterator[tuple[bytes, bytes]]:
    return ((key_of(i), value_of(i, 0)) for i in range(size))


class Workload:
    """Block-sized batches over a key space that it tracks, so deletes hit live keys."""

    def __init__(self, size: int, batch_size: int, rng: random.Random) -> None:
        self.live = list(range(size))
        self.next_index = size
        self.batch_size = batch_size
        self.rng = rng
        self.version = 0

    def next_batch(self) -> dict[bytes, bytes | None]:
        self.version += 1
        overwrites = self.batch_size // 2
        deletes = self.batch_size // 10
        inserts = self.batch_size - overwrites - deletes
        picked = self.rng.sample(range(len(self.live)), overwrites + deletes)
        batch: dict[bytes, bytes | None] = {}
        for slot in picked[:overwrites]:
            batch[key_of(self.live[slot])] = value_of(self.live[slot], self.version)
        for slot in sorted(picked[overwrites:], reverse=True):
            batch[key_of(self.live[slot])] = None
            self.live[slot] = self.live[-1]
            self.live.pop()
        for _ in range(inserts):
            batch[key_of(self.next_index)] = value_of(self.next_index, self.version)
            self.live.append(self.next_index)
            self.next_index += 1
        return batch


class FullCollectionCounter:
    """Counts the cycle collector's full passes and their time while installed."""

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.total_s += time.perf_counter() - self._started


def node_map_bytes(tree: StateTree) -> int:
    """Bytes held by the tree: its dict and every key and record in it (values included)."""
    nodes: dict[bytes, bytes] = tree._nodes
    return sys.getsizeof(nodes) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in nodes.items())


def bench_batches(tree: StateTree, workload: Workload, count: int) -> None:
    stage_times: list[Timing] = []
    commit_times: list[Timing] = []
    collector = FullCollectionCounter()
    gc.callbacks.append(collector)
    try:
        for _ in range(count):
            staged, stage_time = timed(tree.stage, workload.next_batch())
            _, commit_time = timed(tree.commit, staged)
            stage_times.append(stage_time)
            commit_times.append(commit_time)
    finally:
        gc.callbacks.remove(collector)
    stage_wall = statistics.median(t.wall_s for t in stage_times)
    stage_cpu = statistics.median(t.cpu_s for t in stage_times)
    commit_wall = statistics.median(t.wall_s for t in commit_times)
    total_wall = stage_wall + commit_wall
    print(
        f"  batch of {workload.batch_size}: stage {stage_wall * 1e3:.1f} ms wall "
        f"({stage_cpu * 1e3:.1f} ms CPU), commit {commit_wall * 1e3:.1f} ms; "
        f"apply = {workload.batch_size / total_wall:,.0f} updates/s "
        f"(best batch {min(t.wall_s for t in stage_times) * 1e3:.1f} ms, "
        f"worst {max(t.wall_s for t in stage_times) * 1e3:.1f} ms)"
    )
    print(
        f"  full GC passes during {count} batches: {collector.count} "
        f"({collector.total_s * 1e3:.0f} ms in all)"
    )


def bench_proofs(tree: StateTree, workload: Workload, count: int, rng: random.Random) -> None:
    present = [key_of(workload.live[rng.randrange(len(workload.live))]) for _ in range(count)]
    absent = [b"absent/%d" % i for i in range(count)]
    for label, keys in (("present", present), ("absent", absent)):
        values = [tree.get(key) for key in keys]
        proofs, prove = timed(prove_all, tree, keys)
        _, verify = timed(verify_all, tree.root(), keys, values, proofs)
        sizes = [len(proof.to_bytes()) for proof in proofs]
        depths = [len(proof.siblings) for proof in proofs]
        print(
            f"  proofs of {label} keys ({count}): {statistics.mean(sizes):,.0f} bytes mean, "
            f"{max(sizes):,} max; depth {statistics.mean(depths):.1f} mean, {max(depths)} max; "
            f"prove {prove.wall_s / count * 1e6:.0f} us, "
            f"decode + verify {verify.wall_s / count * 1e6:.0f} us"
        )


def prove_all(tree: StateTree, keys: list[bytes]) -> list[StateProof]:
    return [tree.prove(key) for key in keys]


def verify_all(
    root: bytes, keys: list[bytes], values: list[bytes | None], proofs: list[StateProof]
) -> None:
    for key, value, proof in zip(keys, values, proofs, strict=True):
        verify_state_proof(root, key, value, StateProof.from_bytes(proof.to_bytes()))


def run(size: int, batches: int, batch_size: int, proofs: int) -> None:
    rng = random.Random(SEED + size)
    print(f"tree of {size:,} keys")
    tree, rebuild = timed(StateTree.from_items, initial_items(size))
    print(
        f"  rebuild (from_items): {rebuild.wall_s:.2f} s wall, {rebuild.cpu_s:.2f} s CPU "
        f"({size / rebuild.wall_s:,.0f} keys/s)"
    )
    print(f"  memory: {node_map_bytes(tree) / len(tree):.0f} bytes per key (32-byte values inside)")
    workload = Workload(size, batch_size, rng)
    bench_batches(tree, workload, batches)
    bench_proofs(tree, workload, proofs, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--proofs", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"state tree benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    for size in (int(s) for s in args.sizes.split(",")):
        run(size, args.batches, args.batch_size, args.proofs)


if __name__ == "__main__":
    main()
