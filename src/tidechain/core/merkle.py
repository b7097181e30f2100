"""The global transaction log as an RFC 6962 / RFC 9162 Merkle tree (SHA-256).

Three parts:

* Hashing and the reference root (`leaf_hash`, `node_hash`, `root_from_leaf_hashes`).
* Verification of inclusion and consistency proofs, following RFC 9162 sections
  2.1.3.2 and 2.1.4.2 step by step, with the length and size checks done first so a
  bad proof is refused with a reason that says what is wrong.
* Generation of proofs and roots from a store of *perfect* subtree hashes
  (`NodeReader`), and the append frontier (`CompactRange`) that tells the storage
  layer which of those hashes to persist.

Node addressing: `(level, index)` is the perfect subtree of 2**level leaves covering
leaves [index * 2**level, (index + 1) * 2**level). Level 0 holds the leaf hashes. An
RFC 6962 tree of any size is made of such aligned perfect subtrees (the left child of
every split is a power of two), so every root and every proof hash is either one
stored node or the fold of the O(log n) stored nodes a partial range decomposes into.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from tidechain.core.errors import NotFound, ProofError, invariant
from tidechain.core.limits import MAX_PROOF_HASHES

__all__ = [
    "EMPTY_ROOT",
    "HASH_BYTES",
    "CompactRange",
    "MemoryNodeStore",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_at",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256  # bound once: these run tens of thousands of times a second


# --- hashing ----------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one log entry (RFC 6962 section 2.1)."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node (RFC 6962 section 2.1)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Reference Merkle Tree Hash of a list of leaf hashes, straight from the RFC's
    recursive definition (split at the largest power of two below n).

    O(n) and recursive: for tests and cross-checks, not for the node's hot path.
    """
    return _reference_root(leaves, 0, len(leaves))


def _reference_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    count = end - start
    if count == 0:
        return EMPTY_ROOT
    if count == 1:
        return leaves[start]
    split = _largest_power_of_two_below(count)
    return node_hash(
        _reference_root(leaves, start, start + split),
        _reference_root(leaves, start + split, end),
    )


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- proof shapes -----------------------------------------------------------------


def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """(inner, border) for the audit path of `index` in a tree of `size` leaves.

    `inner` levels are where the paths to `index` and to the last leaf have split:
    each contributes one sibling. Above them the path runs along the tree's right
    edge, where only levels with a left sibling (a set bit of index) contribute.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _consistency_length(size1: int, size2: int) -> int:
    """Number of hashes in the proof between sizes 0 < size1 < size2."""
    inner, border = _inclusion_shape(size1 - 1, size2)
    shift = _trailing_zeros(size1)
    # The path starts at the perfect subtree of 2**shift leaves ending at size1; that
    # subtree's hash is sent first, unless it is the whole old tree (root1 itself).
    seed = 0 if size1 == 1 << shift else 1
    return seed + (inner - shift) + border


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


# --- verification (RFC 9162 section 2.1.3.2 and 2.1.4.2) --------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_BYTES:
        raise ProofError(f"{what} must be {HASH_BYTES} bytes, got {len(value)}")


def _check_proof_hashes(proof: Sequence[bytes], expected: int) -> None:
    # The bound comes first so a hostile proof costs nothing to refuse.
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"proof has {len(proof)} hashes, more than {MAX_PROOF_HASHES}")
    if len(proof) != expected:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected}")
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` implies for `leaf_hash` at `index` in a tree of `size`.

    Raises ProofError if the sizes, hash lengths or proof length are impossible. The
    caller must still compare the result with a trusted root (see verify_inclusion).
    """
    if size <= 0:
        raise ProofError(f"tree size must be positive, got {size}")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    inner, border = _inclusion_shape(index, size)
    _check_proof_hashes(proof, inner + border)

    # RFC 9162 section 2.1.3.2, steps 2 to 5, with fn, sn and r as named there.
    fn = index
    sn = size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is high")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    Implements RFC 9162 section 2.1.3.2. Returns None on success; raises ProofError
    naming the reason on any failure.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} leads to root {computed.hex()}, "
            f"not {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the one of `size1`
    leaves with `root1`.

    Implements RFC 9162 section 2.1.4.2. Stricter than some verifiers on edge cases:
    size1 must be positive (a proof from the empty tree proves nothing), every hash
    must be 32 bytes, and equal sizes need an empty proof and equal roots. Raises
    ProofError naming the reason on any failure.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must not be negative, got {size1} and {size2}")
    if size1 > size2:
        raise ProofError(f"old size {size1} is larger than new size {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    _check_hash(root1, "old root")
    _check_hash(root2, "new root")
    if size1 == size2:
        _check_proof_hashes(proof, 0)
        if root1 != root2:
            raise ProofError(f"trees of equal size {size1} have different roots")
        return
    _check_proof_hashes(proof, _consistency_length(size1, size2))

    # RFC 9162 section 2.1.4.2, steps 2 to 7, with fn, sn, fr and sr as named there.
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is high")
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the old root of size {size1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to the new root of size {size2}")


# --- generation over stored perfect subtrees --------------------------------------


class NodeReader(Protocol):
    """Read access to the hashes of perfect subtrees.

    `get_node(level, index)` is the hash of the perfect subtree of 2**level leaves
    covering leaves [index * 2**level, (index + 1) * 2**level); level 0 is the leaf
    hashes. Raises NotFound if that subtree is not complete (yet).
    """

    def get_node(self, level: int, index: int) -> bytes: ...


def root_at(reader: NodeReader, size: int) -> bytes:
    """Root of the tree made of the first `size` leaves, for any size the reader holds.

    O(log size) reads: the fold of the perfect subtrees `size` decomposes into.
    """
    if size < 0:
        raise ProofError(f"tree size must not be negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _range_root(reader, 0, size)


def _range_root(reader: NodeReader, start: int, count: int) -> bytes:
    """Root of the RFC 6962 subtree over leaves [start, start + count).

    `start` must be a multiple of the largest power of two in the range's
    decomposition, which holds for every subtree of an RFC 6962 tree. The range is
    the perfect subtrees of the set bits of `count`, largest (leftmost) first; the
    RFC tree over it folds them from the right.
    """
    invariant(count > 0, "empty range has no subtree root")
    nodes: list[bytes] = []
    offset = start
    for level in range(count.bit_length() - 1, -1, -1):
        if count >> level & 1:
            nodes.append(reader.get_node(level, offset >> level))
            offset += 1 << level
    root = nodes[-1]
    for left in reversed(nodes[:-1]):
        root = node_hash(left, root)
    return root


def _sibling_hash(reader: NodeReader, level: int, index: int, size: int) -> bytes:
    """Hash of the subtree (level, index) as it stands in a tree of `size` leaves:
    the stored node if it is complete, else the root of the leaves it has so far."""
    start = index << level
    count = min(1 << level, size - start)
    invariant(count > 0, f"sibling ({level}, {index}) lies past size {size}")
    if count == 1 << level:
        return reader.get_node(level, index)
    return _range_root(reader, start, count)


def _path_from(reader: NodeReader, level: int, index: int, size: int) -> list[bytes]:
    """Audit path of the perfect node (level, index) in a tree of `size` leaves,
    lowest sibling first (the RFC 6962 PATH order).

    Levels below `inner` take one sibling each; only the highest of those can be a
    partial subtree (it is the one that holds the last leaf). Above `inner` the node
    is on the tree's right edge and only left siblings (set bits) are in the path.
    """
    leaf = index << level
    inner, _ = _inclusion_shape(leaf, size)
    proof: list[bytes] = []
    for lvl in range(level, inner):
        sibling = (leaf >> lvl) ^ 1
        if lvl == inner - 1:
            proof.append(_sibling_hash(reader, lvl, sibling, size))
        else:
            proof.append(reader.get_node(lvl, sibling))
    node = leaf >> inner
    lvl = inner
    while node:
        if node & 1:
            proof.append(reader.get_node(lvl, node - 1))
        node >>= 1
        lvl += 1
    return proof


def inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """Audit path for leaf `index` in the tree of the first `size` leaves
    (RFC 9162 section 2.1.3.1), in O(log size) reads."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    return _path_from(reader, 0, index, size)


def consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """Consistency proof from the tree of `size1` leaves to that of `size2`
    (RFC 9162 section 2.1.4.1), in O(log size2) reads. Empty when the sizes are equal.

    The proof is the audit path, in the new tree, of the perfect subtree of
    2**shift leaves that ends the old tree, preceded by that subtree's hash unless
    it is the whole old tree.
    """
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        return []
    shift = _trailing_zeros(size1)
    last = (size1 >> shift) - 1
    path = _path_from(reader, shift, last, size2)
    if last == 0:
        return path
    return [reader.get_node(shift, last), *path]


# --- append frontier --------------------------------------------------------------


class CompactRange:
    """The right edge of the log: one perfect subtree hash per set bit of `size`,
    largest first. Enough to append and to compute the current root; O(log n) memory.
    """

    __slots__ = ("_frontier", "_root", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []
        self._root: bytes | None = EMPTY_ROOT

    @property
    def size(self) -> int:
        return self._size

    @classmethod
    def from_nodes(cls, size: int, reader: NodeReader) -> CompactRange:
        """Rebuild the frontier of a log of `size` leaves from its stored nodes
        (after a restart), in O(log size) reads."""
        invariant(size >= 0, f"log size must not be negative, got {size}")
        rebuilt = cls()
        offset = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                node = reader.get_node(level, offset >> level)
                invariant(len(node) == HASH_BYTES, f"stored node ({level}) is not a hash")
                rebuilt._frontier.append(node)
                offset += 1 << level
        rebuilt._size = size
        rebuilt._root = None
        return rebuilt

    def copy(self) -> CompactRange:
        """An independent frontier with the same state (a copy of O(log n) hashes)."""
        duplicate = CompactRange.__new__(CompactRange)
        duplicate._size = self._size
        duplicate._frontier = self._frontier.copy()
        duplicate._root = self._root
        return duplicate

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash. Returns every perfect node this completes as
        (level, index, hash), the leaf itself first at level 0, so the caller can
        persist exactly these and serve them later through `get_node`."""
        invariant(len(leaf) == HASH_BYTES, f"leaf hash must be {HASH_BYTES} bytes")
        frontier = self._frontier
        index = self._size
        completed = [(0, index, leaf)]
        node = leaf
        level = 0
        # Each trailing 1 bit of the old size is a left sibling waiting for this leaf.
        while index & 1:
            node = _sha256(_NODE_PREFIX + frontier.pop() + node).digest()
            index >>= 1
            level += 1
            completed.append((level, index, node))
        frontier.append(node)
        self._size += 1
        self._root = None
        return completed

    def root(self) -> bytes:
        """Root of the log as it stands; cached until the next append."""
        if self._root is None:
            frontier = self._frontier
            if not frontier:
                return EMPTY_ROOT
            root = frontier[-1]
            for left in reversed(frontier[:-1]):
                root = node_hash(left, root)
            self._root = root
        return self._root

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


class MemoryNodeStore:
    """A NodeReader over a dict, for tests and the simulator."""

    __slots__ = ("_nodes",)

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}

    def put(self, level: int, index: int, value: bytes) -> None:
        invariant(len(value) == HASH_BYTES, f"node hash must be {HASH_BYTES} bytes")
        self._nodes[(level, index)] = value

    def get_node(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise NotFound(f"no complete subtree at level {level}, index {index}") from None

    def __len__(self) -> int:
        return len(self._nodes)
