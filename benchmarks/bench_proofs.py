"""Merkle proof cost at scale: target under 1 ms per proof at 10 million entries.

Builds a log of N synthetic leaves through CompactRange.append (the node's append
path), storing every completed perfect node in a compact store (one bytearray per
level, 32 bytes a node), then times proof generation and verification at random
indices and sizes. Prints the mean and p99 per proof and the command that
reproduces the run.

    .venv/bin/python benchmarks/bench_proofs.py --size 10000000
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeAlias

from tidechain.core.merkle import (
    HASH_BYTES,
    CompactRange,
    MemoryNodeStore,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)


class LevelArrayStore:
    """Append-only node store: level L's nodes packed in one bytearray, in index order.

    About 32 bytes per node, against roughly 200 for a dict of tuple keys, so 10
    million leaves (20 million nodes) fit in ~640 MB.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def put(self, level: int, index: int, value: bytes) -> None:
        if level == len(self._levels):
            self._levels.append(bytearray())
        packed = self._levels[level]
        if len(packed) != index * HASH_BYTES:
            raise ValueError(f"nodes must arrive in order: level {level}, index {index}")
        packed += value

    def get_node(self, level: int, index: int) -> bytes:
        start = index * HASH_BYTES
        packed = self._levels[level]
        if start + HASH_BYTES > len(packed):
            raise KeyError((level, index))
        return bytes(packed[start : start + HASH_BYTES])


Store: TypeAlias = LevelArrayStore | MemoryNodeStore


def build(size: int, store: Store) -> tuple[CompactRange, float, float]:
    """Append `size` synthetic leaves. Returns the frontier, the seconds spent making
    leaf hashes, and the seconds spent appending and storing nodes."""
    started = time.perf_counter()
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
    hashed = time.perf_counter()
    frontier = CompactRange()
    append = frontier.append
    put = store.put
    for leaf in leaves:
        for level, index, value in append(leaf):
            put(level, index, value)
    appended = time.perf_counter()
    return frontier, hashed - started, appended - hashed


def percentile(samples_ns: list[int], fraction: float) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def report(name: str, samples_ns: list[int]) -> None:
    mean_ms = statistics.fmean(samples_ns) / 1e6
    print(f"  {name:<34} mean {mean_ms:.4f} ms   p99 {percentile(samples_ns, 0.99):.4f} ms")


def time_inclusion(
    store: NodeReader, size: int, root: bytes, rng: random.Random, count: int
) -> None:
    generate: list[int] = []
    verify: list[int] = []
    both: list[int] = []
    clock: Callable[[], int] = time.perf_counter_ns
    for _ in range(count):
        index = rng.randrange(size)
        leaf = store.get_node(0, index)
        t0 = clock()
        proof = inclusion_proof(store, index, size)
        t1 = clock()
        verify_inclusion(leaf, index, size, proof, root)
        t2 = clock()
        generate.append(t1 - t0)
        verify.append(t2 - t1)
        both.append(t2 - t0)
    report("inclusion: generate", generate)
    report("inclusion: verify", verify)
    report("inclusion: generate + verify", both)


def time_consistency(store: NodeReader, size: int, rng: random.Random, count: int) -> None:
    generate: list[int] = []
    verify: list[int] = []
    both: list[int] = []
    roots: list[int] = []
    clock: Callable[[], int] = time.perf_counter_ns
    for _ in range(count):
        size2 = rng.randint(1, size)
        size1 = rng.randint(1, size2)
        t0 = clock()
        root1 = root_at(store, size1)
        t1 = clock()
        root2 = root_at(store, size2)
        t2 = clock()
        proof = consistency_proof(store, size1, size2)
        t3 = clock()
        verify_consistency(size1, size2, proof, root1, root2)
        t4 = clock()
        roots.append(t1 - t0)
        roots.append(t2 - t1)
        generate.append(t3 - t2)
        verify.append(t4 - t3)
        both.append(t4 - t2)
    report("root_at (any past size)", roots)
    report("consistency: generate", generate)
    report("consistency: verify", verify)
    report("consistency: generate + verify", both)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000, help="leaves in the log")
    parser.add_argument("--proofs", type=int, default=20_000, help="proofs of each kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store",
        choices=("array", "dict"),
        default="array",
        help="array: one bytearray per level; dict: MemoryNodeStore",
    )
    args = parser.parse_args()

    store: Store = LevelArrayStore() if args.store == "array" else MemoryNodeStore()
    print(f"building a log of {args.size:,} leaves ({args.store} store)...", flush=True)
    frontier, hash_s, append_s = build(args.size, store)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  leaf hashes: {hash_s:.1f} s")
    print(
        f"  appends + node stores: {append_s:.1f} s "
        f"({args.size / append_s:,.0f} appends/s), peak RSS {rss_mb:,.0f} MB"
    )
    root = frontier.root()
    if root != root_at(store, args.size):
        sys.exit("root_at disagrees with CompactRange.root()")

    rng = random.Random(args.seed)
    print(f"timing {args.proofs:,} proofs of each kind (per proof):")
    time_inclusion(store, args.size, root, rng, args.proofs)
    time_consistency(store, args.size, rng, args.proofs)
    print(
        "reproduce: .venv/bin/python benchmarks/bench_proofs.py "
        f"--size {args.size} --proofs {args.proofs} --seed {args.seed} --store {args.store}"
    )
    print(f"python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
