"""Consensus messages and the exact bytes each one signs.

Signed bytes are fixed-width, big-endian and domain-separated (ADR 0004):

    vote:     b"tidechain/vote/v1\\n" || set_digest (32) || kind (1: 1 prevote, 2 precommit)
              || height (8) || round (4) || 0x00                          (nil)
                                        || 0x01 || block_hash (32)         (prevote)
                                        || 0x01 || block_hash (32) || checkpoint_sig (64)
                                                                           (precommit)
    proposal: b"tidechain/proposal/v1\\n" || set_digest (32) || height (8) || round (4)
              || pol_round + 1 (4) || block_hash (32)

`set_digest` is `ValidatorSet.digest`. A non-nil precommit also carries the voter's
Ed25519 signature over the block's raw checkpoint body (a C2SP signed-note signature);
the vote signature covers that signature, so a relaying peer cannot swap it for junk.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from tidechain.consensus.params import MAX_HEIGHT, MAX_ROUND
from tidechain.core.crypto import SIGNATURE_BYTES, SigningKey
from tidechain.core.errors import DecodeError
from tidechain.core.limits import MAX_NAME_BYTES

BLOCK_HASH_BYTES = 32
VOTE_DOMAIN = b"tidechain/vote/v1\n"
PROPOSAL_DOMAIN = b"tidechain/proposal/v1\n"


class BlockLike(Protocol):
    """What consensus sees of a block: nothing but these three values."""

    @property
    def height(self) -> int: ...

    @property
    def block_hash(self) -> bytes: ...

    @property
    def checkpoint_body(self) -> bytes:
        """The C2SP checkpoint note body this block produces (validators sign it)."""
        ...


class VoteKind(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


PREVOTE = VoteKind.PREVOTE
PRECOMMIT = VoteKind.PRECOMMIT


@dataclass(frozen=True)
class Vote:
    kind: VoteKind
    height: int
    round: int
    block_hash: bytes | None  # None: a vote for nil
    voter: str
    signature: bytes
    checkpoint_signature: bytes | None = None  # only on a precommit for a block

    def sign_bytes(self, set_digest: bytes) -> bytes:
        return vote_sign_bytes(set_digest, self.kind, self.height, self.round,
                               self.block_hash, self.checkpoint_signature)

    def to_cbor(self) -> dict[str, Any]:
        return {"kind": int(self.kind), "height": self.height, "round": self.round,
                "block": self.block_hash, "voter": self.voter, "sig": self.signature,
                "cpsig": self.checkpoint_signature}

    @classmethod
    def from_cbor(cls, value: Any) -> Vote:
        """Strictly decode a vote map; DecodeError on anything else."""
        if not isinstance(value, dict) or set(value) != {
                "kind", "height", "round", "block", "voter", "sig", "cpsig"}:
            raise DecodeError("vote: expected a map with exactly the vote fields")
        kind = value["kind"]
        if kind not in (1, 2) or isinstance(kind, bool):
            raise DecodeError("vote: unknown kind")
        vote = cls(VoteKind(kind), value["height"], value["round"], value["block"],
                   value["voter"], value["sig"], value["cpsig"])
        problem = vote_problem(vote)
        if problem is not None:
            raise DecodeError(f"vote: {problem}")
        return vote


@dataclass(frozen=True)
class Proposal:
    height: int
    round: int
    block: BlockLike
    pol_round: int  # -1, or the earlier round whose prevote quorum the block had
    proposer: str
    signature: bytes

    @property
    def block_hash(self) -> bytes:
        return self.block.block_hash

    def sign_bytes(self, set_digest: bytes) -> bytes:
        return proposal_sign_bytes(set_digest, self.height, self.round, self.pol_round,
                                   self.block.block_hash)


Message = Proposal | Vote


def vote_sign_bytes(set_digest: bytes, kind: VoteKind, height: int, round: int,
                    block_hash: bytes | None, checkpoint_signature: bytes | None) -> bytes:
    head = VOTE_DOMAIN + set_digest + struct.pack(">BQI", kind, height, round)
    if block_hash is None:
        return head + b"\x00"
    return head + b"\x01" + block_hash + (checkpoint_signature or b"")


def proposal_sign_bytes(set_digest: bytes, height: int, round: int, pol_round: int,
                        block_hash: bytes) -> bytes:
    return (PROPOSAL_DOMAIN + set_digest + struct.pack(">QII", height, round, pol_round + 1)
            + block_hash)


def sign_vote(key: SigningKey, voter: str, set_digest: bytes, kind: VoteKind, height: int,
              round: int, block: BlockLike | None) -> Vote:
    """A signed vote for `block` (None: nil). Precommits sign the checkpoint too."""
    block_hash = None if block is None else block.block_hash
    checkpoint_signature = None
    if kind is VoteKind.PRECOMMIT and block is not None:
        checkpoint_signature = key.sign(block.checkpoint_body)
    signature = key.sign(vote_sign_bytes(set_digest, kind, height, round, block_hash,
                                         checkpoint_signature))
    return Vote(kind, height, round, block_hash, voter, signature, checkpoint_signature)


def sign_proposal(key: SigningKey, proposer: str, set_digest: bytes, height: int, round: int,
                  block: BlockLike, pol_round: int) -> Proposal:
    signature = key.sign(proposal_sign_bytes(set_digest, height, round, pol_round,
                                             block.block_hash))
    return Proposal(height, round, block, pol_round, proposer, signature)


def _int_in(value: object, low: int, high: int) -> bool:
    """An int (not a bool: bool is a subclass of int) within [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_bytes(value: object, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def _height_round_problem(height: object, round: object) -> str | None:
    if not _int_in(height, 1, MAX_HEIGHT):
        return "height out of range"
    if not _int_in(round, 0, MAX_ROUND):
        return "round out of range"
    return None


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name or len(name.encode()) > MAX_NAME_BYTES:
        return "bad validator name"
    return None


def vote_problem(vote: Vote) -> str | None:
    """Why `vote` is malformed (field types and ranges), or None. No signature check."""
    if not isinstance(vote.kind, VoteKind):
        return "unknown vote kind"
    problem = _height_round_problem(vote.height, vote.round) or _name_problem(vote.voter)
    if problem is not None:
        return problem
    if vote.block_hash is not None and not _is_bytes(vote.block_hash, BLOCK_HASH_BYTES):
        return f"block hash must be {BLOCK_HASH_BYTES} bytes"
    if not _is_bytes(vote.signature, SIGNATURE_BYTES):
        return f"signature must be {SIGNATURE_BYTES} bytes"
    wants_checkpoint = vote.kind is VoteKind.PRECOMMIT and vote.block_hash is not None
    if wants_checkpoint and not _is_bytes(vote.checkpoint_signature, SIGNATURE_BYTES):
        return "a precommit for a block needs a checkpoint signature"
    if not wants_checkpoint and vote.checkpoint_signature is not None:
        return "only a precommit for a block carries a checkpoint signature"
    return None


def proposal_problem(proposal: Proposal) -> str | None:
    """Why `proposal` is malformed, or None. No signature check, no block validation."""
    problem = (_height_round_problem(proposal.height, proposal.round)
               or _name_problem(proposal.proposer))
    if problem is not None:
        return problem
    if not _int_in(proposal.pol_round, -1, proposal.round - 1):
        return "pol_round must be -1 or an earlier round"
    if not _is_bytes(proposal.signature, SIGNATURE_BYTES):
        return f"signature must be {SIGNATURE_BYTES} bytes"
    block = proposal.block
    if not _is_bytes(getattr(block, "block_hash", None), BLOCK_HASH_BYTES):
        return f"block hash must be {BLOCK_HASH_BYTES} bytes"
    if getattr(block, "height", None) != proposal.height:
        return "block height differs from proposal height"
    if not isinstance(getattr(block, "checkpoint_body", None), bytes):
        return "block has no checkpoint body"
    return None
