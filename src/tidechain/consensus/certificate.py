"""Commit certificates: a quorum of precommits for one block, which is also a quorum
of signatures on the block's C2SP checkpoint. Block sync trusts a block because its
certificate verifies, not because of the peer that sent it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidechain.consensus.messages import BLOCK_HASH_BYTES, PRECOMMIT, Vote
from tidechain.consensus.quorum import ValidatorSet
from tidechain.core import cbor
from tidechain.core.crypto import verify
from tidechain.core.errors import BadSignature, DecodeError, ProofError, TooLarge
from tidechain.core.limits import MAX_VALIDATORS

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CommitCertificate:
    height: int
    round: int
    block_hash: bytes
    precommits: tuple[Vote, ...]  # in validator-set order, one per voter

    def verify(self, validator_set: ValidatorSet, checkpoint_body: bytes) -> None:
        """Raise ProofError unless a quorum of distinct validators precommitted
        `block_hash` at (height, round) and signed `checkpoint_body`.

        Strict: any entry that is not a valid precommit of a distinct validator fails
        the whole certificate, so a valid certificate has one meaning. The caller must
        take `checkpoint_body` from the block whose hash is `block_hash`."""
        if len(self.block_hash) != BLOCK_HASH_BYTES:
            raise ProofError("certificate block hash has the wrong length")
        if len(self.precommits) > validator_set.size:
            raise ProofError("certificate has more precommits than validators")
        seen: set[str] = set()
        for vote in self.precommits:
            self._check_precommit(vote, validator_set, checkpoint_body, seen)
            seen.add(vote.voter)
        if len(seen) < validator_set.quorum:
            raise ProofError(
                f"certificate has {len(seen)} precommits, quorum is {validator_set.quorum}")

    def _check_precommit(self, vote: Vote, validator_set: ValidatorSet,
                         checkpoint_body: bytes, seen: set[str]) -> None:
        if (vote.kind is not PRECOMMIT or vote.height != self.height
                or vote.round != self.round or vote.block_hash != self.block_hash):
            raise ProofError(f"precommit of {vote.voter!r} is not for this block and round")
        info = validator_set.get(vote.voter)
        if info is None:
            raise ProofError(f"precommit from unknown validator {vote.voter!r}")
        if vote.voter in seen:
            raise ProofError(f"two precommits from {vote.voter!r}")
        if vote.checkpoint_signature is None:
            raise ProofError(f"precommit of {vote.voter!r} does not sign the checkpoint")
        try:
            verify(info.public_key, vote.sign_bytes(validator_set.digest), vote.signature)
            verify(info.public_key, checkpoint_body, vote.checkpoint_signature)
        except (BadSignature, DecodeError) as exc:
            raise ProofError(f"precommit of {vote.voter!r}: {exc}") from exc

    def to_cbor(self) -> dict[str, Any]:
        return {"v": _FORMAT_VERSION, "height": self.height, "round": self.round,
                "block": self.block_hash, "precommits": [v.to_cbor() for v in self.precommits]}

    def encode(self) -> bytes:
        """Canonical CBOR (ADR 0001)."""
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> CommitCertificate:
        """Strict decode (DecodeError/TooLarge). Decoding does not verify: call verify."""
        value = cbor.decode(data)
        if not isinstance(value, dict) or set(value) != {
                "v", "height", "round", "block", "precommits"}:
            raise DecodeError("certificate: expected a map with exactly the certificate fields")
        if value["v"] != _FORMAT_VERSION:
            raise DecodeError("certificate: unsupported format version")
        votes = value["precommits"]
        if not isinstance(votes, list):
            raise DecodeError("certificate: precommits must be an array")
        if len(votes) > MAX_VALIDATORS:
            raise TooLarge(f"certificate: more than {MAX_VALIDATORS} precommits")
        height, round, block = value["height"], value["round"], value["block"]
        if not isinstance(block, bytes) or len(block) != BLOCK_HASH_BYTES:
            raise DecodeError("certificate: bad block hash")
        for field in (height, round):
            if not isinstance(field, int) or isinstance(field, bool) or field < 0:
                raise DecodeError("certificate: height and round must be unsigned integers")
        return cls(height, round, block, tuple(Vote.from_cbor(v) for v in votes))
