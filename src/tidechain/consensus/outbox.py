"""Two small holders the replica uses: the outbox that orders a step's actions so
nothing signed leaves before it is durable, and the buffer of next-height messages."""

from __future__ import annotations

from collections import deque

from tidechain.consensus.events import Action, Broadcast, Commit, LockProof, PersistSafety, SendTo
from tidechain.consensus.messages import Message
from tidechain.consensus.safety import SafetyState
from tidechain.core.errors import invariant
from tidechain.core.limits import MAX_FUTURE_MESSAGES_PER_VALIDATOR


class Outbox:
    """Actions of one step. Messages we sign are held until the end of the step and
    released behind one PersistSafety of the latest state: every state in a step
    dominates the earlier ones (signatures only move forward), so persisting the last
    one covers every held message. A Commit releases the held messages of its height
    without a PersistSafety (see `commit`). Relayed messages (already stored, ours
    or a peer's) go last, after the held messages: a proposal with a proof-of-lock
    arrives before the votes that prove it, so peers know the votes are needed
    (`VoteBook.add`), and no relay can overtake the safety record of a vote."""

    def __init__(self) -> None:
        self._actions: list[Action] = []
        self._held: list[Message] = []
        self._relayed: list[Action] = []
        self._state: SafetyState | None = None
        self._lock: LockProof | None = None

    def note_lock(self, lock: LockProof) -> None:
        """The lock the next signed precommit takes: persisted with its state."""
        self._lock = lock

    def add(self, action: Action) -> None:
        self._actions.append(action)

    def add_signed(self, state: SafetyState, message: Message) -> None:
        self._state = state
        self._held.append(message)

    def resend(self, message: Message) -> None:
        """Send an own message again. One still held goes out with the held ones."""
        if not any(m is message for m in self._held):
            self._actions.append(Broadcast(message))

    def relay(self, message: Message, peer: str | None = None) -> None:
        """Send a stored message (ours or a peer's) to all, or to `peer`, after the rest."""
        self._relayed.append(Broadcast(message) if peer is None else SendTo(peer, message))

    def commit(self, action: Commit) -> None:
        # Held messages are all of the committed height. Once the block is durable the
        # replica never signs at that height again (it restarts at the next one), so
        # they need no safety record; sending them only after the Commit means nothing
        # signed leaves before one of the two is durable. This also spares the fsync
        # of a lock whose block a crash could lose (a single validator would then be
        # locked on a block nobody has).
        invariant(all(m.height == action.certificate.height for m in self._held),
                  "held messages of another height at commit")
        self._actions.append(action)
        self._actions.extend(Broadcast(m) for m in self._held)
        self._held, self._state, self._lock = [], None, None

    def is_empty(self) -> bool:
        return not self._actions and not self._held and not self._relayed

    def flush(self) -> list[Action]:
        if self._held:
            invariant(self._state is not None, "held messages without a safety state")
            assert self._state is not None
            lock = self._lock
            if lock is not None and self._state.locked_hash != lock.proposal.block_hash:
                lock = None  # the precommit was not signed (the rules refused it)
            self._actions.append(PersistSafety(self._state, lock))
            self._actions.extend(Broadcast(m) for m in self._held)
        actions = self._actions + self._relayed
        self._actions, self._held, self._relayed, self._state = [], [], [], None
        self._lock = None
        return actions


class FutureBuffer:
    """Verified messages for the next heights, bounded per validator."""

    def __init__(self) -> None:
        self._by_signer: dict[str, deque[Message]] = {}

    def add(self, signer: str, message: Message) -> None:
        queue = self._by_signer.setdefault(
            signer, deque(maxlen=MAX_FUTURE_MESSAGES_PER_VALIDATOR))
        queue.append(message)

    def take(self, height: int) -> list[Message]:
        """The buffered messages of `height`; older ones are dropped, newer ones kept."""
        out: list[Message] = []
        for queue in self._by_signer.values():
            keep = [m for m in queue if m.height > height]
            out.extend(m for m in queue if m.height == height)
            queue.clear()
            queue.extend(keep)
        return out
