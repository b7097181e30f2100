"""Traceability (溯源): GS1 EPCIS 2.0 events on the chain, one transaction per event.

The rules (docs/traceability.md, ADR 0018):

* **Capture.** A member capturing for its organisation records one EPCIS event: the
  event's exact bytes as they stood in the captured document (`source`, JSON or XML),
  what is needed to read them alone (`context`: the JSON document's `@context`, or the
  XML namespaces in scope), the SHA-256 of the whole document and the event's position
  in it. The contract reads the event and computes its CBV 2.0 event hash itself, so
  the hash under which the event is filed is the chain's, not the client's, and anyone
  holding the entry recomputes it.
* **No silent duplicates.** An event whose hash is already on the chain is refused
  (`duplicate`), unless it is the first error declaration of that event: a new capture
  of the same event with an `errorDeclaration` block. The original never changes; the
  declaration sits beside it. Event ids are not identity: GS1's own files reuse them for
  different events, so two events with one eventID and different content are both kept.
* **Claims.** An organisation's admin claims the GS1 company prefixes the organisation
  owns (`claim`); a prefix has one owner, and no claim is a prefix of another (a GLN
  in a Digital Link does not say where its company prefix ends, so overlapping claims
  would give one party two owners).
* **Declarations.** Only the organisation that captured an event may declare it in
  error. Parties named in events' source and
  destination lists are mapped to organisations by these claims (who may read an
  event: `visibility.py`).

State in the `trace` namespace (integers 8-byte big-endian, `h16` = the first 16 bytes
of SHA-256 of the text):

* `e` + index                       -> the event record (CBOR map, `_record`)
* `h` + hash (32 bytes)             -> CBOR list of the log indexes filed under that hash
* `k` + kind + h16(value) + index   -> b"" (lookup keys: identifiers, eventIDs, types,
                                       bizSteps, business transactions, transformations)
* `p` + company prefix (digits)     -> the owning organisation's id (claims never
                                       overlap: no claim is a prefix of another)
* `q` + digits                      -> how many claims extend those digits
* `t` + h16(business transaction)   -> CBOR list of the organisations that captured an
                                       event naming it (its parties, `visibility.py`)

An event's identifier is the global log index of its transaction, so its receipt names it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Final

import msgspec

from tidechain.contracts import members
from tidechain.core import cbor
from tidechain.core.errors import ContractError, Rejected, invariant
from tidechain.core.limits import MAX_WRITES_PER_TX
from tidechain.identity.roles import Role
from tidechain.ledger.runtime import (
    CallContext,
    Contract,
    MethodSpec,
    StateReader,
    check_args,
    namespaced,
    stored_list,
    stored_map,
)

from .document import read_source_event
from .event_hash import context_prefixes, event_hash
from .identifiers import canonical_id, event_identifiers
from .vocabulary import cbv_word

NAME: Final = "trace"
FORMATS: Final = ("json", "xml")
MAX_SOURCE_BYTES: Final = 12 * 1024
"""One event's bytes: with its context it fits a 16 KiB transaction. An EPCIS event
larger than this (thousands of EPCs in one epcList) is split by its sender."""
MAX_CONTEXT_BYTES: Final = 3 * 1024
"""A JSON document's @context, or the XML namespaces an event needs: a few prefixes."""
MAX_EVENT_WRITES: Final = MAX_WRITES_PER_TX
"""What one capture writes: its record, its hash list, one lookup key per distinct
identifier and value it names, and the party list of each business transaction. An
event that needs more is refused with the reason (split it), never filed half-indexed:
`too_many_lookups` checks it before anything is written, in the contract and in the
API's pre-check alike."""
MAX_SAME_HASH: Final = 2
"""Records under one hash: the event and its one error declaration."""
MAX_POSITION: Final = 100_000
MAX_TRANSACTION_PARTIES: Final = 16
"""Organisations recorded as parties of one business transaction: a purchase order
or despatch advice names a few (buyer, seller, carriers, warehouses); later ones are
not added, and read the transaction's events through the other rules."""
MIN_PREFIX_DIGITS: Final = 6
PREFIX_PATTERN: Final = re.compile(r"[0-9]{6,12}")
"""A GS1 company prefix: 6 to 12 digits (GS1 General Specifications 1.4.4)."""

CAPTURE_ROLES: Final = frozenset({Role.ENTERPRISE, Role.CARRIER})
"""Producers, processors, warehouses, retailers (enterprises) and carriers capture
events; the regulator reads all and captures nothing."""

KIND_ID, KIND_EVENT_ID, KIND_TYPE, KIND_BIZSTEP = b"i", b"v", b"t", b"s"
KIND_BIZ_TRANSACTION, KIND_TRANSFORMATION, KIND_DISPOSITION = b"b", b"x", b"d"
LOOKUP_KINDS: Final = {
    "id": KIND_ID, "eventID": KIND_EVENT_ID, "eventType": KIND_TYPE,
    "bizStep": KIND_BIZSTEP, "bizTransaction": KIND_BIZ_TRANSACTION,
    "transformationID": KIND_TRANSFORMATION, "disposition": KIND_DISPOSITION,
}


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def record_key(index: int) -> bytes:
    return b"e" + _u64(index)


def hash_key(hash_text: str) -> bytes:
    return b"h" + hash_digest(hash_text)


def hash_digest(hash_text: str) -> bytes:
    """The 32 bytes of an `ni:///sha-256;<hex>?ver=CBV2.0` event hash."""
    hex_part = hash_text.removeprefix("ni:///sha-256;").partition("?")[0]
    try:
        digest = bytes.fromhex(hex_part)
    except ValueError:
        raise Rejected(f"{hash_text[:80]!r} is not a CBV 2.0 event hash") from None
    if len(digest) != 32:
        raise Rejected(f"{hash_text[:80]!r} is not a CBV 2.0 event hash")
    return digest


def lookup_prefix(kind: bytes, value: str) -> bytes:
    """Where the log indexes of events filed under (kind, value) are listed."""
    return b"k" + kind + hashlib.sha256(value.encode()).digest()[:16]


def claim_key(prefix: str) -> bytes:
    return b"p" + prefix.encode()


def extended_key(prefix: str) -> bytes:
    """How many claims extend `prefix` (are longer and start with it)."""
    return b"q" + prefix.encode()


class CaptureArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One EPCIS event, as it stood in the captured document."""

    format: Annotated[str, msgspec.Meta(description="'json' or 'xml'")]
    source: Annotated[bytes, msgspec.Meta(description="the event's exact bytes in the "
                                          "document", max_length=MAX_SOURCE_BYTES)]
    document: Annotated[bytes, msgspec.Meta(description="SHA-256 of the whole captured "
                                            "document", min_length=32, max_length=32)]
    position: Annotated[int, msgspec.Meta(ge=0, lt=MAX_POSITION,
                                          description="the event's 0-based position")]
    context: Annotated[bytes, msgspec.Meta(description="the JSON document's @context, or "
                                           "the XML namespaces in scope",
                                           max_length=MAX_CONTEXT_BYTES)] = b""


class ClaimArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefix: Annotated[str, msgspec.Meta(pattern=PREFIX_PATTERN.pattern,
                                        description="a GS1 company prefix (6-12 digits)")]


def _bytes_arg(args: Mapping[str, Any], name: str, max_bytes: int, *,
               required: bool = True) -> bytes:
    value = args.get(name, None if required else b"")
    if not isinstance(value, bytes):
        raise ContractError(f"'{name}' must be a byte string", code="bad_argument")
    if len(value) > max_bytes:
        raise ContractError(f"'{name}' exceeds {max_bytes} bytes", code="bad_argument")
    return value


def read_capture(args: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The event a capture records and its CBV 2.0 hash, read as the contract reads it.
    Shared with the API (a 409 before submitting) and the offline verifier."""
    fmt = args.get("format")
    if fmt not in FORMATS:
        raise ContractError("'format' must be 'json' or 'xml'", code="bad_argument")
    source = _bytes_arg(args, "source", MAX_SOURCE_BYTES)
    context = _bytes_arg(args, "context", MAX_CONTEXT_BYTES, required=False)
    try:
        event = read_source_event(fmt, source, context)
        context_value = _json_context(context) if fmt == "json" else None
        return event, event_hash(event, context=context_value)
    except Rejected as bad:
        raise ContractError(f"the event is not a valid EPCIS 2.0 event: {bad}",
                            code="bad_event") from None


def _json_context(context: bytes) -> Any:
    if not context:
        return None
    try:
        return json.loads(context.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ContractError("'context' is not JSON", code="bad_argument") from None


def event_lookups(event: Mapping[str, Any], context: Any = None) -> list[tuple[bytes, str]]:
    """Every (kind, value) an event is filed under, each once, in a fixed order;
    `context` is its JSON document's @context (compact vocabulary IRIs expand by it)."""
    found: dict[tuple[bytes, str], None] = {}
    for _role, identifier in event_identifiers(event):
        found[(KIND_ID, identifier)] = None
    try:
        prefixes = context_prefixes(context, event.get("@context"))
    except Rejected:  # a context the hash refused already; nothing expands
        prefixes = {}
    for kind, value in _scalar_lookups(event, prefixes):
        found[(kind, value)] = None
    return list(found)


def _expanded(value: str, prefixes: Mapping[str, str]) -> str:
    prefix, colon, rest = value.strip().partition(":")
    if colon and prefix in prefixes and not rest.startswith("//"):
        return prefixes[prefix] + rest
    return value.strip()


def _scalar_lookups(event: Mapping[str, Any],
                    prefixes: Mapping[str, str]) -> Iterator[tuple[bytes, str]]:
    event_type = event.get("type")
    if isinstance(event_type, str):
        yield KIND_TYPE, event_type
    event_id = event.get("eventID")
    if isinstance(event_id, str) and event_id.strip():
        yield KIND_EVENT_ID, event_id.strip()
    for field, kind, vocabulary in (("bizStep", KIND_BIZSTEP, "bizstep"),
                                    ("disposition", KIND_DISPOSITION, "disp")):
        value = event.get(field)
        if isinstance(value, str) and value.strip():
            yield kind, cbv_word(_expanded(value, prefixes), vocabulary)
    transformation = event.get("transformationID")
    if isinstance(transformation, str) and transformation.strip():
        yield KIND_TRANSFORMATION, canonical_id(transformation)
    for item in event.get("bizTransactionList") or ():
        if isinstance(item, Mapping):
            value = item.get("bizTransaction")
            if isinstance(value, str) and value.strip():
                yield KIND_BIZ_TRANSACTION, canonical_id(value)


def too_many_lookups(lookups: list[tuple[bytes, str]]) -> str | None:
    """Why an event filing these lookups does not fit one transaction, or None."""
    writes = 2 + len(lookups) + sum(kind == KIND_BIZ_TRANSACTION for kind, _ in lookups)
    if writes <= MAX_EVENT_WRITES:
        return None
    return (f"the event names {len(lookups)} distinct identifiers and values, which need "
            f"{writes} writes; at most {MAX_EVENT_WRITES} fit one transaction: split it "
            "into several events")


def _record(ctx: CallContext, org: str, event: Mapping[str, Any], hash_text: str,
            args: Mapping[str, Any]) -> dict[str, Any]:
    event_id = event.get("eventID")
    return {
        "index": ctx.log_index,
        "hash": hash_text,
        "type": event.get("type"),
        "eventID": event_id.strip() if isinstance(event_id, str) else None,
        "declaration": "errorDeclaration" in event,
        "org": org,
        "signer": ctx.caller,
        "time": ctx.time_ms,
        "height": ctx.height,
        "document": args["document"],
        "position": args["position"],
        "format": args["format"],
    }


def _caller_org(ctx: CallContext) -> str:
    standing = members.member_org_roles(ctx._state, ctx.caller, ctx.time_ms)
    invariant(not isinstance(standing, str), "an authorised caller without standing")
    assert not isinstance(standing, str)
    return standing[0]


def capture(ctx: CallContext, args: dict[str, Any]) -> None:
    """Record one EPCIS event for the caller's organisation, under its event hash."""
    check_args(args, {"format", "source", "context", "document", "position"})
    document = args.get("document")
    if not isinstance(document, bytes) or len(document) != 32:
        raise ContractError("'document' must be the 32-byte SHA-256 of the document",
                            code="bad_argument")
    position = args.get("position")
    if not isinstance(position, int) or isinstance(position, bool) \
            or not 0 <= position < MAX_POSITION:
        raise ContractError(f"'position' must be 0..{MAX_POSITION - 1}", code="bad_argument")
    event, hash_text = read_capture(args)
    lookups = event_lookups(event, _json_context(args.get("context", b"")) if
                            args.get("format") == "json" else None)
    refusal = too_many_lookups(lookups)
    if refusal is not None:
        raise ContractError(refusal, code="too_large")
    org = _caller_org(ctx)
    _check_not_duplicate(ctx, event, hash_text, org)
    ctx.put(record_key(ctx.log_index), cbor.encode(_record(ctx, org, event, hash_text, args)))
    filed = stored_list(ctx.get(hash_key(hash_text)), "trace hash list")
    ctx.put(hash_key(hash_text), cbor.encode([*filed, ctx.log_index]))
    for kind, value in lookups:
        ctx.put(lookup_prefix(kind, value) + _u64(ctx.log_index), b"")
        if kind == KIND_BIZ_TRANSACTION:
            _add_transaction_party(ctx, value, org)
    ctx.emit("captured", {"index": ctx.log_index, "hash": hash_text,
                          "declaration": "errorDeclaration" in event})


def parties_key(transaction: str) -> bytes:
    return b"t" + hashlib.sha256(transaction.encode()).digest()[:16]


def _add_transaction_party(ctx: CallContext, transaction: str, org: str) -> None:
    parties = stored_list(ctx.get(parties_key(transaction)), "trace transaction parties")
    if org not in parties and len(parties) < MAX_TRANSACTION_PARTIES:
        ctx.put(parties_key(transaction), cbor.encode([*parties, org]))


def transaction_parties(state: StateReader, transaction: str) -> list[str]:
    """The organisations that captured an event naming this business transaction."""
    raw = state.get(namespaced(NAME, parties_key(transaction)))
    return [str(org) for org in stored_list(raw, "trace transaction parties")]


def _check_not_duplicate(ctx: CallContext, event: Mapping[str, Any], hash_text: str,
                         org: str) -> None:
    """An event already filed under its hash is a duplicate; its first error declaration
    is not (it declares that event wrong, and the original stays). Only the organisation
    that captured an event may declare it in error."""
    filed = stored_list(ctx.get(hash_key(hash_text)), "trace hash list")
    declaring = "errorDeclaration" in event
    for index in filed:
        raw = ctx.get(record_key(index))
        record = None if raw is None else stored_map(raw, "trace record")
        invariant(record is not None, "a hash list names a missing record")
        assert record is not None
        if bool(record.get("declaration")) == declaring:
            what = "error declaration" if declaring else "event"
            raise ContractError(f"this {what} is already recorded, at log index {index} "
                                f"({hash_text})", code="duplicate")
        if declaring and record.get("org") != org:
            raise ContractError(f"the event at log index {index} was captured by "
                                f"organisation {record.get('org')}: only it may declare "
                                "it in error", code="not_yours")
    invariant(len(filed) < MAX_SAME_HASH, "more than an event and its declaration")


def claim(ctx: CallContext, args: dict[str, Any]) -> None:
    """Claim a GS1 company prefix for the caller's organisation (its admin)."""
    check_args(args, {"prefix"})
    prefix = args.get("prefix")
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ContractError("'prefix' must be a GS1 company prefix of 6 to 12 digits",
                            code="bad_argument")
    org = _caller_org(ctx)
    for length in range(MIN_PREFIX_DIGITS, len(prefix) + 1):  # it, or one it extends
        owner = ctx.get(claim_key(prefix[:length]))
        if owner is not None:
            raise ContractError(f"prefix {prefix[:length]} is already claimed by "
                                f"organisation {owner.decode()}", code="claimed")
    if ctx.get(extended_key(prefix)) is not None:  # a longer claim starts with it
        raise ContractError(f"a longer prefix starting with {prefix} is claimed already: "
                            "company prefixes do not overlap", code="claimed")
    ctx.put(claim_key(prefix), org.encode())
    for length in range(MIN_PREFIX_DIGITS, len(prefix)):
        shorter = extended_key(prefix[:length])
        count = ctx.get(shorter)
        ctx.put(shorter, _u64((0 if count is None else int.from_bytes(count, "big")) + 1))
    ctx.emit("claimed", {"prefix": prefix, "org": org})


def release(ctx: CallContext, args: dict[str, Any]) -> None:
    """Give up a GS1 company prefix the caller's organisation claimed (its admin)."""
    check_args(args, {"prefix"})
    prefix = args.get("prefix")
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ContractError("'prefix' must be a GS1 company prefix of 6 to 12 digits",
                            code="bad_argument")
    owner = ctx.get(claim_key(prefix))
    if owner is None or owner.decode() != _caller_org(ctx):
        raise ContractError(f"prefix {prefix} is not claimed by your organisation",
                            code="not_found")
    ctx.delete(claim_key(prefix))
    for length in range(MIN_PREFIX_DIGITS, len(prefix)):
        shorter = extended_key(prefix[:length])
        count = ctx.get(shorter)
        invariant(count is not None, "a claim without its prefix markers")
        assert count is not None
        left = int.from_bytes(count, "big") - 1
        if left:
            ctx.put(shorter, _u64(left))
        else:
            ctx.delete(shorter)
    ctx.emit("released", {"prefix": prefix})


def get_record(state: StateReader, index: int) -> dict[str, Any] | None:
    """Event record `index` from committed state (full keys, as queries read it)."""
    raw = state.get(namespaced(NAME, record_key(index)))
    return None if raw is None else stored_map(raw, "trace record")


def filed_under_hash(state: StateReader, hash_text: str) -> list[int]:
    """The log indexes of the event with this hash and of its error declaration."""
    return [int(i) for i in stored_list(state.get(namespaced(NAME, hash_key(hash_text))),
                                        "trace hash list")]


def prefix_owner(state: StateReader, prefix: str) -> str | None:
    raw = state.get(namespaced(NAME, claim_key(prefix)))
    return None if raw is None else raw.decode()


CONTRACT = Contract(
    name=NAME,
    methods={
        "capture": MethodSpec(capture, CAPTURE_ROLES, "record one EPCIS 2.0 event {format, "
                              "source, context, document, position}", CaptureArgs),
        "claim": MethodSpec(claim, frozenset({Role.ADMIN}), "claim a GS1 company prefix "
                            "for your organisation {prefix}", ClaimArgs),
        "release": MethodSpec(release, frozenset({Role.ADMIN}), "release a GS1 company "
                              "prefix your organisation claimed {prefix}", ClaimArgs),
    },
    description="Traceability: GS1 EPCIS 2.0 events, each on chain under its CBV 2.0 "
                "event hash.",
)
