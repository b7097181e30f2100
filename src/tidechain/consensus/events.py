"""Events the shell feeds to `Replica.step` and actions it gets back, executed in order.

Contract with the shell:
* `PersistSafety(state)`: write `state.encode()` durably (fsync) before executing any
  later action; restart with `Replica.restore(..., safety=state)`.
* `Broadcast(m)` / `SendTo(peer, m)`: send to all other validators / to one. The
  replica has already counted its own messages: do not loop them back.
* `BuildProposal(h, r, time_ms)`: build a block on the current head (time >= time_ms,
  and > the previous block's time) and answer `ProposalBuilt(h, r, block)`.
* `ValidateProposal(p)`: re-execute `p.block` against the current head (the replica
  asks only for its current height, after checking signature and proposer) and answer
  `ProposalValidated(p, valid)`. Any answer time is fine; stale answers are ignored.
* `Commit(block, certificate)`: make the block durable before executing later actions;
  the replica has moved on to the next height. Signed messages of the committed height
  may follow the Commit without a PersistSafety: once the block is durable the node
  never signs at that height again (ADR 0004).
* After executing a Commit with transactions still pending, send `TransactionsAvailable`
  (the replica forgets it at every new height).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidechain.consensus.certificate import CommitCertificate
from tidechain.consensus.messages import BlockLike, Message, Proposal, Vote
from tidechain.consensus.safety import SafetyState

# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    now_ms: int


@dataclass(frozen=True)
class Tick:
    now_ms: int


@dataclass(frozen=True)
class MessageReceived:
    sender: str  # the peer it came from (may differ from the signer: relays are fine)
    message: Message


@dataclass(frozen=True)
class ProposalBuilt:
    height: int
    round: int
    block: BlockLike


@dataclass(frozen=True)
class ProposalValidated:
    """The shell's verdict on a proposal: `valid` is about the block (it executes to its
    header), so it holds for every proposal of that block; `timely` is about this
    proposal only: a new one (pol_round -1) whose block time is far from the shell's
    clock, or not built by its proposer, is refused (ADR 0006) without condemning the
    block, which a later round may re-propose with its proof-of-lock."""

    proposal: Proposal
    valid: bool
    timely: bool = True


@dataclass(frozen=True)
class TransactionsAvailable:
    pass


Event = Start | Tick | MessageReceived | ProposalBuilt | ProposalValidated | TransactionsAvailable

# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class LockProof:
    """The proposal of the block we lock on and the prevote quorum that justifies the
    lock. The shell keeps it with the safety record and hands it back to
    `Replica.restore`: a restarted validator re-proposes its locked block with its
    proof-of-lock, which may exist nowhere else any more."""

    proposal: Proposal
    prevotes: tuple[Vote, ...]


@dataclass(frozen=True)
class PersistSafety:
    state: SafetyState
    lock: LockProof | None = None  # a new lock taken in this step: durable with the state


@dataclass(frozen=True)
class Broadcast:
    message: Message


@dataclass(frozen=True)
class SendTo:
    peer: str
    message: Message


@dataclass(frozen=True)
class BuildProposal:
    height: int
    round: int
    time_ms: int


@dataclass(frozen=True)
class ValidateProposal:
    proposal: Proposal


@dataclass(frozen=True)
class Commit:
    block: BlockLike
    certificate: CommitCertificate


Action = PersistSafety | Broadcast | SendTo | BuildProposal | ValidateProposal | Commit
