"""An in-process chain for the supply-chain finance tests: members of every role the
application involves, e-invoices for the trade background, one block per call.

`ScfNet` keeps a copy of the world state as a plain dict (`kv`), updated from each
block's writes: it serves the key-ordered pages the list queries read (`view()`), and
lets a test compare a namespace before and after a call."""

from __future__ import annotations

import bisect
import functools
import itertools
from typing import Any

from tests.helpers import ADMIN_KEY, GENESIS_TIME_MS, key, member_cert, org_ca
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.contracts import default_registry, invoice, scf
from tidechain.core.crypto import sha256
from tidechain.identity import Role
from tidechain.ledger.application import HeadView
from tidechain.ledger.chain import Chain, genesis_state
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxResult

TAX, ISSUER, CORE, CORE2, SUP1, SUP2, SUP3, SUP4, BANK, BANK2, REG, DEPOSITOR = range(400, 412)
CORE2_ADMIN = 412
"""The admin of CORE2's own organisation in `two_org_genesis` (a genesis organisation
needs one)."""
SUPPLIERS = (SUP1, SUP2, SUP3, SUP4)
ROLES_OF = {TAX: (Role.TAX_AUTHORITY,), ISSUER: (Role.INVOICE_ISSUER,),
            CORE: (Role.ENTERPRISE,), CORE2: (Role.ENTERPRISE,),
            **{s: (Role.ENTERPRISE,) for s in SUPPLIERS},
            BANK: (Role.FUNDER,), BANK2: (Role.FUNDER,), REG: (Role.REGULATOR,),
            DEPOSITOR: (Role.DEPOSITOR,)}
NET = "scf-net"
TAX_ID = "91350100M000100Y43"
DAY_MS = 86_400_000
INVOICE_FEN = 1_000_000_00  # CNY 1,000,000.00 per invoice
VALID_UNTIL_MS = GENESIS_TIME_MS + 3 * 365 * DAY_MS
"""The members' certificates outlive every maturity a test waits for (at most a year)."""
AUDITORS = [key(TAX).public_key]
CORE2_ORG = "core2-org"


def _org(name: str, members: list[tuple[int, tuple[Role, ...]]]) -> GenesisOrg:
    return GenesisOrg(org_ca(name), tuple(member_cert(n, roles, org=name,
                                                      not_after_ms=VALID_UNTIL_MS)
                                          for n, roles in members))


def _validators() -> tuple[GenesisValidator, ...]:
    return (GenesisValidator(f"{NET}/node0", key(1000).public_key),)


@functools.cache
def genesis() -> Genesis:
    """Every member in one organisation, the test organisation (ADMIN_KEY its admin):
    one vote passes a governance proposal."""
    return Genesis(NET, GENESIS_TIME_MS, _validators(),
                   (_org("test-org", [(ADMIN_KEY, (Role.ADMIN,)), *ROLES_OF.items()]),))


@functools.cache
def two_org_genesis() -> Genesis:
    """CORE2 in an organisation of its own: e-invoices between the test organisation
    and CORE's are no trade background of CORE2's, nor of a certificate to CORE2."""
    rest = [(n, roles) for n, roles in ROLES_OF.items() if n != CORE2]
    return Genesis(NET, GENESIS_TIME_MS, _validators(),
                   (_org("test-org", [(ADMIN_KEY, (Role.ADMIN,)), *rest]),
                    _org(CORE2_ORG, [(CORE2_ADMIN, (Role.ADMIN,)),
                                     (CORE2, ROLES_OF[CORE2])])))


def pub(n: int) -> bytes:
    return key(n).public_key


_nonce = itertools.count(1)


def number(n: int) -> str:
    return f"{n:020d}"


SCF_PREFIX = namespaced(scf.NAME, b"")


class ScfNet:
    """A chain at the test genesis, one block per call, block time advancing."""

    def __init__(self, at: Genesis | None = None) -> None:
        self.genesis = genesis() if at is None else at
        self.chain = Chain.at_genesis(self.genesis, default_registry())
        self.now = GENESIS_TIME_MS
        self.kv: dict[bytes, bytes] = dict(genesis_state(self.genesis, default_registry()))
        self.last_log_index = -1

    def run(self, *txs: SignedTx, advance_ms: int = 1) -> list[TxResult]:
        self.now += advance_ms
        prepared = self.chain.prepare(list(txs), self.now, f"{NET}/node0")
        self.chain.advance(prepared)
        for k, v in prepared.writes.items():
            if v is None:
                self.kv.pop(k, None)
            else:
                self.kv[k] = v
        self.last_log_index = prepared.first_log_index + len(txs) - 1
        return list(prepared.results)

    def call(self, signer: int, contract: str, method: str, args: dict[str, Any],
             advance_ms: int = 1) -> TxResult:
        tx = tb.call_tx(key(signer), self.genesis.chain_id, contract, method, args,
                        now_ms=self.now + advance_ms, nonce=next(_nonce).to_bytes(16, "big"))
        [result] = self.run(tx, advance_ms=advance_ms)
        return result

    def do(self, signer: int, method: str, args: dict[str, Any], advance_ms: int = 1) -> str:
        """One scf call: its error code, or "" if it succeeded."""
        return self.call(signer, "scf", method, args, advance_ms).error

    def view(self) -> HeadView:
        return HeadView(self.chain.state, self.chain.height, self.chain.head_time_ms,
                        _Pages(self.kv))

    def certificate(self, cert_id: int) -> dict[str, Any]:
        record = scf.get_certificate(self.chain.state, cert_id)
        assert record is not None
        return record

    def scf_state(self) -> dict[bytes, bytes]:
        """The scf namespace of the world state, key by key."""
        return {k: v for k, v in self.kv.items() if k.startswith(SCF_PREFIX)}

    def invoice(self, n: int, total_lines: int = 1, buyer: int = CORE,
                unit_fen: int = INVOICE_FEN) -> str:
        """E-invoice `n` issued by ISSUER (the suppliers' organisation) to `buyer`, of
        `total_lines` lines of `unit_fen` each, no tax."""
        line = tb.invoice_line("steel coil", 1, unit_fen, 0)
        args = tb.invoice_args(number(n), {"key": pub(buyer)}, [line] * total_lines)
        sealed = sealing.sealed_invoice_args(args, pub(ISSUER), AUDITORS)
        result = self.call(ISSUER, "invoice", "issue", sealed)
        assert result.error == "", result
        return number(n)

    def invoice_to_name(self, n: int, unit_fen: int = INVOICE_FEN) -> str:
        """E-invoice `n` to a buyer named by name and USCC, not by a member key: it has
        no holder on chain until claimed."""
        code = b"claim %d" % n
        line = tb.invoice_line("steel coil", 1, unit_fen, 0)
        args = tb.invoice_args(number(n), {"name": "Buyer Co., Ltd.", "uscc": TAX_ID},
                               [line], claim_digest=sha256(code))
        sealed = sealing.sealed_invoice_args(args, pub(ISSUER), AUDITORS, code=code)
        result = self.call(ISSUER, "invoice", "issue", sealed)
        assert result.error == "", result
        return number(n)

    def red_letter(self, original: int, n: int, fen: int, signer: int = ISSUER) -> str:
        """Reverse `fen` of invoice `original` by red-letter invoice `n`: the error code,
        or "" (the original is unclaimed, so its issuer reverses it directly)."""
        record = invoice.get_invoice(self.chain.state, number(original))
        readers = (set(AUDITORS) | {pub(signer)} if record is None
                   else sealing.red_letter_readers(record, AUDITORS))
        args = tb.red_letter_args(number(n), number(original), "sales_return",
                                  [tb.invoice_line("refund", fen, 1, 0)])
        return self.call(signer, "invoice", "red_letter",
                         sealing.sealed_red_args(args, readers)).error

    def set_param(self, name: str, value: Any) -> str:
        """Propose `gov.set_param` and pass it by the test organisation's vote (the only
        one: `genesis()`); the decision applies from the next block, which this runs.
        The error code of the proposal, or ""."""
        error = self.call(ADMIN_KEY, "gov", "propose", tb.propose_args(
            "set_param", {"name": name, "value": value})).error
        if error:
            return error
        proposal = self.last_log_index
        assert self.call(ADMIN_KEY, "gov", "vote", tb.vote_args(proposal, True)).error == ""
        self.run()
        return ""


class _Pages:
    """Key-ordered pages over a copy of the world state (no log index: none of the scf
    queries reads one)."""

    def __init__(self, kv: dict[bytes, bytes]) -> None:
        self.kv = kv

    def index_page(self, name: str, key: bytes, before: int | None, limit: int) -> list[int]:
        return []

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.kv if k.startswith(prefix))
        if descending:
            keys.reverse()
            if after is not None:
                keys = [k for k in keys if k < after]
        elif after is not None:
            keys = keys[bisect.bisect_right(keys, after):]
        return [(k, self.kv[k]) for k in keys[:limit]]


def trading_net(at: Genesis | None = None) -> ScfNet:
    """Invoices authorised and issued: ISSUER (the suppliers' side) to CORE, numbers 1-3;
    BANK gives CORE a credit line of CNY 2,000,000.00."""
    net = ScfNet(at)
    assert net.call(TAX, "invoice", "set_auditors", {"keys": AUDITORS}).error == ""
    assert net.call(TAX, "invoice", "authorise_issuer", {
        "issuer": pub(ISSUER), "name": "Supplier Group", "tax_id": TAX_ID,
        "quota": 100 * INVOICE_FEN}).error == ""
    for n in (1, 2, 3):
        net.invoice(n)
    assert net.do(BANK, "set_line", {"core": pub(CORE), "limit": 2 * INVOICE_FEN}) == ""
    return net
