"""EPCIS capture, query and trace on one validator (api/epcis.py, docs/traceability.md).

A real `tide node start` process of a fresh one-validator `tide init` network with
`epcis = true` (GS1's schemas from `$TIDE_EPCIS_SCHEMAS` or ../shared/vectors/epcis)
and a capturer key enrolled as an enterprise. Three phases, from this process:

1. capture: --documents (20) EPCISDocuments of --events (50) ObjectEvents each, every
   event naming its own item, POSTed back to back (`POST /v1/epcis/capture`, each
   answered 202 once its job is on disk), then every job waited for. Events/s runs from
   the first POST to the last job done: validation against GS1's JSON Schema, splitting,
   one signed transaction per event, consensus, durable commit.
2. query: --queries (200) `GET /v1/epcis/events?MATCH_epc=...` for random captured
   items, one at a time: requests/s and latency (p50, p99).
3. trace: --traces (50) `GET /v1/trace?id=...`, one at a time: latency.

    .venv/bin/python benchmarks/bench_epcis.py
    .venv/bin/python benchmarks/bench_epcis.py --documents 40 --events 100 --json

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_node import BenchError, NodeProcess, free_port_block, log, percentile_ms

from tidechain.client.files import read_key
from tidechain.client.sdk import Client
from tidechain.core.timefmt import iso_utc

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "epcis"
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]


def tide(*args: str, net: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE", "TIDE_KEY")}
    if net is not None:
        env["TIDE_NET"] = str(net)
    return subprocess.run([sys.executable, "-m", "tidechain", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def schemas() -> Path:
    folder = Path(os.environ.get("TIDE_EPCIS_SCHEMAS") or VECTORS)
    if not (folder / "schema" / "EPCIS-JSON-Schema.json").is_file():
        raise BenchError(f"GS1's EPCIS schemas not found at {folder}: set TIDE_EPCIS_SCHEMAS")
    return folder


def item(doc: int, event: int) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{doc * 100_000 + event}"


def document(doc: int, events: int, start_ms: int) -> bytes:
    body = [{"type": "ObjectEvent", "eventTime": iso_utc(start_ms + doc * 1000 + i),
             "eventTimeZoneOffset": "+08:00", "action": "OBSERVE",
             "epcList": [item(doc, i)], "bizStep": "shipping", "disposition": "in_transit",
             "readPoint": {"id": "urn:epc:id:sgln:0614141.00777.0"}}
            for i in range(events)]
    return json.dumps({"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0",
                       "creationDate": iso_utc(start_ms),
                       "epcisBody": {"eventList": body}}).encode()


def start_node(workdir: Path) -> tuple[NodeProcess, Client, Path]:
    net, port = workdir / "net", free_port_block(1)
    made = tide("init", str(net), "--name", "bench-epcis", "--port", str(port))
    if made.returncode != 0:
        raise BenchError(f"tide init failed: {made.stderr or made.stdout}")
    toml = net / "node0" / "node.toml"
    toml.write_text(f'epcis = true\nepcis_schemas = "{schemas()}"\n'
                    "api_reads_per_s = 100000\n" + toml.read_text())
    node = NodeProcess(net / "node0", workdir / "node.log", 0)
    node.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v1/status", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or node.exited() is not None:
            raise BenchError(f"node not ready:\n{node.log_tail()}")
        time.sleep(0.2)
    (net / "node0" / "epcis").mkdir()
    enrolled = tide("member", "enrol", "--role", "enterprise", "--name", "bench capture",
                    "--new-key", str(net / "node0" / "epcis" / "capturer.key"), net=net)
    if enrolled.returncode != 0:
        raise BenchError(f"enrol failed: {enrolled.stderr}")
    client = Client(url, key=read_key(net / "client.key").key, timeout_s=120)
    return node, client, net


def capture_phase(client: Client, documents: int, events: int) -> dict[str, Any]:
    start_ms = int(time.time() * 1000) - 86_400_000
    bodies = [document(d, events, start_ms) for d in range(documents)]
    began = time.perf_counter()
    jobs = []
    for body in bodies:
        answer = client._http.post("/v1/epcis/capture", content=body,
                                   headers={"Content-Type": "application/ld+json"})
        if answer.status_code != 202:
            raise BenchError(f"capture: HTTP {answer.status_code}: {answer.text[:300]}")
        jobs.append(answer.json()["captureID"])
    accepted = time.perf_counter() - began
    for job in jobs:
        while True:
            state = client._http.get(f"/v1/epcis/capture/{job}").json()
            if not state["running"]:
                if not state["success"]:
                    raise BenchError(f"capture job {job} failed: {state['errors'][:3]}")
                break
            time.sleep(0.05)
    elapsed = time.perf_counter() - began
    total = documents * events
    return {"documents": documents, "events": total, "seconds": round(elapsed, 3),
            "events_per_s": round(total / elapsed, 1),
            "all_202_within_s": round(accepted, 3)}


def timed(client: Client, path: str, params: dict[str, str]) -> float:
    began = time.perf_counter()
    answer = client._http.get(path, params=params)
    if answer.status_code != 200:
        raise BenchError(f"GET {path}: HTTP {answer.status_code}: {answer.text[:300]}")
    return time.perf_counter() - began


def read_phase(client: Client, path: str, count: int, documents: int, events: int,
               param: str) -> dict[str, Any]:
    rng = random.Random(7)
    latencies = sorted(timed(client, path, {param: item(rng.randrange(documents),
                                                         rng.randrange(events))})
                       for _ in range(count))
    return {"requests": count, "per_s": round(count / sum(latencies), 1),
            "p50_ms": round(percentile_ms(latencies, 50), 2),
            "p99_ms": round(percentile_ms(latencies, 99), 2),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--traces", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-epcis-") as tmp:
        node, client, _ = start_node(Path(tmp))
        try:
            captured = capture_phase(client, args.documents, args.events)
            log(f"capture: {captured}")
            queried = read_phase(client, "/v1/epcis/events", args.queries, args.documents,
                                 args.events, "MATCH_epc")
            log(f"query: {queried}")
            traced = read_phase(client, "/v1/trace", args.traces, args.documents,
                                args.events, "id")
            log(f"trace: {traced}")
        finally:
            client.close()
            node.stop()
    result = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "capture": captured, "query": queried,
              "trace": traced,
              "command": " ".join(shlex.quote(a) for a in [
                  ".venv/bin/python", "benchmarks/bench_epcis.py", *(argv or sys.argv[1:])])}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"capture: {captured['events']} events in {captured['documents']} documents: "
              f"{captured['events_per_s']} events/s ({captured['seconds']} s)")
        print(f"query MATCH_epc: {queried['per_s']}/s, p50 {queried['p50_ms']} ms, "
              f"p99 {queried['p99_ms']} ms")
        print(f"trace: {traced['per_s']}/s, p50 {traced['p50_ms']} ms, "
              f"p99 {traced['p99_ms']} ms")
        print(f"reproduce: {result['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
