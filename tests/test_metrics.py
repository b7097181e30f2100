"""`/metrics`, `/healthz` and `/readyz` on a real node (docs/operations.md), and the
Prometheus files in docs/prometheus, all checked with promtool (Debian's `prometheus`
package). Without promtool those checks are skipped, except under CI=true, where they
fail.

One node for the module, with `cert_warn_days = 3650` so that every certificate of
the network is within the warning window and has its expiry series.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.nodes import RunningNode, running_node, tide
from tidechain.client import Client, deposit_tx
from tidechain.client.files import client_signer
from tidechain.core.crypto import SigningKey, sha256
from tidechain.ledger.types import SignedTx

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docs" / "prometheus" / "tidechain-rules.yml"
RULE_TESTS = ROOT / "docs" / "prometheus" / "tidechain-rules.test.yml"
SAMPLE_CONFIG = ROOT / "docs" / "prometheus" / "prometheus.yml"
CBOR = "application/cbor"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("metrics"), "metrics-net",
                      "cert_warn_days = 3650\n") as running:
        yield running


@pytest.fixture(scope="module")
def depositor(node: RunningNode) -> SigningKey:
    return client_signer(node.net).key


@pytest.fixture(scope="module")
def sdk(node: RunningNode, depositor: SigningKey) -> Iterator[Client]:
    with Client(node.url, trust=node.trust_text, key=depositor) as client:
        yield client


def scrape(node: RunningNode) -> tuple[str, Samples]:
    response = httpx.get(f"{node.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def make_tx(sdk: Client, key: SigningKey, *, now_ms: int | None = None,
            ttl_ms: int = 600_000) -> SignedTx:
    nonce = os.urandom(16)
    return deposit_tx(key, sdk.chain_id(), sha256(nonce), {"test": "metrics"},
                      now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
                      nonce=nonce, ttl_ms=ttl_ms)


def post_tx(node: RunningNode, data: bytes) -> httpx.Response:
    return httpx.post(f"{node.url}/v1/tx", content=data, headers={"content-type": CBOR},
                      timeout=10)


def test_the_exposition_passes_promtool(node: RunningNode) -> None:
    text, samples = scrape(node)
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in ("tidechain_height", "tidechain_consensus_round", "tidechain_mempool_bytes",
                 "tidechain_peers_connected", "tidechain_verify_backlog_transactions",
                 "tidechain_sync_behind_blocks", "tidechain_ready",
                 "tidechain_commit_latency_seconds_count"):
        assert any(key[0] == name for key in samples), name
    every_line = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(line.startswith("tidechain_") for line in every_line), "not our registry"


def test_commits_move_height_counters_and_latency(node: RunningNode, sdk: Client,
                                                  depositor: SigningKey) -> None:
    _, before = scrape(node)
    for _ in range(3):
        answer = sdk.submit(make_tx(sdk, depositor))
        assert answer["status"] == "committed"
    _, after = scrape(node)
    height = int(sdk.status()["height"])
    assert value(after, "tidechain_height") == height >= value(before, "tidechain_height") + 1
    assert (value(after, "tidechain_blocks_committed_total")
            >= value(before, "tidechain_blocks_committed_total") + 1)
    for name in ("tidechain_transactions_admitted_total",
                 "tidechain_transactions_committed_total",
                 "tidechain_commit_latency_seconds_count"):
        assert value(after, name) == value(before, name) + 3, name
    assert value(after, "tidechain_commit_latency_seconds_sum") > value(
        before, "tidechain_commit_latency_seconds_sum")
    assert value(after, "tidechain_log_entries") == int(sdk.status()["log_size"])
    assert value(after, "tidechain_mempool_transactions") == 0


def test_refused_submissions_are_counted_by_reason(node: RunningNode, sdk: Client,
                                                   depositor: SigningKey) -> None:
    _, before = scrape(node)
    good = make_tx(sdk, depositor)
    forged = SignedTx(good.body_bytes, bytes(64), good.body, good.tx_id)
    assert post_tx(node, forged.encode()).json()["error"] == "bad_signature"
    head_ms = int(sdk.status()["block_time_ms"])
    expired = make_tx(sdk, depositor, now_ms=head_ms - 10_000, ttl_ms=1_000)
    assert post_tx(node, expired.encode()).json()["error"] == "expired"
    assert post_tx(node, b"\x00not cbor").json()["error"] == "malformed"
    _, after = scrape(node)
    for reason in ("bad_signature", "expired", "malformed"):
        name = "tidechain_transactions_rejected_total"
        assert value(after, name, reason=reason) == value(before, name, reason=reason) + 1
    assert value(after, "tidechain_transactions_admitted_total") == value(
        before, "tidechain_transactions_admitted_total")


def test_certificates_coming_due_have_their_expiry(node: RunningNode) -> None:
    _, samples = scrape(node)
    expiries = {dict(labels)["certificate"]: seconds for (name, labels), seconds
                in samples.items() if name == "tidechain_certificate_expiry_seconds"}
    assert expiries, "cert_warn_days = 3650 puts every certificate in the window"
    assert all(0 < seconds <= 3650 * 86_400 for seconds in expiries.values())
    assert value(samples, "tidechain_certificate_warning_window_seconds") == 3650 * 86_400
    assert value(samples, "tidechain_certificates_expiring") >= len(expiries)


def test_a_single_validator_is_healthy_and_ready(node: RunningNode) -> None:
    health = httpx.get(f"{node.url}/healthz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"healthy": True})
    ready = httpx.get(f"{node.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    _, samples = scrape(node)
    assert value(samples, "tidechain_ready") == 1
    assert value(samples, "tidechain_validators_connected") == value(
        samples, "tidechain_validators_quorum") == 1


def test_each_api_has_its_own_registry(tmp_path: Path) -> None:
    """Two nodes in one process: each API's registry holds its own node's series, and
    nothing lands in prometheus_client's process-wide default registry."""
    from tidechain.api.server import Api
    from tidechain.node.config import load_genesis, load_node
    from tidechain.node.node import Node
    from tidechain.node.runtime import NodeRuntime
    from tidechain.storage.store import Store

    assert tide("init", str(tmp_path / "net"), "--name", "registry-net").returncode == 0
    config = load_node(tmp_path / "net" / "node0")
    genesis = load_genesis(config.network_dir)
    stores = [Store(tmp_path / f"node{i}.sqlite") for i in range(2)]
    try:
        apis = [Api(NodeRuntime(Node(genesis, store, config.signer()))) for store in stores]
        texts = []
        for api in apis:
            assert api.operations is not None
            texts.append(generate_latest(api.operations.registry).decode())
        assert all("tidechain_height 0.0" in text for text in texts)
        assert apis[0].operations is not apis[1].operations
        assert "tidechain_" not in generate_latest(REGISTRY).decode()
    finally:
        for store in stores:
            store.close()


def test_the_rules_and_the_sample_configuration_pass_promtool() -> None:
    tool = promtool()
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)],
                    ["check", "config", str(SAMPLE_CONFIG)]):
        checked = subprocess.run([tool, *command], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, (command, checked.stdout + checked.stderr)
