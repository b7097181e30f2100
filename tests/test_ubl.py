"""UBL 2.1 import (client/ubl.py) over the real EN 16931 examples in
../shared/vectors/ubl: exact mappings checked against each document's own totals,
refusals with the element and the reason, safe parsing, and the decimal conversion."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.client import ubl
from tidechain.contracts.invoice import content
from tidechain.core.errors import DecodeError, Rejected, TooLarge

VECTORS = Path(__file__).resolve().parents[1] / ".." / "shared" / "vectors" / "ubl"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
CAC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"
NUMBER = "04400000000000000101"
RED_NUMBER = "04400000000000000102"
BUYER_KEY = bytes(range(32))
VALID_USCC = "91350100M000100Y43"

MAPPED = {"ubl-tc434-example4.xml", "ubl-tc434-example6.xml", "ubl-tc434-example7.xml",
          "ubl-tc434-example9.xml", "ubl-tc434-creditnote1.xml"}
REFUSED = {  # file: (path of the element refused, words of the reason)
    "ubl-tc434-example1.xml": ("Invoice/cac:InvoiceLine", "20 lines"),
    "ubl-tc434-example10.xml": ("Invoice/cac:InvoiceLine", "20 lines"),
    "ubl-tc434-example2.xml": ("Invoice/cac:InvoiceLine[1]/cac:AllowanceCharge[1]",
                               "line allowances"),
    "ubl-tc434-example3.xml": ("Invoice/cac:InvoiceLine[1]/cbc:LineExtensionAmount",
                               "not quantity x net price"),
    "ubl-tc434-example5.xml": ("Invoice/cac:InvoiceLine[1]/cac:AllowanceCharge[1]",
                               "line allowances"),
    "ubl-tc434-example8.xml": ("Invoice/cac:InvoiceLine[1]/cbc:InvoicedQuantity",
                               "whole number of minor units"),
}


def _read(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def _map(name: str, data: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
    data = _read(name) if data is None else data
    if "creditnote" in name:
        return ubl.red_letter_args(data, RED_NUMBER, NUMBER,
                                   reason=kwargs.pop("reason", "sales_return"), **kwargs)
    return ubl.invoice_args(data, NUMBER, buyer_key=kwargs.pop("buyer_key", BUYER_KEY),
                            **kwargs)


def _minor(element: ET.Element | None, exponent: int = 2) -> int:
    assert element is not None and element.text is not None
    value = Fraction(element.text.strip()) * 10**exponent
    assert value.denominator == 1
    return value.numerator


def test_every_vector_is_classified() -> None:
    names = {path.name for path in VECTORS.glob("*.xml")}
    assert names, f"no UBL vectors in {VECTORS}"
    assert names == MAPPED | set(REFUSED)


@pytest.mark.parametrize("name", sorted(MAPPED))
def test_mapped_figures_are_the_documents_own(name: str) -> None:
    data = _read(name)
    args = _map(name)
    doc = ET.fromstring(data)  # an independent read of the document's figures
    totals = doc.find(f"{CAC}LegalMonetaryTotal")
    assert totals is not None
    exponent = ubl.currency_exponent(args["source"]["currency"], "test")
    assert args["amount"] == _minor(totals.find(f"{CBC}TaxExclusiveAmount"), exponent)
    assert args["total"] == _minor(totals.find(f"{CBC}TaxInclusiveAmount"), exponent)
    tax_totals = [t.find(f"{CBC}TaxAmount") for t in doc.findall(f"{CAC}TaxTotal")]
    assert args["tax"] in {_minor(t, exponent) for t in tax_totals}
    line_tag = "InvoiceLine" if doc.tag.endswith("Invoice") else "CreditNoteLine"
    stated = [_minor(line.find(f"{CBC}LineExtensionAmount"), exponent)
              for line in doc.findall(f"{CAC}{line_tag}")]
    assert [line["amount"] for line in args["lines"]] == stated
    for line in args["lines"]:
        assert line["quantity"] * line["unit_price"] == line["amount"]
        assert line["tax"] == content.line_tax(line["amount"], line["tax_rate_bp"])
    assert args["source"]["sha256"] == hashlib.sha256(data).digest()
    assert args["source"]["id"] == doc.findtext(f"{CBC}ID")
    assert args["source"]["currency"] == doc.findtext(f"{CBC}DocumentCurrencyCode")


def test_mapped_args_pass_the_chains_own_checks() -> None:
    for name in sorted(MAPPED):
        args = _map(name)
        fmt = ubl.UBL_CREDITNOTE if "creditnote" in name else ubl.UBL_INVOICE
        assert args["source"]["format"] == fmt
        check = content.check_red if "creditnote" in name else content.check_blue
        assert check(args)["content"]["source"] == args["source"]  # anchored in the content


def test_example_4_figures() -> None:
    args = _map("ubl-tc434-example4.xml")
    assert (args["amount"], args["tax"], args["total"]) == (400_000, 67_500, 467_500)
    assert [(line["quantity"], line["unit_price"], line["tax_rate_bp"])
            for line in args["lines"]] == [(1000, 100, 2500), (100, 500, 2500),
                                           (500, 500, 1200)]
    assert args["source"]["currency"] == "DKK"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unmappable_vectors_are_refused_with_the_element(name: str) -> None:
    path, words = REFUSED[name]
    with pytest.raises(ubl.UblUnmappable) as caught:
        _map(name)
    assert caught.value.path == path
    assert words in caught.value.reason
    assert caught.value.code == "ubl_unmappable"


def test_document_charges_become_lines() -> None:
    # Example 3 states 2 x 800.00 = 800.00 per line; at the consistent price of 400.00
    # it maps, with its freight charge as a third line.
    data = _read("ubl-tc434-example3.xml").replace(
        b'<cbc:PriceAmount currencyID="DKK">800.00', b'<cbc:PriceAmount currencyID="DKK">400.00')
    args = _map("ubl-tc434-example3.xml", data)
    assert len(args["lines"]) == 3
    assert args["lines"][2]["name"].startswith("charge: ")
    assert (args["amount"], args["tax"], args["total"]) == (170_000, 30_500, 200_500)


def _synthetic(lines: list[tuple[str, str, str]], vat: str, net: str, gross: str) -> bytes:
    """A minimal EN 16931 invoice in EUR: lines of (quantity, price, amount) at 25 %."""
    body = "".join(
        f"<cac:InvoiceLine><cbc:ID>{i}</cbc:ID><cbc:InvoicedQuantity>{q}"
        f"</cbc:InvoicedQuantity><cbc:LineExtensionAmount currencyID='EUR'>{a}"
        "</cbc:LineExtensionAmount><cac:Item><cbc:Name>item</cbc:Name>"
        "<cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent>"
        "</cac:ClassifiedTaxCategory></cac:Item><cac:Price><cbc:PriceAmount "
        f"currencyID='EUR'>{p}</cbc:PriceAmount></cac:Price></cac:InvoiceLine>"
        for i, (q, p, a) in enumerate(lines, 1))
    return (
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
        f'xmlns:cac="{CAC[1:-1]}" xmlns:cbc="{CBC[1:-1]}"><cbc:ID>S-1</cbc:ID>'
        "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>"
        "<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
        "<cac:AccountingCustomerParty><cac:Party><cac:PartyLegalEntity><cbc:RegistrationName>"
        "B</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party>"
        "</cac:AccountingCustomerParty>"
        f"<cac:TaxTotal><cbc:TaxAmount currencyID='EUR'>{vat}</cbc:TaxAmount>"
        f"<cac:TaxSubtotal><cbc:TaxableAmount currencyID='EUR'>{net}</cbc:TaxableAmount>"
        f"<cbc:TaxAmount currencyID='EUR'>{vat}</cbc:TaxAmount><cac:TaxCategory>"
        "<cbc:ID>S</cbc:ID><cbc:Percent>25</cbc:Percent></cac:TaxCategory></cac:TaxSubtotal>"
        "</cac:TaxTotal><cac:LegalMonetaryTotal>"
        f"<cbc:LineExtensionAmount currencyID='EUR'>{net}</cbc:LineExtensionAmount>"
        f"<cbc:TaxExclusiveAmount currencyID='EUR'>{net}</cbc:TaxExclusiveAmount>"
        f"<cbc:TaxInclusiveAmount currencyID='EUR'>{gross}</cbc:TaxInclusiveAmount>"
        f"<cbc:PayableAmount currencyID='EUR'>{gross}</cbc:PayableAmount>"
        f"</cac:LegalMonetaryTotal>{body}</Invoice>").encode()


def test_vat_rounded_on_the_category_sum_is_refused() -> None:
    # Three lines of 0.33 at 25 %: per line 0.0825 -> 0.08 (0.24 in all); EN 16931
    # rounds the category sum, 0.2475 -> 0.25.
    doc = _synthetic([("1", "0.33", "0.33")] * 3, vat="0.25", net="0.99", gross="1.24")
    with pytest.raises(ubl.UblUnmappable, match="per-line half-up rounding gives 24") \
            as caught:
        ubl.invoice_args(doc, NUMBER, buyer_key=BUYER_KEY)
    assert caught.value.path == "Invoice/cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount"
    same = _synthetic([("1", "0.33", "0.33")] * 3, vat="0.24", net="0.99", gross="1.23")
    with pytest.raises(ubl.UblUnmappable, match="TaxInclusiveAmount: 125 minor units"):
        ubl.invoice_args(same.replace(b">1.23<", b">1.25<"), NUMBER, buyer_key=BUYER_KEY)
    args = ubl.invoice_args(same, NUMBER, buyer_key=BUYER_KEY)
    assert (args["amount"], args["tax"], args["total"]) == (99, 24, 123)


def test_base_quantity_and_decimal_quantity() -> None:
    # 2.5 kg at 4.00 per 0.5 kg: 5 base quantities of 4.00 -> quantity 5 x 400.
    doc = _synthetic([("2.5", "4.00", "20.00")], vat="5.00", net="20.00", gross="25.00")
    doc = doc.replace(b"</cbc:PriceAmount>",
                      b"</cbc:PriceAmount><cbc:BaseQuantity>0.5</cbc:BaseQuantity>")
    line = ubl.invoice_args(doc, NUMBER, buyer_key=BUYER_KEY)["lines"][0]
    assert (line["quantity"], line["unit_price"], line["amount"]) == (5, 400, 2000)
    # 3 units at 0.125 per unit: price finer than a cent, quantity whole -> refused.
    fine = _synthetic([("3", "0.125", "0.38")], vat="0.10", net="0.38", gross="0.48")
    with pytest.raises(ubl.UblUnmappable, match="whole number"):
        ubl.invoice_args(fine, NUMBER, buyer_key=BUYER_KEY)
    # 16 units at 0.125 per 2 units: neither 16 at 6.25 cents nor 8 at 12.5 cents.
    with pytest.raises(ubl.UblUnmappable):
        ubl.invoice_args(_synthetic([("16", "0.125", "1.00")], vat="0.25", net="1.00",
                                    gross="1.25").replace(
            b"</cbc:PriceAmount>", b"</cbc:PriceAmount><cbc:BaseQuantity>2</cbc:BaseQuantity>"),
            NUMBER, buyer_key=BUYER_KEY)


def test_buyer_by_uscc_needs_a_claim_digest() -> None:
    data = _read("ubl-tc434-example9.xml")
    assert b"<cac:AccountingCustomerParty>" in data
    head, tail = data.split(b"<cac:AccountingCustomerParty>")
    tail = tail.replace(b"</cbc:RegistrationName>",
                        f"</cbc:RegistrationName><cbc:CompanyID>{VALID_USCC}</cbc:CompanyID>"
                        .encode(), 1)
    doc = head + b"<cac:AccountingCustomerParty>" + tail
    args = ubl.invoice_args(doc, NUMBER, claim_digest=b"\x01" * 32)
    assert args["buyer"] == {"name": "Provide Verzekeringen", "uscc": VALID_USCC}
    with pytest.raises(Rejected, match="claim_digest"):
        ubl.invoice_args(doc, NUMBER)
    both = ubl.invoice_args(doc, NUMBER, buyer_key=BUYER_KEY)
    assert both["buyer"]["key"] == BUYER_KEY and both["buyer"]["uscc"] == VALID_USCC


def test_buyer_without_uscc_or_key_is_refused() -> None:
    with pytest.raises(ubl.UblUnmappable, match="member key") as caught:
        ubl.invoice_args(_read("ubl-tc434-example9.xml"), NUMBER)
    assert caught.value.path == "Invoice/cac:AccountingCustomerParty/cac:Party"


def test_credit_note_reason_and_billing_reference() -> None:
    data = _read("ubl-tc434-creditnote1.xml")
    with pytest.raises(ubl.UblUnmappable, match="reason"):
        ubl.red_letter_args(data, RED_NUMBER, NUMBER)
    noted = data.replace(b"<cbc:DocumentCurrencyCode>",
                         b"<cbc:Note>sales_discount</cbc:Note><cbc:DocumentCurrencyCode>")
    referenced = noted.replace(
        b"<cac:AccountingSupplierParty>",
        b"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>INV-7</cbc:ID>"
        b"</cac:InvoiceDocumentReference></cac:BillingReference>"
        b"<cac:AccountingSupplierParty>")
    args = ubl.red_letter_args(referenced, RED_NUMBER, NUMBER)
    assert args["reason"] == "sales_discount" and args["original"] == NUMBER
    assert args["source"]["original_id"] == "INV-7"
    assert args["source"]["sha256"] == hashlib.sha256(referenced).digest()
    assert "original_id" not in ubl.red_letter_args(noted, RED_NUMBER, NUMBER)["source"]


def test_wrong_kind_and_type_code_are_refused() -> None:
    with pytest.raises(DecodeError, match="expected a UBL CreditNote"):
        ubl.red_letter_args(_read("ubl-tc434-example4.xml"), RED_NUMBER, NUMBER,
                            reason="issue_error")
    with pytest.raises(DecodeError, match="expected a UBL Invoice"):
        ubl.invoice_args(_read("ubl-tc434-creditnote1.xml"), NUMBER, buyer_key=BUYER_KEY)
    self_billed = _read("ubl-tc434-example4.xml").replace(
        b"<cbc:InvoiceTypeCode>380<", b"<cbc:InvoiceTypeCode>389<")
    with pytest.raises(ubl.UblUnmappable) as caught:
        _map("ubl-tc434-example4.xml", self_billed)
    assert caught.value.path == "Invoice/cbc:InvoiceTypeCode"


def test_amount_in_another_currency_is_refused() -> None:
    data = _read("ubl-tc434-example9.xml").replace(
        b'<cbc:PriceAmount currencyID="EUR">', b'<cbc:PriceAmount currencyID="USD">')
    with pytest.raises(ubl.UblUnmappable, match="amount in USD"):
        _map("ubl-tc434-example9.xml", data)


# --- safe parsing ----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol2;</Invoice>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&xxe;</Invoice>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY,
                                  b'<!DOCTYPE Invoice SYSTEM "http://127.0.0.1/x.dtd"><a/>'])
def test_doctype_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError, match="DOCTYPE"):
        ubl.parse_xml(data)


def test_bounds_and_malformed_input() -> None:
    with pytest.raises(TooLarge):
        ubl.parse_xml(b"<a>" + b" " * (2 * 1024 * 1024) + b"</a>")
    with pytest.raises(DecodeError, match="deeper"):
        ubl.parse_xml(b"<a>" * 40 + b"</a>" * 40)
    with pytest.raises(DecodeError, match="well-formed"):
        ubl.parse_xml(b"<Invoice><unclosed></Invoice>")
    with pytest.raises(DecodeError, match="not a UBL"):
        ubl.invoice_args(b"<Invoice/>", NUMBER, buyer_key=BUYER_KEY)


def test_every_vector_is_schema_valid() -> None:
    for path in sorted(VECTORS.glob("*.xml")):
        ubl.validate_schema(path.read_bytes())
    args = _map("ubl-tc434-example4.xml", validate=True)
    assert args["total"] == 467_500


def test_schema_invalid_document_is_refused() -> None:
    data = _read("ubl-tc434-example4.xml").replace(b"<cbc:IssueDate>", b"<cbc:IssueDay>") \
        .replace(b"</cbc:IssueDate>", b"</cbc:IssueDay>")
    with pytest.raises(Rejected) as caught:
        ubl.validate_schema(data)
    assert caught.value.code == "ubl_schema"


# --- exact decimals --------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(units=st.integers(-10**15, 10**15), exponent=st.integers(0, 4),
       padding=st.integers(0, 3), plus=st.booleans())
def test_minor_units_round_trip(units: int, exponent: int, padding: int, plus: bool) -> None:
    whole, part = divmod(abs(units), 10**exponent)
    text = str(whole) + (f".{part:0{exponent}d}" + "0" * padding if exponent else "")
    sign = "-" if units < 0 else ("+" if plus else "")
    assert ubl.to_minor_units(f" {sign}{text} ", exponent, "x") == units


@settings(max_examples=300, deadline=None)
@given(units=st.integers(0, 10**12), exponent=st.integers(0, 4), extra=st.integers(1, 9))
def test_finer_than_the_minor_unit_is_refused(units: int, exponent: int, extra: int) -> None:
    whole, part = divmod(units, 10**exponent)
    text = f"{whole}." + (f"{part:0{exponent}d}" if exponent else "") + str(extra)
    with pytest.raises(ubl.UblUnmappable, match="whole number of minor units") as caught:
        ubl.to_minor_units(text, exponent, "Invoice/cbc:X")
    assert caught.value.path == "Invoice/cbc:X"


@pytest.mark.parametrize("text", ["", ".", "1e3", "1,5", "0x10", "1_000", "--1", "1.2.3",
                                  "NaN", "1" * 41])
def test_non_decimals_are_refused(text: str) -> None:
    with pytest.raises(ubl.UblUnmappable, match="not a decimal"):
        ubl.parse_decimal(text, "x")


@settings(max_examples=200, deadline=None)
@given(bp=st.integers(0, 10_000))
def test_percent_to_basis_points(bp: int) -> None:
    assert ubl.percent_to_bp(f"{bp // 100}.{bp % 100:02d}", "x") == bp
    assert ubl.percent_to_bp(str(Fraction(bp, 100)) if bp % 100 == 0 else
                             f"{bp / 100:.2f}", "x") == bp


@pytest.mark.parametrize("text", ["6.125", "100.01", "-1"])
def test_inexact_or_out_of_range_rates_are_refused(text: str) -> None:
    with pytest.raises(ubl.UblUnmappable, match="basis points"):
        ubl.percent_to_bp(text, "x")


def test_currency_exponents() -> None:
    assert [ubl.currency_exponent(c, "x") for c in ("CNY", "EUR", "JPY", "KWD", "CLF")] \
        == [2, 2, 0, 3, 4]
    for code in ("XAU", "XXX", "EUX", "cny", ""):
        with pytest.raises(ubl.UblUnmappable):
            ubl.currency_exponent(code, "x")
