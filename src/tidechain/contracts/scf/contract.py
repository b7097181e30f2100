"""Supply-chain finance (供应链金融): digital receivable certificates (应收账款电子凭证)
issued by a core enterprise within the credit line a bank gave it, split and passed
down the tiers of its suppliers, financed at a bank, and settled at maturity.

The rules, one function each (docs/scf.md, ADR 0016):

* **Credit line (授信).** A funder sets a core enterprise's line; certificates
  outstanding from that enterprise never exceed it, and a line is never set below
  what is outstanding.
* **Issue (开立).** The core enterprise issues a certificate to a supplier: a face value
  in fen, a maturity within the governed term (6 months by default, never over a
  year), the SHA-256 of the supply contract and the e-invoices on this chain that the
  supplier's organisation issued to the core enterprise's. An invoice backs
  certificates up to its total and never twice over. The trade documents never go on
  chain.
* **Accept or refuse (签收 / 拒签).** The recipient accepts or refuses; an unaccepted
  certificate cannot move. A refused issue closes (the line and the invoices are
  freed); a refused transfer returns to its sender; so does one unaccepted at maturity.
* **Split and transfer (拆分 / 多级流转).** The holder splits a certificate into parts for
  its own suppliers, each at least the governed minimum, within the governed number
  of tiers; the parent is consumed and its children (a remainder child kept by the
  holder included) always sum to it.
* **Finance (融资 / 贴现).** The holder asks a funder at a yearly rate in basis points; the
  certificate is frozen until the funder approves (recording the price and the
  off-chain payment reference, and becoming the holder) or declines. The discount on
  N fen for D days (whole days to maturity, rounded up) at R bp a year is
  floor(N * R * D / (10,000 * 365)) fen: rounded down, in the holder's favour.
* **Settle (兑付).** From maturity the core enterprise settles: each live certificate's
  holder is recorded as paid its face value with the payment reference, and it
  closes. A certificate unpaid after maturity is overdue.

Integer arithmetic only. A refused call changes nothing (the runtime discards a failed
call's writes).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec

from tidechain.contracts import members
from tidechain.contracts.invoice.state import get_invoice
from tidechain.core import cbor
from tidechain.core.crypto import PUBLIC_KEY_BYTES
from tidechain.core.errors import ContractError, Rejected
from tidechain.identity.roles import Role
from tidechain.ledger.runtime import (
    CallContext,
    Contract,
    MethodSpec,
    governed_param,
    stored_map,
)

from .state import (
    ACTIVE,
    CONSUMED,
    DAY_MS,
    FROZEN,
    LAPSED,
    NAME,
    NEXT_ID,
    PENDING,
    REFUSED,
    SETTLED,
    cert_key,
    effective,
    financed_key,
    funder_stats_key,
    held_key,
    invoice_use_key,
    issued_key,
    line_key,
    maturity_key,
    pending_key,
    root_key,
    tier_key,
)

# --- bounds and governed parameters ------------------------------------------------------

MAX_AMOUNT_FEN = 10**15
"""A face value or a credit line: at most CNY 10 trillion (fits every integer path)."""
MAX_SPLIT_PARTS = 10
"""Parts of one split: each part writes its record and three markers, and a call writes
at most MAX_WRITES_PER_TX (64) keys."""
MAX_BACKING_INVOICES = 8
"""E-invoices one certificate cites as its trade background."""
MAX_SETTLE_BATCH = 5
"""Certificates one settlement closes: four writes each, and an issue that lapsed
unaccepted also frees each invoice backing it (up to MAX_BACKING_INVOICES), so five
always fit under MAX_WRITES_PER_TX (64)."""
MAX_REF_BYTES = 64
"""An off-chain payment reference (a bank's transaction number)."""
MAX_RATE_BP = 10_000
"""A yearly discount rate: at most 100 % (10,000 basis points)."""

MAX_MATURITY_PARAM = "scf.max_maturity_ms"
MIN_SPLIT_PARAM = "scf.min_split_fen"
MAX_TIERS_PARAM = "scf.max_tiers"
DEFAULT_MAX_MATURITY_MS = 183 * DAY_MS
"""Yinfa [2025] No. 77: a payment term of 6 months in principle."""
CEILING_MATURITY_MS = 365 * DAY_MS
"""... and never more than a year: governance cannot set the term beyond it."""
DEFAULT_MIN_SPLIT_FEN = 10_000
"""CNY 100: a part smaller than that costs more to handle than it finances."""
DEFAULT_MAX_TIERS = 5
CEILING_MAX_TIERS = 20


def _uint(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ContractError(f"{name} must be an integer in {low}..{high}",
                            code="bad_argument")
    return value


def check_max_maturity(value: Any) -> int:
    return _uint(value, MAX_MATURITY_PARAM, DAY_MS, CEILING_MATURITY_MS)


def check_min_split(value: Any) -> int:
    return _uint(value, MIN_SPLIT_PARAM, 1, MAX_AMOUNT_FEN)


def check_max_tiers(value: Any) -> int:
    return _uint(value, MAX_TIERS_PARAM, 1, CEILING_MAX_TIERS)


PARAMS = {MAX_MATURITY_PARAM: check_max_maturity, MIN_SPLIT_PARAM: check_min_split,
          MAX_TIERS_PARAM: check_max_tiers}
"""The parameters governance may set for this application (`gov.set_param`)."""


def _param(ctx: CallContext, name: str, default: int) -> int:
    value = governed_param(ctx._state, name)
    return default if value is None else int(value)


# --- argument types --------------------------------------------------------------------------

Key = Annotated[bytes, msgspec.Meta(min_length=PUBLIC_KEY_BYTES, max_length=PUBLIC_KEY_BYTES,
                                    description="a member's Ed25519 key (32 bytes)")]
Fen = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT_FEN, description="an amount in fen")]
CertId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a certificate id")]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REF_BYTES,
                                  description="an off-chain payment reference")]
InvoiceNumber = Annotated[str, msgspec.Meta(pattern="^[0-9]{20}$",
                                            description="a 20-digit e-invoice number")]


class _Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class SetLineArgs(_Args, frozen=True):
    core: Key
    limit: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT_FEN)]


class IssueArgs(_Args, frozen=True):
    to: Key
    amount: Fen
    maturity: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1,
                                          description="maturity, ms since the epoch")]
    contract: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32, description=(
        "SHA-256 of the supply contract (the document stays off chain)"))]
    invoices: Annotated[list[InvoiceNumber], msgspec.Meta(
        min_length=1, max_length=MAX_BACKING_INVOICES)]


class IdArgs(_Args, frozen=True):
    id: CertId


class Part(_Args, frozen=True):
    to: Key
    amount: Fen


class SplitArgs(_Args, frozen=True):
    id: CertId
    parts: Annotated[list[Part], msgspec.Meta(min_length=1, max_length=MAX_SPLIT_PARTS)]


class FinanceArgs(_Args, frozen=True):
    id: CertId
    funder: Key
    rate_bp: Annotated[int, msgspec.Meta(ge=0, le=MAX_RATE_BP,
                                         description="yearly discount rate, basis points")]


class ApproveArgs(_Args, frozen=True):
    id: CertId
    ref: Ref


class SettleArgs(_Args, frozen=True):
    ids: Annotated[list[CertId], msgspec.Meta(min_length=1, max_length=MAX_SETTLE_BATCH)]
    refs: Annotated[list[Ref], msgspec.Meta(min_length=1, max_length=MAX_SETTLE_BATCH)]


@functools.cache
def _argument_names(kind: type[msgspec.Struct]) -> frozenset[str]:
    """A Struct's field names, once: `msgspec.structs.fields` resolves the type hints
    every time (measured: 12-65 us a call, a tenth of a validator's time under load)."""
    return frozenset(f.encode_name for f in msgspec.structs.fields(kind))


def _parse(args: dict[str, Any], kind: type[msgspec.Struct]) -> Any:
    """The call's arguments as their Struct: the Struct is the argument check."""
    names = _argument_names(kind)
    unknown = sorted(str(name) for name in args if name not in names)
    if unknown:
        raise ContractError(f"unknown argument(s) {', '.join(unknown)[:100]}; this method "
                            f"takes {', '.join(sorted(names))}", code="bad_argument")
    try:
        return msgspec.convert(args, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise ContractError(f"bad arguments: {exc}", code="bad_argument") from None


# --- state helpers --------------------------------------------------------------------------


def bad(reason: str, code: str) -> ContractError:
    return ContractError(reason, code=code)


def _load(ctx: CallContext, key: bytes) -> dict[str, Any] | None:
    raw = ctx.get(key)
    return None if raw is None else stored_map(raw, "scf record")


def _store(ctx: CallContext, key: bytes, value: Any) -> None:
    ctx.put(key, cbor.encode(value))


def _counter(ctx: CallContext, key: bytes) -> int:
    raw = ctx.get(key)
    return 0 if raw is None else int(cbor.decode(raw))


def _add(ctx: CallContext, key: bytes, delta: int) -> None:
    _store(ctx, key, _counter(ctx, key) + delta)


def _certificate(ctx: CallContext, cert_id: int) -> dict[str, Any]:
    record = _load(ctx, cert_key(cert_id))
    if record is None:
        raise bad(f"no certificate {cert_id}", "not_found")
    return record


def _new_id(ctx: CallContext) -> int:
    cert_id = _counter(ctx, NEXT_ID)
    _store(ctx, NEXT_ID, cert_id + 1)
    return cert_id


def _holds_role(ctx: CallContext, key: bytes, role: Role, what: str) -> None:
    """`key` is a member in good standing with `role` (a counterparty named in a call)."""
    try:
        members.authorize(ctx._state, key, what, frozenset({role}), ctx.time_ms)
    except Rejected as exc:
        raise bad(f"{key.hex()[:16]}... cannot take part: {exc.reason}",
                  "bad_counterparty") from None


def _org(ctx: CallContext, key: bytes) -> str | None:
    record = members.member_of(ctx._state, key)
    return None if record is None else str(record["org"])


def _move_holder(ctx: CallContext, record: dict[str, Any], new_holder: bytes) -> None:
    ctx.delete(held_key(bytes(record["holder"]), record["id"]))
    ctx.put(held_key(new_holder, record["id"]), b"")
    record["holder"] = new_holder


def _new_certificate(ctx: CallContext, *, root: int | None, parent: int | None, core: bytes,
                     amount: int, maturity: int, tier: int, holder: bytes,
                     pending: bytes | None) -> dict[str, Any]:
    cert_id = _new_id(ctx)
    record: dict[str, Any] = {
        "id": cert_id, "root": cert_id if root is None else root, "parent": parent,
        "core": core, "amount": amount, "maturity": maturity, "tier": tier,
        "holder": holder, "pending": pending,
        "status": PENDING if pending is not None else ACTIVE,
        "finance": None, "financings": [], "funders": [], "settled": None, "children": [],
        "issued": ctx.time_ms, "tx": ctx.tx_id}
    ctx.put(held_key(holder, cert_id), b"")
    if pending is not None:
        ctx.put(pending_key(pending, cert_id), b"")
    ctx.put(root_key(record["root"], cert_id), b"")
    ctx.put(maturity_key(maturity, cert_id), b"")
    return record


def _require_live(record: dict[str, Any], ctx: CallContext, *statuses: str) -> str:
    """The certificate's status now, if one of `statuses`; before maturity."""
    status, _ = effective(record, ctx.time_ms)
    if status not in statuses:
        raise bad(f"certificate {record['id']} is {status}, not {' or '.join(statuses)}",
                  f"not_{statuses[0]}")
    if ctx.time_ms >= record["maturity"]:
        raise bad(f"certificate {record['id']} matured at {record['maturity']} ms: it can "
                  "only be settled now", "matured")
    return status


def _require_holder(record: dict[str, Any], ctx: CallContext) -> None:
    if bytes(record["holder"]) != ctx.caller:
        raise bad(f"certificate {record['id']} is held by another member", "not_holder")


# --- credit lines -------------------------------------------------------------------------


def set_line(ctx: CallContext, args: dict[str, Any]) -> None:
    """A funder sets a core enterprise's credit line (授信): never below what the
    enterprise has outstanding."""
    a: SetLineArgs = _parse(args, SetLineArgs)
    _holds_role(ctx, a.core, Role.ENTERPRISE, "scf.issue")
    line = _load(ctx, line_key(a.core)) or {"limit": 0, "outstanding": 0, "funder": None}
    if line["funder"] is not None and bytes(line["funder"]) != ctx.caller:
        raise bad("another funder granted this line: only it raises or lowers it",
                  "not_line_funder")
    if a.limit < line["outstanding"]:
        raise bad(f"the line cannot go below the {line['outstanding']} fen outstanding",
                  "below_outstanding")
    line.update(limit=a.limit, funder=ctx.caller)
    _store(ctx, line_key(a.core), line)
    ctx.emit("line_set", {"core": a.core, "limit": a.limit, "funder": ctx.caller})


def _use_line(ctx: CallContext, core: bytes, amount: int) -> None:
    line = _load(ctx, line_key(core))
    if line is None:
        raise bad("no credit line: a funder must set one first (scf.set_line)", "no_line")
    if line["outstanding"] + amount > line["limit"]:
        left = line["limit"] - line["outstanding"]
        raise bad(f"the credit line of {line['limit']} fen has {left} fen left, not {amount}",
                  "over_line")
    line["outstanding"] += amount
    _store(ctx, line_key(core), line)


def _release_line(ctx: CallContext, core: bytes, amount: int) -> None:
    line = _load(ctx, line_key(core))
    if line is None or line["outstanding"] < amount:
        raise bad("credit line accounting does not cover this certificate", "bad_state")
    line["outstanding"] -= amount
    _store(ctx, line_key(core), line)


# --- issue, accept, refuse ------------------------------------------------------------------


def _back_with_invoices(ctx: CallContext, a: IssueArgs
                        ) -> tuple[list[list[Any]], dict[str, int]]:
    """Allocate the face value over the cited invoices, in order: each was issued by the
    supplier's organisation to the core enterprise's (every one cited is checked, also
    those the amount does not reach), and backs at most its total (net of red-letter
    reversals) over every certificate. ([[number, fen backed], ...], {number: fen
    reversed at issue}): what is reversed later is what `flagged` reports."""
    if len(set(a.invoices)) != len(a.invoices):
        raise bad("an invoice is cited twice", "bad_argument")
    supplier_org, core_org = _org(ctx, a.to), _org(ctx, ctx.caller)
    left = a.amount
    backing = []
    reversed_at_issue = {}
    for number in a.invoices:
        invoice = get_invoice(ctx._state, number)
        if invoice is None:
            raise bad(f"no e-invoice {number} on this chain", "no_invoice")
        if (_org(ctx, bytes(invoice["issuer"])) != supplier_org
                or invoice["holder"] is None or _org(ctx, bytes(invoice["holder"])) != core_org):
            raise bad(f"e-invoice {number} was not issued by the supplier's organisation to "
                      "the core enterprise's", "not_trade_background")
        if invoice["kind"] != "blue":
            raise bad(f"e-invoice {number} is a red-letter invoice", "not_trade_background")
        used = _counter(ctx, invoice_use_key(number))
        room = invoice["total"] - invoice["reversed"] - used
        take = min(room, left)
        if take <= 0:
            continue
        _store(ctx, invoice_use_key(number), used + take)
        backing.append([number, take])
        reversed_at_issue[number] = int(invoice["reversed"])
        left -= take
    if left > 0:
        raise bad(f"the cited e-invoices back {a.amount - left} fen more, not {a.amount}: an "
                  "invoice backs certificates up to its total, never twice over",
                  "insufficient_background")
    return backing, reversed_at_issue


def issue(ctx: CallContext, args: dict[str, Any]) -> None:
    """The core enterprise issues a certificate to a supplier (开立)."""
    a: IssueArgs = _parse(args, IssueArgs)
    if a.to == ctx.caller:
        raise bad("a core enterprise does not issue to itself", "bad_counterparty")
    _holds_role(ctx, a.to, Role.ENTERPRISE, "scf.accept")
    longest = _param(ctx, MAX_MATURITY_PARAM, DEFAULT_MAX_MATURITY_MS)
    if not ctx.time_ms < a.maturity <= ctx.time_ms + longest:
        raise bad(f"maturity must be after now and at most {longest // DAY_MS} days away",
                  "bad_maturity")
    _use_line(ctx, ctx.caller, a.amount)
    backing, reversed_at_issue = _back_with_invoices(ctx, a)
    record = _new_certificate(ctx, root=None, parent=None, core=ctx.caller, amount=a.amount,
                              maturity=a.maturity, tier=1, holder=ctx.caller, pending=a.to)
    record["background"] = {"contract": a.contract, "invoices": backing,
                            "reversed": reversed_at_issue}
    _store(ctx, cert_key(record["id"]), record)
    ctx.put(issued_key(ctx.caller, record["id"]), b"")
    _add(ctx, tier_key(ctx.caller, 1), a.amount)
    ctx.emit("issued", {"id": record["id"], "to": a.to, "amount": a.amount,
                        "maturity": a.maturity})


def _require_recipient(record: dict[str, Any], ctx: CallContext) -> None:
    status, _ = effective(record, ctx.time_ms)
    if status != PENDING or record["pending"] is None:
        raise bad(f"certificate {record['id']} awaits no acceptance ({status})",
                  "not_pending")
    if bytes(record["pending"]) != ctx.caller:
        raise bad(f"certificate {record['id']} was sent to another member", "not_recipient")


def accept(ctx: CallContext, args: dict[str, Any]) -> None:
    """The recipient accepts (签收): it becomes the holder."""
    record = _certificate(ctx, _parse(args, IdArgs).id)
    _require_recipient(record, ctx)
    ctx.delete(pending_key(ctx.caller, record["id"]))
    sender = bytes(record["holder"])
    _move_holder(ctx, record, ctx.caller)
    record.update(pending=None, status=ACTIVE)
    _store(ctx, cert_key(record["id"]), record)
    ctx.emit("accepted", {"id": record["id"], "holder": ctx.caller, "from": sender})


def refuse(ctx: CallContext, args: dict[str, Any]) -> None:
    """The recipient refuses (拒签): an issue closes, freeing the line and the invoices;
    a transfer returns to its sender."""
    record = _certificate(ctx, _parse(args, IdArgs).id)
    _require_recipient(record, ctx)
    ctx.delete(pending_key(ctx.caller, record["id"]))
    record["pending"] = None
    if record["parent"] is None:
        _close_unaccepted_root(ctx, record, REFUSED)
    else:
        # Back with its sender, who still holds it: at the sender's tier again.
        record["status"] = ACTIVE
        core, tier = bytes(record["core"]), record["tier"]
        _add(ctx, tier_key(core, tier), -record["amount"])
        _add(ctx, tier_key(core, tier - 1), record["amount"])
        record["tier"] = tier - 1
    _store(ctx, cert_key(record["id"]), record)
    # `to`: whom it returns to (the issuer of a refused issue), a party to this entry.
    ctx.emit("refused", {"id": record["id"], "by": ctx.caller,
                         "to": bytes(record["holder"])})


def _close_unaccepted_root(ctx: CallContext, record: dict[str, Any], status: str) -> None:
    """An issue never accepted: off the line, its invoices free to back another."""
    record["status"] = status
    ctx.delete(held_key(bytes(record["holder"]), record["id"]))
    ctx.delete(maturity_key(record["maturity"], record["id"]))
    _release_line(ctx, bytes(record["core"]), record["amount"])
    _add(ctx, tier_key(bytes(record["core"]), record["tier"]), -record["amount"])
    for number, fen in record["background"]["invoices"]:
        _add(ctx, invoice_use_key(number), -fen)


# --- split and transfer ---------------------------------------------------------------------


def split(ctx: CallContext, args: dict[str, Any]) -> None:
    """The holder splits a certificate into parts for its suppliers (拆分 / 流转): the
    parent is consumed; the parts, and a remainder the holder keeps, sum to it."""
    a: SplitArgs = _parse(args, SplitArgs)
    record = _certificate(ctx, a.id)
    _require_holder(record, ctx)
    _require_live(record, ctx, ACTIVE)
    tiers = _param(ctx, MAX_TIERS_PARAM, DEFAULT_MAX_TIERS)
    if record["tier"] + 1 > tiers:
        raise bad(f"certificate {a.id} is at tier {record['tier']}: at most {tiers} tiers",
                  "too_many_tiers")
    smallest = _param(ctx, MIN_SPLIT_PARAM, DEFAULT_MIN_SPLIT_FEN)
    total = sum(p.amount for p in a.parts)
    remainder = record["amount"] - total
    if remainder < 0:
        raise bad(f"the parts sum to {total} fen, more than the {record['amount']} fen of "
                  f"certificate {a.id}", "over_amount")
    if any(p.amount < smallest for p in a.parts) or 0 < remainder < smallest:
        raise bad(f"every part (and any remainder) must be at least {smallest} fen",
                  "below_min_split")
    for p in a.parts:
        if p.to == ctx.caller:
            raise bad("a part goes to another member (the remainder stays with you)",
                      "bad_counterparty")
        _holds_role(ctx, p.to, Role.ENTERPRISE, "scf.accept")
    core = bytes(record["core"])
    children = [_new_certificate(ctx, root=record["root"], parent=a.id, core=core,
                                 amount=p.amount, maturity=record["maturity"],
                                 tier=record["tier"] + 1, holder=ctx.caller, pending=p.to)
                for p in a.parts]
    if remainder:
        children.append(_new_certificate(
            ctx, root=record["root"], parent=a.id, core=core, amount=remainder,
            maturity=record["maturity"], tier=record["tier"], holder=ctx.caller,
            pending=None))
    for child in children:
        child["funders"] = list(record["funders"])
        _store(ctx, cert_key(child["id"]), child)
    moved = sum(c["amount"] for c in children if c["tier"] != record["tier"])
    _add(ctx, tier_key(core, record["tier"]), -moved)
    _add(ctx, tier_key(core, record["tier"] + 1), moved)
    ctx.delete(held_key(ctx.caller, a.id))
    ctx.delete(maturity_key(record["maturity"], a.id))
    record.update(status=CONSUMED, children=[c["id"] for c in children])
    _store(ctx, cert_key(a.id), record)
    ctx.emit("split", {"id": a.id, "children": [c["id"] for c in children]})


# --- finance ----------------------------------------------------------------------------------


def discount_fen(amount: int, rate_bp: int, days: int) -> int:
    """The discount on `amount` fen for `days` days at `rate_bp` a year: rounded down
    (in the holder's favour), integers only."""
    return amount * rate_bp * days // (10_000 * 365)


def days_to_maturity(now_ms: int, maturity_ms: int) -> int:
    """Whole days from `now_ms` to maturity, a started day counted as a day."""
    return -(-(maturity_ms - now_ms) // DAY_MS)


def finance(ctx: CallContext, args: dict[str, Any]) -> None:
    """The holder asks a funder to finance the certificate (融资): frozen until the
    funder answers."""
    a: FinanceArgs = _parse(args, FinanceArgs)
    record = _certificate(ctx, a.id)
    _require_holder(record, ctx)
    _require_live(record, ctx, ACTIVE)
    if a.funder == ctx.caller:
        raise bad("a holder does not finance with itself", "bad_counterparty")
    _holds_role(ctx, a.funder, Role.FUNDER, "scf.approve")
    record.update(status=FROZEN, finance={"funder": a.funder, "rate_bp": a.rate_bp,
                                          "asked": ctx.time_ms})
    _store(ctx, cert_key(a.id), record)
    ctx.emit("finance_requested", {"id": a.id, "funder": a.funder, "rate_bp": a.rate_bp})


def _require_funder(record: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    _require_live(record, ctx, FROZEN)
    request: dict[str, Any] = record["finance"]
    if bytes(request["funder"]) != ctx.caller:
        raise bad(f"certificate {record['id']} was offered to another funder", "not_funder")
    return request


def approve(ctx: CallContext, args: dict[str, Any]) -> None:
    """The funder finances it: records the price and the payment reference, and holds
    the certificate from now on."""
    a: ApproveArgs = _parse(args, ApproveArgs)
    record = _certificate(ctx, a.id)
    request = _require_funder(record, ctx)
    days = days_to_maturity(ctx.time_ms, record["maturity"])
    price = record["amount"] - discount_fen(record["amount"], request["rate_bp"], days)
    seller = bytes(record["holder"])
    record["financings"].append({"funder": ctx.caller, "from": seller, "price": price,
                                 "rate_bp": request["rate_bp"], "days": days, "ref": a.ref,
                                 "time": ctx.time_ms})
    funders = list(record["funders"])
    if ctx.caller not in funders:
        funders.append(ctx.caller)
    record.update(status=ACTIVE, finance=None, funders=funders)
    _move_holder(ctx, record, ctx.caller)
    _store(ctx, cert_key(a.id), record)
    ctx.put(financed_key(ctx.caller, a.id), b"")
    stats = _load(ctx, funder_stats_key(ctx.caller)) or {"count": 0, "face": 0, "price": 0}
    stats.update(count=stats["count"] + 1, face=stats["face"] + record["amount"],
                 price=stats["price"] + price)
    _store(ctx, funder_stats_key(ctx.caller), stats)
    ctx.emit("financed", {"id": a.id, "funder": ctx.caller, "from": seller, "price": price,
                          "days": days})


def decline(ctx: CallContext, args: dict[str, Any]) -> None:
    """The funder declines: the certificate is the holder's, free again."""
    record = _certificate(ctx, _parse(args, IdArgs).id)
    _require_funder(record, ctx)
    record.update(status=ACTIVE, finance=None)
    _store(ctx, cert_key(record["id"]), record)
    ctx.emit("finance_declined", {"id": record["id"], "funder": ctx.caller,
                                  "holder": bytes(record["holder"])})


# --- settle -----------------------------------------------------------------------------------


def settle(ctx: CallContext, args: dict[str, Any]) -> None:
    """From maturity, the core enterprise pays each certificate's holder its face value
    (兑付), one payment reference each; an issue never accepted closes as lapsed."""
    a: SettleArgs = _parse(args, SettleArgs)
    if len(a.refs) != len(a.ids) or len(set(a.ids)) != len(a.ids):
        raise bad("give one payment reference per certificate, each certificate once",
                  "bad_argument")
    for cert_id, ref in zip(a.ids, a.refs, strict=True):
        record = _certificate(ctx, cert_id)
        if bytes(record["core"]) != ctx.caller:
            raise bad(f"certificate {cert_id} was issued by another enterprise", "not_issuer")
        if ctx.time_ms < record["maturity"]:
            raise bad(f"certificate {cert_id} matures at {record['maturity']} ms",
                      "not_matured")
        status, holder = effective(record, ctx.time_ms)
        if status == LAPSED and record["status"] == PENDING:  # closed once, here
            ctx.delete(pending_key(bytes(record["pending"]), cert_id))
            record["pending"] = None
            _close_unaccepted_root(ctx, record, LAPSED)
        elif status in (ACTIVE, FROZEN):
            if record["pending"] is not None:  # a transfer unaccepted at maturity
                ctx.delete(pending_key(bytes(record["pending"]), cert_id))
            ctx.delete(held_key(holder, cert_id))
            ctx.delete(maturity_key(record["maturity"], cert_id))
            _release_line(ctx, ctx.caller, record["amount"])
            _add(ctx, tier_key(ctx.caller, record["tier"]), -record["amount"])
            record.update(status=SETTLED, pending=None, finance=None,
                          settled={"to": holder, "ref": ref, "time": ctx.time_ms})
        else:
            raise bad(f"certificate {cert_id} is {status}: nothing to settle",
                      "not_settleable")
        _store(ctx, cert_key(cert_id), record)
        ctx.emit("settled", {"id": cert_id, "to": holder, "status": record["status"]})


HOLDERS = frozenset({Role.ENTERPRISE, Role.FUNDER})
"""Who may hold, split and finance a certificate: suppliers, and banks that bought one."""

CONTRACT = Contract(
    name=NAME,
    methods={
        "set_line": MethodSpec(set_line, frozenset({Role.FUNDER}),
                               "set a core enterprise's credit line {core, limit}",
                               SetLineArgs),
        "issue": MethodSpec(issue, frozenset({Role.ENTERPRISE}), "issue a certificate to a "
                            "supplier {to, amount, maturity, contract, invoices}", IssueArgs),
        "accept": MethodSpec(accept, HOLDERS, "accept a certificate sent to you {id}",
                             IdArgs),
        "refuse": MethodSpec(refuse, HOLDERS, "refuse a certificate sent to you {id}",
                             IdArgs),
        "split": MethodSpec(split, HOLDERS, "split a certificate you hold and send the "
                            "parts {id, parts: [{to, amount}]}", SplitArgs),
        "finance": MethodSpec(finance, HOLDERS, "ask a funder to finance a certificate "
                              "{id, funder, rate_bp}", FinanceArgs),
        "approve": MethodSpec(approve, frozenset({Role.FUNDER}), "finance a certificate "
                              "offered to you {id, ref}", ApproveArgs),
        "decline": MethodSpec(decline, frozenset({Role.FUNDER}), "decline a certificate "
                              "offered to you {id}", IdArgs),
        "settle": MethodSpec(settle, frozenset({Role.ENTERPRISE}), "pay matured "
                             "certificates you issued {ids, refs}", SettleArgs),
    },
    description="Supply-chain finance: receivable certificates issued, split, financed "
                "and settled.",
)
