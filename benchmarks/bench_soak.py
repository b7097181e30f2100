"""Soak: hold a node at a fixed share of its measured throughput and watch memory and lag.

Against real `tide node start` processes (one validator by default, `--validators 4`
for four on 127.0.0.1, or `--url/--net` for a network that is already running):

1. rate: `--rate R` deposits/s, or else bench_node.py's throughput phase on
   `--calibrate-txs` deposits and `--fraction` (0.8) of its committed deposits/s;
2. `rate * minutes * 60` deposits are pre-signed in worker processes (bench_node's
   `presign`, not timed; about 480 bytes each in this process: ~1.4 GB for 10 minutes
   at 4,800/s; the script refuses if that is more than half of MemAvailable);
3. they are offered at that rate for `--minutes` (bench_node's `paced_submit`: what is
   due every 20 ms, one POST /v1/tx/batch; one deposit in `--sample-every` is followed
   with GET /v1/tx/{id}/wait), while /v1/status is polled every 0.25 s and every
   `--sample-s` a sample is recorded: node RSS (VmRSS, summed over the node processes,
   and its anonymous part), the stores' size (chain.sqlite + WAL), offered, accepted,
   committed (`log_size` growth), the lag accepted - committed (its mean and maximum
   over the polls of the window), the mempool, the client's backlog (offered, not yet
   answered), refusals, commit latency p50/p99 of the samples that completed in the
   window, node CPU in cores;
4. the verdict, on the samples after `--warmup-s`: RSS growth from the median of the
   first window (60 s, or half the post-warm-up time if that is shorter) to the median
   of the last, under 5%; the lag not growing (least-squares slope of the per-sample
   mean lag below 1% of the offered rate, i.e. commits falling behind by less than 1%)
   and the last window's mean lag, and mean client backlog, under 2 s of offered
   deposits; the last window's p99 commit latency under 1 s; no refusal (busy or
   other) and no failed wait; everything accepted committed once offering stops.
   Also reported, not judged: RSS growth per minute and per committed deposit.

RSS is read from /proc/PID/status of the nodes this script started; with `--url`, of
the `--pid` processes if given, or else of every process whose argv has `node start`
and a directory inside `--net` (`tide cluster up` and side_by_side.py start them so).

    .venv/bin/python benchmarks/bench_soak.py                    # 10 min at 80% of measured
    .venv/bin/python benchmarks/bench_soak.py --minutes 1.5 --warmup-s 30 --rate 3000
    .venv/bin/python benchmarks/bench_soak.py --validators 4 --csv /tmp/soak4.csv
    .venv/bin/python benchmarks/bench_soak.py --json > soak.json; ... --report soak.json
    pytest -m soak tests/test_soak_node.py                       # 10 min and 90 s, as tests

Progress goes to stderr; the report (a table of one line per minute, or per 15 s in
runs under 5 minutes, and the verdict; --json: every sample) to stdout. The exit
status is 0 on PASS, 2 on FAIL, 1 if the run itself failed. Every wait is bounded by
--timeout-s; the nodes are stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime
import gc
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import aiohttp
from bench_node import (
    NODE_READY_TIMEOUT_S,
    Api,
    BenchError,
    CpuSample,
    NodeProcess,
    Submitted,
    free_port_block,
    init_bench_network,
    load_average,
    log,
    machine,
    paced_submit,
    percentile_ms,
    presign,
    reproduce_command,
    run_and_report,
    throughput_phase,
    verdict,
)

from tidechain.client.files import client_signer
from tidechain.ledger.types import Genesis

SCRIPT = "benchmarks/bench_soak.py"
STATUS_POLL_S = 0.25
BYTES_PER_PRESIGNED = 480
"""Client memory per pre-signed deposit: a ~310-byte envelope, its 32-byte id, the
tuple and the list slot (measured with sys.getsizeof)."""
MAX_PRESIGN_SHARE = 0.5
"""Refuse to pre-sign more than this share of MemAvailable."""
MAX_VALIDITY_S = 23 * 3600  # a deposit may expire at most 24 h ahead (MAX_TX_VALIDITY_MS)


# --- node processes and their memory ---------------------------------------------------


def rss_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) of PID in KiB, or None if it is gone. RssAnon is the heap's
    share (Python objects, SQLite's page cache); the rest is mapped files and shared
    memory (the libraries, SQLite's WAL index)."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if "VmRSS" not in fields:
        return None
    return fields["VmRSS"], fields.get("RssAnon", 0)


def rss_mib(pids: Sequence[int]) -> tuple[float, float]:
    """(VmRSS, RssAnon) summed over PIDS in MiB; nan if any is unknown."""
    each = [rss_kib(pid) for pid in pids]
    if not each or None in each:
        return math.nan, math.nan
    known = [r for r in each if r is not None]
    return (round(sum(r[0] for r in known) / 1024, 1),
            round(sum(r[1] for r in known) / 1024, 1))


def node_pids_of(net: Path) -> list[int]:
    """Processes whose argv has `node start DIR` with DIR inside NET (relative paths
    resolved against the process's working directory)."""
    net = net.resolve()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = [a.decode(errors="replace")
                    for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        for i in range(len(argv) - 2):
            if argv[i:i + 2] == ["node", "start"]:
                directory = Path(cwd, argv[i + 2]).resolve()
                if directory == net or net in directory.parents:
                    found.append(int(entry.name))
                break
    return sorted(found)


def store_mib(net: Path) -> tuple[float, float]:
    """(chain.sqlite, its WAL) of the nodes under NET, in MiB, summed. Until a store
    has grown by SQLite's page cache (256 MiB, CACHE_KIB), the cache grows with it and
    so does RSS: a warm-up shorter than that shows as growth. A WAL that keeps growing
    is a queue on disk: checkpoints not keeping up."""
    sizes = [0, 0]
    for path in net.glob("*/data/chain.sqlite*"):
        which = 1 if path.name.endswith("-wal") else 0 if path.name == "chain.sqlite" else -1
        if which >= 0:
            with contextlib.suppress(OSError):  # a WAL may vanish between glob and stat
                sizes[which] += path.stat().st_size
    return round(sizes[0] / 2**20, 1), round(sizes[1] / 2**20, 1)


def node_cpu_s(pids: Sequence[int]) -> float:
    return sum(CpuSample.of(pid).process_s for pid in pids)


def check_alive(nodes: Sequence[NodeProcess]) -> None:
    for node in nodes:
        if node.exited() is not None:
            raise BenchError(f"{node.node_dir.name} exited with {node.exited()}:\n"
                             f"{node.log_tail()}")


# --- the soak --------------------------------------------------------------------------


@dataclass
class Sample:
    t_s: float  # seconds since offering began
    rss_mib: float  # VmRSS summed over the node processes (nan if unknown)
    rss_anon_mib: float  # of which anonymous memory (the heap)
    store_mib: float  # the nodes' chain.sqlite files under the network directory
    wal_mib: float  # and their write-ahead logs
    offered: int  # deposits due by the schedule so far
    accepted: int
    committed: int  # log_size growth since offering began
    lag: int  # accepted - committed at this sample
    lag_mean: float  # over the /v1/status polls of the window
    lag_max: int
    mempool: int  # transactions in the mempool (-1 if the status has none)
    backlog: int  # offered but not yet answered: the client's own queue
    refused: int  # so far: busy (503 or per item) and any other refusal
    height: int
    latency_done: int  # samples followed to commit so far
    window_samples: int  # of which completed in this window
    p50_ms: float
    p99_ms: float
    node_cores_busy: float
    load_1min: float


@dataclass
class SoakRun:
    offered_per_s: float
    seconds: float
    offered: int
    accepted: int
    refused: dict[str, int]
    busy_items: int
    busy_503_responses: int
    sample_failures: dict[str, int]
    latency_samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    drain_s: float  # from the end of offering until everything accepted is committed
    all_committed: bool
    samples: list[Sample]
    latencies: list[float]  # in completion order; not in the report


def refusals(out: Submitted) -> int:
    return sum(out.refused.values()) + out.busy_items


async def soak_phase(api: Api, net: Path, nodes: Sequence[NodeProcess],
                     pids: Sequence[int], txs: list[tuple[bytes, bytes]], rate: float,
                     args: argparse.Namespace) -> SoakRun:
    out = Submitted()
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    base = int((await api.status())["log_size"])
    seconds = len(txs) / rate
    samples: list[Sample] = []
    submitter = asyncio.create_task(paced_submit(api, txs, rate, args.sample_every, out,
                                                 latencies, failures))
    await asyncio.sleep(0)  # paced_submit has taken its own start time
    t0 = time.perf_counter()
    window_lags: list[int] = []
    previous = (0.0, node_cpu_s(pids), 0)  # (t, node CPU s, latency_done)
    next_sample = args.sample_s
    next_progress = 60.0
    try:
        while True:
            check_alive(nodes)
            if submitter.done():
                submitter.result()  # raises what paced_submit raised
            status = await api.status()
            t = time.perf_counter() - t0
            committed = int(status["log_size"]) - base
            window_lags.append(out.accepted - committed)
            if t >= next_sample or t >= seconds:
                offered = min(len(txs), int(rate * t) + 1)
                cpu = node_cpu_s(pids)
                done = len(latencies)
                window = sorted(latencies[previous[2]:done])
                rss, rss_anon = rss_mib(pids)
                store, wal = store_mib(net)
                samples.append(Sample(
                    t_s=round(t, 2), rss_mib=rss, rss_anon_mib=rss_anon,
                    store_mib=store, wal_mib=wal,
                    offered=offered, accepted=out.accepted, committed=committed,
                    lag=out.accepted - committed,
                    lag_mean=round(statistics.fmean(window_lags), 1),
                    lag_max=max(window_lags),
                    mempool=int(status.get("mempool", {}).get("transactions", -1)),
                    backlog=offered - out.accepted - refusals(out),
                    refused=refusals(out), height=int(status["height"]),
                    latency_done=done, window_samples=len(window),
                    p50_ms=round(percentile_ms(window, 50), 1),
                    p99_ms=round(percentile_ms(window, 99), 1),
                    node_cores_busy=round((cpu - previous[1]) / (t - previous[0]), 2),
                    load_1min=load_average()))
                previous = (t, cpu, done)
                window_lags = []
                next_sample = (math.floor(t / args.sample_s) + 1) * args.sample_s
                if t >= next_progress:
                    s = samples[-1]
                    log(f"soak {t / 60:.1f} min: RSS {s.rss_mib:,.1f} MiB, lag {s.lag_mean:,.0f}"
                        f", backlog {s.backlog:,}, p99 {s.p99_ms:.0f} ms, refused {s.refused}")
                    next_progress += 60.0
                if t >= seconds:
                    break
            await asyncio.sleep(max(0.0, min(STATUS_POLL_S, next_sample - t)))
        try:
            await asyncio.wait_for(asyncio.shield(submitter), args.timeout_s)
        except TimeoutError:
            raise BenchError(f"the last POSTs and waits not answered within "
                             f"{args.timeout_s:.0f} s") from None
        ended = time.perf_counter()
        deadline = ended + args.timeout_s
        while (committed := int((await api.status())["log_size"]) - base) < out.accepted:
            check_alive(nodes)
            if time.perf_counter() > deadline:
                log(f"timed out with {committed:,} committed of {out.accepted:,}")
                break
            await asyncio.sleep(STATUS_POLL_S)
        drain_s = time.perf_counter() - ended
    finally:
        if not submitter.done():
            submitter.cancel()
            await asyncio.gather(submitter, return_exceptions=True)
    ordered = sorted(latencies)
    return SoakRun(
        offered_per_s=rate, seconds=seconds, offered=len(txs), accepted=out.accepted,
        refused=dict(out.refused), busy_items=out.busy_items,
        busy_503_responses=out.busy_requests, sample_failures=dict(failures),
        latency_samples=len(latencies), p50_ms=percentile_ms(ordered, 50),
        p99_ms=percentile_ms(ordered, 99), max_ms=1000 * ordered[-1] if ordered else math.nan,
        drain_s=drain_s, all_committed=committed >= out.accepted, samples=samples,
        latencies=latencies)


# --- verdict ---------------------------------------------------------------------------


def slope_per_s(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return math.nan
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else math.nan


def windows(run: SoakRun, warmup_s: float, window_s: float
            ) -> tuple[float, list[Sample], list[Sample], list[Sample]]:
    """(window length, samples after warm-up, its first window, its last window)."""
    window = min(window_s, (run.seconds - warmup_s) / 2)
    warm = [s for s in run.samples if s.t_s >= warmup_s]
    first = [s for s in warm if s.t_s < warmup_s + window]
    last = [s for s in warm if s.t_s > run.seconds - window]
    return window, warm, first, last


def judge(run: SoakRun, args: argparse.Namespace) -> dict[str, Any]:
    rate = run.offered_per_s
    window, warm, first, last = windows(run, args.warmup_s, args.window_s)
    checks: list[dict[str, Any]] = []

    def check(name: str, value: str, ok: bool) -> None:
        checks.append({"check": name, "value": value, "pass": ok})

    rss_first = statistics.median(s.rss_mib for s in first) if first else math.nan
    rss_last = statistics.median(s.rss_mib for s in last) if last else math.nan
    growth = 100 * (rss_last - rss_first) / rss_first if rss_first else math.nan
    check(f"node RSS growth, median of the first {window:.0f} s after warm-up -> last "
          f"{window:.0f} s, < {args.max_rss_growth_pct:g}%",
          f"{rss_first:,.1f} -> {rss_last:,.1f} MiB ({growth:+.2f}%)",
          growth < args.max_rss_growth_pct)  # nan (RSS unknown) fails
    # Not a check, a diagnosis: memory that tracks the chain's size (state held in
    # memory) shows as a steady cost per committed deposit; a flat node as ~0 bytes.
    rss_per_deposit = 2**20 * slope_per_s([(s.committed, s.rss_mib) for s in warm])
    rss_per_min = 60 * slope_per_s([(s.t_s, s.rss_mib) for s in warm])
    slope = slope_per_s([(s.t_s, s.lag_mean) for s in warm])
    slope_pct = 100 * slope / rate
    check(f"lag slope after warm-up (least squares), < {args.lag_slope_pct:g}% of the "
          "offered rate", f"{slope * 60:+,.0f} deposits/min ({slope_pct:+.3f}% of the rate)",
          slope_pct < args.lag_slope_pct)
    bound = args.max_lag_s * rate
    lag_last = statistics.fmean(s.lag_mean for s in last) if last else math.nan
    check(f"mean lag (accepted - committed), last {window:.0f} s, < {args.max_lag_s:g} s of "
          f"offered ({bound:,.0f})", f"{lag_last:,.0f} ({lag_last / rate:.2f} s); "
          f"max {max((s.lag_max for s in last), default=0):,}", lag_last < bound)
    backlog_last = statistics.fmean(s.backlog for s in last) if last else math.nan
    check(f"mean client backlog (offered, unanswered), last {window:.0f} s, < "
          f"{args.max_lag_s:g} s of offered", f"{backlog_last:,.0f} ({backlog_last / rate:.2f} s)",
          backlog_last < bound)
    lo = (last[0].latency_done - last[0].window_samples) if last else 0
    hi = last[-1].latency_done if last else 0
    tail = sorted(run.latencies[lo:hi])
    p99 = percentile_ms(tail, 99)
    check(f"commit latency p99, last {window:.0f} s, < {args.max_p99_ms:g} ms",
          f"{p99:,.0f} ms (p50 {percentile_ms(tail, 50):,.0f} ms, {len(tail):,} samples)",
          bool(tail) and p99 < args.max_p99_ms)
    refused = sum(run.refused.values()) + run.busy_items
    detail = ", ".join(f"{k} {v:,}" for k, v in sorted(run.refused.items()))
    check("refusals (busy 503 / busy items / other): none",
          f"{refused:,} ({run.busy_503_responses:,} 503 responses, {run.busy_items:,} busy "
          f"items{', ' + detail if detail else ''})", refused == 0)
    failed = sum(run.sample_failures.values())
    check("followed deposits whose wait failed: none",
          f"{failed:,} of {run.latency_samples + failed:,} {run.sample_failures or ''}".strip(),
          failed == 0)
    check("everything accepted committed after offering stopped",
          f"{run.accepted:,} accepted, drained in {run.drain_s:.2f} s", run.all_committed)
    return {"pass": all(c["pass"] for c in checks), "window_s": window,
            "rss_growth_pct": growth, "rss_mib_per_min": rss_per_min,
            "rss_bytes_per_committed_deposit": rss_per_deposit,
            "lag_slope_per_min": slope * 60,
            "lag_slope_pct_of_rate": slope_pct, "last_window_mean_lag": lag_last,
            "last_window_mean_backlog": backlog_last, "last_window_p99_ms": p99,
            "checks": checks}


def table_rows(run: SoakRun, every_s: float) -> list[dict[str, Any]]:
    """One row per `every_s` of offering (and the last sample): the state at its end,
    latency and mean lag over the row's span."""
    rows: list[dict[str, Any]] = []
    span: list[Sample] = []
    boundary = every_s
    for i, s in enumerate(run.samples):
        span.append(s)
        if s.t_s + 1e-6 >= boundary or i == len(run.samples) - 1:
            lats = sorted(run.latencies[span[0].latency_done - span[0].window_samples:
                                        s.latency_done])
            rows.append({"t_s": s.t_s, "rss_mib": s.rss_mib, "rss_anon_mib": s.rss_anon_mib,
                         "store_mib": s.store_mib, "wal_mib": s.wal_mib,
                         "offered": s.offered,
                         "accepted": s.accepted, "committed": s.committed,
                         "lag_mean": statistics.fmean(x.lag_mean for x in span),
                         "lag_max": max(x.lag_max for x in span), "mempool": s.mempool,
                         "backlog": s.backlog, "refused": s.refused,
                         "p50_ms": percentile_ms(lats, 50), "p99_ms": percentile_ms(lats, 99),
                         "node_cores_busy": statistics.fmean(x.node_cores_busy for x in span)})
            span = []
            while boundary <= s.t_s + 1e-6:
                boundary += every_s
    return rows


# --- the run ---------------------------------------------------------------------------


def mem_available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


async def soak_run(args: argparse.Namespace, net: Path, url: str,
                   nodes: Sequence[NodeProcess], pids: Sequence[int]) -> dict[str, Any]:
    load_before = load_average()
    genesis = Genesis.decode((net / "genesis.cbor").read_bytes())
    seconds = 60 * args.minutes
    expires_ms = int(1000 * (time.time() + min(MAX_VALIDITY_S, seconds + 6 * 3600)))
    signer = client_signer(net).key  # the depositor `tide init` enrols
    if not pids:
        log("no node process to read RSS from: the memory check will fail (give --pid)")
    timeout = aiohttp.ClientTimeout(total=args.timeout_s)
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        api = Api(session, url, signer)
        for i, node in enumerate(nodes):
            await Api(session, node_url(url, i)).wait_ready(node, NODE_READY_TIMEOUT_S)
        if not nodes:
            await api.wait_ready(None, NODE_READY_TIMEOUT_S)
        calibration = None
        if args.rate:
            rate = args.rate
        else:
            calib = presign(genesis.chain_id, signer.seed, b"calibrat", args.calibrate_txs,
                            expires_ms)
            log(f"calibration: {args.calibrate_txs:,} deposits as fast as accepted")
            calibration = await throughput_phase(api, pids[0] if pids else None, calib, args)
            del calib
            rate = args.fraction * calibration.committed_per_s
            log(f"calibration: {calibration.committed_per_s:,.0f} committed/s; soak at "
                f"{args.fraction:.0%}: {rate:,.0f}/s")
            if not calibration.all_committed:
                raise BenchError("calibration: not everything accepted was committed")
        count = max(1, int(rate * seconds))
        need = count * BYTES_PER_PRESIGNED
        available = mem_available_bytes()
        log(f"pre-signing {count:,} deposits (~{need / 2**20:,.0f} MiB in this process, "
            f"{available / 2**20:,.0f} MiB available)")
        if available and need > MAX_PRESIGN_SHARE * available:
            raise BenchError(f"{count:,} pre-signed deposits need ~{need / 2**30:.1f} GiB, "
                             f"over half of the {available / 2**30:.1f} GiB available: "
                             "lower --minutes or --rate")
        started = time.perf_counter()
        txs = presign(genesis.chain_id, signer.seed, b"soak\0\0\0\0", count, expires_ms)
        sign_s = time.perf_counter() - started
        gc.collect()
        gc.freeze()  # millions of long-lived tuples: keep them out of full collections
        log(f"soak: {rate:,.0f} deposits/s for {count / rate:,.0f} s, 1 in "
            f"{args.sample_every} followed to commit, a sample every {args.sample_s:g} s")
        run = await soak_phase(api, net, nodes, pids, txs, rate, args)
        del txs
    load_after = load_average()
    outcome = judge(run, args)
    every = 60.0 if run.seconds >= 300 else 15.0
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": load_after},
        "command": reproduce_command(SCRIPT),
        "node_command": ("; ".join(" ".join(n.command) for n in nodes) if nodes
                         else f"(attached to {url})"),
        "node_pids": list(pids),
        "validators": args.validators if nodes else len(pids),
        "options": {k: v for k, v in vars(args).items() if k not in ("json", "report")},
        "calibration": asdict(calibration) if calibration else None,
        "rate": {"offered_per_s": rate,
                 "from": (f"--rate {args.rate:g}" if args.rate else
                          f"{args.fraction:g} x calibration's committed/s")},
        "presign": {"deposits": count, "seconds": sign_s, "client_mib_estimate": need / 2**20},
        "soak": {k: v for k, v in asdict(run).items() if k not in ("samples", "latencies")},
        "verdict": outcome,
        "table_every_s": every,
        "table": table_rows(run, every),
        "samples": [asdict(s) for s in run.samples],
    }


def node_url(url: str, i: int) -> str:
    """The API of node i of a network whose node0 is at URL (consecutive ports)."""
    head, port = url.rsplit(":", 1)
    return f"{head}:{int(port) + i}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        if not args.net:
            raise BenchError("--url needs --net (the network directory, for the chain id)")
        pids = args.pid or node_pids_of(Path(args.net))
        log(f"node processes for RSS: {pids or 'none found'}")
        report = await soak_run(args, Path(args.net), args.url, [], pids)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="tidechain-soak-"))
        n = args.validators
        port = args.port or free_port_block(n)
        nodes = [NodeProcess(workdir / "net" / f"node{i}", workdir / f"node{i}.log", args.nice)
                 for i in range(n)]
        log(f"node directory {workdir}; starting {n} node(s) from port {port}")
        try:
            init_bench_network(workdir / "net", port, n, args.mempool_max_txs)
            for node in nodes:
                node.start()
            report = await soak_run(args, workdir / "net", f"http://127.0.0.1:{port}", nodes,
                                    [node.pid for node in nodes])
        except BaseException:
            for node in nodes:
                log(f"{node.node_dir.name} log tail:\n{node.log_tail()}")
            raise
        finally:
            for node in nodes:
                try:
                    node.stop()
                except Exception as exc:  # stop the others regardless
                    log(f"stopping {node.node_dir.name}: {exc}")
            if args.keep_dir:
                log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if args.csv:
        write_csv(Path(args.csv), report["samples"])
        log(f"samples written to {args.csv}")
    return report


def write_csv(path: Path, samples: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(Sample)])
        writer.writeheader()
        writer.writerows(samples)


# --- report ----------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    m, s, v, rate = r["machine"], r["soak"], r["verdict"], r["rate"]["offered_per_s"]
    lines = [
        f"tidechain soak ({r['validators']} validator(s)): {rate:,.0f} deposits/s offered "
        f"for {s['seconds'] / 60:.1f} min",
        f"date     {r['date']}",
        f"machine  {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software Python {m['python']}, SQLite {m['sqlite']}, tidechain {m['git']}",
        f"load     1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after",
        f"command  {r['command']}",
        f"node     {r['node_command']}",
    ]
    c = r["calibration"]
    if c:
        lines.append(f"rate     {r['rate']['from']}: {c['committed_per_s']:,.0f} committed/s "
                     f"on {c['accepted']:,} deposits (sustained {c['sustained_per_s']:,.0f}/s)")
    else:
        lines.append(f"rate     {r['rate']['from']}")
    p = r["presign"]
    lines += [
        f"signing  {p['deposits']:,} deposits pre-signed in {p['seconds']:.0f} s "
        f"(~{p['client_mib_estimate']:,.0f} MiB in the client), not timed",
        f"overall  {s['accepted']:,} accepted of {s['offered']:,}; {s['latency_samples']:,} "
        f"followed: p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, "
        f"max {s['max_ms']:.0f} ms",
        "",
        f"{'min':>5} {'RSS MiB':>9} {'anon':>7} {'store':>7} {'WAL':>6} {'offered':>10} "
        f"{'accepted':>10} {'committed':>10} "
        f"{'lag mean':>9} {'lag max':>8} {'mempool':>8} {'backlog':>8} {'refused':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'cores':>5}",
    ]
    for row in r["table"]:
        lines.append(
            f"{row['t_s'] / 60:>5.2f} {row['rss_mib']:>9,.1f} {row['rss_anon_mib']:>7,.1f} "
            f"{row['store_mib']:>7,.0f} {row.get('wal_mib', math.nan):>6,.0f} "
            f"{row['offered']:>10,} "
            f"{row['accepted']:>10,} {row['committed']:>10,} {row['lag_mean']:>9,.0f} "
            f"{row['lag_max']:>8,} {row['mempool']:>8,} {row['backlog']:>8,} "
            f"{row['refused']:>7,} {row['p50_ms']:>7.0f} {row['p99_ms']:>7.0f} "
            f"{row['node_cores_busy']:>5.2f}")
    opts = r["options"]
    lines += ["", f"Verdict after {opts['warmup_s']:g} s of warm-up "
                  f"(windows of {v['window_s']:.0f} s; all {len(r['samples'])} samples "
                  "in --json / --csv):"]
    width = max(len(ch["check"]) for ch in v["checks"]) + 2
    lines += [f"  {ch['check']:<{width}}{verdict(ch['pass'])}  {ch['value']}"
              for ch in v["checks"]]
    lines.append(f"  {'overall':<{width}}{verdict(v['pass'])}")
    lines.append(f"  (after warm-up, least squares: RSS {v['rss_mib_per_min']:+,.1f} MiB/min, "
                 f"{v['rss_bytes_per_committed_deposit']:+,.0f} bytes per committed deposit)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the offering")
    p.add_argument("--rate", type=float, default=0.0,
                   help="offered deposits/s (default: --fraction of the calibrated rate)")
    p.add_argument("--fraction", type=float, default=0.8,
                   help="share of the calibration's committed/s to offer")
    p.add_argument("--calibrate-txs", type=int, default=40_000,
                   help="deposits in the calibration (bench_node's throughput phase)")
    p.add_argument("--warmup-s", type=float, default=60.0,
                   help="samples before this are left out of the verdict")
    p.add_argument("--window-s", type=float, default=60.0,
                   help="first and last window compared (at most half the post-warm-up time)")
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--sample-every", type=int, default=50,
                   help="follow 1 in N deposits to commit")
    p.add_argument("--max-rss-growth-pct", type=float, default=5.0)
    p.add_argument("--lag-slope-pct", type=float, default=1.0,
                   help="bound on the lag's slope, in %% of the offered rate")
    p.add_argument("--max-lag-s", type=float, default=2.0,
                   help="bound on the last window's mean lag and backlog, in s of offered")
    p.add_argument("--max-p99-ms", type=float, default=1000.0)
    p.add_argument("--validators", type=int, default=1, help="nodes to start (1..4)")
    p.add_argument("--batch-size", type=int, default=1000, help="calibration: per POST")
    p.add_argument("--connections", type=int, default=2, help="calibration: concurrent POSTs")
    p.add_argument("--mempool-max-txs", type=int, default=0, help="the nodes' mempool bound")
    p.add_argument("--timeout-s", type=float, default=600.0, help="bound on each wait")
    p.add_argument("--port", type=int, default=0, help="node0's API port (default: free)")
    p.add_argument("--keep-dir", action="store_true", help="keep the nodes' directory")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for the nodes and this client (see bench_node.py)")
    p.add_argument("--url", default="", help="soak a node already running at URL")
    p.add_argument("--net", default="", help="with --url: its network directory")
    p.add_argument("--pid", type=int, action="append", default=[],
                   help="with --url: a node process to read RSS from (repeatable; default: "
                        "every `node start` process of --net)")
    p.add_argument("--csv", default="", help="write every sample to this CSV file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="JSON", default="",
                   help="only print the table of a report saved with --json")
    args = p.parse_args(argv)
    if not 1 <= args.validators <= 4:
        p.error("--validators must be 1..4")
    if not 1 <= args.batch_size <= 4000 or args.sample_every < 1 or args.connections < 1:
        p.error("--batch-size 1..4000, --sample-every >= 1, --connections >= 1")
    if args.rate < 0 or not 0 < args.fraction <= 1 or args.calibrate_txs < 10:
        p.error("--rate >= 0, 0 < --fraction <= 1, --calibrate-txs >= 10")
    if args.sample_s <= 0 or 60 * args.minutes - args.warmup_s < 4 * args.sample_s:
        p.error("--sample-s > 0, and --minutes must leave at least 4 samples after --warmup-s")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reports: list[dict[str, Any]] = []

    async def run_kept(a: argparse.Namespace) -> dict[str, Any]:
        reports.append(await run(a))
        return reports[-1]

    code = run_and_report(args, run_kept, format_report)
    if code == 0 and reports and not reports[-1]["verdict"]["pass"]:
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
