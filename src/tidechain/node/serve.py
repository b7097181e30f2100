"""`tide node start DIR`: open the store, build the node, serve the API, run consensus."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tidechain.contracts import default_registry
from tidechain.contracts.cert_expiry import KIND_ORG_CA, Certificate, WarningSchedule
from tidechain.contracts.registry import load_applications
from tidechain.core.errors import ConfigError, InvariantViolation
from tidechain.core.timefmt import iso_utc
from tidechain.identity.certs import MS_PER_DAY
from tidechain.node.api_tls import api_exposure, api_server_context
from tidechain.node.config import NodeConfig, load_genesis, load_node
from tidechain.node.mempool import Mempool
from tidechain.node.node import Node, SyncPolicy
from tidechain.node.peers import PeerNetwork
from tidechain.node.runtime import NodeRuntime
from tidechain.node.tls import (
    TlsError,
    add_trust_anchors,
    ca_ders,
    client_context,
    server_context,
)
from tidechain.storage.store import Store

STATE_SYNC_ENV = "TIDECHAIN_STATE_SYNC"
"""Set to "off" to catch up by block replay only (`bench_catchup.py --replay`); the
shell reads it and hands the node its `SyncPolicy`."""
log = logging.getLogger("tidechain.node")


AppFactory = Callable[[NodeRuntime, NodeConfig], web.Application]
"""The HTTP application over a node's runtime: the REST API (api/server.py), passed in
by whoever composes the two (ops/), so that the node never imports the API."""


async def serve(node_dir: Path, make_app: AppFactory, *, port: int | None = None) -> None:
    config = load_node(node_dir)
    genesis = load_genesis(config.network_dir)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"port {port} is not in 1..65535")
    store = Store(config.data_path)
    runner: web.AppRunner | None = None
    network: PeerNetwork | None = None
    try:
        extra = load_applications(config.applications)
        node = Node(genesis, store, config.signer(),
                    mempool=Mempool(config.mempool_max_txs),
                    cert_warn_days=config.cert_warn_days,
                    registry=default_registry(extra),
                    sync=SyncPolicy(state_sync=os.environ.get(STATE_SYNC_ENV, "on") != "off"))
        _tune_gc()
        runtime = NodeRuntime(node)
        api_ssl = _api_tls_context(config, runtime)  # a bad certificate stops us here
        if config.peers:
            tls = config.tls_files
            network = PeerNetwork(
                config.name, config.peer_host, config.peer_port, config.peer_addresses(),
                server_context(tls), client_context(tls), runtime.on_peer_message,
                rng=random.Random(os.urandom(16)))
            network.network_cas = ca_ders(tls.ca_cert.read_bytes())
            network.on_failure = functools.partial(_stop_on_broken_invariant, runtime)
            runtime.network = network
            await network.start()
        api_port = port or config.api_port
        runner = web.AppRunner(make_app(runtime, config), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, config.api_host, api_port, ssl_context=api_ssl)
        await site.start()
        log.info("node %s of %s at height %d, log size %d; API on %s://%s:%d",
                 config.name, genesis.name, node.chain.height, node.chain.frontier.size,
                 "https" if api_ssl else "http", config.api_host, api_port)
        _log_api_exposure(config.api_host, api_port, api_ssl is not None)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop)
        schedule = WarningSchedule()
        log_certificate_warnings(node, schedule)  # at start, before anything else runs
        warner = asyncio.create_task(_warn_periodically(node, schedule))
        try:
            await runtime.run()
        finally:
            warner.cancel()
    finally:
        try:
            if network is not None:
                await network.stop()  # raises a bug met on the peer path: exit non-zero
        finally:
            if runner is not None:
                await runner.cleanup()
            store.close()
    log.info("node %s stopped cleanly", config.name)


def _api_tls_context(config: NodeConfig, runtime: NodeRuntime) -> ssl.SSLContext | None:
    """With `api_tls`: the API's TLS context, its client-certificate trust anchors the
    organisation CAs on chain, kept current as the chain registers more (`ChainCas`).
    Only added, never removed: a CA or organisation that left the chain still completes
    a handshake, and the member check on each request (the caller's standing against
    the current state) is what refuses its certificates."""
    if not config.api_tls:
        return None
    try:
        ctx = api_server_context(config.api_cert_path, config.api_key_path)
    except TlsError as exc:
        raise ConfigError(f"api_tls: {exc.reason}") from exc
    runtime.chain_cas.follow(functools.partial(add_trust_anchors, ctx))
    return ctx


def _log_api_exposure(host: str, port: int, tls: bool) -> None:
    """Where the API listens and whether that is loopback only; a WARNING when other
    machines reach it over plain HTTP."""
    exposure = api_exposure(host, port, tls)
    log.info("%s", exposure.info)
    if exposure.warning is not None:
        log.warning("%s", exposure.warning)


def _stop_on_broken_invariant(runtime: NodeRuntime, exc: BaseException) -> None:
    """A bug met on the peer path: an `InvariantViolation` (the node's own state is not
    what its logic assumes) stops the node, and `network.stop()` raises it again, so
    the process exits non-zero. Any other exception there only ends that peer's
    connection, as a peer's bad input does: a decoder that raised, say, IndexError on
    hostile bytes must not become a switch any peer can use to stop every honest node
    at once (the exception is logged with its traceback either way)."""
    if isinstance(exc, InvariantViolation):
        log.error("stopping: a broken invariant on the peer path")
        runtime.stop()


CERT_CHECK_INTERVAL_S = 3600.0
"""How often the node looks for certificates coming due: a certificate that enters the
warning window is logged within the hour, and each one at most once a day."""
MAX_CERT_WARNINGS_LOGGED = 20
"""Lines per check at most; a summary line counts the rest."""


def log_certificate_warnings(node: Node, schedule: WarningSchedule,
                             now_ms: int | None = None) -> int:
    """Log a WARNING for each certificate due (expiring within `cert_warn_days`, or
    expired) that was not logged in the last day; return how many were due now."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    report = node.views.certificate_report(now)
    due = schedule.take(report, now)
    for certificate in due[:MAX_CERT_WARNINGS_LOGGED]:
        log.warning("%s", certificate_warning(certificate, report.at_ms))
    if len(due) > MAX_CERT_WARNINGS_LOGGED:
        log.warning("and %d more certificates expire within %d days (GET /v1/status)",
                    len(due) - MAX_CERT_WARNINGS_LOGGED, report.warn_days)
    return len(due)


def certificate_warning(certificate: Certificate, at_ms: int) -> str:
    """e.g. `certificate of member acme/alice (serial 7, key 5c2e0a...) expires in 12
    days, at 2026-12-04T10:00:00.000Z: renew it`."""
    kind, ident = (("organisation CA", "fingerprint") if certificate.kind == KIND_ORG_CA
                   else ("member", "key"))
    if certificate.not_after_ms < at_ms:
        ago = (at_ms - certificate.not_after_ms) // MS_PER_DAY
        when = "expired less than a day ago" if ago == 0 else (
            f"expired {ago} day{'s' * (ago != 1)} ago")
    else:
        days = certificate.days_left(at_ms)
        when = "expires in less than a day" if days == 0 else (
            f"expires in {days} day{'s' * (days != 1)}")
    return (f"certificate of {kind} {certificate.label} (serial {certificate.serial}, "
            f"{ident} {certificate.ident.hex()[:16]}...) {when}, at "
            f"{iso_utc(certificate.not_after_ms)}: renew it")


async def _warn_periodically(node: Node, schedule: WarningSchedule) -> None:
    while True:
        await asyncio.sleep(CERT_CHECK_INTERVAL_S)
        log_certificate_warnings(node, schedule)


GC_YOUNG_THRESHOLD = 100_000
"""Allocations between young-generation collections (CPython's default is 700). A node
allocates and frees many short-lived objects per transaction, few of them in cycles;
collecting every 700 allocations cost ~8% of a sync's CPU (measured with
benchmarks/bench_catchup.py). At 20,000, four validators still spent 4-8 µs of wall
time per deposit in collections on each follower and 10-12 on the node taking the
submissions: a transaction's objects live from its gossip to its block, so a burst
filled the young generation with objects that were about to be freed anyway. At
100,000: 1.3-1.9 and 4.3 (gc.callbacks timing, 2026-12-07). What waits longer is only
garbage in cycles, which the node makes little of."""


def _tune_gc() -> None:
    # What the node loaded at start (the state tree, the log frontier) lives until
    # the process ends: freezing it keeps every later full collection from walking it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class ClientHttpErrors(logging.Filter):
    """aiohttp logs a client's malformed HTTP (a request line over 8 KiB, broken
    headers) at ERROR with a traceback, before any handler runs. That is the client's
    error, not ours, and a traceback per request would let any client fill the log:
    one line at WARNING instead, naming what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {exc.message or type(exc).__name__}"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def run_node(node_dir: Path, make_app: AppFactory, *, port: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.server").addFilter(ClientHttpErrors())
    asyncio.run(serve(node_dir, make_app, port=port))
