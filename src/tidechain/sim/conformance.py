"""Honest step conformance: every message an honest replica signs is one the paper's
rules allow, given what that replica had received.

The safety checkers (`checkers.py`) look at outcomes: two blocks at one height, two
signatures for one slot. A replica that breaks a rule of Algorithm 1 (Buchman, Kwon,
Milosevic 2018) usually breaks no outcome in a given run: its wrong vote is one of
many, or the quorum it helps form is never completed. `StepAuditor` judges each
signature when it is made, against the replica's own knowledge:

* a precommit for block B at (h, r) (line 36) needs 2f+1 prevotes for B at (h, r)
  (the replica's own included), a proposal of B at (h, r), and B found valid;
* a prevote for B at (h, r) needs a proposal of B at (h, r) and B found valid, and
  for one such proposal: with pol_round -1, the replica not locked at h or locked on B
  (lines 22-23); with pol_round vr >= 0, 2f+1 prevotes for B at (h, vr) and a lock
  round <= vr or the lock on B (lines 28-29);
* a proposal of B with pol_round vr >= 0 needs 2f+1 prevotes for B at (h, vr); a
  locked proposer proposes only with vr >= its lock round (so never a new block,
  pol_round -1): in the paper it proposes validValue at validRound, and validRound
  never falls below lockedRound (lines 14-19, 36-43). The block must be one the
  replica found valid or built.

"2f+1 prevotes" is `ValidatorSet.quorum` distinct validators of the height's set,
each with a vote whose signature verifies, counted once per block: a validator that
signed for two blocks counts toward each (the replica's tally, docs/simulator.md L1).
Nil votes are always allowed and only counted.

What the replica knows. Within one incarnation: every message it received (at any
height: next-height messages are buffered), the blocks its shell built or found valid,
and everything it signed. A restart (a crash, a block sync or a new validator set)
starts over from what `Replica.restore` hands the new replica: the own votes kept in
the safety record and the prevote quorum kept with its lock (and the locked block as
valid). That is strict on purpose: a rule that needs a polka must find it in what the
restarted replica could know, not in what it once heard. Over-approximations only
(counting votes the replica's bounded books may have dropped, ignoring which block
`restore` actually matched) make the auditor more lenient, never stricter than the
replica can be.

What the replica signed, and its lock, are the auditor's own record, which survives
restarts: the lock at h is the highest-round precommit for a block the validator
signed at h. A signed message counts once it left or became durable: at a restart,
what the replica signed after its last persisted safety state (a step cut by the
crash before its `PersistSafety`) is forgotten, as the validator forgot it; nothing
of it left the node. Each message is judged once, when it is first signed: a re-sent
message (the same signature, after a restart too) is not judged again against later
knowledge.

Deviations of the replica from the paper that stay within these rules: `_proven`
and untimely verdicts only choose between B and nil (timeliness is not checked
here); a relayed polka is signed by others; `restore` with the lock proof gives
knowledge the auditor models; the polka relayed by `_rule_precommit_on_polka` and the
re-sent own votes are not new signatures.

Pure: fed by the world, no I/O, no randomness. `counts` records what was exercised
so a passing run cannot be vacuous.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NoReturn

from tidechain.consensus import (
    Action,
    Broadcast,
    Event,
    Message,
    MessageReceived,
    PersistSafety,
    Proposal,
    ProposalBuilt,
    ProposalValidated,
    SafetyState,
    SendTo,
    SignStep,
    Tick,
    ValidatorSet,
    Vote,
    VoteKind,
)
from tidechain.core.crypto import is_valid_signature
from tidechain.sim.checkers import SimFailure, signed_slot, signer_of

PREVOTES = "prevotes checked"
PREVOTES_LOCKED = "prevotes checked while locked"
PREVOTES_POL = "prevotes on a proof-of-lock proposal"
PREVOTES_UNLOCKED_BY_POL = "prevotes for another block than the lock"
PRECOMMITS = "precommits checked"
PROPOSALS = "proposals checked"
PROPOSALS_POL = "proof-of-lock proposals checked"
PROPOSALS_LOCKED = "proposals checked while locked"
NIL_VOTES = "nil votes signed"
RESENDS = "re-sends not judged again"
RESTARTS = "restarts"
RESTARTS_LOCKED = "restarts while locked"
FORGOTTEN = "signatures lost in a crash"
UNSEEN = "restored votes never seen signed"
COUNTS = (PREVOTES, PREVOTES_LOCKED, PREVOTES_POL, PREVOTES_UNLOCKED_BY_POL, PRECOMMITS,
          PROPOSALS, PROPOSALS_POL, PROPOSALS_LOCKED, NIL_VOTES, RESENDS, RESTARTS,
          RESTARTS_LOCKED, FORGOTTEN, UNSEEN)
"""The counters of `StepAuditor.counts`, in the order the campaign prints them."""


def _short(block_hash: bytes | None) -> str:
    return "nil" if block_hash is None else block_hash.hex()[:12]


@dataclass
class _Knowledge:
    """What one replica incarnation has heard or signed."""

    prevotes: dict[tuple[int, int, bytes], dict[str, list[Vote]]] = field(
        default_factory=dict)  # (height, round, block) -> voter -> its distinct votes
    proposals: dict[tuple[int, int], list[Proposal]] = field(default_factory=dict)
    valid: set[bytes] = field(default_factory=set)  # blocks built or found valid

    def add_vote(self, vote: Vote) -> None:
        if vote.kind is not VoteKind.PREVOTE or vote.block_hash is None:
            return  # only prevotes for blocks justify anything
        votes = self.prevotes.setdefault((vote.height, vote.round, vote.block_hash),
                                         {}).setdefault(vote.voter, [])
        if vote not in votes:
            votes.append(vote)

    def add_proposal(self, proposal: Proposal) -> None:
        stored = self.proposals.setdefault((proposal.height, proposal.round), [])
        if proposal not in stored:
            stored.append(proposal)


@dataclass
class _Validator:
    """The auditor's record of one honest validator: what it signed (surviving
    restarts) and what its current incarnation knows."""

    known: _Knowledge = field(default_factory=_Knowledge)
    signed: dict[bytes, Message] = field(default_factory=dict)  # signature -> message
    locks: dict[int, dict[int, bytes]] = field(default_factory=dict)
    """height -> round -> block of each precommit for a block it signed."""

    def lock_at(self, height: int) -> tuple[int, bytes | None]:
        """(lock round, locked block) at `height` from its own precommits; (-1, None)."""
        rounds = self.locks.get(height)
        if not rounds:
            return -1, None
        top = max(rounds)
        return top, rounds[top]


class StepAuditor:
    """Judges every message an honest replica signs (see the module docstring).

    The world calls `on_restart` whenever it (re)builds a replica, before its Start,
    and `on_step` after every successful `Replica.step` of an honest node with the
    full action list (before any crash cuts it: the replica decided all of it).
    Raises `SimFailure("conformance", reason)` on the first message no rule allows."""

    def __init__(self) -> None:
        self._validators: dict[str, _Validator] = {}
        self._verified: dict[tuple[bytes, Vote | Proposal], bool] = {}
        self.counts: Counter[str] = Counter()

    # --- feeding -------------------------------------------------------------------
    def on_restart(self, name: str, validators: ValidatorSet, height: int,
                   safety: SafetyState | None, lock_proof: tuple[Vote, ...] = ()) -> None:
        """`name`'s replica (re)starts at `height` from the persisted `safety` state
        and the lock proof kept with it (`Replica.restore`'s arguments)."""
        record = self._validators.setdefault(name, _Validator())
        self.counts[RESTARTS] += 1
        last = (0, 0, SignStep.NONE) if safety is None else (
            safety.height, safety.round, safety.step)
        for signature, message in list(record.signed.items()):
            slot = signed_slot(message)
            if slot[0] >= height and slot > last:
                # Signed in a step the crash cut before its PersistSafety: never sent,
                # never durable. The validator may now sign that slot afresh.
                del record.signed[signature]
                self.counts[FORGOTTEN] += 1
                if isinstance(message, Vote) and message.kind is VoteKind.PRECOMMIT:
                    record.locks.get(message.height, {}).pop(message.round, None)
        known = record.known = _Knowledge()
        if safety is None or safety.height != height:
            return
        if record.lock_at(height)[0] >= 0:
            self.counts[RESTARTS_LOCKED] += 1
        for vote in _own_votes(name, safety):
            if vote.signature not in record.signed:
                self.counts[UNSEEN] += 1  # signed before the auditor was attached
                self._record_signed(record, vote)
            known.add_vote(vote)
        if safety.locked_hash is not None:
            known.valid.add(safety.locked_hash)
            for vote in lock_proof:
                if (vote.kind, vote.height, vote.round, vote.block_hash) == (
                        VoteKind.PREVOTE, height, safety.locked_round, safety.locked_hash):
                    known.add_vote(vote)

    def on_step(self, name: str, validators: ValidatorSet, event: Event,
                actions: list[Action]) -> None:
        """`name`'s replica (an honest validator's name: one node per name), whose
        validator set is `validators`, took `event` and returned `actions`."""
        if isinstance(event, Tick) and not actions:
            return
        record = self._validators.setdefault(name, _Validator())
        known = record.known
        if isinstance(event, MessageReceived):
            if isinstance(event.message, Vote):
                known.add_vote(event.message)
            else:
                known.add_proposal(event.message)
        elif isinstance(event, ProposalValidated):
            if event.valid:
                known.valid.add(event.proposal.block_hash)
        elif isinstance(event, ProposalBuilt):
            known.valid.add(event.block.block_hash)
        # Signed messages leave in signing order (`Outbox`): judge them in that order,
        # each with what the replica knew then, its own earlier signatures included.
        for action in actions:
            if isinstance(action, Broadcast | SendTo) and signer_of(action.message) == name:
                self._own(name, record, validators, action.message)
        for action in actions:  # a vote kept with the safety state is signed too
            if isinstance(action, PersistSafety):
                for vote in _own_votes(name, action.state):
                    if vote.signature not in record.signed:
                        self._own(name, record, validators, vote)

    # --- judging -------------------------------------------------------------------
    def _own(self, name: str, record: _Validator, validators: ValidatorSet,
             message: Message) -> None:
        signature = message.signature
        if signature in record.signed:
            self.counts[RESENDS] += 1
            return
        if isinstance(message, Proposal):
            self._judge_proposal(name, record, validators, message)
        elif message.block_hash is None:
            self.counts[NIL_VOTES] += 1
        elif message.kind is VoteKind.PREVOTE:
            self._judge_prevote(name, record, validators, message)
        else:
            self._judge_precommit(name, record, validators, message)
        self._record_signed(record, message)

    @staticmethod
    def _record_signed(record: _Validator, message: Message) -> None:
        record.signed[message.signature] = message
        if isinstance(message, Proposal):
            record.known.add_proposal(message)
            record.known.valid.add(message.block_hash)
            return
        record.known.add_vote(message)
        if message.kind is VoteKind.PRECOMMIT and message.block_hash is not None:
            record.locks.setdefault(message.height, {})[message.round] = message.block_hash

    def _judge_precommit(self, name: str, record: _Validator, validators: ValidatorSet,
                         vote: Vote) -> None:
        """Line 36: a proposal of B at (h, r), B valid, and 2f+1 prevotes for B."""
        self.counts[PRECOMMITS] += 1
        assert vote.block_hash is not None
        h, r, block = vote.height, vote.round, vote.block_hash
        what = f"{name} precommitted {_short(block)} at height {h} round {r}"
        polka = self._prevotes_for(record.known, validators, h, r, block)
        if polka < validators.quorum:
            self._fail(f"{what} with {polka} prevotes for it (quorum {validators.quorum})")
        if not self._proposals_of(record.known, validators, h, r, block):
            self._fail(f"{what} without a proposal of it in that round")
        if block not in record.known.valid:
            self._fail(f"{what}, a block it never found valid")

    def _judge_prevote(self, name: str, record: _Validator, validators: ValidatorSet,
                       vote: Vote) -> None:
        """Lines 22-23 and 28-29, for some proposal of B at (h, r)."""
        self.counts[PREVOTES] += 1
        assert vote.block_hash is not None
        h, r, block = vote.height, vote.round, vote.block_hash
        locked_round, locked = record.lock_at(h)
        self.counts[PREVOTES_LOCKED] += locked_round >= 0
        what = f"{name} prevoted {_short(block)} at height {h} round {r}"
        lock = ("not locked" if locked_round < 0
                else f"locked on {_short(locked)} at round {locked_round}")
        if block not in record.known.valid:
            self._fail(f"{what}, a block it never found valid")
        proposals = self._proposals_of(record.known, validators, h, r, block)
        if not proposals:
            self._fail(f"{what} without a proposal of it in that round")
        why: list[str] = []
        for proposal in proposals:
            vr = proposal.pol_round
            if vr < 0:
                if locked_round < 0 or locked == block:
                    return  # line 23
                why.append(f"new proposal, {lock}")
                continue
            polka = self._prevotes_for(record.known, validators, h, vr, block)
            if polka < validators.quorum:
                why.append(f"pol_round {vr} with {polka} prevotes for it "
                           f"(quorum {validators.quorum})")
            elif locked_round <= vr or locked == block:
                self.counts[PREVOTES_POL] += 1  # line 29
                self.counts[PREVOTES_UNLOCKED_BY_POL] += locked_round >= 0 and locked != block
                return
            else:
                why.append(f"pol_round {vr}, {lock}")
        self._fail(f"{what}: no rule allows it ({'; '.join(why)})")

    def _judge_proposal(self, name: str, record: _Validator, validators: ValidatorSet,
                        proposal: Proposal) -> None:
        """Lines 14-19: validValue at validRound, which is >= lockedRound; a
        proof-of-lock round backed by 2f+1 prevotes."""
        self.counts[PROPOSALS] += 1
        h, r, vr, block = proposal.height, proposal.round, proposal.pol_round, \
            proposal.block_hash
        locked_round, locked = record.lock_at(h)
        self.counts[PROPOSALS_POL] += vr >= 0
        self.counts[PROPOSALS_LOCKED] += locked_round >= 0
        what = f"{name} proposed {_short(block)} at height {h} round {r} pol_round {vr}"
        if block not in record.known.valid:
            self._fail(f"{what}, a block it neither built nor found valid")
        if vr >= 0:
            polka = self._prevotes_for(record.known, validators, h, vr, block)
            if polka < validators.quorum:
                self._fail(f"{what} with {polka} prevotes for it at round {vr} "
                           f"(quorum {validators.quorum})")
        if locked_round >= 0 and vr < locked_round:
            self._fail(f"{what} while locked on {_short(locked)} at round {locked_round}")

    # --- counting ------------------------------------------------------------------
    def _prevotes_for(self, known: _Knowledge, validators: ValidatorSet, height: int,
                      round: int, block: bytes) -> int:
        """Distinct validators of the set with a verified prevote for `block`."""
        voters = known.prevotes.get((height, round, block), {})
        count = 0
        for voter, votes in voters.items():
            info = validators.get(voter)
            if info is not None and any(self._verifies(validators, info.public_key, v)
                                        for v in votes):
                count += 1
        return count

    def _proposals_of(self, known: _Knowledge, validators: ValidatorSet, height: int,
                      round: int, block: bytes) -> list[Proposal]:
        """Verified proposals of `block` by the proposer of (height, round)."""
        proposer = validators.proposer(height, round)
        return [p for p in known.proposals.get((height, round), ())
                if p.block_hash == block and p.proposer == proposer.name
                and self._verifies(validators, proposer.public_key, p)]

    def _verifies(self, validators: ValidatorSet, public_key: bytes,
                  message: Vote | Proposal) -> bool:
        key = (validators.digest, message)
        ok = self._verified.get(key)
        if ok is None:
            ok = is_valid_signature(public_key, message.sign_bytes(validators.digest),
                                    message.signature)
            self._verified[key] = ok
        return ok

    @staticmethod
    def _fail(reason: str) -> NoReturn:
        raise SimFailure("conformance", reason)


def _own_votes(name: str, state: SafetyState) -> list[Vote]:
    """The own votes a safety state keeps, as the messages that were signed."""
    votes: list[Vote] = []
    slots = [(state.round, state.prevote, state.precommit)]
    if state.earlier is not None:
        slots.insert(0, (state.earlier.round, state.earlier.prevote, state.earlier.precommit))
    for round, prevote, precommit in slots:
        for kind, own in ((VoteKind.PREVOTE, prevote), (VoteKind.PRECOMMIT, precommit)):
            if own is not None:
                votes.append(Vote(kind, state.height, round, own.block_hash, name,
                                  own.signature, own.checkpoint_signature))
    return votes
