"""EPCIS capture documents split into events that keep their exact source bytes.

A capture client POSTs an EPCISDocument (or an EPCISQueryDocument) in JSON/JSON-LD or
XML. Each event goes on chain as its own transaction carrying the event's *exact*
bytes from the document, so that anyone holding a receipt can re-read and re-hash the
event without the rest of the document:

* JSON: the event is the byte slice from its `{` to its `}` in
  `epcisBody.eventList` (or `epcisBody.queryResults.resultsBody.eventList`); its
  context is the byte slice of the document's top-level `@context` value, which
  declares the prefixes its keys use.
* XML: the event is the byte slice from its element's `<` to the end of its end tag;
  its context is the namespace declarations in scope at the element that the event's
  element and attribute names use, written canonically (see `xml_context`).

`read_source_event(format, source, context)` re-reads one event from those two byte
strings, giving exactly the dict the whole document gives, and `source_event_hash`
its CBV 2.0 event hash: the on-chain contract and the offline verifier use these.

The JSON standard library gives no positions, so the few levels above the events are
walked here with `JSONDecoder.raw_decode`, which does report where each value ends.
The walk follows `json.loads` exactly: a repeated key keeps its last value (GS1's
`json-more/AssociationEvent/AssociationEvent-h.jsonld` repeats `eventID`), and the
slices are those of the values kept. `NaN` and `Infinity`, which `json` accepts, are
refused: they are not JSON. The XML is read with expat, hardened as `epcis_xml`.

Pure: no I/O. Every rejection is a `BadEvent` whose `field` names where in the
document it is (`epcisBody.eventList[3].eventTime`); bounds are `EpcisTooLarge`.
"""

from __future__ import annotations

import itertools
import json
import re
import xml.parsers.expat
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from tidechain.core.errors import InvariantViolation, TooLarge, invariant

from . import epcis_xml
from .event_hash import EVENT_TYPES, BadEvent, Context, EventTooLarge, event_hash

__all__ = [
    "DOCUMENT_KINDS",
    "MAX_CONTEXT_BYTES",
    "MAX_DOCUMENT_BYTES",
    "MAX_EVENTS_PER_DOCUMENT",
    "MAX_EVENT_SOURCE_BYTES",
    "CapturedDocument",
    "EpcisTooLarge",
    "SourceEvent",
    "read_source_event",
    "source_event_hash",
    "split_document",
    "wrap_xml_event",
    "xml_context",
    "xml_namespaces",
]

# --- limits ------------------------------------------------------------------------------
MAX_DOCUMENT_BYTES: Final = epcis_xml.MAX_XML_BYTES
"""One capture document, JSON or XML: the bound of the XML reader (16 MiB), for the same
reason (a busy site's day of events fits; a larger document is split by its sender)."""

MAX_EVENTS_PER_DOCUMENT: Final = 10_000
"""Events in one document: each becomes a transaction, and 10,000 is a few blocks' worth.
A sender with more splits the document; the bound also caps the work one request costs."""

MAX_EVENT_SOURCE_BYTES: Final = 12 * 1024
"""One event's source bytes: the event travels in one transaction (core.limits
MAX_TX_BYTES, 16 KiB) beside its context and the transaction's own fields."""

MAX_CONTEXT_BYTES: Final = 3 * 1024
"""The context an event carries (a JSON `@context`, or XML namespace declarations):
with MAX_EVENT_SOURCE_BYTES it leaves 1 KiB of the 16 KiB transaction for the rest. The
GS1 examples' largest context is under 600 bytes."""

DOCUMENT_KINDS: Final = ("EPCISDocument", "EPCISQueryDocument")

Format = Literal["json", "xml"]


class EpcisTooLarge(BadEvent, TooLarge):
    """A document, an event or a context past a bound of this module, or of
    `event_hash` / `epcis_xml`; `field` says where (`epcisBody.eventList[7]`)."""

    code = "epcis_event_too_large"
    http_status = 413


@dataclass(frozen=True)
class SourceEvent:
    """One event of a document: the bytes it travels as and what they mean.

    `source` and `context` are all a reader needs (`read_source_event`); `event` is the
    JSON-LD-shaped dict they give and `hash` its CBV 2.0 event hash."""

    format: Format
    source: bytes
    context: bytes
    event: dict[str, Any] = field(compare=False)
    hash: str


@dataclass(frozen=True)
class CapturedDocument:
    kind: str  # one of DOCUMENT_KINDS
    schema_version: str | None
    creation_date: str | None
    events: tuple[SourceEvent, ...]


def _moved(error: BadEvent | EventTooLarge, where: str) -> BadEvent:
    """`error`, raised for an event on its own, re-raised at the event's place."""
    inner = error.field
    reason = error.reason.removeprefix(f"{inner or 'event'}: ")
    path = where
    if inner and not inner.startswith(("line ", "document", "source", "context")):
        path = f"{where}.{inner}" if not inner.startswith("[") else where + inner
    elif inner:
        reason = f"{inner}: {reason}"
    if isinstance(error, EventTooLarge | EpcisTooLarge):
        return EpcisTooLarge(path, reason)
    return BadEvent(path, reason)


def _hash(event: dict[str, Any], context: Context) -> str:
    try:
        return event_hash(event, context=context)
    except EventTooLarge as error:
        raise EpcisTooLarge(error.field, error.reason.removeprefix(
            f"{error.field or 'event'}: ")) from None
    except UnicodeEncodeError:
        # a JSON string may hold an escaped lone surrogate, which has no UTF-8 form
        raise BadEvent("", "holds a lone surrogate (\\ud800-\\udfff), which is not text") from None


_UTF8_BOM: Final = b"\xef\xbb\xbf"


def _text(data: bytes, what: str, *, utf8_bom: bool = False) -> str:
    """`data` as UTF-8, strictly: no other encoding, and no byte order mark unless
    `utf8_bom` (XML allows a UTF-8 one, and a GS1 example has it; JSON does not)."""
    if data.startswith((b"\xfe\xff", b"\xff\xfe")) or (
            data.startswith(_UTF8_BOM) and not utf8_bom):
        raise BadEvent(what, "starts with a byte order mark; send UTF-8 without one")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadEvent(what, f"is not UTF-8 (byte {error.start})") from None


# --- JSON ------------------------------------------------------------------------------------
def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


_DECODER: Final = json.JSONDecoder(parse_constant=_not_json)
_JSON_SPACE: Final = frozenset(" \t\n\r")

_Path = tuple[str, ...]
_OBJECT_PATHS: Final[frozenset[_Path]] = frozenset({
    (), ("epcisBody",), ("epcisBody", "queryResults"),
    ("epcisBody", "queryResults", "resultsBody")})
"""The objects walked key by key to reach the event lists; others are decoded whole."""
_EVENT_LISTS: Final[Mapping[str, _Path]] = {
    "EPCISDocument": ("epcisBody", "eventList"),
    "EPCISQueryDocument": ("epcisBody", "queryResults", "resultsBody", "eventList")}


def _dotted(path: _Path) -> str:
    return ".".join(path) or "document"


MAX_JSON_NESTING: Final = 48
"""Arrays and objects open at once in a document: an event's own bound (event_hash's
MAX_DEPTH, 32) with room for the document around it. Checked on the text before it is
decoded, so that whether a deep document is refused never depends on how deep the
reading process's own stack already is: the contract reads events through here, and
validators must agree on every refusal and its reason."""
MAX_JSON_DIGITS: Final = 64
"""Digits in one JSON number: far beyond a double's 17, and short of the interpreter's
integer-digit limit, which a node's environment may set (PYTHONINTMAXSTRDIGITS)."""


def _check_shape(text: str, index: int, where: str) -> None:
    """Refuse nesting deeper than MAX_JSON_NESTING and numbers longer than
    MAX_JSON_DIGITS in `text[index:]`, reading strings as JSON does (escapes)."""
    depth = digits = 0
    in_string = escaped = False
    for char in itertools.islice(text, index, None):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "0123456789":
            digits += 1
            if digits > MAX_JSON_DIGITS:
                raise BadEvent(where, f"a number of more than {MAX_JSON_DIGITS} digits")
            continue
        digits = 0
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_NESTING:
                raise EpcisTooLarge(where, f"nested more than {MAX_JSON_NESTING} deep")
        elif char in "]}":
            depth -= 1


def _decode(text: str, index: int, where: str) -> tuple[Any, int]:
    """One JSON value at `index` (the whole text's shape checked by the caller first)."""
    try:
        value, end = _DECODER.raw_decode(text, index)
    except json.JSONDecodeError as error:
        raise BadEvent(where, f"not JSON at character {error.pos}: {error.msg}") from None
    except RecursionError:
        raise EpcisTooLarge(where, "nested too deep to read") from None
    except ValueError as error:  # NaN/Infinity, or an integer past Python's digit limit
        raise BadEvent(where, f"not JSON: {error}") from None
    return value, end


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _JSON_SPACE:
        index += 1
    return index


class _JsonScan:
    """Decodes a JSON document as `json.loads` does, noting the character span of each
    item of the event lists and of the top-level `@context` value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items: dict[_Path, list[tuple[int, int]]] = {}
        self.context_span: tuple[int, int] | None = None

    def document(self) -> Any:
        start = _skip_space(self.text, 0)
        value, end = self._value(start, ())
        if _skip_space(self.text, end) != len(self.text):
            raise BadEvent("document", f"data after the JSON document at character {end}")
        return value

    def _expect(self, index: int, chars: str, path: _Path) -> str:
        found = self.text[index:index + 1]
        if not found or found not in chars:
            what = "the end of the document" if not found else repr(found)
            raise BadEvent(_dotted(path), f"expected {' or '.join(chars)} at character "
                                          f"{index}, found {what}")
        return found

    def _value(self, index: int, path: _Path) -> tuple[Any, int]:
        char = self.text[index:index + 1]
        if char == "{" and path in _OBJECT_PATHS:
            return self._object(index, path)
        if char == "[" and path in _EVENT_LISTS.values():
            return self._list(index, path)
        return _decode(self.text, index, _dotted(path))

    def _forget(self, path: _Path) -> None:
        """A key seen again replaces its value: drop what the earlier value recorded."""
        for list_path in list(self.items):
            if list_path[:len(path)] == path:
                del self.items[list_path]
        if path == ("@context",):
            self.context_span = None

    def _object(self, index: int, path: _Path) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        index = _skip_space(self.text, index + 1)
        if self._expect(index, '"}', path) == "}":
            return out, index + 1
        while True:
            self._expect(index, '"', path)
            key, index = _decode(self.text, index, _dotted(path))
            child = (*path, key)
            self._forget(child)
            index = _skip_space(self.text, index)
            self._expect(index, ":", path)
            start = _skip_space(self.text, index + 1)
            out[key], index = self._value(start, child)
            if child == ("@context",):
                self.context_span = (start, index)
            index = _skip_space(self.text, index)
            if self._expect(index, ",}", path) == "}":
                return out, index + 1
            index = _skip_space(self.text, index + 1)

    def _list(self, index: int, path: _Path) -> tuple[list[Any], int]:
        out: list[Any] = []
        spans: list[tuple[int, int]] = []
        self.items[path] = spans
        index = _skip_space(self.text, index + 1)
        if self.text.startswith("]", index):
            return out, index + 1
        while True:
            where = f"{_dotted(path)}[{len(out)}]"
            if len(out) >= MAX_EVENTS_PER_DOCUMENT:
                raise EpcisTooLarge(where, f"more than {MAX_EVENTS_PER_DOCUMENT} events in "
                                           "one document; split it")
            item, end = _decode(self.text, index, where)
            out.append(item)
            spans.append((index, end))
            index = _skip_space(self.text, end)
            if self._expect(index, ",]", path) == "]":
                return out, index + 1
            index = _skip_space(self.text, index + 1)


def _byte_offsets(text: str, positions: list[int]) -> dict[int, int]:
    """Character index -> byte index in the UTF-8 form of `text`, for `positions`."""
    if text.isascii():
        return {position: position for position in positions}
    out: dict[int, int] = {}
    character = byte = 0
    for position in sorted(set(positions)):
        byte += len(text[character:position].encode("utf-8"))
        character = position
        out[position] = byte
    return out


def _member(obj: Mapping[str, Any], path: _Path, key: str, kind: type) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        shape = "a list" if kind is list else "an object"
        raise BadEvent(_dotted((*path, key)), f"is missing or not {shape}")
    return value


def _optional_text(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise BadEvent(key, "must be a string")
    return value


def _split_json(data: bytes) -> CapturedDocument:
    text = _text(data, "document")
    _check_shape(text, 0, "document")
    scan = _JsonScan(text)
    document = scan.document()
    if not isinstance(document, dict):
        raise BadEvent("document", "an EPCIS document is a JSON object")
    kind = document.get("type")
    if kind not in DOCUMENT_KINDS:
        raise BadEvent("type", f"must be EPCISDocument or EPCISQueryDocument, not {kind!r}")
    list_path = _EVENT_LISTS[kind]
    parent: Any = document
    for depth, key in enumerate(list_path):
        parent = _member(parent, list_path[:depth], key,
                         list if depth == len(list_path) - 1 else dict)
    events: list[Any] = parent
    spans = scan.items.get(list_path, [])
    invariant(len(spans) == len(events), "one span per event of the list kept")
    where = _dotted(list_path)
    positions = [p for span in spans for p in span]
    if scan.context_span is not None:
        positions.extend(scan.context_span)
    offsets = _byte_offsets(text, positions)
    context_bytes = b""
    if scan.context_span is not None:
        start, end = scan.context_span
        context_bytes = data[offsets[start]:offsets[end]]
        if len(context_bytes) > MAX_CONTEXT_BYTES:
            raise EpcisTooLarge("@context", f"larger than {MAX_CONTEXT_BYTES} bytes, the room "
                                            "an event's transaction has for it")
    context = document.get("@context")
    out = []
    for index, (event, (start, end)) in enumerate(zip(events, spans, strict=True)):
        place = f"{where}[{index}]"
        if not isinstance(event, dict):
            raise BadEvent(place, "an event is a JSON object")
        source = data[offsets[start]:offsets[end]]
        if len(source) > MAX_EVENT_SOURCE_BYTES:
            raise EpcisTooLarge(place, f"{len(source)} bytes, more than the "
                                       f"{MAX_EVENT_SOURCE_BYTES} one event may have")
        try:
            digest = _hash(event, context)
        except BadEvent as error:
            raise _moved(error, place) from None
        out.append(SourceEvent("json", source, context_bytes, event, digest))
    return CapturedDocument(kind, _optional_text(document, "schemaVersion"),
                            _optional_text(document, "creationDate"), tuple(out))


def _read_json_value(data: bytes, what: str) -> Any:
    text = _text(data, what)
    _check_shape(text, 0, what)
    value, end = _decode(text, 0, what)
    if end != len(text):
        raise BadEvent(what, f"holds more than one JSON value (character {end})")
    return value


def _read_json_event(source: bytes, context: bytes) -> tuple[dict[str, Any], Context]:
    event = _read_json_value(source, "source")
    if not isinstance(event, dict):
        raise BadEvent("source", "an event is a JSON object")
    return event, _read_json_value(context, "context") if context else None


# --- XML -------------------------------------------------------------------------------------
_XML_DECLARATION = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_START_TAG = re.compile(rb"<[^\"'>]*(?:(?:\"[^\"]*\"|'[^']*')[^\"'>]*)*>")
"""A start tag, its attribute values quoted (they may hold `>`)."""
_NAME_SEPARATOR = "\x1f"
_XML_LISTS: Final[Mapping[str, tuple[str, ...]]] = {
    "EPCISDocument": ("EPCISBody", "EventList"),
    "EPCISQueryDocument": ("EPCISBody", "QueryResults", "resultsBody", "EventList")}
_XML_WRAPPER = "extension"
"""EPCIS 1.x wraps its later event types in <extension> inside the EventList."""


@dataclass
class _XmlEvent:
    start: int
    end: int = -1
    namespaces: dict[str, str] = field(default_factory=dict)  # prefix ("" default) -> URI


@dataclass
class _XmlScan:
    kind: str
    schema_version: str | None
    creation_date: str | None
    where: str
    events: list[_XmlEvent]


def _prefix(name: str) -> str | None:
    """The prefix a name was written with ("" for the default namespace), None if the
    name is in no namespace (expat with namespace_prefixes: `uri␟local␟prefix`)."""
    parts = name.split(_NAME_SEPARATOR)
    if len(parts) == 3:
        return parts[2]
    return "" if len(parts) == 2 else None


def _local(name: str) -> str:
    parts = name.split(_NAME_SEPARATOR)
    return parts[1] if len(parts) > 1 else parts[0]


class _XmlScanner:
    """One pass of expat over a document: the EPCIS list's events, their byte spans and
    the namespace declarations each takes from outside itself."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parser = xml.parsers.expat.ParserCreate(encoding="UTF-8",
                                                     namespace_separator=_NAME_SEPARATOR)
        self.parser.namespace_prefixes = True
        self.parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.bindings: dict[str, tuple[str, int]] = {}  # prefix -> (URI, depth declared)
        self.pending: list[tuple[str, str]] = []
        self.restore: list[list[tuple[str, tuple[str, int] | None]]] = []
        self.names: list[str] = []  # local names of the open elements
        self.list_path: tuple[str, ...] = ()
        self.seen: dict[tuple[str, ...], int] = {}
        self.elements = 0
        self.root: tuple[str, str | None, str | None] | None = None
        self.events: list[_XmlEvent] = []
        self.current: _XmlEvent | None = None
        self.event_depth = 0
        self.self_closing = False

    def refuse(self, what: str) -> None:
        raise BadEvent("document", f"line {self.parser.CurrentLineNumber}: {what} not allowed")

    def where(self) -> str:
        return ".".join(self.list_path[1:])

    def scan(self) -> _XmlScan:
        parser = self.parser
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.StartNamespaceDeclHandler = self.declare
        parser.StartDoctypeDeclHandler = self.doctype
        parser.EntityDeclHandler = lambda *_: self.refuse("an entity declaration")
        parser.ExternalEntityRefHandler = lambda *_: self.refuse(  # type: ignore[assignment]
            "an external entity")
        try:
            parser.Parse(self.data, True)
        except xml.parsers.expat.ExpatError as error:
            raise BadEvent("document", f"not well-formed XML: {error}") from None
        if self.root is None:
            raise InvariantViolation("expat parsed a document without a root element")
        kind, schema_version, creation_date = self.root
        if self.seen.get(self.list_path, 0) != 1:
            raise BadEvent("document", f"expected one <{self.list_path[-1]}> in "
                                       f"<{'/'.join(self.list_path[:-1])}>")
        return _XmlScan(kind, schema_version, creation_date, self.where(), self.events)

    def doctype(self, _name: str, system_id: str | None, public_id: str | None,
                has_internal_subset: int) -> None:
        if system_id or public_id or has_internal_subset:
            self.refuse("a DTD")

    def declare(self, prefix: str | None, uri: str | None) -> None:
        self.pending.append((prefix or "", uri or ""))

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.elements += 1
        if self.elements > epcis_xml.MAX_XML_ELEMENTS:
            raise EpcisTooLarge("document", f"more than {epcis_xml.MAX_XML_ELEMENTS} elements")
        if len(self.names) >= epcis_xml.MAX_XML_DEPTH:
            raise EpcisTooLarge("document", f"nested more than {epcis_xml.MAX_XML_DEPTH} deep")
        depth = len(self.names) + 1
        saved: list[tuple[str, tuple[str, int] | None]] = []
        for prefix, uri in self.pending:
            saved.append((prefix, self.bindings.get(prefix)))
            self.bindings[prefix] = (uri, depth)
        self.pending.clear()
        self.restore.append(saved)
        local = _local(name)
        if not self.names:
            self.start_root(local, attributes)
        self.names.append(local)
        path = tuple(self.names)
        if path == self.list_path[:len(path)]:
            self.seen[path] = self.seen.get(path, 0) + 1
            if self.seen[path] > 1:
                raise BadEvent("document", f"more than one <{local}> in "
                                           f"<{'/'.join(path[:-1])}>")
        if self.current is None and self.is_event(name, depth):
            self.start_event(depth)
        if self.current is not None:
            self.note_names(self.current, [name, *attributes])

    def start_root(self, local: str, attributes: dict[str, str]) -> None:
        if local not in DOCUMENT_KINDS:
            raise BadEvent("document", f"root is <{local}>, not an EPCISDocument or "
                                       "EPCISQueryDocument")
        self.root = (local, attributes.get("schemaVersion"), attributes.get("creationDate"))
        self.list_path = (local, *_XML_LISTS[local])

    def is_event(self, name: str, depth: int) -> bool:
        """A child of the event list (or of a 1.x <extension> in it): an event, or refused."""
        list_depth = len(self.list_path)
        in_list = tuple(self.names[:list_depth]) == self.list_path
        if not in_list or depth == list_depth or depth > list_depth + 2:
            return False
        parent = self.names[-2] if depth == list_depth + 2 else None
        if parent is not None and parent != _XML_WRAPPER:
            return False
        if name in EVENT_TYPES:
            return True
        if name == _XML_WRAPPER and parent is None:
            return False
        raise BadEvent(f"{self.where()}[{len(self.events)}]",
                       f"<{_local(name)}> is not one of {', '.join(sorted(EVENT_TYPES))}")

    def start_event(self, depth: int) -> None:
        if len(self.events) >= MAX_EVENTS_PER_DOCUMENT:
            raise EpcisTooLarge(f"{self.where()}[{len(self.events)}]",
                                f"more than {MAX_EVENTS_PER_DOCUMENT} events in one "
                                "document; split it")
        start = self.parser.CurrentByteIndex
        tag = _START_TAG.match(self.data, start)
        if tag is None:
            raise InvariantViolation(f"no start tag at byte {start}, where expat saw one")
        self.self_closing = self.data[tag.end() - 2:tag.end() - 1] == b"/"
        self.current = _XmlEvent(start, tag.end() if self.self_closing else -1)
        self.event_depth = depth

    def note_names(self, event: _XmlEvent, names: list[str]) -> None:
        """Record the declarations from outside `event` that these names use."""
        for name in names:
            prefix = _prefix(name)
            if prefix is None or prefix == "xml":
                continue
            uri, declared_at = self.bindings.get(prefix, ("", 0))
            if declared_at < self.event_depth and uri:
                event.namespaces[prefix] = uri

    def end(self, _name: str) -> None:
        depth = len(self.names)
        if self.current is not None and depth == self.event_depth:
            if not self.self_closing:
                index = self.parser.CurrentByteIndex
                invariant(self.data.startswith(b"</", index), "an end tag starts with </")
                self.current.end = self.data.index(b">", index) + 1
            self.events.append(self.current)
            self.current = None
        self.names.pop()
        for prefix, previous in reversed(self.restore.pop()):
            if previous is None:
                del self.bindings[prefix]
            else:
                self.bindings[prefix] = previous


def _check_xml_encoding(data: bytes) -> None:
    _text(data, "document", utf8_bom=True)
    declaration = _XML_DECLARATION.match(data.removeprefix(_UTF8_BOM))
    if declaration is not None and declaration.group(1).lower() not in (b"utf-8", b"utf8"):
        raise BadEvent("document", f"declares the encoding {declaration.group(1).decode()}; "
                                   "send UTF-8")


def _scan_xml(data: bytes) -> _XmlScan:
    _check_xml_encoding(data)
    return _XmlScanner(data).scan()


def _escape_attribute(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
            .replace("\r", "&#13;"))


def xml_context(namespaces: Mapping[str, str]) -> bytes:
    """The canonical byte form of namespace declarations (prefix "" is the default
    namespace): XML attributes one space apart, `xmlns="…"` first and then
    `xmlns:prefix="…"` in the order of the prefixes, values escaped (`& < > "` and tab,
    newline and carriage return as references). b"" when there are none."""
    return " ".join(
        (f'xmlns:{prefix}="' if prefix else 'xmlns="') + _escape_attribute(uri) + '"'
        for prefix, uri in sorted(namespaces.items())).encode("utf-8")


_DECLARATION = re.compile(r'xmlns(?::([^\s="\'<>&]+))?="([^"<]*)"')
_REFERENCES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#9;": "\t",
               "&#10;": "\n", "&#13;": "\r"}
_REFERENCE = re.compile("|".join(re.escape(reference) for reference in _REFERENCES))


def xml_namespaces(context: bytes) -> dict[str, str]:
    """The declarations `xml_context` wrote, read back; refuses anything else (the bytes
    come from a transaction, and are pasted into a start tag)."""
    text = _text(context, "context")
    namespaces: dict[str, str] = {}
    for part in text.split(" ") if text else []:
        match = _DECLARATION.fullmatch(part)
        prefix = (match.group(1) or "") if match else ""
        if match is None or prefix in namespaces:
            raise BadEvent("context", f"not canonical namespace declarations: {part[:80]!r}")
        namespaces[prefix] = _REFERENCE.sub(lambda m: _REFERENCES[m.group(0)], match.group(2))
    if xml_context(namespaces) != context:
        raise BadEvent("context", "namespace declarations not in their canonical form "
                                  "(sorted, one space apart, minimal escaping)")
    return namespaces


_WRAPPER_HEAD: Final = (b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" '
                        b'schemaVersion="2.0" creationDate="1970-01-01T00:00:00Z">'
                        b"<EPCISBody><EventList")
_WRAPPER_TAIL: Final = b"</EventList></EPCISBody></epcis:EPCISDocument>"


def wrap_xml_event(source: bytes, context: bytes) -> bytes:
    """A minimal EPCISDocument holding one XML event, its `context` declarations on the
    EventList (so that they cannot clash with the wrapper's own `epcis` prefix)."""
    return _WRAPPER_HEAD + (b" " + context if context else b"") + b">" + source + _WRAPPER_TAIL


def _read_xml_event(source: bytes, context: bytes) -> dict[str, Any]:
    xml_namespaces(context)
    if not source.startswith(b"<") or source.startswith((b"<?", b"<!")):
        raise BadEvent("source", "an XML event starts with its element's <")
    document = wrap_xml_event(source, context)
    head = len(document) - len(source) - len(_WRAPPER_TAIL)
    try:
        scan = _scan_xml(document)
    except BadEvent as error:  # the wrapper is well-formed: the source is not
        raise _moved(error, "source") from None
    spans = [(event.start, event.end) for event in scan.events]
    if spans != [(head, head + len(source))]:
        raise BadEvent("source", "is not exactly one EPCIS event element")
    try:
        [event] = epcis_xml.read_events(document)
    except EventTooLarge as error:
        raise _moved(error, "source") from None
    return event


def _split_xml(data: bytes) -> CapturedDocument:
    scan = _scan_xml(data)
    out = []
    for index, found in enumerate(scan.events):
        place = f"{scan.where}[{index}]"
        source = data[found.start:found.end]
        if len(source) > MAX_EVENT_SOURCE_BYTES:
            raise EpcisTooLarge(place, f"{len(source)} bytes, more than the "
                                       f"{MAX_EVENT_SOURCE_BYTES} one event may have")
        context = xml_context(found.namespaces)
        if len(context) > MAX_CONTEXT_BYTES:
            raise EpcisTooLarge(place, f"its namespace declarations take more than "
                                       f"{MAX_CONTEXT_BYTES} bytes")
        try:
            event = _read_xml_event(source, context)
            digest = _hash(event, None)
        except BadEvent as error:
            raise _moved(error, place) from None
        out.append(SourceEvent("xml", source, context, event, digest))
    return CapturedDocument(scan.kind, scan.schema_version, scan.creation_date, tuple(out))


# --- the interface ---------------------------------------------------------------------------
def split_document(data: bytes, media: str) -> CapturedDocument:
    """The events of an EPCIS document, each with its exact source bytes, its context,
    its JSON-LD-shaped dict and its CBV 2.0 hash. `media` is "json" (JSON or JSON-LD) or
    "xml"; either must be UTF-8.

    Raises BadEvent naming the field (`epcisBody.eventList[3].eventTime`) for a document
    that is not EPCIS or holds an event that cannot be hashed, and EpcisTooLarge (a
    BadEvent) past the bounds of this module."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise EpcisTooLarge("document", f"larger than {MAX_DOCUMENT_BYTES} bytes; split it")
    if media == "json":
        return _split_json(data)
    if media == "xml":
        return _split_xml(data)
    raise BadEvent("media", f"must be json or xml, not {media!r}")


def _checked_sizes(source: bytes, context: bytes) -> None:
    if len(source) > MAX_EVENT_SOURCE_BYTES:
        raise EpcisTooLarge("source", f"larger than {MAX_EVENT_SOURCE_BYTES} bytes")
    if len(context) > MAX_CONTEXT_BYTES:
        raise EpcisTooLarge("context", f"larger than {MAX_CONTEXT_BYTES} bytes")


def read_source_event(format: str, source: bytes, context: bytes) -> dict[str, Any]:
    """One event re-read from what its `SourceEvent` carries: the same dict the whole
    document gave. Raises BadEvent (`field` "source" or "context", or the event's field)."""
    _checked_sizes(source, context)
    if format == "json":
        return _read_json_event(source, context)[0]
    if format == "xml":
        return _read_xml_event(source, context)
    raise BadEvent("format", f"must be json or xml, not {format!r}")


def source_event_hash(format: str, source: bytes, context: bytes) -> str:
    """The CBV 2.0 event hash of the event `source` and `context` carry."""
    _checked_sizes(source, context)
    if format == "json":
        event, document_context = _read_json_event(source, context)
        return _hash(event, document_context)
    if format == "xml":
        return _hash(_read_xml_event(source, context), None)
    raise BadEvent("format", f"must be json or xml, not {format!r}")
