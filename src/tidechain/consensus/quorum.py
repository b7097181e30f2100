"""The validator set and its quorum arithmetic.

With n validators of which at most f = floor((n - 1) / 3) are faulty, a quorum is
n - f (2f + 1 when n = 3f + 1; 1 when n = 1): any two quorums share at least f + 1
validators, hence at least one honest one. A "weak quorum" of f + 1 contains at
least one honest validator. Every validator has one vote (no weights).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

from tidechain.core.crypto import PUBLIC_KEY_BYTES, sha256
from tidechain.core.errors import Rejected
from tidechain.core.limits import MAX_NAME_BYTES, MAX_VALIDATORS

_SET_DOMAIN = b"tidechain/validator-set/v1\n"


@dataclass(frozen=True)
class ValidatorInfo:
    name: str
    public_key: bytes


@dataclass(frozen=True)
class ValidatorSet:
    """An ordered set of validators. The order fixes proposer rotation and the digest."""

    validators: tuple[ValidatorInfo, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.validators) <= MAX_VALIDATORS:
            raise Rejected(f"a validator set has 1..{MAX_VALIDATORS} members",
                           code="bad_validator_set")
        for v in self.validators:
            if not v.name or len(v.name.encode()) > MAX_NAME_BYTES:
                raise Rejected(f"bad validator name {v.name[:MAX_NAME_BYTES]!r}",
                               code="bad_validator_set")
            if len(v.public_key) != PUBLIC_KEY_BYTES:
                raise Rejected(f"validator {v.name!r}: key must be {PUBLIC_KEY_BYTES} bytes",
                               code="bad_validator_set")
        if len({v.name for v in self.validators}) != len(self.validators):
            raise Rejected("duplicate validator name", code="bad_validator_set")
        if len({v.public_key for v in self.validators}) != len(self.validators):
            raise Rejected("duplicate validator key", code="bad_validator_set")

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def max_faulty(self) -> int:
        """f: the most faulty validators the set tolerates."""
        return (self.size - 1) // 3

    @property
    def quorum(self) -> int:
        """n - f distinct validators: enough to decide."""
        return self.size - self.max_faulty

    @property
    def weak_quorum(self) -> int:
        """f + 1 distinct validators: at least one of them is honest."""
        return self.max_faulty + 1

    def proposer(self, height: int, round: int) -> ValidatorInfo:
        """The proposer of (height, round): round-robin, the same on every validator."""
        return self.validators[(height + round) % self.size]

    def get(self, name: str) -> ValidatorInfo | None:
        return self._by_name.get(name)

    def index_of(self, name: str) -> int:
        """Position in the set (certificates list precommits in this order)."""
        return self._index[name]

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of the ordered set. Every signed consensus message includes it, so
        a vote is only valid for the validator set (and network) it was cast in."""
        parts = [_SET_DOMAIN]
        for v in self.validators:
            name = v.name.encode()
            parts.append(struct.pack(">H", len(name)) + name + v.public_key)
        return sha256(b"".join(parts))

    @cached_property
    def _by_name(self) -> dict[str, ValidatorInfo]:
        return {v.name: v for v in self.validators}

    @cached_property
    def _index(self) -> dict[str, int]:
        return {v.name: i for i, v in enumerate(self.validators)}
