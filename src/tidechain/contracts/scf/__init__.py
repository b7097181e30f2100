"""Supply-chain finance (供应链金融): the application's rules (`contract.py`), its state
layout (`state.py`), its queries (`queries.py`) and its descriptor, `APP` (ADR 0013,
ADR 0016, docs/scf.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.ledger.access import Audience
from tidechain.ledger.application import Application
from tidechain.ledger.types import Event

from . import queries
from .contract import (
    CONTRACT,
    DEFAULT_MAX_MATURITY_MS,
    DEFAULT_MAX_TIERS,
    DEFAULT_MIN_SPLIT_FEN,
    MAX_MATURITY_PARAM,
    MAX_SETTLE_BATCH,
    MAX_SPLIT_PARTS,
    MAX_TIERS_PARAM,
    MIN_SPLIT_PARAM,
    PARAMS,
    days_to_maturity,
    discount_fen,
)
from .queries import QUERIES
from .state import NAME, effective, get_certificate, is_overdue

_KEY_ARGS = ("to", "core", "funder")


def entry_audience(method: str, args: Mapping[str, Any], events: Sequence[Event]) -> Audience:
    """Who an scf entry is about beyond its sender: the members its arguments name (the
    recipient, the core enterprise of a line, the funder asked) and the parts' recipients.
    Tolerant of malformed arguments: a refused call's entry is read by its sender."""
    keys = {args[name] for name in _KEY_ARGS
            if isinstance(args.get(name), bytes) and len(args[name]) == 32}
    parts = args.get("parts")
    if isinstance(parts, list):
        keys |= {p["to"] for p in parts if isinstance(p, dict)
                 and isinstance(p.get("to"), bytes) and len(p["to"]) == 32}
    for event in events:
        for name in ("to", "holder", "from"):
            value = event.data.get(name)
            if isinstance(value, bytes) and len(value) == 32:
                keys.add(value)
    return Audience(frozenset(keys))


def describe_entry(method: str, args: Mapping[str, Any], events: Sequence[Event]) -> list[str]:
    """What an scf entry proves, for `tide verify`."""
    lines = []
    for event in events:
        data = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in event.data.items()}
        lines.append(f"{event.kind}: " + ", ".join(f"{k}={v}" for k, v in sorted(data.items())))
    return lines or [f"scf.{method} (refused)"]


APP = Application(
    name=NAME,
    summary=CONTRACT.description,
    contracts=(CONTRACT,),
    queries=QUERIES,
    describe_entry=describe_entry,
    readers=queries.READERS,
    entry_audience=entry_audience,
)
"""The application's descriptor (ADR 0013)."""

__all__ = [
    "APP",
    "CONTRACT",
    "DEFAULT_MAX_MATURITY_MS",
    "DEFAULT_MAX_TIERS",
    "DEFAULT_MIN_SPLIT_FEN",
    "MAX_MATURITY_PARAM",
    "MAX_SETTLE_BATCH",
    "MAX_SPLIT_PARTS",
    "MAX_TIERS_PARAM",
    "MIN_SPLIT_PARAM",
    "NAME",
    "PARAMS",
    "days_to_maturity",
    "discount_fen",
    "effective",
    "get_certificate",
    "is_overdue",
]
