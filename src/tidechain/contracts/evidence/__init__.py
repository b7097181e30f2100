"""Evidence deposit (存证): the application's rules (`contract.py`), its queries
(`queries.py`) and its descriptor, `APP` (ADR 0013)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.contracts.evidence import queries
from tidechain.contracts.evidence.contract import (
    AMENDS_INDEX,
    CONTRACT,
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
from tidechain.ledger.application import Application
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


APP = Application(
    name=NAME,
    summary="Evidence deposit: anchor SHA-256 digests of documents; amend by linking.",
    contracts=(CONTRACT,),
    queries=QUERIES,
    index_rule=index_rule,
    index_rows_from_result=index_rows_from_result,
    describe_entry=describe_entry,
    find=find,
)

__all__ = [
    "AMENDS_INDEX",
    "APP",
    "CONTRACT",
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
