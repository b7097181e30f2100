"""The REST API: the route table (`api/routes.py`) bound to the node facade.

No business rule lives here. Parameters are parsed into each route's declared Struct;
every answer is converted through the model its route declares for its status before
it is sent, so what leaves is what the OpenAPI document says. Every `Rejected` becomes
its HTTP status with `{"error": code, "reason": ...}`; anything else is a bug and is
logged as one (500).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from tidechain.api import models
from tidechain.api.access import ACCEPT_SIGNATURE, READER_KEY, Gate
from tidechain.api.epcis import EpcisConfig, EpcisService
from tidechain.api.events import PATH as EVENTS_PATH
from tidechain.api.events import EventStreams
from tidechain.api.metrics import Operations
from tidechain.api.openapi import describe_contracts, openapi_document
from tidechain.api.ratelimit import RateLimited, ReadLimiter
from tidechain.api.routes import API_VERSION, TEXT, Route, all_routes
from tidechain.api.tsa import PATH as TSA_PATH
from tidechain.api.tsa import TimestampService, TsaConfig
from tidechain.core import cbor
from tidechain.core.errors import Busy, DecodeError, InvariantViolation, NotFound, Rejected
from tidechain.core.hexcodec import parse_hex, to_json
from tidechain.core.limits import (
    MAX_HTTP_BODY_BYTES,
    MAX_RATE_LIMITED_CALLERS,
    READS_PER_S_PER_CALLER,
)
from tidechain.explorer.routes import add_explorer_routes
from tidechain.ledger.access import Reader, entry_refusal, refusal
from tidechain.ledger.application import PageRequest
from tidechain.ledger.types import SignedTx
from tidechain.node.config import DEFAULT_EVENT_SUBSCRIBERS
from tidechain.node.node import Committed
from tidechain.node.runtime import NodeRuntime, now_ms

log = logging.getLogger("tidechain.api")

CBOR = "application/cbor"
JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = tuple[int, Any] | tuple[int, Any, Mapping[str, str]]
"""(status, value[, headers]): the value is converted through the route's model for
the status."""
PAGE_FIELDS = ("cursor", "limit")


def _error_response(exc: Rejected) -> web.Response:
    headers = {}
    if isinstance(exc, Busy | RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.http_status == 401:
        headers["Accept-Signature"] = ACCEPT_SIGNATURE
    return web.json_response(exc.to_dict(), status=exc.http_status, headers=headers)


@web.middleware
async def _rejections(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Rejected as exc:
        return _error_response(exc)
    except web.HTTPException as exc:
        if exc.status >= 400:
            reason = exc.reason or "request refused"
            code = {405: "method_not_allowed", 413: "too_large", 404: "not_found"}.get(
                exc.status, "http")
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            return web.json_response({"error": code, "reason": reason}, status=exc.status,
                                     headers=headers)
        raise


def parse_params(route: Route, request: web.Request) -> tuple[Any, PageRequest | None]:
    """The route's parameters from the path and the query string, and for a paged
    application query its page request; DecodeError naming what is wrong."""
    raw: dict[str, str] = dict(request.match_info)
    for name in request.query:
        values = request.query.getall(name)
        if len(values) > 1:
            raise DecodeError(f"parameter {name!r} given {len(values)} times")
        if name in raw:
            raise DecodeError(f"parameter {name!r} is part of the path")
        raw[name] = values[0]
    page = None
    if route.query is not None and route.paged:
        page_raw = {k: raw.pop(k) for k in PAGE_FIELDS if k in raw}
        page = _convert(page_raw, PageRequest)
    if route.params is None:
        return None, page
    return _convert(raw, route.params), page


_DECIMAL = re.compile(r"-?[0-9]{1,19}")


@functools.cache
def _integer_fields(kind: Any) -> frozenset[str]:
    """The fields of a parameters Struct that hold integers (maybe optional)."""
    info = msgspec.inspect.type_info(kind)
    if not isinstance(info, msgspec.inspect.StructType):
        return frozenset()

    def is_int(t: msgspec.inspect.Type) -> bool:
        if isinstance(t, msgspec.inspect.Metadata):
            return is_int(t.type)
        if isinstance(t, msgspec.inspect.UnionType):
            return any(is_int(x) for x in t.types)
        return isinstance(t, msgspec.inspect.IntType)

    return frozenset(f.encode_name for f in info.fields if is_int(f.type))


def _convert(raw: Mapping[str, str], kind: Any) -> Any:
    # msgspec's lax mode reads "1e3" as 1000; an integer parameter is plain decimal.
    for name in _integer_fields(kind):
        value = raw.get(name)
        if value is not None and not _DECIMAL.fullmatch(value):
            raise DecodeError(f"bad parameter: {name!r} must be a decimal integer")
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc).replace("`$.", "`").replace("$.", "")
        raise DecodeError(f"bad parameter: {text}") from None


def render(route: Route, status: int, value: Any, headers: Mapping[str, str] | None = None
           ) -> web.Response:
    """The answer as the route declares it for `status`."""
    model = route.answers.get(status)
    if model is None:
        raise InvariantViolation(f"{route.operation_id} answered {status}, not declared")
    if model is TEXT:
        if not isinstance(value, str):
            raise InvariantViolation(f"{route.operation_id}: text answer is not text")
        return web.Response(text=value, content_type="text/plain", status=status,
                            headers=headers)
    if not isinstance(value, msgspec.Struct):
        try:
            value = msgspec.convert(value, model)
        except msgspec.ValidationError as exc:
            raise InvariantViolation(
                f"{route.operation_id} answer does not fit its model: {exc}") from None
    return web.Response(body=msgspec.json.encode(value), status=status,
                        content_type=JSON, headers=headers)


async def read_tx_body(request: web.Request) -> bytes:
    """One encoded transaction: application/cbor, or JSON {"tx": base64}."""
    body = await request.read()
    if request.content_type == CBOR:
        return body
    try:
        doc = json.loads(body)
        return base64.b64decode(doc["tx"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DecodeError(
            "send the transaction as application/cbor, or JSON {\"tx\": base64}") from exc


def _committed(c: Committed, receipt: str | None = None) -> Answer:
    if c.rejection is not None:
        raise _TxRejection(c.rejection, c.tx_id)
    assert c.result is not None
    out: dict[str, Any] = {"tx_id": c.tx_id.hex(), "status": "committed",
                           "log_index": c.log_index, "height": c.height}
    if c.result.ok:
        out["events"] = [{"type": e.kind, "data": to_json(e.data)} for e in c.result.events]
        out["receipt"] = receipt
        return 200, out
    # Committed but refused by the contract: a typed rejection, with where it landed.
    return 422, out | {"error": c.result.error, "reason": c.result.reason}


class _TxRejection(Rejected):
    """A dropped transaction's rejection, answered with its id."""

    def __init__(self, inner: Rejected, tx_id: bytes) -> None:
        super().__init__(inner.reason, code=inner.code)
        self.http_status = inner.http_status
        self.tx_id = tx_id

    def to_dict(self) -> dict[str, str]:
        return super().to_dict() | {"tx_id": self.tx_id.hex()}




class Api:
    tsa: TimestampService | None = None
    """The RFC 3161 time-stamp authority, when node.toml turns it on."""
    events: EventStreams | None = None
    """`GET /v1/events`, server-sent events of commits (api/events.py)."""
    operations: Operations | None = None
    """`/metrics`, `/healthz`, `/readyz` (api/metrics.py)."""
    epcis: EpcisService | None = None
    """The GS1 EPCIS 2.0 REST binding and traces, when node.toml turns it on."""

    def __init__(self, runtime: NodeRuntime, *,
                 reads_per_s: int = READS_PER_S_PER_CALLER,
                 tsa: TsaConfig | None = None,
                 epcis: EpcisConfig | None = None,
                 events_max_subscribers: int = DEFAULT_EVENT_SUBSCRIBERS) -> None:
        self.runtime = runtime
        self.node = runtime.node
        self.routes = all_routes(self.node.chain.registry)
        self.document = openapi_document(self.routes)
        self.described = describe_contracts(self.node.chain.registry, self.node.views.contracts())
        self.gate = Gate(self.node, limiter=ReadLimiter(
            reads_per_s, 2 * reads_per_s, MAX_RATE_LIMITED_CALLERS))
        self.tsa = None if tsa is None else TimestampService(runtime, self.gate, tsa)
        self.epcis = None if epcis is None else EpcisService(runtime, self.gate, epcis)
        self.events = EventStreams(runtime, self.gate, max_subscribers=events_max_subscribers)
        self.operations = Operations(runtime, self.gate)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_rejections], client_max_size=MAX_HTTP_BODY_BYTES)
        for route in self.routes:
            app.router.add_route(route.method, route.path, self._endpoint(route))
        if self.tsa is not None:  # RFC 3161 in and out, not JSON: outside the route table
            app.router.add_post(TSA_PATH, self.tsa.handle)
        # Neither is JSON (an event stream, the Prometheus text format), so both are
        # outside the route table too (docs/api.md, docs/operations.md).
        if self.events is not None:
            app.router.add_get(EVENTS_PATH, self.events.handle)
            app.on_shutdown.append(self.events.on_shutdown)
        if self.operations is not None:
            self.operations.add_routes(app)
        if self.epcis is not None:  # GS1's binding: its own shapes, outside the table
            self.epcis.add_routes(app)
        add_explorer_routes(app)  # the web explorer's pages (explorer/routes.py)
        return app

    def _endpoint(self, route: Route) -> Handler:
        answer: Callable[..., Awaitable[Answer]] = getattr(self, route.handler)

        async def endpoint(request: web.Request) -> web.StreamResponse:
            # Who asks comes first: a caller without the right learns nothing more, not
            # even which parameters were wrong.
            reader = self.gate.reader(request, read=not route.submits)
            if route.access == "members" and not (
                    reader.holds_any(route.roles) if route.roles else not reader.anonymous):
                raise refusal(reader, route.summary, route.roles)
            request[READER_KEY] = reader
            params, page = parse_params(route, request)
            status, value, *headers = await answer(request, route, params, page)
            return render(route, status, value, headers[0] if headers else None)

        return endpoint

    # --- handlers: (request, route, params, page) -> (status, value) ---------------------

    async def openapi(self, request: web.Request, route: Route, params: Any,
                      page: Any) -> Answer:
        return 200, self.document

    async def status(self, request: web.Request, route: Route, params: Any,
                     page: Any) -> Answer:
        return 200, self.node.views.status() | {"api_version": API_VERSION}

    async def checkpoint(self, request: web.Request, route: Route, params: Any,
                         page: Any) -> Answer:
        return 200, self.node.views.checkpoint()

    async def trust(self, request: web.Request, route: Route, params: Any,
                    page: Any) -> Answer:
        return 200, self.node.views.trust_text()

    async def submit(self, request: web.Request, route: Route, params: Any,
                     page: Any) -> Answer:
        raw = await read_tx_body(request)
        outcome = await self.runtime.submit(raw, wait=params.wait, timeout_ms=params.timeout_ms)
        if isinstance(outcome, bytes):
            return 202, {"tx_id": outcome.hex(), "status": "pending"}
        return self._outcome(outcome, params.receipt)

    def _outcome(self, outcome: Committed, with_receipt: bool) -> Answer:
        receipt = None
        if with_receipt and outcome.result is not None and outcome.result.ok:
            assert outcome.log_index is not None
            receipt = self.node.views.receipt(outcome.log_index)
        return _committed(outcome, receipt)

    async def submit_batch(self, request: web.Request, route: Route, params: Any,
                           page: Any) -> Answer:
        if request.content_type != CBOR:
            raise DecodeError("send the batch as application/cbor: an array of transactions")
        items = cbor.decode(await request.read())
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            raise DecodeError("batch must be a CBOR array of encoded transactions (byte strings)")
        results = await self.runtime.submit_batch(items)
        body = {"results": [
            {"tx_id": r.hex()} if isinstance(r, bytes) else r.to_dict() for r in results
        ]}
        busy = [r for r in results if isinstance(r, Busy)]
        if not busy:
            return 200, body
        # Back-pressure: some (or all) were refused because the mempool is full.
        status = 503 if len(busy) == len(results) else 200
        return status, body, {"Retry-After": str(max(b.retry_after_s for b in busy))}

    async def tx(self, request: web.Request, route: Route, params: Any, page: Any) -> Answer:
        return 200, self.node.views.tx(parse_hex(params.tx_id, 32, "tx_id"), _reader(request))

    async def wait(self, request: web.Request, route: Route, params: Any,
                   page: Any) -> Answer:
        tx_id = parse_hex(params.tx_id, 32, "tx_id")
        reader = _reader(request)
        what = f"transaction {tx_id.hex()}"
        if reader.anonymous:
            raise entry_refusal(reader, what)
        try:
            outcome = await self.runtime.wait_for(tx_id, params.timeout_ms)
        except NotFound:
            raise entry_refusal(reader, what) from None  # as a hidden one: nothing leaks
        if outcome.log_index is not None:
            self.node.views.readable_entry(outcome.log_index, reader, what)
        return self._outcome(outcome, params.receipt)

    async def txs(self, request: web.Request, route: Route, params: Any, page: Any) -> Answer:
        sender = None if params.sender is None else parse_hex(params.sender, 32, "sender")
        return 200, self.node.views.txs(PageRequest(params.cursor, params.limit), params.contract,
                                  params.method, sender, _reader(request))

    async def blocks(self, request: web.Request, route: Route, params: Any,
                     page: Any) -> Answer:
        return 200, self.node.views.blocks(PageRequest(params.cursor, params.limit))

    async def block(self, request: web.Request, route: Route, params: Any,
                    page: Any) -> Answer:
        return 200, self.node.views.block(params.height)

    async def entry(self, request: web.Request, route: Route, params: Any,
                    page: Any) -> Answer:
        return 200, self.node.views.entry(params.index, _reader(request))

    async def consistency(self, request: web.Request, route: Route, params: Any,
                          page: Any) -> Answer:
        return 200, self.node.views.consistency(params.old, params.new)

    async def proof(self, request: web.Request, route: Route, params: Any,
                    page: Any) -> Answer:
        return 200, self.node.views.receipt(params.index, _reader(request))

    async def proof_set(self, request: web.Request, route: Route, params: Any,
                        page: Any) -> Answer:
        indexes = [int(i) for i in params.indexes.split(",")]
        state = None if params.state is None else bytes.fromhex(params.state)
        return 200, self.node.views.proof_set(indexes, state, _reader(request))

    async def state_proof(self, request: web.Request, route: Route, params: Any,
                          page: Any) -> Answer:
        return 200, self.node.views.state_proof(bytes.fromhex(params.key), _reader(request))

    async def search(self, request: web.Request, route: Route, params: Any,
                     page: Any) -> Answer:
        return 200, self.node.views.search(params.q, _reader(request))

    async def contracts(self, request: web.Request, route: Route, params: Any,
                        page: Any) -> Answer:
        return 200, models.Contracts(self.described)

    async def gov_dry_run(self, request: web.Request, route: Route, params: Any,
                          page: Any) -> Answer:
        tx = SignedTx.decode(await read_tx_body(request))
        # The node's clock judges the dry run, as admission judges a submission.
        return 200, self.node.views.gov_dry_run(tx, now_ms())

    async def app_query(self, request: web.Request, route: Route, params: Any,
                        page: PageRequest | None) -> Answer:
        assert route.query is not None and route.app is not None
        what = f"{route.app}.{route.path.rsplit('/', 1)[1]}"
        return 200, route.query.answer(self.node.views.view(), params, page, _reader(request), what)


def _reader(request: web.Request) -> Reader:
    reader: Reader = request[READER_KEY]
    return reader
