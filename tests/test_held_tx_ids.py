"""The store's held-back transaction ids (`storage/held_tx_ids.py`, ADR 0024) against a
model: blocks of ids are planned and applied, the rows of each step go into a dict
standing for `tx_ids`, and after every block

* every committed id is answered, by the held ids or by the table, with its log index,
  and no id is written twice;
* what an open would hold again from the mark (`restore`) is exactly what is held;
* memory stays bounded: at most two batches.

The counts of what was exercised are asserted, so the invariants cannot hold vacuously.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core.errors import InvariantViolation
from tidechain.storage.held_tx_ids import HeldTxIds, TxIdMark

COUNTS: Counter[str] = Counter()


def check(held: HeldTxIds, table: dict[bytes, int], log: list[bytes]) -> None:
    mark = held.mark
    for index, tx_id in enumerate(log):
        in_table = tx_id in table
        found = held.lookup(tx_id)
        # Answered, and rightly, by either (the batch being written answers for the
        # ids it has written too).
        assert in_table or found is not None, (index, mark)
        assert found in (None, index) and table.get(tx_id, index) == index
        # The mark says which entries the table holds.
        assert in_table == (index < mark.through
                            or (index < mark.end and tx_id <= mark.last))
    assert len(table) + len(held) == len(log)
    # An open holds again what is held now.
    reopened = HeldTxIds(held.bound, held.chunk)
    reopened.restore(mark, ((log[i], i) for i in range(mark.through, len(log))))
    assert len(reopened) == len(held)
    for tx_id in log[mark.through:]:
        if tx_id not in table:  # what only memory holds is held again, with its index
            assert reopened.lookup(tx_id) == held.lookup(tx_id) is not None
        else:
            assert reopened.lookup(tx_id) in (None, table[tx_id])
    COUNTS["restores"] += 1
    if mark.through < mark.end:
        COUNTS["restores mid-batch"] += 1


@settings(max_examples=200, deadline=None)
@given(bound=st.integers(1, 40), chunk=st.integers(1, 12),
       blocks=st.lists(st.integers(0, 30), min_size=1, max_size=40),
       reopen_every=st.integers(2, 9), seed=st.integers(0, 2**32 - 1))
def test_held_ids_and_the_table_answer_for_every_entry(
        bound: int, chunk: int, blocks: list[int], reopen_every: int, seed: int) -> None:
    held = HeldTxIds(bound, chunk)
    table: dict[bytes, int] = {}
    log: list[bytes] = []
    for number, size in enumerate(blocks):
        # Ids in no order, as hashes are.
        ids = [((seed + len(log) + i) * 2654435761 % 2**64).to_bytes(8, "big") + b"%d" % i
               for i in range(size)]
        first = len(log)
        step = held.plan(ids, first)
        for tx_id, index in step.rows:
            assert tx_id not in table  # each id written once
            table[tx_id] = index
        held.applied(step, ids, first)
        log.extend(ids)
        COUNTS["blocks"] += 1
        COUNTS["rows written"] += len(step.rows)
        if step.order is not None:
            COUNTS["batches frozen"] += 1
        if step.rows and step.order is None:
            COUNTS["chunks of an earlier batch"] += 1
        # At most two batches: the one being written and the ids held since.
        assert len(held) <= 2 * bound + max(blocks)
        check(held, table, log)
        if number % reopen_every == reopen_every - 1:  # an open, as after a crash
            reopened = HeldTxIds(bound, chunk)
            reopened.restore(held.mark, ((log[i], i) for i in range(held.mark.through, len(log))))
            held = reopened
            COUNTS["reopened"] += 1


def test_the_model_exercised_every_path() -> None:
    test_held_ids_and_the_table_answer_for_every_entry()
    print(dict(COUNTS))
    for kind in ("blocks", "batches frozen", "chunks of an earlier batch", "restores",
                 "restores mid-batch", "reopened"):
        assert COUNTS[kind] > 0, kind


def test_a_mark_out_of_order_or_corrupt_is_a_broken_store() -> None:
    assert TxIdMark.decode(TxIdMark(3, 9, b"\x01").encode()) == TxIdMark(3, 9, b"\x01")
    with pytest.raises(InvariantViolation):
        TxIdMark(5, 4)
    with pytest.raises(InvariantViolation):
        TxIdMark(4, 4, b"\x01")  # no batch, yet a last id written
    with pytest.raises(InvariantViolation):
        TxIdMark.decode(b"\x80")  # an empty array
    held = HeldTxIds(4, 2)
    with pytest.raises(InvariantViolation):  # a batch whose every id was written
        held.restore(TxIdMark(0, 1, b"\xff"), [(b"\x01", 0)])
    held.restore(TxIdMark(0, 0), [(b"\x01", 0)])
    with pytest.raises(InvariantViolation):  # entries below the held ones
        held.plan([b"\x02"], 0)
