"""Supply-chain finance (contracts/scf, issue 13, acceptance 1): random operations by
random actors against a plain-Python model of the rules, on an in-process chain
(tests/scf_net.py, CORE2 in an organisation of its own so the trade-background rule
has two sides).

Actors: the core enterprises CORE and CORE2, the suppliers SUP1-4, the funders BANK
and BANK2, and outsiders (DEPOSITOR, REG, TAX, ISSUER) calling what they may not. Each
rule draws an actor, mostly one that may succeed (`right`), sometimes anyone. The model
says what the chain must answer, to the error code; the chain's answer must be exactly
that, and a refused call must carry a reason and leave the scf namespace (and the state
root) unchanged.

After every step, on the chain's state (the certificate records, the markers and the
counters, read back; the model only says what they must be):

* the records are what the model says (status, holder, recipient, amount, tier, ...);
* conservation: for each root, the face value of the live certificates under it, plus
  what was settled, plus the root's amount if it closed unaccepted (refused, lapsed),
  is the root's amount; a consumed certificate's children sum to it;
* one holder per live certificate: the `h/` markers are exactly (holder, id) of the live
  records, `p/` exactly the pending ones, `m/` the live ones by maturity, `r/`, `i/` and
  `f/` exactly every certificate, every root, every financing;
* nothing moves after it is consumed, refused, lapsed or settled; while frozen only
  approve, decline and settle change it; from maturity only settle does; and a call
  changes no certificate but those it names and those it creates;
* no credit line is exceeded: outstanding <= limit, outstanding == the face value of
  the core's live certificates, and each tier counter == that tier's live face value;
* what an invoice backs (`state.invoice_backed`) is the sum its live and settled
  certificates took from it, never above its total; right after an issue it is at most
  the invoice's total less what was reversed (checked at each issue). A later reversal
  may leave an invoice backing more than its total less reversals: that is not refused
  after the fact, it is what `flagged` reports, so the check is that an invoice backing
  more than that always has a certificate it backs flagged, and that `flagged` (through
  `queries.certificate_of`) is exactly "an invoice of its root reversed since the issue";
* the queries agree: effective status and overdue per certificate, the overdue list
  (every page), held and incoming per member, outstanding per core, funder totals.

Random actors alone rarely get far (five tiers down, frozen at maturity, financed
twice), so besides one rule per method some rules take the next step of a
certificate's life by the party entitled to it (`progress`, `deepen`, `descend`,
`fund`, `frozen_at_maturity`, `settle_due`) or try every refused split in turn
(`split_wrongly`); they go through the same calls, checks and model.

The counts of what each kind of operation did (succeeded, refused, by code) are
printed, and every kind must have succeeded at least once, and the paths that matter
(a lapse, a transfer settled to its sender, a frozen certificate settled, a refused
transfer, a flagged certificate, ...) must have been taken: the invariants cannot hold
vacuously.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.scf_net import (
    AUDITORS,
    BANK,
    BANK2,
    CORE,
    CORE2,
    CORE2_ORG,
    DAY_MS,
    DEPOSITOR,
    GENESIS_TIME_MS,
    ISSUER,
    REG,
    ROLES_OF,
    SUP1,
    SUP2,
    SUP3,
    SUP4,
    TAX,
    TAX_ID,
    ScfNet,
    number,
    pub,
    two_org_genesis,
)
from tidechain.contracts import scf
from tidechain.contracts.scf import queries
from tidechain.contracts.scf.contract import (
    DEFAULT_MAX_MATURITY_MS,
    DEFAULT_MAX_TIERS,
    DEFAULT_MIN_SPLIT_FEN,
    MAX_BACKING_INVOICES,
)
from tidechain.contracts.scf.state import invoice_backed
from tidechain.core import cbor
from tidechain.core.crypto import sha256
from tidechain.identity import Role
from tidechain.ledger.application import NoParams, PageRequest
from tidechain.ledger.runtime import stored_map

U = DEFAULT_MIN_SPLIT_FEN  # CNY 100, the smallest part
ENTERPRISES = (CORE, CORE2, SUP1, SUP2, SUP3, SUP4)
SUPPLIERS = (SUP1, SUP2, SUP3, SUP4)
FUNDERS = (BANK, BANK2)
OUTSIDERS = (DEPOSITOR, REG, TAX, ISSUER)
ACTORS = ENTERPRISES + FUNDERS + OUTSIDERS
ORG = {n: CORE2_ORG if n == CORE2 else "test-org" for n in ACTORS}
BY_KEY = {pub(n): n for n in ACTORS}
METHOD_ROLES = {name: spec.roles for name, spec in scf.CONTRACT.methods.items()}
CONTRACT_DIGEST = sha256(b"supply contract")
MISSING_INVOICE = number(999)
HORIZON_MS = GENESIS_TIME_MS + 2 * 365 * DAY_MS
"""Block time stays below this (the members' certificates outlive it)."""

PENDING, ACTIVE, FROZEN = "pending", "active", "frozen"
CONSUMED, REFUSED, LAPSED, SETTLED = "consumed", "refused", "lapsed", "settled"
LIVE = (PENDING, ACTIVE, FROZEN)
CLOSED = (CONSUMED, REFUSED, LAPSED, SETTLED)

KINDS = ("set_line", "issue", "accept", "refuse", "split", "finance", "approve", "decline",
         "settle", "reverse")
PATHS = ("settle: lapsed", "settle: transfer unaccepted, to its sender",
         "settle: frozen", "settle: paid to a funder", "refuse: transfer back",
         "refuse: issue closed", "split: with remainder", "split: exact",
         "certificate flagged", "invoice over-backed after a reversal",
         "approve: a funder refinanced", "tier 5 reached by a split",
         "settle: a batch")
"""The paths the run must have taken (counted in `COUNTS`)."""
REQUIRED_CODES = ("forbidden", "bad_counterparty", "bad_maturity", "no_line", "over_line",
                  "below_outstanding", "insufficient_background", "not_trade_background",
                  "no_invoice", "not_pending", "not_recipient", "not_holder", "not_active",
                  "matured", "too_many_tiers", "below_min_split", "over_amount",
                  "not_frozen", "not_funder", "not_matured", "not_issuer", "not_settleable",
                  "not_found", "bad_argument")
"""Refusal codes the run must have seen (each rule's refusal really exercised)."""

COUNTS: Counter[str] = Counter()
"""What the run did: "<kind> ok", "<kind> refused", "<kind> <code>", and the PATHS."""


def has(actor: int, roles: frozenset[Role]) -> bool:
    return not roles.isdisjoint(ROLES_OF[actor])


def actor(*likely: int) -> st.SearchStrategy[int]:
    """One of those likely to succeed, or anyone (outsiders included)."""
    return st.one_of(st.sampled_from(likely), st.sampled_from(ACTORS))


@dataclasses.dataclass
class Cert:
    id: int
    root: int
    parent: int | None
    core: int
    amount: int
    maturity: int
    tier: int
    holder: int
    pending: int | None
    status: str
    backing: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    reversed_at_issue: dict[str, int] = dataclasses.field(default_factory=dict)
    finance: tuple[int, int] | None = None
    funders: list[int] = dataclasses.field(default_factory=list)
    children: list[int] = dataclasses.field(default_factory=list)
    settled_to: int | None = None

    def effective(self, now: int) -> str:
        if self.status == PENDING and now >= self.maturity:
            return LAPSED if self.parent is None else ACTIVE
        return self.status


@dataclasses.dataclass
class Invoice:
    holder: int | None
    total: int
    kind: str = "blue"
    reversed: int = 0
    backed: int = 0


@dataclasses.dataclass
class Line:
    limit: int
    funder: int
    outstanding: int = 0


# --- reading the chain's scf namespace ------------------------------------------------------

PREFIX = b"scf/"


@dataclasses.dataclass
class Chain:
    """The scf namespace, parsed."""

    records: dict[int, dict[str, Any]]
    markers: dict[bytes, set[tuple[Any, int]]]
    lines: dict[bytes, dict[str, Any]]
    tiers: dict[tuple[bytes, int], int]
    stats: dict[bytes, dict[str, Any]]
    backed: dict[str, int]
    next_id: int


def read_chain(kv: dict[bytes, bytes]) -> Chain:
    c = Chain({}, {m: set() for m in (b"h/", b"p/", b"i/", b"f/", b"r/", b"m/")}, {}, {},
              {}, {}, 0)
    for full, value in kv.items():
        k = full[len(PREFIX):]
        if k == b"n":
            c.next_id = int(cbor.decode(value))
        elif k.startswith(b"c/"):
            c.records[int.from_bytes(k[2:], "big")] = stored_map(value, "scf record")
        elif k[:2] in (b"h/", b"p/", b"i/", b"f/"):
            assert len(k) == 2 + 32 + 8 and value == b"", k
            c.markers[k[:2]].add((k[2:34], int.from_bytes(k[34:], "big")))
        elif k[:2] in (b"r/", b"m/"):
            assert len(k) == 2 + 8 + 8 and value == b"", k
            c.markers[k[:2]].add((int.from_bytes(k[2:10], "big"),
                                  int.from_bytes(k[10:], "big")))
        elif k.startswith(b"line/"):
            c.lines[k[5:]] = stored_map(value, "scf record")
        elif k.startswith(b"tier/"):
            c.tiers[(k[5:37], k[37])] = int(cbor.decode(value))
        elif k.startswith(b"fin/"):
            c.stats[k[4:]] = stored_map(value, "scf record")
        elif k.startswith(b"inv/"):
            c.backed[k[4:].decode()] = int(cbor.decode(value))
        else:
            raise AssertionError(f"an scf key the layout does not name: {k!r}")
    return c


class ScfMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = ScfNet(two_org_genesis())
        self.certs: dict[int, Cert] = {}
        self.invoices: dict[str, Invoice] = {}
        self.lines: dict[int, Line] = {}
        self.stats: dict[int, list[int]] = {}
        self.next_invoice = 1
        self._parsed: tuple[int, Chain] | None = None

    # -- plumbing

    def _read(self) -> Chain:
        """The scf namespace parsed, once per block."""
        if self._parsed is None or self._parsed[0] != self.net.chain.height:
            self._parsed = (self.net.chain.height, read_chain(self.net.scf_state()))
        return self._parsed[1]

    @property
    def at(self) -> int:
        """The block time of the next call."""
        return self.net.now + 1

    def _call(self, kind: str, caller: int, method: str, args: dict[str, Any],
              expected: str) -> bool:
        before, root = self.net.scf_state(), self.net.chain.state.root()
        at = self.at
        result = self.net.call(caller, "scf", method, args)
        assert result.error == expected, (
            f"{method} by {caller} {args}: chain {result.error!r} ({result.reason}), "
            f"model {expected!r}")
        COUNTS[f"{kind} {'ok' if result.ok else 'refused'}"] += 1
        if not result.ok:
            COUNTS[f"{kind} {result.error}"] += 1
            assert result.reason, "a refusal without a reason"
            assert self.net.scf_state() == before, f"refused {method} wrote"
            assert self.net.chain.state.root() == root
        else:
            self._only_what_may_move(method, args, before, at)
        return result.ok

    def _only_what_may_move(self, method: str, args: dict[str, Any],
                            before: dict[bytes, bytes], at: int) -> None:
        """Nothing moves after it is closed; while frozen only the funder's answer or
        settlement moves it; from maturity only settlement; and a call changes only the
        certificates it names (and creates)."""
        named = set(args.get("ids", [])) | ({args["id"]} if "id" in args else set())
        after = self.net.scf_state()
        records = PREFIX + b"c/"
        assert {k for k in before if k.startswith(records)} <= set(after)  # never deleted
        for key, value in after.items():
            if not key.startswith(records) or before.get(key) == value:
                continue
            old_raw = before.get(key)
            if old_raw is None:
                continue  # created by this call
            old = stored_map(old_raw, "scf record")
            assert old["id"] in named, (method, args, old["id"])
            assert old["status"] not in CLOSED, (method, old)
            if old["status"] == FROZEN:
                assert method in ("approve", "decline", "settle"), (method, old)
            if at >= old["maturity"]:
                assert method == "settle", (method, old)

    def _pick(self, pick: int, *prefer: str) -> int:
        """A certificate id: mostly one whose stored status is one of `prefer` (one in
        three times any live one), now and then a missing one."""
        if pick % 23 == 0 or not self.certs:
            return len(self.certs) + pick % 5
        ids = sorted(self.certs)
        wanted = prefer if prefer and pick % 3 else LIVE
        chosen = [i for i in ids if self.certs[i].status in wanted] or ids
        return chosen[(pick // 3) % len(chosen)]

    def _wait(self, ms: int) -> None:
        if ms > 0 and self.net.now + ms < HORIZON_MS:
            self.net.run(advance_ms=ms)

    # -- set up

    @initialize()
    def set_up(self) -> None:
        net = self.net
        assert net.call(TAX, "invoice", "set_auditors", {"keys": AUDITORS}).error == ""
        assert net.call(TAX, "invoice", "authorise_issuer", {
            "issuer": pub(ISSUER), "name": "Supplier Group", "tax_id": TAX_ID,
            "quota": 10**12}).error == ""
        for buyer, units in ((CORE, 60), (CORE, 100), (CORE, 25), (CORE2, 80), (CORE2, 40)):
            self.new_invoice(buyer, units)
        for funder, core, limit in ((BANK, CORE, 300 * U), (BANK2, CORE2, 150 * U)):
            assert net.do(funder, "set_line", {"core": pub(core), "limit": limit}) == ""
            self.lines[core] = Line(limit, funder)
        named = net.invoice_to_name(self.next_invoice, unit_fen=50 * U)
        self.invoices[named] = Invoice(None, 50 * U)
        self.next_invoice += 1
        # Two certificates to start from, one accepted: fewer runs without any.
        self.issue(CORE, SUP1, 80 * U, "40", True, [1], 1)
        self.issue(CORE2, SUP2, 40 * U, "20", True, [0], 1)
        self._accept(SUP1, 0, True)
        assert [c.status for c in self.certs.values()] == [ACTIVE, PENDING]

    # -- the invoice side

    @rule(buyer=st.sampled_from([CORE, CORE2]), units=st.sampled_from([20, 50, 100, 200]))
    def new_invoice(self, buyer: int, units: int) -> None:
        """ISSUER (the suppliers' organisation) invoices a core enterprise."""
        n = self.net.invoice(self.next_invoice, buyer=buyer, unit_fen=units * U)
        self.invoices[n] = Invoice(buyer, units * U)
        self.next_invoice += 1

    @rule(pick=st.integers(0, 2**16), how=st.sampled_from(["some", "some", "all", "over"]))
    def reverse(self, pick: int, how: str) -> None:
        """A red-letter invoice reverses part of an invoice, often one backing
        certificates: they must then show `flagged`."""
        backing = sorted({n for c in self.certs.values() for n, _ in c.backing})
        blue = sorted(n for n, i in self.invoices.items() if i.kind == "blue")
        pool = backing if backing and pick % 3 else blue if pick % 5 else sorted(self.invoices)
        original = pool[pick % len(pool)]
        record = self.invoices[original]
        left = record.total - record.reversed
        fen = {"some": max(1, left // 3), "all": max(1, left), "over": left + 1}[how]
        red = self.next_invoice
        if record.kind == "red":
            expected = "not_reversible"
        elif record.reversed + fen > record.total:
            expected = "over_reversal"
        else:
            expected = ""
        error = self.net.red_letter(int(original), red, fen)
        assert error == expected, (original, fen, error, expected)
        COUNTS[f"reverse {'ok' if not error else 'refused'}"] += 1
        if error:
            COUNTS[f"reverse {error}"] += 1
        else:
            record.reversed += fen
            self.invoices[number(red)] = Invoice(None, fen, kind="red")
            self.next_invoice += 1

    # -- credit lines

    @rule(caller=actor(BANK, BANK2), core=st.sampled_from([CORE, CORE, CORE2, SUP1, BANK2,
                                                          DEPOSITOR]),
          how=st.sampled_from(["value", "value", "outstanding", "below"]),
          limit=st.sampled_from([0, 50 * U, 150 * U, 300 * U, 600 * U]))
    def set_line(self, caller: int, core: int, how: str, limit: int) -> None:
        line = self.lines.get(core)
        outstanding = 0 if line is None else line.outstanding
        if how == "outstanding":
            limit = outstanding
        elif how == "below":
            limit = max(0, outstanding - 1)
        if not has(caller, METHOD_ROLES["set_line"]):
            expected = "forbidden"
        elif Role.ENTERPRISE not in ROLES_OF[core]:
            expected = "bad_counterparty"
        elif line is not None and line.funder != caller:
            expected = "not_line_funder"
        elif limit < outstanding:
            expected = "below_outstanding"
        else:
            expected = ""
        if self._call("set_line", caller, "set_line", {"core": pub(core), "limit": limit},
                      expected):
            if line is None:
                self.lines[core] = Line(limit, caller)
            else:
                line.limit, line.funder = limit, caller

    # -- issue, accept, refuse

    @rule(caller=actor(CORE, CORE2),
          to=st.sampled_from([*SUPPLIERS, *SUPPLIERS, *SUPPLIERS, CORE, CORE2, BANK, REG]),
          amount=st.sampled_from([1, U - 1, U, 3 * U, 5 * U, 10 * U, 10 * U + 7, 25 * U,
                                  40 * U, 80 * U, 150 * U]),
          term=st.sampled_from(["now", "1", "2", "5", "10", "20", "40", "40", "max", "over"]),
          own=st.booleans(), cite=st.lists(st.integers(0, 2**16), min_size=1, max_size=3),
          duplicate=st.integers(0, 15))
    def issue(self, caller: int, to: int, amount: int, term: str, own: bool,
              cite: list[int], duplicate: int) -> None:
        at = self.at
        if term in ("now", "max", "over"):
            maturity = {"now": at, "max": at + DEFAULT_MAX_MATURITY_MS,
                        "over": at + DEFAULT_MAX_MATURITY_MS + 1}[term]
        else:
            maturity = at + int(term) * DAY_MS
        mine = [n for n, i in sorted(self.invoices.items())
                if i.holder == caller and i.kind == "blue"]
        pool = mine if own and mine else [*sorted(self.invoices), MISSING_INVOICE]
        numbers = list(dict.fromkeys(pool[i % len(pool)] for i in cite))
        if duplicate == 0:
            numbers.append(numbers[0])
        expected, backing = self._issue_outcome(caller, to, amount, maturity, numbers, at)
        args = {"to": pub(to), "amount": amount, "maturity": maturity,
                "contract": CONTRACT_DIGEST, "invoices": numbers}
        if not self._call("issue", caller, "issue", args, expected):
            return
        cert = Cert(len(self.certs), len(self.certs), None, caller, amount, maturity, 1,
                    caller, to, PENDING, backing,
                    {n: self.invoices[n].reversed for n, _ in backing})
        self.certs[cert.id] = cert
        self.lines[caller].outstanding += amount
        for n, fen in backing:
            self.invoices[n].backed += fen
            # Right after an issue, an invoice backs at most its total less reversals.
            assert scf_backed(self.net, n) <= self.invoices[n].total - self.invoices[n].reversed

    def _issue_outcome(self, caller: int, to: int, amount: int, maturity: int,
                       numbers: list[str], at: int) -> tuple[str, list[tuple[str, int]]]:
        """The contract's checks, in its order."""
        if not has(caller, METHOD_ROLES["issue"]):
            return "forbidden", []
        if len(numbers) > MAX_BACKING_INVOICES:
            return "bad_argument", []
        if to == caller or Role.ENTERPRISE not in ROLES_OF[to]:
            return "bad_counterparty", []
        if not at < maturity <= at + DEFAULT_MAX_MATURITY_MS:
            return "bad_maturity", []
        line = self.lines.get(caller)
        if line is None:
            return "no_line", []
        if line.outstanding + amount > line.limit:
            return "over_line", []
        if len(set(numbers)) != len(numbers):
            return "bad_argument", []
        left, backing = amount, []
        for n in numbers:
            record = self.invoices.get(n)
            if record is None:
                return "no_invoice", []
            if (record.holder is None or ORG[ISSUER] != ORG[to]
                    or ORG[record.holder] != ORG[caller] or record.kind != "blue"):
                return "not_trade_background", []
            take = min(record.total - record.reversed - record.backed, left)
            if take > 0:
                backing.append((n, take))
                left -= take
        if left > 0:
            return "insufficient_background", []
        return "", backing

    def _recipient_outcome(self, method: str, caller: int, cert_id: int) -> str:
        cert = self.certs.get(cert_id)
        if not has(caller, METHOD_ROLES[method]):
            return "forbidden"
        if cert is None:
            return "not_found"
        if cert.effective(self.at) != PENDING:
            return "not_pending"
        return "" if cert.pending == caller else "not_recipient"

    @rule(caller=actor(*SUPPLIERS), pick=st.integers(0, 2**16), right=st.booleans())
    def accept(self, caller: int, pick: int, right: bool) -> None:
        self._accept(caller, self._pick(pick, PENDING), right)

    def _accept(self, caller: int, cert_id: int, right: bool) -> None:
        cert = self.certs.get(cert_id)
        if right and cert is not None and cert.pending is not None:
            caller = cert.pending
        expected = self._recipient_outcome("accept", caller, cert_id)
        if self._call("accept", caller, "accept", {"id": cert_id}, expected):
            assert cert is not None
            cert.holder, cert.pending, cert.status = caller, None, ACTIVE

    @rule(caller=actor(*SUPPLIERS), pick=st.integers(0, 2**16), right=st.booleans())
    def refuse(self, caller: int, pick: int, right: bool) -> None:
        self._refuse(caller, self._pick(pick, PENDING), right)

    def _refuse(self, caller: int, cert_id: int, right: bool) -> None:
        cert = self.certs.get(cert_id)
        if right and cert is not None and cert.pending is not None:
            caller = cert.pending
        expected = self._recipient_outcome("refuse", caller, cert_id)
        if not self._call("refuse", caller, "refuse", {"id": cert_id}, expected):
            return
        assert cert is not None
        cert.pending = None
        if cert.parent is None:
            self._close_unaccepted(cert, REFUSED)
            COUNTS["refuse: issue closed"] += 1
        else:
            cert.status = ACTIVE
            cert.tier -= 1  # back at its sender's tier
            COUNTS["refuse: transfer back"] += 1

    def _close_unaccepted(self, cert: Cert, status: str) -> None:
        cert.status = status
        self.lines[cert.core].outstanding -= cert.amount
        for n, fen in cert.backing:
            self.invoices[n].backed -= fen

    # -- split

    def _live_outcome(self, method: str, caller: int, cert_id: int, want: str) -> str:
        """Permission, existence, the holder, the status `want`, before maturity."""
        cert = self.certs.get(cert_id)
        if not has(caller, METHOD_ROLES[method]):
            return "forbidden"
        if cert is None:
            return "not_found"
        if method in ("split", "finance") and cert.holder != caller:
            return "not_holder"
        if cert.effective(self.at) != want:
            return f"not_{want}"
        if self.at >= cert.maturity:
            return "matured"
        return ""

    @rule(caller=actor(*SUPPLIERS, BANK), pick=st.integers(0, 2**16), right=st.booleans(),
          shape=st.sampled_from(["one", "one", "two", "exact", "all", "over", "below",
                                 "remainder", "self", "funder"]),
          to=st.lists(st.sampled_from(ENTERPRISES), min_size=2, max_size=2))
    def split(self, caller: int, pick: int, right: bool, shape: str, to: list[int]) -> None:
        self._split(caller, self._pick(pick, ACTIVE), right, shape, to)

    def _split(self, caller: int, cert_id: int, right: bool, shape: str, to: list[int]
               ) -> None:
        cert = self.certs.get(cert_id)
        if right and cert is not None:
            caller = cert.holder
        amount = 40 * U if cert is None else cert.amount
        first, second = to
        pairs = {"one": [(first, max(U, amount // 3))],
                 "two": [(first, U), (second, max(U, amount // 4))],
                 "exact": ([(first, amount - U), (second, U)] if amount >= 2 * U
                           else [(first, amount)]),
                 "all": [(first, amount)],  # a transfer of the whole
                 "over": [(first, amount + 1)],
                 "below": [(first, U - 1)],
                 "remainder": [(first, max(1, amount - U + 1))],
                 "self": [(caller, U)],
                 "funder": [(first, U), (BANK, U)]}[shape]
        expected = self._live_outcome("split", caller, cert_id, ACTIVE)
        total = sum(fen for _, fen in pairs)
        if not expected:
            assert cert is not None
            remainder = cert.amount - total
            if cert.tier + 1 > DEFAULT_MAX_TIERS:
                expected = "too_many_tiers"
            elif remainder < 0:
                expected = "over_amount"
            elif any(fen < U for _, fen in pairs) or 0 < remainder < U:
                expected = "below_min_split"
            elif any(t == caller or Role.ENTERPRISE not in ROLES_OF[t] for t, _ in pairs):
                expected = "bad_counterparty"
        args = {"id": cert_id, "parts": [{"to": pub(t), "amount": fen} for t, fen in pairs]}
        if not self._call("split", caller, "split", args, expected):
            return
        assert cert is not None
        if cert.tier == DEFAULT_MAX_TIERS - 1:
            COUNTS["tier 5 reached by a split"] += 1
        remainder = cert.amount - total
        COUNTS["split: with remainder" if remainder else "split: exact"] += 1
        children = [(t, fen, cert.tier + 1) for t, fen in pairs]
        if remainder:
            children.append((None, remainder, cert.tier))  # type: ignore[arg-type]
        for recipient, fen, tier in children:
            child = Cert(len(self.certs), cert.root, cert.id, cert.core, fen, cert.maturity,
                         tier, caller, recipient, ACTIVE if recipient is None else PENDING,
                         funders=list(cert.funders))
            self.certs[child.id] = child
            cert.children.append(child.id)
        cert.status = CONSUMED

    # -- finance

    @rule(caller=actor(*SUPPLIERS, BANK, BANK2), pick=st.integers(0, 2**16),
          right=st.booleans(), funder=st.sampled_from([BANK, BANK2, BANK, SUP2, REG]),
          rate=st.sampled_from([0, 1, 365, 500, 1200, 10_000]))
    def finance(self, caller: int, pick: int, right: bool, funder: int, rate: int) -> None:
        self._finance(caller, self._pick(pick, ACTIVE), right, funder, rate)

    def _finance(self, caller: int, cert_id: int, right: bool, funder: int, rate: int
                 ) -> None:
        cert = self.certs.get(cert_id)
        if right and cert is not None:
            caller = cert.holder
            if funder == caller:
                funder = BANK if caller == BANK2 else BANK2
        expected = self._live_outcome("finance", caller, cert_id, ACTIVE)
        if not expected and (funder == caller or Role.FUNDER not in ROLES_OF[funder]):
            expected = "bad_counterparty"
        if self._call("finance", caller, "finance",
                      {"id": cert_id, "funder": pub(funder), "rate_bp": rate}, expected):
            assert cert is not None
            cert.status, cert.finance = FROZEN, (funder, rate)

    def _funder_outcome(self, method: str, caller: int, cert_id: int) -> str:
        expected = self._live_outcome(method, caller, cert_id, FROZEN)
        cert = self.certs.get(cert_id)
        if not expected and cert is not None and cert.finance is not None \
                and cert.finance[0] != caller:
            expected = "not_funder"
        return expected

    def _answerer(self, caller: int, cert: Cert | None, who: str) -> int:
        """The funder asked (`right`), the other funder (`other`), or `caller`."""
        if cert is None or cert.finance is None or who == "any":
            return caller
        asked = cert.finance[0]
        return asked if who == "right" else BANK if asked == BANK2 else BANK2

    @rule(caller=actor(BANK, BANK2), pick=st.integers(0, 2**16),
          who=st.sampled_from(["right", "right", "other", "any"]))
    def approve(self, caller: int, pick: int, who: str) -> None:
        self._approve(caller, self._pick(pick, FROZEN), who)

    def _approve(self, caller: int, cert_id: int, who: str) -> None:
        cert = self.certs.get(cert_id)
        caller = self._answerer(caller, cert, who)
        at = self.at
        expected = self._funder_outcome("approve", caller, cert_id)
        result_ok = self._call("approve", caller, "approve",
                               {"id": cert_id, "ref": f"PAY-{cert_id}"}, expected)
        if not result_ok:
            return
        assert cert is not None and cert.finance is not None
        days = -(-(cert.maturity - at) // DAY_MS)
        price = cert.amount - cert.amount * cert.finance[1] * days // 3_650_000
        record = self.net.certificate(cert_id)
        assert record["financings"][-1]["price"] == price
        assert record["financings"][-1]["from"] == pub(cert.holder)
        if Role.FUNDER in ROLES_OF[cert.holder]:
            COUNTS["approve: a funder refinanced"] += 1
        stats = self.stats.setdefault(caller, [0, 0, 0])
        stats[0], stats[1], stats[2] = stats[0] + 1, stats[1] + cert.amount, stats[2] + price
        cert.holder, cert.status, cert.finance = caller, ACTIVE, None
        if caller not in cert.funders:
            cert.funders.append(caller)

    @rule(caller=actor(BANK, BANK2), pick=st.integers(0, 2**16),
          who=st.sampled_from(["right", "right", "other", "any"]))
    def decline(self, caller: int, pick: int, who: str) -> None:
        self._decline(caller, self._pick(pick, FROZEN), who)

    def _decline(self, caller: int, cert_id: int, who: str) -> None:
        cert = self.certs.get(cert_id)
        caller = self._answerer(caller, cert, who)
        expected = self._funder_outcome("decline", caller, cert_id)
        if self._call("decline", caller, "decline", {"id": cert_id}, expected):
            assert cert is not None
            cert.status, cert.finance = ACTIVE, None

    # -- settle

    @rule(caller=actor(CORE, CORE2), picks=st.lists(st.integers(0, 2**16), min_size=1,
                                                    max_size=3),
          right=st.booleans(), matured_only=st.booleans(), refs=st.integers(0, 20))
    def settle(self, caller: int, picks: list[int], right: bool, matured_only: bool,
               refs: int) -> None:
        at = self.at
        ids = [self._pick(p, *CLOSED, ACTIVE, FROZEN) for p in picks]
        if matured_only:  # the matured live ones of one core, if any
            core = caller if caller in (CORE, CORE2) else CORE
            due = [c.id for c in self.certs.values()
                   if c.status in LIVE and c.maturity <= at and c.core == core]
            ids = [due[p % len(due)] for p in picks] if due else ids
            ids = list(dict.fromkeys(ids))
        self._settle(caller, ids, right, refs)

    def _settle(self, caller: int, ids: list[int], right: bool, refs: int) -> None:
        at = self.at
        if right and ids[0] in self.certs:
            caller = self.certs[ids[0]].core
        references = [f"S-{i}" for i in ids]
        if refs == 0:
            references.append("extra")
        expected = self._settle_outcome(caller, ids, references, at)
        if not self._call("settle", caller, "settle", {"ids": ids, "refs": references},
                          expected):
            return
        if len(ids) > 1:
            COUNTS["settle: a batch"] += 1
        for cert_id in ids:
            cert = self.certs[cert_id]
            status = cert.effective(at)
            if status == LAPSED:
                cert.pending = None
                self._close_unaccepted(cert, LAPSED)
                COUNTS["settle: lapsed"] += 1
                continue
            if cert.pending is not None:
                COUNTS["settle: transfer unaccepted, to its sender"] += 1
            if cert.status == FROZEN:
                COUNTS["settle: frozen"] += 1
            if Role.FUNDER in ROLES_OF[cert.holder]:
                COUNTS["settle: paid to a funder"] += 1
            cert.status, cert.pending, cert.finance = SETTLED, None, None
            cert.settled_to = cert.holder
            self.lines[cert.core].outstanding -= cert.amount

    def _settle_outcome(self, caller: int, ids: list[int], refs: list[str], at: int) -> str:
        if not has(caller, METHOD_ROLES["settle"]):
            return "forbidden"
        if len(refs) != len(ids) or len(set(ids)) != len(ids):
            return "bad_argument"
        for cert_id in ids:
            cert = self.certs.get(cert_id)
            if cert is None:
                return "not_found"
            if cert.core != caller:
                return "not_issuer"
            if at < cert.maturity:
                return "not_matured"
            if cert.effective(at) not in (LAPSED, ACTIVE, FROZEN) or cert.status == LAPSED:
                return "not_settleable"
        return ""

    # -- time, and the next step of a certificate's life by the party entitled to it

    @rule(days=st.integers(1, 30))
    def wait(self, days: int) -> None:
        self._wait(days * DAY_MS)

    @rule(pick=st.integers(0, 2**16), offset=st.sampled_from([-2, -1, 0]))
    def to_maturity(self, pick: int, offset: int) -> None:
        """To just before a certificate's maturity: the next call's block is at
        maturity - 1 (offset -2), at maturity (-1) or just after (0)."""
        cert = self.certs.get(self._pick(pick))
        if cert is not None:
            self._wait(cert.maturity + offset - self.net.now)

    @rule(pick=st.integers(0, 2**16), choice=st.integers(0, 9), to=st.sampled_from(SUPPLIERS),
          funder=st.sampled_from(FUNDERS), rate=st.sampled_from([0, 365, 800]))
    def progress(self, pick: int, choice: int, to: int, funder: int, rate: int,
                 exact: int | None = None) -> None:
        """Without this, random actors rarely get a certificate five tiers down, frozen
        at maturity or financed twice."""
        cert = self.certs.get(self._pick(pick) if exact is None else exact)
        live = [c for c in self.certs.values() if c.status in LIVE]
        if cert is None or choice == 9 or len(live) < 3:
            core = (CORE, CORE2)[choice % 2]
            mine = [n for n, i in sorted(self.invoices.items())  # as `issue` lists them
                    if i.holder == core and i.kind == "blue"]
            by_room = sorted(mine, key=lambda n: self.invoices[n].backed
                             + self.invoices[n].reversed - self.invoices[n].total)
            roomy = sorted(mine.index(n) for n in by_room[:3])
            amount = (5 * U, 10 * U, 25 * U, 40 * U)[choice % 4]
            self.issue(core, to, amount, ("5", "10", "20", "40")[pick % 4], True, roomy, 1)
            return
        status = cert.effective(self.at)
        if status == PENDING:
            (self._refuse if choice == 0 else self._accept)(ACTORS[0], cert.id, True)
        elif status == LAPSED or (status in (ACTIVE, FROZEN) and self.at >= cert.maturity):
            self._settle(cert.core, [cert.id], True, 1)
        elif status == FROZEN:
            (self._decline if choice < 2 else self._approve)(ACTORS[0], cert.id, "right")
        elif status == ACTIVE and choice < 6:
            others = [s for s in SUPPLIERS if s != cert.holder]
            shape = ("one", "one", "two", "exact", "one", "two")[choice]
            self._split(cert.holder, cert.id, True, shape,
                        [to if to != cert.holder else others[0], others[choice % 3]])
        elif status == ACTIVE:
            self._finance(cert.holder, cert.id, True, funder, rate)

    def _active(self, pick: int) -> Cert | None:
        cert = self.certs.get(self._pick(pick, ACTIVE))
        if cert is None or cert.effective(self.at) != ACTIVE or self.at >= cert.maturity:
            return None
        return cert

    @rule(pick=st.integers(0, 2**16), rate=st.sampled_from([0, 365, 800, 10_000]),
          twice=st.booleans(), declined=st.integers(0, 3))
    def fund(self, pick: int, rate: int, twice: bool, declined: int) -> None:
        """The holder of an active certificate finances it at a bank, which approves
        (or declines, one time in four); perhaps that bank refinances it at the other,
        which approves too."""
        cert = self._active(pick)
        for _ in range(2 if twice and cert is not None else 1 if cert is not None else 0):
            assert cert is not None
            funder = BANK2 if cert.holder == BANK else BANK
            self._finance(cert.holder, cert.id, True, funder, rate)
            if declined == 1:  # the other funder answers first: refused
                (self._approve if twice else self._decline)(funder, cert.id, "other")
            if declined == 0:
                self._decline(funder, cert.id, "right")
                return
            self._approve(funder, cert.id, "right")

    @rule(pick=st.integers(0, 2**16), to=st.lists(st.sampled_from(SUPPLIERS), min_size=2,
                                                  max_size=2, unique=True))
    def split_wrongly(self, pick: int, to: list[int]) -> None:
        """The holder of an active certificate tries each split the rules refuse (over
        its amount, a part or a remainder below the minimum, a part to itself or to a
        funder): each is refused and changes nothing."""
        cert = self._active(pick)
        for shape in ("over", "below", "remainder", "self", "funder"):
            if cert is not None:
                self._split(cert.holder, cert.id, True, shape, to)

    @rule(core=st.sampled_from([CORE, CORE2]), jump=st.booleans(), size=st.integers(2, 4))
    def settle_due(self, core: int, jump: bool, size: int) -> None:
        """The core enterprise settles its certificates due, several in one call (up to
        4, under MAX_SETTLE_BATCH), perhaps once the next one matures."""
        live = [c for c in self.certs.values() if c.status in LIVE and c.core == core]
        if jump and live:
            self._wait(min(c.maturity for c in live) - self.at)
        due = [c.id for c in live if c.maturity <= self.at][:size]
        if due:
            self._settle(core, due, False, 1)

    @rule(pick=st.integers(0, 2**16), order=st.permutations(SUPPLIERS),
          refuse_at=st.integers(0, 9))
    def descend(self, pick: int, order: list[int], refuse_at: int) -> None:
        """An active certificate passed whole down the suppliers, each accepting, to
        the last tier, and one more time (refused: too many tiers); or the recipient
        at step `refuse_at` refuses it, and it is back with its sender."""
        current = self._active(pick)
        for step, to in enumerate(order * 2):
            if current is None or current.amount < U:
                return
            if to == current.holder:
                continue
            created = len(self.certs)
            self._split(current.holder, current.id, True, "all", [to, to])
            if created == len(self.certs):
                return
            if step == refuse_at:
                self._refuse(to, created, True)
                return
            self._accept(to, created, True)
            current = self.certs[created]

    @rule(pick=st.integers(0, 2**16), rate=st.sampled_from([1, 500]),
          offset=st.sampled_from([-1, 0, DAY_MS]))
    def frozen_at_maturity(self, pick: int, rate: int, offset: int) -> None:
        """A certificate asked to be financed and left unanswered till maturity: the
        funder's answer comes too late, the core enterprise settles with the holder."""
        cert = self._active(pick)
        if cert is None:
            return
        self._finance(cert.holder, cert.id, True, BANK2 if cert.holder == BANK else BANK,
                      rate)
        self._wait(cert.maturity + offset - self.at)  # the next call at maturity + offset
        self._approve(BANK, cert.id, "right")
        self._settle(cert.core, [cert.id], True, 1)

    @rule(choice=st.integers(0, 9), to=st.sampled_from(SUPPLIERS),
          funder=st.sampled_from(FUNDERS), rate=st.sampled_from([0, 365, 800]))
    def deepen(self, choice: int, to: int, funder: int, rate: int) -> None:
        """`progress` on the deepest certificate still moving: down to the last tier."""
        at = self.at
        moving = [c for c in self.certs.values()
                  if c.effective(at) in (PENDING, ACTIVE, FROZEN) and at < c.maturity]
        if moving:
            deepest = max(moving, key=lambda c: (c.tier, c.id))
            # Accept, split, answer a financing: never refuse, never finance here.
            self.progress(0, 1 + choice % 6, to, funder, rate, exact=deepest.id)

    @rule(pick=st.integers(0, 2**16), choice=st.integers(0, 9), to=st.sampled_from(SUPPLIERS),
          funder=st.sampled_from(FUNDERS), rate=st.sampled_from([0, 365, 800]))
    def progress_more(self, pick: int, choice: int, to: int, funder: int, rate: int) -> None:
        """`progress`, drawn twice as often."""
        self.progress(pick, choice, to, funder, rate)

    # -- the invariants, on the chain's state

    @invariant()
    def records_are_the_models(self) -> None:
        chain = self._read()
        assert chain.next_id == len(self.certs) == len(chain.records)
        for cert_id, m in self.certs.items():
            r = chain.records[cert_id]
            got = (r["root"], r["parent"], BY_KEY[bytes(r["core"])], r["amount"],
                   r["maturity"], r["tier"], BY_KEY[bytes(r["holder"])],
                   None if r["pending"] is None else BY_KEY[bytes(r["pending"])], r["status"],
                   [BY_KEY[bytes(f)] for f in r["funders"]], r["children"],
                   None if r["finance"] is None else (BY_KEY[bytes(r["finance"]["funder"])],
                                                      r["finance"]["rate_bp"]),
                   None if r["settled"] is None else BY_KEY[bytes(r["settled"]["to"])])
            want = (m.root, m.parent, m.core, m.amount, m.maturity, m.tier, m.holder,
                    m.pending, m.status, m.funders, m.children, m.finance, m.settled_to)
            assert got == want, (cert_id, got, want)
            if m.parent is None:
                assert [tuple(b) for b in r["background"]["invoices"]] == m.backing
                assert r["background"]["reversed"] == m.reversed_at_issue

    @invariant()
    def conservation(self) -> None:
        chain = self._read()
        under: dict[int, int] = Counter()
        for r in chain.records.values():
            if r["status"] in LIVE or r["status"] == SETTLED:
                under[r["root"]] += r["amount"]
            if r["status"] in (REFUSED, LAPSED):
                assert r["parent"] is None  # only an issue closes unaccepted
                under[r["root"]] += r["amount"]
            if r["status"] == CONSUMED:
                assert sum(chain.records[c]["amount"] for c in r["children"]) == r["amount"]
                assert r["children"] and all(chain.records[c]["parent"] == r["id"]
                                             for c in r["children"])
        for r in chain.records.values():
            if r["parent"] is None:
                assert under[r["id"]] == r["amount"], (r["id"], under[r["id"]], r["amount"])

    @invariant()
    def markers_are_exactly_the_records(self) -> None:
        chain = self._read()
        live = [r for r in chain.records.values() if r["status"] in LIVE]
        assert chain.markers[b"h/"] == {(bytes(r["holder"]), r["id"]) for r in live}
        assert len(chain.markers[b"h/"]) == len(live)  # one holder each
        assert chain.markers[b"p/"] == {(bytes(r["pending"]), r["id"])
                                        for r in live if r["status"] == PENDING}
        assert all(r["pending"] is None for r in chain.records.values()
                   if r["status"] != PENDING)
        assert chain.markers[b"m/"] == {(r["maturity"], r["id"]) for r in live}
        assert chain.markers[b"r/"] == {(r["root"], r["id"]) for r in chain.records.values()}
        assert chain.markers[b"i/"] == {(bytes(r["core"]), r["id"])
                                        for r in chain.records.values() if r["parent"] is None}
        assert chain.markers[b"f/"] == {(bytes(f["funder"]), r["id"])
                                        for r in chain.records.values()
                                        for f in r["financings"]}
        # The copy the markers were read from is the chain's state.
        for key, value in self.net.scf_state().items():
            assert self.net.chain.state.get(key) == value

    @invariant()
    def credit_lines_hold(self) -> None:
        chain = self._read()
        live_by_core: Counter[bytes] = Counter()
        live_by_tier: Counter[tuple[bytes, int]] = Counter()
        for r in chain.records.values():
            if r["status"] in LIVE:
                live_by_core[bytes(r["core"])] += r["amount"]
                live_by_tier[(bytes(r["core"]), r["tier"])] += r["amount"]
        assert set(live_by_core) <= set(chain.lines)
        for core, line in chain.lines.items():
            assert 0 <= line["outstanding"] <= line["limit"]
            assert line["outstanding"] == live_by_core[core]
            m = self.lines[BY_KEY[core]]
            assert (line["limit"], line["outstanding"], BY_KEY[bytes(line["funder"])]) == (
                m.limit, m.outstanding, m.funder)
        assert {k: v for k, v in chain.tiers.items() if v} == dict(live_by_tier)
        assert all(v >= 0 for v in chain.tiers.values())

    @invariant()
    def invoices_back_at_most_their_total_and_reversals_are_flagged(self) -> None:
        chain = self._read()
        taken: Counter[str] = Counter()
        for r in chain.records.values():
            if r["parent"] is None and r["status"] not in (REFUSED, LAPSED):
                for n, fen in r["background"]["invoices"]:
                    taken[n] += fen
        assert {n: v for n, v in chain.backed.items() if v} == dict(taken)
        view = self.net.view()
        flagged_roots = set()
        for cert_id, m in self.certs.items():
            root = self.certs[m.root]
            flagged = any(self.invoices[n].reversed > root.reversed_at_issue[n]
                          for n, _ in root.backing)
            shown = queries.certificate_of(view, chain.records[cert_id])
            assert shown.flagged == flagged, cert_id
            assert (shown.status, shown.overdue) == (
                m.effective(view.time_ms),
                m.effective(view.time_ms) in (ACTIVE, FROZEN) and view.time_ms > m.maturity)
            if flagged:
                COUNTS["certificate flagged"] += 1
                flagged_roots.add(root.id)
        for n, record in self.invoices.items():
            backed = chain.backed.get(n, 0)
            assert backed == record.backed <= record.total
            if backed > record.total - record.reversed:
                COUNTS["invoice over-backed after a reversal"] += 1
                assert any(n in dict(self.certs[r].backing) for r in flagged_roots), n

    @invariant()
    def the_queries_agree(self) -> None:
        view = self.net.view()
        now = view.time_ms
        overdue, cursor = [], None
        while True:
            page = queries.overdue(view, NoParams(), PageRequest(cursor=cursor, limit=3))
            overdue += [c.id for c in page.items]
            if (cursor := page.next) is None:
                break
        want = sorted((c.maturity, c.id) for c in self.certs.values()
                      if c.effective(now) in (ACTIVE, FROZEN) and now > c.maturity)
        assert overdue == [i for _, i in want]
        for member in ENTERPRISES + FUNDERS:
            params = queries.MemberParams(pub(member).hex())
            held = [c.id for c in queries.held(view, params, PageRequest(limit=500)).items]
            assert held == sorted(c.id for c in self.certs.values()
                                  if c.status in LIVE and c.holder == member)
            incoming = [c.id for c in queries.incoming(view, params,
                                                       PageRequest(limit=500)).items]
            assert incoming == sorted(c.id for c in self.certs.values()
                                      if c.status == PENDING and c.pending == member)
        for core, line in self.lines.items():
            found = queries.outstanding(view, queries.CoreParams(pub(core).hex()))
            tiers: Counter[int] = Counter()
            for c in self.certs.values():
                if c.status in LIVE and c.core == core:
                    tiers[c.tier] += c.amount
            assert (found.limit, found.outstanding, found.by_tier) == (
                line.limit, line.outstanding, sorted(tiers.items()))
        for funder in FUNDERS:
            totals = queries.funder_totals(view, queries.FunderParams(pub(funder).hex()))
            assert [totals.count, totals.face, totals.price] == self.stats.get(
                funder, [0, 0, 0])


def scf_backed(net: ScfNet, number_: str) -> int:
    return invoice_backed(net.chain.state, number_)


SETTINGS = settings(max_examples=150, stateful_step_count=100, deadline=None,
                    derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def test_any_operations_by_any_actors_keep_the_rules() -> None:
    COUNTS.clear()
    started = time.monotonic()
    run_state_machine_as_test(ScfMachine, settings=SETTINGS)
    elapsed = time.monotonic() - started
    print(f"\nscf model: {elapsed:.1f} s")
    for kind in KINDS:
        codes = sorted((k.split(" ", 1)[1], v) for k, v in COUNTS.items()
                       if k.startswith(kind + " ") and k.split(" ", 1)[1] not in ("ok", "refused"))
        print(f"  {kind:9} {COUNTS[kind + ' ok']:5} succeeded {COUNTS[kind + ' refused']:5} "
              f"refused  {', '.join(f'{c} {n}' for c, n in codes)}")
    for path in PATHS:
        print(f"  {path}: {COUNTS[path]}")
    missing = [k for k in KINDS if COUNTS[k + " ok"] == 0]
    assert not missing, f"never succeeded: {missing}"
    assert not [k for k in KINDS if COUNTS[k + " refused"] == 0]
    assert not [p for p in PATHS if COUNTS[p] == 0], [p for p in PATHS if COUNTS[p] == 0]
    seen = {k.split(" ", 1)[1] for k in COUNTS if k.split(" ", 1)[0] in KINDS}
    assert not set(REQUIRED_CODES) - seen, sorted(set(REQUIRED_CODES) - seen)
