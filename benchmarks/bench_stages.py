"""Where one validator's CPU goes per deposit, stage by stage, in one process.

A four-validator network is made with `tide init --validators 4` in a temporary
directory; node1's real SQLite store and `Node` are opened as `tide node start` would.
Blocks of pre-signed evidence deposits are then put through each stage a validator runs
for a block another validator proposed, timed with the thread's CPU clock:

    decode    SignedTx.decode of each envelope (gossip, or a proposal's transactions)
    verify    the Ed25519 check (the node runs it on its verify threads)
    validate  Chain.validate: select (replay check) and prepare (execution, state root)
    commit    Store.commit_block: the SQLite transaction and its fsync
    advance   Chain.advance

It prints microseconds of CPU per deposit for each stage, and wall time for the commit.
Nothing here is a threshold; it is a tool for deciding what to optimise.

    .venv/bin/python benchmarks/bench_stages.py --blocks 20 --block-txs 1000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_node import presign

from tidechain.client.files import client_signer
from tidechain.consensus.certificate import CommitCertificate
from tidechain.core.crypto import verify
from tidechain.ledger.types import TX_SIGNING_DOMAIN, Genesis, SignedTx
from tidechain.node.config import load_node
from tidechain.node.node import Node
from tidechain.storage.store import Store


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--block-txs", type=int, default=1000)
    p.add_argument("--validators", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        net = Path(tmp) / "net"
        subprocess.run([sys.executable, "-m", "tidechain", "init", str(net), "--name", "stages",
                        "--validators", str(args.validators), "--port", "29000"],
                       check=True, capture_output=True)
        genesis = Genesis.decode((net / "genesis.cbor").read_bytes())
        config = load_node(net / f"node{1 if args.validators > 1 else 0}")
        store = Store(config.data_path)
        node = Node(genesis, store, config.signer())
        total = args.blocks * args.block_txs
        signed = presign(genesis.chain_id, client_signer(net).key.seed, b"stages\0\0", total,
                         int(time.time() * 1000) + 3600_000)
        cpu: dict[str, list[float]] = {k: [] for k in
                                       ("decode", "verify", "validate", "commit", "advance")}
        wall_commit: list[float] = []
        chain = node.chain
        for b in range(args.blocks):
            chunk = signed[b * args.block_txs:(b + 1) * args.block_txs]
            t = time.thread_time()
            txs = [SignedTx.decode(raw) for raw, _ in chunk]
            cpu["decode"].append(time.thread_time() - t)
            t = time.thread_time()
            for tx in txs:
                verify(tx.body.sender, TX_SIGNING_DOMAIN + tx.body_bytes, tx.signature)
            cpu["verify"].append(time.thread_time() - t)
            proposed = chain.prepare(txs, chain.head_time_ms + 1000, "node0")
            t = time.thread_time()
            prepared = chain.validate(proposed.header, txs, store.committed,
                                      lambda tx: True)
            cpu["validate"].append(time.thread_time() - t)
            certificate = CommitCertificate(prepared.header.height, 0, prepared.block_hash, ())
            t, w = time.thread_time(), time.perf_counter()
            store.commit_block(prepared, certificate.encode(), "")
            cpu["commit"].append(time.thread_time() - t)
            wall_commit.append(time.perf_counter() - w)
            t = time.thread_time()
            chain.advance(prepared)
            cpu["advance"].append(time.thread_time() - t)
            chain.state.settle()  # as the core does at its next step: the block is stored
        store.close()
    n = args.block_txs
    print(f"{args.blocks} blocks of {n} deposits, validator of {args.validators} "
          "(median per block, µs of CPU per deposit):")
    for stage, values in cpu.items():
        print(f"  {stage:<9} {statistics.median(values) / n * 1e6:7.1f}")
    print(f"  {'sum':<9} {sum(statistics.median(v) for v in cpu.values()) / n * 1e6:7.1f}")
    print(f"  commit wall {statistics.median(wall_commit) / n * 1e6:.1f} µs per deposit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
