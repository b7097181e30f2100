"""What a replica has heard at its current height: votes, proposals, and evidence of
equivocation. Every store is bounded: per validator per (round, kind), two distinct
votes plus those for blocks a stored proposal names; at most MAX_PROPOSALS_PER_ROUND
proposals per round (a few more if f+1 validators voted for them); at most
MAX_ROUNDS_KEPT rounds."""

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


_MAX_VOTES_PER_VOTER = 2
"""Distinct votes kept per validator per (round, kind), unless a proposal names the
block (see `VoteBook.add`). Two suffice for evidence (the first and one conflicting
vote) and for the usual equivocation, where each peer gets one of two versions."""


class RoundVotes:
    """Votes of one kind in one round, tallied per block. A validator counts once
    toward every block it validly signed a vote for (an equivocator's vote for B is
    still a vote for B: the paper counts 2f+1 prevotes *for id(v)*, whatever else
    their signers signed), and once in `total`. At most one vote per (voter, block)."""

    def __init__(self) -> None:
        self._by_voter: dict[str, dict[bytes | None, Vote]] = {}  # in arrival order
        self._counts: dict[bytes | None, int] = {}

    def get(self, voter: str) -> Vote | None:
        """The first vote stored for `voter`."""
        votes = self._by_voter.get(voter)
        return None if votes is None else next(iter(votes.values()))

    def of_voter(self, voter: str) -> list[Vote]:
        return list(self._by_voter.get(voter, {}).values())

    def add(self, vote: Vote) -> None:
        votes = self._by_voter.setdefault(vote.voter, {})
        invariant(vote.block_hash not in votes, "second vote stored for one voter and block")
        votes[vote.block_hash] = vote
        self._counts[vote.block_hash] = self._counts.get(vote.block_hash, 0) + 1

    @property
    def total(self) -> int:
        """Distinct validators with a vote here: each counts once, however many it signed."""
        return len(self._by_voter)

    def count(self, block_hash: bytes | None) -> int:
        """Distinct validators with a vote for `block_hash` (None: nil)."""
        return self._counts.get(block_hash, 0)

    def blocks_with(self, voters: int) -> list[bytes]:
        """Blocks (not nil) with votes from at least `voters` validators, first seen
        first. For a quorum there is at most one with at most f faulty validators."""
        return [h for h, n in self._counts.items() if h is not None and n >= voters]

    def votes(self) -> list[Vote]:
        return [v for votes in self._by_voter.values() for v in votes.values()]

    def for_block(self, block_hash: bytes | None) -> list[Vote]:
        """One vote per validator that voted for `block_hash`."""
        return [votes[block_hash] for votes in self._by_voter.values() if block_hash in votes]


_EMPTY = RoundVotes()


@dataclass(frozen=True)
class Added:
    """What `VoteBook.add` did: whether the vote now counts, and an earlier vote of the
    same voter and slot that differs from it (equivocation evidence), if any."""

    stored: bool
    conflict: Vote | None


class VoteBook:
    """All votes of one height, by (kind, round)."""

    def __init__(self, set_digest: bytes) -> None:
        self._set_digest = set_digest
        self._rounds: dict[int, dict[VoteKind, RoundVotes]] = {}

    def add(self, vote: Vote, *, named: bool) -> Added:
        """Store `vote` (signature already checked) so it counts toward its block.

        A validator's first vote in a slot is always stored. Another vote of it for
        another block is evidence (returned as the conflict with its first vote) and
        is stored too while it has fewer than _MAX_VOTES_PER_VOTER, or whenever a
        proposal names that block (`named`): such a vote may complete the quorum the
        network decides or a proof-of-lock needs, and proposals are bounded, so this
        stays bounded whatever an equivocator signs. One vote per (voter, block): a
        repeat is ignored, a variant (another checkpoint signature) is evidence only."""
        kinds = self._rounds.setdefault(vote.round, {})
        votes = kinds.setdefault(vote.kind, RoundVotes())
        earlier = votes.of_voter(vote.voter)
        if not earlier:
            votes.add(vote)
            return Added(True, None)
        same_block = [v for v in earlier if v.block_hash == vote.block_hash]
        if same_block:
            first = same_block[0]
            # A resent vote arrives as the very same message: skip serialising it twice.
            if first == vote or first.sign_bytes(self._set_digest) == vote.sign_bytes(
                    self._set_digest):
                return Added(False, None)
            return Added(False, first)
        stored = len(earlier) < _MAX_VOTES_PER_VOTER or named
        if stored:
            votes.add(vote)
        return Added(stored, earlier[0])

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

    def with_block(self, block_hash: bytes) -> Proposal | None:
        """A stored proposal of `block_hash` in any round (the earliest)."""
        for round in sorted(self._rounds):
            found = self.find(round, block_hash)
            if found is not None:
                return found
        return None

    def names(self, kind: VoteKind, round: int, block_hash: bytes) -> bool:
        """Whether a vote of `kind` at `round` for `block_hash` is one a stored proposal
        needs counted: a prevote if that block is proposed at `round` (line 36) or with
        proof-of-lock round `round` (line 28); a precommit if the block is proposed at
        all (line 49 takes the block from any proposal of it)."""
        if kind is VoteKind.PRECOMMIT:
            return self.with_block(block_hash) is not None
        return any(p.block_hash == block_hash and round in (p.round, p.pol_round)
                   for ps in self._rounds.values() for p in ps)

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
