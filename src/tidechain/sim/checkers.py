"""What the simulator's checkers share: the failure they raise, and who signed which slot.

The checkers themselves are in `sim/nodes.py` (agreement, restart height, acknowledged
transactions, liveness, crashes) and `sim/conformance.py` (each honest step).
"""

from __future__ import annotations

from tidechain.consensus import (
    PREVOTE,
    Message,
    Proposal,
    SignStep,
)

Slot = tuple[str, int, int, SignStep]  # (validator, height, round, step)


class SimFailure(Exception):
    """An invariant broke. `kind` is safety, conformance (an honest step no rule
    allows), liveness or crash; the message is the one-line reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def signed_slot(message: Message) -> tuple[int, int, SignStep]:
    """The (height, round, step) a message is signed for."""
    if isinstance(message, Proposal):
        return message.height, message.round, SignStep.PROPOSAL
    step = SignStep.PREVOTE if message.kind is PREVOTE else SignStep.PRECOMMIT
    return message.height, message.round, step


def signer_of(message: Message) -> str:
    return message.proposer if isinstance(message, Proposal) else message.voter
