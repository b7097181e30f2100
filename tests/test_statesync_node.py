"""State sync between real nodes and SQLite stores in one process (ADR 0009): a
validator far behind adopts the peers' state and log at a certified height instead of
re-executing, trusts no peer (a lying one is named and skipped), survives a crash in
the middle, and ends with everything a node that executed every block has."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import genesis, key, tx
from tests.test_multinode import Cluster
from tidechain.client.files import trust_file_text
from tidechain.consensus import PRECOMMIT, CommitCertificate, Tick
from tidechain.consensus.messages import sign_vote
from tidechain.contracts import evidence
from tidechain.core.errors import PeerError
from tidechain.core.limits import MAX_PAGE_SIZE, STATE_SYNC_MIN_BLOCKS, SYNC_PROBE_MS
from tidechain.core.note import Signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger import statesync as ledger_statesync
from tidechain.ledger.access import Reader
from tidechain.ledger.application import PageRequest
from tidechain.ledger.types import Genesis, SignedTx
from tidechain.node import core as node_module
from tidechain.node import statesync as node_statesync
from tidechain.node.node import Node
from tidechain.node.wire import (
    Entries,
    StateChunk,
    SyncAnswer,
    decode_message,
    encode_message,
)
from tidechain.storage.store import Store

BLOCKS = STATE_SYNC_MIN_BLOCKS + 4
PER_BLOCK = 12


def _deposits_and_amends(g: Genesis, height: int) -> list[SignedTx]:
    """A block's transactions: deposits, an amendment of the block's first deposit
    (its log index is known) and an amendment that fails (no such deposit)."""
    first_index = (height - 1) * PER_BLOCK
    txs = [tx(g, key(7), nonce=height * 1000 + i) for i in range(PER_BLOCK - 2)]
    amend = {"of": first_index, "digest": hashlib.sha256(b"v2 %d" % height).digest(),
             "meta": {}}
    txs.append(tx(g, key(7), "amend", amend, nonce=height * 1000 + 900))
    txs.append(tx(g, key(7), "amend", {**amend, "of": 10**9}, nonce=height * 1000 + 901))
    return txs


def build_chain(g: Genesis, path: Path, blocks: int) -> None:
    """A certified chain (every validator precommits) written into a fresh store."""
    store = Store(path)
    node = Node(g, store, Signer(g.validators[0].name, key(1000)))
    try:
        for _ in range(blocks):
            height = node.chain.height + 1
            prepared = node.chain.prepare(_deposits_and_amends(g, height),
                                          node.chain.head_time_ms + 10,
                                          g.validators[height % 4].name)
            votes = tuple(sign_vote(key(1000 + i), v.name, node.validators.digest, PRECOMMIT,
                                    height, 0, prepared) for i, v in enumerate(g.validators))
            node.commit_certified(prepared, CommitCertificate(height, 0, prepared.block_hash,
                                                              votes))
    finally:
        store.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chain") / "built.sqlite"
    build_chain(genesis(validators=4), path, BLOCKS)
    return path


def cluster_behind(g: Genesis, root: Path, built: Path) -> Cluster:
    """node0..node2 hold the built chain, node3 an empty store."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        for suffix in ("", "-wal"):
            source = built.with_name(built.name + suffix)
            if source.exists():
                shutil.copy(source, root / f"node{i}.sqlite{suffix}")
    return Cluster(g, root)


class Router:
    """Cluster.route, but a PeerError drops the sender's message (as the transport
    disconnects it) and is recorded; `tamper` may rewrite what one node sends, or drop
    it (None)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.errors: list[PeerError] = []
        self.tamper: dict[str, object] = {}

    def route(self, max_messages: int = 10**6) -> int:
        delivered = 0
        moved = True
        while moved and delivered < max_messages:
            moved = False
            for i, node in self.cluster.live():
                for action in self.cluster.take_sends(node):
                    moved = True
                    delivered += 1
                    data = encode_message(action.message)
                    fix = self.tamper.get(node.signer.name)
                    if callable(fix):
                        data = fix(data)
                        if data is None:
                            continue
                    for j in self.cluster.targets(i, action):
                        try:
                            self.cluster.nodes[j].receive(node.signer.name, data,
                                                          self.cluster.now_ms)
                        except PeerError as exc:
                            self.errors.append(exc)
        return delivered

    def step(self) -> None:
        """10 ms on the clock (sync polls only, no consensus ticks) and one message
        delivered: a state sync in slow motion, to stop it at a chosen point."""
        self.cluster.now_ms += 10
        for _, node in self.cluster.live():
            node.poll_sync(self.cluster.now_ms)
        self.route(max_messages=1)

    def run(self, ms: int, per_tick: int = 10**6) -> None:
        """Advance the clock by `ms`, delivering at most `per_tick` messages a tick."""
        for _ in range(ms // 10):
            self.cluster.now_ms += 10
            for _, node in self.cluster.live():
                node.step(Tick(self.cluster.now_ms))
                node.poll_sync(self.cluster.now_ms)
            self.route(per_tick)


def assert_same_as_peers(cluster: Cluster) -> None:
    synced, source = cluster.nodes[3], cluster.nodes[0]
    assert synced.chain.height == source.chain.height == BLOCKS
    assert synced.chain.frontier.root() == source.chain.frontier.root()
    assert synced.chain.state.root() == source.chain.state.root()
    assert sorted(synced.store.iter_state()) == sorted(source.store.iter_state())
    for height in (1, BLOCKS // 2, BLOCKS):
        assert synced.store.block(height) == source.store.block(height)
    # Old receipts, entries and the indexes rebuilt from the entries all work.
    # Read as key(7), which sent every entry of the built chain (ADR 0015).
    trust = parse_trust(trust_file_text(cluster.genesis))
    assert verify_receipt(synced.views.receipt(3, depositor(synced)), trust).index == 3
    assert (synced.views.entry(PER_BLOCK + 1, depositor(synced))
            == source.views.entry(PER_BLOCK + 1, depositor(source)))
    digest = hashlib.sha256(b"doc %d" % 2001).digest()
    assert _deposits(synced, digest) == _deposits(source, digest) != []
    assert _amended_by(synced, PER_BLOCK) == _amended_by(source, PER_BLOCK) != []


def depositor(node: Node) -> Reader:
    """key(7), the depositor of every built block, as `node` knows it at its head."""
    return node.views.reader(key(7).public_key, node.chain.head_time_ms)


def _deposits(node: Node, digest: bytes) -> list[Any]:
    """Every deposit of `digest`, through the evidence application's own query."""
    query = evidence.QUERIES["deposits"]
    return query.fn(node.views.view(), evidence.queries.DepositsParams(digest=digest.hex()),
                    PageRequest(limit=MAX_PAGE_SIZE)).items


def _amended_by(node: Node, index: int) -> list[int]:
    found = evidence.QUERIES["deposit"].fn(node.views.view(),
                                           evidence.queries.DepositParams(index=index))
    return list(found.amended_by)


def test_a_node_far_behind_state_syncs_and_ends_like_its_peers(
        built: Path, tmp_path: Path) -> None:
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    router.run(200)
    assert not router.errors
    assert_same_as_peers(cluster)
    # It re-executed nothing: the blocks arrived by state sync, not by block sync.
    assert behind.sync_status() == {"peer_height": BLOCKS, "behind_blocks": 0,
                                    "catching_up": False, "mode": "consensus"}
    # And it keeps up by consensus afterwards.
    cluster.submit([tx(g, key(7), nonce=99_999)])
    router.run(3_000)
    assert {n.chain.frontier.size for n in cluster.nodes} == {BLOCKS * PER_BLOCK + 1}


def test_status_shows_records_and_entries_fetched_of_the_totals(
        built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_statesync, "ENTRIES_PER_REQUEST", 2 * PER_BLOCK)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    seen = []
    for _ in range(100):
        router.step()
        status = behind.sync_status().get("state_sync")
        if status:
            seen.append(status)
    assert "data" in [s["phase"] for s in seen]
    assert any(0 < s["entries"] < BLOCKS * PER_BLOCK for s in seen)  # shown as it goes
    last = seen[-1]
    assert last["records_total"] == len(list(cluster.nodes[0].store.iter_state()))
    assert last["entries_total"] == BLOCKS * PER_BLOCK
    assert 0 <= last["records"] <= last["records_total"]


def _flip_in(kind: type, data: bytes, origin: str) -> bytes:
    """`data` with one state value or one log entry changed, if it is of `kind`."""
    message = decode_message(data, origin)
    if kind is StateChunk and isinstance(message, StateChunk) and message.records:
        (k, v), *rest = message.records
        return encode_message(StateChunk(message.height, message.chunk,
                                         ((k, v + b"!"), *rest)))
    if kind is Entries and isinstance(message, Entries) and message.blocks:
        first, *more = message.blocks
        entry = bytearray(first[0])
        entry[-1] ^= 1
        return encode_message(Entries(message.from_height, ((bytes(entry), *first[1:]),
                                                            *more)))
    return data


@pytest.mark.parametrize("kind", [StateChunk, Entries])
def test_a_peer_sending_a_bad_chunk_is_named_and_the_others_serve_it(
        built: Path, tmp_path: Path, kind: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks and requests, so that every peer is asked for some.
    monkeypatch.setattr(ledger_statesync, "MAX_STATE_CHUNK_RECORDS", 32)
    monkeypatch.setattr(node_statesync, "ENTRIES_PER_REQUEST", 2 * PER_BLOCK)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    liar = cluster.nodes[1].signer.name
    router.tamper[liar] = lambda data: _flip_in(kind, data, g.origin)
    router.run(300)
    assert router.errors, "the tampered chunk was accepted"
    assert {e.peer for e in router.errors} == {liar}
    assert_same_as_peers(cluster)


def test_a_crash_in_the_middle_leaves_the_old_head_and_a_restart_finishes(
        built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_statesync, "ENTRIES_PER_REQUEST", 2 * PER_BLOCK)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    for _ in range(200):  # until some entries are imported, not all
        router.step()
        status = behind.sync_status().get("state_sync") or {}
        if status.get("entries"):
            break
    assert 0 < status["entries"] < BLOCKS * PER_BLOCK
    behind.store.close()  # the process dies: nothing is finished or rolled back by hand
    with contextlib.closing(sqlite3.connect(tmp_path / "node3.sqlite")) as raw:
        imported = raw.execute("SELECT count(*) FROM sync_entries").fetchone()[0]
        assert 0 < imported < BLOCKS * PER_BLOCK  # the partial import is on disk,
        for table in ("entries", "log_nodes", "indexes", "blocks"):  # staged, not in the chain
            assert raw.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    reopened = Store(tmp_path / "node3.sqlite")
    assert reopened.head() is None  # the head never moved
    assert reopened.entries_between(0, 10**9) == []  # the import was dropped on open
    restarted = Node(g, reopened, behind.signer)
    cluster.nodes[3] = restarted
    router.run(300)
    assert not router.errors
    assert_same_as_peers(cluster)


def test_state_sync_while_the_network_keeps_committing(
        built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small requests, so that the sync spans several blocks of the others.
    monkeypatch.setattr(ledger_statesync, "MAX_STATE_CHUNK_RECORDS", 16)
    monkeypatch.setattr(node_statesync, "ENTRIES_PER_REQUEST", PER_BLOCK)
    monkeypatch.setattr(node_statesync, "ENTRY_REQUESTS_IN_FLIGHT", 1)
    monkeypatch.setattr(node_statesync, "STATE_REQUESTS_IN_FLIGHT", 1)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    committed_meanwhile = set()
    for step in range(60):  # three validators commit while the fourth syncs
        source = cluster.nodes[step % 3]
        assert source.admit([tx(g, key(7), nonce=500_000 + step)], cluster.now_ms) == [None]
        source.wake()
        router.run(100, per_tick=3)  # messages take time: the sync spans blocks
        if behind.sync_status().get("state_sync"):
            committed_meanwhile.add(cluster.nodes[0].chain.height)
    router.run(8_000)
    assert not router.errors
    assert len(committed_meanwhile) > 1, "the network did not commit during the sync"
    heads = {(n.chain.height, n.chain.frontier.root(), n.chain.state.root())
             for n in cluster.nodes}
    assert len(heads) == 1, heads
    assert behind.chain.frontier.size == BLOCKS * PER_BLOCK + 60


def test_one_peers_claim_does_not_start_a_state_sync_f_plus_one_do(
        tmp_path: Path, built: Path) -> None:
    """A single peer claiming a far head (it may lie) must not send a validator that is
    in step into a state sync while consensus goes on; f + 1 validators' word does."""
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path / "c", built)
    lagging = cluster.nodes[3]
    claim = encode_message(SyncAnswer((), BLOCKS))
    lagging.receive(cluster.nodes[0].signer.name, claim, cluster.now_ms)
    assert lagging.core.state_sync is None  # f = 1: one claim is not enough
    lagging.receive(cluster.nodes[1].signer.name, claim, cluster.now_ms)
    assert lagging.core.state_sync is not None  # two validators, so at least one honest


def _silent_on_state(origin: str) -> Callable[[bytes], bytes | None]:
    """Drop every state chunk a node sends (it offers, then never serves a chunk)."""
    return lambda data: None if isinstance(decode_message(data, origin), StateChunk) else data


def test_an_offering_peer_that_never_serves_a_chunk_only_slows_the_sync(
        built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Many small chunks, few in flight: preferring the silent offerer for every new
    # chunk would cost a timeout per two chunks.
    monkeypatch.setattr(ledger_statesync, "MAX_STATE_CHUNK_RECORDS", 16)
    monkeypatch.setattr(node_statesync, "STATE_REQUESTS_IN_FLIGHT", 2)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    for node in cluster.nodes[:3]:  # whichever of them is asked for the offer
        router.tamper[node.signer.name] = _silent_on_state(g.origin)
    offerer = None
    for _ in range(100):  # until the offer is taken
        router.run(10)
        session = cluster.nodes[3].core.state_sync
        if session is not None and session.offer is not None:
            offerer = session.offer_peer
            break
    assert offerer is not None
    for node in cluster.nodes[:3]:
        if node.signer.name != offerer:
            del router.tamper[node.signer.name]
    with caplog.at_level(logging.INFO, logger="tidechain.node"):
        router.run(4 * SYNC_PROBE_MS)  # timeouts, then the others serve every chunk
    assert "state sync done" in caplog.text
    assert not router.errors
    assert_same_as_peers(cluster)


def test_a_sync_whose_peers_stop_answering_is_abandoned_for_block_sync(
        built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    for node in cluster.nodes[:3]:
        router.tamper[node.signer.name] = _silent_on_state(g.origin)
    with caplog.at_level(logging.INFO, logger="tidechain.node"):
        router.run(node_statesync.STATE_SYNC_STALL_MS + 3 * SYNC_PROBE_MS)
    assert "state sync abandoned" in caplog.text
    assert "state sync done" not in caplog.text
    assert_same_as_peers(cluster)  # by block sync, re-executing


def test_an_import_process_that_dies_ends_the_session_and_a_later_one_finishes(
        built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_statesync, "ENTRIES_PER_REQUEST", 2 * PER_BLOCK)
    # Block sync stays out of the way until state sync is tried again.
    monkeypatch.setattr(node_module, "STATE_SYNC_RETRY_MS", 500)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    for _ in range(200):  # until some entries are handed to the import process
        router.step()
        if (behind.sync_status().get("state_sync") or {}).get("entries"):
            break
    importer = behind.store._importer
    assert importer is not None
    importer._child.kill()  # the OOM killer, say
    with caplog.at_level(logging.INFO, logger="tidechain.node"):
        router.run(2_000)
    assert "state sync import failed" in caplog.text
    assert "state sync abandoned" in caplog.text
    assert "state sync done" in caplog.text  # the next session
    assert_same_as_peers(cluster)


def test_an_offerer_that_drips_chunks_cannot_hold_block_sync_off(
        built: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One chunk every 1.9 s is never 'no progress for 20 s'; the session's deadline
    (STATE_CHUNK_BUDGET_MS per chunk) ends it all the same, and block sync catches up."""
    monkeypatch.setattr(ledger_statesync, "MAX_STATE_CHUNK_RECORDS", 16)
    g = genesis(validators=4)
    cluster = cluster_behind(g, tmp_path, built)
    router = Router(cluster)
    behind = cluster.nodes[3]
    held: list[tuple[str, bytes]] = []

    def hold(name: str) -> Callable[[bytes], bytes | None]:
        def fix(data: bytes) -> bytes | None:
            if isinstance(decode_message(data, g.origin), StateChunk):
                held.append((name, data))
                return None
            return data
        return fix

    for node in cluster.nodes[:3]:
        router.tamper[node.signer.name] = hold(node.signer.name)
    with caplog.at_level(logging.INFO, logger="tidechain.node"):
        for tick in range(6_000):  # 60 s
            router.run(10)
            if tick % 190 == 0 and held:
                name, data = held.pop(0)
                behind.receive(name, data, cluster.now_ms)
            if "state sync abandoned" in caplog.text:
                break
    assert "state sync abandoned (too slow:" in caplog.text  # not for a 20 s silence
    assert "state sync done" not in caplog.text
    router.tamper.clear()
    router.run(3 * SYNC_PROBE_MS)
    assert_same_as_peers(cluster)
