"""The e-invoice contract (contracts/invoice): an example for every rule and
rejection, through a Chain with a test genesis, and a stateful property test over
random operations by random actors (acceptance 2 of issue 5)."""

from __future__ import annotations

import calendar
import functools
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from tests.helpers import GENESIS_TIME_MS, founding_org, key
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.contracts import default_registry, invoice
from tidechain.contracts.invoice.content import check_line, line_tax
from tidechain.contracts.invoice.contract import CONFIRM_WINDOW_MS, MAX_BATCH
from tidechain.core.crypto import sha256
from tidechain.core.errors import ContractError, DecodeError, NotFound, Rejected
from tidechain.identity import Role
from tidechain.identity.uscc import org_code_check_char, uscc_check_char
from tidechain.ledger.application import HeadView
from tidechain.ledger.chain import Chain
from tidechain.ledger.types import Genesis, GenesisValidator, SignedTx, TxResult

TAX, ISSUER_A, ISSUER_B, UNAUTHORISED, BUYER, BUYER2, EMP, EMP2, REG = range(300, 309)
ROLES_OF = {TAX: Role.TAX_AUTHORITY, ISSUER_A: Role.INVOICE_ISSUER,
            ISSUER_B: Role.INVOICE_ISSUER, UNAUTHORISED: Role.INVOICE_ISSUER,
            BUYER: Role.DEPOSITOR, BUYER2: Role.DEPOSITOR, EMP: Role.ENTERPRISE,
            EMP2: Role.ENTERPRISE, REG: Role.REGULATOR}
NET = "invoice-net"
TAX_ID_A = "91350100M000100Y43"
QUOTA = 1_000_000
HOUR_MS = 3_600_000


def _uscc(body: str, prefix: str = "91440300") -> str:
    first17 = prefix + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


TAX_ID_B = _uscc("MA5D0000")
BUYER_USCC = _uscc("MA5F1234")


@functools.cache
def genesis() -> Genesis:
    extra = [(n, (role,)) for n, role in ROLES_OF.items()]
    return Genesis(NET, GENESIS_TIME_MS, (GenesisValidator(f"{NET}/node0", key(1000).public_key),),
                   (founding_org(extra),))


def pub(n: int) -> bytes:
    return key(n).public_key


_nonce = itertools.count(1)


AUDITORS = [pub(TAX)]
CODE = b"claim code from the sale"
CODE_DIGEST = sha256(CODE)


def call(signer: int, method: str, args: dict[str, Any], at_ms: int) -> SignedTx:
    return tb.call_tx(key(signer), genesis().chain_id, "invoice", method, args,
                      now_ms=at_ms, nonce=next(_nonce).to_bytes(16, "big"))


class Net:
    """A chain at the test genesis, one block per `run`, block time advancing."""

    def __init__(self) -> None:
        self.chain = Chain.at_genesis(genesis(), default_registry())
        self.now = GENESIS_TIME_MS

    def run(self, *txs: SignedTx, advance_ms: int = 1) -> list[TxResult]:
        self.now += advance_ms
        prepared = self.chain.prepare(list(txs), self.now, f"{NET}/node0")
        self.chain.advance(prepared)
        return list(prepared.results)

    def do(self, signer: int, method: str, args: dict[str, Any], advance_ms: int = 1) -> str:
        """Run one call; its error code, or "" if it succeeded. Plain invoice content is
        sealed first as a client would; a refusal while sealing is `client:<code>`."""
        try:
            args = self.sealed(signer, method, args)
        except ContractError as exc:
            return f"client:{exc.code}"
        [result] = self.run(call(signer, method, args, self.now + advance_ms),
                            advance_ms=advance_ms)
        return result.error

    def sealed(self, signer: int, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """What the client sends: content sealed to the parties and auditors, and on
        `submit` / `claim` by code the content key shared with the new reader."""
        def seal_blue(plain: dict[str, Any]) -> dict[str, Any]:
            if "lines" not in plain:
                return plain
            code = CODE if plain.get("claim_digest") == CODE_DIGEST else None
            return sealing.sealed_invoice_args(plain, pub(signer), AUDITORS, code=code)

        if method == "issue":
            return seal_blue(args)
        if method == "issue_batch" and isinstance(args.get("invoices"), list):
            return {**args, "invoices": [seal_blue(a) for a in args["invoices"]]}
        if method in ("red_letter", "request_reversal") and "lines" in args:
            original = invoice.get_invoice(self.chain.state, str(args["original"]))
            readers = ({pub(signer), *AUDITORS} if original is None
                       else sealing.red_letter_readers(original, AUDITORS))
            return sealing.sealed_red_args(args, readers)
        record = invoice.get_invoice(self.chain.state, str(args.get("number")))
        to = args.get("employer") if method == "submit" else pub(signer)
        if method in ("submit", "claim") and record is not None and isinstance(to, bytes):
            try:
                wrapped = sealing.share_key(record, key(signer), to, code=args.get("code"))
            except Rejected:
                return args  # not a reader: the chain refuses it for what it is
            return {**args, "wrapped": wrapped}
        return args

    def content(self, number_: str, reader: int) -> dict[str, Any]:
        return sealing.open_content(self.invoice(number_), key=key(reader))

    def invoice(self, number: str) -> dict[str, Any]:
        record = invoice.get_invoice(self.chain.state, number)
        assert record is not None
        return record


def number(n: int) -> str:
    return f"{n:020d}"


LINE = tb.invoice_line("coffee", 2, 1500, 600)  # 3000 + 180 tax


def blue(n: int, buyer: int | None = BUYER, lines: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    who: dict[str, Any] = {"key": pub(buyer)} if buyer is not None else {
        "name": "Shenzhen Buyer Co., Ltd.", "uscc": BUYER_USCC}
    return tb.invoice_args(number(n), who, lines or [LINE], **extra)


def red(n: int, original: int, lines: list[dict[str, Any]] | None = None,
        reason: str = "sales_return") -> dict[str, Any]:
    return tb.red_letter_args(number(n), number(original), reason, lines or [LINE])


def authorised(quota: int = QUOTA) -> Net:
    net = Net()
    assert net.do(TAX, "set_auditors", {"keys": AUDITORS}) == ""
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(ISSUER_A), "name": "Shop A",
                                            "tax_id": TAX_ID_A, "quota": quota}) == ""
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(ISSUER_B), "name": "Shop B",
                                            "tax_id": TAX_ID_B, "quota": quota}) == ""
    return net


def locked(n: int = 1) -> Net:
    """Invoice n issued by A to BUYER, claimed, submitted to EMP and locked by it."""
    net = authorised()
    assert [net.do(ISSUER_A, "issue", blue(n)),
            net.do(BUYER, "claim", {"number": number(n)}),
            net.do(BUYER, "submit", {"number": number(n), "employer": pub(EMP)}),
            net.do(EMP, "lock", {"number": number(n)})] == ["", "", "", ""]
    return net


# --- amounts ----------------------------------------------------------------------------


def test_line_tax_rounds_half_up_to_the_smallest_unit() -> None:
    assert line_tax(50, 100) == 1  # 0.5 fen -> 1
    assert line_tax(49, 100) == 0  # 0.49 fen -> 0
    assert line_tax(3000, 600) == 180
    assert line_tax(10_001, 1300) == 1300  # 1300.13 -> 1300
    assert LINE == {"name": "coffee", "quantity": 2, "unit_price": 1500, "amount": 3000,
                    "tax_rate_bp": 600, "tax": 180}


@settings(max_examples=200, deadline=None)
@given(quantity=st.integers(1, 10**9), price=st.integers(0, 10**6),
       rate=st.integers(0, 10_000))
def test_line_tax_is_the_exact_half_up_rounding(quantity: int, price: int, rate: int) -> None:
    amount = quantity * price
    tax = line_tax(amount, rate)
    # |tax - amount * rate / 10000| <= 1/2, and exactly 1/2 rounds up.
    assert -5000 < tax * 10_000 - amount * rate <= 5000


def test_figures_that_do_not_add_up_are_refused_by_the_sealing_client() -> None:
    net = authorised()
    wrong_amount = blue(1)
    wrong_amount["lines"] = [{**LINE, "amount": 3001}]
    wrong_tax = blue(2)
    wrong_tax["lines"] = [{**LINE, "tax": 181}]
    wrong_total = {**blue(3), "total": 3181}
    wrong_sum = {**blue(4), "tax": 179, "total": 3179}
    for args in (wrong_amount, wrong_tax, wrong_total, wrong_sum):
        assert net.do(ISSUER_A, "issue", args) == "client:bad_amount"
    free = tb.invoice_line("gift", 1, 0, 0)
    zero = {**blue(5), "lines": [free], "amount": 0, "tax": 0, "total": 0}
    assert net.do(ISSUER_A, "issue", zero) == "client:bad_amount"  # a zero total
    for bad_args in ({**blue(6), "lines": []}, {**blue(7), "lines": [{**LINE, "quantity": 0}]},
                     {**blue(8), "extra": 1}, {**blue(9), "number": "123"},
                     {**blue(10), "number": "0000000000000000000x"}):
        assert net.do(ISSUER_A, "issue", bad_args) == "client:bad_argument"
    assert invoice.invoices_of_issuer(net.chain.state, pub(ISSUER_A), 0, 100) == []


def test_the_chain_checks_the_public_fields_and_readers_catch_a_forged_seal() -> None:
    net = authorised()
    good = net.sealed(ISSUER_A, "issue", blue(1))
    for args, code in (({**good, "total": 0}, "bad_amount"), ({**good, "number": "12"},
                       "bad_argument"), ({**good, "extra": 1}, "bad_argument"),
                       ({**good, "holder": None}, "bad_argument")):
        assert net.do(ISSUER_A, "issue", args) == code
    # The chain cannot see inside: a dishonest issuer could seal figures that do not
    # add up, or a total other than the public one. Every reader finds out on opening.
    content = tb.invoice_args(number(2), {"key": pub(BUYER)}, [LINE])
    forged = {**content, "lines": [{**LINE, "amount": 1}], "buyer": {"key": pub(BUYER)}}
    del forged["number"]
    readers = {pub(ISSUER_A), pub(BUYER), *AUDITORS}
    for number_, sealed_content, total in ((2, forged, 3180), (3, content, 9999)):
        sealed_content = {k: v for k, v in sealed_content.items() if k != "number"}
        args = {"number": number(number_), "total": total, "holder": pub(BUYER),
                "sealed": sealing.seal_content(number(number_), sealed_content, readers)}
        assert net.do(ISSUER_A, "issue", args) == ""
        for reader in (ISSUER_A, BUYER, TAX):
            with pytest.raises(sealing.BrokenSeal):
                net.content(number(number_), reader)


def test_the_client_refuses_what_the_chain_refuses() -> None:
    with pytest.raises(ContractError) as refused:
        check_line({**LINE, "tax": 1}, 0)
    assert refused.value.code == "bad_amount"
    with pytest.raises(ContractError) as refused:
        tb.invoice_args(number(1), {"name": "X", "uscc": BUYER_USCC[:-1] + "0"}, [LINE],
                        claim_digest=sha256(b"c"))
    assert refused.value.code == "bad_uscc"


# --- tax authority ------------------------------------------------------------------------


def test_only_the_tax_authority_authorises_and_tax_ids_are_checked() -> None:
    net = Net()
    args = {"issuer": pub(ISSUER_A), "name": "Shop A", "tax_id": TAX_ID_A, "quota": 10}
    assert net.do(ISSUER_A, "authorise_issuer", args) == "forbidden"
    assert net.do(REG, "authorise_issuer", args) == "forbidden"
    assert net.do(TAX, "authorise_issuer", {**args, "tax_id": TAX_ID_A[:-1] + "0"}) == "bad_uscc"
    assert net.do(TAX, "authorise_issuer", {**args, "quota": -1}) == "bad_argument"
    assert net.do(TAX, "authorise_issuer", args) == ""
    assert net.do(TAX, "authorise_issuer", {**args, "tax_id": TAX_ID_B}) == "tax_id_mismatch"
    assert net.do(TAX, "suspend_issuer", {"issuer": pub(ISSUER_B)}) == "not_found"
    record = invoice.get_issuer(net.chain.state, pub(ISSUER_A))
    assert record is not None and (record["tax_id"], record["quota"]) == (TAX_ID_A, 10)


def test_quota_and_suspension_hold() -> None:
    net = authorised(quota=3180 * 2)
    assert net.do(UNAUTHORISED, "issue", blue(1)) == "not_authorised"
    assert net.do(BUYER, "issue", blue(1)) == "forbidden"
    assert [net.do(ISSUER_A, "issue", blue(n)) for n in (1, 2, 3)] == ["", "", "quota_exceeded"]
    assert net.do(TAX, "set_quota", {"issuer": pub(ISSUER_A), "quota": 3180 * 3}) == ""
    assert net.do(ISSUER_A, "issue", blue(3)) == ""
    assert net.do(TAX, "suspend_issuer", {"issuer": pub(ISSUER_A)}) == ""
    assert net.do(TAX, "set_quota", {"issuer": pub(ISSUER_A), "quota": 10**9}) == ""
    assert net.do(ISSUER_A, "issue", blue(4)) == "suspended"
    # A suspended issuer may still correct: red-letter invoices stay possible.
    assert net.do(ISSUER_A, "red_letter", red(90, 1)) == ""
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(ISSUER_A), "name": "Shop A",
                                            "tax_id": TAX_ID_A, "quota": 10**9}) == ""
    assert net.do(ISSUER_A, "issue", blue(4)) == ""
    issuer = invoice.get_issuer(net.chain.state, pub(ISSUER_A))
    assert issuer is not None and issuer["issued"] == 4 * 3180  # red-letter frees no quota


# --- issuing ------------------------------------------------------------------------------


def test_issue_stores_the_invoice_lists_it_and_counts_it() -> None:
    net = authorised()
    tx = tb.call_tx(key(ISSUER_A), genesis().chain_id, "invoice", "issue",
                    tb.issue_args(blue(7, remark="table 4"), pub(ISSUER_A), auditors=AUDITORS),
                    now_ms=net.now + 1, nonce=b"issue-7-nonce-16")
    [result] = net.run(tx)
    assert result.ok and [e.kind for e in result.events] == ["issued"]
    record = net.invoice(number(7))
    assert (record["kind"], record["state"], record["total"], record["holder"]) == (
        "blue", "issued", 3180, pub(BUYER))
    for reader in (ISSUER_A, BUYER, TAX):  # the parties and the tax authority read it
        content = net.content(number(7), reader)
        assert content["remark"] == "table 4" and content["tax"] == 180
    for outsider in (BUYER2, EMP, REG, ISSUER_B):  # nobody else can
        with pytest.raises(sealing.NotAReader):
            net.content(number(7), outsider)
    assert b"table 4" not in tx.encode() and b"coffee" not in tx.encode()
    assert invoice.invoices_of_issuer(net.chain.state, pub(ISSUER_A), 0, 10) == [number(7)]
    period = invoice.period_of(net.now)
    assert invoice.statistics(net.chain.state, pub(ISSUER_A), period) == {
        "issued": 3180, "issued_count": 1, "reversed": 0, "reimbursed": 0}
    assert net.do(ISSUER_B, "issue", blue(7)) == "duplicate_number"  # unique across issuers


def test_a_batch_is_all_or_nothing() -> None:
    net = authorised(quota=3180 * 4)
    root = net.chain.state.root()
    assert net.do(ISSUER_A, "issue_batch", {"invoices": [blue(1), blue(2), blue(1)]}) == \
        "duplicate_number"
    assert net.do(ISSUER_A, "issue_batch", {"invoices": [blue(n) for n in range(1, 6)]}) == \
        "quota_exceeded"
    zero_total = {**net.sealed(ISSUER_A, "issue", blue(2)), "total": 0}
    assert net.do(ISSUER_A, "issue_batch", {"invoices": [blue(1), zero_total]}) == "bad_amount"
    assert net.do(ISSUER_A, "issue_batch", {"invoices": []}) == "bad_argument"
    too_many = [blue(n) for n in range(MAX_BATCH + 1)]
    assert net.do(ISSUER_A, "issue_batch", {"invoices": too_many}) == "bad_argument"
    assert net.chain.state.root() == root  # nothing half-written
    tx = tb.call_tx(key(ISSUER_A), genesis().chain_id, "invoice", "issue_batch",
                    tb.issue_batch_args([blue(n) for n in (1, 2, 3)], pub(ISSUER_A),
                                        auditors=AUDITORS),
                    now_ms=net.now + 1, nonce=b"batch-nonce-0016")
    [result] = net.run(tx)
    assert result.ok and result.events[0].data["numbers"] == [number(n) for n in (1, 2, 3)]
    assert invoice.invoices_of_issuer(net.chain.state, pub(ISSUER_A), 1, 5) == [
        number(2), number(3)]
    assert invoice.statistics(net.chain.state, pub(ISSUER_A),
                              invoice.period_of(net.now))["issued_count"] == 3


def test_a_full_batch_fits_in_one_transaction() -> None:
    net = authorised()
    two_lines = [LINE, tb.invoice_line("a longer line item name " * 4, 3, 999, 1300)]
    full = [blue(100 + n, lines=two_lines, remark="r" * 100) for n in range(MAX_BATCH)]
    tx = tb.call_tx(key(ISSUER_A), genesis().chain_id, "invoice", "issue_batch",
                    tb.issue_batch_args(full, pub(ISSUER_A), auditors=AUDITORS),
                    now_ms=net.now + 1, nonce=b"full-batch-nonce")
    [result] = net.run(tx)
    assert result.ok, result.reason
    assert len(invoice.invoices_of_issuer(net.chain.state, pub(ISSUER_A), 0, 100)) == MAX_BATCH


# --- buyer --------------------------------------------------------------------------------


def test_only_the_titled_buyer_claims_and_submits() -> None:
    net = authorised()
    assert net.do(ISSUER_A, "issue", blue(1)) == ""
    assert net.do(BUYER2, "claim", {"number": number(1)}) == "not_buyer"
    assert net.do(BUYER, "submit", {"number": number(1), "employer": pub(EMP)}) == "not_buyer"
    assert net.do(BUYER, "claim", {"number": number(2)}) == "not_found"
    assert net.do(BUYER, "claim", {"number": number(1)}) == ""
    assert net.do(BUYER, "claim", {"number": number(1)}) == "already_claimed"
    assert net.do(BUYER2, "submit", {"number": number(1), "employer": pub(EMP)}) == "not_buyer"
    assert net.do(EMP, "submit", {"number": number(1), "employer": pub(EMP)}) == "not_buyer"
    assert net.do(TAX, "claim", {"number": number(1)}) == "forbidden"


def test_a_company_buyer_named_by_uscc_claims_with_the_code_from_the_sale() -> None:
    net = authorised()
    no_digest = blue(1, buyer=None, claim_digest=CODE_DIGEST)
    del no_digest["claim_digest"]
    assert net.do(ISSUER_A, "issue", no_digest) == "client:bad_argument"
    sealed = net.sealed(ISSUER_A, "issue", blue(1, buyer=None, claim_digest=CODE_DIGEST))
    assert net.do(ISSUER_A, "issue", {**sealed, "claim_digest": None}) == "bad_argument"
    bad_uscc = blue(1, buyer=None, claim_digest=CODE_DIGEST)
    bad_uscc["buyer"] = {"name": "X", "uscc": BUYER_USCC[:-1] + "0"}
    assert net.do(ISSUER_A, "issue", bad_uscc) == "client:bad_uscc"
    assert net.do(ISSUER_A, "issue", blue(1, buyer=None, claim_digest=CODE_DIGEST)) == ""
    # Before it claims, the buyer reads the invoice with the code alone.
    by_code = sealing.open_content(net.invoice(number(1)), code=CODE)
    assert by_code["buyer"]["uscc"] == BUYER_USCC
    with pytest.raises(sealing.NotAReader):
        sealing.open_content(net.invoice(number(1)), code=b"wrong")
    assert net.do(EMP, "claim", {"number": number(1)}) == "bad_claim_code"
    assert net.do(EMP, "claim", {"number": number(1), "code": b"wrong"}) == "bad_claim_code"
    assert net.do(EMP, "claim", {"number": number(1), "code": CODE}) == ""
    record = net.invoice(number(1))
    assert record["holder"] == pub(EMP) and net.content(number(1), EMP)["buyer"]["uscc"] == \
        BUYER_USCC


# --- employer -----------------------------------------------------------------------------


def test_lock_unlock_reimburse_exactly_once() -> None:
    net = authorised()
    n = {"number": number(1)}
    assert net.do(ISSUER_A, "issue", blue(1)) == ""
    assert net.do(EMP, "lock", n) == "not_submitted"
    assert net.do(BUYER, "claim", n) == ""
    assert net.do(BUYER, "submit", {**n, "employer": pub(EMP)}) == ""
    assert net.do(EMP2, "lock", n) == "not_submitted"
    assert net.do(BUYER, "lock", n) == "forbidden"  # a depositor is no employer
    assert net.do(EMP, "lock", n) == ""
    assert net.do(EMP, "lock", n) == "not_issued"
    assert net.do(EMP2, "lock", n) == "not_issued"  # locked: no other employer
    assert net.do(BUYER, "submit", {**n, "employer": pub(EMP2)}) == "not_issued"
    assert net.do(EMP2, "unlock", n) == "not_locker"
    assert net.do(EMP2, "reimburse", n) == "not_locker"
    assert net.do(EMP, "unlock", n) == ""
    assert net.do(EMP, "lock", n) == "not_submitted"  # unlocking withdrew the submission
    assert net.do(BUYER, "submit", {**n, "employer": pub(EMP2)}) == ""
    assert net.do(EMP2, "lock", n) == ""
    assert net.do(EMP2, "reimburse", n) == ""
    assert net.do(EMP2, "reimburse", n) == "not_locked"
    assert net.do(EMP2, "lock", n) == "not_issued"  # never locked again
    assert net.do(EMP2, "unlock", n) == "not_locked"
    record = net.invoice(number(1))
    assert (record["state"], record["reimbursed"], record["locked_by"]) == (
        "reimbursed", 3180, pub(EMP2))
    assert invoice.statistics(net.chain.state, pub(ISSUER_A),
                              invoice.period_of(net.now))["reimbursed"] == 3180


# --- statistics per tax id -------------------------------------------------------------------


class _NoScan:
    """The pages of a store that must not be read: statistics are counters, each one
    `get`, never a scan over issuers."""

    def index_page(self, name: str, key: bytes, before: int | None, limit: int) -> list[int]:
        raise AssertionError("statistics scanned an index")

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        raise AssertionError("statistics scanned the state")


def _stats(net: Net, issuer: str | bytes, month: str) -> invoice.queries.Statistics:
    """The `stats` query as the API runs it, on a view that refuses any scan."""
    view = HeadView(net.chain.state, net.chain.height, net.chain.head_time_ms, _NoScan())
    who = issuer.hex() if isinstance(issuer, bytes) else issuer
    result: invoice.queries.Statistics = invoice.QUERIES["stats"].fn(
        view, invoice.queries.StatsParams(month=month, issuer=who))
    return result


def test_a_tax_ids_counters_are_the_sum_of_its_issuers_and_read_without_a_scan() -> None:
    net = authorised()
    # A second key under A's tax id (a second till of the same shop), B under its own.
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(UNAUTHORISED), "name": "Shop A 2",
                                            "tax_id": TAX_ID_A, "quota": QUOTA}) == ""
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(UNAUTHORISED), "name": "Shop A 2",
                                            "tax_id": TAX_ID_A, "quota": QUOTA + 1}) == ""
    n = {"number": number(2)}
    assert [net.do(ISSUER_A, "issue", blue(1)), net.do(UNAUTHORISED, "issue", blue(2)),
            net.do(ISSUER_B, "issue", blue(3)),
            net.do(ISSUER_A, "issue_batch", {"invoices": [blue(4), blue(5)]}),
            net.do(ISSUER_A, "red_letter", red(90, 1)),
            net.do(BUYER, "claim", n), net.do(BUYER, "submit", {**n, "employer": pub(EMP)}),
            net.do(EMP, "lock", n), net.do(EMP, "reimburse", n)] == [""] * 9
    month = invoice.period_of(net.now)
    a, a2, b = (_stats(net, pub(i), month) for i in (ISSUER_A, UNAUTHORISED, ISSUER_B))
    by_tax_id = _stats(net, TAX_ID_A.lower(), month)  # normalised like any USCC
    fields = ("issued", "issued_count", "reversed", "reimbursed")
    assert [getattr(a, f) for f in fields] == [3 * 3180, 3, 3180, 0]
    assert [getattr(a2, f) for f in fields] == [3180, 1, 0, 3180]
    assert [getattr(by_tax_id, f) for f in fields] == [
        getattr(a, f) + getattr(a2, f) for f in fields]
    assert (by_tax_id.tax_id, by_tax_id.issuer, by_tax_id.issuer_count) == (TAX_ID_A, None, 2)
    assert (a.tax_id, a.issuer, a.issuer_count) == (TAX_ID_A, pub(ISSUER_A).hex(), 1)
    assert [getattr(_stats(net, TAX_ID_B, month), f) for f in fields] == [
        getattr(b, f) for f in fields]
    assert invoice.tax_id_statistics(net.chain.state, TAX_ID_A, "2001-01")["issued"] == 0
    with pytest.raises(NotFound):
        _stats(net, BUYER_USCC, month)  # a valid code no issuer is authorised under
    with pytest.raises(DecodeError):
        _stats(net, TAX_ID_A[:-1] + "0", month)


# --- red-letter invoices --------------------------------------------------------------------


def test_red_letter_partial_then_full_and_never_beyond() -> None:
    two_lines = [LINE, tb.invoice_line("cake", 1, 2000, 600)]  # 3180 + 2120
    net = authorised()
    assert net.do(ISSUER_A, "issue", blue(1, lines=two_lines)) == ""
    assert net.do(ISSUER_B, "red_letter", red(90, 1)) == "not_issuer"
    assert net.do(BUYER, "red_letter", red(90, 1)) == "forbidden"
    assert net.do(ISSUER_A, "red_letter", {**red(90, 1), "reason": "oops"}) == \
        "client:bad_argument"
    sealed_red = net.sealed(ISSUER_A, "red_letter", red(90, 1))
    assert net.do(ISSUER_A, "red_letter", {**sealed_red, "reason": "oops"}) == "bad_argument"
    outsider_sealed = sealing.sealed_red_args(red(90, 1), {pub(ISSUER_A), pub(EMP), *AUDITORS})
    assert net.do(ISSUER_A, "red_letter", outsider_sealed) == "wrong_readers"
    assert net.do(ISSUER_A, "red_letter", red(90, 2)) == "not_found"
    assert net.do(ISSUER_A, "red_letter", red(1, 1)) == "duplicate_number"
    assert net.do(ISSUER_A, "red_letter", red(90, 1)) == ""  # 3180 of 5300
    assert net.do(ISSUER_A, "red_letter", red(91, 90)) == "not_reversible"
    too_much = [tb.invoice_line("cake", 2, 2000, 600)]  # 4240 > 2120 left
    assert net.do(ISSUER_A, "red_letter", red(91, 1, too_much)) == "over_reversal"
    rest = [tb.invoice_line("cake", 1, 2000, 600)]
    assert net.do(ISSUER_A, "red_letter", red(91, 1, rest, "sales_discount")) == ""
    assert net.do(ISSUER_A, "red_letter", red(92, 1, [tb.invoice_line("x", 1, 1, 0)])) == \
        "over_reversal"
    original = net.invoice(number(1))
    assert original["reversed"] == original["total"] == 5300
    assert net.content(number(1), TAX)["lines"] == two_lines  # content never changes
    assert net.content(number(90), BUYER)["reason"] == "sales_return"
    assert net.invoice(number(90))["original"] == number(1)
    assert invoice.statistics(net.chain.state, pub(ISSUER_A),
                              invoice.period_of(net.now))["reversed"] == 5300
    # A fully reversed invoice can be claimed (it is the buyer's record) but never
    # submitted or reimbursed.
    assert net.do(BUYER, "claim", {"number": number(1)}) == ""
    assert net.do(BUYER, "submit", {"number": number(1), "employer": pub(EMP)}) == \
        "fully_reversed"
    assert net.do(BUYER, "claim", {"number": number(90)}) == "red_invoice"


def test_reversing_a_claimed_invoice_needs_the_buyers_confirmation() -> None:
    net = authorised()
    assert net.do(ISSUER_A, "issue", blue(1)) == ""
    assert net.do(ISSUER_A, "request_reversal", red(90, 1)) == "no_confirmation_needed"
    assert net.do(BUYER, "claim", {"number": number(1)}) == ""
    assert net.do(ISSUER_A, "red_letter", red(90, 1)) == "confirmation_required"
    assert net.do(BUYER, "confirm_reversal", {"original": number(1)}) == "not_found"
    assert net.do(ISSUER_A, "request_reversal", red(90, 1)) == ""
    assert invoice.pending_reversal(net.chain.state, number(1)) is not None
    assert net.do(ISSUER_A, "request_reversal", red(91, 1)) == "pending"
    assert net.do(BUYER2, "confirm_reversal", {"original": number(1)}) == "not_party"
    assert net.do(BUYER, "confirm_reversal", {"original": number(1)}) == ""
    assert invoice.pending_reversal(net.chain.state, number(1)) is None
    assert net.invoice(number(1))["reversed"] == 3180 and net.invoice(number(90))["kind"] == "red"


def test_on_a_locked_invoice_the_employer_confirms_within_72_hours() -> None:
    net = locked()
    assert net.do(ISSUER_A, "request_reversal", red(90, 1)) == ""
    assert net.do(BUYER, "confirm_reversal", {"original": number(1)}) == "not_party"
    assert net.do(EMP, "confirm_reversal", {"original": number(1)},
                  advance_ms=CONFIRM_WINDOW_MS) == "lapsed"
    # The lapsed request no longer blocks a new one.
    assert net.do(ISSUER_A, "request_reversal", red(90, 1)) == ""
    assert net.do(EMP, "confirm_reversal", {"original": number(1)},
                  advance_ms=CONFIRM_WINDOW_MS - 1) == ""
    assert net.do(EMP, "reimburse", {"number": number(1)}) == "fully_reversed"
    assert net.do(EMP, "unlock", {"number": number(1)}) == ""


def test_a_reimbursed_invoice_is_reversed_only_with_the_employers_confirmation() -> None:
    net = locked()
    assert net.do(EMP, "reimburse", {"number": number(1)}) == ""
    half = [tb.invoice_line("coffee", 1, 1500, 600)]
    assert net.do(ISSUER_A, "red_letter", red(90, 1, half)) == "confirmation_required"
    assert net.do(ISSUER_A, "request_reversal", red(90, 1, half)) == ""
    assert net.do(EMP, "confirm_reversal", {"original": number(1)}) == ""
    record = net.invoice(number(1))
    assert (record["state"], record["reversed"], record["reimbursed"]) == (
        "reimbursed", 1590, 3180)


def test_the_buyer_side_asks_and_the_issuer_confirms_by_the_red_letter_invoice() -> None:
    net = authorised()
    assert net.do(ISSUER_A, "issue", blue(1)) == ""
    ask = {"original": number(1), "reason": "sales_return", "total": 1000}
    assert net.do(BUYER, "ask_reversal", ask) == "not_party"  # not claimed: no need to ask
    net = locked()
    assert net.do(BUYER, "ask_reversal", ask) == "not_party"  # the employer holds it
    assert net.do(EMP, "ask_reversal", {**ask, "total": 3181}) == "over_reversal"
    assert net.do(EMP, "ask_reversal", {**ask, "reason": "oops"}) == "bad_argument"
    assert net.do(EMP, "ask_reversal", ask) == ""
    assert invoice.asked_reversal(net.chain.state, number(1)) is not None
    assert net.do(EMP, "ask_reversal", ask) == "pending"
    part = [tb.invoice_line("refund", 1000, 1, 0)]
    assert net.do(ISSUER_A, "red_letter", red(90, 1, [tb.invoice_line("refund", 999, 1, 0)])
                  ) == "not_as_asked"
    assert net.do(ISSUER_A, "red_letter", red(90, 1, part, "sales_discount")) == "not_as_asked"
    assert net.do(ISSUER_A, "red_letter", red(90, 1, part)) == ""  # the confirmation
    assert invoice.asked_reversal(net.chain.state, number(1)) is None
    assert net.do(ISSUER_A, "red_letter", red(91, 1, part)) == "confirmation_required"
    # An ask lapses 72 hours of block time later.
    assert net.do(EMP, "ask_reversal", ask) == ""
    net.run(advance_ms=CONFIRM_WINDOW_MS + 1)
    assert net.do(ISSUER_A, "red_letter", red(91, 1, part)) == "confirmation_required"
    assert net.invoice(number(1))["reversed"] == 1000


def test_a_failed_call_changes_nothing_and_the_regulator_writes_nothing() -> None:
    net = locked()
    root = net.chain.state.root()
    for method in invoice.CONTRACT.methods:
        assert net.do(REG, method, {"number": number(1)}) == "forbidden"
    assert net.do(EMP2, "reimburse", {"number": number(1)}) == "not_locker"
    assert net.chain.state.root() == root


def test_txbuilder_refuses_unknown_actions() -> None:
    with pytest.raises(DecodeError):
        tb.invoice_action_args("steal", number(1))
    args = tb.invoice_action_args("submit", number(1), employer=pub(EMP), wrapped=b"w" * 80)
    assert args == {"number": number(1), "employer": pub(EMP), "wrapped": b"w" * 80}


# --- periods ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 253_402_300_799_999))  # up to 9999-12-31
def test_period_is_the_utc_calendar_month(time_ms: int) -> None:
    year, month = _civil_month(time_ms)
    assert invoice.period_of(time_ms) == f"{year:04d}-{month:02d}"


def _civil_month(time_ms: int) -> tuple[int, int]:
    days = time_ms // 86_400_000
    year = 1970
    while days >= (n := 366 if calendar.isleap(year) else 365):
        days, year = days - n, year + 1
    month = 1
    while days >= (n := calendar.monthrange(year, month)[1]):
        days, month = days - n, month + 1
    return year, month


# --- stateful property test: any operations by any actors ------------------------------------

ACTORS = list(ROLES_OF)
ACTOR = st.sampled_from(ACTORS)
NUMBER = st.integers(1, 12)


def actor(*likely: int) -> st.SearchStrategy[int]:
    """Any actor, but half the time one of those that may succeed: the wrong ones are
    tried often enough, and the right ones get far enough to reach every state."""
    return st.one_of(st.sampled_from(likely), ACTOR)


TAXMAN = actor(TAX)
ISSUING = actor(ISSUER_A, ISSUER_B)
BUYING = actor(BUYER, BUYER2, EMP)
EMPLOYING = actor(EMP, EMP2)
METHOD_ROLES = {name: spec.roles for name, spec in invoice.CONTRACT.methods.items()}
UNIT_PRICES = (100, 1000, 5000)
REVERSAL = st.sampled_from(["half", "all_but_one", "all", "one_more", "much_more"])


def _lines(quantity: int, price: int) -> list[dict[str, Any]]:
    return [tb.invoice_line("item", quantity, price, 600)]


class InvoiceMachine(RuleBasedStateMachine):
    """Random calls by random actors (wrong ones included) against a simple model.
    After every call: a refused call changed nothing; an accepted one was allowed by
    the model (role, party, state, quota); and the four invariants of acceptance 2
    hold on the chain's state."""

    issued: Bundle[int] = Bundle("issued")
    EXISTING = st.one_of(issued, issued, issued, NUMBER)
    """Calls on invoices draw mostly from the numbers issued so far."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.issuers: dict[int, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.asks: dict[str, dict[str, Any]] = {}
        self.reimbursed_total = 0
        self.periods: set[str] = set()

    # -- plumbing

    def _call(self, actor: int, method: str, args: dict[str, Any]) -> bool:
        root = self.net.chain.state.root()
        error = self.net.do(actor, method, args)
        self.periods.add(invoice.period_of(self.net.now))
        if error:
            assert self.net.chain.state.root() == root, (method, error)
            return False
        assert ROLES_OF[actor] in METHOD_ROLES[method], (actor, method)
        return True

    def _new_invoice(self, kind: str, issuer: int, total: int, holder: int | None,
                     number_: str) -> None:
        self.invoices[number_] = {"kind": kind, "issuer": issuer, "total": total,
                                  "reversed": 0, "state": "issued", "holder": holder,
                                  "claimed": False, "submitted_to": None, "locked_by": None,
                                  "reimbursed": 0,
                                  "sealed": self.net.invoice(number_)["sealed"]}

    def _can_issue(self, actor: int, totals: list[int], numbers: list[str]) -> bool:
        issuer = self.issuers.get(actor)
        return (issuer is not None and not issuer["suspended"]
                and issuer["issued"] + sum(totals) <= issuer["quota"]
                and len(set(numbers)) == len(numbers)
                and not any(n in self.invoices for n in numbers))

    def _party(self, n: int, field: str, drawn: int, right: bool) -> int:
        """`drawn`, or (if `right`) the party the model says may act on invoice n."""
        record = self.invoices.get(number(n))
        if not right or record is None:
            return drawn
        if field == "confirmer":
            field = "holder" if record["state"] == "issued" else "locked_by"
        party: int | None = record[field]
        return drawn if party is None else party

    def _blue(self, n: int) -> dict[str, Any] | None:
        record = self.invoices.get(number(n))
        return record if record is not None and record["kind"] == "blue" else None

    @initialize()
    def authorise_both(self) -> None:
        assert self._call(TAX, "set_auditors", {"keys": AUDITORS})
        for who, tax_id in ((ISSUER_A, TAX_ID_A), (ISSUER_B, TAX_ID_B)):
            assert self._call(TAX, "authorise_issuer", {"issuer": pub(who), "name": "shop",
                                                        "tax_id": tax_id, "quota": 40_000})
            self.issuers[who] = {"issued": 0, "quota": 40_000, "suspended": False}

    # -- tax authority

    @rule(actor=TAXMAN, op=st.sampled_from(["authorise"] * 4 + ["set_quota"] * 2 + ["suspend"]),
          who=st.sampled_from([ISSUER_A, ISSUER_B, UNAUTHORISED, BUYER]),
          quota=st.sampled_from([0, 3_000, 40_000, 100_000]))
    def tax_authority(self, actor: int, op: str, who: int, quota: int) -> None:
        tax_id = TAX_ID_A if who == ISSUER_A else TAX_ID_B
        args: dict[str, Any] = {"issuer": pub(who)}
        if op == "authorise":
            args.update({"name": "shop", "tax_id": tax_id, "quota": quota})
        elif op == "set_quota":
            args["quota"] = quota
        if not self._call(actor, {"authorise": "authorise_issuer", "suspend": "suspend_issuer",
                                  "set_quota": "set_quota"}[op], args):
            return
        assert actor == TAX and (op == "authorise" or who in self.issuers)
        record = self.issuers.setdefault(who, {"issued": 0, "suspended": False})
        if op == "suspend":
            record["suspended"] = True
        else:
            record["quota"] = quota
            record["suspended"] = record["suspended"] and op != "authorise"

    # -- issuer

    @rule(target=issued, actor=ISSUING, n=NUMBER,
          buyer=st.sampled_from([BUYER, BUYER2, EMP, ISSUER_B]),
          quantity=st.integers(1, 3), price=st.sampled_from(UNIT_PRICES))
    def issue(self, actor: int, n: int, buyer: int, quantity: int,
              price: int) -> MultipleResults[int]:
        args = blue(n, buyer, _lines(quantity, price))
        if not self._call(actor, "issue", args):
            return multiple()
        assert self._can_issue(actor, [args["total"]], [number(n)])
        self.issuers[actor]["issued"] += args["total"]
        self._new_invoice("blue", actor, args["total"], buyer, number(n))
        return multiple(n)

    @rule(target=issued, actor=ISSUING, ns=st.lists(NUMBER, min_size=1, max_size=3),
          price=st.sampled_from(UNIT_PRICES))
    def issue_batch(self, actor: int, ns: list[int], price: int) -> MultipleResults[int]:
        batch = [blue(n, BUYER, _lines(1, price)) for n in ns]
        if not self._call(actor, "issue_batch", {"invoices": batch}):
            return multiple()
        assert self._can_issue(actor, [b["total"] for b in batch], [number(n) for n in ns])
        for args in batch:
            self.issuers[actor]["issued"] += args["total"]
            self._new_invoice("blue", actor, args["total"], BUYER, args["number"])
        return multiple(*ns)

    def _reversible(self, actor: int, original: int, red_number: str, total: int) -> bool:
        record = self.invoices.get(number(original))
        return (record is not None and record["kind"] == "blue"
                and record["issuer"] == actor and red_number not in self.invoices
                and record["reversed"] + total <= record["total"])

    @staticmethod
    def _needs_confirmation(record: dict[str, Any]) -> bool:
        return bool(record["claimed"]) or record["state"] != "issued"

    def _apply_red(self, issuer: int, original: str, red_number: str, total: int) -> None:
        self.invoices[original]["reversed"] += total
        self._new_invoice("red", issuer, total, None, red_number)

    def _red_total(self, original: int, how: str) -> int:
        """A red-letter total near the edge: half, all but one fen, all, one fen more,
        or far more than what is left of the original."""
        record = self.invoices.get(number(original))
        left = 1000 if record is None else record["total"] - record["reversed"]
        return max(1, {"half": left // 2, "all_but_one": left - 1, "all": left,
                       "one_more": left + 1, "much_more": left + 5000}[how])

    @rule(actor=ISSUING, n=NUMBER, original=EXISTING, how=REVERSAL,
          direct=st.booleans(), right=st.booleans())
    def reverse(self, actor: int, n: int, original: int, how: str, direct: bool,
                right: bool, as_asked: dict[str, Any] | None = None) -> None:
        actor = self._party(original, "issuer", actor, right)
        # Unit price 1 fen, no tax: the total is exactly the quantity.
        total = as_asked["total"] if as_asked else self._red_total(original, how)
        args = red(n, original, [tb.invoice_line("refund", total, 1, 0)],
                   as_asked["reason"] if as_asked else "sales_return")
        method = "red_letter" if direct else "request_reversal"
        if not self._call(actor, method, args):
            return
        assert self._reversible(actor, original, number(n), args["total"])
        record = self.invoices[number(original)]
        if direct:
            if self._needs_confirmation(record):  # only as the buyer side asked
                asked = self.asks.pop(number(original))
                assert self.net.now <= asked["at"] + CONFIRM_WINDOW_MS
                assert (asked["reason"], asked["total"]) == (args["reason"], args["total"])
                event("a red-letter invoice answered the buyer side's ask")
            self._apply_red(actor, number(original), number(n), args["total"])
        else:
            assert self._needs_confirmation(record)
            live = self.pending.get(number(original))
            assert live is None or self.net.now > live["at"] + CONFIRM_WINDOW_MS
            self.pending[number(original)] = {"issuer": actor, "number": number(n),
                                              "total": args["total"], "at": self.net.now}

    # -- buyer side

    @rule(actor=actor(BUYER, EMP), original=EXISTING, right=st.booleans())
    def confirm(self, actor: int, original: int, right: bool) -> None:
        actor = self._party(original, "confirmer", actor, right)
        if not self._call(actor, "confirm_reversal", {"original": number(original)}):
            return
        request = self.pending.pop(number(original))
        assert self.net.now <= request["at"] + CONFIRM_WINDOW_MS
        event("the buyer side confirmed a requested reversal")
        record = self.invoices[number(original)]
        confirmer = record["holder"] if record["state"] == "issued" else record["locked_by"]
        assert actor == confirmer
        assert self._reversible(request["issuer"], original, request["number"],
                                request["total"])
        self._apply_red(request["issuer"], number(original), request["number"],
                        request["total"])

    @rule(actor=BUYING, original=EXISTING, how=REVERSAL,
          reason=st.sampled_from(["sales_return", "sales_discount"]), right=st.booleans())
    def ask(self, actor: int, original: int, how: str, reason: str, right: bool) -> None:
        actor = self._party(original, "confirmer", actor, right)
        total = self._red_total(original, how)
        if not self._call(actor, "ask_reversal", {"original": number(original),
                                                  "reason": reason, "total": total}):
            return
        record = self._blue(original)
        assert record is not None and self._needs_confirmation(record)
        confirmer = record["holder"] if record["state"] == "issued" else record["locked_by"]
        assert actor == confirmer and record["reversed"] + total <= record["total"]
        live = self.asks.get(number(original))
        assert live is None or self.net.now > live["at"] + CONFIRM_WINDOW_MS
        self.asks[number(original)] = {"reason": reason, "total": total, "at": self.net.now}

    @rule(actor=BUYING, n=EXISTING, right=st.booleans())
    def claim(self, actor: int, n: int, right: bool) -> None:
        actor = self._party(n, "holder", actor, right)
        if self._call(actor, "claim", {"number": number(n)}):
            record = self._blue(n)
            assert record is not None and not record["claimed"] and record["holder"] == actor
            record["claimed"] = True

    @rule(actor=BUYING, n=EXISTING, employer=st.sampled_from([EMP, EMP, EMP2, BUYER]),
          right=st.booleans())
    def submit(self, actor: int, n: int, employer: int, right: bool) -> None:
        actor = self._party(n, "holder", actor, right)
        if self._call(actor, "submit", {"number": number(n), "employer": pub(employer)}):
            record = self._blue(n)
            assert record is not None and record["claimed"] and record["holder"] == actor
            assert record["state"] == "issued" and record["reversed"] < record["total"]
            record["submitted_to"] = employer

    # -- employer

    @rule(actor=EMPLOYING, n=EXISTING, right=st.booleans())
    def lock(self, actor: int, n: int, right: bool) -> None:
        actor = self._party(n, "submitted_to", actor, right)
        if self._call(actor, "lock", {"number": number(n)}):
            record = self._blue(n)
            assert record is not None and record["state"] == "issued"
            assert record["submitted_to"] == actor and record["reversed"] < record["total"]
            record["state"], record["locked_by"] = "locked", actor

    @rule(actor=EMPLOYING, n=EXISTING, right=st.booleans())
    def unlock(self, actor: int, n: int, right: bool) -> None:
        actor = self._party(n, "locked_by", actor, right)
        if self._call(actor, "unlock", {"number": number(n)}):
            record = self._blue(n)
            assert record is not None and record["state"] == "locked"
            assert record["locked_by"] == actor
            record["state"], record["locked_by"], record["submitted_to"] = "issued", None, None

    @rule(actor=EMPLOYING, n=EXISTING, right=st.booleans())
    def reimburse(self, actor: int, n: int, right: bool) -> None:
        actor = self._party(n, "locked_by", actor, right)
        if self._call(actor, "reimburse", {"number": number(n)}):
            record = self._blue(n)
            assert record is not None and record["state"] == "locked"
            assert record["locked_by"] == actor and record["reimbursed"] == 0
            assert record["reversed"] < record["total"]
            record["state"] = "reimbursed"
            record["reimbursed"] = record["total"] - record["reversed"]
            self.reimbursed_total += record["reimbursed"]
            event("an invoice was reimbursed")

    @rule(n=issued, choice=st.integers(0, 5), how=REVERSAL,
          red_n=NUMBER, employer=st.sampled_from([EMP, EMP2]))
    def progress(self, n: int, choice: int, how: str, red_n: int, employer: int) -> None:
        """The next step of invoice n's life by the party entitled to take it: without
        this, random actors rarely get an invoice as far as a reimbursement."""
        record = self._blue(n)
        if record is None:
            return
        if number(n) in self.pending and choice < 3:
            self.confirm(ACTORS[0], n, right=True)
        elif number(n) in self.asks and choice < 3:
            self.reverse(record["issuer"], red_n, n, how, direct=True, right=False,
                         as_asked=self.asks[number(n)])
        elif choice == 5:
            self.reverse(record["issuer"], red_n, n, how, direct=False, right=False)
        elif record["state"] == "locked":
            (self.unlock if choice == 0 else self.reimburse)(record["locked_by"], n,
                                                              right=False)
        elif record["state"] == "reimbursed":
            self.reverse(record["issuer"], red_n, n, how, direct=False, right=False)
        elif not record["claimed"]:
            self.claim(record["holder"], n, right=False)
        elif record["submitted_to"] is None:
            self.submit(record["holder"], n, employer, right=False)
        else:
            self.lock(record["submitted_to"], n, right=False)

    @rule(hours=st.integers(1, 80))
    def wait(self, hours: int) -> None:
        self.net.run(advance_ms=hours * HOUR_MS)

    # -- the invariants of acceptance 2, on the chain's state

    @invariant()
    def invoices_match_the_model(self) -> None:
        for number_, model in self.invoices.items():
            record = self.net.invoice(number_)
            for field in ("ciphertext", "nonce", "commitment"):  # immutable once issued
                assert record["sealed"][field] == model["sealed"][field]
            assert record["reversed"] == model["reversed"] <= record["total"]
            assert (record["state"], record["kind"]) == (model["state"], model["kind"])
            assert record["reimbursed"] == model["reimbursed"]  # at most once, by the model

    @invariant()
    def nothing_is_reimbursed_twice(self) -> None:
        state = self.net.chain.state
        reimbursed = sum(invoice.statistics(state, pub(issuer), period)["reimbursed"]
                         for issuer in self.issuers for period in self.periods)
        assert reimbursed == self.reimbursed_total

    @invariant()
    def tax_id_counters_are_their_issuers_sums(self) -> None:
        state = self.net.chain.state
        under: dict[str, list[int]] = {}
        for who in ACTORS:
            record = invoice.get_issuer(state, pub(who))
            if record is not None:
                under.setdefault(record["tax_id"], []).append(who)
        for period in self.periods:
            for tax_id, issuers in under.items():
                summed = {k: sum(invoice.statistics(state, pub(i), period)[k] for i in issuers)
                          for k in ("issued", "issued_count", "reversed", "reimbursed")}
                assert invoice.tax_id_statistics(state, tax_id, period) == summed
            assert invoice.tax_id_issuers(state, TAX_ID_A) == len(under.get(TAX_ID_A, []))

    @invariant()
    def quotas_hold(self) -> None:
        for who, model in self.issuers.items():
            record = invoice.get_issuer(self.net.chain.state, pub(who))
            assert record is not None and record["issued"] == model["issued"]
            blue_total = sum(i["total"] for i in self.invoices.values()
                             if i["issuer"] == who and i["kind"] == "blue")
            assert blue_total == model["issued"]


InvoiceMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=100, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_any_operations_by_any_actors_keep_the_rules = InvoiceMachine.TestCase


# --- privacy: who can read (acceptance 3 of issue 5; tests/test_invoice_privacy.py
# does the same through a real node's API, SDK, CLI and raw blocks) -------------------


def test_invoices_are_sealed_to_exactly_the_entitled_readers() -> None:
    net = Net()
    assert net.do(TAX, "authorise_issuer", {"issuer": pub(ISSUER_A), "name": "Shop A",
                                            "tax_id": TAX_ID_A, "quota": QUOTA}) == ""
    assert net.do(ISSUER_A, "issue", blue(1)) == "no_auditors"
    assert net.do(ISSUER_A, "set_auditors", {"keys": AUDITORS}) == "forbidden"
    assert net.do(TAX, "set_auditors", {"keys": [pub(TAX), pub(TAX)]}) == "bad_argument"
    assert net.do(TAX, "set_auditors", {"keys": AUDITORS}) == ""
    plain = blue(1)
    for readers in ({pub(ISSUER_A), pub(BUYER)},  # the tax authority left out
                    {pub(ISSUER_A), pub(BUYER), pub(TAX), pub(REG)}):  # an outsider added
        checked = tb.invoice_content.check_blue(plain)
        args = {"number": number(1), "total": 3180, "holder": pub(BUYER),
                "sealed": sealing.seal_content(number(1), checked["content"], readers)}
        assert net.do(ISSUER_A, "issue", args) == "wrong_readers"
    assert net.do(ISSUER_A, "issue", plain) == ""
    readers = lambda: {r for r in (ISSUER_A, BUYER, BUYER2, EMP, EMP2, TAX, REG)  # noqa: E731
                       if _can_read(net, number(1), r)}
    assert readers() == {ISSUER_A, BUYER, TAX}
    assert net.do(BUYER, "claim", {"number": number(1)}) == ""
    assert net.do(BUYER, "submit", {"number": number(1), "employer": pub(EMP)}) == ""
    assert readers() == {ISSUER_A, BUYER, TAX, EMP}  # the employer it was submitted to
    assert net.do(EMP, "lock", {"number": number(1)}) == ""
    assert readers() == {ISSUER_A, BUYER, TAX, EMP}
    # Submitting without sharing the key is refused: the employer could not check it.
    assert net.do(ISSUER_A, "issue", blue(2)) == ""
    assert net.do(BUYER, "claim", {"number": number(2)}) == ""
    raw = tb.call_tx(key(BUYER), genesis().chain_id, "invoice", "submit",
                     {"number": number(2), "employer": pub(EMP2)}, now_ms=net.now + 1,
                     nonce=b"no-wrap-nonce-16")
    [result] = net.run(raw)
    assert result.error == "bad_envelope"


def _can_read(net: Net, number_: str, reader: int) -> bool:
    try:
        net.content(number_, reader)
    except sealing.NotAReader:
        return False
    return True
