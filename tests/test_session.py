"""The client session (client/session.py) against a real node: deterministic
transactions from an injected clock and nonce source, a waited write in one HTTP round
trip with its receipt verified, and typed failures before and after sending."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.nodes import RunningNode, running_node
from tidechain.client import Client, Session
from tidechain.client.files import client_signer
from tidechain.client.txbuilder import deposit_args
from tidechain.client.verify import verify_deposit_receipt
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import ContractError, DecodeError, Rejected

FIXED_MS = 1_700_000_000_000


@dataclass
class CountingTransport(httpx.BaseTransport):
    """The real HTTP transport, remembering each request's method and path."""

    inner: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    seen: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("session"), "session-net") as running:
        yield running


def _key(node: RunningNode) -> SigningKey:
    return client_signer(node.net).key


def _counting_client(node: RunningNode) -> tuple[Client, CountingTransport]:
    transport = CountingTransport()
    return Client(node.url, trust=node.trust_text, transport=transport), transport


def _counter() -> Iterator[bytes]:
    return (n.to_bytes(16, "big") for n in itertools.count(1))


def test_an_injected_clock_and_nonce_source_give_the_same_transactions(
        node: RunningNode) -> None:
    built = []
    for _ in range(2):
        with Client(node.url, trust=node.trust_text) as client:
            session = Session(client, _key(node), clock=lambda: FIXED_MS,
                              nonces=_counter().__next__)
            args = deposit_args(sha256(b"same"), {"k": "v"})
            built.append([session.build("evidence", "deposit", args).encode()
                          for _ in range(2)])
    assert built[0] == built[1]
    assert built[0][0] != built[0][1]  # the second nonce differs from the first


def test_a_waited_call_is_one_round_trip_and_returns_its_verified_receipt(
        node: RunningNode) -> None:
    client, transport = _counting_client(node)
    with client:
        session = Session(client, _key(node))
        session.client.chain_id()  # asked once, then remembered
        transport.seen.clear()
        digest = sha256(b"one round trip")
        outcome = session.call("evidence", "deposit", deposit_args(digest, {"n": "1"}))
        assert len(transport.seen) == 1, transport.seen
        assert transport.seen[0].startswith("POST /v1/tx?")
        assert "wait=true" in transport.seen[0] and "receipt=true" in transport.seen[0]
        proven = verify_deposit_receipt(outcome.receipt, node.trust_text, digest)
        assert proven.tx_id == outcome.tx_id and proven.log_index == outcome.log_index
        assert outcome.entry.tx.tx_id == outcome.tx_id
        assert outcome.event_types() == ["deposited"]
        assert outcome.signers == ("session-net/node0",)
        transport.seen.clear()
        session.call("evidence", "deposit", deposit_args(sha256(b"again")))
        assert len(transport.seen) == 1, transport.seen


def test_a_file_deposit_is_one_round_trip_once_the_chain_id_is_known(
        node: RunningNode, tmp_path: Path) -> None:
    document = tmp_path / "contract.txt"
    document.write_text("supply contract 19\n")
    client, transport = _counting_client(node)
    with client:
        session = Session(client, _key(node))
        client.chain_id()
        transport.seen.clear()
        deposited = session.deposit_file(document, {"title": "contract"})
    assert [s.split("?")[0] for s in transport.seen] == ["POST /v1/tx"]
    assert deposited.receipt_path == tmp_path / "contract.txt.tlog-proof"
    assert deposited.receipt_path.read_text() == deposited.receipt
    assert deposited.proven.meta == {"title": "contract"}


def test_bad_arguments_are_refused_before_anything_is_sent(node: RunningNode) -> None:
    client, transport = _counting_client(node)
    with client:
        session = Session(client, _key(node))
        client.chain_id()
        transport.seen.clear()
        with pytest.raises(DecodeError) as short:
            session.call("evidence", "deposit", {"digest": b"too short"})
        assert short.value.code == "bad_argument" and "digest" in short.value.reason
        with pytest.raises(DecodeError) as unknown:
            session.call("evidence", "deposit", {"digest": bytes(32), "colour": "red"})
        assert "colour" in unknown.value.reason
        with pytest.raises(ContractError) as no_method:
            session.call("evidence", "steal", {})
        assert no_method.value.code == "unknown_method"
        assert transport.seen == []


def test_a_committed_refusal_is_a_contract_error_with_its_code(node: RunningNode) -> None:
    with Client(node.url, trust=node.trust_text) as client:
        session = Session(client, _key(node))
        with pytest.raises(ContractError) as refused:
            session.call("evidence", "amend", {"of": 10**9, "digest": sha256(b"v2")})
    assert refused.value.code == "not_found"
    assert "committed as tx" in refused.value.reason


def test_without_waiting_the_call_returns_its_tx_id(node: RunningNode) -> None:
    # No trust file: nothing to verify without a wait. The depositor's key signs the
    # reads: waiting on its own transaction is reading its own entry (ADR 0015).
    with Client(node.url, key=_key(node)) as client:
        session = Session(client, _key(node))
        tx_id = session.call("evidence", "deposit", deposit_args(sha256(b"later")),
                             wait=False)
        assert client.wait(tx_id)["tx_id"] == tx_id.hex()
        with pytest.raises(Rejected) as no_trust:
            session.call("evidence", "deposit", deposit_args(sha256(b"now")))
    assert no_trust.value.code == "no_trust"


def test_tide_deposit_is_one_request_to_the_node(node: RunningNode, tmp_path: Path) -> None:
    """The CLI knows the chain id from the network's genesis, so `tide deposit` sends
    one request: the submit that waits and brings the receipt back. Counted by a
    forwarding proxy on 127.0.0.1 between a real `tide` process and the real node."""
    import asyncio
    import threading

    from aiohttp import ClientSession, web

    from tests.nodes import free_port, tide

    seen: list[str] = []
    port = free_port()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def forward(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        async with ClientSession() as http, http.request(
                request.method, node.url + request.path_qs, data=await request.read(),
                headers={"Content-Type": request.content_type}) as answer:
            return web.Response(body=await answer.read(), status=answer.status,
                                content_type=answer.content_type)

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        document = tmp_path / "tally.pdf"
        document.write_bytes(b"a tally report, one round trip")
        done = tide("deposit", str(document), "--net", str(node.net),
                    "--node", f"http://127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr
    finally:
        loop = box["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        loop.call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)
    assert seen == ["POST /v1/tx"], seen
    assert (tmp_path / "tally.pdf.tlog-proof").is_file()
