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
allows leaves the node, so a restarted validator cannot contradict itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from tidechain.consensus.params import MAX_HEIGHT, MAX_ROUND
from tidechain.core.errors import DecodeError, invariant

DIGEST_BYTES = 32
_NO_DIGEST = bytes(DIGEST_BYTES)
_MAGIC = b"tidechain/safety/v1\n"
_LAYOUT = struct.Struct(">QIB32sIB32s")
ENCODED_BYTES = len(_MAGIC) + _LAYOUT.size


class SignStep(IntEnum):
    """Steps in signing order within one (height, round)."""

    NONE = 0
    PROPOSAL = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True)
class SafetyState:
    """The last signed (height, round, step) with the digest of its signed bytes, and
    the lock at that height (locked_round -1: none)."""

    height: int = 0
    round: int = 0
    step: SignStep = SignStep.NONE
    signed_digest: bytes = _NO_DIGEST
    locked_round: int = -1
    locked_hash: bytes | None = None

    def __post_init__(self) -> None:
        invariant(0 <= self.height <= MAX_HEIGHT and 0 <= self.round <= MAX_ROUND,
                  "safety state height/round out of range")
        invariant(len(self.signed_digest) == DIGEST_BYTES, "safety digest length")
        invariant((self.locked_round == -1) == (self.locked_hash is None),
                  "a lock has both a round and a block hash")
        invariant(-1 <= self.locked_round <= self.round, "lock round after the last signature")

    def encode(self) -> bytes:
        """Fixed-width record: magic || height u64 || round u32 || step u8 || digest 32
        || locked_round + 1 u32 || has_lock u8 || locked_hash 32 (zeros if none)."""
        return _MAGIC + _LAYOUT.pack(
            self.height, self.round, self.step, self.signed_digest, self.locked_round + 1,
            self.locked_hash is not None, self.locked_hash or _NO_DIGEST)

    @classmethod
    def decode(cls, data: bytes) -> SafetyState:
        """Inverse of `encode`; DecodeError for anything `encode` could not produce."""
        if len(data) != ENCODED_BYTES or not data.startswith(_MAGIC):
            raise DecodeError("not a tidechain safety record (v1)")
        height, round, step, digest, lock_round1, has_lock, lock_hash = _LAYOUT.unpack(
            data[len(_MAGIC):])
        if step not in SignStep.__members__.values() or has_lock not in (0, 1):
            raise DecodeError("safety record: bad step or lock flag")
        if has_lock != (lock_round1 > 0) or (not has_lock and lock_hash != _NO_DIGEST):
            raise DecodeError("safety record: inconsistent lock")
        if height > MAX_HEIGHT or round > MAX_ROUND or lock_round1 - 1 > round:
            raise DecodeError("safety record: height or round out of range")
        return cls(height, round, SignStep(step), digest, lock_round1 - 1,
                   lock_hash if has_lock else None)


def may_sign(state: SafetyState, height: int, round: int, step: SignStep,
             digest: bytes) -> bool:
    """Rule 1: strictly later than the last signature, or the very same bytes again."""
    new, last = (height, round, step), (state.height, state.round, state.step)
    return new > last or (new == last and digest == state.signed_digest)


def after_signing(state: SafetyState, height: int, round: int, step: SignStep, digest: bytes,
                  lock_hash: bytes | None = None) -> SafetyState:
    """The state once we have signed (height, round, step). A precommit for a block
    passes `lock_hash`: it locks that block at `round` (rule 2)."""
    invariant(may_sign(state, height, round, step, digest), "signing what the rules forbid")
    invariant(lock_hash is None or step is SignStep.PRECOMMIT, "only a precommit locks")
    locked_round, locked_hash = lock_at(state, height)
    if lock_hash is not None:
        locked_round, locked_hash = round, lock_hash
    return replace(state, height=height, round=round, step=step, signed_digest=digest,
                   locked_round=locked_round, locked_hash=locked_hash)


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
