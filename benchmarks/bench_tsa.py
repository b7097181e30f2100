"""RFC 3161 time stamps from one validator (api/tsa.py, ADR 0017): tokens/s and latency.

A real `tide node start` process of a fresh one-validator `tide init` network, its
time-stamp authority on (`tide init` writes `tsa = true` and the node's tsa/ files).
Each request is a DER TimeStampReq of a fresh SHA-256 imprint with a nonce
(`timestamp.request.build_request`, what `tide timestamp` sends), built before its phase
starts. Every token is a chain deposit the node waits to commit before it signs, so a
latency is: parse, deposit, consensus on one validator, durable commit, ECDSA signature.

Two phases, each --requests (300) time stamps from this process:

1. concurrent: --concurrency (8) clients, each one keep-alive connection (aiohttp),
   each sending its next request as soon as its last is answered;
2. sequential: one client, one request at a time.

Tokens/s runs from the first request sent to the last answer. Latency runs from a
request's send to the end of its reply (p50, p99 by nearest rank; max, mean). Every
reply is checked: HTTP 200, status granted, the imprint and nonce of its request, the
serial its log index + 1; and the log must have grown by exactly the tokens granted.
The node's CPU per token comes from /proc (all threads) and the blocks per phase from
/v1/status, which shows how many deposits one block commits.

The node's per-caller rate limit (`tsa_requests_per_s`, 20/s by default) is raised in
its node.toml to --rate-limit (100,000/s), so the limiter never throttles the run: the
figures are the service's, not its limiter's.

    .venv/bin/python benchmarks/bench_tsa.py                           # 300 x 8, then 300 x 1
    .venv/bin/python benchmarks/bench_tsa.py --requests 1000 --concurrency 32
    .venv/bin/python benchmarks/bench_tsa.py --json > tsa.json

Only 127.0.0.1 is contacted; every request is bounded by --timeout-s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import os
import platform
import shlex
import shutil
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from bench_node import (
    BenchError,
    CpuSample,
    NodeProcess,
    free_port_block,
    load_average,
    log,
    percentile_ms,
    run_and_report,
)

from tidechain.api.tsa import PATH, QUERY_TYPE, REPLY_TYPE
from tidechain.timestamp import TimestampFormatError, describe_token
from tidechain.timestamp.request import NONCE_BYTES, build_request

NODE_READY_TIMEOUT_S = 60.0
WARMUP_REQUESTS = 10
"""Untimed requests first: the node's first deposit opens its store's pages and the
first signature loads the key."""


# --- the node --------------------------------------------------------------------------


def tide(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE", "TIDE_KEY")}
    return subprocess.run([sys.executable, "-m", "tidechain", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def create_node(workdir: Path, rate_limit: int, nice: int) -> tuple[NodeProcess, str]:
    """`tide init` one validator, its TSA rate raised, `tide node start`."""
    net, port = workdir / "net", free_port_block(1)
    made = tide("init", str(net), "--name", "bench-tsa", "--port", str(port))
    if made.returncode != 0:
        raise BenchError(f"tide init failed: {made.stderr or made.stdout}")
    toml = net / "node0" / "node.toml"
    # As the first line: a key appended after a [[peers]] table would land inside it.
    toml.write_text(f"tsa_requests_per_s = {rate_limit}\n" + toml.read_text())
    if "tsa = true" not in toml.read_text():
        raise BenchError(f"{toml} does not turn the time-stamp authority on")
    node = NodeProcess(net / "node0", workdir / "node.log", nice)
    url = f"http://127.0.0.1:{port}"
    log(f"starting {' '.join(node.command)} ({url})")
    node.start()
    return node, url


async def status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/v1/status") as resp:
        if resp.status != 200:
            raise BenchError(f"GET /v1/status: HTTP {resp.status}: {await resp.text()}")
        doc: dict[str, Any] = await resp.json()
        return doc


async def wait_ready(session: aiohttp.ClientSession, url: str, node: NodeProcess) -> None:
    deadline = time.monotonic() + NODE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if node.exited() is not None:
            raise BenchError(f"node exited with {node.exited()}:\n{node.log_tail()}")
        try:
            await status(session, url)
            return
        except (aiohttp.ClientError, BenchError):
            await asyncio.sleep(0.2)
    raise BenchError(f"node not answering on {url} after {NODE_READY_TIMEOUT_S:.0f} s")


# --- requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    imprint: bytes
    nonce: int
    der: bytes


def make_requests(count: int, tag: bytes) -> list[Request]:
    """`count` requests, each for a fresh imprint (unique per run and phase)."""
    out = []
    for i in range(count):
        imprint = hashlib.sha256(tag + os.urandom(16) + i.to_bytes(4, "big")).digest()
        nonce = int.from_bytes(os.urandom(NONCE_BYTES), "big")
        out.append(Request(imprint, nonce, build_request(imprint, nonce)))
    return out


async def stamp(session: aiohttp.ClientSession, url: str, request: Request) -> str | None:
    """Send one request; None for a good token of it, else what was wrong."""
    async with session.post(f"{url}{PATH}", data=request.der,
                            headers={"Content-Type": QUERY_TYPE}) as resp:
        body = await resp.read()
        if resp.status != 200 or resp.content_type != REPLY_TYPE:
            return f"HTTP {resp.status} {resp.content_type}"
        index = resp.headers.get("X-Tidechain-Log-Index")
    try:
        token = describe_token(body)
    except TimestampFormatError as exc:
        return f"unreadable reply: {exc.reason}"
    if token.status != 0:
        return f"refused: {', '.join(token.failure_info)}: {token.status_text}"
    if token.imprint != request.imprint or token.nonce != request.nonce:
        return "token for another request"
    if index is None or token.deposit_index != int(index) or token.serial != int(index) + 1:
        return "serial / log index mismatch"
    return None


@dataclass
class Phase:
    name: str
    concurrency: int
    requests: int
    granted: int
    failures: dict[str, int]
    seconds: float
    tokens_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    blocks: int
    tokens_per_block: float
    node_cpu_ms_per_token: float
    node_main_thread_cpu_ms_per_token: float
    node_cores_busy: float


async def run_phase(session: aiohttp.ClientSession, url: str, pid: int, name: str,
                    requests: list[Request], concurrency: int) -> Phase:
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def client() -> None:
        while not queue.empty():
            request = queue.get_nowait()
            started = time.perf_counter()
            problem = await stamp(session, url, request)
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                failures[problem] += 1

    before = await status(session, url)
    cpu0 = CpuSample.of(pid)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu1 = CpuSample.of(pid)
    after = await status(session, url)
    granted = len(requests) - sum(failures.values())
    grown = after["log_size"] - before["log_size"]
    if grown != granted:
        raise BenchError(f"{name}: the log grew by {grown}, but {granted} tokens were granted")
    blocks = after["height"] - before["height"]
    latencies.sort()
    log(f"{name}: {granted}/{len(requests)} tokens in {seconds:.2f} s "
        f"({granted / seconds:,.0f}/s), p50 {percentile_ms(latencies, 50):.1f} ms, "
        f"p99 {percentile_ms(latencies, 99):.1f} ms, {blocks} blocks"
        + (f"; failures {dict(failures)}" if failures else ""))
    return Phase(
        name=name, concurrency=concurrency, requests=len(requests), granted=granted,
        failures=dict(failures), seconds=seconds, tokens_per_s=granted / seconds,
        p50_ms=percentile_ms(latencies, 50), p99_ms=percentile_ms(latencies, 99),
        max_ms=1000 * latencies[-1], mean_ms=1000 * statistics.fmean(latencies),
        blocks=blocks, tokens_per_block=granted / max(1, blocks),
        node_cpu_ms_per_token=1000 * (cpu1.process_s - cpu0.process_s) / max(1, granted),
        node_main_thread_cpu_ms_per_token=1000 * (cpu1.main_thread_s - cpu0.main_thread_s)
        / max(1, granted),
        node_cores_busy=(cpu1.process_s - cpu0.process_s) / seconds,
    )


# --- the run ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """As bench_node.machine(), without the git revision: this script runs no git."""
    model, mem_kib = "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "openssl": ssl.OPENSSL_VERSION,
            "aiohttp": aiohttp.__version__}


def reproduce_command() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_tsa.py",
                                             *sys.argv[1:]])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tidechain-bench-tsa-"))
    load_before = load_average()
    node, url = create_node(workdir, args.rate_limit, args.nice)
    phases: list[Phase] = []
    try:
        timeout = aiohttp.ClientTimeout(total=args.timeout_s)
        connector = aiohttp.TCPConnector(limit=max(args.concurrency, 1))
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await wait_ready(session, url, node)
            warmup = await run_phase(session, url, node.pid, "warm-up",
                                     make_requests(WARMUP_REQUESTS, b"warm-up"), 1)
            if warmup.failures:
                raise BenchError(f"warm-up failed: {warmup.failures}")
            for name, concurrency in (("concurrent", args.concurrency), ("sequential", 1)):
                requests = make_requests(args.requests, name.encode())
                phases.append(await run_phase(session, url, node.pid, name, requests,
                                              concurrency))
    except BaseException:
        log(f"node log tail:\n{node.log_tail()}")
        raise
    finally:
        node.stop()
        if args.keep_dir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if any(p.failures for p in phases):
        raise BenchError("some requests were not granted: "
                         + "; ".join(f"{p.name} {p.failures}" for p in phases if p.failures))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": load_average()},
        "command": reproduce_command(),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "phases": [asdict(p) for p in phases],
    }


def format_report(r: dict[str, Any]) -> str:
    m, o = r["machine"], r["options"]
    lines = [
        "tidechain RFC 3161 time stamps (POST /v1/timestamp), one validator",
        "",
        f"- date: {r['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}",
        f"- software: Python {m['python']}, SQLite {m['sqlite']}, {m['openssl']}, "
        f"aiohttp {m['aiohttp']} (client)",
        f"- load: 1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after; niceness {o['nice']}",
        f"- command: `{r['command']}`",
        f"- requests: {o['requests']} per phase, SHA-256 imprints with 64-bit nonces "
        "(`build_request`), built before each phase; each token waits for its deposit's "
        "durable commit",
        f"- node.toml: `tsa_requests_per_s = {o['rate_limit']}` (default 20/s), so the "
        "per-caller limiter never throttles the run",
        "",
        "| phase | clients | tokens | seconds | tokens/s | p50 ms | p99 ms | max ms "
        "| blocks | tokens/block | node CPU ms/token (main) | node cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in r["phases"]:
        lines.append(
            f"| {p['name']} | {p['concurrency']} | {p['granted']} | {p['seconds']:.2f} "
            f"| {p['tokens_per_s']:,.0f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} "
            f"| {p['max_ms']:.1f} | {p['blocks']} | {p['tokens_per_block']:.1f} "
            f"| {p['node_cpu_ms_per_token']:.2f} ({p['node_main_thread_cpu_ms_per_token']:.2f})"
            f" | {p['node_cores_busy']:.2f} |")
    lines += [
        "",
        "Latency: from sending a request to the end of its reply (nearest rank). Every "
        "reply checked: granted, for its request's imprint and nonce, serial = log index "
        "+ 1; the log grew by exactly the tokens granted.",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=300, help="time stamps per phase")
    p.add_argument("--concurrency", type=int, default=8,
                   help="concurrent clients in the first phase (the second has one)")
    p.add_argument("--rate-limit", type=int, default=100_000,
                   help="tsa_requests_per_s written into node.toml (the node's default: 20)")
    p.add_argument("--timeout-s", type=float, default=60.0, help="bound on each request")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for the node and this client (needs root; see bench_node.py)")
    p.add_argument("--keep-dir", action="store_true", help="keep the node's directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if not 10 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 256:
        p.error("--requests 10..100,000, --concurrency 1..256")
    if not 1 <= args.rate_limit <= 1_000_000:
        p.error("--rate-limit 1..1,000,000 (the node's bound)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_and_report(parse_args(argv), run, format_report)


if __name__ == "__main__":
    sys.exit(main())
