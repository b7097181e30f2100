"""Offline receipt verification rate on one core (BRIEF target: >= 1,000 receipts/s).

Builds a log of real deposit entries in memory, a checkpoint signed by N validators
(quorum per the trust file), and receipts for random entries; then times
`tidechain.client.verify.verify_deposit_receipt` (parse, quorum signatures, RFC 9162
inclusion, entry decode, depositor signature, document digest) on this one process.

    .venv/bin/python benchmarks/bench_receipts.py [--validators 4] [--log-size 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import time
from datetime import UTC, datetime

from tidechain.client.verify import verify_deposit_receipt
from tidechain.core import merkle
from tidechain.core.checkpoint import Checkpoint, sign_checkpoint
from tidechain.core.crypto import SigningKey
from tidechain.core.note import Signer, Verifier
from tidechain.core.receipt import Receipt, format_receipt
from tidechain.core.trust import Trust, format_trust
from tidechain.ledger.types import (
    Genesis,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--log-size", type=int, default=100_000)
    parser.add_argument("--receipts", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rng = random.Random(1)
    keys = [SigningKey(hashlib.sha256(b"validator %d" % i).digest())
            for i in range(args.validators)]
    signers = [Signer(f"bench-net/node{i}", k) for i, k in enumerate(keys)]
    genesis = Genesis("bench-net", 1_760_000_000_000,
                      tuple(GenesisValidator(s.name, s.key.public_key) for s in signers))
    trust = Trust.of([Verifier.of(s.name, s.key.public_key) for s in signers],
                     origin=genesis.origin)
    trust_text = format_trust(trust)
    depositor = SigningKey(hashlib.sha256(b"depositor").digest())

    store = merkle.MemoryNodeStore()
    frontier = merkle.CompactRange()
    sample = set(rng.sample(range(args.log_size), min(args.receipts, args.log_size)))
    entries: dict[int, tuple[bytes, bytes]] = {}
    t0 = time.perf_counter()
    for index in range(args.log_size):
        if index in sample:
            digest = hashlib.sha256(b"document %d" % index).digest()
            body = TxBody(genesis.chain_id, depositor.public_key, index.to_bytes(16, "big"),
                          genesis.time_ms + 10**9, "evidence", "deposit",
                          {"digest": digest, "meta": {"title": f"doc {index}"}})
            entry = LogEntry(SignedTx.create(body, depositor), 1 + index // 1000,
                             genesis.time_ms + index, TxResult(ok=True)).encode()
            entries[index] = (entry, digest)
            leaf = merkle.leaf_hash(entry)
        else:
            leaf = hashlib.sha256(b"filler %d" % index).digest()
        for level, idx, value in frontier.append(leaf):
            store.put(level, idx, value)
    build_s = time.perf_counter() - t0
    quorum = trust.quorum
    note = sign_checkpoint(Checkpoint(genesis.origin, frontier.size, frontier.root()),
                           signers[:quorum])
    receipts = []
    for index, (entry, digest) in entries.items():
        proof = merkle.inclusion_proof(store, index, frontier.size)
        receipts.append((format_receipt(Receipt(index, tuple(proof), note, entry)), digest))

    done = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        text, digest = receipts[done % len(receipts)]
        verify_deposit_receipt(text, trust_text, digest)
        done += 1
    elapsed = time.perf_counter() - start
    print(f"date      {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"machine   {platform.machine()}, Python {platform.python_version()}")
    print(f"log       {args.log_size:,} entries (built in {build_s:.1f} s); "
          f"{args.validators} validators, checkpoint signed by {quorum} (quorum)")
    print(f"receipts  {done:,} verified in {elapsed:.2f} s on one core")
    print(f"rate      {done / elapsed:,.0f} receipts/s "
          f"(target >= 1,000: {'PASS' if done / elapsed >= 1000 else 'FAIL'})")
    print(f"reproduce .venv/bin/python benchmarks/bench_receipts.py --validators "
          f"{args.validators} --log-size {args.log_size}")


if __name__ == "__main__":
    main()
