"""Who may read a traceability event: the alliance's rule (ADR 0018).

An event is read by:

* the organisation that captured it (any of its members);
* the organisations owning the parties its `sourceList` and `destinationList` name,
  found by the GS1 company prefix inside each party's identifier (a PGLN, SGLN or GLN,
  as an EPC URN or a Digital Link) and the prefixes organisations claimed on chain;
* the organisations that captured another event naming one of its business
  transactions (the parties of a purchase order, a despatch advice, an invoice);
* the regulator, which reads everything (`ledger/access.py`).

Everyone else learns nothing from the event's details. A trace walks the whole graph,
so a member tracing an item sees which identifiers are linked and whether one is
recalled, but an event it may not read appears only as a stub (its organisation, type,
time and hash), never its locations, parties, quantities or sensor readings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tidechain.ledger.access import Audience
from tidechain.ledger.runtime import StateReader

from .contract import prefix_owner, transaction_parties
from .identifiers import canonical_id

__all__ = ["company_prefixes", "event_audience"]

_URN_PARTY = re.compile(r"urn:epc:id:(?:pgln|sgln|sgtin|sscc|gdti|grai|giai):([0-9]{6,12})\.")
_DL_KEY = re.compile(r"https?://[^/]+(?:/[^/]+)*?/(414|417|01|00|8003|8004|253)/([0-9]{8,18})")


def company_prefixes(identifier: str) -> Iterator[str]:
    """The GS1 company prefixes an identifier may carry, most exact first: the one an
    EPC URN spells out, or for a Digital Link every length 6-12 of its key's digits
    (a GLN does not say where its prefix ends; claims are looked up for each)."""
    text = identifier.strip()
    urn = _URN_PARTY.match(text)
    if urn is not None:
        yield urn.group(1)
        return
    link = _DL_KEY.match(text)
    if link is None:
        return
    code, digits = link.groups()
    if code in ("01", "00", "8003"):  # a GTIN, SSCC or GRAI starts with a digit not in the prefix
        digits = digits[1:]
    for length in range(12, 5, -1):
        if len(digits) > length:
            yield digits[:length]


def _parties(event: Mapping[str, Any]) -> Iterator[str]:
    for field, key in (("sourceList", "source"), ("destinationList", "destination")):
        for item in event.get(field) or ():
            if isinstance(item, Mapping) and isinstance(item.get(key), str):
                yield item[key]


def _transactions(event: Mapping[str, Any]) -> Iterator[str]:
    for item in event.get("bizTransactionList") or ():
        if isinstance(item, Mapping) and isinstance(item.get("bizTransaction"), str):
            value = canonical_id(item["bizTransaction"])
            if value:
                yield value


def event_audience(state: StateReader, org: str, event: Mapping[str, Any]) -> Audience:
    """The organisations that may read `event`, captured by `org`."""
    orgs = {org}
    for party in _parties(event):
        for prefix in company_prefixes(party):
            owner = prefix_owner(state, prefix)
            if owner is not None:
                orgs.add(owner)
                break
    for transaction in _transactions(event):
        orgs.update(transaction_parties(state, transaction))
    return Audience(orgs=frozenset(orgs))
