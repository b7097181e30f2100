"""A three-member etcd cluster and four tidechain validators, back to back on this machine.

Both run on 127.0.0.1 and on the same filesystem (the temporary directory), each with
its durable defaults (etcd fsyncs every commit; tidechain's nodes use SQLite with
synchronous=FULL):

- etcd: Debian's `etcd-server` and `etcd-client` (3.4; installed with apt-get when
  missing and running as root, otherwise the comparison is skipped). Three `etcd`
  members, each with its own --data-dir, in its own process group, with its log in the
  temporary directory. Once `etcdctl endpoint health` answers for all three,
  `etcdctl --endpoints=<all three> check perf --load=<--etcd-load>` runs for its fixed
  60 s: puts of a 256-byte key and a 1 KiB value from many clients, paced by a rate
  limiter of the load model. Its "writes/s" and "Slowest request took" lines are the
  etcd figures.
- tidechain: `tide init --validators 4` and four `tide node start` processes, then
  `bench_node.py --url ... --net ... --json` against node0 (side_by_side.py's
  `four_validators`, with `PYTHONPATH=<--tree>/src`). Its committed deposits/s and
  sustained rate, and the submit -> commit latency p50/p99 at half that load, which on
  four validators is finality, are the tidechain figures.

With `--pairs N` the order alternates per pair (etcd first on even pairs, tidechain
first on odd ones), so that drift on a shared machine favours neither. It prints every
run, the medians, the ratio tidechain committed/s / etcd writes/s, PASS/FAIL for
"ratio >= 1.0" and "p50 finality < 500 ms", the machine, the load average and the
command that reproduces it. Nothing here times anything itself: the figures are
etcdctl's and bench_node.py's. Progress goes to stderr; the report (a table, or JSON
with --json) to stdout.

    .venv/bin/python benchmarks/bench_vs_etcd.py                 # about 2 min
    .venv/bin/python benchmarks/bench_vs_etcd.py --txs 20000 --latency-seconds 3
    .venv/bin/python benchmarks/bench_vs_etcd.py --pairs 3 --json > vs_etcd.json
    .venv/bin/python benchmarks/bench_vs_etcd.py --tree /tmp/old --etcd-load l

Only 127.0.0.1 is contacted (and Debian's mirror by apt-get, only if etcd is missing).
Every wait is bounded; every child process is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_node import free_port_block, git_revision, load_average, machine  # noqa: E402
from side_by_side import four_validators  # noqa: E402

REPO = HERE.parent
LOADS = ("s", "m", "l", "xl")
TARGET_RATIO = 1.0
TARGET_P50_MS = 500.0
ETCD_READY_TIMEOUT_S = 60.0
ETCD_STOP_TIMEOUT_S = 15.0
CHECK_PERF_TIMEOUT_S = 300.0
"""check perf runs for 60 s, then deletes its keys (bounded by 30 s inside etcdctl)."""
APT_TIMEOUT_S = 900.0
TAIL_LINES = 12

WRITES_RE = re.compile(r"Throughput (?:is|too low):?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*writes/s")
SLOWEST_RE = re.compile(r"Slowest request took(?: too long)?:?\s*([0-9]+(?:\.[0-9]+)?)\s*s")
STDDEV_RE = re.compile(r"Stddev (?:is|too high):?\s*([0-9]+(?:\.[0-9]+)?)\s*s")
PROGRESS_RE = re.compile(r"^\s*\d+\s*/\s*\d+\s+B?o*")


def log(message: str) -> None:
    print(f"[vs-etcd {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Skip(Exception):
    """The comparison cannot run here (no etcd and no way to install it)."""


# --- etcd ------------------------------------------------------------------------------


def etcd_binaries() -> tuple[str, str]:
    """(etcd, etcdctl); installs Debian's etcd-server and etcd-client when they are missing
    and this runs as root with apt-get, else raises Skip."""
    found = shutil.which("etcd"), shutil.which("etcdctl")
    if found[0] and found[1]:
        return found[0], found[1]
    missing = " and ".join(n for n, f in zip(("etcd", "etcdctl"), found, strict=True) if not f)
    if os.geteuid() != 0:
        raise Skip(f"{missing} not found and not running as root, so Debian's etcd-server "
                   "and etcd-client cannot be installed (apt-get install etcd-server "
                   "etcd-client)")
    if shutil.which("apt-get") is None:
        raise Skip(f"{missing} not found and there is no apt-get to install Debian's "
                   "etcd-server and etcd-client")
    log(f"{missing} not found: installing Debian's etcd-server and etcd-client")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "etcd-server", "etcd-client"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=APT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise Skip(f"{shlex.join(command)} failed ({done.returncode}): "
                       f"{(done.stderr or done.stdout)[-1000:]}")
    found = shutil.which("etcd"), shutil.which("etcdctl")
    if not (found[0] and found[1]):
        raise Skip("etcd-server and etcd-client installed, but etcd/etcdctl are not on PATH")
    return found[0], found[1]


def version_of(binary: str) -> str:
    try:
        done = subprocess.run([binary, "version"] if binary.endswith("ctl") else
                              [binary, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = done.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def _etcdctl_env() -> dict[str, str]:
    # ETCDCTL_* variables from the caller's shell would change what etcdctl does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


class EtcdCluster:
    """Three etcd members on 127.0.0.1, each with its --data-dir under WORKDIR and its own
    process group; clients on P..P+2, peers on P+100..P+102."""

    def __init__(self, etcd: str, etcdctl: str, workdir: Path) -> None:
        self.etcd = etcd
        self.etcdctl = etcdctl
        self.workdir = workdir
        base = free_port_block(3)
        self.client_urls = [f"http://127.0.0.1:{base + i}" for i in range(3)]
        self.peer_urls = [f"http://127.0.0.1:{base + 100 + i}" for i in range(3)]
        self.token = "bench-vs-etcd-" + secrets.token_hex(4)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def endpoints(self) -> str:
        return ",".join(self.client_urls)

    def command(self, i: int) -> list[str]:
        cluster = ",".join(f"e{j}={url}" for j, url in enumerate(self.peer_urls))
        return [self.etcd, "--name", f"e{i}", "--data-dir", str(self.workdir / f"e{i}.etcd"),
                "--listen-peer-urls", self.peer_urls[i],
                "--initial-advertise-peer-urls", self.peer_urls[i],
                "--listen-client-urls", self.client_urls[i],
                "--advertise-client-urls", self.client_urls[i],
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token,
                "--logger", "zap", "--log-level", "error"]

    def log_path(self, i: int) -> Path:
        return self.workdir / f"e{i}.log"

    def log_tails(self, chars: int = 1500) -> str:
        tails = []
        for i in range(3):
            try:
                text = self.log_path(i).read_text(errors="replace")[-chars:]
            except OSError:
                text = "(no log)"
            tails.append(f"--- e{i} ({self.log_path(i)}):\n{text.rstrip() or '(empty)'}")
        return "\n".join(tails)

    def start(self) -> None:
        log(f"starting 3 etcd members, clients {self.endpoints}, in {self.workdir}")
        for i in range(3):
            with self.log_path(i).open("wb") as out:
                self.procs.append(subprocess.Popen(
                    self.command(i), stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True))

    def wait_healthy(self, timeout_s: float = ETCD_READY_TIMEOUT_S) -> float:
        """Seconds until `etcdctl endpoint health` is healthy for all three members."""
        started = time.monotonic()
        deadline = started + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise RuntimeError(f"etcd member e{i} exited with {proc.returncode}:\n"
                                       f"{self.log_tails()}")
            try:
                done = subprocess.run(
                    [self.etcdctl, f"--endpoints={self.endpoints}", "--dial-timeout=2s",
                     "--command-timeout=5s", "endpoint", "health"],
                    env=_etcdctl_env(), capture_output=True, text=True, timeout=15,
                    check=False, stdin=subprocess.DEVNULL)
                last = (done.stdout + done.stderr).strip()
                if done.returncode == 0 and last.count("is healthy") == 3:
                    return time.monotonic() - started
            except subprocess.TimeoutExpired:
                last = "etcdctl endpoint health timed out"
            time.sleep(0.5)
        raise RuntimeError(f"etcd cluster not healthy after {timeout_s:.0f} s; last answer:\n"
                           f"{last}\n{self.log_tails()}")

    def stop(self) -> None:
        """SIGTERM every member's process group, then SIGKILL the ones still there."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + ETCD_STOP_TIMEOUT_S
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"etcd member e{i} did not stop on SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=ETCD_STOP_TIMEOUT_S)


def output_lines(raw: str) -> list[str]:
    """check perf's output as lines: the progress bar redraws itself with carriage
    returns, so keep only its last state."""
    lines: list[str] = []
    for segment in re.split(r"[\r\n]+", raw):
        line = segment.rstrip()
        if not line.strip():
            continue
        if lines and PROGRESS_RE.match(line) and PROGRESS_RE.match(lines[-1]):
            lines[-1] = line
        else:
            lines.append(line)
    return lines


def parse_check_perf(raw: str) -> dict[str, Any]:
    """The figures in `etcdctl check perf` output (None where a line is missing)."""
    def number(pattern: re.Pattern[str]) -> float | None:
        found = pattern.findall(raw)
        return float(found[-1].replace(",", "")) if found else None

    lines = output_lines(raw)
    throughput_line = next((ln for ln in lines if WRITES_RE.search(ln)), "")
    return {
        "writes_per_s": number(WRITES_RE),
        "slowest_request_s": number(SLOWEST_RE),
        "stddev_s": number(STDDEV_RE),
        # PASS means at least 90% of the load model's rate limit: etcd was held back by
        # the limiter, not by its own capacity.
        "throughput_pass": throughput_line.strip().startswith("PASS"),
        "verdict": next((ln.strip() for ln in reversed(lines)
                         if ln.strip() in ("PASS", "FAIL")), None),
    }


def run_etcd(etcd: str, etcdctl: str, load: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-vs-etcd-"))
    cluster = EtcdCluster(etcd, etcdctl, workdir)
    try:
        cluster.start()
        ready_s = cluster.wait_healthy()
        log(f"etcd cluster healthy after {ready_s:.1f} s; etcdctl check perf --load={load} "
            "(60 s)")
        command = [etcdctl, f"--endpoints={cluster.endpoints}", "check", "perf",
                   f"--load={load}"]
        started = time.monotonic()
        try:
            done = subprocess.run(command, env=_etcdctl_env(), capture_output=True,
                                  timeout=CHECK_PERF_TIMEOUT_S, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"etcdctl check perf still running after "
                               f"{CHECK_PERF_TIMEOUT_S:.0f} s") from exc
        seconds = time.monotonic() - started
        raw = (done.stdout + done.stderr).decode(errors="replace")
        result = parse_check_perf(raw)
        tail = output_lines(raw)[-TAIL_LINES:]
        if result["writes_per_s"] is None:
            raise RuntimeError(f"no writes/s in `{shlex.join(command)}` (exit "
                               f"{done.returncode}):\n" + "\n".join(tail) +
                               f"\n{cluster.log_tails()}")
        log(f"etcd: {result['writes_per_s']:,.0f} writes/s, slowest request "
            f"{(result['slowest_request_s'] or 0) * 1000:.0f} ms")
        return {**result, "load": load, "exit_code": done.returncode,
                "seconds": round(seconds, 1), "ready_seconds": round(ready_s, 1),
                "command": shlex.join(command), "member_command": shlex.join(cluster.command(0)),
                "output_tail": tail}
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- tidechain -------------------------------------------------------------------------


def run_tidechain(tree: Path, txs: int, latency_s: float) -> dict[str, Any]:
    log(f"tidechain: 4 validators from {tree}, {txs:,} deposits, "
        f"{latency_s:g} s latency phase")
    report = four_validators(tree, txs, latency_s)
    throughput, latency = report["throughput"], report["latency"]
    assert isinstance(throughput, dict) and isinstance(latency, dict)
    result = {
        "committed_per_s": float(throughput["committed_per_s"]),
        "sustained_per_s": float(throughput["sustained_per_s"]),
        "committed": int(throughput["committed"]),
        "offered_per_s": float(latency["offered_per_s"]),
        "samples": int(latency["samples"]),
        "p50_ms": float(latency["p50_ms"]),
        "p99_ms": float(latency["p99_ms"]),
        "bench_node_command": report.get("command"),
    }
    log(f"tidechain: {result['committed_per_s']:,.0f} committed/s, finality p50 "
        f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    return result


# --- report ----------------------------------------------------------------------------


def reproduce_command(args: argparse.Namespace) -> str:
    argv = [".venv/bin/python", "benchmarks/bench_vs_etcd.py", "--pairs", str(args.pairs),
            "--txs", str(args.txs), "--latency-seconds", f"{args.latency_seconds:g}",
            "--etcd-load", args.etcd_load]
    if args.tree.resolve() != REPO:
        argv += ["--tree", str(args.tree.resolve())]
    if args.json:
        argv.append("--json")
    return shlex.join(argv)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    etcd = [r["etcd"] for r in runs]
    tide = [r["tidechain"] for r in runs]
    etcd_writes = statistics.median(e["writes_per_s"] for e in etcd)
    committed = statistics.median(t["committed_per_s"] for t in tide)
    p50 = statistics.median(t["p50_ms"] for t in tide)
    slowest = [e["slowest_request_s"] for e in etcd if e["slowest_request_s"] is not None]
    ratio = committed / etcd_writes
    return {
        "etcd_writes_per_s": etcd_writes,
        "etcd_slowest_request_ms": statistics.median(slowest) * 1000 if slowest else None,
        "etcd_throughput_capped_by_load": any(e["throughput_pass"] for e in etcd),
        "tidechain_committed_per_s": committed,
        "tidechain_sustained_per_s": statistics.median(t["sustained_per_s"] for t in tide),
        "tidechain_p50_finality_ms": p50,
        "tidechain_p99_finality_ms": statistics.median(t["p99_ms"] for t in tide),
        "ratio_committed_per_etcd_writes": ratio,
        "pair_ratios": [t["committed_per_s"] / e["writes_per_s"]
                        for t, e in zip(tide, etcd, strict=True)],
        "verdicts": {
            f"ratio >= {TARGET_RATIO:g}": verdict(ratio >= TARGET_RATIO),
            f"p50 finality < {TARGET_P50_MS:.0f} ms": verdict(p50 < TARGET_P50_MS),
        },
    }


def format_report(r: dict[str, Any]) -> str:
    m, s, e = r["machine"], r["summary"], r["etcd"]
    lines = [
        "etcd (3 members) against tidechain (4 validators), back to back on one machine",
        f"date     {r['date']}",
        f"machine  {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software {e['version']}; {e['etcdctl_version']}; Python {m['python']}, "
        f"SQLite {m['sqlite']}",
        f"tidechain {r['tree']} (this repository at {r['git']})",
        f"load     1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after",
        f"command  {r['command']}",
        f"etcd     {r['runs'][0]['etcd']['command']}",
        f"member   {r['runs'][0]['etcd']['member_command']}",
        "",
        "runs",
    ]
    for run in r["runs"]:
        ec, tc = run["etcd"], run["tidechain"]
        slowest = ec["slowest_request_s"]
        lines.append(
            f"  pair {run['pair'] + 1} ({' then '.join(run['order'])}): "
            f"etcd {ec['writes_per_s']:,.0f} writes/s (slowest "
            f"{'?' if slowest is None else f'{slowest * 1000:.0f}'} ms, "
            f"check perf {ec['verdict'] or '?'}); "
            f"tidechain {tc['committed_per_s']:,.0f} committed/s "
            f"(sustained {tc['sustained_per_s']:,.0f}), finality p50 {tc['p50_ms']:.0f} / "
            f"p99 {tc['p99_ms']:.0f} ms at {tc['offered_per_s']:,.0f}/s")
    slowest_ms = s["etcd_slowest_request_ms"]
    rows = [
        (f"medians of {len(r['runs'])} pair(s)", ""),
        (f"  etcd writes/s (check perf --load={r['options']['etcd_load']})",
         f"{s['etcd_writes_per_s']:,.0f}"
         + (" (at the load model's rate limit)" if s["etcd_throughput_capped_by_load"]
            else "")),
        ("  etcd slowest request",
         "?" if slowest_ms is None else f"{slowest_ms:.0f} ms"),
        ("  tidechain committed deposits/s", f"{s['tidechain_committed_per_s']:,.0f}"),
        ("  tidechain sustained, middle 80%", f"{s['tidechain_sustained_per_s']:,.0f}"),
        ("  tidechain finality p50 / p99 at half load",
         f"{s['tidechain_p50_finality_ms']:.0f} / {s['tidechain_p99_finality_ms']:.0f} ms"),
        ("  ratio tidechain committed/s : etcd writes/s",
         f"{s['ratio_committed_per_etcd_writes']:.2f}"
         + (f" (pairs: {', '.join(f'{x:.2f}' for x in s['pair_ratios'])})"
            if len(s["pair_ratios"]) > 1 else "")),
        ("targets", ""),
        *((f"  {name}", result) for name, result in s["verdicts"].items()),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines += [label if not value else f"{label:<{width}}{value}" for label, value in rows]
    if s["etcd_throughput_capped_by_load"]:
        lines.append(f"note: etcd reached >= 90% of the rate limit of --load="
                     f"{r['options']['etcd_load']}, so its figure is a floor; a larger "
                     "load model measures its capacity")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, default=1,
                   help="runs of each system; the order alternates per pair")
    p.add_argument("--txs", type=int, default=40_000, help="tidechain deposits in phase 1")
    p.add_argument("--latency-seconds", type=float, default=5.0,
                   help="length of tidechain's latency (finality) phase")
    p.add_argument("--etcd-load", choices=LOADS, default="xl",
                   help="etcdctl check perf --load (its rate limit and client count)")
    p.add_argument("--tree", type=Path, default=REPO,
                   help="the tidechain source tree to run (PYTHONPATH=TREE/src)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if args.pairs < 1 or args.txs < 10 or args.latency_seconds <= 0:
        p.error("--pairs >= 1, --txs >= 10, --latency-seconds > 0")
    if not (args.tree / "src" / "tidechain").is_dir():
        p.error(f"--tree {args.tree}: no src/tidechain there")
    return args


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: it unwinds through the finally blocks that stop the
    child processes."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        etcd, etcdctl = etcd_binaries()
    except Skip as exc:
        print(f"skipped: {exc}", flush=True)
        return 0
    tree = args.tree.resolve()
    load_before = load_average()
    runs: list[dict[str, Any]] = []
    try:
        for pair in range(args.pairs):
            order = ("etcd", "tidechain") if pair % 2 == 0 else ("tidechain", "etcd")
            run: dict[str, Any] = {"pair": pair, "order": list(order)}
            for system in order:
                log(f"pair {pair + 1}/{args.pairs}: {system}")
                run[system] = (run_etcd(etcd, etcdctl, args.etcd_load) if system == "etcd"
                               else run_tidechain(tree, args.txs, args.latency_seconds))
            runs.append(run)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt as exc:
        log("interrupted; every child process has been stopped")
        return 128 + (exc.args[0] if isinstance(exc, Terminated) else signal.SIGINT)
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_revision(),
        "tree": str(tree),
        "load_average_1min": {"before": load_before, "after": load_average()},
        "command": reproduce_command(args),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    if k != "json"},
        "etcd": {"version": version_of(etcd), "etcdctl_version": version_of(etcdctl),
                 "binaries": [etcd, etcdctl]},
        "runs": runs,
        "summary": summarise(runs),
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
