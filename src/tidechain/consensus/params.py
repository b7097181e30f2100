"""Consensus parameters (tunable per network) and the bounds private to consensus.

Timeouts follow the paper's pacemaker: `timeout(round) = base + delta * round`, capped
at `timeout_max_ms`, so every round waits a little longer than the last until the
network is synchronous again; a new height starts again at round 0 (reset on commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from tidechain.core.limits import BLOCK_INTERVAL_MS

MAX_ROUND = 2**31 - 1
"""Rounds are signed as 4-byte fields. At one round per second this is 68 years of
failed rounds at one height; a larger round number can only come from a faulty peer."""

MAX_HEIGHT = 2**63 - 1
"""Heights are signed as 8-byte fields; CBOR and SQLite integers stop at 2**63 - 1."""

GOVERNED_TIMEOUTS = (
    "timeout_propose_ms", "timeout_propose_delta_ms",
    "timeout_prevote_ms", "timeout_prevote_delta_ms",
    "timeout_precommit_ms", "timeout_precommit_delta_ms",
)
"""The fields governance may set on chain (`set_param consensus.<field>`): every node
uses the state's value from the height after the block that applied it."""

MAX_RULE_FIRINGS_PER_STEP = 10_000
"""A step fires a handful of rules; this many means a rule fires without changing
state, which is our bug (it would otherwise spin forever)."""


@dataclass(frozen=True)
class ConsensusParams:
    """Timeouts (ms) and block production policy. Every validator should use the same."""

    timeout_propose_ms: int = 3000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 1000
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 1000
    timeout_precommit_delta_ms: int = 500
    timeout_max_ms: int = 60_000
    block_interval_ms: int = BLOCK_INTERVAL_MS
    """A proposer waits this long after the previous commit before asking for a block,
    so blocks batch transactions and an idle chain with empty blocks does not spin."""
    create_empty_blocks: bool = True
    """False: at round 0 nobody starts a round until the shell reports transactions
    (`TransactionsAvailable`) or a peer's proposal or vote shows the round has begun."""
    catchup_interval_ms: int = 1000
    """Least time between two catch-up replies (last commit's proposal and precommits)
    to one lagging validator."""
    resend_interval_ms: int = 1000
    """A replica that stays this long in one round re-sends the messages it signed in
    it (the same bytes). The paper assumes gossip eventually delivers every message;
    this is what makes that true over links that lose messages (reconnects, drops)."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "create_empty_blocks":
                if not isinstance(value, bool):
                    raise ValueError("create_empty_blocks must be a bool")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{field.name} must be a non-negative integer")
        for base in (self.timeout_propose_ms, self.timeout_prevote_ms, self.timeout_precommit_ms,
                     self.resend_interval_ms):
            if not 0 < base <= self.timeout_max_ms:
                raise ValueError("base timeouts and resend interval: 1..timeout_max_ms")
        if self.create_empty_blocks and self.block_interval_ms == 0:
            # The shell answers BuildProposal within the same drive loop: with no pause
            # it would build and commit empty blocks forever without returning.
            raise ValueError("create_empty_blocks needs block_interval_ms > 0")


def with_governed_timeouts(params: ConsensusParams, values: Mapping[str, int]
                           ) -> ConsensusParams:
    """`params` (the node's configuration) with the timeouts set by governance in
    `values` (field name -> ms; absent fields keep the configured value). The cap
    `timeout_max_ms` grows to the largest governed base, so a governed value is never
    silently cut by a smaller local cap."""
    chosen = {name: values[name] for name in GOVERNED_TIMEOUTS if name in values}
    if not chosen:
        return params
    cap = max([params.timeout_max_ms, *chosen.values()])
    merged: dict[str, Any] = {**chosen, "timeout_max_ms": cap}
    return replace(params, **merged)
