"""Safety rules: what this validator may sign, given what it has already signed.

Kept apart from the protocol logic (Diem/Aptos "safety rules") so the few lines that
make equivocation impossible can be read, tested and reviewed on their own:

1. Never go back: a signature at (height, round, step) is allowed only if that triple
   is greater than the last signed one, or equal with identical signed bytes (re-sending
   the same message is not equivocation). One message per (height, round, step).
2. Locks: precommitting a block at round r locks it; afterwards, at that height, prevote
   only for the locked block, or for a block whose proposal carries a proof-of-lock
   round >= the lock round (the caller checks that the quorum of prevotes exists).

The replica persists the `SafetyState` (the shell fsyncs it) before any message it
allows leaves the node, so a restarted validator cannot contradict itself. The state
also keeps our own votes of the last round we signed in and of the round before it
(at that height), so that a restarted validator can send them again: a vote signed
just before a crash may be the one an honest quorum is waiting for (ADR 0004,
amendment).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from tidechain.consensus.params import MAX_HEIGHT, MAX_ROUND
from tidechain.core.crypto import SIGNATURE_BYTES
from tidechain.core.errors import DecodeError, invariant

DIGEST_BYTES = 32
_NO_DIGEST = bytes(DIGEST_BYTES)
_NO_SIGNATURE = bytes(SIGNATURE_BYTES)
_MAGIC_V1 = b"tidechain/safety/v1\n"
_MAGIC = b"tidechain/safety/v2\n"
_LAYOUT = struct.Struct(">QIB32sIB32s")
_PREVOTE_LAYOUT = struct.Struct(f">B32s{SIGNATURE_BYTES}s")
_PRECOMMIT_LAYOUT = struct.Struct(f">B32s{SIGNATURE_BYTES}s{SIGNATURE_BYTES}s")
ENCODED_BYTES_V1 = len(_MAGIC_V1) + _LAYOUT.size
_ROUND_LAYOUT = struct.Struct(">I")
_VOTES_BYTES = _PREVOTE_LAYOUT.size + _PRECOMMIT_LAYOUT.size
ENCODED_BYTES = len(_MAGIC) + _LAYOUT.size + _VOTES_BYTES + _ROUND_LAYOUT.size + _VOTES_BYTES


class SignStep(IntEnum):
    """Steps in signing order within one (height, round)."""

    NONE = 0
    PROPOSAL = 1
    PREVOTE = 2
    PRECOMMIT = 3


class _VoteTag(IntEnum):
    """How an own vote is stored in the record."""

    ABSENT = 0
    NIL = 1
    BLOCK = 2


@dataclass(frozen=True)
class OwnVote:
    """One of our own votes at the state's (height, round): what a restarted validator
    needs to rebuild and re-send the very message it signed (kind, height, round and
    voter come from the state and the replica)."""

    block_hash: bytes | None  # None: a vote for nil
    signature: bytes
    checkpoint_signature: bytes | None = None  # only on a precommit for a block

    def __post_init__(self) -> None:
        invariant(self.block_hash is None or len(self.block_hash) == DIGEST_BYTES,
                  "own vote block hash length")
        invariant(len(self.signature) == SIGNATURE_BYTES, "own vote signature length")
        invariant(self.checkpoint_signature is None
                  or len(self.checkpoint_signature) == SIGNATURE_BYTES,
                  "own vote checkpoint signature length")


@dataclass(frozen=True)
class EarlierVotes:
    """Our own votes of the last round before the state's round in which we voted, at
    the state's height. Peers still in that round may need them (see the replica)."""

    round: int
    prevote: OwnVote | None
    precommit: OwnVote | None

    def __post_init__(self) -> None:
        invariant(self.prevote is not None or self.precommit is not None,
                  "earlier votes without a vote")


@dataclass(frozen=True)
class SafetyState:
    """The last signed (height, round, step) with the digest of its signed bytes, the
    lock at that height (locked_round -1: none), our own prevote and precommit of that
    (height, round) if we signed them (None: not signed, or not kept), and our votes
    of the last earlier round we voted in at that height."""

    height: int = 0
    round: int = 0
    step: SignStep = SignStep.NONE
    signed_digest: bytes = _NO_DIGEST
    locked_round: int = -1
    locked_hash: bytes | None = None
    prevote: OwnVote | None = None
    precommit: OwnVote | None = None
    earlier: EarlierVotes | None = None

    def __post_init__(self) -> None:
        invariant(0 <= self.height <= MAX_HEIGHT and 0 <= self.round <= MAX_ROUND,
                  "safety state height/round out of range")
        invariant(len(self.signed_digest) == DIGEST_BYTES, "safety digest length")
        invariant((self.locked_round == -1) == (self.locked_hash is None),
                  "a lock has both a round and a block hash")
        invariant(-1 <= self.locked_round <= self.round, "lock round after the last signature")
        problem = (_own_votes_problem(self, self.prevote, self.precommit)
                   or _earlier_votes_problem(self, self.earlier))
        invariant(problem is None, f"own votes: {problem}")

    def encode(self) -> bytes:
        """Fixed-width record (v2): magic || height u64 || round u32 || step u8 ||
        digest 32 || locked_round + 1 u32 || has_lock u8 || locked_hash 32 (zeros if
        none) || prevote: tag u8 (0 absent, 1 nil, 2 block) || block_hash 32 ||
        signature 64 || precommit: the same || checkpoint_signature 64 || earlier
        round + 1 u32 (0: none) || its prevote || its precommit. Absent fields are
        zeros."""
        head = _LAYOUT.pack(
            self.height, self.round, self.step, self.signed_digest, self.locked_round + 1,
            self.locked_hash is not None, self.locked_hash or _NO_DIGEST)
        earlier = self.earlier
        return (_MAGIC + head + _encode_votes(self.prevote, self.precommit)
                + _ROUND_LAYOUT.pack(0 if earlier is None else earlier.round + 1)
                + _encode_votes(None if earlier is None else earlier.prevote,
                                None if earlier is None else earlier.precommit))

    @classmethod
    def decode(cls, data: bytes) -> SafetyState:
        """Inverse of `encode`; DecodeError for anything `encode` could not produce.
        A v1 record (before own votes were kept) decodes to a state without them."""
        if len(data) == ENCODED_BYTES_V1 and data.startswith(_MAGIC_V1):
            return _decode_head(data[len(_MAGIC_V1):])
        if len(data) != ENCODED_BYTES or not data.startswith(_MAGIC):
            raise DecodeError("not a tidechain safety record (v2)")
        at = len(_MAGIC)
        state = _decode_head(data[at:at + _LAYOUT.size])
        at += _LAYOUT.size
        prevote, precommit = _decode_votes(data[at:at + _VOTES_BYTES])
        at += _VOTES_BYTES
        (earlier_round1,) = _ROUND_LAYOUT.unpack(data[at:at + _ROUND_LAYOUT.size])
        at += _ROUND_LAYOUT.size
        earlier_prevote, earlier_precommit = _decode_votes(data[at:])
        earlier = None
        if earlier_round1 > 0:
            if earlier_prevote is None and earlier_precommit is None:
                raise DecodeError("safety record: an earlier round without votes")
            earlier = EarlierVotes(earlier_round1 - 1, earlier_prevote, earlier_precommit)
        elif earlier_prevote is not None or earlier_precommit is not None:
            raise DecodeError("safety record: earlier votes without their round")
        problem = (_own_votes_problem(state, prevote, precommit)
                   or _earlier_votes_problem(state, earlier))
        if problem is not None:
            raise DecodeError(f"safety record: {problem}")
        return replace(state, prevote=prevote, precommit=precommit, earlier=earlier)


def _own_votes_problem(state: SafetyState, prevote: OwnVote | None,
                       precommit: OwnVote | None) -> str | None:
    """Why `prevote` and `precommit` cannot be the own votes kept with `state`, or None."""
    if prevote is not None and state.step < SignStep.PREVOTE:
        return "a prevote kept before the prevote step"
    if precommit is not None and state.step is not SignStep.PRECOMMIT:
        return "a precommit kept before the precommit step"
    if precommit is not None and precommit.block_hash is not None and (
            state.locked_round, state.locked_hash) != (state.round, precommit.block_hash):
        return "a precommit for a block locks it at its round"
    return _vote_shape_problem(prevote, precommit)


def _earlier_votes_problem(state: SafetyState, earlier: EarlierVotes | None) -> str | None:
    if earlier is None:
        return None
    if not 0 <= earlier.round < state.round:
        return "earlier votes not of an earlier round"
    precommit = earlier.precommit
    if precommit is not None and precommit.block_hash is not None and (
            state.locked_round < earlier.round):
        return "an earlier precommit for a block without a lock since"
    return _vote_shape_problem(earlier.prevote, precommit)


def _vote_shape_problem(prevote: OwnVote | None, precommit: OwnVote | None) -> str | None:
    if prevote is not None and prevote.checkpoint_signature is not None:
        return "a prevote carries no checkpoint signature"
    if precommit is not None and (
            (precommit.block_hash is None) != (precommit.checkpoint_signature is None)):
        return "only a precommit for a block carries a checkpoint signature"
    return None


def _encode_votes(prevote: OwnVote | None, precommit: OwnVote | None) -> bytes:
    return (_PREVOTE_LAYOUT.pack(_tag(prevote), _hash_of(prevote), _sig_of(prevote))
            + _PRECOMMIT_LAYOUT.pack(_tag(precommit), _hash_of(precommit),
                                     _sig_of(precommit), _cp_sig_of(precommit)))


def _decode_votes(data: bytes) -> tuple[OwnVote | None, OwnVote | None]:
    tag, block_hash, signature = _PREVOTE_LAYOUT.unpack(data[:_PREVOTE_LAYOUT.size])
    prevote = _decode_vote(tag, block_hash, signature, None)
    tag, block_hash, signature, checkpoint_signature = _PRECOMMIT_LAYOUT.unpack(
        data[_PREVOTE_LAYOUT.size:])
    return prevote, _decode_vote(tag, block_hash, signature, checkpoint_signature)


def _tag(vote: OwnVote | None) -> int:
    if vote is None:
        return _VoteTag.ABSENT
    return _VoteTag.NIL if vote.block_hash is None else _VoteTag.BLOCK


def _hash_of(vote: OwnVote | None) -> bytes:
    return _NO_DIGEST if vote is None or vote.block_hash is None else vote.block_hash


def _sig_of(vote: OwnVote | None) -> bytes:
    return _NO_SIGNATURE if vote is None else vote.signature


def _cp_sig_of(vote: OwnVote | None) -> bytes:
    if vote is None or vote.checkpoint_signature is None:
        return _NO_SIGNATURE
    return vote.checkpoint_signature


def _decode_head(data: bytes) -> SafetyState:
    height, round, step, digest, lock_round1, has_lock, lock_hash = _LAYOUT.unpack(data)
    if step not in SignStep.__members__.values() or has_lock not in (0, 1):
        raise DecodeError("safety record: bad step or lock flag")
    if has_lock != (lock_round1 > 0) or (not has_lock and lock_hash != _NO_DIGEST):
        raise DecodeError("safety record: inconsistent lock")
    if height > MAX_HEIGHT or round > MAX_ROUND or lock_round1 - 1 > round:
        raise DecodeError("safety record: height or round out of range")
    return SafetyState(height, round, SignStep(step), digest, lock_round1 - 1,
                       lock_hash if has_lock else None)


def _decode_vote(tag: int, block_hash: bytes, signature: bytes,
                 checkpoint_signature: bytes | None) -> OwnVote | None:
    """One own-vote field (`checkpoint_signature` None: a prevote, which has no such
    field); zeros wherever `encode` writes zeros."""
    unused_checkpoint = checkpoint_signature in (None, _NO_SIGNATURE)
    if tag == _VoteTag.ABSENT:
        if block_hash != _NO_DIGEST or signature != _NO_SIGNATURE or not unused_checkpoint:
            raise DecodeError("safety record: an absent vote has non-zero fields")
        return None
    if tag == _VoteTag.NIL:
        if block_hash != _NO_DIGEST or not unused_checkpoint:
            raise DecodeError("safety record: a nil vote names a block")
        return OwnVote(None, signature)
    if tag == _VoteTag.BLOCK:
        # A precommit for a block carries its checkpoint signature; a prevote has none.
        return OwnVote(block_hash, signature, checkpoint_signature)
    raise DecodeError("safety record: bad vote tag")


def may_sign(state: SafetyState, height: int, round: int, step: SignStep,
             digest: bytes) -> bool:
    """Rule 1: strictly later than the last signature, or the very same bytes again."""
    new, last = (height, round, step), (state.height, state.round, state.step)
    return new > last or (new == last and digest == state.signed_digest)


def after_signing(state: SafetyState, height: int, round: int, step: SignStep, digest: bytes,
                  lock_hash: bytes | None = None) -> SafetyState:
    """The state once we have signed (height, round, step). A precommit for a block
    passes `lock_hash`: it locks that block at `round` (rule 2). Moving to a later
    round of the same height, the own votes of the last round become the earlier
    ones (if there are any); another height drops them all. `with_own_vote` adds the
    vote just signed."""
    invariant(may_sign(state, height, round, step, digest), "signing what the rules forbid")
    invariant(lock_hash is None or step is SignStep.PRECOMMIT, "only a precommit locks")
    locked_round, locked_hash = lock_at(state, height)
    if lock_hash is not None:
        locked_round, locked_hash = round, lock_hash
    prevote, precommit, earlier = state.prevote, state.precommit, state.earlier
    if height != state.height:
        prevote = precommit = earlier = None
    elif round != state.round:
        if prevote is not None or precommit is not None:
            earlier = EarlierVotes(state.round, prevote, precommit)
        prevote = precommit = None
    return replace(state, height=height, round=round, step=step, signed_digest=digest,
                   locked_round=locked_round, locked_hash=locked_hash, prevote=prevote,
                   precommit=precommit, earlier=earlier)


def with_own_vote(state: SafetyState, vote: OwnVote) -> SafetyState:
    """`state` keeping `vote`, the vote of its last signed step (prevote or precommit),
    so that it is persisted with the state and can be re-sent after a restart."""
    if state.step is SignStep.PREVOTE:
        return replace(state, prevote=vote)
    invariant(state.step is SignStep.PRECOMMIT, "an own vote kept at a non-vote step")
    return replace(state, precommit=vote)


def lock_at(state: SafetyState, height: int) -> tuple[int, bytes | None]:
    """(locked_round, locked_hash) at `height`; a lock never outlives its height."""
    if state.height != height:
        return -1, None
    return state.locked_round, state.locked_hash


def may_prevote_for(state: SafetyState, height: int, block_hash: bytes, pol_round: int) -> bool:
    """Rule 2 for a proposal of `block_hash` whose proof-of-lock round is `pol_round`
    (-1: none). The caller has checked that a quorum prevoted it at `pol_round`."""
    locked_round, locked_hash = lock_at(state, height)
    return locked_round <= pol_round or locked_hash == block_hash
