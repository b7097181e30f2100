"""An in-process chain for the supply-chain finance tests: members of every role the
application involves, e-invoices for the trade background, one block per call."""

from __future__ import annotations

import functools
import itertools
from typing import Any

from tests.helpers import GENESIS_TIME_MS, founding_org, key
from tidechain.client import sealing
from tidechain.client import txbuilder as tb
from tidechain.contracts import default_registry, scf
from tidechain.identity import Role
from tidechain.ledger.application import HeadView
from tidechain.ledger.chain import Chain
from tidechain.ledger.types import Genesis, GenesisValidator, SignedTx, TxResult

TAX, ISSUER, CORE, CORE2, SUP1, SUP2, SUP3, SUP4, BANK, BANK2, REG, DEPOSITOR = range(400, 412)
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


@functools.cache
def genesis() -> Genesis:
    return Genesis(NET, GENESIS_TIME_MS,
                   (GenesisValidator(f"{NET}/node0", key(1000).public_key),),
                   (founding_org([(n, roles) for n, roles in ROLES_OF.items()]),))


def pub(n: int) -> bytes:
    return key(n).public_key


_nonce = itertools.count(1)


def number(n: int) -> str:
    return f"{n:020d}"


class ScfNet:
    """A chain at the test genesis, one block per call, block time advancing."""

    def __init__(self) -> None:
        self.chain = Chain.at_genesis(genesis(), default_registry())
        self.now = GENESIS_TIME_MS

    def run(self, *txs: SignedTx, advance_ms: int = 1) -> list[TxResult]:
        self.now += advance_ms
        prepared = self.chain.prepare(list(txs), self.now, f"{NET}/node0")
        self.chain.advance(prepared)
        return list(prepared.results)

    def call(self, signer: int, contract: str, method: str, args: dict[str, Any],
             advance_ms: int = 1) -> TxResult:
        tx = tb.call_tx(key(signer), genesis().chain_id, contract, method, args,
                        now_ms=self.now + advance_ms, nonce=next(_nonce).to_bytes(16, "big"))
        [result] = self.run(tx, advance_ms=advance_ms)
        return result

    def do(self, signer: int, method: str, args: dict[str, Any], advance_ms: int = 1) -> str:
        """One scf call: its error code, or "" if it succeeded."""
        return self.call(signer, "scf", method, args, advance_ms).error

    def view(self) -> HeadView:
        return HeadView(self.chain.state, self.chain.height, self.chain.head_time_ms,
                        _NoPages())

    def certificate(self, cert_id: int) -> dict[str, Any]:
        record = scf.get_certificate(self.chain.state, cert_id)
        assert record is not None
        return record

    def invoice(self, n: int, total_lines: int = 1, buyer: int = CORE) -> str:
        """E-invoice `n` issued by ISSUER (the suppliers' organisation) to `buyer`."""
        line = tb.invoice_line("steel coil", 1, INVOICE_FEN, 0)
        args = tb.invoice_args(number(n), {"key": pub(buyer)}, [line] * total_lines)
        sealed = sealing.sealed_invoice_args(args, pub(ISSUER), [pub(TAX)])
        result = self.call(ISSUER, "invoice", "issue", sealed)
        assert result.error == "", result
        return number(n)


class _NoPages:
    def index_page(self, name: str, key: bytes, before: int | None, limit: int) -> list[int]:
        return []

    def state_page(self, prefix: bytes, after: bytes | None, limit: int,
                   descending: bool = False) -> list[tuple[bytes, bytes]]:
        return []


def trading_net() -> ScfNet:
    """Invoices authorised and issued: ISSUER (the suppliers' side) to CORE, numbers 1-3;
    BANK gives CORE a credit line of CNY 2,000,000.00."""
    net = ScfNet()
    assert net.call(TAX, "invoice", "set_auditors", {"keys": [pub(TAX)]}).error == ""
    assert net.call(TAX, "invoice", "authorise_issuer", {
        "issuer": pub(ISSUER), "name": "Supplier Group", "tax_id": TAX_ID,
        "quota": 100 * INVOICE_FEN}).error == ""
    for n in (1, 2, 3):
        net.invoice(n)
    assert net.do(BANK, "set_line", {"core": pub(CORE), "limit": 2 * INVOICE_FEN}) == ""
    return net
