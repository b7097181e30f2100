"""What one seed runs: the fault profile and the Byzantine cast, drawn from the seed.

Everything here is drawn from the run's one `random.Random(seed)`, before anything
else, so a seed names the scenario as well as the schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from tidechain.consensus import ConsensusParams

TICK_MS = 10
"""Cadence of `Tick` events to every running replica (virtual time)."""

SIM_PARAMS = ConsensusParams(
    timeout_propose_ms=200, timeout_propose_delta_ms=50,
    timeout_prevote_ms=100, timeout_prevote_delta_ms=50,
    timeout_precommit_ms=100, timeout_precommit_delta_ms=50,
    timeout_max_ms=2000, block_interval_ms=10, catchup_interval_ms=100,
    resend_interval_ms=150,
)
"""Short timeouts so one run covers many rounds and heights in little virtual time."""

HEAL_HEIGHTS = 2
"""Liveness: after the heal, every honest node commits this many heights past the
highest height any honest node had reached."""

HEAL_BUDGET_MS = 20_000
"""...within this much virtual time (timeouts are capped at 2 s, so this is many
rounds even for a network that starts the heal in a high round)."""


class Mode(Enum):
    """How a Byzantine validator misbehaves."""

    TWINS = "twins"  # two honest replicas with one key, each seen by part of the network
    EQUIVOCATE = "equivocate"  # one replica whose outgoing messages get conflicting twins


@dataclass(frozen=True)
class Faults:
    """The network and crash faults of the fault phase (all off after the heal)."""

    fault_ms: int  # length of the fault phase
    drop: float  # chance a message is lost
    duplicate: float  # chance a message is delivered twice
    max_delay_ms: int  # delays are uniform in [1, max_delay_ms]: this reorders
    spike: float  # chance of a long delay (up to 10 x max_delay_ms)
    partitions: int  # partition episodes
    crashes: int  # crash-and-restart episodes of honest validators
    invalid_blocks: float  # chance a Byzantine proposer builds a block nobody accepts
    equivocation: float  # chance an EQUIVOCATE validator splits one outgoing message
    untimely: float = 0.0
    """Chance an honest validator finds a new proposal (no proof-of-lock) untimely: it
    arrived late, or its clock is off (ADR 0006). The verdict is about that proposal;
    the block stays valid for re-proposals (issue 12's stall)."""
    lock_crashes: int = 0
    """Crash traps: each, armed at a random time of the fault phase, crashes the next
    honest validator that persists a lock, in the step that locked (docs/simulator.md,
    "Steering")."""
    split_rounds: int = 0
    """Split traps: each, armed at a random time of the fault phase, makes the next
    round with a new proposal split its polka (docs/simulator.md, "Steering")."""


SYNCHRONOUS = Faults(fault_ms=0, drop=0.0, duplicate=0.0, max_delay_ms=10, spike=0.0,
                     partitions=0, crashes=0, invalid_blocks=0.0, equivocation=0.0)
"""Link behaviour after the heal: every message arrives within 10 ms."""


@dataclass(frozen=True)
class Scenario:
    seed: int
    validators: int
    byzantine: tuple[int, ...]  # validator indices
    modes: tuple[Mode, ...]  # one per Byzantine validator
    faults: Faults


def draw_scenario(rng: random.Random, seed: int, validators: int, byzantine: int,
                  fault_ms: int) -> Scenario:
    """Pick the cast and the fault levels for one run. Levels vary between seeds so
    the campaign covers calm networks as well as very lossy ones."""
    cast = tuple(sorted(rng.sample(range(validators), byzantine)))
    modes = tuple(rng.choice((Mode.TWINS, Mode.EQUIVOCATE)) for _ in cast)
    faults = Faults(
        fault_ms=fault_ms,
        drop=rng.choice((0.0, 0.05, 0.1, 0.2, 0.35)),
        duplicate=rng.choice((0.0, 0.05, 0.2)),
        max_delay_ms=rng.choice((5, 30, 100, 300)),
        spike=rng.choice((0.0, 0.01, 0.05)),
        partitions=rng.randint(0, 3),
        crashes=rng.randint(0, 2 * validators),
        invalid_blocks=rng.choice((0.0, 0.3, 0.7)),
        equivocation=rng.choice((0.3, 0.7, 1.0)),
        untimely=rng.choice((0.0, 0.1, 0.3)),
        lock_crashes=rng.randint(1, 3),
        split_rounds=rng.randint(2, 4),
    )
    return Scenario(seed, validators, cast, modes, faults)
