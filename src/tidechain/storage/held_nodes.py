"""State tree node writes that the store holds back from `state_nodes` (ADR 0022).

Each block's node writes are logged as one row in its transaction (`state_node_log`),
kept here and answered from here. When `bound` positions are held (or `max_rows`
blocks, or 4 * `bound` writes, have been logged since the last batch), they are frozen
into a batch that later blocks write into `state_nodes` in position order, a chunk
per block (1.5 times the block's own writes, at least `chunk`), each position once.
A block that rewrites a position while it is held saves a row, and consecutive chunks
touch disjoint pages. Spreading the batch over blocks keeps any one commit short. Once
the whole batch is written, the log rows it came from are deleted, in the same
transaction as its last chunk.

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
    def __init__(self, bound: int, chunk: int, max_rows: int) -> None:
        invariant(bound > 0 and chunk > 0 and max_rows > 0,
                  "hold bound, chunk and row limit must be positive")
        self.bound = bound
        self.chunk = chunk
        # A freeze also comes after `max_rows` blocks, or after 4 * bound writes, since
        # the last: blocks that keep rewriting the same positions (a small state, hot
        # keys, near-empty blocks) never reach `bound` positions, and without these
        # limits their log rows would pile up until the next open replayed them all.
        self.max_rows = max_rows
        self._recent_rows = 0  # log rows since the last freeze
        self._recent_writes = 0  # the writes in them
        self._recent: dict[bytes, bytes | None] = {}  # logged since the last freeze
        self._frozen: dict[bytes, bytes | None] = {}  # the batch not yet written
        self._order: list[bytes] = []  # the batch's positions, sorted
        self._next = 0  # _order[_next:] are still to write
        self._frozen_through: int | None = None  # the last height the batch holds

    def __len__(self) -> int:
        return len(self._recent) + len(self._frozen)

    def _full(self, writes: NodeWrites) -> bool:
        """Whether the held writes, with this block's, call for a batch."""
        return (len(self._recent) + len(writes) >= self.bound
                or self._recent_rows + 1 >= self.max_rows
                or self._recent_writes + len(writes) >= 4 * self.bound)

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
            take = remaining if self._full(writes) else min(self._chunk_for(writes), remaining)
            positions = self._order[self._next:self._next + take]
            frozen = self._frozen
            done = self._next + take == len(self._order)
            return FlushStep([(p, frozen[p]) for p in positions],
                             self._frozen_through if done else None)
        if not self._full(writes):
            return FlushStep([], None)
        batch = dict(self._recent)
        batch.update(writes)
        order = sorted(batch)
        take = self._chunk_for(writes)
        positions = order[:take]
        return FlushStep([(p, batch[p]) for p in positions],
                         height if len(order) <= take else None, batch, order)

    def _chunk_for(self, writes: NodeWrites) -> int:
        """Positions of the batch this block writes: half as many again as the block's
        own writes, and at least `chunk`. In step with the blocks, a chunk costs about
        what the block's own rows would have, whatever the block size (measured: with a
        fixed 8,000, a block of 130 deposits that carried a chunk committed in 90 ms
        against 9). More than the block adds, so a batch is written before the held
        writes reach the bound again."""
        return max(self.chunk, (3 * len(writes)) // 2)

    def applied(self, step: FlushStep, height: int, writes: NodeWrites) -> None:
        """Block `height`'s transaction, planned as `step`, has committed."""
        if step.frozen is not None:
            self._frozen = step.frozen
            self._order = step.order
            self._next = 0
            self._frozen_through = height
            self._recent = {}
            self._recent_rows = 0
            self._recent_writes = 0
        else:
            self._recent.update(writes)
            self._recent_rows += 1
            self._recent_writes += len(writes)
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
        self._recent_rows = 0
        self._recent_writes = 0
        self._frozen = {}
        self._order = []
        self._next = 0
        self._frozen_through = None
