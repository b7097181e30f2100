"""Tests for the world-state commitment (src/tidechain/ledger/state_tree.py, ADR 0003).

The optimised tree is checked against `reference_root`, a deliberately naive
rebuild-everything implementation written straight from the hashing rules in the
ADR, and against a plain dict as the model of the content.
"""

from __future__ import annotations

import ast
import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tidechain.core.errors import DecodeError, InvariantViolation, ProofError, TooLarge
from tidechain.ledger.state_tree import (
    EMPTY_ROOT,
    ProofLeaf,
    StagedBatch,
    StateProof,
    StateTree,
    StoredNodes,
    kept_levels,
    upper_nodes,
    verify_state_proof,
)

# --- the reference: the ADR's rules, with no cleverness -----------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(content: dict[bytes, bytes]) -> bytes:
    """Root of `content` computed from scratch, exactly as ADR 0003 states the rules."""
    entries = sorted((sha256(key), sha256(value)) for key, value in content.items())
    return _reference_subtree(entries, depth=0)


def _reference_subtree(entries: list[tuple[bytes, bytes]], depth: int) -> bytes:
    if not entries:
        return bytes(32)
    if len(entries) == 1:
        key_hash, value_hash = entries[0]
        return sha256(b"\x10" + key_hash + value_hash)
    bitmap = 0
    present = b""
    for index, digit in enumerate("0123456789abcdef"):
        below = [entry for entry in entries if entry[0].hex()[depth] == digit]
        if below:
            bitmap |= 1 << index
            present += _reference_subtree(below, depth + 1)
    return sha256(b"\x11" + bitmap.to_bytes(2, "big") + present)


def assert_node_map_is_exactly_the_tree(tree: StateTree) -> None:
    """Every stored record is reachable from the root, hashes agree, and every internal
    node holds two or more keys: no stale record can ever surface in a later walk."""
    nodes: dict[bytes, bytes] = tree._nodes
    reachable: set[bytes] = set()

    def visit(position: bytes) -> tuple[bytes, int]:  # (hash, keys below)
        record = nodes[position]
        reachable.add(position)
        if record[0] == 0x10:
            assert record[1:33].hex()[: len(position)] == position.hex()[1::2]
            return sha256(record[:65]), 1
        bitmap = int.from_bytes(record[1:3], "big")
        assert record[0] == 0x11 and len(record) == 3 + 32 * bin(bitmap).count("1")
        keys_below = 0
        hashes = iter(record[start : start + 32] for start in range(3, len(record), 32))
        for nibble in range(16):
            child = position + bytes([nibble])
            if not bitmap >> nibble & 1:
                assert child not in nodes
                continue
            got_hash, got_keys = visit(child)
            assert got_hash == next(hashes)
            keys_below += got_keys
        assert keys_below >= 2
        return sha256(record), keys_below

    if b"" in nodes:
        root_hash, key_count = visit(b"")
        assert (root_hash, key_count) == (tree.root(), len(tree))
    else:
        assert (tree.root(), len(tree)) == (EMPTY_ROOT, 0)
    assert reachable == set(nodes)


# --- keys -----------------------------------------------------------------------------

DEEP_KEYS = [b"deep-2113", b"deep-7693", b"deep-15232", b"deep-18296"]
"""SHA-256 prefixes 21e61eb1.., 21e61ec4.., 21ebe552.., 21ea0bc2..: the first two share
six nibbles, all four share two, so a tree of them has a chain of single-child
internal nodes under the root and leaves seven levels down."""

KEY_POOL = [b"", b"a", b"b", b"alice", b"bob", *[b"k%d" % i for i in range(20)], *DEEP_KEYS]

keys = st.sampled_from(KEY_POOL)
values = st.binary(max_size=8)
batches = st.dictionaries(keys, st.none() | values, max_size=8)
contents = st.dictionaries(keys, values, max_size=len(KEY_POOL))


def apply_to_model(model: dict[bytes, bytes], batch: dict[bytes, bytes | None]) -> None:
    for key, value in batch.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def assert_verifies(tree: StateTree, key: bytes, value: bytes | None) -> None:
    proof = tree.prove(key)
    verify_state_proof(tree.root(), key, value, proof)
    verify_state_proof(tree.root(), key, value, StateProof.from_bytes(proof.to_bytes()))


# --- model-based ----------------------------------------------------------------------


class StateTreeAgainstDict(RuleBasedStateMachine):
    """Random set/delete batches, previews and staged batches; the tree must track a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = StateTree()
        self.model: dict[bytes, bytes] = {}

    @rule(batch=batches)
    def apply_batch(self, batch: dict[bytes, bytes | None]) -> None:
        apply_to_model(self.model, batch)
        assert self.tree.apply(batch) == reference_root(self.model)

    @rule(batch=batches)
    def preview_leaves_tree_unchanged(self, batch: dict[bytes, bytes | None]) -> None:
        before = self.tree.root()
        expected_content = dict(self.model)
        apply_to_model(expected_content, batch)
        assert self.tree.preview_root(batch) == reference_root(expected_content)
        assert self.tree.root() == before

    @rule(batch=batches, decided=st.booleans())
    def staged_batch_is_committed_or_dropped(
        self, batch: dict[bytes, bytes | None], decided: bool
    ) -> None:
        before = self.tree.root()
        staged = self.tree.stage(batch)
        assert self.tree.root() == before
        expected_content = dict(self.model)
        apply_to_model(expected_content, batch)
        assert staged.root == reference_root(expected_content)
        if decided:
            assert self.tree.commit(staged) == staged.root
            self.model = expected_content

    @rule(key=keys)
    def proof_of_current_value(self, key: bytes) -> None:
        value = self.model.get(key)
        assert_verifies(self.tree, key, value)
        wrong = b"not-" + value if value is not None else b"x"
        with pytest.raises(ProofError):
            verify_state_proof(self.tree.root(), key, wrong, self.tree.prove(key))

    @invariant()
    def content_matches_model(self) -> None:
        assert_node_map_is_exactly_the_tree(self.tree)
        assert len(self.tree) == len(self.model)
        assert self.tree.root() == reference_root(self.model)
        for key in KEY_POOL:
            assert self.tree.get(key) == self.model.get(key)
            assert self.tree.read(key) == self.model.get(key)  # the walk, uncached


TestStateTreeAgainstDict = StateTreeAgainstDict.TestCase
TestStateTreeAgainstDict.settings = settings(max_examples=150, stateful_step_count=25)


def test_the_read_cache_never_answers_a_value_a_commit_changed() -> None:
    """`get` (cached) against `read` (walked from the root) over random batches on a
    small key space, so cached keys are changed, deleted and re-added all the time;
    dropped staged batches must not touch the cache either. Counts what it exercised."""
    rng = random.Random(17)
    pool = [bytes([i]) * (1 + i % 5) for i in range(40)]
    tree = StateTree()
    model: dict[bytes, bytes] = {}
    changed_while_cached = hits = 0
    for _ in range(400):
        batch: dict[bytes, bytes | None] = {}
        for key in rng.sample(pool, rng.randint(1, 8)):
            batch[key] = None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 6))
        staged = tree.stage(batch)
        if rng.random() < 0.2:
            continue  # dropped: nothing changes
        changed_while_cached += sum(1 for key in batch if key in tree._reads)
        tree.commit(staged)
        apply_to_model(model, batch)
        for key in rng.sample(pool, 20):
            hits += key in tree._reads
            assert tree.get(key) == tree.read(key) == model.get(key)
    assert changed_while_cached > 500 and hits > 1000, (changed_while_cached, hits)


def store_node_writes(disk: dict[bytes, bytes], staged: StagedBatch,
                      rows: dict[bytes, bytes]) -> None:
    """What the shell does with a committed batch: its node writes, into `disk`, and
    its values into the state `rows` (ADR 0023)."""
    for target, writes in ((disk, staged.node_writes), (rows, staged.changes)):
        for key, record in writes.items():
            if record is None:
                target.pop(key, None)
            else:
                target[key] = record


def test_a_tree_the_store_keeps_matches_the_tree_in_memory() -> None:
    """`StateTree.stored` over a dict standing in for the store, written only when the
    "shell" persists (sometimes after several commits, as a block sync does in one
    step), with a cache of 40 nodes so that evictions and reloads happen all the time:
    roots, sizes, values and proofs must equal the in-memory tree's after every commit
    and every settle, and a tree reopened from the store must too. Counts evictions."""
    rng = random.Random(23)
    pool = [rng.randbytes(rng.randint(1, 12)) for _ in range(300)]
    memory = StateTree()
    disk: dict[bytes, bytes] = {}
    rows: dict[bytes, bytes] = {}  # the store's state rows
    loads = 0

    def load(position: bytes) -> bytes | None:
        nonlocal loads
        loads += 1
        return disk.get(position)

    stored = StateTree.stored(load, rows.get, 0, cache_nodes=40)
    unstored: list[StagedBatch] = []
    for step in range(250):
        batch: dict[bytes, bytes | None] = {}
        for key in rng.sample(pool, rng.randint(1, 30)):
            batch[key] = None if rng.random() < 0.25 else rng.randbytes(rng.randint(0, 9))
        staged = stored.stage(batch)
        assert staged.root == memory.preview_root(batch)
        if rng.random() < 0.15:
            continue  # a block proposed and never committed
        memory.apply(batch)
        stored.commit(staged)
        unstored.append(staged)
        if rng.random() < 0.6:  # the shell carries out the writes, then the next step
            for done in unstored:
                store_node_writes(disk, done, rows)
            unstored = []
            stored.settle()
        assert stored.root() == memory.root() and len(stored) == len(memory)
        for key in rng.sample(pool, 15):
            assert stored.get(key) == stored.read(key) == memory.get(key)
            proof = stored.prove(key)
            assert proof == memory.prove(key)
            verify_state_proof(stored.root(), key, memory.get(key), proof)
        if not unstored and step % 25 == 0:
            reopened = StateTree.stored(disk.get, rows.get, len(memory))
            assert reopened.root() == memory.root()
            assert all(reopened.get(k) == memory.get(k) for k in pool)
    assert dict(memory.node_items()) == disk or unstored
    assert loads > 1000, loads


def test_the_top_levels_of_a_stored_tree_are_never_evicted() -> None:
    """A node cache of 40 keeps the root and level 1 (`kept_levels`, 17 nodes) apart
    from the cache it clears when full: once written, they are never loaded again,
    while deeper nodes are evicted and reloaded all the time. Both parts stay within
    their bounds, and the tree stays the tree in memory."""
    limit = 40
    levels = kept_levels(limit)
    assert levels == 1 and upper_nodes(levels) == 17
    rng = random.Random(5)
    disk: dict[bytes, bytes] = {}
    loads: dict[int, int] = {}

    def load(position: bytes) -> bytes | None:
        loads[len(position)] = loads.get(len(position), 0) + 1
        return disk.get(position)

    memory = StateTree()
    rows: dict[bytes, bytes] = {}
    stored = StateTree.stored(load, rows.get, 0, cache_nodes=limit)
    nodes = stored._nodes
    assert isinstance(nodes, StoredNodes)
    for step in range(150):
        batch: dict[bytes, bytes | None] = {rng.randbytes(8): rng.randbytes(4)
                                            for _ in range(rng.randint(1, 25))}
        staged = stored.stage(batch)
        stored.commit(staged)
        memory.apply(batch)
        store_node_writes(disk, staged, rows)
        stored.settle()
        if step == 9:
            loads.clear()  # the first blocks wrote the top levels
        assert stored.root() == memory.root()
        assert len(nodes._upper) <= upper_nodes(levels)
        assert len(nodes._clean) <= limit - upper_nodes(levels)
    assert len(nodes._upper) == upper_nodes(levels)  # 2,000 keys fill both levels
    assert all(loads.get(depth, 0) == 0 for depth in range(levels + 1)), loads
    assert sum(loads.values()) > 500, loads


# --- root is a function of the content ------------------------------------------------


@settings(max_examples=150)
@given(content=contents, data=st.data())
def test_root_depends_only_on_content(content: dict[bytes, bytes], data: st.DataObject) -> None:
    order = data.draw(st.permutations(sorted(content)))
    cut_points = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=4)))
    tree = StateTree()
    start = 0
    for end in [*cut_points, len(order)]:
        tree.apply({key: content[key] for key in order[start:end]})
        start = max(start, end)
    assert tree.root() == reference_root(content)
    assert tree.root() == StateTree.from_items(content.items()).root()
    assert len(tree) == len(content)


@settings(max_examples=100)
@given(content=contents, doomed=st.lists(keys))
def test_deleting_back_gives_the_smaller_content_root(
    content: dict[bytes, bytes], doomed: list[bytes]
) -> None:
    tree = StateTree.from_items(content.items())
    tree.apply(dict.fromkeys(doomed))
    remaining = {k: v for k, v in content.items() if k not in doomed}
    assert tree.root() == reference_root(remaining)
    assert len(tree) == len(remaining)
    assert_node_map_is_exactly_the_tree(tree)


def test_empty_tree_root_is_the_documented_constant() -> None:
    assert StateTree().root() == EMPTY_ROOT == bytes(32)
    assert StateTree().apply({}) == EMPTY_ROOT
    assert StateTree().apply({b"absent": None}) == EMPTY_ROOT


PINNED_ROOTS = [
    ([(b"alice", b"100")], "c0df753d5cc87d9912c8d4735bb84b491e2597a62e89b85ab122542f089996d8"),
    (
        [(b"alice", b"100"), (b"bob", b"")],
        "e1b9f7d29c59b302082503655d1e8a398c5871b8302261e00a623f9503c824ea",
    ),
    (
        [(key, key) for key in DEEP_KEYS],
        "1df0a60c2e9bd76247c37ae9b760407db1d533febe45bd0877899307b130732d",
    ),
]
"""The vectors printed in ADR 0003, for implementations in other languages."""


@pytest.mark.parametrize(("items", "root_hex"), PINNED_ROOTS)
def test_pinned_roots(items: list[tuple[bytes, bytes]], root_hex: str) -> None:
    assert StateTree.from_items(items).root().hex() == root_hex
    assert reference_root(dict(items)).hex() == root_hex


def test_deep_keys_share_the_documented_prefixes() -> None:
    prefixes = [sha256(key).hex()[:8] for key in DEEP_KEYS]
    assert prefixes == ["21e61eb1", "21e61ec4", "21ebe552", "21ea0bc2"]


def test_collapse_after_deleting_deep_neighbours() -> None:
    tree = StateTree.from_items((key, b"v") for key in DEEP_KEYS)
    assert len(tree.prove(DEEP_KEYS[0]).siblings) == 7  # branch at nibble 6
    tree.apply({DEEP_KEYS[1]: None, DEEP_KEYS[2]: None, DEEP_KEYS[3]: None})
    assert tree.root() == reference_root({DEEP_KEYS[0]: b"v"})
    assert tree.prove(DEEP_KEYS[0]).siblings == ()


def test_values_may_be_empty_and_differ_from_absent() -> None:
    tree = StateTree.from_items([(b"k", b"")])
    assert tree.get(b"k") == b""
    assert tree.root() != EMPTY_ROOT
    assert_verifies(tree, b"k", b"")
    with pytest.raises(ProofError):
        verify_state_proof(tree.root(), b"k", None, tree.prove(b"k"))


def test_empty_inputs() -> None:
    assert StateTree.from_items([]).root() == EMPTY_ROOT
    tree = StateTree.from_items([(b"k", b"v")])
    staged = tree.stage({})
    assert staged.root == staged.base_root == tree.root()
    tree.commit(staged)
    assert (len(tree), tree.get(b"k")) == (1, b"v")
    assert_node_map_is_exactly_the_tree(tree)


def test_from_items_keeps_the_later_duplicate() -> None:
    tree = StateTree.from_items([(b"k", b"old"), (b"k", b"new")])
    assert tree.get(b"k") == b"new"
    assert len(tree) == 1


def test_non_bytes_input_is_our_bug() -> None:
    with pytest.raises(InvariantViolation):
        StateTree().apply({"text": b"v"})  # type: ignore[dict-item]
    with pytest.raises(InvariantViolation):
        StateTree().apply({b"k": bytearray(b"v")})  # type: ignore[dict-item]


def test_commit_refuses_a_batch_staged_on_another_root() -> None:
    tree = StateTree.from_items([(b"a", b"1")])
    first = tree.stage({b"b": b"2"})
    second = tree.stage({b"a": None})
    tree.commit(first)
    with pytest.raises(InvariantViolation):
        tree.commit(second)
    assert tree.root() == reference_root({b"a": b"1", b"b": b"2"})
    assert (len(tree), tree.get(b"a")) == (2, b"1")


def test_dropping_a_staged_batch_leaves_no_trace() -> None:
    content = {b"key-%d" % i: b"v" for i in range(300)}
    tree = StateTree.from_items(content.items())
    before = tree.root()
    staged = tree.stage({b"key-%d" % i: None for i in range(0, 300, 2)} | {b"new": b"n"})
    assert staged.root != before
    del staged
    assert tree.root() == before == reference_root(content)
    assert all(tree.get(key) == b"v" for key in content) and tree.get(b"new") is None


def test_larger_tree_rebuild_incremental_and_deletes_agree() -> None:
    content = {b"key-%d" % i: b"value-%d" % i for i in range(3000)}
    incremental = StateTree()
    items = sorted(content.items(), reverse=True)
    for start in range(0, len(items), 700):
        incremental.apply(dict(items[start : start + 700]))
    rebuilt = StateTree.from_items(content.items())
    assert incremental.root() == rebuilt.root() == reference_root(content)
    assert_node_map_is_exactly_the_tree(incremental)
    assert_node_map_is_exactly_the_tree(rebuilt)
    doomed = {key: None for key in sorted(content)[::3]}
    rebuilt.apply(doomed)
    remaining = {k: v for k, v in content.items() if k not in doomed}
    assert rebuilt.root() == reference_root(remaining)
    assert_node_map_is_exactly_the_tree(rebuilt)


# --- proofs ---------------------------------------------------------------------------

PROOF_TREE_CONTENT = {b"key-%d" % i: b"value-%d" % i for i in range(500)} | {
    key: key for key in DEEP_KEYS
}
PROOF_TREE = StateTree.from_items(PROOF_TREE_CONTENT.items())
proof_keys = st.sampled_from(sorted(PROOF_TREE_CONTENT)) | st.binary(max_size=12)


@settings(max_examples=200)
@given(key=proof_keys)
def test_proofs_verify_for_present_and_absent_keys(key: bytes) -> None:
    assert_verifies(PROOF_TREE, key, PROOF_TREE_CONTENT.get(key))


@settings(max_examples=100)
@given(key=proof_keys, other_value=st.binary(max_size=12))
def test_proofs_reject_a_wrong_value(key: bytes, other_value: bytes) -> None:
    value = PROOF_TREE_CONTENT.get(key)
    proof = PROOF_TREE.prove(key)
    for claim in (other_value, None):
        if claim != value:
            with pytest.raises(ProofError):
                verify_state_proof(PROOF_TREE.root(), key, claim, proof)


@settings(max_examples=100)
@given(key=proof_keys, other=proof_keys)
def test_proofs_reject_a_wrong_key(key: bytes, other: bytes) -> None:
    value = PROOF_TREE_CONTENT.get(key)
    if other == key or (PROOF_TREE_CONTENT.get(other) is None and value is None):
        return  # two absent keys may share a non-membership proof: that is sound
    with pytest.raises(ProofError):
        verify_state_proof(PROOF_TREE.root(), other, value, PROOF_TREE.prove(key))


def test_proofs_reject_a_wrong_root() -> None:
    proof = PROOF_TREE.prove(b"key-7")
    for root in (EMPTY_ROOT, sha256(b"x"), PROOF_TREE.root()[:31]):
        with pytest.raises(ProofError):
            verify_state_proof(root, b"key-7", b"value-7", proof)


@settings(max_examples=300)
@given(key=proof_keys, data=st.data())
def test_any_single_bit_flip_in_an_encoded_proof_is_rejected(
    key: bytes, data: st.DataObject
) -> None:
    encoded = PROOF_TREE.prove(key).to_bytes()
    bit = data.draw(st.integers(0, 8 * len(encoded) - 1))
    tampered = bytearray(encoded)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((DecodeError, ProofError)):
        proof = StateProof.from_bytes(bytes(tampered))
        verify_state_proof(PROOF_TREE.root(), key, PROOF_TREE_CONTENT.get(key), proof)


def test_tampered_proof_objects_are_rejected() -> None:
    key = DEEP_KEYS[0]
    proof = PROOF_TREE.prove(key)
    root = PROOF_TREE.root()
    assert proof.leaf is not None
    variants = [
        StateProof(siblings=proof.siblings[1:], leaf=proof.leaf),  # a level dropped
        StateProof(siblings=(*proof.siblings, proof.siblings[-1]), leaf=proof.leaf),
        StateProof(siblings=proof.siblings, leaf=None),  # claims an empty slot
        StateProof(siblings=proof.siblings, leaf=ProofLeaf(sha256(b"x"), proof.leaf.value_hash)),
        StateProof(siblings=((sha256(b"x"),) * 15, *proof.siblings[1:]), leaf=proof.leaf),
        StateProof(siblings=((b"short",) * 15,), leaf=proof.leaf),  # malformed shape
        StateProof(siblings=(proof.siblings[0][:14],), leaf=proof.leaf),
        StateProof(siblings=((bytes(32),) * 15,) * 65, leaf=None),
    ]
    for variant in variants:
        with pytest.raises(ProofError):
            verify_state_proof(root, key, key, variant)


def test_non_membership_leaf_must_share_the_path() -> None:
    """A neighbour leaf off the key's path is refused even before hashing."""
    tree = StateTree.from_items([(b"only", b"1")])
    proof = tree.prove(b"missing")
    assert proof.siblings == () and proof.leaf is not None
    verify_state_proof(tree.root(), b"missing", None, proof)
    deep = StateTree.from_items((key, key) for key in DEEP_KEYS[:2])
    foreign = StateProof(siblings=deep.prove(DEEP_KEYS[0]).siblings, leaf=proof.leaf)
    with pytest.raises(ProofError, match="off the key's path"):
        verify_state_proof(deep.root(), DEEP_KEYS[2], None, foreign)


def test_empty_tree_proves_absence() -> None:
    proof = StateTree().prove(b"anything")
    assert proof == StateProof(siblings=(), leaf=None)
    assert proof.to_bytes() == b"\x01\x00\x00"
    verify_state_proof(EMPTY_ROOT, b"anything", None, proof)
    with pytest.raises(ProofError):
        verify_state_proof(EMPTY_ROOT, b"anything", b"", proof)


# --- proof encoding -------------------------------------------------------------------


@settings(max_examples=100)
@given(key=proof_keys)
def test_encoding_round_trips_and_is_bounded(key: bytes) -> None:
    proof = PROOF_TREE.prove(key)
    encoded = proof.to_bytes()
    assert StateProof.from_bytes(encoded) == proof
    assert len(encoded) <= 3 + 64 + len(proof.siblings) * (2 + 15 * 32)


def test_encoding_layout_of_a_one_level_proof() -> None:
    tree = StateTree.from_items([(b"alice", b"100"), (b"bob", b"")])
    proof = tree.prove(b"alice")
    encoded = proof.to_bytes()
    assert encoded[:2] == b"\x01\x01"  # version 1, one internal level
    bitmap = int.from_bytes(encoded[2:4], "big")
    assert bin(bitmap).count("1") == 1  # bob is the only sibling
    assert encoded[4:36] == sha256(b"\x10" + sha256(b"bob") + sha256(b""))
    assert encoded[36] == 1 and len(encoded) == 37 + 64
    assert encoded[37:69] == sha256(b"alice") and encoded[69:] == sha256(b"100")


PINNED_PROOFS = [
    (
        b"alice",
        "010100809afd447b03892ed897446f35029fa1d5a292e3261d4bad427673a450b98e2e7501"
        "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        "ad57366865126e55649ecb23ae1d48887544976efea46a48eb5d85a6eeb4d306",
    ),
    (
        b"carol",
        "01010084c0df753d5cc87d9912c8d4735bb84b491e2597a62e89b85ab122542f089996d8"
        "9afd447b03892ed897446f35029fa1d5a292e3261d4bad427673a450b98e2e7500",
    ),
]
"""The encoded proofs printed in ADR 0003 (tree: alice -> 100, bob -> empty value)."""


@pytest.mark.parametrize(("key", "proof_hex"), PINNED_PROOFS)
def test_pinned_proof_encodings(key: bytes, proof_hex: str) -> None:
    tree = StateTree.from_items([(b"alice", b"100"), (b"bob", b"")])
    assert tree.prove(key).to_bytes().hex() == proof_hex
    verify_state_proof(
        tree.root(), key, tree.get(key), StateProof.from_bytes(bytes.fromhex(proof_hex))
    )


@pytest.mark.parametrize(
    ("encoded", "error"),
    [
        (b"", DecodeError),
        (b"\x02\x00\x00", DecodeError),  # unknown version
        (b"\x01\x41\x00", DecodeError),  # deeper than 64 levels
        (b"\x01\x00\x02", DecodeError),  # unknown terminal tag
        (b"\x01\x00\x00\x00", DecodeError),  # trailing byte
        (b"\x01\x00\x01" + bytes(63), DecodeError),  # truncated leaf
        (b"\x01\x01\x80\x00\x00", DecodeError),  # sixteenth sibling bit
        (b"\x01\x01\x00\x01" + bytes(32) + b"\x00", DecodeError),  # explicit empty hash
        (b"\x01\x01\x00\x01" + b"\x01" * 31 + b"\x00", DecodeError),  # truncated hash
        (b"\x01" * 40_000, TooLarge),
    ],
)
def test_malformed_encodings_are_rejected(encoded: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        StateProof.from_bytes(encoded)


# --- purity ---------------------------------------------------------------------------


def test_module_imports_no_io_time_or_randomness() -> None:
    source = Path(__file__).resolve().parents[1] / "src/tidechain/ledger/state_tree.py"
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "time", "random", "os"}
