"""Supply-chain finance at scale (issue 13, acceptance 3) on a 4-validator cluster.

One core enterprise and 1,000 suppliers over three tiers, on four real validator
processes (`tide init --validators 4` + `tide cluster up`, mutual TLS between them):

set-up (not timed): the admin enrols the core enterprise, the suppliers (enterprise),
a funder, a regulator, a tax authority and one invoice issuer (`members.enrol`); the
tax authority registers its audit key and authorises the issuer; the issuer issues one
e-invoice per tier-1 certificate to the core enterprise (`invoice.issue_batch`, the
trade background: issuer and core are in the same organisation here, so the invoices
are "issued by the supplier's organisation to the core enterprise's"); the funder sets
the core enterprise's credit line to exactly what will be issued.

Then, each phase timed from its first submission to its last commit (bench_node's
`throughput_phase`: batches over --connections, backing off on busy), every
transaction signed before its phase's clock starts:

1. issue: the core issues one certificate to each of --tier1 (100) tier-1 suppliers,
   with a maturity --maturity-s ahead; 2. each tier-1 supplier accepts;
3. each tier-1 supplier splits: --tier2-per (3) parts to its own tier-2 suppliers, a
   remainder kept; 4. every tier-2 supplier accepts;
5. each tier-2 supplier splits: --tier3-per (2) parts to tier-3 suppliers, a remainder
   kept; 6. every tier-3 supplier accepts. Now every supplier holds one certificate.
7. finance: every --finance-every (2nd) supplier asks the funder to finance it;
8. approve: the funder approves each (and becomes the holder); the rest are held.
Look-through: the regulator reads `GET /v1/apps/scf/lineage?id=N` for a tier-3
certificate (the deepest: three records back to the issue) --lineage-requests times,
one at a time, while the cluster is otherwise idle: once with the signatures made
beforehand (what the node and the connection take) and once through the SDK's
`MemberSignatures` (signing each request inline, as a client does).
9. settle: once the maturity has passed (the wait is not timed), the core enterprise
   pays every live certificate (one per supplier) in `settle` batches of 12
   (MAX_SETTLE_BATCH), all submitted at once.

After every phase the regulator reads each transaction's committed result back
(`GET /v1/txs?contract=...&method=...`): any refusal fails the run, and the new
certificates' ids come from the events. At the end: the core's outstanding amount is
0, the funder's totals match, nothing is overdue, every certificate is settled or
consumed. Operations/s is operations (certificates issued, parts transferred, ...)
committed per second of wall time; node CPU is summed over the four node processes.

Reads are members-only (docs/access.md) and each caller is limited to 200 reads/s by
default: this benchmark raises `api_reads_per_s` in every node.toml (--reads-per-s).

    .venv/bin/python benchmarks/bench_scf.py                      # 1,000 suppliers
    .venv/bin/python benchmarks/bench_scf.py --tier1 10                   # 100, quicker
    .venv/bin/python benchmarks/bench_scf.py --tier1 1000                 # 10,000 suppliers
    .venv/bin/python benchmarks/bench_scf.py --json > scf.json
    .venv/bin/python benchmarks/bench_scf.py --report scf.json      # its table again

Only 127.0.0.1 is contacted; every wait is bounded by --timeout-s; the cluster is
stopped with `tide cluster down` (the processes it started) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from bench_node import (
    Api,
    BenchError,
    CpuSample,
    ThroughputResult,
    free_port_block,
    load_average,
    log,
    machine,
    percentile_ms,
    throughput_phase,
)

from tidechain.client import txbuilder as tb
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import DEFAULT_ORG, OrgDir, issue_member, load_genesis, read_key
from tidechain.contracts.invoice.contract import MAX_BATCH as MAX_INVOICE_BATCH
from tidechain.contracts.scf import MAX_SETTLE_BATCH, MAX_SPLIT_PARTS
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.limits import MAX_PAGE_SIZE
from tidechain.identity import Role
from tidechain.identity.httpsig import sign_headers
from tidechain.ledger.types import SignedTx
from tidechain.node.config import load_node

VALIDATORS = 4
TTL_MS = 6 * 3600 * 1000
"""Transactions are signed before their phase: valid long enough for any run."""
HTTP_TIMEOUT_S = 30.0
ISSUER_TAX_ID = "91350100M000100Y43"
RATE_BP = 350
"""The funder's yearly discount rate: 3.5 %."""
MATURITY_MARGIN_S = 5.0
"""A phase that moves certificates must start this long before maturity at least."""
SETTLE_AFTER_S = 1.5
"""Settlement is submitted this long after the maturity (block time >= maturity)."""
AUTO_MATURITY_BASE_S = 20.0
AUTO_MATURITY_PER_SUPPLIER_S = 0.015
"""The default maturity: phases 1-8 took 3 s for 1,000 suppliers and 22 s for 10,000
on 2 cores (docs/benchmarks.md), so this leaves room for a machine several times
slower; a phase that would start less than MATURITY_MARGIN_S before it fails."""
WARMUP_READS = 10
SCF = "scf"


# --- the cluster ---------------------------------------------------------------------------


def tide(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE", "TIDE_KEY")}
    return subprocess.run([sys.executable, "-m", "tidechain", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def raise_read_limit(net: Path, reads_per_s: int) -> None:
    """`api_reads_per_s` in every node.toml, as its first line: node.toml ends with
    `[[peers]]` tables, so a key appended at the end would land in the last one."""
    for toml in sorted(net.glob("node*/node.toml")):
        text = toml.read_text()
        toml.write_text(f"api_reads_per_s = {reads_per_s}\n" + text)


class Cluster:
    """`tide init NET --validators 4` and `tide cluster up`/`down`: the real CLI."""

    def __init__(self, workdir: Path, reads_per_s: int) -> None:
        self.net = workdir / "net"
        self.port = free_port_block(VALIDATORS)
        made = tide("init", str(self.net), "--name", "bench-scf", "--validators",
                    str(VALIDATORS), "--port", str(self.port))
        if made.returncode != 0:
            raise BenchError(f"tide init failed: {made.stderr or made.stdout}")
        raise_read_limit(self.net, reads_per_s)
        self.pids: list[int] = []
        self.url = load_node(self.net / "node0").api_url

    def up(self) -> None:
        log(f"tide cluster up --net {self.net} (APIs on {self.port}..{self.port + 3})")
        done = tide("cluster", "up", "--net", str(self.net))
        if done.returncode != 0:
            raise BenchError(f"tide cluster up failed: {done.stderr or done.stdout}")
        self.pids = [int(p) for p in (self.net / "cluster.pids").read_text().split()]

    def down(self) -> None:
        if self.pids:
            done = tide("cluster", "down", "--net", str(self.net), timeout_s=120)
            if done.returncode != 0:
                log(f"tide cluster down: {done.stderr or done.stdout}")
            self.pids = []

    def cpu_s(self) -> float:
        """CPU seconds used so far by the four node processes together."""
        return sum(CpuSample.of(pid).process_s for pid in self.pids)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.net.glob("node*/node.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(out)


# --- the scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """Who is where: tier-1 supplier i passes parts to tier-2 suppliers i*t2..i*t2+t2-1,
    tier-2 supplier m to tier-3 suppliers m*t3..m*t3+t3-1. Every part is `part_fen` at
    tier 3; each split keeps a remainder of one part's size, so every supplier ends up
    holding exactly one certificate."""

    tier1: int
    tier2_per: int
    tier3_per: int
    part_fen: int

    @property
    def tier2(self) -> int:
        return self.tier1 * self.tier2_per

    @property
    def tier3(self) -> int:
        return self.tier2 * self.tier3_per

    @property
    def suppliers(self) -> int:
        return self.tier1 + self.tier2 + self.tier3

    @property
    def tier2_fen(self) -> int:
        """A tier-2 part: tier3_per parts for tier 3 and a remainder of one part."""
        return (self.tier3_per + 1) * self.part_fen

    @property
    def root_fen(self) -> int:
        """An issued certificate: tier2_per tier-2 parts and a remainder of one."""
        return (self.tier2_per + 1) * self.tier2_fen


@dataclass
class Actors:
    core: SigningKey
    funder: SigningKey
    regulator: SigningKey
    tax: SigningKey
    issuer: SigningKey
    tier1: list[SigningKey]
    tier2: list[SigningKey]
    tier3: list[SigningKey]

    @property
    def suppliers(self) -> list[SigningKey]:
        return [*self.tier1, *self.tier2, *self.tier3]


def new_actors(shape: Shape) -> Actors:
    def keys(n: int) -> list[SigningKey]:
        return [SigningKey(secrets.token_bytes(32)) for _ in range(n)]

    core, funder, regulator, tax, issuer = keys(5)
    return Actors(core, funder, regulator, tax, issuer, keys(shape.tier1), keys(shape.tier2),
                  keys(shape.tier3))


def invoice_number(i: int) -> str:
    return f"13{i:018d}"


@dataclass
class PhaseResult:
    name: str
    operations: int
    unit: str
    transactions: int
    seconds: float
    ops_per_s: float
    tx_per_s: float
    blocks: int
    busy_retried: int
    node_cpu_us_per_op: float  # the four node processes together
    node_cores_busy: float


@dataclass
class LineageResult:
    certificate: int
    tier: int
    records: int
    requests: int
    presigned_p50_ms: float
    presigned_p99_ms: float
    presigned_mean_ms: float
    presigned_max_ms: float
    sdk_p50_ms: float
    sdk_p99_ms: float
    sdk_mean_ms: float
    non_200: int
    answer_bytes: int


@dataclass
class Ledger:
    """What the benchmark knows of the certificates, from the committed events."""

    roots: list[int] = field(default_factory=list)  # by tier-1 supplier
    tier2_parts: list[int] = field(default_factory=list)  # by tier-2 supplier
    tier3_parts: list[int] = field(default_factory=list)  # by tier-3 supplier
    holding: dict[int, int] = field(default_factory=dict)  # supplier index -> its cert


class Bench:
    def __init__(self, args: argparse.Namespace, cluster: Cluster, api: Api,
                 chain_id: bytes, actors: Actors, shape: Shape) -> None:
        self.args = args
        self.cluster = cluster
        self.api = api
        self.chain_id = chain_id
        self.actors = actors
        self.shape = shape
        self.phases: list[PhaseResult] = []
        self.setup_s: dict[str, float] = {}
        self.reads = httpx.Client(base_url=cluster.url, timeout=HTTP_TIMEOUT_S,
                                  auth=MemberSignatures(actors.regulator))
        self.maturity_ms = 0
        self.financed: list[int] = []
        self.ledger = Ledger()

    def close(self) -> None:
        self.reads.close()

    # --- transactions -----------------------------------------------------------------

    def tx(self, key: SigningKey, contract: str, method: str, args: dict[str, Any]
           ) -> SignedTx:
        return tb.call_tx(key, self.chain_id, contract, method, args,
                          now_ms=int(time.time() * 1000), nonce=secrets.token_bytes(16),
                          ttl_ms=TTL_MS)

    async def submit(self, name: str, txs: list[SignedTx]) -> tuple[ThroughputResult, float]:
        """Submit as fast as taken, until all are committed: (result, node CPU s)."""
        items = [(tx.encode(), tx.tx_id) for tx in txs]
        cpu0 = self.cluster.cpu_s()
        result = await throughput_phase(self.api, self.cluster.pids[0], items, self.args)
        cpu_s = self.cluster.cpu_s() - cpu0
        if not result.all_committed or result.refused:
            raise BenchError(f"{name}: {result.accepted:,} of {len(txs):,} admitted, refused "
                             f"{result.refused}, {result.committed:,} committed")
        return result, cpu_s

    def results(self, name: str, contract: str, method: str, txs: list[SignedTx]
                ) -> list[dict[str, Any]]:
        """The committed result of each of `txs` (in order), read back by the regulator
        from `/v1/txs` (newest first); any refusal fails the run."""
        wanted = {tx.tx_id.hex() for tx in txs}
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        for _ in range(len(txs) // MAX_PAGE_SIZE + 1000):
            params: dict[str, Any] = {"contract": contract, "method": method,
                                      "limit": MAX_PAGE_SIZE}
            if cursor is not None:
                params["cursor"] = cursor
            page = self.get("/v1/txs", params)
            for item in page["items"]:
                if item["tx_id"] in wanted:
                    found[item["tx_id"]] = item["result"]
            cursor = page.get("next")
            if len(found) == len(wanted) or cursor is None:
                break
        if len(found) != len(wanted):
            raise BenchError(f"{name}: {len(found)} of {len(wanted)} results found in /v1/txs")
        refused = Counter(f"{r.get('error')}: {r.get('reason')}" for r in found.values()
                          if not r.get("ok"))
        if refused:
            raise BenchError(f"{name}: {sum(refused.values())} refused by the contract: "
                             f"{refused.most_common(3)}")
        return [found[tx.tx_id.hex()] for tx in txs]

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.reads.get(path, params=params)
        if response.status_code != 200:
            raise BenchError(f"GET {path} {params or ''}: HTTP {response.status_code}: "
                             f"{response.text[:300]}")
        return response.json()

    async def setup_step(self, name: str, contract: str, method: str,
                         txs: list[SignedTx]) -> None:
        started = time.perf_counter()
        await self.submit(name, txs)
        self.results(name, contract, method, txs)
        self.setup_s[name] = time.perf_counter() - started
        log(f"set-up {name}: {len(txs):,} transactions in {self.setup_s[name]:.1f} s")

    async def phase(self, name: str, method: str, txs: list[SignedTx], operations: int,
                    unit: str) -> list[dict[str, Any]]:
        """A timed phase: every transaction committed and successful; their results."""
        if self.maturity_ms and method != "settle":
            left_s = self.maturity_ms / 1000 - time.time()
            if left_s < MATURITY_MARGIN_S:
                raise BenchError(f"{name}: the certificates mature in {left_s:.1f} s, too soon "
                                 "to move them: give a longer --maturity-s")
        log(f"{name}: {operations:,} {unit} in {len(txs):,} transactions")
        result, cpu_s = await self.submit(name, txs)
        results = self.results(name, SCF, method, txs)
        seconds = result.commit_seconds
        phase = PhaseResult(
            name=name, operations=operations, unit=unit, transactions=len(txs),
            seconds=seconds, ops_per_s=operations / seconds, tx_per_s=len(txs) / seconds,
            blocks=result.blocks, busy_retried=result.busy_items_retried,
            node_cpu_us_per_op=1e6 * cpu_s / operations, node_cores_busy=cpu_s / seconds)
        self.phases.append(phase)
        log(f"{name}: {phase.ops_per_s:,.0f} {unit}/s, {seconds:.2f} s, {phase.blocks} blocks, "
            f"node CPU {phase.node_cpu_us_per_op:,.0f} us per operation (4 nodes)")
        return results

    # --- set-up -------------------------------------------------------------------------

    async def enrol(self) -> None:
        net = self.cluster.net
        admin = read_key(net / "admin.key").key
        org = OrgDir(net / "orgs" / DEFAULT_ORG)
        now_ms = int(time.time() * 1000)
        a = self.actors
        people: list[tuple[str, SigningKey, Role]] = [
            ("Bench Core Enterprise", a.core, Role.ENTERPRISE),
            ("Bench Bank", a.funder, Role.FUNDER),
            ("Bench Market Regulator", a.regulator, Role.REGULATOR),
            ("Bench Taxation Bureau", a.tax, Role.TAX_AUTHORITY),
            ("Bench Supplier Group (invoicing)", a.issuer, Role.INVOICE_ISSUER)]
        people += [(f"Bench Supplier {i}", k, Role.ENTERPRISE)
                   for i, k in enumerate(a.suppliers)]
        started = time.perf_counter()
        txs = [self.tx(admin, tb.MEMBERS, "enrol", tb.enrol_args(
            issue_member(org, name, key.public_key, (role,), now_ms)))
            for name, key, role in people]
        log(f"set-up: {len(txs):,} member certificates made and enrolments signed in "
            f"{time.perf_counter() - started:.1f} s")
        await self.setup_step("enrol", tb.MEMBERS, "enrol", txs)

    async def trade_background(self) -> None:
        a, s = self.actors, self.shape
        tax = [a.tax.public_key]
        await self.setup_step("set_auditors", tb.INVOICE, "set_auditors", [
            self.tx(a.tax, tb.INVOICE, "set_auditors", {"keys": tax})])
        await self.setup_step("authorise_issuer", tb.INVOICE, "authorise_issuer", [
            self.tx(a.tax, tb.INVOICE, "authorise_issuer", tb.authorise_issuer_args(
                a.issuer.public_key, "Bench Supplier Group", ISSUER_TAX_ID, 10**15))])
        invoices = [tb.invoice_args(invoice_number(i), {"key": a.core.public_key},
                                    [tb.invoice_line("steel coil", 1, s.root_fen, 1300)],
                                    remark="bench-scf")
                    for i in range(s.tier1)]
        batches = [invoices[i:i + MAX_INVOICE_BATCH]
                   for i in range(0, len(invoices), MAX_INVOICE_BATCH)]
        await self.setup_step("invoices", tb.INVOICE, "issue_batch", [
            self.tx(a.issuer, tb.INVOICE, "issue_batch",
                    tb.issue_batch_args(batch, a.issuer.public_key, auditors=tax))
            for batch in batches])
        await self.setup_step("set_line", SCF, "set_line", [
            self.tx(a.funder, SCF, "set_line", {"core": a.core.public_key,
                                                "limit": s.tier1 * s.root_fen})])

    # --- the phases ---------------------------------------------------------------------

    async def run_scenario(self) -> LineageResult:
        a, s, ledger = self.actors, self.shape, Ledger()
        self.maturity_ms = int((time.time() + self.args.maturity_s) * 1000)
        txs = [self.tx(a.core, SCF, "issue", {
            "to": a.tier1[i].public_key, "amount": s.root_fen, "maturity": self.maturity_ms,
            "contract": sha256(f"bench-scf supply contract {i}".encode()),
            "invoices": [invoice_number(i)]}) for i in range(s.tier1)]
        results = await self.phase("issue", "issue", txs, s.tier1, "certificates")
        ledger.roots = [event_data(r, "issued")["id"] for r in results]

        await self.accept("accept (tier 1)", a.tier1, ledger.roots)
        remainders1 = await self.split("split (tier 1 -> 2)", a.tier1, ledger.roots,
                                       a.tier2, s.tier2_per, s.tier2_fen, ledger.tier2_parts)
        await self.accept("accept (tier 2)", a.tier2, ledger.tier2_parts)
        remainders2 = await self.split("split (tier 2 -> 3)", a.tier2, ledger.tier2_parts,
                                       a.tier3, s.tier3_per, s.part_fen, ledger.tier3_parts)
        await self.accept("accept (tier 3)", a.tier3, ledger.tier3_parts)
        held = [*remainders1, *remainders2, *ledger.tier3_parts]  # by supplier index
        ledger.holding = dict(enumerate(held))

        financed = [i for i in range(s.suppliers) if i % self.args.finance_every == 0]
        suppliers = a.suppliers
        txs = [self.tx(suppliers[i], SCF, "finance", {
            "id": held[i], "funder": a.funder.public_key, "rate_bp": RATE_BP})
            for i in financed]
        await self.phase("finance (request)", "finance", txs, len(txs), "certificates")
        txs = [self.tx(a.funder, SCF, "approve", {"id": held[i], "ref": f"BENCH-LOAN-{held[i]}"})
               for i in financed]
        await self.phase("finance (approve)", "approve", txs, len(txs), "certificates")
        self.financed = [held[i] for i in financed]

        deepest = max(ledger.tier3_parts)  # tier 3: three records back to the issue
        lineage = self.lineage(deepest)
        wait_s = self.maturity_ms / 1000 + SETTLE_AFTER_S - time.time()
        if wait_s > 0:
            log(f"waiting {wait_s:.1f} s for the maturity (not timed)")
            await asyncio.sleep(wait_s)
        live = sorted(held)
        chunks = [live[i:i + MAX_SETTLE_BATCH] for i in range(0, len(live), MAX_SETTLE_BATCH)]
        txs = [self.tx(a.core, SCF, "settle", {
            "ids": chunk, "refs": [f"BENCH-PAY-{c}" for c in chunk]}) for chunk in chunks]
        results = await self.phase("settle", "settle", txs, len(live), "certificates")
        settled = [e for r in results for e in r["events"] if e["type"] == "settled"]
        if len(settled) != len(live) or any(e["data"]["status"] != "settled" for e in settled):
            raise BenchError(f"settle: {len(settled)} settled events for {len(live)} "
                             "certificates, or some not settled")
        self.ledger = ledger
        return lineage

    async def accept(self, name: str, keys: list[SigningKey], ids: list[int]) -> None:
        txs = [self.tx(key, SCF, "accept", {"id": cert}) for key, cert in zip(keys, ids,
                                                                                strict=True)]
        await self.phase(name, "accept", txs, len(txs), "acceptances")

    async def split(self, name: str, holders: list[SigningKey], ids: list[int],
                    recipients: list[SigningKey], per: int, part_fen: int,
                    parts_out: list[int]) -> list[int]:
        """Holder i splits ids[i]: `per` parts to recipients[i*per..], a remainder kept.
        Appends the parts' ids (by recipient) to parts_out; returns the remainders'."""
        txs = [self.tx(holder, SCF, "split", {"id": cert, "parts": [
            {"to": recipients[i * per + j].public_key, "amount": part_fen}
            for j in range(per)]}) for i, (holder, cert) in enumerate(zip(holders, ids,
                                                                          strict=True))]
        results = await self.phase(name, "split", txs, len(recipients), "parts transferred")
        remainders = []
        for result in results:
            children = event_data(result, "split")["children"]
            if len(children) != per + 1:
                raise BenchError(f"{name}: {len(children)} children, expected {per + 1}")
            parts_out.extend(children[:per])
            remainders.append(children[per])
        return remainders

    # --- look-through ---------------------------------------------------------------------

    def lineage(self, cert: int) -> LineageResult:
        """The regulator's look-through of `cert`, one request at a time: first with
        signatures made beforehand (the node's and the connection's time), then through
        the SDK's MemberSignatures (signing inline, as a client does)."""
        n = self.args.lineage_requests
        path = f"/v1/apps/scf/lineage?id={cert}"
        url = f"{self.cluster.url}{path}"
        answer = self.get(path)
        tiers = [c["tier"] for c in answer["chain"]]
        if tiers != [3, 2, 1] or answer["chain"][-1]["parent"] is not None:
            raise BenchError(f"lineage of {cert}: tiers {tiers}, expected [3, 2, 1]")
        size = len(json.dumps(answer))
        key = self.actors.regulator
        signed = [sign_headers("GET", url, {}, key, created_s=int(time.time()),
                               nonce=secrets.token_urlsafe(16))
                  for _ in range(n + WARMUP_READS)]
        times: list[float] = []
        non_200 = 0
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as plain:
            for i, headers in enumerate(signed):
                started = time.perf_counter()
                response = plain.get(url, headers=headers)
                elapsed = time.perf_counter() - started
                non_200 += response.status_code != 200
                if i >= WARMUP_READS:
                    times.append(elapsed)
        sdk_times: list[float] = []
        for i in range(n + WARMUP_READS):
            started = time.perf_counter()
            response = self.reads.get(path)
            elapsed = time.perf_counter() - started
            non_200 += response.status_code != 200
            if i >= WARMUP_READS:
                sdk_times.append(elapsed)
        times.sort()
        sdk_times.sort()
        result = LineageResult(
            certificate=cert, tier=3, records=len(answer["chain"]), requests=n,
            presigned_p50_ms=percentile_ms(times, 50), presigned_p99_ms=percentile_ms(times, 99),
            presigned_mean_ms=1000 * statistics.fmean(times), presigned_max_ms=1000 * times[-1],
            sdk_p50_ms=percentile_ms(sdk_times, 50), sdk_p99_ms=percentile_ms(sdk_times, 99),
            sdk_mean_ms=1000 * statistics.fmean(sdk_times), non_200=non_200,
            answer_bytes=size)
        if non_200:
            raise BenchError(f"lineage: {non_200} answers were not 200")
        log(f"lineage of certificate {cert} (tier 3, {result.records} records, {size:,} "
            f"bytes of JSON): p50 {result.presigned_p50_ms:.1f} ms, p99 "
            f"{result.presigned_p99_ms:.1f} ms (pre-signed); SDK p50 {result.sdk_p50_ms:.1f} ms")
        return result

    # --- the end state ---------------------------------------------------------------------

    def check_end(self) -> list[str]:
        a, s = self.actors, self.shape
        checks = []
        out = self.get("/v1/apps/scf/outstanding", {"core": a.core.public_key.hex()})
        if out["outstanding"] != 0 or out["by_tier"]:
            raise BenchError(f"outstanding after settlement: {out}")
        checks.append(f"core enterprise: line {out['limit']:,} fen, 0 outstanding")
        totals = self.get("/v1/apps/scf/funder_totals", {"funder": a.funder.public_key.hex()})
        face = sum(self.face_of(c) for c in self.financed)
        if totals["count"] != len(self.financed) or totals["face"] != face:
            raise BenchError(f"funder totals {totals}: expected {len(self.financed)} "
                             f"certificates, {face} fen")
        checks.append(f"funder: {totals['count']:,} certificates financed, face "
                      f"{totals['face']:,} fen, paid {totals['price']:,} fen")
        overdue = self.get("/v1/apps/scf/overdue", {"limit": 10})
        if overdue["items"]:
            raise BenchError(f"overdue after settlement: {overdue['items'][:2]}")
        checks.append("nothing overdue")
        statuses: Counter[str] = Counter()
        for root in self.ledger.roots:
            cursor = None
            while True:
                params: dict[str, Any] = {"id": root, "limit": MAX_PAGE_SIZE}
                if cursor:
                    params["cursor"] = cursor
                page = self.get("/v1/apps/scf/tree", params)
                statuses.update(c["status"] for c in page["items"])
                cursor = page.get("next")
                if cursor is None:
                    break
        expected_settled = s.suppliers
        if set(statuses) - {"settled", "consumed"} or statuses["settled"] != expected_settled:
            raise BenchError(f"certificates by status: {dict(statuses)}")
        checks.append(f"every certificate under the {s.tier1} roots settled or split: "
                      f"{dict(statuses)}")
        return checks

    def face_of(self, cert: int) -> int:
        return int(self.get("/v1/apps/scf/certificate", {"id": cert})["amount"])


def event_data(result: dict[str, Any], kind: str) -> dict[str, Any]:
    for event in result.get("events", []):
        if event["type"] == kind:
            data: dict[str, Any] = event["data"]
            return data
    raise BenchError(f"no {kind} event in {result}")


# --- the run ---------------------------------------------------------------------------------


def reproduce_command() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_scf.py",
                                             *sys.argv[1:]])


def summary(phases: list[PhaseResult], shape: Shape) -> list[dict[str, Any]]:
    """The four rates the issue asks for, each over the phases it takes."""
    by = {p.name: p for p in phases}

    def over(label: str, names: list[str], operations: int, unit: str) -> dict[str, Any]:
        seconds = sum(by[n].seconds for n in names)
        return {"name": label, "operations": operations, "unit": unit, "seconds": seconds,
                "ops_per_s": operations / seconds,
                "transactions": sum(by[n].transactions for n in names)}

    return [
        over("issue (issue + acceptance)", ["issue", "accept (tier 1)"], shape.tier1,
             "certificates"),
        over("split/transfer (splits + acceptances, tiers 2 and 3)",
             ["split (tier 1 -> 2)", "accept (tier 2)", "split (tier 2 -> 3)",
              "accept (tier 3)"], shape.tier2 + shape.tier3, "parts"),
        over("finance (request + approval)", ["finance (request)", "finance (approve)"],
             by["finance (request)"].operations, "certificates"),
        over("settle", ["settle"], by["settle"].operations, "certificates"),
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    shape = Shape(args.tier1, args.tier2_per, args.tier3_per, args.part_fen)
    workdir = Path(tempfile.mkdtemp(prefix="tidechain-bench-scf-"))
    load_before = load_average()
    started = time.perf_counter()
    cluster = Cluster(workdir, args.reads_per_s)
    log(f"network directory {workdir}; {shape.suppliers:,} suppliers: {shape.tier1} tier 1, "
        f"{shape.tier2} tier 2, {shape.tier3} tier 3")
    try:
        cluster.up()
        chain_id = load_genesis(cluster.net).chain_id
        timeout = aiohttp.ClientTimeout(total=args.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=64)) as session:
            api = Api(session, cluster.url)
            await api.wait_ready(None, 60)
            bench = Bench(args, cluster, api, chain_id, new_actors(shape), shape)
            try:
                await bench.enrol()
                await bench.trade_background()
                lineage = await bench.run_scenario()
                checks = bench.check_end()
            finally:
                bench.close()
        for check in checks:
            log(f"checked: {check}")
    except BaseException:
        log(f"node log tails:\n{cluster.log_tail()}")
        raise
    finally:
        cluster.down()
        if args.keep_dir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": load_average()},
        "command": reproduce_command(),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "shape": {"suppliers": shape.suppliers, "tier1": shape.tier1, "tier2": shape.tier2,
                  "tier3": shape.tier3, "root_fen": shape.root_fen,
                  "tier2_fen": shape.tier2_fen, "tier3_fen": shape.part_fen},
        "setup_seconds": bench.setup_s,
        "phases": [asdict(p) for p in bench.phases],
        "summary": summary(bench.phases, shape),
        "lineage": asdict(lineage),
        "checks": checks,
        "total_seconds": time.perf_counter() - started,
    }


# --- report ----------------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    m, s, la = r["machine"], r["shape"], r["lineage"]
    lines = [
        "tidechain supply-chain finance benchmark (4 validators, one machine)",
        f"date     {r['date']}",
        f"machine  {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software Python {m['python']}, SQLite {m['sqlite']}, tidechain {m['git']}",
        f"load     1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after",
        f"command  {r['command']}",
        f"scenario 1 core enterprise, {s['suppliers']:,} suppliers ({s['tier1']} / "
        f"{s['tier2']} / {s['tier3']} in tiers 1 / 2 / 3); certificates of {s['root_fen']:,} "
        f"fen, parts of {s['tier2_fen']:,} and {s['tier3_fen']:,} fen",
        f"run      {r['total_seconds']:.0f} s in all (set-up "
        f"{sum(r['setup_seconds'].values()):.0f} s)",
        "",
        f"{'phase':<28}{'ops':>7}{'txs':>7}{'seconds':>9}{'ops/s':>9}{'tx/s':>8}{'blocks':>8}"
        f"{'node CPU us/op':>16}{'cores':>7}",
    ]
    for p in r["phases"]:
        lines.append(f"{p['name']:<28}{p['operations']:>7,}{p['transactions']:>7,}"
                     f"{p['seconds']:>9.2f}{p['ops_per_s']:>9,.0f}{p['tx_per_s']:>8,.0f}"
                     f"{p['blocks']:>8}{p['node_cpu_us_per_op']:>16,.0f}"
                     f"{p['node_cores_busy']:>7.2f}")
    lines += ["", "rates asked for (operations over the phases they take):"]
    for row in r["summary"]:
        lines.append(f"  {row['name']:<55}{row['operations']:>6,} {row['unit']:<13}"
                     f"{row['seconds']:>7.2f} s {row['ops_per_s']:>8,.0f}/s")
    lines += [
        "",
        f"look-through: GET /v1/apps/scf/lineage?id={la['certificate']} (tier 3, "
        f"{la['records']} records, {la['answer_bytes']:,} bytes), regulator, "
        f"{la['requests']} requests one at a time",
        f"  signatures made beforehand  p50 {la['presigned_p50_ms']:.1f} ms, p99 "
        f"{la['presigned_p99_ms']:.1f} ms, mean {la['presigned_mean_ms']:.1f} ms, max "
        f"{la['presigned_max_ms']:.1f} ms",
        f"  SDK (signing inline)        p50 {la['sdk_p50_ms']:.1f} ms, p99 "
        f"{la['sdk_p99_ms']:.1f} ms, mean {la['sdk_mean_ms']:.1f} ms",
        "",
        *("checked: " + c for c in r["checks"]),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--tier1", type=int, default=100, help="tier-1 suppliers (certificates)")
    p.add_argument("--tier2-per", type=int, default=3,
                   help="tier-2 suppliers of each tier-1 supplier (parts of its split)")
    p.add_argument("--tier3-per", type=int, default=2,
                   help="tier-3 suppliers of each tier-2 supplier")
    p.add_argument("--part-fen", type=int, default=200_000,
                   help="a tier-3 part, fen (at least the governed minimum, CNY 100)")
    p.add_argument("--finance-every", type=int, default=2,
                   help="every Nth supplier finances its certificate; the rest hold")
    p.add_argument("--maturity-s", type=float, default=0.0,
                   help="maturity, seconds after the issue phase is signed: long enough "
                        "for phases 1-8, which the benchmark checks before each; it waits "
                        "for it before settling (default: 20 s + 15 ms per supplier)")
    p.add_argument("--lineage-requests", type=int, default=200,
                   help="look-through requests, each way")
    p.add_argument("--reads-per-s", type=int, default=100_000,
                   help="api_reads_per_s written into every node.toml (default 200/s)")
    p.add_argument("--batch-size", type=int, default=500, help="transactions per POST")
    p.add_argument("--connections", type=int, default=2, help="concurrent POSTs")
    p.add_argument("--timeout-s", type=float, default=300.0, help="bound on each wait")
    p.add_argument("--keep-dir", action="store_true", help="keep the network directory")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="JSON", default="",
                   help="only print the table of a report saved with --json")
    args = p.parse_args(argv)
    if not 1 <= args.tier1 <= 10_000:
        p.error("--tier1 must be 1..10,000")
    if not 1 <= args.tier2_per <= MAX_SPLIT_PARTS or not 1 <= args.tier3_per <= MAX_SPLIT_PARTS:
        p.error(f"--tier2-per and --tier3-per must be 1..{MAX_SPLIT_PARTS} (MAX_SPLIT_PARTS)")
    if args.part_fen < 10_000 or args.finance_every < 1 or args.lineage_requests < 1:
        p.error("--part-fen >= 10,000 (CNY 100), --finance-every >= 1, --lineage-requests >= 1")
    if not args.maturity_s:
        suppliers = args.tier1 * (1 + args.tier2_per * (1 + args.tier3_per))
        args.maturity_s = round(AUTO_MATURITY_BASE_S + AUTO_MATURITY_PER_SUPPLIER_S * suppliers)
    if not 10 <= args.maturity_s <= 3600 or not 1 <= args.batch_size <= 4000:
        p.error("--maturity-s must be 10..3600, --batch-size 1..4000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(format_report(json.loads(Path(args.report).read_text())))
        return 0
    try:
        report = asyncio.run(run(args))
    except (BenchError, aiohttp.ClientError, httpx.HTTPError, TimeoutError) as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
