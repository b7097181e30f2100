"""The traceability contract's rules on an in-process chain (contracts/trace, ADR 0018):
capture under the chain's own event hash, no silent duplicates, error declarations
beside their event, GS1 company prefix claims, who reads which event, lookups, paged
scans and the demo's story traced end to end with each reader's view."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.epcis_vectors import vectors_for_test
from tests.trace_net import (
    CARRIER,
    FARM,
    ORGS,
    OUTSIDER,
    PROCESSOR,
    REGULATOR,
    RETAILER,
    TraceNet,
    admin_of,
)
from tidechain import trace_scenario as story
from tidechain.contracts.trace import APP, lineage, repository
from tidechain.contracts.trace.contract import MAX_EVENT_WRITES
from tidechain.contracts.trace.document import split_document
from tidechain.contracts.trace.identifiers import canonical_id
from tidechain.core.timefmt import iso_utc
from tidechain.ledger.access import ANONYMOUS

ACTORS = {"farm": FARM, "processor": PROCESSOR, "carrier": CARRIER, "retailer": RETAILER}


def _document(*events: dict[str, Any]) -> bytes:
    return json.dumps({"@context": story.CONTEXT, "type": "EPCISDocument",
                       "schemaVersion": "2.0", "creationDate": "2026-12-01T00:00:00Z",
                       "epcisBody": {"eventList": list(events)}}).encode()


def _event(**fields: Any) -> dict[str, Any]:
    return {"type": "ObjectEvent", "eventTime": "2026-12-01T08:00:00.000Z",
            "eventTimeZoneOffset": "+08:00", "action": "OBSERVE",
            "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"], "bizStep": "shipping"} | fields


def _errors(results: list[tuple[int, Any]]) -> list[str]:
    return [r.error for _, r in results]


def test_an_event_is_filed_under_the_hash_the_chain_computes() -> None:
    net = TraceNet()
    document = _document(_event())
    [(index, result)] = net.capture(FARM, document)
    assert result.ok, result.reason
    [expected] = split_document(document, "json").events
    stored = repository.load_event(net.view(), index)
    assert stored.hash == expected.hash == result.events[0].data["hash"]
    assert stored.org == ORGS[FARM] and stored.record_time_ms == net.now
    assert stored.document == hashlib.sha256(document).digest() and stored.position == 0
    assert stored.source == expected.source  # the event's own bytes, as captured


def test_an_identical_capture_is_a_duplicate_but_an_event_id_is_not_identity() -> None:
    net = TraceNet()
    assert _errors(net.capture(FARM, _document(_event(eventID="urn:uuid:1")))) == [""]
    assert _errors(net.capture(PROCESSOR, _document(_event(eventID="urn:uuid:1")))) == [
        "duplicate"]
    # Same eventID, other content (GS1's own files do this): both are kept.
    assert _errors(net.capture(FARM, _document(_event(eventID="urn:uuid:1",
                                                      bizStep="receiving")))) == [""]
    assert len(repository.by_lookup(net.view(), "eventID", "urn:uuid:1")) == 2


def test_an_error_declaration_sits_beside_its_event_once() -> None:
    net = TraceNet()
    [(original, _)] = net.capture(FARM, _document(_event(eventID="urn:uuid:7")))
    declaration = _event(eventID="urn:uuid:7", errorDeclaration={
        "declarationTime": "2026-12-02T00:00:00Z", "reason": "incorrect_data",
        "correctiveEventIDs": ["urn:uuid:8"]})
    [(declared, result)] = net.capture(FARM, _document(declaration))
    assert result.ok, result.reason
    assert _errors(net.capture(FARM, _document(declaration))) == ["duplicate"]
    view = net.view()
    first = repository.load_event(view, original)
    assert first.declared_by == declared and not first.declaration
    assert repository.load_event(view, declared).declaration
    assert "errorDeclaration" not in first.event  # the original never changes


@pytest.mark.parametrize(("args", "code"), [
    ({"format": "yaml"}, "bad_argument"),
    ({"source": b"{not json"}, "bad_event"),
    ({"source": b'{"type": "ObjectEvent"}'}, "bad_event"),
    ({"document": b"short"}, "bad_argument"),
    ({"position": -1}, "bad_argument"),
    ({"extra": 1}, "bad_argument"),
])
def test_a_bad_capture_is_refused_with_its_reason(args: dict[str, Any], code: str) -> None:
    net = TraceNet()
    [good] = split_document(_document(_event()), "json").events
    base = {"format": "json", "source": good.source, "context": good.context,
            "document": bytes(32), "position": 0}
    result = net.call(FARM, "capture", base | args)
    assert result.error == code, result.reason
    assert not any(k.startswith(b"trace/e") for k in net.kv)  # nothing half-written


def test_an_event_naming_too_much_is_refused_whole() -> None:
    net = TraceNet()
    # Each identifier is a lookup write; the type and bizStep two more, with the
    # record and the hash list: this is one write too many.
    many = [f"urn:epc:id:sgtin:0614141.107346.{n}" for n in range(MAX_EVENT_WRITES - 3)]
    [(_, result)] = net.capture(FARM, _document(_event(epcList=many)))
    assert result.error == "too_large" and "split" in result.reason
    [(_, fits)] = net.capture(FARM, _document(_event(epcList=many[:-1])))
    assert fits.ok, fits.reason
    # A business transaction costs two writes (its lookup and its party list).
    transactions = [{"type": "po", "bizTransaction": f"urn:epcglobal:cbv:bt:0614141000009:{n}"}
                    for n in range(31)]
    [(_, result)] = net.capture(FARM, _document(_event(bizTransactionList=transactions)))
    assert result.error == "too_large", result.reason


def test_a_deep_or_huge_event_is_refused_alike_at_any_stack_depth() -> None:
    """Validators reach the contract at different stack depths and with different
    interpreter settings: the refusal and its reason must not depend on either."""
    deep = b'{"type": "ObjectEvent", "x": ' + b"[" * 900 + b"]" * 900 + b"}"
    huge = b'{"type": "ObjectEvent", "x": ' + b"9" * 5000 + b"}"
    for source in (deep, huge):
        reasons = set()
        for depth in (0, 200, 600):
            reasons.add(_refusal_at_depth(source, depth))
        assert len(reasons) == 1, reasons
        assert "bad_event" in reasons.pop()


def _refusal_at_depth(source: bytes, depth: int) -> str:
    if depth:
        return _refusal_at_depth(source, depth - 1)
    net = TraceNet()
    result = net.call(FARM, "capture", {"format": "json", "source": source, "context": b"",
                                        "document": bytes(32), "position": 0})
    return f"{result.error}: {result.reason}"


def test_only_the_capturing_organisation_declares_its_event_in_error() -> None:
    net = TraceNet()
    net.capture(FARM, _document(_event(eventID="urn:uuid:9")))
    declaration = _event(eventID="urn:uuid:9", errorDeclaration={
        "declarationTime": "2026-12-02T00:00:00Z", "reason": "incorrect_data"})
    assert _errors(net.capture(OUTSIDER, _document(declaration))) == ["not_yours"]
    assert _errors(net.capture(FARM, _document(declaration))) == [""]


def test_a_compact_biz_step_is_filed_as_the_same_word() -> None:
    net = TraceNet()
    [(index, _)] = net.capture(FARM, _document(_event(bizStep="cbv:BizStep-receiving")))
    [(other, _)] = net.capture(FARM, _document(_event(  # the same word, another event
        bizStep="https://ref.gs1.org/cbv/BizStep-receiving",
        epcList=["urn:epc:id:sgtin:0614141.107346.2018"])))
    assert repository.by_lookup(net.view(), "bizStep", "receiving") == [index, other]


def test_only_enterprises_and_carriers_capture() -> None:
    net = TraceNet()
    assert _errors(net.capture(REGULATOR, _document(_event()))) == ["forbidden"]
    assert _errors(net.capture(CARRIER, _document(_event()))) == [""]


def test_prefix_claims_have_one_owner() -> None:
    net = TraceNet()
    assert net.call(admin_of(FARM), "claim", {"prefix": "4012345"}).error == ""
    refused = net.call(admin_of(RETAILER), "claim", {"prefix": "4012345"})
    assert refused.error == "claimed" and ORGS[FARM] in refused.reason
    assert net.call(FARM, "claim", {"prefix": "4012346"}).error == "forbidden"  # not admin
    assert net.call(admin_of(FARM), "claim", {"prefix": "12"}).error == "bad_argument"
    assert net.call(admin_of(RETAILER), "release", {"prefix": "4012345"}).error == "not_found"
    # Claims never overlap: a GLN does not say where its prefix ends.
    assert net.call(admin_of(RETAILER), "claim", {"prefix": "40123456"}).error == "claimed"
    assert net.call(admin_of(RETAILER), "claim", {"prefix": "401234"}).error == "claimed"
    assert net.call(admin_of(FARM), "release", {"prefix": "4012345"}).error == ""
    assert net.call(admin_of(RETAILER), "claim", {"prefix": "40123456"}).error == ""
    assert net.call(admin_of(FARM), "claim", {"prefix": "401234"}).error == "claimed"
    assert net.call(admin_of(RETAILER), "release", {"prefix": "40123456"}).error == ""
    assert net.call(admin_of(RETAILER), "claim", {"prefix": "4012345"}).error == ""


def _visible_to(net: TraceNet, index: int) -> set[int]:
    view = net.view()
    stored = repository.load_event(view, index)
    return {m for m in ORGS if repository.visible(view, net.reader(m), stored)}


def test_who_reads_an_event() -> None:
    net = TraceNet()
    assert net.call(admin_of(RETAILER), "claim", {"prefix": "0712345"}).error == ""
    [(alone, _)] = net.capture(FARM, _document(_event()))
    assert _visible_to(net, alone) == {FARM, REGULATOR}
    shipped = _event(epcList=["urn:epc:id:sgtin:0614141.107346.9"], destinationList=[
        {"type": "owning_party", "destination": "urn:epc:id:pgln:0712345.00000"}])
    [(to_retailer, _)] = net.capture(FARM, _document(shipped))
    assert _visible_to(net, to_retailer) == {FARM, RETAILER, REGULATOR}
    # A Digital Link GLN names the same party: any prefix length is tried.
    by_link = _event(epcList=["urn:epc:id:sgtin:0614141.107346.10"], sourceList=[
        {"type": "owning_party", "source": "https://id.gs1.org/417/0712345000004"}])
    [(linked, _)] = net.capture(FARM, _document(by_link))
    assert _visible_to(net, linked) == {FARM, RETAILER, REGULATOR}
    # A business transaction's parties: whoever captured an event naming it.
    po = [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000009:PO-1"}]
    [(ordered, _)] = net.capture(PROCESSOR, _document(_event(bizTransactionList=po)))
    assert _visible_to(net, ordered) == {PROCESSOR, REGULATOR}
    net.capture(CARRIER, _document(_event(bizStep="loading", bizTransactionList=po)))
    assert _visible_to(net, ordered) == {PROCESSOR, CARRIER, REGULATOR}
    assert not repository.visible(net.view(), ANONYMOUS,
                                  repository.load_event(net.view(), ordered))


def test_entries_are_read_by_the_same_rule() -> None:
    net = TraceNet()
    [(index, _)] = net.capture(FARM, _document(_event()))
    _, entry = net.entries[index]
    from tidechain.ledger.types import LogEntry

    body = LogEntry.decode(entry).tx.body
    assert APP.record_audience is not None
    audience = APP.record_audience(net.chain.state, index, "capture", body.args, True)
    assert audience is not None
    assert audience.admits(net.reader(FARM)) and not audience.admits(net.reader(RETAILER))
    assert APP.describe_entry is not None
    assert any("event hash: ni:///sha-256;" in line
               for line in APP.describe_entry("capture", body.args, ()))


def test_lookups_and_paged_scans() -> None:
    net = TraceNet()
    for n in range(7):
        net.capture(FARM, _document(_event(epcList=[f"urn:epc:id:sgtin:0614141.107346.{n}"],
                                           bizStep="receiving" if n % 2 else "shipping")))
    view, reader = net.view(), net.reader(FARM)
    # The URN and Digital Link spellings name one identifier.
    urn = "urn:epc:id:sgtin:0614141.107346.3"
    assert repository.by_lookup(view, "id", canonical_id(urn)) == [3]
    assert repository.by_lookup(view, "bizStep", "receiving") == [1, 3, 5]
    pages, after = [], -1
    while True:
        page = repository.scan(view, reader, narrowing=None, keep=lambda s: True,
                               after=after, limit=3)
        pages.append([s.ref for s in page.events])
        if page.next_after is None:
            break
        after = page.next_after
    assert pages == [[0, 1, 2], [3, 4, 5], [6]]
    # A scan bounded by what it reads returns a short page with a next, never cuts.
    short = repository.scan(view, reader, narrowing=None,
                            keep=lambda s: s.ref == 6, limit=3, max_scan=4)
    assert short.events == [] and short.next_after == 3
    narrowed = repository.scan(view, reader, narrowing=("bizStep", ("receiving",)),
                               keep=lambda s: True, limit=10)
    assert [s.ref for s in narrowed.events] == [1, 3, 5] and narrowed.next_after is None


def _capture_story(net: TraceNet) -> dict[int, str]:
    """The demo's story, each step by its party; the actor of each event by log index."""
    for member, prefix in ((FARM, story.FARM_PREFIX), (PROCESSOR, story.PROCESSOR_PREFIX),
                           (CARRIER, story.CARRIER_PREFIX), (RETAILER, story.RETAILER_PREFIX)):
        assert net.call(admin_of(member), "claim", {"prefix": prefix}).error == ""
    actors: dict[int, str] = {}
    for step in story.scenario(net.now - 30 * 86_400_000):
        for index, result in net.capture(ACTORS[step.actor], step.document, step.media):
            assert result.ok, (step.title, result.reason)
            actors[index] = step.actor
    return actors


def test_the_demo_story_traced_from_the_sold_pack() -> None:
    net = TraceNet()
    actors = _capture_story(net)
    view = net.view()
    found = lineage.trace(story.SOLD_PACK, repository.trace_lookup(view))
    assert not found.truncated
    assert {e.ref for e in found.events} == set(actors)  # every event of the story
    assert found.organisations == tuple(sorted(ORGS[ACTORS[a]] for a in
                                               story.EXPECTED_TRACE_ORGS))
    relation = {t.id: t for t in found.identifiers}
    assert relation[canonical_id(story.FARM_LOT)].relation == "upstream"
    assert relation[canonical_id(story.CASES[0])].relation == "contained-in"
    for pack in story.PACKS:  # the recall of the farm's lot reaches every pack
        assert relation[canonical_id(pack)].recalled_by is not None
    affected = lineage.affected_by_recall(story.FARM_LOT, repository.trace_lookup(view))
    assert {canonical_id(p) for p in story.PACKS} <= set(affected)
    assert canonical_id(story.PALLET) not in affected
    # The same trace from the pack's Digital Link.
    link = canonical_id(story.SOLD_PACK)
    assert lineage.trace(link, repository.trace_lookup(view)).events == found.events


def test_the_trace_from_any_item_of_the_story_reaches_all_of_it() -> None:
    """Every identifier of the story, as URN and as Digital Link, traces to exactly the
    story's events and its four organisations: they are all linked."""
    net = TraceNet()
    actors = _capture_story(net)
    view = net.view()
    starts = {*story.PACKS, *story.CASES, story.PALLET, story.FARM_LOT, story.JUICE_LOT}
    for start in sorted(starts) + sorted(canonical_id(s) for s in starts):
        found = lineage.trace(start, repository.trace_lookup(view))
        assert {e.ref for e in found.events} == set(actors), start
        assert len(found.organisations) == 4 and not found.truncated, start


def test_each_reader_sees_the_trace_its_own_way() -> None:
    net = TraceNet()
    actors = _capture_story(net)
    view = net.view()
    whole = lineage.to_json(lineage.trace(story.SOLD_PACK, repository.trace_lookup(view)))
    regulator = repository.redacted(whole, view, net.reader(REGULATOR))
    assert not any(e.get("hidden") for e in regulator["events"])
    retailer = repository.redacted(whole, view, net.reader(RETAILER))
    hidden = {e["ref"] for e in retailer["events"] if e.get("hidden")}
    # The retailer reads its own events and the carrier's delivery to it, not the
    # farm's harvest or the processor's production; it still learns of the recall.
    assert all(actors[ref] in ("farm", "processor") for ref in hidden) and hidden
    assert {actors[e["ref"]] for e in retailer["events"] if not e.get("hidden")} >= {
        "retailer", "carrier"}
    stub = next(e for e in retailer["events"] if e.get("hidden"))
    assert set(stub) == {*repository.HIDDEN_FIELDS, "hidden"}
    assert retailer["recalls"] == whole["recalls"]
    outsider = repository.redacted(whole, view, net.reader(OUTSIDER))
    assert all(e.get("hidden") for e in outsider["events"])


def test_every_json_example_is_captured_and_read_back_field_equal() -> None:
    vectors = vectors_for_test()
    net = TraceNet()
    files = sorted((vectors / "json").rglob("*.jsonld")) + sorted(
        (vectors / "json-more").rglob("*.jsonld"))
    captured, duplicates = 0, set()
    for path in files:
        document = path.read_bytes()
        split = split_document(document, "json")
        if split.kind != "EPCISDocument":
            continue
        for (index, result), item in zip(net.capture(FARM, document), split.events,
                                         strict=True):
            if result.error == "duplicate":  # the same event in two of GS1's files
                duplicates.add(path.name)
                continue
            assert result.ok, (path.name, result.reason)
            stored = repository.load_event(net.view(), index)
            assert stored.event == item.event and stored.hash == item.hash
            captured += 1
    # 54 events in the EPCISDocuments; GS1 repeats six of them in other files: the
    # 9.6.1 pair twice, one of them beside an error declaration, and the 9.6.4
    # transformation written with Digital Links (the same event, the same hash).
    assert captured == 48
    assert duplicates == {"Example_9.6.1-with-comment.jsonld",
                          "Example_9.6.1-ObjectEvent-with-pseudo-SBDH-headers.jsonld",
                          "Example_9.6.4-TransformationEventWithDigitalLink.jsonld",
                          "Example_9.6.1-ObjectEvent-with-error-declaration.jsonld"}


def test_event_times_in_the_story_precede_the_chain() -> None:
    start = 1_760_000_000_000
    times = [json.loads(step.document)["epcisBody"]["eventList"][0]["eventTime"]
             for step in story.scenario(start) if step.media == "json"]
    assert times[0] == iso_utc(start) and times == sorted(times)
