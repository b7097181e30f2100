"""The GS1 EPCIS 2.0 REST binding under `/v1/epcis` (docs/traceability.md, ADR 0018).

Capture: `POST /v1/epcis/capture` takes an EPCISDocument in JSON/JSON-LD or XML. It is
validated against GS1's JSON Schema or XSDs (read from the folder node.toml names,
`epcis_schemas`: the files are GS1's and are not shipped), split into its events with
each event's exact bytes, and checked against the chain (an identical re-capture is
409). The job and the document are then on disk and the answer is 202 with the job's
`Location`; a background task records each event as a `trace.capture` transaction
signed by the organisation's capturing member key (`epcis_capturer`) and waits for the
commits. A restart resumes running jobs: their transactions are deterministic, so one
already committed is found by its id and not captured twice.

Query: `GET /v1/epcis/events` with the binding's query parameters, `perPage` and
`nextPageToken`, answers an EPCISQueryDocument (JSON, or XML when the request accepts
`application/xml`); named queries under `/v1/epcis/queries`. Every answer holds only
the events the caller may read (contracts/trace/visibility.py); callers are members,
proven by an RFC 9421 signature or a member certificate, or HTTP basic users the
operator issued (`tide node epcis-user`) acting for the capturing member.

Outside the binding: `GET /v1/trace?id=...` (an item's history with anomalies, recalls
and each event's log index), `GET /v1/trace/recall?id=...` (what a recall affects),
`GET /v1/epcis/documents/{sha256}` (a captured document, byte for byte) and
`GET /v1/epcis/receipts/{hash}` (an event's receipt by its CBV 2.0 hash).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from tidechain.api.access import Gate
from tidechain.api.tsa import BasicUsers, read_bounded
from tidechain.client.txbuilder import call_tx
from tidechain.contracts.trace import lineage
from tidechain.contracts.trace.contract import (
    NAME,
    event_lookups,
    filed_under_hash,
    get_record,
    too_many_lookups,
)
from tidechain.contracts.trace.convert import query_document_json, query_document_xml
from tidechain.contracts.trace.document import CapturedDocument, split_document
from tidechain.contracts.trace.event_hash import EVENT_TYPES
from tidechain.contracts.trace.identifiers import canonical_id
from tidechain.contracts.trace.query import EventQuery, QueryTooLarge, Row, parse_query
from tidechain.contracts.trace.repository import (
    MAX_LOOKUP_VALUES,
    StoredEvent,
    load_event,
    redacted,
    scan,
    trace_lookup,
    visible,
)
from tidechain.contracts.trace.vocabulary import cbv_word
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Busy, ConfigError, DecodeError, NotFound, Rejected, TooLarge
from tidechain.core.timefmt import iso_utc as iso_ms
from tidechain.identity.roles import Role
from tidechain.ledger.access import ANONYMOUS, Reader, refusal
from tidechain.ledger.types import LogEntry
from tidechain.node.epcis_schemas import EpcisSchemas, load_json
from tidechain.node.runtime import NodeRuntime
from tidechain.storage.capture_jobs import CaptureJob, CaptureJobs, JobEvent

log = logging.getLogger("tidechain.epcis")

BASE: Final = "/v1/epcis"
TRACE_PATH: Final = "/v1/trace"
MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
"""One capture document (GS1-EPCIS-Capture-File-Size-Limit)."""
MAX_EVENTS_PER_CAPTURE: Final = 500
"""Events in one capture (GS1-EPCIS-Capture-Limit): one submission batch, one job."""
DEFAULT_PER_PAGE: Final = 30
"""The binding's default `perPage`."""
MAX_PER_PAGE: Final = 500
COMMIT_WAIT_MS: Final = 60_000
CAPTURE_TTL_MS: Final = 3_600_000
"""A capture transaction's validity: an hour, so a job resumed after a restart within
that hour submits the very same transactions (same ids), never a second copy."""
EXPIRY_MARGIN_MS: Final = 300_000
"""How long past its expiry a transaction is replaced by a new one: block times follow
the validators' clocks within seconds (ADR 0006), so by then it can never commit."""
MAX_NAMED_QUERIES: Final = 1_000
MAX_QUERY_BODY_BYTES: Final = 64 * 1024
MAX_ORDERED: Final = 10_000
"""Events an ordered or counted query may answer in all (it is sorted before paging)."""
MAX_ORDERED_SCAN: Final = 20_000
"""Events such a query may examine: past this it is refused as too large (413)."""
JSON_TYPES: Final = ("application/json", "application/ld+json")
XML_TYPES: Final = ("application/xml", "text/xml")
PROBLEM_JSON: Final = "application/problem+json"
HEADERS: Final = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0",
                  "GS1-EPCIS-Capture-Limit": str(MAX_EVENTS_PER_CAPTURE),
                  "GS1-EPCIS-Capture-File-Size-Limit": str(MAX_DOCUMENT_BYTES)}


@dataclass(frozen=True)
class EpcisConfig:
    schemas: EpcisSchemas
    capturer_path: Path
    """The organisation's capturing member key file: it signs the events standard
    capture clients send. Read when first needed, so that an operator may enrol it
    after the node starts; while it is absent the node answers queries only."""
    jobs_path: Path
    users: Mapping[str, str] = field(default_factory=dict)


def load_epcis_config(node_dir: Path, schemas: str, capturer: str,
                      users: str) -> EpcisConfig:
    """The repository's configuration from node.toml's `epcis_*` settings (paths
    relative to the node directory). GS1's schema files are required: a node that
    cannot validate captures does not serve them."""
    import os

    from tidechain.api.tsa import read_users

    folder = schemas or os.environ.get("TIDE_EPCIS_SCHEMAS", "")
    if not folder:
        raise ConfigError("epcis = true needs epcis_schemas: a folder with GS1's EPCIS 2.0 "
                          "JSON Schema and XSDs (schema/, xsd/), or $TIDE_EPCIS_SCHEMAS "
                          "(docs/traceability.md says where to get them)")
    loaded = EpcisSchemas.load(node_dir / folder)
    return EpcisConfig(loaded, node_dir / capturer, node_dir / "epcis.sqlite",
                       read_users(node_dir / users))


def problem(status: int, kind: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 7807 problem, as the binding answers errors."""
    body = {"type": f"epcisException:{kind}", "title": kind, "status": status,
            "detail": detail} | extra
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_JSON,
                        headers=HEADERS)


class EpcisService:
    def __init__(self, runtime: NodeRuntime, gate: Gate, config: EpcisConfig) -> None:
        self.runtime = runtime
        self.node = runtime.node
        self.gate = gate
        self.config = config
        self.jobs = CaptureJobs(config.jobs_path)
        self.basic = BasicUsers(config.users)
        self._tasks: set[asyncio.Task[None]] = set()
        self._capturer: SigningKey | None = None

    @property
    def capturer(self) -> SigningKey | None:
        """The capturing member key, once its file exists (read once)."""
        if self._capturer is None and self.config.capturer_path.exists():
            from tidechain.client.files import read_key

            self._capturer = read_key(self.config.capturer_path).key
        return self._capturer

    # --- routes ----------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        def add(method: str, path: str, handler: Handler) -> None:
            app.router.add_route(method, path, _problems(handler))

        add("POST", BASE + "/capture", self.capture)
        add("GET", BASE + "/capture", self.capture_jobs)
        add("GET", BASE + "/capture/{id}", self.capture_job)
        add("GET", BASE + "/events", self.events)
        add("GET", BASE + "/events/{eventID:.+}", self.event_by_id)
        add("GET", BASE + "/eventTypes", self.event_types)
        add("GET", BASE + "/eventTypes/{eventType}/events", self.events_of_type)
        add("POST", BASE + "/queries", self.create_query)
        add("GET", BASE + "/queries", self.list_queries)
        add("GET", BASE + "/queries/{name}", self.get_query)
        add("DELETE", BASE + "/queries/{name}", self.delete_query)
        add("GET", BASE + "/queries/{name}/events", self.query_events)
        add("GET", BASE + "/documents/{sha256}", self.document)
        add("GET", BASE + "/receipts/{hash:.+}", self.receipt)
        add("GET", TRACE_PATH, self.trace)
        add("GET", TRACE_PATH + "/recall", self.recall)
        app.on_startup.append(self._resume)
        app.on_shutdown.append(self._stop)

    async def _resume(self, app: web.Application) -> None:
        for job in self.jobs.running():
            log.info("resuming capture job %s", job.id)
            self._start(job)

    async def _stop(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.jobs.close()

    # --- who asks ----------------------------------------------------------------------
    def _reader(self, request: web.Request, *, capture: bool = False) -> Reader:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            # Counted by address before any scrypt: passwords cannot be tried fast.
            self.gate.limiter.check(f"ip:{request.remote}", time.time())
            if self.basic.admits(header):
                return self._capturer_reader()
            raise refusal(ANONYMOUS, "the EPCIS repository", frozenset())
        reader = self.gate.reader(request, read=not capture)
        if reader.anonymous:
            raise refusal(reader, "the EPCIS repository", frozenset())
        return reader

    def _home_org(self) -> str | None:
        """The organisation this node captures for (its capturer's), if any."""
        capturer = self.capturer
        if capturer is None:
            return None
        return self.node.views.reader(capturer.public_key, int(time.time() * 1000)).org

    def _own_or_regulator(self, reader: Reader, what: str) -> None:
        """Capture jobs and documents are the capturing organisation's (and the
        regulator's); to anyone else they answer as if they did not exist."""
        home = self._home_org()
        if Role.REGULATOR not in reader.roles and (home is None or reader.org != home):
            raise NotFound(f"no {what} of your organisation on this node")

    def _capturer_reader(self) -> Reader:
        """A basic-auth user acts for the organisation's capturing member."""
        if self.capturer is None:
            raise refusal(ANONYMOUS, "the EPCIS repository", frozenset())
        return self.node.views.reader(self.capturer.public_key, int(time.time() * 1000))

    # --- capture -----------------------------------------------------------------------
    async def capture(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request, capture=True)
        capturer = self.capturer
        if capturer is None:
            return problem(501, "ImplementationException",
                           "this node captures no events: its operator has not set "
                           "epcis_capturer (capture through another member's node, or "
                           "sign capture transactions with the SDK)")
        org = self._home_org()
        if reader.org != org:
            raise refusal(reader, "capture on this node (members of its organisation)",
                          frozenset())
        media = _media(request.content_type)
        if media is None:
            return problem(415, "ValidationException",
                           "send an EPCISDocument as application/json, application/ld+json "
                           "or application/xml")
        body = await read_bounded(request.content, MAX_DOCUMENT_BYTES)
        if len(body) > MAX_DOCUMENT_BYTES:
            return problem(413, "CaptureLimitExceededException",
                           f"the document exceeds {MAX_DOCUMENT_BYTES} bytes: split it")
        behaviour = request.headers.get("GS1-Capture-Error-Behaviour", "rollback")
        if behaviour not in ("rollback", "proceed"):
            return problem(400, "ValidationException",
                           "GS1-Capture-Error-Behaviour must be rollback or proceed")
        try:
            document = self._validated(body, media)
        except Rejected as bad:  # 400 naming the field, or 413 past a bound
            kind = ("CaptureLimitExceededException" if bad.http_status == 413
                    else "ValidationException")
            return problem(bad.http_status, kind, bad.reason,
                           field=getattr(bad, "field", None))
        if len(document.events) > MAX_EVENTS_PER_CAPTURE:
            return problem(413, "CaptureLimitExceededException",
                           f"{len(document.events)} events in one capture; at most "
                           f"{MAX_EVENTS_PER_CAPTURE}")
        refused = self._precheck(document, org)
        duplicates = [r for r in refused if r["code"] == "duplicate"]
        if duplicates and (behaviour == "rollback" or len(duplicates) == len(document.events)):
            return problem(409, "ConflictException",
                           "already captured: " + "; ".join(d["reason"] for d in duplicates),
                           errors=duplicates)
        if refused and behaviour == "rollback":
            return problem(400, "ValidationException",
                           "; ".join(r["reason"] for r in refused), errors=refused)
        job = self._new_job(document, media, body, capturer, behaviour, refused)
        self._start(job)
        return web.Response(status=202, headers=HEADERS | {
            "Location": f"{BASE}/capture/{job.id}", "GS1-Capture-Job-ID": job.id},
            text=json.dumps(_job_document(job)), content_type="application/json")

    def _validated(self, body: bytes, media: str) -> CapturedDocument:
        if media == "json":
            self.config.schemas.validate_json_document(load_json(body))
        else:
            self.config.schemas.validate_xml_document(body)
        document = split_document(body, media)
        if document.kind != "EPCISDocument":
            raise DecodeError(f"capture takes an EPCISDocument, not an {document.kind}")
        return document

    def _precheck(self, document: CapturedDocument, org: str | None) -> list[dict[str, Any]]:
        """What the contract would refuse, known before anything is submitted: an event
        already on the chain (or twice in this document), one naming too much, a
        declaration of another organisation's event."""
        refused: list[dict[str, Any]] = []
        seen: set[tuple[str, bool]] = set()
        state = self.node.views.view().state
        for position, item in enumerate(document.events):
            declaring = "errorDeclaration" in item.event
            where = f"epcisBody.eventList[{position}]"
            too_many = too_many_lookups(event_lookups(item.event))  # the count only
            if too_many is not None:
                refused.append({"position": position, "code": "too_large",
                                "reason": f"{where}: {too_many}"})
                continue
            mine = (item.hash, declaring)
            on_chain = [get_record(state, i) for i in filed_under_hash(state, item.hash)]
            if mine in seen or any(r is not None and bool(r["declaration"]) == declaring
                                   for r in on_chain):
                what = "error declaration" if declaring else "event"
                refused.append({"position": position, "code": "duplicate",
                                "hash": item.hash,
                                "reason": f"{where}: this {what} is already captured "
                                          f"({item.hash})"})
            elif declaring and any(r is not None and r["org"] != org for r in on_chain):
                refused.append({"position": position, "code": "not_yours",
                                "reason": f"{where}: only the organisation that captured "
                                          "an event may declare it in error"})
            seen.add(mine)
        return refused

    def _new_job(self, document: CapturedDocument, media: str, body: bytes,
                 capturer: SigningKey, behaviour: str,
                 refused: list[dict[str, Any]]) -> CaptureJob:
        created_ms = int(time.time() * 1000)
        job = CaptureJob(id=str(uuid.uuid4()), created_ms=created_ms, behaviour=behaviour,
                         media=media, document_sha256=hashlib.sha256(body).digest(),
                         member=capturer.public_key.hex())
        skip = {r["position"] for r in refused}
        job.errors = list(refused)
        job.success = not refused
        for position, item in enumerate(document.events):
            if position in skip:
                continue
            tx = self._capture_tx(job, position, item.format, item.source, item.context)
            job.events.append(JobEvent(position, item.hash, tx.tx_id.hex()))
        self.jobs.add(job, body)
        return job

    def _capture_tx(self, job: CaptureJob, position: int, fmt: str, source: bytes,
                    context: bytes, attempt: int = 0, since_ms: int | None = None) -> Any:
        """The transaction of one event: deterministic from the job (and the attempt),
        so a resumed job submits the same transaction (same id) rather than a second
        capture."""
        capturer = self.capturer
        assert capturer is not None
        seed = f"{job.id}/{position}" + (f"/{attempt}" if attempt else "")
        nonce = hashlib.sha256(seed.encode()).digest()[:16]
        args = {"format": fmt, "source": source, "context": context,
                "document": job.document_sha256, "position": position}
        return call_tx(capturer, self.node.genesis.chain_id, NAME, "capture", args,
                       now_ms=job.created_ms if since_ms is None else since_ms,
                       nonce=nonce, ttl_ms=CAPTURE_TTL_MS)

    def _start(self, job: CaptureJob) -> None:
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: CaptureJob) -> None:
        """Capture the job's events, then record that it finished. A failure of ours
        leaves the job running on disk: the next start resumes it."""
        try:
            await self._capture(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: logged, and the job is resumed at the next start
            log.exception("capture job %s stopped; it resumes when the node restarts",
                          job.id)
            return
        job.running = False
        job.success = not job.errors
        job.finished_ms = int(time.time() * 1000)
        self.jobs.update(job)

    async def _capture(self, job: CaptureJob) -> None:
        """Submit what is not yet committed and wait for it, until every event is
        committed or refused: a busy chain is waited out, a commit that takes long is
        waited for again, a transaction that expired unseen is replaced by a new one
        (it can no longer commit, so nothing is captured twice)."""
        media, body = self.jobs.document(job.document_sha256)
        document = split_document(body, media)
        while pending := [e for e in job.events if e.log_index is None and e.error is None]:
            self._renew_expired(job, pending)
            txs = {e.position: self._capture_tx(
                job, e.position, document.events[e.position].format,
                document.events[e.position].source, document.events[e.position].context,
                e.attempt, e.since_ms) for e in pending}
            for e in pending:
                e.tx_id = txs[e.position].tx_id.hex()
            await self._submit(job, pending, txs)
            for item in pending:
                await self._settle(job, item)
            self.jobs.update(job)

    def _renew_expired(self, job: CaptureJob, pending: list[JobEvent]) -> None:
        """An event whose transaction expired without committing gets a new one."""
        now_ms = int(time.time() * 1000)
        for item in pending:
            built_ms = job.created_ms if item.since_ms is None else item.since_ms
            if now_ms > built_ms + CAPTURE_TTL_MS + EXPIRY_MARGIN_MS \
                    and not self._committed(item):
                item.attempt += 1
                item.since_ms = now_ms

    def _committed(self, item: JobEvent) -> bool:
        found = self.node.store.entry_by_tx(bytes.fromhex(item.tx_id))
        if found is not None:
            item.log_index = found[0]
            entry = LogEntry.decode(found[2])
            if not entry.result.ok:
                item.error = entry.result.error or "refused on chain"
        return found is not None

    async def _submit(self, job: CaptureJob, pending: list[JobEvent],
                      txs: Mapping[int, Any]) -> None:
        attempt = 0
        while True:
            try:
                results = await self.runtime.submit_batch(
                    [txs[e.position].encode() for e in pending])
                break
            except Busy as exc:  # a full mempool: wait, the job is safe on disk
                attempt += 1
                await asyncio.sleep(min(exc.retry_after_s * attempt, 30))
        for item, result in zip(pending, results, strict=True):
            if not isinstance(result, Rejected) or result.code == "duplicate":
                continue  # admitted, or pending already
            if not self._committed(item):  # `replay`: committed already
                item.error = f"{result.code}: {result.reason}"

    async def _settle(self, job: CaptureJob, item: JobEvent) -> None:
        """Wait for one event's transaction; a timeout leaves it pending (asked again)."""
        if item.error is None and item.log_index is None:
            try:
                outcome = await self.runtime.wait_for(bytes.fromhex(item.tx_id),
                                                      COMMIT_WAIT_MS)
            except NotFound:  # neither pending nor committed here: resubmitted next turn
                self._committed(item)
                return
            except Rejected as exc:
                if exc.code == "timeout":
                    return  # it may still commit: waited for again next turn
                raise
            if outcome.log_index is None:
                item.error = "dropped: " + (outcome.rejection.reason if outcome.rejection
                                            else "not committed")
            else:
                item.log_index = outcome.log_index
                if outcome.result is not None and not outcome.result.ok:
                    item.error = outcome.result.error or "refused on chain"
        if item.error is not None and not any(
                e.get("position") == item.position for e in job.errors):
            job.errors.append({"position": item.position, "code": "refused",
                               "reason": item.error})

    async def capture_job(self, request: web.Request) -> web.StreamResponse:
        self._own_or_regulator(self._reader(request), "such capture job")
        job = self.jobs.get(request.match_info["id"])
        return _json(_job_document(job))

    async def capture_jobs(self, request: web.Request) -> web.StreamResponse:
        self._own_or_regulator(self._reader(request), "capture jobs")
        per_page = _per_page(request)
        token = request.query.get("nextPageToken")
        jobs, more = self.jobs.page(None if token is None else _int_token(token), per_page)
        headers = {} if more is None else {"Link": _next_link(request, str(more))}
        return _json({"captureJobs": [_job_document(j) for j in jobs]}, headers)

    # --- queries ---------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        query = parse_query(_url_params(request), source="url")
        return self._answer(request, reader, query, "SimpleEventQuery")

    async def event_by_id(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        query = parse_query({"EQ_eventID": request.match_info["eventID"]}, source="url")
        return self._answer(request, reader, query, "SimpleEventQuery")

    async def events_of_type(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        event_type = request.match_info["eventType"]
        if event_type not in EVENT_TYPES:
            raise NotFound(f"no event type {event_type[:40]!r}; types: "
                           + ", ".join(sorted(EVENT_TYPES)))
        params = _url_params(request) | {"eventType": event_type}
        return self._answer(request, reader, parse_query(params, source="url"),
                            "SimpleEventQuery")

    async def event_types(self, request: web.Request) -> web.StreamResponse:
        self._reader(request)
        return _json({"@set": sorted(EVENT_TYPES)})

    def _answer(self, request: web.Request, reader: Reader, query: EventQuery,
                name: str) -> web.StreamResponse:
        """One page of a query's answer: in log order, streamed page by page (the token
        is the last log index read); or, when the query orders or counts its answer,
        the whole answer ordered first (bounded) and paged by position."""
        per_page = _per_page(request)
        token = request.query.get("nextPageToken")
        view = self.node.views.view()
        keep = functools.partial(_matches, query)
        narrowing = _narrowing(query)
        if query.order_by is None and query.event_count_limit is None \
                and query.max_event_count is None:
            page = scan(view, reader, narrowing=narrowing, keep=keep,
                        after=-1 if token is None else _int_token(token), limit=per_page)
            found, more = page.events, page.next_after
        else:
            whole = scan(view, reader, narrowing=narrowing, keep=keep, limit=MAX_ORDERED,
                         max_scan=MAX_ORDERED_SCAN)
            if whole.next_after is not None:
                raise QueryTooLarge(f"an ordered or counted query examines at most "
                                    f"{MAX_ORDERED_SCAN} events: narrow it")
            rows = query.order([Row(s.event, s.record_time_ms, s) for s in whole.events])
            offset = 0 if token is None else _int_token(token)
            found = [row.ref for row in rows[offset:offset + per_page]]
            more = offset + per_page if offset + per_page < len(rows) else None
        events = [_answer_event(s) for s in found]
        headers = {} if more is None else {"Link": _next_link(request, str(more))}
        created = iso_ms(int(time.time() * 1000))
        if _wants_xml(request):
            body = query_document_xml(events, name, None, created)
            return web.Response(body=body, content_type="application/xml",
                                headers=HEADERS | headers)
        return _json(query_document_json(events, name, None, created), headers,
                     content_type="application/ld+json")

    async def create_query(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        body = await read_bounded(request.content, MAX_QUERY_BODY_BYTES)
        if len(body) > MAX_QUERY_BODY_BYTES:
            raise TooLarge(f"a named query is at most {MAX_QUERY_BODY_BYTES} bytes")
        definition = load_json(body)
        if not isinstance(definition, dict) or set(definition) - {"name", "query"} \
                or not isinstance(definition.get("name"), str):
            raise DecodeError("a named query is {\"name\": ..., \"query\": {...}}")
        name, query = definition["name"], definition.get("query") or {}
        if not 1 <= len(name) <= 120 or not name.replace("-", "").replace("_", "").isalnum():
            raise DecodeError("a query name is 1-120 letters, digits, '-' or '_'")
        self.config.schemas.validate_query_body(query)
        parse_query(query, source="body")  # refuse what cannot run, now
        self.jobs.save_query(name, query, MAX_NAMED_QUERIES, reader.org or "")
        return web.Response(status=201, headers=HEADERS | {
            "Location": f"{BASE}/queries/{name}"})

    async def list_queries(self, request: web.Request) -> web.StreamResponse:
        self._reader(request)
        return _json([{"name": n, "query": q} for n, q in self.jobs.queries()])

    async def get_query(self, request: web.Request) -> web.StreamResponse:
        self._reader(request)
        name = request.match_info["name"]
        return _json({"name": name, "query": self.jobs.query(name)})

    async def delete_query(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)  # its own organisation's queries, or any: the regulator
        self.jobs.delete_query(request.match_info["name"], None if Role.REGULATOR in
                               reader.roles else reader.org or "")
        return web.Response(status=204, headers=HEADERS)

    async def query_events(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        name = request.match_info["name"]
        query = parse_query(self.jobs.query(name), source="body")
        return self._answer(request, reader, query, name)

    # --- beyond the binding -------------------------------------------------------------
    async def document(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        try:
            digest = bytes.fromhex(request.match_info["sha256"])
        except ValueError:
            raise DecodeError("a document is named by its SHA-256 in hex") from None
        # The whole document is its capturing organisation's (and the regulator's);
        # others read the events they may read, each on its own.
        self._own_or_regulator(reader, "such captured document")
        try:
            media, body = self.jobs.document(digest)
        except NotFound:
            raise NotFound("no such captured document of your organisation on this node") \
                from None
        return web.Response(body=body, content_type="application/xml" if media == "xml"
                            else "application/ld+json")

    async def receipt(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        view = self.node.views.view()
        refs = filed_under_hash(view.state, request.match_info["hash"])
        for ref in refs:
            stored = load_event(view, ref)
            if visible(view, reader, stored):
                return web.Response(text=self.node.views.receipt(ref), headers={
                    "X-Tidechain-Log-Index": str(ref)})
        raise NotFound("no event with that hash that you may read")

    async def trace(self, request: web.Request) -> web.StreamResponse:
        reader = self._reader(request)
        start = request.query.get("id", "")
        if not start or len(start) > 512:
            raise DecodeError("'id' names an identifier: an EPC URN or a GS1 Digital Link")
        view = self.node.views.view()
        found = lineage.trace(start, trace_lookup(view))
        return _json(redacted(lineage.to_json(found), view, reader))

    async def recall(self, request: web.Request) -> web.StreamResponse:
        self._reader(request)
        start = request.query.get("id", "")
        if not start or len(start) > 512:
            raise DecodeError("'id' names the recalled identifier (a lot, case or item)")
        view = self.node.views.view()
        affected = lineage.affected_by_recall(start, trace_lookup(view))
        return _json({"recalled": canonical_id(start), "affected": list(affected)})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXCEPTIONS: Final = {"query_parameter": "QueryParameterException",
                     "not_found": "NoSuchResourceException",
                     "too_large": "QueryTooLargeException",
                     "unauthenticated": "SecurityException",
                     "forbidden": "SecurityException",
                     "conflict": "ConflictException"}
"""Our rejection codes as the binding's exception types (its RFC 7807 `type`)."""


def _problems(handler: Handler) -> Handler:
    """The binding answers errors as RFC 7807 problems naming its exception types."""
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Rejected as exc:
            kind = EXCEPTIONS.get(exc.code, "ValidationException" if exc.http_status == 400
                                  else "ImplementationException")
            response = problem(exc.http_status, kind, exc.reason, error=exc.code,
                               field=getattr(exc, "field", None) or getattr(exc, "param", None))
            if exc.http_status == 401:
                response.headers["WWW-Authenticate"] = 'Signature realm="tidechain", ' \
                                                       'Basic realm="tidechain EPCIS"'
            return response

    return answer


def _matches(query: EventQuery, stored: StoredEvent) -> bool:
    return query.matches(stored.event, record_time_ms=stored.record_time_ms)


def _narrowing(query: EventQuery) -> tuple[str, tuple[str, ...]] | None:
    """The query's narrowing as the contract's lookup keys: identifiers in any role
    under one kind (a superset: the query's own match decides), bizSteps as bare CBV
    words."""
    narrowing = query.narrowing()
    if narrowing is None:
        return None
    kind, values = narrowing
    if len(values) > MAX_LOOKUP_VALUES:
        return None  # a long list of values: one scan reads less than that many lookups
    if kind in ("epc", "class"):
        return "id", values
    if kind == "bizStep":
        return "bizStep", tuple(cbv_word(v, "bizstep") for v in values)
    return kind, values


def _answer_event(stored: StoredEvent) -> tuple[dict[str, Any], Any]:
    """An event as a query returns it: as captured, with the recordTime the chain gave
    it (the block time of its commit)."""
    event = dict(stored.event)
    event["recordTime"] = iso_ms(stored.record_time_ms)
    return event, stored.context


def _job_document(job: CaptureJob) -> dict[str, Any]:
    """A capture job as the binding describes it, with the log index of each event."""
    out: dict[str, Any] = {"captureID": job.id, "createdAt": iso_ms(job.created_ms),
                           "running": job.running, "success": job.success,
                           "captureErrorBehaviour": job.behaviour,
                           "errors": job.errors}
    if job.finished_ms is not None:
        out["finishedAt"] = iso_ms(job.finished_ms)
    out["events"] = [{"position": e.position, "eventHash": e.hash, "logIndex": e.log_index,
                      "tx": e.tx_id, **({"error": e.error} if e.error else {})}
                     for e in job.events]
    out["document"] = job.document_sha256.hex()
    return out


def _media(content_type: str) -> str | None:
    if content_type in JSON_TYPES:
        return "json"
    if content_type in XML_TYPES:
        return "xml"
    return None


def _wants_xml(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(t in accept for t in XML_TYPES) and "json" not in accept


def _url_params(request: web.Request) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for name in request.query:
        values = request.query.getall(name)
        out[name] = values[0] if len(values) == 1 else list(values)
    for paging in ("perPage", "nextPageToken"):
        out.pop(paging, None)
    return out


def _per_page(request: web.Request) -> int:
    text = request.query.get("perPage", str(DEFAULT_PER_PAGE))
    if not (text.isascii() and text.isdigit() and len(text) <= 6) \
            or not 1 <= int(text) <= MAX_PER_PAGE:
        raise DecodeError(f"'perPage' must be 1..{MAX_PER_PAGE}")
    return int(text)


def _int_token(token: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("'nextPageToken' is not a token this node gave") from None
    if not 0 <= value < 2**63:
        raise DecodeError("'nextPageToken' is not a token this node gave")
    return value


def _next_link(request: web.Request, position: str) -> str:
    token = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    url = request.rel_url.update_query({"nextPageToken": token})
    return f"<{url}>; rel=\"next\""


def _json(value: Any, headers: Mapping[str, str] | None = None, *,
          content_type: str = "application/json") -> web.Response:
    return web.Response(text=json.dumps(value), content_type=content_type,
                        headers=HEADERS | dict(headers or {}))


__all__ = ["BASE", "TRACE_PATH", "EpcisConfig", "EpcisService", "load_epcis_config"]
