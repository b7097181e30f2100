"""GS1's EPCIS 2.0 schemas as the node loads them (node/epcis_schemas.py).

Evidence, against the public test data in ../shared/vectors/epcis (read in place):
* every JSON(-LD) example in json/ and json-more/ passes, every EPCISDocument in xml/
  and the EPCISQueryDocument (a Poll) in queries/openepcis passes its XSD;
* every file in invalid/capture (15) and invalid/query-documents (2) is rejected, and
  the rejection names the field that is wrong (written out per file below);
* the query-body schema accepts SimpleEventQuery.json and refuses its invalid/ ones; two
  legitimate bodies pass only after the in-memory repair (and fail without it);
* a Hypothesis property: a defect planted in any valid example is the first rejection,
  under the field it was planted in; rejections do not depend on key order;
* hostile XML (billion laughs, external entities, DTD internal subset, external DTD) is
  refused with a clear reason, and nothing is fetched;
* a folder that is not laid out as expected gives a ConfigError naming the file.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker
from lxml import etree

from tests.epcis_vectors import require_vectors
from tidechain.core.errors import ConfigError, Rejected, TooLarge
from tidechain.node import epcis_schemas
from tidechain.node.epcis_schemas import (
    MAX_DOCUMENT_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_NODES,
    MAX_REPORTED_ERRORS,
    EpcisSchemas,
    SchemaRejection,
    load_json,
    readable_path,
    repair_query_schema,
    root_kind,
)

VECTORS = require_vectors()

JSON_FILES = sorted([*(VECTORS / "json").rglob("*.jsonld"),
                     *(VECTORS / "json-more").rglob("*.jsonld")])
XML_DOCUMENTS = sorted(p for p in (VECTORS / "xml").rglob("*.xml") if "CaptureJob" not in p.parts)
CAPTURE_JOBS = sorted((VECTORS / "xml" / "CaptureJob").glob("*.xml"))
QUERIES = VECTORS / "queries" / "openepcis"
EVENT = "epcisBody.eventList"

INVALID_CAPTURE = {
    # file: the field its first rejection must name (what is wrong with the file)
    "Combination_of_events_with_missing_mandatory_fields.json":
        f"{EVENT}[0].action",  # no action (event 1 also lacks action and its time zone)
    "Combination_of_multiple_invalid_fields.json":
        f"{EVENT}[0].bizStep",  # bare "transforming"; then disposition, source type, ilmd...
    "Combination_of_non_standard_bizStep_and_disposition.json":
        f"{EVENT}[0].bizStep",  # bare "transforming"; event 1 has disposition "in_transport"
    "EPCISDocument_without_context.json": "@context",
    "ObjectEvent_with_ilmd_field_without_namespace.json":
        f"{EVENT}[0].ilmd.materialType",  # an ilmd key must be namespaced (a URI)
    "ObjectEvent_with_invalid_action.json": f"{EVENT}[0].action",  # "CREATE"
    "ObjectEvent_with_invalid_certificationInfo.json":
        f"{EVENT}[0].certificationInfo[0]",  # objects where URIs belong
    "ObjectEvent_with_invalid_eventTime_format.json": f"{EVENT}[0].eventTime",  # "22-07-2026"
    "ObjectEvent_with_non_standard_bizStep.json": f"{EVENT}[0].bizStep",  # "transforming"
    "ObjectEvent_with_non_standard_bizStep_in_second_event.json": f"{EVENT}[1].bizStep",
    "ObjectEvent_with_non_standard_disposition.json": f"{EVENT}[0].disposition",
    "ObjectEvent_with_quantity_as_text.json": f"{EVENT}[0].quantityList[0].quantity",
    "ObjectEvent_with_unknown_field_in_quantityList.json":
        f"{EVENT}[0].quantityList[0].weight",
    "ObjectEvent_without_action_and_eventTime.json":
        f"{EVENT}[0].eventTime",  # the schema asks for eventTime before action
    "ObjectEvent_without_identifier_list.json":
        f"{EVENT}[0].epcList",  # no epcList, quantityList or sensorElementList
}
ANSWER_EVENT = "epcisBody.queryResults.resultsBody.eventList"
INVALID_QUERY_DOCUMENTS = {
    "QueryDocument_with_invalid_action.json": f"{ANSWER_EVENT}[0].action",
    "QueryDocument_with_invalid_eventType.json": f"{ANSWER_EVENT}[0].type",
}
INVALID_QUERY_BODIES = {
    "Query_with_invalid_values.json": "EQ_action[0]",  # also GE_eventTime, orderDirection
    "Query_with_unknown_parameter.json": "GE_eventDate",
}


@pytest.fixture(scope="module")
def schemas() -> EpcisSchemas:
    return EpcisSchemas.load(VECTORS)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _first(check: Any, value: object) -> SchemaRejection:
    with pytest.raises(SchemaRejection) as caught:
        check(value)
    return caught.value


# --- the data is what the README says ----------------------------------------------------


def test_the_vectors_are_all_here() -> None:
    assert len(JSON_FILES) == 47 and len(XML_DOCUMENTS) == 9 and len(CAPTURE_JOBS) == 4
    assert sorted(p.name for p in (VECTORS / "invalid" / "capture").glob("*.json")) == sorted(
        INVALID_CAPTURE)
    assert sorted(p.name for p in (VECTORS / "invalid" / "query-documents").glob("*.json")
                  ) == sorted(INVALID_QUERY_DOCUMENTS)
    assert sorted(p.name for p in (QUERIES / "invalid").glob("*.json")) == sorted(
        INVALID_QUERY_BODIES)


# --- valid documents pass ----------------------------------------------------------------


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: str(p.relative_to(VECTORS)))
def test_every_json_example_passes(schemas: EpcisSchemas, path: Path) -> None:
    doc = load_json(path.read_bytes())
    assert isinstance(doc, dict)
    if doc["type"] == "EPCISQueryDocument":
        schemas.validate_query_document(doc)
    else:
        schemas.validate_json_document(doc)
    assert schemas.all_errors(doc, kind=doc["type"]) == []


def test_the_one_json_query_document_is_not_a_capture(schemas: EpcisSchemas) -> None:
    answers = [p for p in JSON_FILES if _json(p)["type"] == "EPCISQueryDocument"]
    assert [p.name for p in answers] == ["EPCISQueryDocument.jsonld"]
    rejection = _first(schemas.validate_json_document, _json(answers[0]))
    assert rejection.field == "type" and "EPCISDocument" in rejection.reason
    assert _first(schemas.validate_query_document, _json(VECTORS / "json" /
                                                         "Example_9.6.1-ObjectEvent.jsonld")
                  ).field == "type"


@pytest.mark.parametrize("path", XML_DOCUMENTS, ids=lambda p: str(p.relative_to(VECTORS)))
def test_every_xml_document_passes_the_xsd(schemas: EpcisSchemas, path: Path) -> None:
    data = path.read_bytes()
    assert root_kind(data) == "EPCISDocument"
    assert schemas.validate_xml_document(data) == "EPCISDocument"


def test_the_xml_query_document_passes_the_query_xsd(schemas: EpcisSchemas) -> None:
    data = (QUERIES / "SimpleEventQuery.xml").read_bytes()
    assert root_kind(data) == "EPCISQueryDocument"
    assert schemas.validate_xml_document(data) == "EPCISQueryDocument"
    schemas.validate_xml_query_document(data)


def test_an_xml_query_answer_passes(schemas: EpcisSchemas) -> None:
    """The events of an XML example, answered as QueryResults, pass the query XSD (what
    the query routes' tests will check their XML output with)."""
    answer = _xml_answer(VECTORS / "xml" / "Example_9.6.1-ObjectEvent-2020_06_18a.xml")
    schemas.validate_xml_query_document(answer)
    rejection = _first(schemas.validate_xml_query_document,
                       (VECTORS / "xml" / "Example-PersistentDisposition.xml").read_bytes())
    assert "EPCISQueryDocument" in rejection.reason


def _xml_answer(document: Path) -> bytes:
    query_ns = epcis_schemas.EPCIS_QUERY_NS
    events = etree.fromstring(document.read_bytes()).find("EPCISBody/EventList")
    root = etree.Element(f"{{{query_ns}}}EPCISQueryDocument", nsmap={"epcisq": query_ns},
                         schemaVersion="2.0", creationDate="2026-01-01T00:00:00Z")
    results = etree.SubElement(etree.SubElement(root, "EPCISBody"), f"{{{query_ns}}}QueryResults")
    etree.SubElement(results, "queryName").text = "SimpleEventQuery"
    etree.SubElement(results, "resultsBody").append(events)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@pytest.mark.parametrize("path", CAPTURE_JOBS, ids=lambda p: p.name)
def test_capture_job_responses_are_not_documents(schemas: EpcisSchemas, path: Path) -> None:
    data = path.read_bytes()
    assert root_kind(data) == f"{{{epcis_schemas.EPCIS_NS}}}EPCISCaptureJob"
    rejection = _first(schemas.validate_xml_document, data)
    assert "EPCISCaptureJob" in rejection.reason and rejection.line is not None


# --- invalid documents are rejected, naming the field ----------------------------------


@pytest.mark.parametrize("name", sorted(INVALID_CAPTURE))
def test_invalid_capture_is_rejected_naming_the_field(schemas: EpcisSchemas, name: str) -> None:
    doc = _json(VECTORS / "invalid" / "capture" / name)
    rejection = _first(schemas.validate_json_document, doc)
    assert rejection.field == INVALID_CAPTURE[name]
    assert isinstance(rejection, Rejected) and rejection.http_status == 400
    assert "not valid under any of the given schemas" not in rejection.detail
    assert rejection.reason.startswith(f"{rejection.field}: ")
    assert schemas.all_errors(doc)[0].field == rejection.field


@pytest.mark.parametrize("name", sorted(INVALID_QUERY_DOCUMENTS))
def test_invalid_query_document_is_rejected_naming_the_field(schemas: EpcisSchemas,
                                                             name: str) -> None:
    doc = _json(VECTORS / "invalid" / "query-documents" / name)
    assert _first(schemas.validate_query_document, doc).field == INVALID_QUERY_DOCUMENTS[name]


def test_reasons_say_what_was_expected(schemas: EpcisSchemas) -> None:
    def reason(name: str) -> str:
        return _first(schemas.validate_json_document,
                      _json(VECTORS / "invalid" / "capture" / name)).detail

    assert reason("ObjectEvent_with_invalid_action.json") == (
        'expected one of "OBSERVE", "ADD", "DELETE", got "CREATE"')
    assert reason("ObjectEvent_with_quantity_as_text.json") == 'expected a number, got "twenty"'
    assert "RFC 3339 date-time" in reason("ObjectEvent_with_invalid_eventTime_format.json")
    bizstep = reason("ObjectEvent_with_non_standard_bizStep.json")
    assert "URI" in bizstep and '"accepting"' in bizstep and '"transforming"' in bizstep
    identifiers = reason("ObjectEvent_without_identifier_list.json")
    assert all(name in identifiers for name in ("epcList", "quantityList", "sensorElementList"))
    unknown = reason("ObjectEvent_with_unknown_field_in_quantityList.json")
    assert "allowed: epcClass, quantity, uom" in unknown
    assert reason("ObjectEvent_without_action_and_eventTime.json") == (
        "this required field is missing")


def test_all_errors_lists_each_field_once_in_order(schemas: EpcisSchemas) -> None:
    doc = _json(VECTORS / "invalid" / "capture" / "Combination_of_multiple_invalid_fields.json")
    assert [r.field for r in schemas.all_errors(doc)] == [
        f"{EVENT}[0].bizStep", f"{EVENT}[1].disposition", f"{EVENT}[2].sourceList[0].type",
        f"{EVENT}[3].ilmd.materialType", f"{EVENT}[4].action", f"{EVENT}[4].eventTime"]


def test_all_errors_is_bounded(schemas: EpcisSchemas) -> None:
    doc = _json(VECTORS / "invalid" / "capture" / "ObjectEvent_with_invalid_action.json")
    event = doc["epcisBody"]["eventList"][0]
    doc["epcisBody"]["eventList"] = [copy.deepcopy(event) for _ in range(3 * MAX_REPORTED_ERRORS)]
    found = schemas.all_errors(doc)
    assert len(found) == MAX_REPORTED_ERRORS
    assert found[0].field == f"{EVENT}[0].action" and found[-1].field == f"{EVENT}[99].action"
    assert [r.field for r in schemas.all_errors(doc, limit=2)] == [
        f"{EVENT}[0].action", f"{EVENT}[1].action"]


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


@pytest.mark.parametrize("name", sorted(INVALID_CAPTURE))
def test_rejection_does_not_depend_on_key_order(schemas: EpcisSchemas, name: str) -> None:
    doc = _json(VECTORS / "invalid" / "capture" / name)
    as_written = [(r.field, r.reason) for r in schemas.all_errors(doc)]
    assert [(r.field, r.reason) for r in schemas.all_errors(_reversed_keys(doc))] == as_written


def test_not_an_object_or_not_a_document(schemas: EpcisSchemas) -> None:
    assert _first(schemas.validate_json_document, [1, 2]).field == ""
    assert _first(schemas.validate_json_document, {"type": "ObjectEvent"}).field == "type"
    assert _first(schemas.validate_json_document, {"type": "EPCISDocument"}).field == "@context"


# --- a defect planted anywhere is found where it was planted -----------------------------

CAPTURE_DOCUMENTS = [(p, _json(p)) for p in JSON_FILES]
CAPTURE_DOCUMENTS = [(p, d) for p, d in CAPTURE_DOCUMENTS if d["type"] == "EPCISDocument"]
WITH_ACTION = {"ObjectEvent", "AggregationEvent", "TransactionEvent", "AssociationEvent"}
STANDARD_FIELDS = {"@context", "type", "eventTime", "recordTime", "eventTimeZoneOffset",
                   "eventID", "certificationInfo", "errorDeclaration", "action", "epcList",
                   "quantityList", "bizStep", "disposition", "persistentDisposition",
                   "readPoint", "bizLocation", "bizTransactionList", "sourceList",
                   "destinationList", "sensorElementList", "ilmd", "parentID", "childEPCs",
                   "childQuantityList", "inputEPCList", "outputEPCList", "inputQuantityList",
                   "outputQuantityList", "transformationID"}


def _plant(kind: str, event: dict[str, Any], draw: Any) -> str | None:
    """Break `event` in one way; the path (after the event) the rejection must name,
    or None when this event has no such field."""
    if kind == "missing eventTime":
        del event["eventTime"]
        return "eventTime"
    if kind == "bad action" and event["type"] in WITH_ACTION:
        event["action"] = draw(st.text(min_size=1, max_size=12).filter(
            lambda t: t not in ("ADD", "OBSERVE", "DELETE")))
        return "action"
    if kind == "eventTime not a date":
        event["eventTime"] = draw(st.text("abcdefghijklmnopqrstuvwxyz -", min_size=1, max_size=20))
        return "eventTime"
    if kind == "quantity as text":
        lists = [name for name in ("quantityList", "childQuantityList", "inputQuantityList",
                                   "outputQuantityList") if event.get(name)]
        if not lists:
            return None
        name = draw(st.sampled_from(lists))
        index = draw(st.integers(0, len(event[name]) - 1))
        event[name][index]["quantity"] = draw(st.sampled_from(["twenty", "20", "", "1e3 kg"]))
        return f"{name}[{index}].quantity"
    if kind == "unknown field":
        name = draw(st.from_regex(r"[a-z][a-zA-Z]{2,12}", fullmatch=True).filter(
            lambda n: n not in STANDARD_FIELDS))
        event[name] = draw(st.one_of(st.integers(), st.text(max_size=5)))
        return name
    return None


PLANTS = ("missing eventTime", "bad action", "eventTime not a date", "quantity as text",
          "unknown field")


def test_a_planted_defect_is_the_first_rejection_at_its_field(schemas: EpcisSchemas) -> None:
    exercised: collections.Counter[str] = collections.Counter()

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _, original = data.draw(st.sampled_from(CAPTURE_DOCUMENTS))
        doc = copy.deepcopy(original)
        events = doc["epcisBody"]["eventList"]
        index = data.draw(st.integers(0, len(events) - 1))
        kind = data.draw(st.sampled_from(PLANTS))
        where = _plant(kind, events[index], data.draw)
        if where is None:
            return
        rejection = _first(schemas.validate_json_document, doc)
        assert rejection.field == f"{EVENT}[{index}].{where}", rejection
        exercised[kind] += 1

    run()
    assert set(exercised) == set(PLANTS), exercised


# --- query bodies, and the repair of GS1's query schema ---------------------------------


def test_simple_event_query_passes(schemas: EpcisSchemas) -> None:
    schemas.validate_query_body(_json(QUERIES / "SimpleEventQuery.json"))


@pytest.mark.parametrize("name", sorted(INVALID_QUERY_BODIES))
def test_invalid_query_bodies_fail(schemas: EpcisSchemas, name: str) -> None:
    body = _json(QUERIES / "invalid" / name)
    assert _first(schemas.validate_query_body, body).field == INVALID_QUERY_BODIES[name]


def test_query_body_reports_every_bad_parameter(schemas: EpcisSchemas) -> None:
    body = _json(QUERIES / "invalid" / "Query_with_invalid_values.json")
    assert [r.field for r in schemas.query_body_errors(body)] == [
        "EQ_action[0]", "GE_eventTime", "orderDirection"]


REPAIRED_BODIES = [{"EQ_ILMD_cbvmda:lotNumber": ["LOT1"]},
                   {"GE_errorDeclarationTime": "2020-01-01T00:00:00Z"},
                   {"LT_errorDeclarationTime": "2020-01-01T00:00:00Z"},
                   {"EXISTS_INNER_ERROR_DECLARATION_ex:reason": 1},
                   {"EQ_ATTR_cbvmda_lotNumber": ["LOT1"]}]


@pytest.mark.parametrize("body", REPAIRED_BODIES, ids=lambda b: next(iter(b)))
def test_the_repair_is_needed_and_works(schemas: EpcisSchemas, body: dict[str, Any]) -> None:
    unrepaired = Draft7Validator(_json(VECTORS / "schema" / "query-schema.json"),
                                 format_checker=FormatChecker())
    assert list(unrepaired.iter_errors(body)), "GS1's file as published refuses it"
    schemas.validate_query_body(body)


def test_what_the_repair_changes() -> None:
    raw = _json(VECTORS / "schema" / "query-schema.json")
    repaired, repairs = repair_query_schema(raw)
    doubled = [p for p in raw["definitions"]["EPCIS-Query"]["patternProperties"] if "\\\\" in p]
    exists = [r for r in repairs if "a boolean is accepted too" in r]
    # 75 patterns, 2 spellings, and the EXISTS_* parameters that are integers
    assert len(doubled) == 75 and len(exists) == 11 and len(repairs) == 75 + 2 + 11
    query = repaired["definitions"]["EPCIS-Query"]
    assert not any("\\\\" in p for p in query["patternProperties"])
    assert len(query["patternProperties"]) == len(raw["definitions"]["EPCIS-Query"][
        "patternProperties"])
    assert "GE_errorDeclarationTime" in query["properties"]
    assert "GE_errorDeclaration_Time" not in query["properties"]
    assert "GE_errorDeclaration_Time" in raw["definitions"]["EPCIS-Query"]["properties"]
    assert repair_query_schema(repaired) == (repaired, ())  # idempotent


def test_the_old_spelling_is_an_unknown_parameter(schemas: EpcisSchemas) -> None:
    body = {"GE_errorDeclaration_Time": "2020-01-01T00:00:00Z"}
    assert _first(schemas.validate_query_body, body).field == "GE_errorDeclaration_Time"


def test_exists_parameters_take_booleans_too(schemas: EpcisSchemas) -> None:
    """Repaired: the query schema types EXISTS_* as `integer` with OpenAPI's `nullable:
    true`, which JSON Schema ignores, while the OpenAPI document types
    EXISTS_errorDeclaration as a boolean: `true` is accepted, `null` and text are not."""
    schemas.validate_query_body({"EXISTS_errorDeclaration": 1})
    schemas.validate_query_body({"EXISTS_errorDeclaration": True})
    for value in (None, "yes"):
        rejection = _first(schemas.validate_query_body, {"EXISTS_errorDeclaration": value})
        assert rejection.field == "EXISTS_errorDeclaration"


# --- XML rejections name the element and line ------------------------------------------


def test_xsd_rejection_names_element_path_and_line(schemas: EpcisSchemas) -> None:
    text = (VECTORS / "xml" / "Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_text()
    first = text.index("<action>OBSERVE</action>")
    second = text.index("<action>OBSERVE</action>", first + 1)
    broken = text[:second] + "<action>CREATE</action>" + text[second + 24:]
    rejection = _first(schemas.validate_xml_document, broken.encode())
    assert rejection.field == "EPCISBody/EventList/ObjectEvent[2]/action"
    assert rejection.line == text[:second].count("\n") + 1
    assert "CREATE" in rejection.reason


def test_the_invalid_poll_is_rejected(schemas: EpcisSchemas) -> None:
    data = (QUERIES / "invalid" / "Query_without_queryName.xml").read_bytes()
    rejection = _first(schemas.validate_xml_document, data)
    assert rejection.field == "EPCISBody/epcisq:Poll/params" and rejection.line == 7
    assert "queryName" in rejection.reason


def test_malformed_xml_is_rejected_with_its_line(schemas: EpcisSchemas) -> None:
    rejection = _first(schemas.validate_xml_document, b"<a>\n<b>\n</a>")
    assert rejection.line == 3 and "well-formed" in rejection.reason
    assert _first(schemas.validate_xml_document, b"").field == ""


# --- hostile XML --------------------------------------------------------------------------

LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + "".join(f' <!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">\n'
                    for i in range(1, 10))
          + ']>\n<lolz>&lol9;</lolz>\n')


@pytest.fixture
def listener() -> Any:
    """A local TCP port that records whether anything connected to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    yield server
    server.close()


def _connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def _hostile(tmp_path: Path, port: int) -> dict[str, str]:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER")
    body = ('<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
            'creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList>{}</EventList>'
            '</EPCISBody></epcis:EPCISDocument>')
    return {
        "billion laughs": LAUGHS,
        "external entity (file)": '<?xml version="1.0"?>\n<!DOCTYPE epcis:EPCISDocument [\n'
            '<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + body.format("&xxe;"),
        "external entity (secret file)": '<!DOCTYPE d [<!ENTITY xxe SYSTEM '
            f'"file://{secret}">]>' + body.format("&xxe;"),
        "external entity (network)": '<!DOCTYPE d [<!ENTITY xxe SYSTEM '
            f'"http://127.0.0.1:{port}/x">]>' + body.format("&xxe;"),
        "parameter entity": '<!DOCTYPE d [<!ENTITY % pe SYSTEM '
            f'"http://127.0.0.1:{port}/pe"> %pe;]>' + body.format(""),
        "internal subset": '<!DOCTYPE epcis:EPCISDocument [<!ELEMENT EPCISBody ANY>]>'
            + body.format(""),
        "empty internal subset": "<!DOCTYPE d []>" + body.format(""),
        "external DTD": f'<!DOCTYPE d SYSTEM "http://127.0.0.1:{port}/d.dtd">' + body.format(""),
        "external DTD (file)": '<!DOCTYPE d PUBLIC "-//x//y" "file:///etc/passwd">'
            + body.format(""),
    }


def test_hostile_xml_is_refused_and_nothing_is_fetched(schemas: EpcisSchemas, tmp_path: Path,
                                                       listener: socket.socket) -> None:
    cases = _hostile(tmp_path, listener.getsockname()[1])
    for name, text in cases.items():
        rejection = _first(schemas.validate_xml_document, text.encode())
        assert rejection.field == "DOCTYPE", name
        assert ("internal subset" in rejection.reason or "external DTD" in rejection.reason
                or "entity declaration" in rejection.reason), (name, rejection.reason)
        assert "SECRET-MARKER" not in str(rejection) and "root:" not in str(rejection), name
        with pytest.raises(SchemaRejection):
            root_kind(text.encode())
    assert not _connected(listener)


def test_lxml_alone_neither_expands_nor_fetches(schemas: EpcisSchemas, tmp_path: Path,
                                                listener: socket.socket,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the DOCTYPE check switched off, the hardened lxml parser
    still substitutes no entity and opens no file or socket."""
    monkeypatch.setattr(epcis_schemas, "_check_prolog", lambda data: None)
    refused = 0
    for name, text in _hostile(tmp_path, listener.getsockname()[1]).items():
        try:
            schemas.validate_xml_document(text.encode())
        except SchemaRejection as rejection:
            assert "SECRET-MARKER" not in str(rejection) and "root:" not in str(rejection), name
            assert "lollollol" not in str(rejection), name
            refused += 1
    assert refused == 4  # the laughs (libxml2's amplification limit) and the 3 references
    assert not _connected(listener)


def test_schema_location_hints_are_not_followed(schemas: EpcisSchemas,
                                                listener: socket.socket) -> None:
    text = (VECTORS / "xml" / "Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_text()
    hint = (f'xsi:schemaLocation="urn:epcglobal:epcis:xsd:2 '
            f'http://127.0.0.1:{listener.getsockname()[1]}/epcis.xsd" schemaVersion=')
    assert schemas.validate_xml_document(text.replace("schemaVersion=", hint, 1).encode())
    assert not _connected(listener)


def test_the_bare_doctype_of_gs1_examples_is_allowed(schemas: EpcisSchemas) -> None:
    data = (VECTORS / "xml" / "WithFullCombinationOfFields" /
            "object_event_all_possible_fields.xml").read_bytes()
    assert b"<!DOCTYPE project>" in data
    assert schemas.validate_xml_document(data) == "EPCISDocument"


# --- bounds -------------------------------------------------------------------------------


def test_documents_past_the_size_bound_are_too_large(schemas: EpcisSchemas) -> None:
    big = b" " * (MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(TooLarge):
        schemas.validate_xml_document(big)
    with pytest.raises(TooLarge):
        load_json(big)
    assert TooLarge("x").http_status == 413


def test_json_depth_and_node_bounds(schemas: EpcisSchemas) -> None:
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(TooLarge):
        schemas.validate_json_document({"type": "EPCISDocument", "x": deep})
    with pytest.raises(TooLarge):
        load_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(TooLarge):
        schemas.validate_query_body({"eventType": [0] * MAX_JSON_NODES})


def test_load_json_refuses_what_is_not_json() -> None:
    with pytest.raises(SchemaRejection, match="NaN"):
        load_json(b'{"quantity": NaN}')
    assert _first(load_json, b'{"a": 1,\n}').line == 2
    assert _first(load_json, b"\xff").detail.startswith("not UTF-8")
    # GS1's own AssociationEvent-h repeats eventID: accepted, the last value kept.
    assert load_json(b'{"a": 1, "a": 2}') == {"a": 2}


def test_readable_path() -> None:
    assert readable_path(["epcisBody", "eventList", 0, "action"]) == "epcisBody.eventList[0].action"
    assert readable_path(["@context"]) == "@context"
    assert readable_path(["ilmd", "cbvmda:lotNumber"]) == "ilmd.cbvmda:lotNumber"
    assert readable_path(["ilmd", "https://ex.com/a.b"]) == 'ilmd["https://ex.com/a.b"]'


# --- the folder ---------------------------------------------------------------------------


def _copy_of_vectors(tmp_path: Path) -> Path:
    folder = tmp_path / "epcis"
    for part in ("schema", "xsd"):
        shutil.copytree(VECTORS / part, folder / part)
    for path in folder.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return folder


def test_a_copied_folder_loads(tmp_path: Path) -> None:
    schemas = EpcisSchemas.load(_copy_of_vectors(tmp_path))
    assert len(schemas.query_schema_repairs) == 88


@pytest.mark.parametrize("missing", ["xsd/EPCglobal-epcis-2_0.xsd",
                                     "xsd/EPCglobal-epcis-query-2_0.xsd",
                                     "schema/EPCIS-JSON-Schema.json",
                                     "schema/query-schema.json"])
def test_a_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    folder = _copy_of_vectors(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(ConfigError, match=re.escape(f"{missing} is missing")):
        EpcisSchemas.load(folder)


def test_a_missing_import_is_named(tmp_path: Path) -> None:
    folder = _copy_of_vectors(tmp_path)
    (folder / "xsd" / "Partner.xsd").unlink()
    with pytest.raises(ConfigError, match=r"Partner\.xsd"):
        EpcisSchemas.load(folder)


def test_an_import_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = _copy_of_vectors(tmp_path)
    xsd = folder / "xsd" / "EPCglobal-epcis-2_0.xsd"
    (folder / "EPCglobal.xsd").write_bytes((folder / "xsd" / "EPCglobal.xsd").read_bytes())
    xsd.write_text(xsd.read_text().replace('schemaLocation="./EPCglobal.xsd"',
                                           'schemaLocation="../EPCglobal.xsd"'))
    with pytest.raises(ConfigError, match=r"outside xsd/: \S*/epcis/EPCglobal\.xsd$"):
        EpcisSchemas.load(folder)


def test_a_broken_schema_file_is_named(tmp_path: Path) -> None:
    folder = _copy_of_vectors(tmp_path)
    (folder / "schema" / "EPCIS-JSON-Schema.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"EPCIS-JSON-Schema\.json is not JSON"):
        EpcisSchemas.load(folder)
    with pytest.raises(ConfigError, match="not a directory"):
        EpcisSchemas.load(tmp_path / "nowhere")
