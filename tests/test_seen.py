"""node/seen.py: a verdict on a transaction's signature is remembered for exactly its
bytes, and the memory is bounded."""

from __future__ import annotations

from tests.helpers import genesis, key, tx
from tidechain.node.seen import SeenTxs


def test_a_verdict_holds_only_for_the_same_bytes() -> None:
    g = genesis()
    good = tx(g, key(7), nonce=1)
    forged = type(good)(good.body_bytes, bytes(64), good.body, good.tx_id)  # same id
    seen = SeenTxs()
    seen.remember([good], verified=False)
    assert seen.get(good.encoded) is good and not seen.is_verified(good)
    seen.remember([good], verified=True)
    assert seen.is_verified(good)
    assert not seen.is_verified(forged) and seen.get(forged.encoded) is None


def test_the_oldest_are_forgotten_first() -> None:
    g = genesis()
    txs = [tx(g, key(7), nonce=n) for n in range(10)]
    seen = SeenTxs(limit=4)
    seen.remember(txs[:6], verified=True)
    assert len(seen) == 4
    assert seen.get(txs[0].encoded) is None and not seen.is_verified(txs[1])
    assert all(seen.is_verified(t) for t in txs[2:6])
