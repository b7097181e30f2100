"""E-invoice benchmark on one validator: invoices issued and reimbursed per second.

Against a real `tide node start` subprocess (as bench_node.py), in one run:

1. set-up: `tide member enrol` a tax authority, an issuer, a buyer and an employer
   (real CLI commands); the tax authority registers its audit key and authorises the
   issuer with a quota for the whole run;
2. issue: N invoices, one `invoice.issue` transaction each;
3. issue_batch: N more invoices in `invoice.issue_batch` transactions of --batch-invoices;
4. the reimbursement flow on the N invoices of phase 2, one phase per step: the buyer's
   `claim` and `submit`, the employer's `lock` and `reimburse`.

Each phase signs its transactions before the clock starts, submits them as fast as
the node takes them (bench_node.throughput_phase: batches over --connections, backing
off on busy) and ends when the log holds all of them. The rate of a phase is invoices
(not transactions) per second from its first submission to its last commit; the full
reimbursement flow's rate is N over the four steps' summed times. Every phase is then
checked on chain: the invoices' records and the issuer's monthly statistics must show
that every transaction did what it should (a refused call would be in the log too).

    .venv/bin/python benchmarks/bench_invoice.py                  # 10,000 invoices per phase
    .venv/bin/python benchmarks/bench_invoice.py --invoices 1000 --json
    .venv/bin/python benchmarks/bench_invoice.py --nice -10       # on a shared machine (root)

Only 127.0.0.1 is contacted; every wait is bounded by --timeout-s. Transactions are
built with tidechain.client.txbuilder's `call_tx` and argument helpers (content sealed
to issuer, buyer and auditor by client/sealing.py, before the clock starts, like
signing); issuance goes through
`issue_args` and `issue_tx` below, the one place to adapt when issuance changes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from bench_node import (
    NODE_READY_TIMEOUT_S,
    Api,
    BenchError,
    NodeProcess,
    ThroughputResult,
    free_port,
    load_average,
    log,
    machine,
    on_node_process,
    run_and_report,
    throughput_phase,
)

from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.client.files import read_key
from tidechain.contracts.invoice.contract import MAX_BATCH
from tidechain.core.crypto import SigningKey
from tidechain.ledger.types import Genesis
from tidechain.ops.network import init_network

ISSUER_TAX_ID = "91350100M000100Y43"
"""A valid unified social credit code for the benchmark's issuer."""
ACTORS = {  # key file stem: (certificate name, role)
    "tax": ("Bench Taxation Bureau", "tax_authority"),
    "issuer": ("Bench Merchant Co.", "invoice_issuer"),
    "buyer": ("Bench Buyer", "depositor"),
    "employer": ("Bench Employer Ltd.", "enterprise"),
}
TTL_MS = 6 * 3600 * 1000
"""Transactions are signed before their phase: valid long enough for any run."""
SAMPLE_CHECKS = 25
"""Invoice records read back after each phase (first, last and evenly spaced)."""
FLOW_STEPS = ("claim", "submit", "lock", "reimburse")
EXPECTED_AFTER = {  # step: (record field, expected value) on every sampled invoice
    "claim": ("claimed", True),
    "submit": ("submitted_to", "the employer's key, hex (set below)"),
    "lock": ("state", "locked"),
    "reimburse": ("state", "reimbursed"),
}


# --- building transactions ---------------------------------------------------------------


def invoice_number(series: int, n: int) -> str:
    """20 digits: 44, a 2-digit series (one per phase and run), a 16-digit counter."""
    return f"44{series:02d}{n:016d}"


def invoice_lines(n: int) -> list[dict[str, Any]]:
    """Two line items, as a typical retail invoice; prices vary so totals differ."""
    return [tb.invoice_line("coffee beans, 1 kg", 2, 12_800 + n % 100, 1300),
            tb.invoice_line("delivery", 1, 1_500, 600)]


def issue_args(number: str, buyer: bytes, n: int) -> dict[str, Any]:
    """The arguments of one invoice: the one place to adapt when issuance changes."""
    return tb.invoice_args(number, {"key": buyer}, invoice_lines(n), remark="bench")


@dataclass(frozen=True)
class Signer:
    """Signs one phase's transactions with distinct nonces (tag + counter)."""

    chain_id: bytes
    now_ms: int
    tag: bytes

    def sign(self, n: int, key: SigningKey, method: str,
             args: dict[str, Any]) -> tuple[bytes, bytes]:
        """A signed `invoice.method(args)`: the benchmark submits in batches, so it
        builds with `call_tx` and its own clock and nonces."""
        tx = tb.call_tx(key, self.chain_id, tb.INVOICE, method, args, now_ms=self.now_ms,
                        nonce=self.tag + n.to_bytes(8, "big"), ttl_ms=TTL_MS)
        return tx.encode(), tx.tx_id


def issue_tx(signer: Signer, n: int, issuer: SigningKey, invoices: list[dict[str, Any]],
             auditors: list[bytes]) -> tuple[bytes, bytes]:
    """One `issue` (one invoice) or `issue_batch` transaction, content sealed."""
    if len(invoices) == 1:
        return signer.sign(n, issuer, "issue", tb.issue_args(invoices[0], issuer.public_key,
                                                             auditors=auditors))
    return signer.sign(n, issuer, "issue_batch",
                       tb.issue_batch_args(invoices, issuer.public_key, auditors=auditors))


def issue_txs(signer: Signer, issuer: SigningKey, buyer: bytes, numbers: list[str],
              auditors: list[bytes], per_tx: int) -> list[tuple[bytes, bytes]]:
    chunks = [numbers[i:i + per_tx] for i in range(0, len(numbers), per_tx)]
    return [issue_tx(signer, i, issuer, [issue_args(number, buyer, j) for j, number in
                                         enumerate(chunk, i * per_tx)], auditors)
            for i, chunk in enumerate(chunks)]


def step_txs(signer: Signer, step: str, key: SigningKey, numbers: list[str],
             employer: bytes, wrapped: list[bytes] | None) -> list[tuple[bytes, bytes]]:
    """One buyer or employer call per invoice; `submit` also gives the employer the
    content key (`wrapped[i]`, the key of invoice i sealed to the employer)."""
    out = []
    for i, number in enumerate(numbers):
        extra: dict[str, Any] = {}
        if step == "submit":
            extra = {"employer": employer, "wrapped": wrapped[i] if wrapped else None}
        out.append(signer.sign(i, key, step, tb.invoice_action_args(step, number, **extra)))
    return out


# --- set-up ------------------------------------------------------------------------------


def enrol_actors(net: Path, keys_dir: Path) -> dict[str, SigningKey]:
    """Enrol each actor with the real CLI (`tide member enrol`), as an operator would."""
    env = dict(os.environ, TIDE_NET=str(net))
    env.pop("TIDE_NODE", None)
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, SigningKey] = {}
    for stem, (name, role) in ACTORS.items():
        path = keys_dir / f"{stem}.key"
        done = subprocess.run(
            [sys.executable, "-m", "tidechain", "member", "enrol", "--role", role,
             "--name", name, "--new-key", str(path)],
            env=env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise BenchError(f"tide member enrol {stem} failed: {done.stderr or done.stdout}")
        keys[stem] = read_key(path).key
    return keys


# --- phases ------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    invoices: int
    transactions: int
    seconds: float
    invoices_per_s: float
    tx_per_s: float
    refused: dict[str, int]
    node_cpu_us_per_invoice: float
    checked: str


class Bench:
    def __init__(self, api: Api, pid: int | None, args: argparse.Namespace, chain_id: bytes,
                 keys: dict[str, SigningKey]) -> None:
        self.api = api
        self.pid = pid
        self.args = args
        self.chain_id = chain_id
        self.keys = keys
        self.results: list[PhaseResult] = []

    def signer(self, tag: str) -> Signer:
        return Signer(self.chain_id, int(time.time() * 1000), tag.encode().ljust(8, b"\0")[:8])

    async def run_phase(self, name: str, invoices: int, txs: list[tuple[bytes, bytes]]
                        ) -> ThroughputResult:
        log(f"{name}: {invoices:,} invoices in {len(txs):,} transactions")
        result = await throughput_phase(self.api, self.pid, txs, self.args)
        if not result.all_committed or result.refused:
            raise BenchError(f"{name}: {result.accepted:,} of {len(txs):,} accepted, "
                             f"refused {result.refused}, {result.committed:,} committed")
        for _, tx_id in (txs[0], txs[-1]):
            await self.check_committed_ok(name, tx_id)
        return result

    async def check_committed_ok(self, phase: str, tx_id: bytes) -> None:
        """A refused contract call is committed too: its result must show success."""
        async with self.api.session.get(f"{self.api.url}/v1/tx/{tx_id.hex()}") as resp:
            doc = await resp.json()
        result = doc.get("result") or {}
        if resp.status != 200 or doc.get("error") or result.get("error"):
            raise BenchError(f"{phase}: transaction {tx_id.hex()} did not succeed: "
                             f"{doc.get('error') or result.get('error')}: "
                             f"{doc.get('reason') or result.get('reason')}")

    def record(self, name: str, invoices: int, result: ThroughputResult, checked: str
               ) -> PhaseResult:
        phase = PhaseResult(
            name=name, invoices=invoices, transactions=result.committed,
            seconds=result.commit_seconds, invoices_per_s=invoices / result.commit_seconds,
            tx_per_s=result.committed_per_s, refused=result.refused,
            node_cpu_us_per_invoice=1e6 * result.node_cpu_seconds / invoices, checked=checked)
        self.results.append(phase)
        log(f"{name}: {phase.invoices_per_s:,.0f} invoices/s ({checked})")
        return phase

    async def record_of(self, number: str) -> dict[str, Any]:
        path = f"/v1/apps/invoice/invoice?number={number}"
        async with self.api.session.get(f"{self.api.url}{path}") as resp:
            if resp.status != 200:
                raise BenchError(f"GET {path}: HTTP {resp.status}")
            doc: dict[str, Any] = await resp.json()
            return doc

    async def wrapped_keys(self, numbers: list[str], buyer: SigningKey, employer: bytes
                           ) -> list[bytes]:
        """Each invoice's content key, opened by the buyer and sealed to the employer
        (what `submit` carries): read from the records, before the clock starts."""
        out = []
        for number in numbers:
            record = sealing.record_from_json(await self.record_of(number))
            out.append(sealing.share_key(record, buyer, employer))
        return out

    async def check_sample(self, numbers: list[str], field: str, want: Any,
                           label: str = "") -> str:
        """Every sampled invoice shows `field == want`: the phase's calls succeeded."""
        step = max(1, len(numbers) // SAMPLE_CHECKS)
        sample = sorted(set(numbers[::step]) | {numbers[-1]})
        for number in sample:
            got = (await self.record_of(number)).get(field)
            if got != want:
                raise BenchError(f"invoice {number}: {field} is {got!r}, expected {want!r}")
        return f"{len(sample)} records show {field}={label or want}"

    async def check_stats(self, month: str, issued_count: int, reimbursed: int) -> str:
        url = f"{self.api.url}/v1/apps/invoice/stats?issuer={ISSUER_TAX_ID}&month={month}"
        async with self.api.session.get(url) as resp:
            if resp.status != 200:
                raise BenchError(f"GET {url}: HTTP {resp.status}")
            stats = await resp.json()
        # A fresh network: the month's counters are exactly this run's.
        if stats.get("issued_count") != issued_count or stats.get("reimbursed") != reimbursed:
            raise BenchError(f"statistics {stats}: expected {issued_count} issued and "
                             f"{reimbursed} reimbursed")
        return f"statistics: {stats['issued_count']:,} issued, {stats['reimbursed']:,} fen paid"


async def run_phases(args: argparse.Namespace, net: Path, url: str, node: NodeProcess
                     ) -> dict[str, Any]:
    load_before = load_average()
    genesis = Genesis.decode((net / "genesis.cbor").read_bytes())
    timeout = aiohttp.ClientTimeout(total=args.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=64)) as session:
        api = Api(session, url)
        await api.wait_ready(node, NODE_READY_TIMEOUT_S)
        log("set-up: enrolling tax authority, issuer, buyer, employer with `tide member enrol`")
        keys = enrol_actors(net, net.parent / "keys")
        bench = Bench(api, node.pid, args, genesis.chain_id, keys)
        buyer, employer = keys["buyer"].public_key, keys["employer"].public_key
        n = args.invoices
        quota = 10**15  # content.MAX_AMOUNT: the issuer never runs out in a run
        auditors = [keys["tax"].public_key]
        setup = bench.signer("setup")
        await bench.run_phase("set-up", 0, [
            setup.sign(0, keys["tax"], "set_auditors", {"keys": auditors}),
            setup.sign(1, keys["tax"], "authorise_issuer", tb.authorise_issuer_args(
                keys["issuer"].public_key, ACTORS["issuer"][0], ISSUER_TAX_ID, quota))])

        singles = [invoice_number(1, i) for i in range(n)]
        txs = issue_txs(bench.signer("issue"), keys["issuer"], buyer, singles, auditors, 1)
        result = await bench.run_phase("issue", n, txs)
        bench.record("issue", n, result, await bench.check_sample(singles, "state", "issued"))

        batched = [invoice_number(2, i) for i in range(n)]
        txs = issue_txs(bench.signer("batch"), keys["issuer"], buyer, batched, auditors,
                        args.batch_invoices)
        result = await bench.run_phase("issue_batch", n, txs)
        bench.record(f"issue_batch ({args.batch_invoices} per tx)", n, result,
                     await bench.check_sample(batched, "state", "issued"))

        for step in FLOW_STEPS:
            actor = keys["buyer" if step in ("claim", "submit") else "employer"]
            wrapped = (await bench.wrapped_keys(singles, keys["buyer"], employer)
                       if step == "submit" else None)
            txs = step_txs(bench.signer(step), step, actor, singles, employer, wrapped)
            result = await bench.run_phase(step, n, txs)
            field, want = EXPECTED_AFTER[step]
            want = employer.hex() if step == "submit" else want
            bench.record(step, n, result, await bench.check_sample(
                singles, field, want, "employer" if step == "submit" else ""))
        month = str((await bench.record_of(singles[0]))["period"])
        paid = sum(invoice_total(i) for i in range(n))
        stats_check = await bench.check_stats(month, 2 * n, paid)
        log(stats_check)
    flow_s = sum(p.seconds for p in bench.results if p.name in FLOW_STEPS)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": load_average()},
        "command": reproduce_command(),
        "node_command": " ".join(node.command),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "phases": [asdict(p) for p in bench.results],
        "reimbursement_flow": {"invoices": n, "seconds": flow_s,
                               "invoices_per_s": n / flow_s if flow_s else 0.0},
        "statistics_check": stats_check,
    }


def invoice_total(n: int) -> int:
    """The total of invoice n as `invoice_lines` builds it (what reimbursement pays)."""
    return sum(line["amount"] + line["tax"] for line in invoice_lines(n))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tidechain-bench-invoice-"))
    port = free_port()
    init_network(workdir / "net", "bench-invoice", validators=1, base_port=port)
    return await on_node_process(args, workdir, port, run_phases)


# --- report --------------------------------------------------------------------------------


def reproduce_command() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_invoice.py",
                                             *sys.argv[1:]])


def format_report(r: dict[str, Any]) -> str:
    m, flow = r["machine"], r["reimbursement_flow"]
    lines = [
        "tidechain e-invoice benchmark (one validator, durable commit)",
        f"date     {r['date']}",
        f"machine  {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software Python {m['python']}, SQLite {m['sqlite']}, tidechain {m['git']}",
        f"load     1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after",
        f"command  {r['command']}",
        "",
        f"{'phase':<28}{'invoices':>10}{'txs':>9}{'seconds':>9}{'invoices/s':>12}"
        f"{'tx/s':>9}{'node CPU us/inv':>17}",
    ]
    for p in r["phases"]:
        lines.append(f"{p['name']:<28}{p['invoices']:>10,}{p['transactions']:>9,}"
                     f"{p['seconds']:>9.2f}{p['invoices_per_s']:>12,.0f}{p['tx_per_s']:>9,.0f}"
                     f"{p['node_cpu_us_per_invoice']:>17,.0f}")
    lines += [
        f"{'reimbursement flow (4 steps)':<28}{flow['invoices']:>10,}{4 * flow['invoices']:>9,}"
        f"{flow['seconds']:>9.2f}{flow['invoices_per_s']:>12,.0f}",
        "",
        "checked on chain: " + "; ".join(p["checked"] for p in r["phases"]),
        r["statistics_check"],
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--invoices", type=int, default=10_000, help="invoices per phase")
    p.add_argument("--batch-invoices", type=int, default=MAX_BATCH,
                   help=f"invoices per issue_batch transaction (1..{MAX_BATCH})")
    p.add_argument("--batch-size", type=int, default=500, help="transactions per POST")
    p.add_argument("--connections", type=int, default=2, help="concurrent POSTs")
    p.add_argument("--timeout-s", type=float, default=600.0, help="bound on each wait")
    p.add_argument("--keep-dir", action="store_true", help="keep the node's directory")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for the node and this client (see bench_node.py)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.batch_invoices <= MAX_BATCH or not 1 <= args.batch_size <= 4000:
        p.error(f"--batch-invoices must be 1..{MAX_BATCH}, --batch-size 1..4000")
    if not 1 <= args.invoices <= 10**6:
        p.error("--invoices must be 1..1,000,000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_and_report(parse_args(argv), run, format_report)


if __name__ == "__main__":
    sys.exit(main())
