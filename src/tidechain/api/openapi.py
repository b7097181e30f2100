"""The OpenAPI 3.1 description of the REST API (`api/server.py`), served at
/v1/openapi.json.

Written by hand, next to the routes it describes; tests/test_api.py checks that every
route the server registers is described here and that the documented error shape is
what the server sends.
"""

from __future__ import annotations

from typing import Any

from tidechain.contracts import governance
from tidechain.core import limits

JSON = "application/json"
CBOR = "application/cbor"
TEXT = "text/plain"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text_body(description: str, example: str) -> Schema:
    return {"description": description,
            "content": {TEXT: {"schema": {"type": "string"}, "example": example}}}


def _error(description: str) -> Schema:
    return {"$ref": "#/components/responses/" + description}


def _path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _query_param(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


_HEX32 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_B64_HASH = {"type": "string", "contentEncoding": "base64", "description": "32-byte hash, base64"}
_UINT = {"type": "integer", "minimum": 0}
_TIMEOUT_MS = {"type": "integer", "minimum": 0, "maximum": limits.COMMIT_WAIT_MAX_MS,
               "default": limits.COMMIT_WAIT_MAX_MS}

_TX_ID = _path_param("tx_id", _HEX32, "Transaction id: SHA-256 of the signed body bytes, hex.")
_INDEX = _path_param("index", _UINT, "Zero-based index in the global log.")

_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "reason"],
        "properties": {
            "error": {"type": "string", "description": (
                "Stable machine-readable code: malformed, too_large, bad_signature, "
                "tx_rejected, wrong_chain, expired, expiry_too_far, replay, duplicate, "
                "bad_argument, forbidden, not_found, busy, timeout, bad_range, http.")},
            "reason": {"type": "string", "description": "What was wrong, for humans."},
            "tx_id": {**_HEX32, "description": "Present when the error concerns one transaction."},
        },
        "example": {"error": "bad_signature", "reason": "Ed25519 signature does not verify"},
    },
    "Status": {
        "type": "object",
        "required": ["network", "chain_id", "origin", "node", "height", "log_size", "log_root"],
        "properties": {
            "network": {"type": "string"},
            "chain_id": _HEX32,
            "origin": {"type": "string", "description": "C2SP checkpoint origin of the log."},
            "node": {"type": "string", "description": "This node's key name."},
            "height": _UINT,
            "block_hash": _HEX32,
            "block_time_ms": _UINT,
            "log_size": _UINT,
            "log_root": _B64_HASH,
            "state_root": _HEX32,
            "mempool": {"type": "object", "properties": {
                "transactions": _UINT, "bytes": _UINT, "capacity": _UINT}},
            "validators": {"type": "array", "items": {"type": "string"}},
            "quorum": _UINT,
            "consensus": {"type": "object", "properties": {"height": _UINT, "round": _UINT}},
            "certificates": {
                "type": "object",
                "description": "Certificates that count on chain (active org CAs; members "
                               "of an active CA, not revoked) ending within `warn_days` "
                               "days of `at_ms` (the later of the node's clock and the "
                               "head's block time), or ended already: counts, and the "
                               "soonest few by name (docs/permissions.md, Expiry warnings).",
                "properties": {
                    "warn_days": _UINT, "at_ms": _UINT,
                    "checked": _UINT, "expired": _UINT, "expiring": _UINT,
                    "truncated": {"type": "boolean"},
                    "soonest": {"type": "array", "maxItems": 5, "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"enum": ["org_ca", "member"]},
                            "org": {"type": "string"}, "name": {"type": "string"},
                            "serial": _UINT,
                            "id": {"type": "string", "description":
                                   "member key or CA fingerprint, hex"},
                            "not_after": {"type": "string", "format": "date-time"},
                            "not_after_ms": _UINT,
                            "days_left": {"type": "integer",
                                          "description": "negative once expired"},
                        },
                    }},
                },
            },
        },
    },
    "SubmitJson": {
        "type": "object",
        "required": ["tx"],
        "properties": {"tx": {"type": "string", "contentEncoding": "base64",
                              "description": "The deterministic-CBOR signed transaction."}},
    },
    "Pending": {
        "type": "object",
        "required": ["tx_id", "status"],
        "properties": {"tx_id": _HEX32, "status": {"const": "pending"}},
    },
    "Committed": {
        "type": "object",
        "required": ["tx_id", "status", "log_index", "height"],
        "properties": {
            "tx_id": _HEX32,
            "status": {"const": "committed"},
            "log_index": _UINT,
            "height": _UINT,
            "events": {"type": "array", "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "data": {"type": "object"}}}},
        },
        "example": {"tx_id": "9f" * 32, "status": "committed", "log_index": 7, "height": 5,
                    "events": [{"type": "deposited", "data": {"index": 7, "digest": "ab" * 32}}]},
    },
    "CommittedRefused": {
        "description": "Committed (its nonce is spent) but refused by the contract: "
                       "no state changed.",
        "allOf": [_ref("Committed"), _ref("Error")],
    },
    "BatchResults": {
        "type": "object",
        "required": ["results"],
        "properties": {"results": {"type": "array", "description": (
            "One item per submitted transaction, in order: its id when admitted, "
            "else its own rejection."),
            "items": {"oneOf": [
                {"type": "object", "required": ["tx_id"], "properties": {"tx_id": _HEX32}},
                _ref("Error"),
            ]}}},
    },
    "Entry": {
        "type": "object",
        "required": ["tx_id", "status", "log_index", "height", "time_ms", "entry"],
        "properties": {
            "tx_id": _HEX32,
            "status": {"enum": ["committed", "pending"]},
            "log_index": _UINT,
            "height": _UINT,
            "time_ms": _UINT,
            "sender": {**_HEX32, "description": "Ed25519 public key of the submitter, hex."},
            "contract": {"type": "string"},
            "method": {"type": "string"},
            "args": {"type": "object", "description": "Arguments; byte strings as hex."},
            "result": {"type": "object", "description": "{ok: true, events} or "
                       "{ok: false, error, reason}."},
            "entry": {"type": "string", "contentEncoding": "base64",
                      "description": "The canonical log entry bytes (the Merkle leaf data)."},
        },
    },
    "Block": {
        "type": "object",
        "required": ["height", "hash", "prev", "time_ms", "log_size", "log_root", "checkpoint"],
        "properties": {
            "height": _UINT,
            "hash": _HEX32,
            "prev": _HEX32,
            "time_ms": _UINT,
            "proposer": {"type": "string"},
            "tx_count": _UINT,
            "tx_root": _HEX32,
            "log_size": _UINT,
            "log_root": _B64_HASH,
            "state_root": _HEX32,
            "validators_hash": _HEX32,
            "txs": {"type": "array", "items": _HEX32},
            "checkpoint": {"type": "string",
                           "description": "The quorum-signed C2SP checkpoint after this block."},
        },
    },
    "Consistency": {
        "type": "object",
        "required": ["old_size", "new_size", "old_root", "new_root", "proof"],
        "properties": {
            "old_size": _UINT,
            "new_size": _UINT,
            "old_root": _B64_HASH,
            "new_root": _B64_HASH,
            "proof": {"type": "array", "items": _B64_HASH, "maxItems": limits.MAX_PROOF_HASHES,
                      "description": "RFC 9162 section 2.1.4 consistency proof."},
        },
    },
    "StateProofBundle": {
        "type": "object",
        "required": ["key", "value", "height", "header", "certificate", "proof"],
        "properties": {
            "key": {"type": "string", "description": "hex"},
            "value": {"type": ["string", "null"], "description": "hex, null when absent"},
            "height": _UINT,
            "header": {"type": "string", "contentEncoding": "base64",
                       "description": "the block header, deterministic CBOR"},
            "certificate": {"type": "string", "contentEncoding": "base64",
                            "description": "the commit certificate, deterministic CBOR"},
            "proof": {"type": "string", "contentEncoding": "base64",
                      "description": "state-tree proof (docs/adr/0003-state-commitment.md)"},
        },
    },
    "Deposit": {
        "type": "object",
        "required": ["index", "digest", "meta", "depositor", "height", "time", "tx"],
        "properties": {
            "index": {**_UINT, "description": "The deposit's id: its log index."},
            "digest": _HEX32,
            "meta": {"type": "object", "additionalProperties": {"type": "string"},
                     "maxProperties": limits.MAX_META_ENTRIES},
            "depositor": {**_HEX32, "description": "Depositor's Ed25519 public key, hex."},
            "height": _UINT,
            "time": {**_UINT, "description": "Block time, ms since the Unix epoch."},
            "tx": _HEX32,
            "amends": {"type": ["integer", "null"], "description": "Deposit this one amends."},
            "amended_by": {"type": "array", "items": _UINT,
                           "description": "Only on /v1/evidence/deposit: later amendments."},
        },
    },
}

_SCHEMAS["Contract"] = {
    "type": "object",
    "required": ["name", "description", "methods"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "methods": {"type": "array", "items": {
            "type": "object", "required": ["name", "roles", "summary"],
            "properties": {"name": {"type": "string"},
                           "roles": {"type": "array", "items": {"type": "string"},
                                     "description": "A caller needs one of these roles."},
                           "summary": {"type": "string"}}}},
    },
    "example": {"name": "evidence", "description": "Evidence deposit",
                "methods": [{"name": "deposit", "roles": ["depositor"],
                             "summary": "anchor a document digest {digest, meta}"}]},
}
_SCHEMAS["Member"] = {
    "type": "object",
    "required": ["key", "org", "name", "roles", "ca", "serial", "not_before", "not_after",
                 "status"],
    "properties": {
        "key": _HEX32,
        "org": {"type": "string"},
        "name": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
        "ca": {**_HEX32, "description": "SHA-256 fingerprint of the issuing CA's DER."},
        "serial": {"type": "integer", "minimum": 1},
        "not_before": _UINT,
        "not_after": {**_UINT, "description": "Certificate end, ms since the epoch."},
        "enrolled": {"type": ["integer", "null"],
                     "description": "Log index of the enrol transaction; null: genesis."},
        "status": {"enum": ["active", "expired", "revoked", "ca_removed"],
                   "description": "At the head's block time."},
    },
}
_SCHEMAS["Organisation"] = {
    "type": "object",
    "required": ["org", "legal_name", "uscc", "cas", "members", "truncated"],
    "properties": {
        "org": {"type": "string"},
        "legal_name": {"type": "string"},
        "uscc": {"type": "string", "description": "Unified social credit code."},
        "cas": {"type": "array", "items": _HEX32},
        "members": {"type": "array", "items": _ref("Member")},
        "truncated": {"type": "boolean"},
    },
}

_SCHEMAS["Proposal"] = {
    "type": "object",
    "required": ["id", "action", "args", "status", "votes", "tally", "deadline",
                 "effective_height"],
    "properties": {
        "id": {**_UINT, "description": "The log index of the gov.propose transaction."},
        "action": {"type": "string", "enum": list(governance.ACTIONS)},
        "args": {"type": "object", "description": "The action's checked arguments "
                 "(byte strings as hex)."},
        "effective_height": {**_UINT, "description": "0: the block after it passes."},
        "proposer": _HEX32, "org": {"type": "string"}, "height": _UINT, "time": _UINT,
        "deadline": {**_UINT, "description": "Last block time (ms) a vote is accepted."},
        "votes": {"type": "array", "items": {"type": "object", "properties": {
            "org": {"type": "string"}, "key": _HEX32, "approve": {"type": "boolean"},
            "height": _UINT}}},
        "status": {"type": "string", "enum": ["open", "passed", "rejected", "expired",
                                              "applied", "failed"]},
        "decided_height": {"type": ["integer", "null"]},
        "apply_height": {"type": ["integer", "null"]},
        "reason": {"type": "string", "description": "Why it failed to apply."},
        "effect": {"type": ["object", "null"], "description": "What applying changed."},
        "tally": {"type": "object", "properties": {
            "approvals": _UINT, "rejections": _UINT, "orgs": _UINT}},
    },
}
_SCHEMAS["DryRun"] = {
    "type": "object",
    "required": ["ok", "action"],
    "properties": {
        "ok": {"type": "boolean"}, "action": {"type": "string"},
        "effect": {"type": "object", "description": "What would change (when ok)."},
        "error": {"type": "string", "description": "Why it would be refused (when not ok): "
                  "e.g. last_org, no_admin_left, duplicate, cert_untrusted, not_supported."},
        "reason": {"type": "string"},
        "quorum": {"type": "object", "description": "remove_validator only: the remaining "
                   "set, its quorum, tolerated faults, live count, can_reach_quorum."},
    },
}

_RESPONSES: dict[str, Schema] = {
    "BadRequest": _json_body(_ref("Error"), "Malformed or refused input (typed code)."),
    "NotFound": _json_body(_ref("Error"), "No such object."),
    "Forbidden": _json_body(_ref("Error"), (
        "The sender is not an enrolled member in good standing, or has none of the roles "
        "the method allows (code forbidden; docs/permissions.md).")),
    "TooLarge": _json_body(_ref("Error"), "Request body or transaction over its limit."),
    "Busy": {
        **_json_body(_ref("Error"), "Back-pressure: the mempool or waiter table is full."),
        "headers": {"Retry-After": {"schema": {"type": "integer"},
                                    "description": "Seconds to wait before retrying."}},
    },
}

_TX_EXAMPLE = "omRib2R5WQEO...(deterministic CBOR {body: bytes, sig: bytes})"
_RECEIPT_EXAMPLE = (
    "c2sp.org/tlog-proof@v1\nextra pWF2AWJ0eKJk...\nindex 0\n\n"
    "tidechain/acme-net/1a2b3c4d5e6f7a8b\n1\nq0b2...=\n\n— acme-net/node0 Ab3X...\n"
)
_CHECKPOINT_EXAMPLE = (
    "tidechain/acme-net/1a2b3c4d5e6f7a8b\n3\nq0b2...=\n\n— acme-net/node0 Ab3X...\n"
)


def _get(summary: str, ok: Schema, *, params: list[Schema] | None = None,
         errors: tuple[str, ...] = ("BadRequest",)) -> Schema:
    responses: dict[str, Schema] = {"200": ok}
    status_of = {"BadRequest": "400", "Forbidden": "403", "NotFound": "404", "TooLarge": "413",
                 "Busy": "503"}
    for name in errors:
        responses[status_of[name]] = _error(name)
    op: Schema = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


_SUBMIT: Schema = {
    "post": {
        "summary": "Submit one signed transaction",
        "description": (
            "Decodes, checks the signature, chain id, expiry and replay, checks that the "
            "sender is an enrolled member with a role the method allows (403 forbidden "
            "otherwise), and admits the transaction to the mempool. With wait=true, "
            "answers once it is committed."),
        "parameters": [
            _query_param("wait", {"type": "boolean", "default": False},
                         "Block until the transaction commits (or timeout_ms passes)."),
            _query_param("timeout_ms", _TIMEOUT_MS, "Longest wait for the commit."),
        ],
        "requestBody": {"required": True, "content": {
            CBOR: {"schema": {"type": "string", "contentMediaType": CBOR,
                              "maxLength": limits.MAX_TX_BYTES},
                   "example": _TX_EXAMPLE},
            JSON: {"schema": _ref("SubmitJson")},
        }},
        "responses": {
            "200": _json_body(_ref("Committed"), "Committed (wait=true)."),
            "202": _json_body(_ref("Pending"), "Admitted to the mempool (wait=false)."),
            "400": _error("BadRequest"),
            "403": _error("Forbidden"),
            "413": _error("TooLarge"),
            "422": _json_body(_ref("CommittedRefused"),
                              "Committed, but the contract refused the call."),
            "503": _error("Busy"),
        },
    }
}

_SUBMIT_BATCH: Schema = {
    "post": {
        "summary": "Submit many signed transactions",
        "requestBody": {"required": True, "content": {CBOR: {
            "schema": {"type": "string", "contentMediaType": CBOR, "description": (
                f"A deterministic-CBOR array of at most {limits.MAX_SUBMIT_BATCH} byte "
                "strings, each one encoded signed transaction.")}}}},
        "responses": {
            "200": _json_body(_ref("BatchResults"), "One result per transaction, in order."),
            "400": _error("BadRequest"),
            "413": _error("TooLarge"),
            "503": _error("Busy"),
        },
    }
}

_PATHS: dict[str, Schema] = {
    "/v1/openapi.json": _get("This document", _json_body({"type": "object"}, "OpenAPI 3.1"),
                             errors=()),
    "/v1/status": _get("Chain head, log, mempool and consensus status",
                       _json_body(_ref("Status"), "Status"), errors=()),
    "/v1/checkpoint": _get("Latest quorum-signed C2SP checkpoint (signed note text)",
                           _text_body("A c2sp.org/tlog-checkpoint signed note",
                                      _CHECKPOINT_EXAMPLE),
                           errors=("NotFound",)),
    "/v1/tx": _SUBMIT,
    "/v1/tx/batch": _SUBMIT_BATCH,
    "/v1/tx/{tx_id}": _get("A transaction: committed (with its entry) or pending",
                           _json_body(_ref("Entry"), "Transaction"), params=[_TX_ID],
                           errors=("BadRequest", "NotFound")),
    "/v1/tx/{tx_id}/wait": {
        "get": {
            "summary": "Wait until a transaction commits",
            "parameters": [_TX_ID, _query_param("timeout_ms", _TIMEOUT_MS, "Longest wait.")],
            "responses": {
                "200": _json_body(_ref("Committed"), "Committed."),
                "400": _error("BadRequest"),
                "422": _json_body(_ref("CommittedRefused"),
                                  "Committed, but the contract refused the call."),
                "503": _error("Busy"),
            },
        }
    },
    "/v1/block/{height}": _get("A block header with its transaction ids and checkpoint",
                               _json_body(_ref("Block"), "Block"),
                               params=[_path_param("height", _UINT, "Block height (from 1).")],
                               errors=("BadRequest", "NotFound")),
    "/v1/log/entry/{index}": _get("A log entry", _json_body(_ref("Entry"), "Entry"),
                                  params=[_INDEX], errors=("BadRequest", "NotFound")),
    "/v1/log/consistency": _get(
        "RFC 9162 consistency proof between two log sizes",
        _json_body(_ref("Consistency"), "Proof with both roots"),
        params=[_query_param("old", {"type": "integer", "minimum": 1}, "Older size.", True),
                _query_param("new", _UINT, "Newer size (default: current size).")],
        errors=("BadRequest",)),
    "/v1/proof/{index}": _get(
        "Receipt of a log entry against the latest checkpoint",
        _text_body("A c2sp.org/tlog-proof@v1 receipt; the entry is in its extra line",
                   _RECEIPT_EXAMPLE),
        params=[_INDEX], errors=("BadRequest", "NotFound")),
    "/v1/evidence/digest/{digest}": _get(
        "All deposits of a SHA-256 digest, earliest first",
        _json_body({"type": "object", "required": ["deposits"], "properties": {
            "deposits": {"type": "array", "items": _ref("Deposit"),
                         "maxItems": limits.MAX_QUERY_RESULTS}}}, "Deposits"),
        params=[_path_param("digest", _HEX32, "SHA-256 of the document, hex.")]),
    "/v1/state/proof/{key}": _get(
        "A world-state value at the head with its proof: block header, commit "
        "certificate and state-tree proof (verify with tidechain.client.state_proof)",
        _json_body(_ref("StateProofBundle"), "State proof bundle"),
        params=[_path_param("key", {"type": "string", "pattern": "^([0-9a-fA-F]{2})+$"},
                            "The state key, hex (namespaced: '<contract>/' + key).")],
        errors=("BadRequest", "NotFound")),
    "/v1/evidence/deposit/{index}": _get(
        "One deposit by its log index, with the deposits that amend it",
        _json_body(_ref("Deposit"), "Deposit"), params=[_INDEX],
        errors=("BadRequest", "NotFound")),
    "/v1/contracts": _get(
        "Every contract method and the roles that may call it",
        _json_body({"type": "object", "required": ["contracts"], "properties": {
            "contracts": {"type": "array", "items": _ref("Contract")}}}, "Contracts"),
        errors=()),
    "/v1/members": _get(
        "An organisation, its active CA fingerprints and its members, at the head",
        _json_body(_ref("Organisation"), "Organisation"),
        params=[_query_param("org", {"type": "string"}, "The org id, e.g. acme.", True)],
        errors=("BadRequest", "NotFound")),
    "/v1/members/{key}": _get(
        "A member by its Ed25519 public key, with its status at the head",
        _json_body(_ref("Member"), "Member"),
        params=[_path_param("key", _HEX32, "The member's Ed25519 public key, hex.")],
        errors=("BadRequest", "NotFound")),
    "/v1/gov/proposals": _get(
        "Every governance proposal with its votes, status and tally, oldest first; the "
        "threshold, voting period and registered organisations",
        _json_body({"type": "object", "required": ["proposals", "threshold", "orgs"],
                    "properties": {
                        "proposals": {"type": "array", "items": _ref("Proposal")},
                        "truncated": {"type": "boolean"},
                        "threshold": {"type": "array", "items": _UINT,
                                      "description": "[numerator, denominator]: passes "
                                      "with approvals > this share of organisations"},
                        "voting_period_ms": _UINT, "height": _UINT,
                        "orgs": {"type": "array", "items": {"type": "string"}}}},
                   "Proposals"),
        errors=()),
    "/v1/gov/proposals/{id}": _get(
        "One governance proposal", _json_body(_ref("Proposal"), "Proposal"),
        params=[_path_param("id", _UINT, "The proposal id (its log index).")],
        errors=("BadRequest", "NotFound")),
    "/v1/gov/dry-run": {
        "post": {
            "summary": "Evaluate a signed gov.propose without submitting it",
            "description": (
                "The body is a signed gov.propose transaction, as for POST /v1/tx. The "
                "node checks the signature and the proposer's permission, then evaluates "
                "the action against the committed head as if it passed and applied now. "
                "A refusal is a 200 with ok false and its code (docs/governance.md)."),
            "requestBody": {"required": True, "content": {
                CBOR: {"schema": {"type": "string", "contentEncoding": "binary"}},
                JSON: {"schema": {"type": "object", "required": ["tx"], "properties": {
                    "tx": {"type": "string", "contentEncoding": "base64"}}}}}},
            "responses": {"200": _json_body(_ref("DryRun"), "What would happen."),
                          "400": _error("BadRequest"), "403": _error("Forbidden"),
                          "413": _error("TooLarge")},
        }
    },
}

# --- e-invoices (contracts/invoice, docs/invoices.md) -----------------------------------

_SCHEMAS["Invoice"] = {
    "type": "object",
    "description": (
        "An e-invoice record at the head (byte strings as hex). The content (buyer, lines, "
        "figures, remark) is in `sealed`: ciphertext, commitment and the content key "
        "wrapped to each reader (ADR 0012); readers open it client-side "
        "(`Client.invoice_content`, `tide invoice show --key`)."),
    "required": ["number", "kind", "issuer", "sealed", "total", "state", "claimed",
                 "reversed", "reimbursed", "period"],
    "properties": {
        "number": {"type": "string", "pattern": "^[0-9]{20}$"},
        "kind": {"type": "string", "enum": ["blue", "red"]},
        "issuer": _HEX32,
        "original": {"type": ["string", "null"],
                     "description": "For a red-letter invoice: the number it reverses."},
        "reason": {"type": ["string", "null"],
                   "description": "For a red-letter invoice: why it reverses."},
        "sealed": {"type": "object", "required": ["ciphertext", "nonce", "commitment",
                                                  "readers"],
                   "properties": {
                       "ciphertext": {"type": "string"}, "nonce": {"type": "string"},
                       "commitment": _HEX32, "code_wrap": {"type": "string"},
                       "readers": {"type": "array", "items": {
                           "type": "array", "minItems": 2, "maxItems": 2,
                           "items": {"type": "string"}},
                           "description": "[member key, wrapped content key] pairs."}}},
        "total": _UINT,
        "state": {"type": "string", "enum": ["issued", "locked", "reimbursed"]},
        "holder": {"type": ["string", "null"]},
        "claimed": {"type": "boolean"},
        "submitted_to": {"type": ["string", "null"]},
        "locked_by": {"type": ["string", "null"]},
        "reversed": _UINT,
        "reimbursed": _UINT,
        "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "time": _UINT, "height": _UINT,
        "pending_reversal": {"type": ["object", "null"],
                             "description": "A reversal request awaiting confirmation."},
    },
}
_SCHEMAS["InvoiceStats"] = {
    "type": "object",
    "description": "Counters (fen) the invoice contract keeps per issuer and UTC month.",
    "required": ["month", "issuers", "issued", "issued_count", "reversed", "reimbursed"],
    "properties": {
        "month": {"type": "string"}, "tax_id": {"type": ["string", "null"]},
        "issuers": {"type": "array", "items": _HEX32},
        "issued": _UINT, "issued_count": _UINT, "reversed": _UINT, "reimbursed": _UINT,
        "height": _UINT,
    },
}
_PATHS["/v1/invoices/stats"] = _get(
    "An issuer's invoice statistics for one month", _json_body(_ref("InvoiceStats"), "Stats"),
    params=[_query_param("issuer", {"type": "string"},
                         "The issuer's tax id (USCC; summed over its keys) or member key "
                         "(64 hex).", required=True),
            _query_param("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                         "The UTC month, YYYY-MM.", required=True)],
    errors=("BadRequest", "NotFound"))
_PATHS["/v1/invoices/auditors"] = _get(
    "The tax authority's audit keys every new invoice must be sealed to",
    _json_body({"type": "object", "required": ["auditors", "height"],
                "properties": {"auditors": {"type": "array", "items": {
                    "type": "string", "pattern": "^[0-9a-f]{64}$"}},
                    "height": {"type": "integer"}}}, "Auditors"))
_PATHS["/v1/invoices/{number}"] = _get(
    "An e-invoice and its state", _json_body(_ref("Invoice"), "Invoice"),
    params=[_path_param("number", {"type": "string", "pattern": "^[0-9]{20}$"},
                        "The invoice number (20 digits).")],
    errors=("BadRequest", "NotFound"))

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "tidechain node API",
        "version": "1",
        "description": (
            "Submit signed transactions and query a tidechain node. Every error is JSON "
            "{error, reason} with a 4xx status; transactions are deterministic CBOR "
            "(docs/encoding.md); receipts and checkpoints are C2SP text formats."),
    },
    "servers": [{"url": "http://127.0.0.1:8680"}],
    "paths": _PATHS,
    "components": {"schemas": _SCHEMAS, "responses": _RESPONSES},
}
