"""Traceability (溯源): a GS1 EPCIS 2.0 repository on the chain. The rules
(`contract.py`), who reads what (`visibility.py`), the event hash (`event_hash.py`),
documents and their events (`document.py`, `epcis_xml.py`, `convert.py`), queries
(`query.py`, `repository.py`), traces (`lineage.py`) and the descriptor, `APP`
(ADR 0013, ADR 0018). The EPCIS REST binding that serves it is `api/epcis.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.core.errors import Rejected
from tidechain.ledger.access import Audience
from tidechain.ledger.application import Application
from tidechain.ledger.runtime import StateReader
from tidechain.ledger.types import Event

from .contract import CONTRACT, NAME, read_capture


def describe_entry(method: str, args: Mapping[str, Any], events: Sequence[Event]) -> list[str]:
    """What a traceability entry proves, for `tide verify`."""
    if method == "capture":
        try:
            event, hash_text = read_capture(args)
        except Rejected as bad:
            return [f"not a readable event: {bad.reason}"]
        lines = [f"EPCIS {event.get('type')} at {event.get('eventTime')}",
                 f"event hash: {hash_text}"]
        document = args.get("document")
        if isinstance(document, bytes):
            lines.append(f"document sha256: {document.hex()} (event {args.get('position')})")
        if "errorDeclaration" in event:
            lines.append("an error declaration of that event")
        return lines
    return [f"GS1 company prefix: {args.get('prefix')}"]


def record_audience(state: StateReader, log_index: int, method: str,
                    args: Mapping[str, Any], ok: bool) -> Audience | None:
    """Who may read a traceability entry: an event's readers (visibility.py); a prefix
    claim is public (who owns a prefix decides who reads events naming it)."""
    from .contract import get_record
    from .visibility import event_audience

    if not ok:
        return None
    if method in ("claim", "release"):
        return Audience(public=True)
    record = get_record(state, log_index)
    if record is None:
        return None
    event, _ = read_capture(args)
    return event_audience(state, str(record["org"]), event)


APP = Application(
    name=NAME,
    summary="Traceability: a GS1 EPCIS 2.0 repository; each event on chain under its "
            "CBV 2.0 event hash.",
    contracts=(CONTRACT,),
    describe_entry=describe_entry,
    record_audience=record_audience,
)

__all__ = ["APP", "CONTRACT", "NAME"]
