"""The bounded mempool: admitted, signature-checked transactions waiting for a block.

Bounded by count and bytes (core.limits). When full, `add` raises `Busy`, which the API
turns into HTTP 503 with Retry-After: back-pressure instead of unbounded growth.
Transactions stay in the pool while a proposal containing them is in flight and leave
it when committed or dropped.
"""

from __future__ import annotations

from collections import OrderedDict

from tidechain.core.errors import Busy, TxRejected
from tidechain.core.limits import MEMPOOL_MAX_BYTES, MEMPOOL_MAX_TXS
from tidechain.ledger.types import SignedTx


class Mempool:
    def __init__(self, max_txs: int = MEMPOOL_MAX_TXS, max_bytes: int = MEMPOOL_MAX_BYTES) -> None:
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._txs: OrderedDict[bytes, SignedTx] = OrderedDict()
        # The same transactions by their envelope bytes: a proposal's transactions are
        # mostly already here, and finding them by bytes skips decoding them again.
        self._by_encoding: dict[bytes, SignedTx] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._txs

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, tx: SignedTx) -> None:
        if tx.tx_id in self._txs:
            raise TxRejected("transaction is already pending", code="duplicate")
        size = len(tx.body_bytes) + len(tx.signature)
        if len(self._txs) >= self.max_txs or self._bytes + size > self.max_bytes:
            raise Busy(f"mempool full ({len(self._txs)} transactions); try later",
                       retry_after_s=1)
        self._txs[tx.tx_id] = tx
        self._by_encoding[tx.encoded] = tx
        self._bytes += size

    def get(self, tx_id: bytes) -> SignedTx | None:
        return self._txs.get(tx_id)

    def by_encoding(self, encoded: bytes) -> SignedTx | None:
        """The pending transaction whose envelope is exactly these bytes, if any."""
        return self._by_encoding.get(encoded)

    def peek(self, max_txs: int) -> list[SignedTx]:
        """The oldest `max_txs` pending transactions (FIFO: first come, first served)."""
        out: list[SignedTx] = []
        for tx in self._txs.values():
            if len(out) >= max_txs:
                break
            out.append(tx)
        return out

    def ids(self) -> list[bytes]:
        """The pending transactions' ids, oldest first."""
        return list(self._txs)

    def remove(self, tx_ids: list[bytes]) -> None:
        for tx_id in tx_ids:
            tx = self._txs.pop(tx_id, None)
            if tx is not None:
                del self._by_encoding[tx.encoded]
                self._bytes -= len(tx.body_bytes) + len(tx.signature)
