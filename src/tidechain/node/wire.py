"""What validators send each other: consensus messages and blocks, as deterministic
CBOR, decoded strictly (every failure is a `DecodeError`, which the peer layer turns
into a `PeerError` naming the sender).

    vote      {"t": "vote", "vote": <Vote map>}
    txs       {"t": "txs", "txs": [<transaction envelope bytes>...]}   (mempool gossip)
    sync      {"t": "sync", "from": height}                          (block sync request)
    head?     {"t": "head?"}                       (answered by "blocks" with no blocks)
    blocks    {"t": "blocks", "head": height,
               "blocks": [{"header", "txs", "cert"}...]}             (its answer)
    proposal  {"t": "proposal", "height", "round", "pol", "proposer", "sig",
               "header": <BlockHeader map>, "txs": [<transaction envelope bytes>...]}

State sync (ADR 0009; every answer is verified by the receiver, `ledger.statesync`):

    snap?     {"t": "snap?"}                                       (offer me a snapshot)
    snap      {"t": "snap", "height", "depth", "counts": [int...], "hashes": [bytes...]}
              (height 0: none offered)
    hdrs?     {"t": "hdrs?", "from": height, "to": height}
    hdrs      {"t": "hdrs", "headers": [{"header", "cert"}...]}
    ents?     {"t": "ents?", "from": height, "to": height}          (log entries by block)
    ents      {"t": "ents", "from": height, "blocks": [[<entry bytes>...]...]}
    state?    {"t": "state?", "height", "chunk"}
    state     {"t": "state", "height", "chunk", "keys": [bytes...] | null, "values": [...]}
              (null keys: no snapshot at that height here)

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
from tidechain.core.limits import (
    MAX_BLOCK_TXS,
    MAX_CBOR_ITEMS,
    MAX_PEER_MESSAGE_BYTES,
    MAX_STATE_CHUNK_RECORDS,
    MAX_STATE_SYNC_DEPTH,
    MAX_SYNC_BLOCKS,
    MAX_SYNC_HEADERS,
)
from tidechain.ledger.statesync import StateOffer
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


@dataclass(frozen=True)
class SnapshotRequest:
    """"Offer me a snapshot of your state" (a node far behind, ADR 0009)."""


@dataclass(frozen=True)
class SnapshotOffer:
    """The sender's snapshot (None: it offers none). Verified against a certified
    header's state root before any chunk of it is asked for."""

    offer: StateOffer | None


@dataclass(frozen=True)
class HeadersRequest:
    """"Send me headers and certificates of these heights" (inclusive)."""

    from_height: int
    to_height: int


@dataclass(frozen=True)
class Headers:
    """Consecutive headers with their commit certificates (possibly none)."""

    headers: tuple[tuple[BlockHeader, bytes], ...]


@dataclass(frozen=True)
class EntriesRequest:
    """"Send me the log entries of the blocks at these heights" (inclusive)."""

    from_height: int
    to_height: int


@dataclass(frozen=True)
class Entries:
    """The log entries of consecutive blocks from `from_height`, one tuple per block
    (fewer blocks than asked when the answer would grow too big; none if unknown)."""

    from_height: int
    blocks: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class StateRequest:
    """"Send me chunk `chunk` of your snapshot at `height`"."""

    height: int
    chunk: int


@dataclass(frozen=True)
class StateChunk:
    """A chunk of a snapshot: (key, value) records, or None when the sender has no
    snapshot at that height (it moved on): not an error, the receiver asks another."""

    height: int
    chunk: int
    records: tuple[tuple[bytes, bytes], ...] | None


StateSyncMessage = (SnapshotRequest | SnapshotOffer | HeadersRequest | Headers | EntriesRequest
                    | Entries | StateRequest | StateChunk)
@dataclass(frozen=True)
class HeadRequest:
    """"What is your head?": answered as SyncRequest is, with no blocks. A node that
    knows of no peer ahead probes with it, so that one far behind does not fetch (and
    decode) a batch of blocks that state sync then skips."""


PeerMessage = (Message | TxGossip | SyncRequest | HeadRequest | SyncBlocks
               | StateSyncMessage)
OutgoingMessage = PeerMessage | SyncAnswer


def encode_message(message: OutgoingMessage) -> bytes:
    if isinstance(message, TxGossip):
        return cbor.encode({"t": "txs", "txs": [tx.encoded for tx in message.txs]})
    if isinstance(message, SyncRequest):
        return cbor.encode({"t": "sync", "from": message.from_height})
    if isinstance(message, HeadRequest):
        return cbor.encode({"t": "head?"})
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
    if not isinstance(message, Proposal):
        return _encode_state_sync(message)
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
    if kind == "head?" and set(value) == {"t"}:
        return HeadRequest()
    if kind == "blocks" and set(value) == {"t", "head", "blocks"}:
        head = value["head"]
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head <= MAX_HEIGHT:
            raise DecodeError("blocks: 'head' must be a height")
        return SyncBlocks(_decode_blocks(value["blocks"]), head)
    if isinstance(kind, str) and kind in _STATE_SYNC_FIELDS:
        if set(value) != _STATE_SYNC_FIELDS[kind]:
            raise DecodeError(f"{kind}: wrong fields")
        return _decode_state_sync(kind, value)
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


# --- state sync ----------------------------------------------------------------------

_STATE_SYNC_FIELDS = {
    "snap?": {"t"},
    "snap": {"t", "height", "depth", "counts", "hashes"},
    "hdrs?": {"t", "from", "to"},
    "hdrs": {"t", "headers"},
    "ents?": {"t", "from", "to"},
    "ents": {"t", "from", "blocks"},
    "state?": {"t", "height", "chunk"},
    "state": {"t", "height", "chunk", "keys", "values"},
}


def _encode_state_sync(message: StateSyncMessage) -> bytes:
    if isinstance(message, SnapshotRequest):
        return cbor.encode({"t": "snap?"})
    if isinstance(message, SnapshotOffer):
        offer = message.offer or StateOffer(0, 0, ())
        return cbor.encode({"t": "snap", "height": offer.height, "depth": offer.depth,
                            "counts": [c for c, _ in offer.top],
                            "hashes": [h for _, h in offer.top]})
    if isinstance(message, HeadersRequest | EntriesRequest):
        kind = "hdrs?" if isinstance(message, HeadersRequest) else "ents?"
        return cbor.encode({"t": kind, "from": message.from_height, "to": message.to_height})
    if isinstance(message, Headers):
        return cbor.encode({"t": "hdrs", "headers": [
            {"header": header.to_cbor(), "cert": cert} for header, cert in message.headers]})
    if isinstance(message, Entries):
        return cbor.encode({"t": "ents", "from": message.from_height,
                            "blocks": [list(block) for block in message.blocks]})
    if isinstance(message, StateRequest):
        return cbor.encode({"t": "state?", "height": message.height, "chunk": message.chunk})
    records = message.records
    return cbor.encode({"t": "state", "height": message.height, "chunk": message.chunk,
                        "keys": None if records is None else [k for k, _ in records],
                        "values": None if records is None else [v for _, v in records]})


def _int(value: Any, what: str, low: int = 0, high: int = MAX_HEIGHT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DecodeError(f"{what} must be an integer in {low}..{high}")
    return value


def _byte_strings(value: Any, what: str, limit: int) -> list[bytes]:
    if not isinstance(value, list) or len(value) > limit:
        raise DecodeError(f"{what} must be a list of at most {limit}")
    if not all(isinstance(item, bytes) for item in value):
        raise DecodeError(f"{what}: each item must be a byte string")
    return value


def _decode_state_sync(kind: str, value: dict[str, Any]) -> StateSyncMessage:
    if kind == "snap?":
        return SnapshotRequest()
    if kind == "snap":
        return SnapshotOffer(_decode_offer(value))
    if kind in ("hdrs?", "ents?"):
        low = _int(value["from"], f"{kind} from", 1)
        high = _int(value["to"], f"{kind} to", low)
        return HeadersRequest(low, high) if kind == "hdrs?" else EntriesRequest(low, high)
    if kind == "hdrs":
        return Headers(_decode_headers(value["headers"]))
    if kind == "ents":
        blocks = value["blocks"]
        if not isinstance(blocks, list) or len(blocks) > MAX_SYNC_HEADERS:
            raise DecodeError(f"ents: at most {MAX_SYNC_HEADERS} blocks")
        return Entries(_int(value["from"], "ents from", 1), tuple(
            tuple(_byte_strings(block, "ents block", MAX_BLOCK_TXS)) for block in blocks))
    if kind == "state?":
        return StateRequest(_int(value["height"], "state? height", 1),
                            _int(value["chunk"], "state? chunk", 0, MAX_CBOR_ITEMS - 1))
    height = _int(value["height"], "state height", 1)
    chunk = _int(value["chunk"], "state chunk", 0, MAX_CBOR_ITEMS - 1)
    if value["keys"] is None and value["values"] is None:
        return StateChunk(height, chunk, None)
    keys = _byte_strings(value["keys"], "state keys", MAX_STATE_CHUNK_RECORDS)
    values = _byte_strings(value["values"], "state values", MAX_STATE_CHUNK_RECORDS)
    if len(keys) != len(values):
        raise DecodeError("state: as many keys as values")
    return StateChunk(height, chunk, tuple(zip(keys, values, strict=True)))


def _decode_offer(value: dict[str, Any]) -> StateOffer | None:
    height = _int(value["height"], "snap height")
    depth = _int(value["depth"], "snap depth", 0, MAX_STATE_SYNC_DEPTH)
    counts, hashes = value["counts"], value["hashes"]
    if height == 0:
        return None
    if not isinstance(counts, list) or len(counts) != 16 ** depth:
        raise DecodeError("snap: one count per prefix")
    hashes = _byte_strings(hashes, "snap hashes", 16 ** depth)
    if len(hashes) != len(counts):
        raise DecodeError("snap: one hash per prefix")
    return StateOffer(height, depth, tuple(
        (_int(count, "snap count", 0, MAX_STATE_CHUNK_RECORDS), digest)
        for count, digest in zip(counts, hashes, strict=True)))


def _decode_headers(raw: Any) -> tuple[tuple[BlockHeader, bytes], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_SYNC_HEADERS:
        raise DecodeError(f"hdrs: at most {MAX_SYNC_HEADERS} headers")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"header", "cert"}:
            raise DecodeError("hdrs: each is a map of header, cert")
        if not isinstance(item["cert"], bytes):
            raise DecodeError("hdrs: 'cert' must be bytes")
        out.append((BlockHeader.from_cbor(item["header"]), item["cert"]))
    return tuple(out)
