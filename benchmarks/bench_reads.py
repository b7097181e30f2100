"""Signed reads (issue 11, ADR 0015): what a member credential costs on the read path.

Two real `tide node start` processes, one validator each, started side by side: one
serving its API over plain HTTP (`tide init`), one over HTTPS (`tide init --api-tls`).
On each, K readers are enrolled as depositors (`members.enrol`, signed by the admin)
and each deposits one record. Then, in the same run, for --rounds rounds of
--seconds each, alternating (the order rotates every round, so a slow spell of this
shared machine falls on every scenario alike):

  a   GET /v1/status, unsigned (a public route: the baseline without any credential)
  b   GET /v1/status, signed (RFC 9421) by a member key: same route, so b - a is the
      signature's cost (verification, nonce book, standing check)
  c   GET /v1/apps/evidence/deposit?index=N, signed by its depositor (a member-only read)
  d1  GET /v1/status over HTTPS, unsigned
  d2  the member-only read of c over HTTPS, the member's certificate over mutual TLS
  d3  the member-only read of c over HTTPS, signed

The load comes from this process (the node is another): K concurrent tasks, each with
its own keep-alive connection (aiohttp), each a caller of its own. The node rate-limits
every caller, a member by its key and anyone else by its address, to 200 reads/s by
default (core/limits.py READS_PER_S_PER_CALLER; node.toml `api_reads_per_s` may
change it). The nodes here keep the default, as a node in service does, and the
benchmark stays under it instead of measuring the limiter: every caller is an
enrolled member with a key of its own, and every connection comes from its own
loopback source address (127.0.x.y; Linux routes all of 127/8 to lo), which gives the
anonymous callers separate buckets too. The report shows the busiest caller's rate
against the limit and counts any 429.

Each signed request carries a signature of its own, made with
`identity.httpsig.sign_headers` (the SDK's code) with a fresh nonce. The signatures
of a window are made just before it starts (in worker processes, while the nodes
idle), not inside it, so the client's work per request is the same with and without a
signature and what differs is the node's (the client's cost of signing is measured on
its own, in-process, at the end). The node's CPU per request (from /proc, all threads,
less its idle CPU) is the figure least exposed to other load; the report also gives
the machine's busy cores during each window, since other work on a shared machine
lowers the rates.

Finally, in-process on one core with no HTTP: `verify_request` per second, the nonce
book, `sign_headers`, the member-certificate checks mutual TLS repeats per request,
and a bare Ed25519 verify, for context.

    .venv/bin/python benchmarks/bench_reads.py                  # 5 rounds x 3 s, 64 callers
    .venv/bin/python benchmarks/bench_reads.py --nice -10       # as recorded (root, shared machine)
    .venv/bin/python benchmarks/bench_reads.py --rounds 3 --seconds 2 --json

Only 127.0.0.0/8 is contacted; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import secrets
import shlex
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from bench_node import (
    BenchError,
    CpuSample,
    NodeProcess,
    free_port_block,
    load_average,
    log,
    set_autogroup_nice,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tidechain.client import txbuilder as tb
from tidechain.client.files import (
    DEFAULT_ORG,
    OrgDir,
    export_key_pem,
    issue_member,
    load_genesis,
    read_key,
    write_key,
)
from tidechain.client.sdk import Client
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import Rejected
from tidechain.core.limits import (
    DEFAULT_SIGNATURE_LIFETIME_S,
    MAX_CLOCK_SKEW_S,
    MAX_REMEMBERED_NONCES,
    READ_BURST_PER_CALLER,
    READS_PER_S_PER_CALLER,
)
from tidechain.identity import Role, from_pem, to_pem
from tidechain.identity.certs import read_org_ca, verify_member_cert_with_ca
from tidechain.identity.httpsig import NonceBook, SignedBy, sign_headers, verify_request

NODE_READY_TIMEOUT_S = 60.0
COMMIT_TIMEOUT_MS = 30_000
HTTP_TIMEOUT_S = 30.0
WARMUP_S = 1.0
IDLE_S = 3.0
PRESIGN_MARGIN = 1.5
"""Signatures made before a window: the scenario's best rate so far times this."""
FIRST_GUESS_PER_S = 3000.0


@dataclass(frozen=True)
class Scenario:
    id: str
    label: str
    tls: bool
    path: str  # "status" or "deposit"
    credential: str  # "none", "signature" or "certificate"


SCENARIOS = (
    Scenario("a", "GET /v1/status, unsigned (HTTP)", False, "status", "none"),
    Scenario("b", "GET /v1/status, signed (HTTP)", False, "status", "signature"),
    Scenario("c", "GET own deposit, signed (HTTP)", False, "deposit", "signature"),
    Scenario("d1", "GET /v1/status, unsigned (HTTPS)", True, "status", "none"),
    Scenario("d2", "GET own deposit, mutual TLS (HTTPS)", True, "deposit", "certificate"),
    Scenario("d3", "GET own deposit, signed (HTTPS)", True, "deposit", "signature"),
)


# --- the networks ------------------------------------------------------------------------


def tide(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE", "TIDE_KEY")}
    return subprocess.run([sys.executable, "-m", "tidechain", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@dataclass
class Reader:
    """One enrolled member: its key, certificate and key as PEM, its own deposit."""

    key: SigningKey
    cert_pem: Path
    key_pem: Path
    deposit_index: int = -1


@dataclass
class Network:
    name: str
    tls: bool
    net: Path
    port: int
    node: NodeProcess
    readers: list[Reader] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path | None:
        return self.net / "orgs" / DEFAULT_ORG / "ca.pem" if self.tls else None

    def ssl_context(self, reader: Reader | None = None) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if reader is not None:
            ctx.load_cert_chain(str(reader.cert_pem), str(reader.key_pem))
        return ctx


def create_network(workdir: Path, name: str, tls: bool, nice: int) -> Network:
    """`tide init` (with `--api-tls` for HTTPS) and `tide node start`, as an operator."""
    net, port = workdir / name / "net", free_port_block(1)
    created = tide("init", str(net), "--name", name, "--port", str(port),
                   *(["--api-tls"] if tls else []))
    if created.returncode != 0:
        raise BenchError(f"tide init {name} failed: {created.stderr or created.stdout}")
    node = NodeProcess(net / "node0", workdir / name / "node.log", nice)
    network = Network(name, tls, net, port, node)
    log(f"{name}: starting {' '.join(node.command)} ({network.url})")
    node.start()
    return network


def wait_ready(network: Network) -> None:
    verify: ssl.SSLContext | bool = network.ssl_context() or True
    deadline = time.monotonic() + NODE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if network.node.exited() is not None:
            raise BenchError(f"{network.name} exited:\n{network.node.log_tail()}")
        try:
            if httpx.get(f"{network.url}/v1/status", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{network.name} not ready after {NODE_READY_TIMEOUT_S:.0f} s")


def enrol_readers(network: Network, count: int) -> None:
    """K depositors enrolled by the admin (members.enrol), each depositing one record;
    their certificates and keys written as PEM for mutual TLS (as `tide member enrol`
    and `tide key pem` write them)."""
    keys_dir = network.net.parent / "readers"
    keys_dir.mkdir(parents=True)
    admin = read_key(network.net / "admin.key").key
    chain_id = load_genesis(network.net).chain_id
    org = OrgDir(network.net / "orgs" / DEFAULT_ORG)
    now_ms = int(time.time() * 1000)
    enrolments = []
    for i in range(count):
        signer = write_key(keys_dir / f"reader{i}.key", f"{network.name}/reader{i}",
                           os.urandom(32))
        cert = issue_member(org, f"reader {i}", signer.key.public_key, (Role.DEPOSITOR,), now_ms)
        cert_pem, key_pem = keys_dir / f"reader{i}.key.pem", keys_dir / f"reader{i}-key.pem"
        cert_pem.write_bytes(to_pem(cert))
        export_key_pem(keys_dir / f"reader{i}.key", key_pem)
        network.readers.append(Reader(signer.key, cert_pem, key_pem))
        enrolments.append(tb.call_tx(admin, chain_id, tb.MEMBERS, "enrol", tb.enrol_args(cert),
                                     now_ms=now_ms, nonce=os.urandom(16)))
    with Client(network.url, key=admin, ca=network.ca, chain_id=chain_id,
                timeout_s=HTTP_TIMEOUT_S) as sdk:
        _commit_all(sdk, enrolments, "enrol")
        deposits = [tb.deposit_tx(r.key, chain_id, sha256(f"bench-reads {i} ".encode()
                                                           + os.urandom(16)),
                                  {"bench": "reads"}, now_ms=now_ms, nonce=os.urandom(16))
                    for i, r in enumerate(network.readers)]
        submitted = sdk.submit_batch(deposits)
    refused = [r for r in submitted if "tx_id" not in r]
    if refused:
        raise BenchError(f"deposit: {len(refused)} refused, e.g. {refused[0]}")
    for reader, answer in zip(network.readers, submitted, strict=True):
        # A deposit's entry is its depositor's to read (the admin's key cannot: ADR 0015),
        # so each reader waits for its own, and reads its deposit as the benchmark will.
        with Client(network.url, key=reader.key, ca=network.ca,
                    timeout_s=HTTP_TIMEOUT_S) as own:
            reader.deposit_index = int(own.wait(answer["tx_id"],
                                                timeout_ms=COMMIT_TIMEOUT_MS)["log_index"])
            if own.deposit(reader.deposit_index)["depositor"] != reader.key.public_key.hex():
                raise BenchError("a reader's own deposit names another depositor")
    log(f"{network.name}: enrolled {count} readers, each with one deposit "
        f"(log indices {network.readers[0].deposit_index}..{network.readers[-1].deposit_index})")


def _commit_all(sdk: Client, txs: list[Any], what: str) -> list[dict[str, Any]]:
    results = sdk.submit_batch(txs)
    refused = [r for r in results if "tx_id" not in r]
    if refused:
        raise BenchError(f"{what}: {len(refused)} refused, e.g. {refused[0]}")
    return [sdk.wait(r["tx_id"], timeout_ms=COMMIT_TIMEOUT_MS) for r in results]


# --- the load ----------------------------------------------------------------------------


def source_address(i: int) -> str:
    """Caller i's own loopback source address: 127.0.1.2, 127.0.1.3, ..."""
    return f"127.0.{1 + i // 250}.{2 + i % 250}"


class Signatures:
    """One caller's signed requests for one URL, made before the window that sends
    them (`fill`); `next` signs inline only if the window outruns them (counted)."""

    def __init__(self, key: SigningKey, url: str, lifetime_s: int) -> None:
        self.key, self.url, self.lifetime_s = key, url, lifetime_s
        self.pool: deque[dict[str, str]] = deque()
        self.inline = 0

    def _sign(self) -> dict[str, str]:
        return sign_headers("GET", self.url, {}, self.key, created_s=int(time.time()),
                            nonce=secrets.token_urlsafe(16), lifetime_s=self.lifetime_s)

    def job(self, count: int) -> tuple[bytes, str, int, int]:
        return self.key.seed, self.url, self.lifetime_s, count

    def fill(self, signed: list[dict[str, str]]) -> None:
        self.pool.clear()  # older ones are still valid, but fresh is what a client sends
        self.pool.extend(signed)
        self.inline = 0

    def next(self) -> dict[str, str]:
        if self.pool:
            return self.pool.popleft()
        self.inline += 1
        return self._sign()


def presign(job: tuple[bytes, str, int, int]) -> list[dict[str, str]]:
    """`count` signed requests for one caller (in a worker process, between windows,
    while the node is idle): exactly what `MemberSignatures` adds to a request."""
    seed, url, lifetime_s, count = job
    key = SigningKey(seed)
    return [sign_headers("GET", url, {}, key, created_s=int(time.time()),
                         nonce=secrets.token_urlsafe(16), lifetime_s=lifetime_s)
            for _ in range(count)]



@dataclass
class Caller:
    session: aiohttp.ClientSession
    url: str
    signatures: Signatures | None


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all cores (/proc/stat):
    what else ran during a window, and what the hypervisor took."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


@dataclass
class Window:
    """One scenario's measured window."""

    scenario: str
    round: int
    seconds: float
    ok: int
    statuses: dict[str, int]
    per_s: float
    node_cpu_us_per_req: float
    node_main_thread_cores: float
    node_cores: float
    client_cores: float
    machine_busy_cores: float
    steal_cores: float
    signed_inline: int


class Load:
    def __init__(self, networks: dict[bool, Network], callers: int, lifetime_s: int,
                 pool: ProcessPoolExecutor) -> None:
        self.networks = networks
        self.pool = pool
        self.k = callers
        self.lifetime_s = lifetime_s
        self.callers: dict[str, list[Caller]] = {}
        self.rates: dict[str, list[float]] = {}
        self.idle_cores: dict[bool, float] = {}

    async def measure_idle(self, seconds: float) -> None:
        """Each node's CPU when nobody reads, subtracted from every window's."""
        before = {tls: CpuSample.of(n.node.pid) for tls, n in self.networks.items()}
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        for tls, n in self.networks.items():
            self.idle_cores[tls] = max(
                0.0, (CpuSample.of(n.node.pid).process_s - before[tls].process_s) / elapsed)

    async def open(self) -> None:
        for sc in SCENARIOS:
            network = self.networks[sc.tls]
            group = []
            for i in range(self.k):
                reader = network.readers[i]
                ssl_ctx = network.ssl_context(reader if sc.credential == "certificate" else None)
                connector = aiohttp.TCPConnector(
                    limit=1, local_addr=(source_address(i), 0), keepalive_timeout=300,
                    ssl=ssl_ctx if ssl_ctx is not None else True)
                session = aiohttp.ClientSession(
                    connector=connector, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
                path = ("/v1/status" if sc.path == "status"
                        else f"/v1/apps/evidence/deposit?index={reader.deposit_index}")
                url = network.url + path
                signatures = (Signatures(reader.key, url, self.lifetime_s)
                              if sc.credential == "signature" else None)
                group.append(Caller(session, url, signatures))
            self.callers[sc.id] = group

    async def close(self) -> None:
        for group in self.callers.values():
            for caller in group:
                await caller.session.close()

    async def window(self, sc: Scenario, seconds: float, round_no: int) -> Window:
        group = self.callers[sc.id]
        if sc.credential == "signature":
            rate = max(self.rates.get(sc.id, [FIRST_GUESS_PER_S]))
            per_caller = math.ceil(rate * seconds * PRESIGN_MARGIN / self.k) + 10
            sigs = [c.signatures for c in group if c.signatures is not None]
            signed: list[list[dict[str, str]]] = await asyncio.get_running_loop().run_in_executor(
                None, partial(list, self.pool.map(presign, [s.job(per_caller) for s in sigs])))
            for s, batch in zip(sigs, signed, strict=True):
                s.fill(batch)
        pid = self.networks[sc.tls].node.pid
        idle_cores = self.idle_cores.get(sc.tls, 0.0)
        statuses: Counter[int] = Counter()
        node_before, client_before = CpuSample.of(pid), time.process_time()
        busy_before, steal_before = machine_cpu_s()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(self._worker(c, statuses, deadline) for c in group))
        elapsed = time.perf_counter() - started
        node_after, client_after = CpuSample.of(pid), time.process_time()
        busy_after, steal_after = machine_cpu_s()
        ok = statuses[200]
        # Less what the node spends idle (consensus ticks, ~2% of a core): the rest is
        # the reads'.
        gross_s = node_after.process_s - node_before.process_s
        node_s = gross_s - idle_cores * elapsed
        result = Window(
            scenario=sc.id, round=round_no, seconds=elapsed, ok=ok,
            statuses={str(k): v for k, v in sorted(statuses.items())},
            per_s=ok / elapsed,
            node_cpu_us_per_req=node_s / max(1, sum(statuses.values())) * 1e6,
            node_main_thread_cores=(node_after.main_thread_s - node_before.main_thread_s)
            / elapsed,
            node_cores=gross_s / elapsed,
            client_cores=(client_after - client_before) / elapsed,
            machine_busy_cores=(busy_after - busy_before) / elapsed,
            steal_cores=(steal_after - steal_before) / elapsed,
            signed_inline=sum(c.signatures.inline for c in group if c.signatures is not None))
        self.rates.setdefault(sc.id, []).append(result.per_s)
        return result

    @staticmethod
    async def _worker(caller: Caller, statuses: Counter[int], deadline: float) -> None:
        while time.perf_counter() < deadline:
            headers = caller.signatures.next() if caller.signatures is not None else None
            async with caller.session.get(caller.url, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1


async def measure(networks: dict[bool, Network], args: argparse.Namespace
                  ) -> tuple[list[Window], dict[str, float]]:
    pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 1)
    load = Load(networks, args.callers, args.lifetime_s, pool)
    await load.open()
    windows: list[Window] = []
    try:
        await load.measure_idle(IDLE_S)
        log("idle nodes: " + ", ".join(f"{n.name} {load.idle_cores[tls]:.3f} cores"
                                       for tls, n in networks.items()))
        log(f"warm-up: {WARMUP_S:.0f} s per scenario (opens the connections; not recorded)")
        for sc in SCENARIOS:
            w = await load.window(sc, WARMUP_S, 0)
            _check_window(sc, w)
        for r in range(1, args.rounds + 1):
            shift = (r - 1) % len(SCENARIOS)
            order = SCENARIOS[shift:] + SCENARIOS[:shift]
            for sc in order:
                w = await load.window(sc, args.seconds, r)
                _check_window(sc, w)
                windows.append(w)
            log(f"round {r}/{args.rounds}: " + ", ".join(
                f"{w.scenario} {w.per_s:,.0f}/s" for w in windows[-len(SCENARIOS):]))
    finally:
        await load.close()
        pool.shutdown()
    return windows, {"https" if tls else "http": c for tls, c in load.idle_cores.items()}


def _check_window(sc: Scenario, w: Window) -> None:
    if w.ok == 0:
        raise BenchError(f"scenario {sc.id} ({sc.label}): no request answered 200: "
                         f"{w.statuses}")


# --- in-process: no HTTP -----------------------------------------------------------------


def rate_of(fn: Callable[[], object], seconds: float, rounds: int = 5) -> float:
    """Calls per second, the best of `rounds` rounds sharing `seconds` (other processes
    only ever slow a round down)."""
    best = 0.0
    for _ in range(rounds):
        done, started = 0, time.perf_counter()
        deadline = started + seconds / rounds
        while time.perf_counter() < deadline:
            fn()
            done += 1
        best = max(best, done / (time.perf_counter() - started))
    return best


def in_process(network: Network, seconds: float, lifetime_s: int) -> dict[str, float]:
    """One core, this process: the signature path's pieces and mutual TLS's."""
    key = network.readers[0].key
    url = f"http://127.0.0.1:{network.port}/v1/apps/evidence/deposit?index=7"
    now = int(time.time())
    signed = [sign_headers("GET", url, {"Host": f"127.0.0.1:{network.port}"}, key,
                           created_s=now, nonce=secrets.token_urlsafe(16), lifetime_s=lifetime_s)
              for _ in range(512)]
    items = [list(h.items()) for h in signed]
    cycle = iter(range(10**12))

    def verify_one() -> object:
        return verify_request("GET", url, items[next(cycle) % len(items)], now_s=now)

    def sign_one() -> object:
        return sign_headers("GET", url, {}, key, created_s=now,
                            nonce=secrets.token_urlsafe(16), lifetime_s=lifetime_s)

    book = NonceBook()
    counter = iter(range(10**12))

    def admit_one() -> None:
        # A fresh book once it is near full: what is measured is an admission.
        nonlocal book
        if len(book) > MAX_REMEMBERED_NONCES - 10:
            book = NonceBook()
        book.admit(SignedBy(key.public_key, now, now + lifetime_s, f"n{next(counter)}"), now)

    raw = Ed25519PrivateKey.from_private_bytes(key.seed)
    message, signature = b"x" * 300, raw.sign(b"x" * 300)
    public = raw.public_key()

    # Mutual TLS: certificate_member parses the presented certificate, parses the
    # enrolled CA's certificate from the state and checks its signature, per request.
    reader = network.readers[0]
    cert_der = from_pem(reader.cert_pem.read_bytes())
    ca_der = from_pem((network.net / "orgs" / DEFAULT_ORG / "ca.pem").read_bytes())
    at_ms = int(time.time() * 1000)

    def certificate_checks() -> object:
        return verify_member_cert_with_ca(cert_der, read_org_ca(ca_der), at_ms)

    return {
        "verify_request_per_s": rate_of(verify_one, seconds),
        "nonce_admit_per_s": rate_of(admit_one, seconds),
        "sign_headers_per_s": rate_of(sign_one, seconds),
        "member_certificate_checks_per_s": rate_of(certificate_checks, seconds),
        "ed25519_verify_per_s": rate_of(lambda: public.verify(signature, message), seconds),
    }


# --- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="tidechain-bench-reads-"))
    networks: dict[bool, Network] = {}
    load_before = load_average()
    measured = False
    try:
        for tls in (False, True):
            networks[tls] = create_network(workdir, "reads-https" if tls else "reads-http",
                                           tls, args.nice)
        for network in networks.values():
            wait_ready(network)
            enrol_readers(network, args.callers)
        windows, idle = asyncio.run(measure(networks, args))
        load_after = load_average()
        measured = True
    except BaseException:
        for network in networks.values():
            log(f"{network.name} log tail:\n{network.node.log_tail()}")
        raise
    finally:
        for network in networks.values():
            network.node.stop()
        if not measured and not args.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    try:
        log(f"in-process, one core: {args.verify_seconds} s per measurement")
        pieces = in_process(networks[False], args.verify_seconds, args.lifetime_s)
    finally:
        if args.keep_dir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"before": load_before, "after": load_after},
        "command": reproduce_command(),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "scenarios": {sc.id: sc.label for sc in SCENARIOS},
        "idle_node_cores": idle,
        "windows": [asdict(w) for w in windows],
        "summary": summarise(windows, args),
        "in_process": pieces,
    }


def summarise(windows: Sequence[Window], args: argparse.Namespace) -> dict[str, Any]:
    by: dict[str, list[Window]] = {sc.id: [w for w in windows if w.scenario == sc.id]
                                   for sc in SCENARIOS}
    out: dict[str, Any] = {}
    for sc_id, ws in by.items():
        rates = [w.per_s for w in ws]
        statuses: Counter[str] = Counter()
        for w in ws:
            statuses.update(w.statuses)
        out[sc_id] = {
            "median_per_s": statistics.median(rates), "min_per_s": min(rates),
            "max_per_s": max(rates),
            "node_cpu_us_per_req": statistics.median(w.node_cpu_us_per_req for w in ws),
            "node_main_thread_cores": statistics.median(w.node_main_thread_cores for w in ws),
            "node_cores": statistics.median(w.node_cores for w in ws),
            "client_cores": statistics.median(w.client_cores for w in ws),
            "machine_busy_cores": statistics.median(w.machine_busy_cores for w in ws),
            "steal_cores": statistics.median(w.steal_cores for w in ws),
            "per_caller_per_s": statistics.median(rates) / args.callers,
            "statuses": dict(statuses),
            "signed_inline": sum(w.signed_inline for w in ws),
        }

    def ratio(x: str, y: str) -> float:
        return float(out[x]["median_per_s"] / out[y]["median_per_s"])

    def extra_us(x: str, y: str) -> dict[str, float]:
        """What x costs more than y per request: from the rates (1/x - 1/y, which
        includes the client's share) and from the node's CPU per request."""
        return {"from_rates": 1e6 / out[x]["median_per_s"] - 1e6 / out[y]["median_per_s"],
                "node_cpu": out[x]["node_cpu_us_per_req"] - out[y]["node_cpu_us_per_req"]}

    out["ratios"] = {"b/a": ratio("b", "a"), "c/a": ratio("c", "a"), "c/b": ratio("c", "b"),
                     "d1/a": ratio("d1", "a"), "d2/d1": ratio("d2", "d1"),
                     "d3/d1": ratio("d3", "d1"), "d2/c": ratio("d2", "c"),
                     "d3/c": ratio("d3", "c")}
    out["extra_us_per_request"] = {"b-a (signature on /v1/status)": extra_us("b", "a"),
                                   "c-a (signed member-only read)": extra_us("c", "a"),
                                   "d2-d1 (mutual TLS member-only read)": extra_us("d2", "d1"),
                                   "d3-d1 (signed member-only read, HTTPS)": extra_us("d3", "d1")}
    return out


def machine() -> dict[str, Any]:
    def run_text(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    lscpu = run_text("lscpu").splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu if ln.startswith("Model name")),
                 "unknown")
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": run_text("nproc").strip(), "cpu": model, "lscpu_head": lscpu[:10],
            "memory_gib": round(mem_kib / 2**20, 1), "kernel": platform.release(),
            "python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION,
            "aiohttp": aiohttp.__version__}


def reproduce_command() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/bench_reads.py",
                                             *sys.argv[1:]])


# --- report ------------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    m, s, o, p = r["machine"], r["summary"], r["options"], r["in_process"]
    lines = [
        "tidechain read path: signed reads (issue 11), one validator per node",
        f"date     {r['date']}",
        f"machine  {m['cpu']}, nproc {m['nproc']}, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software Python {m['python']}, {m['openssl']}, aiohttp {m['aiohttp']} (client)",
        f"load     1-min load average {r['load_average_1min']['before']:.2f} before, "
        f"{r['load_average_1min']['after']:.2f} after; niceness {o['nice']}",
        f"command  {r['command']}",
        f"load     {o['callers']} callers, one keep-alive connection each, from their own "
        f"source address and member key; {o['rounds']} rounds x {o['seconds']} s per "
        "scenario, alternating",
        f"signed   sign_headers (SDK code), fresh nonce each, lifetime {o['lifetime_s']} s, "
        "signed before each window",
        "",
        f"{'':<4}{'scenario':<40}{'median/s':>10}{'min-max':>14}{'node us/req':>13}"
        f"{'node cores':>12}{'client':>8}{'machine':>9}  non-200",
    ]
    for sc_id, label in r["scenarios"].items():
        x = s[sc_id]
        other = {k: v for k, v in x["statuses"].items() if k != "200"}
        lines.append(
            f"{sc_id:<4}{label:<40}{x['median_per_s']:>10,.0f}"
            f"{x['min_per_s']:>7,.0f}-{x['max_per_s']:<6,.0f}{x['node_cpu_us_per_req']:>13,.0f}"
            f"{x['node_cores']:>7.2f} ({x['node_main_thread_cores']:.2f})"
            f"{x['client_cores']:>8.2f}{x['machine_busy_cores']:>9.2f}  {other or 'none'}")
    worst = max(s[sc_id]["per_caller_per_s"] for sc_id in r["scenarios"])
    inline = sum(s[sc_id]["signed_inline"] for sc_id in r["scenarios"])
    book_rate = MAX_REMEMBERED_NONCES / (o["lifetime_s"] + MAX_CLOCK_SKEW_S)
    lines += [
        "(node us/req: the node process's CPU per request, all threads, less its idle "
        f"CPU ({', '.join(f'{k} {v:.3f}' for k, v in r['idle_node_cores'].items())} cores);",
        " node cores: the node process while loaded, all threads (main thread); client: "
        "this process;",
        f" machine: every process on the {os.cpu_count()} cores, in cores; hypervisor steal "
        f"{max(s[i]['steal_cores'] for i in r['scenarios']):.2f} cores at most)",
        "",
        "ratios of the medians: " + ", ".join(f"{k} {v:.2f}" for k, v in s["ratios"].items()),
        "extra cost per request (us), from the node's CPU per request / from the rates "
        "(1/x - 1/y; only meaningful when the node is saturated):",
        *(f"  {k:<42}{v['node_cpu']:>7.0f} / {v['from_rates']:.0f}"
          for k, v in s["extra_us_per_request"].items()),
        f"rate limit: busiest caller {worst:,.0f} reads/s against {READS_PER_S_PER_CALLER}/s "
        f"(burst {READ_BURST_PER_CALLER}); signatures made inside a window: {inline}",
        "",
        "in-process, one core, no HTTP (best of 5):",
        f"  verify_request (RFC 9421 profile + Ed25519)   {p['verify_request_per_s']:>9,.0f}/s "
        f"({1e6 / p['verify_request_per_s']:.0f} us)",
        f"  NonceBook.admit                               {p['nonce_admit_per_s']:>9,.0f}/s "
        f"({1e6 / p['nonce_admit_per_s']:.1f} us)",
        f"  sign_headers (the client's cost)              {p['sign_headers_per_s']:>9,.0f}/s "
        f"({1e6 / p['sign_headers_per_s']:.0f} us)",
        f"  member certificate checks (mutual TLS)        "
        f"{p['member_certificate_checks_per_s']:>9,.0f}/s "
        f"({1e6 / p['member_certificate_checks_per_s']:.0f} us)",
        f"  bare Ed25519 verify (OpenSSL)                 {p['ed25519_verify_per_s']:>9,.0f}/s "
        f"({1e6 / p['ed25519_verify_per_s']:.0f} us)",
        f"nonce book: {MAX_REMEMBERED_NONCES:,} nonces, each kept lifetime + "
        f"{MAX_CLOCK_SKEW_S} s: at most {book_rate:,.0f} signed reads/s sustained per node "
        f"at a {o['lifetime_s']} s lifetime (more: 503 busy)",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=5, help="measured rounds (all scenarios each)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each window")
    p.add_argument("--callers", type=int, default=64,
                   help="concurrent callers: each a member key, a connection, a source address")
    p.add_argument("--lifetime-s", type=int, default=DEFAULT_SIGNATURE_LIFETIME_S,
                   help="signature lifetime (expires - created), as the SDK's default")
    p.add_argument("--verify-seconds", type=float, default=1.0,
                   help="time per in-process measurement")
    p.add_argument("--nice", type=int, default=0,
                   help="niceness for the nodes and this client (needs root; see bench_node.py)")
    p.add_argument("--keep-dir", action="store_true", help="keep the nodes' directories")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 0.5 <= args.seconds <= 60:
        p.error("--rounds 1..50, --seconds 0.5..60")
    if not 1 <= args.callers <= 500:
        p.error("--callers 1..500")
    if not 1 <= args.lifetime_s <= 300:
        p.error("--lifetime-s 1..300 (the node refuses longer)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nice:
        os.nice(args.nice)
        set_autogroup_nice("self", args.nice)
    try:
        report = run(args)
    except (BenchError, Rejected, aiohttp.ClientError, httpx.HTTPError, TimeoutError) as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if args.nice:
            set_autogroup_nice("self", 0)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
