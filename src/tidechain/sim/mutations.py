"""Rule-weakening mutations of the replica, to show the step auditor catches them.

Test-only: nothing applies one unless asked (`run_seed(..., mutation=NAME)`, or
`python -m tidechain.sim --mutation NAME`). Each patches `Replica` (or the safety
rule it calls) with `unittest.mock.patch.object` for the duration of a
`with applied(NAME):` block, in this process only: a campaign's worker process
applies it itself (`campaign.run_seed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from unittest import mock

import tidechain.consensus.safety as safety
from tidechain.consensus import Proposal, SafetyState, ValidatorSet, Vote
from tidechain.consensus.messages import BlockLike
from tidechain.consensus.replica import Replica
from tidechain.consensus.safety import EarlierVotes, OwnVote

MUTATIONS: dict[str, str] = {
    "lock-off-by-one": "line 28 off by one: a proof-of-lock round vr unlocks a lock taken "
                       "at vr + 1 (safety.may_prevote_for: locked_round <= pol_round + 1)",
    "forget-lock": "a restart forgets the lock: Replica.restore drops the locked round, "
                   "block and proof (and the block precommits the safety record keeps)",
    "weak-polka-precommit": "line 36 on f+1 prevotes: precommit (and lock) a block with "
                            "f+1 prevotes for it instead of 2f+1",
    "pol-without-polka": "line 28 without its quorum: prevote a proof-of-lock proposal "
                         "without holding 2f+1 prevotes for its block at pol_round",
}
"""Name -> one-line description."""


@dataclass(frozen=True)
class _ForcedQuorum(ValidatorSet):
    """The same validators (same digest, same proposers) with another quorum."""

    forced: int = 0

    @property
    def quorum(self) -> int:
        return self.forced


@cache
def _with_quorum(validators: ValidatorSet, quorum: int) -> ValidatorSet:
    return _ForcedQuorum(validators.validators, quorum)


def _off_by_one(state: SafetyState, height: int, block_hash: bytes, pol_round: int) -> bool:
    locked_round, locked_hash = safety.lock_at(state, height)
    if pol_round < 0:  # line 22, untouched
        return locked_round == -1 or locked_hash == block_hash
    return locked_round <= pol_round + 1 or locked_hash == block_hash


def _without_lock(state: SafetyState) -> SafetyState:
    """`state` with no lock, and without the block precommits that imply one."""
    def keep(vote: OwnVote | None) -> OwnVote | None:
        return None if vote is None or vote.block_hash is not None else vote

    earlier = state.earlier
    if earlier is not None:
        kept = keep(earlier.precommit)
        earlier = (None if earlier.prevote is None and kept is None
                   else EarlierVotes(earlier.round, earlier.prevote, kept))
    return replace(state, locked_round=-1, locked_hash=None, precommit=keep(state.precommit),
                   earlier=earlier)


_resume = Replica._resume
_rule_precommit_on_polka = Replica._rule_precommit_on_polka
_prevote_target = Replica._prevote_target


def _forgetful_resume(self: Replica, state: SafetyState, locked_block: BlockLike | None,
                      lock_proof: tuple[Vote, ...] = ()) -> None:
    _resume(self, _without_lock(state), None, ())


def _weak_precommit(self: Replica) -> bool:
    real = self._validators
    self._validators = _with_quorum(real, real.weak_quorum)
    try:
        return _rule_precommit_on_polka(self)
    finally:
        self._validators = real


def _pol_without_polka(self: Replica, proposal: Proposal) -> tuple[bool, BlockLike | None]:
    if proposal.pol_round < 0:
        return _prevote_target(self, proposal)
    real = self._validators  # its only quorum test is the polka at pol_round
    self._validators = _with_quorum(real, 0)
    try:
        return _prevote_target(self, proposal)
    finally:
        self._validators = real


_PATCHES: dict[str, Callable[[], contextlib.AbstractContextManager[object]]] = {
    "lock-off-by-one": lambda: mock.patch.object(safety, "may_prevote_for", _off_by_one),
    "forget-lock": lambda: mock.patch.object(Replica, "_resume", _forgetful_resume),
    "weak-polka-precommit": lambda: mock.patch.object(
        Replica, "_rule_precommit_on_polka", _weak_precommit),
    "pol-without-polka": lambda: mock.patch.object(Replica, "_prevote_target",
                                                   _pol_without_polka),
}


@contextlib.contextmanager
def applied(name: str | None) -> Iterator[None]:
    """Run the block with mutation `name` applied (None: the replica as shipped)."""
    if name is None:
        yield
        return
    if name not in _PATCHES:
        raise ValueError(f"unknown mutation {name!r}; known: {', '.join(MUTATIONS)}")
    with _PATCHES[name]():
        yield

