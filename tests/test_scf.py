"""Supply-chain finance (contracts/scf, issue 13, acceptance 2): one test per rule with
its refusal code, the discount arithmetic, settlement at maturity (a transfer
unaccepted goes back to its sender, an issue unaccepted lapses), the red-letter flag,
and every query's answer on a small scenario. Through an in-process chain
(tests/scf_net.py); the stateful model test is tests/test_scf_model.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scf_net import (
    BANK,
    BANK2,
    CORE,
    CORE2,
    DAY_MS,
    DEPOSITOR,
    INVOICE_FEN,
    ISSUER,
    REG,
    SUP1,
    SUP2,
    SUP3,
    ScfNet,
    number,
    pub,
    trading_net,
    two_org_genesis,
)
from tidechain.contracts import invoice, scf
from tidechain.contracts.scf import queries
from tidechain.contracts.scf.contract import (
    CEILING_MATURITY_MS,
    DEFAULT_MAX_MATURITY_MS,
    DEFAULT_MIN_SPLIT_FEN,
    MAX_BACKING_INVOICES,
    MAX_SETTLE_BATCH,
    MAX_TIERS_PARAM,
    MIN_SPLIT_PARAM,
)
from tidechain.contracts.scf.state import funder_stats, get_line, invoice_backed
from tidechain.core.crypto import sha256
from tidechain.core.errors import NotFound
from tidechain.ledger.application import NoParams, PageRequest
from tidechain.ledger.runtime import governed_param
from tidechain.ledger.types import TxResult

CONTRACT = sha256(b"supply contract 2026-001")
HALF = INVOICE_FEN // 2
MIN = DEFAULT_MIN_SPLIT_FEN


def issue_args(net: ScfNet, to: int = SUP1, amount: int = HALF, days: int = 30,
               invoices: tuple[int, ...] = (1,), maturity: int | None = None
               ) -> dict[str, Any]:
    """`scf.issue` arguments; the maturity `days` after the block the call goes in."""
    return {"to": pub(to), "amount": amount,
            "maturity": net.now + 1 + days * DAY_MS if maturity is None else maturity,
            "contract": CONTRACT, "invoices": [number(n) for n in invoices]}


def ok(result: TxResult) -> dict[str, Any]:
    """The data of the call's first event (the call must have succeeded)."""
    assert result.error == "", result
    return result.events[0].data


def issued(net: ScfNet, core: int = CORE, **kw: Any) -> int:
    return int(ok(net.call(core, "scf", "issue", issue_args(net, **kw)))["id"])


def accepted(net: ScfNet, to: int = SUP1, **kw: Any) -> int:
    cert_id = issued(net, to=to, **kw)
    assert net.do(to, "accept", {"id": cert_id}) == ""
    return cert_id


def split(net: ScfNet, holder: int, cert_id: int, *parts: tuple[int, int]) -> list[int]:
    """Split `cert_id` into parts (recipient, fen): the children's ids, parts first."""
    data = ok(net.call(holder, "scf", "split", {
        "id": cert_id, "parts": [{"to": pub(to), "amount": fen} for to, fen in parts]}))
    return list(data["children"])


def parts(*pairs: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"to": pub(to), "amount": fen} for to, fen in pairs]


def status(net: ScfNet, cert_id: int) -> str:
    return scf.effective(net.certificate(cert_id), net.chain.head_time_ms)[0]


def line(net: ScfNet, core: int = CORE) -> dict[str, Any]:
    found = get_line(net.chain.state, pub(core))
    assert found is not None
    return found


def view_cert(net: ScfNet, cert_id: int) -> queries.Certificate:
    return queries.certificate(net.view(), queries.IdParams(cert_id))


def wait_until(net: ScfNet, time_ms: int) -> None:
    """An empty block at `time_ms`."""
    assert time_ms > net.now
    net.run(advance_ms=time_ms - net.now)


# --- credit lines ------------------------------------------------------------------------------


def test_no_line_over_line_and_a_line_never_below_what_is_outstanding() -> None:
    net = trading_net()
    net.invoice(10, buyer=CORE2)
    assert net.do(CORE2, "issue", issue_args(net, invoices=(10,))) == "no_line"
    assert net.do(BANK, "set_line", {"core": pub(CORE2), "limit": 0}) == ""
    assert net.do(CORE2, "issue", issue_args(net, amount=1, invoices=(10,))) == "over_line"
    # CORE's line is 2 invoices' worth; three invoices back 3.
    over = issue_args(net, amount=2 * INVOICE_FEN + 1, invoices=(1, 2, 3))
    assert net.do(CORE, "issue", over) == "over_line"
    first = issued(net, amount=INVOICE_FEN + HALF, invoices=(1, 2))
    assert net.do(CORE, "issue", issue_args(net, amount=HALF + 1, invoices=(3,))) == \
        "over_line"
    assert line(net)["outstanding"] == INVOICE_FEN + HALF
    for limit in (0, INVOICE_FEN + HALF - 1):
        assert net.do(BANK, "set_line", {"core": pub(CORE), "limit": limit}) == \
            "below_outstanding"
    # The funder that granted the line raises or lowers it; another funder may not.
    assert net.do(BANK2, "set_line", {"core": pub(CORE), "limit": 3 * INVOICE_FEN}) == \
        "not_line_funder"
    assert net.do(BANK, "set_line", {"core": pub(CORE), "limit": INVOICE_FEN + HALF}) == ""
    assert line(net) == {"limit": INVOICE_FEN + HALF, "outstanding": INVOICE_FEN + HALF,
                         "funder": pub(BANK)}
    # Only a funder sets a line, and only for an enterprise in good standing.
    assert net.do(CORE, "set_line", {"core": pub(CORE), "limit": 1}) == "forbidden"
    for who in (BANK, DEPOSITOR, REG):
        assert net.do(BANK, "set_line", {"core": pub(who), "limit": 1}) == "bad_counterparty"
    # A refused issue frees its part of the line.
    assert net.do(SUP1, "refuse", {"id": first}) == ""
    assert line(net)["outstanding"] == 0
    assert net.do(BANK, "set_line", {"core": pub(CORE), "limit": 0}) == ""


# --- issue -------------------------------------------------------------------------------------


def test_maturity_after_now_within_the_governed_term_never_beyond_a_year() -> None:
    net = trading_net()
    for ahead in (-1, 0, DEFAULT_MAX_MATURITY_MS + 1):
        at = net.now + 1  # the block time of the next call
        assert net.do(CORE, "issue", issue_args(net, amount=1, maturity=at + ahead)) == \
            "bad_maturity"
    assert net.do(CORE, "issue", issue_args(net, amount=1, maturity=net.now + 2)) == ""
    at = net.now + 1
    assert net.do(CORE, "issue", issue_args(net, amount=1,
                                            maturity=at + DEFAULT_MAX_MATURITY_MS)) == ""
    # Governance shortens the term...
    assert net.set_param("scf.max_maturity_ms", 30 * DAY_MS) == ""
    assert governed_param(net.chain.state, "scf.max_maturity_ms") == 30 * DAY_MS
    assert net.do(CORE, "issue", issue_args(net, amount=1, days=31)) == "bad_maturity"
    assert net.do(CORE, "issue", issue_args(net, amount=1, days=30)) == ""
    # ... or lengthens it, never beyond a year (nor below a day).
    for value in (CEILING_MATURITY_MS + 1, 400 * DAY_MS, DAY_MS - 1, "183d"):
        assert net.set_param("scf.max_maturity_ms", value) == "bad_argument"
    assert governed_param(net.chain.state, "scf.max_maturity_ms") == 30 * DAY_MS
    assert net.set_param("scf.max_maturity_ms", CEILING_MATURITY_MS) == ""
    assert net.do(CORE, "issue", issue_args(net, amount=1, days=365)) == ""
    at = net.now + 1
    assert net.do(CORE, "issue", issue_args(
        net, amount=1, maturity=at + CEILING_MATURITY_MS + 1)) == "bad_maturity"


def test_the_trade_background_backs_up_to_its_total_never_twice_over() -> None:
    net = trading_net()
    assert net.do(CORE, "issue", issue_args(net, invoices=(9,))) == "no_invoice"
    assert net.do(CORE, "issue", issue_args(net, invoices=(1, 1))) == "bad_argument"
    assert net.do(CORE, "issue", issue_args(net, amount=INVOICE_FEN + 1)) == \
        "insufficient_background"
    first = issued(net, amount=HALF + HALF // 2)  # 3/4 of invoice 1
    assert invoice_backed(net.chain.state, number(1)) == HALF + HALF // 2
    assert net.do(CORE, "issue", issue_args(net, amount=HALF)) == "insufficient_background"
    # Invoices back in the order cited: the rest of 1, then 2.
    second = issued(net, amount=HALF, invoices=(1, 2))
    assert net.certificate(second)["background"]["invoices"] == [
        [number(1), HALF // 2], [number(2), HALF // 2]]
    assert (invoice_backed(net.chain.state, number(1)),
            invoice_backed(net.chain.state, number(2))) == (INVOICE_FEN, HALF // 2)
    # A fully used invoice cited first is passed over; every one cited is checked, also
    # one after those that cover the amount.
    third = issued(net, amount=HALF // 2, invoices=(1, 2))
    assert net.certificate(third)["background"]["invoices"] == [[number(2), HALF // 2]]
    assert net.do(CORE, "issue", issue_args(net, amount=1, invoices=(2, 9))) == "no_invoice"
    # A refused issue frees its invoices.
    assert net.do(SUP1, "refuse", {"id": first}) == ""
    assert invoice_backed(net.chain.state, number(1)) == HALF // 2
    assert issued(net, amount=HALF + HALF // 2, invoices=(1,)) == third + 1


def test_a_reversal_lowers_what_an_invoice_backs_and_a_later_one_is_flagged() -> None:
    net = trading_net()
    assert net.red_letter(1, 50, HALF) == ""  # before any certificate
    assert net.do(CORE, "issue", issue_args(net, amount=HALF + 1)) == "insufficient_background"
    cert_id = accepted(net, amount=HALF)
    assert not view_cert(net, cert_id).flagged  # reversed before the issue: not flagged
    [part, rest] = split(net, SUP1, cert_id, (SUP2, MIN))
    assert net.red_letter(1, 51, 1) == ""  # after it: every certificate under it shows it
    for shown in (cert_id, part, rest):
        assert view_cert(net, shown).flagged
    lineage = queries.lineage(net.view(), queries.IdParams(part))
    assert lineage.background.flagged == [number(1)]
    assert [c.flagged for c in lineage.chain] == [True, True]
    # A certificate backed by other invoices is not.
    other = issued(net, amount=HALF, invoices=(2,))
    assert not view_cert(net, other).flagged
    # The flag reports the reversal; backed beyond total - reversed is not refused
    # after the fact, and nothing more is backed by that invoice.
    record = invoice.get_invoice(net.chain.state, number(1))
    assert record is not None and record["total"] - record["reversed"] == HALF - 1
    assert invoice_backed(net.chain.state, number(1)) == HALF
    assert net.do(CORE, "issue", issue_args(net, amount=1)) == "insufficient_background"


def test_only_invoices_between_the_two_organisations_are_trade_background() -> None:
    net = trading_net()
    named = net.invoice_to_name(20)  # no holder on chain: not the core enterprise's
    assert net.do(CORE, "issue", issue_args(net, invoices=(20,))) == "not_trade_background"
    assert net.red_letter(2, 21, 1) == ""  # a red-letter invoice backs nothing
    assert net.do(CORE, "issue", issue_args(net, amount=1, invoices=(21,))) == \
        "not_trade_background"
    assert named == number(20)
    # With CORE2 in its own organisation (tests/scf_net.two_org_genesis):
    net = trading_net(two_org_genesis())
    net.invoice(10, buyer=CORE2)
    assert net.do(BANK, "set_line", {"core": pub(CORE2), "limit": INVOICE_FEN}) == ""
    # ...CORE2 cannot cite CORE's invoices (bought by another organisation)...
    assert net.do(CORE2, "issue", issue_args(net, invoices=(1,))) == "not_trade_background"
    # ...nor may CORE cite them for a certificate to CORE2 (not CORE2's sales)...
    assert net.do(CORE, "issue", issue_args(net, to=CORE2)) == "not_trade_background"
    # ...but CORE2's own invoices back its certificate to a supplier of ISSUER's org.
    assert net.do(CORE2, "issue", issue_args(net, invoices=(10,))) == ""
    assert net.do(CORE2, "issue", issue_args(net, amount=1, invoices=(10, 1))) == \
        "not_trade_background"  # every invoice cited is checked


def test_issue_to_an_enterprise_in_good_standing_other_than_oneself() -> None:
    net = trading_net()
    assert net.do(CORE, "issue", issue_args(net, to=CORE)) == "bad_counterparty"
    for who in (BANK, DEPOSITOR, REG, ISSUER):
        assert net.do(CORE, "issue", issue_args(net, to=who)) == "bad_counterparty"
    for who in (BANK, DEPOSITOR, REG, ISSUER):
        assert net.do(who, "issue", issue_args(net)) == "forbidden"


# --- accept and refuse ------------------------------------------------------------------------


def test_only_the_recipient_accepts_or_refuses_a_pending_certificate() -> None:
    net = trading_net()
    cert_id = issued(net)
    assert net.do(SUP1, "accept", {"id": cert_id + 1}) == "not_found"
    assert net.do(SUP2, "accept", {"id": cert_id}) == "not_recipient"
    assert net.do(BANK, "refuse", {"id": cert_id}) == "not_recipient"
    assert net.do(CORE, "accept", {"id": cert_id}) == "not_recipient"
    assert net.do(REG, "accept", {"id": cert_id}) == "forbidden"
    # An unaccepted certificate cannot move.
    assert net.do(CORE, "split", {"id": cert_id, "parts": parts((SUP2, MIN))}) == "not_active"
    assert net.do(CORE, "finance", {"id": cert_id, "funder": pub(BANK), "rate_bp": 1}) == \
        "not_active"
    assert net.do(SUP1, "split", {"id": cert_id, "parts": parts((SUP2, MIN))}) == \
        "not_holder"
    assert net.do(SUP1, "accept", {"id": cert_id}) == ""
    assert (status(net, cert_id), net.certificate(cert_id)["holder"]) == ("active", pub(SUP1))
    assert net.do(SUP1, "accept", {"id": cert_id}) == "not_pending"
    assert net.do(SUP1, "refuse", {"id": cert_id}) == "not_pending"


def test_a_refused_issue_closes_and_a_refused_transfer_returns_to_its_sender() -> None:
    net = trading_net()
    refused = issued(net, amount=HALF)
    assert net.do(SUP1, "refuse", {"id": refused}) == ""
    record = net.certificate(refused)
    assert (record["status"], record["pending"]) == ("refused", None)
    assert (line(net)["outstanding"], invoice_backed(net.chain.state, number(1))) == (0, 0)
    assert queries.outstanding(net.view(), queries.CoreParams(pub(CORE).hex())).by_tier == []
    assert net.do(SUP1, "accept", {"id": refused}) == "not_pending"
    assert net.do(CORE, "settle", {"ids": [refused], "refs": ["R"]}) == "not_matured"

    cert_id = accepted(net, amount=HALF)
    [part, rest] = split(net, SUP1, cert_id, (SUP2, MIN))
    assert net.do(SUP2, "refuse", {"id": part}) == ""
    record = net.certificate(part)
    assert (record["status"], record["holder"], record["pending"]) == (
        "active", pub(SUP1), None)
    # The sender holds it again and may send it on; the line is unchanged.
    assert line(net)["outstanding"] == HALF
    assert net.certificate(part)["tier"] == 1  # back at its sender's tier
    assert split(net, SUP1, part, (SUP3, MIN)) == [rest + 1]
    assert net.certificate(rest + 1)["tier"] == 2  # sent on: one tier below its sender


# --- split and transfer -----------------------------------------------------------------------


def test_split_into_parts_for_suppliers_the_holder_keeping_the_remainder() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF)
    children = split(net, SUP1, cert_id, (SUP2, 10 * MIN), (SUP3, 5 * MIN))
    assert children == [cert_id + 1, cert_id + 2, cert_id + 3]
    records = [net.certificate(c) for c in children]
    assert [r["amount"] for r in records] == [10 * MIN, 5 * MIN, HALF - 15 * MIN]
    assert sum(r["amount"] for r in records) == HALF
    assert [r["tier"] for r in records] == [2, 2, 1]
    assert [r["holder"] for r in records] == [pub(SUP1)] * 3
    assert [r["pending"] for r in records] == [pub(SUP2), pub(SUP3), None]
    assert [r["status"] for r in records] == ["pending", "pending", "active"]
    assert {r["root"] for r in records} == {cert_id}
    parent = net.certificate(cert_id)
    assert (parent["status"], parent["children"]) == ("consumed", children)
    assert net.do(SUP1, "split", {"id": cert_id, "parts": parts((SUP2, MIN))}) == \
        "not_active"
    # An exact split leaves no remainder.
    assert net.do(SUP2, "accept", {"id": children[0]}) == ""
    assert split(net, SUP2, children[0], (SUP3, 4 * MIN), (SUP1, 6 * MIN)) == [
        children[2] + 1, children[2] + 2]
    outstanding = queries.outstanding(net.view(), queries.CoreParams(pub(CORE).hex()))
    assert outstanding.by_tier == [(1, HALF - 15 * MIN), (2, 5 * MIN), (3, 10 * MIN)]
    assert outstanding.outstanding == HALF


def test_split_refusals() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=20 * MIN)

    def trying(caller: int, *pairs: tuple[int, int]) -> str:
        return net.do(caller, "split", {"id": cert_id, "parts": parts(*pairs)})

    assert trying(SUP2, (SUP3, MIN)) == "not_holder"
    assert trying(CORE, (SUP3, MIN)) == "not_holder"
    assert trying(SUP1, (SUP2, 20 * MIN + 1)) == "over_amount"
    assert trying(SUP1, (SUP2, 10 * MIN), (SUP3, 10 * MIN + 1)) == "over_amount"
    assert trying(SUP1, (SUP2, MIN - 1)) == "below_min_split"
    assert trying(SUP1, (SUP2, 20 * MIN - MIN + 1)) == "below_min_split"  # the remainder
    assert trying(SUP1, (SUP1, MIN)) == "bad_counterparty"  # the remainder stays anyway
    for who in (BANK, DEPOSITOR, REG):
        assert trying(SUP1, (SUP2, MIN), (who, MIN)) == "bad_counterparty"
    too_many = [{"to": pub(SUP2), "amount": MIN}] * 11
    assert net.do(SUP1, "split", {"id": cert_id, "parts": too_many}) == "bad_argument"
    assert net.do(SUP1, "split", {"id": cert_id, "parts": []}) == "bad_argument"
    assert net.do(SUP1, "split", {"id": 99, "parts": parts((SUP2, MIN))}) == "not_found"
    assert net.do(REG, "split", {"id": cert_id, "parts": parts((SUP2, MIN))}) == "forbidden"
    # A governed minimum.
    assert net.set_param(MIN_SPLIT_PARAM, 2 * MIN) == ""
    assert trying(SUP1, (SUP2, 2 * MIN - 1)) == "below_min_split"
    assert trying(SUP1, (SUP2, 10 * MIN), (SUP3, 10 * MIN)) == ""
    assert net.set_param(MIN_SPLIT_PARAM, 0) == "bad_argument"
    # Nothing moves from maturity on.
    other = accepted(net, amount=2 * MIN, days=1)
    wait_until(net, net.certificate(other)["maturity"])
    assert net.do(SUP1, "split", {"id": other, "parts": parts((SUP2, MIN))}) == "matured"


def test_too_many_tiers_by_the_governed_number() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=10 * MIN)
    holder, chain = SUP1, [cert_id]
    for to in (SUP2, SUP3, SUP1, SUP2):  # tiers 2..5 (the default is 5)
        amount = net.certificate(chain[-1])["amount"]
        [part, _] = split(net, holder, chain[-1], (to, amount - MIN))
        assert net.do(to, "accept", {"id": part}) == ""
        holder = to
        chain.append(part)
    assert net.certificate(chain[-1])["tier"] == 5
    assert net.do(holder, "split", {"id": chain[-1], "parts": parts((SUP3, MIN))}) == \
        "too_many_tiers"
    # The remainder at tier 4 still splits into tier 5; governance lowers the bound.
    rest_at_4 = net.certificate(chain[-2])["children"][1]
    assert net.certificate(rest_at_4)["tier"] == 4
    assert net.set_param(MAX_TIERS_PARAM, 4) == ""
    assert net.do(SUP1, "split", {"id": rest_at_4, "parts": parts((SUP3, MIN))}) == \
        "too_many_tiers"
    assert net.set_param(MAX_TIERS_PARAM, 6) == ""
    assert net.do(holder, "split", {"id": chain[-1], "parts": parts((SUP3, MIN))}) == ""
    assert net.set_param(MAX_TIERS_PARAM, 21) == "bad_argument"


# --- finance ------------------------------------------------------------------------------------


def test_finance_freezes_until_the_funder_approves_or_declines() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF, days=90)
    ask = {"id": cert_id, "funder": pub(BANK), "rate_bp": 365}
    assert net.do(SUP2, "finance", ask) == "not_holder"
    assert net.do(SUP1, "finance", {**ask, "funder": pub(SUP2)}) == "bad_counterparty"
    assert net.do(SUP1, "finance", {**ask, "rate_bp": 10_001}) == "bad_argument"
    assert net.do(BANK, "approve", {"id": cert_id, "ref": "PAY-1"}) == "not_frozen"
    assert net.do(SUP1, "finance", ask) == ""
    assert status(net, cert_id) == "frozen"
    # Frozen: nothing moves but the funder's answer (or settlement).
    assert net.do(SUP1, "finance", {**ask, "funder": pub(BANK2)}) == "not_active"
    assert net.do(SUP1, "split", {"id": cert_id, "parts": parts((SUP2, MIN))}) == "not_active"
    assert net.do(BANK2, "approve", {"id": cert_id, "ref": "PAY-1"}) == "not_funder"
    assert net.do(BANK2, "decline", {"id": cert_id}) == "not_funder"
    assert net.do(SUP1, "approve", {"id": cert_id, "ref": "PAY-1"}) == "forbidden"
    assert net.do(BANK, "decline", {"id": cert_id}) == ""
    assert (status(net, cert_id), net.certificate(cert_id)["holder"]) == ("active", pub(SUP1))
    assert net.do(BANK, "decline", {"id": cert_id}) == "not_frozen"

    assert net.do(SUP1, "finance", ask) == ""
    result = net.call(BANK, "scf", "approve", {"id": cert_id, "ref": "PAY-1"})
    record = net.certificate(cert_id)
    days = scf.days_to_maturity(net.now, record["maturity"])
    assert days == 90  # 90 days less 2 ms: a started day counts
    price = HALF - HALF * 365 * 90 // (10_000 * 365)
    assert ok(result) == {"id": cert_id, "funder": pub(BANK), "from": pub(SUP1),
                          "price": price, "days": 90}
    assert (record["status"], record["holder"], record["funders"]) == (
        "active", pub(BANK), [pub(BANK)])
    assert record["financings"] == [{"funder": pub(BANK), "from": pub(SUP1), "price": price,
                                     "rate_bp": 365, "days": 90, "ref": "PAY-1",
                                     "time": net.now}]
    assert funder_stats(net.chain.state, pub(BANK)) == {"count": 1, "face": HALF,
                                                         "price": price}
    # The funder holds it now: it may split it (to enterprises) or refinance it.
    assert net.do(BANK, "finance", {**ask, "funder": pub(BANK)}) == "bad_counterparty"
    assert net.do(BANK, "finance", {**ask, "funder": pub(BANK2), "rate_bp": 0}) == ""
    assert net.do(BANK2, "approve", {"id": cert_id, "ref": "PAY-2"}) == ""
    record = net.certificate(cert_id)
    assert record["funders"] == [pub(BANK), pub(BANK2)]
    assert record["financings"][-1]["price"] == HALF  # at 0 bp: face value
    [part, rest] = split(net, BANK2, cert_id, (SUP3, MIN))
    assert net.certificate(part)["funders"] == [pub(BANK), pub(BANK2)]
    assert net.certificate(rest)["holder"] == pub(BANK2)


def test_a_frozen_certificate_at_maturity_is_only_settled() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF, days=2)
    assert net.do(SUP1, "finance", {"id": cert_id, "funder": pub(BANK), "rate_bp": 500}) == ""
    wait_until(net, net.certificate(cert_id)["maturity"])
    assert net.do(BANK, "approve", {"id": cert_id, "ref": "late"}) == "matured"
    assert net.do(BANK, "decline", {"id": cert_id}) == "matured"
    assert net.do(CORE, "settle", {"ids": [cert_id], "refs": ["S-1"]}) == ""
    record = net.certificate(cert_id)
    assert (record["status"], record["finance"]) == ("settled", None)
    assert record["settled"] == {"to": pub(SUP1), "ref": "S-1", "time": net.now}


# --- the discount arithmetic -------------------------------------------------------------------


def test_discount_examples() -> None:
    assert scf.discount_fen(1_000_000, 365, 365) == 36_500  # 3.65 % for a year
    assert scf.discount_fen(1_000_000, 500, 90) == 12_328  # 12,328.76...: rounded down
    assert scf.discount_fen(1, 10_000, 365) == 1
    assert scf.discount_fen(1, 10_000, 364) == 0  # in the holder's favour
    assert scf.discount_fen(10**15, 10_000, 365) == 10**15
    assert scf.discount_fen(123_456, 0, 100) == 0
    assert scf.days_to_maturity(0, 1) == 1
    assert scf.days_to_maturity(0, DAY_MS) == 1
    assert scf.days_to_maturity(0, DAY_MS + 1) == 2
    assert scf.days_to_maturity(5, 5 + 30 * DAY_MS) == 30
    assert scf.days_to_maturity(0, CEILING_MATURITY_MS) == 365


AMOUNTS = st.integers(1, 10**15)
RATES = st.integers(0, 10_000)
DAYS = st.integers(1, 365)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(amount=AMOUNTS, rate=RATES, days=DAYS, more_rate=st.integers(0, 10_000),
       more_days=st.integers(0, 364))
def test_the_discount_is_the_exact_floor_within_the_face_value_and_monotone(
        amount: int, rate: int, days: int, more_rate: int, more_days: int) -> None:
    discount = scf.discount_fen(amount, rate, days)
    # Exactly floor(N * R * D / 3,650,000): the largest integer not above it.
    assert discount * 3_650_000 <= amount * rate * days < (discount + 1) * 3_650_000
    assert 0 <= discount <= amount
    higher = min(10_000, rate + more_rate)
    longer = min(365, days + more_days)
    assert scf.discount_fen(amount, higher, days) >= discount
    assert scf.discount_fen(amount, rate, longer) >= discount
    assert scf.discount_fen(amount + 1, rate, days) >= discount


@settings(max_examples=300, deadline=None, derandomize=True)
@given(now=st.integers(0, 2**50), ahead=st.integers(1, CEILING_MATURITY_MS))
def test_days_to_maturity_counts_a_started_day(now: int, ahead: int) -> None:
    days = scf.days_to_maturity(now, now + ahead)
    assert (days - 1) * DAY_MS < ahead <= days * DAY_MS
    assert 1 <= days <= 365


# --- settle -----------------------------------------------------------------------------------


def test_settle_from_maturity_by_the_issuer_pays_each_holder() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF, days=10)
    [part, rest] = split(net, SUP1, cert_id, (SUP2, 10 * MIN))
    assert net.do(SUP2, "accept", {"id": part}) == ""
    maturity = net.certificate(cert_id)["maturity"]
    settle = {"ids": [part, rest], "refs": ["P-1", "P-2"]}
    assert net.do(CORE, "settle", settle) == "not_matured"
    wait_until(net, maturity - 2)
    assert net.do(CORE, "settle", settle) == "not_matured"  # this block is at maturity - 1
    assert net.do(CORE2, "settle", settle) == "not_issuer"
    assert net.do(SUP1, "settle", settle) == "not_issuer"
    assert net.do(BANK, "settle", settle) == "forbidden"
    assert net.do(CORE, "settle", {"ids": [part, rest], "refs": ["P-1"]}) == "bad_argument"
    assert net.do(CORE, "settle", {"ids": [part, part], "refs": ["P", "P"]}) == "bad_argument"
    assert net.do(CORE, "settle", {"ids": [cert_id], "refs": ["P"]}) == "not_settleable"
    assert net.do(CORE, "settle", {"ids": [part, 99], "refs": ["P", "P"]}) == "not_found"
    # The batch is all or nothing: a consumed certificate in it refuses it all.
    assert net.do(CORE, "settle", {"ids": [part, cert_id], "refs": ["P", "P"]}) == \
        "not_settleable"
    assert status(net, part) == "active"
    result = net.call(CORE, "scf", "settle", settle)
    assert result.error == ""
    assert [e.data for e in result.events] == [
        {"id": part, "to": pub(SUP2), "status": "settled"},
        {"id": rest, "to": pub(SUP1), "status": "settled"}]
    assert net.certificate(part)["settled"] == {"to": pub(SUP2), "ref": "P-1",
                                                "time": net.now}
    assert line(net)["outstanding"] == 0
    assert invoice_backed(net.chain.state, number(1)) == HALF  # settled: still backed
    assert net.do(CORE, "settle", settle) == "not_settleable"
    assert net.do(SUP2, "split", {"id": part, "parts": parts((SUP3, MIN))}) == "not_active"


def test_a_transfer_unaccepted_at_maturity_settles_to_its_sender() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF, days=5)
    [part, _] = split(net, SUP1, cert_id, (SUP2, 10 * MIN))
    wait_until(net, net.certificate(part)["maturity"])
    assert status(net, part) == "active"  # back with its sender
    assert view_cert(net, part).pending is None
    assert net.do(SUP2, "accept", {"id": part}) == "not_pending"
    assert net.do(SUP2, "refuse", {"id": part}) == "not_pending"
    assert net.do(CORE, "settle", {"ids": [part], "refs": ["P"]}) == ""
    record = net.certificate(part)
    assert (record["status"], record["pending"], record["settled"]["to"]) == (
        "settled", None, pub(SUP1))
    incoming = queries.incoming(net.view(), queries.MemberParams(pub(SUP2).hex()),
                                PageRequest())
    assert incoming.items == []


def test_an_issue_unaccepted_at_maturity_lapses_on_settle_freeing_line_and_invoices() -> None:
    net = trading_net()
    cert_id = issued(net, amount=HALF, days=3, invoices=(1, 2))
    kept = accepted(net, amount=HALF, days=30, invoices=(1,))
    wait_until(net, net.certificate(cert_id)["maturity"])
    assert status(net, cert_id) == "lapsed"
    assert not view_cert(net, cert_id).overdue
    assert net.do(SUP1, "accept", {"id": cert_id}) == "not_pending"
    # Until the core enterprise closes it, it still takes its part of the line.
    assert line(net)["outstanding"] == 2 * HALF
    result = net.call(CORE, "scf", "settle", {"ids": [cert_id], "refs": ["-"]})
    assert ok(result) == {"id": cert_id, "to": pub(CORE), "status": "lapsed"}
    record = net.certificate(cert_id)
    assert (record["status"], record["pending"], record["settled"]) == ("lapsed", None, None)
    assert line(net)["outstanding"] == HALF
    assert invoice_backed(net.chain.state, number(1)) == HALF
    assert queries.held(net.view(), queries.MemberParams(pub(CORE).hex()),
                        PageRequest()).items == []
    # Closed once: settling it again is refused, and frees nothing twice (a bug found
    # here: it released the line and the invoices again, under `kept`'s feet).
    assert net.do(CORE, "settle", {"ids": [cert_id], "refs": ["-"]}) == "not_settleable"
    assert line(net)["outstanding"] == HALF
    assert invoice_backed(net.chain.state, number(1)) == HALF
    assert status(net, kept) == "active"


# --- queries ------------------------------------------------------------------------------------


def _ids(page: Any) -> list[int]:
    return [c.id for c in page.items]


def test_the_overdue_list_earliest_first_paged() -> None:
    net = trading_net()
    late = [accepted(net, amount=MIN, days=d) for d in (3, 1, 2)]
    lapsing = issued(net, amount=MIN, days=1)  # never accepted: lapses, never overdue
    frozen = accepted(net, amount=MIN, days=2)
    assert net.do(SUP1, "finance", {"id": frozen, "funder": pub(BANK), "rate_bp": 1}) == ""
    later = accepted(net, amount=MIN, days=30)
    view = net.view()
    assert _ids(queries.overdue(view, NoParams(), PageRequest())) == []
    wait_until(net, net.now + 3 * DAY_MS + 1)
    view = net.view()
    expected = [late[1], late[2], frozen, late[0]]  # by maturity, then id
    assert _ids(queries.overdue(view, NoParams(), PageRequest())) == expected
    assert all(c.overdue for c in queries.overdue(view, NoParams(), PageRequest()).items)
    assert not view_cert(net, later).overdue and not view_cert(net, lapsing).overdue
    # A page of two, then the rest (the lapsed issue is skipped where it falls).
    first = queries.overdue(view, NoParams(), PageRequest(limit=2))
    assert _ids(first) == [late[1]] and first.next is not None  # late[1], lapsing
    found, cursor = _ids(first), first.next
    while cursor is not None:
        page = queries.overdue(view, NoParams(), PageRequest(cursor=cursor, limit=2))
        found += _ids(page)
        cursor = page.next
    assert found == expected
    # Paid: no longer overdue.
    assert net.do(CORE, "settle", {"ids": [late[1], frozen], "refs": ["A", "B"]}) == ""
    assert _ids(queries.overdue(net.view(), NoParams(), PageRequest())) == [late[2], late[0]]


def test_every_query_on_a_small_scenario() -> None:
    net = trading_net()
    root = accepted(net, amount=HALF, days=60, invoices=(1,))
    pending_root = issued(net, to=SUP3, amount=MIN, days=60, invoices=(2,))
    [to_sup2, rest] = split(net, SUP1, root, (SUP2, 10 * MIN))
    assert net.do(SUP1, "finance", {"id": rest, "funder": pub(BANK), "rate_bp": 365}) == ""
    assert net.do(BANK, "approve", {"id": rest, "ref": "BANK-0001"}) == ""
    view = net.view()
    core, sup1, sup2 = (pub(n).hex() for n in (CORE, SUP1, SUP2))

    cert = queries.certificate(view, queries.IdParams(rest))
    assert (cert.id, cert.root, cert.parent, cert.tier, cert.core, cert.amount) == (
        rest, root, root, 1, core, HALF - 10 * MIN)
    assert (cert.holder, cert.pending, cert.status, cert.overdue, cert.flagged) == (
        pub(BANK).hex(), None, "active", False, False)
    assert cert.funders == [pub(BANK).hex()] and cert.settled is None
    [financing] = cert.financings
    assert (financing.funder, financing.seller, financing.ref, financing.days) == (
        pub(BANK).hex(), sup1, "BANK-0001", 60)
    assert financing.price == cert.amount - scf.discount_fen(cert.amount, 365, 60)
    pending = queries.certificate(view, queries.IdParams(to_sup2))
    assert (pending.holder, pending.pending, pending.status, pending.tier) == (
        sup1, sup2, "pending", 2)
    with pytest.raises(NotFound):
        queries.certificate(view, queries.IdParams(99))

    lineage = queries.lineage(view, queries.IdParams(to_sup2))
    assert [c.id for c in lineage.chain] == [to_sup2, root]
    assert lineage.chain[1].status == "consumed" and lineage.chain[1].children == [
        to_sup2, rest]
    assert lineage.background == queries.Background(CONTRACT.hex(), [(number(1), HALF)], [])
    assert [c.id for c in queries.lineage(view, queries.IdParams(root)).chain] == [root]

    def ids(fn: Any, params: Any) -> list[int]:
        return _ids(fn(view, params, PageRequest()))

    assert ids(queries.held, queries.MemberParams(sup1)) == [to_sup2]  # sent, unaccepted
    assert ids(queries.held, queries.MemberParams(pub(BANK).hex())) == [rest]
    assert ids(queries.held, queries.MemberParams(core)) == [pending_root]
    assert ids(queries.held, queries.MemberParams(sup2)) == []
    assert ids(queries.incoming, queries.MemberParams(sup2)) == [to_sup2]
    assert ids(queries.incoming, queries.MemberParams(pub(SUP3).hex())) == [pending_root]
    assert ids(queries.issued, queries.CoreParams(core)) == [root, pending_root]
    assert ids(queries.issued, queries.CoreParams(sup1)) == []
    assert ids(queries.tree, queries.IdParams(root)) == [root, to_sup2, rest]
    assert ids(queries.tree, queries.IdParams(pending_root)) == [pending_root]
    assert ids(queries.tree, queries.IdParams(99)) == []
    assert ids(queries.financed, queries.FunderParams(pub(BANK).hex())) == [rest]
    assert ids(queries.financed, queries.FunderParams(pub(BANK2).hex())) == []
    assert queries.funder_totals(view, queries.FunderParams(pub(BANK).hex())) == \
        queries.FunderTotals(pub(BANK).hex(), 1, cert.amount, financing.price)
    assert queries.funder_totals(view, queries.FunderParams(pub(BANK2).hex())) == \
        queries.FunderTotals(pub(BANK2).hex(), 0, 0, 0)
    assert queries.outstanding(view, queries.CoreParams(core)) == queries.Outstanding(
        core, 2 * INVOICE_FEN, HALF + MIN, pub(BANK).hex(),
        [(1, HALF - 10 * MIN + MIN), (2, 10 * MIN)])
    with pytest.raises(NotFound):
        queries.outstanding(view, queries.CoreParams(sup1))
    assert _ids(queries.overdue(view, NoParams(), PageRequest())) == []
    # A page at a time, in key order.
    first = queries.tree(view, queries.IdParams(root), PageRequest(limit=2))
    assert _ids(first) == [root, to_sup2] and first.next is not None
    assert _ids(queries.tree(view, queries.IdParams(root),
                             PageRequest(cursor=first.next, limit=2))) == [rest]


def test_who_each_answer_is_about() -> None:
    """The audiences (ADR 0015): a certificate is about its core enterprise, holder,
    recipient, the funder asked and every funder that financed it or an ancestor."""
    net = trading_net()
    root = accepted(net, amount=HALF)
    assert net.do(SUP1, "finance", {"id": root, "funder": pub(BANK), "rate_bp": 1}) == ""
    assert queries.certificate_audience(view_cert(net, root)).parties == {
        pub(CORE), pub(SUP1), pub(BANK)}
    assert net.do(BANK, "approve", {"id": root, "ref": "R"}) == ""
    [part, rest] = split(net, BANK, root, (SUP2, MIN))
    assert queries.certificate_audience(view_cert(net, part)).parties == {
        pub(CORE), pub(BANK), pub(SUP2)}
    assert queries.certificate_audience(view_cert(net, root)).parties == {
        pub(CORE), pub(SUP1), pub(BANK)}  # the seller of a financing too
    lineage = queries.lineage(net.view(), queries.IdParams(rest))
    assert queries.lineage_audience(lineage) == queries.certificate_audience(lineage.chain[0])
    found = queries.outstanding(net.view(), queries.CoreParams(pub(CORE).hex()))
    assert queries.outstanding_audience(found).parties == {pub(CORE), pub(BANK)}


def test_each_entry_names_its_counterparties() -> None:
    """A log entry is read by its sender and the parties `entry_audience` names: the
    member a certificate goes back to on a refusal, the sender on an acceptance, the
    holder on a declined financing."""
    net = trading_net()

    def parties(result: TxResult, method: str, args: dict[str, Any]) -> frozenset[bytes]:
        assert result.error == "" and scf.APP.entry_audience is not None
        return scf.APP.entry_audience(method, args, result.events).parties

    args = issue_args(net)
    assert parties(net.call(CORE, "scf", "issue", args), "issue", args) == {pub(SUP1)}
    assert parties(net.call(SUP1, "scf", "refuse", {"id": 0}), "refuse", {"id": 0}) == {
        pub(CORE)}
    cert_id = issued(net)
    assert parties(net.call(SUP1, "scf", "accept", {"id": cert_id}), "accept",
                   {"id": cert_id}) == {pub(SUP1), pub(CORE)}
    args = {"id": cert_id, "parts": parts((SUP2, MIN))}
    result = net.call(SUP1, "scf", "split", args)
    assert parties(result, "split", args) == {pub(SUP2)}
    [part, rest] = result.events[0].data["children"]
    assert parties(net.call(SUP2, "scf", "refuse", {"id": part}), "refuse", {"id": part}) == {
        pub(SUP1)}
    args = {"id": rest, "funder": pub(BANK), "rate_bp": 1}
    assert parties(net.call(SUP1, "scf", "finance", args), "finance", args) == {pub(BANK)}
    assert parties(net.call(BANK, "scf", "decline", {"id": rest}), "decline",
                   {"id": rest}) == {pub(SUP1)}


def test_a_lineage_longer_than_its_bound_skips_to_the_root() -> None:
    """A holder splitting off one part after another makes a chain of remainders as
    long as it likes: the lineage lists MAX_LINEAGE of them, then the root."""
    net = trading_net()
    root = accepted(net, amount=HALF)
    current = root
    for _ in range(queries.MAX_LINEAGE + 3):
        [_, current] = split(net, SUP1, current, (SUP2, MIN))
    assert net.certificate(current)["tier"] == 1
    lineage = queries.lineage(net.view(), queries.IdParams(current))
    assert len(lineage.chain) == queries.MAX_LINEAGE + 1
    assert lineage.chain[0].id == current and lineage.chain[-1].id == root
    assert lineage.chain[-2].parent != root  # the gap
    assert lineage.background.invoices == [(number(1), HALF)]
    assert [c.parent for c in lineage.chain[:-2]] == [c.id for c in lineage.chain[1:-1]]


def test_a_refused_call_changes_nothing() -> None:
    net = trading_net()
    cert_id = accepted(net, amount=HALF)
    before, root = net.scf_state(), net.chain.state.root()
    for caller, method, args in (
            (SUP2, "split", {"id": cert_id, "parts": parts((SUP3, MIN))}),
            (SUP1, "split", {"id": cert_id, "parts": parts((SUP3, MIN), (BANK, MIN))}),
            (CORE, "issue", issue_args(net, amount=HALF, invoices=(2, 9))),
            (CORE, "issue", issue_args(net, amount=3 * INVOICE_FEN)),
            (BANK, "set_line", {"core": pub(CORE), "limit": 1}),
            (CORE, "settle", {"ids": [cert_id], "refs": ["x"]}),
            (REG, "accept", {"id": cert_id})):
        assert net.do(caller, method, args) != ""
        assert net.scf_state() == before
        assert net.chain.state.root() == root


def test_a_full_settle_batch_of_lapsed_issues_fits_one_transaction() -> None:
    net = trading_net()
    per = MAX_BACKING_INVOICES
    for n in range(10, 10 + MAX_SETTLE_BATCH * per):
        net.invoice(n, unit_fen=MIN)
    # The worst case: every certificate lapsed unaccepted, each citing as many invoices
    # as it may, so settling it frees each of them.
    ids = [issued(net, amount=per * MIN, days=1,
                  invoices=tuple(range(10 + per * i, 10 + per * (i + 1))))
           for i in range(MAX_SETTLE_BATCH)]
    wait_until(net, net.certificate(ids[-1])["maturity"])
    assert net.do(CORE, "settle", {"ids": ids, "refs": ["-"] * MAX_SETTLE_BATCH}) == ""
