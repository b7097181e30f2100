"""World-state commitment: a 16-ary Merkle radix tree over hashed keys (ADR 0003).

Every state key is placed at the path given by the nibbles of SHA-256(key), so an
adversary who chooses keys cannot unbalance the tree. A subtree holding exactly one
key is stored as that key's leaf, as high up as it can sit (Jellyfish-style), so a
tree of n random keys is about log16(n) levels deep.

Hashing rules (the ADR is the normative text; these constants are the whole story):

* key_hash   = SHA-256(key)
* value_hash = SHA-256(value)
* leaf       = SHA-256(0x10 || key_hash || value_hash)
* internal   = SHA-256(0x11 || child_0 || ... || child_15), an empty child being
  EMPTY_HASH (32 zero bytes); an internal node always holds two or more keys.
* root       = hash of the top node; EMPTY_ROOT (32 zero bytes) for an empty tree.

Nodes are immutable and a batch copies only the paths it touches, so `copy()` is
O(1) and `preview_root()` computes a proposed block's state root without touching
the committed tree (the consensus layer drops it if the block is not committed).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, TypeAlias

from tidechain.core.errors import DecodeError, ProofError, TooLarge, invariant

HASH_BYTES = 32
RADIX = 16
KEY_HASH_NIBBLES = 2 * HASH_BYTES
"""Deepest possible internal level + 1: two distinct key hashes differ within 64 nibbles."""

LEAF_PREFIX = b"\x10"
INTERNAL_PREFIX = b"\x11"
"""Domain bytes distinct from RFC 6962's 0x00/0x01, so no byte string hashed for the
state tree can also be a node or leaf of the transaction log."""

EMPTY_HASH = bytes(HASH_BYTES)
EMPTY_ROOT = EMPTY_HASH
"""Root of the empty tree. SHA-256 has no known preimage of zero, so it never
collides with a real node."""

PROOF_FORMAT_VERSION = 1
_LEVEL_HEADER_BYTES = 2
_LEAF_BYTES = 2 * HASH_BYTES
_MAX_STATE_PROOF_BYTES = (
    2 + KEY_HASH_NIBBLES * (_LEVEL_HEADER_BYTES + (RADIX - 1) * HASH_BYTES) + 1 + _LEAF_BYTES
)
"""Worst case (a 64-level path, every sibling present): 30,915 bytes. Real proofs in a
tree of a million keys are 5-7 levels deep and about 2.5 KiB."""

_TERMINAL_EMPTY = 0
_TERMINAL_LEAF = 1

# hashlib.sha256 directly rather than core.crypto.sha256: a batch hashes ~25,000
# times and the extra call is a measurable share of the budget (ADR 0003).
_sha256 = hashlib.sha256


# --- hashing rules -----------------------------------------------------------------


def _key_hash(key: bytes) -> bytes:
    return _sha256(key).digest()


def _leaf_hash(key_hash: bytes, value_hash: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + key_hash + value_hash).digest()


def _internal_hash(child_hashes: Iterable[bytes]) -> bytes:
    return _sha256(INTERNAL_PREFIX + b"".join(child_hashes)).digest()


_HEX_TO_NIBBLE = bytes.maketrans(b"0123456789abcdef", bytes(range(RADIX)))


def _path_nibbles(key_hash: bytes) -> bytes:
    """All 64 branch indices of a key hash at once: `_path_nibbles(h)[d] == _nibble(h, d)`."""
    return key_hash.hex().encode().translate(_HEX_TO_NIBBLE)


def _nibble(key_hash: bytes, depth: int) -> int:
    """The branch taken at `depth`: high nibble of a byte first."""
    byte = key_hash[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


# --- nodes -------------------------------------------------------------------------
#
# Nodes are plain tuples, not class instances. CPython's cycle collector stops
# tracking a tuple once everything in it is untracked (bytes, or such tuples), so a
# tree of a million keys adds nothing to a full collection. With slotted classes a
# full collection took 3 s at 1M keys and struck every few dozen blocks (ADR 0003).
# Tuples also make the nodes immutable, which the O(1) snapshots rely on.

_Empty: TypeAlias = "tuple[bytes]"
"""(EMPTY_HASH,): an empty subtree; `_EMPTY` is the one instance."""

_Leaf: TypeAlias = "tuple[bytes, bytes, bytes]"
"""(leaf hash, key_hash, value): a subtree holding exactly one key."""

_Internal: TypeAlias = "tuple[bytes, tuple[_Node, ...]]"
"""(internal hash, 16 children): a subtree holding two or more keys."""

_Node: TypeAlias = "_Empty | _Leaf | _Internal"

_INTERNAL_LEN: Final = 2
_LEAF_LEN: Final = 3
_EMPTY: _Empty = (EMPTY_HASH,)

_Change: TypeAlias = "tuple[bytes, _Leaf | None]"
"""(key_hash, new leaf) for a write, (key_hash, None) for a delete."""

_change_key = itemgetter(0)
_node_hash = itemgetter(0)


def _new_leaf(key_hash: bytes, value: bytes) -> _Leaf:
    # The rule of _leaf_hash, inlined: a rebuild makes a million of these.
    value_hash = _sha256(value).digest()
    return (_sha256(LEAF_PREFIX + key_hash + value_hash).digest(), key_hash, value)


def _new_internal(children: list[_Node]) -> _Internal:
    # The rule of _internal_hash, inlined: a batch makes ~9,000 of these.
    frozen = tuple(children)
    return (_sha256(INTERNAL_PREFIX + b"".join(map(_node_hash, frozen))).digest(), frozen)


def _split_by_nibble(changes: list[_Change], depth: int) -> list[tuple[int, list[_Change]]]:
    """Group changes (sorted by key hash, sharing `depth` nibbles) by their next nibble."""
    if len(changes) <= _SCAN_SPLIT_MAX:
        return _split_by_scan(changes, depth)
    return _split_by_search(changes, depth)


_SCAN_SPLIT_MAX = 8
"""Below this a linear scan beats 16 binary searches (measured on rebuilds)."""


def _split_by_scan(changes: list[_Change], depth: int) -> list[tuple[int, list[_Change]]]:
    groups: list[tuple[int, list[_Change]]] = []
    current = -1
    for change in changes:
        nibble = _nibble(change[0], depth)
        if nibble != current:
            groups.append((nibble, [change]))
            current = nibble
        else:
            groups[-1][1].append(change)
    return groups


def _split_by_search(changes: list[_Change], depth: int) -> list[tuple[int, list[_Change]]]:
    """Binary search for each group's end: at startup the top levels split a million
    keys, and a scan in Python costs about a second per level."""
    byte_index = depth >> 1
    odd = depth & 1
    first = changes[0][0]
    prefix = first[:byte_index]
    high = first[byte_index] & 0xF0
    groups: list[tuple[int, list[_Change]]] = []
    start = 0
    count = len(changes)
    while start < count:
        nibble = _nibble(changes[start][0], depth)
        end = count
        if nibble < RADIX - 1:
            # The smallest key hash that takes the next branch at this depth.
            boundary = prefix + bytes([high | (nibble + 1) if odd else (nibble + 1) << 4])
            end = bisect_left(changes, boundary, start, count, key=_change_key)
        groups.append((nibble, changes[start:end]))
        start = end
    return groups


def _may_have_shrunk(old_child: _Node, new_child: _Node) -> bool:
    """Whether the parent may now hold fewer than two keys: only a deletion does that."""
    return new_child is _EMPTY or (len(new_child) == _LEAF_LEN and len(old_child) == _INTERNAL_LEN)


def _canonical_node(children: list[_Node]) -> _Node:
    """An internal node, or what replaces it when it holds fewer than two keys.

    A lone leaf moves up to its parent's slot; a lone internal child stays put,
    because below it there are still two or more keys sharing a longer prefix.
    """
    empty_count = children.count(_EMPTY)
    if empty_count == RADIX:
        return _EMPTY
    if empty_count == RADIX - 1:
        (only,) = (child for child in children if child is not _EMPTY)
        if len(only) == _LEAF_LEN:
            return only
    return _new_internal(children)


class _BatchUpdate:
    """Applies one sorted batch of changes to an immutable tree by path copying."""

    __slots__ = ("size_delta",)

    def __init__(self) -> None:
        self.size_delta = 0

    def update(self, node: _Node, depth: int, changes: list[_Change]) -> _Node:
        if len(changes) == 1:
            return self._update_one(node, depth, changes[0])
        if len(node) == _INTERNAL_LEN:
            return self._update_internal(node, depth, changes)
        if len(node) == _LEAF_LEN:
            return self._update_leaf(node, depth, changes)
        return self._insert_into_empty(depth, changes)

    def _update_internal(self, node: _Internal, depth: int, changes: list[_Change]) -> _Node:
        children = list(node[1])
        may_hold_one_key = False
        for nibble, group in _split_by_nibble(changes, depth):
            old_child = children[nibble]
            new_child = self.update(old_child, depth + 1, group)
            children[nibble] = new_child
            if _may_have_shrunk(old_child, new_child):
                may_hold_one_key = True
        if may_hold_one_key:
            return _canonical_node(children)
        return _new_internal(children)

    def _update_one(self, node: _Node, depth: int, change: _Change) -> _Node:
        """A lone change: walk down, then rehash the path upwards, without recursion.

        Below the top three levels nearly every touched node sees a single change,
        so this loop carries most of a batch (ADR 0003 has the measurements).
        """
        key_hash, new_leaf = change
        path_nibbles = _path_nibbles(key_hash)
        path: list[tuple[tuple[_Node, ...], int]] = []
        while len(node) == _INTERNAL_LEN:
            nibble = path_nibbles[depth]
            path.append((node[1], nibble))
            node = node[1][nibble]
            depth += 1
        if len(node) == _LEAF_LEN:
            new_node = self._update_leaf(node, depth, [change])
        else:
            new_node = self._insert_into_empty(depth, [change])
        # A write only adds keys, so no node on the path can drop under two keys; after
        # a delete any of them may, and then its last leaf moves up.
        rebuild = _new_internal if new_leaf is not None else _canonical_node
        for children, nibble in reversed(path):
            updated = list(children)
            updated[nibble] = new_node
            new_node = rebuild(updated)
        return new_node

    def _insert_into_empty(self, depth: int, changes: list[_Change]) -> _Node:
        writes = [change for change in changes if change[1] is not None]
        self.size_delta += len(writes)
        return _build(depth, writes)

    def _update_leaf(self, leaf: _Leaf, depth: int, changes: list[_Change]) -> _Node:
        """Merge changes into the subtree that so far held only `leaf`."""
        if len(changes) == 1 and changes[0][0] == leaf[1]:  # the common overwrite
            new_leaf = changes[0][1]
            if new_leaf is None:
                self.size_delta -= 1
                return _EMPTY
            return new_leaf
        merged: dict[bytes, _Leaf] = {leaf[1]: leaf}
        for key_hash, new_leaf in changes:
            if new_leaf is None:
                merged.pop(key_hash, None)
            else:
                merged[key_hash] = new_leaf
        self.size_delta += len(merged) - 1
        return _build(depth, sorted(merged.items(), key=_change_key))


def _build(depth: int, writes: list[_Change]) -> _Node:
    """The canonical subtree at `depth` holding exactly `writes` (sorted, no deletes)."""
    if not writes:
        return _EMPTY
    if len(writes) == 1:
        leaf = writes[0][1]
        invariant(leaf is not None, "a delete reached _build")
        return leaf or _EMPTY
    invariant(depth < KEY_HASH_NIBBLES, "two leaves with the same key hash")
    children: list[_Node] = [_EMPTY] * RADIX
    for nibble, group in _split_by_nibble(writes, depth):
        children[nibble] = _build(depth + 1, group)
    return _new_internal(children)


def _sorted_changes(changes: Mapping[bytes, bytes | None]) -> list[_Change]:
    """Hash and sort a batch, so the result never depends on the mapping's order."""
    hashed: list[_Change] = []
    for key, value in changes.items():
        if type(key) is not bytes or not (value is None or type(value) is bytes):
            invariant(False, "state keys are bytes and values are bytes or None")
        key_hash = _sha256(key).digest()
        hashed.append((key_hash, None if value is None else _new_leaf(key_hash, value)))
    hashed.sort(key=_change_key)
    return hashed


# --- the tree ----------------------------------------------------------------------


class StateTree:
    """An authenticated map from bytes to bytes whose root goes into block headers.

    Reads, proofs and snapshots are cheap; `apply` costs one hash per touched node.
    """

    __slots__ = ("_root", "_size")

    def __init__(self) -> None:
        self._root: _Node = _EMPTY
        self._size = 0

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, bytes]]) -> StateTree:
        """Rebuild from the storage layer's key->value table (a later duplicate wins)."""
        tree = cls()
        tree.apply(dict(items))
        return tree

    def root(self) -> bytes:
        """The 32-byte commitment to the whole content (EMPTY_ROOT when empty)."""
        return self._root[0]

    def __len__(self) -> int:
        return self._size

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        key_hash = _key_hash(key)
        node = self._root
        depth = 0
        while len(node) == _INTERNAL_LEN:
            node = node[1][_nibble(key_hash, depth)]
            depth += 1
        if len(node) == _LEAF_LEN and node[1] == key_hash:
            return node[2]
        return None

    def apply(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Write a batch (None deletes; deleting an absent key is a no-op); return the new root.

        The result depends only on the batch's content, never on its iteration order.
        """
        self._root, self._size = self._updated(changes)
        return self.root()

    def preview_root(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """The root `apply(changes)` would give, leaving this tree unchanged."""
        new_root, _ = self._updated(changes)
        return new_root[0]

    def copy(self) -> StateTree:
        """An independent tree with the same content, in O(1): nodes are shared, never mutated."""
        twin = StateTree()
        twin._root = self._root
        twin._size = self._size
        return twin

    def prove(self, key: bytes) -> StateProof:
        """A proof of `key`'s current value, or of its absence, against `root()`."""
        key_hash = _key_hash(key)
        levels: list[tuple[bytes, ...]] = []
        node = self._root
        while len(node) == _INTERNAL_LEN:
            nibble = _nibble(key_hash, len(levels))
            children = node[1]
            levels.append(tuple(child[0] for child in children[:nibble] + children[nibble + 1 :]))
            node = children[nibble]
        leaf = None
        if len(node) == _LEAF_LEN:
            leaf = ProofLeaf(key_hash=node[1], value_hash=_sha256(node[2]).digest())
        return StateProof(siblings=tuple(levels), leaf=leaf)

    def _updated(self, changes: Mapping[bytes, bytes | None]) -> tuple[_Node, int]:
        if not changes:
            return self._root, self._size
        batch = _BatchUpdate()
        new_root = batch.update(self._root, 0, _sorted_changes(changes))
        return new_root, self._size + batch.size_delta


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
    node_hash = _terminal_hash(key_hash, value, proof)
    for depth in range(len(proof.siblings) - 1, -1, -1):
        level = proof.siblings[depth]
        nibble = _nibble(key_hash, depth)
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
    return all(_nibble(a, depth) == _nibble(b, depth) for depth in range(nibbles))
