"""The e-invoice contract's methods: the rules that hold on chain whatever the client
does (docs/invoices.md, ADR 0010).

States of a (blue) invoice::

    issued --lock--> locked --reimburse--> reimbursed
      ^                |
      +-----unlock-----+

Beside the state: `claimed` (the buyer booked it), `reversed` (the total of the
red-letter invoices against it, never above its own total). A red-letter invoice is
a record of its own (kind `red`) that is never claimed, locked or reversed.

The content is sealed (envelope.py, ADR 0012): the chain sees the number, the parties'
keys, the total, the state and a commitment, and checks that exactly the entitled
members can unwrap the content key; the line arithmetic is checked by the client
that seals and by every reader that opens (client/sealing.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from tidechain.core import cbor
from tidechain.core.crypto import sha256
from tidechain.core.errors import ContractError, invariant
from tidechain.core.limits import MAX_NAME_BYTES
from tidechain.ledger.runtime import CallContext

from .content import (
    DIGEST_BYTES,
    KEY_BYTES,
    MAX_AMOUNT,
    NUMBER_DIGITS,
    REASONS,
    bad,
    check_int,
    check_key,
    check_keys,
    check_number,
    check_tax_id,
    check_text,
)
from .envelope import (
    CODE_WRAP_BYTES,
    COMMITMENT_BYTES,
    MAX_AUDITORS,
    MAX_CIPHERTEXT_BYTES,
    MAX_READERS,
    NONCE_BYTES,
    WRAPPED_KEY_BYTES,
    check_sealed_blue,
    check_sealed_red,
    reader_keys,
    require_readers,
)
from .state import (
    AUDITORS_KEY,
    EMPTY_STATS,
    ask_key,
    by_issuer_key,
    decode_map,
    invoice_key,
    issuer_key,
    period_of,
    reversal_key,
    stat_key,
    tax_key,
    tax_stat_key,
)

MAX_BATCH = 12
"""Invoices in one `issue_batch`: twelve sealed two-line invoices (about 1 KB each with
three readers) fit in MAX_TX_BYTES, and 2 writes each plus 2 stay under
MAX_WRITES_PER_TX."""
MAX_QUOTA = 10**18
"""An issuer's quota (fen): sums of MAX_AMOUNT totals stay far inside 64 bits."""
CONFIRM_WINDOW_MS = 72 * 3600 * 1000
"""A reversal request lapses 72 hours of block time after the block that made it."""
MAX_CLAIM_CODE_BYTES = 64

ISSUED, LOCKED, REIMBURSED = "issued", "locked", "reimbursed"
BLUE, RED = "blue", "red"


# --- small state helpers ----------------------------------------------------------------


def _load(ctx: CallContext, key: bytes) -> dict[str, Any] | None:
    raw = ctx.get(key)
    return None if raw is None else decode_map(raw)


def _store(ctx: CallContext, key: bytes, value: dict[str, Any]) -> None:
    ctx.put(key, cbor.encode(value))


def _invoice(ctx: CallContext, number: str) -> dict[str, Any]:
    record = _load(ctx, invoice_key(number))
    if record is None:
        raise bad(f"no invoice {number}", "not_found")
    return record


def _blue(ctx: CallContext, number: str, action: str) -> dict[str, Any]:
    record = _invoice(ctx, number)
    if record["kind"] != BLUE:
        raise bad(f"invoice {number} is a red-letter invoice and cannot be {action}",
                  "red_invoice")
    return record


def _issuer(ctx: CallContext, issuer: bytes) -> dict[str, Any]:
    record = _load(ctx, issuer_key(issuer))
    if record is None:
        raise bad("the caller is not an issuer authorised by the tax authority",
                  "not_authorised")
    return record


def _add_stats(ctx: CallContext, issuer: bytes, **amounts: int) -> None:
    """Count the amounts in the block month's counters of the issuer key and of its tax
    id (an issuer's tax id never changes: `authorise_issuer` refuses another)."""
    record = _load(ctx, issuer_key(issuer))
    invariant(record is not None, "statistics of an issuer without an authorisation")
    assert record is not None
    period = period_of(ctx.time_ms)
    for key in (stat_key(issuer, period), tax_stat_key(record["tax_id"], period)):
        stats = _load(ctx, key) or dict(EMPTY_STATS)
        for name, amount in amounts.items():
            stats[name] += amount
        _store(ctx, key, stats)


def _list_for_issuer(ctx: CallContext, issuer: bytes, record: dict[str, Any],
                     number: str) -> None:
    ctx.put(by_issuer_key(issuer, record["count"]), number.encode("ascii"))
    record["count"] += 1


def _new_record(ctx: CallContext, kind: str, invoice: dict[str, Any],
                holder: bytes | None) -> dict[str, Any]:
    return {"number": invoice["number"], "kind": kind, "issuer": ctx.caller,
            "original": invoice.get("original"), "reason": invoice.get("reason"),
            "sealed": invoice["sealed"], "total": invoice["total"], "state": ISSUED,
            "holder": holder, "claimed": False, "claim_digest": None,
            "submitted_to": None, "locked_by": None, "reversed": 0, "reimbursed": 0,
            "period": period_of(ctx.time_ms), "time": ctx.time_ms, "height": ctx.height,
            "tx": ctx.tx_id}


def _auditors(ctx: CallContext) -> set[bytes]:
    record = _load(ctx, AUDITORS_KEY)
    if record is None or not record["keys"]:
        raise bad("the tax authority has not registered its audit keys "
                  "(invoice.set_auditors): no invoice can be sealed to it yet",
                  "no_auditors")
    return {bytes(key) for key in record["keys"]}


def _grant(record: dict[str, Any], member: bytes, wrapped: Any) -> None:
    """Let `member` read the invoice: the caller wrapped the content key to it (the
    chain cannot check a sealed box; a wrong one only hurts its own reader)."""
    if member in reader_keys(record["sealed"]):
        return
    if not isinstance(wrapped, bytes) or len(wrapped) != WRAPPED_KEY_BYTES:
        raise bad(f"'wrapped' must be the {WRAPPED_KEY_BYTES}-byte content key sealed to "
                  "the new reader", "bad_envelope")
    if len(record["sealed"]["readers"]) >= MAX_READERS:
        raise bad(f"invoice {record['number']} already has {MAX_READERS} readers",
                  "too_many_readers")
    record["sealed"]["readers"].append([member, wrapped])


# --- tax authority ----------------------------------------------------------------------


def set_auditors(ctx: CallContext, args: dict[str, Any]) -> None:
    """Register the tax authority's audit keys: every invoice issued from the next
    transaction on must be sealed to each of them."""
    check_keys(args, {"keys"}, "arguments")
    keys = args.get("keys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_AUDITORS:
        raise bad(f"'keys' must list 1..{MAX_AUDITORS} member keys")
    checked = [check_key(key, "keys[]") for key in keys]
    if len(set(checked)) != len(checked):
        raise bad("'keys' names a key twice")
    _store(ctx, AUDITORS_KEY, {"keys": checked})
    ctx.emit("auditors_set", {"keys": checked})



def authorise_issuer(ctx: CallContext, args: dict[str, Any]) -> None:
    """Authorise a merchant's key to issue, with its tax id and quota; reinstates a
    suspended issuer (same tax id only)."""
    check_keys(args, {"issuer", "name", "tax_id", "quota"}, "arguments")
    issuer = check_key(args.get("issuer"), "issuer")
    name = check_text(args.get("name"), "name", MAX_NAME_BYTES)
    tax_id = check_tax_id(args.get("tax_id"))
    quota = check_int(args.get("quota"), "quota", 0, MAX_QUOTA)
    record = _load(ctx, issuer_key(issuer))
    if record is not None and record["tax_id"] != tax_id:
        raise bad(f"issuer is authorised under tax id {record['tax_id']}", "tax_id_mismatch")
    if record is None:
        under_tax_id = _load(ctx, tax_key(tax_id)) or {"issuers": 0}
        under_tax_id["issuers"] += 1
        _store(ctx, tax_key(tax_id), under_tax_id)
    record = record or {"issued": 0, "count": 0}
    record.update({"tax_id": tax_id, "name": name, "quota": quota, "suspended": False})
    _store(ctx, issuer_key(issuer), record)
    ctx.emit("issuer_authorised", {"issuer": issuer, "tax_id": tax_id, "quota": quota})


def _existing_issuer(ctx: CallContext, args: dict[str, Any], allowed: set[str]) -> tuple[
        bytes, dict[str, Any]]:
    check_keys(args, allowed, "arguments")
    issuer = check_key(args.get("issuer"), "issuer")
    record = _load(ctx, issuer_key(issuer))
    if record is None:
        raise bad("no such authorised issuer", "not_found")
    return issuer, record


def suspend_issuer(ctx: CallContext, args: dict[str, Any]) -> None:
    """Stop an issuer from issuing (red-letter corrections stay possible)."""
    issuer, record = _existing_issuer(ctx, args, {"issuer"})
    record["suspended"] = True
    _store(ctx, issuer_key(issuer), record)
    ctx.emit("issuer_suspended", {"issuer": issuer})


def set_quota(ctx: CallContext, args: dict[str, Any]) -> None:
    """Set an issuer's quota: the most it may ever have issued (blue totals, fen).
    A quota below what it has issued stops further issuance."""
    issuer, record = _existing_issuer(ctx, args, {"issuer", "quota"})
    record["quota"] = check_int(args.get("quota"), "quota", 0, MAX_QUOTA)
    _store(ctx, issuer_key(issuer), record)
    ctx.emit("quota_set", {"issuer": issuer, "quota": record["quota"]})


# --- issuer -------------------------------------------------------------------------------


def _issue_checked(ctx: CallContext, issuer: dict[str, Any], invoice: dict[str, Any],
                   auditors: set[bytes]) -> int:
    """Write one checked blue invoice; the issuer record is updated in memory."""
    number, total = invoice["number"], invoice["total"]
    if issuer["suspended"]:
        raise bad("the issuer is suspended by the tax authority", "suspended")
    if issuer["issued"] + total > issuer["quota"]:
        raise bad(f"invoice {number}: issued {issuer['issued']} + {total} exceeds the quota "
                  f"{issuer['quota']}", "quota_exceeded")
    if ctx.get(invoice_key(number)) is not None:
        raise bad(f"invoice number {number} is taken", "duplicate_number")
    required = {ctx.caller} | auditors
    if invoice["holder"] is not None:
        required.add(invoice["holder"])
    require_readers(invoice["sealed"], required, f"invoice {number}")
    record = _new_record(ctx, BLUE, invoice, invoice["holder"])
    record["claim_digest"] = invoice["claim_digest"]
    _store(ctx, invoice_key(number), record)
    issuer["issued"] += total
    _list_for_issuer(ctx, ctx.caller, issuer, number)
    return int(total)


def issue(ctx: CallContext, args: dict[str, Any]) -> None:
    """Issue one invoice to a buyer at the moment of a sale."""
    invoice = check_sealed_blue(args)
    issuer = _issuer(ctx, ctx.caller)
    total = _issue_checked(ctx, issuer, invoice, _auditors(ctx))
    _store(ctx, issuer_key(ctx.caller), issuer)
    _add_stats(ctx, ctx.caller, issued=total, issued_count=1)
    ctx.emit("issued", {"number": invoice["number"], "total": total})


def issue_batch(ctx: CallContext, args: dict[str, Any]) -> None:
    """Issue up to MAX_BATCH invoices, all or nothing: any refusal refuses the batch
    (a ContractError discards every write of the transaction)."""
    check_keys(args, {"invoices"}, "arguments")
    batch = args.get("invoices")
    if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_BATCH:
        raise bad(f"'invoices' must be a list of 1..{MAX_BATCH} invoices")
    invoices = [check_sealed_blue(item) for item in batch]
    issuer = _issuer(ctx, ctx.caller)
    auditors = _auditors(ctx)
    total = sum(_issue_checked(ctx, issuer, invoice, auditors) for invoice in invoices)
    _store(ctx, issuer_key(ctx.caller), issuer)
    _add_stats(ctx, ctx.caller, issued=total, issued_count=len(invoices))
    ctx.emit("issued_batch", {"numbers": [i["number"] for i in invoices], "total": total})


def _needs_confirmation(original: dict[str, Any]) -> bool:
    """The buyer side has booked (claimed) or an employer has locked or reimbursed it."""
    return bool(original["claimed"]) or original["state"] != ISSUED


def _reversible(ctx: CallContext, red: dict[str, Any], issuer: bytes) -> dict[str, Any]:
    """The original of `red` if `issuer` may reverse that much of it now."""
    original = _invoice(ctx, red["original"])
    if original["kind"] != BLUE:
        raise bad(f"invoice {red['original']} is a red-letter invoice: it cannot be reversed",
                  "not_reversible")
    if original["issuer"] != issuer:
        raise bad(f"invoice {red['original']} was issued by another issuer", "not_issuer")
    if original["reversed"] + red["total"] > original["total"]:
        raise bad(f"reversing {red['total']} more would exceed the original's "
                  f"total {original['total']} (already reversed {original['reversed']})",
                  "over_reversal")
    if ctx.get(invoice_key(red["number"])) is not None:
        raise bad(f"invoice number {red['number']} is taken", "duplicate_number")
    require_readers(red["sealed"], red_readers(original, _auditors(ctx)),
                    f"red-letter invoice {red['number']}")
    return original


def red_readers(original: dict[str, Any], auditors: set[bytes]) -> set[bytes]:
    """Who reads a red-letter invoice: its original's issuer, buyer and locking
    employer (the parties a reversal concerns) and the tax authority."""
    parties = {original["issuer"], original["holder"], original["locked_by"]}
    return {key for key in parties if key is not None} | auditors


def _apply_red(ctx: CallContext, red: dict[str, Any], issuer: bytes) -> None:
    original = _reversible(ctx, red, issuer)
    issuer_record = _load(ctx, issuer_key(issuer))
    if issuer_record is None:
        raise bad("the issuer's authorisation is missing", "not_authorised")
    record = _new_record(ctx, RED, red, None)
    record["issuer"] = issuer
    _store(ctx, invoice_key(red["number"]), record)
    total = red["total"]
    original["reversed"] += total
    _store(ctx, invoice_key(red["original"]), original)
    _list_for_issuer(ctx, issuer, issuer_record, red["number"])
    _store(ctx, issuer_key(issuer), issuer_record)
    _add_stats(ctx, issuer, reversed=total)
    ctx.emit("reversed", {"number": red["number"], "original": red["original"],
                          "total": total, "reason": red["reason"]})


def red_letter(ctx: CallContext, args: dict[str, Any]) -> None:
    """Reverse (part of) one's own invoice by a red-letter invoice, directly when the
    buyer has neither booked nor an employer locked it; otherwise `request_reversal`."""
    red = check_sealed_red(args)
    original = _reversible(ctx, red, ctx.caller)
    if _needs_confirmation(original) and not _answers_ask(ctx, red):
        raise bad(f"invoice {red['original']} is claimed or locked: request the reversal "
                  "and have the buyer side confirm it", "confirmation_required")
    _apply_red(ctx, red, ctx.caller)


def _answers_ask(ctx: CallContext, red: dict[str, Any]) -> bool:
    """Whether `red` is what the buyer side asked for (reason and total) within the
    window: the issuer's red-letter invoice is then the confirmation. Consumes the ask."""
    ask = _load(ctx, ask_key(red["original"]))
    if ask is None or ctx.time_ms > ask["requested_at"] + CONFIRM_WINDOW_MS:
        return False
    if (ask["reason"], ask["total"]) != (red["reason"], red["total"]):
        raise bad(f"the buyer side asked to reverse {ask['total']} for {ask['reason']}, "
                  f"not {red['total']} for {red['reason']}", "not_as_asked")
    ctx.delete(ask_key(red["original"]))
    return True


def _confirmer(original: dict[str, Any]) -> bytes | None:
    """Who must confirm a reversal: the employer holding the lock (or that reimbursed),
    else the buyer who claimed it."""
    if original["state"] != ISSUED:
        locker: bytes = original["locked_by"]
        return locker
    holder: bytes | None = original["holder"]
    return holder


def request_reversal(ctx: CallContext, args: dict[str, Any]) -> None:
    """Ask the buyer side to confirm a red-letter invoice on a claimed or locked
    invoice; the request lapses CONFIRM_WINDOW_MS of block time later."""
    red = check_sealed_red(args)
    original = _reversible(ctx, red, ctx.caller)
    if not _needs_confirmation(original):
        raise bad(f"invoice {red['original']} needs no confirmation: use red_letter",
                  "no_confirmation_needed")
    pending = _load(ctx, reversal_key(red["original"]))
    if pending is not None and ctx.time_ms <= pending["requested_at"] + CONFIRM_WINDOW_MS:
        raise bad(f"a reversal of {red['original']} is already awaiting confirmation",
                  "pending")
    _store(ctx, reversal_key(red["original"]),
           {"red": red, "issuer": ctx.caller, "requested_at": ctx.time_ms})
    ctx.emit("reversal_requested", {"original": red["original"], "number": red["number"],
                                    "total": red["total"]})


# --- buyer side -----------------------------------------------------------------------------


def ask_reversal(ctx: CallContext, args: dict[str, Any]) -> None:
    """The buyer side (the locking employer, else the buyer that claimed it) asks the
    issuer to reverse `total` of an invoice for `reason`; the issuer confirms by issuing
    exactly that red-letter invoice within 72 hours of block time, else it lapses."""
    check_keys(args, {"original", "reason", "total"}, "arguments")
    number = check_number(args.get("original"), "original")
    reason = args.get("reason")
    if reason not in REASONS:
        raise bad(f"'reason' must be one of {', '.join(REASONS)}")
    total = check_int(args.get("total"), "total", 1, MAX_AMOUNT)
    original = _blue(ctx, number, "reversed")
    if not _needs_confirmation(original) or _confirmer(original) != ctx.caller:
        raise bad(f"only the buyer side of {number} (the buyer that claimed it, or the "
                  "employer holding it) may ask for its reversal", "not_party")
    if original["reversed"] + total > original["total"]:
        raise bad(f"reversing {total} more would exceed the original's total "
                  f"{original['total']} (already reversed {original['reversed']})",
                  "over_reversal")
    pending = _load(ctx, ask_key(number))
    if pending is not None and ctx.time_ms <= pending["requested_at"] + CONFIRM_WINDOW_MS:
        raise bad(f"a reversal of {number} was already asked for", "pending")
    _store(ctx, ask_key(number), {"by": ctx.caller, "reason": reason, "total": total,
                                  "requested_at": ctx.time_ms})
    ctx.emit("reversal_asked", {"original": number, "reason": reason, "total": total})



def confirm_reversal(ctx: CallContext, args: dict[str, Any]) -> None:
    """The buyer side confirms a pending reversal within the window: the red-letter
    invoice is issued now, with every rule checked again."""
    check_keys(args, {"original"}, "arguments")
    number = check_number(args.get("original"), "original")
    pending = _load(ctx, reversal_key(number))
    if pending is None:
        raise bad(f"no reversal of {number} is awaiting confirmation", "not_found")
    if ctx.time_ms > pending["requested_at"] + CONFIRM_WINDOW_MS:
        raise bad(f"the reversal request on {number} lapsed 72 hours after it was made",
                  "lapsed")
    if _confirmer(_invoice(ctx, number)) != ctx.caller:
        raise bad(f"only the buyer side of {number} may confirm its reversal", "not_party")
    ctx.delete(reversal_key(number))
    _apply_red(ctx, pending["red"], pending["issuer"])


def claim(ctx: CallContext, args: dict[str, Any]) -> None:
    """The buyer books the invoice: the titled member key, or (for a buyer named by
    name and USCC) whoever presents the claim code handed over at the sale, with the
    content key `wrapped` to itself (it opened `code_wrap` with the code)."""
    check_keys(args, {"number", "code", "wrapped"}, "arguments")
    number = check_number(args.get("number"))
    code = args.get("code")
    if code is not None and (not isinstance(code, bytes)
                             or not 1 <= len(code) <= MAX_CLAIM_CODE_BYTES):
        raise bad(f"'code' must be 1..{MAX_CLAIM_CODE_BYTES} bytes")
    record = _blue(ctx, number, "claimed")
    if record["claimed"]:
        raise bad(f"invoice {number} is already claimed", "already_claimed")
    if record["holder"] is not None:
        if record["holder"] != ctx.caller:
            raise bad(f"invoice {number} is titled to another buyer", "not_buyer")
    elif code is None or sha256(code) != record["claim_digest"]:
        raise bad(f"wrong claim code for invoice {number}", "bad_claim_code")
    else:
        _grant(record, ctx.caller, args.get("wrapped"))
    record["holder"], record["claimed"] = ctx.caller, True
    _store(ctx, invoice_key(number), record)
    ctx.emit("claimed", {"number": number, "holder": ctx.caller})


def _not_fully_reversed(record: dict[str, Any]) -> None:
    if record["reversed"] >= record["total"]:
        raise bad(f"invoice {record['number']} is fully reversed", "fully_reversed")


def _require_state(record: dict[str, Any], state: str) -> None:
    if record["state"] != state:
        raise bad(f"invoice {record['number']} is {record['state']}, not {state}",
                  f"not_{state}")


def submit(ctx: CallContext, args: dict[str, Any]) -> None:
    """The titled buyer submits a claimed invoice to an employer for reimbursement,
    with the content key `wrapped` to that employer, which may read it from now on."""
    check_keys(args, {"number", "employer", "wrapped"}, "arguments")
    number = check_number(args.get("number"))
    employer = check_key(args.get("employer"), "employer")
    record = _blue(ctx, number, "submitted")
    if not record["claimed"] or record["holder"] != ctx.caller:
        raise bad(f"only the buyer that claimed invoice {number} may submit it", "not_buyer")
    _require_state(record, ISSUED)
    _not_fully_reversed(record)
    _grant(record, employer, args.get("wrapped"))
    record["submitted_to"] = employer
    _store(ctx, invoice_key(number), record)
    ctx.emit("submitted", {"number": number, "employer": employer})


# --- employer -------------------------------------------------------------------------------


def lock(ctx: CallContext, args: dict[str, Any]) -> None:
    """The employer the buyer submitted to locks the invoice for its reimbursement
    claim; nobody else can lock it meanwhile, and never again once reimbursed."""
    check_keys(args, {"number"}, "arguments")
    record = _blue(ctx, check_number(args.get("number")), "locked")
    _require_state(record, ISSUED)
    if record["submitted_to"] != ctx.caller:
        raise bad(f"invoice {record['number']} was not submitted to the caller",
                  "not_submitted")
    _not_fully_reversed(record)
    record["state"], record["locked_by"] = LOCKED, ctx.caller
    _store(ctx, invoice_key(record["number"]), record)
    ctx.emit("locked", {"number": record["number"], "employer": ctx.caller})


def _locked_by_caller(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    check_keys(args, {"number"}, "arguments")
    record = _blue(ctx, check_number(args.get("number")), "reimbursed")
    _require_state(record, LOCKED)
    if record["locked_by"] != ctx.caller:
        raise bad(f"invoice {record['number']} is locked by another employer", "not_locker")
    return record


def unlock(ctx: CallContext, args: dict[str, Any]) -> None:
    """The locking employer releases the invoice (the claim failed): back to issued."""
    record = _locked_by_caller(ctx, args)
    record["state"], record["locked_by"], record["submitted_to"] = ISSUED, None, None
    _store(ctx, invoice_key(record["number"]), record)
    ctx.emit("unlocked", {"number": record["number"]})


def reimburse(ctx: CallContext, args: dict[str, Any]) -> None:
    """The locking employer closes the invoice as paid: its total less what red-letter
    invoices reversed. Final: a reimbursed invoice is never locked again."""
    record = _locked_by_caller(ctx, args)
    _not_fully_reversed(record)
    paid = record["total"] - record["reversed"]
    if not 0 < paid <= MAX_AMOUNT:
        raise ContractError("reimbursable amount out of range", code="bad_amount")
    record["state"], record["reimbursed"] = REIMBURSED, paid
    _store(ctx, invoice_key(record["number"]), record)
    _add_stats(ctx, record["issuer"], reimbursed=paid)
    ctx.emit("reimbursed", {"number": record["number"], "amount": paid})


# --- the methods' arguments as types (ADR 0013) ---------------------------------------------
# What the OpenAPI document, `tide call --arg` and the SDK read. The checks above stay the
# rule; tests/test_application_args.py keeps each Struct's fields and the checks in step.


Key = Annotated[bytes, msgspec.Meta(min_length=KEY_BYTES, max_length=KEY_BYTES,
                                    description="a member's Ed25519 public key (32 bytes)")]
Digest = Annotated[bytes, msgspec.Meta(min_length=DIGEST_BYTES, max_length=DIGEST_BYTES,
                                       description="a SHA-256 digest (32 bytes)")]
Wrapped = Annotated[bytes, msgspec.Meta(
    min_length=WRAPPED_KEY_BYTES, max_length=WRAPPED_KEY_BYTES,
    description="the content key sealed to one reader (80 bytes)")]
Nonce = Annotated[bytes, msgspec.Meta(min_length=NONCE_BYTES, max_length=NONCE_BYTES,
                                      description="the XChaCha20 nonce (24 bytes)")]
Commitment = Annotated[bytes, msgspec.Meta(
    min_length=COMMITMENT_BYTES, max_length=COMMITMENT_BYTES,
    description="SHA-256 commitment to the content (32 bytes)")]
CodeWrap = Annotated[bytes, msgspec.Meta(
    min_length=CODE_WRAP_BYTES, max_length=CODE_WRAP_BYTES,
    description="the content key under the claim code (48 bytes)")]
Number = Annotated[str, msgspec.Meta(pattern=f"^[0-9]{{{NUMBER_DIGITS}}}$",
                                     description=f"an invoice number: {NUMBER_DIGITS} digits")]
Total = Annotated[int, msgspec.Meta(ge=1, le=MAX_AMOUNT, description="fen")]
Quota = Annotated[int, msgspec.Meta(ge=0, le=MAX_QUOTA, description="fen")]
TaxId = Annotated[str, msgspec.Meta(min_length=1, description=(
    "the issuer's unified social credit code (18 characters; blanks and case are "
    "normalised)"))]
Reason = Literal["issue_error", "sales_return", "service_suspension", "sales_discount"]
"""`content.REASONS` as a type (a test keeps the two equal)."""


class Sealed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The sealed content (envelope.py, ADR 0012)."""

    ciphertext: Annotated[bytes, msgspec.Meta(min_length=16, max_length=MAX_CIPHERTEXT_BYTES)]
    nonce: Nonce
    commitment: Commitment
    readers: Annotated[list[tuple[Key, Wrapped]],
                       msgspec.Meta(min_length=1, max_length=MAX_READERS)]
    code_wrap: CodeWrap | None = None


class AuthoriseIssuerArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    issuer: Key
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_BYTES)]
    tax_id: TaxId
    quota: Quota


class IssuerArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    issuer: Key


class SetQuotaArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    issuer: Key
    quota: Quota


class SetAuditorsArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: Annotated[list[Key], msgspec.Meta(min_length=1, max_length=MAX_AUDITORS)]


class IssueArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A titled buyer (`holder`), or a buyer named without a member key (`claim_digest`
    and `sealed.code_wrap`)."""

    number: Number
    total: Total
    sealed: Sealed
    holder: Key | None = None
    claim_digest: Digest | None = None


class IssueBatchArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    invoices: Annotated[list[IssueArgs], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class RedLetterArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    number: Number
    original: Number
    reason: Reason
    total: Total
    sealed: Sealed


class AskReversalArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    original: Number
    reason: Reason
    total: Total


class OriginalArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    original: Number


class ClaimArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`code` for a buyer named without a member key, with the content key `wrapped`
    to itself."""

    number: Number
    code: Annotated[bytes, msgspec.Meta(min_length=1,
                                        max_length=MAX_CLAIM_CODE_BYTES)] | None = None
    wrapped: Wrapped | None = None


class SubmitArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`wrapped`: the content key sealed to the employer (unless it reads already)."""

    number: Number
    employer: Key
    wrapped: Wrapped | None = None


class NumberArgs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    number: Number
