"""The REST API, declared once (ADR 0014).

Each `Route` names its method and path, its parameters (a msgspec Struct: path and
query parameters by field name), its request body if any, and its answers: status code
to model (a Struct, or TEXT for `text/plain`). From this table alone:

* `api/server.py` registers the handlers, parses parameters into the Struct (a typed
  400 naming the field otherwise), and converts each answer through the model declared
  for its status before sending it (an answer that does not fit is our bug);
* `api/openapi.py` writes the OpenAPI 3.1 document;
* the SDK (`client/sdk.py`) checks answers against the same models.

The routes of the applications' queries are generated from the registry
(`app_routes`): `GET /v1/apps/{app}/{query}`, one per declared query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import msgspec

from tidechain.api import models as m
from tidechain.core.limits import COMMIT_WAIT_MAX_MS, MAX_CURSOR_BYTES, MAX_PAGE_SIZE
from tidechain.identity.roles import Role
from tidechain.ledger.application import CURSOR_PATTERN, NoParams, Page, Query
from tidechain.ledger.runtime import Registry
from tidechain.ledger.types import MAX_IDENT_BYTES

API_VERSION = "1.2.0"
"""The API's version (ADR 0014): the path prefix `/v1` changes only with a breaking
change; the minor number grows with each added route or field."""

TEXT = "text"
"""An answer that is `text/plain` (signed notes, receipts, trust files)."""

Access = Literal["public", "members", "records"]

Body = Literal["tx", "batch"]
"""A request body: one signed transaction (CBOR, or JSON {"tx": base64}), or a batch
(a CBOR array of encoded transactions)."""


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST"]
    path: str
    operation_id: str
    summary: str
    handler: str
    """The name of the `Api` method that answers (api/server.py)."""
    answers: Mapping[int, Any]
    """Status -> model type, or TEXT. Error statuses answer `models.Error`."""
    params: type[msgspec.Struct] | None = None
    body: Body | None = None
    tag: str = "chain"
    access: Access = "public"
    """Who reads it (ADR 0015): `public` anyone; `members` a member in good standing
    holding one of `roles` (any role if empty; the regulator always); `records` any
    caller, each record answered or refused by the node's read rules for that caller
    (entries, application queries, search)."""
    roles: frozenset[Role] = frozenset()
    query: Query | None = None
    app: str | None = None
    description: str = ""
    paged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def submits(self) -> bool:
        """A submission of transactions: limited by the mempool's back-pressure (503),
        not by the per-caller read limit (429)."""
        return self.handler in ("submit", "submit_batch")


E = m.Error
_NOT_FOUND = {400: E, 404: E}

# --- parameters ------------------------------------------------------------------------

TimeoutMs = Annotated[int, msgspec.Meta(ge=0, le=COMMIT_WAIT_MAX_MS,
                                        description="longest wait for the commit, ms")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE_SIZE, description="items per page")]
Cursor = Annotated[str, msgspec.Meta(
    max_length=MAX_CURSOR_BYTES, pattern=CURSOR_PATTERN,
    description="the `next` of the previous page, as given (opaque)")]
Ident = Annotated[str, msgspec.Meta(
    min_length=1, max_length=MAX_IDENT_BYTES, pattern="^[\\u0000-\\u007f]+$",
    description="a contract or method name: 1..64 ASCII characters, as transactions carry")]


class SubmitParams(m.Params):
    wait: bool = False
    timeout_ms: TimeoutMs = COMMIT_WAIT_MAX_MS
    receipt: Annotated[bool, msgspec.Meta(description=(
        "with wait: include the tlog-proof receipt of the committed entry"))] = False


class TxIdParams(m.Params):
    tx_id: m.Hex32


class WaitParams(m.Params):
    tx_id: m.Hex32
    timeout_ms: TimeoutMs = COMMIT_WAIT_MAX_MS
    receipt: bool = False


class HeightParams(m.Params):
    height: m.UInt


class IndexParams(m.Params):
    index: m.UInt


class ProofSetParams(m.Params):
    indexes: Annotated[str, msgspec.Meta(
        pattern="^(0|[1-9][0-9]{0,18})(,(0|[1-9][0-9]{0,18})){0,15}$",
        description="up to 16 log indexes, comma-separated")]
    state: Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{2}){1,1024}$", description=(
        "a state key (hex) whose value to prove too"))] | None = None


class ConsistencyParams(m.Params):
    old: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    new: m.UInt | None = None


class StateKeyParams(m.Params):
    key: Annotated[str, msgspec.Meta(pattern="^([0-9a-f]{2}){1,1024}$",
                                     description="a state key, hex")]


class PageParams(m.Params):
    cursor: Cursor | None = None
    limit: Limit = 50


class TxListParams(m.Params):
    cursor: Cursor | None = None
    limit: Limit = 50
    contract: Ident | None = None
    method: Ident | None = None
    sender: m.Hex32 | None = None


class SearchParams(m.Params):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description=(
        "a height, block hash, transaction id, digest, member key or invoice number"))]


# --- the core routes ---------------------------------------------------------------------

CORE_ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/openapi.json", "openapi", "This document (OpenAPI 3.1)", "openapi",
          {200: dict[str, Any]}, tag="meta"),
    Route("GET", "/v1/status", "status", "Chain head, log, mempool, validators, sync",
          "status", {200: m.Status}),
    Route("GET", "/v1/checkpoint", "checkpoint",
          "The latest quorum-signed C2SP checkpoint (a signed note)", "checkpoint",
          {200: TEXT, 404: E}),
    Route("GET", "/v1/trust", "trust", "The network's current trust file (text)", "trust",
          {200: TEXT}),
    Route("POST", "/v1/tx", "submit", "Submit one signed transaction", "submit",
          {200: m.Committed, 202: m.Committed, 400: E, 403: E, 404: E, 413: E, 415: E,
           422: m.Committed, 503: E},
          SubmitParams, body="tx", tag="transactions", description=(
              "The body is the signed envelope (docs/encoding.md section 3): "
              "application/cbor, or JSON {\"tx\": base64 of those bytes}. With wait=true "
              "the answer comes once the transaction commits: 200 applied, 422 refused "
              "by its contract (still committed); 202 when admitted without waiting.")),
    Route("POST", "/v1/tx/batch", "submit_batch", "Submit many signed transactions",
          "submit_batch", {200: m.BatchResults, 400: E, 413: E, 415: E, 503: m.BatchResults},
          NoParams, body="batch", tag="transactions"),
    Route("GET", "/v1/tx/{tx_id}", "get_tx", "A transaction, committed or pending", "tx",
          {200: m.Transaction, **_NOT_FOUND}, TxIdParams, tag="transactions", access="records"),
    Route("GET", "/v1/tx/{tx_id}/wait", "wait_tx", "Wait for a transaction to commit",
          "wait", {200: m.Committed, 422: m.Committed, 503: E, **_NOT_FOUND}, WaitParams,
          tag="transactions", access="records"),
    Route("GET", "/v1/txs", "list_txs",
          "Transactions, newest first; filter by contract, method, sender", "txs",
          {200: Page[m.Transaction], 400: E}, TxListParams, tag="transactions",
          access="records", paged=True),
    Route("GET", "/v1/blocks", "list_blocks", "Blocks, highest first", "blocks",
          {200: Page[m.BlockSummary], 400: E}, PageParams, paged=True,
          access="members"),
    Route("GET", "/v1/block/{height}", "get_block", "One block with its checkpoint", "block",
          {200: m.Block, **_NOT_FOUND}, HeightParams, access="members"),
    Route("GET", "/v1/log/entry/{index}", "get_entry", "One log entry, decoded", "entry",
          {200: m.Transaction, **_NOT_FOUND}, IndexParams, tag="log", access="records"),
    Route("GET", "/v1/log/consistency", "consistency",
          "An RFC 9162 consistency proof between two log sizes", "consistency",
          {200: m.Consistency, 400: E, 404: E}, ConsistencyParams, tag="log"),
    Route("GET", "/v1/proof/{index}", "receipt",
          "A receipt (C2SP tlog-proof) of one log entry", "proof",
          {200: TEXT, **_NOT_FOUND}, IndexParams, tag="log", access="records"),
    Route("GET", "/v1/proofs", "proof_set",
          "Receipts of several log entries against one checkpoint, and a state proof "
          "(a tidechain.dev/proof-set@v1 file)", "proof_set",
          {200: TEXT, 400: E, **_NOT_FOUND}, ProofSetParams, tag="log", access="records"),
    Route("GET", "/v1/state/proof/{key}", "state_proof",
          "A world-state value with its proof against a certified header", "state_proof",
          {200: m.StateProof, **_NOT_FOUND}, StateKeyParams, tag="log", access="records"),
    Route("GET", "/v1/search", "search",
          "Find a block, transaction, deposit, member or invoice by what you have",
          "search", {200: m.SearchResult, 400: E}, SearchParams, access="records"),
    Route("GET", "/v1/contracts", "contracts",
          "Every application: methods with their roles and arguments, queries", "contracts",
          {200: m.Contracts}, tag="meta"),
    Route("POST", "/v1/gov/dry-run", "gov_dry_run",
          "What a signed gov.propose would do, without submitting it", "gov_dry_run",
          {200: m.DryRun, 400: E, 403: E, 413: E, 415: E}, NoParams, body="tx", tag="gov",
          access="members", roles=frozenset({Role.ADMIN})),
)


def query_path(app: str, name: str) -> str:
    return f"/v1/apps/{app}/{name}"


def app_routes(registry: Registry) -> tuple[Route, ...]:
    """One GET route per query of every application in `registry`."""
    routes = []
    for app_name, app in sorted(registry.applications.items()):
        for name, query in sorted(app.queries.items()):
            answer = Page[query.result] if query.paged else query.result  # type: ignore[name-defined]
            routes.append(Route(
                "GET", query_path(app_name, name), f"{app_name}_{name}", query.summary,
                "app_query", {200: answer, **_NOT_FOUND}, query.params, tag=app_name,
                access="public" if query.public else "records", query=query,
                app=app_name, paged=query.paged,
                description=f"Readers: {', '.join(query.readers())}."))
    return tuple(routes)


def all_routes(registry: Registry) -> tuple[Route, ...]:
    return tuple(with_access_answers(r) for r in CORE_ROUTES + app_routes(registry))


def with_access_answers(route: Route) -> Route:
    """The route with the refusals every route may answer: 401 for a credential that
    does not verify (anonymous too where it is not public), 429 past the per-caller
    rate limit, 403 where roles are checked."""
    extra: dict[int, Any] = {401: E} if route.submits else {401: E, 429: E}
    if route.access != "public":
        extra[403] = E
    return replace(route, answers={**route.answers, **extra})


def readers_text(route: Route) -> str:
    """Who reads a route, for documents."""
    if route.access == "public":
        return "anyone"
    if route.query is not None:
        return ", ".join(route.query.readers())
    if route.access == "members":
        return ", ".join(sorted({r.value for r in route.roles} | {Role.REGULATOR.value})) \
            if route.roles else "members"
    return "members: each record by its read rules"


def endpoint_table(routes: tuple[Route, ...]) -> str:
    """A Markdown table of the routes (docs/api.md embeds it, generated)."""
    lines = ["| method and path | answer | statuses | readers |", "|---|---|---|---|"]
    for r in routes:
        params = [] if r.params is None else [
            f for f in r.params.__struct_fields__ if "{" + f + "}" not in r.path]
        if r.paged:
            params = [*params, *(p for p in ("cursor", "limit") if p not in params)]
        query = f"?{'&'.join(params)}" if params else ""
        statuses = ", ".join(str(s) for s in sorted(r.answers))
        readers = readers_text(r)
        lines.append(f"| `{r.method} {r.path}{query}` | {r.summary} | {statuses} | "
                     f"{readers} |")
    return "\n".join(lines) + "\n"
