"""Blockchain e-invoices: the tax authority authorises issuers with a quota; an issuer
issues invoices to buyers at the moment of sale and corrects them only by red-letter
invoices; the buyer claims and submits; an employer locks, unlocks or reimburses,
exactly once. docs/invoices.md describes the rules; ADR 0010 the design.

`content.py` checks arguments (shared with clients), `contract.py` holds the methods
and their argument types, `state.py` the state layout and reading it back, `queries.py`
the application's queries; `APP` below is its descriptor (ADR 0013).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.identity.roles import Role
from tidechain.ledger.access import Audience
from tidechain.ledger.application import Application
from tidechain.ledger.runtime import Contract, MethodSpec
from tidechain.ledger.types import Event

from . import contract as _m
from . import queries
from .content import KEY_BYTES
from .queries import QUERIES, find
from .state import (
    NAME,
    asked_reversal,
    get_auditors,
    get_invoice,
    get_issuer,
    invoices_of_issuer,
    pending_reversal,
    period_of,
    statistics,
    tax_id_issuers,
    tax_id_statistics,
)

__all__ = ["APP", "CONTRACT", "NAME", "QUERIES", "asked_reversal", "find", "get_auditors",
           "get_invoice", "get_issuer", "invoices_of_issuer", "pending_reversal", "period_of",
           "queries", "statistics", "tax_id_issuers", "tax_id_statistics"]

_TAX = frozenset({Role.TAX_AUTHORITY})
_ISSUER = frozenset({Role.INVOICE_ISSUER})
# A buyer is a person or a company: persons are enrolled as depositors (their own
# documents), companies as enterprises. Which buyer, is the contract's check.
_BUYER = frozenset({Role.DEPOSITOR, Role.ENTERPRISE})
# The reimbursing employer is an enterprise; which one, is the contract's check.
_EMPLOYER = frozenset({Role.ENTERPRISE})

CONTRACT = Contract(
    name=NAME,
    methods={
        "authorise_issuer": MethodSpec(_m.authorise_issuer, _TAX,
                                       "authorise an issuer {issuer, name, tax_id, quota}",
                                       _m.AuthoriseIssuerArgs),
        "suspend_issuer": MethodSpec(_m.suspend_issuer, _TAX, "suspend an issuer {issuer}",
                                     _m.IssuerArgs),
        "set_quota": MethodSpec(_m.set_quota, _TAX, "set an issuer's quota {issuer, quota}",
                                _m.SetQuotaArgs),
        "set_auditors": MethodSpec(_m.set_auditors, _TAX,
                                   "register the audit keys every invoice is sealed to {keys}",
                                   _m.SetAuditorsArgs),
        "issue": MethodSpec(_m.issue, _ISSUER,
                            "issue a sealed invoice {number, total, holder | claim_digest, "
                            "sealed}", _m.IssueArgs),
        "issue_batch": MethodSpec(_m.issue_batch, _ISSUER,
                                  "issue invoices, all or nothing {invoices}", _m.IssueBatchArgs),
        "red_letter": MethodSpec(_m.red_letter, _ISSUER,
                                 "reverse one's own invoice {number, original, reason, "
                                 "total, sealed}", _m.RedLetterArgs),
        "request_reversal": MethodSpec(_m.request_reversal, _ISSUER,
                                       "ask the buyer side to confirm a red-letter invoice "
                                       "(same arguments as red_letter)", _m.RedLetterArgs),
        "ask_reversal": MethodSpec(_m.ask_reversal, _BUYER,
                                   "buyer side: ask the issuer to reverse {original, "
                                   "reason, total}; it confirms by that red-letter invoice",
                                   _m.AskReversalArgs),
        "confirm_reversal": MethodSpec(_m.confirm_reversal, _BUYER,
                                       "confirm a pending reversal within 72 h {original}",
                                       _m.OriginalArgs),
        "claim": MethodSpec(_m.claim, _BUYER,
                            "claim an invoice as its buyer {number, code, wrapped}",
                            _m.ClaimArgs),
        "submit": MethodSpec(_m.submit, _BUYER,
                             "submit a claimed invoice for reimbursement, sharing its "
                             "content key {number, employer, wrapped}", _m.SubmitArgs),
        "lock": MethodSpec(_m.lock, _EMPLOYER, "lock a submitted invoice {number}",
                           _m.NumberArgs),
        "unlock": MethodSpec(_m.unlock, _EMPLOYER, "release a locked invoice {number}",
                             _m.NumberArgs),
        "reimburse": MethodSpec(_m.reimburse, _EMPLOYER,
                                "close a locked invoice as paid {number}", _m.NumberArgs),
    },
    description="E-invoices: issue, claim, reimburse once; correct by red-letter invoices.",
)

def entry_audience(method: str, args: Mapping[str, Any],
                   events: Sequence[Event]) -> Audience:
    """Who an invoice entry is about beyond its sender: every member a sealed envelope
    in it is sealed to (issuer, buyer, employer, auditors), and the buyer it names.
    Tolerant of malformed arguments: a refused call's entry is read by its sender."""
    keys: set[bytes] = set()

    def walk(value: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(value, dict):
            readers = value.get("readers")
            if isinstance(readers, list):
                keys.update(r[0] for r in readers if isinstance(r, list) and len(r) == 2
                            and isinstance(r[0], bytes) and len(r[0]) == KEY_BYTES)
            for name in ("holder", "buyer"):
                if isinstance(value.get(name), bytes) and len(value[name]) == KEY_BYTES:
                    keys.add(value[name])
            for inner in value.values():
                walk(inner, depth + 1)

    walk(dict(args), 0)
    return Audience(frozenset(keys))


APP = Application(name=NAME, summary=CONTRACT.description, contracts=(CONTRACT,),
                  queries=QUERIES, find=find, readers=queries.PARTIES,
                  entry_audience=entry_audience)
"""The application's descriptor (ADR 0013)."""
