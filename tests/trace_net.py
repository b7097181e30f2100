"""An in-process chain for the traceability tests: a farm, a processor, a carrier, a
retailer and a regulator, each its own organisation, one block per call.

`TraceNet` keeps a copy of the world state (`kv`) and of every log entry, so that the
repository's reads (`contracts/trace/repository.py`) run on it exactly as on a node:
`view()` is a `ChainView` with state pages and entries."""

from __future__ import annotations

import functools
import hashlib
import itertools
from typing import Any

from tests.helpers import GENESIS_TIME_MS, key, member_cert, org_ca
from tests.scf_net import _Pages as StatePages
from tidechain.client import txbuilder as tb
from tidechain.contracts import default_registry
from tidechain.contracts.trace.document import split_document
from tidechain.core.errors import NotFound
from tidechain.identity import Role
from tidechain.ledger.access import Reader
from tidechain.ledger.application import HeadView
from tidechain.ledger.chain import Chain, genesis_state
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxResult

NET = "trace-net"
DAY_MS = 86_400_000
FARM, PROCESSOR, CARRIER, RETAILER, REGULATOR, OUTSIDER = range(600, 606)
ORGS = {FARM: "farm-org", PROCESSOR: "processor-org", CARRIER: "carrier-org",
        RETAILER: "retailer-org", REGULATOR: "regulator-org", OUTSIDER: "outsider-org"}
ROLES = {FARM: (Role.ENTERPRISE,), PROCESSOR: (Role.ENTERPRISE,), CARRIER: (Role.CARRIER,),
         RETAILER: (Role.ENTERPRISE,), REGULATOR: (Role.REGULATOR,),
         OUTSIDER: (Role.ENTERPRISE,)}


def admin_of(member: int) -> int:
    return member + 100


@functools.cache
def genesis() -> Genesis:
    orgs = []
    for member, org in ORGS.items():
        certs = (member_cert(admin_of(member), (Role.ADMIN,), org=org,
                             not_after_ms=GENESIS_TIME_MS + 365 * DAY_MS),
                 member_cert(member, ROLES[member], org=org,
                             not_after_ms=GENESIS_TIME_MS + 365 * DAY_MS))
        orgs.append(GenesisOrg(org_ca(org), certs))
    return Genesis(NET, GENESIS_TIME_MS, (GenesisValidator(f"{NET}/node0",
                                                           key(1000).public_key),),
                   tuple(orgs))


_nonce = itertools.count(1)


class _Pages(StatePages):
    """The key-ordered state pages of the scf tests' chain, and the log entries too."""

    def __init__(self, kv: dict[bytes, bytes], entries: dict[int, tuple[int, bytes]]) -> None:
        super().__init__(kv)
        self.entries = entries

    def entry(self, log_index: int) -> tuple[int, bytes]:
        if log_index not in self.entries:
            raise NotFound(f"no log entry at index {log_index}")
        return self.entries[log_index]


class TraceNet:
    """A chain at the test genesis, one block per `run`, block time advancing."""

    def __init__(self) -> None:
        self.genesis = genesis()
        self.chain = Chain.at_genesis(self.genesis, default_registry())
        self.now = GENESIS_TIME_MS
        self.kv: dict[bytes, bytes] = dict(genesis_state(self.genesis, default_registry()))
        self.entries: dict[int, tuple[int, bytes]] = {}

    def run(self, *txs: SignedTx, advance_ms: int = 1000) -> list[tuple[int, TxResult]]:
        """Execute one block; (log index, result) per transaction."""
        self.now += advance_ms
        prepared = self.chain.prepare(list(txs), self.now, f"{NET}/node0")
        self.chain.advance(prepared)
        for k, v in prepared.writes.items():
            if v is None:
                self.kv.pop(k, None)
            else:
                self.kv[k] = v
        for offset, entry in enumerate(prepared.entries):
            self.entries[prepared.first_log_index + offset] = (prepared.height, entry)
        return [(prepared.first_log_index + i, r) for i, r in enumerate(prepared.results)]

    def tx(self, signer: int, method: str, args: dict[str, Any]) -> SignedTx:
        return tb.call_tx(key(signer), self.genesis.chain_id, "trace", method, args,
                          now_ms=self.now + 1, nonce=next(_nonce).to_bytes(16, "big"))

    def capture(self, signer: int, document: bytes,
                media: str = "json") -> list[tuple[int, TxResult]]:
        """Every event of `document`, one transaction each, in one block."""
        digest = hashlib.sha256(document).digest()
        split = split_document(document, media)
        txs = [self.tx(signer, "capture", {"format": e.format, "source": e.source,
                                           "context": e.context, "document": digest,
                                           "position": i})
               for i, e in enumerate(split.events)]
        return self.run(*txs)

    def call(self, signer: int, method: str, args: dict[str, Any]) -> TxResult:
        [(_, result)] = self.run(self.tx(signer, method, args))
        return result

    def view(self) -> HeadView:
        return HeadView(self.chain.state, self.chain.height, self.now,
                        _Pages(self.kv, self.entries))  # type: ignore[arg-type]

    @staticmethod
    def reader(member: int) -> Reader:
        return Reader(key(member).public_key, frozenset(ROLES[member]), ORGS[member])
