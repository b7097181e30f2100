"""Tracing one identifier through the chain's EPCIS events: lineage, anomalies, recalls.

`trace(start, lookup, ...)` starts at `canonical_id(start)` and walks, breadth first,
everything the events link to it, upstream and downstream:

* aggregation: an AggregationEvent or AssociationEvent links its `parentID` with its
  `childEPCs` and `childQuantityList` classes (a DELETE is history too); a
  TransactionEvent with a `parentID` links it with its `epcList` and `quantityList`;
* transformation: a TransformationEvent links its inputs with its outputs, by EPC and
  by class; events sharing a `transformationID` are one transformation;
* business transactions: events sharing a `bizTransaction` identifier link every
  identifier they name (a purchase order can name thousands: the bounds apply).

Being named together in an ObjectEvent's `epcList` links nothing: co-observation is not
lineage.

`lookup(key)` is the repository's index: every stored event naming `key`. The walk asks
it for canonical identifiers, and also for canonical business-transaction identifiers
and transformation IDs (a repository that does not index those returns nothing, and
those links are then made only between events the walk reached otherwise). Answers are
filtered to the events that really name the key, so an index keyed more loosely does no
harm. The same event is counted once, by its `ref`.

The result, `Trace`, holds every event once in event-time order (UTC instants at the
millisecond, ties by `ref`), each identifier with its relation to the start, the
organisations, anomalies, recalls and error declarations. It does not depend on the
order in which the lookup answers or events arrived (refs) except through ties.

Relations, from the path that links an identifier to the start (the best one, in the
order of `RELATIONS`; aggregation history counts, so a case an item was unpacked from
is still `contained-in`):
`self`; `contains` (only down aggregations); `contained-in` (only up); `upstream` (at
least one step from a transformation's output to its input, none the other way;
aggregation steps on the way keep it upstream: a container or content of an input
travelled with it); `downstream` (the mirror); `related` (linked through structure
both ways: a sibling in a case, another output of the same transformation);
`transaction` (linked only through a business transaction).

Events that are error declarations, or that an error declaration names
(`TraceEvent.declared`), stay in the trace and carry lineage (the investigator sees
what was recorded), but they are not *standing*: anomalies and recalls are computed from
standing events only (the declaration says the record is wrong; its corrective events
say what happened).

Anomalies are reported, never refused (events from different organisations arrive in
any order; GS1's own examples ship items nobody commissioned):

* `observed-before-commissioning`, one kind with a `detail`: `never-commissioned` (an
  identifier has events and no commissioning at all) or `before-commissioning` (events
  earlier in event time than its first commissioning). Commissioning is an event with
  bizStep `commissioning` or `creating_class_instance` naming it (not as an input), a
  TransformationEvent output (it was made there), or the first AggregationEvent ADD
  with it as the parent (packing creates a case or pallet). Checked for instances
  (EPCs) and for lots (a class with a lot number); a class without a lot (a GTIN
  pattern) is never commissioned as such and is not checked.
* `child-in-two-parents`: an AggregationEvent ADD puts a child EPC under parent B while
  it is still under A (an ADD with no DELETE since, in event-time order). OBSERVE does
  not change what is where; a DELETE with no children empties the parent.
  AssociationEvents are replayed the same way, separately. Classes are not checked: a
  lot is split across many cases.
* `activity-after-destroyed`: an event on an EPC later in event time than an event with
  disposition `destroyed` or bizStep `destroying` on it. Classes are not checked:
  destroying a quantity of a lot does not destroy the lot.
* `input-reused`: an input EPC consumed by two different transformations. Class-level
  inputs (quantities) are never "reused": a lot is consumed in parts.

Recalls: a standing event with disposition `recalled` recalls each identifier it names
(except a transformation's inputs), and with it, recursively, every output of a
transformation it was an input to (whenever made: a product made from a recalled lot
is affected even after the recall) and every child aggregated under it at any time up
to the recall event (erring on the side of safety: a child taken out before the recall
was still in there). A recall never flows up: a case or pallet holding a recalled item
is *not* recalled by it, because it may hold unaffected goods and recalling it would
recall those too (its `contains` relation shows what it holds).

Bounds: `max_identifiers` counts every key looked up (identifiers, business
transactions, transformation IDs); `max_events` counts events. Reaching either stops
the walk there, and `Trace.truncated` names the bound: a trace is never cut silently.

Pure: no I/O, no clock; the lookup is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from tidechain.core.errors import Rejected, TooLarge, invariant

from . import vocabulary
from .event_hash import DIGITAL_LINK_ROOT, BadEvent, canonical_time
from .identifiers import canonical_id, event_identifiers

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_MAX_IDENTIFIERS",
    "LIMIT_MAX_EVENTS",
    "LIMIT_MAX_IDENTIFIERS",
    "RELATIONS",
    "Anomaly",
    "Declaration",
    "Recall",
    "Trace",
    "TraceEvent",
    "TraceTruncated",
    "TracedId",
    "affected_by_recall",
    "cbv_word",
    "to_json",
    "to_text",
    "trace",
]

# --- bounds ------------------------------------------------------------------------------
DEFAULT_MAX_IDENTIFIERS: Final = 1_000
"""Keys looked up by one trace, each one index read. A lot processed into a few hundred
serialised items, with their cases, pallets and shipments, fits; a larger recall is
traced with a larger bound, up to LIMIT_MAX_IDENTIFIERS."""

DEFAULT_MAX_EVENTS: Final = 5_000
"""Events in one trace: an item's life is ten to twenty events, so five per identifier
at the default identifier bound, and a timeline a person can still page through."""

LIMIT_MAX_IDENTIFIERS: Final = 10_000
"""The most a caller (CLI flag, API parameter) may ask for: ten times the default, a
few seconds of index reads for one request."""

LIMIT_MAX_EVENTS: Final = 50_000
"""The most events a caller may ask for: at a few kilobytes an event, the trace of one
request stays in the low hundreds of megabytes at worst."""

# --- vocabulary --------------------------------------------------------------------------
Relation = Literal["self", "contains", "contained-in", "upstream", "downstream", "related",
                   "transaction"]
RELATIONS: Final[tuple[Relation, ...]] = ("self", "contains", "contained-in", "upstream",
                                          "downstream", "related", "transaction")
"""Relations to the start, best first: an identifier linked several ways gets the first."""

AnomalyKind = Literal["observed-before-commissioning", "child-in-two-parents",
                      "activity-after-destroyed", "input-reused"]
ANOMALY_KINDS: Final[tuple[AnomalyKind, ...]] = (
    "observed-before-commissioning", "child-in-two-parents", "activity-after-destroyed",
    "input-reused")

BoundName = Literal["max_identifiers", "max_events"]

_VOCABULARIES: Final = {"BizStep": "bizstep", "Disp": "disp", "ER": "er"}
_COMMISSIONING_STEPS: Final = frozenset({"commissioning", "creating_class_instance"})
_INPUT_ROLES: Final = frozenset({"input", "input-class"})
_INSTANCE_ROLES: Final = frozenset({"epc", "parent", "child", "input", "output"})
_CHILD_ROLES: Final = frozenset({"child", "child-class"})
_CONTAINER_TYPES: Final = frozenset({"AggregationEvent", "AssociationEvent"})


def cbv_word(value: object, kind: Literal["BizStep", "Disp", "ER"]) -> str | None:
    """The bare CBV word of a bizStep (`BizStep`), disposition (`Disp`) or error reason
    (`ER`) however it is written (`recalled`, `urn:epcglobal:cbv:disp:recalled`,
    `https://ref.gs1.org/cbv/Disp-recalled`, `cbv:Disp-recalled`); a value outside
    CBV (a company's own URI) trimmed as it is; None if not a non-empty string."""
    if not isinstance(value, str):
        return None
    return vocabulary.cbv_word(value, _VOCABULARIES[kind]) or None


# --- public types ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceEvent:
    """One stored event as the repository returns it."""

    ref: int
    """Its log index: the key of its receipt."""
    event: Mapping[str, Any]
    """The EPCIS 2.0 event, JSON-LD-shaped."""
    org: str
    """The organisation that captured it."""
    record_time_ms: int
    hash: str
    """Its CBV 2.0 event hash (an error declaration has its declared event's hash)."""
    declaration: bool
    """This record is an error declaration: it carries `errorDeclaration`."""
    declared: bool
    """An error declaration exists for this event: marked, never removed."""


@dataclass(frozen=True)
class TracedId:
    id: str
    """Canonical identifier (`canonical_id`)."""
    relation: Relation
    recalled_by: int | None
    """The ref of the earliest recall event that reaches it, or None."""


@dataclass(frozen=True)
class Anomaly:
    kind: AnomalyKind
    identifier: str
    refs: tuple[int, ...]
    """The events involved, in event-time order (for `child-in-two-parents`, the ADD
    under the first parent, then the ADD under the second)."""
    message: str
    detail: str = ""
    """`never-commissioned` or `before-commissioning` for that kind; empty otherwise."""


@dataclass(frozen=True)
class Recall:
    ref: int
    """The recall event."""
    identifier: str
    """What it recalls directly."""
    affected: tuple[str, ...]
    """Every traced identifier that shows as recalled by it, itself included, sorted."""


@dataclass(frozen=True)
class Declaration:
    ref: int
    """The error-declaration record."""
    declared_refs: tuple[int, ...]
    """Events in the trace with the same hash that are not declarations themselves."""
    reason: str | None
    """The CBV error reason as a bare word (`incorrect_data`) or the URI given."""
    declaration_time: str | None
    """As written in the declaration."""
    corrective_event_ids: tuple[str, ...]
    corrective_refs: tuple[int, ...]
    """Events of the trace whose eventID is one of the corrective ids."""


@dataclass(frozen=True)
class Trace:
    start: str
    """canonical_id of the start."""
    events: tuple[TraceEvent, ...]
    """Each event once, in event-time order, ties by ref."""
    identifiers: tuple[TracedId, ...]
    """Every identifier reached, by relation (RELATIONS order), then identifier."""
    organisations: tuple[str, ...]
    anomalies: tuple[Anomaly, ...]
    recalls: tuple[Recall, ...]
    declarations: tuple[Declaration, ...]
    truncated: tuple[BoundName, ...]
    """The bounds that stopped the walk; empty (false) when the trace is complete."""


class TraceTruncated(TooLarge):
    """A whole answer was needed (affected_by_recall) and a bound cut the trace."""

    code = "trace_truncated"


Lookup = Callable[[str], Sequence[TraceEvent]]


# --- the events as the walk reads them -------------------------------------------------------
@dataclass(frozen=True, eq=False)  # one per ref: identity is equality, and hashable
class _Record:
    source: TraceEvent
    instant: str  # canonical UTC time stamp: sorts as the instants do
    kind: str
    action: str
    biz_step: str | None
    disposition: str | None
    named: tuple[tuple[str, str], ...]
    transactions: tuple[str, ...]
    transformation_id: str | None

    @property
    def ref(self) -> int:
        return self.source.ref

    @property
    def order(self) -> tuple[str, int]:
        return self.instant, self.source.ref

    @property
    def standing(self) -> bool:
        return not (self.source.declaration or self.source.declared)

    def ids(self, roles: Iterable[str] | None = None) -> tuple[str, ...]:
        """Identifiers named in `roles` (all if None), once each, in field order."""
        wanted = None if roles is None else frozenset(roles)
        return tuple(dict.fromkeys(i for r, i in self.named if wanted is None or r in wanted))

    @property
    def transformation_key(self) -> str:
        """Events sharing a transformationID are one transformation; without one, the
        event is a transformation of its own."""
        return ("id:" + self.transformation_id if self.transformation_id
                else f"ref:{self.source.ref}")


def _record(item: TraceEvent) -> _Record:
    event = item.event
    time_text = event.get("eventTime")
    if not isinstance(time_text, str):
        raise BadEvent("eventTime", f"event ref {item.ref} has no eventTime")
    transactions: list[str] = []
    listed = event.get("bizTransactionList")
    for entry in listed if isinstance(listed, list) else ():
        value = entry.get("bizTransaction") if isinstance(entry, Mapping) else None
        if isinstance(value, str) and value.strip():
            transactions.append(canonical_id(value))
    transformation = event.get("transformationID")
    kind, action = event.get("type"), event.get("action")
    return _Record(
        source=item,
        instant=canonical_time(time_text, "eventTime"),
        kind=kind if isinstance(kind, str) else "",
        action=action if isinstance(action, str) else "",
        biz_step=cbv_word(event.get("bizStep"), "BizStep"),
        disposition=cbv_word(event.get("disposition"), "Disp"),
        named=tuple(event_identifiers(event)),
        transactions=tuple(dict.fromkeys(transactions)),
        transformation_id=(canonical_id(transformation)
                           if isinstance(transformation, str) and transformation.strip()
                           else None))


def _contains_structure(record: _Record) -> tuple[str | None, tuple[str, ...]]:
    """(parent, children) when the event states containment, else (None, ())."""
    parents = record.ids(("parent",))
    if not parents:
        return None, ()
    if record.kind in _CONTAINER_TYPES:
        return parents[0], record.ids(_CHILD_ROLES)
    if record.kind == "TransactionEvent":
        return parents[0], record.ids(("epc", "quantity"))
    return None, ()


# --- the walk --------------------------------------------------------------------------------
_Key = tuple[str, str]
"""("id" | "bt" | "tf", canonical value): what the walk looks up."""


def _names_key(record: _Record, key: _Key) -> bool:
    kind, value = key
    if kind == "bt":
        return value in record.transactions
    if kind == "tf":
        return record.transformation_id == value
    return any(ident == value for _, ident in record.named)


def _links(record: _Record) -> Iterator[_Key]:
    """The keys an event links to whatever led the walk to it."""
    parent, _ = _contains_structure(record)
    if parent is not None or record.kind == "TransformationEvent" or record.transactions:
        for ident in record.ids():
            yield "id", ident
    if record.kind == "TransformationEvent" and record.transformation_id:
        yield "tf", record.transformation_id
    for transaction in record.transactions:
        yield "bt", transaction


@dataclass
class _Walk:
    lookup: Lookup
    max_identifiers: int
    max_events: int
    keys: dict[_Key, None]
    records: dict[int, _Record]
    truncated: set[BoundName]

    def admit(self, key: _Key, queue: deque[_Key]) -> None:
        if key in self.keys:
            return
        if len(self.keys) >= self.max_identifiers:
            self.truncated.add("max_identifiers")
            return
        self.keys[key] = None
        queue.append(key)

    def answers(self, key: _Key) -> list[_Record]:
        """New events naming `key`, in event-time order."""
        found: dict[int, _Record] = {}
        for item in self.lookup(key[1]):
            if item.ref in self.records or item.ref in found:
                continue
            record = _record(item)
            if _names_key(record, key):
                found[item.ref] = record
        return sorted(found.values(), key=lambda r: r.order)

    def run(self, origin: str) -> None:
        queue: deque[_Key] = deque()
        self.admit(("id", origin), queue)
        while queue:
            for record in self.answers(queue.popleft()):
                if len(self.records) >= self.max_events:
                    self.truncated.add("max_events")
                    return
                self.records[record.ref] = record
                for key in _links(record):
                    self.admit(key, queue)


# --- relations -------------------------------------------------------------------------------
_Node = tuple[str, str]
_Edge = Literal["down", "up", "into", "from", "txn"]
_REVERSE: Final[Mapping[_Edge, _Edge]] = {"down": "up", "up": "down", "into": "from",
                                          "from": "into", "txn": "txn"}
_STEP: Final[Mapping[str, Mapping[str, Relation]]] = {
    "self": {"down": "contains", "up": "contained-in", "from": "upstream",
             "into": "downstream"},
    "contains": {"down": "contains", "up": "related", "from": "upstream",
                 "into": "downstream"},
    "contained-in": {"up": "contained-in", "down": "related", "from": "upstream",
                     "into": "downstream"},
    "upstream": {"from": "upstream", "up": "upstream", "down": "upstream",
                 "into": "related"},
    "downstream": {"into": "downstream", "up": "downstream", "down": "downstream",
                   "from": "related"},
}
"""Relation after one more step of a path. `related` and `transaction` absorb."""


def _step(state: Relation, edge: _Edge) -> Relation:
    if edge == "txn" or state == "transaction":
        return "transaction"
    if state == "related":
        return "related"
    return _STEP[state][edge]


def _edges(record: _Record) -> Iterator[tuple[_Node, _Node, _Edge]]:
    parent, children = _contains_structure(record)
    if parent is not None:
        for child in children:
            yield ("id", parent), ("id", child), "down"
    if record.kind == "TransformationEvent":
        hub: _Node = ("tf", record.transformation_key)
        for ident in record.ids(_INPUT_ROLES):
            yield ("id", ident), hub, "into"
        for ident in record.ids(("output", "output-class")):
            yield hub, ("id", ident), "into"
    for transaction in record.transactions:
        for ident in record.ids():
            yield ("id", ident), ("bt", transaction), "txn"


def _relations(origin: str, records: Iterable[_Record],
               traced: frozenset[str]) -> dict[str, Relation]:
    """The best relation of each traced identifier, over every path in the trace."""
    adjacency: dict[_Node, list[tuple[_Node, _Edge]]] = {}
    for record in records:
        for a, b, edge in _edges(record):
            if (a[0] == "id" and a[1] not in traced) or (b[0] == "id" and b[1] not in traced):
                continue
            adjacency.setdefault(a, []).append((b, edge))
            adjacency.setdefault(b, []).append((a, _REVERSE[edge]))
    start: tuple[_Node, Relation] = (("id", origin), "self")
    seen = {start}
    queue = deque([start])
    best: dict[str, Relation] = {}
    while queue:
        node, state = queue.popleft()
        if node[0] == "id":
            known = best.get(node[1])
            if known is None or RELATIONS.index(state) < RELATIONS.index(known):
                best[node[1]] = state
        for neighbour, edge in adjacency.get(node, ()):
            reached = (neighbour, _step(state, edge))
            if reached not in seen:
                seen.add(reached)
                queue.append(reached)
    return best


# --- recalls ---------------------------------------------------------------------------------
def _recalls(standing: Sequence[_Record], traced: frozenset[str]) -> tuple[Recall, ...]:
    outputs_of: dict[str, set[str]] = {}
    groups: dict[str, tuple[set[str], set[str]]] = {}
    children_of: dict[str, list[tuple[str, str]]] = {}  # parent -> (instant, child)
    for record in standing:
        if record.kind == "TransformationEvent":
            inputs, outputs = groups.setdefault(record.transformation_key, (set(), set()))
            inputs.update(record.ids(_INPUT_ROLES))
            outputs.update(record.ids(("output", "output-class")))
        if record.kind == "AggregationEvent" and record.action in ("ADD", "OBSERVE"):
            parent, children = _contains_structure(record)
            if parent is not None:
                children_of.setdefault(parent, []).extend(
                    (record.instant, child) for child in children)
    for inputs, outputs in groups.values():
        for ident in inputs:
            outputs_of.setdefault(ident, set()).update(outputs)

    def affected(root: str, until: str) -> tuple[str, ...]:
        reached = {root}
        queue = deque([root])
        while queue:
            ident = queue.popleft()
            below = [child for instant, child in children_of.get(ident, ()) if instant <= until]
            for nxt in sorted(outputs_of.get(ident, set())) + below:
                if nxt not in reached:
                    reached.add(nxt)
                    queue.append(nxt)
        return tuple(sorted(reached & traced))

    recalls: list[Recall] = []
    for record in standing:
        if record.disposition != "recalled":
            continue
        for ident in dict.fromkeys(i for r, i in record.named if r not in _INPUT_ROLES):
            if ident in traced:
                recalls.append(Recall(record.ref, ident, affected(ident, record.instant)))
    return tuple(recalls)


# --- anomalies -------------------------------------------------------------------------------
def _is_lot(ident: str) -> bool:
    return ident.startswith(DIGITAL_LINK_ROOT + "/") and "/10/" in ident


def _commissions(record: _Record, ident: str) -> bool:
    roles = {role for role, named in record.named if named == ident}
    if record.biz_step in _COMMISSIONING_STEPS and roles - _INPUT_ROLES:
        return True
    if record.kind == "TransformationEvent" and roles & {"output", "output-class"}:
        return True
    return record.kind == "AggregationEvent" and record.action == "ADD" and "parent" in roles


def _commissioning_anomalies(naming: Mapping[str, Sequence[tuple[_Record, str]]],
                             traced: frozenset[str]) -> Iterator[Anomaly]:
    for ident in sorted(traced):
        entries = naming.get(ident, ())
        if not any(role in _INSTANCE_ROLES for _, role in entries) and not _is_lot(ident):
            continue
        records = list(dict.fromkeys(record for record, _ in entries))
        if not records:
            continue
        first = next((r for r in records if _commissions(r, ident)), None)
        if first is None:
            yield Anomaly("observed-before-commissioning", ident,
                          tuple(r.ref for r in records),
                          f"{ident}: {len(records)} event(s), never commissioned "
                          f"(first at {records[0].instant}, ref {records[0].ref})",
                          "never-commissioned")
            continue
        early = [r for r in records if r.instant < first.instant]
        if early:
            yield Anomaly("observed-before-commissioning", ident,
                          (*(r.ref for r in early), first.ref),
                          f"{ident}: observed at {early[0].instant} (ref {early[0].ref}), "
                          f"commissioned only at {first.instant} (ref {first.ref})",
                          "before-commissioning")


def _two_parent_anomalies(standing: Sequence[_Record],
                          traced: frozenset[str]) -> Iterator[Anomaly]:
    for kind in sorted(_CONTAINER_TYPES):
        under: dict[str, tuple[str, int]] = {}  # child -> (parent, ref of its ADD)
        for record in standing:
            parent, _ = _contains_structure(record)
            if record.kind != kind or parent is None:
                continue
            children = record.ids(("child",))
            if record.action == "ADD":
                for child in children:
                    held = under.get(child)
                    if held is not None and held[0] != parent and child in traced:
                        yield Anomaly("child-in-two-parents", child, (held[1], record.ref),
                                      f"{child}: added to {parent} (ref {record.ref}) while "
                                      f"still in {held[0]} (ref {held[1]}, no DELETE since)")
                    under[child] = (parent, record.ref)
            elif record.action == "DELETE":
                for child in children or [c for c, (p, _) in under.items() if p == parent]:
                    if under.get(child, ("", 0))[0] == parent:
                        del under[child]


def _destroyed_anomalies(naming: Mapping[str, Sequence[tuple[_Record, str]]],
                         traced: frozenset[str]) -> Iterator[Anomaly]:
    for ident in sorted(traced):
        records = list(dict.fromkeys(r for r, role in naming.get(ident, ())
                                     if role in _INSTANCE_ROLES))
        end = next((r for r in records
                    if r.disposition == "destroyed" or r.biz_step == "destroying"), None)
        if end is None:
            continue
        later = [r for r in records if r.instant > end.instant]
        if later:
            yield Anomaly("activity-after-destroyed", ident,
                          (end.ref, *(r.ref for r in later)),
                          f"{ident}: destroyed at {end.instant} (ref {end.ref}), then "
                          f"{len(later)} later event(s), first ref {later[0].ref}")


def _reuse_anomalies(standing: Sequence[_Record], traced: frozenset[str]) -> Iterator[Anomaly]:
    consumers: dict[str, dict[str, list[int]]] = {}  # input EPC -> transformation -> refs
    for record in standing:
        if record.kind == "TransformationEvent":
            for ident in record.ids(("input",)):
                consumers.setdefault(ident, {}).setdefault(
                    record.transformation_key, []).append(record.ref)
    for ident in sorted(consumers):
        transformations = consumers[ident]
        if len(transformations) > 1 and ident in traced:
            refs = [ref for refs in transformations.values() for ref in refs]
            yield Anomaly("input-reused", ident, tuple(refs),
                          f"{ident}: consumed by {len(transformations)} transformations "
                          f"(refs {', '.join(map(str, refs))})")


def _anomalies(standing: Sequence[_Record], traced: frozenset[str]) -> tuple[Anomaly, ...]:
    naming: dict[str, list[tuple[_Record, str]]] = {}
    for record in standing:
        for role, ident in record.named:
            naming.setdefault(ident, []).append((record, role))
    found = [*_commissioning_anomalies(naming, traced),
             *_two_parent_anomalies(standing, traced),
             *_destroyed_anomalies(naming, traced),
             *_reuse_anomalies(standing, traced)]
    return tuple(sorted(found, key=lambda a: (ANOMALY_KINDS.index(a.kind), a.identifier,
                                               a.refs)))


# --- error declarations ----------------------------------------------------------------------
def _declarations(records: Sequence[_Record]) -> tuple[Declaration, ...]:
    by_event_id: dict[str, list[int]] = {}
    by_hash: dict[str, list[int]] = {}  # the events a declaration can declare
    for record in records:
        event_id = record.source.event.get("eventID")
        if isinstance(event_id, str):
            by_event_id.setdefault(event_id.strip(), []).append(record.ref)
        if not record.source.declaration:
            by_hash.setdefault(record.source.hash, []).append(record.ref)
    found: list[Declaration] = []
    for record in records:
        if not record.source.declaration:
            continue
        body = record.source.event.get("errorDeclaration")
        body = body if isinstance(body, Mapping) else {}
        ids = body.get("correctiveEventIDs")
        corrective = tuple(i.strip() for i in (ids if isinstance(ids, list) else ())
                           if isinstance(i, str))
        when = body.get("declarationTime")
        found.append(Declaration(
            ref=record.ref,
            declared_refs=tuple(by_hash.get(record.source.hash, ())),
            reason=cbv_word(body.get("reason"), "ER"),
            declaration_time=when if isinstance(when, str) else None,
            corrective_event_ids=corrective,
            corrective_refs=tuple(ref for i in corrective for ref in by_event_id.get(i, ()))))
    return tuple(found)


# --- entry points ----------------------------------------------------------------------------
def _check_bound(name: str, value: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise Rejected(f"{name} must be an integer from 1 to {limit}, not {value!r}",
                       code="bad_trace_bound")


def trace(start: str, lookup: Lookup, *, max_identifiers: int = DEFAULT_MAX_IDENTIFIERS,
          max_events: int = DEFAULT_MAX_EVENTS) -> Trace:
    """The history of `start` (an EPC URN, EPC class, or GS1 Digital Link, or any other
    identifier), upstream and downstream, through everything `lookup` returns.

    Raises Rejected (`bad_trace_bound`) for bounds outside 1..LIMIT_*, Rejected for an
    empty start, and BadEvent for a stored event without a valid eventTime (capture
    refuses those: it would be our bug or a damaged store)."""
    _check_bound("max_identifiers", max_identifiers, LIMIT_MAX_IDENTIFIERS)
    _check_bound("max_events", max_events, LIMIT_MAX_EVENTS)
    origin = canonical_id(start) if isinstance(start, str) else ""
    if not origin:
        raise Rejected("the identifier to trace is empty", code="bad_trace_start")
    walk = _Walk(lookup, max_identifiers, max_events, {}, {}, set())
    walk.run(origin)
    records = sorted(walk.records.values(), key=lambda r: r.order)
    traced = frozenset(value for kind, value in walk.keys if kind == "id")
    relations = _relations(origin, records, traced)
    invariant(set(relations) == traced, "every traced identifier is linked to the start")
    standing = [r for r in records if r.standing]
    recalls = _recalls(standing, traced)
    order = {r.ref: r.order for r in records}
    recalled_by: dict[str, int] = {}
    for recall in sorted(recalls, key=lambda c: order[c.ref]):
        for ident in recall.affected:
            recalled_by.setdefault(ident, recall.ref)
    identifiers = sorted(
        (TracedId(ident, relations[ident], recalled_by.get(ident)) for ident in traced),
        key=lambda t: (RELATIONS.index(t.relation), t.id))
    return Trace(
        start=origin,
        events=tuple(r.source for r in records),
        identifiers=tuple(identifiers),
        organisations=tuple(sorted({r.source.org for r in records})),
        anomalies=_anomalies(standing, traced),
        recalls=recalls,
        declarations=_declarations(records),
        truncated=tuple(sorted(walk.truncated)))


def affected_by_recall(recalled: str, lookup: Lookup, *,
                       max_identifiers: int = DEFAULT_MAX_IDENTIFIERS,
                       max_events: int = DEFAULT_MAX_EVENTS) -> tuple[str, ...]:
    """Every identifier that shows as recalled because of a recall event on `recalled`
    (itself included), sorted; empty if nothing recalls it. Raises TraceTruncated when a
    bound cut the trace: a partial list of affected items would look complete."""
    result = trace(recalled, lookup, max_identifiers=max_identifiers, max_events=max_events)
    if result.truncated:
        raise TraceTruncated(f"the trace of {result.start} reached "
                             f"{' and '.join(result.truncated)}: raise the bound")
    return tuple(sorted({ident for recall in result.recalls
                         if recall.identifier == result.start for ident in recall.affected}))


# --- presentation ----------------------------------------------------------------------------
def _event_json(item: TraceEvent) -> dict[str, Any]:
    record = _record(item)
    event = item.event
    event_id, offset = event.get("eventID"), event.get("eventTimeZoneOffset")
    return {
        "ref": item.ref, "org": item.org, "event_time": record.instant,
        "event_time_zone_offset": offset if isinstance(offset, str) else None,
        "record_time_ms": item.record_time_ms, "type": record.kind,
        "action": record.action or None, "biz_step": record.biz_step,
        "disposition": record.disposition, "hash": item.hash,
        "event_id": event_id if isinstance(event_id, str) else None,
        "declaration": item.declaration, "declared": item.declared,
        "identifiers": [{"role": role, "id": ident} for role, ident in record.named],
        "biz_transactions": list(record.transactions),
        "transformation_id": record.transformation_id,
    }


def to_json(result: Trace) -> dict[str, Any]:
    """The trace as JSON values, for `tide trace --json` and the API. Shape (version 1):

    `{"version": 1, "start": id, "truncated": [bound...], "organisations": [org...],
    "events": [{"ref", "org", "event_time" (UTC, ms), "event_time_zone_offset",
    "record_time_ms", "type", "action", "biz_step" and "disposition" (bare CBV words),
    "hash", "event_id", "declaration", "declared", "identifiers": [{"role", "id"}],
    "biz_transactions": [id...], "transformation_id"}...],
    "identifiers": [{"id", "relation", "recalled_by": ref|null}...],
    "anomalies": [{"kind", "detail", "identifier", "refs": [ref...], "message"}...],
    "recalls": [{"ref", "identifier", "affected": [id...]}...],
    "declarations": [{"ref", "declared_refs", "reason", "declaration_time",
    "corrective_event_ids", "corrective_refs"}...]}`, lists in the Trace's order.
    Events are given by their fields, not whole: the full event is read by its ref."""
    return {
        "version": 1,
        "start": result.start,
        "truncated": list(result.truncated),
        "organisations": list(result.organisations),
        "events": [_event_json(item) for item in result.events],
        "identifiers": [{"id": t.id, "relation": t.relation, "recalled_by": t.recalled_by}
                        for t in result.identifiers],
        "anomalies": [{"kind": a.kind, "detail": a.detail, "identifier": a.identifier,
                       "refs": list(a.refs), "message": a.message}
                      for a in result.anomalies],
        "recalls": [{"ref": c.ref, "identifier": c.identifier, "affected": list(c.affected)}
                    for c in result.recalls],
        "declarations": [{"ref": d.ref, "declared_refs": list(d.declared_refs),
                          "reason": d.reason, "declaration_time": d.declaration_time,
                          "corrective_event_ids": list(d.corrective_event_ids),
                          "corrective_refs": list(d.corrective_refs)}
                         for d in result.declarations],
    }


def to_text(result: Trace) -> str:
    """A readable timeline: one line per event (UTC time, organisation, type, action,
    bizStep, disposition, ref, marks), its identifiers indented below, then the
    identifiers with their relation, the anomalies, recalls and declarations."""
    recall_refs = {c.ref for c in result.recalls}
    anomalous = {ref for a in result.anomalies for ref in a.refs}
    lines = [f"trace of {result.start}: {len(result.events)} event(s), "
             f"{len(result.identifiers)} identifier(s), organisations: "
             f"{', '.join(result.organisations) or '-'}"]
    if result.truncated:
        lines.append(f"TRUNCATED at {' and '.join(result.truncated)}: the trace is incomplete")
    for item in result.events:
        record = _record(item)
        marks = [mark for mark, on in (("DECLARATION", item.declaration),
                                       ("DECLARED", item.declared),
                                       ("RECALL", item.ref in recall_refs),
                                       ("SENSOR DATA", "sensorElementList" in item.event),
                                       ("ANOMALY", item.ref in anomalous)) if on]
        words = [record.kind, record.action, record.biz_step or "", record.disposition or ""]
        lines.append(f"{record.instant}  {item.org:<12} {' '.join(w for w in words if w)}"
                     f"  #{item.ref}" + (f"  [{' '.join(marks)}]" if marks else ""))
        lines.extend(f"    {role:<12} {ident}" for role, ident in record.named)
        lines.extend(f"    {'transaction':<12} {bt}" for bt in record.transactions)
        if record.transformation_id:
            lines.append(f"    {'transformed':<12} {record.transformation_id}")
    lines.append("identifiers:")
    for traced in result.identifiers:
        recalled = "" if traced.recalled_by is None else f"  RECALLED by #{traced.recalled_by}"
        lines.append(f"  {traced.relation:<13} {traced.id}{recalled}")
    if result.anomalies:
        lines.append("anomalies:")
        lines.extend(f"  ! {a.kind}{f' ({a.detail})' if a.detail else ''}: {a.message}"
                     for a in result.anomalies)
    if result.recalls:
        lines.append("recalls:")
        lines.extend(f"  #{c.ref} recalls {c.identifier}: {len(c.affected)} affected"
                     for c in result.recalls)
    if result.declarations:
        lines.append("error declarations:")
        lines.extend(f"  #{d.ref} declares {', '.join(f'#{r}' for r in d.declared_refs) or '-'}"
                     f" ({d.reason or 'no reason'}); corrective: "
                     f"{', '.join(d.corrective_event_ids) or '-'}"
                     for d in result.declarations)
    return "\n".join(lines) + "\n"
