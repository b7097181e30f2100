"""The deterministic contract runtime.

A contract is a set of methods over its own namespace of the world state. A method
sees only its arguments, the caller, the block height and time, the log index its
transaction will get and the transaction id: no wall clock, no randomness, no floats
(the CBOR data model has none). A method either returns normally (its writes, events
and index entries are kept) or raises `ContractError` (nothing it wrote is kept; the
transaction is still committed, failed).

Every method declares the roles that may call it (`MethodSpec.roles`). Before a method
runs, the registry's authoriser (the `members` contract's `authorize`, wired in
`contracts.default_registry`) checks the caller against the world state and raises
`Forbidden` if the caller is not an enrolled member holding one of those roles.

A contract may also have a begin-block hook (`Contract.begin_block`): it runs at the
start of every block, before the block's transactions, on the block's state, so its
writes are part of that block's state transition and state root. Governance uses it
to apply decisions at the height they were voted for (ADR 0008).

A contract may exist in several versions in the software (`Contract.version`; every
contract starts at 1). Which version serves a height is world state: governance's
`activate_contract` writes `gov/version/<name>`, a list of (from height, version)
pairs, and every node dispatches the calls, hooks included, of block h to the version
that list names for h. A node whose software lacks that version stops at that height
with `MissingContractVersion` rather than execute the block differently (ADR 0008,
amendment).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tidechain.core import cbor
from tidechain.core.errors import ContractError, InvariantViolation
from tidechain.core.limits import MAX_EVENTS_PER_TX, MAX_WRITES_PER_TX
from tidechain.identity.roles import Role
from tidechain.ledger.types import Event, Genesis

if TYPE_CHECKING:
    from tidechain.ledger.application import Application

NAMESPACE_SEPARATOR = b"/"
GOVERNANCE = "gov"
"""The namespace of the governance contract, whose parameters and contract-version
activations the ledger reads (the keys are defined here, once, for both)."""
BASE_VERSION = 1
"""The version of every contract until governance activates another."""


class IndexReader(Protocol):
    def index_lookup(self, name: str, key: bytes, limit: int) -> list[int]:
        """Log indexes filed under (name, key), in log order."""
        ...


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


def namespaced(contract: str, key: bytes) -> bytes:
    return contract.encode("ascii") + NAMESPACE_SEPARATOR + key


def stored_map(raw: bytes, what: str) -> dict[str, Any]:
    """A record the chain wrote under one state key (a CBOR map); anything else there is
    our own bug, not input."""
    value = cbor.decode(raw)
    if not isinstance(value, dict):
        raise InvariantViolation(f"corrupt {what} in state")
    return value


def stored_list(raw: bytes | None, what: str) -> list[Any]:
    """A list the chain keeps under one state key (an absent key is the empty list);
    anything else there is our own bug, not input."""
    if raw is None:
        return []
    value = cbor.decode(raw)
    if not isinstance(value, list):
        raise InvariantViolation(f"corrupt {what} in state")
    return value


def governed_param_key(name: str) -> bytes:
    """The state key of a parameter set by governance (`set_param`)."""
    return namespaced(GOVERNANCE, b"param/" + name.encode("ascii"))


def governed_param(state: StateReader, name: str) -> Any:
    """A parameter set by governance, or None if it was never set (its default)."""
    raw = state.get(governed_param_key(name))
    return None if raw is None else cbor.decode(raw)


def contract_version_key(contract: str) -> bytes:
    """The state key of a contract's activations: a CBOR list of [from height,
    version] pairs, ascending by height."""
    return namespaced(GOVERNANCE, b"version/" + contract.encode("ascii"))


def activations(state: StateReader, contract: str) -> list[tuple[int, int]]:
    """The contract's activations as (from height, version), ascending by height."""
    raw = state.get(contract_version_key(contract))
    if raw is None:
        return []
    return list(_decoded_activations(raw, contract))


@functools.lru_cache(maxsize=256)
def _decoded_activations(raw: bytes, contract: str) -> tuple[tuple[int, int], ...]:
    """Decoded once per distinct bytes: every transaction of a contract whose version
    governance or the genesis set reads them twice (admission and execution); a pure
    function of its arguments, so the cache needs no invalidation."""
    value = cbor.decode(raw)
    if not isinstance(value, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) for x in p)
            for p in value):
        raise InvariantViolation(f"corrupt activations of contract {contract!r} in state")
    return tuple((int(h), int(v)) for h, v in value)


def active_version(state: StateReader, contract: str, height: int) -> int:
    """The version of `contract` that executes block `height`: the latest activation
    at or below that height (BASE_VERSION if none)."""
    version = BASE_VERSION
    for from_height, activated in activations(state, contract):
        if from_height <= height:
            version = activated
    return version


class MissingContractVersion(InvariantViolation):
    """The chain has activated a contract version this node's software does not have.
    Executing the block with another version would diverge from the network, so the
    node stops here; its operator must install software that has the version."""


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

    def _count_write(self) -> None:
        if len(self._state.writes) >= MAX_WRITES_PER_TX:
            raise ContractError(f"more than {MAX_WRITES_PER_TX} writes in one transaction")


Method = Callable[[CallContext, dict[str, Any]], None]


def check_args(args: dict[str, Any], allowed: set[str], what: str | None = None) -> None:
    """Refuse (bad_argument) any argument a method does not take; `what` prefixes the
    reason when the arguments are not the method's own (a proposal's action, say)."""
    unknown = set(args) - allowed
    if unknown:
        prefix = "" if what is None else f"{what}: "
        raise ContractError(f"{prefix}unknown argument(s) {sorted(map(str, unknown))}",
                            code="bad_argument")


class Forbidden(ContractError):
    """The caller may not call this method: not an enrolled member, revoked, expired,
    or without one of the roles the method declares. At admission it is a synchronous
    403; during execution the transaction is committed as failed with this code."""

    code = "forbidden"
    http_status = 403


@dataclass(frozen=True)
class MethodSpec:
    """A contract method and who may call it. `roles` is never empty for a callable
    method; no method lists `Role.REGULATOR` (the regulator reads, never writes)."""

    fn: Method
    roles: frozenset[Role]
    summary: str
    args: type[Any] | None = None
    """The arguments as a msgspec Struct (bytes fields are byte strings): what the
    OpenAPI document, `tide call --arg` and the SDK read. The method's own checks stay
    the rule; a test keeps every method's Struct and checks in agreement."""

    def __post_init__(self) -> None:
        if not self.roles:
            raise InvariantViolation("a method must declare at least one role")


GenesisState = Callable[[Genesis], Mapping[bytes, bytes]]
"""A contract's initial state from the genesis: keys inside its own namespace."""

BeginBlock = Callable[[Overlay, int, int, int], None]
"""begin_block(block state, height, block time ms, log size before the block): runs
before the block's transactions. Deterministic; it must not raise for any state (a
decision that can no longer apply is recorded as failed, not raised)."""

Authorizer = Callable[[StateReader, bytes, str, frozenset[Role], int], None]
"""authorize(state, caller, "contract.method", allowed roles, block time ms): returns
if the caller may call, raises Forbidden otherwise."""


@dataclass(frozen=True)
class Contract:
    """A built-in contract: a name and its methods. Queries are plain functions in the
    contract's module, reading committed state."""

    name: str
    methods: Mapping[str, MethodSpec]
    description: str = ""
    genesis: GenesisState | None = None
    begin_block: BeginBlock | None = None
    version: int = BASE_VERSION
    """Several versions of one contract may be in the software; the state says which
    serves a height (`active_version`)."""


def deny_all(state: StateReader, caller: bytes, method: str, roles: frozenset[Role],
             time_ms: int) -> None:
    """The authoriser of a registry that was given none: nobody may call anything."""
    raise Forbidden(f"no authoriser configured; {method} is closed")


class Registry:
    """The applications in this software: every version of each contract, each
    application's queries and index rule, and the authoriser. Built from applications
    (`contracts.registry`), or from bare contracts in tests of the runtime."""

    def __init__(self, contracts: Sequence[Contract] = (), authorize: Authorizer = deny_all,
                 *, applications: Sequence[Application] = ()) -> None:
        self.applications: dict[str, Application] = {}
        for app in applications:
            if app.name in self.applications:
                raise InvariantViolation(f"two applications named {app.name}")
            self.applications[app.name] = app
        contracts = [*contracts, *(c for app in applications for c in app.contracts)]
        self._versions: dict[str, dict[int, Contract]] = {}
        for c in contracts:
            versions = self._versions.setdefault(c.name, {})
            if c.version in versions:
                raise InvariantViolation(f"two contracts share a name and version: {c.name} "
                                         f"v{c.version}")
            versions[c.version] = c
        if any(BASE_VERSION not in v for v in self._versions.values()):
            raise InvariantViolation(f"every contract needs a version {BASE_VERSION}")
        # Version 1 of each gives the genesis state (a network that started before a
        # later version existed began there); the newest is what `describe` documents
        # and what a client builds calls for, as `tide init` starts new networks on it.
        self._base = {name: v[BASE_VERSION] for name, v in self._versions.items()}
        self._contracts = {name: v[max(v)] for name, v in self._versions.items()}
        self.authorize = authorize

    def index_rows(self, contract: str, events: Sequence[Event]) -> list[tuple[str, bytes]]:
        """The secondary-index rows of a successful call of `contract`: its
        application's index rule, the one function execution and state sync share."""
        app = self.applications.get(contract)
        return [] if app is None else app.index_rows(events)

    def versions(self) -> dict[str, tuple[int, ...]]:
        """Every contract name with the versions this software has, ascending."""
        return {name: tuple(sorted(v)) for name, v in sorted(self._versions.items())}

    def contract(self, state: StateReader, name: str, height: int) -> Contract | None:
        """The version of contract `name` that executes block `height` (None: no such
        contract). Raises MissingContractVersion if the state activated a version this
        software lacks."""
        versions = self._versions.get(name)
        if versions is None:
            return None
        version = active_version(state, name, height)
        found = versions.get(version)
        if found is None:
            raise MissingContractVersion(
                f"contract {name!r} version {version} is active from height {height} or "
                f"earlier, but this node's software has only version(s) "
                f"{', '.join(map(str, sorted(versions)))}: install software with "
                f"{name} v{version} and start the node again")
        return found

    def method(self, contract: str, method: str, state: StateReader | None = None,
               height: int = 0) -> MethodSpec:
        """The method of the contract version active at `height` in `state` (no state:
        the newest version this software has, which a client builds calls for)."""
        c = (self._contracts.get(contract) if state is None
             else self.contract(state, contract, height))
        if c is None:
            raise ContractError(f"no contract named {contract!r}", code="unknown_contract")
        m = c.methods.get(method)
        if m is None:
            raise ContractError(f"contract {contract!r} has no method {method!r}",
                                code="unknown_method")
        return m

    def check_caller(self, state: StateReader, caller: bytes, contract: str, method: str,
                     time_ms: int, height: int | None = None) -> MethodSpec:
        """The method's spec if `caller` may call it at `time_ms`: ContractError for an
        unknown contract or method, Forbidden for a caller without a permitted role.
        With `height`, the contract version active at that height answers."""
        spec = (self.method(contract, method) if height is None
                else self.method(contract, method, state, height))
        self.authorize(state, caller, f"{contract}.{method}", spec.roles, time_ms)
        return spec

    def begin_block(self, state: Overlay, height: int, time_ms: int, log_size: int) -> None:
        """Run every contract's begin-block hook, in contract-name order, on `state`,
        each from the version active at `height`. Every contract's active version is
        resolved first, so a node lacking one stops at the first block of its height
        (MissingContractVersion), whether or not the block calls that contract."""
        active = [self.contract(state, name, height) for name in sorted(self._versions)]
        for c in active:
            if c is not None and c.begin_block is not None:
                c.begin_block(state, height, time_ms, log_size)

    def genesis_state(self, genesis: Genesis) -> dict[bytes, bytes]:
        """The world state before block 1: every contract's genesis records, each
        under its own namespace."""
        state: dict[bytes, bytes] = {}
        for c in self._base.values():
            if c.genesis is not None:
                state.update({namespaced(c.name, k): v for k, v in c.genesis(genesis).items()})
        for name, version in genesis.versions:  # in force from the first block
            if version not in self._versions.get(name, {}):
                raise MissingContractVersion(
                    f"the genesis starts contract {name!r} at version {version}, which this "
                    "node's software does not have: install software that has it")
            state[contract_version_key(name)] = cbor.encode([[0, version]])
        return state

    def describe(self) -> list[dict[str, Any]]:
        """Every contract and method with the roles that may call it (for `tide
        contracts describe`, GET /v1/contracts and docs/permissions.md)."""
        return [
            {"name": c.name, "description": c.description,
             "methods": [{"name": name, "roles": sorted(r.value for r in spec.roles),
                          "summary": spec.summary}
                         for name, spec in sorted(c.methods.items())]}
            for c in sorted(self._contracts.values(), key=lambda c: c.name)
        ]

    def roles_table(self) -> str:
        """A Markdown table: one row per method, one column per role (docs/permissions.md
        embeds it; a test keeps the two equal)."""
        roles = list(Role)
        lines = ["| method | " + " | ".join(r.value for r in roles) + " |",
                 "|---|" + "---|" * len(roles)]
        for c in self.describe():
            for m in c["methods"]:
                marks = ["yes" if r.value in m["roles"] else "" for r in roles]
                lines.append(f"| `{c['name']}.{m['name']}` | " + " | ".join(marks) + " |")
        return "\n".join(lines) + "\n"

    def newest(self, name: str) -> Contract | None:
        """The newest version of contract `name` this software has (what a client builds
        calls for and the documentation describes)."""
        return self._contracts.get(name)

    def __iter__(self) -> Iterator[Contract]:
        """Every version of every contract: `Registry([*registry])` holds the same."""
        return iter([c for versions in self._versions.values()
                     for _, c in sorted(versions.items())])
