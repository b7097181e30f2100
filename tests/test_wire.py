"""The peer wire format: round trips, and hostile bytes only ever raise the Rejected
family (the node turns that into a PeerError naming the sender)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import genesis, key, tx
from tidechain.consensus import PRECOMMIT, Vote
from tidechain.core import cbor
from tidechain.core.errors import Rejected
from tidechain.node.wire import SyncRequest, TxGossip, decode_message, encode_message

G = genesis(validators=4)
ORIGIN = G.origin


def test_round_trips() -> None:
    gossip = TxGossip(tuple(tx(G, key(7), nonce=i) for i in range(3)))
    back = decode_message(encode_message(gossip), ORIGIN)
    assert isinstance(back, TxGossip) and [t.tx_id for t in back.txs] == [
        t.tx_id for t in gossip.txs]
    assert decode_message(encode_message(SyncRequest(5)), ORIGIN) == SyncRequest(5)
    vote = Vote(PRECOMMIT, 3, 0, bytes(32), "test-net/node1", bytes(64), bytes(64))
    assert decode_message(encode_message(vote), ORIGIN) == vote


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_rejected(data: bytes) -> None:
    with contextlib.suppress(Rejected):
        decode_message(data, ORIGIN)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["t", "vote", "txs", "from", "blocks", "header",
                                       "cert", "height", "round", "pol", "proposer", "sig"]),
                      inner, max_size=8),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["vote", "proposal", "txs", "sync", "blocks", "nope"]), _values)
def test_well_formed_cbor_of_the_wrong_shape_only_raises_rejected(kind: str, body: object) -> None:
    message = {"t": kind}
    if isinstance(body, dict):
        message.update(body)
    with contextlib.suppress(Rejected):
        decode_message(cbor.encode(message), ORIGIN)
