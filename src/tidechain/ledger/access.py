"""Who may read what: the read-access rules every edge enforces (ADR 0015).

A reader is a member proven by a signature or a certificate (the API shell finds out
which, `api/access.py`), with the roles its enrolled certificate carries, or nobody
(anonymous). The rules are pure and read only what they are given:

* a query declared `public` answers anyone;
* a reader holding one of the query's roles, or the regulator, reads all it answers;
* otherwise, where the query declares an `audience` (who each item is about), the
  reader sees the items it is a party to, and anyone sees the items made public; a
  single item that is hidden answers exactly like one that does not exist, so no
  answer tells whether a hidden record is there;
* a log entry is read by the regulator, by the roles its application declares
  (`Application.readers`), by its sender, and by the parties its application names
  (`Application.entry_audience`).

Every refusal is typed: `Unauthenticated` (401) when there is no credential,
`ReadForbidden` (403) naming the roles that would do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidechain.core.errors import NotFound, Rejected
from tidechain.identity.roles import Role
from tidechain.ledger.types import Event, LogEntry

CREDENTIALS_HINT = ("sign the request with your member key (RFC 9421 HTTP Message "
                    "Signatures) or present your member certificate over mutual TLS; "
                    "see docs/access.md")


class Unauthenticated(Rejected):
    """No credential, or one that does not prove a member in good standing (401)."""

    code = "unauthenticated"
    http_status = 401


class ReadForbidden(Rejected):
    """A member in good standing without a role that reads this (403)."""

    code = "forbidden"
    http_status = 403


@dataclass(frozen=True)
class Reader:
    """Who asks: a member's key with its roles, or nobody (`key` None)."""

    key: bytes | None
    roles: frozenset[Role] = frozenset()
    org: str | None = None
    """The reader's organisation: a record may name its parties by organisation and
    role (a co-signed deposit's slots)."""

    @property
    def anonymous(self) -> bool:
        return self.key is None

    def holds_any(self, roles: frozenset[Role]) -> bool:
        """Whether this reader reads everything that `roles` read: the regulator always."""
        return Role.REGULATOR in self.roles or not self.roles.isdisjoint(roles)


ANONYMOUS = Reader(None)


@dataclass(frozen=True)
class Audience:
    """Who one record is about: its parties (member keys), or everyone if public."""

    parties: frozenset[bytes] = frozenset()
    public: bool = False
    org_roles: frozenset[tuple[str, Role]] = frozenset()
    """Parties named by organisation and role: any member of that organisation holding
    that role."""
    orgs: frozenset[str] = frozenset()
    """Parties named by organisation alone: any member of it (a traceability event's
    capturing organisation and the owners of the parties it names)."""

    def admits(self, reader: Reader) -> bool:
        if self.public:
            return True
        if reader.key is None:
            return False
        return reader.key in self.parties or (reader.org is not None
                                              and reader.org in self.orgs) or any(
            org == reader.org and role in reader.roles for org, role in self.org_roles)


ItemAudience = Callable[[Any], Audience]
"""audience(item) -> Audience: who an item of a query's answer is about."""

EntryAudience = Callable[[str, Mapping[str, Any], Sequence[Event]], Audience]
"""entry_audience(method, args, events) -> the parties of a log entry beyond its sender."""


def role_names(roles: Iterable[Role]) -> str:
    return ", ".join(sorted({r.value for r in roles} | {Role.REGULATOR.value}))


def refusal(reader: Reader, what: str, roles: frozenset[Role], *,
            parties: bool = False) -> Rejected:
    """The refusal of `what` to `reader`: 401 when anonymous, else 403 naming the roles.
    It names no record, so it reads the same whether or not the record exists."""
    if reader.anonymous:
        return Unauthenticated(f"{what} is members-only: {CREDENTIALS_HINT}")
    party = " or be a party to the record" if parties else ""
    held = ", ".join(sorted(r.value for r in reader.roles)) or "none"
    return ReadForbidden(f"{what} needs one of the roles {role_names(roles)}{party}; "
                         f"your roles: {held}")


def entry_visible(entry: LogEntry, reader: Reader, readers: frozenset[Role] | None,
                  audience: EntryAudience | None) -> bool:
    """Whether `reader` may read log entry `entry` of an application whose entries
    `readers` read (None: no application serves that contract: the regulator only)."""
    if Role.REGULATOR in reader.roles:
        return True
    if reader.key is None and audience is None:
        return False
    if readers is not None and reader.holds_any(readers):
        return True
    body = entry.tx.body
    if reader.key is not None and body.sender == reader.key:
        return True
    if audience is None:
        return False
    events = entry.result.events if entry.result.ok else ()
    return audience(body.method, body.args, events).admits(reader)


def entry_refusal(reader: Reader, what: str) -> Rejected:
    """What a caller gets for an entry it may not read, or that does not exist."""
    if reader.anonymous:
        return Unauthenticated(f"{what}: not found, or members-only: {CREDENTIALS_HINT}")
    return NotFound(f"{what}: not found, or not yours to read (an entry is read by its "
                    "sender, its parties, its application's reader roles and the "
                    "regulator)")
