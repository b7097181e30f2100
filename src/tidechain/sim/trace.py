"""The run's trace: one line per thing that happened, folded into a SHA-256 digest.

Two runs of one seed must produce the same digest (the replay test); `--verbose`
prints the lines as well."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tidechain.consensus import (
    Action,
    Broadcast,
    BuildProposal,
    Commit,
    Event,
    Message,
    MessageReceived,
    PersistSafety,
    Proposal,
    ProposalBuilt,
    ProposalValidated,
    SendTo,
    Start,
    Tick,
    ValidateProposal,
)


class Trace:
    def __init__(self, sink: Callable[[str], None] | None = None) -> None:
        self._hash = hashlib.sha256()
        self._sink = sink
        self.lines = 0

    def add(self, now_ms: int, node_id: str, text: str) -> None:
        line = f"{now_ms:>7} {node_id:<4} {text}"
        self._hash.update(line.encode() + b"\n")
        self.lines += 1
        if self._sink is not None:
            self._sink(line)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


def short(block_hash: bytes | None) -> str:
    return "nil" if block_hash is None else block_hash.hex()[:8]


def describe_message(message: Message) -> str:
    if isinstance(message, Proposal):
        return (f"proposal h{message.height} r{message.round} pol{message.pol_round} "
                f"{short(message.block_hash)} by {message.proposer}")
    return (f"{message.kind.name.lower()} h{message.height} r{message.round} "
            f"{short(message.block_hash)} by {message.voter}")


def describe_event(event: Event) -> str:
    if isinstance(event, MessageReceived):
        return f"<- {event.sender}: {describe_message(event.message)}"
    if isinstance(event, ProposalBuilt):
        return f"<- built h{event.height} r{event.round} {short(event.block.block_hash)}"
    if isinstance(event, ProposalValidated):
        return (f"<- validated {short(event.proposal.block_hash)} valid={event.valid}"
                f"{'' if event.timely else ' untimely'}")
    if isinstance(event, Start | Tick):
        return f"<- {type(event).__name__.lower()}"
    return f"<- {type(event).__name__}"


def describe_action(action: Action) -> str:
    if isinstance(action, PersistSafety):
        s = action.state
        return (f"-> persist h{s.height} r{s.round} {s.step.name.lower()} "
                f"lock r{s.locked_round} {short(s.locked_hash)}")
    if isinstance(action, Broadcast):
        return f"-> broadcast {describe_message(action.message)}"
    if isinstance(action, SendTo):
        return f"-> send {action.peer} {describe_message(action.message)}"
    if isinstance(action, BuildProposal):
        return f"-> build h{action.height} r{action.round}"
    if isinstance(action, ValidateProposal):
        return f"-> validate {short(action.proposal.block_hash)}"
    if isinstance(action, Commit):
        return (f"-> COMMIT h{action.block.height} {short(action.block.block_hash)} "
                f"round {action.certificate.round}")
    return f"-> {type(action).__name__}"
