"""Tracing a batch end to end (contracts/trace/lineage.py).

Evidence:
* a hand-built farm-to-retail scenario in EPCIS 2.0 JSON (builders below): the events,
  organisations, relations and recalls reached from an item, from its Digital Link
  spelling, from its case, pallet and lot; `affected_by_recall` of the lot;
* one small scenario per anomaly kind, each absent from the clean scenario;
* error declarations: both records appear, the declared one is marked and carries no
  anomaly, corrective ids are resolved;
* out-of-order arrival: every permutation Hypothesis tries gives the same trace up to
  refs (counted);
* bounds: fan-out past max_identifiers and max_events says which bound was hit;
* GS1's own examples in ../shared/vectors/epcis/json: a trace from every identifier
  they name runs, and items nobody commissioned are flagged.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.epcis_vectors import vectors_for_test
from tidechain.contracts.trace.event_hash import (
    BadEvent,
    canonical_time,
    document_events,
    event_hash,
)
from tidechain.contracts.trace.identifiers import canonical_id, event_identifiers
from tidechain.contracts.trace.lineage import (
    ANOMALY_KINDS,
    LIMIT_MAX_EVENTS,
    Trace,
    TraceEvent,
    TraceTruncated,
    affected_by_recall,
    cbv_word,
    to_json,
    to_text,
    trace,
)
from tidechain.core.errors import Rejected

Event = dict[str, Any]
Lookup = Callable[[str], Sequence[TraceEvent]]


# --- builders ------------------------------------------------------------------------------
def sgtin(serial: str) -> str:
    return f"urn:epc:id:sgtin:0614141.107346.{serial}"


def lot(number: str, company: str = "4012345.012345") -> str:
    return f"urn:epc:class:lgtin:{company}.{number}"


def sscc(reference: str) -> str:
    return f"urn:epc:id:sscc:0614141.{reference}"


def _base(kind: str, time: str, **fields: Any) -> Event:
    event: Event = {"type": kind, "eventTime": time, "eventTimeZoneOffset": time[-6:]
                    if time[-6] in "+-" else "+00:00"}
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def object_event(time: str, *, epcs: Sequence[str] = (), lots: Sequence[str] = (),
                 action: str = "OBSERVE", biz_step: str | None = None,
                 disposition: str | None = None, transactions: Sequence[str] = (),
                 **extra: Any) -> Event:
    return _base("ObjectEvent", time, action=action, epcList=list(epcs) or None,
                 quantityList=[{"epcClass": c, "quantity": 100, "uom": "KGM"} for c in lots]
                 or None, bizStep=biz_step, disposition=disposition,
                 bizTransactionList=[{"type": "po", "bizTransaction": t}
                                     for t in transactions] or None, **extra)


def aggregation(time: str, parent: str, children: Sequence[str], *, action: str = "ADD",
                biz_step: str | None = None, kind: str = "AggregationEvent") -> Event:
    return _base(kind, time, parentID=parent, childEPCs=list(children), action=action,
                 bizStep=biz_step)


def transformation(time: str, *, inputs: Sequence[str] = (), input_lots: Sequence[str] = (),
                   outputs: Sequence[str] = (), output_lots: Sequence[str] = (),
                   transformation_id: str | None = None) -> Event:
    return _base("TransformationEvent", time, inputEPCList=list(inputs) or None,
                 inputQuantityList=[{"epcClass": c, "quantity": 500, "uom": "KGM"}
                                    for c in input_lots] or None,
                 outputEPCList=list(outputs) or None,
                 outputQuantityList=[{"epcClass": c, "quantity": 40, "uom": "KGM"}
                                     for c in output_lots] or None,
                 transformationID=transformation_id, bizStep="commissioning")


def repository(captured: Sequence[tuple[str, Event]], arrival: Sequence[int] | None = None,
               contexts: Sequence[Any] | None = None) -> tuple[list[TraceEvent], Lookup]:
    """A fake EPCIS repository: events stored in `arrival` order (refs are arrival
    positions), indexed by canonical identifier, business transaction and
    transformation ID. An event is `declared` when a declaration record has its hash."""
    order = list(range(len(captured))) if arrival is None else list(arrival)
    hashes = [event_hash(event, context=None if contexts is None else contexts[n])
              for n, (_, event) in enumerate(captured)]
    declared_hashes = {h for h, (_, e) in zip(hashes, captured, strict=True)
                       if "errorDeclaration" in e}
    stored: list[TraceEvent] = []
    index: dict[str, list[TraceEvent]] = collections.defaultdict(list)
    for ref, position in enumerate(order):
        org, event = captured[position]
        is_declaration = "errorDeclaration" in event
        item = TraceEvent(ref=ref, event=event, org=org, record_time_ms=1_000 * ref,
                          hash=hashes[position], declaration=is_declaration,
                          declared=not is_declaration and hashes[position] in declared_hashes)
        stored.append(item)
        keys = {ident for _, ident in event_identifiers(event)}
        keys.update(canonical_id(t["bizTransaction"]) for t in event.get("bizTransactionList", ()))
        if "transformationID" in event:
            keys.add(canonical_id(event["transformationID"]))
        for key in keys:
            index[key].append(item)
    return stored, lambda key: tuple(index.get(key, ()))


# --- the scenario ----------------------------------------------------------------------------
L, L9, P = lot("FARMLOT1"), lot("FARMLOT9"), lot("PLOT1", "0614141.107347")
ITEMS = [sgtin(f"I{n}") for n in range(1, 7)]
I1 = ITEMS[0]
I1_DIGITAL_LINK = "https://example.com/01/10614141073464/21/I1?linkType=all"
C1, C2, P1 = sscc("1000000001"), sscc("1000000002"), sscc("2000000001")
PO = "urn:epcglobal:cbv:bt:4012345000009:PO-77"
SENSORS = [{"sensorMetadata": {"time": "2024-05-03T10:00:00Z",
                               "deviceID": "urn:epc:id:giai:4000001.111"},
            "sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"},
                             {"type": "Temperature", "value": 5.1, "uom": "CEL"}]}]


def scenario() -> list[tuple[str, Event]]:
    """Farm -> processor -> carrier -> retailer, and the regulator's recall of lot L.
    Times are in several zones and all distinct."""
    return [
        ("farm", object_event("2024-05-01T06:00:00+02:00", lots=[L], action="ADD",
                              biz_step="commissioning", disposition="active")),
        ("farm", object_event("2024-05-01T06:30:00+02:00", lots=[L9], action="ADD",
                              biz_step="urn:epcglobal:cbv:bizstep:commissioning")),
        ("farm", object_event("2024-05-01T09:00:00+02:00", lots=[L],
                              biz_step="https://example.org/bizstep/harvesting")),
        ("farm", object_event("2024-05-01T12:00:00+02:00", lots=[L, L9], biz_step="shipping",
                              disposition="in_transit", transactions=[PO])),
        ("processor", object_event("2024-05-02T08:00:00Z", lots=[L, L9],
                                   biz_step="receiving", transactions=[PO])),
        ("processor", transformation("2024-05-02T10:00:00Z", input_lots=[L], outputs=ITEMS,
                                     output_lots=[P],
                                     transformation_id="urn:epc:id:gdti:0614141.00001.T1")),
        ("processor", aggregation("2024-05-02T11:00:00Z", C1, ITEMS[:3], biz_step="packing")),
        ("processor", aggregation("2024-05-02T11:05:00Z", C2, ITEMS[3:], biz_step="packing")),
        ("carrier", aggregation("2024-05-03T07:00:00-05:00", P1, [C1, C2],
                                biz_step="loading")),
        ("carrier", object_event("2024-05-03T08:00:00-05:00", epcs=[P1], biz_step="shipping",
                                 sensorElementList=SENSORS)),
        ("carrier", aggregation("2024-05-04T06:00:00-05:00", P1, [C1, C2], action="DELETE",
                                biz_step="unloading")),
        ("retailer", object_event("2024-05-04T12:00:00Z", epcs=[C1, C2],
                                  biz_step="receiving")),
        ("retailer", aggregation("2024-05-04T13:00:00Z", C1, ITEMS[:3], action="DELETE",
                                 biz_step="unpacking")),
        ("retailer", object_event("2024-05-05T15:00:00Z", epcs=[I1], biz_step="retail_selling",
                                  disposition="retail_sold")),
        ("regulator", object_event("2024-05-06T09:00:00+01:00", lots=[L],
                                   biz_step="holding",
                                   disposition="urn:epcglobal:cbv:disp:recalled")),
    ]


RECALL_POSITION = 14
ORGANISATIONS = ("carrier", "farm", "processor", "regulator", "retailer")


def ids(*names: str) -> set[str]:
    return {canonical_id(name) for name in names}


def relations(result: Trace) -> dict[str, str]:
    return {t.id: t.relation for t in result.identifiers}


def test_the_scenario_hashes_and_its_times_are_distinct() -> None:
    events = [event for _, event in scenario()]
    assert len({event_hash(e) for e in events}) == len(events)
    assert len({canonical_time(e["eventTime"]) for e in events}) == len(events)


def test_an_item_traced_by_urn_and_by_digital_link_gives_one_trace() -> None:
    _, lookup = repository(scenario())
    by_urn, by_link = trace(I1, lookup), trace(I1_DIGITAL_LINK, lookup)
    assert by_urn == by_link
    assert by_urn.start == canonical_id(I1) == canonical_id(I1_DIGITAL_LINK)
    assert to_json(by_urn) == to_json(by_link)


def test_the_trace_from_an_item_reaches_the_whole_batch() -> None:
    stored, lookup = repository(scenario())
    result = trace(I1, lookup)
    assert [e.ref for e in result.events] == list(range(len(stored)))  # time order = built
    assert result.organisations == ORGANISATIONS
    assert result.truncated == ()
    assert result.anomalies == ()
    assert relations(result) == {
        canonical_id(I1): "self",
        **{i: "contained-in" for i in ids(C1, P1)},
        canonical_id(L): "upstream",
        **{i: "related" for i in ids(*ITEMS[1:], P, C2)},
        canonical_id(L9): "transaction",
    }
    recalled = {t.id: t.recalled_by for t in result.identifiers}
    assert {i for i, ref in recalled.items() if ref == RECALL_POSITION} == ids(L, P, *ITEMS)
    assert {i for i, ref in recalled.items() if ref is None} == ids(C1, C2, P1, L9)
    [recall] = result.recalls
    assert (recall.ref, recall.identifier) == (RECALL_POSITION, canonical_id(L))
    assert set(recall.affected) == ids(L, P, *ITEMS)


def test_events_are_in_instant_order_not_wall_clock_order() -> None:
    """10:00+02:00 is before 09:00Z: the order is by instant, whatever the zone."""
    _, lookup = repository([
        ("a", object_event("2024-01-01T09:00:00Z", epcs=[I1])),
        ("b", object_event("2024-01-01T10:00:00+02:00", epcs=[I1], action="ADD",
                           biz_step="commissioning")),
    ])
    result = trace(I1, lookup)
    assert [e.org for e in result.events] == ["b", "a"]
    assert result.anomalies == ()


def test_relations_from_the_pallet_and_from_the_lot() -> None:
    _, lookup = repository(scenario())
    from_pallet = relations(trace(P1, lookup))
    assert {i for i, r in from_pallet.items() if r == "contains"} == ids(C1, C2, *ITEMS)
    assert from_pallet[canonical_id(L)] == "upstream"
    assert from_pallet[canonical_id(P)] == "related"
    from_lot = relations(trace(L, lookup))
    assert {i for i, r in from_lot.items() if r == "downstream"} == ids(*ITEMS, P, C1, C2, P1)
    assert from_lot[canonical_id(L9)] == "transaction"


def test_affected_by_recall_of_the_lot() -> None:
    _, lookup = repository(scenario())
    expected = tuple(sorted(ids(L, P, *ITEMS)))
    assert affected_by_recall(L, lookup) == expected
    assert affected_by_recall(canonical_id(L), lookup) == expected
    assert affected_by_recall(I1, lookup) == ()  # nothing recalls I1 itself
    assert affected_by_recall(C1, lookup) == ()


def test_a_recalled_container_recalls_what_was_in_it_up_to_the_recall() -> None:
    """The pallet is recalled after it was unloaded: the cases and items that were on
    it are recalled; a case loaded onto it only after the recall is not."""
    late = sscc("1000000003")
    captured = [*scenario()[:RECALL_POSITION],
                ("carrier", object_event("2024-05-05T09:00:00Z", epcs=[P1],
                                         disposition="https://ref.gs1.org/cbv/Disp-recalled")),
                ("carrier", aggregation("2024-05-05T10:00:00Z", P1, [late]))]
    _, lookup = repository(captured)
    assert affected_by_recall(P1, lookup) == tuple(sorted(ids(P1, C1, C2, *ITEMS)))
    result = trace(late, lookup)
    assert {t.id: t.recalled_by for t in result.identifiers}[canonical_id(late)] is None


def test_text_and_json_show_the_marks() -> None:
    _, lookup = repository(scenario())
    result = trace(I1, lookup)
    text = to_text(result)
    assert text.startswith(f"trace of {canonical_id(I1)}: {len(result.events)} event(s)")
    assert f"RECALLED by #{RECALL_POSITION}" in text
    assert "[RECALL]" in text and "regulator" in text and "retail_selling" in text
    assert "[SENSOR DATA]" in text and f"transaction  {PO}" in text
    document = to_json(result)
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"version", "start", "truncated", "organisations", "events",
                             "identifiers", "anomalies", "recalls", "declarations"}
    sale = document["events"][13]
    assert sale["biz_step"] == "retail_selling" and sale["event_time"] == (
        "2024-05-05T15:00:00.000Z")
    assert document["events"][RECALL_POSITION]["disposition"] == "recalled"
    assert set(sale) == {"ref", "org", "event_time", "event_time_zone_offset",
                         "record_time_ms", "type", "action", "biz_step", "disposition", "hash",
                         "event_id", "declaration", "declared", "identifiers",
                         "biz_transactions", "transformation_id"}
    assert document["identifiers"][0] == {"id": canonical_id(I1), "relation": "self",
                                          "recalled_by": RECALL_POSITION}
    assert document["recalls"] == [{"ref": RECALL_POSITION, "identifier": canonical_id(L),
                                    "affected": sorted(ids(L, P, *ITEMS))}]


# --- anomalies -------------------------------------------------------------------------------
X, A, B = sgtin("X1"), sscc("3000000001"), sscc("3000000002")


def _kinds(result: Trace) -> list[tuple[str, str, str]]:
    return [(a.kind, a.detail, a.identifier) for a in result.anomalies]


def test_never_commissioned() -> None:
    _, lookup = repository([("a", object_event("2024-01-01T00:00:00Z", epcs=[X]))])
    [anomaly] = trace(X, lookup).anomalies
    assert (anomaly.kind, anomaly.detail, anomaly.refs) == (
        "observed-before-commissioning", "never-commissioned", (0,))


def test_observed_before_commissioning() -> None:
    _, lookup = repository([
        ("a", object_event("2024-01-02T00:00:00Z", epcs=[X], action="ADD",
                           biz_step="https://ref.gs1.org/cbv/BizStep-commissioning")),
        ("b", object_event("2024-01-01T00:00:00Z", epcs=[X], biz_step="shipping")),
    ])
    [anomaly] = trace(X, lookup).anomalies
    assert (anomaly.kind, anomaly.detail, anomaly.refs) == (
        "observed-before-commissioning", "before-commissioning", (1, 0))
    assert "observed at 2024-01-01T00:00:00.000Z" in anomaly.message


def _commissioned(*epcs: str) -> tuple[str, Event]:
    return "a", object_event("2023-12-31T00:00:00Z", epcs=epcs, action="ADD",
                             biz_step="commissioning")


def test_child_in_two_parents() -> None:
    _, lookup = repository([
        _commissioned(X),
        ("a", aggregation("2024-01-01T00:00:00Z", A, [X])),
        ("b", aggregation("2024-01-02T00:00:00Z", B, [X])),
    ])
    assert _kinds(trace(X, lookup)) == [("child-in-two-parents", "", canonical_id(X))]
    assert trace(X, lookup).anomalies[0].refs == (1, 2)


def test_a_delete_in_between_or_an_observe_is_no_second_parent() -> None:
    _, lookup = repository([
        _commissioned(X),
        ("a", aggregation("2024-01-01T00:00:00Z", A, [X])),
        ("a", aggregation("2024-01-01T12:00:00Z", A, [], action="DELETE")),  # empties A
        ("b", aggregation("2024-01-02T00:00:00Z", B, [X])),
        ("b", aggregation("2024-01-03T00:00:00Z", A, [X], action="OBSERVE")),
    ])
    assert _kinds(trace(X, lookup)) == []


def test_activity_after_destroyed() -> None:
    _, lookup = repository([
        _commissioned(X),
        ("a", object_event("2024-01-01T00:00:00Z", epcs=[X],
                           disposition="https://ref.gs1.org/cbv/Disp-destroyed")),
        ("b", object_event("2024-01-02T00:00:00Z", epcs=[X], biz_step="receiving")),
    ])
    [anomaly] = trace(X, lookup).anomalies
    assert (anomaly.kind, anomaly.refs) == ("activity-after-destroyed", (1, 2))


def test_input_reused_for_epcs_but_not_for_lots() -> None:
    _, lookup = repository([
        _commissioned(X),
        ("a", object_event("2023-12-31T01:00:00Z", lots=[L], action="ADD",
                           biz_step="commissioning")),
        ("a", transformation("2024-01-01T00:00:00Z", inputs=[X], input_lots=[L],
                             outputs=[sgtin("Y1")], transformation_id="urn:x:t1")),
        ("b", transformation("2024-01-02T00:00:00Z", inputs=[X], input_lots=[L],
                             outputs=[sgtin("Y2")], transformation_id="urn:x:t2")),
        # one transformation in two events is not a reuse
        ("b", transformation("2024-01-03T00:00:00Z", inputs=[sgtin("Z")],
                             outputs=[sgtin("Y3")], transformation_id="urn:x:t3")),
        ("b", transformation("2024-01-03T01:00:00Z", inputs=[sgtin("Z")],
                             outputs=[sgtin("Y4")], transformation_id="urn:x:t3")),
        _commissioned(sgtin("Z")),
    ])
    result = trace(X, lookup)
    assert _kinds(result) == [("input-reused", "", canonical_id(X))]
    assert result.anomalies[0].refs == (2, 3)
    assert _kinds(trace(sgtin("Z"), lookup)) == []


def test_every_anomaly_kind_is_covered_and_absent_from_the_clean_scenario() -> None:
    assert set(ANOMALY_KINDS) == {"observed-before-commissioning", "child-in-two-parents",
                                  "activity-after-destroyed", "input-reused"}
    _, lookup = repository(scenario())
    for start in (I1, L, P1, C2, L9, P):
        assert trace(start, lookup).anomalies == ()


# --- error declarations ----------------------------------------------------------------------
def test_an_error_declaration_and_its_event_both_appear() -> None:
    wrong = transformation("2024-01-01T00:00:00Z", inputs=[X], outputs=[sgtin("Y1")],
                           transformation_id="urn:x:t1")
    corrective = {**transformation("2024-01-01T00:00:01Z", inputs=[X],
                                   outputs=[sgtin("Y2")], transformation_id="urn:x:t2"),
                  "eventID": "urn:uuid:00000000-0000-4000-8000-000000000002"}
    declaration = {**wrong, "errorDeclaration": {
        "declarationTime": "2024-01-02T00:00:00Z", "reason": "urn:epcglobal:cbv:er:incorrect_data",
        "correctiveEventIDs": [corrective["eventID"]]}}
    _, lookup = repository([_commissioned(X), ("a", wrong), ("a", declaration),
                            ("a", corrective)])
    result = trace(X, lookup)
    assert [(e.ref, e.declaration, e.declared) for e in result.events] == [
        (0, False, False), (1, False, True), (2, True, False), (3, False, False)]
    [declared] = result.declarations
    assert (declared.ref, declared.declared_refs, declared.reason, declared.corrective_refs) == (
        2, (1,), "incorrect_data", (3,))
    assert declared.corrective_event_ids == (corrective["eventID"],)
    assert result.anomalies == ()  # the declared transformation does not "reuse" X
    assert "[DECLARED]" in to_text(result) and "[DECLARATION]" in to_text(result)
    # lineage still shows what was recorded: Y1 is in the trace
    assert canonical_id(sgtin("Y1")) in relations(result)


def test_cbv_words_in_every_spelling() -> None:
    for spelling in ("recalled", " urn:epcglobal:cbv:disp:recalled",
                     "https://ref.gs1.org/cbv/Disp-recalled", "cbv:Disp-recalled"):
        assert cbv_word(spelling, "Disp") == "recalled"
    assert cbv_word("urn:epcglobal:cbv:bizstep:shipping", "BizStep") == "shipping"
    assert cbv_word("https://example.org/own", "BizStep") == "https://example.org/own"
    assert cbv_word(3, "Disp") is None


# --- arrival order ---------------------------------------------------------------------------
def _without_refs(result: Trace) -> Any:
    """to_json with every ref replaced by its event's hash, and record times dropped."""
    hash_of = {e.ref: e.hash for e in result.events}
    document = to_json(result)
    for event in document["events"]:
        event["ref"] = hash_of[event["ref"]]
        del event["record_time_ms"]
    for traced in document["identifiers"]:
        traced["recalled_by"] = hash_of.get(traced["recalled_by"])
    for anomaly in document["anomalies"]:
        anomaly["refs"] = [hash_of[r] for r in anomaly["refs"]]
        anomaly["message"] = None  # names refs
    for recall in document["recalls"]:
        recall["ref"] = hash_of[recall["ref"]]
    return document


SHUFFLED = [*scenario(), ("retailer", object_event("2024-05-01T00:00:00Z", epcs=[ITEMS[4]]))]
REFERENCE = _without_refs(trace(I1, repository(SHUFFLED)[1]))
EXERCISED: collections.Counter[str] = collections.Counter()


@settings(max_examples=150)
@given(st.permutations(range(len(SHUFFLED))))
def test_arrival_order_does_not_change_the_trace(arrival: list[int]) -> None:
    EXERCISED["permutations"] += 1
    EXERCISED["reordered"] += arrival != sorted(arrival)
    result = trace(I1, repository(SHUFFLED, arrival)[1])
    EXERCISED["anomalies"] += len(result.anomalies)
    assert _without_refs(result) == REFERENCE


def test_arrival_order_property_was_exercised() -> None:
    test_arrival_order_does_not_change_the_trace()
    assert EXERCISED["permutations"] >= 150 and EXERCISED["reordered"] >= 140
    assert EXERCISED["anomalies"] >= EXERCISED["permutations"]  # one early observation
    assert [a["kind"] for a in REFERENCE["anomalies"]] == ["observed-before-commissioning"]


# --- bounds ----------------------------------------------------------------------------------
def test_fan_out_past_max_identifiers_is_truncated_and_says_so() -> None:
    many = [sgtin(f"F{n}") for n in range(50)]
    _, lookup = repository([("a", object_event("2024-01-01T00:00:00Z", epcs=many,
                                               transactions=["urn:x:po:1"]))])
    result = trace(many[0], lookup, max_identifiers=10)
    assert result.truncated == ("max_identifiers",)
    assert len(result.identifiers) == 10  # ten keys looked up: the event's EPCs come first
    assert "TRUNCATED at max_identifiers" in to_text(result)
    assert trace(many[0], lookup).truncated == ()
    assert len(trace(many[0], lookup).identifiers) == 50
    with pytest.raises(TraceTruncated):
        affected_by_recall(many[0], lookup, max_identifiers=10)


def test_past_max_events_is_truncated_and_says_so() -> None:
    _, lookup = repository([("a", object_event(f"2024-01-01T00:00:{s:02d}Z", epcs=[X]))
                            for s in range(20)])
    result = trace(X, lookup, max_events=5)
    assert result.truncated == ("max_events",)
    assert [e.ref for e in result.events] == [0, 1, 2, 3, 4]  # the earliest, in order


@pytest.mark.parametrize("bounds", [{"max_identifiers": 0}, {"max_events": 0},
                                    {"max_events": LIMIT_MAX_EVENTS + 1},
                                    {"max_identifiers": True}])
def test_bounds_outside_the_limits_are_rejected(bounds: dict[str, int]) -> None:
    with pytest.raises(Rejected):
        trace(X, lambda key: (), **bounds)


def test_an_empty_start_is_rejected_and_an_unknown_one_is_alone() -> None:
    with pytest.raises(Rejected):
        trace("  ", lambda key: ())
    result = trace(X, lambda key: ())
    assert (result.events, [t.relation for t in result.identifiers]) == ((), ["self"])


def test_a_loose_index_answer_is_filtered() -> None:
    """Events that do not name the key (a sloppy index) are not taken."""
    stored, _ = repository(scenario())
    result = trace(I1, lambda key: stored if key == canonical_id(I1) else ())
    assert {e.ref for e in result.events} == {5, 6, 12, 13}


# --- GS1's examples --------------------------------------------------------------------------
def _gs1_store() -> tuple[list[TraceEvent], Lookup, dict[str, list[tuple[str, Event]]]]:
    vectors = vectors_for_test()
    captured: list[tuple[str, Event]] = []
    contexts: list[Any] = []
    by_file: dict[str, list[tuple[str, Event]]] = {}
    for path in sorted((vectors / "json").rglob("*.jsonld")):
        events, context = document_events(json.loads(path.read_text()))
        name = str(path.relative_to(vectors / "json"))
        by_file[name] = [(name, dict(event)) for event in events]
        captured.extend(by_file[name])
        contexts.extend([context] * len(events))
    stored, lookup = repository(captured, contexts=contexts)
    return stored, lookup, by_file


def test_traces_over_every_gs1_example_identifier() -> None:
    stored, lookup, by_file = _gs1_store()
    starts = sorted({ident for item in stored for _, ident in event_identifiers(item.event)})
    assert len(stored) == 38 and len(starts) == 45
    kinds: collections.Counter[str] = collections.Counter()
    for start in starts:
        result = trace(start, lookup)
        assert result.truncated == ()
        assert any(start in {i for _, i in event_identifiers(e.event)} for e in result.events)
        kinds.update(a.kind for a in result.anomalies)
        json.dumps(to_json(result))
        to_text(result)
    assert kinds["observed-before-commissioning"] > 0
    # GS1's own examples associate one GIAI with two parents, with no DELETE between
    # (AssociationEvent-b, then the sourceOrDestination example)
    two = {a.identifier for a in trace("urn:epc:id:giai:4000001.12346", lookup).anomalies
           if a.kind == "child-in-two-parents"}
    assert two == {canonical_id("urn:epc:id:giai:4000001.12346")}
    for name in ("Example_9.6.1-ObjectEvent.jsonld", "Example_9.6.3-AggregationEvent.jsonld"):
        for _, event in by_file[name]:
            for role, ident in event_identifiers(event):
                if role.endswith("class") and "/10/" not in ident:
                    continue  # a GTIN pattern, not a lot: never commissioned as such
                details = {(a.kind, a.detail) for a in trace(ident, lookup).anomalies
                           if a.identifier == ident}
                assert ("observed-before-commissioning", "never-commissioned") in details, ident


def test_gs1_digital_link_examples_are_reached_from_the_urn_ones() -> None:
    """The Digital Link twin of example 9.6.1 names GTIN 70614141123451, not the
    URN's 10614141073464: different items. They are reached anyway, through the purchase
    order and the SSCC the two versions share."""
    _, lookup, _ = _gs1_store()
    urn_item = "urn:epc:id:sgtin:0614141.107346.2017"
    link_item = "https://id.gs1.org/01/70614141123451/21/2017"
    assert canonical_id(urn_item) != canonical_id(link_item)
    result = trace(urn_item, lookup)
    files = {e.org for e in result.events}
    assert {"WithDigitalLinkID/Example_9.6.1-ObjectEventWithDigitalLink.jsonld",
            "Example_9.6.1-ObjectEvent.jsonld", "EPCISQueryDocument.jsonld",
            "Example_9.6.3-AggregationEvent.jsonld"} <= files
    found = relations(result)
    assert found[canonical_id("urn:epc:id:sscc:0614141.1234567890")] == "contained-in"
    assert found[link_item] == "related"  # up to the shared SSCC, down to its children
    assert found[canonical_id("urn:epc:id:sgtin:0614141.107346.2018")] == "related"


def test_gs1_transformation_outputs_are_commissioned_by_it() -> None:
    _, lookup, _ = _gs1_store()
    output = canonical_id("urn:epc:id:sgtin:4012345.077889.25")
    result = trace(output, lookup)
    assert not [a for a in result.anomalies if a.identifier == output]
    assert relations(result)[canonical_id("urn:epc:id:sgtin:4012345.011122.25")] == "upstream"


def test_gs1_error_declaration_example() -> None:
    _, lookup, _ = _gs1_store()
    result = trace("urn:epc:id:sgtin:4012345.011111.987", lookup)
    declarations = {d.ref: d for d in result.declarations}
    ours = [d for d in declarations.values()
            if "urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8" in d.corrective_event_ids]
    [declaration] = ours
    assert declaration.reason == "incorrect_data" and len(declaration.corrective_refs) == 1
    [corrective] = [e for e in result.events if e.ref == declaration.corrective_refs[0]]
    assert not corrective.declaration
    assert not [a for a in result.anomalies if a.kind == "input-reused"]


def test_a_stored_event_without_a_valid_time_is_refused() -> None:
    item = TraceEvent(ref=0, event={"type": "ObjectEvent", "epcList": [X]}, org="a",
                      record_time_ms=0, hash="h", declaration=False, declared=False)
    with pytest.raises(BadEvent):
        trace(X, lambda key: (item,))
