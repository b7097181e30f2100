"""The store's held-back index rows (`storage/held_index_rows.py`, ADR 0025) against a
model: blocks of rows are planned and applied, each step's rows go into a set standing
for `indexes` and each block's rows into a dict standing for `index_log`, and after
every block

* for every key, the table's log indexes followed by the held ones are exactly the
  key's rows, ascending (the merge the store's reads do);
* no row is written twice, and the log replayed over the table (what an open does)
  gives every row;
* memory stays bounded: at most two batches.

The counts of what was exercised are asserted, so the invariants cannot hold vacuously.
"""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.storage.held_index_rows import HeldIndexRows, IndexRow

COUNTS: Counter[str] = Counter()
NAMES = ("evidence/digest", "evidence/amends", "trace/epc")


def check(held: HeldIndexRows, table: set[IndexRow], log: dict[int, list[IndexRow]],
          every: list[IndexRow]) -> None:
    keys = {(n, k) for n, k, _ in every}
    for name, key in keys:
        stored = sorted(i for n, k, i in table if (n, k) == (name, key))
        merged = stored + held.lookup(name, key)
        assert merged == sorted(i for n, k, i in every if (n, k) == (name, key)), (name, key)
        if stored and held.lookup(name, key):
            COUNTS["keys split between table and memory"] += 1
    assert len(table) + len(held) == len(every)
    replayed = table | {row for rows in log.values() for row in rows}
    assert replayed == set(every)  # what an open writes back
    held_rows = held.held_rows()
    assert held_rows == sorted(set(every) - table)


@settings(max_examples=200, deadline=None)
@given(bound=st.integers(1, 40), chunk=st.integers(1, 12),
       blocks=st.lists(st.integers(0, 25), min_size=1, max_size=40),
       seed=st.integers(0, 2**32 - 1))
def test_the_table_and_the_held_rows_answer_every_key_in_order(
        bound: int, chunk: int, blocks: list[int], seed: int) -> None:
    rng = random.Random(seed)
    held = HeldIndexRows(bound, chunk)
    table: set[IndexRow] = set()
    log: dict[int, list[IndexRow]] = {}
    every: list[IndexRow] = []
    log_index = 0
    for height, size in enumerate(blocks, start=1):
        rows: list[IndexRow] = []
        for _ in range(size):  # keys repeat, so a key's rows span blocks and batches
            rows.append((rng.choice(NAMES), bytes([rng.randrange(6)]), log_index))
            log_index += rng.choice((0, 1, 1, 2))  # a transaction may file several rows
        rows = sorted(set(rows), key=lambda r: r[2])  # in log order, as a block files them
        log_index += 1  # the next block's first transaction
        step = held.plan(height, rows)
        for row in step.rows:
            assert row not in table  # each row written once
            table.add(row)
        if rows:
            log[height] = rows
        if step.log_through is not None:
            for logged in [h for h in log if h <= step.log_through]:
                del log[logged]
            COUNTS["batches written"] += 1
        held.applied(step, height, rows)
        every.extend(rows)
        COUNTS["blocks"] += 1
        if step.order is not None:
            COUNTS["batches frozen"] += 1
        if step.rows and step.order is None:
            COUNTS["chunks of an earlier batch"] += 1
        assert len(held) <= 2 * bound + max(blocks)
        check(held, table, log, every)


def test_the_model_exercised_every_path() -> None:
    test_the_table_and_the_held_rows_answer_every_key_in_order()
    print(dict(COUNTS))
    for kind in ("blocks", "batches frozen", "chunks of an earlier batch", "batches written",
                 "keys split between table and memory"):
        assert COUNTS[kind] > 0, kind
