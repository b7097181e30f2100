"""Invariant checkers. Each violation raises `SimFailure` with a one-line reason;
the world adds the seed.

* agreement: never two different blocks committed (or adopted by block sync) at one
  height, by any node: a second valid certificate at a height is already a violation
  with at most f Byzantine validators;
* certificates: every committed block carries a certificate that verifies with
  `CommitCertificate.verify(validators, checkpoint_body)`, for that very block, with
  the validator set of its height (which reconfiguration runs change);
* validity: no honest node commits a block that honest validation rejects;
* honest signing: an honest validator never signs two different messages for one
  (height, round, step), across crashes, and nothing it signs leaves before a
  persisted safety state (or a durable commit of that height) covers it;
* liveness: once the network heals, every honest node commits `HEAL_HEIGHTS` more
  heights within `HEAL_BUDGET_MS` (checked by the world's run loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tidechain.consensus import (
    PREVOTE,
    CommitCertificate,
    Message,
    Proposal,
    SafetyState,
    SignStep,
    ValidatorSet,
)
from tidechain.consensus.messages import BlockLike
from tidechain.core.crypto import sha256
from tidechain.core.errors import ProofError

Slot = tuple[str, int, int, SignStep]  # (validator, height, round, step)


class SimFailure(Exception):
    """An invariant broke. `kind` is safety, liveness or crash; the message is the
    one-line reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def signed_slot(message: Message) -> tuple[int, int, SignStep]:
    """The (height, round, step) a message is signed for."""
    if isinstance(message, Proposal):
        return message.height, message.round, SignStep.PROPOSAL
    step = SignStep.PREVOTE if message.kind is PREVOTE else SignStep.PRECOMMIT
    return message.height, message.round, step


def signer_of(message: Message) -> str:
    return message.proposer if isinstance(message, Proposal) else message.voter


@dataclass
class Checkers:
    """The safety checkers, fed by the world as actions execute."""

    validators: ValidatorSet
    invalid: set[bytes]  # blocks honest validation rejects (shared with the world)
    set_at: Callable[[int], ValidatorSet] | None = None
    """The set of each height when it changes (reconfiguration runs); else `validators`."""
    decided: dict[int, tuple[bytes, str]] = field(default_factory=dict)
    signed: dict[Slot, bytes] = field(default_factory=dict)
    _verified: set[bytes] = field(default_factory=set)

    def _set(self, height: int) -> ValidatorSet:
        return self.validators if self.set_at is None else self.set_at(height)

    def on_commit(self, node_id: str, honest: bool, committed_height: int,
                  block: BlockLike, certificate: CommitCertificate) -> None:
        """A node made `block` durable at `committed_height + 1` (by Commit or sync)."""
        height = block.height
        if height != committed_height + 1:
            raise SimFailure("safety", f"{node_id} committed height {height} on top of "
                                       f"height {committed_height}")
        self.check_certificate(node_id, block, certificate)
        if honest and block.block_hash in self.invalid:
            raise SimFailure("safety", f"{node_id} committed invalid block "
                                       f"{block.block_hash.hex()[:12]} at height {height}")
        first = self.decided.setdefault(height, (block.block_hash, node_id))
        if first[0] != block.block_hash:
            raise SimFailure("safety", f"agreement: height {height}: {node_id} committed "
                                       f"{block.block_hash.hex()[:12]}, {first[1]} committed "
                                       f"{first[0].hex()[:12]}")

    def check_certificate(self, node_id: str, block: BlockLike,
                          certificate: CommitCertificate) -> None:
        """The certificate is a valid quorum checkpoint for exactly this block."""
        if (certificate.height, certificate.block_hash) != (block.height, block.block_hash):
            raise SimFailure("safety", f"{node_id}: certificate of height "
                                       f"{certificate.height} is for another block")
        key = sha256(certificate.encode() + block.checkpoint_body)
        if key in self._verified:
            return  # the same bytes verify the same way
        try:
            certificate.verify(self._set(block.height), block.checkpoint_body)
        except ProofError as exc:
            raise SimFailure("safety", f"{node_id}: bad certificate at height "
                                       f"{block.height}: {exc}") from exc
        self._verified.add(key)

    def on_honest_send(self, node_id: str, message: Message, persisted: SafetyState | None,
                       committed_height: int) -> None:
        """An honest node is about to send a message it signed itself."""
        height, round, step = signed_slot(message)
        digest = sha256(message.sign_bytes(self._set(height).digest))
        first = self.signed.setdefault((signer_of(message), height, round, step), digest)
        if first != digest:
            raise SimFailure("safety", f"honest {node_id} signed two different "
                                       f"{step.name.lower()}s at height {height} round {round}")
        if committed_height >= height:
            return  # the Commit of that height is durable: it never signs there again
        if persisted is None or (persisted.height, persisted.round, persisted.step) < (
                height, round, step):
            raise SimFailure("safety", f"{node_id} sent its {step.name.lower()} at height "
                                       f"{height} round {round} before persisting it")
