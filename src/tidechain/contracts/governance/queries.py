"""The governance application's read-only queries over the committed head: proposals
with their status and tally at the head, and the settings a proposal is judged by."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tidechain.contracts import members
from tidechain.contracts.governance.contract import (
    ALL_INDEX,
    NAME,
    get_proposal,
    status_at,
    tally,
    threshold,
    voting_period_ms,
)
from tidechain.core.errors import NotFound
from tidechain.core.hexcodec import to_json
from tidechain.ledger.application import ChainView, NoParams, Page, PageRequest, Query, newest_first

READERS = members.ADMIN_ONLY
"""Who reads governance: the organisations' admins, who propose and vote (the regulator
reads everything)."""

ProposalId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1,
                                         description="a proposal's id (its log index)")]


class Vote(msgspec.Struct, frozen=True):
    org: str
    key: str
    approve: bool
    height: int


class Tally(msgspec.Struct, frozen=True):
    """The votes of organisations registered now, and how many there are."""

    approvals: int
    rejections: int
    orgs: int


class Proposal(msgspec.Struct, frozen=True):
    """A proposal as stored (byte strings as hex), with its `status` at the head's time
    (`open`, `passed`, `applied`, `failed`, `rejected`, `expired`) and its `tally`."""

    id: int
    action: str
    args: dict[str, Any]
    effective_height: int
    proposer: str
    org: str
    height: int
    time: int
    deadline: int
    votes: list[Vote]
    status: str
    decided_height: int | None
    apply_height: int | None
    reason: str
    effect: dict[str, Any] | None
    tally: Tally


class Settings(msgspec.Struct, frozen=True):
    """What a proposal is judged by now: the passing share [numerator, denominator] of
    the registered organisations, the voting period, at the head's height."""

    threshold: list[int]
    orgs: list[str]
    voting_period_ms: int
    height: int


class ProposalParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: ProposalId




def _proposal(view: ChainView, record: dict[str, Any]) -> Proposal:
    plain: dict[str, Any] = to_json(record)
    approvals, rejections, orgs = tally(view.state, record["votes"])
    plain["status"] = status_at(record, view.time_ms)
    plain["tally"] = {"approvals": approvals, "rejections": rejections, "orgs": orgs}
    return msgspec.convert(plain, Proposal)


def _load(view: ChainView, proposal_id: int) -> Proposal | None:
    record = get_proposal(view.state, proposal_id)
    return None if record is None else _proposal(view, record)


def proposals(view: ChainView, params: NoParams, page: PageRequest) -> Page[Proposal]:
    """Every proposal (open, passed, applied, failed, rejected, expired), newest first."""
    return newest_first(view, f"{NAME}/{ALL_INDEX}", b"", page, lambda i: _load(view, i))


def proposal(view: ChainView, params: ProposalParams) -> Proposal:
    found = _load(view, params.id)
    if found is None:
        raise NotFound(f"no proposal {params.id}")
    return found


def settings(view: ChainView, params: NoParams) -> Settings:
    num, den = threshold(view.state)
    return Settings(threshold=[num, den], orgs=members.orgs(view.state),
                    voting_period_ms=voting_period_ms(view.state), height=view.height)


QUERIES = {
    "proposals": Query(proposals, "governance proposals with their votes, status and tally, "
                       "newest first", Proposal, NoParams, roles=READERS, paged=True),
    "proposal": Query(proposal, "one proposal by id, with its votes, status and tally",
                      Proposal, ProposalParams, roles=READERS),
    "settings": Query(settings, "the passing threshold, the registered organisations and "
                      "the voting period at the head", Settings, NoParams, roles=READERS),
}
