"""What a replica has heard at its current height: votes, proposals, and evidence of
equivocation. Every store is bounded: one vote per validator per (round, kind), at most
MAX_PROPOSALS_PER_ROUND proposals per round, at most MAX_ROUNDS_KEPT rounds."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from tidechain.consensus.messages import Proposal, Vote, VoteKind
from tidechain.consensus.quorum import ValidatorSet
from tidechain.consensus.safety import SignStep
from tidechain.core.crypto import is_valid_signature
from tidechain.core.errors import ProofError, invariant
from tidechain.core.limits import MAX_EVIDENCE, MAX_PROPOSALS_PER_ROUND


@dataclass(frozen=True)
class Equivocation:
    """Two different statements signed by one validator for one (height, round, step).

    Self-contained: the signed bytes and both signatures prove it to anyone who knows
    the validator's key, without the blocks involved."""

    signer: str
    height: int
    round: int
    step: SignStep
    first: bytes
    first_signature: bytes
    second: bytes
    second_signature: bytes

    def verify(self, validators: ValidatorSet) -> None:
        """Raise ProofError unless both statements are validly signed by `signer`,
        differ, and name the same (height, round, step)."""
        info = validators.get(self.signer)
        if info is None:
            raise ProofError(f"unknown validator {self.signer!r}")
        if self.first == self.second:
            raise ProofError("the two statements are the same")
        if _slot_prefix(self.first) != _slot_prefix(self.second):
            raise ProofError("the statements are for different heights, rounds or steps")
        for message, signature in ((self.first, self.first_signature),
                                   (self.second, self.second_signature)):
            if not is_valid_signature(info.public_key, message, signature):
                raise ProofError("a statement's signature does not verify")


def _slot_prefix(sign_bytes: bytes) -> bytes:
    """Domain, set digest, (kind,) height and round: what identifies the slot."""
    domain_end = sign_bytes.find(b"\n") + 1
    kind_bytes = 1 if sign_bytes.startswith(b"tidechain/vote/") else 0
    return sign_bytes[:domain_end + 32 + kind_bytes + 8 + 4]


def vote_equivocation(first: Vote, second: Vote, set_digest: bytes) -> Equivocation:
    step = SignStep.PREVOTE if first.kind is VoteKind.PREVOTE else SignStep.PRECOMMIT
    return Equivocation(first.voter, first.height, first.round, step,
                        first.sign_bytes(set_digest), first.signature,
                        second.sign_bytes(set_digest), second.signature)


def proposal_equivocation(first: Proposal, second: Proposal,
                          set_digest: bytes) -> Equivocation:
    return Equivocation(first.proposer, first.height, first.round, SignStep.PROPOSAL,
                        first.sign_bytes(set_digest), first.signature,
                        second.sign_bytes(set_digest), second.signature)


class EvidenceLog:
    """The newest MAX_EVIDENCE equivocations, at most one per (signer, slot)."""

    def __init__(self) -> None:
        self._items: deque[Equivocation] = deque(maxlen=MAX_EVIDENCE)

    def record(self, evidence: Equivocation) -> None:
        slot = (evidence.signer, evidence.height, evidence.round, evidence.step)
        if any((e.signer, e.height, e.round, e.step) == slot for e in self._items):
            return
        self._items.append(evidence)

    @property
    def items(self) -> tuple[Equivocation, ...]:
        return tuple(self._items)


class RoundVotes:
    """Votes of one kind in one round: at most one per validator, tallied per block."""

    def __init__(self) -> None:
        self._by_voter: dict[str, Vote] = {}
        self._counts: dict[bytes | None, int] = {}

    def get(self, voter: str) -> Vote | None:
        return self._by_voter.get(voter)

    def add(self, vote: Vote) -> None:
        invariant(vote.voter not in self._by_voter, "second vote stored for one voter")
        self._by_voter[vote.voter] = vote
        self._counts[vote.block_hash] = self._counts.get(vote.block_hash, 0) + 1

    @property
    def total(self) -> int:
        return len(self._by_voter)

    def count(self, block_hash: bytes | None) -> int:
        return self._counts.get(block_hash, 0)

    def votes(self) -> list[Vote]:
        return list(self._by_voter.values())

    def for_block(self, block_hash: bytes | None) -> list[Vote]:
        return [v for v in self._by_voter.values() if v.block_hash == block_hash]


_EMPTY = RoundVotes()


class VoteBook:
    """All votes of one height, by (kind, round)."""

    def __init__(self, set_digest: bytes) -> None:
        self._set_digest = set_digest
        self._rounds: dict[int, dict[VoteKind, RoundVotes]] = {}

    def add(self, vote: Vote) -> Vote | None:
        """Store `vote` (signature already checked). Returns the conflicting earlier
        vote if the voter equivocates (the new vote is then NOT stored, so it never
        counts); a repeat of the same statement is ignored."""
        kinds = self._rounds.setdefault(vote.round, {})
        votes = kinds.setdefault(vote.kind, RoundVotes())
        earlier = votes.get(vote.voter)
        if earlier is None:
            votes.add(vote)
            return None
        if earlier.sign_bytes(self._set_digest) == vote.sign_bytes(self._set_digest):
            return None
        return earlier

    def tally(self, kind: VoteKind, round: int) -> RoundVotes:
        return self._rounds.get(round, {}).get(kind, _EMPTY)

    def rounds(self) -> list[int]:
        return sorted(self._rounds)

    def keep_rounds(self, limit: int, protect: Iterable[int]) -> bool:
        """Drop the lowest unprotected rounds until at most `limit` remain."""
        return _drop_lowest(self._rounds, limit, set(protect))


class ProposalBook:
    """Proposals of one height by round, first-come (signature and proposer checked)."""

    def __init__(self) -> None:
        self._rounds: dict[int, list[Proposal]] = {}

    def at(self, round: int) -> tuple[Proposal, ...]:
        return tuple(self._rounds.get(round, ()))

    def rounds(self) -> list[int]:
        return sorted(self._rounds)

    def add(self, proposal: Proposal, *, supported: bool) -> tuple[bool, Proposal | None]:
        """Store `proposal` if new. Returns (stored, earlier conflicting proposal).
        Past MAX_PROPOSALS_PER_ROUND only a proposal that f+1 validators voted for
        (`supported`) is stored: it may be the one the network decides."""
        stored = self._rounds.setdefault(proposal.round, [])
        first = stored[0] if stored else None
        if any(p.block_hash == proposal.block_hash and p.pol_round == proposal.pol_round
               for p in stored):
            return False, None
        conflict = first
        if len(stored) >= MAX_PROPOSALS_PER_ROUND and not supported:
            return False, conflict
        stored.append(proposal)
        return True, conflict

    def find(self, round: int, block_hash: bytes) -> Proposal | None:
        for p in self._rounds.get(round, ()):
            if p.block_hash == block_hash:
                return p
        return None

    def block_hashes(self) -> set[bytes]:
        return {p.block_hash for ps in self._rounds.values() for p in ps}

    def keep_rounds(self, limit: int, protect: Iterable[int]) -> bool:
        return _drop_lowest(self._rounds, limit, set(protect))


_T = TypeVar("_T")


def _drop_lowest(by_round: dict[int, _T], limit: int, protect: set[int]) -> bool:
    """Returns whether anything was dropped."""
    if len(by_round) <= limit:
        return False
    for round in sorted(by_round):
        if len(by_round) <= limit:
            break
        if round not in protect:
            del by_round[round]
    return True
