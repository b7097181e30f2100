"""Certificates that expire soon: a pure query over the `members` state.

Operators must renew member certificates and roll CAs before they end, or the chain
starts refusing their members (docs/permissions.md, "When a member counts"). This
module lists the certificates that still matter (the active CAs of registered
organisations, and the members whose CA is active and whose certificate is not
revoked) and picks those that end within a number of days of a given time, or have
ended. The caller chooses the time (the node uses the later of its clock and the head's
block time, as admission does) and reads the state; nothing here reads a clock.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tidechain.contracts import members
from tidechain.identity.certs import MS_PER_DAY, days_until_expiry, read_org_ca
from tidechain.ledger.runtime import StateReader

KIND_ORG_CA = "org_ca"
KIND_MEMBER = "member"
DEFAULT_WARN_DAYS = 30
"""Days ahead a node warns by default (node.toml `cert_warn_days`)."""
MAX_SHOWN = 5
"""Certificates a report shows by name (`soonest`): the status stays small however
many certificates are due; the counts cover the rest."""


@dataclass(frozen=True)
class Certificate:
    """A certificate the chain relies on, with what an operator needs to find it."""

    kind: str  # KIND_ORG_CA or KIND_MEMBER
    org: str
    name: str  # the member's name, or "<org> CA"
    serial: int
    not_after_ms: int
    ident: bytes  # the member's Ed25519 key, or the CA's fingerprint

    @property
    def label(self) -> str:
        """`org/name`, e.g. `acme/alice` or `acme/acme CA`."""
        return f"{self.org}/{self.name}"

    def days_left(self, at_ms: int) -> int:
        """Whole days before notAfter, rounded down; negative once it has passed."""
        return days_until_expiry(self.not_after_ms, at_ms)


def inventory(state: StateReader,
              member_records: Iterable[tuple[bytes, bytes]]) -> tuple[Certificate, ...]:
    """The certificates that count at the head, soonest notAfter first: every active CA
    of every registered organisation, and each member in `member_records` (pairs of
    Ed25519 key and the raw record stored under `members/member/<key>`) whose CA is
    active and whose certificate is not revoked. Expired ones stay listed: they still
    need an operator's attention (renew, or revoke)."""
    found: list[Certificate] = []
    for org_id in members.orgs(state):
        record = members.org(state, org_id)
        if record is not None:
            found.extend(_ca_certificate(org_id, der) for der in record["cas"])
    for public_key, raw in member_records:
        member = members.decode_member(raw)
        # Any time will do: only "revoked" and "ca_removed" are left out here.
        if members.member_status(state, member, 0) in ("revoked", "ca_removed"):
            continue
        found.append(Certificate(KIND_MEMBER, str(member["org"]), str(member["name"]),
                                 int.from_bytes(member["serial"], "big"),
                                 int(member["not_after"]), public_key))
    return tuple(sorted(found, key=lambda c: (c.not_after_ms, c.kind, c.org, c.name,
                                               c.ident)))


@functools.lru_cache(maxsize=256)
def _ca_certificate(org_id: str, der: bytes) -> Certificate:
    """A registered CA's validity and serial, read without a time: the CA may have
    expired since the chain verified it at registration."""
    ca = read_org_ca(der)
    return Certificate(KIND_ORG_CA, org_id, f"{org_id} CA", ca.serial, ca.not_after_ms,
                       ca.fingerprint)


@dataclass(frozen=True)
class ExpiryReport:
    """The certificates that end within `warn_days` days of `at_ms`, or have ended."""

    at_ms: int
    warn_days: int
    checked: int  # certificates looked at
    expired: int  # notAfter before at_ms: refused already
    due: tuple[Certificate, ...]  # expired and expiring, soonest first

    @property
    def expiring(self) -> int:
        """Still valid at `at_ms`, but not for `warn_days` more days."""
        return len(self.due) - self.expired

    def soonest(self, limit: int = MAX_SHOWN) -> tuple[Certificate, ...]:
        return self.due[:limit]


def expiring(certificates: Sequence[Certificate], at_ms: int, warn_days: int) -> ExpiryReport:
    """The report for `certificates` (sorted by notAfter, as `inventory` returns them)
    at `at_ms`: a certificate is due when `notAfter - at_ms <= warn_days` days (the rule
    of `identity.expiry_warning`), expired when `notAfter < at_ms` (the rule of
    `members.authorize`). Two binary searches: cheap enough for every status call."""
    if warn_days < 0:
        raise ValueError(f"warn_days must not be negative, got {warn_days}")
    expired = bisect.bisect_left(certificates, at_ms, key=lambda c: c.not_after_ms)
    end = bisect.bisect_right(certificates, at_ms + warn_days * MS_PER_DAY,
                              key=lambda c: c.not_after_ms)
    return ExpiryReport(at_ms, warn_days, len(certificates), expired,
                        tuple(certificates[:end]))


class WarningSchedule:
    """Which due certificates to log now: each at most once per `repeat_ms` (a day),
    remembered by (kind, ident). Only certificates still due are remembered, so the
    memory is bounded by the certificates on chain."""

    def __init__(self, repeat_ms: int = MS_PER_DAY) -> None:
        self.repeat_ms = repeat_ms
        self._last_ms: dict[tuple[str, bytes], int] = {}

    def take(self, report: ExpiryReport, now_ms: int) -> list[Certificate]:
        """The certificates of `report` to warn about at `now_ms`, marked as warned."""
        due_now: list[Certificate] = []
        still_due: dict[tuple[str, bytes], int] = {}
        for certificate in report.due:
            ident = (certificate.kind, certificate.ident)
            last = self._last_ms.get(ident)
            if last is None or now_ms - last >= self.repeat_ms:
                due_now.append(certificate)
                last = now_ms
            still_due[ident] = last
        self._last_ms = still_due
        return due_now
