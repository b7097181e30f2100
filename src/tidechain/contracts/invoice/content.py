"""Invoice content: numbers, buyers, line items and amounts. The content is sealed
(ADR 0012), so these checks run where it is readable: in the client that seals it
(`client/txbuilder.py`, `client/sealing.py`) and in every reader that opens it. The
contract uses the small checks (numbers, keys, tax ids) on its public arguments.

Amounts are integers in the smallest currency unit (fen). Per line:

* ``amount = quantity * unit_price``
* ``tax = (amount * tax_rate_bp + 5000) // 10000``: the tax rate in basis points
  (1300 = 13 %), rounded half up to the fen, per line.

Per invoice: ``amount = sum of line amounts``, ``tax = sum of line taxes``,
``total = amount + tax``. The client states every figure; the chain recomputes and
refuses a mismatch (`bad_amount`).
"""

from __future__ import annotations

from typing import Any

from tidechain.core.errors import ContractError, Rejected
from tidechain.core.limits import MAX_NAME_BYTES
from tidechain.identity.uscc import validate_uscc

NUMBER_DIGITS = 20
"""An invoice number is 20 decimal digits (the fully digitised e-invoice format)."""
MAX_LINES = 16
"""Line items per invoice: keeps a batch of MAX_BATCH invoices inside one transaction."""
MAX_QUANTITY = 10**9
MAX_UNIT_PRICE = 10**12
MAX_AMOUNT = 10**15
"""Any amount or total, in fen (10 trillion yuan): far above any real invoice, far
below CBOR's 64-bit integers even when summed over an issuer's lifetime quota."""
MAX_TAX_RATE_BP = 10_000
BASIS_POINTS = 10_000
MAX_REMARK_BYTES = 256
MAX_UNIT_BYTES = 32
KEY_BYTES = 32
DIGEST_BYTES = 32

REASONS = ("issue_error", "sales_return", "service_suspension", "sales_discount")
"""Why a red-letter invoice reverses its original."""


def bad(reason: str, code: str = "bad_argument") -> ContractError:
    return ContractError(reason, code=code)


def check_keys(args: Any, allowed: set[str], what: str) -> dict[str, Any]:
    """`args` as a map with no keys beyond `allowed`."""
    if not isinstance(args, dict):
        raise bad(f"{what} must be a map")
    unknown = set(args) - allowed
    if unknown:
        raise bad(f"unknown field(s) in {what}: {sorted(map(str, unknown))}")
    return args


def check_int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(f"'{name}' must be an integer in {low}..{high}")
    return value


def check_text(value: Any, name: str, max_bytes: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) \
            or len(value.encode()) > max_bytes:
        raise bad(f"'{name}' must be text of 1..{max_bytes} bytes")
    return value


def check_key(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != KEY_BYTES:
        raise bad(f"'{name}' must be a {KEY_BYTES}-byte Ed25519 public key")
    return value


def check_number(value: Any, name: str = "number") -> str:
    """An invoice number: exactly 20 ASCII digits."""
    if not isinstance(value, str) or len(value) != NUMBER_DIGITS \
            or not (value.isascii() and value.isdigit()):
        raise bad(f"'{name}' must be {NUMBER_DIGITS} digits")
    return value


def check_tax_id(value: Any) -> str:
    """A unified social credit code, normalised; `bad_uscc` if its check fails."""
    if not isinstance(value, str):
        raise bad("a tax id must be an 18-character unified social credit code")
    try:
        return validate_uscc(value)
    except Rejected as exc:
        raise bad(exc.reason, "bad_uscc") from None


def check_buyer(value: Any) -> dict[str, Any]:
    """The buyer: a member `key`, or a company `name` with its `uscc`, or both."""
    buyer = check_keys(value, {"key", "name", "uscc"}, "'buyer'")
    out: dict[str, Any] = {}
    if buyer.get("key") is not None:
        out["key"] = check_key(buyer["key"], "buyer.key")
    has_name, has_uscc = buyer.get("name") is not None, buyer.get("uscc") is not None
    if has_name != has_uscc:
        raise bad("a company buyer needs both 'name' and 'uscc'")
    if has_name:
        out["name"] = check_text(buyer["name"], "buyer.name", MAX_NAME_BYTES)
        out["uscc"] = check_tax_id(buyer["uscc"])
    if not out:
        raise bad("'buyer' needs a member 'key', or 'name' and 'uscc'")
    return out


def line_tax(amount: int, tax_rate_bp: int) -> int:
    """The tax of one line: rounded half up to the smallest unit."""
    return (amount * tax_rate_bp + BASIS_POINTS // 2) // BASIS_POINTS


def check_line(value: Any, position: int) -> dict[str, Any]:
    where = f"line {position}"
    line = check_keys(value, {"name", "spec", "unit", "quantity", "unit_price", "amount",
                              "tax_rate_bp", "tax"}, where)
    quantity = check_int(line.get("quantity"), f"{where}.quantity", 1, MAX_QUANTITY)
    price = check_int(line.get("unit_price"), f"{where}.unit_price", 0, MAX_UNIT_PRICE)
    amount = check_int(line.get("amount"), f"{where}.amount", 0, MAX_AMOUNT)
    rate = check_int(line.get("tax_rate_bp"), f"{where}.tax_rate_bp", 0, MAX_TAX_RATE_BP)
    tax = check_int(line.get("tax"), f"{where}.tax", 0, MAX_AMOUNT)
    if amount != quantity * price:
        raise bad(f"{where}: amount {amount} is not quantity {quantity} x unit price "
                  f"{price} = {quantity * price}", "bad_amount")
    if tax != line_tax(amount, rate):
        raise bad(f"{where}: tax {tax} should be {line_tax(amount, rate)} "
                  f"({amount} at {rate} bp, rounded half up)", "bad_amount")
    checked = {"name": check_text(line.get("name"), f"{where}.name", MAX_NAME_BYTES),
               "quantity": quantity, "unit_price": price, "amount": amount,
               "tax_rate_bp": rate, "tax": tax}
    # The fully digitised e-invoice's optional item fields: specification/model
    # (规格型号) and unit of measure (单位).
    for field, limit in (("spec", MAX_NAME_BYTES), ("unit", MAX_UNIT_BYTES)):
        if line.get(field) is not None:
            checked[field] = check_text(line[field], f"{where}.{field}", limit)
    return checked


def check_lines(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LINES:
        raise bad(f"'lines' must be a list of 1..{MAX_LINES} line items")
    return [check_line(line, i) for i, line in enumerate(value)]


def check_totals(lines: list[dict[str, Any]], amount: Any, tax: Any,
                 total: Any) -> tuple[int, int, int]:
    """The stated invoice figures, if they are the sums of the lines."""
    stated = (check_int(amount, "amount", 0, MAX_AMOUNT), check_int(tax, "tax", 0, MAX_AMOUNT),
              check_int(total, "total", 0, MAX_AMOUNT))
    want_amount = sum(line["amount"] for line in lines)
    want_tax = sum(line["tax"] for line in lines)
    expected = (want_amount, want_tax, want_amount + want_tax)
    if stated != expected:
        raise bad(f"invoice (amount, tax, total) {stated} should be {expected}", "bad_amount")
    return expected


BLUE_FIELDS = {"number", "buyer", "lines", "amount", "tax", "total", "remark",
               "claim_digest", "source", "drawer"}
RED_FIELDS = {"number", "original", "reason", "lines", "amount", "tax", "total", "remark",
              "source"}
SOURCE_FORMATS = ("ubl-2.1-invoice", "ubl-2.1-creditnote")
MAX_SOURCE_ID_BYTES = 128


def check_source(value: Any) -> dict[str, Any] | None:
    """The document an invoice was imported from (client/ubl.py): its format, its own
    ID, its currency, the ID of the invoice a credit note corrects, and the SHA-256 of
    its bytes, anchored under the content's commitment."""
    if value is None:
        return None
    source = check_keys(value, {"format", "sha256", "id", "currency", "original_id"},
                        "'source'")
    if source.get("format") not in SOURCE_FORMATS:
        raise bad(f"'source.format' must be one of {', '.join(SOURCE_FORMATS)}")
    digest = source.get("sha256")
    if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise bad(f"'source.sha256' must be {DIGEST_BYTES} bytes")
    currency = source.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not (
            currency.isascii() and currency.isupper() and currency.isalpha()):
        raise bad("'source.currency' must be an ISO 4217 code (three capital letters): "
                  "the invoice's amounts are in its minor unit")
    checked = {"format": source["format"], "sha256": digest, "currency": currency,
               "id": check_text(source.get("id"), "source.id", MAX_SOURCE_ID_BYTES)}
    if source.get("original_id") is not None:
        checked["original_id"] = check_text(source["original_id"], "source.original_id",
                                            MAX_SOURCE_ID_BYTES)
    return checked


def _with_source(content: dict[str, Any], source: Any) -> dict[str, Any]:
    checked = check_source(source)
    if checked is not None:
        content["source"] = checked
    return content


def check_blue(args: Any) -> dict[str, Any]:
    """An invoice to issue: its number, content (one CBOR map) and claim digest."""
    invoice = check_keys(args, BLUE_FIELDS, "the invoice")
    number = check_number(invoice.get("number"))
    buyer = check_buyer(invoice.get("buyer"))
    digest = invoice.get("claim_digest")
    if "key" in buyer:
        if digest is not None:
            raise bad("'claim_digest' is only for a buyer named without a member key")
    elif not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise bad("a buyer named by name and USCC needs a 32-byte 'claim_digest' "
                  "(SHA-256 of the claim code handed over at the sale)")
    lines = check_lines(invoice.get("lines"))
    amount, tax, total = check_totals(lines, invoice.get("amount"), invoice.get("tax"),
                                      invoice.get("total"))
    if total == 0:
        raise bad("an invoice's total must be positive", "bad_amount")
    content = {"buyer": buyer, "lines": lines, "amount": amount, "tax": tax, "total": total,
               "remark": check_text(invoice.get("remark"), "remark", MAX_REMARK_BYTES,
                                    required=False)}
    if invoice.get("drawer") is not None:  # the person who issued it (开票人)
        content["drawer"] = check_text(invoice["drawer"], "drawer", MAX_NAME_BYTES)
    return {"number": number, "content": _with_source(content, invoice.get("source")),
            "claim_digest": digest}


def check_red(args: Any) -> dict[str, Any]:
    """A red-letter invoice: its own number, the original's, a reason and the
    reversed part as line items (positive figures: the amount taken back)."""
    red = check_keys(args, RED_FIELDS, "the red-letter invoice")
    number = check_number(red.get("number"))
    original = check_number(red.get("original"), "original")
    reason = red.get("reason")
    if reason not in REASONS:
        raise bad(f"'reason' must be one of {', '.join(REASONS)}")
    lines = check_lines(red.get("lines"))
    amount, tax, total = check_totals(lines, red.get("amount"), red.get("tax"),
                                      red.get("total"))
    if total == 0:
        raise bad("a red-letter invoice must reverse a positive total", "bad_amount")
    content = {"original": original, "reason": reason, "lines": lines, "amount": amount,
               "tax": tax, "total": total,
               "remark": check_text(red.get("remark"), "remark", MAX_REMARK_BYTES,
                                    required=False)}
    return {"number": number, "original": original,
            "content": _with_source(content, red.get("source"))}
