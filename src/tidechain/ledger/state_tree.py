"""World-state commitment: a 16-ary Merkle radix tree over hashed keys (ADR 0003).

Every state key sits on the path given by the nibbles of SHA-256(key), so whoever
chooses keys cannot unbalance the tree. A subtree holding exactly one key is that
key's leaf, placed as high as it can sit (as in Jellyfish), so a tree of n random
keys is about log16(n) + 1 levels deep.

Hashing rules (ADR 0003 is the normative text):

* key_hash   = SHA-256(key)
* value_hash = SHA-256(value)
* leaf       = SHA-256(0x10 || key_hash || value_hash)
* internal   = SHA-256(0x11 || bitmap || hashes of the non-empty children in index
  order), bitmap being 2 bytes big-endian with bit i (value 1 << i) set when child i
  is non-empty; an internal node always holds two or more keys
* root       = the top node's hash, or EMPTY_ROOT (32 zero bytes) for no keys

A batch is computed against the committed tree without touching it (`stage`), and
committed later (`commit`) or simply dropped: that is how the consensus layer gets
the state root of a proposed block before the block is decided.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TypeAlias, cast

from tidechain.core.errors import (
    DecodeError,
    InvariantViolation,
    ProofError,
    TooLarge,
    invariant,
)

HASH_BYTES = 32
RADIX = 16
KEY_HASH_NIBBLES = 2 * HASH_BYTES
"""Levels a path can have: two distinct key hashes differ within 64 nibbles."""

LEAF_PREFIX = b"\x10"
INTERNAL_PREFIX = b"\x11"
"""Domain bytes distinct from RFC 6962's 0x00/0x01, so no byte string hashed for the
state tree can also be a leaf or node of the transaction log."""

EMPTY_HASH = bytes(HASH_BYTES)
EMPTY_ROOT = EMPTY_HASH
"""Root of the empty tree, and the stand-in for an absent child in proofs and in the
code. No SHA-256 output is known to be zero, so it never stands for a real node."""

_BITMAP_BYTES = 2
_CHILDREN_OFFSET = 1 + _BITMAP_BYTES

PROOF_FORMAT_VERSION = 1
_LEVEL_HEADER_BYTES = 2
_LEAF_BYTES = 2 * HASH_BYTES
_MAX_STATE_PROOF_BYTES = (
    2 + KEY_HASH_NIBBLES * (_LEVEL_HEADER_BYTES + (RADIX - 1) * HASH_BYTES) + 1 + _LEAF_BYTES
)
"""Worst case, a 64-level path with every sibling present: 30,915 bytes. In a tree of
a million random keys a proof is about 6 levels and 2.3 KiB."""

_READ_CACHE_MAX = 4096
"""Values a tree keeps from recent reads (`StateTree.get`): many times a block's few
hot keys, a few hundred KiB at most."""

NODE_CACHE_NODES = 200_000
"""Node records a tree the store keeps holds in memory: about 60 MiB. The levels down to
level 4 (69,905 nodes at most) are never evicted; recent other nodes fill the rest."""

_TERMINAL_EMPTY = 0
_TERMINAL_LEAF = 1

# hashlib.sha256 directly rather than core.crypto.sha256: a batch hashes ~25,000
# times and the extra call is a measurable share of its budget.
_sha256 = hashlib.sha256


# --- hashing rules -----------------------------------------------------------------


def _key_hash(key: bytes) -> bytes:
    return _sha256(key).digest()


def _leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + key_hash + value_hash).digest()


def _internal_record(child_hashes: Iterable[bytes]) -> bytes:
    """The internal node's hash preimage from all 16 children, EMPTY_HASH for none."""
    bitmap = 0
    present = []
    for nibble, child_hash in enumerate(child_hashes):
        if child_hash != EMPTY_HASH:
            bitmap |= 1 << nibble
            present.append(child_hash)
    return INTERNAL_PREFIX + bitmap.to_bytes(_BITMAP_BYTES, "big") + b"".join(present)


def _internal_hash(child_hashes: Iterable[bytes]) -> bytes:
    return _sha256(_internal_record(child_hashes)).digest()


_HEX_TO_NIBBLE = bytes.maketrans(b"0123456789abcdef", bytes(range(RADIX)))


def _path_nibbles(key_hash: bytes) -> bytes:
    """The key's 64 branch indices, one byte (0-15) each, high nibble of a byte first."""
    return key_hash.hex().encode().translate(_HEX_TO_NIBBLE)


# --- storage layout ----------------------------------------------------------------
#
# The tree is a flat dict from a node's position to its record, bytes to bytes.
# A position is the node's path from the root, one byte (0-15) per level: b"" for the
# root. CPython's cycle collector never tracks such a dict, so the tree costs the
# collector nothing. Linked node objects (classes, or even tuples that the collector
# untracks lazily) measured 0.1-0.3 s per full collection at 1M keys, every few
# blocks (ADR 0003). The map holds exactly the nodes of the canonical tree.
#
# Each record is its node's hash preimage, so storing it costs nothing extra:
#
# internal record = 0x11 || bitmap || present child hashes   hash = SHA-256(record)
# leaf record     = 0x10 || key_hash || value_hash           hash = SHA-256(record[:65])
#
# A leaf holds no value (ADR 0023): the tree reads values by key, from its own map in
# memory or from the store's state rows. A store written before ADR 0023 may still hold
# leaves with the value after the preimage: only record[:65] is ever read.

_INTERNAL_TAG = INTERNAL_PREFIX[0]
_LEAF_PREIMAGE_BYTES = 1 + 2 * HASH_BYTES

_NodeMap: TypeAlias = "dict[bytes, bytes]"

_Subtree: TypeAlias = "tuple[bytes, bytes] | None"
"""A subtree's (hash, top record), or None when it holds no key."""

_Change: TypeAlias = "tuple[bytes, bytes, bytes]"
"""(path nibbles, leaf hash, leaf record) of a write, (path nibbles, b"", b"") of a
delete (no record is empty). Batches are sorted by path, which is key hash order."""

_change_path = itemgetter(0)


def _with_child(record: bytes, nibble: int, child_hash: bytes) -> bytes:
    """The internal record with child `nibble` set to the non-empty `child_hash`."""
    bitmap = (record[1] << 8) | record[2]
    start = _CHILDREN_OFFSET + HASH_BYTES * (bitmap & ((1 << nibble) - 1)).bit_count()
    if bitmap >> nibble & 1:
        return record[:start] + child_hash + record[start + HASH_BYTES :]
    bitmap |= 1 << nibble
    head = INTERNAL_PREFIX + bitmap.to_bytes(_BITMAP_BYTES, "big")
    return head + record[_CHILDREN_OFFSET:start] + child_hash + record[start:]


def _without_child(record: bytes, nibble: int) -> bytes:
    """The internal record with child `nibble` absent."""
    bitmap = (record[1] << 8) | record[2]
    if not bitmap >> nibble & 1:
        return record
    start = _CHILDREN_OFFSET + HASH_BYTES * (bitmap & ((1 << nibble) - 1)).bit_count()
    head = INTERNAL_PREFIX + (bitmap ^ (1 << nibble)).to_bytes(_BITMAP_BYTES, "big")
    return head + record[_CHILDREN_OFFSET:start] + record[start + HASH_BYTES :]


def _has_child(record: bytes, nibble: int) -> bool:
    """Whether the internal `record` has a child at `nibble`. In the canonical tree a
    node exists exactly where its parent's bitmap says, so a walk that asks first
    skips the lookup of an empty slot: for a tree the store keeps, a SQLite query per
    inserted key (measured, 5.9% of one validator's main thread)."""
    return bool(((record[1] << 8) | record[2]) >> nibble & 1)


def _child_hashes(record: bytes) -> list[bytes]:
    """All 16 children of an internal record, EMPTY_HASH for an absent one."""
    bitmap = (record[1] << 8) | record[2]
    child_hashes = [EMPTY_HASH] * RADIX
    start = _CHILDREN_OFFSET
    for nibble in range(RADIX):
        if bitmap >> nibble & 1:
            child_hashes[nibble] = record[start : start + HASH_BYTES]
            start += HASH_BYTES
    return child_hashes


def _leaf_change(key: bytes, value: bytes | None) -> _Change:
    key_hash = _sha256(key).digest()
    path = _path_nibbles(key_hash)
    if value is None:
        return path, b"", b""
    preimage = LEAF_PREFIX + key_hash + _sha256(value).digest()
    return path, _sha256(preimage).digest(), preimage


def _leaf_of_record(record: bytes) -> _Change:
    """The existing leaf `record` as a change that rewrites it unchanged (a leaf
    from before ADR 0023 loses the value it carried)."""
    preimage = record[:_LEAF_PREIMAGE_BYTES]
    return _path_nibbles(preimage[1 : 1 + HASH_BYTES]), _sha256(preimage).digest(), preimage


def _non_empty(subtree: _Subtree) -> tuple[bytes, bytes]:
    """A subtree that writes alone produced, hence holding at least one key."""
    if subtree is None:
        raise InvariantViolation("writes produced an empty subtree")
    return subtree


_SCAN_SPLIT_MAX = 8
"""Up to this many changes a linear scan is cheaper than binary searches (measured)."""


def _split_by_nibble(changes: list[_Change], depth: int) -> list[list[_Change]]:
    """Group changes (sorted, sharing `depth` nibbles) by their nibble at `depth`.

    Long lists by binary search for each group's end: a rebuild splits a million keys
    at each of the top levels, where a scan in Python costs about a second per level.
    """
    count = len(changes)
    if count <= _SCAN_SPLIT_MAX:
        return _split_by_scan(changes, depth)
    prefix = changes[0][0][:depth]
    groups: list[list[_Change]] = []
    start = 0
    while start < count:
        nibble = changes[start][0][depth]
        end = count
        if nibble < RADIX - 1:
            boundary = prefix + bytes((nibble + 1,))
            end = bisect_left(changes, boundary, start, count, key=_change_path)
        groups.append(changes[start:end])
        start = end
    return groups


def _split_by_scan(changes: list[_Change], depth: int) -> list[list[_Change]]:
    groups: list[list[_Change]] = []
    current = -1
    for change in changes:
        nibble = change[0][depth]
        if nibble == current:
            groups[-1].append(change)
        else:
            groups.append([change])
            current = nibble
    return groups


class _Batch:
    """One batch of changes computed against a node map that it never modifies.

    `writes` collects the new record for every position the batch touches (None to
    remove a node); `update` returns the subtree for a position and leaves writing
    that position itself to its caller, who alone knows whether the subtree stays
    there or, being a lone leaf, moves up.
    """

    __slots__ = ("nodes", "size_delta", "writes")

    def __init__(self, nodes: _NodeMap | StoredNodes) -> None:
        self.nodes = nodes
        self.writes: dict[bytes, bytes | None] = {}
        self.size_delta = 0

    def update(self, position: bytes, changes: list[_Change]) -> _Subtree:
        record = self.nodes.get(position)
        if record is None:
            return self._build(len(position), self._inserts(changes))
        if record[0] != _INTERNAL_TAG:
            return self._update_leaf(record, len(position), changes)
        if len(changes) == 1 and changes[0][2]:
            return self._write_one(position, record, changes[0])
        return self._update_internal(position, record, changes)

    def _inserts(self, changes: list[_Change]) -> list[_Change]:
        """The writes among changes to a position that holds nothing yet."""
        writes = [change for change in changes if change[2]]
        self.size_delta += len(writes)
        return writes

    def _update_leaf(self, record: bytes, depth: int, changes: list[_Change]) -> _Subtree:
        """Merge changes into a subtree that so far held the one leaf `record`."""
        key_path = changes[0][0]
        if len(changes) == 1 and key_path == _path_nibbles(record[1 : 1 + HASH_BYTES]):
            if not changes[0][2]:  # the leaf's own key is deleted
                self.size_delta -= 1
                return None
            return changes[0][1], changes[0][2]  # overwritten in place
        merged = {change[0]: change for change in [_leaf_of_record(record), *changes]}
        for path, _, leaf_record in changes:
            if not leaf_record:
                del merged[path]
        self.size_delta += len(merged) - 1
        return self._build(depth, sorted(merged.values(), key=_change_path))

    def _build(self, depth: int, writes: list[_Change]) -> _Subtree:
        """The canonical subtree at `depth` holding exactly `writes` (sorted, no deletes)."""
        if not writes:
            return None
        if len(writes) == 1:
            _, leaf_hash, leaf_record = writes[0]
            return leaf_hash, leaf_record
        invariant(depth < KEY_HASH_NIBBLES, "two keys with the same key hash")
        bitmap = 0
        present = []
        for group in _split_by_nibble(writes, depth):  # in nibble order
            child_position = group[0][0][: depth + 1]
            if len(group) == 1:  # a leaf: most groups, inlined for rebuild speed
                _, child_hash, child_record = group[0]
            else:
                child_hash, child_record = _non_empty(self._build(depth + 1, group))
            self.writes[child_position] = child_record
            bitmap |= 1 << child_position[depth]
            present.append(child_hash)
        record = INTERNAL_PREFIX + bitmap.to_bytes(_BITMAP_BYTES, "big") + b"".join(present)
        return _sha256(record).digest(), record

    def _write_one(self, position: bytes, record: bytes, change: _Change) -> _Subtree:
        """A lone write below an internal node: walk down, then rehash upwards.

        Below the top three levels nearly every touched node sees one change, so this
        loop carries most of a batch. A write only adds keys, so no node on the way
        can fall under two keys and nothing collapses.
        """
        path = change[0]
        depth = len(position)
        trail: list[bytes] = []
        child: bytes | None = record
        while child is not None and child[0] == _INTERNAL_TAG:
            trail.append(child)
            depth += 1
            child = self.nodes.get(path[:depth]) if _has_child(child, path[depth - 1]) else None
        if child is None:
            self.size_delta += 1
            subtree = (change[1], change[2])
        else:
            subtree = _non_empty(self._update_leaf(child, depth, [change]))
        for parent in reversed(trail):
            self.writes[path[:depth]] = subtree[1]
            depth -= 1
            parent = _with_child(parent, path[depth], subtree[0])
            subtree = (_sha256(parent).digest(), parent)
        return subtree

    def _update_internal(self, position: bytes, record: bytes, changes: list[_Change]) -> _Subtree:
        depth = len(position)
        for group in _split_by_nibble(changes, depth):
            child_position = group[0][0][: depth + 1]
            if _has_child(record, child_position[depth]):
                child = self.update(child_position, group)
            else:
                child = self._build(depth + 1, self._inserts(group))
            if child is None:
                record = _without_child(record, child_position[depth])
                self.writes[child_position] = None
            else:
                record = _with_child(record, child_position[depth], child[0])
                self.writes[child_position] = child[1]
        return self._canonical(position, record)

    def _canonical(self, position: bytes, record: bytes) -> _Subtree:
        """The internal node `record`, or what replaces it when, after deletions, it
        holds fewer than two keys: nothing, or its lone leaf, which moves up here.

        A lone internal child stays where it is: below it are still two or more keys.
        """
        bitmap = (record[1] << 8) | record[2]
        if bitmap == 0:
            return None
        if bitmap.bit_count() > 1:
            return _sha256(record).digest(), record
        only_position = position + bytes((bitmap.bit_length() - 1,))
        only = self.writes.get(only_position) or self.nodes[only_position]
        if only[0] == _INTERNAL_TAG:
            return _sha256(record).digest(), record
        self.writes[only_position] = None
        # A leaf from before ADR 0023 moves up without the value it carried.
        return record[_CHILDREN_OFFSET:], only[:_LEAF_PREIMAGE_BYTES]


# --- the tree ----------------------------------------------------------------------


@dataclass(frozen=True)
class StagedBatch:
    """A batch computed against one committed root and not applied: `root` is the
    state root the block would have. Commit it with `StateTree.commit` or drop it."""

    base_root: bytes
    root: bytes
    size: int
    _writes: dict[bytes, bytes | None] = field(repr=False, compare=False)
    changes: dict[bytes, bytes | None] = field(default_factory=dict, repr=False,
                                               compare=False)
    """The values the batch puts (None: deletes), by key, copied when staged: what a
    commit gives the tree's value map and drops from its read cache, and what the store
    writes as state rows (`PreparedBlock.writes`)."""

    @property
    def node_writes(self) -> Mapping[bytes, bytes | None]:
        """The tree's node records the batch puts (None: removes), by position: what a
        store keeping the tree's nodes writes with the block (`StateTree.stored`)."""
        return self._writes


class StoredNodes:
    """The nodes of a tree whose store keeps them (`StateTree.stored`): read through a
    bounded cache, so that memory does not grow with the state (ADR 0021).

    A commit's writes reach the store only when the shell carries out the block's write
    effect, after the core's step that committed it (ADR 0020). Until then they are
    *pinned* here, never evicted, since the store's copy is still the old one; the core
    calls `settle` at the start of its next step, when every earlier step's writes are
    durable, and they become ordinary cache entries.

    The top levels are never evicted: every insert walks through them, and the cache,
    cleared whole when full, used to drop them with the leaves, so each block read them
    back from SQLite (measured at 2 million keys: staging a block 25 µs per deposit
    against 11 at 200,000). Those levels hold at most `upper_nodes(levels)` nodes, and
    the levels kept are the most that fit in half of `limit`; the rest of `limit` bounds
    the other nodes."""

    __slots__ = ("_clean", "_limit", "_load", "_pinned", "_upper", "_upper_levels")

    def __init__(self, load: Callable[[bytes], bytes | None], limit: int) -> None:
        self._load = load
        self._upper_levels = kept_levels(limit)
        self._limit = limit - upper_nodes(self._upper_levels)
        self._pinned: dict[bytes, bytes | None] = {}  # None: removed, not yet stored
        self._upper: dict[bytes, bytes] = {}  # positions of at most _upper_levels nibbles
        self._clean: dict[bytes, bytes] = {}

    def get(self, position: bytes) -> bytes | None:
        pinned = self._pinned
        if position in pinned:
            return pinned[position]
        if len(position) <= self._upper_levels:
            record = self._upper.get(position)
            if record is None:
                record = self._load(position)
                if record is not None:
                    self._upper[position] = record
            return record
        record = self._clean.get(position)
        if record is None:
            record = self._load(position)
            if record is not None:
                self._keep(position, record)
        return record

    def __getitem__(self, position: bytes) -> bytes:
        record = self.get(position)
        invariant(record is not None, f"state tree node at {position.hex()} is not stored")
        assert record is not None
        return record

    def write(self, writes: Mapping[bytes, bytes | None]) -> None:
        self._pinned.update(writes)

    def settle(self) -> None:
        if not self._pinned:
            return
        pinned, self._pinned = self._pinned, {}
        upper, levels = self._upper, self._upper_levels
        deep: dict[bytes, bytes | None] = {}
        for position, record in pinned.items():
            if len(position) > levels:
                deep[position] = record
            elif record is None:
                upper.pop(position, None)
            else:
                upper[position] = record
        clean = self._clean
        if len(deep) > self._limit:  # more than the cache holds: keep what fits
            for position, record in deep.items():
                if record is None:
                    clean.pop(position, None)
                else:
                    self._keep(position, record)
            return
        # A block's few thousand writes at once, in C: a call of _keep for each was
        # 3-4% of a validator's main thread (py-spy --gil, four validators).
        if len(clean) + len(deep) > self._limit:
            clean.clear()
        clean.update(deep)  # type: ignore[arg-type]  # the None values go just below
        for position in [position for position, record in deep.items() if record is None]:
            del clean[position]

    def _keep(self, position: bytes, record: bytes) -> None:
        clean = self._clean
        if len(clean) >= self._limit:
            # A bound, not a policy: the hot upper levels are kept apart (`_upper`). A
            # dict is cleared in C; evicting one key at a time from its front would
            # scan the slots earlier deletions left (see node/seen.py).
            clean.clear()
        clean[position] = record


def upper_nodes(levels: int) -> int:
    """The most nodes a tree has at positions of at most `levels` nibbles (0 for -1)."""
    return sum(RADIX**level for level in range(levels + 1))


def kept_levels(limit: int) -> int:
    """The most levels from the root whose nodes all fit in half of `limit` (-1: not
    even the root): 4 levels (69,905 nodes) for NODE_CACHE_NODES."""
    levels = -1
    while upper_nodes(levels + 1) <= limit // 2:
        levels += 1
    return levels


class StateTree:
    """An authenticated map from bytes to bytes whose root goes into block headers."""

    __slots__ = ("_load_value", "_nodes", "_reads", "_root", "_size", "_values")

    def __init__(self) -> None:
        # In memory (a dict holding every node), or kept by the store (`stored`).
        self._nodes: _NodeMap | StoredNodes = {}
        # Values read recently, by key (None: absent). Every transaction reads the same
        # few records (its sender's membership, the CA, the revocation mark, the
        # contract's version), and a walk from the root costs a hash and five lookups:
        # measured, 13% of re-executing a block of deposits. `commit` drops the keys it
        # changes, so a cached value is always the tree's (tests/test_state_tree.py
        # checks it against `read`, the walk). Like the tree, used from one thread.
        self._reads: dict[bytes, bytes | None] = {}
        # Values by key, since leaves hold none (ADR 0023). A tree in memory keeps every
        # value here. A tree the store keeps reads them from the store's state rows with
        # `_load_value`, and keeps here only its commits' values (None: deleted) until
        # `settle`: the same window in which its node writes are pinned.
        self._values: dict[bytes, bytes | None] = {}
        self._load_value: Callable[[bytes], bytes | None] | None = None
        self._root = EMPTY_ROOT
        self._size = 0

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> StateTree:
        """Rebuild from the storage layer's key->value table (a later duplicate wins)."""
        tree = cls()
        tree.apply(dict(items))
        return tree

    @classmethod
    def stored(cls, load: Callable[[bytes], bytes | None],
               load_value: Callable[[bytes], bytes | None], size: int,
               cache_nodes: int = NODE_CACHE_NODES) -> StateTree:
        """The tree whose nodes a store keeps, read by position with `load` (None: no
        node there) through a cache of at most `cache_nodes` records; `load_value`
        reads the value of a key from the store's state rows (None: absent), which
        the store writes in the same transaction as the nodes; `size` is its key
        count, which the store keeps with the nodes. The store writes each block's
        `StagedBatch.node_writes` and `changes` with the block, and the core calls
        `settle` at the start of every step (see StoredNodes)."""
        tree = cls()
        nodes = StoredNodes(load, cache_nodes)
        tree._nodes = nodes
        tree._load_value = load_value
        top = nodes.get(b"")
        if top is not None:
            tree._root = (_sha256(top).digest() if top[0] == _INTERNAL_TAG
                          else _sha256(top[:_LEAF_PREIMAGE_BYTES]).digest())
        tree._size = size
        return tree

    def settle(self) -> None:
        """Every commit so far is durable in the store: its node writes may be evicted
        from the cache now (a no-op for a tree in memory)."""
        if isinstance(self._nodes, StoredNodes):
            self._nodes.settle()
            self._values.clear()

    def node_items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (position, record) of a tree in memory: what a store writes to keep it."""
        invariant(isinstance(self._nodes, dict), "node_items of a tree the store keeps")
        assert isinstance(self._nodes, dict)
        return iter(self._nodes.items())

    def root(self) -> bytes:
        """The 32-byte commitment to the whole content (EMPTY_ROOT when empty)."""
        return self._root

    def __len__(self) -> int:
        return self._size

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None (through the read cache). Read by
        key, without walking the tree: the value map and the store's state rows hold
        exactly the tree's keys (`read` is the walk, the reference)."""
        reads = self._reads
        if key in reads:
            return reads[key]
        value = self._value(key)
        if len(reads) >= _READ_CACHE_MAX:
            reads.clear()  # a bound, not a policy: the hot keys come back at once
        reads[key] = value
        return value

    def read(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None, walked from the root: the reference
        `get`'s cache must agree with."""
        key_hash = _key_hash(key)
        record = self._leaf_on_path(_path_nibbles(key_hash))
        if record is None or record[1 : 1 + HASH_BYTES] != key_hash:
            return None
        value = self._value(key)
        invariant(value is not None
                  and _sha256(value).digest() == record[1 + HASH_BYTES : _LEAF_PREIMAGE_BYTES],
                  f"the value of state key {key.hex()[:64]} is not its leaf's")
        return value

    def _value(self, key: bytes) -> bytes | None:
        values = self._values
        if key in values:
            return values[key]
        load = self._load_value
        return None if load is None else load(key)

    def stage(self, changes: Mapping[bytes, bytes | None]) -> StagedBatch:
        """Compute a batch (None deletes) against the committed tree, changing nothing.

        The result depends only on the batch's content, never on its iteration order.
        """
        ordered = sorted(
            (_leaf_change(key, value) for key, value in _checked(changes)), key=_change_path
        )
        if not ordered:
            return StagedBatch(self._root, self._root, self._size, {})
        batch = _Batch(self._nodes)
        subtree = batch.update(b"", ordered)
        batch.writes[b""] = None if subtree is None else subtree[1]
        root = EMPTY_ROOT if subtree is None else subtree[0]
        return StagedBatch(self._root, root, self._size + batch.size_delta, batch.writes,
                           dict(changes))

    def commit(self, staged: StagedBatch) -> bytes:
        """Apply a batch staged against the current root; return the new root."""
        invariant(staged.base_root == self._root, "staged batch is for another root")
        reads = self._reads
        values = self._values
        changes = staged.changes
        for key in changes:
            reads.pop(key, None)
        if isinstance(self._nodes, StoredNodes):
            self._nodes.write(staged._writes)
            values.update(changes)  # None too: deleted, though the store still has it
        else:
            _write_through(values, changes)  # a tree in memory holds exactly its values
            if self._nodes:
                _write_through(self._nodes, staged._writes)
            else:
                # A rebuild: the batch holds the whole tree and, on an empty base,
                # removes nothing but perhaps the root. Copying the dict in C is 10x a
                # Python loop.
                adopted = dict(staged._writes)
                if adopted.get(b"", b"") is None:
                    del adopted[b""]
                self._nodes = cast(_NodeMap, adopted)
        self._root = staged.root
        self._size = staged.size
        return self._root

    def apply(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Stage and commit a batch (None deletes; deleting an absent key does nothing)."""
        return self.commit(self.stage(changes))

    def preview_root(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """The root `apply(changes)` would give, leaving the tree unchanged."""
        return self.stage(changes).root

    def prove(self, key: bytes) -> StateProof:
        """A proof of `key`'s current value, or of its absence, against `root()`."""
        key_hash = _key_hash(key)
        path = _path_nibbles(key_hash)
        levels: list[tuple[bytes, ...]] = []
        record = self._nodes.get(b"")
        while record is not None and record[0] == _INTERNAL_TAG:
            nibble = path[len(levels)]
            siblings = _child_hashes(record)
            del siblings[nibble]
            levels.append(tuple(siblings))
            record = self._nodes.get(path[: len(levels)])
        leaf = None
        if record is not None:
            leaf = ProofLeaf(
                key_hash=record[1 : 1 + HASH_BYTES],
                value_hash=record[1 + HASH_BYTES : _LEAF_PREIMAGE_BYTES],
            )
        return StateProof(siblings=tuple(levels), leaf=leaf)

    def subtree_hash(self, prefix: bytes) -> bytes:
        """The hash of the canonical subtree holding exactly the keys whose paths start
        with `prefix` (nibbles, 0-15 each): read off the tree, nothing hashed but the
        one node found. EMPTY_HASH when no key has that prefix. A subtree of one key is
        that key's leaf, which may sit above `prefix` (as high as it can, ADR 0003);
        two or more keys always have an internal node exactly at `prefix`."""
        nodes = self._nodes
        for depth in range(len(prefix)):
            record = nodes.get(prefix[:depth])
            if record is None:
                return EMPTY_HASH
            if record[0] != _INTERNAL_TAG:  # a leaf above the prefix: in it or not
                inside = _path_nibbles(record[1 : 1 + HASH_BYTES]).startswith(prefix)
                return _sha256(record[:_LEAF_PREIMAGE_BYTES]).digest() if inside else EMPTY_HASH
        record = nodes.get(prefix)
        if record is None:
            return EMPTY_HASH
        if record[0] != _INTERNAL_TAG:
            return _sha256(record[:_LEAF_PREIMAGE_BYTES]).digest()
        return _sha256(record).digest()

    def _leaf_on_path(self, path: bytes) -> bytes | None:
        """The leaf record where `path` leaves the tree, or None at an empty slot."""
        nodes = self._nodes
        depth = 0
        record = nodes.get(b"")
        while record is not None and record[0] == _INTERNAL_TAG:
            depth += 1
            record = nodes.get(path[:depth]) if _has_child(record, path[depth - 1]) else None
        return record


def _write_through(target: dict[bytes, bytes] | dict[bytes, bytes | None],
                   writes: Mapping[bytes, bytes | None]) -> None:
    """Put each record, or remove its key where the write is None."""
    for key, record in writes.items():
        if record is None:
            target.pop(key, None)
        else:
            target[key] = record


def _checked(changes: Mapping[bytes, bytes | None]) -> Iterable[tuple[bytes, bytes | None]]:
    """Keys and values must be bytes: anything else is a bug in the caller."""
    for key, value in changes.items():
        if type(key) is not bytes or not (value is None or type(value) is bytes):
            invariant(False, "state keys are bytes and values are bytes or None")
        yield key, value


# --- proofs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofLeaf:
    """The leaf a proof path ends at: the key itself, or another key sharing the path."""

    key_hash: bytes
    value_hash: bytes


@dataclass(frozen=True)
class StateProof:
    """The path from the root towards SHA-256(key).

    `siblings[d]` holds the 15 other children of the internal node at depth d, in
    index order, EMPTY_HASH standing for an empty child. `leaf` is where the path
    stops: None for an empty slot (the key is absent), or a leaf that is either the
    key's own or another key's (then the key is absent).
    """

    siblings: tuple[tuple[bytes, ...], ...]
    leaf: ProofLeaf | None

    def to_bytes(self) -> bytes:
        """Canonical encoding (ADR 0003): version, depth, per level a bitmap of the
        non-empty siblings and their hashes, then the terminal."""
        _check_shape(self)
        parts = [bytes([PROOF_FORMAT_VERSION, len(self.siblings)])]
        for level in self.siblings:
            bitmap = 0
            present = []
            for position, sibling in enumerate(level):
                if sibling != EMPTY_HASH:
                    bitmap |= 1 << position
                    present.append(sibling)
            parts.append(bitmap.to_bytes(_LEVEL_HEADER_BYTES, "big"))
            parts.extend(present)
        if self.leaf is None:
            parts.append(bytes([_TERMINAL_EMPTY]))
        else:
            parts.extend((bytes([_TERMINAL_LEAF]), self.leaf.key_hash, self.leaf.value_hash))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> StateProof:
        """Decode the canonical encoding; anything else raises DecodeError or TooLarge."""
        return _ProofReader(data).read_proof()


class _ProofReader:
    """Strict cursor over an encoded StateProof: every byte is accounted for."""

    def __init__(self, data: bytes) -> None:
        if len(data) > _MAX_STATE_PROOF_BYTES:
            raise TooLarge(f"state proof of {len(data)} bytes exceeds {_MAX_STATE_PROOF_BYTES}")
        self._data = bytes(data)
        self._offset = 0

    def read_proof(self) -> StateProof:
        version, depth = self._take(2)
        if version != PROOF_FORMAT_VERSION:
            raise DecodeError(f"unknown state proof version {version}")
        if depth > KEY_HASH_NIBBLES:
            raise DecodeError(f"state proof depth {depth} exceeds {KEY_HASH_NIBBLES}")
        siblings = tuple(self._read_level() for _ in range(depth))
        leaf = self._read_terminal()
        if self._offset != len(self._data):
            raise DecodeError("trailing bytes after state proof")
        return StateProof(siblings=siblings, leaf=leaf)

    def _read_level(self) -> tuple[bytes, ...]:
        bitmap = int.from_bytes(self._take(_LEVEL_HEADER_BYTES), "big")
        if bitmap >> (RADIX - 1):
            raise DecodeError("state proof bitmap uses a sixteenth sibling")
        level = []
        for position in range(RADIX - 1):
            if bitmap >> position & 1:
                level.append(self._read_non_empty_hash())
            else:
                level.append(EMPTY_HASH)
        return tuple(level)

    def _read_non_empty_hash(self) -> bytes:
        digest = self._take(HASH_BYTES)
        if digest == EMPTY_HASH:
            raise DecodeError("state proof lists an empty sibling explicitly")
        return digest

    def _read_terminal(self) -> ProofLeaf | None:
        (tag,) = self._take(1)
        if tag == _TERMINAL_EMPTY:
            return None
        if tag == _TERMINAL_LEAF:
            return ProofLeaf(key_hash=self._take(HASH_BYTES), value_hash=self._take(HASH_BYTES))
        raise DecodeError(f"unknown state proof terminal tag {tag}")

    def _take(self, count: int) -> bytes:
        end = self._offset + count
        if end > len(self._data):
            raise DecodeError("state proof is truncated")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk


def _check_shape(proof: StateProof) -> None:
    """Reject a hand-built proof whose sizes cannot come from any tree."""
    if len(proof.siblings) > KEY_HASH_NIBBLES:
        raise ProofError(f"state proof deeper than {KEY_HASH_NIBBLES} levels")
    for level in proof.siblings:
        if len(level) != RADIX - 1 or any(len(h) != HASH_BYTES for h in level):
            raise ProofError("state proof level must hold 15 hashes of 32 bytes")
    leaf = proof.leaf
    if leaf is not None and (
        len(leaf.key_hash) != HASH_BYTES or len(leaf.value_hash) != HASH_BYTES
    ):
        raise ProofError("state proof leaf hashes must be 32 bytes")


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> None:
    """Raise ProofError unless `proof` shows that, under `root`, `key` holds `value`
    (or is absent when `value` is None)."""
    _check_shape(proof)
    key_hash = _key_hash(key)
    path = _path_nibbles(key_hash)
    node_hash = _terminal_hash(key_hash, value, proof)
    for depth in range(len(proof.siblings) - 1, -1, -1):
        level = proof.siblings[depth]
        nibble = path[depth]
        node_hash = _internal_hash((*level[:nibble], node_hash, *level[nibble:]))
    if node_hash != root:
        raise ProofError("state proof does not lead to the expected root")


def _terminal_hash(key_hash: bytes, value: bytes | None, proof: StateProof) -> bytes:
    """Hash of the node the path ends at, once it is shown to support the claim."""
    leaf = proof.leaf
    if leaf is None:
        if value is not None:
            raise ProofError("state proof shows the key is absent")
        return EMPTY_HASH
    if leaf.key_hash == key_hash:
        if value is None:
            raise ProofError("state proof shows the key is present")
        if leaf.value_hash != _sha256(value).digest():
            raise ProofError("state proof shows a different value for the key")
    else:
        if value is not None:
            raise ProofError("state proof shows the key is absent")
        if not _shares_path(leaf.key_hash, key_hash, len(proof.siblings)):
            raise ProofError("state proof ends at a leaf off the key's path")
    return _leaf_hash(leaf.key_hash, leaf.value_hash)


def _shares_path(a: bytes, b: bytes, nibbles: int) -> bool:
    return _path_nibbles(a)[:nibbles] == _path_nibbles(b)[:nibbles]
