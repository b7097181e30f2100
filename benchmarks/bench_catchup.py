"""Catch-up benchmark: a validator restarted after its peers moved N transactions ahead.

1. `tide init --validators 4`; a certified chain of N evidence deposits (blocks of
   --block-txs, each with a commit certificate signed by all four validators) is built
   once into node1's store and copied to node2 and node3 (building it is not timed).
2. node1..node3 start as real `tide node start` processes; then node0 (empty store)
   starts and catches up over mutual TLS, as any lagging validator does: by default
   by state sync (ADR 0009: certified headers, log entries checked against their log
   roots, the state at the last height checked against its state root, indexes
   rebuilt locally); with --replay by block sync, verifying each block's certificate
   and re-executing it to its header.
3. Timed: from node0's start until its /v1/status shows the peers' log size and root.
   Progress (node0's `sync` status) goes to stderr; the report to stdout.

    .venv/bin/python benchmarks/bench_catchup.py                 # 100,000 deposits
    .venv/bin/python benchmarks/bench_catchup.py --replay        # block replay instead
    .venv/bin/python benchmarks/bench_catchup.py --txs 20000 --json
    .venv/bin/python benchmarks/bench_catchup.py --py-spy /tmp/catchup.raw   # profile node0

Recorded figures: docs/benchmarks.md ("Catch-up").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tidechain.client.files import client_signer
from tidechain.client.txbuilder import deposit_tx
from tidechain.consensus import PRECOMMIT, CommitCertificate
from tidechain.consensus.messages import sign_vote
from tidechain.node.config import load_genesis, load_node
from tidechain.node.node import Node
from tidechain.node.serve import STATE_SYNC_ENV
from tidechain.storage.store import Store

VALIDATORS = 4


def _free_base() -> int:
    """A base port with base..base+3 and base+100..base+103 free, below the ephemeral range."""
    for base in random.sample(range(20000, 31000, 200), 40):
        ports = [base + i for i in range(VALIDATORS)] + [base + 100 + i for i in range(VALIDATORS)]
        ok = True
        for port in ports:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            return base
    raise SystemExit("no free ports")


def build_chain(net: Path, txs: int, block_txs: int) -> tuple[int, float]:
    """Write a certified chain of `txs` deposits into node1's store. Returns (height, s)."""
    genesis = load_genesis(net)
    configs = [load_node(net / f"node{i}") for i in range(VALIDATORS)]
    signers = [c.signer() for c in configs]
    client = client_signer(net)
    started = time.perf_counter()
    store = Store(configs[1].data_path)
    node = Node(genesis, store, signers[1])
    set_digest = node.validators.digest
    now_ms = int(time.time() * 1000) - 60_000
    done = 0
    try:
        while done < txs:
            count = min(block_txs, txs - done)
            batch = [deposit_tx(client.key, genesis.chain_id,
                                hashlib.sha256(b"catch-up %d" % (done + i)).digest(),
                                {"n": str(done + i)}, now_ms=now_ms,
                                nonce=(done + i).to_bytes(16, "big"))
                     for i in range(count)]
            time_ms = node.chain.head_time_ms + 1
            prepared = node.chain.prepare(batch, time_ms, configs[node.chain.height % 4].key_name)
            votes = tuple(sign_vote(s.key, c.key_name, set_digest, PRECOMMIT, prepared.height,
                                    0, prepared) for s, c in zip(signers, configs, strict=True))
            certificate = CommitCertificate(prepared.height, 0, prepared.block_hash, votes)
            certificate.verify(node.validators, prepared.checkpoint_body)
            node.commit_certified(prepared, certificate)
            done += count
            if node.chain.height % 10 == 0:
                print(f"  built {done:,} / {txs:,} deposits", file=sys.stderr, end="\r")
        height = node.chain.height
    finally:
        store.close()
    print(file=sys.stderr)
    for i in (2, 3):
        shutil.copytree(configs[1].data_path.parent, configs[i].data_path.parent,
                        ignore=shutil.ignore_patterns("*.lock"), dirs_exist_ok=True)
    return height, time.perf_counter() - started


def _start(node_dir: Path, *, replay: bool = False) -> subprocess.Popen[bytes]:
    log = (node_dir / "node.log").open("ab")
    env = dict(os.environ)
    if replay:
        env[STATE_SYNC_ENV] = "off"
    return subprocess.Popen([sys.executable, "-m", "tidechain", "node", "start",
                             str(node_dir)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)


def _status(url: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = httpx.get(f"{url}/v1/status", timeout=5).json()
        return data
    except httpx.HTTPError:
        return None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its children that ended (Linux
    /proc; the state-sync import process has ended once the node is caught up):
    stable on a shared machine, where wall time is not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _wait_up(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _status(url) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"node at {url} did not start")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tide-catchup-"))
    net = root / "net"
    base = _free_base()
    subprocess.run([sys.executable, "-m", "tidechain", "init", str(net), "--name",
                    "catchup", "--validators", str(VALIDATORS), "--port", str(base)],
                   check=True, capture_output=True)
    print(f"building a certified chain of {args.txs:,} deposits ...", file=sys.stderr)
    height, build_s = build_chain(net, args.txs, args.block_txs)
    urls = [load_node(net / f"node{i}").api_url for i in range(VALIDATORS)]
    processes = []
    try:
        for i in (1, 2, 3):
            processes.append(_start(net / f"node{i}"))
        for i, process in zip((1, 2, 3), processes, strict=True):
            _wait_up(urls[i], process, 120)
        target = _status(urls[1])
        assert target is not None
        print(f"peers at height {target['height']}, log size {target['log_size']:,}; "
              "starting node0", file=sys.stderr)
        peers_cpu_before = sum(_cpu_seconds(p.pid) for p in processes)
        started = time.perf_counter()
        lagging = _start(net / "node0", replay=args.replay)
        processes.append(lagging)
        if args.py_spy:
            spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
            if spy is None:
                raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
            processes.append(subprocess.Popen(
                [spy, "record", "--pid", str(lagging.pid), "--format", "raw", "--rate", "250",
                 "--output", args.py_spy], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        samples: list[tuple[float, int]] = []
        deadline = started + args.timeout_s
        while True:
            status = _status(urls[0])
            elapsed = time.perf_counter() - started
            if status is not None:
                samples.append((elapsed, int(status["log_size"])))
                print(f"  {elapsed:6.1f} s  node0 log size {status['log_size']:,}  "
                      f"sync {status.get('sync')}", file=sys.stderr)
                if (status["log_size"], status["log_root"]) == (target["log_size"],
                                                                target["log_root"]):
                    cpu_s = _cpu_seconds(lagging.pid)
                    peers_cpu_s = sum(_cpu_seconds(p.pid) for p in processes[:3])
                    peers_cpu_s -= peers_cpu_before
                    break
            if lagging.poll() is not None:
                raise SystemExit("node0 exited; see its node.log")
            if time.perf_counter() > deadline:
                raise SystemExit(f"node0 did not catch up within {args.timeout_s} s")
            time.sleep(args.poll_s)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT if process.args[0].endswith("py-spy")
                                else signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "mode": "block replay" if args.replay else "state sync",
        "txs": args.txs, "blocks": height, "block_txs": args.block_txs,
        "catch_up_seconds": round(seconds, 2), "tx_per_s": round(args.txs / seconds),
        "blocks_per_s": round(height / seconds, 1), "build_seconds": round(build_s, 1),
        "node_cpu_seconds": round(cpu_s, 2), "cpu_us_per_tx": round(cpu_s * 1e6 / args.txs),
        "peers_cpu_seconds": round(peers_cpu_s, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=100_000)
    parser.add_argument("--block-txs", type=int, default=1000,
                        help="deposits per block (1,000: the size 4 validators build)")
    parser.add_argument("--timeout-s", type=float, default=900)
    parser.add_argument("--poll-s", type=float, default=0.1,
                        help="how often node0's status is read (the timing's resolution)")
    parser.add_argument("--keep", help="build in this directory and keep it")
    parser.add_argument("--replay", action="store_true",
                        help="catch up by block replay (re-execution), not state sync")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="profile the catching-up node (raw collapsed stacks)")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['mode']}: caught up {result['txs']:,} deposits in "
          f"{result['blocks']:,} blocks in "
          f"{result['catch_up_seconds']} s: {result['tx_per_s']:,} tx/s, "
          f"{result['blocks_per_s']} blocks/s")
    print(f"catching-up node: {result['node_cpu_seconds']} s CPU, "
          f"{result['cpu_us_per_tx']} us per transaction (includes its start-up); "
          f"its three peers: {result['peers_cpu_seconds']} s CPU")
    print(f"{result['date']}, {result['machine']}")
    print(f"reproduce: {result['command']}")


if __name__ == "__main__":
    main()
