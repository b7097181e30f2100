"""The simulator's shared settings and the link-fault profile of a run's fault phase.

Everything a run draws comes from its one `random.Random(seed)` (sim/nodes.py).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Faults:
    """The network and crash faults of the fault phase (all off after the heal)."""

    fault_ms: int  # length of the fault phase
    drop: float  # chance a message is lost
    duplicate: float  # chance a message is delivered twice
    max_delay_ms: int  # delays are uniform in [1, max_delay_ms]: this reorders
    spike: float  # chance of a long delay (up to 10 x max_delay_ms)
    partitions: int  # partition episodes
    crashes: int  # crash-and-restart episodes


SYNCHRONOUS = Faults(fault_ms=0, drop=0.0, duplicate=0.0, max_delay_ms=10, spike=0.0,
                     partitions=0, crashes=0)
"""Link behaviour after the heal: every message arrives within 10 ms."""
