"""Round timers, derived from the shell's ticks (no timer API: the shell only reports
the time). At most one timer per kind is pending, for the current height and round."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tidechain.consensus.params import ConsensusParams
from tidechain.core.errors import invariant


class TimeoutKind(IntEnum):
    BUILD = 0  # the proposer's pause between a commit and asking for the next block
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    RESEND = 4  # re-send this round's own messages while the round lasts


@dataclass(frozen=True, order=True)
class Timeout:
    deadline_ms: int
    kind: TimeoutKind
    height: int
    round: int


def timeout_ms(params: ConsensusParams, kind: TimeoutKind, round: int) -> int:
    """base + delta * round, capped: later rounds wait longer (the paper's backoff)."""
    base, delta = {
        TimeoutKind.PROPOSE: (params.timeout_propose_ms, params.timeout_propose_delta_ms),
        TimeoutKind.PREVOTE: (params.timeout_prevote_ms, params.timeout_prevote_delta_ms),
        TimeoutKind.PRECOMMIT: (params.timeout_precommit_ms, params.timeout_precommit_delta_ms),
        TimeoutKind.RESEND: (params.resend_interval_ms, 0),
    }[kind]
    return min(base + delta * round, params.timeout_max_ms)


class Pacemaker:
    def __init__(self, params: ConsensusParams) -> None:
        self._params = params
        self._pending: dict[TimeoutKind, Timeout] = {}

    def schedule(self, kind: TimeoutKind, height: int, round: int, now_ms: int) -> None:
        self.schedule_at(kind, height, round, now_ms + timeout_ms(self._params, kind, round))

    def schedule_at(self, kind: TimeoutKind, height: int, round: int, deadline_ms: int) -> None:
        """Replaces any pending timer of the same kind (it belongs to an older round)."""
        self._pending[kind] = Timeout(deadline_ms, kind, height, round)

    def pop_due(self, now_ms: int) -> Timeout | None:
        """The earliest timer whose deadline has passed, removed; None if none is due."""
        if not self._pending:
            return None
        earliest = min(self._pending.values())
        if earliest.deadline_ms > now_ms:
            return None
        del self._pending[earliest.kind]
        return earliest

    def clear(self) -> None:
        self._pending.clear()

    def pending(self) -> tuple[Timeout, ...]:
        invariant(len(self._pending) <= len(TimeoutKind), "one timer per kind")
        return tuple(sorted(self._pending.values()))
