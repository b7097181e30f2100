"""Seed 2789 (n = 7, two twinned Byzantine validators): a liveness stall after the heal,
found by the 5,000-seed campaign of 2026-12-07 and fixed.

The honest locks split two against two (v1, v4 on one block; v2, v5 on another; v3
unlocked). Each twin pair runs one replica per block, and every honest validator
sees only some twins, so each round's polka (three honest + two twins) is seen
only by the two honest validators on that side: they lock at that round, and the
other side never learns of it. The next honest proposer re-proposes its valid value
with a proof-of-lock round below the other side's lock, which refuses it (line 28).
Nothing relayed a polka to the honest validators that missed it (the paper's gossip
does), so no round decided; now a validator that sees a polka relays it. It did not
depend on the shell's late/foreign verdicts or on `Replica._proven`: those never
changed the trace of this seed.
"""

from __future__ import annotations

from tidechain.sim.campaign import failure_line, run_seed


def test_seed_2789_decides_after_the_heal() -> None:
    """Fixed: a validator that sees a polka relays it with its resends while the round
    lasts (`_rule_precommit_on_polka`), as the paper's gossip would. The stall never
    depended on the shell's late/foreign verdicts (none fired in this seed)."""
    result = run_seed(2789, 7, 2)
    assert result.ok, failure_line(result)
    assert result.stats.get("late or foreign proposals", 0) == 0
    assert result.stats.get("untimely proposals", 0) == 0
