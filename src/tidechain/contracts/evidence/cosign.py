"""Co-signed deposits (evidence v2): the rules a deposit that k of n named parties must
sign follows, shared by the contract (which enforces them) and by the offline verifier
(which re-checks them from log entries alone).

A co-signed deposit names its signers as *slots*: a member key, or an organisation and
a role ("whoever signs for the port authority as a carrier"). It is pending until k
slots are filled, each by one member's own `sign` transaction; it becomes effective at
the block of the k-th signature. A slot is filled once; a member fills at most one
slot; a member that matches no slot counts for nothing and is refused. Signing closes at
the deadline: a deposit still pending then has lapsed, for good.

Everything here is pure: time comes in as block time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidechain.core.crypto import PUBLIC_KEY_BYTES
from tidechain.core.errors import ContractError
from tidechain.identity.roles import ROLE_NAMES, Role

MAX_COSIGNERS = 6
"""Named signers of one deposit. Each slot is a secondary-index row (who has to sign
what), and a transaction writes at most MAX_INDEX_ENTRIES_PER_TX (8) rows: the digest,
the amended deposit and six slots. Tally reports name three parties, insurance two."""

MAX_ORG_ID_BYTES = 64
"""An organisation id in a slot: as the members contract bounds them."""

DEADLINE_PARAM = "evidence.max_cosign_ms"
DAY_MS = 86_400_000
DEFAULT_MAX_COSIGN_MS = 30 * DAY_MS
"""How long signers have by default, and at most unless governance says otherwise: a
month covers a tally report's or an insurance record's paperwork."""
CEILING_COSIGN_MS = 366 * DAY_MS
"""Governance cannot keep a deposit pending for more than a year."""
FLOOR_COSIGN_MS = 60_000
"""...nor set a window too short for any signer to act in."""

PENDING = "pending"
EFFECTIVE = "effective"
LAPSED = "lapsed"


@dataclass(frozen=True)
class Slot:
    """One named signer: a member key, or an organisation and a role."""

    key: bytes | None = None
    org: str | None = None
    role: Role | None = None

    def to_cbor(self) -> dict[str, Any]:
        if self.key is not None:
            return {"key": self.key}
        assert self.org is not None and self.role is not None
        return {"org": self.org, "role": self.role.value}

    def matches(self, key: bytes, org: str | None, roles: frozenset[Role]) -> bool:
        """Whether a signer with `key`, of organisation `org` holding `roles`, may fill
        this slot."""
        if self.key is not None:
            return key == self.key
        return org == self.org and self.role in roles

    def describe(self) -> str:
        if self.key is not None:
            return f"key {self.key.hex()}"
        assert self.role is not None
        return f"{self.org} as {self.role.value}"


def check_max_cosign(value: Any) -> int:
    """The governed bound on a co-signing window."""
    if (not isinstance(value, int) or isinstance(value, bool)
            or not FLOOR_COSIGN_MS <= value <= CEILING_COSIGN_MS):
        raise ContractError(f"{DEADLINE_PARAM} must be an integer in "
                            f"{FLOOR_COSIGN_MS}..{CEILING_COSIGN_MS} ms", code="bad_argument")
    return value


def parse_slot(value: Any) -> Slot:
    """A slot argument: {"key": 32 bytes} or {"org": text, "role": a role name}."""
    if not isinstance(value, dict):
        raise ContractError("each co-signer must be {key} or {org, role}", code="bad_argument")
    if set(value) == {"key"}:
        key = value["key"]
        if not isinstance(key, bytes) or len(key) != PUBLIC_KEY_BYTES:
            raise ContractError(f"a co-signer key must be {PUBLIC_KEY_BYTES} bytes "
                                "(an Ed25519 public key)", code="bad_argument")
        return Slot(key=key)
    if set(value) == {"org", "role"}:
        org, role = value["org"], value["role"]
        if not isinstance(org, str) or not 0 < len(org.encode()) <= MAX_ORG_ID_BYTES:
            raise ContractError(f"a co-signer org must be 1..{MAX_ORG_ID_BYTES} bytes of text",
                                code="bad_argument")
        if role not in ROLE_NAMES or role == Role.REGULATOR.value:
            raise ContractError(f"a co-signer role must be one of the roles that act: "
                                f"{', '.join(r for r in ROLE_NAMES if r != 'regulator')}",
                                code="bad_argument")
        return Slot(org=org, role=Role(role))
    raise ContractError("each co-signer must be exactly {key} or {org, role}",
                        code="bad_argument")


def parse_slots(value: Any) -> tuple[Slot, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_COSIGNERS:
        raise ContractError(f"'cosigners' must list 1..{MAX_COSIGNERS} co-signers",
                            code="bad_argument")
    slots = tuple(parse_slot(v) for v in value)
    if len(set(slots)) != len(slots):
        raise ContractError("a co-signer is named twice", code="bad_argument")
    return slots


def check_threshold(value: Any, slots: Sequence[Slot]) -> int:
    if (not isinstance(value, int) or isinstance(value, bool)
            or not 1 <= value <= len(slots)):
        raise ContractError(f"'threshold' must be an integer in 1..{len(slots)} (the number "
                            "of co-signers)", code="bad_argument")
    return value


def check_deadline(value: Any, now_ms: int, max_window_ms: int) -> int:
    """An absolute deadline (ms since the epoch) after `now_ms` and within the governed
    window; absent, the whole window."""
    if value is None:
        return now_ms + max_window_ms
    if not isinstance(value, int) or isinstance(value, bool):
        raise ContractError("'deadline' must be a time in ms since the epoch",
                            code="bad_argument")
    if not now_ms < value <= now_ms + max_window_ms:
        raise ContractError(f"'deadline' must be after the block time ({now_ms} ms) and at "
                            f"most {max_window_ms // 1000} s after it ({DEADLINE_PARAM})",
                            code="bad_argument")
    return value


def slots_from_record(value: Any) -> tuple[Slot, ...]:
    """The slots of a stored record or of a verified entry's arguments."""
    return parse_slots(value)


def choose_slot(slots: Sequence[Slot], filled: Sequence[int], key: bytes,
                org: str | None, roles: frozenset[Role]) -> int:
    """The slot a signer fills: the first it matches that is still open. A signer named
    by key fills that slot before any org-and-role slot it also matches, so the party
    named by name is counted as itself."""
    matching = [i for i, s in enumerate(slots) if s.matches(key, org, roles)]
    if not matching:
        raise ContractError("you are not one of this deposit's co-signers",
                            code="not_a_cosigner")
    by_key = [i for i in matching if slots[i].key is not None]
    for i in by_key + [i for i in matching if i not in by_key]:
        if i not in filled:
            return i
    raise ContractError("every co-signer slot you match is already signed",
                        code="already_signed")


def status_at(threshold: int, signed: int, deadline_ms: int, time_ms: int) -> str:
    """A co-signed deposit's status at block time `time_ms` with `signed` slots filled."""
    if signed >= threshold:
        return EFFECTIVE
    return LAPSED if time_ms > deadline_ms else PENDING
