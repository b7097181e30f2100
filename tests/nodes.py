"""A real tidechain node in a subprocess, for the API, CLI and crash tests."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Below Linux's default ephemeral range (32768-60999): a port there can be taken at
# any moment by some process's outgoing connection, including our own nodes' peers.
_BLOCK_LOW, _BLOCK_HIGH = 20000, 32000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, peer_offset: int = 100, seed: int | None = None) -> int:
    """A base port P with P..P+count-1 and P+peer_offset.. free, outside the
    ephemeral range, as `tide init --validators count --port P` needs."""
    rng = random.Random(seed)
    for _ in range(200):
        base = rng.randrange(_BLOCK_LOW, _BLOCK_HIGH - peer_offset - count)
        ports = [base + i for i in range(count)] + [
            base + peer_offset + i for i in range(count)]
        if all(_bindable(p) for p in ports):
            return base
    raise RuntimeError("no free block of ports found")


class StoppableThreads:
    """Threads that each take one shared stop event as their last argument: started
    together on enter, told to stop and joined on exit. A thread still alive after
    `join_timeout_s` fails the test."""

    def __init__(self, join_timeout_s: float) -> None:
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._join_timeout_s = join_timeout_s

    def add(self, name: str, target: Callable[..., object], *args: object) -> None:
        self.threads.append(threading.Thread(target=target, name=name,
                                             args=(*args, self.stop_event)))

    def __enter__(self) -> StoppableThreads:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=self._join_timeout_s)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"load threads did not stop: {stuck}"


def tide(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the `tide` CLI as a subprocess; never raises on a non-zero exit."""
    # The caller's own TIDE_NET / TIDE_NODE must not leak into a test.
    full_env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tidechain", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class RunningNode:
    net: Path
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def trust_text(self) -> str:
        return (self.net / "trust.txt").read_text()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(node: RunningNode) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            pytest.fail(f"node exited with {node.process.returncode}:\n{node.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{node.url}/v1/status", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"node not ready after {READY_TIMEOUT_S} s:\n{node.log()}")


@contextlib.contextmanager
def running_node(root: Path, name: str, node_toml_extra: str = "") -> Iterator[RunningNode]:
    """`tide init ROOT/net --name NAME`, then `tide node start` on a free port."""
    net = root / "net"
    port = free_port()
    created = tide("init", str(net), "--name", name, "--port", str(port))
    assert created.returncode == 0, created.stderr
    with (net / "node0" / "node.toml").open("a") as toml:
        toml.write(node_toml_extra)
    log_path = root / "node.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidechain", "node", "start", str(net / "node0")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    node = RunningNode(net, f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        _wait_ready(node)
        yield node
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    assert "Traceback" not in node.log(), node.log()


UNLIMITED_READS_TOML = "api_reads_per_s = 100000\n"
"""A node.toml line lifting the per-caller read rate (ADR 0015's 200/s): for tests that
read a whole log back as one member and would otherwise be answered 429."""


def lift_read_limit(node_dir: Path) -> None:
    """Add `UNLIMITED_READS_TOML` to NODE_DIR/node.toml, among its top-level keys (before
    any `[[peers]]` table, where an appended key would land inside the last one)."""
    path = node_dir / "node.toml"
    text = path.read_text()
    table = text.find("\n[")
    at = len(text) if table < 0 else table + 1
    head = text[:at] if text[:at].endswith("\n") or not text[:at] else text[:at] + "\n"
    path.write_text(head + UNLIMITED_READS_TOML + text[at:])
