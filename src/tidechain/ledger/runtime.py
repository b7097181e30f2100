"""The deterministic contract runtime.

A contract is a set of methods over its own namespace of the world state. A method
sees only its arguments, the caller, the block height and time, the log index its
transaction will get and the transaction id: no wall clock, no randomness, no floats
(the CBOR data model has none). A method either returns normally (its writes, events
and index entries are kept) or raises `ContractError` (nothing it wrote is kept; the
transaction is still committed, failed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tidechain.core.errors import ContractError, InvariantViolation
from tidechain.core.limits import (
    MAX_EVENTS_PER_TX,
    MAX_INDEX_ENTRIES_PER_TX,
    MAX_INDEX_KEY_BYTES,
    MAX_WRITES_PER_TX,
)
from tidechain.ledger.types import Event

NAMESPACE_SEPARATOR = b"/"


class IndexReader(Protocol):
    def index_lookup(self, name: str, key: bytes, limit: int) -> list[int]:
        """Log indexes filed under (name, key), in log order."""
        ...


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


def namespaced(contract: str, key: bytes) -> bytes:
    return contract.encode("ascii") + NAMESPACE_SEPARATOR + key


class Overlay:
    """Pending writes over a reader. `None` marks a deletion."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def merge(self, child_writes: Mapping[bytes, bytes | None]) -> None:
        self.writes.update(child_writes)


@dataclass
class CallContext:
    """What a contract method may see and do."""

    contract: str
    caller: bytes
    height: int
    time_ms: int
    log_index: int
    tx_id: bytes
    _state: Overlay
    events: list[Event] = field(default_factory=list)
    index_entries: list[tuple[str, bytes]] = field(default_factory=list)

    def get(self, key: bytes) -> bytes | None:
        return self._state.get(namespaced(self.contract, key))

    def put(self, key: bytes, value: bytes) -> None:
        self._count_write()
        self._state.writes[namespaced(self.contract, key)] = value

    def delete(self, key: bytes) -> None:
        self._count_write()
        self._state.writes[namespaced(self.contract, key)] = None

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        if len(self.events) >= MAX_EVENTS_PER_TX:
            raise ContractError(f"more than {MAX_EVENTS_PER_TX} events in one transaction")
        self.events.append(Event(kind, data))

    def index(self, name: str, key: bytes) -> None:
        """File this transaction's log index under `key` in the secondary index `name`
        (`<contract>/<index>`), for queries such as "all deposits of a digest".

        Secondary indexes are derived from execution and stored beside the chain, but
        they are not part of the state root: every node computes the same ones, and
        nothing a verifier checks depends on them (ADR 0003). Kept only if the
        transaction succeeds."""
        if len(self.index_entries) >= MAX_INDEX_ENTRIES_PER_TX:
            raise ContractError(f"more than {MAX_INDEX_ENTRIES_PER_TX} index entries")
        if len(key) > MAX_INDEX_KEY_BYTES:
            raise ContractError(f"index key longer than {MAX_INDEX_KEY_BYTES} bytes")
        self.index_entries.append((f"{self.contract}/{name}", key))

    def _count_write(self) -> None:
        if len(self._state.writes) >= MAX_WRITES_PER_TX:
            raise ContractError(f"more than {MAX_WRITES_PER_TX} writes in one transaction")


Method = Callable[[CallContext, dict[str, Any]], None]


@dataclass(frozen=True)
class Contract:
    """A built-in contract: a name and its methods. Queries are plain functions in the
    contract's module, reading committed state."""

    name: str
    methods: Mapping[str, Method]
    description: str = ""


class Registry:
    def __init__(self, contracts: list[Contract]) -> None:
        self._contracts = {c.name: c for c in contracts}
        if len(self._contracts) != len(contracts):
            raise InvariantViolation("two contracts share a name")

    def method(self, contract: str, method: str) -> Method:
        c = self._contracts.get(contract)
        if c is None:
            raise ContractError(f"no contract named {contract!r}", code="unknown_contract")
        m = c.methods.get(method)
        if m is None:
            raise ContractError(f"contract {contract!r} has no method {method!r}",
                                code="unknown_method")
        return m

    def __iter__(self) -> Iterator[Contract]:
        return iter(self._contracts.values())
