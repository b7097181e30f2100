"""Blockchain e-invoices: the tax authority authorises issuers with a quota; an issuer
issues invoices to buyers at the moment of sale and corrects them only by red-letter
invoices; the buyer claims and submits; an employer locks, unlocks or reimburses,
exactly once. docs/invoices.md describes the rules; ADR 0010 the design.

`content.py` checks arguments (shared with clients), `contract.py` holds the methods,
`state.py` the state layout and the queries.
"""

from __future__ import annotations

from tidechain.identity.roles import Role
from tidechain.ledger.application import Application
from tidechain.ledger.runtime import Contract, MethodSpec

from . import contract as _m
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
)

__all__ = ["APP", "CONTRACT", "NAME", "asked_reversal", "get_auditors", "get_invoice",
           "get_issuer", "invoices_of_issuer", "pending_reversal", "period_of", "statistics"]

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
                                       "authorise an issuer {issuer, name, tax_id, quota}"),
        "suspend_issuer": MethodSpec(_m.suspend_issuer, _TAX, "suspend an issuer {issuer}"),
        "set_quota": MethodSpec(_m.set_quota, _TAX, "set an issuer's quota {issuer, quota}"),
        "set_auditors": MethodSpec(_m.set_auditors, _TAX,
                                   "register the audit keys every invoice is sealed to {keys}"),
        "issue": MethodSpec(_m.issue, _ISSUER,
                            "issue a sealed invoice {number, total, holder | claim_digest, "
                            "sealed}"),
        "issue_batch": MethodSpec(_m.issue_batch, _ISSUER,
                                  "issue invoices, all or nothing {invoices}"),
        "red_letter": MethodSpec(_m.red_letter, _ISSUER,
                                 "reverse one's own invoice {number, original, reason, "
                                 "total, sealed}"),
        "request_reversal": MethodSpec(_m.request_reversal, _ISSUER,
                                       "ask the buyer side to confirm a red-letter invoice "
                                       "(same arguments as red_letter)"),
        "ask_reversal": MethodSpec(_m.ask_reversal, _BUYER,
                                   "buyer side: ask the issuer to reverse {original, "
                                   "reason, total}; it confirms by that red-letter invoice"),
        "confirm_reversal": MethodSpec(_m.confirm_reversal, _BUYER,
                                       "confirm a pending reversal within 72 h {original}"),
        "claim": MethodSpec(_m.claim, _BUYER,
                            "claim an invoice as its buyer {number, code, wrapped}"),
        "submit": MethodSpec(_m.submit, _BUYER,
                             "submit a claimed invoice for reimbursement, sharing its "
                             "content key {number, employer, wrapped}"),
        "lock": MethodSpec(_m.lock, _EMPLOYER, "lock a submitted invoice {number}"),
        "unlock": MethodSpec(_m.unlock, _EMPLOYER, "release a locked invoice {number}"),
        "reimburse": MethodSpec(_m.reimburse, _EMPLOYER,
                                "close a locked invoice as paid {number}"),
    },
    description="E-invoices: issue, claim, reimburse once; correct by red-letter invoices.",
)

APP = Application(name=NAME, summary=CONTRACT.description, contracts=(CONTRACT,))
"""The application's descriptor (ADR 0013)."""
