"""The EPCIS 2.0 simple event query: its parameters parsed, and events tested against them.

`GET /events?...` and a named query (`POST /queries` with a `query` object, then
`GET /queries/{name}/events`) take the same parameters (EPCIS 2.0 section 8.2.7.1, and
`rest/openapi.json` for their form). `parse_query` reads them, from URL query
parameters (`source="url"`: every value a string, lists pipe-delimited as the REST
binding declares them, `style: pipeDelimited`) or from a named query's JSON body
(`source="body"`: typed lists, strings, numbers and booleans, as query-schema.json).
The result, an `EventQuery`, tests one event at a time (`matches`), orders and limits
the matching rows (`order`), and tells the repository which index it may read instead
of scanning (`narrowing`).

Semantics, as the standard states them:
* different parameters are AND, the values of one parameter are OR;
* `MATCH_epc` looks in `epcList` and `childEPCs`; `MATCH_anyEPC` also in `parentID`,
  `inputEPCList` and `outputEPCList`; the `...EPCClass` parameters in the quantity
  lists (`MATCH_epcClass`: `quantityList`, `childQuantityList`);
* EPC pattern URIs (`urn:epc:idpat:sgtin:0614141.107346.*`, `...:0614141.*.*`,
  `...:*.*.*`) match per the Tag Data Standard;
* times are compared as instants, to the millisecond (`event_hash.canonical_time`);
* `recordTime` is the repository's (the block time of the event's commit), passed in.

tidechain's choices (docs/traceability.md):
* EPC URNs and GS1 Digital Link URIs of the same identifier are the same value in every
  match: both sides are compared under `identifiers.canonical_id`. So a Digital Link
  naming a key without its serial (`https://id.gs1.org/01/<gtin>`) is the same value as
  the pattern `urn:epc:idpat:sgtin:<prefix>.<reference>.*`, and matches like it.
* In the class parameters, a GTIN-level class (`urn:epc:idpat:sgtin:P.R.*` or its
  Digital Link) matches that class and every lot of the GTIN
  (`urn:epc:class:lgtin:P.R.<lot>`); a lot matches only itself.
* A pattern naming only the company prefix (`sgtin:0614141.*.*`) matches a Digital
  Link whose key holds those digits where the prefix stands: a Digital Link does not
  say how long its company prefix is.
* CBV vocabulary values (bizStep, disposition, error reason, bizTransaction, source
  and destination types) match in any of their spellings: the bare word
  (`shipping`), the CBV 1.x URN (`urn:epcglobal:cbv:bizstep:shipping`), the CBV 2.0 URI
  (`https://ref.gs1.org/cbv/BizStep-shipping`) or the `cbv:` compact IRI.
* `WD_readPoint`/`WD_bizLocation` ("with descendants") equal their `EQ_` form: the
  descendants are defined by master data, and tidechain keeps none.
* Parameters that name user extension fields (`EQ_ILMD_...`, `EQ_<ns>:<field>`...)
  and the sensor parameters are refused as not supported; `perPage` and
  `nextPageToken` (URL only) belong to the HTTP layer: parsed and returned in the
  `EventQuery`, never used to match.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Generic, Literal, TypeVar

from tidechain.core.errors import Rejected, TooLarge

from .event_hash import (
    BIZ_STEPS,
    BIZ_TRANSACTION_TYPES,
    CBV,
    CBV_URN_TYPES,
    DISPOSITIONS,
    EVENT_TYPES,
    SOURCE_DESTINATION_TYPES,
    STANDARD_PREFIXES,
    BadEvent,
    canonical_time,
    epc_to_digital_link,
)
from .identifiers import canonical_id

__all__ = [
    "ERROR_REASONS",
    "MAX_COUNT",
    "MAX_NAME_CHARS",
    "MAX_PARAMETERS",
    "MAX_RESULT_EVENTS",
    "MAX_VALUES_PER_PARAMETER",
    "MAX_VALUE_CHARS",
    "EventQuery",
    "QueryParameterError",
    "QueryTooLarge",
    "Row",
    "canonical_biz_step",
    "parse_query",
]

# --- limits ------------------------------------------------------------------------------
MAX_PARAMETERS: Final = 64
"""Parameters in one query. The standard names about 70, most of which exclude each
other in practice; a real query uses a handful. Bounds the work of parsing one query."""

MAX_VALUES_PER_PARAMETER: Final = 1_000
"""Values of one list parameter (one OR). A recall listing a pallet's EPCs fits; every
event is tested against every pattern value, so the bound caps that cost per event."""

MAX_VALUE_CHARS: Final = 2_048
"""Characters in one value: URIs stay under 2,000 (event_hash.py says the same)."""

MAX_NAME_CHARS: Final = 128
"""Characters in a parameter name: the longest standard name is 30; the rest is room
for `EQ_bizTransaction_<type>` and the like. Names are echoed in errors, so bounded."""

MAX_COUNT: Final = 2**31 - 1
"""The largest `eventCountLimit`, `maxEventCount` or `perPage`: a 32-bit integer, as
the XML binding's xsd:int; a larger count is no limit at all."""

MAX_RESULT_EVENTS: Final = 100_000
"""Matching events `order` accepts. The standard lets a repository refuse any query as
too large (section 8.2.3); past this, sorting and answering one query costs more than
one request may, and the client should narrow it (a time range, an eventCountLimit)."""


class QueryParameterError(Rejected):
    """EPCIS QueryParameterException: `param` is the offending parameter, `reason` says
    what is wrong with it. HTTP 400."""

    code = "query_parameter"

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{_shown(param)}: {reason}")
        self.param = param


class QueryTooLarge(TooLarge):
    """EPCIS QueryTooLargeException: more events match than `maxEventCount` (or than
    MAX_RESULT_EVENTS) allows. HTTP 413."""

    code = "query_too_large"


def _shown(text: str, limit: int = 80) -> str:
    """A value as an error message may quote it: bounded, in repr form."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


# --- vocabularies --------------------------------------------------------------------------
ERROR_REASONS: Final[Mapping[str, str]] = {
    word: CBV + "ER-" + word for word in ("did_not_occur", "incorrect_data")}
"""CBV 2.0 error reasons, bare word -> URI (errorDeclaration is outside the hash, so
event_hash.py has no table for them)."""

_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
"""An absolute URI or compact IRI, as far as matching needs: a scheme (or prefix), a
colon and no white space."""


def _vocabulary_value(text: str, words: Mapping[str, str]) -> str:
    """One spelling of a CBV vocabulary value: the CBV 2.0 URI for a bare word, a
    `urn:epcglobal:cbv:` URN or a compact IRI with a standard prefix; other values as
    they are (trimmed)."""
    text = text.strip()
    if text in words:
        return words[text]
    if text.startswith("urn:epcglobal:cbv:"):
        kind, _, word = text[len("urn:epcglobal:cbv:"):].partition(":")
        prefix = CBV_URN_TYPES.get(kind)
        return CBV + prefix + word if prefix and word else text
    prefix, colon, rest = text.partition(":")
    if colon and prefix in STANDARD_PREFIXES and not rest.startswith("//"):
        return STANDARD_PREFIXES[prefix] + rest
    return text


def canonical_biz_step(text: str) -> str:
    """The spelling `narrowing` uses for a bizStep (`https://ref.gs1.org/cbv/BizStep-
    shipping` for every spelling of `shipping`): the contract keys its bizStep index so."""
    return _vocabulary_value(text, BIZ_STEPS)


# --- what an event says ----------------------------------------------------------------------
Event = Mapping[str, Any]
Extract = Callable[[Event], Iterator[str]]


def _strings(value: Any) -> Iterator[str]:
    """The strings of a value that is a string or a list of them (malformed items are
    skipped: capture validated the event, and a query does not re-judge it)."""
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, str) and item.strip():
            yield item.strip()


def _field(name: str, normalise: Callable[[str], str] = str.strip) -> Extract:
    def extract(event: Event) -> Iterator[str]:
        for text in _strings(event.get(name)):
            yield normalise(text)
    return extract


def _location(name: str) -> Extract:
    def extract(event: Event) -> Iterator[str]:
        location = event.get(name)
        if isinstance(location, Mapping):
            yield from (canonical_id(text) for text in _strings(location.get("id")))
    return extract


def _persistent(part: str) -> Extract:
    def extract(event: Event) -> Iterator[str]:
        disposition = event.get("persistentDisposition")
        if isinstance(disposition, Mapping):
            for text in _strings(disposition.get(part)):
                yield _vocabulary_value(text, DISPOSITIONS)
    return extract


def _typed(list_name: str, item: str, kind: str, types: Mapping[str, str]) -> Extract:
    """The identifiers of `list_name` entries whose type is `kind` (a bizTransaction,
    source or destination of that type). An entry without a type matches no type."""
    wanted = _vocabulary_value(kind, types)

    def extract(event: Event) -> Iterator[str]:
        entries = event.get(list_name)
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, Mapping):
                continue
            entry_type = entry.get("type")
            if isinstance(entry_type, str) and _vocabulary_value(entry_type, types) == wanted:
                yield from (canonical_id(text) for text in _strings(entry.get(item)))
    return extract


def _error_declaration(event: Event) -> Mapping[str, Any] | None:
    declaration = event.get("errorDeclaration")
    return declaration if isinstance(declaration, Mapping) else None


def _error_reason(event: Event) -> Iterator[str]:
    declaration = _error_declaration(event)
    if declaration is not None:
        for text in _strings(declaration.get("reason")):
            yield _vocabulary_value(text, ERROR_REASONS)


def _corrective_event_ids(event: Event) -> Iterator[str]:
    declaration = _error_declaration(event)
    if declaration is None:
        return
    ids = declaration.get("correctiveEventIDs")
    if isinstance(ids, Mapping):  # the XML reader's shape: {"correctiveEventID": [...]}
        ids = ids.get("correctiveEventID")
    yield from _strings(ids)


_INSTANCE_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "MATCH_epc": ("epcList", "childEPCs"),
    "MATCH_parentID": ("parentID",),
    "MATCH_inputEPC": ("inputEPCList",),
    "MATCH_outputEPC": ("outputEPCList",),
    "MATCH_anyEPC": ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"),
}
_CLASS_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "MATCH_epcClass": ("quantityList", "childQuantityList"),
    "MATCH_inputEPCClass": ("inputQuantityList",),
    "MATCH_outputEPCClass": ("outputQuantityList",),
    "MATCH_anyEPCClass": ("quantityList", "childQuantityList", "inputQuantityList",
                          "outputQuantityList"),
}
QUANTITY_LISTS: Final = _CLASS_FIELDS["MATCH_anyEPCClass"]


def _identifiers(fields: Sequence[str], *, by_class: bool) -> Extract:
    def extract(event: Event) -> Iterator[str]:
        for name in fields:
            for member in _listed(event.get(name)):
                if by_class:
                    member = member.get("epcClass") if isinstance(member, Mapping) else None
                yield from (canonical_id(text) for text in _strings(member))
    return extract


def _listed(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else [value]


def _instant_ms(text: str, param: str) -> int:
    """Milliseconds since 1970-01-01T00:00Z of an RFC 3339 date-time with its offset
    (`canonical_time` checks it and writes it in UTC: `YYYY-MM-DDThh:mm:ss.fffZ`)."""
    try:
        utc = canonical_time(text, param)
    except BadEvent as error:
        reason = error.reason.partition(": ")[2] or error.reason
        if " " in text.strip() and "+" not in text:
            reason += "; a '+' in a URL query must be sent as %2B"
        raise QueryParameterError(param, reason) from None
    year, month, day = int(utc[0:4]), int(utc[5:7]), int(utc[8:10])
    hours, minutes, seconds, millis = int(utc[11:13]), int(utc[14:16]), int(utc[17:19]), \
        int(utc[20:23])
    return (((_days_from_civil(year, month, day) * 24 + hours) * 60 + minutes) * 60
            + seconds) * 1000 + millis


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm;
    pure arithmetic, as contracts may not import datetime)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _event_time_ms(event: Event, name: str) -> int | None:
    value = event.get(name)
    if not isinstance(value, str):
        return None
    try:
        return _instant_ms(value, name)
    except QueryParameterError:
        return None  # capture refused such events; one that got here matches no range


def _error_declaration_time_ms(event: Event) -> int | None:
    declaration = _error_declaration(event)
    return None if declaration is None else _event_time_ms(declaration, "declarationTime")


# --- identifier patterns --------------------------------------------------------------------
@dataclass(frozen=True)
class _Scheme:
    """How an EPC scheme's pure identity looks as a canonical Digital Link: `ai` its key,
    `lead` what precedes the company prefix in the key (an indicator or extension digit),
    `digits` the digits of prefix and reference together (None: alphanumeric, any
    length), `check` a check digit after them, `after` fixed digits after the key
    (ITIP's piece and total), `tail` what follows for an instance (its serial), and
    `dummy` the tail an instance with serial "1" has (stripped to get its class)."""

    fields: int
    ai: str
    lead: str = ""
    digits: int | None = 12
    check: bool = True
    after: str = ""
    tail: str = ""
    dummy: str = ""


_SCHEMES: Final[Mapping[str, _Scheme]] = {
    "sgtin": _Scheme(3, "01", lead=r"\d", tail=r"/21/[^/]+", dummy="/21/1"),
    "upui": _Scheme(3, "01", lead=r"\d", tail=r"/235/[^/]+", dummy="/235/1"),
    "sscc": _Scheme(2, "00", lead=r"\d", digits=16),
    "sgln": _Scheme(3, "414", tail=r"(?:/254/[^/]+)?", dummy="/254/1"),
    "grai": _Scheme(3, "8003", lead="0", tail=r"[^/]+", dummy="1"),
    "gdti": _Scheme(3, "253", tail=r"[^/]*", dummy="1"),
    "sgcn": _Scheme(3, "255", tail=r"\d+", dummy="1"),
    "giai": _Scheme(2, "8004", digits=None, check=False),
    "ginc": _Scheme(2, "401", digits=None, check=False),
    "gsrn": _Scheme(2, "8018", digits=17),
    "gsrnp": _Scheme(2, "8017", digits=17),
    "gsin": _Scheme(2, "402", digits=16),
    "pgln": _Scheme(2, "417"),
    "cpi": _Scheme(3, "8010", digits=None, check=False, tail=r"/8011/\d+", dummy="/8011/1"),
    "itip": _Scheme(5, "8006", lead=r"\d", after=r"\d{4}", tail=r"/21/[^/]+",
                    dummy="/21/1"),
}
"""EPC schemes with a GS1 key (TDS 2.0), as `event_hash.epc_to_digital_link` writes them."""

_DL_ROOT: Final = re.escape("https://id.gs1.org")
_COMPANY_PREFIX: Final = re.compile(r"[0-9]{6,12}")


def _key_rest(scheme: _Scheme, prefix_digits: int) -> str:
    """The regex for the key after its first `prefix_digits` digits of prefix+reference."""
    if scheme.digits is None:
        return r"[^/]*"
    return rf"\d{{{scheme.digits - prefix_digits}}}" + (r"\d" if scheme.check else "")


def _pattern_regex(urn: str, param: str, *, by_class: bool) -> str:
    """The regex a canonical identifier matches for the EPC pattern URI `urn`
    (`urn:epc:idpat:<scheme>:<fields>`, `*` in the rightmost fields, per TDS). For a class
    parameter the instance part (serial) is left out: the pattern names classes."""
    scheme_name, _, body = urn[len("urn:epc:idpat:"):].partition(":")
    fields = body.split(".")
    stars = len(fields) - next((i for i, f in enumerate(fields) if f == "*"), len(fields))
    if stars == 0 or any(f == "*" or "*" in f for f in fields[:len(fields) - stars]) \
            or any(f != "*" for f in fields[len(fields) - stars:]):
        raise QueryParameterError(param, f"{_shown(urn)} is not an EPC pattern: '*' may "
                                         "stand only for the rightmost fields")
    scheme = _SCHEMES.get(scheme_name)
    if scheme is None:  # a scheme without a GS1 key keeps its URN form: match fields
        fixed = [re.escape(f) for f in fields[:len(fields) - stars]]
        return re.escape(f"urn:epc:id:{scheme_name}:") + r"\.".join(
            fixed + [r"[^.]+"] * (stars - 1) + [r".+"])
    if len(fields) != scheme.fields:
        raise QueryParameterError(param, f"{_shown(urn)}: a {scheme_name} pattern has "
                                         f"{scheme.fields} fields")
    instance_tail = "" if by_class else scheme.tail
    lot = r"(?:/10/[^/]+)?" if by_class and scheme.ai == "01" else ""
    if stars == 1 and scheme.fields >= 3:  # only the serial is '*'
        sample = ".".join([*fields[:-1], "1"])
        link = epc_to_digital_link(f"urn:epc:id:{scheme_name}:{sample}")
        if link is None or not link.endswith(scheme.dummy):
            raise QueryParameterError(param, f"{_shown(urn)} names no valid {scheme_name}")
        return re.escape(link[:len(link) - len(scheme.dummy)]) + instance_tail + lot
    if stars == scheme.fields - 1:  # only the company prefix is given
        prefix = fields[0]
        if not _COMPANY_PREFIX.fullmatch(prefix) or (
                scheme.digits is not None and len(prefix) > scheme.digits):
            raise QueryParameterError(param, f"{_shown(urn)}: {_shown(prefix)} is not a "
                                             "GS1 company prefix (6 to 12 digits)")
        return (f"{_DL_ROOT}/{scheme.ai}/{scheme.lead}{prefix}"
                f"{_key_rest(scheme, len(prefix))}{scheme.after}{instance_tail}{lot}")
    if stars == scheme.fields:
        return (f"{_DL_ROOT}/{scheme.ai}/{scheme.lead}{_key_rest(scheme, 0)}"
                f"{scheme.after}{instance_tail}{lot}")
    raise QueryParameterError(param, f"{_shown(urn)}: tidechain matches {scheme_name} "
                                     "patterns with a '*' serial, company prefix only, or "
                                     "all '*'")


_KEY_ONLY_TAILS: Final[Mapping[str, tuple[int | None, str]]] = {
    "01": (None, r"/(?:21|235)/[^/]+"),
    "8006": (None, r"/21/[^/]+"),
    "8010": (None, r"/8011/\d+"),
    "8003": (14, r"[^/]+"),
    "253": (13, r"[^/]*"),
    "255": (13, r"\d+"),
}
"""Digital Link keys that name a class when given without their serial, the length of
such a key value (None: any, no qualifier follows), and what an instance adds: these
are the forms `epc_to_digital_link` gives a pattern with a '*' serial."""
_CANONICAL_KEY: Final = re.compile(r"https://id\.gs1\.org/([0-9]+)/([^/]+)")


def _key_only_regex(identifier: str, *, by_class: bool) -> str | None:
    """For a canonical Digital Link naming a key without its serial (a GTIN, a GRAI's
    asset type...), the regex of what it names: the same value as the pattern with a
    '*' serial. None for any other identifier."""
    match = _CANONICAL_KEY.fullmatch(identifier)
    if match is None or match.group(1) not in _KEY_ONLY_TAILS:
        return None
    length, tail = _KEY_ONLY_TAILS[match.group(1)]
    if length is not None and len(match.group(2)) != length:
        return None
    if by_class:
        return re.escape(identifier) + (r"(?:/10/[^/]+)?" if match.group(1) == "01" else "")
    return re.escape(identifier) + tail


# --- conditions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _OneOf:
    """The event names one of `values` (after the same normalisation) where `extract`
    looks."""

    param: str
    values: frozenset[str]
    extract: Extract

    def holds(self, event: Event, record_time_ms: int) -> bool:
        return any(value in self.values for value in self.extract(event))


@dataclass(frozen=True)
class _Identifiers:
    """An identifier of the event, in the fields `extract` reads, equals one of `exact`
    or matches one of `patterns` (both under `canonical_id`)."""

    param: str
    exact: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    extract: Extract
    by_class: bool

    def holds(self, event: Event, record_time_ms: int) -> bool:
        for identifier in self.extract(event):
            if identifier in self.exact or any(p.fullmatch(identifier) for p in self.patterns):
                return True
        return False


@dataclass(frozen=True)
class _TimeBound:
    """A time of the event is at or after (`lower`) or before `bound_ms`; an event without
    that time does not match."""

    param: str
    bound_ms: int
    lower: bool
    time_ms: Callable[[Event, int], int | None]

    def holds(self, event: Event, record_time_ms: int) -> bool:
        at = self.time_ms(event, record_time_ms)
        if at is None:
            return False
        return at >= self.bound_ms if self.lower else at < self.bound_ms


@dataclass(frozen=True)
class _HasErrorDeclaration:
    param: str

    def holds(self, event: Event, record_time_ms: int) -> bool:
        return _error_declaration(event) is not None


_Comparison = Literal["EQ", "GT", "GE", "LT", "LE"]


@dataclass(frozen=True)
class _Quantity:
    """Some quantity element of the event has a quantity that compares as `op` with one
    of `values` (exactly, as decimals)."""

    param: str
    op: _Comparison
    values: tuple[Decimal, ...]

    def holds(self, event: Event, record_time_ms: int) -> bool:
        for quantity in _quantities(event):
            for value in self.values:
                if _compare(quantity, self.op, value):
                    return True
        return False


def _compare(left: Decimal, op: _Comparison, right: Decimal) -> bool:
    if op == "EQ":
        return left == right
    if op == "GT":
        return left > right
    if op == "GE":
        return left >= right
    if op == "LT":
        return left < right
    return left <= right


def _quantities(event: Event) -> Iterator[Decimal]:
    for name in QUANTITY_LISTS:
        for element in _listed(event.get(name)):
            if isinstance(element, Mapping) and "quantity" in element:
                number = _decimal(element["quantity"])
                if number is not None:
                    yield number


_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


def _decimal(value: Any) -> Decimal | None:
    """A JSON number or decimal literal as an exact Decimal (a double as its shortest
    repr, which is what the document said), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and len(value) <= MAX_VALUE_CHARS and _NUMBER.fullmatch(
            value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the regex admits only literals
            return None
    return None


Condition = _OneOf | _Identifiers | _TimeBound | _HasErrorDeclaration | _Quantity


# --- the query ----------------------------------------------------------------------------------
Ref = TypeVar("Ref")


@dataclass(frozen=True)
class Row(Generic[Ref]):
    """A matching event as the repository holds it: the event, its recordTime, and
    whatever `ref` the repository needs to answer with it (a height, an index...)."""

    event: Mapping[str, Any]
    record_time_ms: int
    ref: Ref


OrderBy = Literal["eventTime", "recordTime"]
Direction = Literal["ASC", "DESC"]


@dataclass(frozen=True)
class EventQuery:
    """A parsed simple event query. `conditions` all hold for a matching event;
    `order_by`/`order_direction`/`event_count_limit`/`max_event_count` shape the result
    (`order`); `per_page` and `next_page_token` are the HTTP layer's, returned as given."""

    conditions: tuple[Condition, ...] = ()
    order_by: OrderBy | None = None
    order_direction: Direction = "DESC"
    event_count_limit: int | None = None
    max_event_count: int | None = None
    per_page: int | None = None
    next_page_token: str | None = None

    def matches(self, event: Mapping[str, Any], *, record_time_ms: int) -> bool:
        """Whether `event` (an EPCIS 2.0 event as its JSON-LD object, or as
        `epcis_xml.read_events` gives it) meets every condition; `record_time_ms` is when
        the repository recorded it (ms since the epoch)."""
        return all(condition.holds(event, record_time_ms) for condition in self.conditions)

    def sort_key(self, event: Mapping[str, Any], *, record_time_ms: int) -> int | None:
        """The `orderBy` time of the event in ms since the epoch (recordTime when no order
        is asked for: the repository's own order); None if the event lacks it."""
        if self.order_by == "eventTime":
            return _event_time_ms(event, "eventTime")
        return record_time_ms

    def order(self, rows: Sequence[Row[Ref]]) -> list[Row[Ref]]:
        """The matching `rows` (in the repository's order) as the answer: sorted by
        `orderBy` in `orderDirection` (ties, and all rows when no order is asked for,
        keep the given order; rows lacking the field go last), cut to `eventCountLimit`.

        Raises QueryTooLarge when more rows than `maxEventCount` (or MAX_RESULT_EVENTS)
        match."""
        if len(rows) > MAX_RESULT_EVENTS:
            raise QueryTooLarge(f"more than {MAX_RESULT_EVENTS} events match; narrow the "
                                "query")
        if self.max_event_count is not None and len(rows) > self.max_event_count:
            raise QueryTooLarge(f"{len(rows)} events match, more than maxEventCount "
                                f"{self.max_event_count}")
        ordered = list(rows)
        if self.order_by is not None:
            sign = 1 if self.order_direction == "ASC" else -1

            def key(row: Row[Ref]) -> tuple[bool, int]:
                at = self.sort_key(row.event, record_time_ms=row.record_time_ms)
                return (at is None, 0 if at is None else sign * at)

            ordered.sort(key=key)
        if self.event_count_limit is not None:
            ordered = ordered[:self.event_count_limit]
        return ordered

    def narrowing(self) -> tuple[str, tuple[str, ...]] | None:
        """The most selective index lookup the query allows: every matching event is
        found under one of the keys. `("eventID", ids)`; `("epc", identifiers)` or
        `("class", identifiers)` under `canonical_id`, from a MATCH_ parameter without
        patterns (the one with fewest values); `("bizStep", canonical_biz_step URIs)`;
        `("eventType", types)`; or None: scan."""
        by_kind: dict[str, list[frozenset[str]]] = {}
        for condition in self.conditions:
            kind: str | None = None
            values: frozenset[str] = frozenset()
            if isinstance(condition, _OneOf) and condition.param in _NARROWING_KINDS:
                kind, values = _NARROWING_KINDS[condition.param], condition.values
            elif isinstance(condition, _Identifiers) and not condition.patterns:
                kind, values = ("class" if condition.by_class else "epc"), condition.exact
            if kind is not None:
                by_kind.setdefault(kind, []).append(values)
        for kind in ("eventID", "epc", "class", "bizStep", "eventType"):
            if kind in by_kind:
                fewest = min(by_kind[kind], key=lambda values: len(values))
                return kind, tuple(sorted(fewest))
        return None


_NARROWING_KINDS: Final[Mapping[str, str]] = {
    "EQ_eventID": "eventID", "EQ_bizStep": "bizStep", "eventType": "eventType"}


# --- parsing -------------------------------------------------------------------------------------
Source = Literal["url", "body"]


def _list(param: str, value: Any, source: Source) -> list[str]:
    """The values of a list parameter: pipe-delimited in a URL, a JSON array in a body."""
    if source == "url":
        items: list[Any] = value.split("|")
    elif isinstance(value, list):
        items = value
    else:
        raise QueryParameterError(param, "must be a list of strings")
    if len(items) > MAX_VALUES_PER_PARAMETER:
        raise QueryParameterError(param, f"more than {MAX_VALUES_PER_PARAMETER} values")
    if not items:
        raise QueryParameterError(param, "needs at least one value")
    return [_text(param, item) for item in items]


def _text(param: str, value: Any) -> str:
    if not isinstance(value, str):
        raise QueryParameterError(param, "values must be strings")
    text = value.strip()
    if not text:
        raise QueryParameterError(param, "has an empty value")
    if len(text) > MAX_VALUE_CHARS:
        raise QueryParameterError(param, f"a value is longer than {MAX_VALUE_CHARS} "
                                         "characters")
    return text


def _scalar(param: str, value: Any, source: Source) -> str:
    if source == "body" and not isinstance(value, str):
        raise QueryParameterError(param, "must be a string")
    return _text(param, value)


def _count(param: str, value: Any, source: Source) -> int:
    """A positive integer: digits in a URL, a JSON integer in a body."""
    if source == "url":
        text = _text(param, value)
        number = int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None
    else:
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if number is None or not 1 <= number <= MAX_COUNT:
        raise QueryParameterError(param, f"must be a positive integer (at most {MAX_COUNT})")
    return number


def _boolean(param: str, value: Any, source: Source) -> bool:
    """`true`/`false` in a URL; in a body a boolean, or (query-schema.json types
    EXISTS_ parameters as a nullable integer, EPCIS 1.x's Void) null or an integer,
    which ask for the condition."""
    if source == "url":
        text = _text(param, value)
        if text not in ("true", "false"):
            raise QueryParameterError(param, "must be true or false")
        return text == "true"
    if isinstance(value, bool):
        return value
    if value is None or isinstance(value, int):
        return True
    raise QueryParameterError(param, "must be a boolean")


def _number(param: str, value: Any, source: Source) -> Decimal:
    if source == "body" and isinstance(value, int | float) and not isinstance(value, bool):
        number = _decimal(value)
    elif source == "url":
        number = _decimal(_text(param, value))
    else:
        number = None
    if number is None:
        raise QueryParameterError(param, "must be a number")
    return number


def _event_types(param: str, value: Any, source: Source) -> Condition:
    types = _list(param, value, source)
    for name in types:
        if name not in EVENT_TYPES and not _URI.fullmatch(name):
            raise QueryParameterError(param, f"{_shown(name)} is not one of "
                                             f"{', '.join(sorted(EVENT_TYPES))} nor the URI "
                                             "of an extension event type")
    return _OneOf(param, frozenset(types), _field("type"))


def _actions(param: str, value: Any, source: Source) -> Condition:
    actions = _list(param, value, source)
    for action in actions:
        if action not in ("ADD", "OBSERVE", "DELETE"):
            raise QueryParameterError(param, f"{_shown(action)} is not ADD, OBSERVE or DELETE")
    return _OneOf(param, frozenset(actions), _field("action"))


def _vocabulary(words: Mapping[str, str], extract: Extract) -> Callable[[str, Any, Source],
                                                                        Condition]:
    """A parameter whose values are CBV words or URIs (bizStep, disposition...)."""
    def parse(param: str, value: Any, source: Source) -> Condition:
        values = set()
        for text in _list(param, value, source):
            if text not in words and not _URI.fullmatch(text):
                raise QueryParameterError(param, f"{_shown(text)} is neither a CBV value "
                                                 "nor a URI")
            values.add(_vocabulary_value(text, words))
        return _OneOf(param, frozenset(values), extract)
    return parse


def _uris(extract: Extract, normalise: Callable[[str], str] = canonical_id
          ) -> Callable[[str, Any, Source], Condition]:
    """A parameter whose values are identifiers compared after `normalise`."""
    def parse(param: str, value: Any, source: Source) -> Condition:
        return _OneOf(param, frozenset(normalise(text) for text in _list(param, value, source)),
                      extract)
    return parse


def _identifier_match(fields: Sequence[str], *, by_class: bool
                      ) -> Callable[[str, Any, Source], Condition]:
    def parse(param: str, value: Any, source: Source) -> Condition:
        exact: set[str] = set()
        patterns: dict[str, re.Pattern[str]] = {}
        for text in _list(param, value, source):
            identifier = canonical_id(text)
            if text.startswith("urn:epc:idpat:"):  # its scheme, before canonical_id drops it
                regex: str | None = _pattern_regex(text, param, by_class=by_class)
            else:
                regex = _key_only_regex(identifier, by_class=by_class)
            if regex is None:
                exact.add(identifier)
            else:
                patterns.setdefault(regex, re.compile(regex))
        return _Identifiers(param, frozenset(exact), tuple(patterns.values()),
                            _identifiers(fields, by_class=by_class), by_class)
    return parse


def _event_time(event: Event, record_time_ms: int) -> int | None:
    return _event_time_ms(event, "eventTime")


def _record_time(event: Event, record_time_ms: int) -> int | None:
    return record_time_ms


def _declaration_time(event: Event, record_time_ms: int) -> int | None:
    return _error_declaration_time_ms(event)


def _time_bound(time_ms: Callable[[Event, int], int | None], *, lower: bool
                ) -> Callable[[str, Any, Source], Condition]:
    def parse(param: str, value: Any, source: Source) -> Condition:
        return _TimeBound(param, _instant_ms(_scalar(param, value, source), param), lower,
                          time_ms)
    return parse


def _exists_error_declaration(param: str, value: Any, source: Source) -> Condition | None:
    return _HasErrorDeclaration(param) if _boolean(param, value, source) else None


def _quantity(op: _Comparison) -> Callable[[str, Any, Source], Condition]:
    def parse(param: str, value: Any, source: Source) -> Condition:
        if op == "EQ" and source == "body" and isinstance(value, list):
            if not value or len(value) > MAX_VALUES_PER_PARAMETER:
                raise QueryParameterError(param, f"needs 1 to {MAX_VALUES_PER_PARAMETER} "
                                                 "numbers")
            values = tuple(_number(param, item, source) for item in value)
        else:
            values = (_number(param, value, source),)
        return _Quantity(param, op, values)
    return parse


_Parser = Callable[[str, Any, Source], Condition | None]

_CONDITIONS: Final[Mapping[str, _Parser]] = {
    "eventType": _event_types,
    "GE_eventTime": _time_bound(_event_time, lower=True),
    "LT_eventTime": _time_bound(_event_time, lower=False),
    "GE_recordTime": _time_bound(_record_time, lower=True),
    "LT_recordTime": _time_bound(_record_time, lower=False),
    "EQ_action": _actions,
    "EQ_bizStep": _vocabulary(BIZ_STEPS, _field("bizStep", canonical_biz_step)),
    "EQ_disposition": _vocabulary(DISPOSITIONS, _field(
        "disposition", lambda text: _vocabulary_value(text, DISPOSITIONS))),
    "EQ_persistentDisposition_set": _vocabulary(DISPOSITIONS, _persistent("set")),
    "EQ_persistentDisposition_unset": _vocabulary(DISPOSITIONS, _persistent("unset")),
    "EQ_readPoint": _uris(_location("readPoint")),
    "WD_readPoint": _uris(_location("readPoint")),
    "EQ_bizLocation": _uris(_location("bizLocation")),
    "WD_bizLocation": _uris(_location("bizLocation")),
    "EQ_transformationID": _uris(_field("transformationID", canonical_id)),
    **{name: _identifier_match(fields, by_class=False)
       for name, fields in _INSTANCE_FIELDS.items()},
    **{name: _identifier_match(fields, by_class=True) for name, fields in _CLASS_FIELDS.items()},
    "EQ_quantity": _quantity("EQ"),
    "GT_quantity": _quantity("GT"),
    "GE_quantity": _quantity("GE"),
    "LT_quantity": _quantity("LT"),
    "LE_quantity": _quantity("LE"),
    "EQ_eventID": _uris(_field("eventID"), str.strip),
    "EXISTS_errorDeclaration": _exists_error_declaration,
    "GE_errorDeclarationTime": _time_bound(_declaration_time, lower=True),
    "LT_errorDeclarationTime": _time_bound(_declaration_time, lower=False),
    # query-schema.json's spelling of the two above (the OpenAPI's is without the "_")
    "GE_errorDeclaration_Time": _time_bound(_declaration_time, lower=True),
    "LT_errorDeclaration_Time": _time_bound(_declaration_time, lower=False),
    "EQ_errorReason": _vocabulary(ERROR_REASONS, _error_reason),
    "EQ_correctiveEventID": _uris(_corrective_event_ids, str.strip),
}
"""Every supported parameter with a fixed name, and how its value becomes a condition
(None: the value asks for nothing, as `EXISTS_errorDeclaration=false`)."""

_TYPED_PARAMETERS: Final = (
    ("EQ_bizTransaction_", "bizTransactionList", "bizTransaction", BIZ_TRANSACTION_TYPES),
    ("EQ_source_", "sourceList", "source", SOURCE_DESTINATION_TYPES),
    ("EQ_destination_", "destinationList", "destination", SOURCE_DESTINATION_TYPES),
)
_TYPE_NAME: Final = re.compile(r"[a-z][a-zA-Z0-9_]+")
"""The `<type>` of `EQ_bizTransaction_<type>` and the like (query-schema.json)."""

_SHAPING: Final = frozenset({"orderBy", "orderDirection", "eventCountLimit", "maxEventCount"})
_PAGING: Final = frozenset({"perPage", "nextPageToken"})
"""The HTTP layer's paging parameters: URL only (a named query's body has none)."""

_NOT_SUPPORTED: Final = re.compile(
    r"(?:EQ|GT|GE|LT|LE|EXISTS|HASATTR|EQATTR)_.*:.*|EQ_ATTR_.*|"
    r"(?:GE|LT)_(?:time|startTime|endTime)|(?:GE|GT|LT|LE)_percRank|EXISTS_sensorElementList|"
    r"EQ_(?:type|deviceID|dataProcessingMethod|microorganism|chemicalSubstance|bizRules|"
    r"stringValue|hexBinaryValue|uriValue|booleanValue)|(?:EQ|GT|GE|LT|LE)_value(?:_.*)?")
"""Standard parameters tidechain does not evaluate: user extension fields (ILMD, inner,
sensor metadata...) and sensor reports. Refused with a reason of their own, so a client
knows the query was understood and not run."""


def parse_query(params: Mapping[str, str | list[str]] | Mapping[str, Any], *,
                source: Source) -> EventQuery:
    """Read a simple event query. `source="url"`: `params` are URL query parameters
    (every value a string; a list means the parameter was given more than once, which
    is refused; list values pipe-delimited). `source="body"`: `params` is the `query`
    object of a named query (query-schema.json: lists as JSON arrays, times as strings,
    counts as integers; `@context` is allowed and ignored).

    Raises QueryParameterError naming the parameter for an unknown or unsupported
    parameter, a malformed value, a repeated parameter, a bound of this module, and the
    combinations the standard forbids (eventCountLimit with maxEventCount, or without
    orderBy)."""
    if source not in ("url", "body"):
        raise ValueError(f"source must be 'url' or 'body', not {source!r}")
    if not isinstance(params, Mapping):
        raise QueryParameterError("query", "must be an object of parameters")
    conditions: list[Condition] = []
    shaping: dict[str, Any] = {}
    paging: dict[str, Any] = {}
    for index, (param, value) in enumerate(params.items()):
        if not isinstance(param, str) or len(param) > MAX_NAME_CHARS:
            raise QueryParameterError(str(param)[:MAX_NAME_CHARS], "is not a parameter name")
        if index >= MAX_PARAMETERS:
            raise QueryParameterError(param, f"more than {MAX_PARAMETERS} parameters")
        if source == "url":
            value = _single_url_value(param, value)
        if param == "@context" and source == "body":
            continue
        if param in _SHAPING:
            shaping[param] = value
        elif param in _PAGING and source == "url":
            paging[param] = value
        else:
            condition = _condition(param, value, source)
            if condition is not None:
                conditions.append(condition)
    return _shaped(tuple(conditions), shaping, paging, source)


def _single_url_value(param: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise QueryParameterError(param, "given more than once (list its values "
                                             "separated by '|')")
        value = value[0]
    if not isinstance(value, str):
        raise QueryParameterError(param, "a URL parameter's value is a string")
    return value


def _condition(param: str, value: Any, source: Source) -> Condition | None:
    parser = _CONDITIONS.get(param)
    if parser is not None:
        return parser(param, value, source)
    for name_prefix, list_name, item, types in _TYPED_PARAMETERS:
        if param.startswith(name_prefix):
            kind = param[len(name_prefix):]
            if not _TYPE_NAME.fullmatch(kind):
                raise QueryParameterError(param, f"{_shown(kind)} is not a {item} type "
                                                 "name ([a-z][a-zA-Z0-9_]+)")
            return _uris(_typed(list_name, item, kind, types))(param, value, source)
    if _NOT_SUPPORTED.fullmatch(param):
        raise QueryParameterError(param, "is a standard parameter tidechain does not "
                                         "support (extension fields, sensor reports)")
    raise QueryParameterError(param, "is not a simple event query parameter")


def _shaped(conditions: tuple[Condition, ...], shaping: Mapping[str, Any],
            paging: Mapping[str, Any], source: Source) -> EventQuery:
    order_by: OrderBy | None = None
    if "orderBy" in shaping:
        text = _scalar("orderBy", shaping["orderBy"], source)
        if text not in ("eventTime", "recordTime"):
            raise QueryParameterError("orderBy", "must be eventTime or recordTime (tidechain "
                                                 "does not order by extension fields)")
        order_by = "eventTime" if text == "eventTime" else "recordTime"
    direction: Direction = "DESC"
    if "orderDirection" in shaping:
        text = _scalar("orderDirection", shaping["orderDirection"], source)
        if text not in ("ASC", "DESC"):
            raise QueryParameterError("orderDirection", "must be ASC or DESC")
        direction = "ASC" if text == "ASC" else "DESC"
    limit = (_count("eventCountLimit", shaping["eventCountLimit"], source)
             if "eventCountLimit" in shaping else None)
    max_count = (_count("maxEventCount", shaping["maxEventCount"], source)
                 if "maxEventCount" in shaping else None)
    if limit is not None and max_count is not None:
        raise QueryParameterError("maxEventCount", "and eventCountLimit exclude each other")
    if limit is not None and order_by is None:
        raise QueryParameterError("eventCountLimit", "needs orderBy (the standard: the "
                                                     "first N in which order?)")
    per_page = _count("perPage", paging["perPage"], source) if "perPage" in paging else None
    token = (_text("nextPageToken", paging["nextPageToken"])
             if "nextPageToken" in paging else None)
    return EventQuery(conditions, order_by, direction, limit, max_count, per_page, token)
