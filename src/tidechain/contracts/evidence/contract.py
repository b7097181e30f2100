"""Evidence deposit (存证): anchor a document's SHA-256 digest with metadata and the
depositor's identity; look deposits up by digest; amend a deposit by linking a new
version to it, never changing the original.

State in the `evidence` namespace (integers 8-byte big-endian):

* `i` + index            -> the deposit record (CBOR map, see `_record`)

Secondary indexes (derived from the `deposited` events by `index_rule`, not in the
state root):

* `evidence/digest`  digest       -> the log indexes of its deposits
* `evidence/amends`  of (8 bytes) -> the log indexes of the deposits amending `of`

A deposit's identifier is the global log index of the transaction that made it, so a
receipt for the deposit names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from tidechain.contracts.evidence import cosign
from tidechain.core import cbor
from tidechain.core.errors import ContractError, invariant
from tidechain.core.limits import MAX_META_ENTRIES, MAX_META_KEY_BYTES, MAX_META_VALUE_BYTES
from tidechain.identity.roles import Role
from tidechain.ledger.runtime import (
    CallContext,
    Contract,
    MethodSpec,
    StateReader,
    check_args,
    governed_param,
    namespaced,
)
from tidechain.ledger.types import Event

NAME = "evidence"
DIGEST_BYTES = 32


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def record_key(index: int) -> bytes:
    return b"i" + _u64(index)


DIGEST_INDEX = "digest"
AMENDS_INDEX = "amends"
SIGNER_INDEX = "signer"
"""evidence v2: a member key -> the co-signed deposits naming it."""
SIGNER_ORG_INDEX = "signer-org"
"""evidence v2: an organisation id -> the co-signed deposits with a slot for it."""


def check_digest(digest: Any) -> bytes:
    """The deposited digest: 32 bytes. Shared with clients (see `validate_meta`)."""
    if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise ContractError("'digest' must be a 32-byte SHA-256 digest", code="bad_argument")
    return digest


def check_of(of: Any) -> int:
    """The deposit an amendment amends: a log index. Shared with clients."""
    if not isinstance(of, int) or isinstance(of, bool) or of < 0:
        raise ContractError("'of' must be the log index of an earlier deposit",
                            code="bad_argument")
    return of


def validate_meta(meta: Any) -> dict[str, str]:
    """Metadata: at most MAX_META_ENTRIES short text pairs. Shared by the contract and
    by clients so both refuse the same input for the same reason."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ContractError("'meta' must be a map of text to text", code="bad_argument")
    if len(meta) > MAX_META_ENTRIES:
        raise ContractError(f"'meta' has more than {MAX_META_ENTRIES} entries",
                            code="bad_argument")
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ContractError("'meta' keys and values must be text", code="bad_argument")
        if not key or len(key.encode()) > MAX_META_KEY_BYTES:
            raise ContractError(f"'meta' key {key[:20]!r} must be 1..{MAX_META_KEY_BYTES} bytes",
                                code="bad_argument")
        if len(value.encode()) > MAX_META_VALUE_BYTES:
            raise ContractError(f"'meta' value of {key!r} exceeds {MAX_META_VALUE_BYTES} bytes",
                                code="bad_argument")
    return meta


def _record(ctx: CallContext, digest: bytes, meta: dict[str, str],
            amends: int | None) -> dict[str, Any]:
    return {
        "index": ctx.log_index,
        "digest": digest,
        "meta": meta,
        "depositor": ctx.caller,
        "height": ctx.height,
        "time": ctx.time_ms,
        "tx": ctx.tx_id,
        "amends": amends,
    }


def _store(ctx: CallContext, digest: bytes, meta: dict[str, str], amends: int | None,
           v2: dict[str, Any] | None = None) -> None:
    record = _record(ctx, digest, meta, amends)
    data: dict[str, Any] = {"index": ctx.log_index, "digest": digest}
    if amends is not None:
        data["amends"] = amends
    if v2 is not None:  # evidence v2: co-signers and publication (cosign.py)
        record.update(v2)
        terms = v2.get("cosign")
        if terms is not None:  # who has to sign (the `awaiting` index), how many, by when:
            data.update(terms)  # in the entry, for the offline verifier (deposit_proof.py)
    ctx.put(record_key(ctx.log_index), cbor.encode(record))
    ctx.emit("deposited", data)


def index_rule(events: Sequence[Event]) -> list[tuple[str, bytes]]:
    """The secondary-index rows of a successful call, from its `deposited` events: run
    at execution and by a state sync rebuilding the indexes (ADR 0013)."""
    rows: list[tuple[str, bytes]] = []
    for event in events:
        if event.kind != "deposited":
            continue
        digest = event.data.get("digest")
        invariant(isinstance(digest, bytes), "deposited event without a digest")
        assert isinstance(digest, bytes)
        rows.append((DIGEST_INDEX, digest))
        amends = event.data.get("amends")
        if isinstance(amends, int):
            rows.append((AMENDS_INDEX, _u64(amends)))
        for slot in _unique_slot_rows(event.data.get("slots") or []):
            rows.append(slot)
    return rows


def _unique_slot_rows(slots: list[Any]) -> list[tuple[str, bytes]]:
    """`awaiting` rows of a co-signed deposit: its key slots by key, its org slots by
    organisation (once per organisation)."""
    rows: list[tuple[str, bytes]] = []
    for slot in slots:
        invariant(isinstance(slot, dict), "deposited event with a malformed slot")
        row = ((SIGNER_INDEX, slot["key"]) if "key" in slot
               else (SIGNER_ORG_INDEX, slot["org"].encode()))
        if row not in rows:
            rows.append(row)
    return rows


def deposit(ctx: CallContext, args: dict[str, Any]) -> None:
    """Deposit a digest. The same digest may be deposited again (by any depositor); each
    deposit is its own record, and lookups list them earliest first."""
    check_args(args, {"digest", "meta"})
    _store(ctx, check_digest(args.get("digest")), validate_meta(args.get("meta")), None)


def amend(ctx: CallContext, args: dict[str, Any]) -> None:
    """Deposit a new version of an earlier deposit made by the same depositor. The
    earlier record is not changed; the link is recorded beside it."""
    check_args(args, {"of", "digest", "meta"})
    of = check_of(args.get("of"))
    _own_record(ctx, of)
    _store(ctx, check_digest(args.get("digest")), validate_meta(args.get("meta")), of)


def _record_at(ctx: CallContext, of: int) -> dict[str, Any]:
    raw = ctx.get(record_key(of))
    if raw is None:
        raise ContractError(f"no deposit at log index {of}", code="not_found")
    return decode_record(raw)


def _own_record(ctx: CallContext, of: int) -> dict[str, Any]:
    """Deposit `of`, which the caller must have made (`amend`, `publish`)."""
    record = _record_at(ctx, of)
    if record["depositor"] != ctx.caller:
        raise ContractError(f"deposit {of} was made by another depositor", code="forbidden")
    return record


# --- version 2: co-signed deposits and publication (ADR 0017) ---------------------------

V2_DEPOSIT_ARGS = {"digest", "meta", "cosigners", "threshold", "deadline", "public"}


def _max_window(ctx: CallContext) -> int:
    value = governed_param(ctx._state, cosign.DEADLINE_PARAM)
    return cosign.DEFAULT_MAX_COSIGN_MS if value is None else int(value)


def _public_arg(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ContractError("'public' must be true or false", code="bad_argument")
    return value


def _v2_fields(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    """The fields evidence v2 adds to a record: `public`, and for a co-signed deposit
    its slots, threshold, deadline, the signatures so far and when it took effect."""
    # `public` is stored only when true: a record without it is not public (as every v1
    # record), and the common deposit stays as small as v1's.
    fields: dict[str, Any] = {"public": True} if _public_arg(args.get("public")) else {}
    if args.get("cosigners") is None:
        if args.get("threshold") is not None or args.get("deadline") is not None:
            raise ContractError("'threshold' and 'deadline' need 'cosigners'",
                                code="bad_argument")
        return fields
    slots = cosign.parse_slots(args.get("cosigners"))
    threshold = cosign.check_threshold(args.get("threshold", len(slots)), slots)
    deadline = cosign.check_deadline(args.get("deadline"), ctx.time_ms, _max_window(ctx))
    fields["cosign"] = {"slots": [slot.to_cbor() for slot in slots],
                        "threshold": threshold, "deadline": deadline}
    fields["signed"] = []
    fields["effective"] = None
    return fields


def deposit_v2(ctx: CallContext, args: dict[str, Any]) -> None:
    """Deposit a digest, optionally public and optionally to be co-signed by k of the
    named `cosigners` before `deadline` (cosign.py)."""
    check_args(args, V2_DEPOSIT_ARGS)
    digest = check_digest(args.get("digest"))
    meta = validate_meta(args.get("meta"))
    _store(ctx, digest, meta, None, _v2_fields(ctx, args))


def amend_v2(ctx: CallContext, args: dict[str, Any]) -> None:
    """`amend`, with v2's fields: the new version has its own co-signers, if any."""
    check_args(args, V2_DEPOSIT_ARGS | {"of"})
    of = check_of(args.get("of"))
    _own_record(ctx, of)
    digest = check_digest(args.get("digest"))
    meta = validate_meta(args.get("meta"))
    _store(ctx, digest, meta, of, _v2_fields(ctx, args))


def sign(ctx: CallContext, args: dict[str, Any]) -> None:
    """Sign co-signed deposit `of`, whose digest must be `digest` (what the signer
    checked). Fills one open slot the caller matches; the signature that fills the
    threshold-th slot makes the deposit effective at this block."""
    check_args(args, {"of", "digest"})
    of = check_of(args.get("of"))
    digest = check_digest(args.get("digest"))
    record = _record_at(ctx, of)
    terms = record.get("cosign")
    if terms is None:
        raise ContractError(f"deposit {of} names no co-signers", code="not_cosigned")
    if record["digest"] != digest:
        raise ContractError(f"deposit {of} is of digest {record['digest'].hex()}, not the "
                            "one signed", code="digest_mismatch")
    if ctx.time_ms > terms["deadline"]:
        raise ContractError(f"deposit {of}'s signing closed at {terms['deadline']} ms "
                            "(its deadline)", code="lapsed")
    signed: list[dict[str, Any]] = record["signed"]
    if any(s["key"] == ctx.caller for s in signed):
        raise ContractError(f"you have already signed deposit {of}", code="already_signed")
    # Imported here: `members` loads cryptography's x509 (and `socket`); the offline
    # verifier imports this module and must not (tests/test_architecture.py).
    from tidechain.contracts import members

    standing = members.member_org_roles(ctx._state, ctx.caller, ctx.time_ms)
    org, roles = (None, frozenset[Role]()) if isinstance(standing, str) else standing
    slots = cosign.slots_from_record(terms["slots"])
    slot = cosign.choose_slot(slots, [s["slot"] for s in signed], ctx.caller, org, roles)
    signed.append({"slot": slot, "key": ctx.caller, "index": ctx.log_index,
                   "height": ctx.height, "time": ctx.time_ms})
    became = record["effective"] is None and len(signed) >= terms["threshold"]
    if became:
        record["effective"] = {"index": ctx.log_index, "height": ctx.height,
                               "time": ctx.time_ms}
    ctx.put(record_key(of), cbor.encode(record))
    event: dict[str, Any] = {"of": of, "slot": slot, "signed": len(signed),
                             "threshold": terms["threshold"], "effective": became}
    if org is not None:
        event["org"] = org
    ctx.emit("signed", event)


def publish(ctx: CallContext, args: dict[str, Any]) -> None:
    """Make one's own deposit public (公示): anyone may then look it up by digest and
    fetch its receipts. There is no way back: a published record has been read."""
    check_args(args, {"of"})
    of = check_of(args.get("of"))
    record = _own_record(ctx, of)
    if record.get("public"):
        raise ContractError(f"deposit {of} is already public", code="already_public")
    record["public"] = True
    ctx.put(record_key(of), cbor.encode(record))
    ctx.emit("published", {"of": of})


Digest = Annotated[bytes, msgspec.Meta(min_length=DIGEST_BYTES, max_length=DIGEST_BYTES,
                                       description="SHA-256 of the document (32 bytes)")]
Meta = Annotated[dict[str, str], msgspec.Meta(
    max_length=MAX_META_ENTRIES,
    description=f"up to {MAX_META_ENTRIES} text pairs: keys 1..{MAX_META_KEY_BYTES} "
                f"bytes, values up to {MAX_META_VALUE_BYTES} bytes")]
LogIndex = Annotated[int, msgspec.Meta(ge=0, description="a log index")]


class DepositArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    digest: Digest
    meta: Meta | None = None


class AmendArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    of: LogIndex
    digest: Digest
    meta: Meta | None = None


CONTRACT = Contract(
    name=NAME,
    # Depositors only: an admin manages membership and does not deposit in its own
    # name (an org that wants both enrols the key with both roles); the regulator reads.
    methods={
        "deposit": MethodSpec(deposit, frozenset({Role.DEPOSITOR}),
                              "anchor a document digest {digest, meta}", DepositArgs),
        "amend": MethodSpec(amend, frozenset({Role.DEPOSITOR}),
                            "deposit a new version of one's own deposit {of, digest, meta}",
                            AmendArgs),
    },
    description="Evidence deposit: anchor SHA-256 digests of documents; amend by linking.",
)


class Cosigner(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A named signer: `key` alone, or `org` and `role` together."""

    key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32,
                                       description="a member's Ed25519 key")] | None = None
    org: Annotated[str, msgspec.Meta(min_length=1, max_length=cosign.MAX_ORG_ID_BYTES,
                                     description="an organisation id")] | None = None
    role: Annotated[str, msgspec.Meta(description="a role of that organisation's member")
                    ] | None = None


Threshold = Annotated[int, msgspec.Meta(ge=1, le=cosign.MAX_COSIGNERS,
                                        description="k: signatures that make it effective")]
Deadline = Annotated[int, msgspec.Meta(ge=0, description=(
    f"signing closes at this time (ms since the epoch); at most {cosign.DEADLINE_PARAM} "
    "after the block (default: that long)"))]
Cosigners = Annotated[list[Cosigner],
                      msgspec.Meta(min_length=1, max_length=cosign.MAX_COSIGNERS)]


class DepositV2Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    digest: Digest
    meta: Meta | None = None
    cosigners: Cosigners | None = None
    threshold: Threshold | None = None
    deadline: Deadline | None = None
    public: bool | None = None


class AmendV2Args(DepositV2Args, frozen=True, forbid_unknown_fields=True, kw_only=True):
    of: LogIndex


class SignArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    of: LogIndex
    digest: Digest


class PublishArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    of: LogIndex


SIGNING_ROLES = frozenset(r for r in Role if r is not Role.REGULATOR)
"""Who may call `sign`: any member that acts; the contract then admits only the named."""

CONTRACT_V2 = Contract(
    name=NAME,
    methods={
        "deposit": MethodSpec(deposit_v2, frozenset({Role.DEPOSITOR}),
                              "anchor a document digest {digest, meta, public, cosigners, "
                              "threshold, deadline}", DepositV2Args),
        "amend": MethodSpec(amend_v2, frozenset({Role.DEPOSITOR}),
                            "deposit a new version of one's own deposit {of, digest, meta, "
                            "public, cosigners, threshold, deadline}", AmendV2Args),
        "sign": MethodSpec(sign, SIGNING_ROLES,
                           "co-sign a deposit that names you {of, digest}", SignArgs),
        "publish": MethodSpec(publish, frozenset({Role.DEPOSITOR}),
                              "make one's own deposit public {of}", PublishArgs),
    },
    description="Evidence deposit: anchor SHA-256 digests of documents; amend by linking; "
                "co-signed k of n; public lookup.",
    version=2,
)


# --- reading records -------------------------------------------------------------------


def decode_record(raw: bytes) -> dict[str, Any]:
    """A record this contract wrote: anything else is our bug, not bad input."""
    value = cbor.decode(raw)
    invariant(isinstance(value, dict), "corrupt evidence record in state")
    record: dict[str, Any] = value
    return record


def get_deposit(state: StateReader, index: int) -> dict[str, Any] | None:
    raw = state.get(namespaced(NAME, record_key(index)))
    return None if raw is None else decode_record(raw)
