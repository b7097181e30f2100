"""The pure checks of state sync (ledger/statesync.py, ADR 0009): an honest chunk,
offer, header or block of entries is always accepted, a tampered one always refused;
the subtree hashing agrees with the state tree; entries are skimmed and indexed
exactly as execution encoded and indexed them."""

from __future__ import annotations

import contextlib
import hashlib
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.helpers import genesis
from tests.test_statesync_node import build_chain
from tidechain.consensus import CommitCertificate, ValidatorInfo, ValidatorSet
from tidechain.contracts import default_registry
from tidechain.core import cbor, merkle
from tidechain.core.errors import DecodeError, ProofError, Rejected
from tidechain.ledger import statesync
from tidechain.ledger import validators as validator_sets
from tidechain.ledger.chain import genesis_state
from tidechain.ledger.state_tree import EMPTY_ROOT, StateTree
from tidechain.ledger.statesync import (
    IndexRules,
    LogFeed,
    StateAssembly,
    StateOffer,
    Tip,
    UnknownValidatorSet,
    fold_top,
    leaf_of,
    make_snapshot,
    skim_entry,
    subtree_hash,
    tip_of,
    verify_header,
    verify_offer,
    verify_state_chunk,
)
from tidechain.ledger.types import BlockHeader, Event, LogEntry, TxResult
from tidechain.node.wire import (
    Entries,
    EntriesRequest,
    Headers,
    HeadersRequest,
    HeadRequest,
    SnapshotOffer,
    SnapshotRequest,
    StateChunk,
    StateRequest,
    decode_message,
    encode_message,
)
from tidechain.storage.store import Store

records_st = st.dictionaries(st.binary(min_size=1, max_size=12), st.binary(max_size=12),
                             max_size=120)


def _snapshot(records: dict[bytes, bytes], chunk_records: int) -> statesync.Snapshot:
    snapshot = make_snapshot(7, records.items(), max_records=chunk_records)
    # None only when keys crowd one prefix of MAX_STATE_SYNC_DEPTH nibbles beyond the
    # chunk bound: possible with these tiny bounds, not with the real one.
    assume(snapshot is not None)
    assert snapshot is not None
    return snapshot


# --- state ----------------------------------------------------------------------------


@settings(max_examples=150)
@given(records_st)
def test_subtree_hashing_gives_the_state_tree_root(records: dict[bytes, bytes]) -> None:
    leaves = sorted(leaf_of(k, v) for k, v in records.items())
    assert subtree_hash(0, leaves) == StateTree.from_items(records.items()).root()


def test_the_empty_state_folds_to_the_empty_root() -> None:
    assert fold_top(1, [(0, bytes(32))] * 16) == EMPTY_ROOT


@settings(max_examples=100)
@given(records_st, st.sampled_from([1, 3, 8, 200]))
def test_an_honest_snapshot_is_always_accepted(records: dict[bytes, bytes],
                                               chunk_records: int) -> None:
    snapshot = _snapshot(records, chunk_records)
    verify_offer(snapshot.offer(), StateTree.from_items(records.items()).root())
    assert snapshot.offer().records == len(records)
    got = []
    for chunk in range(len(snapshot.offer().top)):
        verify_state_chunk(snapshot.offer(), chunk, snapshot.chunk(chunk))
        got.extend(snapshot.chunk(chunk))
    assert dict(got) == records


def _tampered(records: list[tuple[bytes, bytes]], how: int, extra: bytes
              ) -> list[tuple[bytes, bytes]]:
    """`records` changed in one way (a value, a key, one dropped, one added, one twice)."""
    out = list(records)
    if how == 0:
        k, v = out[0]
        out[0] = (k, v + extra)
    elif how == 1:
        k, v = out[0]
        out[0] = (k + extra, v)
    elif how == 2:
        out.pop()
    elif how == 3:
        out.append((b"tampered" + extra, b"x"))
    else:
        out.append(out[0])
    return out


@settings(max_examples=200)
@given(records_st.filter(bool), st.sampled_from([1, 4, 200]), st.integers(0, 4),
       st.binary(min_size=1, max_size=4), st.data())
def test_a_tampered_chunk_is_always_refused(
        records: dict[bytes, bytes], chunk_records: int, how: int, extra: bytes,
        data: st.DataObject) -> None:
    snapshot = _snapshot(records, chunk_records)
    non_empty = [i for i, (count, _) in enumerate(snapshot.offer().top) if count]
    chunk = data.draw(st.sampled_from(non_empty))
    with pytest.raises(ProofError):
        verify_state_chunk(snapshot.offer(), chunk, _tampered(snapshot.chunk(chunk), how, extra))


@settings(max_examples=100)
@given(records_st.filter(bool), st.sampled_from([1, 4, 200]), st.data())
def test_a_tampered_offer_is_refused_or_harmless(records: dict[bytes, bytes],
                                                chunk_records: int, data: st.DataObject
                                                ) -> None:
    """A changed hash, or an empty prefix said to hold keys (or the reverse), is
    refused. The root does not bind the counts beyond that (3 keys fold like 5), so
    an offer with changed counts may pass: then the honest chunks still verify."""
    snapshot = _snapshot(records, chunk_records)
    root = StateTree.from_items(records.items()).root()
    top = list(snapshot.offer().top)
    i = data.draw(st.integers(0, len(top) - 1))
    count, digest = top[i]
    how = data.draw(st.sampled_from(["hash", "emptiness", "count"]))
    if how == "hash":
        top[i] = (count or 1, hashlib.sha256(digest).digest())
    elif how == "emptiness":
        top[i] = (0, bytes(32)) if count else (1, hashlib.sha256(b"x").digest())
    else:
        top[i] = (count + data.draw(st.integers(1, 5)), digest) if count else (0, digest)
    tampered = StateOffer(7, snapshot.offer().depth, tuple(top))
    if how != "count":
        with pytest.raises(ProofError):
            verify_offer(tampered, root)
        return
    try:
        verify_offer(tampered, root)
    except ProofError:
        return
    for chunk in range(len(top)):
        verify_state_chunk(tampered, chunk, snapshot.chunk(chunk))


@settings(max_examples=150)
@given(records_st.filter(bool), st.sampled_from([2, 4, 200]), st.integers(0, 4),
       st.binary(min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_assembling_chunks_in_any_order_takes_honest_ones_and_refuses_tampered(
        records: dict[bytes, bytes], chunk_records: int, how: int, extra: bytes,
        rng: random.Random) -> None:
    """The node's path (StateAssembly: stage into the tree, compare with the folded
    offer) agrees with the reference check (verify_state_chunk) on every chunk."""
    snapshot = _snapshot(records, chunk_records)
    offer = snapshot.offer()
    assembly = StateAssembly(offer)
    chunks = [i for i, (count, _) in enumerate(offer.top) if count]
    rng.shuffle(chunks)
    for chunk in chunks:
        bad = _tampered(snapshot.chunk(chunk), how, extra)
        before = assembly.tree.root()
        with pytest.raises(ProofError):
            verify_state_chunk(offer, chunk, bad)
        with pytest.raises(ProofError):
            assembly.add(chunk, bad)
        assert assembly.tree.root() == before  # nothing of it was taken
        assembly.add(chunk, snapshot.chunk(chunk))
    assert assembly.tree.root() == StateTree.from_items(records.items()).root()


# --- entries and headers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def chain_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("chain") / "pure.sqlite"
    build_chain(genesis(validators=4), path, 4)
    return Store(path)


def _blocks(store: Store) -> list[tuple[BlockHeader, bytes, list[bytes]]]:
    return [(header, cert, store.entries_between(header.log_size - header.tx_count,
                                                 header.log_size))
            for header, cert in store.headers(1, 10**6)]


def test_skimming_and_indexing_agree_with_execution(chain_store: Store) -> None:
    stored_index = {(name, key, index)
                    for name in ("evidence/digest", "evidence/amends")
                    for key, index in _index_rows(chain_store, name)}
    rules = IndexRules(default_registry())
    derived = set()
    for header, _, entries in _blocks(chain_store):
        first = header.log_size - header.tx_count
        for offset, entry in enumerate(entries):
            skimmed = skim_entry(entry)
            decoded = LogEntry.decode(entry)
            assert skimmed.envelope == decoded.tx.encode()
            assert skimmed.tx_id == decoded.tx.tx_id
            derived.update(rules.rows(skimmed, first + offset))
    assert derived == stored_index
    assert any(name == "evidence/amends" for name, _, _ in derived)


def _index_rows(store: Store, name: str) -> list[tuple[bytes, int]]:
    return [(bytes(k), int(i)) for k, i in store._db.execute(
        "SELECT key, log_index FROM indexes WHERE name = ?", (name,))]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_entries_are_accepted_only_as_certified(chain_store: Store, data: st.DataObject
                                                ) -> None:
    blocks = _blocks(chain_store)
    honest = LogFeed(merkle.CompactRange(), IndexRules(default_registry()))
    for header, _, entries in blocks:
        honest.add_block(header, entries)
    assert honest.frontier.root() == blocks[-1][0].log_root
    # One flipped byte, anywhere in any entry of a block, and the block is refused.
    b = data.draw(st.integers(0, len(blocks) - 1))
    header, _, entries = blocks[b]
    feed = LogFeed(merkle.CompactRange(), IndexRules(default_registry()))
    for earlier, _, earlier_entries in blocks[:b]:
        feed.add_block(earlier, earlier_entries)
    i = data.draw(st.integers(0, len(entries) - 1))
    pos = data.draw(st.integers(0, len(entries[i]) - 1))
    bad = bytearray(entries[i])
    bad[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ProofError):
        feed.add_block(header, [*entries[:i], bytes(bad), *entries[i + 1:]])
    with pytest.raises(ProofError):
        feed.add_block(header, entries[:-1])  # one missing


def _genesis_set() -> tuple[ValidatorSet, bytes]:
    g = genesis(validators=4)
    state = StateTree.from_items(genesis_state(g, default_registry()).items())
    return (ValidatorSet(tuple(ValidatorInfo(v.name, v.public_key) for v in g.validators)),
            validator_sets.next_validators_hash(state, g))


def test_headers_must_chain_and_carry_a_quorum_certificate(chain_store: Store) -> None:
    g = genesis(validators=4)
    validators, set_hash = _genesis_set()
    blocks = _blocks(chain_store)
    tip = Tip(0, bytes(32), g.time_ms, 0, set_hash)
    for header, cert, _ in blocks:
        verify_header(tip, header, cert, g.chain_id, g.origin, validators, set_hash)
        tip = tip_of(header)
    first, second = blocks[0], blocks[1]
    start = Tip(0, bytes(32), g.time_ms, 0, set_hash)
    with pytest.raises(ProofError, match="does not extend"):
        verify_header(start, second[0], second[1], g.chain_id, g.origin, validators, set_hash)
    with pytest.raises(ProofError, match="another block"):
        verify_header(start, first[0], second[1], g.chain_id, g.origin, validators, set_hash)
    cert = CommitCertificate.decode(first[1])
    short = CommitCertificate(cert.height, cert.round, cert.block_hash, cert.precommits[:2])
    with pytest.raises(ProofError):
        verify_header(start, first[0], short.encode(), g.chain_id, g.origin, validators,
                      set_hash)
    with pytest.raises(UnknownValidatorSet):
        verify_header(start, first[0], first[1], g.chain_id, g.origin, validators, bytes(32))


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_skimming_arbitrary_bytes_raises_only_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        skim_entry(data)


# --- wire ------------------------------------------------------------------------------

ORIGIN = genesis(validators=4).origin


def test_state_sync_messages_round_trip(chain_store: Store) -> None:
    (header, cert, entries), *_ = _blocks(chain_store)
    snapshot = make_snapshot(7, [(b"k%d" % i, b"v") for i in range(40)], max_records=8)
    assert snapshot is not None
    messages = [
        SnapshotRequest(), SnapshotOffer(snapshot.offer()), SnapshotOffer(None),
        HeadRequest(), HeadersRequest(2, 9), Headers(((header, cert),)),
        EntriesRequest(1, 3), Entries(1, (tuple(entries), ())),
        StateRequest(7, 3), StateChunk(7, 3, tuple(snapshot.chunk(3))), StateChunk(7, 4, None),
    ]
    for message in messages:
        assert decode_message(encode_message(message), ORIGIN) == message


_sync_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["t", "height", "depth", "counts", "hashes", "from", "to", "headers",
                         "header", "cert", "blocks", "chunk", "keys", "values"]),
        inner, max_size=8),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["snap?", "snap", "hdrs?", "hdrs", "ents?", "ents", "state?", "state",
                        "head?"]), _sync_values)
def test_malformed_state_sync_messages_only_raise_rejected(kind: str, body: object) -> None:
    message: dict[str, object] = {"t": kind}
    if isinstance(body, dict):
        message.update(body)
    with contextlib.suppress(Rejected):
        decode_message(cbor.encode(message), ORIGIN)


def test_a_state_crowding_one_prefix_is_not_offered() -> None:
    # Keys whose hashes share their first 3 nibbles, more than a chunk may hold.
    crowded = [k for k in (b"%d" % i for i in range(200_000))
               if hashlib.sha256(k).digest()[:2].hex()[:3] == "abc"][:5]
    assert make_snapshot(1, ((k, b"") for k in crowded), max_records=4) is None
    assert make_snapshot(1, ((k, b"") for k in crowded), max_records=5) is not None


@settings(max_examples=150)
@given(records_st, st.sampled_from([1, 3, 8, 200]))
def test_an_offer_read_off_the_state_tree_is_the_hashed_one(records: dict[bytes, bytes],
                                                           chunk_records: int) -> None:
    hashed = _snapshot(records, chunk_records).offer()
    tree = StateTree.from_items(records.items())
    read = make_snapshot(7, records.items(), max_records=chunk_records, tree=tree)
    assert read is not None and read.offer() == hashed and read.tree is None


@settings(max_examples=150)
@given(records_st, st.binary(max_size=3).map(lambda b: bytes(x & 0xF for x in b)))
def test_a_subtree_hash_is_that_of_the_keys_under_its_prefix(records: dict[bytes, bytes],
                                                            prefix: bytes) -> None:
    leaves = sorted(leaf_of(k, v) for k, v in records.items())
    under = [leaf for leaf in leaves if leaf[0].startswith(prefix)]
    tree = StateTree.from_items(records.items())
    assert tree.subtree_hash(prefix) == subtree_hash(len(prefix), under)


_deposit_events = st.builds(
    lambda index, digest, amends: Event("deposited", {"index": index, "digest": digest}
                                        | ({} if amends is None else {"amends": amends})),
    st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32),
    st.none() | st.integers(0, 2**64 - 1))
_other_events = st.builds(Event, st.sampled_from(["deposited", "noted", "x"]),
                          st.dictionaries(st.sampled_from(["index", "digest", "amends", "y"]),
                                          st.integers(0, 2**64 - 1) | st.binary(max_size=40),
                                          max_size=3))


@settings(max_examples=400)
@given(st.lists(_deposit_events | _other_events, max_size=2))
def test_the_evidence_fast_index_path_agrees_with_its_rule(events: list[Event]) -> None:
    """The fast path over result bytes gives exactly what `index_rule` gives, or
    declines (None) and leaves the entry to the rule. Counts that it did answer."""
    from tidechain.contracts import evidence

    result = cbor.encode(TxResult(True, tuple(events)).to_cbor())
    fast = evidence.index_rows_from_result(result)
    if fast is not None:  # the next test shows it answers for every real deposit
        assert fast == evidence.index_rule(events)


def test_the_fast_index_path_answered_for_real_deposits(chain_store: Store) -> None:
    """Not vacuous: on a real chain's deposits the fast path answers every time."""
    from tidechain.contracts import evidence

    answered = amendments = 0
    for _, _, entries in _blocks(chain_store):
        for entry in entries:
            decoded = LogEntry.decode(entry)
            if decoded.tx.body.contract == "evidence" and decoded.result.ok:
                fast = evidence.index_rows_from_result(skim_entry(entry).result)
                assert fast is not None and fast == evidence.index_rule(decoded.result.events)
                answered += 1
                amendments += decoded.tx.body.method == "amend"
    assert answered > 0 and amendments > 0
