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
from pathlib import Path

import httpx

TIDE = [sys.executable, "-m", "tidechain.cli.main"]

DOCUMENTS = {
    "tally-report-0042.txt":
        "Shipping tally report 0042\nVessel: MV Huangpu Star\nContainers: 118\n",
    "insurance-policy-7781.txt": "Cargo insurance policy 7781\nInsured value: CNY 1,250,000.00\n",
    "supply-contract-2026-19.txt": "Supply contract 2026-19\nSteel coils, 400 t, delivery Q1\n",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], env: dict[str, str], check: bool = True) -> int:
    shown = " ".join(shlex.quote(a) for a in ["tide", *args])
    print(f"\n$ {shown}", flush=True)
    code = subprocess.run([*TIDE, *args], env=env).returncode
    if check and code != 0:
        raise SystemExit(f"demo step failed with exit code {code}: {shown}")
    return code


def _wait_ready(url: str, node: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", help="where to create the demo (default: a new temp dir)")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tidechain-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    net = root / "net"
    port = _free_port()
    env = dict(os.environ, TIDE_NET=str(net))
    print(f"tidechain demo in {root}")
    _run(["init", str(net), "--name", "demo-net", "--port", str(port)], env)
    print(f"\n$ tide node start {net / 'node0'} &", flush=True)
    log_path = root / "node0.log"
    with log_path.open("wb") as log_file:
        node = subprocess.Popen([*TIDE, "node", "start", str(net / "node0")],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", node)
        docs = root / "documents"
        docs.mkdir(exist_ok=True)
        for name, text in DOCUMENTS.items():
            (docs / name).write_text(text)
            _run(["deposit", str(docs / name), "--meta", f"title={name}",
                  "--meta", "owner=Huangpu Logistics"], env)
        first = docs / next(iter(DOCUMENTS))
        _run(["status"], env)
        print("\nThe node is not needed to check a receipt: verify offline with the trust file.")
        _run(["verify", str(first), f"{first}.tlog-proof", "--trust", str(net / "trust.txt")],
             env)
        forged = docs / "tally-report-0042-forged.txt"
        forged.write_text(first.read_text().replace("118", "119"))
        print("\nA document changed by one character does not match the receipt:")
        code = _run(["verify", str(forged), f"{first}.tlog-proof", "--trust",
                     str(net / "trust.txt")], env, check=False)
        if code == 0:
            raise SystemExit("a forged document verified: this is a bug")
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()
    print(f"\nDemo complete. The network, documents and receipts are in {root}"
          f"\n(node log: {log_path}). Restart the node with: "
          f"tide node start {net / 'node0'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
