"""The README's demo: a one-validator network on an embedded SQLite store, three
document deposits through the real `tide` CLI, and a receipt verified offline.

Every step is the command a user would type; they are printed before they run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TIDE = [sys.executable, "-m", "tidechain"]

DOCUMENTS = {
    "tally-report-0042.txt":
        "Shipping tally report 0042\nVessel: MV Huangpu Star\nContainers: 118\n",
    "insurance-policy-7781.txt": "Cargo insurance policy 7781\nInsured value: CNY 1,250,000.00\n",
    "supply-contract-2026-19.txt": "Supply contract 2026-19\nSteel coils, 400 t, delivery Q1\n",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_tide(args: list[str], env: dict[str, str], check: bool = True) -> int:
    """Print `tide ARGS` as a user would type it, run it, and return its exit code;
    exit the demo when it fails and `check` is set."""
    shown = " ".join(shlex.quote(a) for a in ["tide", *args])
    print(f"\n$ {shown}", flush=True)
    code = subprocess.run([*TIDE, *args], env=env).returncode
    if check and code != 0:
        raise SystemExit(f"demo step failed with exit code {code}: {shown}")
    return code


def wait_ready(url: str, node: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Wait until the node at `url` answers its status, or exit the demo."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise SystemExit(f"the node exited with code {node.returncode}")
        try:
            httpx.get(f"{url}/v1/status", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the node did not answer on {url} within {timeout_s} s")


@dataclass(frozen=True)
class DemoNetwork:
    """A running one-validator demo network: its directory, the environment the
    `tide` commands run in, the node's API address and its log."""

    net: Path
    env: dict[str, str]
    url: str
    log_path: Path


@contextmanager
def demo_network(root: Path, name: str) -> Iterator[DemoNetwork]:
    """`tide init` a one-validator network in `root/net`, start its node (log in
    `root/node0.log`), and stop the node when the block ends."""
    net, port = root / "net", free_port()
    env = dict(os.environ, TIDE_NET=str(net))
    env.pop("TIDE_NODE", None)  # every step must talk to this demo's node
    run_tide(["init", str(net), "--name", name, "--port", str(port)], env)
    print(f"\n$ tide node start {net / 'node0'} &", flush=True)
    log_path = root / "node0.log"
    with log_path.open("wb") as log_file:
        node = subprocess.Popen([*TIDE, "node", "start", str(net / "node0")],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, node)
        yield DemoNetwork(net, env, url, log_path)
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", help="where to create the demo (default: a new temp dir)")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tidechain-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"tidechain demo in {root}")
    with demo_network(root, "demo-net") as demo:
        net, env = demo.net, demo.env
        docs = root / "documents"
        docs.mkdir(exist_ok=True)
        for name, text in DOCUMENTS.items():
            (docs / name).write_text(text)
            run_tide(["deposit", str(docs / name), "--meta", f"title={name}",
                      "--meta", "owner=Huangpu Logistics"], env)
        first = docs / next(iter(DOCUMENTS))
        run_tide(["status"], env)
        print("\nReads of member data are signed (RFC 9421) by a member key: the depositor "
              "sees its deposits;")
        run_tide(["evidence", "lookup", str(first), "--as", str(net / "client.key")], env)
        print("the organisation's admin is a member too, but deposits are not its to read: "
              "its list is empty (docs/access.md):")
        run_tide(["evidence", "lookup", str(first), "--as", str(net / "admin.key")], env,
                 check=False)
        print("\nThe node is not needed to check a receipt: verify offline with the trust file.")
        run_tide(["verify", str(first), f"{first}.tlog-proof", "--trust",
                  str(net / "trust.txt")], env)
        forged = docs / "tally-report-0042-forged.txt"
        forged.write_text(first.read_text().replace("118", "119"))
        print("\nA document changed by one character does not match the receipt:")
        code = run_tide(["verify", str(forged), f"{first}.tlog-proof", "--trust",
                         str(net / "trust.txt")], env, check=False)
        if code == 0:
            raise SystemExit("a forged document verified: this is a bug")
    print(f"\nDemo complete. The network, documents and receipts are in {root}"
          f"\n(node log: {demo.log_path}). Restart the node with: "
          f"tide node start {net / 'node0'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
