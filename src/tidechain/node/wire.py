"""What validators send each other: consensus messages and blocks, as deterministic
CBOR, decoded strictly (every failure is a `DecodeError`, which the peer layer turns
into a `PeerError` naming the sender).

    vote      {"t": "vote", "vote": <Vote map>}
    txs       {"t": "txs", "txs": [<transaction envelope bytes>...]}   (mempool gossip)
    sync      {"t": "sync", "from": height}                          (block sync request)
    blocks    {"t": "blocks", "head": height,
               "blocks": [{"header", "txs", "cert"}...]}             (its answer)
    proposal  {"t": "proposal", "height", "round", "pol", "proposer", "sig",
               "header": <BlockHeader map>, "txs": [<transaction envelope bytes>...]}

A proposal carries the whole block (header and transactions): consensus only sees its
hash and checkpoint, and the receiving node re-executes the transactions and checks
that the header is exactly what execution gives before it may vote for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidechain.consensus import Message, Proposal, Vote
from tidechain.consensus.params import MAX_HEIGHT
from tidechain.core import cbor
from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.limits import MAX_BLOCK_TXS, MAX_PEER_MESSAGE_BYTES, MAX_SYNC_BLOCKS
from tidechain.ledger.types import BlockHeader, SignedTx

_PROPOSAL_FIELDS = {"t", "height", "round", "pol", "proposer", "sig", "header", "txs"}


@dataclass(frozen=True)
class WireBlock:
    """A block as proposed: header and transactions. Satisfies consensus's BlockLike."""

    header: BlockHeader
    txs: tuple[SignedTx, ...]
    origin: str

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash

    @property
    def checkpoint_body(self) -> bytes:
        return self.header.checkpoint_body(self.origin)


@dataclass(frozen=True)
class TxGossip:
    """Transactions a node admitted from its clients, passed to the other validators'
    mempools so whoever proposes next can include them (one hop: full mesh)."""

    txs: tuple[SignedTx, ...]


@dataclass(frozen=True)
class SyncRequest:
    """"Send me committed blocks from this height on" (a node that fell behind)."""

    from_height: int


@dataclass(frozen=True)
class SyncedBlock:
    header: BlockHeader
    txs: tuple[SignedTx, ...]
    certificate: bytes  # CommitCertificate encoding: verified by the receiver


@dataclass(frozen=True)
class SyncBlocks:
    """An answer to SyncRequest: the blocks asked for (possibly none) and the height
    the sender claims to have committed (a claim, shown in `status`, never trusted)."""

    blocks: tuple[SyncedBlock, ...]
    head: int = 0


@dataclass(frozen=True)
class SyncAnswer:
    """SyncBlocks as the answering node sends them from its store: each block's
    transaction encodings passed on as stored, not decoded into transactions first.
    Decodes on the other side as SyncBlocks."""

    blocks: tuple[tuple[BlockHeader, tuple[bytes, ...], bytes], ...]  # header, txs, cert
    head: int


PeerMessage = Message | TxGossip | SyncRequest | SyncBlocks
OutgoingMessage = PeerMessage | SyncAnswer


def encode_message(message: OutgoingMessage) -> bytes:
    if isinstance(message, TxGossip):
        return cbor.encode({"t": "txs", "txs": [tx.encoded for tx in message.txs]})
    if isinstance(message, SyncRequest):
        return cbor.encode({"t": "sync", "from": message.from_height})
    if isinstance(message, SyncAnswer):
        return cbor.encode({"t": "blocks", "head": message.head, "blocks": [
            {"header": header.to_cbor(), "txs": list(txs), "cert": certificate}
            for header, txs, certificate in message.blocks]})
    if isinstance(message, SyncBlocks):
        return cbor.encode({"t": "blocks", "head": message.head, "blocks": [
            {"header": b.header.to_cbor(), "txs": [t.encoded for t in b.txs],
             "cert": b.certificate} for b in message.blocks]})
    if isinstance(message, Vote):
        return cbor.encode({"t": "vote", "vote": message.to_cbor()})
    block = message.block
    header: BlockHeader = getattr(block, "header")  # noqa: B009 (a WireBlock or the node's own)
    txs: tuple[SignedTx, ...] = getattr(block, "txs")  # noqa: B009
    return cbor.encode({
        "t": "proposal", "height": message.height, "round": message.round,
        "pol": message.pol_round, "proposer": message.proposer, "sig": message.signature,
        "header": header.to_cbor(), "txs": [tx.encoded for tx in txs],
    })


KnownTx = Callable[[bytes], SignedTx | None]
"""Finds an already decoded transaction by its exact envelope bytes (the mempool)."""


def _unknown(encoded: bytes) -> SignedTx | None:
    return None


def decode_message(data: bytes, origin: str, known: KnownTx = _unknown) -> PeerMessage:
    """Decode a peer's message; raises DecodeError/TooLarge (never anything else).
    Transactions for which `known` returns a transaction are not decoded again: the
    same bytes give the same transaction."""
    if len(data) > MAX_PEER_MESSAGE_BYTES:
        raise TooLarge(f"message of {len(data)} bytes exceeds {MAX_PEER_MESSAGE_BYTES}")
    value = cbor.decode(data)
    if not isinstance(value, dict):
        raise DecodeError("peer message must be a CBOR map")
    kind = value.get("t")
    if kind == "vote" and set(value) == {"t", "vote"}:
        return Vote.from_cbor(value["vote"])
    if kind == "proposal" and set(value) == _PROPOSAL_FIELDS:
        return _decode_proposal(value, origin, known)
    if kind == "txs" and set(value) == {"t", "txs"}:
        return TxGossip(_decode_txs(value["txs"], "txs", known))
    if kind == "sync" and set(value) == {"t", "from"}:
        height = value["from"]
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise DecodeError("sync: 'from' must be a height")
        return SyncRequest(height)
    if kind == "blocks" and set(value) == {"t", "head", "blocks"}:
        head = value["head"]
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head <= MAX_HEIGHT:
            raise DecodeError("blocks: 'head' must be a height")
        return SyncBlocks(_decode_blocks(value["blocks"]), head)
    raise DecodeError(f"unknown peer message {str(kind)[:32]!r}")


def _decode_proposal(value: dict[str, Any], origin: str, known: KnownTx) -> Proposal:
    header = BlockHeader.from_cbor(value["header"])
    txs = _decode_txs(value["txs"], "proposal", known)
    if header.tx_count != len(txs):
        raise DecodeError("proposal: header's tx count differs from the transactions sent")
    for name in ("height", "round", "pol"):
        if not isinstance(value[name], int) or isinstance(value[name], bool):
            raise DecodeError(f"proposal: {name!r} must be an integer")
    if not isinstance(value["proposer"], str) or not isinstance(value["sig"], bytes):
        raise DecodeError("proposal: bad proposer or signature")
    # Consensus checks the signature, the proposer's turn and the ranges; the node
    # re-executes the block before anyone votes for it.
    return Proposal(value["height"], value["round"], WireBlock(header, txs, origin),
                    value["pol"], value["proposer"], value["sig"])


def _decode_txs(raw: Any, what: str, known: KnownTx = _unknown) -> tuple[SignedTx, ...]:
    # Each transaction travels as a byte string holding its encoding, not as a nested
    # map: the strict decoder then keeps those bytes instead of encoding them again.
    if not isinstance(raw, list) or len(raw) > MAX_BLOCK_TXS:
        raise DecodeError(f"{what}: 'txs' must be a list of at most {MAX_BLOCK_TXS}")
    if not all(isinstance(t, bytes) for t in raw):
        raise DecodeError(f"{what}: each transaction must be a byte string")
    return tuple(known(t) or SignedTx.decode(t) for t in raw)


def _decode_blocks(raw: Any) -> tuple[SyncedBlock, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_SYNC_BLOCKS:
        raise DecodeError(f"blocks: at most {MAX_SYNC_BLOCKS} per message")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"header", "txs", "cert"}:
            raise DecodeError("blocks: each block is a map of header, txs, cert")
        if not isinstance(item["cert"], bytes):
            raise DecodeError("blocks: 'cert' must be bytes")
        header = BlockHeader.from_cbor(item["header"])
        txs = _decode_txs(item["txs"], "blocks")
        if header.tx_count != len(txs):
            raise DecodeError("blocks: header's tx count differs from the transactions sent")
        out.append(SyncedBlock(header, txs, item["cert"]))
    return tuple(out)
