"""The membership application's read-only queries over the committed head: the
organisations with their CAs, and the members with their standing at the head's time."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tidechain.contracts.members.contract import (
    ADMIN_ONLY,
    NAME,
    SERIAL_BYTES,
    decode_member,
    member_key,
    member_of,
    member_status,
    org,
    org_key,
    parse_fingerprint,
)
from tidechain.core import cbor
from tidechain.core.errors import NotFound, invariant
from tidechain.core.hexcodec import parse_hex
from tidechain.core.limits import MAX_NAME_BYTES
from tidechain.ledger.access import Audience
from tidechain.ledger.application import ChainView, NoParams, Page, PageRequest, Query, in_key_order
from tidechain.ledger.runtime import namespaced

READERS = ADMIN_ONLY
"""Who reads membership: the organisations' admins (the regulator reads everything)."""

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
OrgId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_BYTES,
                                    description="an organisation id")]


class Organisation(msgspec.Struct, frozen=True):
    """A registered organisation and the fingerprints of its active CAs."""

    org: str
    legal_name: str
    uscc: str
    cas: list[str]


class Member(msgspec.Struct, frozen=True):
    """An enrolled member: its certificate's facts and its `status` at the head's time
    (`active`, `expired`, `revoked` or `ca_removed`). `enrolled` is the log index of
    the transaction that enrolled it (null: the genesis)."""

    key: str
    org: str
    name: str
    roles: list[str]
    ca: str
    serial: int
    not_before: int
    not_after: int
    enrolled: int | None
    status: str


def member_audience(member: Member) -> Audience:
    """A member reads its own record (its status, its roles) without the admin role."""
    return Audience(frozenset({bytes.fromhex(member.key)}))


class OrgParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    org: OrgId


class MemberParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: Hex32




def _organisation(record: dict[str, Any]) -> Organisation:
    return Organisation(org=record["id"], legal_name=record["legal_name"],
                        uscc=record["uscc"],
                        cas=[parse_fingerprint(der).hex() for der in record["cas"]])


def _member(view: ChainView, public_key: bytes, record: dict[str, Any]) -> Member:
    serial = record["serial"]
    invariant(isinstance(serial, bytes) and len(serial) == SERIAL_BYTES,
              "member record with a malformed serial")
    return Member(key=public_key.hex(), org=record["org"], name=record["name"],
                  roles=list(record["roles"]), ca=record["ca"].hex(),
                  serial=int.from_bytes(serial, "big"), not_before=record["not_before"],
                  not_after=record["not_after"], enrolled=record["enrolled"],
                  status=member_status(view.state, record, view.time_ms))


def orgs(view: ChainView, params: NoParams, page: PageRequest) -> Page[Organisation]:
    """The registered organisations, in the order of their ids."""
    def load(_: bytes, raw: bytes) -> Organisation:
        value = cbor.decode(raw)
        invariant(isinstance(value, dict), "corrupt org record in state")
        return _organisation(value)

    return in_key_order(view, namespaced(NAME, org_key("")), page, load)


def organisation(view: ChainView, params: OrgParams) -> Organisation:
    record = org(view.state, params.org)
    if record is None:
        raise NotFound(f"no organisation {params.org[:MAX_NAME_BYTES]!r}")
    return _organisation(record)


def members(view: ChainView, params: OrgParams, page: PageRequest) -> Page[Member]:
    """The members of one organisation, in the order of their keys. Members are kept by
    key (what the permission check reads), so this walks every member in key order and
    keeps those of `org`: a page may hold fewer than `limit`, and still has a `next`."""
    if org(view.state, params.org) is None:
        raise NotFound(f"no organisation {params.org[:MAX_NAME_BYTES]!r}")

    def load(public_key: bytes, raw: bytes) -> Member | None:
        record = decode_member(raw)
        return _member(view, public_key, record) if record["org"] == params.org else None

    return in_key_order(view, namespaced(NAME, member_key(b"")), page, load)


def member(view: ChainView, params: MemberParams) -> Member:
    public_key = parse_hex(params.key, 32, "key")
    record = member_of(view.state, public_key)
    if record is None:
        raise NotFound(f"no member with key {params.key}")
    return _member(view, public_key, record)


QUERIES = {
    "orgs": Query(orgs, "the registered organisations with their CAs, by id", Organisation,
                  NoParams, roles=READERS, paged=True),
    "org": Query(organisation, "one organisation with its active CAs", Organisation,
                 OrgParams, roles=READERS),
    "members": Query(members, "the members of organisation `org`, by key, with their "
                     "status at the head", Member, OrgParams, roles=READERS, paged=True,
                     audience=member_audience),
    "member": Query(member, "one member by its Ed25519 key, with its status at the head",
                    Member, MemberParams, roles=READERS, audience=member_audience),
}


def find(view: ChainView, text: str) -> list[tuple[str, str, str]]:
    """A member key, for the API's search."""
    if len(text) != 64:
        return []
    try:
        public_key = bytes.fromhex(text)
    except ValueError:
        return []
    if member_of(view.state, public_key) is None:
        return []
    key = text.lower()
    return [("member", key, f"/v1/apps/{NAME}/member?key={key}")]
