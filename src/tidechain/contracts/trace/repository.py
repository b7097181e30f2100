"""Reading the EPCIS repository the contract keeps: events by log index, by lookup key
and by query, each with what the chain knows of it (its capturing organisation, record
time and whether an error declaration names it), filtered by who may read it.

Pure: it reads a `ChainView` (the committed head's state and its log entries) and
nothing else. An event's bytes live in its log entry, not in the state: the state holds
its record and lookup keys, the entry holds what the receipt proves.
"""

from __future__ import annotations

import functools
import heapq
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tidechain.core.errors import NotFound, invariant
from tidechain.core.limits import MAX_PAGE_SIZE
from tidechain.ledger.access import Audience, Reader
from tidechain.ledger.application import ChainView
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import LogEntry

from .contract import (
    LOOKUP_KINDS,
    NAME,
    filed_under_hash,
    get_record,
    lookup_prefix,
    read_capture,
)
from .lineage import DEFAULT_MAX_EVENTS, TraceEvent
from .visibility import event_audience

__all__ = ["MAX_SCAN_PER_PAGE", "StoredEvent", "by_lookup", "load_event", "scan"]

MAX_SCAN_PER_PAGE: Final = 2_000
"""Events one page of a query reads at most: a filter that matches rarely returns a
short page with a next-page token rather than reading the whole chain in one request."""
MAX_EVENTS_CACHED: Final = 4_096
"""Parsed events kept in memory (about 4 KiB each): a query page or a trace re-reads
the same events without parsing and hashing them again."""
MAX_LOOKUP_VALUES: Final = 64
"""Values of one narrowing lookup merged (the values a query parameter may list)."""


@dataclass(frozen=True)
class StoredEvent:
    """One captured event as the repository holds it."""

    ref: int
    """Its log index: the key of its receipt."""
    event: Mapping[str, Any]
    context: Any
    """The JSON document's @context (None for XML or none)."""
    hash: str
    org: str
    record_time_ms: int
    format: str
    source: bytes
    declaration: bool
    """This record is an error declaration (it carries `errorDeclaration`)."""
    declared_by: int | None
    """The log index of the error declaration of this event, if one was captured."""
    document: bytes
    position: int

    def audience(self, view: ChainView) -> Audience:
        return event_audience(view.state, self.org, self.event)


def load_event(view: ChainView, ref: int) -> StoredEvent:
    """Event `ref` (a log index), NotFound if no event was captured there."""
    record = get_record(view.state, ref)
    if record is None:
        raise NotFound(f"no traceability event at log index {ref}")
    _, entry_bytes = view.entry(ref)
    args, event, hash_text = _read_entry(entry_bytes)
    invariant(hash_text == record["hash"], f"event {ref} no longer hashes as recorded")
    context = args.get("context") or b""
    declared_by = None
    if not record["declaration"]:
        for other in filed_under_hash(view.state, hash_text):
            if other != ref:
                declared_by = other
    return StoredEvent(
        ref=ref, event=event,
        context=json.loads(context) if args["format"] == "json" and context else None,
        hash=hash_text, org=str(record["org"]), record_time_ms=int(record["time"]),
        format=str(args["format"]), source=bytes(args["source"]),
        declaration=bool(record["declaration"]), declared_by=declared_by,
        document=bytes(record["document"]), position=int(record["position"]))


@functools.lru_cache(maxsize=MAX_EVENTS_CACHED)
def _read_entry(entry_bytes: bytes) -> tuple[Mapping[str, Any], dict[str, Any], str]:
    """A capture entry's arguments, event and hash: read once for the many queries and
    traces that read it again (entries never change; callers never mutate them)."""
    args = LogEntry.decode(entry_bytes).tx.body.args
    event, hash_text = read_capture(args)
    return args, event, hash_text


def visible(view: ChainView, reader: Reader, stored: StoredEvent) -> bool:
    """Whether `reader` may read the event's details (visibility.py; the regulator reads
    everything)."""
    from tidechain.identity.roles import Role

    return Role.REGULATOR in reader.roles or stored.audience(view).admits(reader)


def by_lookup(view: ChainView, kind: str, value: str, *, after: int = -1,
              limit: int = MAX_PAGE_SIZE) -> list[int]:
    """Log indexes of the events filed under (kind, value), oldest first, after `after`."""
    prefix = namespaced(NAME, lookup_prefix(LOOKUP_KINDS[kind], value))
    start = None if after < 0 else prefix + after.to_bytes(8, "big")
    return [int.from_bytes(key[-8:], "big")
            for key, _ in view.state_page(prefix, start, limit)]


def all_events(view: ChainView, *, after: int = -1, limit: int = MAX_PAGE_SIZE) -> list[int]:
    """Log indexes of every captured event, oldest first, after `after`."""
    prefix = namespaced(NAME, b"e")
    start = None if after < 0 else prefix + after.to_bytes(8, "big")
    return [int.from_bytes(key[-8:], "big")
            for key, _ in view.state_page(prefix, start, limit)]


def _candidates(view: ChainView, narrowing: tuple[str, tuple[str, ...]] | None,
                after: int) -> Iterator[int]:
    """Log indexes to consider, ascending and each once, after `after`: those filed under
    any of the narrowing's values, or all events."""
    if narrowing is None:
        while True:
            found = all_events(view, after=after, limit=MAX_PAGE_SIZE)
            yield from found
            if len(found) < MAX_PAGE_SIZE:
                return
            after = found[-1]
    kind, values = narrowing
    invariant(len(values) <= MAX_LOOKUP_VALUES, "a narrowing with too many values")
    streams = [_lookup_stream(view, kind, value, after) for value in values]
    last = -1
    for ref in heapq.merge(*streams):
        if ref != last:
            last = ref
            yield ref


def _lookup_stream(view: ChainView, kind: str, value: str, after: int) -> Iterator[int]:
    while True:
        found = by_lookup(view, kind, value, after=after, limit=MAX_PAGE_SIZE)
        yield from found
        if len(found) < MAX_PAGE_SIZE:
            return
        after = found[-1]


@dataclass(frozen=True)
class ScanPage:
    events: list[StoredEvent]
    next_after: int | None
    """Where the next page continues (the last log index read), None at the end."""


def scan(view: ChainView, reader: Reader, *,
         narrowing: tuple[str, tuple[str, ...]] | None,
         keep: Callable[[StoredEvent], bool], after: int = -1, limit: int,
         max_scan: int = MAX_SCAN_PER_PAGE) -> ScanPage:
    """Up to `limit` events in log order after `after` that `reader` may read and `keep`
    accepts. Reads at most `max_scan` candidates: a page may be short and still have a
    next; it is never cut silently."""
    found: list[StoredEvent] = []
    for read, ref in enumerate(_candidates(view, narrowing, after)):
        if len(found) >= limit or read >= max_scan:
            return ScanPage(found, after)
        after = ref
        stored = load_event(view, ref)
        if visible(view, reader, stored) and keep(stored):
            found.append(stored)
    return ScanPage(found, None)


def _trace_event(stored: StoredEvent) -> TraceEvent:
    return TraceEvent(ref=stored.ref, event=stored.event, org=stored.org,
                      record_time_ms=stored.record_time_ms, hash=stored.hash,
                      declaration=stored.declaration, declared=stored.declared_by is not None)


def trace_lookup(view: ChainView, *,
                 max_events: int = DEFAULT_MAX_EVENTS) -> Callable[[str], list[TraceEvent]]:
    """The `lookup` a trace walks (lineage.py): the events filed under a value as an
    identifier, a business transaction or a transformation id (the walk asks with each
    and keeps the events that name it as such), each read once."""
    cache: dict[int, TraceEvent] = {}

    def lookup(value: str) -> list[TraceEvent]:
        refs = sorted({ref for kind in ("id", "bizTransaction", "transformationID")
                       for ref in by_lookup(view, kind, value, limit=max_events)})
        out = []
        for ref in refs:
            if ref not in cache:
                cache[ref] = _trace_event(load_event(view, ref))
            out.append(cache[ref])
        return out

    return lookup


HIDDEN_FIELDS: Final = ("ref", "org", "type", "event_time", "hash")
"""What a trace shows of an event its reader may not read (ADR 0018)."""


def redacted(trace: dict[str, Any], view: ChainView, reader: Reader) -> dict[str, Any]:
    """A trace (`lineage.to_json`) as `reader` may see it: an event it may not read keeps
    only its log index, organisation, type, time and hash, marked `hidden`."""
    events, hidden = [], set()
    for item in trace["events"]:
        if visible(view, reader, load_event(view, int(item["ref"]))):
            events.append(item)
        else:
            hidden.add(item["ref"])
            events.append({k: item[k] for k in HIDDEN_FIELDS if k in item} | {"hidden": True})
    # A hidden declaration shows that it exists, never its reason, time or corrections.
    declarations = [d if d["ref"] not in hidden else
                    {"ref": d["ref"], "declared_refs": d["declared_refs"], "hidden": True}
                    for d in trace.get("declarations", [])]
    return trace | {"events": events, "declarations": declarations}
