"""Two source trees, benchmarked back to back on this machine: one validator and four.

Each pair runs `benchmarks/bench_node.py` (this tree's script) against the old tree's
node and then the new tree's node, or the other way round (the order alternates per
pair), with `PYTHONPATH=<tree>/src`:

- one validator: `bench_node.py --txs T --latency-seconds L --json` (it starts the node);
- four validators: `tide init --validators 4` from that tree, four `tide node start`
  processes on 127.0.0.1, then `bench_node.py --url ... --net ...` against node0.

It prints every run and the ratio of the medians (new / old), with the command that
reproduces it. Nothing here times anything itself: the figures are bench_node.py's.

    git worktree add /tmp/old <commit>
    .venv/bin/python benchmarks/side_by_side.py --old /tmp/old --new . --pairs 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60.0


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "src")}


def _bench(tree: Path, extra: list[str], txs: int, latency_s: float) -> dict[str, object]:
    command = [sys.executable, str(HERE / "bench_node.py"), "--txs", str(txs),
               "--latency-seconds", str(latency_s), "--json", *extra]
    done = subprocess.run(command, env=_env(tree), capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_node.py failed for {tree}:\n{done.stderr[-3000:]}")
    report: dict[str, object] = json.loads(done.stdout)
    return report


def _free_base(count: int) -> int:
    for base in range(21000, 31000, 250):
        ports = [base + i for i in range(count)] + [base + 100 + i for i in range(count)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SystemExit("no free block of ports")


def _wait_ready(url: str) -> None:
    import urllib.request
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {READY_TIMEOUT_S:.0f} s")


def four_validators(tree: Path, txs: int, latency_s: float) -> dict[str, object]:
    """bench_node.py's report against four validators of TREE on 127.0.0.1: `tide init
    --validators 4`, four `tide node start` processes (each in its own process group,
    stopped with SIGTERM, then SIGKILL after 60 s), then `bench_node.py --url --net`."""
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        net = Path(tmp) / "net"
        base = _free_base(4)
        tide = [sys.executable, "-m", "tidechain"]
        subprocess.run([*tide, "init", str(net), "--name", "bench4", "--validators", "4",
                        "--port", str(base)], env=_env(tree), check=True,
                       capture_output=True, timeout=READY_TIMEOUT_S)
        logs = [open(Path(tmp) / f"node{i}.log", "w") for i in range(4)]  # noqa: SIM115
        nodes: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(4):
                nodes.append(subprocess.Popen([*tide, "node", "start", str(net / f"node{i}")],
                                              env=_env(tree), stdout=logs[i],
                                              stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL,
                                              start_new_session=True))
            for i in range(4):
                _wait_ready(f"http://127.0.0.1:{base + i}")
            return _bench(tree, ["--url", f"http://127.0.0.1:{base}", "--net", str(net)],
                          txs, latency_s)
        except (Exception, SystemExit):
            for i in range(4):
                tail = (Path(tmp) / f"node{i}.log").read_text(errors="replace")[-1500:]
                print(f"node{i} log tail:\n{tail}", file=sys.stderr, flush=True)
            raise
        finally:
            _stop(nodes)
            for log in logs:
                log.close()


def _stop(nodes: list[subprocess.Popen[bytes]], timeout_s: float = 60.0) -> None:
    """SIGTERM each node's process group, then SIGKILL the groups still there."""
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for node in nodes:
        try:
            node.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=timeout_s)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="the previous head's tree")
    p.add_argument("--new", type=Path, required=True, help="this head's tree")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--validators", type=int, choices=(1, 4), default=1)
    p.add_argument("--txs", type=int, default=40_000)
    p.add_argument("--latency-seconds", type=float, default=5.0)
    args = p.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    rates: dict[str, list[float]] = {"old": [], "new": []}
    p99: dict[str, list[float]] = {"old": [], "new": []}
    for pair in range(args.pairs):
        order = ("old", "new") if pair % 2 == 0 else ("new", "old")
        for which in order:
            tree = trees[which]
            report = (_bench(tree, [], args.txs, args.latency_seconds) if args.validators == 1
                      else four_validators(tree, args.txs, args.latency_seconds))
            throughput = report["throughput"]
            latency = report["latency"]
            assert isinstance(throughput, dict) and isinstance(latency, dict)
            rates[which].append(float(throughput["committed_per_s"]))
            p99[which].append(float(latency["p99_ms"]))
            print(f"pair {pair + 1} {which:<3} {tree}: {rates[which][-1]:,.0f} committed/s, "
                  f"p99 {p99[which][-1]:.0f} ms at half load", flush=True)
    old, new = statistics.median(rates["old"]), statistics.median(rates["new"])
    print(f"\n{args.validators} validator(s), {args.pairs} pairs: median {old:,.0f}/s (old) "
          f"against {new:,.0f}/s (new): ratio {new / old:.2f}")
    print("reproduce: " + shlex.join([sys.executable, *sys.argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
