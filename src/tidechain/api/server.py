"""The REST API: a thin mapping of HTTP onto the node facade (`Node`, `NodeRuntime`).

No business rule lives here. Every `Rejected` becomes its HTTP status with
`{"error": code, "reason": ...}`; anything else is a bug and is logged as one (500).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tidechain.api.openapi import OPENAPI
from tidechain.core import cbor
from tidechain.core.errors import Busy, DecodeError, Rejected
from tidechain.core.hexcodec import parse_hex, to_json
from tidechain.core.limits import COMMIT_WAIT_MAX_MS, MAX_HTTP_BODY_BYTES
from tidechain.identity.uscc import validate_uscc
from tidechain.ledger.types import SignedTx
from tidechain.node.node import Committed
from tidechain.node.runtime import NodeRuntime, now_ms

log = logging.getLogger("tidechain.api")

CBOR = "application/cbor"
MAX_INT_PARAM = 2**63 - 1
"""Heights, indexes and sizes are SQLite integers."""
MAX_STATE_KEY_BYTES = 1024
_DECIMAL = re.compile(r"[0-9]{1,19}")
_INVOICE_NUMBER = re.compile(r"[0-9]{20}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(exc: Rejected) -> web.Response:
    headers = {}
    if isinstance(exc, Busy):
        headers["Retry-After"] = str(exc.retry_after_s)
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
            code = "too_large" if exc.status == 413 else "http"
            return web.json_response({"error": code, "reason": reason}, status=exc.status)
        raise


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.match_info.get(name) or request.query.get(name)
    if raw is None:
        if default is None:
            raise DecodeError(f"missing parameter {name!r}")
        return default
    # ASCII digits only (str.isdigit() also accepts '²'), within SQLite's integer range.
    if not _DECIMAL.fullmatch(raw) or int(raw) > MAX_INT_PARAM:
        raise DecodeError(f"parameter {name!r} must be an integer in 0..{MAX_INT_PARAM}")
    return int(raw)


def _hex_param(request: web.Request, name: str, size: int) -> bytes:
    return parse_hex(request.match_info.get(name, ""), size, name)


def _committed_json(c: Committed) -> tuple[dict[str, Any], int]:
    if c.rejection is not None:
        body = c.rejection.to_dict() | {"tx_id": c.tx_id.hex()}
        return body, c.rejection.http_status
    assert c.result is not None
    out: dict[str, Any] = {
        "tx_id": c.tx_id.hex(), "status": "committed", "log_index": c.log_index,
        "height": c.height,
    }
    if c.result.ok:
        out["events"] = [{"type": e.kind, "data": to_json(e.data)} for e in c.result.events]
        return out, 200
    # Committed but refused by the contract: a typed rejection, with where it landed.
    return out | {"error": c.result.error, "reason": c.result.reason}, 422


async def _read_tx_body(request: web.Request) -> bytes:
    body = await request.read()
    if request.content_type == CBOR:
        return body
    try:
        doc = json.loads(body)
        return base64.b64decode(doc["tx"], validate=True)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise DecodeError(
            "send the transaction as application/cbor, or JSON {\"tx\": base64}") from exc


class Api:
    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.node = runtime.node

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_rejections], client_max_size=MAX_HTTP_BODY_BYTES)
        r = app.router
        r.add_get("/v1/openapi.json", self.openapi)
        r.add_get("/v1/status", self.status)
        r.add_get("/v1/checkpoint", self.checkpoint)
        r.add_post("/v1/tx", self.submit)
        r.add_post("/v1/tx/batch", self.submit_batch)
        r.add_get("/v1/tx/{tx_id}", self.tx)
        r.add_get("/v1/tx/{tx_id}/wait", self.wait)
        r.add_get("/v1/block/{height}", self.block)
        r.add_get("/v1/log/entry/{index}", self.entry)
        r.add_get("/v1/log/consistency", self.consistency)
        r.add_get("/v1/proof/{index}", self.proof)
        r.add_get("/v1/state/proof/{key}", self.state_proof)
        r.add_get("/v1/evidence/digest/{digest}", self.deposits)
        r.add_get("/v1/evidence/deposit/{index}", self.deposit)
        r.add_get("/v1/contracts", self.contracts)
        r.add_get("/v1/members", self.members)
        r.add_get("/v1/members/{key}", self.member)
        r.add_get("/v1/gov/proposals", self.gov_list)
        r.add_get("/v1/gov/proposals/{id}", self.gov_get)
        r.add_post("/v1/gov/dry-run", self.gov_dry_run)
        # `stats` first: `{number}` would match it otherwise.
        r.add_get("/v1/invoices/stats", self.invoice_stats)
        r.add_get("/v1/invoices/auditors", self.invoice_auditors)
        r.add_get("/v1/invoices/{number}", self.invoice)
        return app

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.status())

    async def checkpoint(self, request: web.Request) -> web.Response:
        return web.Response(text=self.node.checkpoint(), content_type="text/plain")

    async def submit(self, request: web.Request) -> web.Response:
        raw = await _read_tx_body(request)
        wait = request.query.get("wait", "false") in ("1", "true")
        timeout_ms = _int_param(request, "timeout_ms", COMMIT_WAIT_MAX_MS)
        outcome = await self.runtime.submit(raw, wait=wait, timeout_ms=timeout_ms)
        if isinstance(outcome, bytes):
            return web.json_response({"tx_id": outcome.hex(), "status": "pending"}, status=202)
        body, status = _committed_json(outcome)
        return web.json_response(body, status=status)

    async def submit_batch(self, request: web.Request) -> web.Response:
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
            return web.json_response(body)
        # Back-pressure: some (or all) were refused because the mempool is full.
        status = 503 if len(busy) == len(results) else 200
        headers = {"Retry-After": str(max(b.retry_after_s for b in busy))}
        return web.json_response(body, status=status, headers=headers)

    async def tx(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.tx(_hex_param(request, "tx_id", 32)))

    async def wait(self, request: web.Request) -> web.Response:
        tx_id = _hex_param(request, "tx_id", 32)
        timeout_ms = _int_param(request, "timeout_ms", COMMIT_WAIT_MAX_MS)
        body, status = _committed_json(await self.runtime.wait_for(tx_id, timeout_ms))
        return web.json_response(body, status=status)

    async def block(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.block(_int_param(request, "height")))

    async def entry(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.entry(_int_param(request, "index")))

    async def consistency(self, request: web.Request) -> web.Response:
        old = _int_param(request, "old")
        new = _int_param(request, "new") if "new" in request.query else None
        return web.json_response(self.node.consistency(old, new))

    async def proof(self, request: web.Request) -> web.Response:
        text = self.node.receipt(_int_param(request, "index"))
        return web.Response(text=text, content_type="text/plain")

    async def state_proof(self, request: web.Request) -> web.Response:
        raw = request.match_info.get("key", "")
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            raise DecodeError("key must be hex") from None
        if not key or len(key) > MAX_STATE_KEY_BYTES:
            raise DecodeError(f"key must be 1..{MAX_STATE_KEY_BYTES} bytes")
        return web.json_response(self.node.state_proof(key))

    async def deposits(self, request: web.Request) -> web.Response:
        digest = _hex_param(request, "digest", 32)
        return web.json_response({"deposits": self.node.deposits(digest)})

    async def deposit(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.deposit(_int_param(request, "index")))

    async def contracts(self, request: web.Request) -> web.Response:
        return web.json_response({"contracts": self.node.contracts()})

    async def members(self, request: web.Request) -> web.Response:
        org = request.query.get("org", "")
        if not org:
            raise DecodeError("give the organisation: /v1/members?org=ID")
        return web.json_response(self.node.members(org))

    async def member(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.member(_hex_param(request, "key", 32)))

    async def gov_list(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.gov_list())

    async def gov_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.gov_get(_int_param(request, "id")))

    async def gov_dry_run(self, request: web.Request) -> web.Response:
        tx = SignedTx.decode(await _read_tx_body(request))
        # The node's clock judges the dry run, as admission judges a submission.
        return web.json_response(self.node.gov_dry_run(tx, now_ms()))

    async def invoice(self, request: web.Request) -> web.Response:
        number = request.match_info.get("number", "")
        if not _INVOICE_NUMBER.fullmatch(number):
            raise DecodeError("an invoice number is 20 digits")
        return web.json_response(self.node.invoice(number))

    async def invoice_auditors(self, request: web.Request) -> web.Response:
        return web.json_response(self.node.invoice_auditors())

    async def invoice_stats(self, request: web.Request) -> web.Response:
        month = request.query.get("month", "")
        if not _MONTH.fullmatch(month):
            raise DecodeError("give the month as month=YYYY-MM")
        issuer = request.query.get("issuer", "")
        if len(issuer) == 64:  # a member key rather than a tax id
            key = parse_hex(issuer, 32, "issuer")
            return web.json_response(self.node.invoice_stats(None, key, month))
        try:
            tax_id = validate_uscc(issuer)
        except Rejected as exc:
            raise DecodeError(f"issuer must be a tax id (USCC) or a 64-hex key: "
                              f"{exc.reason}") from None
        return web.json_response(self.node.invoice_stats(tax_id, None, month))
