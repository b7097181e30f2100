"""EPCIS XML documents read into the JSON-LD-shaped events `event_hash` takes.

An EPCISDocument or EPCISQueryDocument (EPCIS 2.0, or 1.x with its `extension`
wrappers) becomes one dict per event, shaped like the event in EPCIS 2.0 JSON-LD:
`type`, `epcList` as a list of strings, `readPoint` as `{"id": ...}`,
`bizTransactionList` as `[{"type": ..., "bizTransaction": ...}]`, sensor metadata and
reports as objects of their attributes, and so on. User extensions keep their XML
names in Clark notation (`{namespace}localName`), which `event_hash` takes as
expanded keys; a repeated element becomes a list; an element with attributes or
children becomes an object (its own text, if any, under `@value`). Values stay
strings: the hash normalises them.

Parsed with the standard library's expat, hardened: no entity declarations, no
external entities or DTDs (a bare `<!DOCTYPE name>`, which GS1's own examples carry,
is allowed), and bounds on size, depth and element count. `xsi:` attributes (schema
typing) are not data and are dropped.
"""

from __future__ import annotations

import xml.parsers.expat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .event_hash import EVENT_TYPES, BadEvent, EventTooLarge

__all__ = ["MAX_XML_BYTES", "MAX_XML_DEPTH", "MAX_XML_ELEMENTS", "read_events"]

MAX_XML_BYTES: Final = 16 * 1024 * 1024
"""One capture document. EPCIS puts no bound; a day's events of a busy site in one
document fit, a document larger than this should be split by its sender."""

MAX_XML_DEPTH: Final = 64
"""Element nesting: an event sits 4 deep and its standard fields 3 more; the rest is
room for user extensions."""

MAX_XML_ELEMENTS: Final = 1_000_000
"""Elements in one document: bounds the tree held in memory (about 16 bytes of input
per element at the size bound)."""

XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"

_TEXT_FIELDS = frozenset({"eventTime", "recordTime", "eventTimeZoneOffset", "eventID",
                          "action", "bizStep", "disposition", "parentID", "transformationID"})
_EPC_LISTS = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS = frozenset({"quantityList", "childQuantityList", "inputQuantityList",
                             "outputQuantityList"})
_TYPED_LISTS = {"bizTransactionList": "bizTransaction", "sourceList": "source",
                "destinationList": "destination"}
_WRAPPERS = frozenset({"extension", "baseExtension"})
"""EPCIS 1.x wrappers around the fields added after 1.0: not data, their content is."""


@dataclass
class _Element:
    tag: str  # "{namespace}local", or "local" when unqualified
    attributes: dict[str, str]
    line: int
    children: list[_Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    tail_text: bool = False  # non-blank text after a child element

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def where(self) -> str:
        return f"line {self.line} <{self.tag}>"


def _clark(name: str) -> str:
    namespace, separator, local = name.rpartition("\x1f")
    return "{" + namespace + "}" + local if separator else name


def _parse(data: bytes) -> _Element:
    if len(data) > MAX_XML_BYTES:
        raise EventTooLarge("document", f"larger than {MAX_XML_BYTES} bytes")
    parser = xml.parsers.expat.ParserCreate(namespace_separator="\x1f")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[_Element] = []
    roots: list[_Element] = []
    count = 0

    def refuse(what: str) -> None:
        raise BadEvent("document", f"line {parser.CurrentLineNumber}: {what} not allowed")

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > MAX_XML_ELEMENTS:
            raise EventTooLarge("document", f"more than {MAX_XML_ELEMENTS} elements")
        if len(stack) >= MAX_XML_DEPTH:
            raise EventTooLarge("document", f"nested more than {MAX_XML_DEPTH} deep")
        element = _Element(_clark(name), {_clark(k): v for k, v in attributes.items()},
                           parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(element)
        else:
            roots.append(element)
        stack.append(element)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if not stack:
            return
        element = stack[-1]
        if element.children:
            element.tail_text = element.tail_text or bool(data.strip())
        else:
            element.text_parts.append(data)

    def doctype(_name: str, system_id: str | None, public_id: str | None,
                has_internal_subset: int) -> None:
        if system_id or public_id or has_internal_subset:
            refuse("a DTD")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = lambda *_: refuse("an entity declaration")
    parser.ExternalEntityRefHandler = lambda *_: refuse("an external entity")  # type: ignore[assignment]
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as error:
        raise BadEvent("document", f"not well-formed XML: {error}") from None
    if len(roots) != 1:
        raise BadEvent("document", "no root element")
    return roots[0]


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _add(target: dict[str, Any], key: str, value: Any) -> None:
    """Set `key`, turning a repeated key into a list (XML repeats, JSON lists)."""
    if key not in target:
        target[key] = value
    elif isinstance(target[key], list):
        target[key].append(value)
    else:
        target[key] = [target[key], value]


def _no_tail(element: _Element) -> None:
    if element.tail_text:
        raise BadEvent(element.where, "text between child elements (mixed content) is not "
                                      "supported")


def _attributes(element: _Element) -> dict[str, Any]:
    return {key: value for key, value in element.attributes.items()
            if not key.startswith("{" + XSI + "}")}


def _generic(element: _Element) -> Any:
    """An extension element: its text, or an object of its attributes and children."""
    _no_tail(element)
    members: dict[str, Any] = _attributes(element)
    for child in element.children:
        if child.tag in _WRAPPERS:
            for grandchild in child.children:
                _add(members, grandchild.tag, _generic(grandchild))
        else:
            _add(members, child.tag, _generic(child))
    text = element.text.strip()
    if not members:
        return text
    if text:
        members["@value"] = text
    return members


def _only_text(element: _Element) -> str:
    _no_tail(element)
    if element.children or _attributes(element):
        raise BadEvent(element.where, "must hold text only")
    return element.text


def _children(element: _Element, name: str) -> list[_Element]:
    _no_tail(element)
    if _attributes(element):
        raise BadEvent(element.where, "takes no attributes")
    out = []
    for child in element.children:
        if child.tag != name:
            raise BadEvent(child.where, f"expected <{name}> in <{element.tag}>")
        out.append(child)
    return out


def _object_of(element: _Element, standard: dict[str, Any]) -> dict[str, Any]:
    """A standard element's extension members (children, attributes), after `standard`."""
    out = dict(standard)
    for key, value in _attributes(element).items():
        _add(out, key, value)
    for child in element.children:
        if child.tag in standard:
            continue
        if child.tag in _WRAPPERS:
            for grandchild in child.children:
                _add(out, grandchild.tag, _generic(grandchild))
        else:
            _add(out, child.tag, _generic(child))
    return out


def _location(element: _Element) -> dict[str, Any]:
    _no_tail(element)
    ids = [child for child in element.children if child.tag == "id"]
    if len(ids) > 1:
        raise BadEvent(element.where, "more than one <id>")
    return _object_of(element, {"id": _only_text(ids[0])} if ids else {})


def _quantity_element(element: _Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in _children_any(element):
        if child.tag not in ("epcClass", "quantity", "uom") or child.tag in out:
            raise BadEvent(child.where, "not a quantity element field, or repeated")
        out[child.tag] = _only_text(child)
    return out


def _children_any(element: _Element) -> list[_Element]:
    _no_tail(element)
    if _attributes(element):
        raise BadEvent(element.where, "takes no attributes")
    return element.children


def _sensor_element(element: _Element) -> dict[str, Any]:
    _no_tail(element)
    out: dict[str, Any] = {}
    reports: list[Any] = []
    for child in element.children:
        if child.tag == "sensorMetadata":
            if "sensorMetadata" in out:
                raise BadEvent(child.where, "more than one sensorMetadata")
            out["sensorMetadata"] = _object_of(child, {})
        elif child.tag == "sensorReport":
            reports.append(_object_of(child, {}))
        elif child.tag in _WRAPPERS:
            for grandchild in child.children:
                _add(out, grandchild.tag, _generic(grandchild))
        else:
            _add(out, child.tag, _generic(child))
    out["sensorReport"] = reports
    return out


def _field(event: dict[str, Any], child: _Element) -> None:
    name = child.tag
    if name in _WRAPPERS:
        _no_tail(child)
        for grandchild in child.children:
            _field(event, grandchild)
        return
    if name in event and not name.startswith("{") and name != "certificationInfo":
        raise BadEvent(child.where, "repeated")
    if name in _TEXT_FIELDS:
        event[name] = _only_text(child)
    elif name == "certificationInfo":
        event.setdefault(name, []).append(_only_text(child))
    elif name in _EPC_LISTS:
        event[name] = [_only_text(epc) for epc in _children(child, "epc")]
    elif name in _QUANTITY_LISTS:
        event[name] = [_quantity_element(q) for q in _children(child, "quantityElement")]
    elif name in ("readPoint", "bizLocation"):
        event[name] = _location(child)
    elif name in _TYPED_LISTS:
        item = _TYPED_LISTS[name]
        entries = []
        for entry in _children(child, item):
            value: dict[str, Any] = {item: _only_text_with(entry, {"type"})}
            if "type" in entry.attributes:
                value = {"type": entry.attributes["type"], **value}
            entries.append(value)
        event[name] = entries
    elif name == "persistentDisposition":
        disposition: dict[str, list[str]] = {}
        for part in _children_any(child):
            if part.tag not in ("set", "unset"):
                raise BadEvent(part.where, "expected <set> or <unset>")
            disposition.setdefault(part.tag, []).append(_only_text(part))
        event[name] = disposition
    elif name == "sensorElementList":
        event[name] = [_sensor_element(e) for e in _children(child, "sensorElement")]
    elif name == "ilmd":
        event[name] = _object_of(child, {})
    else:  # errorDeclaration (not hashed), user extensions, unknown names (refused later)
        _add(event, name, _generic(child))


def _only_text_with(element: _Element, attributes: set[str]) -> str:
    _no_tail(element)
    extra = set(_attributes(element)) - attributes
    if element.children or extra:
        raise BadEvent(element.where, "must hold text only" + (
            f" (unexpected attribute {sorted(extra)[0]})" if extra else ""))
    return element.text


def _event(element: _Element) -> dict[str, Any]:
    event: dict[str, Any] = {"type": element.tag}
    _no_tail(element)
    for child in element.children:
        _field(event, child)
    return event


def _event_list(root: _Element) -> _Element:
    if _local(root.tag) not in ("EPCISDocument", "EPCISQueryDocument"):
        raise BadEvent("document", f"root is <{root.tag}>, not an EPCISDocument or "
                                   "EPCISQueryDocument")
    path: Sequence[str] = ("EPCISBody", "EventList")
    if _local(root.tag) == "EPCISQueryDocument":
        path = ("EPCISBody", "QueryResults", "resultsBody", "EventList")
    element = root
    for name in path:
        found = [child for child in element.children if _local(child.tag) == name]
        if len(found) != 1:
            raise BadEvent("document", f"expected one <{name}> in <{element.tag}>")
        element = found[0]
    return element


def read_events(data: bytes) -> list[dict[str, Any]]:
    """The events of an EPCIS XML document, in document order, each shaped as its
    EPCIS 2.0 JSON-LD form (pass each to `event_hash` without a context).

    Raises BadEvent naming the element for documents that are not well-formed or not
    EPCIS, and EventTooLarge past the bounds of this module."""
    events: list[dict[str, Any]] = []
    for element in _event_list(_parse(data)).children:
        if element.tag in _WRAPPERS:  # EPCIS 1.x wraps its later event types
            inner = [child for child in element.children if child.tag in EVENT_TYPES]
            if len(inner) != len(element.children) or not inner:
                raise BadEvent(element.where, "expected events in the extension")
            events.extend(_event(child) for child in inner)
        elif element.tag in EVENT_TYPES:
            events.append(_event(element))
        else:
            raise BadEvent(element.where, f"not one of {', '.join(sorted(EVENT_TYPES))}")
    return events
