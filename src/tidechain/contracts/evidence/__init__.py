"""Evidence deposit (存证): the application's rules (`contract.py`), its queries
(`queries.py`) and its descriptor, `APP` (ADR 0013)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.contracts.evidence import queries
from tidechain.contracts.evidence.contract import (
    AMENDS_INDEX,
    CONTRACT,
    CONTRACT_V2,
    DIGEST_BYTES,
    DIGEST_INDEX,
    NAME,
    AmendArgs,
    DepositArgs,
    check_digest,
    check_of,
    decode_record,
    deposit,
    get_deposit,
    index_rule,
    record_key,
    validate_meta,
)
from tidechain.contracts.evidence.fast_index import index_rows_from_result
from tidechain.contracts.evidence.queries import QUERIES, Deposit, find
from tidechain.ledger.access import Audience
from tidechain.ledger.application import Application
from tidechain.ledger.runtime import StateReader
from tidechain.ledger.types import Event


def describe_entry(method: str, args: Mapping[str, Any], events: Sequence[Event]) -> list[str]:
    """What a deposit's entry proves, for `tide verify`."""
    digest = args.get("digest")
    lines = [f"digest: {digest.hex() if isinstance(digest, bytes) else digest}"]
    if method == "amend":
        lines.append(f"amends: deposit {args.get('of')}")
    for key, value in sorted((args.get("meta") or {}).items()):
        lines.append(f"meta {key}: {value}")
    return lines


def record_audience(state: StateReader, log_index: int, method: str,
                    args: Mapping[str, Any], ok: bool) -> Audience | None:
    """Who an evidence entry is about: the parties of the deposit it made (deposit,
    amend) or acts on (sign, publish) as its record now stands, so that co-signers read
    the entries that prove a co-signed deposit and anyone reads a published one. A
    refused call is its sender's business alone."""
    if not ok:
        return None
    of = log_index if method in ("deposit", "amend") else args.get("of")
    if not isinstance(of, int) or isinstance(of, bool) or of < 0:
        return None
    return _deposit_audience(state, of)


def _deposit_audience(state: StateReader, index: int) -> Audience | None:
    """The parties of deposit `index` as its record now stands (None: no such deposit):
    the rule the queries apply to their items (`queries.depositor_audience`)."""
    record = get_deposit(state, index)
    if record is None:
        return None
    return queries.depositor_audience(queries.deposit_from_record(record, 0))


def state_audience(state: StateReader, key: bytes) -> Audience | None:
    """Who may fetch the state proof of an evidence record: its parties (a co-signed
    deposit's pending or lapsed status is proven by its record)."""
    if len(key) != 9 or not key.startswith(b"i"):
        return None
    return _deposit_audience(state, int.from_bytes(key[1:], "big"))


APP = Application(
    name=NAME,
    summary="Evidence deposit: anchor SHA-256 digests of documents; amend by linking.",
    contracts=(CONTRACT, CONTRACT_V2),
    queries=QUERIES,
    index_rule=index_rule,
    index_rows_from_result=index_rows_from_result,
    describe_entry=describe_entry,
    find=find,
    record_audience=record_audience,
    state_audience=state_audience,
)

__all__ = [
    "AMENDS_INDEX",
    "APP",
    "CONTRACT",
    "CONTRACT_V2",
    "DIGEST_BYTES",
    "DIGEST_INDEX",
    "NAME",
    "QUERIES",
    "AmendArgs",
    "Deposit",
    "DepositArgs",
    "check_digest",
    "check_of",
    "decode_record",
    "deposit",
    "get_deposit",
    "index_rule",
    "queries",
    "record_key",
    "validate_meta",
]
