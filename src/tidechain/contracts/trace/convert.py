"""EPCIS 2.0 events written back as JSON-LD or XML, and query documents around them.

Events are stored as they were captured, in JSON-LD or in XML; a query answers in the
syntax the client asks for. Both writers keep the CBV 2.0 event hash: an event written
here and read back (`json.loads` + `event_hash` with the returned context, or
`epcis_xml.read_events` + `event_hash`) hashes as the event it was written from.

* `event_to_json`: an event read from XML has extension keys in Clark notation
  (`{https://ns.example.com/epcis/}myField`), CBV URNs where JSON-LD has bare words
  (`urn:epcglobal:cbv:bizstep:shipping` -> `shipping`), and numbers and booleans as
  text. They are rewritten in EPCIS 2.0 JSON-LD form, the extension keys as compact
  `prefix:local` with the term definitions they need returned alongside. On an event
  already in JSON-LD form every rewrite is the identity.
* `event_to_xml`: the EPCIS 2.0 XML form (EPCglobal-epcis-2_0.xsd) of an event: the
  fields in the order the XSD requires, bare CBV words as their URNs (and measurement
  types, alert types and components as `gs1:` / `cbv:` compact URIs, as GS1's XML
  examples write them), user extensions as namespaced elements (attributes in sensor
  metadata and reports), declared on the event element itself. EPCIS 2.0 moved every
  standard field to the event's root, so no `extension` wrapper is written. A standard
  field the XSD does not have for the event's type (an `ilmd` on an AggregationEvent)
  is still written, after the others, so that the event keeps its hash.
* `query_document_json` / `query_document_xml`: an EPCISQueryDocument of such events.

Values keep their meaning across syntaxes: a JSON-LD value written with a prefix of the
document's @context (`"example:x"`) is written to XML as its full IRI, since XML gives
prefixes in values no meaning; and a prefix declared for JSON-LD never captures a value
that the XML event wrote with that prefix undeclared.

Pure: builds strings with the standard library only (no lxml: contracts stay pure).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from .event_hash import (
    BIZ_STEPS,
    BIZ_TRANSACTION_TYPES,
    CBV,
    CBV_URN_TYPES,
    COMPONENTS,
    DISPOSITIONS,
    EVENT_TYPES,
    GS1_VOC,
    MEASUREMENT_TYPES,
    SENSOR_ALERT_TYPES,
    SOURCE_DESTINATION_TYPES,
    STANDARD_PREFIXES,
    BadEvent,
    Context,
    _context_prefixes,  # the hash's own reading of @context: one rule, not a copy
    canonical_number,
)

__all__ = [
    "EPCIS_CONTEXT",
    "EventContext",
    "XmlNamespaces",
    "event_to_json",
    "event_to_xml",
    "query_document_json",
    "query_document_xml",
]

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EPCIS_CONTEXTS: Final = frozenset({EPCIS_CONTEXT, "https://gs1.github.io/EPCIS/epcis-context.jsonld"})
"""The EPCIS 2.0 context and the development repository's one (which differs only in
the type of `quantity`): a query document names the first only, as two protected
EPCIS contexts in one @context would clash in a JSON-LD processor."""

EPCIS_XML_NAMESPACE: Final = "urn:epcglobal:epcis:xsd:2"
EPCIS_QUERY_XML_NAMESPACE: Final = "urn:epcglobal:epcis-query:xsd:2"
XML_NAMESPACE: Final = "http://www.w3.org/XML/1998/namespace"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
ERROR_REASONS: Final = frozenset({"did_not_occur", "incorrect_data"})


@dataclass(frozen=True)
class XmlNamespaces:
    """How an XML event's document named its namespaces (prefix -> URI, as
    `document.xml_namespaces` reads a SourceEvent's context). Unlike a JSON-LD @context
    it gives the event's values no meaning: it only suggests prefix names."""

    prefixes: Mapping[str, str]


EventContext = Context | XmlNamespaces
"""What an event was read with: the JSON-LD @context of its document (None if none), or
the namespace declarations of its XML document."""

# --- vocabularies ------------------------------------------------------------------------
_URN_KINDS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "bizStep": ("bizstep", frozenset(BIZ_STEPS)),
    "disposition": ("disp", frozenset(DISPOSITIONS)),
    "bizTransaction": ("btt", frozenset(BIZ_TRANSACTION_TYPES)),
    "sourceDestination": ("sdt", frozenset(SOURCE_DESTINATION_TYPES)),
    "errorReason": ("er", ERROR_REASONS),
}
"""The bare-word vocabularies XML writes as `urn:epcglobal:cbv:<kind>:<word>`."""


def _urn_of(word: Any, vocabulary: str) -> Any:
    """A bare CBV word as the URN the XSD's anyURI needs; anything else as it is."""
    kind, words = _URN_KINDS[vocabulary]
    if isinstance(word, str) and word.strip() in words:
        return f"urn:epcglobal:cbv:{kind}:{word.strip()}"
    return word


def _word_of(value: Any, vocabulary: str) -> Any:
    """A CBV URN as JSON-LD's bare word, or as its `https://ref.gs1.org/cbv/` URI when
    the word is not one JSON-LD has (the JSON schema refuses `urn:epcglobal:cbv:` here)."""
    kind, words = _URN_KINDS[vocabulary]
    head = f"urn:epcglobal:cbv:{kind}:"
    if not isinstance(value, str) or not value.strip().startswith(head):
        return value
    word = value.strip()[len(head):]
    return word if word in words else CBV + CBV_URN_TYPES[kind] + word


_GS1_TERMS: Final = {"type": frozenset(MEASUREMENT_TYPES),
                     "exception": frozenset(SENSOR_ALERT_TYPES)}


def _sensor_term_out(name: str, value: Any) -> Any:
    """Sensor report `type`, `exception`, `component`: bare words as GS1's XML writes them."""
    if not isinstance(value, str):
        return value
    if name in _GS1_TERMS and value.strip() in _GS1_TERMS[name]:
        return "gs1:" + value.strip()
    if name == "component" and value.strip() in COMPONENTS:
        return "cbv:Comp-" + value.strip()
    return value


def _sensor_term_in(name: str, value: Any) -> Any:
    """The JSON schema refuses `https://gs1.org/voc/` URIs where it has bare words."""
    if name in _GS1_TERMS and isinstance(value, str) and value.strip().startswith(GS1_VOC):
        word = value.strip()[len(GS1_VOC):]
        return word if word in _GS1_TERMS[name] else value
    return value


# --- the fields of each event type, in XSD order ------------------------------------------
_HEAD: Final = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "errorDeclaration",
                "certificationInfo")
_BODY: Final[Mapping[str, tuple[str, ...]]] = {
    "ObjectEvent": ("epcList", "action", "bizStep", "disposition", "readPoint", "bizLocation",
                    "bizTransactionList", "quantityList", "sourceList", "destinationList",
                    "sensorElementList", "persistentDisposition", "ilmd"),
    "AggregationEvent": ("parentID", "childEPCs", "action", "bizStep", "disposition",
                         "readPoint", "bizLocation", "bizTransactionList", "childQuantityList",
                         "sourceList", "destinationList", "sensorElementList",
                         "persistentDisposition"),
    "TransactionEvent": ("bizTransactionList", "parentID", "epcList", "action", "bizStep",
                         "disposition", "readPoint", "bizLocation", "quantityList",
                         "sourceList", "destinationList", "sensorElementList",
                         "persistentDisposition"),
    "TransformationEvent": ("inputEPCList", "inputQuantityList", "outputEPCList",
                            "outputQuantityList", "transformationID", "bizStep", "disposition",
                            "readPoint", "bizLocation", "bizTransactionList", "sourceList",
                            "destinationList", "sensorElementList", "persistentDisposition",
                            "ilmd"),
    "AssociationEvent": ("parentID", "childEPCs", "childQuantityList", "action", "bizStep",
                         "disposition", "readPoint", "bizLocation", "bizTransactionList",
                         "sourceList", "destinationList", "sensorElementList",
                         "persistentDisposition"),
}
"""EPCglobal-epcis-2_0.xsd: EPCISEventType's fields, then each type's own."""
_ALL_FIELDS: Final = tuple(dict.fromkeys(
    name for names in (_HEAD, *_BODY.values()) for name in names))
_STANDARD: Final = frozenset({*_ALL_FIELDS, "type", "@context"})

_TEXT_FIELDS: Final = frozenset({"eventTime", "recordTime", "eventTimeZoneOffset", "eventID",
                                 "parentID", "transformationID", "action"})
_EPC_LISTS: Final = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS: Final = frozenset({"quantityList", "childQuantityList", "inputQuantityList",
                                    "outputQuantityList"})
_TYPED_LISTS: Final[Mapping[str, tuple[str, str]]] = {
    "bizTransactionList": ("bizTransaction", "bizTransaction"),
    "sourceList": ("source", "sourceDestination"),
    "destinationList": ("destination", "sourceDestination")}
_SENSOR_METADATA: Final = ("time", "startTime", "endTime", "deviceID", "deviceMetadata",
                           "rawData", "dataProcessingMethod", "bizRules")
_SENSOR_REPORT: Final = ("type", "exception", "deviceID", "deviceMetadata", "rawData",
                         "dataProcessingMethod", "bizRules", "time", "microorganism",
                         "chemicalSubstance", "value", "component", "stringValue",
                         "booleanValue", "hexBinaryValue", "uriValue", "minValue", "maxValue",
                         "meanValue", "sDev", "percRank", "percValue", "uom",
                         "coordinateReferenceSystem")
_SENSOR_NUMBERS: Final = frozenset({"value", "minValue", "maxValue", "meanValue", "sDev",
                                    "percRank", "percValue"})


# --- prefixes: how the hash reads keys and values -------------------------------------------
def _key_prefix(key: str) -> str | None:
    """The prefix of a compact key (`ex:f`), as event_hash reads keys; None for Clark
    keys, absolute IRIs and plain names."""
    if key.startswith("{"):
        return None
    prefix, colon, local = key.partition(":")
    return prefix if colon and not local.startswith("//") else None


def _value_prefix(value: Any) -> str | None:
    """The prefix event_hash would expand in a value (`example:x`), if it were declared."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if (text.startswith(("urn:epcglobal:cbv:", "urn:epc:"))
            or text[:8].lower().startswith(("http://", "https://"))
            or canonical_number(text) is not None):
        return None
    prefix, colon, rest = text.partition(":")
    return prefix if colon and not rest.startswith("//") else None


def _walk_strings(value: Any) -> Iterable[tuple[str, bool]]:
    """Every string of a JSON value: (text, is it a key)."""
    if isinstance(value, str):
        yield value, False
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield key, True
            yield from _walk_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_strings(item)


def _used_prefixes(event: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(prefixes of compact keys, prefixes written at the start of values)."""
    keys: set[str] = set()
    values: set[str] = set()
    for text, is_key in _walk_strings(event):
        if is_key:
            if (prefix := _key_prefix(text)) is not None:
                keys.add(prefix)
        elif (prefix := _value_prefix(text)) is not None:
            values.add(prefix)
    return keys, values


def _definitions(context: Context) -> dict[str, Any]:
    """The term definitions of a JSON-LD @context's objects, later ones winning (remote
    contexts are IRIs: event_hash cannot read them either)."""
    out: dict[str, Any] = {}
    for item in context if isinstance(context, list) else [context]:
        if isinstance(item, Mapping):
            out.update({term: value for term, value in item.items()
                        if isinstance(term, str) and not term.startswith("@")})
    return out


def _iri_of(definition: Any) -> str | None:
    iri = definition.get("@id") if isinstance(definition, Mapping) else definition
    return iri if isinstance(iri, str) else None


_NCNAME = re.compile(r"[^\W\d][\w.\-]*")
_XML_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _usable_prefix(name: str) -> bool:
    return (bool(_NCNAME.fullmatch(name)) and not name.lower().startswith("xml")
            and name.lower() not in ("http", "https", "urn"))


def _fresh(taken: set[str], stem: str = "ext") -> str:
    number = 1
    while f"{stem}{number}" in taken:
        number += 1
    return f"{stem}{number}"


# --- XML -> JSON-LD ------------------------------------------------------------------------
def _number_in(value: Any) -> Any:
    """A number written as text (as XML has it) as a JSON number of the same double."""
    if not isinstance(value, str) or canonical_number(value.strip()) is None:
        return value
    text = value.strip()
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else float(text)


def _boolean_in(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in ("true", "1", "false", "0"):
        return value.strip() in ("true", "1")
    return value


class _Compactor:
    """Clark keys -> `prefix:local`, choosing prefixes that change no value's meaning."""

    def __init__(self, preferred: Mapping[str, str], avoid: set[str]) -> None:
        self.by_namespace: dict[str, str] = {}
        self.definitions: dict[str, str] = {}
        self.taken = set(STANDARD_PREFIXES) | avoid
        for prefix, namespace in STANDARD_PREFIXES.items():
            self.by_namespace.setdefault(namespace, prefix)
        self.preferred = {namespace: prefix for prefix, namespace in sorted(preferred.items())
                          if _usable_prefix(prefix) and prefix not in self.taken}

    def key(self, key: str) -> str:
        if not key.startswith("{") or "}" not in key:
            return key
        namespace, _, local = key[1:].partition("}")
        prefix = self.by_namespace.get(namespace)
        if prefix is None:
            prefix = self.preferred.get(namespace)
            if prefix is None or prefix in self.taken:
                prefix = _fresh(self.taken)
            self.taken.add(prefix)
            self.by_namespace[namespace] = prefix
            self.definitions[prefix] = namespace
        return f"{prefix}:{local}"

    def value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {self.key(key): self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


def _json_sensor_element(element: Any) -> Any:
    if not isinstance(element, Mapping):
        return element
    out = dict(element)
    reports = out.get("sensorReport")
    if isinstance(reports, list):
        out["sensorReport"] = [
            {name: (_number_in(value) if name in _SENSOR_NUMBERS else
                    _boolean_in(value) if name == "booleanValue" else
                    _sensor_term_in(name, value))
             for name, value in report.items()} if isinstance(report, Mapping) else report
            for report in reports]
    return out


def _json_error_declaration(declaration: Any) -> Any:
    if not isinstance(declaration, Mapping):
        return declaration
    out = dict(declaration)
    if "reason" in out:
        out["reason"] = _word_of(out["reason"], "errorReason")
    ids = out.get("correctiveEventIDs")
    if isinstance(ids, Mapping) and set(ids) <= {"correctiveEventID"}:  # as XML nests them
        inner = ids.get("correctiveEventID", [])
        out["correctiveEventIDs"] = inner if isinstance(inner, list) else [inner]
    return out


def _trimmed(value: Any) -> Any:
    """Standard values without the white space XML keeps around them (their XSD types,
    anyURI and the like, collapse it; the hash trims it); extensions as they are."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_trimmed(item) for item in value]
    if isinstance(value, Mapping):
        return {key: item if key.startswith("{") or ":" in key else _trimmed(item)
                for key, item in value.items()}
    return value


def _quantity_in(element: Any) -> Any:
    """A quantity written as text becomes a number; an empty one (XML's xsi:nil) is
    absent, as the hash takes it."""
    if not isinstance(element, Mapping) or "quantity" not in element:
        return element
    if element["quantity"] == "":
        return {key: value for key, value in element.items() if key != "quantity"}
    return {**element, "quantity": _number_in(element["quantity"])}


def _json_field(name: str, value: Any) -> Any:
    """A standard field in its JSON-LD form (the identity on one already in it)."""
    value = _trimmed(value)
    if name in ("bizStep", "disposition"):
        return _word_of(value, name)
    if name == "persistentDisposition" and isinstance(value, Mapping):
        return {key: [_word_of(item, "disposition") for item in items]
                if isinstance(items, list) else items for key, items in value.items()}
    if name in _TYPED_LISTS and isinstance(value, list):
        vocabulary = _TYPED_LISTS[name][1]
        return [{**entry, "type": _word_of(entry["type"], vocabulary)}
                if isinstance(entry, Mapping) and "type" in entry else entry for entry in value]
    if name in _QUANTITY_LISTS and isinstance(value, list):
        return [_quantity_in(element) for element in value]
    if name == "sensorElementList" and isinstance(value, list):
        return [_json_sensor_element(element) for element in value]
    if name == "errorDeclaration":
        return _json_error_declaration(value)
    return value


def event_to_json(event: Mapping[str, Any], context: EventContext = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`event` in EPCIS 2.0 JSON-LD form, and the term definitions (prefix -> namespace,
    or a definition object) it needs on top of the EPCIS 2.0 context.

    `context` is what the event was read with: its JSON-LD document's @context (whose
    definitions the event's keys and values use are returned), or `XmlNamespaces`
    (whose prefixes name the namespaces of Clark keys where they can; `ext1`, `ext2`...
    otherwise). A JSON-LD event comes back unchanged."""
    if not isinstance(event, Mapping):
        raise BadEvent("", "an event is an object")
    keys, values = _used_prefixes(event)
    needed: dict[str, Any] = {}
    preferred: Mapping[str, str] = {}
    if isinstance(context, XmlNamespaces):
        preferred = context.prefixes
    else:
        defined = _definitions(context)
        needed = {term: definition for term, definition in defined.items()
                  if term in keys or term in values
                  or _key_prefix(term) in keys}  # a type given to an extension key
    converted = {name: _json_field(name, value) if name in _STANDARD else value
                 for name, value in event.items()}
    compactor = _Compactor(preferred, avoid=keys | values | set(needed))
    for prefix in needed:  # a prefix the document redefines no longer names its namespace
        compactor.by_namespace = {namespace: name for namespace, name
                                  in compactor.by_namespace.items() if name != prefix}
    result = compactor.value(converted)
    needed.update({prefix: namespace if namespace.endswith(("/", "#", ":"))
                   else {"@id": namespace, "@prefix": True}
                   for prefix, namespace in compactor.definitions.items()})
    return result, needed


# --- JSON-LD -> XML ------------------------------------------------------------------------
def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", "&#13;")


def _escape_attribute(text: str) -> str:
    return (_escape_text(text).replace('"', "&quot;").replace("\t", "&#9;")
            .replace("\n", "&#10;"))


def _decimal_text(value: int | float) -> str:
    """xsd:decimal has no exponent: 1e-05 is written 0.00001 (the same double)."""
    return str(value) if isinstance(value, int) else format(Decimal(repr(value)), "f")


class _XmlWriter:
    """Writes one event element; collects the namespaces its names use."""

    def __init__(self, context: EventContext) -> None:
        if isinstance(context, XmlNamespaces):
            self.prefixes: Mapping[str, str] = dict(STANDARD_PREFIXES)
            preferred: Mapping[str, str] = context.prefixes
        else:
            self.prefixes = _context_prefixes(context)
            preferred = {term: iri for term, definition in _definitions(context).items()
                         if (iri := _iri_of(definition)) is not None}
        self.json_ld = not isinstance(context, XmlNamespaces)
        self.preferred = {XSI: "xsi"} | {
            namespace: prefix for prefix, namespace in sorted(preferred.items())
            if _usable_prefix(prefix)}
        self.declared: dict[str, str] = {}  # namespace -> prefix

    # --- names ---
    def _namespace_prefix(self, namespace: str, field: str) -> str:
        if namespace == XML_NAMESPACE:
            return "xml"
        if not namespace or namespace == "http://www.w3.org/2000/xmlns/":
            raise BadEvent(field, f"namespace {namespace!r} cannot be declared in XML")
        if namespace not in self.declared:
            prefix = self.preferred.get(namespace)
            if prefix is None or prefix in self.declared.values():
                prefix = _fresh(set(self.declared.values()))
            self.declared[namespace] = prefix
        return self.declared[namespace]

    def name(self, key: str, field: str, *, plain: bool) -> str:
        """The XML name of a key: `prefix:local`, or the key itself where `plain` names
        are allowed (inside an extension)."""
        if key.startswith("{"):
            namespace, _, local = key[1:].partition("}")
        elif (prefix := _key_prefix(key)) is not None and prefix in self.prefixes:
            namespace, local = self.prefixes[prefix], key.partition(":")[2]
        elif key[:8].lower().startswith(("http://", "https://")):
            cut = max(key.rfind("/"), key.rfind("#")) + 1
            namespace, local = key[:cut], key[cut:]
        elif ":" not in key and plain:
            namespace, local = "", key
        else:
            raise BadEvent(field, f"key {key!r} is neither an EPCIS field nor an extension "
                                  "with a declared prefix")
        if not _NCNAME.fullmatch(local):
            raise BadEvent(field, f"{local!r} is not an XML name")
        if not namespace:
            return local
        return f"{self._namespace_prefix(namespace, field)}:{local}"

    # --- values ---
    def text(self, value: Any, field: str) -> str:
        """A value as XML text: JSON-LD compact IRIs whose prefix only the document's
        @context declares are expanded (XML gives value prefixes no meaning)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise BadEvent(field, "NaN and infinities are not JSON numbers")
            return repr(value)
        if not isinstance(value, str):
            raise BadEvent(field, "must be a string, number or boolean")
        prefix = _value_prefix(value) if self.json_ld else None
        if prefix is not None and prefix in self.prefixes and (
                STANDARD_PREFIXES.get(prefix) != self.prefixes[prefix]):
            stripped: str = value.strip()
            value = self.prefixes[prefix] + stripped[len(prefix) + 1:]
        text: str = value
        if _XML_TEXT.search(text):
            raise BadEvent(field, "holds a character XML 1.0 cannot carry")
        return text

    def element(self, name: str, text: str) -> str:
        return f"<{name}>{_escape_text(text)}</{name}>"

    # --- extensions ---
    def extension(self, key: str, value: Any, field: str, *, plain: bool = False) -> str:
        """An extension member as element(s): a list repeats it, an object nests."""
        if isinstance(value, list | tuple):
            return "".join(self.extension(key, item, f"{field}[{index}]", plain=plain)
                           for index, item in enumerate(value))
        name = self.name(key, field, plain=plain)
        if not isinstance(value, Mapping):
            return self.element(name, self.text(value, field))
        parts = []
        if "@value" in value:
            parts.append(_escape_text(self.text(value["@value"], f"{field}.@value")))
        for child, item in value.items():
            if child in ("@value", "@type", "@language"):
                continue  # @type and @language type the literal: not data (nor hashed)
            if child.startswith("@"):
                raise BadEvent(f"{field}.{child}", "JSON-LD keywords cannot be written in XML")
            parts.append(self.extension(child, item, f"{field}.{child}", plain=True))
        return f"<{name}>{''.join(parts)}</{name}>"

    def extensions(self, obj: Mapping[str, Any], standard: Iterable[str], field: str) -> str:
        known = frozenset(standard)
        return "".join(self.extension(key, value, f"{field}.{key}" if field else key)
                       for key, value in obj.items() if key not in known)

    def attributes(self, obj: Mapping[str, Any], standard: Sequence[str], field: str,
                   value_of: Callable[[str, Any], Any]) -> str:
        out = []
        for key in standard:
            if key in obj:
                text = self.text(value_of(key, obj[key]), f"{field}.{key}")
                out.append(f' {key}="{_escape_attribute(text)}"')
        for key, value in obj.items():
            if key in standard:
                continue
            if isinstance(value, Mapping | list):
                raise BadEvent(f"{field}.{key}", "XML holds this as an attribute: it must be "
                                                 "a string, number or boolean")
            name = self.name(key, f"{field}.{key}", plain=False)
            out.append(f' {name}="{_escape_attribute(self.text(value, f"{field}.{key}"))}"')
        return "".join(out)

    # --- standard fields ---
    def _object(self, value: Any, field: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise BadEvent(field, "must be an object")
        return value

    def _list(self, value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise BadEvent(field, "must be a list")
        return value

    def _only(self, obj: Mapping[str, Any], names: Iterable[str], field: str) -> None:
        allowed = frozenset(names)
        for key in obj:
            if key not in allowed:
                raise BadEvent(f"{field}.{key}", "not a field here")

    def quantity_element(self, value: Any, field: str) -> str:
        element = self._object(value, field)
        self._only(element, ("epcClass", "quantity", "uom"), field)
        parts = []
        for key in ("epcClass", "quantity", "uom"):
            if key in element:
                item = element[key]
                if key == "quantity" and item == "":  # as the XML reader gives xsi:nil
                    xsi = self._namespace_prefix(XSI, f"{field}.quantity")
                    parts.append(f'<quantity {xsi}:nil="true"/>')
                    continue
                text = (_decimal_text(item) if key == "quantity" and isinstance(item, int | float)
                        and not isinstance(item, bool) else self.text(item, f"{field}.{key}"))
                parts.append(self.element(key, text))
        return f"<quantityElement>{''.join(parts)}</quantityElement>"

    def location(self, name: str, value: Any) -> str:
        obj = self._object(value, name)
        identifier = self.element("id", self.text(obj["id"], f"{name}.id")) if "id" in obj else ""
        return f"<{name}>{identifier}{self.extensions(obj, ('id',), name)}</{name}>"

    def typed_entry(self, name: str, value: Any, field: str) -> str:
        item, vocabulary = _TYPED_LISTS[name]
        entry = self._object(value, field)
        self._only(entry, ("type", item), field)
        if item not in entry:
            raise BadEvent(field, f"needs its {item}")
        kind = ""
        if "type" in entry:
            kind = self.text(_urn_of(entry["type"], vocabulary), f"{field}.type")
            kind = f' type="{_escape_attribute(kind)}"'
        return f"<{item}{kind}>{_escape_text(self.text(entry[item], f'{field}.{item}'))}</{item}>"

    def sensor_element(self, value: Any, field: str) -> str:
        element = self._object(value, field)
        parts = []
        if "sensorMetadata" in element:
            where = f"{field}.sensorMetadata"
            metadata = self._object(element["sensorMetadata"], where)
            parts.append("<sensorMetadata"
                         + self.attributes(metadata, _SENSOR_METADATA, where,
                                           lambda _name, item: item) + "/>")
        reports = self._list(element.get("sensorReport", []), f"{field}.sensorReport")
        for index, report in enumerate(reports):
            where = f"{field}.sensorReport[{index}]"
            parts.append("<sensorReport" + self.attributes(
                self._object(report, where), _SENSOR_REPORT, where, _sensor_term_out) + "/>")
        parts.append(self.extensions(element, ("sensorMetadata", "sensorReport"), field))
        return f"<sensorElement>{''.join(parts)}</sensorElement>"

    def error_declaration(self, value: Any) -> str:
        field = "errorDeclaration"
        declaration = self._object(value, field)
        parts = []
        if "declarationTime" in declaration:
            parts.append(self.element("declarationTime", self.text(
                declaration["declarationTime"], f"{field}.declarationTime")))
        if "reason" in declaration:
            parts.append(self.element("reason", self.text(
                _urn_of(declaration["reason"], "errorReason"), f"{field}.reason")))
        if "correctiveEventIDs" in declaration:
            ids = declaration["correctiveEventIDs"]
            if isinstance(ids, Mapping):  # as the XML reader nests them
                ids = ids.get("correctiveEventID", [])
            ids = ids if isinstance(ids, list) else [ids]
            parts.append("<correctiveEventIDs>" + "".join(
                self.element("correctiveEventID", self.text(item, f"{field}.correctiveEventIDs"))
                for item in ids) + "</correctiveEventIDs>")
        standard = ("declarationTime", "reason", "correctiveEventIDs")
        parts.extend(self.extension(key, item, f"{field}.{key}", plain=True)
                     for key, item in declaration.items() if key not in standard)
        return f"<errorDeclaration>{''.join(parts)}</errorDeclaration>"

    def persistent_disposition(self, value: Any) -> str:
        field = "persistentDisposition"
        obj = self._object(value, field)
        self._only(obj, ("set", "unset"), field)
        parts = []
        for key in ("unset", "set"):  # the XSD's order
            for index, item in enumerate(self._list(obj.get(key, []), f"{field}.{key}")):
                parts.append(self.element(key, self.text(_urn_of(item, "disposition"),
                                                         f"{field}.{key}[{index}]")))
        return f"<{field}>{''.join(parts)}</{field}>"

    def standard(self, name: str, value: Any) -> str:
        if name in _TEXT_FIELDS:
            if not isinstance(value, str):
                raise BadEvent(name, "must be a string")
            return self.element(name, self.text(value, name))
        if name in ("bizStep", "disposition"):
            return self.element(name, self.text(_urn_of(value, name), name))
        if name == "certificationInfo":
            items = value if isinstance(value, list) else [value]
            return "".join(self.element(name, self.text(item, f"{name}[{index}]"))
                           for index, item in enumerate(items))
        if name in _EPC_LISTS or name in _QUANTITY_LISTS or name in _TYPED_LISTS or name in (
                "sensorElementList",):
            items = self._list(value, name)
            if not items:
                return ""  # an empty list is an absent one (and the XSD wants one item)
            if name in _EPC_LISTS:
                inner = "".join(self.element("epc", self.text(item, f"{name}[{index}]"))
                                for index, item in enumerate(items))
            elif name in _QUANTITY_LISTS:
                inner = "".join(self.quantity_element(item, f"{name}[{index}]")
                                for index, item in enumerate(items))
            elif name in _TYPED_LISTS:
                inner = "".join(self.typed_entry(name, item, f"{name}[{index}]")
                                for index, item in enumerate(items))
            else:
                inner = "".join(self.sensor_element(item, f"{name}[{index}]")
                                for index, item in enumerate(items))
            return f"<{name}>{inner}</{name}>"
        if name in ("readPoint", "bizLocation"):
            return self.location(name, value)
        if name == "errorDeclaration":
            return self.error_declaration(value)
        if name == "persistentDisposition":
            return self.persistent_disposition(value)
        if name == "ilmd":
            return f"<ilmd>{self.extensions(self._object(value, name), (), name)}</ilmd>"
        raise BadEvent(name, "not a field of an EPCIS event")

    def event(self, event: Mapping[str, Any]) -> str:
        event_type = event.get("type")
        if event_type not in EVENT_TYPES:
            raise BadEvent("type", f"must be one of {', '.join(sorted(EVENT_TYPES))}, "
                                   f"not {event_type!r}")
        order = (*_HEAD, *_BODY[event_type])
        # standard fields the XSD lacks for this type still go in, after its own
        order += tuple(name for name in _ALL_FIELDS if name not in order)
        body = "".join(self.standard(name, event[name]) for name in order if name in event)
        body += self.extensions(event, _STANDARD, "")
        declarations = "".join(f' xmlns:{prefix}="{_escape_attribute(namespace)}"'
                               for namespace, prefix in sorted(self.declared.items(),
                                                               key=lambda item: item[1]))
        return f"<{event_type}{declarations}>{body}</{event_type}>"


def event_to_xml(event: Mapping[str, Any], context: EventContext = None) -> bytes:
    """The EPCIS 2.0 XML element of `event` (UTF-8, no XML declaration), declaring the
    namespaces its extensions use. `context` is what the event was read with (see
    `event_to_json`): a JSON-LD @context expands its compact keys and values."""
    if not isinstance(event, Mapping):
        raise BadEvent("", "an event is an object")
    own = event.get("@context")
    if own is not None and not isinstance(context, XmlNamespaces):
        items = context if isinstance(context, list) else [context]
        context = [*items, *(own if isinstance(own, list) else [own])]
    return _XmlWriter(context).event(event).encode("utf-8")


# --- query documents ---------------------------------------------------------------------------
def _rename(value: Any, renames: Mapping[str, str]) -> Any:
    """Keys and values written with a renamed prefix, written with its new name."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            prefix = _key_prefix(key)
            if prefix is not None and prefix in renames:
                key = f"{renames[prefix]}:{key.partition(':')[2]}"
            out[key] = _rename(item, renames)
        return out
    if isinstance(value, list):
        return [_rename(item, renames) for item in value]
    prefix = _value_prefix(value)
    if prefix is not None and prefix in renames:
        head = len(value) - len(value.lstrip())
        return value[:head] + renames[prefix] + value[head + len(prefix):]
    return value


def _remote_contexts(context: EventContext) -> list[str]:
    if isinstance(context, XmlNamespaces) or context is None:
        return []
    items = context if isinstance(context, list) else [context]
    return [item for item in items if isinstance(item, str) and item not in EPCIS_CONTEXTS]


def _merged(events: Sequence[tuple[Mapping[str, Any], EventContext]]
            ) -> tuple[list[dict[str, Any]], list[Any]]:
    """The events in JSON-LD form and one @context for them all: a prefix two events
    define differently, or that redefines an EPCIS prefix, or that another event writes
    in a value without defining it, is renamed in its event."""
    converted = []
    remote: list[str] = []
    for event, context in events:
        json_event, definitions = event_to_json(event, context)
        remote.extend(_remote_contexts(context))
        own = json_event.pop("@context", None)
        if own is not None:  # the event's own context is read after the document's
            definitions.update(_definitions(own))
            remote.extend(_remote_contexts(own))
        converted.append((json_event, definitions))
    undefined = set()  # value prefixes that must stay undeclared for some event
    taken = set(STANDARD_PREFIXES)
    for json_event, definitions in converted:
        undefined |= _used_prefixes(json_event)[1] - set(definitions) - set(STANDARD_PREFIXES)
        taken |= set(definitions)
    taken |= undefined
    merged: dict[str, Any] = {}
    out = []
    for json_event, definitions in converted:
        renames: dict[str, str] = {}
        for term, definition in definitions.items():
            if ":" in term:
                continue  # a type given to a compact key: placed after the renames
            iri = _iri_of(definition)
            if term in STANDARD_PREFIXES and iri == STANDARD_PREFIXES[term]:
                continue
            if term in merged and _iri_of(merged[term]) == iri:
                continue
            if term in merged or term in STANDARD_PREFIXES or term in undefined:
                same = [name for name, other in merged.items() if ":" not in name
                        and _iri_of(other) == iri and name not in definitions]
                renames[term] = same[0] if same else _fresh(taken, term)
                taken.add(renames[term])
                if same:
                    continue
                term = renames[term]
            merged[term] = definition
        for term, definition in definitions.items():
            prefix = _key_prefix(term)
            if ":" in term and prefix is not None:
                new = f"{renames.get(prefix, prefix)}:{term.partition(':')[2]}"
                merged.setdefault(new, definition)
        out.append(_rename(json_event, renames) if renames else json_event)
    document_context: list[Any] = [EPCIS_CONTEXT, *dict.fromkeys(remote)]
    if merged:
        document_context.append(merged)
    return out, document_context


def query_document_json(events: Sequence[tuple[Mapping[str, Any], EventContext]],
                        query_name: str, subscription_id: str | None,
                        created: str) -> dict[str, Any]:
    """An EPCISQueryDocument (JSON-LD) answering `query_name` with `events`, each given
    with what it was read with; `created` is its creationDate (the caller's clock)."""
    event_list, context = _merged(events)
    results: dict[str, Any] = {"queryName": query_name}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": event_list}
    return {"@context": context, "type": "EPCISQueryDocument", "schemaVersion": "2.0",
            "creationDate": created, "epcisBody": {"queryResults": results}}


def query_document_xml(events: Sequence[tuple[Mapping[str, Any], EventContext]],
                       query_name: str, subscription_id: str | None, created: str) -> bytes:
    """The same EPCISQueryDocument in XML (EPCglobal-epcis-query-2_0.xsd), UTF-8."""
    writer = _XmlWriter(None)
    creation_date = _escape_attribute(writer.text(created, "created"))
    head = (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<epcisq:EPCISQueryDocument xmlns:epcisq="{EPCIS_QUERY_XML_NAMESPACE}" '
            f'schemaVersion="2.0" creationDate="{creation_date}">'
            f"<EPCISBody><epcisq:QueryResults>"
            + writer.element("queryName", writer.text(query_name, "queryName"))
            + (writer.element("subscriptionID", writer.text(subscription_id, "subscriptionID"))
               if subscription_id is not None else "")
            + "<resultsBody><EventList>")
    tail = ("</EventList></resultsBody></epcisq:QueryResults></EPCISBody>"
            "</epcisq:EPCISQueryDocument>")
    return (head.encode("utf-8") + b"".join(event_to_xml(event, context)
                                            for event, context in events)
            + tail.encode("utf-8"))
