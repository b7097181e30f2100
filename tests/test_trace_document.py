"""EPCIS documents split into byte-faithful events, and events written back
(contracts/trace/document.py, convert.py).

Evidence:
* every GS1 example document (../shared/vectors/epcis json/, json-more/, xml/ and the
  event-hash known answers) splits; each event re-read from its source bytes and context
  alone is the dict and the hash the whole document gives, and the known answers hold;
* every example event written in the other syntax validates against GS1's XSD or JSON
  Schema and hashes as before, as do query documents holding all of them; the few
  that cannot validate for a reason in GS1's files are listed with the reason;
* rejections name the field; a Hypothesis property re-serialises documents.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker
from lxml import etree

from tests.epcis_vectors import require_vectors
from tidechain.contracts.trace import epcis_xml
from tidechain.contracts.trace.convert import (
    EPCIS_CONTEXT,
    XmlNamespaces,
    event_to_json,
    event_to_xml,
    query_document_json,
    query_document_xml,
)
from tidechain.contracts.trace.document import (
    MAX_CONTEXT_BYTES,
    MAX_EVENT_SOURCE_BYTES,
    MAX_EVENTS_PER_DOCUMENT,
    EpcisTooLarge,
    SourceEvent,
    read_source_event,
    source_event_hash,
    split_document,
    wrap_xml_event,
    xml_context,
    xml_namespaces,
)
from tidechain.contracts.trace.event_hash import BadEvent, document_events, event_hash
from tidechain.core.errors import Rejected, TooLarge

VECTORS = require_vectors()

EXAMPLES = VECTORS / "event-hash" / "examples"
JSON_DOCUMENTS = sorted([*(VECTORS / "json").rglob("*.jsonld"),
                         *(VECTORS / "json-more").rglob("*.jsonld"), *EXAMPLES.glob("*.jsonld")])
XML_DOCUMENTS = sorted([*(p for p in (VECTORS / "xml").rglob("*.xml")
                          if "CaptureJob" not in p.parts), *EXAMPLES.glob("*.xml")])
XSD = etree.XMLSchema(etree.parse(str(VECTORS / "xsd" / "EPCglobal-epcis-2_0.xsd")))
QUERY_XSD = etree.XMLSchema(etree.parse(str(VECTORS / "xsd" / "EPCglobal-epcis-query-2_0.xsd")))
JSON_SCHEMA = Draft7Validator(
    json.loads((VECTORS / "schema" / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8")),
    format_checker=FormatChecker())
CREATED = "2024-05-06T07:08:09.000Z"

NOT_JSON_SCHEMA_VALID = {
    # document: why its events, written as JSON-LD, fail schema/EPCIS-JSON-Schema.json
    # (they still hash as the XML does)
    "xml/Example-PersistentDisposition.xml":
        "AggregationEvents with a persistentDisposition: EPCglobal-epcis-2_0.xsd has the "
        "field there, the 2.0 JSON Schema only on Object and Transformation events "
        "(README gotcha 7: 2.0.1 adds it for more types)",
}


def _name(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _split(path: Path) -> tuple[Any, str]:
    media = "xml" if path.suffix == ".xml" else "json"
    return split_document(path.read_bytes(), media), media


def _context(source: SourceEvent) -> Any:
    if source.format == "xml":
        return XmlNamespaces(xml_namespaces(source.context))
    return json.loads(source.context) if source.context else None


def _capture_xml(*events: bytes) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?><epcis:EPCISDocument '
            b'xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
            b'creationDate="2024-01-01T00:00:00Z"><EPCISBody><EventList>' + b"".join(events)
            + b"</EventList></EPCISBody></epcis:EPCISDocument>")


def _capture_json(events: list[Any], context: Any) -> dict[str, Any]:
    return {"@context": context, "type": "EPCISDocument", "schemaVersion": "2.0",
            "creationDate": "2024-01-01T00:00:00Z", "epcisBody": {"eventList": events}}


# --- splitting -------------------------------------------------------------------------------
def test_the_example_documents_are_all_here() -> None:
    assert len(JSON_DOCUMENTS) == 31 + 16 + 19
    assert len(XML_DOCUMENTS) == 9 + 14


@pytest.mark.parametrize("path", JSON_DOCUMENTS, ids=_name)
def test_json_documents_split_into_their_exact_events(path: Path) -> None:
    data = path.read_bytes()
    document = split_document(data, "json")
    events, context = document_events(json.loads(data))
    assert document.kind == json.loads(data)["type"]
    assert [source.event for source in document.events] == events
    assert [source.hash for source in document.events] == [
        event_hash(event, context=context) for event in events]
    for source in document.events:
        assert source.format == "json" and source.source in data
        assert source.source.startswith(b"{") and source.source.endswith(b"}")
        assert json.loads(source.source) == source.event
        assert json.loads(source.context) == context
        assert read_source_event("json", source.source, source.context) == source.event
        assert source_event_hash("json", source.source, source.context) == source.hash


@pytest.mark.parametrize("path", XML_DOCUMENTS, ids=_name)
def test_xml_documents_split_into_their_exact_events(path: Path) -> None:
    data = path.read_bytes()
    document = split_document(data, "xml")
    events = epcis_xml.read_events(data)
    assert document.kind == "EPCISDocument" and document.schema_version == "2.0"
    assert [source.event for source in document.events] == events
    assert [source.hash for source in document.events] == [event_hash(e) for e in events]
    for source, event in zip(document.events, events, strict=True):
        assert source.format == "xml" and source.source in data
        assert source.source.startswith(b"<" + event["type"].encode())
        assert source.source.endswith(b"</" + event["type"].encode() + b">")
        assert xml_context(xml_namespaces(source.context)) == source.context
        assert read_source_event("xml", source.source, source.context) == source.event
        assert source_event_hash("xml", source.source, source.context) == source.hash


@pytest.mark.parametrize("path", sorted([*EXAMPLES.glob("*.jsonld"), *EXAMPLES.glob("*.xml")]),
                         ids=lambda p: p.name)
def test_split_events_hash_to_the_known_answers(path: Path) -> None:
    """All 33 known answers (tests/test_trace_event_hash.py skips none of them)."""
    document, _ = _split(path)
    assert [source.hash for source in document.events] == path.with_suffix(
        ".hashes").read_text(encoding="utf-8").split()


def test_the_query_document_example_splits_from_its_results() -> None:
    document, _ = _split(VECTORS / "json" / "EPCISQueryDocument.jsonld")
    assert document.kind == "EPCISQueryDocument" and len(document.events) == 2
    query = (b'<epcisq:EPCISQueryDocument xmlns:epcisq="urn:epcglobal:epcis-query:xsd:2" '
             b'schemaVersion="2.0" creationDate="2024-01-01T00:00:00Z"><EPCISBody>'
             b"<epcisq:QueryResults><queryName>SimpleEventQuery</queryName><resultsBody>"
             b"<EventList>" + event_to_xml(document.events[0].event, _context(
                 document.events[0])) + b"</EventList></resultsBody></epcisq:QueryResults>"
             b"</EPCISBody></epcisq:EPCISQueryDocument>")
    [from_xml] = split_document(query, "xml").events
    assert from_xml.hash == document.events[0].hash


def test_a_repeated_key_keeps_its_last_value_as_json_does() -> None:
    """json-more/AssociationEvent/AssociationEvent-h.jsonld repeats `eventID`."""
    path = VECTORS / "json-more" / "AssociationEvent" / "AssociationEvent-h.jsonld"
    [source] = split_document(path.read_bytes(), "json").events
    assert source.source.count(b'"eventID"') == 2
    assert source.event == json.loads(path.read_bytes())["epcisBody"]["eventList"][0]
    first = {"type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2020-01-01T00:00:00Z",
             "eventTimeZoneOffset": "+00:00"}
    second = dict(first, action="ADD")
    data = ('{"type": "EPCISDocument", "epcisBody": {"eventList": [' + json.dumps(first)
            + ']}, "epcisBody": {"eventList": [' + json.dumps(second) + ", "
            + json.dumps(first) + ']}, "@context": "x", "@context": []}').encode()
    document = split_document(data, "json")
    assert [s.event["action"] for s in document.events] == ["ADD", "OBSERVE"]
    assert [s.context for s in document.events] == [b"[]", b"[]"]


def test_byte_slices_are_bytes_when_characters_are_not() -> None:
    """Characters outside ASCII before and inside events: slices are byte-exact."""
    event = {"type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2020-01-01T00:00:00Z",
             "eventTimeZoneOffset": "+00:00", "ex:city": "Zürich ✓ 𝄞"}
    data = json.dumps(_capture_json([event, dict(event, **{"ex:city": "Århus"})],
                                    [EPCIS_CONTEXT, {"ex": "https://ex.example/ü/"}]),
                      ensure_ascii=False).encode()
    document = split_document(data, "json")
    assert [json.loads(s.source)["ex:city"] for s in document.events] == ["Zürich ✓ 𝄞", "Århus"]
    assert json.loads(document.events[0].context)[1] == {"ex": "https://ex.example/ü/"}
    xml = _capture_xml(event_to_xml(event, json.loads(document.events[0].context)))
    [source] = split_document(xml, "xml").events
    assert source.hash == document.events[0].hash
    assert "Zürich ✓ 𝄞".encode() in source.source


def test_xml_events_carry_only_the_declarations_they_use() -> None:
    document = ('<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" '
                'xmlns:a="urn:a:" xmlns:unused="urn:u:" schemaVersion="2.0" '
                'creationDate="2024-01-01T00:00:00Z"><EPCISBody><EventList xmlns:b="urn:b:">'
                '<ObjectEvent xmlns:c="urn:c:"><eventTime>2020-01-01T00:00:00Z</eventTime>'
                "<eventTimeZoneOffset>+00:00</eventTimeZoneOffset><action>OBSERVE</action>"
                '<a:x b:y="&quot;&gt;">1</a:x><c:z/></ObjectEvent>'
                '<ObjectEvent a:attr="1"/></EventList></EPCISBody></epcis:EPCISDocument>')
    with pytest.raises(BadEvent) as caught:  # the second event is not hashable
        split_document(document.encode(), "xml")
    assert caught.value.field == "EPCISBody.EventList[1].eventTime"
    first = document.replace('<ObjectEvent a:attr="1"/>', "").encode()
    [source] = split_document(first, "xml").events
    assert source.context == b'xmlns:a="urn:a:" xmlns:b="urn:b:"'
    assert source.source.endswith(b"<c:z/></ObjectEvent>")


def test_epcis_1_2_event_wrappers_and_self_closing_events_are_sliced() -> None:
    event = ('<TransformationEvent><eventTime>2020-01-01T00:00:00Z</eventTime>'
             '<eventTimeZoneOffset>+00:00</eventTimeZoneOffset></TransformationEvent>')
    data = _capture_xml(b"<extension>" + event.encode() + b"</extension>")
    [source] = split_document(data, "xml").events
    assert source.source == event.encode()
    with pytest.raises(BadEvent) as caught:
        split_document(_capture_xml(b'<ObjectEvent a="x>/"/>'), "xml")
    assert caught.value.field == "EPCISBody.EventList[0].eventTime"


# --- rejections ------------------------------------------------------------------------------
_EVENT = {"type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2020-01-01T00:00:00Z",
          "eventTimeZoneOffset": "+00:00", "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"]}
_XML_EVENT = (b"<ObjectEvent><eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>"
              b"+00:00</eventTimeZoneOffset><action>OBSERVE</action></ObjectEvent>")


def _json(events: Any) -> bytes:
    return json.dumps(_capture_json(events, EPCIS_CONTEXT)).encode()


@pytest.mark.parametrize("data, media, field", [
    (_json([_EVENT]).replace(b"OBSERVE", b"OBS\xe9RVE"), "json", "document"),
    (b"\xef\xbb\xbf" + _json([_EVENT]), "json", "document"),
    ("\ufeff".encode("utf-16") + _json([_EVENT]), "json", "document"),
    (_capture_xml(_XML_EVENT).replace(b"OBSERVE", b"OBS\xe9RVE"), "xml", "document"),
    (b'<?xml version="1.0" encoding="ISO-8859-1"?>' + _capture_xml(_XML_EVENT)[38:], "xml",
     "document"),
    ("\ufeff".encode("utf-16-le") + _capture_xml(_XML_EVENT), "xml", "document"),
    (_json([_EVENT])[:-20], "json", "epcisBody.eventList[0]"),
    (_json([_EVENT, _EVENT])[:-3], "json", "epcisBody.eventList"),
    (_json([_EVENT])[:-1], "json", "document"),
    (_json([_EVENT]) + b"{}", "json", "document"),
    (_capture_xml(_XML_EVENT)[:-30], "xml", "document"),
    (_json({"0": _EVENT}), "json", "epcisBody.eventList"),
    (json.dumps({"type": "EPCISQueryDocument", "epcisBody": {"queryResults": {
        "resultsBody": {"eventList": "none"}}}}).encode(), "json",
     "epcisBody.queryResults.resultsBody.eventList"),
    (json.dumps({"type": "EPCISDocument", "epcisBody": []}).encode(), "json", "epcisBody"),
    (json.dumps({"type": "Invoice"}).encode(), "json", "type"),
    (b"[]", "json", "document"),
    (_json([_EVENT, 5]), "json", "epcisBody.eventList[1]"),
    (_json([_EVENT, dict(_EVENT, eventTime="yesterday")]), "json",
     "epcisBody.eventList[1].eventTime"),
    (_json([dict(_EVENT, epcList=[None])]), "json", "epcisBody.eventList[0].epcList[0]"),
    (_json([_EVENT]).replace(b'"OBSERVE"', b"NaN"), "json", "epcisBody.eventList[0]"),
    (_json([dict(_EVENT, note="\ud800")]).replace(b'"note"', b'"rdfs:note"'), "json",
     "epcisBody.eventList[0]"),
    (_capture_xml(_XML_EVENT, b"<Invoice/>"), "xml", "EPCISBody.EventList[1]"),
    (_capture_xml(_XML_EVENT.replace(b"OBSERVE", b"LOOK")), "xml",
     "EPCISBody.EventList[0].action"),
    (_capture_xml(_XML_EVENT).replace(b"<EPCISBody>", b"<EPCISBody/><EPCISBody>"), "xml",
     "document"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]>' + _capture_xml(_XML_EVENT), "xml", "document"),
    (b"<Invoice/>", "xml", "document"),
    (_json([_EVENT]), "csv", "media"),
])
def test_bad_documents_are_refused_naming_the_field(data: bytes, media: str,
                                                    field: str) -> None:
    with pytest.raises(BadEvent) as caught:
        split_document(data, media)
    assert caught.value.field == field, caught.value
    assert isinstance(caught.value, Rejected)


def test_an_event_over_the_byte_bound_is_refused_naming_its_place() -> None:
    big = dict(_EVENT, **{"ex:note": "x" * MAX_EVENT_SOURCE_BYTES})
    context: list[Any] = [EPCIS_CONTEXT, {"ex": "https://ex.example/"}]
    for data, media, field in [
            (json.dumps(_capture_json([_EVENT] * 7 + [big], context)).encode(), "json",
             "epcisBody.eventList[7]"),
            (_capture_xml(*[_XML_EVENT] * 3, event_to_xml(big, context)), "xml",
             "EPCISBody.EventList[3]")]:
        with pytest.raises(EpcisTooLarge) as caught:
            split_document(data, media)
        assert caught.value.field == field
        assert isinstance(caught.value, BadEvent) and isinstance(caught.value, TooLarge)
        assert caught.value.http_status == 413
    fits = dict(_EVENT, **{"ex:note": "x" * (MAX_EVENT_SOURCE_BYTES - 200)})
    assert split_document(json.dumps(_capture_json([fits], context)).encode(), "json").events


def test_too_many_events_or_too_large_a_context_are_refused() -> None:
    for data, media, field in [
            (_json([{}] * (MAX_EVENTS_PER_DOCUMENT + 1)), "json",
             f"epcisBody.eventList[{MAX_EVENTS_PER_DOCUMENT}]"),
            (_capture_xml(b"<ObjectEvent/>" * (MAX_EVENTS_PER_DOCUMENT + 1)), "xml",
             f"EPCISBody.EventList[{MAX_EVENTS_PER_DOCUMENT}]"),
            (json.dumps(_capture_json([_EVENT], [EPCIS_CONTEXT, {
                f"p{i}": f"https://example.com/{i}/" for i in range(200)}])).encode(), "json",
             "@context")]:
        with pytest.raises(EpcisTooLarge) as caught:
            split_document(data, media)
        assert caught.value.field == field


def test_re_reading_refuses_anything_but_one_event_and_canonical_declarations() -> None:
    [good] = split_document(_capture_xml(_XML_EVENT.replace(
        b"</ObjectEvent>", b'<ex:a xmlns:ex="urn:x:">1</ex:a></ObjectEvent>')), "xml").events
    assert good.context == b""
    tail = b"</EventList></EPCISBody></epcis:EPCISDocument>"
    for source, context, field in [
            (_XML_EVENT + _XML_EVENT, b"", "source"),
            (_XML_EVENT + b"<!-- x -->", b"", "source"),
            (b" " + _XML_EVENT, b"", "source"),
            (_XML_EVENT + tail + b"<!--", b"", "source"),
            (_XML_EVENT, b'xmlns:b="urn:b" xmlns:a="urn:a"', "context"),  # not sorted
            (_XML_EVENT, b'xmlns:a="urn:a"  xmlns:b="urn:b"', "context"),
            (_XML_EVENT, b'xmlns:a="urn:a"><Injected', "context"),
            (_XML_EVENT, b"xmlns:a='urn:a'", "context"),
            (b"x" * (MAX_EVENT_SOURCE_BYTES + 1), b"", "source"),
            (_XML_EVENT, b" " * (MAX_CONTEXT_BYTES + 1), "context")]:
        with pytest.raises(BadEvent) as caught:
            read_source_event("xml", source, context)
        assert caught.value.field == field, (source, context, caught.value)
    for source, context, field in [(b'{"a": 1} {}', b"", "source"), (b"[]", b"", "source"),
                                   (b'{"a": 1}', b"[] []", "context"),
                                   (b"\xef\xbb\xbf{}", b"", "source")]:
        with pytest.raises(BadEvent) as caught:
            read_source_event("json", source, context)
        assert caught.value.field == field
    with pytest.raises(BadEvent):
        source_event_hash("yaml", b"{}", b"")
    assert xml_namespaces(xml_context({"": "urn:d", "a": 'x"<&\t\n\r'})) == {
        "": "urn:d", "a": 'x"<&\t\n\r'}
    assert wrap_xml_event(b"<E/>", b"").endswith(b"<EventList><E/>" + tail)


# --- conversion ------------------------------------------------------------------------------
def _all_events(paths: list[Path]) -> list[tuple[str, SourceEvent]]:
    return [(_name(path), source) for path in paths for source in _split(path)[0].events]


JSON_EVENTS = _all_events(JSON_DOCUMENTS)
XML_EVENTS = _all_events(XML_DOCUMENTS)


def test_the_example_events_are_all_here() -> None:
    assert len(JSON_EVENTS) == 38 + 18 + 37 and len(XML_EVENTS) == 13 + 40


def test_json_events_written_as_xml_validate_and_keep_their_hash() -> None:
    for name, source in JSON_EVENTS:
        document = _capture_xml(event_to_xml(source.event, _context(source)))
        assert XSD.validate(etree.fromstring(document)), (name, XSD.error_log.last_error)
        [back] = epcis_xml.read_events(document)
        assert event_hash(back) == source.hash, name


def test_json_events_pass_through_event_to_json_unchanged() -> None:
    for name, source in JSON_EVENTS:
        event, definitions = event_to_json(source.event, _context(source))
        assert event == source.event, name
        document = _capture_json([event], [EPCIS_CONTEXT, definitions])
        assert event_hash(event, context=document["@context"]) == source.hash, name


def test_xml_events_written_as_json_ld_validate_and_keep_their_hash() -> None:
    invalid: collections.Counter[str] = collections.Counter()
    for name, source in XML_EVENTS:
        event, definitions = event_to_json(source.event, _context(source))
        document = json.loads(json.dumps(_capture_json(
            [event], [EPCIS_CONTEXT, definitions] if definitions else EPCIS_CONTEXT)))
        errors = list(JSON_SCHEMA.iter_errors(document))
        if name in NOT_JSON_SCHEMA_VALID:
            invalid[name] += 1
            assert {e.message for e in errors} == {
                "'persistentDisposition' is not valid under any of the given schemas"}
        else:
            assert errors == [], (name, [e.message for e in errors])
        [json_event], context = document_events(document)
        assert event_hash(json_event, context=context) == source.hash, name
        document = _capture_xml(event_to_xml(source.event, _context(source)))
        assert XSD.validate(etree.fromstring(document)), (name, XSD.error_log.last_error)
        assert [event_hash(e) for e in epcis_xml.read_events(document)] == [source.hash]
    assert invalid == {"xml/Example-PersistentDisposition.xml": 2}


def test_query_documents_hold_every_example_event_with_its_hash() -> None:
    pairs = [(source.event, _context(source)) for name, source in [*JSON_EVENTS, *XML_EVENTS]
             if name not in NOT_JSON_SCHEMA_VALID]
    hashes = [source.hash for name, source in [*JSON_EVENTS, *XML_EVENTS]
              if name not in NOT_JSON_SCHEMA_VALID]
    document = json.loads(json.dumps(query_document_json(
        pairs, "SimpleEventQuery", "subscription-1", CREATED)))
    assert list(JSON_SCHEMA.iter_errors(document)) == []
    events, context = document_events(document)
    assert [event_hash(event, context=context) for event in events] == hashes
    assert document["epcisBody"]["queryResults"]["subscriptionID"] == "subscription-1"
    xml = query_document_xml(pairs, "SimpleEventQuery", None, CREATED)
    assert QUERY_XSD.validate(etree.fromstring(xml)), QUERY_XSD.error_log.last_error
    assert [event_hash(event) for event in epcis_xml.read_events(xml)] == hashes
    split = split_document(xml, "xml")
    assert split.kind == "EPCISQueryDocument" and [s.hash for s in split.events] == hashes
    json_split = split_document(json.dumps(document).encode(), "json")
    assert [s.hash for s in json_split.events] == hashes


def test_query_documents_rename_prefixes_that_would_change_a_meaning() -> None:
    one = dict(_EVENT, **{"ex:a": "1", "ex:b": "ex:value"})
    two = dict(_EVENT, **{"ex:a": "2"})
    three = dict(_EVENT, **{"cbvmda:lotNumber": "L1"})
    from_xml = {**_EVENT, "{urn:x:}note": "ex:unbound"}  # a value, its prefix undeclared
    pairs: list[tuple[dict[str, Any], Any]] = [
        (one, [EPCIS_CONTEXT, {"ex": "https://one.example/"}]),
        (two, {"ex": "https://two.example/"}),
        (three, {"cbvmda": "https://not-cbv.example/"}),  # redefines a protected prefix
        (from_xml, XmlNamespaces({"ex": "urn:x:"})),
        (dict(_EVENT, **{"@context": {"ex": "https://own.example/"}, "ex:c": "3"}), None)]
    expected = [event_hash(e, context=c) if not isinstance(c, XmlNamespaces)
                else event_hash(e) for e, c in pairs]
    document = query_document_json(pairs, "q", None, CREATED)
    events, context = document_events(document)
    assert [event_hash(e, context=context) for e in events] == expected
    assert isinstance(context, list)
    definitions = context[-1]
    assert "ex" not in definitions and "cbvmda" not in definitions
    assert events[0]["ex1:b"] == "ex1:value" and events[3]["ext1:note"] == "ex:unbound"
    assert all("@context" not in event for event in events)
    assert list(JSON_SCHEMA.iter_errors(json.loads(json.dumps(document)))) == []


def test_conversion_rejections_name_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [({**_EVENT, "type": "ShipmentEvent"}, "type"),
                         ({**_EVENT, "zz:a": "1"}, "zz:a"),
                         ({**_EVENT, "note": "1"}, "note"),
                         ({**_EVENT, "ex:a": "\x01"}, "ex:a"),
                         ({**_EVENT, "ex:a b": "1"}, "ex:a b"),
                         ({**_EVENT, "ex:a": {"@id": "x"}}, "ex:a.@id"),
                         ({**_EVENT, "sensorElementList": [{"sensorReport": [
                             {"type": "Speed", "ex:r": {"deep": 1}}]}]},
                          "sensorElementList[0].sensorReport[0].ex:r"),
                         ({**_EVENT, "ex:a": float("nan")}, "ex:a")]
    for event, field in cases:
        with pytest.raises(BadEvent) as caught:
            event_to_xml(event, {"ex": "https://ex.example/"})
        assert caught.value.field == field


def test_xml_writes_cbv_words_as_uris_and_values_with_document_prefixes_in_full() -> None:
    event = {**_EVENT, "bizStep": "shipping", "disposition": "in_transit",
             "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:1"}],
             "sensorElementList": [{"sensorReport": [
                 {"type": "Temperature", "component": "x", "value": 1e-05}]}],
             "quantityList": [{"epcClass": "urn:x:c", "quantity": 1e-05, "uom": "KGM"}],
             "ex:ref": "ex:thing"}
    context = {"ex": "https://ex.example/"}
    xml = event_to_xml(event, context)
    for text in (b"urn:epcglobal:cbv:bizstep:shipping", b"urn:epcglobal:cbv:disp:in_transit",
                 b'type="urn:epcglobal:cbv:btt:po"', b'type="gs1:Temperature"',
                 b'component="cbv:Comp-x"', b"<quantity>0.00001</quantity>",
                 b">https://ex.example/thing</ex:ref>"):
        assert text in xml, text
    assert XSD.validate(etree.fromstring(_capture_xml(xml))), XSD.error_log.last_error
    [back] = epcis_xml.read_events(_capture_xml(xml))
    assert event_hash(back) == event_hash(event, context=context)


# --- property: re-serialised documents ---------------------------------------------------------
RESERIALISED = [VECTORS / "json" / "Example_9.6.1-ObjectEvent.jsonld",
                VECTORS / "json" / "WithSensorData" / "SensorDataExample1.jsonld",
                VECTORS / "json" / "EPCISQueryDocument.jsonld",
                EXAMPLES / "ralfsChaosExample.jsonld"]


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(key, _shuffled(item, rng)) for key, item in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


def test_reserialised_documents_split_to_the_same_hashes() -> None:
    expected = {path: [s.hash for s in split_document(path.read_bytes(), "json").events]
                for path in RESERIALISED}
    seen: collections.Counter[str] = collections.Counter()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(st.sampled_from(RESERIALISED), st.randoms(use_true_random=False),
           st.sampled_from([None, 0, 1, 4, "\t"]), st.booleans(),
           st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\r\n ")]))
    def check(path: Path, rng: random.Random, indent: int | str | None, ascii_only: bool,
              separators: tuple[str, str]) -> None:
        document = _shuffled(json.loads(path.read_bytes()), rng)
        data = json.dumps(document, indent=indent, ensure_ascii=ascii_only,
                          separators=separators).encode()
        split = split_document(b" \n" + data + b"\r\n", "json")
        assert [s.hash for s in split.events] == expected[path]
        for source in split.events:
            assert read_source_event("json", source.source, source.context) == source.event
        seen[path.name] += 1
        seen["indented" if indent is not None else "flat"] += 1

    check()
    assert all(seen[path.name] > 0 for path in RESERIALISED), seen
    assert seen["indented"] > 0 and seen["flat"] > 0, seen
