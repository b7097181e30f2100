"""An application is one folder and one registry line (ADR 0013).

`tests/apps/notary/` is a test-only application written against the `Application`
descriptor alone. Registered with one line, `default_registry(extra=[notary.APP])`,
and nothing else changed, it is:

(a) served: its queries answer over HTTP, under `/v1/apps/notary/...`;
(b) documented: its operations, with their parameters, are in the served OpenAPI
    document, and `/v1/contracts` lists its method with its arguments;
(c) callable and queryable from the SDK (`Session.call`, `Client.query`,
    `Client.walk`) and from the CLI (`tide call`, `tide query`);
(d) state-synced with its index: a node that catches up by state sync serves the
    same notes-by-tag answers as the nodes that executed every block.

The node is a real `tide node start` process whose node.toml names the application
(`applications = ["tests.apps.notary"]`); the CLI names it with `--app`. The network
directory is a real `tide init` one, so the SDK and the CLI use its keys and trust file
as they would: reads are members-only (ADR 0015), so the SDK signs them with the
network's depositor key (client.key), which the notary's readers include.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web

from tests.apps import notary
from tests.helpers import DAY_MS, GENESIS_TIME_MS, founding_org, genesis, key, member_cert, tx
from tests.node_effects import take_sends
from tests.nodes import free_port, running_node, tide
from tidechain.api.server import Api
from tidechain.client import Client
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import read_key
from tidechain.consensus import PRECOMMIT, Broadcast, CommitCertificate, Start, Tick
from tidechain.consensus.messages import sign_vote
from tidechain.contracts import default_registry
from tidechain.core.errors import DecodeError, NotFound
from tidechain.core.limits import STATE_SYNC_MIN_BLOCKS
from tidechain.core.note import Signer
from tidechain.identity import Role
from tidechain.ledger.application import PageRequest
from tidechain.ledger.runtime import Registry
from tidechain.ledger.types import Event, Genesis, GenesisOrg, SignedTx
from tidechain.node.node import Node
from tidechain.node.runtime import NodeRuntime
from tidechain.node.wire import encode_message
from tidechain.storage.store import Store

ROOT = Path(__file__).resolve().parents[1]


def notary_registry() -> Registry:
    return default_registry(extra=[notary.APP])  # the one line that adds the application


# --- a node process serving it ----------------------------------------------------------------


@dataclass
class NotaryNet:
    net: Path
    url: str
    trust: str
    depositor: Signer


NOTARY_TOML = 'applications = ["tests.apps.notary"]\n'
"""What makes `tide node start` serve the application (node.toml, ADR 0013)."""


@pytest.fixture(scope="module")
def notary_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryNet]:
    root = tmp_path_factory.mktemp("notary")
    with running_node(root, "notary-net", NOTARY_TOML) as node:
        yield NotaryNet(node.net, node.url, node.trust_text, read_key(node.net / "client.key"))


def session_of(net: NotaryNet, client: Client) -> Any:
    from tidechain.client.session import Session

    return Session(client, net.depositor.key, registry=notary_registry())


@pytest.fixture(scope="module")
def noted(notary_net: NotaryNet) -> list[dict[str, Any]]:
    """Five notes under two tags, through the SDK's session: their outcomes."""
    with Client(notary_net.url, trust=notary_net.trust, key=notary_net.depositor.key) as client:
        session = session_of(notary_net, client)
        outcomes = [session.call("notary", "note", {"text": f"note {i}",
                                                    "tag": "even" if i % 2 == 0 else "odd"})
                    for i in range(5)]
    return [o.to_json() for o in outcomes]


# --- (a) served --------------------------------------------------------------------------------


def test_its_queries_answer_over_http(notary_net: NotaryNet,
                                      noted: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=notary_net.url, timeout=30) as anonymous:
        for path in ("/v1/apps/notary/notes?tag=even",
                     f"/v1/apps/notary/note?index={noted[0]['log_index']}",
                     f"/v1/log/entry/{noted[0]['log_index']}", "/v1/search?q=odd"):
            refused = anonymous.get(path)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.json()["error"] == "unauthenticated"
    with httpx.Client(base_url=notary_net.url, timeout=30,
                      auth=MemberSignatures(notary_net.depositor.key)) as http:
        evens = http.get("/v1/apps/notary/notes", params={"tag": "even"})
        assert evens.status_code == 200, evens.text
        page = evens.json()
        assert [n["text"] for n in page["items"]] == ["note 4", "note 2", "note 0"]
        assert page["next"] is None
        assert {n["notary"] for n in page["items"]} == {
            notary_net.depositor.key.public_key.hex()}
        first = noted[0]
        one = http.get("/v1/apps/notary/note", params={"index": first["log_index"]})
        assert one.status_code == 200, one.text
        assert one.json()["tx"] == first["tx_id"] and one.json()["tag"] == "even"
        assert http.get("/v1/apps/notary/note", params={"index": 10**12}).status_code == 404
        for bad in ({"tag": ""}, {}, {"tag": "x" * 65}, {"tag": "even", "limit": "0"},
                    {"tag": "even", "colour": "red"}):
            refused = http.get("/v1/apps/notary/notes", params=bad)
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["error"] and refused.json()["reason"]
        found = http.get("/v1/search", params={"q": "odd"}).json()["found"]
        assert {"kind": "record", "id": "odd", "path": "/v1/apps/notary/notes?tag=odd",
                "app": "notary"} in found
        entry = http.get(f"/v1/log/entry/{first['log_index']}").json()
        assert (entry["contract"], entry["method"]) == ("notary", "note")


# --- (b) documented ----------------------------------------------------------------------------


def test_its_operations_are_in_the_served_document(notary_net: NotaryNet) -> None:
    document = httpx.get(f"{notary_net.url}/v1/openapi.json", timeout=30).json()
    notes = document["paths"]["/v1/apps/notary/notes"]["get"]
    assert notes["operationId"] == "notary_notes" and notes["tags"] == ["notary"]
    params = {p["name"]: p for p in notes["parameters"]}
    assert set(params) == {"tag", "cursor", "limit"}
    assert params["tag"]["required"] and params["tag"]["in"] == "query"
    assert params["tag"]["schema"]["maxLength"] == notary.MAX_TAG_BYTES
    page = notes["responses"]["200"]["content"]["application/json"]["schema"]
    name = page["$ref"].rsplit("/", 1)[1]
    assert set(document["components"]["schemas"][name]["properties"]) == {"items", "next"}
    note = document["paths"]["/v1/apps/notary/note"]["get"]
    assert [(p["name"], p["required"]) for p in note["parameters"]] == [("index", True)]
    assert {"200", "400", "404"} <= set(note["responses"])
    described = {c["name"]: c for c in httpx.get(f"{notary_net.url}/v1/contracts",
                                                 timeout=30).json()["contracts"]}
    method = described["notary"]["methods"][0]
    assert method["name"] == "note" and method["roles"] == ["depositor"]
    assert set(method["args"]["properties"]) == {"text", "tag"}
    assert {q["name"] for q in described["notary"]["queries"]} == {"note", "notes"}


# --- (c) the SDK and the CLI -------------------------------------------------------------------


def test_the_sdk_calls_and_queries_it(notary_net: NotaryNet,
                                      noted: list[dict[str, Any]]) -> None:
    with Client(notary_net.url, trust=notary_net.trust, key=notary_net.depositor.key) as client:
        session = session_of(notary_net, client)
        outcome = session.call("notary", "note", {"text": "from the sdk", "tag": "sdk"})
        assert outcome.event_types() == ["noted"]
        assert client.query("notary", "note", index=outcome.log_index)["text"] == "from the sdk"
        with pytest.raises(DecodeError):  # the declared Struct refuses it before signing
            session.call("notary", "note", {"text": "no tag"})
        with pytest.raises(NotFound):
            client.query("notary", "note", index=10**12)
        odd = list(client.walk("notary", "notes", tag="odd", limit=1))
        assert [n["index"] for n in odd] == [noted[3]["log_index"], noted[1]["log_index"]]
        assert [n["text"] for n in client.walk("notary", "notes", tag="sdk")] == [
            "from the sdk"]


def test_the_cli_calls_and_queries_it(notary_net: NotaryNet) -> None:
    """`tide call` and `tide query` as real processes, generic over the registry: the
    extra application is named by `--app` (or `$TIDE_APPS`), as the node names it in
    node.toml."""
    common = ["--app", "tests.apps.notary", "--net", str(notary_net.net),
              "--node", notary_net.url]

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        done = tide(*common, *args, cwd=ROOT, env=env)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("call", "notary.note", "--arg", "text=from the cli", "--arg", "tag=cli")
    assert code == 0, err
    assert "notary.note" in out
    code, out, err = run("query", "notary", "notes", "--param", "tag=cli")
    assert code == 0, err
    assert "from the cli" in out
    code, out, err = run("call", "notary.note", "--arg", "text=no tag")
    assert code != 0 and "tag" in err
    code, out, _ = run("call", "--help")
    assert code == 0 and "notary.note" in out and "tag" in out
    done = tide("--net", str(notary_net.net), "--node", notary_net.url, "query", "notary",
                "notes", "--param", "tag=cli", cwd=ROOT,
                env={"TIDE_APPS": "tests.apps.notary"})
    assert done.returncode == 0 and "from the cli" in done.stdout, done.stderr
    done = tide("--net", str(notary_net.net), "query", "notary", "notes", cwd=ROOT)
    assert done.returncode != 0 and "notary" in done.stderr  # without it: unknown app


def test_tide_verify_describes_its_entries_offline(notary_net: NotaryNet,
                                                   tmp_path: Path) -> None:
    """A receipt of any application's entry verifies offline, and the application
    says what it proves (`describe_entry`); a tampered one is refused."""
    receipt = tmp_path / "note.tlog-proof"
    common = ["--app", "tests.apps.notary", "--net", str(notary_net.net)]
    done = tide(*common, "--node", notary_net.url, "call", "notary.note", "--arg",
                "text=a receipt", "--arg", "tag=verified", "-o", str(receipt), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    trust = str(notary_net.net / "trust.txt")
    done = tide(*common, "verify", str(receipt), "--trust", trust, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "notary.note (applied)" in done.stdout
    assert "tag: verified" in done.stdout and "text: a receipt" in done.stdout
    tampered = tmp_path / "tampered.tlog-proof"
    index = next(line for line in receipt.read_text().splitlines()
                 if line.startswith("index "))
    tampered.write_text(receipt.read_text().replace(
        f"{index}\n", f"index {int(index.split()[1]) + 1}\n"))
    done = tide(*common, "verify", str(tampered), "--trust", trust, cwd=ROOT)
    assert done.returncode == 1 and "verification FAILED" in done.stderr


READER = 11
"""key(11): a depositor of the test organisation whose certificate outlives the wall
clock. The API checks a reader's certificate at the time of the read (ADR 0015), and
the shared test certificates end a year after GENESIS_TIME_MS."""


def notary_genesis() -> Genesis:
    """`genesis(validators=4)` with READER enrolled too: the member that reads the
    synced node's notes over HTTP."""
    g = genesis(validators=4, name="notary-sync")
    reader = member_cert(READER, (Role.DEPOSITOR,),
                         not_after_ms=GENESIS_TIME_MS + 3000 * DAY_MS)
    org = founding_org()
    return Genesis(g.name, g.time_ms, g.validators,
                   (GenesisOrg(org.ca, (*org.members, reader)),))


BLOCKS = STATE_SYNC_MIN_BLOCKS + 4
"""Enough blocks behind that the empty node catches up by state sync, not block sync."""
NOTES_PER_BLOCK = 6
TAGS = ("alpha", "beta", "gamma")
"""Each block files two notes under each tag."""
SERVE_TIMEOUT_S = 30.0


@contextlib.contextmanager
def serving(node: Node) -> Iterator[str]:
    """`node` run by a `NodeRuntime` with the REST API on a free loopback port, on an
    event loop in a thread (what `tide node start` does, with its store opened here).
    Yields the API's URL; stops the runtime and re-raises whatever ended the loop."""
    port = free_port()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def run() -> None:
        runtime = NodeRuntime(node)
        box["runtime"], box["loop"] = runtime, asyncio.get_running_loop()
        runner = web.AppRunner(Api(runtime).app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            started.set()
            await runtime.run()
        finally:
            await runner.cleanup()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # handed to the test below
            box["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=main, name="in-process-node", daemon=True)
    thread.start()
    assert started.wait(SERVE_TIMEOUT_S), "the in-process node did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if thread.is_alive():
            box["loop"].call_soon_threadsafe(box["runtime"].stop)
        thread.join(SERVE_TIMEOUT_S)
        assert not thread.is_alive(), "the in-process node did not stop"
        if "error" in box:
            raise box["error"]


def _notes_block(g: Genesis, height: int) -> list[SignedTx]:
    return [tx(g, key(i % 3), "note", {"text": f"block {height} note {i}",
                                       "tag": TAGS[(height + i) % len(TAGS)]},
               contract="notary", nonce=height * 1000 + i)
            for i in range(NOTES_PER_BLOCK)]


def _build_chain(g: Genesis, path: Path) -> None:
    """BLOCKS certified blocks of notes (every validator precommits) in a fresh store."""
    store = Store(path)
    node = Node(g, store, Signer(g.validators[0].name, key(1000)), registry=notary_registry())
    try:
        for _ in range(BLOCKS):
            height = node.chain.height + 1
            prepared = node.chain.prepare(_notes_block(g, height), node.chain.head_time_ms + 10,
                                          g.validators[height % len(g.validators)].name)
            votes = tuple(sign_vote(key(1000 + i), v.name, node.validators.digest, PRECOMMIT,
                                    height, 0, prepared) for i, v in enumerate(g.validators))
            node.commit_certified(prepared, CommitCertificate(height, 0, prepared.block_hash,
                                                              votes))
    finally:
        store.close()


class Nodes:
    """Four in-process validators with the notary registry, messages routed between
    them by hand (as tests/test_multinode.py's Cluster does)."""

    def __init__(self, g: Genesis, root: Path) -> None:
        self.now_ms = GENESIS_TIME_MS + 1000
        self.nodes = [Node(g, Store(root / f"node{i}.sqlite"), Signer(v.name, key(1000 + i)),
                           registry=notary_registry()) for i, v in enumerate(g.validators)]
        for node in self.nodes:
            node.step(Start(self.now_ms))

    def _route(self) -> None:
        """Deliver what every node queued (gossip, consensus, replies) until none is."""
        moved = True
        while moved:
            moved = False
            for node in self.nodes:
                sends = take_sends(node)
                for action in sends:
                    moved = True
                    data = encode_message(action.message)
                    for other in self.nodes:
                        if other is not node and (isinstance(action, Broadcast)
                                                  or other.signer.name == action.peer):
                            other.receive(node.signer.name, data, self.now_ms)

    def run(self, ms: int) -> None:
        for _ in range(ms // 10):
            self.now_ms += 10
            for node in self.nodes:
                node.step(Tick(self.now_ms))
                node.poll_sync(self.now_ms)
            self._route()

    def close(self) -> None:
        for node in self.nodes:
            node.store.close()


def _all_notes(node: Node, tag: str) -> list[dict[str, Any]]:
    """Every note of `tag`, page after page, as the API would answer them."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = notary.notes(node.views.view(), notary.NotesParams(tag), PageRequest(cursor, 7))
        out.extend(msgspec.to_builtins(page.items))
        cursor = page.next
        if cursor is None:
            return out


def test_a_state_synced_node_serves_the_same_notes_by_tag(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = notary_genesis()
    built = tmp_path / "built.sqlite"
    _build_chain(g, built)
    for i in range(3):  # node0..node2 hold the chain; node3 starts empty
        for suffix in ("", "-wal"):
            source = built.with_name(built.name + suffix)
            if source.exists():
                (tmp_path / f"node{i}.sqlite{suffix}").write_bytes(source.read_bytes())
    nodes = Nodes(g, tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="tidechain.node"):
            nodes.run(200)
        # It adopted the peers' state and log (no re-execution), rebuilding the index
        # from the verified entries with the application's own index rule.
        assert "state sync done" in caplog.text
        synced, source = nodes.nodes[3], nodes.nodes[0]
        assert synced.chain.height == source.chain.height == BLOCKS
        assert synced.chain.state.root() == source.chain.state.root()
        assert synced.sync_status()["behind_blocks"] == 0
        for tag in TAGS:
            ours, theirs = _all_notes(synced, tag), _all_notes(source, tag)
            assert ours == theirs
            assert len(ours) == BLOCKS * NOTES_PER_BLOCK // len(TAGS)
        expected = {tag: _all_notes(source, tag) for tag in TAGS}
    finally:
        nodes.close()
    # Restarted from its store, the synced node serves them over HTTP, through the SDK.
    store = Store(tmp_path / "node3.sqlite")
    restarted = Node(g, store, Signer(g.validators[3].name, key(1003)),
                     registry=notary_registry())
    try:
        # READER is a depositor: one of the notary's readers.
        with serving(restarted) as url, Client(url, key=key(READER)) as client:
            served = list(client.walk("notary", "notes", tag="beta", limit=5))
            assert served == expected["beta"]
            assert client.query("notary", "note", index=served[3]["index"]) == served[3]
    finally:
        store.close()


def test_the_describer_and_the_index_rule() -> None:
    describe = notary.APP.describe_entry  # what `tide verify` prints for a note
    assert describe is not None
    assert describe("note", {"text": "hello", "tag": "t"}, []) == ["tag: t", "text: hello"]
    assert notary.APP.index_rows([Event("noted", {"index": 3, "tag": "t"})]) == [
        ("notary/tag", b"t")]
    assert notary.APP.index_rows([Event("other", {})]) == []
