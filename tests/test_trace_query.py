"""The EPCIS 2.0 simple event query (contracts/trace/query.py).

Evidence, strongest first:
* the 14 derived queries over ../shared/vectors/epcis/json with their exact answers
  (queries/derived), each file captured alone, in body and in URL form; for
  `match-anyepcclass-lgtin` tidechain's answer is the URN = Digital Link one;
* the openepcis query bodies: the valid one parses, the invalid ones are refused
  naming the parameter;
* every rejection of `parse_query`, by parameter name;
* Hypothesis: corpus events match single-parameter queries built from their own values
  and do not match queries with a value they do not hold (both counted); URN and
  Digital Link spellings give the same answers; `narrowing` never loses a match.
"""

from __future__ import annotations

import ast
import collections
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.epcis_vectors import require_vectors
from tidechain.contracts.trace.event_hash import (
    BIZ_STEPS,
    DISPOSITIONS,
    canonical_time,
    document_events,
)
from tidechain.contracts.trace.identifiers import canonical_id, event_identifiers
from tidechain.contracts.trace.query import (
    MAX_PARAMETERS,
    MAX_RESULT_EVENTS,
    MAX_VALUE_CHARS,
    MAX_VALUES_PER_PARAMETER,
    EventQuery,
    QueryParameterError,
    QueryTooLarge,
    Row,
    canonical_biz_step,
    parse_query,
)
from tidechain.core.errors import Rejected, TooLarge

VECTORS = require_vectors()

RECORD_TIME_MS = 1_700_000_000_000
"""The fixed recordTime of every captured event (2023-11-14T22:13:20Z)."""

JSON_DIR = VECTORS / "json"
DERIVED = json.loads((VECTORS / "queries" / "derived" / "derived-answers.json").read_text())
OPENEPCIS = VECTORS / "queries" / "openepcis"


def _load_corpus() -> dict[str, list[Mapping[str, Any]]]:
    """Each json/ file's events, by path relative to json/ (the derived answers' names)."""
    corpus = {}
    for path in sorted(JSON_DIR.rglob("*.jsonld")):
        events, _ = document_events(json.loads(path.read_text()))
        corpus[path.relative_to(JSON_DIR).as_posix()] = list(events)
    return corpus


CORPUS = _load_corpus()
ALL_EVENTS = [event for events in CORPUS.values() for event in events]


def _url_form(query: Mapping[str, Any]) -> dict[str, str]:
    """A body-form query as URL parameters (lists pipe-delimited, as the REST binding)."""
    out = {}
    for name, value in query.items():
        if isinstance(value, list):
            out[name] = "|".join(str(item) for item in value)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out


def _answer(query: EventQuery, corpus: Mapping[str, Sequence[Mapping[str, Any]]]
            ) -> list[list[Any]]:
    """The rows of each file captured alone into a fresh repository (the robust way)."""
    rows: list[list[Any]] = []
    for name, events in corpus.items():
        repository = [Row(event, RECORD_TIME_MS, index) for index, event in enumerate(events)]
        matching = [row for row in repository
                    if query.matches(row.event, record_time_ms=row.record_time_ms)]
        rows.extend([name, row.ref] for row in query.order(matching))
    return sorted(rows)


def _index_keys(event: Mapping[str, Any]) -> dict[str, set[str]]:
    """The keys under which the contract indexes an event (what `narrowing` names)."""
    identifiers = {identifier for _, identifier in event_identifiers(event)}
    biz_step = event.get("bizStep")
    return {"eventID": {str(event.get("eventID", "")).strip()},
            "epc": identifiers, "class": identifiers,
            "bizStep": {canonical_biz_step(biz_step)} if isinstance(biz_step, str) else set(),
            "eventType": {str(event.get("type"))}}


def _check_narrowing(query: EventQuery, event: Mapping[str, Any]) -> None:
    narrowing = query.narrowing()
    if narrowing is not None and query.matches(event, record_time_ms=RECORD_TIME_MS):
        kind, keys = narrowing
        assert _index_keys(event)[kind] & set(keys), (kind, keys)


# --- the derived answers ------------------------------------------------------------------
DERIVED_QUERIES = DERIVED["queries"]


def test_derived_answers_cover_the_corpus() -> None:
    assert len(DERIVED_QUERIES) == 14
    assert len(CORPUS) == 31 and len(ALL_EVENTS) == 38


@pytest.mark.parametrize("case", DERIVED_QUERIES, ids=[q["name"] for q in DERIVED_QUERIES])
@pytest.mark.parametrize("source", ["body", "url"])
def test_derived_answer(case: dict[str, Any], source: str) -> None:
    params = case["query"] if source == "body" else _url_form(case["query"])
    query = parse_query(params, source="body" if source == "body" else "url")
    expected = case.get("expected_if_urn_and_digital_link_are_equivalent", case["expected"])
    assert _answer(query, CORPUS) == sorted(expected)
    for event in ALL_EVENTS:
        _check_narrowing(query, event)


def test_lgtin_query_follows_the_equivalence_policy() -> None:
    case = next(q for q in DERIVED_QUERIES if q["name"] == "match-anyepcclass-lgtin")
    answer = _answer(parse_query(case["query"], source="body"), CORPUS)
    assert answer != sorted(case["expected"])  # the exact-string answer is not ours
    assert ["WithDigitalLinkID/Example_9.6.3-AggregationEventWithDigitalLink.jsonld", 0] \
        in answer


def test_derived_answers_are_the_same_with_every_identifier_as_digital_link() -> None:
    """Rewrite every EPC and class of the corpus to its Digital Link: same answers."""
    def rewritten(event: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(event)
        if isinstance(out.get("parentID"), str):
            out["parentID"] = canonical_id(out["parentID"])
        for name in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
            if isinstance(out.get(name), list):
                out[name] = [canonical_id(epc) for epc in out[name]]
        for name in ("quantityList", "childQuantityList", "inputQuantityList",
                     "outputQuantityList"):
            if isinstance(out.get(name), list):
                out[name] = [{**q, "epcClass": canonical_id(q["epcClass"])} for q in out[name]]
        return out

    as_links = {name: [rewritten(e) for e in events] for name, events in CORPUS.items()}
    changed = sum(rewritten(e) != e for e in ALL_EVENTS)
    assert changed > 20
    for case in DERIVED_QUERIES:
        query = parse_query(case["query"], source="body")
        assert _answer(query, as_links) == _answer(query, CORPUS), case["name"]


# --- the openepcis query bodies -----------------------------------------------------------
def test_openepcis_simple_event_query_parses() -> None:
    body = json.loads((OPENEPCIS / "SimpleEventQuery.json").read_text())
    query = parse_query(body, source="body")
    assert [c.param for c in query.conditions] == [
        "eventType", "GE_eventTime", "LT_eventTime", "EQ_action", "EQ_bizStep",
        "EQ_disposition", "EQ_bizLocation", "MATCH_epc", "GE_quantity", "LT_quantity"]
    assert (query.order_by, query.order_direction, query.event_count_limit) == (
        "eventTime", "DESC", 100)
    event = {"type": "ObjectEvent", "action": "ADD", "bizStep": "shipping",
             "disposition": "urn:epcglobal:cbv:disp:in_transit",
             "eventTime": "2026-06-01T12:00:00.000+02:00", "eventTimeZoneOffset": "+02:00",
             "bizLocation": {"id": "https://id.gs1.org/414/9521141123452"},
             "epcList": ["https://id.gs1.org/gtin/9521141012345/ser/2017"],
             "quantityList": [{"epcClass": "urn:epc:class:lgtin:9521141.012345.L1",
                               "quantity": 20}]}
    assert query.matches(event, record_time_ms=RECORD_TIME_MS)
    assert not query.matches({**event, "quantityList": [{"epcClass": "x", "quantity": 500}]},
                             record_time_ms=RECORD_TIME_MS)
    assert not query.matches({**event, "eventTime": "2026-12-31T23:59:59+01:00"},
                             record_time_ms=RECORD_TIME_MS)


@pytest.mark.parametrize(("file", "param"), [
    ("Query_with_invalid_values.json", "GE_eventTime"),  # the first bad one, in order
    ("Query_with_unknown_parameter.json", "GE_eventDate"),
])
def test_openepcis_invalid_queries_are_refused(file: str, param: str) -> None:
    body = json.loads((OPENEPCIS / "invalid" / file).read_text())
    with pytest.raises(QueryParameterError) as caught:
        parse_query(body, source="body")
    assert caught.value.param == param


@pytest.mark.parametrize("param", ["GE_eventTime", "EQ_action", "orderDirection"])
def test_openepcis_invalid_values_each_refused(param: str) -> None:
    """Each bad value of Query_with_invalid_values.json is refused on its own."""
    body = json.loads((OPENEPCIS / "invalid" / "Query_with_invalid_values.json").read_text())
    alone = {name: value for name, value in body.items()
             if name in ("@context", "eventType", param)}
    with pytest.raises(QueryParameterError) as caught:
        parse_query(alone, source="body")
    assert caught.value.param == param


# --- rejections ---------------------------------------------------------------------------
TOO_MANY = "|".join(f"urn:epc:id:sgtin:0614141.107346.{n}"
                    for n in range(MAX_VALUES_PER_PARAMETER + 1))
REJECTIONS: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("unknown", {"GE_eventDate": "2020-01-01T00:00:00Z"}, "url", "GE_eventDate",
     "not a simple event query parameter"),
    ("unsupported", {"EQ_ILMD_cbvmda:lotNumber": ["1"]}, "body", "EQ_ILMD_cbvmda:lotNumber",
     "does not support"),
    ("sensor", {"EQ_type": "Temperature"}, "url", "EQ_type", "does not support"),
    ("paging in a body", {"perPage": 10}, "body", "perPage", "not a simple event query"),
    ("time without offset", {"GE_eventTime": "2020-01-01T00:00:00"}, "url", "GE_eventTime",
     "offset"),
    ("time not a time", {"LT_recordTime": "yesterday"}, "url", "LT_recordTime", "offset"),
    ("time impossible", {"LT_eventTime": "2020-02-30T00:00:00Z"}, "url", "LT_eventTime",
     "not a valid date"),
    ("plus decoded as space", {"GE_eventTime": "2020-01-01T00:00:00 01:00"}, "url",
     "GE_eventTime", "%2B"),
    ("time as a number", {"GE_eventTime": 1577836800}, "body", "GE_eventTime", "string"),
    ("error declaration time", {"GE_errorDeclarationTime": "2020"}, "url",
     "GE_errorDeclarationTime", "offset"),
    ("event type", {"eventType": "ObjectEvent|Shipment"}, "url", "eventType", "Shipment"),
    ("event type case", {"eventType": ["objectevent"]}, "body", "eventType", "objectevent"),
    ("action", {"EQ_action": "ADD|SHIPPED"}, "url", "EQ_action", "SHIPPED"),
    ("bizStep word", {"EQ_bizStep": "shiping"}, "url", "EQ_bizStep", "neither a CBV value"),
    ("too many values", {"MATCH_epc": TOO_MANY}, "url", "MATCH_epc",
     f"more than {MAX_VALUES_PER_PARAMETER} values"),
    ("given twice", {"EQ_bizStep": ["shipping", "receiving"]}, "url", "EQ_bizStep",
     "more than once"),
    ("empty value", {"EQ_bizStep": "shipping||receiving"}, "url", "EQ_bizStep", "empty"),
    ("empty list", {"EQ_bizStep": []}, "body", "EQ_bizStep", "at least one"),
    ("string for a list", {"EQ_bizStep": "shipping"}, "body", "EQ_bizStep", "list"),
    ("value too long", {"EQ_readPoint": "urn:x:" + "a" * MAX_VALUE_CHARS}, "url",
     "EQ_readPoint", f"longer than {MAX_VALUE_CHARS}"),
    ("orderBy", {"orderBy": "quantity"}, "url", "orderBy", "eventTime or recordTime"),
    ("orderDirection", {"orderBy": "eventTime", "orderDirection": "UP"}, "url",
     "orderDirection", "ASC or DESC"),
    ("eventCountLimit zero", {"orderBy": "eventTime", "eventCountLimit": "0"}, "url",
     "eventCountLimit", "positive integer"),
    ("eventCountLimit negative", {"orderBy": "eventTime", "eventCountLimit": -3}, "body",
     "eventCountLimit", "positive integer"),
    ("eventCountLimit text", {"orderBy": "eventTime", "eventCountLimit": "ten"}, "url",
     "eventCountLimit", "positive integer"),
    ("eventCountLimit float", {"orderBy": "eventTime", "eventCountLimit": 1.5}, "body",
     "eventCountLimit", "positive integer"),
    ("eventCountLimit boolean", {"orderBy": "eventTime", "eventCountLimit": True}, "body",
     "eventCountLimit", "positive integer"),
    ("maxEventCount zero", {"maxEventCount": 0}, "body", "maxEventCount", "positive integer"),
    ("maxEventCount huge", {"maxEventCount": "99999999999"}, "url", "maxEventCount",
     "positive integer"),
    ("both counts", {"orderBy": "eventTime", "eventCountLimit": 5, "maxEventCount": 5},
     "body", "maxEventCount", "exclude each other"),
    ("limit without orderBy", {"eventCountLimit": "5"}, "url", "eventCountLimit",
     "needs orderBy"),
    ("perPage", {"perPage": "0"}, "url", "perPage", "positive integer"),
    ("star in the middle", {"MATCH_epc": "urn:epc:idpat:sgtin:0614141.*.2017"}, "url",
     "MATCH_epc", "rightmost"),
    ("pattern fields", {"MATCH_epc": "urn:epc:idpat:sgtin:0614141.*"}, "url", "MATCH_epc",
     "3 fields"),
    ("pattern prefix", {"MATCH_anyEPC": "urn:epc:idpat:sscc:12.*"}, "url", "MATCH_anyEPC",
     "company prefix"),
    ("pattern key", {"MATCH_epc": "urn:epc:idpat:sgtin:0614141.1.*"}, "url", "MATCH_epc",
     "no valid sgtin"),
    ("exists", {"EXISTS_errorDeclaration": "yes"}, "url", "EXISTS_errorDeclaration",
     "true or false"),
    ("bizTransaction type", {"EQ_bizTransaction_PO": "urn:x:1"}, "url",
     "EQ_bizTransaction_PO", "type name"),
    ("quantity", {"GE_quantity": "many"}, "url", "GE_quantity", "number"),
]


@pytest.mark.parametrize(("params", "source", "param", "reason"),
                         [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_rejection_names_the_parameter(params: dict[str, Any], source: str, param: str,
                                       reason: str) -> None:
    with pytest.raises(QueryParameterError) as caught:
        parse_query(params, source="url" if source == "url" else "body")
    error = caught.value
    assert error.param == param
    assert reason in error.reason, error.reason
    assert isinstance(error, Rejected) and error.http_status == 400
    assert error.to_dict()["error"] == "query_parameter"


def test_too_many_parameters() -> None:
    params = {f"EQ_bizTransaction_t{n}": "urn:x:1" for n in range(MAX_PARAMETERS + 1)}
    with pytest.raises(QueryParameterError) as caught:
        parse_query(params, source="url")
    assert caught.value.param == f"EQ_bizTransaction_t{MAX_PARAMETERS}"
    del params[f"EQ_bizTransaction_t{MAX_PARAMETERS}"]
    assert len(parse_query(params, source="url").conditions) == MAX_PARAMETERS


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(QueryParameterError):
        parse_query([], source="body")  # type: ignore[arg-type]


def test_long_names_are_not_echoed_whole() -> None:
    with pytest.raises(QueryParameterError) as caught:
        parse_query({"x" * 10_000: "1"}, source="url")
    assert len(str(caught.value)) < 300


def test_paging_is_returned_not_matched() -> None:
    query = parse_query({"perPage": "25", "nextPageToken": "abc", "eventType": "ObjectEvent"},
                        source="url")
    assert (query.per_page, query.next_page_token) == (25, "abc")
    assert [c.param for c in query.conditions] == ["eventType"]


def test_a_single_url_value_may_come_as_a_one_item_list() -> None:
    (listed,) = parse_query({"EQ_action": ["ADD"]}, source="url").conditions
    (plain,) = parse_query({"EQ_action": "ADD"}, source="url").conditions
    assert isinstance(listed, type(plain))
    assert (listed.param, getattr(listed, "values", None)) == ("EQ_action", frozenset({"ADD"}))
    assert getattr(plain, "values", None) == frozenset({"ADD"})


def test_exists_false_and_empty_query_match_everything() -> None:
    for params in ({}, {"EXISTS_errorDeclaration": "false"}, {"@context": "x"}):
        query = parse_query(params, source="url" if "@context" not in params else "body")
        assert query.conditions == ()
        assert all(query.matches(e, record_time_ms=RECORD_TIME_MS) for e in ALL_EVENTS)
        assert query.narrowing() is None
    assert parse_query({"EXISTS_errorDeclaration": None}, source="body").conditions


# --- semantics ----------------------------------------------------------------------------
def _matching(params: Mapping[str, Any], source: str = "url") -> list[list[Any]]:
    return _answer(parse_query(params, source="url" if source == "url" else "body"), CORPUS)


@pytest.mark.parametrize("spelling", [
    "shipping", "urn:epcglobal:cbv:bizstep:shipping", "https://ref.gs1.org/cbv/BizStep-shipping",
    "cbv:BizStep-shipping"])
def test_cbv_spellings_are_one_value(spelling: str) -> None:
    assert _matching({"EQ_bizStep": spelling}) == _matching({"EQ_bizStep": "shipping"})
    assert len(_matching({"EQ_bizStep": "shipping"})) > 3
    event = {"type": "ObjectEvent", "eventTime": "2020-01-01T00:00:00Z", "bizStep": spelling,
             "disposition": "https://ref.gs1.org/cbv/Disp-in_transit"}
    for query_spelling in ("shipping", "urn:epcglobal:cbv:bizstep:shipping"):
        assert parse_query({"EQ_bizStep": query_spelling, "EQ_disposition": "in_transit"},
                           source="url").matches(event, record_time_ms=0)


def test_vocabulary_tables_agree_with_the_hash() -> None:
    assert canonical_biz_step("shipping") == BIZ_STEPS["shipping"]
    query = parse_query({"EQ_persistentDisposition_set": "completeness_inferred"},
                        source="url")
    assert query.matches({"persistentDisposition": {"set": [DISPOSITIONS[
        "completeness_inferred"]]}}, record_time_ms=0)


def test_times_are_instants() -> None:
    event = {"eventTime": "2005-04-03T20:33:31.116-06:00"}  # 2005-04-04T02:33:31.116Z
    for bound in ("2005-04-04T02:33:31.116Z", "2005-04-04T04:33:31.116+02:00",
                  "2005-04-03T20:33:31.1160-06:00"):
        assert parse_query({"GE_eventTime": bound}, source="url").matches(event,
                                                                          record_time_ms=0)
        assert not parse_query({"LT_eventTime": bound}, source="url").matches(
            event, record_time_ms=0)
    assert not parse_query({"GE_eventTime": "2005-04-04T02:33:31.117Z"}, source="url"
                           ).matches(event, record_time_ms=0)


def test_record_time_is_the_repositorys() -> None:
    query = parse_query({"GE_recordTime": "2023-11-14T22:13:20Z",
                         "LT_recordTime": "2023-11-14T22:13:20.001Z"}, source="url")
    assert query.matches({}, record_time_ms=RECORD_TIME_MS)
    assert not query.matches({}, record_time_ms=RECORD_TIME_MS + 1)
    assert not query.matches({}, record_time_ms=RECORD_TIME_MS - 1)


def test_error_declaration_parameters() -> None:
    declared = _matching({"EXISTS_errorDeclaration": "true"})
    assert len(declared) == 4  # all four say incorrect_data
    assert _matching({"EQ_errorReason": "incorrect_data"}) == declared
    assert _matching({"EQ_errorReason": "urn:epcglobal:cbv:er:incorrect_data"}) == declared
    assert _matching({"EQ_errorReason": "did_not_occur"}) == []
    assert _matching({"GE_errorDeclarationTime": "1970-01-01T00:00:00Z"}) == declared
    assert _matching({"LT_errorDeclarationTime": "1970-01-01T00:00:00Z"}) == []
    # declared 2006-11-07T14:00+01:00 twice, 2013-11-07 and 2020-01-15: two before 2007
    assert len(_matching({"LT_errorDeclarationTime": "2006-11-07T13:00:00.001Z"})) == 2
    assert len(_matching({"LT_errorDeclarationTime": "2006-11-07T13:00:00Z"})) == 0
    # query-schema.json spells it GE_errorDeclaration_Time: the same parameter
    assert _matching({"GE_errorDeclaration_Time": "2013-11-07T13:00:00Z"}) == _matching(
        {"GE_errorDeclarationTime": "2013-11-07T13:00:00Z"}) != []
    xml_shaped = {"errorDeclaration": {"declarationTime": "2020-01-15T00:00:00+01:00",
                                       "correctiveEventIDs": {"correctiveEventID": "urn:x:1"}}}
    assert parse_query({"EQ_correctiveEventID": "urn:x:1"}, source="url").matches(
        xml_shaped, record_time_ms=0)


SGTIN_2017 = "urn:epc:id:sgtin:0614141.107346.2017"
DL_2017 = "https://id.gs1.org/01/10614141073464/21/2017"


@pytest.mark.parametrize(("pattern", "matches"), [
    ("urn:epc:idpat:sgtin:0614141.107346.*", True),
    ("https://id.gs1.org/01/10614141073464", True),  # the same value as the pattern
    ("https://example.com/01/10614141073464", True),  # a Digital Link on another host
    ("urn:epc:idpat:sgtin:0614141.*.*", True),
    ("urn:epc:idpat:sgtin:*.*.*", True),
    ("urn:epc:idpat:sgtin:0614142.*.*", False),
    ("urn:epc:idpat:sgtin:0614141.107347.*", False),
    ("urn:epc:idpat:upui:0614141.107346.*", False),
    ("urn:epc:idpat:sscc:*.*", False),
    ("urn:epc:id:sgtin:0614141.107346.2017", True),
    ("urn:epc:id:sgtin:0614141.107346.2018", False),
    ("urn:epc:class:lgtin:0614141.107346.2017", False),  # a lot is not a serial
])
def test_instance_patterns(pattern: str, matches: bool) -> None:
    query = parse_query({"MATCH_epc": pattern}, source="url")
    for spelling in (SGTIN_2017, DL_2017):
        assert query.matches({"epcList": [spelling]}, record_time_ms=0) is matches


@pytest.mark.parametrize(("pattern", "epc", "matches"), [
    ("urn:epc:idpat:sgln:0614141.00777.*", "urn:epc:id:sgln:0614141.00777.0", True),
    ("urn:epc:idpat:sgln:0614141.00777.*", "urn:epc:id:sgln:0614141.00777.12", True),
    ("urn:epc:idpat:sgln:0614141.00778.*", "urn:epc:id:sgln:0614141.00777.12", False),
    ("urn:epc:idpat:sscc:0614141.*", "urn:epc:id:sscc:0614141.1234567890", True),
    ("urn:epc:idpat:sscc:0614142.*", "urn:epc:id:sscc:0614141.1234567890", False),
    ("urn:epc:idpat:grai:0614141.12345.*", "urn:epc:id:grai:0614141.12345.400", True),
    ("urn:epc:idpat:grai:0614141.*.*", "urn:epc:id:grai:0614141.12345.400", True),
    ("urn:epc:idpat:grai:0614141.12346.*", "urn:epc:id:grai:0614141.12345.400", False),
    ("urn:epc:idpat:giai:0614141.*", "urn:epc:id:giai:0614141.A12", True),
    ("urn:epc:idpat:cpi:0614141.123ABC.*", "urn:epc:id:cpi:0614141.123ABC.1", True),
    ("urn:epc:idpat:itip:4012345.012345.01.02.*",
     "urn:epc:id:itip:4012345.012345.01.02.987", True),
    ("urn:epc:idpat:gid:95100000.12345.*", "urn:epc:id:gid:95100000.12345.400", True),
    ("urn:epc:idpat:gid:95100000.*.*", "urn:epc:id:gid:95100001.12345.400", False),
])
def test_patterns_of_other_schemes(pattern: str, epc: str, matches: bool) -> None:
    query = parse_query({"MATCH_anyEPC": pattern}, source="url")
    for spelling in {epc, canonical_id(epc)}:
        assert query.matches({"parentID": spelling}, record_time_ms=0) is matches, spelling


@pytest.mark.parametrize(("query_value", "event_class", "matches"), [
    ("urn:epc:idpat:sgtin:4012345.012345.*", "urn:epc:class:lgtin:4012345.012345.998877", True),
    ("urn:epc:idpat:sgtin:4012345.012345.*", "urn:epc:idpat:sgtin:4012345.012345.*", True),
    ("https://id.gs1.org/01/04012345123456", "urn:epc:class:lgtin:4012345.012345.998877", True),
    ("urn:epc:idpat:sgtin:4012345.*.*", "https://id.gs1.org/01/04012345123456/10/998877", True),
    ("urn:epc:class:lgtin:4012345.012345.998877", "urn:epc:idpat:sgtin:4012345.012345.*",
     False),  # a lot does not match the undifferentiated GTIN
    ("urn:epc:class:lgtin:4012345.012345.998877",
     "https://id.gs1.org/01/04012345123456/10/998877", True),
    ("urn:epc:idpat:sgtin:4012345.012346.*", "urn:epc:class:lgtin:4012345.012345.998877", False),
])
def test_class_patterns(query_value: str, event_class: str, matches: bool) -> None:
    query = parse_query({"MATCH_epcClass": query_value}, source="url")
    event = {"quantityList": [{"epcClass": event_class, "quantity": 1}]}
    assert query.matches(event, record_time_ms=0) is matches
    assert not parse_query({"MATCH_inputEPCClass": query_value}, source="url").matches(
        event, record_time_ms=0)


def test_typed_lists() -> None:
    event = {"bizTransactionList": [
        {"type": "https://ref.gs1.org/cbv/BTT-po", "bizTransaction": "urn:x:po:1"},
        {"bizTransaction": "urn:x:untyped"}],
        "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:0614141.00001"}]}
    assert parse_query({"EQ_bizTransaction_po": "urn:x:po:1"}, source="url").matches(
        event, record_time_ms=0)
    assert not parse_query({"EQ_bizTransaction_inv": "urn:x:po:1"}, source="url").matches(
        event, record_time_ms=0)
    assert not parse_query({"EQ_bizTransaction_po": "urn:x:untyped"}, source="url").matches(
        event, record_time_ms=0)
    source = parse_query({"EQ_source_owning_party": canonical_id(
        "urn:epc:id:pgln:0614141.00001")}, source="url")
    assert source.matches(event, record_time_ms=0)
    assert not parse_query({"EQ_destination_owning_party": "urn:epc:id:pgln:0614141.00001"},
                           source="url").matches(event, record_time_ms=0)


def test_quantities_compare_exactly() -> None:
    event = {"childQuantityList": [{"epcClass": "x", "quantity": 200.5}]}
    assert parse_query({"EQ_quantity": [200.5, 7]}, source="body").matches(event,
                                                                           record_time_ms=0)
    assert parse_query({"EQ_quantity": "200.50"}, source="url").matches(event,
                                                                       record_time_ms=0)
    assert not parse_query({"GT_quantity": "200.5"}, source="url").matches(event,
                                                                          record_time_ms=0)
    assert parse_query({"LE_quantity": 200.5}, source="body").matches(event, record_time_ms=0)


# --- order --------------------------------------------------------------------------------
def _rows() -> list[Row[int]]:
    times = ["2020-01-01T00:00:02Z", "2020-01-01T00:00:01Z", "2020-01-01T01:00:01+01:00",
             "2020-01-01T00:00:03Z"]
    rows = [Row({"eventTime": t}, RECORD_TIME_MS - index, index) for index, t in enumerate(times)]
    return [*rows, Row({}, RECORD_TIME_MS, 4)]  # no eventTime: last


def test_order_by_event_time() -> None:
    ascending = parse_query({"orderBy": "eventTime", "orderDirection": "ASC"}, source="url")
    assert [row.ref for row in ascending.order(_rows())] == [1, 2, 0, 3, 4]  # ties stable
    descending = parse_query({"orderBy": "eventTime"}, source="url")  # DESC by default
    assert [row.ref for row in descending.order(_rows())] == [3, 0, 1, 2, 4]
    first = parse_query({"orderBy": "eventTime", "eventCountLimit": 2}, source="body")
    assert [row.ref for row in first.order(_rows())] == [3, 0]


def test_order_by_record_time_and_unordered() -> None:
    query = parse_query({"orderBy": "recordTime", "orderDirection": "ASC"}, source="url")
    assert [row.ref for row in query.order(_rows())] == [3, 2, 1, 0, 4]
    assert [row.ref for row in parse_query({}, source="url").order(_rows())] == [0, 1, 2, 3, 4]


def test_max_event_count() -> None:
    query = parse_query({"maxEventCount": "5"}, source="url")
    assert len(query.order(_rows())) == 5
    with pytest.raises(QueryTooLarge) as caught:
        parse_query({"maxEventCount": "4"}, source="url").order(_rows())
    assert isinstance(caught.value, TooLarge) and caught.value.http_status == 413
    with pytest.raises(QueryTooLarge):
        parse_query({}, source="url").order([Row({}, 0, None)] * (MAX_RESULT_EVENTS + 1))


# --- narrowing ----------------------------------------------------------------------------
def test_narrowing_prefers_event_id_then_identifiers_then_biz_step_then_type() -> None:
    params = {"eventType": "ObjectEvent", "EQ_bizStep": "urn:epcglobal:cbv:bizstep:shipping"}
    assert parse_query(params, source="url").narrowing() == (
        "bizStep", ("https://ref.gs1.org/cbv/BizStep-shipping",))
    params["MATCH_anyEPC"] = f"{SGTIN_2017}|urn:epc:id:sgtin:0614141.107346.2018"
    params["MATCH_epc"] = SGTIN_2017
    assert parse_query(params, source="url").narrowing() == ("epc", (DL_2017,))
    params["EQ_eventID"] = "urn:uuid:1"
    assert parse_query(params, source="url").narrowing() == ("eventID", ("urn:uuid:1",))
    assert parse_query({"eventType": "ObjectEvent|AggregationEvent"}, source="url"
                       ).narrowing() == ("eventType", ("AggregationEvent", "ObjectEvent"))
    assert parse_query({"MATCH_epc": "urn:epc:idpat:sgtin:0614141.107346.*"}, source="url"
                       ).narrowing() is None
    assert parse_query({"MATCH_epcClass": "urn:epc:class:lgtin:4012345.012345.998877"},
                       source="url").narrowing() == (
        "class", ("https://id.gs1.org/01/04012345123456/10/998877",))


# --- properties over the corpus -----------------------------------------------------------
def _ms_text(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(
        timespec="milliseconds")


def _ms(text: str) -> int:
    at = datetime.fromisoformat(canonical_time(text)) - datetime(1970, 1, 1, tzinfo=UTC)
    return at // timedelta(milliseconds=1)


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, str)]


_TYPE_WORD = re.compile(r"(?:https://ref\.gs1\.org/cbv/(?:BTT|SDT)-)?([a-z][a-zA-Z0-9_]+)")


def _own_values(event: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(parameter, a value of the event's own that matches it, a value that does not)."""
    other = "urn:epc:id:sgtin:9999999.999999.absent"
    other_class = "urn:epc:class:lgtin:9999999.999999.absent"
    yield "eventType", event["type"], next(t for t in ("ObjectEvent", "AggregationEvent")
                                           if t != event["type"])
    if "action" in event:
        yield "EQ_action", event["action"], "DELETE" if event["action"] != "DELETE" else "ADD"
    for name, words, others in (("bizStep", BIZ_STEPS, ("void_shipping", "destroying")),
                                ("disposition", DISPOSITIONS, ("stolen", "expired"))):
        if name in event:
            mine = {event[name], words.get(event[name])}
            yield f"EQ_{name}", event[name], next(w for w in others if words[w] not in mine)
    for name in ("readPoint", "bizLocation"):
        if name in event:
            yield f"EQ_{name}", event[name]["id"], "urn:epc:id:sgln:9999999.99999.0"
    lists = {"MATCH_epc": ("epcList", "childEPCs"), "MATCH_parentID": ("parentID",),
             "MATCH_inputEPC": ("inputEPCList",), "MATCH_outputEPC": ("outputEPCList",),
             "MATCH_anyEPC": ("epcList", "childEPCs", "parentID", "inputEPCList",
                              "outputEPCList")}
    for param, fields in lists.items():
        for name in fields:
            for epc in _strings(event.get(name)):
                yield param, epc, other
    classes = {"MATCH_epcClass": ("quantityList", "childQuantityList"),
               "MATCH_inputEPCClass": ("inputQuantityList",),
               "MATCH_outputEPCClass": ("outputQuantityList",),
               "MATCH_anyEPCClass": ("quantityList", "childQuantityList", "inputQuantityList",
                                     "outputQuantityList")}
    for param, fields in classes.items():
        for name in fields:
            for element in event.get(name, []):
                yield param, element["epcClass"], other_class
    for list_name, item, prefix in (("bizTransactionList", "bizTransaction",
                                     "EQ_bizTransaction_"),
                                    ("sourceList", "source", "EQ_source_"),
                                    ("destinationList", "destination", "EQ_destination_")):
        for entry in event.get(list_name, []):
            word = _TYPE_WORD.fullmatch(str(entry.get("type", "")))
            if word:
                yield prefix + word.group(1), entry[item], "urn:x:absent"
    for name in ("transformationID", "eventID"):
        if name in event:
            yield f"EQ_{name}", event[name], "urn:uuid:00000000-0000-4000-8000-000000000000"
    at = _ms(event["eventTime"])
    yield "GE_eventTime", event["eventTime"], _ms_text(at + 1)
    yield "LT_eventTime", _ms_text(at + 1), event["eventTime"]
    yield "GE_recordTime", _ms_text(RECORD_TIME_MS), _ms_text(RECORD_TIME_MS + 1)
    declaration = event.get("errorDeclaration")
    if declaration:
        yield "EQ_errorReason", declaration["reason"], "did_not_occur"
        for corrective in declaration.get("correctiveEventIDs", []):
            yield "EQ_correctiveEventID", corrective, "urn:uuid:absent"
    for part in ("set", "unset"):
        for disposition in event.get("persistentDisposition", {}).get(part, []):
            yield f"EQ_persistentDisposition_{part}", disposition, "stolen"


def test_own_values_cover_the_parameters() -> None:
    params = {param.partition("_bizTransaction_")[0] for event in ALL_EVENTS
              for param, _, _ in _own_values(event)}
    assert len(params) >= 24, sorted(params)


def test_events_match_their_own_values_and_not_others() -> None:
    counts: collections.Counter[str] = collections.Counter()

    @settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        event = data.draw(st.sampled_from(ALL_EVENTS))
        param, mine, absent = data.draw(st.sampled_from(list(_own_values(event))))
        spelling = data.draw(st.sampled_from([mine, canonical_id(mine)]))
        source = data.draw(st.sampled_from(["url", "body"]))
        note(f"{param}={spelling!r} ({source}) on {event.get('eventID')}")
        scalar = param.startswith(("GE_", "LT_"))

        def query(value: str) -> EventQuery:
            if source == "body" and not scalar:
                return parse_query({param: [value]}, source="body")
            return parse_query({param: value}, source="url" if source == "url" else "body")

        assert query(spelling).matches(event, record_time_ms=RECORD_TIME_MS)
        _check_narrowing(query(spelling), event)
        counts["match"] += 1
        assert not query(absent).matches(event, record_time_ms=RECORD_TIME_MS)
        counts["differ"] += 1
        counts[param] += 1

    run()
    assert counts["match"] > 0 and counts["differ"] > 0
    assert len(counts) > 12, counts  # many parameters were exercised


def test_urn_and_digital_link_spellings_give_the_same_answers() -> None:
    """Every identifier of the corpus, queried as written and as its Digital Link."""
    tried = converted = 0
    for event in ALL_EVENTS:
        for name in ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"):
            for epc in _strings(event.get(name)):
                as_written = _matching({"MATCH_anyEPC": epc})
                assert as_written == _matching({"MATCH_anyEPC": canonical_id(epc)})
                assert as_written, epc  # the event it came from, at least
                tried += 1
                converted += canonical_id(epc) != epc
    assert tried > 30 and converted > 20
    link_2017 = "https://id.gs1.org/01/70614141123451/21/2017"
    urn_2017 = "urn:epc:id:sgtin:0614141.712345.2017"  # the same item, as an EPC URN
    assert canonical_id(urn_2017) == link_2017
    assert _matching({"MATCH_epc": urn_2017}) == _matching({"MATCH_epc": link_2017}) == [
        ["WithDigitalLinkID/Example_9.6.1-ObjectEventWithDigitalLink.jsonld", 0],
        ["WithDigitalLinkID/Example_9.6.3-AggregationEventWithDigitalLink.jsonld", 0]]


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, *(
                        timezone(timedelta(minutes=m)) for m in (-600, -330, 60, 345, 840))])))
def test_times_are_compared_as_the_instants_datetime_computes(moment: datetime) -> None:
    text = moment.isoformat(timespec="milliseconds")
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    query = parse_query({"GE_recordTime": text}, source="url")
    assert query.matches({}, record_time_ms=expected)
    assert not query.matches({}, record_time_ms=expected - 1)


def test_the_module_is_pure() -> None:
    """No clock, I/O or randomness (ARCHITECTURE.md; test_architecture checks the rest)."""
    from tidechain.contracts.trace import query as module

    tree = ast.parse(Path(module.__file__ or "").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not imported & {"asyncio", "socket", "time", "random", "os", "datetime", "io"}
