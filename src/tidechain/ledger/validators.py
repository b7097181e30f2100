"""The validator set in the world state (ADR 0011): who signs which height.

The set that signs block h is the set in the state after block h - 1 (the genesis
validators for h = 1). A governance decision applied at the start of block H therefore
changes the signers from H + 1 on, and block H's header commits to that next set
(`BlockHeader.validators_hash`), so a verifier can follow the chain of sets from the
genesis and the headers alone.

State, in the `members` namespace (the members contract writes it; the ledger reads it
to fill the header, the node to build its consensus replica):

* `validators`          -> the current set: a list of validator records, in set order
* `vsets`               -> the heights from which a set other than the genesis one
                           signed, ascending (one per height that changed the set)
* `vset/` + u64(height) -> the set that signs from that height on

A validator record is a map {name, key, org, addr, tls}: its C2SP key name, its Ed25519
consensus key, its organisation ("" for a genesis validator), its peer address
("host:port", "" if unknown) and the SHA-256 fingerprint of its TLS certificate (empty
if none is pinned).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tidechain.core import cbor
from tidechain.core.crypto import PUBLIC_KEY_BYTES, sha256
from tidechain.core.errors import invariant
from tidechain.ledger.runtime import StateReader, namespaced, stored_list
from tidechain.ledger.types import Genesis

NAMESPACE = "members"
SET_KEY = b"validators"
HISTORY_KEY = b"vsets"
MAX_SET_CHANGES = 100_000
"""Heights that changed the set over a chain's life: bounds the `vsets` list (8 bytes
each). A consortium changes its validators a few times a year."""
MAX_ADDRESS_BYTES = 255
TLS_FINGERPRINT_BYTES = 32


def snapshot_key(height: int) -> bytes:
    return b"vset/" + height.to_bytes(8, "big")


@dataclass(frozen=True)
class ValidatorRecord:
    """One validator as the chain knows it."""

    name: str
    public_key: bytes
    org: str = ""
    address: str = ""
    tls_fingerprint: bytes = b""

    def to_cbor(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.public_key, "org": self.org,
                "addr": self.address, "tls": self.tls_fingerprint}

    @classmethod
    def from_cbor(cls, value: Any) -> ValidatorRecord:
        """A record the chain wrote: anything malformed is our bug."""
        invariant(isinstance(value, dict) and set(value) == {"name", "key", "org", "addr",
                                                             "tls"}, "corrupt validator record")
        invariant(isinstance(value["key"], bytes) and len(value["key"]) == PUBLIC_KEY_BYTES,
                  "corrupt validator key")
        return cls(str(value["name"]), bytes(value["key"]), str(value["org"]),
                   str(value["addr"]), bytes(value["tls"]))


def genesis_records(genesis: Genesis) -> tuple[ValidatorRecord, ...]:
    return tuple(ValidatorRecord(v.name, v.public_key) for v in genesis.validators)


def encode_set(records: Iterable[ValidatorRecord]) -> bytes:
    return cbor.encode([r.to_cbor() for r in records])


def decode_set(raw: bytes) -> tuple[ValidatorRecord, ...]:
    value = cbor.decode(raw)
    invariant(isinstance(value, list) and len(value) > 0, "corrupt validator set")
    return tuple(ValidatorRecord.from_cbor(v) for v in value)


def set_hash(records: Sequence[ValidatorRecord]) -> bytes:
    """SHA-256 of the canonical CBOR of [{name, key}, ...] in set order: what a header
    commits to (the same bytes as `Genesis.validators_hash` for the genesis set).
    Addresses and TLS pins are left out: they may change without changing who signs."""
    return sha256(cbor.encode([{"name": r.name, "key": r.public_key} for r in records]))


def current_set(state: StateReader, genesis: Genesis) -> tuple[ValidatorRecord, ...]:
    """The set in `state`: the one that signs the block after the state's block."""
    raw = state.get(namespaced(NAMESPACE, SET_KEY))
    return genesis_records(genesis) if raw is None else decode_set(raw)


def next_validators_hash(state: StateReader, genesis: Genesis) -> bytes:
    """The header field of a block whose resulting state is `state`."""
    raw = state.get(namespaced(NAMESPACE, SET_KEY))
    return genesis.validators_hash if raw is None else set_hash(decode_set(raw))


def change_heights(state: StateReader) -> list[int]:
    """The heights from which a non-genesis set signed, ascending."""
    raw = state.get(namespaced(NAMESPACE, HISTORY_KEY))
    return [int(h) for h in stored_list(raw, "validator set history")]


def set_at_height(state: StateReader, genesis: Genesis, height: int
                  ) -> tuple[ValidatorRecord, ...]:
    """The set that signs block `height`, for any height up to the state's block + 1
    (later ones are not known yet: this returns the current set for them)."""
    invariant(height >= 1, "heights start at 1")
    starts = [h for h in change_heights(state) if h <= height]
    if not starts:
        return genesis_records(genesis)
    raw = state.get(namespaced(NAMESPACE, snapshot_key(starts[-1])))
    invariant(raw is not None, f"validator set from height {starts[-1]} missing")
    assert raw is not None
    return decode_set(raw)


@dataclass(frozen=True)
class KeySpan:
    """A validator key and the heights (inclusive) it signed for; `last` None: still."""

    name: str
    public_key: bytes
    first: int
    last: int | None


def key_spans(state: StateReader, genesis: Genesis) -> list[KeySpan]:
    """Every (name, key) that has been in the set, with the heights it signed for, in
    order of first height then set order: what `tide trust export` writes."""
    starts = [1, *change_heights(state)]
    spans: list[KeySpan] = []
    open_spans: dict[tuple[str, bytes], int] = {}  # (name, key) -> index in spans
    for i, start in enumerate(starts):
        members = {(r.name, r.public_key) for r in set_at_height(state, genesis, start)}
        for pair in [p for p in open_spans if p not in members]:
            index = open_spans.pop(pair)
            spans[index] = KeySpan(pair[0], pair[1], spans[index].first, start - 1)
        for record in set_at_height(state, genesis, start):
            pair = (record.name, record.public_key)
            if pair not in open_spans:
                open_spans[pair] = len(spans)
                spans.append(KeySpan(record.name, record.public_key, start, None))
        invariant(i == 0 or start > starts[i - 1], "validator set history out of order")
    return spans
