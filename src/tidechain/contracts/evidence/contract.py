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


def _record(ctx: CallContext, digest: bytes, meta: dict[str, str], amends: int | None) -> bytes:
    return cbor.encode({
        "index": ctx.log_index,
        "digest": digest,
        "meta": meta,
        "depositor": ctx.caller,
        "height": ctx.height,
        "time": ctx.time_ms,
        "tx": ctx.tx_id,
        "amends": amends,
    })


def _store(ctx: CallContext, digest: bytes, meta: dict[str, str], amends: int | None) -> None:
    ctx.put(record_key(ctx.log_index), _record(ctx, digest, meta, amends))
    data: dict[str, Any] = {"index": ctx.log_index, "digest": digest}
    if amends is not None:
        data["amends"] = amends
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
    raw = ctx.get(record_key(of))
    if raw is None:
        raise ContractError(f"no deposit at log index {of}", code="not_found")
    original = decode_record(raw)
    if original["depositor"] != ctx.caller:
        raise ContractError(f"deposit {of} was made by another depositor", code="forbidden")
    _store(ctx, check_digest(args.get("digest")), validate_meta(args.get("meta")), of)


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
