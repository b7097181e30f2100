"""The GS1 EPCIS 2.0 REST binding on a real node (issue 14, acceptance 1): GS1's
examples captured through `POST /v1/epcis/capture` and read back field-equal, GS1's
invalid documents refused naming the field with nothing written, the event hashes the
chain computes equal to the known answers, the derived queries answering exactly their
stated events (as named queries, and in URL form), answers that validate against GS1's
schemas in JSON and XML, paging by `perPage` and `nextPageToken`, and a capture job
that survives `kill -9` of its node without capturing anything twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.epcis_vectors import require_vectors
from tests.nodes import RunningNode, _wait_ready, running_node, tide
from tidechain.client import trace as sdk_trace
from tidechain.client.files import read_key
from tidechain.client.sdk import Client
from tidechain.contracts.trace.document import split_document
from tidechain.contracts.trace.epcis_xml import read_events
from tidechain.contracts.trace.event_hash import event_hash
from tidechain.node.epcis_schemas import EpcisSchemas

VECTORS = require_vectors()
pytestmark = pytest.mark.slow
JSON_FILES = sorted(p for p in (VECTORS / "json").rglob("*.jsonld")
                    if p.name != "EPCISQueryDocument.jsonld")
MORE_FILES = sorted((VECTORS / "json-more").rglob("*.jsonld"))
XML_FILES = sorted(p for p in (VECTORS / "xml").rglob("*.xml") if "CaptureJob" not in p.parts)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    root = tmp_path_factory.mktemp("epcis")
    extra = (f'epcis = true\nepcis_schemas = "{VECTORS}"\n'
             "api_reads_per_s = 100000\n")
    with running_node(root, "epcis-net", extra) as running:
        (running.net / "node0" / "epcis").mkdir()
        enrolled = tide("member", "enrol", "--role", "enterprise", "--name", "EPCIS capture",
                        "--new-key", str(running.net / "node0" / "epcis" / "capturer.key"),
                        env={"TIDE_NET": str(running.net)})
        assert enrolled.returncode == 0, enrolled.stderr
        yield running


@pytest.fixture(scope="module")
def client(node: RunningNode) -> Iterator[Client]:
    key = read_key(node.net / "client.key").key
    with Client(node.url, key=key, trust=node.trust_text, timeout_s=60) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def schemas() -> EpcisSchemas:
    return EpcisSchemas.load(VECTORS)


def _capture(client: Client, path: Path) -> dict[str, Any]:
    job = sdk_trace.capture(client, path.read_bytes())
    return sdk_trace.wait_job(client, job["captureID"])


def _capture_proceeding(client: Client, path: Path) -> tuple[list[str], list[str]]:
    """Capture a file whose events may be on the chain already (GS1 repeats events
    across files): the hashes recorded now, and those refused as duplicates."""
    try:
        job = sdk_trace.capture(client, path.read_bytes(), behaviour="proceed")
    except Exception as exc:  # every event already captured: 409
        assert "409" in str(exc), (path.name, exc)
        return [], _hashes(path)
    done = sdk_trace.wait_job(client, job["captureID"])
    duplicates = [e["hash"] for e in done["errors"] if e.get("code") == "duplicate"]
    assert len(duplicates) == len(done["errors"]), (path.name, done)
    return [e["eventHash"] for e in done["events"]], duplicates


def _hashes(path: Path) -> list[str]:
    media = "xml" if path.suffix == ".xml" else "json"
    return [e.hash for e in split_document(path.read_bytes(), media).events]


@pytest.fixture(scope="module")
def captured_json(client: Client) -> dict[str, list[str]]:
    """Every json/ EPCISDocument captured (the derived queries' corpus): each file's
    event hashes. GS1 repeats the 9.6.1 events in a second file: refused as 409."""
    hashes: dict[str, list[str]] = {}
    for path in JSON_FILES:
        relative = str(path.relative_to(VECTORS / "json"))
        if relative == "Example_9.6.1-with-comment.jsonld":
            with pytest.raises(Exception, match="409") as refused:
                sdk_trace.capture(client, path.read_bytes())
            assert "already captured" in str(refused.value)
            hashes[relative] = _hashes(path)
            continue
        job = _capture(client, path)
        assert job["success"], (relative, job)
        assert [e["eventHash"] for e in job["events"]] == _hashes(path)
        assert all(isinstance(e["logIndex"], int) for e in job["events"])
        hashes[relative] = _hashes(path)
    return hashes


def _all_events(client: Client, params: dict[str, str] | None = None,
                per_page: int = 500) -> list[tuple[dict[str, Any], Any]]:
    """(event, @context of its answer) for every event a query answers, page by page."""
    found: list[tuple[dict[str, Any], Any]] = []
    url: str | None = "/v1/epcis/events"
    query: dict[str, str] | None = dict(params or {}) | {"perPage": str(per_page)}
    while url is not None:
        response = client._http.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found += [(e, body["@context"])
                  for e in body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
        link = response.headers.get("Link")
        url, query = (link.split(">")[0].lstrip("<") if link else None), None
    return found


def _answer_hashes(answer: list[tuple[dict[str, Any], Any]]) -> set[str]:
    return {event_hash({k: v for k, v in e.items() if k != "recordTime"}, context=c)
            for e, c in answer}


def _derived() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "queries" / "derived" / "derived-answers.json").read_text())
    queries: list[dict[str, Any]] = data["queries"]
    return queries


def _expected_hashes(query: dict[str, Any]) -> set[str]:
    rows = query.get("expected_if_urn_and_digital_link_are_equivalent", query["expected"])
    return {_hashes(VECTORS / "json" / file)[index] for file, index in rows}


@pytest.mark.parametrize("query", _derived(), ids=lambda q: q["name"])
def test_derived_queries_answer_exactly_their_events(
        client: Client, captured_json: dict[str, list[str]], query: dict[str, Any],
        schemas: EpcisSchemas) -> None:
    name = query["name"]
    created = client._http.post("/v1/epcis/queries", json={"name": name,
                                                           "query": query["query"]})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/v1/epcis/queries/{name}"
    response = client._http.get(f"/v1/epcis/queries/{name}/events", params={"perPage": "500"})
    assert response.status_code == 200, response.text
    body = response.json()
    schemas.validate_query_document(body)
    events = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert body["epcisBody"]["queryResults"]["queryName"] == name
    assert _answer_hashes([(e, body["@context"]) for e in events]) == _expected_hashes(query)
    # The same query in the binding's URL form.
    url_form = {k: "|".join(v) if isinstance(v, list) else json.dumps(v).strip('"')
                for k, v in query["query"].items()}
    assert _answer_hashes(_all_events(client, url_form)) == _expected_hashes(query)


def test_a_named_query_is_defined_once_and_can_be_deleted(
        client: Client, captured_json: dict[str, list[str]]) -> None:
    body = {"name": "receiving", "query": {"EQ_bizStep": ["receiving"]}}
    assert client._http.post("/v1/epcis/queries", json=body).status_code == 201
    assert client._http.post("/v1/epcis/queries", json=body).status_code == 409
    listed = client._http.get("/v1/epcis/queries").json()
    assert {"name": "receiving", "query": body["query"]} in listed
    bad = client._http.post("/v1/epcis/queries",
                            json={"name": "bad", "query": {"EQ_action": ["SHIP"]}})
    assert bad.status_code == 400 and "EQ_action" in bad.text
    assert client._http.delete("/v1/epcis/queries/receiving").status_code == 204
    assert client._http.get("/v1/epcis/queries/receiving").status_code == 404


def test_answers_page_and_come_in_xml_too(client: Client, captured_json: dict[str, list[str]],
                                          schemas: EpcisSchemas) -> None:
    whole = _all_events(client)
    paged = _all_events(client, per_page=7)
    # The same events in the same order (compared by hash: a page's @context may name
    # an extension's prefix differently when its events' prefixes clash).
    assert [_answer_hashes([item]) for item in paged] == [
        _answer_hashes([item]) for item in whole] and len(whole) > 7
    response = client._http.get("/v1/epcis/events", params={"perPage": "500"},
                                headers={"Accept": "application/xml"})
    assert response.status_code == 200, response.text
    schemas.validate_xml_query_document(response.content)
    assert {event_hash(e) for e in read_events(response.content)} == _answer_hashes(whole)
    types = client._http.get("/v1/epcis/eventTypes").json()
    assert "ObjectEvent" in types["@set"]
    of_type = client._http.get("/v1/epcis/eventTypes/AggregationEvent/events").json()
    assert {e["type"] for e in of_type["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"]} == {"AggregationEvent"}


def test_every_valid_example_is_read_back_field_equal(
        client: Client, captured_json: dict[str, list[str]]) -> None:
    for path in MORE_FILES + XML_FILES:
        recorded, duplicates = _capture_proceeding(client, path)
        assert sorted(recorded + duplicates) == sorted(_hashes(path)), path.name
    answered: dict[str, Any] = {}
    for event, context in _all_events(client):
        assert "recordTime" in event  # the chain's: the block time of the capture
        plain = {k: v for k, v in event.items() if k != "recordTime"}
        answered.setdefault(event_hash(plain, context=context), _expanded(plain, context))
    seen: set[str] = set()
    for path in JSON_FILES + MORE_FILES:  # in capture order: the first copy is recorded
        document = json.loads(path.read_bytes())
        for item in split_document(path.read_bytes(), "json").events:
            if item.hash in seen:
                continue
            seen.add(item.hash)
            original = {k: v for k, v in item.event.items() if k != "recordTime"}
            assert answered[item.hash] == _expanded(original, document["@context"]), path.name
    xml_answer = client._http.get("/v1/epcis/events", params={"perPage": "500"},
                                  headers={"Accept": "application/xml"}).content
    as_xml = {event_hash(e): {k: v for k, v in e.items() if k != "recordTime"}
              for e in read_events(xml_answer)}
    for path in XML_FILES:
        for item in split_document(path.read_bytes(), "xml").events:
            if item.hash in seen:
                continue
            seen.add(item.hash)
            original = {k: v for k, v in item.event.items() if k != "recordTime"}
            assert as_xml[item.hash] == original, path.name


def _expanded(value: Any, context: Any) -> Any:
    """`value` with its compact IRIs (`example:myField`, keys and values) written out
    with the prefixes `context` declares: an answer holding events from several
    documents may name one namespace by another prefix, and means the same."""
    prefixes: dict[str, str] = {}
    for item in context if isinstance(context, list) else [context]:
        if isinstance(item, dict):
            prefixes.update({k: v for k, v in item.items() if isinstance(v, str)})

    def expand(text: str) -> str:
        prefix, colon, rest = text.partition(":")
        return prefixes[prefix] + rest if colon and prefix in prefixes else text

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {expand(k): walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return expand(node) if isinstance(node, str) else node

    return walk(value)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _log_size(client: Client) -> int:
    return int(client.status()["log_size"])


def test_invalid_documents_are_refused_naming_the_field(
        client: Client, captured_json: dict[str, list[str]]) -> None:
    before = _log_size(client)
    refused = 0
    for path in sorted((VECTORS / "invalid" / "capture").iterdir()):
        if path.suffix not in (".json", ".jsonld", ".xml"):
            continue
        media = "application/xml" if path.suffix == ".xml" else "application/ld+json"
        response = client._http.post("/v1/epcis/capture", content=path.read_bytes(),
                                     headers={"Content-Type": media})
        assert response.status_code == 400, (path.name, response.text)
        problem = response.json()
        assert problem["type"] == "epcisException:ValidationException"
        assert problem["field"], (path.name, problem)
        assert problem["field"].split(".")[-1].split("[")[0] in problem["detail"]
        refused += 1
    assert refused == 15
    assert _log_size(client) == before  # nothing was written


def test_capture_refuses_what_is_not_a_document(client: Client) -> None:
    for body, media, status in [(b"{", "application/json", 400),
                                (b"hello", "text/plain", 415),
                                ((VECTORS / "json" / "EPCISQueryDocument.jsonld").read_bytes(),
                                 "application/ld+json", 400)]:
        response = client._http.post("/v1/epcis/capture", content=body,
                                     headers={"Content-Type": media})
        assert response.status_code == status, response.text
    anonymous = httpx.post(f"{client.base_url}/v1/epcis/capture", content=b"{}",
                           headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_the_chain_computes_the_known_event_hashes(client: Client,
                                                   schemas: EpcisSchemas) -> None:
    checked = 0
    for path in sorted((VECTORS / "event-hash" / "examples").iterdir()):
        if path.suffix not in (".xml", ".jsonld"):
            continue
        expected = path.with_suffix(".hashes")
        if not expected.exists():
            continue
        media = "xml" if path.suffix == ".xml" else "json"
        try:
            if media == "xml":
                schemas.validate_xml_document(path.read_bytes())
            else:
                schemas.validate_json_document(json.loads(path.read_bytes()))
        except Exception:
            continue  # not a valid EPCIS 2.0 capture document (1.x XML, fragments)
        known = [line.strip() for line in expected.read_text().splitlines() if line.strip()]
        recorded, refused = _capture_proceeding(client, path)
        assert sorted(recorded + refused) == sorted(known), path.name
        checked += 1
    assert checked >= 5


def test_event_receipts_verify_offline(client: Client,
                                       captured_json: dict[str, list[str]]) -> None:
    for relative, hashes in list(captured_json.items())[:5]:
        for hash_text in hashes:
            response = client._http.get(f"/v1/epcis/receipts/{hash_text}")
            assert response.status_code == 200, (relative, response.text)
            proven = sdk_trace.verify_event_receipt(response.text, client.trust or "",
                                                    expected_hash=hash_text)
            assert proven.index == int(response.headers["X-Tidechain-Log-Index"])


def test_bad_query_input_is_a_4xx_never_a_5xx(client: Client) -> None:
    token_of = "OTIyMzM3MjAzNjg1NDc3NTgwOA"  # base64url of 2**63
    many = "|".join(f"urn:epc:id:sgtin:0614141.107346.{n}" for n in range(80))  # > 64: a scan
    for params, status in [({"perPage": "²"}, 400), ({"perPage": "0"}, 400),
                           ({"nextPageToken": token_of}, 400),
                           ({"nextPageToken": "!!"}, 400),
                           ({"EQ_action": "SHIP"}, 400),
                           ({"MATCH_epc": many}, 200),
                           ({"orderBy": "eventTime", "eventCountLimit": "2"}, 200)]:
        response = client._http.get("/v1/epcis/events", params=params)
        assert response.status_code == status, (params, response.text)
        if status >= 400:
            assert response.headers["Content-Type"].startswith("application/problem+json")
    deep = b'{"name": "deep", "query": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client._http.post("/v1/epcis/queries", content=deep,
                                 headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    huge = b'{"type": "EPCISDocument", "x": ' + b"9" * 6000 + b"}"
    response = client._http.post("/v1/epcis/capture", content=huge,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text


# Last: it kills the module's node (and stops the one it restarts).
def test_a_capture_job_survives_kill_9(node: RunningNode, client: Client,
                                       request: pytest.FixtureRequest) -> None:
    parsed = json.loads((VECTORS / "json" / "Example_9.6.2-ObjectEvent.jsonld").read_bytes())
    first = parsed["epcisBody"]["eventList"][0]
    first["eventTime"] = "2006-04-05T00:00:00.000Z"  # a new event: not captured yet
    parsed["epcisBody"]["eventList"] = [first]
    document = json.dumps(parsed).encode()
    job = sdk_trace.capture(client, document)
    node.process.send_signal(signal.SIGKILL)
    node.process.wait(timeout=15)
    with node.log_path.open("ab") as log:
        node.process = subprocess.Popen(
            [sys.executable, "-m", "tidechain", "node", "start", str(node.net / "node0")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")})
    request.addfinalizer(lambda: _stop(node.process))  # the fixture stops the first one
    _wait_ready(node)
    done = sdk_trace.wait_job(client, job["captureID"])
    assert done["success"] and not done["running"], done
    [event] = done["events"]
    hits = _all_events(client, {"EQ_eventID": split_document(
        document, "json").events[0].event["eventID"]})
    assert len([e for e, _ in hits if e["eventTime"].startswith("2006-04-05")]) == 1
    assert isinstance(event["logIndex"], int)
