"""The Tendermint replica as a pure state machine: `step(event) -> actions`.

The protocol is Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT
consensus" (2018); the methods named `_rule_*` are its upon-rules, with the line
numbers of the paper. After every event the rules are applied until none fires.
What this validator may sign is decided in `safety.py`; when rounds move is decided
by the timers in `pacemaker.py`; storage and the network belong to the shell.

A single validator runs the very same code: its own votes go through the same vote
book and quorum checks, with a quorum of one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from tidechain.consensus import safety
from tidechain.consensus.certificate import CommitCertificate
from tidechain.consensus.events import (
    Action,
    BuildProposal,
    Commit,
    Event,
    LockProof,
    MessageReceived,
    ProposalBuilt,
    ProposalValidated,
    SendTo,
    Start,
    Tick,
    TransactionsAvailable,
    ValidateProposal,
)
from tidechain.consensus.messages import (
    BlockLike,
    Message,
    Proposal,
    Vote,
    VoteKind,
    proposal_problem,
    proposal_sign_bytes,
    vote_problem,
    vote_sign_bytes,
)
from tidechain.consensus.outbox import FutureBuffer, Outbox
from tidechain.consensus.pacemaker import Pacemaker, Timeout, TimeoutKind
from tidechain.consensus.params import MAX_RULE_FIRINGS_PER_STEP, ConsensusParams
from tidechain.consensus.quorum import ValidatorSet
from tidechain.consensus.safety import OwnVote, SafetyState, SignStep
from tidechain.consensus.votebook import (
    Added,
    Equivocation,
    EvidenceLog,
    ProposalBook,
    VoteBook,
    proposal_equivocation,
    vote_equivocation,
)
from tidechain.core.crypto import SigningKey, is_valid_signature, sha256, verify
from tidechain.core.errors import BadSignature, DecodeError, PeerError, Rejected, invariant
from tidechain.core.limits import FUTURE_HEIGHT_WINDOW, MAX_ROUNDS_AHEAD, MAX_ROUNDS_KEPT

RULE_NAMES = ("_rule_decide", "_rule_skip_round", "_rule_prevote_on_proposal",
              "_rule_missing_decided_block", "_rule_left_behind", "_rule_prevote_quorum_any",
              "_rule_precommit_on_polka", "_rule_precommit_nil", "_rule_precommit_quorum_any")
"""The upon-rules in `Replica._fire_one_rule`'s order, for `rule_counter` (instrumentation;
tests/test_sim.py checks the two agree)."""


class Step(IntEnum):
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


class _Placement(IntEnum):
    """Where a message's height sits relative to ours."""

    STALE = 0
    PREVIOUS = 1  # the height we just committed: the sender lags, help it catch up
    CURRENT = 2
    NEXT = 3  # within FUTURE_HEIGHT_WINDOW: buffered
    TOO_FAR = 4


@dataclass
class _RoundProgress:
    """The paper's "for the first time" flags, and what we did as proposer, this round."""

    prevote_timer_set: bool = False
    precommit_timer_set: bool = False
    polka_seen: bool = False
    build_requested: bool = False
    proposed: bool = False
    signed: list[Message] = field(default_factory=list)  # ours, for re-sending
    relayed: list[Vote] = field(default_factory=list)  # the proof-of-lock we re-propose with
    lag_announced: bool = False


@dataclass(frozen=True)
class _Decision:
    proposal: Proposal
    certificate: CommitCertificate


class Replica:
    """One validator's (or observer's) consensus state machine. Not thread-safe."""

    # Per-height state, (re)set by `_reset_height`.
    _height: int
    _round: int
    _step: Step
    _progress: _RoundProgress
    _round_active: bool
    _votes: VoteBook
    _proposals: ProposalBook
    _validity: dict[bytes, bool]  # block hash -> the shell's verdict on the block
    _timely: dict[tuple[int, bytes], bool]  # (round, block) of a new proposal -> verdict
    _pending_timely: set[tuple[int, bytes]]
    _pending_validation: set[bytes]
    _checkpoint_ok: dict[tuple[int, str, bytes], bool]  # (round, voter, block) -> cp sig ok
    _peer_rounds: dict[str, int]
    _catchup_sent_ms: dict[str, int]
    _valid_round: int
    _valid_block: BlockLike | None
    _txs_available: bool
    _ahead: set[str]  # validators that sent verified messages for the next height

    def __init__(
        self,
        *,
        validators: ValidatorSet,
        key: SigningKey,
        name: str,
        params: ConsensusParams | None = None,
        committed_height: int = 0,
        retired_key_observes: bool = False,
        rule_counter: Counter[str] | None = None,
    ) -> None:
        """A replica starting at `committed_height + 1` with nothing signed yet. A node
        whose name is not in `validators` follows consensus as an observer (never signs).
        A node whose name is in it with another key is misconfigured, unless that key
        was replaced by governance (`retired_key_observes`): it then observes too.
        `rule_counter` (instrumentation, e.g. the simulator's rule coverage): each time
        an upon-rule fires, its method name is counted there; None (the default) costs
        nothing."""
        info = validators.get(name)
        if info is not None and info.public_key != key.public_key:
            if not retired_key_observes:
                raise Rejected(f"key does not match validator {name!r}", code="config")
            info = None
        invariant(committed_height >= 0, "committed height is negative")
        self._validators = validators
        self._digest = validators.digest
        self._key = key if info is not None else None
        self._name = name
        self._params = params or ConsensusParams()
        self._safety = SafetyState()
        self._pacemaker = Pacemaker(self._params)
        self._evidence = EvidenceLog()
        self._future = FutureBuffer()
        self._out = Outbox()
        self._started = False
        self._now_ms = 0
        self._height_started_ms: int | None = None  # None: first height since start
        self._last_build_time_ms = -1
        self._first_round = 0
        self._resuming = False  # restored in the round of our last signature
        self._last_decision: _Decision | None = None
        self._rule_counter = rule_counter
        self._reset_height(committed_height + 1)

    @classmethod
    def restore(
        cls,
        *,
        validators: ValidatorSet,
        key: SigningKey,
        name: str,
        params: ConsensusParams | None = None,
        safety: SafetyState | None,
        committed_height: int,
        locked_block: BlockLike | None = None,
        lock_proof: tuple[Vote, ...] = (),
        retired_key_observes: bool = False,
        rule_counter: Counter[str] | None = None,
    ) -> Replica:
        """Resume after a crash from the last persisted safety state (None: never
        signed). If that state is at the height being resumed, the replica starts in
        the round of its last signature, at the step after it, and sends its own votes
        of that round again (kept in the state): a vote signed just before the crash
        may be the one an honest quorum waits for. The safety rules let it sign only
        later steps, or the identical bytes. `locked_block`, if the shell kept the
        block the state is locked on, lets this validator re-propose it."""
        replica = cls(validators=validators, key=key, name=name, params=params,
                      committed_height=committed_height,
                      retired_key_observes=retired_key_observes, rule_counter=rule_counter)
        if safety is not None:
            replica._resume(safety, locked_block, lock_proof)
        return replica

    def _resume(self, state: SafetyState, locked_block: BlockLike | None,
                lock_proof: tuple[Vote, ...] = ()) -> None:
        self._safety = state
        if state.height != self._height or state.step is SignStep.NONE:
            # Older: its lock died with its height. Newer (the Commit was lost): the
            # rules refuse every signature below it until block sync brings us there.
            return
        self._first_round = state.round
        self._round = self._first_round
        self._resuming = True
        if locked_block is not None and locked_block.block_hash == state.locked_hash:
            # We precommitted it, so it was valid against this same head.
            self._validity[locked_block.block_hash] = True
            self._valid_round, self._valid_block = state.locked_round, locked_block
            # The prevote quorum that made us lock: with it we re-propose the block
            # with its proof-of-lock (and relay it), as before the crash.
            for vote in lock_proof:
                info = self._validators.get(vote.voter)
                if ((vote.kind, vote.height, vote.round, vote.block_hash)
                        == (VoteKind.PREVOTE, self._height, state.locked_round,
                            state.locked_hash)
                        and info is not None and is_valid_signature(
                            info.public_key, vote.sign_bytes(self._digest), vote.signature)):
                    self._ingest_vote(vote)

    # --- observation ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def height(self) -> int:
        """The height being decided (last committed + 1)."""
        return self._height

    @property
    def round(self) -> int:
        return self._round

    @property
    def current_step(self) -> Step:
        return self._step

    @property
    def safety_state(self) -> SafetyState:
        return self._safety

    @property
    def evidence(self) -> tuple[Equivocation, ...]:
        """Equivocations seen (newest MAX_EVIDENCE), for the shell to report."""
        return self._evidence.items

    # --- the one entry point ----------------------------------------------------------
    def step(self, event: Event) -> list[Action]:
        """Apply one event; return the actions for the shell to execute in order.

        Raises PeerError for a malformed or badly signed message, before changing any
        state. Messages that are merely late, early or duplicated are ignored."""
        invariant(self._out.is_empty(), "step() re-entered")
        try:
            self._dispatch(event)
        except PeerError:
            invariant(self._out.is_empty(), "peer input rejected after changing state")
            raise
        return self._out.flush()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Tick):
            self._on_tick(event.now_ms)
        elif isinstance(event, MessageReceived):
            self._on_message(event.sender, event.message)
        elif isinstance(event, ProposalValidated):
            self._on_proposal_validated(event.proposal, event.valid, event.timely)
        elif isinstance(event, ProposalBuilt):
            self._on_proposal_built(event)
        elif isinstance(event, TransactionsAvailable):
            self._on_transactions_available()
        elif isinstance(event, Start):
            self._on_start(event.now_ms)
        else:
            invariant(False, f"unknown event {event!r}")

    # --- events -----------------------------------------------------------------------
    def _on_start(self, now_ms: int) -> None:
        invariant(not self._started, "Start delivered twice")
        self._started = True
        self._now_ms = now_ms
        if self._resuming:
            self._resume_signed_round()
        else:
            self._start_round(self._first_round)
        if self._votes.rounds() or self._proposals.rounds():
            self._wake_up()  # messages arrived before Start: the round is under way
        self._advance()

    def _on_tick(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)  # never let time run backwards
        if not self._started:
            return
        while (timeout := self._pacemaker.pop_due(self._now_ms)) is not None:
            self._on_timeout(timeout)
            self._advance()

    def _on_transactions_available(self) -> None:
        self._txs_available = True
        self._wake_up()
        self._advance()

    def _on_proposal_built(self, event: ProposalBuilt) -> None:
        progress = self._progress
        if (event.height, event.round) != (self._height, self._round) or not (
                progress.build_requested and not progress.proposed
                and self._step is Step.PROPOSE):
            return  # a late answer to an earlier round
        invariant(event.block.height == event.height, "shell built a block of another height")
        self._propose(event.block, pol_round=-1)
        self._advance()

    def _on_proposal_validated(self, proposal: Proposal, valid: bool, timely: bool) -> None:
        block_hash = proposal.block_hash
        slot = (proposal.round, block_hash)
        if proposal.height != self._height or (block_hash not in self._pending_validation
                                               and slot not in self._pending_timely):
            return  # answer for a height we have left
        if block_hash in self._pending_validation:
            self._pending_validation.discard(block_hash)
            self._validity[block_hash] = valid
        if proposal.pol_round < 0 and slot in self._pending_timely:
            # About this new proposal, not the block: a re-proposal with a proof-of-lock
            # is judged on the block alone, or a validator that saw the block late could
            # never prevote it again (the kill-loop stall, issue 12); another new
            # proposal of the block is asked about again.
            self._pending_timely.discard(slot)
            self._timely[slot] = timely
        self._advance()

    def _on_timeout(self, timeout: Timeout) -> None:
        if (timeout.height, timeout.round) != (self._height, self._round):
            return
        if timeout.kind is TimeoutKind.BUILD:
            self._try_propose()
        elif timeout.kind is TimeoutKind.PROPOSE and self._step is Step.PROPOSE:
            self._prevote(None)  # line 57
        elif timeout.kind is TimeoutKind.PREVOTE and self._step is Step.PREVOTE:
            self._precommit(None)  # line 61
        elif timeout.kind is TimeoutKind.PRECOMMIT:
            self._start_round(self._round + 1)  # line 65
        elif timeout.kind is TimeoutKind.RESEND:
            self._resend_own_messages()

    # --- incoming messages ------------------------------------------------------------
    def _on_message(self, sender: str, message: Message) -> None:
        if isinstance(message, Vote):
            self._on_vote(sender, message)
        elif isinstance(message, Proposal):
            self._on_proposal(sender, message)
        else:
            raise PeerError(sender, f"not a consensus message: {type(message).__name__}")

    def _on_vote(self, sender: str, vote: Vote) -> None:
        problem = vote_problem(vote)
        if problem is not None:
            raise PeerError(sender, f"malformed vote: {problem}")
        placement = self._placement(vote.height)
        if placement in (_Placement.STALE, _Placement.TOO_FAR):
            return
        info = self._validators.get(vote.voter)
        if placement is not _Placement.CURRENT:
            # The next or previous height may have another validator set (ADR 0011): a
            # vote that does not verify with ours is dropped there, not a peer error.
            if info is None or not is_valid_signature(
                    info.public_key, vote.sign_bytes(self._digest), vote.signature):
                return
        elif info is None:
            raise PeerError(sender, f"vote from unknown validator {vote.voter!r}")
        else:
            self._check_signature(sender, info.public_key, vote.sign_bytes(self._digest),
                                  vote.signature, "vote")
        if placement is _Placement.PREVIOUS:
            self._help_catch_up(sender, vote.voter)
        elif placement is _Placement.NEXT:
            self._buffer_next(vote.voter, vote)
        else:
            self._ingest_vote(vote)
            self._advance()
            self._help_round_catch_up(sender, vote.voter)

    def _on_proposal(self, sender: str, proposal: Proposal) -> None:
        problem = proposal_problem(proposal)
        if problem is not None:
            raise PeerError(sender, f"malformed proposal: {problem}")
        expected = self._validators.proposer(proposal.height, proposal.round)
        placement = self._placement(proposal.height)
        if placement in (_Placement.STALE, _Placement.TOO_FAR):
            return
        if placement is not _Placement.CURRENT:
            # As for votes: another height's set may differ (ADR 0011).
            if proposal.proposer != expected.name or not is_valid_signature(
                    expected.public_key, proposal.sign_bytes(self._digest),
                    proposal.signature):
                return
        elif proposal.proposer != expected.name:
            raise PeerError(sender, f"{proposal.proposer!r} is not the proposer of height "
                                    f"{proposal.height} round {proposal.round}")
        else:
            self._check_signature(sender, expected.public_key,
                                  proposal.sign_bytes(self._digest), proposal.signature,
                                  "proposal")
        if placement is _Placement.PREVIOUS:
            self._help_catch_up(sender, proposal.proposer)
        elif placement is _Placement.NEXT:
            self._buffer_next(proposal.proposer, proposal)
        else:
            self._ingest_proposal(proposal)
            self._advance()
            self._help_round_catch_up(sender, proposal.proposer)

    def _buffer_next(self, signer: str, message: Message) -> None:
        self._future.add(signer, message)
        if message.height == self._height + 1 and signer != self._name:
            self._ahead.add(signer)
            self._advance()

    def _placement(self, height: int) -> _Placement:
        if height == self._height:
            return _Placement.CURRENT
        if height == self._height - 1:
            return _Placement.PREVIOUS
        if height < self._height:
            return _Placement.STALE
        if height <= self._height + FUTURE_HEIGHT_WINDOW:
            return _Placement.NEXT
        return _Placement.TOO_FAR

    @staticmethod
    def _check_signature(sender: str, public_key: bytes, message: bytes, signature: bytes,
                         what: str) -> None:
        try:
            verify(public_key, message, signature)
        except (BadSignature, DecodeError) as exc:
            raise PeerError(sender, f"bad {what} signature") from exc

    def _ingest_vote(self, vote: Vote) -> None:
        """Store a verified vote of the current height (no rule applied yet)."""
        self._note_round(vote.voter, vote.round)
        if vote.round > self._round + MAX_ROUNDS_AHEAD:
            return
        added = self._votes.add(vote, named=self._is_named(vote))
        if added.conflict is not None:
            self._evidence.record(vote_equivocation(added.conflict, vote, self._digest))
        if not added.stored:
            return
        if self._votes.keep_rounds(MAX_ROUNDS_KEPT, self._protected_rounds()):
            kept = set(self._votes.rounds())
            self._checkpoint_ok = {k: ok for k, ok in self._checkpoint_ok.items() if k[0] in kept}
        self._wake_up()

    def _is_named(self, vote: Vote) -> bool:
        """A stored proposal needs this vote counted (see `VoteBook.add`)."""
        return vote.block_hash is not None and self._proposals.names(
            vote.kind, vote.round, vote.block_hash)

    def _ingest_proposal(self, proposal: Proposal) -> None:
        """Store a verified proposal of the current height; ask the shell to validate
        its block unless we already know (or are waiting to know) the answer."""
        self._note_round(proposal.proposer, proposal.round)
        if proposal.round > self._round + MAX_ROUNDS_AHEAD:
            return
        block_hash = proposal.block_hash
        supported = any(self._votes.tally(kind, proposal.round).count(block_hash)
                        >= self._validators.weak_quorum for kind in VoteKind)
        stored, earlier = self._proposals.add(proposal, supported=supported)
        if earlier is not None:
            self._evidence.record(proposal_equivocation(earlier, proposal, self._digest))
        if not stored:
            return
        if self._proposals.keep_rounds(MAX_ROUNDS_KEPT, self._protected_rounds()):
            self._forget_dropped_blocks()
        ask = False
        if block_hash not in self._validity and block_hash not in self._pending_validation:
            self._pending_validation.add(block_hash)
            ask = True
        slot = (proposal.round, block_hash)
        if (proposal.pol_round < 0 and slot not in self._timely
                and slot not in self._pending_timely):
            self._pending_timely.add(slot)  # each new proposal's time is judged
            ask = True
        if ask:
            self._out.add(ValidateProposal(proposal))
        self._wake_up()

    def _forget_dropped_blocks(self) -> None:
        """Validity verdicts only for blocks still proposed (or our valid value)."""
        keep = self._proposals.block_hashes()
        if self._valid_block is not None:
            keep.add(self._valid_block.block_hash)
        self._validity = {h: ok for h, ok in self._validity.items() if h in keep}
        self._timely = {(r, h): ok for (r, h), ok in self._timely.items()
                        if h in keep and self._proposals.at(r)}
        self._pending_timely = {(r, h) for r, h in self._pending_timely
                                if h in keep and self._proposals.at(r)}
        self._pending_validation &= keep

    def _note_round(self, signer: str, round: int) -> None:
        """Highest round each validator has shown at this height (for round skipping)."""
        if round > self._peer_rounds.get(signer, -1):
            self._peer_rounds[signer] = round

    def _protected_rounds(self) -> set[int]:
        locked_round, _ = safety.lock_at(self._safety, self._height)
        return {self._round, self._valid_round, locked_round}

    def _help_catch_up(self, sender: str, signer: str) -> None:
        """A validator still at the height we committed: send it the decided proposal
        and its precommits, which let it commit too. Rate-limited per validator."""
        decision = self._last_decision
        if decision is None or sender != signer:
            return
        last_ms = self._catchup_sent_ms.get(sender)
        if last_ms is not None and self._now_ms - last_ms < self._params.catchup_interval_ms:
            return
        self._catchup_sent_ms[sender] = self._now_ms
        for vote in decision.certificate.precommits:
            self._out.add(SendTo(sender, vote))
        self._out.add(SendTo(sender, decision.proposal))

    def _help_round_catch_up(self, sender: str, signer: str) -> None:
        """Not in the paper, whose gossip does this: a validator still in an earlier
        round of our height may wait for votes that will never come again (a signer
        re-sends only its current round's messages; one lost in a crash is gone).
        Send it what lets it move on: the votes of its round we hold, and each
        validator's highest-round vote above it (f+1 of them let it skip ahead).
        Relaying signed votes is always safe. Rate-limited per validator."""
        behind = self._peer_rounds.get(signer, self._round)
        if sender != signer or signer == self._name or behind >= self._round:
            return
        last_ms = self._catchup_sent_ms.get(sender)
        if last_ms is not None and self._now_ms - last_ms < self._params.catchup_interval_ms:
            return
        self._catchup_sent_ms[sender] = self._now_ms
        for vote in self._round_evidence(behind):
            if vote.voter != signer:
                self._out.relay(vote, peer=signer)

    def _round_evidence(self, round: int) -> list[Vote]:
        """Every vote we hold of `round`, then each validator's latest vote above it."""
        votes = [v for kind in VoteKind for v in self._votes.tally(kind, round).votes()]
        latest: dict[str, Vote] = {}
        for later in reversed(self._votes.rounds()):
            if later <= round:
                break
            for kind in (VoteKind.PRECOMMIT, VoteKind.PREVOTE):
                for vote in self._votes.tally(kind, later).votes():
                    latest.setdefault(vote.voter, vote)
        return votes + list(latest.values())

    # --- rounds and heights -----------------------------------------------------------
    def _reset_height(self, height: int) -> None:
        self._height = height
        self._round = 0
        self._step = Step.PROPOSE
        self._progress = _RoundProgress()
        self._round_active = False
        self._votes = VoteBook(self._digest)
        self._proposals = ProposalBook()
        self._validity = {}
        self._timely = {}
        self._pending_timely = set()
        self._pending_validation = set()
        self._checkpoint_ok = {}
        self._peer_rounds = {}
        self._catchup_sent_ms = {}
        self._valid_round = -1
        self._valid_block = None
        self._txs_available = False
        self._ahead = set()
        self._pacemaker.clear()

    def _enter_height(self, height: int) -> None:
        self._reset_height(height)
        self._height_started_ms = self._now_ms
        self._start_round(0)
        for message in self._future.take(height):
            if isinstance(message, Vote):
                self._ingest_vote(message)
            else:
                self._ingest_proposal(message)

    def _start_round(self, round: int) -> None:  # the paper's StartRound
        self._round = round
        self._step = Step.PROPOSE
        self._progress = _RoundProgress()
        self._round_active = False
        self._pacemaker.clear()  # every pending timer belongs to the previous round
        if round == 0 and not self._params.create_empty_blocks and not self._txs_available:
            return  # idle until transactions arrive or a peer starts the round
        self._activate_round()

    def _wake_up(self) -> None:
        if self._started and not self._round_active:
            self._activate_round()

    def _activate_round(self) -> None:
        self._round_active = True
        # Everyone, the proposer included, gives up on the proposal at this deadline:
        # a shell that never answers BuildProposal must not stall the replica.
        self._pacemaker.schedule(TimeoutKind.PROPOSE, self._height, self._round, self._now_ms)
        self._pacemaker.schedule(TimeoutKind.RESEND, self._height, self._round, self._now_ms)
        if self._is_proposer():
            self._try_propose()

    def _resend_own_messages(self) -> None:
        """Still in this round after a resend interval: send again what we signed in
        it. Same bytes, already persisted (or committed), so no new signature."""
        for message in self._progress.signed:
            self._out.resend(message)
        for vote in self._progress.relayed:
            self._out.relay(vote)
        self._pacemaker.schedule(TimeoutKind.RESEND, self._height, self._round, self._now_ms)

    def _is_proposer(self) -> bool:
        return (self._key is not None
                and self._validators.proposer(self._height, self._round).name == self._name)

    def _try_propose(self) -> None:
        """Propose the valid value if we have one, else ask the shell for a block."""
        progress = self._progress
        if progress.proposed or progress.build_requested or self._step is not Step.PROPOSE:
            return
        if self._valid_block is not None:
            self._propose(self._valid_block, self._proof_of_lock_round())
            return
        started = self._height_started_ms
        if self._round == 0 and started is not None:
            ready_ms = started + self._params.block_interval_ms
            if self._now_ms < ready_ms:
                self._pacemaker.schedule_at(TimeoutKind.BUILD, self._height, 0, ready_ms)
                return
        progress.build_requested = True
        time_ms = max(self._now_ms, self._last_build_time_ms + 1)
        self._last_build_time_ms = time_ms
        self._out.add(BuildProposal(self._height, self._round, time_ms))

    def _proof_of_lock_round(self) -> int:
        """validRound if we still hold its prevote quorum (others need it to accept a
        proof-of-lock); otherwise -1, which any validator not locked elsewhere accepts."""
        block = self._valid_block
        invariant(block is not None, "no valid value to prove")
        assert block is not None
        polka = self._votes.tally(VoteKind.PREVOTE, self._valid_round).count(block.block_hash)
        return self._valid_round if polka >= self._validators.quorum else -1

    # --- signing ----------------------------------------------------------------------
    def _sign(self, step: SignStep, sign_bytes: bytes, lock_hash: bytes | None = None
              ) -> bytes | None:
        """Sign if the safety rules allow it, recording the signature first."""
        if self._key is None:
            return None
        digest = sha256(sign_bytes)
        if not safety.may_sign(self._safety, self._height, self._round, step, digest):
            return None
        self._safety = safety.after_signing(self._safety, self._height, self._round, step,
                                            digest, lock_hash)
        return self._key.sign(sign_bytes)

    def _propose(self, block: BlockLike, pol_round: int) -> None:
        self._progress.proposed = True
        if any(p.proposer == self._name for p in self._proposals.at(self._round)):
            return  # see _signed_elsewhere
        sign_bytes = proposal_sign_bytes(self._digest, self._height, self._round, pol_round,
                                         block.block_hash)
        signature = self._sign(SignStep.PROPOSAL, sign_bytes)
        if signature is None:
            return
        proposal = Proposal(self._height, self._round, block, pol_round, self._name, signature)
        self._out.add_signed(self._safety, proposal)
        self._progress.signed.append(proposal)
        self._validity[block.block_hash] = True  # built or already validated by our shell
        if pol_round < 0:
            self._timely[(self._round, block.block_hash)] = True  # our own clock's block
        self._ingest_proposal(proposal)
        if pol_round >= 0:
            self._relay_proof_of_lock(pol_round, block.block_hash)

    def _relay_proof_of_lock(self, pol_round: int, block_hash: bytes) -> None:
        """Send the prevote quorum that justifies re-proposing at `pol_round`. Peers
        that missed one of those prevotes could otherwise never accept the proposal
        (line 28), and with locks split two against two no round would ever decide."""
        polka = self._votes.tally(VoteKind.PREVOTE, pol_round).for_block(block_hash)
        self._progress.relayed = polka
        for vote in polka:
            self._out.relay(vote)

    def _prevote(self, block: BlockLike | None) -> None:
        self._step = Step.PREVOTE
        if self._signed_elsewhere(VoteKind.PREVOTE):
            return
        block_hash = None if block is None else block.block_hash
        sign_bytes = vote_sign_bytes(self._digest, VoteKind.PREVOTE, self._height, self._round,
                                     block_hash, None)
        signature = self._sign(SignStep.PREVOTE, sign_bytes)
        if signature is not None:
            self._record_own_vote(Vote(VoteKind.PREVOTE, self._height, self._round, block_hash,
                                       self._name, signature))

    def _precommit(self, block: BlockLike | None) -> None:
        """Precommit `block` (locking it) or nil. A block precommit signs its checkpoint."""
        self._step = Step.PRECOMMIT
        if self._key is None or self._signed_elsewhere(VoteKind.PRECOMMIT):
            return
        block_hash = checkpoint_signature = None
        if block is not None:
            block_hash = block.block_hash
            checkpoint_signature = self._key.sign(block.checkpoint_body)
        sign_bytes = vote_sign_bytes(self._digest, VoteKind.PRECOMMIT, self._height,
                                     self._round, block_hash, checkpoint_signature)
        signature = self._sign(SignStep.PRECOMMIT, sign_bytes, lock_hash=block_hash)
        if signature is not None:
            self._record_own_vote(Vote(VoteKind.PRECOMMIT, self._height, self._round,
                                       block_hash, self._name, signature, checkpoint_signature))

    def _signed_elsewhere(self, kind: VoteKind) -> bool:
        """A vote with our key is already out there for this slot, though our safety
        record does not know it (a stale safety file restored, or the key running in
        two places). Signing again could only equivocate: stay silent for this step."""
        return self._votes.tally(kind, self._round).get(self._name) is not None

    def _record_own_vote(self, vote: Vote) -> None:
        # Kept in the safety state, persisted before the vote leaves: a restarted
        # replica sends it again (`_resume_signed_round`).
        self._safety = safety.with_own_vote(self._safety, OwnVote(
            vote.block_hash, vote.signature, vote.checkpoint_signature))
        self._out.add_signed(self._safety, vote)
        self._progress.signed.append(vote)
        self._note_round(self._name, vote.round)
        invariant(self._votes.add(vote, named=False) == Added(True, None),
                  "a conflicting vote signed with our key: another process uses it")

    def _resume_signed_round(self) -> None:
        """Restarted in the round of our last signature: take up the step after it, and
        send our votes of this round again, the same bytes, already persisted. Without
        this, a vote lost in the crash could leave an honest quorum one vote short, with
        no timeout to fire (the paper assumes every message is eventually delivered)."""
        state = self._safety
        invariant((state.height, state.round) == (self._height, self._round),
                  "resuming outside the round of the last signature")
        # What `_start_round` does, but at the step after our last signature, set
        # before the round activates (it must not ask for a block to propose again).
        self._step = {SignStep.PROPOSAL: Step.PROPOSE, SignStep.PREVOTE: Step.PREVOTE,
                      SignStep.PRECOMMIT: Step.PRECOMMIT}[state.step]
        self._progress = _RoundProgress(proposed=state.step is SignStep.PROPOSAL)
        self._round_active = False
        self._pacemaker.clear()
        for vote in self._restore_own_votes(self._round, state.prevote, state.precommit):
            self._progress.signed.append(vote)  # re-sent while the round lasts
            self._out.resend(vote)
        earlier = state.earlier
        if earlier is not None:
            # Peers may still be in that round, waiting for these: send them once, and
            # keep them for `_help_round_catch_up`.
            for vote in self._restore_own_votes(earlier.round, earlier.prevote,
                                                earlier.precommit):
                self._out.resend(vote)
        self._wake_up()  # we signed in this round: it has begun

    def _restore_own_votes(self, round: int, prevote: OwnVote | None,
                           precommit: OwnVote | None) -> list[Vote]:
        """Our votes of `round` kept in the safety record, rebuilt and stored as if
        just received; only those whose signature verifies (a record written under
        another validator set holds no vote of this one)."""
        restored: list[Vote] = []
        for kind, own in ((VoteKind.PREVOTE, prevote), (VoteKind.PRECOMMIT, precommit)):
            if own is None or self._key is None:
                continue
            vote = Vote(kind, self._height, round, own.block_hash, self._name,
                        own.signature, own.checkpoint_signature)
            if is_valid_signature(self._key.public_key, vote.sign_bytes(self._digest),
                                  vote.signature):
                self._ingest_vote(vote)
                restored.append(vote)
        return restored

    # --- the upon-rules ---------------------------------------------------------------
    def _advance(self) -> None:
        if not self._started:
            return
        fire = self._fire_one_rule if self._rule_counter is None else self._fire_counted
        for _ in range(MAX_RULE_FIRINGS_PER_STEP):
            if not fire():
                return
        invariant(False, "consensus rules did not settle")

    def _fire_one_rule(self) -> bool:
        return (self._rule_decide() or self._rule_skip_round()
                or self._rule_prevote_on_proposal() or self._rule_missing_decided_block()
                or self._rule_left_behind()
                or self._rule_prevote_quorum_any()
                or self._rule_precommit_on_polka() or self._rule_precommit_nil()
                or self._rule_precommit_quorum_any())

    def _fire_counted(self) -> bool:
        """`_fire_one_rule`, counting the rule that fired in `rule_counter`."""
        counter = self._rule_counter
        assert counter is not None
        for name in RULE_NAMES:
            rule: Callable[[], bool] = getattr(self, name)
            if rule():
                counter[name] += 1
                return True
        return False

    def _rule_decide(self) -> bool:
        """Line 49: a quorum of precommits for a block at some round, and the block.
        The paper takes the block from that round's proposal; we take it from any
        proposal of it at this height (the same hash is the same block). A validator
        that crashed, or missed that proposal, may otherwise never see it again: its
        proposer moves on, while later rounds re-propose the very block."""
        quorum = self._validators.quorum
        for round in self._votes.rounds():
            tally = self._votes.tally(VoteKind.PRECOMMIT, round)
            if tally.total < quorum:
                continue
            for block_hash in tally.blocks_with(quorum):
                proposal = (self._proposals.find(round, block_hash)
                            or self._proposals.with_block(block_hash))
                if proposal is None or self._validity.get(block_hash) is not True:
                    continue
                precommits = self._certified_precommits(round, proposal.block)
                if len(precommits) >= quorum:
                    self._decide(proposal, round, precommits)
                    return True
        return False

    def _rule_skip_round(self) -> bool:
        """Line 55: f+1 validators are in later rounds, so at least one honest one is."""
        rounds = sorted(self._peer_rounds.values(), reverse=True)
        weak = self._validators.weak_quorum
        if len(rounds) < weak or rounds[weak - 1] <= self._round:
            return False
        self._start_round(rounds[weak - 1])
        return True

    def _rule_prevote_on_proposal(self) -> bool:
        """Lines 22 and 28: prevote on this round's proposal once we can judge it."""
        if self._step is not Step.PROPOSE:
            return False
        for proposal in self._proposals.at(self._round):
            ready, target = self._prevote_target(proposal)
            if ready:
                self._prevote(target)
                return True
        return False

    def _rule_missing_decided_block(self) -> bool:
        """Not in the paper: the network decided a block we never got in a proposal.
        Waiting out timeoutPropose is pointless, so prevote nil now (what line 57 does
        later; a nil prevote is always safe). The vote reaches peers while they are
        one height ahead, and they answer with the decision (`_help_catch_up`)."""
        if self._step is not Step.PROPOSE:
            return False
        quorum = self._validators.quorum
        for round in self._votes.rounds():
            tally = self._votes.tally(VoteKind.PRECOMMIT, round)
            if tally.total < quorum:
                continue
            for block_hash in tally.blocks_with(quorum):
                if self._proposals.with_block(block_hash) is None:
                    self._prevote(None)
                    return True
        return False

    def _rule_left_behind(self) -> bool:
        """Not in the paper: f+1 validators already vote at the next height, so at
        least one honest one has committed ours. Show them we lag, once per round:
        prevote nil now if we have not voted (always safe), else re-send our votes.
        Peers one height ahead answer with the decision (`_help_catch_up`)."""
        if self._progress.lag_announced or len(self._ahead) < self._validators.weak_quorum:
            return False
        self._progress.lag_announced = True
        if self._step is Step.PROPOSE:
            self._prevote(None)
        else:
            self._resend_own_messages()
        return True

    def _prevote_target(self, proposal: Proposal) -> tuple[bool, BlockLike | None]:
        """(ready, block to prevote or None for nil). Not ready while the block is being
        validated or its proof-of-lock round lacks a prevote quorum."""
        block_hash = proposal.block_hash
        if proposal.pol_round >= 0:
            polka = self._votes.tally(VoteKind.PREVOTE, proposal.pol_round).count(block_hash)
            if polka < self._validators.quorum:
                return False, None
        else:
            timely = self._timely.get((proposal.round, block_hash))
            if timely is None:
                return False, None
            if not timely and not self._proven(block_hash):
                return True, None
        valid = self._validity.get(block_hash)
        if valid is None:
            return False, None
        if valid and safety.may_prevote_for(self._safety, self._height, block_hash,
                                            proposal.pol_round):
            return True, proposal.block
        return True, None

    def _proven(self, block_hash: bytes) -> bool:
        """Our locked block, or our valid value: a polka for it was seen, so a quorum
        already found its proposal timely (ADR 0006). Prevoting it again is what the
        lock asks for (line 22); refusing it as late would only stall the height."""
        _, locked_hash = safety.lock_at(self._safety, self._height)
        valid = self._valid_block
        return block_hash == locked_hash or (valid is not None and valid.block_hash == block_hash)

    def _rule_prevote_quorum_any(self) -> bool:
        """Line 34: a quorum of prevotes of any kind starts the prevote timer."""
        if self._step is not Step.PREVOTE or self._progress.prevote_timer_set:
            return False
        if self._votes.tally(VoteKind.PREVOTE, self._round).total < self._validators.quorum:
            return False
        self._progress.prevote_timer_set = True
        self._pacemaker.schedule(TimeoutKind.PREVOTE, self._height, self._round, self._now_ms)
        return True

    def _rule_precommit_on_polka(self) -> bool:
        """Line 36: a valid proposal with a prevote quorum: lock and precommit it (if
        still at prevote), and remember it as the valid value."""
        if self._step is Step.PROPOSE or self._progress.polka_seen:
            return False
        tally = self._votes.tally(VoteKind.PREVOTE, self._round)
        if tally.total < self._validators.quorum:
            return False
        for proposal in self._proposals.at(self._round):
            block_hash = proposal.block_hash
            if (tally.count(block_hash) >= self._validators.quorum
                    and self._validity.get(block_hash) is True):
                self._progress.polka_seen = True
                polka = tally.for_block(block_hash)
                if self._step is Step.PREVOTE:
                    self._out.note_lock(LockProof(proposal, tuple(polka)))
                    self._precommit(proposal.block)
                self._valid_round, self._valid_block = self._round, proposal.block
                # The paper's gossip: a validator that missed one of these prevotes (an
                # equivocator's, sent to some only) must see the polka while it is
                # still in this round, or its valid round stays below our lock and
                # locks split two against two never meet again (seed 2789, n = 7). The
                # quorum goes out with our resends while the round lasts; a round that
                # decides at once sends nothing more.
                self._progress.relayed = [*self._progress.relayed,
                                          *(v for v in polka if v.voter != self._name)]
                return True
        return False

    def _rule_precommit_nil(self) -> bool:
        """Line 44: a quorum prevoted nil."""
        if self._step is not Step.PREVOTE:
            return False
        if self._votes.tally(VoteKind.PREVOTE, self._round).count(None) < self._validators.quorum:
            return False
        self._precommit(None)
        return True

    def _rule_precommit_quorum_any(self) -> bool:
        """Line 47: a quorum of precommits of any kind starts the precommit timer."""
        if self._progress.precommit_timer_set:
            return False
        if self._votes.tally(VoteKind.PRECOMMIT, self._round).total < self._validators.quorum:
            return False
        self._progress.precommit_timer_set = True
        self._pacemaker.schedule(TimeoutKind.PRECOMMIT, self._height, self._round,
                                 self._now_ms)
        return True

    # --- deciding ---------------------------------------------------------------------
    def _certified_precommits(self, round: int, block: BlockLike) -> list[Vote]:
        """Precommits for `block` at `round` whose checkpoint signature verifies (the
        vote signature was checked on arrival), in validator-set order."""
        good: list[Vote] = []
        for vote in self._votes.tally(VoteKind.PRECOMMIT, round).for_block(block.block_hash):
            key = (round, vote.voter, block.block_hash)
            ok = self._checkpoint_ok.get(key)
            if ok is None:
                info = self._validators.get(vote.voter)
                invariant(info is not None and vote.checkpoint_signature is not None,
                          "unchecked precommit in the vote book")
                assert info is not None and vote.checkpoint_signature is not None
                ok = is_valid_signature(info.public_key, block.checkpoint_body,
                                        vote.checkpoint_signature)
                self._checkpoint_ok[key] = ok
            if ok:
                good.append(vote)
        good.sort(key=lambda v: self._validators.index_of(v.voter))
        return good

    def _decide(self, proposal: Proposal, round: int, precommits: list[Vote]) -> None:
        certificate = CommitCertificate(self._height, round, proposal.block_hash,
                                        tuple(precommits))
        self._out.commit(Commit(proposal.block, certificate))
        self._last_decision = _Decision(proposal, certificate)
        self._enter_height(self._height + 1)
