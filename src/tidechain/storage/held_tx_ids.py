"""Transaction ids of committed entries that the store holds back from `tx_ids` (ADR 0024).

A committed transaction's id is looked up for replay protection and by the readers of
`GET /v1/tx/{id}`. SQLite's index on a hash key takes each new row at a random place, so
past a few hundred thousand entries every deposit dirtied an index page of its own, for
the COMMIT to write to the WAL. Instead the store holds the ids of its recent entries
here and writes them into `tx_ids` in sorted batches, as ADR 0022 does for tree nodes:
when `bound` ids are held they are frozen into a batch that the following blocks write
in id order, a chunk per block, so consecutive chunks touch disjoint pages.

Nothing is logged: the held ids are those of the entries past a mark, and an open reads
them back from `entries` (`restore`). The mark is written in each block's transaction
and says what `tx_ids` holds (`TxIdMark`).

This is the pure part: `plan` says what a block's transaction writes, `applied` records
that it committed. The store does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from tidechain.core import cbor
from tidechain.core.errors import invariant

_MAX_TX_ID_BYTES = 64


@dataclass(frozen=True)
class TxIdMark:
    """What `tx_ids` holds: the ids of every entry below `through`, and of the frozen
    batch (the entries `through` .. `end` - 1) those that sort at or before `last`
    (b"": none yet). The entries from `end` on are held, not written."""

    through: int
    end: int
    last: bytes = b""

    def __post_init__(self) -> None:
        invariant(0 <= self.through <= self.end, f"tx id mark out of order: {self}")
        invariant(self.through < self.end or not self.last,
                  f"tx id mark without a batch names a last id: {self}")

    def encode(self) -> bytes:
        return cbor.encode([self.through, self.end, self.last])

    @classmethod
    def decode(cls, raw: bytes) -> TxIdMark:
        value = cbor.decode(raw)
        invariant(isinstance(value, list) and len(value) == 3
                  and isinstance(value[0], int) and isinstance(value[1], int)
                  and isinstance(value[2], bytes) and len(value[2]) <= _MAX_TX_ID_BYTES,
                  "corrupt tx id mark")
        return cls(value[0], value[1], value[2])


@dataclass(frozen=True)
class TxIdStep:
    """What one block's transaction writes into `tx_ids`, and the mark it leaves."""

    rows: list[tuple[bytes, int]]
    """(tx id, log index) written now, in id order."""
    mark: TxIdMark
    order: list[tuple[bytes, int]] | None = field(default=None, repr=False)
    """A batch frozen by this block, its own ids included, sorted: the order its
    chunks are written in."""


class HeldTxIds:
    def __init__(self, bound: int, chunk: int) -> None:
        invariant(bound > 0 and chunk > 0, "hold bound and chunk must be positive")
        self.bound = bound
        self.chunk = chunk
        self._recent: dict[bytes, int] = {}  # entries from mark.end on
        # The batch being written: by id (written ids included: they answer as the
        # table would), and sorted.
        self._frozen: dict[bytes, int] = {}
        self._order: list[tuple[bytes, int]] = []
        self._next = 0  # _order[_next:] are still to write
        self._mark = TxIdMark(0, 0)
        self._size = 0  # the log size: the next block's first entry

    def __len__(self) -> int:
        """Ids held and not yet in the table."""
        return len(self._recent) + len(self._order) - self._next

    @property
    def mark(self) -> TxIdMark:
        return self._mark

    def lookup(self, tx_id: bytes) -> int | None:
        """The log index of a held id, or None: then `tx_ids` answers."""
        found = self._recent.get(tx_id)
        return found if found is not None else self._frozen.get(tx_id)

    def holds_any(self, tx_ids: Sequence[bytes]) -> bool:
        """Whether any of `tx_ids` is held (or in the batch being written)."""
        return not (self._recent.keys().isdisjoint(tx_ids)
                    and self._frozen.keys().isdisjoint(tx_ids))

    def restore(self, mark: TxIdMark, entries: Iterable[tuple[bytes, int]]) -> None:
        """At an open: `entries` are (tx id, log index) of every entry from
        `mark.through` on. Those `tx_ids` does not hold by `mark` are held again."""
        recent: dict[bytes, int] = {}
        frozen: dict[bytes, int] = {}
        size = mark.through
        for tx_id, log_index in entries:
            invariant(log_index == size, "restore not given the entries from the mark on")
            size += 1
            if log_index >= mark.end:
                recent[tx_id] = log_index
            elif tx_id > mark.last:  # b"" sorts before every id: none written yet
                frozen[tx_id] = log_index
        self._recent = recent
        self._frozen = frozen
        self._order = sorted(frozen.items())
        self._next = 0
        self._mark = mark
        invariant(size >= mark.end, f"tx id mark {mark} past the log's {size} entries")
        self._size = size
        if not frozen and mark.through < mark.end:
            # Every id of the batch was written but the mark not moved on: only a
            # batch whose last chunk ended exactly at its end, which `plan` never
            # leaves, so this is a broken store.
            invariant(False, f"tx id mark {mark} names a batch with nothing left to write")

    def plan(self, tx_ids: Sequence[bytes], first: int) -> TxIdStep:
        """What the transaction of a block whose entries are `first` .. `first` +
        len(tx_ids) - 1 writes. Changes nothing: call `applied` once it has committed."""
        mark = self._mark
        end = first + len(tx_ids)
        invariant(first == self._size, f"a block's entries planned from {first}, "
                                       f"not from the log size {self._size}")
        if self._order:
            remaining = len(self._order) - self._next
            # Falling behind (a burst of large blocks): finish the batch now, so that
            # at most two batches are ever held.
            full = len(self._recent) + len(tx_ids) >= self.bound
            take = remaining if full else min(self._chunk_for(tx_ids), remaining)
            rows = self._order[self._next:self._next + take]
            done = take == remaining
            after = (TxIdMark(mark.end, mark.end) if done
                     else TxIdMark(mark.through, mark.end, rows[-1][0]))
            return TxIdStep(rows, after)
        if len(self._recent) + len(tx_ids) < self.bound:
            return TxIdStep([], mark)
        # By id alone (ids are unique): half the time of comparing pairs.
        order = sorted([*self._recent.items(), *zip(tx_ids, range(first, end), strict=True)],
                       key=itemgetter(0))
        take = self._chunk_for(tx_ids)
        rows = order[:take]
        after = (TxIdMark(end, end) if take >= len(order)
                 else TxIdMark(mark.through, end, rows[-1][0]))
        return TxIdStep(rows, after, order)

    def _chunk_for(self, tx_ids: Sequence[bytes]) -> int:
        """Ids of the batch a block writes: half as many again as the block's own, and
        at least `chunk`, so a batch is written before the held ids reach the bound
        again, and a chunk costs about what the block's own rows would have."""
        return max(self.chunk, (3 * len(tx_ids)) // 2)

    def applied(self, step: TxIdStep, tx_ids: Sequence[bytes], first: int) -> None:
        """The transaction of the block planned as `step` has committed."""
        self._recent.update(zip(tx_ids, range(first, first + len(tx_ids)), strict=True))
        self._size = first + len(tx_ids)
        if step.order is not None:  # the held ids and the block's are the batch
            self._frozen = self._recent
            self._order = step.order
            self._next = 0
            self._recent = {}
        self._next += len(step.rows)
        if self._next == len(self._order):
            invariant(step.mark.through == step.mark.end,
                      "a batch written whole and its mark not moved on")
            self._frozen = {}
            self._order = []
            self._next = 0
        self._mark = step.mark

    def drain(self) -> list[tuple[bytes, int]]:
        """Everything held, in id order, for a transaction that writes it all (a state
        sync's switch-over): call `applied_all` once that has committed."""
        rows = list(self._recent.items())
        rows.extend(self._order[self._next:])
        rows.sort()
        return rows

    def applied_all(self, end: int) -> None:
        """What `drain` returned is written, and with it every entry below `end`, the
        log size after that transaction."""
        self._recent = {}
        self._frozen = {}
        self._order = []
        self._next = 0
        self._mark = TxIdMark(end, end)
        self._size = end
