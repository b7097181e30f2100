"""What an application is: one folder under `contracts/` and one descriptor, `Application`.

The descriptor carries everything an edge (the REST API, the SDK, the CLI, a state
sync) needs, so that none of them restates an application's rules (ADR 0013):

* its contract versions (`contracts`), each method with its typed arguments
  (`MethodSpec.args`, a msgspec Struct the CLI and the OpenAPI document read);
* its read-only queries (`Query`): typed parameters, a typed result, the roles that may
  call each one (or `public`), bounded and, for lists, paged by an opaque cursor;
* its secondary-index rule (`index_rule`): the one function that turns a successful
  call's events into index rows, run at execution (`Chain`) and when a state sync
  rebuilds the indexes from verified entries (`ledger/statesync.py`);
* how its entries read to a verifier (`describe_entry`), for `tide verify`;
* what a search term finds in it (`find`), for the API's search.

Queries read the committed head through `ChainView`, a protocol that storage and the
node implement; they never write and see only their own namespace and indexes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from tidechain.core.errors import DecodeError, InvariantViolation, NotFound, invariant
from tidechain.core.limits import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR_BYTES,
    MAX_INDEX_ENTRIES_PER_TX,
    MAX_INDEX_KEY_BYTES,
    MAX_PAGE_SIZE,
)
from tidechain.identity.roles import Role
from tidechain.ledger.access import (
    Audience,
    EntryAudience,
    ItemAudience,
    Reader,
    refusal,
)
from tidechain.ledger.runtime import Contract, StateReader
from tidechain.ledger.types import Event

T = TypeVar("T")


class ChainView(Protocol):
    """The committed head as queries see it (read-only)."""

    @property
    def state(self) -> StateReader: ...

    @property
    def height(self) -> int: ...

    @property
    def time_ms(self) -> int:
        """The head block's time: what "now" means to a query."""
        ...

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]:
        """Log indexes filed under (name, key), newest first, below `before` if given."""
        ...

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        """(key, value) of committed state under `prefix`, in key order (or reverse key
        order), strictly after (or before) the key `after`."""
        ...

    def entry(self, log_index: int) -> tuple[int, bytes]:
        """(height, canonical bytes) of a committed log entry; NotFound past the head.
        For an application whose records live in their entries (traceability's events),
        not in the state."""
        ...


class PagedStore(Protocol):
    """What storage gives a view: the indexes and the committed state, paged."""

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]: ...

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]: ...

    def entry(self, log_index: int) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class HeadView:
    """A `ChainView` of one head: its state, height and time, over a store's pages."""

    state: StateReader
    height: int
    time_ms: int
    store: PagedStore

    def index_page(self, name: str, key: bytes, before: int | None,
                   limit: int) -> list[int]:
        return self.store.index_page(name, key, before, limit)

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        return self.store.state_page(prefix, after, limit, descending)

    def entry(self, log_index: int) -> tuple[int, bytes]:
        return self.store.entry(log_index)


CURSOR_PATTERN = "^[0-9A-Za-z_-]*$"
"""What every cursor is made of: a log index in decimal, or a key in unpadded base64url.
The API documents it (a cursor in a URL stays short and needs no escaping)."""
_CURSOR = re.compile(CURSOR_PATTERN)


class PageRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where a page starts and how long it may be (the API's `cursor` and `limit`)."""

    cursor: str | None = None
    limit: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise DecodeError(f"'limit' must be 1..{MAX_PAGE_SIZE}")
        if self.cursor is not None and (len(self.cursor) > MAX_CURSOR_BYTES
                                        or not _CURSOR.fullmatch(self.cursor)):
            raise DecodeError("'cursor' is not a cursor this node gave")


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a list. `next` is the cursor of the following page; null means this
    was the last one. Cursors are opaque: pass them back as given."""

    items: list[T]
    next: str | None = None


# --- cursors -----------------------------------------------------------------------------
# A cursor is opaque to clients but simple inside: the position after which (for key
# order) or below which (for newest-first log order) the next page starts.


def log_cursor(index: int) -> str:
    return str(index)


def parse_log_cursor(cursor: str | None) -> int | None:
    """The log index a newest-first page continues below (None: from the newest)."""
    if cursor is None:
        return None
    # A log index is below 2**63 (SQLite's INTEGER): 19 nines are not one.
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 \
            or int(cursor) >= 2**63:
        raise DecodeError("'cursor' is not a cursor this node gave")
    return int(cursor)


def key_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def parse_key_cursor(cursor: str | None) -> bytes | None:
    """The state key a key-ordered page continues after (None: from the first)."""
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise DecodeError("'cursor' is not a cursor this node gave") from None


def newest_first(view: ChainView, name: str, key: bytes, page: PageRequest,
                 load: Callable[[int], T | None]) -> Page[T]:
    """A newest-first page of what index (name, key) lists, each log index loaded by
    `load` (None: skipped, e.g. a record since removed)."""
    found = view.index_page(name, key, parse_log_cursor(page.cursor), page.limit + 1)
    items = [item for item in (load(i) for i in found[:page.limit]) if item is not None]
    more = len(found) > page.limit
    return Page(items, log_cursor(found[page.limit - 1]) if more else None)


def in_key_order(view: ChainView, prefix: bytes, page: PageRequest,
                 load: Callable[[bytes, bytes], T | None], *,
                 descending: bool = False) -> Page[T]:
    """A key-ordered page of the state under `prefix`; `load(key after prefix, value)`
    gives an item or None (filtered out). A page may hold fewer than `limit` items when
    records are filtered, and still have a `next`: nothing is ever silently dropped.
    `descending` walks from the highest key: newest first for records keyed by their
    log index (big-endian), with no index row written for the list."""
    after = parse_key_cursor(page.cursor)
    found = view.state_page(prefix, None if after is None else prefix + after, page.limit + 1,
                            descending)
    items = [item for item in (load(k[len(prefix):], v) for k, v in found[:page.limit])
             if item is not None]
    more = len(found) > page.limit
    return Page(items, key_cursor(found[page.limit - 1][0][len(prefix):]) if more else None)


# --- queries -----------------------------------------------------------------------------


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A query that takes no parameters."""


QueryFn = Callable[..., Any]
"""fn(view, params) -> result, or fn(view, params, page) -> Page[item] for a list."""


@dataclass(frozen=True)
class Query:
    """A read-only query of an application's committed state.

    `params` and `result` are msgspec Structs: the API parses the query string into
    `params` (a typed 400 naming the field otherwise), encodes the result as `result`
    (or `Page[result]` when `paged`), and documents both in the OpenAPI document; the
    SDK decodes answers with the same types.

    Who reads it (ADR 0015, enforced by `answer`): anyone if `public`; a member holding
    one of `roles`, or the regulator, reads everything it answers; where `audience`
    says who an item is about, other members see the items they are parties to, and,
    with `public_items`, anyone sees the items made public.
    """

    fn: QueryFn
    summary: str
    result: type[Any]
    params: type[msgspec.Struct] = NoParams
    roles: frozenset[Role] = frozenset()
    public: bool = False
    paged: bool = False
    audience: ItemAudience | None = None
    public_items: bool = False

    def __post_init__(self) -> None:
        invariant(self.public or bool(self.roles) or self.audience is not None,
                  "a query must declare the roles that may call it, its audience, "
                  "or be public")
        invariant(not self.public_items or self.audience is not None,
                  "public items need an audience that says which are public")

    def readers(self) -> list[str]:
        """Who may call it, for documents: 'public', the role names, and 'parties'
        when members read the items they are party to."""
        if self.public:
            return ["public"]
        names = sorted({r.value for r in self.roles} | {Role.REGULATOR.value})
        if self.audience is not None:
            names.append("parties")
        if self.public_items:
            names.append("anyone (public items)")
        return names

    def answer(self, view: ChainView, params: Any, page: PageRequest | None,
               reader: Reader, what: str) -> Any:
        """The answer `reader` may have: everything, only its items, or a refusal."""
        if self.public or reader.holds_any(self.roles):
            return self.fn(view, params, page) if self.paged else self.fn(view, params)
        if self.audience is None or (reader.anonymous and not self.public_items):
            raise refusal(reader, what, self.roles, parties=self.audience is not None)
        admits = self.audience
        if self.paged:
            try:
                found: Page[Any] = self.fn(view, params, page)
            except NotFound:  # a missing parent (an organisation) reads as nothing of yours
                return Page([], None)
            return Page([i for i in found.items if admits(i).admits(reader)], found.next)
        try:
            item = self.fn(view, params)
        except NotFound:
            item = None  # answered below exactly as a hidden item: nothing leaks
        if item is None or not admits(item).admits(reader):
            raise refusal(reader, what, self.roles, parties=True)
        return item


IndexRule = Callable[[Sequence[Event]], list[tuple[str, bytes]]]
"""index_rule(events of a successful call) -> [(index name, key)], the index names local
to the application (the runtime files them as `<app>/<name>`)."""

EntryDescriber = Callable[[str, Mapping[str, Any], Sequence[Event]], list[str]]
"""describe_entry(method, args, events) -> lines that tell a verifier what the entry
proves (`tide verify` prints them)."""


RecordAudience = Callable[[StateReader, int, str, Mapping[str, Any], bool], Audience | None]
"""record_audience(state, log index, method, args, ok) -> who entry `log index` is about,
read off the record it made or acts on (None: no such record)."""

Finder = Callable[[ChainView, str], list[tuple[str, str, str]]]
"""find(view, text) -> [(kind, id, API path)]: what the application holds under `text`
(a digest, a member key, an invoice number), for the API's search."""


@dataclass(frozen=True)
class Application:
    """One built-in application: see the module docstring."""

    name: str
    summary: str
    contracts: tuple[Contract, ...]
    queries: Mapping[str, Query] = field(default_factory=dict)
    index_rule: IndexRule | None = None
    index_rows_from_result: Callable[[bytes], list[tuple[str, bytes]] | None] | None = None
    """An optional fast path of `index_rule` over a successful result's canonical bytes
    (state sync's catch-up rate): None for a layout it does not know, else exactly the
    rows `index_rule` gives (a test checks both)."""
    describe_entry: EntryDescriber | None = None
    find: Finder | None = None
    readers: frozenset[Role] = frozenset()
    """The roles that read all of this application's log entries and state (the
    regulator always does); see `ledger/access.py`."""
    entry_audience: EntryAudience | None = None
    """Who else an entry is about, beyond its sender (who always reads it)."""
    state_audience: Callable[[StateReader, bytes], Audience | None] | None = None
    """state_audience(state, key in this application's namespace) -> who the record
    under that key is about (None: no such record, or not one with parties), for the
    state proofs its parties may fetch."""
    record_audience: RecordAudience | None = None
    """Who an entry is about by the record it made or acts on, as the state now has it
    (a deposit co-signed later or published later): it answers instead of
    `entry_audience` where it returns an Audience."""

    def __post_init__(self) -> None:
        invariant(bool(self.contracts), f"application {self.name} has no contract")
        for c in self.contracts:
            invariant(c.name == self.name,
                      f"application {self.name} carries contract {c.name}")

    def index_rows(self, events: Sequence[Event]) -> list[tuple[str, bytes]]:
        """The secondary-index rows of a successful call, named `<app>/<index>`. The
        rule is ours, so rows beyond the bounds are a bug, not input."""
        if self.index_rule is None:
            return []
        return self._named(self.index_rule(events))

    def index_rows_of_result(self, result: bytes) -> list[tuple[str, bytes]] | None:
        """The same rows read by the fast path off a successful result's bytes, or None
        where it declines (or there is none): then `index_rows` of its events."""
        if self.index_rows_from_result is None:
            return None
        rows = self.index_rows_from_result(result)
        return None if rows is None else self._named(rows)

    def _named(self, rows: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        named = [(f"{self.name}/{name}", key) for name, key in rows]
        if len(named) > MAX_INDEX_ENTRIES_PER_TX or any(
                len(key) > MAX_INDEX_KEY_BYTES for _, key in named):
            raise InvariantViolation(f"{self.name}'s index rule exceeds the index bounds")
        return named


def events_of(result: Mapping[str, Any]) -> list[Event]:
    """The events of a decoded successful result (`TxResult.to_cbor()` form)."""
    events = result.get("events", [])
    invariant(isinstance(events, list), "successful result without an events list")
    out = []
    for e in events:
        invariant(isinstance(e, dict) and isinstance(e.get("type"), str)
                  and isinstance(e.get("data"), dict), "malformed event in a result")
        out.append(Event(e["type"], e["data"]))
    return out
