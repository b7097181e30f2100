"""`tide cluster up/down`: every node of a network directory as a local process.

A developer convenience for one machine: in production each organisation runs
`tide node start` on its own server. The processes are detached (own session), log to
`NET/nodeN/node.log`, and are remembered in `NET/cluster.pids` for `down`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tidechain.node.config import ConfigError, load_node

PID_FILE = "cluster.pids"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def node_dirs(net: Path) -> list[Path]:
    dirs = sorted(p.parent for p in net.glob("node*/node.toml"))
    if not dirs:
        raise ConfigError(f"no node directories in {net}: run `tide init` first")
    return dirs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(net: Path) -> list[int]:
    path = net / PID_FILE
    if not path.exists():
        return []
    pids = [int(line) for line in path.read_text().split() if line.isdigit()]
    return [pid for pid in pids if _alive(pid)]


def cluster_up(net: Path) -> list[tuple[str, int, str]]:
    """Start every node; return (node name, pid, API URL) once each API answers."""
    if _running(net):
        raise ConfigError(f"a cluster of {net} is already running; `tide cluster down` first")
    started: list[tuple[str, int, str]] = []
    processes: list[subprocess.Popen[bytes]] = []
    for directory in node_dirs(net):
        config = load_node(directory)
        with (directory / "node.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tidechain", "node", "start", str(directory)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        processes.append(process)
        started.append((config.name, process.pid, config.api_url))
    (net / PID_FILE).write_text("".join(f"{pid}\n" for _, pid, _ in started))
    deadline = time.monotonic() + READY_TIMEOUT_S
    for (name, _, url), process in zip(started, processes, strict=True):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/status", timeout=1).status_code == 200:
                    break
            # poll(), not kill(pid, 0): a child that exited is a zombie until reaped.
            exited = process.poll() is not None
            if exited or time.monotonic() > deadline:
                cluster_down(net)
                why = "exited" if exited else f"not ready after {READY_TIMEOUT_S:.0f} s"
                log_path = net / name / "node.log"
                raise ConfigError(f"{name} did not start ({why}); end of {log_path}:\n"
                                  + _tail(log_path))
            time.sleep(0.1)
    return started


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(cannot read: {e})"
    return "\n".join(text.splitlines()[-lines:])


def cluster_down(net: Path) -> int:
    """Stop the cluster's processes (SIGTERM, then SIGKILL after a grace period)."""
    pids = _running(net)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    (net / PID_FILE).unlink(missing_ok=True)
    return len(pids)
