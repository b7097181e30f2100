"""Consensus: a sans-IO Tendermint replica (ADR 0004).

The shell feeds `Replica.step` with events and executes the actions it returns, in
order (see `events.py` for the contract). Nothing here does I/O or reads a clock.
"""

from tidechain.consensus.certificate import CommitCertificate
from tidechain.consensus.events import (
    Action,
    Broadcast,
    BuildProposal,
    Commit,
    Event,
    LockProof,
    MessageReceived,
    PersistSafety,
    ProposalBuilt,
    ProposalValidated,
    SendTo,
    Start,
    Tick,
    TransactionsAvailable,
    ValidateProposal,
)
from tidechain.consensus.messages import (
    PRECOMMIT,
    PREVOTE,
    BlockLike,
    Message,
    Proposal,
    Vote,
    VoteKind,
)
from tidechain.consensus.params import ConsensusParams
from tidechain.consensus.quorum import ValidatorInfo, ValidatorSet
from tidechain.consensus.replica import Replica, Step
from tidechain.consensus.safety import SafetyState, SignStep
from tidechain.consensus.votebook import Equivocation

__all__ = [
    "PRECOMMIT",
    "PREVOTE",
    "Action",
    "BlockLike",
    "Broadcast",
    "BuildProposal",
    "Commit",
    "CommitCertificate",
    "ConsensusParams",
    "Equivocation",
    "Event",
    "LockProof",
    "Message",
    "MessageReceived",
    "PersistSafety",
    "Proposal",
    "ProposalBuilt",
    "ProposalValidated",
    "Replica",
    "SafetyState",
    "SendTo",
    "SignStep",
    "Start",
    "Step",
    "Tick",
    "TransactionsAvailable",
    "ValidateProposal",
    "ValidatorInfo",
    "ValidatorSet",
    "Vote",
    "VoteKind",
]
