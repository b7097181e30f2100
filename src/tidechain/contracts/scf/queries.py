"""The supply-chain finance application's queries over the committed head: look-through
(穿透) for the regulator, and for every party what it holds, issued or funded (ADR 0016).

Who reads: the regulator reads everything (no role reads every certificate besides);
a certificate is about its core enterprise, its holder, the member it was sent to, and
every funder that financed it or an ancestor (`certificate_audience`). A credit line and
the outstanding amounts are about the core enterprise and the funder of its line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from tidechain.contracts.invoice.state import get_invoice
from tidechain.core.errors import NotFound
from tidechain.core.hexcodec import parse_hex
from tidechain.identity.roles import Role
from tidechain.ledger.access import Audience
from tidechain.ledger.application import (
    ChainView,
    NoParams,
    Page,
    PageRequest,
    Query,
    in_key_order,
    key_cursor,
    parse_key_cursor,
)
from tidechain.ledger.runtime import namespaced

from .contract import CEILING_MAX_TIERS
from .state import (
    NAME,
    effective,
    funder_stats,
    get_certificate,
    get_line,
    is_overdue,
    tier_outstanding,
    u64,
)

READERS: frozenset[Role] = frozenset()
"""No role reads every certificate but the regulator (ADR 0016): what a supplier holds
is its business, read by the parties of each certificate."""

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
CertId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a certificate id")]
MAX_LINEAGE = CEILING_MAX_TIERS * 2 + 2
"""Certificates a lineage walks at most before it skips to the root. A part's tier grows
by one per split, but a remainder keeps its tier and is the child of the certificate
split: a holder that splits off one part after another makes a chain of remainders as
long as it likes (one block per split), so the walk is bounded here, not by the tiers."""


class Financing(msgspec.Struct, frozen=True):
    funder: str
    seller: str
    price: int
    rate_bp: int
    days: int
    ref: str
    time: int


class Settlement(msgspec.Struct, frozen=True):
    to: str
    ref: str
    time: int


class Background(msgspec.Struct, frozen=True):
    """The trade background of a root: the supply contract's SHA-256 and the e-invoices
    backing it (number, fen backed). `flagged` lists those reversed by a red-letter
    invoice since the issue (a reversal before it only lowered what they could back):
    every certificate under the root shows it."""

    contract: str
    invoices: list[tuple[str, int]]
    flagged: list[str]


class Certificate(msgspec.Struct, frozen=True):
    """A certificate as of the head: `status` is its effective status (a transfer
    unaccepted at maturity is back with its sender; an issue unaccepted at maturity has
    lapsed), `overdue` whether it is unpaid past maturity."""

    id: int
    root: int
    parent: int | None
    tier: int
    core: str
    amount: int
    maturity: int
    holder: str
    pending: str | None
    status: str
    overdue: bool
    flagged: bool
    finance_requested_from: str | None
    financings: list[Financing]
    funders: list[str]
    settled: Settlement | None
    children: list[int]
    issued: int
    tx: str


class Lineage(msgspec.Struct, frozen=True):
    """A certificate and its ancestors up to the root (first: the one asked for, last:
    the root), with the root's trade background. Past MAX_LINEAGE certificates the chain
    skips to the root (the one before the root is then not its child)."""

    chain: list[Certificate]
    background: Background


class Outstanding(msgspec.Struct, frozen=True):
    """A core enterprise's credit line and what it has outstanding, in total and per
    tier (tier 1: held by its direct suppliers)."""

    core: str
    limit: int
    outstanding: int
    funder: str | None
    by_tier: list[tuple[int, int]]


class FunderTotals(msgspec.Struct, frozen=True):
    funder: str
    count: int
    face: int
    price: int


class IdParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: CertId


class MemberParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    member: Hex32


class CoreParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    core: Hex32


class DueParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    core: Hex32
    at: Annotated[int, msgspec.Meta(ge=0, le=2**62, description=(
        "as of this time, ms since the epoch (default: the head block's time)"))] | None = None


class FunderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    funder: Hex32


def _key(text: str, what: str) -> bytes:
    return parse_hex(text, 32, what)


def _background(view: ChainView, root: dict[str, Any]) -> Background:
    invoices = [(str(n), int(fen)) for n, fen in root["background"]["invoices"]]
    at_issue: dict[str, int] = root["background"].get("reversed", {})
    flagged = []
    for number, _ in invoices:
        invoice = get_invoice(view.state, number)
        if invoice is not None and invoice["reversed"] > at_issue.get(number, 0):
            flagged.append(number)
    return Background(bytes(root["background"]["contract"]).hex(), invoices, flagged)


def certificate_of(view: ChainView, record: dict[str, Any],
                   root: dict[str, Any] | None = None) -> Certificate:
    status, holder = effective(record, view.time_ms)
    if root is None:
        root = record if record["parent"] is None else get_certificate(view.state,
                                                                        record["root"])
    flagged = root is not None and bool(_background(view, root).flagged)
    request = record["finance"]
    settled = record["settled"]
    pending = record["pending"] if status == "pending" else None
    return Certificate(
        id=record["id"], root=record["root"], parent=record["parent"], tier=record["tier"],
        core=bytes(record["core"]).hex(), amount=record["amount"],
        maturity=record["maturity"], holder=holder.hex(),
        pending=None if pending is None else bytes(pending).hex(), status=status,
        overdue=is_overdue(record, view.time_ms), flagged=flagged,
        finance_requested_from=None if request is None else bytes(request["funder"]).hex(),
        financings=[Financing(bytes(f["funder"]).hex(), bytes(f["from"]).hex(), f["price"],
                              f["rate_bp"], f["days"], f["ref"], f["time"])
                    for f in record["financings"]],
        funders=[bytes(f).hex() for f in record["funders"]],
        settled=None if settled is None else Settlement(bytes(settled["to"]).hex(),
                                                        settled["ref"], settled["time"]),
        children=list(record["children"]), issued=record["issued"],
        tx=bytes(record["tx"]).hex())


def certificate_audience(cert: Certificate) -> Audience:
    """A certificate is about its core enterprise, its holder, the member it was sent
    to, the funder asked to finance it, and every funder that financed it (or an
    ancestor: a funder follows what it paid for down the splits)."""
    keys = {cert.core, cert.holder, *cert.funders}
    keys |= {f.seller for f in cert.financings}
    if cert.pending is not None:
        keys.add(cert.pending)
    if cert.finance_requested_from is not None:
        keys.add(cert.finance_requested_from)
    if cert.settled is not None:
        keys.add(cert.settled.to)
    return Audience(frozenset(bytes.fromhex(k) for k in keys))


def lineage_audience(lineage: Lineage) -> Audience:
    """The lineage is read by whoever may read the certificate asked for."""
    return certificate_audience(lineage.chain[0])


def outstanding_audience(found: Outstanding) -> Audience:
    keys = {found.core} | ({found.funder} if found.funder is not None else set())
    return Audience(frozenset(bytes.fromhex(k) for k in keys))


def funder_audience(found: FunderTotals) -> Audience:
    return Audience(frozenset({bytes.fromhex(found.funder)}))


def _load(view: ChainView, cert_id: int) -> dict[str, Any]:
    record = get_certificate(view.state, cert_id)
    if record is None:
        raise NotFound(f"no certificate {cert_id}")
    return record


# --- the queries -------------------------------------------------------------------------------


def certificate(view: ChainView, params: IdParams) -> Certificate:
    return certificate_of(view, _load(view, params.id))


def lineage(view: ChainView, params: IdParams) -> Lineage:
    """The tree back to the issue: the certificate, its parent, ..., the root."""
    record = _load(view, params.id)
    chain = [record]
    while chain[-1]["parent"] is not None and len(chain) < MAX_LINEAGE:
        chain.append(_load(view, chain[-1]["parent"]))
    if chain[-1]["parent"] is not None:  # a long chain of remainders: skip to the root
        chain.append(_load(view, record["root"]))
    root = chain[-1]
    return Lineage([certificate_of(view, r, root) for r in chain], _background(view, root))


def _marked(view: ChainView, prefix: bytes, page: PageRequest) -> Page[Certificate]:
    """The certificates whose ids end the marker keys under `prefix`."""

    def load(rest: bytes, _: bytes) -> Certificate | None:
        record = get_certificate(view.state, int.from_bytes(rest[-8:], "big"))
        return None if record is None else certificate_of(view, record)

    return in_key_order(view, namespaced(NAME, prefix), page, load)


def held(view: ChainView, params: MemberParams, page: PageRequest) -> Page[Certificate]:
    """The live certificates `member` holds (sent and not yet accepted ones included)."""
    return _marked(view, b"h/" + _key(params.member, "member"), page)


def incoming(view: ChainView, params: MemberParams, page: PageRequest) -> Page[Certificate]:
    """Certificates sent to `member`, awaiting its acceptance."""
    return _marked(view, b"p/" + _key(params.member, "member"), page)


def issued(view: ChainView, params: CoreParams, page: PageRequest) -> Page[Certificate]:
    """The certificates a core enterprise issued (the roots), by id."""
    return _marked(view, b"i/" + _key(params.core, "core"), page)


def tree(view: ChainView, params: IdParams, page: PageRequest) -> Page[Certificate]:
    """Every certificate under root `id` (the root first), with its holder and status:
    who holds what of one issue."""
    return _marked(view, b"r/" + u64(params.id), page)


def financed(view: ChainView, params: FunderParams, page: PageRequest) -> Page[Certificate]:
    """The certificates `funder` financed, with their prices."""
    return _marked(view, b"f/" + _key(params.funder, "funder"), page)


def funder_totals(view: ChainView, params: FunderParams) -> FunderTotals:
    """What a funder financed: how many certificates, their face value and the price."""
    stats = funder_stats(view.state, _key(params.funder, "funder"))
    return FunderTotals(params.funder, stats["count"], stats["face"], stats["price"])


def outstanding(view: ChainView, params: CoreParams) -> Outstanding:
    core = _key(params.core, "core")
    line = get_line(view.state, core)
    if line is None:
        raise NotFound(f"no credit line for {params.core}")
    by_tier = [(tier, fen) for tier in range(1, CEILING_MAX_TIERS + 1)
               if (fen := tier_outstanding(view.state, core, tier))]
    funder = line["funder"]
    return Outstanding(params.core, line["limit"], line["outstanding"],
                       None if funder is None else bytes(funder).hex(), by_tier)


def _matured(view: ChainView, page: PageRequest, *, before_ms: int,
             keep: Callable[[dict[str, Any]], bool]) -> Page[Certificate]:
    """The certificates still open whose maturity is before `before_ms`, earliest first,
    those `keep` accepts: read off the maturity markers, so a page may hold fewer than
    `limit` (and still have a `next`)."""
    prefix = namespaced(NAME, b"m/")
    after = parse_key_cursor(page.cursor)
    found = view.state_page(prefix, None if after is None else prefix + after,
                            page.limit + 1)
    due = [key for key, _ in found
           if int.from_bytes(key[len(prefix):][:8], "big") < before_ms]
    items = []
    for key in due[:page.limit]:
        record = get_certificate(view.state, int.from_bytes(key[-8:], "big"))
        if record is not None and keep(record):
            items.append(certificate_of(view, record))
    more = len(due) > page.limit
    return Page(items, key_cursor(due[page.limit - 1][len(prefix):]) if more else None)


def overdue(view: ChainView, params: NoParams, page: PageRequest) -> Page[Certificate]:
    """Certificates unpaid past maturity, earliest maturity first (an issue that lapsed
    unaccepted is not overdue: it is left out)."""
    return _matured(view, page, before_ms=view.time_ms,
                    keep=lambda record: is_overdue(record, view.time_ms))


def due(view: ChainView, params: DueParams, page: PageRequest) -> Page[Certificate]:
    """What core enterprise `core` has to settle at time `at` (default: the head's
    time; a client about to settle gives its clock, as the next block's time will be at
    least that): its certificates matured by then and still open, an issue that lapsed
    unaccepted included (settling closes it and frees its line)."""
    core = _key(params.core, "core")
    at = view.time_ms if params.at is None else params.at
    return _matured(view, page, before_ms=at + 1,
                    keep=lambda record: bytes(record["core"]) == core)


QUERIES = {
    "certificate": Query(certificate, "one certificate with its effective status, "
                         "financings and settlement", Certificate, IdParams, roles=READERS,
                         audience=certificate_audience),
    "lineage": Query(lineage, "a certificate and its ancestors up to the issue, with the "
                     "trade background (穿透)", Lineage, IdParams, roles=READERS,
                     audience=lineage_audience),
    "held": Query(held, "the live certificates a member holds", Certificate, MemberParams,
                  roles=READERS, paged=True, audience=certificate_audience),
    "incoming": Query(incoming, "certificates sent to a member, awaiting its acceptance",
                      Certificate, MemberParams, roles=READERS, paged=True,
                      audience=certificate_audience),
    "issued": Query(issued, "the certificates a core enterprise issued", Certificate,
                    CoreParams, roles=READERS, paged=True, audience=certificate_audience),
    "tree": Query(tree, "every certificate under one issue: who holds what", Certificate,
                  IdParams, roles=READERS, paged=True, audience=certificate_audience),
    "financed": Query(financed, "the certificates a funder financed, with prices",
                      Certificate, FunderParams, roles=READERS, paged=True,
                      audience=certificate_audience),
    "funder_totals": Query(funder_totals, "a funder's financing volume: count, face value "
                           "and price paid", FunderTotals, FunderParams, roles=READERS,
                           audience=funder_audience),
    "outstanding": Query(outstanding, "a core enterprise's credit line and outstanding "
                         "amount, per tier", Outstanding, CoreParams, roles=READERS,
                         audience=outstanding_audience),
    "due": Query(due, "what a core enterprise has to settle now, earliest maturity first",
                 Certificate, DueParams, roles=READERS, paged=True,
                 audience=certificate_audience),
    "overdue": Query(overdue, "certificates unpaid past maturity", Certificate, NoParams,
                     roles=READERS, paged=True, audience=certificate_audience),
}
