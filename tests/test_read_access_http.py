"""Signed reads end to end against a real node process (ADR 0015): a request signed by
the PyPI library `http-message-signatures` itself, not by our code, is accepted; a
request our SDK signs verifies with that library's own verifier; the per-caller rate
limit answers 429 with Retry-After; the start log says where the API listens."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from tests.nodes import RunningNode, running_node
from tidechain.client import Client
from tidechain.client.files import read_key
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected


class _Keys(HTTPSignatureKeyResolver):
    """The library's key resolver over one member key, named as our profile names it."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        assert key_id == self.key.public_key.hex()
        return Ed25519PrivateKey.from_private_bytes(self.key.seed)

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        assert key_id == self.key.public_key.hex()
        return Ed25519PublicKey.from_public_bytes(self.key.public_key)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("signed"), "signed-net",
                      "api_reads_per_s = 2\n") as running:
        yield running


@pytest.fixture(scope="module")
def depositor(node: RunningNode) -> SigningKey:
    return read_key(node.net / "client.key").key


def _library_signed(url: str, key: SigningKey, *, created_s: int | None = None
                    ) -> requests.PreparedRequest:
    request = requests.Request("GET", url).prepare()
    created = int(time.time()) if created_s is None else created_s
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(key)).sign(
        request, key_id=key.public_key.hex(), label="tide", nonce=secrets.token_urlsafe(16),
        created=_utc(created), expires=_utc(created + 60), tag="tidechain",
        include_alg=True, covered_component_ids=("@method", "@authority", "@path", "@query"))
    return request


def _utc(seconds: int) -> object:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def _paced() -> None:
    """The node under test allows 2 reads/s per caller (bursts of 4): stay under it."""
    time.sleep(0.6)


def test_a_request_signed_by_the_library_itself_is_accepted(node: RunningNode,
                                                            depositor: SigningKey) -> None:
    _paced()
    url = f"{node.url}/v1/apps/evidence/deposits?limit=5"
    with requests.Session() as session:
        answer = session.send(_library_signed(url, depositor), timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"items": [], "next": None}
        _paced()
        # The same signed request twice: the second is a replay, refused with the reason.
        once = _library_signed(url, depositor)
        assert session.send(once, timeout=30).status_code == 200
        _paced()
        again = session.send(once, timeout=30)
        assert again.status_code == 401
        assert again.json()["error"] == "bad_signature" and "replayed" in again.json()["reason"]


def test_what_our_sdk_signs_verifies_with_the_library(node: RunningNode,
                                                      depositor: SigningKey) -> None:
    _paced()
    sent: list[httpx.Request] = []
    with Client(node.url, key=depositor) as sdk:
        sdk._http.event_hooks["request"].append(sent.append)
        assert sdk.query("evidence", "deposits", limit=3)["items"] == []
    request = sent[-1]
    message = requests.Request("GET", str(request.url), headers=dict(request.headers)).prepare()
    verified = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519,
                                   key_resolver=_Keys(depositor)).verify(
        message, expect_tag="tidechain",
        require_components=("@method", "@authority", "@path", "@query"))
    assert verified[0].parameters["keyid"] == depositor.public_key.hex()
    assert verified[0].parameters["nonce"]


def test_past_its_rate_a_caller_gets_429_with_retry_after(node: RunningNode,
                                                          depositor: SigningKey) -> None:
    time.sleep(2.5)  # a full bucket: 4 reads at once at 2/s
    statuses = []
    with Client(node.url, key=depositor) as sdk:
        for _ in range(8):
            try:
                sdk.query("evidence", "deposits", limit=1)
                statuses.append(200)
            except Rejected as refused:
                statuses.append(refused.http_status)
                assert refused.code == "rate_limited"
                assert getattr(refused, "retry_after_s", 0) >= 1
    assert statuses.count(200) >= 4 and 429 in statuses, statuses
    # Another caller (anonymous, by its address) has its own budget.
    answer = httpx.get(f"{node.url}/v1/status", timeout=30)
    assert answer.status_code in (200, 429)
    if answer.status_code == 429:
        assert int(answer.headers["Retry-After"]) >= 1


def test_the_start_log_says_the_api_listens_on_loopback_only(node: RunningNode) -> None:
    assert "loopback only" in node.log()
    assert "WARNING" not in Path(node.log_path).read_text()


def test_submissions_are_not_counted_against_the_read_limit(node: RunningNode,
                                                           depositor: SigningKey) -> None:
    """A write has its own back-pressure (a full mempool answers 503): a stream of
    deposits from one address is never answered 429, whatever the read limit (2/s here)."""
    from tests.helpers import signed_now
    from tidechain.core.crypto import sha256

    chain_id = bytes.fromhex(httpx.get(f"{node.url}/v1/status", timeout=30).json()["chain_id"])
    time.sleep(2.5)
    statuses = []
    for n in range(12):
        tx = signed_now(depositor, chain_id, "evidence", "deposit",
                        {"digest": sha256(b"not a read %d" % n), "meta": {}})
        statuses.append(httpx.post(f"{node.url}/v1/tx", content=tx.encode(), timeout=30,
                                   headers={"content-type": "application/cbor"}).status_code)
    assert statuses == [202] * 12, statuses
