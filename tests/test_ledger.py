"""The state transition and the store, on real SQLite files, without consensus."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import GENESIS_TIME_MS, genesis, key, tx
from tidechain.contracts import default_registry, evidence
from tidechain.core import merkle
from tidechain.core.errors import BadSignature, InvariantViolation, Rejected
from tidechain.ledger.application import HeadView, PageRequest
from tidechain.ledger.chain import Chain, check_tx_static, genesis_state
from tidechain.ledger.state_tree import StateTree
from tidechain.ledger.types import LogEntry
from tidechain.storage.store import Store


def new_chain(g=None) -> Chain:  # type: ignore[no-untyped-def]
    g = g or genesis()
    return Chain.at_genesis(g, default_registry())


def commit(chain: Chain, store: Store, txs, time_ms: int):  # type: ignore[no-untyped-def]
    accepted, dropped = chain.select(txs, time_ms, store.committed)
    prepared = chain.prepare(accepted, time_ms, "test-net/node0")
    store.commit_block(prepared, b"cert", "checkpoint")
    chain.advance(prepared)
    return prepared, dropped


def test_deposit_then_lookup_earliest_first(tmp_path: Path) -> None:
    g = genesis()
    store = Store(tmp_path / "chain.sqlite")
    store.init_genesis(g, genesis_state(g, default_registry()))
    chain = new_chain(g)
    digest = hashlib.sha256(b"contract").digest()
    t1 = tx(g, key(1), args={"digest": digest, "meta": {"who": "first"}}, nonce=1)
    t2 = tx(g, key(2), args={"digest": digest, "meta": {"who": "second"}}, nonce=2)
    commit(chain, store, [t1], GENESIS_TIME_MS + 1)
    prepared, _ = commit(chain, store, [t2], GENESIS_TIME_MS + 2)
    view = HeadView(store, chain.height, chain.head_time_ms, store)
    found = evidence.QUERIES["deposits"].fn(
        view, evidence.queries.DepositsParams(digest=digest.hex()), PageRequest()).items
    assert [r.meta["who"] for r in found] == ["second", "first"]  # newest first
    assert [r.index for r in found] == [1, 0]
    assert found[1].depositor == key(1).public_key.hex()
    entry = LogEntry.decode(prepared.entries[0])
    assert entry.result.ok and entry.height == 2 and entry.time_ms == GENESIS_TIME_MS + 2


def test_amend_links_without_changing_the_original(tmp_path: Path) -> None:
    g = genesis()
    store = Store(tmp_path / "chain.sqlite")
    chain = new_chain(g)
    original = tx(g, key(1), nonce=1)
    commit(chain, store, [original], GENESIS_TIME_MS + 1)
    before = evidence.get_deposit(store, 0)
    new_digest = hashlib.sha256(b"v2").digest()
    amend = tx(g, key(1), "amend", {"of": 0, "digest": new_digest, "meta": {}}, nonce=2)
    stranger = tx(g, key(9), "amend", {"of": 0, "digest": new_digest}, nonce=3)
    missing = tx(g, key(1), "amend", {"of": 99, "digest": new_digest}, nonce=4)
    prepared, _ = commit(chain, store, [amend, stranger, missing], GENESIS_TIME_MS + 2)
    results = prepared.results
    assert results[0].ok
    assert (results[1].ok, results[1].error) == (False, "forbidden")
    assert (results[2].ok, results[2].error) == (False, "not_found")
    assert evidence.get_deposit(store, 0) == before
    view = HeadView(store, chain.height, chain.head_time_ms, store)
    amendments = evidence.QUERIES["amendments"].fn(
        view, evidence.queries.AmendmentsParams(of=0), PageRequest())
    assert [d.index for d in amendments.items] == [1] and amendments.next is None
    assert evidence.get_deposit(store, 1)["amends"] == 0  # type: ignore[index]


@pytest.mark.parametrize("args, code", [
    ({"digest": b"short"}, "bad_argument"),
    ({"digest": bytes(32), "meta": {"k": 5}}, "bad_argument"),
    ({"digest": bytes(32), "extra": 1}, "bad_argument"),
    ({"digest": bytes(32), "meta": {f"k{i}": "v" for i in range(33)}}, "bad_argument"),
])
def test_contract_rejections_commit_as_failed_and_write_nothing(args, code, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    g = genesis()
    store = Store(tmp_path / "chain.sqlite")
    chain = new_chain(g)
    root_before = chain.state.root()
    prepared, _ = commit(chain, store, [tx(g, key(1), args=args)], GENESIS_TIME_MS + 1)
    assert prepared.results[0].error == code
    assert chain.state.root() == root_before
    assert chain.frontier.size == 1  # the failed transaction is still logged


def test_unknown_contract_and_method_fail_typed(tmp_path: Path) -> None:
    g = genesis()
    chain = new_chain(g)
    store = Store(tmp_path / "c.sqlite")
    p, _ = commit(chain, store, [tx(g, key(1), contract="nope", nonce=1),
                                 tx(g, key(1), method="nope", nonce=2)], GENESIS_TIME_MS + 1)
    assert [r.error for r in p.results] == ["unknown_contract", "unknown_method"]


def test_replay_expiry_and_wrong_chain_are_refused(tmp_path: Path) -> None:
    g = genesis()
    store = Store(tmp_path / "chain.sqlite")
    chain = new_chain(g)
    t = tx(g, key(1), nonce=1)
    commit(chain, store, [t], GENESIS_TIME_MS + 1)
    expired = tx(g, key(1), nonce=2, expires_ms=GENESIS_TIME_MS)
    too_far = tx(g, key(1), nonce=3, expires_ms=GENESIS_TIME_MS + 10 * 86_400_000)
    _, dropped = commit(chain, store, [t, expired, too_far], GENESIS_TIME_MS + 2)
    assert [why.code for _, why in dropped] == ["replay", "expired", "expiry_too_far"]
    other = genesis(name="other-net")
    with pytest.raises(Rejected) as exc:
        check_tx_static(tx(other, key(1)), g.chain_id)
    assert exc.value.code == "wrong_chain"


def test_a_tampered_signature_is_refused() -> None:
    g = genesis()
    t = tx(g, key(1))
    forged = type(t)(t.body_bytes, bytes(64), t.body, t.tx_id)
    with pytest.raises(BadSignature):
        check_tx_static(forged, g.chain_id)


def test_validate_accepts_exactly_what_prepare_produced(tmp_path: Path) -> None:
    g = genesis()
    proposer, follower = new_chain(g), new_chain(g)
    store = Store(tmp_path / "c.sqlite")
    txs = [tx(g, key(1), nonce=i) for i in range(5)]
    prepared = proposer.prepare(txs, GENESIS_TIME_MS + 5, "test-net/node0")
    again = follower.validate(prepared.header, txs, store.committed)
    assert again.header == prepared.header
    with pytest.raises(Rejected):
        follower.validate(prepared.header, txs[:4], store.committed)


def test_restart_rebuilds_the_same_roots(tmp_path: Path) -> None:
    g = genesis()
    path = tmp_path / "chain.sqlite"
    store = Store(path)
    store.init_genesis(g, genesis_state(g, default_registry()))
    chain = new_chain(g)
    for h in range(1, 6):
        commit(chain, store, [tx(g, key(1), nonce=h * 10 + i) for i in range(h)],
               GENESIS_TIME_MS + h)
    store.close()
    reopened = Store(path)
    head = reopened.head()
    assert head is not None
    state = StateTree.from_items(reopened.iter_state())
    frontier = merkle.CompactRange.from_nodes(head.header.log_size, reopened)
    rebuilt = Chain(g, default_registry(), head.header, state, frontier)
    assert rebuilt.head == chain.head
    for index in range(frontier.size):
        proof = merkle.inclusion_proof(reopened, index, frontier.size)
        _, entry = reopened.entry(index)
        merkle.verify_inclusion(merkle.leaf_hash(entry), index, frontier.size, proof,
                                frontier.root())


def test_a_store_of_another_network_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.sqlite")
    store.init_genesis(genesis(), genesis_state(genesis(), default_registry()))
    with pytest.raises(InvariantViolation):
        store.init_genesis(genesis(name="other-net"), {})


def test_state_roots_that_do_not_match_the_header_crash(tmp_path: Path) -> None:
    g = genesis()
    store = Store(tmp_path / "c.sqlite")
    chain = new_chain(g)
    commit(chain, store, [tx(g, key(1), nonce=1)], GENESIS_TIME_MS + 1)
    assert chain.head is not None
    with pytest.raises(InvariantViolation):
        Chain(g, default_registry(), chain.head, StateTree(), chain.frontier)
