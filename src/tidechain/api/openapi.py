"""The OpenAPI 3.1 document, generated from the route table (`api/routes.py`) and the
models it names (ADR 0014). Nothing here is written by hand but the words around it:
a route's parameters, bodies and answers are what the server parses and sends."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from tidechain.api import models
from tidechain.api.routes import API_VERSION, TEXT, Route, readers_text
from tidechain.core import limits
from tidechain.ledger.application import CURSOR_PATTERN, PageRequest
from tidechain.ledger.runtime import Registry

JSON = "application/json"
CBOR = "application/cbor"
TEXT_PLAIN = "text/plain"
REF = "#/components/schemas/{name}"

Schema = dict[str, Any]

_ENVELOPE: Schema = {
    "title": "SignedTx",
    "description": (
        "A signed transaction envelope in deterministic CBOR (RFC 8949 section 4.2.1): "
        "a map {\"body\": bytes, \"sig\": bytes(64)}. `body` is the deterministic CBOR of "
        "the body map {v: 1, chain: bytes(32) chain id, from: bytes(32) the sender's "
        "Ed25519 key, nonce: bytes(8..32), exp: uint expiry in ms since the epoch, "
        "contract: text, method: text, args: map}; `sig` is Ed25519 over "
        "\"tidechain/tx/v1\\n\" || body. "
        "docs/encoding.md gives every field and test vectors."),
    "type": "object",
    "required": ["body", "sig"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "contentEncoding": "base64",
                 "description": "the signed body bytes (a CBOR byte string)"},
        "sig": {"type": "string", "contentEncoding": "base64",
                "description": "64-byte Ed25519 signature (a CBOR byte string)"},
    },
    "maxProperties": 2,
}
_SUBMIT_JSON: Schema = {
    "type": "object", "required": ["tx"], "additionalProperties": False,
    "properties": {"tx": {"type": "string", "contentEncoding": "base64",
                          "maxLength": limits.MAX_TX_BYTES * 4 // 3 + 4,
                          "description": "base64 of the CBOR envelope bytes"}},
}
_BATCH: Schema = {
    "type": "array", "maxItems": limits.MAX_SUBMIT_BATCH,
    "items": {"type": "string", "contentEncoding": "base64",
              "description": "one encoded envelope (a CBOR byte string)"},
    "description": "a deterministic-CBOR array of encoded signed transactions",
}


class _Components:
    """Every model's JSON Schema, gathered once for `components.schemas`."""

    def __init__(self) -> None:
        self.types: list[Any] = []

    def ref(self, kind: Any) -> Schema:
        self.types.append(kind)
        return {"__type__": len(self.types) - 1}

    def resolve(self) -> tuple[list[Schema], dict[str, Schema]]:
        schemas, components = msgspec.json.schema_components(self.types, ref_template=REF)
        return list(schemas), components


def _fill(value: Any, resolved: list[Schema]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__type__"}:
            return resolved[value["__type__"]]
        return {k: _fill(v, resolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, resolved) for v in value]
    return value


def _parameters(route: Route, components: dict[str, Schema]) -> list[Schema]:
    kinds: list[type[Any]] = []
    if route.params is not None:
        kinds.append(route.params)
    if route.query is not None and route.paged:
        kinds.append(PageRequest)
    path_names = set(re.findall(r"{(\w+)}", route.path))
    out = []
    for kind in kinds:
        (schema,), found = msgspec.json.schema_components([kind], ref_template=REF)
        components.update(found)
        body = found[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        required = set(body.get("required", []))
        for name, prop in body.get("properties", {}).items():
            where = "path" if name in path_names else "query"
            prop = _not_null(prop)
            if kind is PageRequest and name == "limit":
                prop.update({"minimum": 1, "maximum": limits.MAX_PAGE_SIZE})
            if kind is PageRequest and name == "cursor":
                prop = {"type": "string", "maxLength": limits.MAX_CURSOR_BYTES,
                        "pattern": CURSOR_PATTERN,
                        "description": "the `next` of the previous page, as given"}
            out.append({"name": name, "in": where, "required": where == "path"
                        or name in required, "schema": prop,
                        **({"description": prop["description"]}
                           if "description" in prop else {})})
    return out


def _not_null(schema: Schema) -> Schema:
    """A parameter's schema without its null alternative: a query string cannot say
    null; an optional parameter is one left out."""
    options = schema.get("anyOf")
    if options is None:
        return dict(schema)
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _request_body(route: Route) -> Schema | None:
    if route.body == "tx":
        return {"required": True, "content": {
            CBOR: {"schema": _ENVELOPE}, JSON: {"schema": _SUBMIT_JSON}}}
    if route.body == "batch":
        return {"required": True, "content": {CBOR: {"schema": _BATCH}}}
    return None


def _operation(route: Route, refs: _Components, components: dict[str, Schema]) -> Schema:
    responses: Schema = {}
    for status, kind in sorted(route.answers.items()):
        if kind is TEXT:
            content = {TEXT_PLAIN: {"schema": {"type": "string"}}}
        else:
            content = {JSON: {"schema": refs.ref(kind)}}
        responses[str(status)] = {"description": _describe(status), "content": content}
        if status in (429, 503):
            responses[str(status)]["headers"] = {"Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 0}}}
    op: Schema = {"operationId": route.operation_id, "summary": route.summary,
                  "tags": [route.tag], "parameters": _parameters(route, components),
                  "responses": responses}
    if route.description:
        op["description"] = route.description
    body = _request_body(route)
    if body is not None:
        op["requestBody"] = body
    # Who may call: OpenAPI's `security` lists the alternatives; `{}` is "none needed".
    credentials: list[Schema] = [{SIGNATURE_SCHEME: []}, {TLS_SCHEME: []}]
    # A query with public items answers anyone its public items (evidence's published
    # deposits): no credential needed, a member's shows it more.
    anyone = route.access == "public" or (route.query is not None and route.query.public_items)
    op["security"] = [{}, *credentials] if anyone else credentials
    op["x-tidechain-readers"] = readers_text(route)
    return op


SIGNATURE_SCHEME = "memberSignature"
TLS_SCHEME = "memberCertificate"
SECURITY_SCHEMES: Schema = {
    SIGNATURE_SCHEME: {
        "type": "apiKey", "in": "header", "name": "Signature",
        "description": (
            "RFC 9421 HTTP Message Signature by an enrolled member's Ed25519 key, sent "
            "as the `Signature-Input` and `Signature` headers: label `tide`, covering "
            "(\"@method\" \"@authority\" \"@path\" \"@query\") with `created`, "
            "`expires` (at most 300 s later), a fresh `nonce`, `keyid` = the member key "
            "in hex, `alg=\"ed25519\"`, `tag=\"tidechain\"`. See docs/access.md.")},
    TLS_SCHEME: {
        "type": "mutualTLS",
        "description": ("The member's certificate, issued by its organisation's CA, "
                        "presented over TLS to a node serving its API over HTTPS.")},
}


_STATUS_TEXT = {200: "OK", 202: "Admitted, not yet committed", 400: "Bad request",
                401: "No valid member credential", 403: "Forbidden: a role is missing",
                404: "Not found", 413: "Too large",
                429: "Too many requests from this caller: retry later",
                415: "Unsupported media type",
                422: "Committed, but refused by its contract", 503: "Busy: retry later"}


def _describe(status: int) -> str:
    return _STATUS_TEXT.get(status, str(status))


def openapi_document(routes: tuple[Route, ...]) -> Schema:
    """The OpenAPI 3.1 document of `routes`."""
    refs = _Components()
    components: dict[str, Schema] = {}
    paths: dict[str, Schema] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, refs, components)
    resolved, found = refs.resolve()
    components.update(found)
    return {
        "openapi": "3.1.0",
        "info": {"title": "tidechain node API", "version": API_VERSION, "description": (
            "A consortium chain node. Every refusal is {error, reason} (models.Error) with "
            "a 4xx status, or 503 with Retry-After for back-pressure. Byte strings are "
            "lowercase hex; Merkle roots and proof hashes are base64 as in C2SP. Lists "
            "are paged: pass a page's `next` as `cursor` for the following one; a null "
            "`next` ends the list. Member data is read with a member credential "
            "(securitySchemes; docs/access.md): 401 without a valid one, 403 without a "
            "role that reads it, 429 with Retry-After past the per-caller rate limit.")},
        "paths": _fill(paths, resolved),
        "components": {"schemas": dict(sorted(components.items())),
                       "securitySchemes": SECURITY_SCHEMES},
    }


def struct_schema(kind: type[Any]) -> Schema:
    """The JSON Schema of one Struct, its own definition at the top (the Structs it
    uses under `$defs`)."""
    schema: Schema = msgspec.json.schema(kind)
    defs: dict[str, Schema] = schema.pop("$defs", {})
    ref = schema.get("$ref")
    if ref is None:
        return schema
    top = dict(defs.pop(ref.rsplit("/", 1)[1]))
    if defs:
        top["$defs"] = defs
    return top


def describe_contracts(registry: Registry, described: list[dict[str, Any]]
                       ) -> list[models.ContractInfo]:
    """GET /v1/contracts: each contract as the registry describes it (`described`),
    with what its application declares: each method's arguments, the contract's
    versions, the application's queries with their parameters and API paths."""
    from tidechain.api.routes import query_path

    versions = registry.versions()
    out = []
    for contract in described:
        name = contract["name"]
        methods = [models.MethodInfo(
            name=m["name"], roles=m["roles"], summary=m["summary"],
            args=None if (kind := registry.method(name, m["name"]).args) is None
            else struct_schema(kind)) for m in contract["methods"]]
        app = registry.applications.get(name)
        queries = [] if app is None else [models.QueryInfo(
            name=q, summary=query.summary, readers=query.readers(), paged=query.paged,
            path=query_path(name, q), params=struct_schema(query.params))
            for q, query in sorted(app.queries.items())]
        out.append(models.ContractInfo(name=name, description=contract["description"],
                                       methods=methods, versions=list(versions[name]),
                                       queries=queries))
    return out


ERROR_MODEL = models.Error
