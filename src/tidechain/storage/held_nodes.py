"""State tree node writes that the store holds back from `state_nodes` (ADR 0022).

Each block's node writes are logged as one row in its transaction (`state_node_log`),
kept here and answered from here. When `bound` positions are held, they are frozen
into a batch that later blocks write into `state_nodes` in position order, `chunk`
positions per block, each position once. A block that rewrites a position while it is
held saves a row, and consecutive chunks touch disjoint pages. Spreading the batch over
blocks keeps any one commit short. Once the whole batch is written, the log rows it
came from are deleted, in the same transaction as its last chunk.

This is the pure part: `plan` says what a block's transaction writes and deletes, and
`applied` records that it committed. The store does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tidechain.core.errors import invariant

NodeWrites = Mapping[bytes, bytes | None]
"""Node records by position; None removes the node."""


@dataclass(frozen=True)
class FlushStep:
    """What one block's transaction does to `state_nodes` and the log, besides logging
    the block's own writes."""

    rows: list[tuple[bytes, bytes | None]]
    """Written into `state_nodes` now (None: deleted), in position order."""
    log_through: int | None
    """Delete the log rows up to this height: the batch they hold is all written."""
    frozen: dict[bytes, bytes | None] | None = field(default=None, repr=False)
    """A batch frozen by this block (its own writes included), by position."""
    order: list[bytes] = field(default_factory=list, repr=False)
    """The frozen batch's positions, sorted: the order its chunks are written in."""


class HeldNodeWrites:
    def __init__(self, bound: int, chunk: int) -> None:
        invariant(bound > 0 and chunk > 0, "hold bound and chunk must be positive")
        self.bound = bound
        self.chunk = chunk
        self._recent: dict[bytes, bytes | None] = {}  # logged since the last freeze
        self._frozen: dict[bytes, bytes | None] = {}  # the batch not yet written
        self._order: list[bytes] = []  # the batch's positions, sorted
        self._next = 0  # _order[_next:] are still to write
        self._frozen_through: int | None = None  # the last height the batch holds

    def __len__(self) -> int:
        return len(self._recent) + len(self._frozen)

    def lookup(self, position: bytes) -> tuple[bool, bytes | None]:
        """(True, record or None) for a held position, (False, None) for one whose
        record is the store's."""
        recent = self._recent
        if position in recent:
            return True, recent[position]
        frozen = self._frozen
        if position in frozen:
            return True, frozen[position]
        return False, None

    def plan(self, height: int, writes: NodeWrites) -> FlushStep:
        """What block `height`'s transaction writes, given the block's node writes.
        Changes nothing: call `applied` once the transaction has committed."""
        if self._frozen_through is not None:
            remaining = len(self._order) - self._next
            # Falling behind (a burst of large blocks): finish the batch now, so that
            # at most two batches are ever held.
            take = (remaining if len(self._recent) + len(writes) >= self.bound
                    else min(self.chunk, remaining))
            positions = self._order[self._next:self._next + take]
            frozen = self._frozen
            done = self._next + take == len(self._order)
            return FlushStep([(p, frozen[p]) for p in positions],
                             self._frozen_through if done else None)
        if len(self._recent) + len(writes) < self.bound:
            return FlushStep([], None)
        batch = dict(self._recent)
        batch.update(writes)
        order = sorted(batch)
        positions = order[:self.chunk]
        return FlushStep([(p, batch[p]) for p in positions],
                         height if len(order) <= self.chunk else None, batch, order)

    def applied(self, step: FlushStep, height: int, writes: NodeWrites) -> None:
        """Block `height`'s transaction, planned as `step`, has committed."""
        if step.frozen is not None:
            self._frozen = step.frozen
            self._order = step.order
            self._next = 0
            self._frozen_through = height
            self._recent = {}
        else:
            self._recent.update(writes)
        frozen = self._frozen
        for position, _ in step.rows:
            del frozen[position]
        self._next += len(step.rows)
        if step.log_through is not None:
            invariant(not frozen, "a batch's log deleted before all of it was written")
            self._order = []
            self._next = 0
            self._frozen_through = None

    def clear(self) -> None:
        """The store's tree was replaced whole, and its log emptied."""
        self._recent = {}
        self._frozen = {}
        self._order = []
        self._next = 0
        self._frozen_through = None
