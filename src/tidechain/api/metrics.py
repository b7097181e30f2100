"""Operations endpoints (docs/operations.md): `GET /metrics` in the Prometheus text
format, `GET /healthz` (the process is alive and its event loop turns) and `GET /readyz`
(caught up and serving).

The metrics come from a registry of this API's own (never the process-wide default,
so several nodes in one process keep their series apart): the runtime's counters and
commit-latency histogram (`node/metrics.py`, updated as things happen), and
`NodeCollector`, which reads the node's state each time Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from tidechain.api.access import Gate
from tidechain.node.peers import PeerNetwork
from tidechain.node.runtime import NodeRuntime, now_ms

SECONDS_PER_DAY = 86_400
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
STALLED_AFTER_S = 10.0
"""/healthz fails when the consensus loop has not turned for this long: it turns every
tick (TICK_MS, 10 ms) while the node runs, so a thousand ticks missed means the loop has
ended or something holds the event loop (a probe's own timeout catches the latter).
Long enough that a slow block on a loaded 2-core machine never trips it."""


def validators_connected(runtime: NodeRuntime) -> int:
    """Validators of the set signing the next block that this node can hear: itself if
    it is one, and those with a live peer connection."""
    node = runtime.node
    prefix = node.genesis.name + "/"
    network = runtime.network
    connected = network.connected_peers() if isinstance(network, PeerNetwork) else set()
    return sum(1 for v in node.validators.validators
               if v.name == node.signer.name or v.name.removeprefix(prefix) in connected)


def unready_reason(runtime: NodeRuntime) -> str | None:
    """Why the node should not be sent traffic now, or None when it is caught up and
    serving: not stopping or halted, not state-syncing or catching up, and hearing a
    quorum of validators (a single validator hears itself)."""
    node = runtime.node
    if runtime.stopping:
        return "the node is shutting down"
    if node.halted is not None:
        return f"the node has halted: {node.halted}"
    sync = node.core.sync_status()
    if "state_sync" in sync:
        return "a state sync is in progress"
    if sync["catching_up"]:
        return (f"catching up: {sync['behind_blocks']} blocks behind its peers "
                f"(height {node.chain.height} of {sync['peer_height']})")
    connected, quorum = validators_connected(runtime), node.validators.quorum
    if connected < quorum:
        return (f"{connected} validators reachable (this node included), {quorum} needed "
                "for a quorum")
    return None


class NodeCollector(Collector):
    """The node's live state, read at each scrape."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime
        node = runtime.node
        yield _gauge("tidechain_height", "Height of the last committed block.",
                     node.chain.height)
        yield _gauge("tidechain_head_time_seconds",
                     "Block time of the last committed block (Unix time).",
                     node.chain.head_time_ms / 1000)
        yield _gauge("tidechain_log_entries", "Entries in the transparency log.",
                     node.chain.frontier.size)
        yield CounterMetricFamily(
            "tidechain_blocks_committed",
            "Blocks this node committed since it started, by consensus or block sync "
            "(not those a state sync imported).", value=node.blocks_committed)
        yield _gauge("tidechain_consensus_height", "Height the consensus replica is "
                     "deciding.", node.replica.height)
        yield _gauge("tidechain_consensus_round", "Round of that height.", node.replica.round)
        yield _gauge("tidechain_mempool_transactions", "Transactions pending in the mempool.",
                     len(node.mempool))
        yield _gauge("tidechain_mempool_bytes", "Bytes of the transactions pending in the "
                     "mempool.", node.mempool.size_bytes)
        yield _gauge("tidechain_mempool_capacity_transactions",
                     "Transactions the mempool holds before answering busy (503).",
                     node.mempool.max_txs)
        yield _gauge("tidechain_verify_backlog_transactions",
                     "Transactions waiting for or in signature verification on the verify "
                     "threads (client submissions and peers' gossip).", runtime.verify_backlog)
        network = runtime.network
        yield _gauge("tidechain_peers_connected", "Peers with a live authenticated "
                     "connection.", len(network.connected_peers())
                     if isinstance(network, PeerNetwork) else 0)
        yield _gauge("tidechain_validators", "Validators in the set signing the next block.",
                     len(node.validators.validators))
        yield _gauge("tidechain_validators_quorum", "Validators whose votes make a quorum.",
                     node.validators.quorum)
        yield _gauge("tidechain_validators_connected", "Validators this node hears: itself "
                     "if it is one, and those connected.", validators_connected(runtime))
        yield from _sync_metrics(node.core.sync_status())
        yield _gauge("tidechain_halted", "1 when the node stopped at a contract version "
                     "this software lacks.", int(node.halted is not None))
        yield _gauge("tidechain_ready", "1 when /readyz answers 200: caught up and serving.",
                     int(unready_reason(runtime) is None))
        yield from _certificate_metrics(node.views.certificates_status(now_ms()))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _sync_metrics(sync: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("tidechain_sync_peer_height", "Highest head its peers claim (or its own).",
                 sync["peer_height"])
    yield _gauge("tidechain_sync_behind_blocks", "Blocks behind the highest head its peers "
                 "claim.", sync["behind_blocks"])
    state_sync: dict[str, Any] | None = sync.get("state_sync")
    yield _gauge("tidechain_state_sync_active", "1 while a state sync is fetching a "
                 "snapshot.", int(state_sync is not None))
    progress = GaugeMetricFamily(
        "tidechain_state_sync_items", "Of the running state sync: state records and log "
        "entries fetched, and expected once known.", labels=["kind", "stage"])
    if state_sync is not None:
        for kind, fetched, expected in (("records", "records", "records_total"),
                                        ("entries", "entries", "entries_total")):
            progress.add_metric([kind, "fetched"], state_sync[fetched])
            if state_sync[expected] is not None:
                progress.add_metric([kind, "expected"], state_sync[expected])
    yield progress


def _certificate_metrics(certificates: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("tidechain_certificate_warning_window_seconds", "How far ahead the node "
                 "warns about certificates (node.toml cert_warn_days).",
                 certificates["warn_days"] * SECONDS_PER_DAY)
    yield _gauge("tidechain_certificates_expiring", "Certificates the chain relies on that "
                 "end within cert_warn_days.", certificates["expiring"])
    yield _gauge("tidechain_certificates_expired", "Certificates the chain relies on that "
                 "have ended (their members are refused).", certificates["expired"])
    soonest = GaugeMetricFamily(
        "tidechain_certificate_expiry_seconds",
        "Seconds before each of the soonest-ending certificates within cert_warn_days ends "
        "(at most 5, as in /v1/status; negative once ended).",
        labels=["kind", "certificate", "id"])
    at_ms = certificates["at_ms"]
    for item in certificates["soonest"]:
        soonest.add_metric([item["kind"], f"{item['org']}/{item['name']}", item["id"][:16]],
                           (item["not_after_ms"] - at_ms) / 1000)
    yield soonest


class Operations:
    """/metrics, /healthz and /readyz of one API."""

    def __init__(self, runtime: NodeRuntime, gate: Gate) -> None:
        self._runtime = runtime
        self._gate = gate
        self.registry = CollectorRegistry()
        for collector in runtime.metrics.collectors():
            self.registry.register(collector)
        self.registry.register(NodeCollector(runtime))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(METRICS_PATH, self.metrics)
        app.router.add_get(HEALTH_PATH, self.health)
        app.router.add_get(READY_PATH, self.ready)

    async def metrics(self, request: web.Request) -> web.Response:
        self._gate.reader(request)
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def health(self, request: web.Request) -> web.Response:
        """200 while the consensus loop turns: this answer proves the event loop does."""
        self._gate.reader(request)
        since_s = time.monotonic() - self._runtime.last_tick_s
        if since_s > STALLED_AFTER_S:
            return web.json_response(
                {"healthy": False, "error": "stalled",
                 "reason": f"the consensus loop has not turned for {since_s:.0f} s"},
                status=503)
        return web.json_response({"healthy": True})

    async def ready(self, request: web.Request) -> web.Response:
        self._gate.reader(request)
        reason = unready_reason(self._runtime)
        if reason is not None:
            return web.json_response({"ready": False, "error": "not_ready", "reason": reason},
                                     status=503)
        return web.json_response({"ready": True, "height": self._runtime.node.chain.height})
