"""The Tendermint replica: one validator end to end, four validators through a seeded
in-test router (drops, delays, crashes, equivocating twins, invalid blocks), safety
rules, certificates, and hostile input.

A failing router test names its seed; `run_network(seed, ...)` replays it exactly."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import itertools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.consensus import (
    PRECOMMIT,
    PREVOTE,
    Action,
    Broadcast,
    BuildProposal,
    Commit,
    CommitCertificate,
    ConsensusParams,
    Event,
    Message,
    MessageReceived,
    PersistSafety,
    Proposal,
    ProposalBuilt,
    ProposalValidated,
    Replica,
    SafetyState,
    SendTo,
    SignStep,
    Start,
    Step,
    Tick,
    TransactionsAvailable,
    ValidateProposal,
    ValidatorInfo,
    ValidatorSet,
    Vote,
)
from tidechain.consensus import safety as rules
from tidechain.consensus.messages import sign_proposal, sign_vote
from tidechain.consensus.safety import EarlierVotes, OwnVote
from tidechain.consensus.votebook import VoteBook
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import DecodeError, PeerError, ProofError, Rejected
from tidechain.sim.checkers import signed_slot, signer_of

# --- fixtures as plain functions ---------------------------------------------------------

FAST = ConsensusParams(
    timeout_propose_ms=200, timeout_propose_delta_ms=50,
    timeout_prevote_ms=100, timeout_prevote_delta_ms=50,
    timeout_precommit_ms=100, timeout_precommit_delta_ms=50,
    timeout_max_ms=2000, block_interval_ms=10, catchup_interval_ms=100,
    resend_interval_ms=150,
)


def signing_key(i: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"consensus test key %d" % i).digest())


def make_validators(n: int) -> tuple[ValidatorSet, list[SigningKey]]:
    keys = [signing_key(i) for i in range(n)]
    return ValidatorSet(tuple(ValidatorInfo(f"v{i}", k.public_key)
                              for i, k in enumerate(keys))), keys


@dataclass(frozen=True)
class FakeBlock:
    height: int
    block_hash: bytes
    checkpoint_body: bytes


def make_block(height: int, tag: str) -> FakeBlock:
    block_hash = hashlib.sha256(f"block {height} {tag}".encode()).digest()
    body = f"tidechain/test\n{height}\n{base64.b64encode(block_hash).decode()}\n".encode()
    return FakeBlock(height, block_hash, body)


def replica(n: int, index: int = 0, params: ConsensusParams = FAST,
            committed_height: int = 0) -> Replica:
    validators, keys = make_validators(n)
    return Replica(validators=validators, key=keys[index], name=f"v{index}", params=params,
                   committed_height=committed_height)


def of_type(actions: list[Action], kind: type) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


@dataclass
class Disk:
    """What a shell made durable, and the check that nothing we signed left first."""

    name: str
    safety: SafetyState | None = None
    committed: dict[int, bytes] = field(default_factory=dict)
    verified: set[bytes] = field(default_factory=set)  # certificates already checked

    def execute(self, actions: list[Action], validators: ValidatorSet) -> None:
        for action in actions:
            if isinstance(action, PersistSafety):
                if self.safety is not None:
                    old = (self.safety.height, self.safety.round, self.safety.step)
                    assert (action.state.height, action.state.round, action.state.step) >= old
                self.safety = action.state
            elif isinstance(action, Broadcast | SendTo) and signer_of(action.message) == self.name:
                self.assert_covered(action.message)
            elif isinstance(action, Commit):
                cert = action.certificate
                encoded = cert.encode() + action.block.checkpoint_body
                if encoded not in self.verified:  # the same bytes verify the same way
                    cert.verify(validators, action.block.checkpoint_body)
                    self.verified.add(encoded)
                assert cert.height == action.block.height == len(self.committed) + 1
                self.committed[cert.height] = action.block.block_hash

    def assert_covered(self, message: Message) -> None:
        """Our signed message may leave only behind a persisted safety state at or past
        its (height, round, step), or behind a durable commit of its height."""
        height, round, step = signed_slot(message)
        if self.committed and max(self.committed) >= height:
            return
        state = self.safety
        assert state is not None, f"{message} sent before any PersistSafety"
        assert (state.height, state.round, state.step) >= (height, round, step), (
            f"{message} sent before its safety state was persisted")


def run_single(r: Replica, disk: Disk, validators: ValidatorSet, heights: int,
               start_ms: int = 1_000) -> list[list[Action]]:
    """Drive a one-validator replica like the node shell does, for `heights` blocks."""
    log = []
    now = start_ms
    actions = r.step(Start(now))
    while len(disk.committed) < heights:
        log.append(actions)
        disk.execute(actions, validators)
        builds = of_type(actions, BuildProposal)
        if builds:
            b = builds[0]
            assert isinstance(b, BuildProposal)
            block = make_block(b.height, f"t{b.time_ms}")
            actions = r.step(ProposalBuilt(b.height, b.round, block))
        else:
            now += 10
            actions = r.step(Tick(now))
    return log


# --- validator set ----------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "quorum", "weak"), [(1, 1, 1), (2, 2, 1), (3, 3, 1), (4, 3, 2),
                                                   (5, 4, 2), (7, 5, 3), (10, 7, 4)])
def test_quorum_is_n_minus_f(n: int, quorum: int, weak: int) -> None:
    validators, _ = make_validators(n)
    assert (validators.quorum, validators.weak_quorum) == (quorum, weak)
    assert [validators.proposer(1, r).name for r in range(n)] == [
        f"v{(1 + r) % n}" for r in range(n)]


def test_bad_validator_sets_are_rejected() -> None:
    k = signing_key(0).public_key
    with pytest.raises(Rejected):
        ValidatorSet(())
    with pytest.raises(Rejected):
        ValidatorSet((ValidatorInfo("a", k), ValidatorInfo("a", signing_key(1).public_key)))
    with pytest.raises(Rejected):
        ValidatorSet((ValidatorInfo("a", k), ValidatorInfo("b", k)))
    with pytest.raises(Rejected):
        ValidatorSet((ValidatorInfo("a", b"short"),))


def test_params_reject_a_spinning_configuration() -> None:
    with pytest.raises(ValueError):
        ConsensusParams(block_interval_ms=0)
    ConsensusParams(block_interval_ms=0, create_empty_blocks=False)
    with pytest.raises(ValueError):
        ConsensusParams(timeout_propose_ms=0)


# --- one validator ----------------------------------------------------------------------------

def test_single_validator_commits_through_the_quorum_path() -> None:
    validators, _ = make_validators(1)
    r = replica(1)
    assert r.step(Start(1_000)) == [BuildProposal(1, 0, 1_000)]
    block = make_block(1, "a")
    actions = r.step(ProposalBuilt(1, 0, block))
    commit = actions[0]
    assert isinstance(commit, Commit) and commit.block == block
    commit.certificate.verify(validators, block.checkpoint_body)
    sent = [a.message for a in actions if isinstance(a, Broadcast)]
    assert [signed_slot(m) for m in sent] == [
        (1, 0, SignStep.PROPOSAL), (1, 0, SignStep.PREVOTE), (1, 0, SignStep.PRECOMMIT)]
    assert r.height == 2 and r.round == 0


def test_single_validator_advances_heights_with_monotonic_block_times() -> None:
    validators, _ = make_validators(1)
    r, disk = replica(1), Disk("v0")
    log = run_single(r, disk, validators, heights=6)
    assert sorted(disk.committed) == [1, 2, 3, 4, 5, 6] and r.height == 7
    times = [a.time_ms for actions in log for a in actions if isinstance(a, BuildProposal)]
    assert times == sorted(set(times)) and len(times) == 6
    assert all(b - a >= FAST.block_interval_ms for a, b in itertools.pairwise(times))


def test_single_validator_idles_without_transactions() -> None:
    params = replace(FAST, create_empty_blocks=False)
    r = replica(1, params=params)
    assert r.step(Start(0)) == []
    assert all(r.step(Tick(t)) == [] for t in range(10, 60_000, 10))  # no spinning
    actions = r.step(TransactionsAvailable())
    assert actions == [BuildProposal(1, 0, 59_990)]
    actions = r.step(ProposalBuilt(1, 0, make_block(1, "tx")))
    assert of_type(actions, Commit) and r.height == 2
    assert all(r.step(Tick(t)) == [] for t in range(60_000, 70_000, 10))  # idle again


def test_single_validator_round_timeouts_back_off() -> None:
    r = replica(1)
    r.step(Start(0))  # BuildProposal for round 0, never answered
    starts: list[tuple[int, int]] = []
    for now in range(10, 5_000, 10):
        for action in r.step(Tick(now)):
            if isinstance(action, BuildProposal):
                starts.append((action.round, now))
    rounds = [rd for rd, _ in starts]
    assert rounds[:4] == [1, 2, 3, 4]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(starts)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]  # linear backoff per round


def test_commit_sends_signed_messages_only_after_it() -> None:
    """With n = 1 the whole round happens in one step: nothing signed leaves before
    the Commit, so a crash either loses everything or keeps the block."""
    r = replica(1)
    r.step(Start(0))
    actions = r.step(ProposalBuilt(1, 0, make_block(1, "x")))
    kinds = [type(a).__name__ for a in actions]
    assert kinds[:4] == ["Commit", "Broadcast", "Broadcast", "Broadcast"]
    assert not of_type(actions, PersistSafety)


# --- four validators, stepped by hand -------------------------------------------------------

def test_prevote_is_persisted_before_it_is_broadcast() -> None:
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    block = make_block(1, "p")
    proposal = sign_proposal(keys[1], "v1", validators.digest, 1, 0, block, -1)
    actions = r.step(MessageReceived("v1", proposal))
    assert actions == [ValidateProposal(proposal)]
    actions = r.step(ProposalValidated(proposal, True))
    assert isinstance(actions[0], PersistSafety) and isinstance(actions[1], Broadcast)
    vote = actions[1].message
    assert isinstance(vote, Vote) and vote.kind is PREVOTE and vote.block_hash == block.block_hash
    assert actions[0].state.step is SignStep.PREVOTE


def _locked_replica() -> tuple[Replica, SafetyState, ValidatorSet, list[SigningKey], FakeBlock]:
    """v0 of four, locked on block X at (1, 0); returns its last persisted state."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x = make_block(1, "X")
    proposal = sign_proposal(keys[1], "v1", validators.digest, 1, 0, x, -1)
    r.step(MessageReceived("v1", proposal))
    persisted: list[SafetyState] = []
    events: list[Event] = [ProposalValidated(proposal, True)]
    events += [MessageReceived(f"v{i}", sign_vote(keys[i], f"v{i}", validators.digest,
                                                  PREVOTE, 1, 0, x)) for i in (1, 2)]
    for event in events:
        persisted += [a.state for a in r.step(event) if isinstance(a, PersistSafety)]
    state = persisted[-1]
    assert state.step is SignStep.PRECOMMIT and state.locked_hash == x.block_hash
    return r, state, validators, keys, x


def test_restore_resumes_in_the_signed_round_and_resends_its_votes() -> None:
    """A restarted validator takes up the round of its last signature and sends its
    votes of that round again, the very bytes, with no new signature (L2)."""
    _, state, validators, keys, x = _locked_replica()
    restored = Replica.restore(validators=validators, key=keys[0], name="v0", params=FAST,
                               safety=state, committed_height=0)
    assert (restored.height, restored.round) == (1, 0)
    actions = restored.step(Start(10_000))
    assert not of_type(actions, PersistSafety) and not of_type(actions, BuildProposal)
    assert [a.message for a in actions if isinstance(a, Broadcast)] == [
        sign_vote(keys[0], "v0", validators.digest, kind, 1, 0, x) for kind in (PREVOTE,
                                                                               PRECOMMIT)]
    assert restored.current_step is Step.PRECOMMIT
    # A round-0 proposal for another block: stored, never voted on (we voted in round 0).
    y = make_block(1, "Y")
    old = sign_proposal(keys[1], "v1", validators.digest, 1, 0, y, -1)
    actions = restored.step(MessageReceived("v1", old))
    actions += restored.step(ProposalValidated(old, True))
    assert not [a for a in actions if isinstance(a, Broadcast | PersistSafety)]
    # Two nil precommits complete a quorum of round-0 precommits with our own: the
    # precommit timer moves us to round 1, whose proposer offers Z without a
    # proof-of-lock; locked on X, v0 prevotes nil.
    for i in (1, 2):
        restored.step(MessageReceived(f"v{i}", sign_vote(keys[i], f"v{i}", validators.digest,
                                                         PRECOMMIT, 1, 0, None)))
    now = 10_000
    while restored.round == 0 and now < 10_500:
        now += 10
        restored.step(Tick(now))
    assert restored.round == 1
    z = make_block(1, "Z")
    fresh = sign_proposal(keys[2], "v2", validators.digest, 1, 1, z, -1)
    restored.step(MessageReceived("v2", fresh))
    actions = restored.step(ProposalValidated(fresh, True))
    votes = [a.message for a in actions if isinstance(a, Broadcast)]
    assert len(votes) == 1 and isinstance(votes[0], Vote)
    assert votes[0].kind is PREVOTE and votes[0].block_hash is None and votes[0].round == 1


def test_restore_sends_the_votes_of_the_previous_round_once() -> None:
    """v0 voted in round 0, then prevoted nil in round 1 and crashed: peers still in
    round 0 may need its round-0 votes, which the record keeps too."""
    _, state, validators, keys, x = _locked_replica()
    nil = sign_vote(keys[0], "v0", validators.digest, PREVOTE, 1, 1, None)
    moved = rules.with_own_vote(rules.after_signing(
        state, 1, 1, SignStep.PREVOTE, hashlib.sha256(nil.sign_bytes(validators.digest))
        .digest()), OwnVote(None, nil.signature))
    assert moved.earlier is not None and moved.earlier.round == 0
    restored = Replica.restore(validators=validators, key=keys[0], name="v0", params=FAST,
                               safety=SafetyState.decode(moved.encode()), committed_height=0)
    actions = restored.step(Start(0))
    old = [sign_vote(keys[0], "v0", validators.digest, k, 1, 0, x) for k in (PREVOTE,
                                                                           PRECOMMIT)]
    assert [a.message for a in actions if isinstance(a, Broadcast)] == [nil, *old]
    later = [a.message for now in range(10, 400, 10) for a in restored.step(Tick(now))
             if isinstance(a, Broadcast)]
    assert nil in later and not set(old) & set(later)  # only this round's are re-sent


def test_restore_after_proposing_does_not_build_again() -> None:
    """v1 proposed at (1, 0) and crashed: it resumes in round 0 without asking for a
    second block (signing another proposal there would be refused anyway)."""
    validators, keys = make_validators(4)
    r = replica(4, index=1)
    r.step(Start(0))
    actions = r.step(ProposalBuilt(1, 0, make_block(1, "mine")))
    states = [a.state for a in actions if isinstance(a, PersistSafety)]
    proposed = replace(states[-1], step=SignStep.PROPOSAL, prevote=None)
    restored = Replica.restore(validators=validators, key=keys[1], name="v1", params=FAST,
                               safety=proposed, committed_height=0)
    assert restored.step(Start(0)) == [] and (restored.round, restored.current_step) == (
        0, Step.PROPOSE)
    later = [a for now in range(10, 400, 10) for a in restored.step(Tick(now))]
    sent = [a.message for a in later if isinstance(a, Broadcast)]
    assert not of_type(later, BuildProposal)
    assert any(isinstance(m, Vote) and m.block_hash is None and m.round == 0 for m in sent)


def test_restored_validator_reproposes_its_locked_block() -> None:
    _, state, validators, keys, x = _locked_replica()
    # Say v0 last signed a nil precommit in round 2 (still locked from round 0). Once
    # round 2 ends it is round 3, its own turn to propose, and it offers the locked
    # block it got back from its shell.
    restored = Replica.restore(validators=validators, key=keys[0], name="v0", params=FAST,
                               safety=replace(state, round=2, locked_round=0, prevote=None,
                                              precommit=None),
                               committed_height=0, locked_block=x)
    assert restored.round == 2 and validators.proposer(1, 3).name == "v0"
    actions = restored.step(Start(0))
    for i in (1, 2, 3):
        actions += restored.step(MessageReceived(f"v{i}", sign_vote(
            keys[i], f"v{i}", validators.digest, PRECOMMIT, 1, 2, None)))
    for now in range(10, 400, 10):
        actions += restored.step(Tick(now))
    proposals = [a.message for a in actions if isinstance(a, Broadcast)
                 and isinstance(a.message, Proposal)]
    assert restored.round == 3 and proposals  # sent, then re-sent: the same proposal
    assert all(p == proposals[0] for p in proposals)
    assert proposals[0].block == x and proposals[0].pol_round == -1


def test_restore_from_an_older_height_starts_fresh() -> None:
    validators, keys = make_validators(1)
    old = SafetyState(height=3, round=5, step=SignStep.PRECOMMIT, signed_digest=bytes(32),
                      locked_round=5, locked_hash=bytes(32))
    r = Replica.restore(validators=validators, key=keys[0], name="v0", params=FAST,
                        safety=old, committed_height=7)
    assert (r.height, r.round) == (8, 0)
    assert of_type(r.step(Start(0)), BuildProposal)


def test_restore_ahead_of_the_store_stays_silent() -> None:
    """The safety record says height 5 but the store only has 3 (lost commits): the
    replica must not sign anything at heights 4 or 5 again."""
    validators, keys = make_validators(1)
    ahead = SafetyState(height=5, round=0, step=SignStep.PREVOTE, signed_digest=bytes(32))
    r = Replica.restore(validators=validators, key=keys[0], name="v0", params=FAST,
                        safety=ahead, committed_height=3)
    actions = r.step(Start(0))
    b = of_type(actions, BuildProposal)[0]
    assert isinstance(b, BuildProposal)
    actions = r.step(ProposalBuilt(b.height, b.round, make_block(4, "again")))
    assert not of_type(actions, Broadcast) and not of_type(actions, Commit)


def test_equivocating_votes_are_recorded_and_counted_once_per_block() -> None:
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    a, b = make_block(1, "a"), make_block(1, "b")
    first = sign_vote(keys[1], "v1", validators.digest, PREVOTE, 1, 0, a)
    second = sign_vote(keys[1], "v1", validators.digest, PREVOTE, 1, 0, b)
    r.step(MessageReceived("v1", first))
    assert r.step(MessageReceived("v2", second)) == []  # relayed: no PeerError for v2
    r.step(MessageReceived("v1", first))  # a repeat is not equivocation
    (evidence,) = r.evidence
    assert (evidence.signer, evidence.height, evidence.round) == ("v1", 1, 0)
    evidence.verify(validators)
    with pytest.raises(ProofError):
        replace(evidence, second=evidence.first).verify(validators)
    # v1 counts once for a and once for b: two each, no quorum for either.
    r.step(MessageReceived("v2", sign_vote(keys[2], "v2", validators.digest, PREVOTE, 1, 0, b)))
    r.step(MessageReceived("v3", sign_vote(keys[3], "v3", validators.digest, PREVOTE, 1, 0, a)))
    assert r.safety_state.step is SignStep.NONE  # no polka, no precommit, nothing signed


def test_vote_book_counts_every_block_a_validator_signed_within_bounds() -> None:
    validators, keys = make_validators(4)
    book = VoteBook(validators.digest)
    blocks = [make_block(1, t) for t in "abcd"]
    votes = [sign_vote(keys[3], "v3", validators.digest, PREVOTE, 1, 0, b) for b in blocks]
    assert book.add(votes[0], named=False).stored
    second = book.add(votes[1], named=False)
    assert second.stored and second.conflict == votes[0]
    third = book.add(votes[2], named=False)  # a third unnamed block: evidence only
    assert not third.stored and third.conflict == votes[0]
    assert book.add(votes[3], named=True).stored  # a proposal names it: it may matter
    assert not book.add(votes[1], named=True).stored  # one vote per voter and block
    tally = book.tally(PREVOTE, 0)
    assert tally.total == 1  # one validator, however many votes
    assert [tally.count(b.block_hash) for b in blocks] == [1, 1, 0, 1]
    assert tally.get("v3") == votes[0]


def test_proof_of_lock_counts_an_equivocators_other_vote() -> None:
    """L1 (docs/simulator.md): v0 kept v3's prevote for another block first; the
    proof-of-lock that includes v3's prevote for X must still count it."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x, junk = make_block(1, "X"), [make_block(1, t) for t in ("j1", "j2")]

    def prevote(i: int, round: int, block: FakeBlock | None) -> Vote:
        return sign_vote(keys[i], f"v{i}", validators.digest, PREVOTE, 1, round, block)

    first = sign_proposal(keys[1], "v1", validators.digest, 1, 0, x, -1)
    r.step(MessageReceived("v1", first))
    r.step(ProposalValidated(first, True))  # v0 prevotes X
    for vote in (prevote(3, 0, junk[0]), prevote(3, 0, junk[1]), prevote(2, 0, x),
                 prevote(1, 0, None)):
        r.step(MessageReceived(vote.voter, vote))
    assert r.safety_state.step is SignStep.PREVOTE  # X has v0 and v2 only: no polka
    # Round 1 (v1 and v2 are there): v2 re-proposes X with proof-of-lock round 0 and
    # relays the polka, v3's prevote for X included, after the proposal.
    for i in (1, 2):
        r.step(MessageReceived(f"v{i}", prevote(i, 1, None)))
    assert r.round == 1
    again = sign_proposal(keys[2], "v2", validators.digest, 1, 1, x, 0)
    actions = r.step(MessageReceived("v2", again))
    actions += r.step(MessageReceived("v2", prevote(3, 0, x)))
    sent = [a.message for a in actions if isinstance(a, Broadcast)]
    assert sent == [prevote(0, 1, x)]


def test_validator_behind_in_rounds_is_sent_the_votes_of_its_round() -> None:
    """v0 moved to round 1 on a quorum of round-0 precommits; v1, still in round 0,
    may never see v3's precommit again (v3 left the round). v0 relays what it holds."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    precommits = [sign_vote(keys[i], f"v{i}", validators.digest, PRECOMMIT, 1, 0, None)
                  for i in (1, 2, 3)]
    for vote in precommits:
        r.step(MessageReceived(vote.voter, vote))
    now = 0
    while r.round == 0:
        now += 10
        r.step(Tick(now))
    stale = sign_vote(keys[1], "v1", validators.digest, PREVOTE, 1, 0, None)
    replies = r.step(MessageReceived("v1", stale))
    sent = [a.message for a in replies if isinstance(a, SendTo) and a.peer == "v1"]
    assert set(precommits[1:]) <= set(sent) and precommits[0] not in sent
    assert r.step(MessageReceived("v1", stale)) == []  # rate-limited
    relayed = [a for a in r.step(MessageReceived("v2", precommits[0])) if isinstance(a, SendTo)]
    assert not relayed  # only a validator's own message shows where it is


def test_decides_with_the_block_from_a_later_proposal() -> None:
    """A quorum precommitted X in round 0, whose proposal v0 never got; round 1
    re-proposes X. The same hash is the same block: v0 commits it (round 0)."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x = make_block(1, "X")
    for i in (1, 2, 3):
        r.step(MessageReceived(f"v{i}", sign_vote(keys[i], f"v{i}", validators.digest,
                                                  PRECOMMIT, 1, 0, x)))
    later = sign_proposal(keys[2], "v2", validators.digest, 1, 1, x, -1)
    assert r.step(MessageReceived("v2", later)) == [ValidateProposal(later)]
    actions = r.step(ProposalValidated(later, True))
    commit = of_type(actions, Commit)[0]
    assert isinstance(commit, Commit) and commit.block == x and commit.certificate.round == 0
    commit.certificate.verify(validators, x.checkpoint_body)


def test_lagging_validator_is_sent_the_last_decision() -> None:
    validators, keys = make_validators(4)
    nodes = [replica(4, index=i) for i in range(4)]
    for n in nodes:
        n.step(Start(0))
    # v1 proposes at (1, 0); everyone but v3 hears everything.
    pending: list[tuple[int, str, Message]] = []

    def run(actions: list[Action], sender: int) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                pending.extend((d, f"v{sender}", a.message) for d in range(3) if d != sender)
            elif isinstance(a, ValidateProposal):
                run(nodes[sender].step(ProposalValidated(a.proposal, True)), sender)

    run(nodes[1].step(ProposalBuilt(1, 0, make_block(1, "lag"))), 1)
    while pending:
        dest, sender, message = pending.pop(0)
        run(nodes[dest].step(MessageReceived(sender, message)), dest)
    assert [n.height for n in nodes] == [2, 2, 2, 1]
    lagging_vote = sign_vote(keys[3], "v3", validators.digest, PREVOTE, 1, 0, None)
    replies = nodes[0].step(MessageReceived("v3", lagging_vote))
    assert replies and all(isinstance(a, SendTo) and a.peer == "v3" for a in replies)
    assert nodes[0].step(MessageReceived("v3", lagging_vote)) == []  # rate-limited
    for a in replies:
        assert isinstance(a, SendTo)
        for follow in nodes[3].step(MessageReceived("v0", a.message)):
            if isinstance(follow, ValidateProposal):
                nodes[3].step(ProposalValidated(follow.proposal, True))
    assert nodes[3].height == 2


# --- safety rules -------------------------------------------------------------------------

def test_safety_rules_refuse_going_back_or_signing_twice() -> None:
    s = rules.after_signing(SafetyState(), 1, 0, SignStep.PREVOTE, b"a" * 32)
    assert rules.may_sign(s, 1, 0, SignStep.PREVOTE, b"a" * 32)  # the same bytes again
    assert not rules.may_sign(s, 1, 0, SignStep.PREVOTE, b"b" * 32)
    assert not rules.may_sign(s, 1, 0, SignStep.PROPOSAL, b"c" * 32)
    assert rules.may_sign(s, 1, 0, SignStep.PRECOMMIT, b"d" * 32)
    locked = rules.after_signing(s, 1, 0, SignStep.PRECOMMIT, b"d" * 32, lock_hash=b"X" * 32)
    assert rules.may_prevote_for(locked, 1, b"X" * 32, -1)
    assert not rules.may_prevote_for(locked, 1, b"Y" * 32, -1)
    assert rules.may_prevote_for(locked, 1, b"Y" * 32, 0)  # proof-of-lock at the lock round
    assert rules.may_prevote_for(locked, 2, b"Y" * 32, -1)  # locks die with their height
    later = rules.after_signing(locked, 2, 0, SignStep.PREVOTE, b"e" * 32)
    assert later.locked_hash is None


slots = st.tuples(st.integers(1, 3), st.integers(0, 3), st.sampled_from(list(SignStep)[1:]),
                  st.sampled_from([bytes([i]) * 32 for i in range(4)]))


@settings(max_examples=200, deadline=None)
@given(st.lists(slots, max_size=40))
def test_safety_rules_never_allow_two_statements_per_slot(attempts: list[tuple[
        int, int, SignStep, bytes]]) -> None:
    state, signed = SafetyState(), dict[tuple[int, int, SignStep], bytes]()
    for height, round, step, digest in attempts:
        if rules.may_sign(state, height, round, step, digest):
            state = rules.after_signing(state, height, round, step, digest)
            assert signed.setdefault((height, round, step), digest) == digest
            assert all(slot <= (height, round, step) for slot in signed)


_hashes = st.binary(min_size=32, max_size=32)
_sigs = st.binary(min_size=64, max_size=64)


@st.composite
def safety_states(draw: st.DrawFn) -> SafetyState:
    """Any state the rules can produce: a lock, and own votes that fit the step."""
    height, round = draw(st.integers(0, 2**63 - 1)), draw(st.integers(0, 2**31 - 1))
    step = draw(st.sampled_from(list(SignStep)))
    locked_round = draw(st.sampled_from([-1, round]))
    locked_hash = None if locked_round == -1 else draw(_hashes)
    prevote = precommit = None
    if step >= SignStep.PREVOTE and draw(st.booleans()):
        prevote = OwnVote(draw(st.none() | _hashes), draw(_sigs))
    if step is SignStep.PRECOMMIT and draw(st.booleans()):
        if locked_hash is not None and draw(st.booleans()):
            precommit = OwnVote(locked_hash, draw(_sigs), draw(_sigs))
        else:
            precommit = OwnVote(None, draw(_sigs))
    earlier = None
    if round > 0 and draw(st.booleans()):
        earlier_round = draw(st.integers(0, round - 1))
        earlier_precommit = OwnVote(None, draw(_sigs))
        if locked_round >= earlier_round and draw(st.booleans()):
            earlier_precommit = OwnVote(draw(_hashes), draw(_sigs), draw(_sigs))
        earlier = EarlierVotes(earlier_round, draw(st.none() | st.builds(
            OwnVote, st.none() | _hashes, _sigs)), earlier_precommit)
    return SafetyState(height, round, step, draw(_hashes), locked_round, locked_hash,
                       prevote, precommit, earlier)


@settings(max_examples=300, deadline=None)
@given(safety_states())
def test_safety_state_round_trips(state: SafetyState) -> None:
    encoded = state.encode()
    assert len(encoded) == rules.ENCODED_BYTES and SafetyState.decode(encoded) == state


def test_safety_state_v1_records_still_decode() -> None:
    """Records written before own votes were kept (v1) decode, without them."""
    lock = b"L" * 32
    v1 = b"tidechain/safety/v1\n" + struct.pack(">QIB32sIB32s", 7, 3, SignStep.PRECOMMIT,
                                                 b"d" * 32, 3 + 1, 1, lock)
    state = SafetyState.decode(v1)
    assert state == SafetyState(7, 3, SignStep.PRECOMMIT, b"d" * 32, 3, lock)
    assert SafetyState.decode(state.encode()) == state  # rewritten as v2
    with pytest.raises(DecodeError):
        SafetyState.decode(v1[:-1])


@settings(max_examples=300, deadline=None)
@given(safety_states(), st.integers(0, rules.ENCODED_BYTES - 1), st.integers(1, 255))
def test_safety_state_decode_rejects_what_encode_cannot_produce(
        state: SafetyState, at: int, flip: int) -> None:
    data = bytearray(state.encode())
    data[at] ^= flip
    try:
        decoded = SafetyState.decode(bytes(data))
    except DecodeError:
        return
    assert decoded.encode() == bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_safety_state_decode_rejects_garbage(data: bytes) -> None:
    try:
        state = SafetyState.decode(data)
    except DecodeError:
        return
    assert state.encode() == data


def test_safety_state_keeps_own_votes_of_the_last_two_rounds_voted_in() -> None:
    nil = OwnVote(None, b"s" * 64)
    s = rules.with_own_vote(rules.after_signing(SafetyState(), 1, 0, SignStep.PREVOTE,
                                                b"a" * 32), nil)
    s = rules.after_signing(s, 1, 0, SignStep.PRECOMMIT, b"b" * 32)
    assert s.prevote == nil and s.precommit is None  # same round: the prevote stays
    s = rules.after_signing(s, 1, 1, SignStep.PROPOSAL, b"c" * 32)
    assert s.prevote is None and s.earlier == EarlierVotes(0, nil, None)
    s = rules.after_signing(s, 1, 2, SignStep.PROPOSAL, b"d" * 32)
    assert s.earlier == EarlierVotes(0, nil, None)  # no vote in round 1: round 0 stays
    s = rules.after_signing(s, 2, 0, SignStep.PREVOTE, b"e" * 32)
    assert s.earlier is None  # another height


# --- certificates ---------------------------------------------------------------------------

def _certificate(n: int = 4) -> tuple[CommitCertificate, ValidatorSet, list[SigningKey],
                                       FakeBlock]:
    validators, keys = make_validators(n)
    block = make_block(5, "cert")
    votes = tuple(sign_vote(keys[i], f"v{i}", validators.digest, PRECOMMIT, 5, 2, block)
                  for i in range(validators.quorum))
    return CommitCertificate(5, 2, block.block_hash, votes), validators, keys, block


def test_certificate_verifies_and_round_trips() -> None:
    cert, validators, _, block = _certificate()
    cert.verify(validators, block.checkpoint_body)
    decoded = CommitCertificate.decode(cert.encode())
    assert decoded == cert
    decoded.verify(validators, block.checkpoint_body)


def _tampered(cert: CommitCertificate, keys: list[SigningKey], validators: ValidatorSet,
              ) -> dict[str, CommitCertificate]:
    votes = cert.precommits
    other = make_block(5, "other")
    bad_sig = bytes([votes[0].signature[0] ^ 1]) + votes[0].signature[1:]
    stranger = SigningKey(b"\x07" * 32)
    foreign = sign_vote(stranger, "mallory", validators.digest, PRECOMMIT, 5, 2, None)
    nil_vote = sign_vote(keys[3], "v3", validators.digest, PRECOMMIT, 5, 2, None)
    return {
        "below quorum": replace(cert, precommits=votes[:-1]),
        "duplicate voter": replace(cert, precommits=(*votes[:-1], votes[0])),
        "bad vote signature": replace(cert, precommits=(replace(votes[0], signature=bad_sig),
                                                        *votes[1:])),
        "wrong round": replace(cert, round=3),
        "wrong block": replace(cert, block_hash=other.block_hash),
        "unknown voter": replace(cert, precommits=(
            *votes, replace(foreign, block_hash=cert.block_hash,
                            checkpoint_signature=votes[0].checkpoint_signature))),
        "nil precommit": replace(cert, precommits=(*votes[:-1], nil_vote)),
        "checkpoint of another block": replace(cert, precommits=(
            sign_vote(keys[0], "v0", validators.digest, PRECOMMIT, 5, 2, other), *votes[1:])),
    }


def test_tampered_certificates_fail() -> None:
    cert, validators, keys, block = _certificate()
    for what, bad in _tampered(cert, keys, validators).items():
        with pytest.raises(ProofError):
            bad.verify(validators, block.checkpoint_body)
            pytest.fail(what)
    with pytest.raises(ProofError):
        cert.verify(validators, block.checkpoint_body + b"x")  # another checkpoint


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_certificate_decode_rejects_garbage(data: bytes) -> None:
    with contextlib.suppress(DecodeError, Rejected):  # DecodeError, TooLarge
        CommitCertificate.decode(data)


# --- hostile input ---------------------------------------------------------------------------

def test_bad_input_is_rejected_or_ignored_without_effect() -> None:
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    block = make_block(1, "b")
    good = sign_vote(keys[1], "v1", validators.digest, PREVOTE, 1, 0, block)
    stranger = sign_vote(SigningKey(b"\x09" * 32), "mallory", validators.digest, PREVOTE, 1, 0,
                         block)
    forged = replace(good, signature=bytes(64))
    wrong_set = sign_vote(keys[1], "v1", b"\x00" * 32, PREVOTE, 1, 0, block)
    for bad in (stranger, forged, wrong_set, replace(good, block_hash=b"short"),
                replace(good, round=-1), replace(good, height=0), replace(good, voter=""),
                replace(good, checkpoint_signature=bytes(64)), replace(good, height=True)):
        with pytest.raises(PeerError) as info:
            r.step(MessageReceived("peer9", bad))
        assert info.value.peer == "peer9"
    with pytest.raises(PeerError):
        r.step(MessageReceived("peer9", "not a message"))  # type: ignore[arg-type]
    impostor = sign_proposal(keys[2], "v2", validators.digest, 1, 0, block, -1)  # v1's turn
    with pytest.raises(PeerError):
        r.step(MessageReceived("peer9", impostor))
    with pytest.raises(PeerError):
        r.step(MessageReceived("peer9", replace(
            sign_proposal(keys[1], "v1", validators.digest, 1, 0, block, -1),
            block=make_block(2, "wrong height"))))
    # Late or far-future heights are dropped unread (honest peers send them too).
    for height in (1_000, 2**40):
        far = sign_vote(keys[1], "v1", validators.digest, PREVOTE, height, 0, block)
        assert r.step(MessageReceived("v1", far)) == []
    far_round = sign_vote(keys[1], "v1", validators.digest, PREVOTE, 1, 2**31 - 1, block)
    assert r.step(MessageReceived("v1", far_round)) == []  # counted for skipping, not stored
    assert r.safety_state == SafetyState() and r.evidence == ()
    assert (r.height, r.round) == (1, 0)


def _mutations(good: Vote) -> st.SearchStrategy[Vote]:
    values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64), st.binary(max_size=70),
                       st.text(max_size=5))
    names = ["kind", "height", "round", "block_hash", "voter", "signature",
             "checkpoint_signature"]
    return st.builds(lambda name, value: replace(good, **{name: value}),
                     st.sampled_from(names), values)


_V, _K = make_validators(4)
_GOOD = sign_vote(_K[1], "v1", _V.digest, PRECOMMIT, 1, 0, make_block(1, "fuzz"))


@settings(max_examples=300, deadline=None)
@given(_mutations(_GOOD))
def test_mutated_votes_never_crash_the_replica(vote: Vote) -> None:
    r = replica(4, index=0)
    r.step(Start(0))
    try:
        r.step(MessageReceived("peer", vote))
    except PeerError:
        assert r.safety_state == SafetyState()


def test_observer_follows_without_signing() -> None:
    validators, keys = make_validators(1)
    watcher = Replica(validators=validators, key=signing_key(99), name="watcher", params=FAST)
    watcher.step(Start(0))
    block = make_block(1, "seen")
    messages: list[Message] = [
        sign_proposal(keys[0], "v0", validators.digest, 1, 0, block, -1),
        sign_vote(keys[0], "v0", validators.digest, PREVOTE, 1, 0, block),
        sign_vote(keys[0], "v0", validators.digest, PRECOMMIT, 1, 0, block)]
    out: list[Action] = []
    for m in messages:
        out += watcher.step(MessageReceived("v0", m))
    validate = of_type(out, ValidateProposal)[0]
    assert isinstance(validate, ValidateProposal)
    out = watcher.step(ProposalValidated(validate.proposal, True))
    assert of_type(out, Commit) and not of_type(out, Broadcast) and watcher.height == 2


def test_a_key_that_does_not_match_the_set_is_refused() -> None:
    validators, _ = make_validators(2)
    with pytest.raises(Rejected):
        Replica(validators=validators, key=signing_key(5), name="v0")


# --- four validators through a seeded router ---------------------------------------------------

@dataclass
class SimNode:
    node_id: str  # unique per instance (twins share a name and a key)
    replica: Replica
    disk: Disk
    links: set[str]  # node ids it can send to
    bad_blocks: bool = False  # builds blocks every honest shell finds invalid
    up_at_ms: int = 0  # down (deaf and mute) until then


@dataclass
class Network:
    seed: int
    validators: ValidatorSet
    nodes: dict[str, SimNode]
    drop: float
    max_delay_ms: int
    rng: random.Random
    now_ms: int = 0
    queue: list[tuple[int, int, str, Event]] = field(default_factory=list)
    seq: int = 0
    invalid: set[bytes] = field(default_factory=set)
    started: set[str] = field(default_factory=set)

    def push(self, at_ms: int, node_id: str, event: Event) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at_ms, self.seq, node_id, event))

    def send(self, node: SimNode, dests: list[str], message: Message) -> None:
        for dest in dests:
            if self.rng.random() >= self.drop and self.nodes[dest].up_at_ms <= self.now_ms:
                delay = self.rng.randint(1, self.max_delay_ms)
                self.push(self.now_ms + delay, dest, MessageReceived(node.replica.name, message))

    def apply(self, node: SimNode, event: Event) -> None:
        actions = node.replica.step(event)
        node.disk.execute(actions, self.validators)
        for action in actions:
            if isinstance(action, Broadcast):
                self.send(node, sorted(node.links), action.message)
            elif isinstance(action, SendTo):
                self.send(node, sorted(d for d in node.links
                                       if self.nodes[d].replica.name == action.peer),
                          action.message)
            elif isinstance(action, BuildProposal):
                block = make_block(action.height, f"{node.node_id}/{action.round}/"
                                                  f"{self.rng.random()}")
                if node.bad_blocks:
                    self.invalid.add(block.block_hash)
                self.push(self.now_ms + 1, node.node_id,
                          ProposalBuilt(action.height, action.round, block))
            elif isinstance(action, ValidateProposal):
                valid = action.proposal.block_hash not in self.invalid
                self.push(self.now_ms + 1, node.node_id,
                          ProposalValidated(action.proposal, valid))

    def run(self, until_ms: int, done: Callable[[], bool]) -> None:
        order, started = sorted(self.nodes), self.started
        while self.now_ms < until_ms and not done():
            for node_id in order:
                if node_id not in started and self.nodes[node_id].up_at_ms <= self.now_ms:
                    started.add(node_id)
                    self.apply(self.nodes[node_id], Start(self.now_ms))
            self.now_ms += 10
            while self.queue and self.queue[0][0] <= self.now_ms:
                _, _, node_id, event = heapq.heappop(self.queue)
                self.apply(self.nodes[node_id], event)
            self.rng.shuffle(order)
            for node_id in order:
                if node_id in started:
                    self.apply(self.nodes[node_id], Tick(self.now_ms))


def build_network(seed: int, n: int = 4, *, silent: tuple[int, ...] = (),
                  twins: int | None = None, bad_proposer: int | None = None,
                  drop: float = 0.1, max_delay_ms: int = 30,
                  late: dict[int, int] | None = None) -> Network:
    """`silent`: crashed for good; `late`: validator index -> time it comes up."""
    validators, keys = make_validators(n)
    ids = [f"v{i}" for i in range(n) if i not in silent and i != twins]
    if twins is not None:
        ids += [f"v{twins}a", f"v{twins}b"]
    nodes = {}
    verified: set[bytes] = set()
    for node_id in ids:
        index = int(node_id[1:].rstrip("ab"))
        twin_peers = {i for i in ids if i[1:].rstrip("ab") == str(index)}
        nodes[node_id] = SimNode(
            node_id,
            Replica(validators=validators, key=keys[index], name=f"v{index}", params=FAST),
            Disk(f"v{index}", verified=verified), set(ids) - twin_peers,
            bad_blocks=index == bad_proposer, up_at_ms=(late or {}).get(index, 0))
    return Network(seed, validators, nodes, drop, max_delay_ms, random.Random(seed))


def honest(net: Network) -> list[SimNode]:
    return [n for n in net.nodes.values() if not n.node_id.endswith(("a", "b"))]


def assert_agreement(net: Network) -> None:
    decided: dict[int, bytes] = {}
    for node in honest(net):
        for height, block_hash in node.disk.committed.items():
            assert decided.setdefault(height, block_hash) == block_hash, (
                f"seed {net.seed}: two blocks committed at height {height}")
            assert block_hash not in net.invalid, f"seed {net.seed}: invalid block committed"


def committed_everywhere(net: Network, heights: int) -> Callable[[], bool]:
    return lambda: all(len(n.disk.committed) >= heights for n in honest(net))


def committed_by_quorum(net: Network, heights: int) -> bool:
    done = sum(len(n.disk.committed) >= heights for n in honest(net))
    return done >= net.validators.quorum


def test_four_validators_agree_under_drops_and_delays() -> None:
    """Safety on every seed; progress on every seed for a quorum. A validator that
    falls more than one height behind (its catch-up reply lost too) needs block sync,
    which consensus does not do: such laggers must stay rare."""
    laggers = 0
    for seed in range(300):
        net = build_network(seed, drop=0.1 if seed % 3 else 0.3)
        net.run(10_000, committed_everywhere(net, 3))
        assert_agreement(net)
        assert committed_by_quorum(net, 3), f"seed {seed}: no progress"
        laggers += sum(len(n.disk.committed) < 3 for n in honest(net))
    assert laggers <= 6, f"{laggers} of 1200 validators fell behind"


def test_four_validators_commit_with_one_crashed() -> None:
    for seed in range(40):
        net = build_network(seed, silent=(seed % 4,), drop=0.05)
        net.run(30_000, committed_everywhere(net, 3))
        assert_agreement(net)
        assert committed_by_quorum(net, 3), f"seed {seed}"


def test_four_validators_never_commit_with_two_crashed() -> None:
    """Two of four down: no quorum, so nothing commits (the live pair waits at its
    round, re-sending its votes). Once the two come back, they all commit."""
    for seed in range(10):
        down = (seed % 4, (seed + 1) % 4)
        net = build_network(seed, late={down[0]: 5_000, down[1]: 5_000}, drop=0.05)
        net.run(5_000, lambda: False)
        assert all(not n.disk.committed for n in net.nodes.values()), f"seed {seed}"
        net.run(60_000, committed_everywhere(net, 2))
        assert_agreement(net)
        assert committed_by_quorum(net, 2), f"seed {seed}: no recovery"


def test_equivocating_twins_never_split_honest_validators() -> None:
    evidence = 0
    for seed in range(60):
        net = build_network(seed, twins=seed % 4, drop=0.05 * (seed % 3))
        net.run(6_000, committed_everywhere(net, 3))
        assert_agreement(net)
        evidence += sum(len(n.replica.evidence) for n in honest(net))
        for node in honest(net):
            for e in node.replica.evidence:
                e.verify(net.validators)
    assert evidence > 0  # the twins were caught signing two statements


def test_invalid_blocks_are_never_committed() -> None:
    for seed in range(40):
        net = build_network(seed, bad_proposer=seed % 4, drop=0.05)
        net.run(30_000, committed_everywhere(net, 4))
        assert_agreement(net)
        assert committed_by_quorum(net, 4), f"seed {seed}"


def test_seven_validators_with_twins_and_a_crash_agree() -> None:
    for seed in range(10):
        net = build_network(seed, n=7, twins=seed % 7, silent=((seed + 3) % 7,), drop=0.05)
        net.run(8_000, committed_everywhere(net, 2))
        assert_agreement(net)


def test_public_api_is_pinned() -> None:
    import tidechain.consensus as consensus

    assert set(consensus.__all__) == {
        "PRECOMMIT", "PREVOTE", "Action", "BlockLike", "Broadcast", "BuildProposal", "Commit",
        "CommitCertificate", "ConsensusParams", "Equivocation", "Event", "LockProof", "Message",
        "MessageReceived", "PersistSafety", "Proposal", "ProposalBuilt", "ProposalValidated",
        "Replica", "SafetyState", "SendTo", "SignStep", "Start", "Step", "Tick",
        "TransactionsAvailable", "ValidateProposal", "ValidatorInfo", "ValidatorSet", "Vote",
        "VoteKind"}


def test_a_fresh_proposal_refused_as_untimely_does_not_condemn_its_block() -> None:
    """The kill-loop stall (issue 12): a validator restarted late judged a round-0
    proposal of X untimely (ADR 0006) and prevoted nil. That verdict is about the
    proposal, not the block: when round 1 re-proposes X with its round-0 proof-of-lock
    (exempt from the time check), the validator must prevote X, and X's polka must
    lock it. Caching "untimely" as "X is invalid" made it prevote nil on every
    re-proposal, and three honest validators of four never decided again."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x = make_block(1, "X")
    fresh = sign_proposal(keys[1], "v1", validators.digest, 1, 0, x, -1)
    assert r.step(MessageReceived("v1", fresh)) == [ValidateProposal(fresh)]
    actions = r.step(ProposalValidated(fresh, True, timely=False))
    nil = [a.message for a in of_type(actions, Broadcast) if isinstance(a.message, Vote)]
    assert [(v.kind, v.round, v.block_hash) for v in nil] == [(PREVOTE, 0, None)]
    # The others saw X in time: their round-0 prevotes are X's proof-of-lock, relayed
    # with its re-proposal in round 1 (the replica reaches round 1 on f+1 of its votes).
    polka = [sign_vote(keys[i], f"v{i}", validators.digest, PREVOTE, 1, 0, x)
             for i in (1, 2, 3)]
    for vote in polka:
        r.step(MessageReceived("v2", vote))
    assert r.safety_state.locked_hash == x.block_hash  # a valid block's polka locks
    for i in (2, 3):
        r.step(MessageReceived(f"v{i}", sign_vote(keys[i], f"v{i}", validators.digest,
                                                  PREVOTE, 1, 1, x)))
    assert r.round == 1
    again = sign_proposal(keys[2], "v2", validators.digest, 1, 1, x, 0)
    actions = r.step(MessageReceived("v2", again))
    actions += [a for event in [ProposalValidated(a.proposal, True)
                                for a in of_type(actions, ValidateProposal)]
                for a in r.step(event)]
    prevotes = [a.message for a in of_type(actions, Broadcast)
                if isinstance(a.message, Vote) and a.message.kind is PREVOTE]
    assert [(v.round, v.block_hash) for v in prevotes] == [(1, x.block_hash)]


def test_every_new_proposal_of_a_block_is_judged_for_its_time() -> None:
    """A block found untimely in round 0 and proposed again as new (no proof-of-lock)
    in round 1 is asked about again, and refused again if still untimely: a verdict on
    a block's validity must not let a stale block through as a fresh proposal."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x = make_block(1, "X")
    first = sign_proposal(keys[1], "v1", validators.digest, 1, 0, x, -1)
    r.step(MessageReceived("v1", first))
    r.step(ProposalValidated(first, True, timely=False))
    for i in (2, 3):  # round 1 starts on f+1 of its prevotes (nil: nobody prevoted X)
        r.step(MessageReceived(f"v{i}", sign_vote(keys[i], f"v{i}", validators.digest,
                                                  PREVOTE, 1, 1, None)))
    assert r.round == 1
    again = sign_proposal(keys[2], "v2", validators.digest, 1, 1, x, -1)
    assert r.step(MessageReceived("v2", again)) == [ValidateProposal(again)]
    actions = r.step(ProposalValidated(again, True, timely=False))
    prevotes = [a.message for a in of_type(actions, Broadcast)
                if isinstance(a.message, Vote) and a.message.kind is PREVOTE]
    assert [(v.round, v.block_hash) for v in prevotes] == [(1, None)]


def test_a_validator_that_sees_a_polka_relays_it_with_its_resends() -> None:
    """Found by the replica-level simulator at seed 2789 (n = 7, twinned Byzantine
    validators, docs/simulator.md): a polka seen by some honest validators only kept
    honest locks split round after round. A validator that sees a polka relays the
    prevote quorum with its resends while the round lasts, as the paper's gossip
    would (`_rule_precommit_on_polka`)."""
    validators, keys = make_validators(4)
    r = replica(4, index=0)
    r.step(Start(0))
    x = make_block(1, "X")
    proposal = sign_proposal(keys[1], "v1", validators.digest, 1, 0, x, -1)
    r.step(MessageReceived("v1", proposal))
    r.step(ProposalValidated(proposal, True))  # v0 prevotes X
    others = [sign_vote(keys[i], f"v{i}", validators.digest, PREVOTE, 1, 0, x) for i in (2, 3)]
    for vote in others:
        r.step(MessageReceived(vote.voter, vote))
    assert r.safety_state.locked_hash == x.block_hash  # the polka: v0 locked and precommitted
    resent: list[object] = []
    now = 0
    while not set(others) <= set(resent) and now < 1_000:
        now += 10
        resent += [a.message for a in r.step(Tick(now)) if isinstance(a, Broadcast)]
    assert set(others) <= set(resent), resent  # v2's and v3's prevotes, relayed
    assert r.round == 0  # within the round: not a round change's catch-up
