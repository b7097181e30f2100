"""What an EPCIS event names, and one spelling per thing named.

An item has two standard names: an EPC URN (`urn:epc:id:sgtin:0614141.107346.2017`)
and a GS1 Digital Link URI (`https://id.gs1.org/01/00614141073467/21/2017`). CBV 2.0
hashes both as the canonical Digital Link, and tidechain matches, indexes and traces
them the same way: `canonical_id` is that one spelling (an identifier without a GS1
key keeps its own form, trimmed). Pure: the contract files state keys under these
spellings, and queries and traces look them up the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from .event_hash import canonical_digital_link, epc_to_digital_link

__all__ = ["ROLES", "canonical_id", "event_identifiers"]

INSTANCE_ROLES: Final = ("epc", "parent", "child", "input", "output")
CLASS_ROLES: Final = ("quantity", "child-class", "input-class", "output-class")
ROLES: Final = INSTANCE_ROLES + CLASS_ROLES
"""How an event names an identifier: `epc` (epcList), `parent` (parentID), `child`
(childEPCs), `input`/`output` (a transformation's EPC lists), and the class-level
(quantity) forms of each list."""

_FIELDS: Final = (
    ("epcList", "epc", False),
    ("childEPCs", "child", False),
    ("inputEPCList", "input", False),
    ("outputEPCList", "output", False),
    ("quantityList", "quantity", True),
    ("childQuantityList", "child-class", True),
    ("inputQuantityList", "input-class", True),
    ("outputQuantityList", "output-class", True),
)


def canonical_id(text: str) -> str:
    """The one spelling of an identifier: the canonical GS1 Digital Link for an EPC URN,
    EPC class or pattern URI, or Digital Link with a GS1 key; otherwise `text` trimmed."""
    text = text.strip()
    if text.startswith("urn:epc:"):
        return epc_to_digital_link(text) or text
    if text[:8].lower().startswith(("http://", "https://")):
        return canonical_digital_link(text) or text
    return text


def event_identifiers(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(role, canonical identifier) for every identifier the event names, in field
    order, repeats included. Malformed members are skipped: the schema has refused them
    before an event gets here, and the hash refuses what it cannot read."""
    parent = event.get("parentID")
    if isinstance(parent, str) and parent.strip():
        yield "parent", canonical_id(parent)
    for field, role, by_class in _FIELDS:
        members = event.get(field)
        if not isinstance(members, list):
            continue
        for member in members:
            if by_class:
                member = member.get("epcClass") if isinstance(member, Mapping) else None
            if isinstance(member, str) and member.strip():
                yield role, canonical_id(member)
