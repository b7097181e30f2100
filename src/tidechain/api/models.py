"""The REST API's typed models (msgspec Structs, ADR 0014): what every route takes and
answers. The server converts each answer through its declared model before sending
it, the OpenAPI document is generated from them, and the SDK checks answers with the
same types, so the three cannot drift apart.

Byte strings travel as lowercase hex, except Merkle roots and proof hashes, which are
base64 as in C2SP checkpoints. Only msgspec is imported here: the SDK loads it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
UInt = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Base64 = Annotated[str, msgspec.Meta(description="standard base64")]


class Model(msgspec.Struct, omit_defaults=True):
    """Base of answers: decoded strictly by the SDK (unknown fields are allowed, so a
    newer node can add fields without breaking an older client)."""


class Params(msgspec.Struct, forbid_unknown_fields=True):
    """Base of path and query parameters: unknown names are refused (400)."""


# --- errors ---------------------------------------------------------------------------


class Error(Model):
    """Every refusal: a stable machine-readable code and a reason for humans."""

    error: str
    reason: str
    tx_id: str | None = None


# --- node and chain -------------------------------------------------------------------


class Mempool(Model):
    transactions: int
    bytes: int
    capacity: int


class ValidatorInfo(Model):
    name: str
    key: str
    org: str
    address: str
    tls: str


class KeySpan(Model):
    name: str
    key: str
    heights: list[int | None]
    sizes: list[int | None]


class ValidatorSet(Model):
    since_height: int
    validators: list[ValidatorInfo]
    keys: list[KeySpan]


class StateSyncProgress(Model):
    phase: Literal["offer", "headers", "data"]
    height: int | None
    headers: int
    records: int
    records_total: int | None
    entries: int
    entries_total: int | None


class Sync(Model):
    peer_height: int
    behind_blocks: int
    catching_up: bool
    state_sync: StateSyncProgress | None = None


class Round(Model):
    height: int
    round: int


class CertificateInfo(Model):
    kind: str
    org: str
    name: str
    serial: int
    id: str
    not_after: str
    not_after_ms: int
    days_left: int


class Certificates(Model):
    warn_days: int
    at_ms: int
    checked: int
    expired: int
    expiring: int
    soonest: list[CertificateInfo]
    truncated: bool


class Status(Model):
    """The chain's public status: no member data."""

    network: str
    chain_id: str
    origin: str
    node: str
    height: int
    block_hash: str
    block_time_ms: int
    log_size: int
    log_root: str
    state_root: str
    mempool: Mempool
    validators: list[str]
    quorum: int
    validator_set: ValidatorSet
    sync: Sync
    consensus: Round
    certificates: Certificates
    api_version: str = ""


class EventInfo(Model):
    type: str
    data: dict[str, Any]


class Transaction(Model):
    """A committed transaction: its call, its result and its log entry (base64 of the
    canonical CBOR bytes the log hashes); or, with status `pending`, only its id."""

    tx_id: str
    status: Literal["committed", "pending"]
    log_index: int | None = None
    height: int | None = None
    time_ms: int | None = None
    sender: str | None = None
    contract: str | None = None
    method: str | None = None
    args: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    entry: str | None = None


class Committed(Model):
    """A submission's outcome. 200: committed and applied (`events`); 422: committed
    but refused by the contract (`error`, `reason`); 202: admitted, `status` pending.
    With `receipt=true`, a committed answer carries its tlog-proof receipt."""

    tx_id: str
    status: Literal["committed", "pending"]
    log_index: int | None = None
    height: int | None = None
    events: list[EventInfo] | None = None
    error: str | None = None
    reason: str | None = None
    receipt: str | None = None


class BatchItem(Model):
    tx_id: str | None = None
    error: str | None = None
    reason: str | None = None


class BatchResults(Model):
    results: list[BatchItem]


class BlockSummary(Model):
    height: int
    hash: str
    time_ms: int
    proposer: str
    tx_count: int
    log_size: int


class Block(Model):
    height: int
    hash: str
    prev: str
    time_ms: int
    proposer: str
    tx_count: int
    tx_root: str
    log_size: int
    log_root: str
    state_root: str
    validators_hash: str
    txs: list[str]
    checkpoint: str


class Consistency(Model):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


class StateProof(Model):
    key: str
    value: str | None
    height: int
    header: str
    certificate: str
    proof: str


class Found(Model):
    """One search hit: what kind of thing matched and where to read it."""

    kind: Literal["block", "transaction", "deposit", "member", "invoice", "record"]
    id: str
    path: str
    app: str | None = None


class SearchResult(Model):
    query: str
    found: list[Found]


# --- applications ---------------------------------------------------------------------


class MethodInfo(Model):
    name: str
    roles: list[str]
    summary: str
    args: dict[str, Any] | None = None


class QueryInfo(Model):
    name: str
    summary: str
    readers: list[str]
    paged: bool
    path: str
    params: dict[str, Any]


class ContractInfo(Model):
    name: str
    description: str
    methods: list[MethodInfo]
    versions: list[int] = []
    queries: list[QueryInfo] = []


class Contracts(Model):
    contracts: list[ContractInfo]


class DryRun(Model):
    """A governance proposal evaluated against the head without submitting it."""

    ok: bool
    action: str
    effect: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None
    quorum: dict[str, Any] | None = None
    """For a validator change: the quorum the new set needs and whether the validators
    seen live reach it (`governance.QuorumCheck`)."""
