"""The e-invoice application's read-only queries over the committed head. Nothing here
opens content: invoices are answered sealed, and their readers open them client-side
(client/sealing.py, ADR 0012)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tidechain.core.errors import DecodeError, InvariantViolation, NotFound, Rejected
from tidechain.core.hexcodec import parse_hex, to_json
from tidechain.identity.roles import Role
from tidechain.identity.uscc import validate_uscc
from tidechain.ledger.access import Audience
from tidechain.ledger.application import (
    ChainView,
    NoParams,
    Page,
    PageRequest,
    Query,
    log_cursor,
    parse_log_cursor,
)
from tidechain.ledger.runtime import namespaced

from .content import KEY_BYTES, NUMBER_DIGITS
from .contract import Number
from .state import (
    NAME,
    by_issuer_key,
    get_auditors,
    get_invoice,
    get_issuer,
    pending_reversal,
    statistics,
    tax_id_issuers,
    tax_id_statistics,
)

PARTIES = frozenset({Role.TAX_AUTHORITY})
"""Who reads every invoice record: the tax authority (and the regulator). The parties
of an invoice (its issuer, buyer, employer and sealed readers) read theirs
(`invoice_audience`, ADR 0015). The records are sealed; which member can open one is
in the envelope."""
TAX_READERS = frozenset({Role.TAX_AUTHORITY})
"""Who reads every issuer's statistics: the tax authority; an issuer reads its own."""

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
Month = Annotated[str, msgspec.Meta(pattern="^[0-9]{4}-(0[1-9]|1[0-2])$",
                                    description="a UTC calendar month, YYYY-MM")]
IssuerText = Annotated[str, msgspec.Meta(min_length=1, max_length=2 * KEY_BYTES, description=(
    "a tax id (unified social credit code, 18 characters) or an issuer's member key "
    "(64 hex digits)"))]


class SealedContent(msgspec.Struct, frozen=True, omit_defaults=True):
    """The encrypted content and the content key wrapped to each reader, as hex."""

    ciphertext: str
    nonce: str
    commitment: str
    readers: list[list[str]]
    code_wrap: str | None = None


class InvoiceSummary(msgspec.Struct, frozen=True):
    """An invoice's public fields (amounts in fen; keys as hex): what lists carry."""

    number: str
    kind: str
    issuer: str
    original: str | None
    reason: str | None
    total: int
    state: str
    holder: str | None
    claimed: bool
    submitted_to: str | None
    locked_by: str | None
    reversed: int
    reimbursed: int
    period: str
    time: int
    height: int
    tx: str


class RedLetter(msgspec.Struct, frozen=True):
    number: str
    original: str
    reason: str
    total: int
    sealed: SealedContent


class PendingReversal(msgspec.Struct, frozen=True):
    """A red-letter invoice the issuer asked the buyer side to confirm."""

    red: RedLetter
    issuer: str
    requested_at: int


class Invoice(InvoiceSummary, frozen=True):
    """An invoice with its sealed content and a reversal awaiting confirmation, if any."""

    sealed: SealedContent
    claim_digest: str | None
    pending_reversal: PendingReversal | None


class Auditors(msgspec.Struct, frozen=True):
    """The tax authority's audit keys: every new invoice is sealed to each of them."""

    auditors: list[str]
    height: int


class Statistics(msgspec.Struct, frozen=True):
    """The contract's counters for `month`, in fen: of one issuer key (`issuer`, with
    its `tax_id` if authorised), or of every key under `tax_id` (`issuer` null;
    `issuer_count` keys were ever authorised under it)."""

    month: str
    tax_id: str | None
    issuer: str | None
    issuer_count: int
    issued: int
    issued_count: int
    reversed: int
    reimbursed: int
    height: int


class InvoiceParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    number: Number


class InvoicesParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    issuer: Hex32


class StatsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    month: Month
    issuer: IssuerText




def invoice(view: ChainView, params: InvoiceParams) -> Invoice:
    """An invoice at the head, with a pending reversal request if any."""
    record = get_invoice(view.state, params.number)
    if record is None:
        raise NotFound(f"no invoice {params.number}")
    plain: dict[str, Any] = to_json(record)
    plain["pending_reversal"] = to_json(pending_reversal(view.state, params.number))
    return msgspec.convert(plain, Invoice)


def _summary(view: ChainView, number: str) -> InvoiceSummary:
    record = get_invoice(view.state, number)
    if record is None:
        raise InvariantViolation(f"an issuer's list names invoice {number}, not in state")
    return msgspec.convert(to_json(record), InvoiceSummary)


def invoices(view: ChainView, params: InvoicesParams, page: PageRequest
             ) -> Page[InvoiceSummary]:
    """An issuer's invoices (blue and red), newest first: its own list in state
    (`by/<issuer><n>`, in issue order), read backwards. An invoice has no log position
    of its own (a batch issues twelve in one transaction), so the cursor is a position
    in that list."""
    issuer = parse_hex(params.issuer, KEY_BYTES, "issuer")
    record = get_issuer(view.state, issuer)
    count = 0 if record is None else int(record["count"])
    below = parse_log_cursor(page.cursor)
    start = count if below is None else min(below, count)
    seqs = range(start - 1, max(start - 1 - page.limit, -1), -1)
    items = []
    for seq in seqs:
        raw = view.state.get(namespaced(NAME, by_issuer_key(issuer, seq)))
        if raw is None:
            raise InvariantViolation("an issuer's invoice list has a gap")
        items.append(_summary(view, raw.decode("ascii")))
    last = seqs[-1] if seqs else 0
    return Page(items, log_cursor(last) if last > 0 else None)


def auditors(view: ChainView, params: NoParams) -> Auditors:
    return Auditors([key.hex() for key in get_auditors(view.state)], view.height)


def stats(view: ChainView, params: StatsParams) -> Statistics:
    """The month's counters of an issuer key, or of a tax id: both are counters the
    contract keeps, each one read."""
    if len(params.issuer) == 2 * KEY_BYTES:
        key = parse_hex(params.issuer, KEY_BYTES, "issuer")
        record = get_issuer(view.state, key)
        counters = statistics(view.state, key, params.month)
        return Statistics(month=params.month,
                          tax_id=None if record is None else str(record["tax_id"]),
                          issuer=key.hex(), issuer_count=0 if record is None else 1,
                          **counters, height=view.height)
    try:
        tax_id = validate_uscc(params.issuer)
    except Rejected as exc:
        raise DecodeError(f"issuer must be a tax id (USCC) or a 64-hex key: "
                          f"{exc.reason}") from None
    issuers = tax_id_issuers(view.state, tax_id)
    if not issuers:
        raise NotFound(f"no issuer authorised under tax id {tax_id}")
    return Statistics(month=params.month, tax_id=tax_id, issuer=None, issuer_count=issuers,
                      **tax_id_statistics(view.state, tax_id, params.month),
                      height=view.height)


def _keys(*hexes: str | None) -> frozenset[bytes]:
    return frozenset(bytes.fromhex(h) for h in hexes if h)


def invoice_audience(invoice: InvoiceSummary) -> Audience:
    """An invoice is about its issuer, its buyer, the employer it was submitted to or
    locked by, and (for the sealed record) every member it is sealed to."""
    parties = _keys(invoice.issuer, invoice.holder, invoice.submitted_to, invoice.locked_by)
    if isinstance(invoice, Invoice):
        parties |= _keys(*(reader[0] for reader in invoice.sealed.readers))
    return Audience(parties)


def stats_audience(stats: Statistics) -> Audience:
    """An issuer key's own counters are its own; a tax id's totals are the tax
    authority's."""
    return Audience(_keys(stats.issuer) if stats.issuer is not None else frozenset())


QUERIES = {
    "invoice": Query(invoice, "one invoice by its 20-digit number, sealed, with a pending "
                     "reversal request", Invoice, InvoiceParams, roles=PARTIES,
                     audience=invoice_audience),
    "invoices": Query(invoices, "an issuer's invoices (blue and red), newest first",
                      InvoiceSummary, InvoicesParams, roles=PARTIES, paged=True,
                      audience=invoice_audience),
    "auditors": Query(auditors, "the audit keys every new invoice is sealed to", Auditors,
                      NoParams, public=True),
    "stats": Query(stats, "a month's counters of an issuer key or of a tax id (fen)",
                   Statistics, StatsParams, roles=TAX_READERS,
                   audience=stats_audience),
}


def find(view: ChainView, text: str) -> list[tuple[str, str, str]]:
    """An invoice number, for the API's search."""
    if len(text) != NUMBER_DIGITS or not (text.isascii() and text.isdigit()):
        return []
    if get_invoice(view.state, text) is None:
        return []
    return [("invoice", text, f"/v1/apps/{NAME}/invoice?number={text}")]
