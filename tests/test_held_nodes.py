"""The store's held-back state tree node writes (ADR 0022), as a state machine against
a plain model: after every block, the held writes over `state_nodes` are the tree's
latest records, and a crash (the log replayed over `state_nodes`) loses nothing."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.storage.held_nodes import HeldNodeWrites

POSITIONS = [bytes([a]) for a in range(16)] + [bytes([a, b]) for a in range(4) for b in range(16)]

MAX_BLOCK = 10
BLOCK = st.dictionaries(st.sampled_from(POSITIONS), st.none() | st.binary(min_size=1, max_size=2),
                        max_size=MAX_BLOCK)


def _run(bound: int, chunk: int, max_rows: int, blocks: list[dict[bytes, bytes | None]],
         counts: Counter[str]) -> None:
    held = HeldNodeWrites(bound, chunk, max_rows)
    truth: dict[bytes, bytes | None] = {}  # every position's latest write
    table: dict[bytes, bytes] = {}  # state_nodes
    log: dict[int, dict[bytes, bytes | None]] = {}  # state_node_log by height
    for height, writes in enumerate(blocks, start=1):
        step = held.plan(height, writes)
        # The transaction: log the block, write the chunk, delete a finished batch's log.
        log[height] = dict(writes)
        for position, record in step.rows:
            if record is None:
                table.pop(position, None)
            else:
                table[position] = record
        if step.log_through is not None:
            for old in [h for h in log if h <= step.log_through]:
                del log[old]
            counts["batches finished"] += 1
        counts["rows written"] += len(step.rows)
        counts["freezes"] += step.frozen is not None
        held.applied(step, height, writes)
        truth.update(writes)

        # Reads: a held write, else the table.
        for position in POSITIONS:
            found, record = held.lookup(position)
            seen = record if found else table.get(position)
            assert seen == truth.get(position), (height, position)
            counts["held reads" if found else "table reads"] += 1
        # A crash now: the log replayed over the table in height order is the tree.
        replayed = dict(table)
        for h in sorted(log):
            for position, record in log[h].items():
                if record is None:
                    replayed.pop(position, None)
                else:
                    replayed[position] = record
        assert replayed == {p: r for p, r in truth.items() if r is not None}
        counts["crashes checked"] += 1
        # Memory and the log stay bounded, whatever the blocks rewrite: two batches,
        # each of fewer than `bound` positions and a block; the rows since the last
        # batch began, and the blocks that write the one being written.
        assert len(held) <= 2 * (bound - 1 + MAX_BLOCK)
        assert len(log) <= max_rows + -(-(bound + MAX_BLOCK) // chunk) + 1
        counts["held positions at half the bound or more"] += 2 * len(held) >= bound
        counts["log rows at the row limit"] += len(log) >= max_rows


def test_held_writes_over_the_table_are_the_tree_and_the_log_recovers_it() -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None)
    @given(st.integers(1, 24), st.integers(1, 5), st.integers(1, 12), st.lists(BLOCK, max_size=40))
    def run(bound: int, chunk: int, max_rows: int, blocks: list[dict[bytes, bytes | None]]
            ) -> None:
        _run(bound, chunk, max_rows, blocks, counts)

    run()
    print(dict(counts))
    for kind in ("batches finished", "rows written", "freezes", "held reads", "table reads",
                 "crashes checked"):
        assert counts[kind] > 100, kind
    for kind in ("held positions at half the bound or more", "log rows at the row limit"):
        assert counts[kind] > 20, kind


def test_blocks_that_rewrite_the_same_positions_still_empty_the_log() -> None:
    """A hot position rewritten by every block never reaches the bound in positions:
    the row limit freezes it, and the log stays short."""
    held = HeldNodeWrites(bound=1000, chunk=10, max_rows=5)
    logged: list[int] = []
    for height in range(1, 101):
        writes = {b"\x01": b"%d" % height, b"": b"root %d" % height}
        step = held.plan(height, writes)
        logged.append(height)
        if step.log_through is not None:
            logged = [h for h in logged if h > step.log_through]
        held.applied(step, height, writes)
        assert len(logged) <= 5
    assert held.lookup(b"\x01") in ((True, b"100"), (False, None))


def test_a_batch_is_written_in_position_order_over_several_blocks() -> None:
    held = HeldNodeWrites(bound=5, chunk=2, max_rows=100)
    blocks = [{b"\x03": b"c"}, {b"\x01": b"a"}, {b"\x02": b"b"}, {b"\x05": None},
              {b"\x04": b"d"}]
    for height, writes in enumerate(blocks[:4], start=1):
        step = held.plan(height, writes)
        assert step.rows == [] and step.frozen is None
        held.applied(step, height, writes)
    step = held.plan(5, blocks[4])  # the fifth position: frozen, sorted, two per block
    assert step.frozen is not None and step.log_through is None
    assert step.rows == [(b"\x01", b"a"), (b"\x02", b"b")]
    held.applied(step, 5, blocks[4])
    rewrite = {b"\x01": b"A"}  # rewritten while its old record is being written
    step = held.plan(6, rewrite)
    assert step.rows == [(b"\x03", b"c"), (b"\x04", b"d")] and step.log_through is None
    held.applied(step, 6, rewrite)
    assert held.lookup(b"\x01") == (True, b"A")
    step = held.plan(7, {})
    assert step.rows == [(b"\x05", None)] and step.log_through == 5  # the batch's rows
    held.applied(step, 7, {})
    assert held.lookup(b"\x03") == (False, None) and len(held) == 1


def test_a_chunk_keeps_pace_with_the_block() -> None:
    """A block writes half as many again of the batch as its own writes."""
    held = HeldNodeWrites(bound=10, chunk=1, max_rows=100)
    first = {bytes([i]): b"x" for i in range(10)}
    step = held.plan(1, first)
    assert step.frozen is not None and len(step.rows) == 10  # 15 allowed: all of it
    held.applied(step, 1, first)
    many = {bytes([i]): b"y" for i in range(20, 29)}
    held.applied(held.plan(2, many), 2, many)
    more = {bytes([i]): b"z" for i in range(30, 32)}  # the bound: 9 + 2 held
    step = held.plan(3, more)
    assert step.frozen is not None and len(step.rows) == 3 and step.log_through is None


def test_a_batch_falling_behind_is_finished_in_one_block() -> None:
    held = HeldNodeWrites(bound=3, chunk=1, max_rows=100)
    for height, position in enumerate((b"\x01", b"\x02", b"\x03"), start=1):
        writes = {position: b"v"}
        step = held.plan(height, writes)
        held.applied(step, height, writes)
    assert step.frozen is not None and step.rows == [(b"\x01", b"v")]
    burst = {b"\x04": b"d", b"\x05": b"e", b"\x06": b"f"}  # the bound again, at once
    step = held.plan(4, burst)
    assert [p for p, _ in step.rows] == [b"\x02", b"\x03"] and step.log_through == 3
    held.applied(step, 4, burst)
    assert len(held) == 3
