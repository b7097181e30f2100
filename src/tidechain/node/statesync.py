"""One state sync in progress (ADR 0009): which requests are out to which peer, what
has been verified so far, and when it is complete. The node's block-sync code feeds it
the peers' answers; every check is in `ledger.statesync` (pure).

Phases: ask a peer for a snapshot offer (height H), fetch and verify the headers from
the node's head to H, check the offer against header H's state root, then fetch log
entries (block by block, in order) and state chunks (any order) from the peers in
turn, a few requests in flight at once. A bad answer raises PeerError naming its
sender, who is not asked again; the request goes to the next peer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from tidechain.consensus import CommitCertificate, ValidatorSet
from tidechain.core import merkle
from tidechain.core.errors import PeerError, Rejected, invariant
from tidechain.core.limits import MAX_SYNC_HEADERS, SYNC_PROBE_MS
from tidechain.core.note import Note, NoteSignature, Verifier
from tidechain.ledger.statesync import (
    ImportedBlock,
    LogFeed,
    StateAssembly,
    StateOffer,
    Tip,
    UnknownValidatorSet,
    tip_of,
    verify_header,
    verify_offer,
)
from tidechain.ledger.types import BlockHeader
from tidechain.node.wire import (
    Entries,
    EntriesRequest,
    Headers,
    HeadersRequest,
    OutgoingMessage,
    SnapshotOffer,
    SnapshotRequest,
    StateChunk,
    StateRequest,
)

ENTRIES_PER_REQUEST = 8192
"""Log entries asked for in one request (~3 MiB of deposits): big enough that the
per-message cost is small, small enough that two in flight keep both ends busy."""
ENTRY_REQUESTS_IN_FLIGHT = 3
STATE_REQUESTS_IN_FLIGHT = 16
"""Requests out at once, spread over the peers in turn. State chunks are small (a few
hundred records at 100,000 keys: the prefixes are cut finer than MAX_CBOR_ITEMS), so
more of them travel at once; the answers' bytes stay a few MiB."""

STATE_SYNC_STALL_MS = 10 * SYNC_PROBE_MS
"""A session that verified nothing new for this long is abandoned (block sync takes
over, and state sync may be tried again later): peers that stop answering, or one that
keeps a request unanswered, must not hold a node behind for ever."""
STATE_CHUNK_BUDGET_MS = 100
ENTRIES_BUDGET_MS_PER_1000 = 100
"""Once the offer is verified, the session must finish within STATE_SYNC_STALL_MS plus
these per chunk and per 1,000 entries still to fetch (about 10x what two cores need),
or it is abandoned: a peer that answers just often enough never to look stalled (one
chunk every few seconds) must not hold block sync off for hours."""

Outgoing = list[tuple[str, OutgoingMessage]]


class Importer(Protocol):
    """Where a session's verified rows go: the node core turns them into write
    effects (`node.effects.ImportBlocks`, `ImportState`) for its shell."""

    def import_blocks(self, blocks: list[tuple[ImportedBlock, bytes, str]]) -> None: ...
    def import_state(self, records: tuple[tuple[bytes, bytes], ...]) -> None: ...

log = logging.getLogger("tidechain.node")


def checkpoint_note(body: bytes, certificate: CommitCertificate,
                    verifiers: dict[str, Verifier]) -> str:
    """The quorum-signed checkpoint of a certified block, as a block commit stores it."""
    signatures = []
    for vote in certificate.precommits:
        invariant(vote.checkpoint_signature is not None, "precommit without checkpoint sig")
        assert vote.checkpoint_signature is not None
        signatures.append(NoteSignature(vote.voter, verifiers[vote.voter].key_id,
                                        vote.checkpoint_signature))
    signatures.sort(key=lambda s: s.name)
    return Note(body.decode(), tuple(signatures)).format()


@dataclass
class _Request:
    peer: str
    sent_ms: int
    message: OutgoingMessage


@dataclass
class StateSync:
    """The session. `tip` and `feed` start at the node's head."""

    chain_id: bytes
    origin: str
    peers: list[str]
    tip: Tip
    feed: LogFeed
    validators: ValidatorSet  # the set signing the block after the node's head
    validators_hash: bytes  # its set hash, as headers name it
    offer: StateOffer | None = None
    offer_peer: str = ""
    headers: list[tuple[BlockHeader, bytes]] = field(default_factory=list)
    chunks: set[int] = field(default_factory=set)  # verified (and queued for storage)
    records_fetched: int = 0
    pending: dict[tuple[str, int], _Request] = field(default_factory=dict)
    early: dict[int, tuple[str, Entries]] = field(default_factory=dict)
    requeue: list[tuple[tuple[str, int], OutgoingMessage]] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)  # sent something bad: never again
    no_blocks: set[str] = field(default_factory=set)  # lack headers or entries we need
    no_snapshot: set[str] = field(default_factory=set)  # hold no snapshot at the height
    turns: dict[str, int] = field(default_factory=dict)  # per kind: each peer in turn
    applied_to: int = 0  # the last height whose entries are imported
    entries_asked: int = 0  # the next height whose entries no request covered yet
    chunks_asked: int = 0
    base_log_size: int = 0
    base_height: int = 0
    set_changed: bool = False  # a header in the range names a set we cannot check
    goal: int = 0  # the head the first peer claimed: headers and entries go that far
    offer_verified: bool = False
    chunks_total: int = 0  # non-empty prefixes of the verified offer
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    assembly: StateAssembly | None = None  # the verified records so far, once H is
    slow: set[str] = field(default_factory=set)  # left a request unanswered: last resort
    avoid: dict[tuple[str, int], str] = field(default_factory=dict)  # timed out there
    progress: tuple[int, int, int, bool] = (0, 0, 0, False)  # as of progress_ms
    progress_ms: int = 0
    deadline_ms: int = 0  # set when the offer is verified

    def __post_init__(self) -> None:
        self.verifiers = {v.name: Verifier.of(v.name, v.public_key)
                          for v in self.validators.validators}
        self.applied_to = self.base_height = self.tip.height
        self.entries_asked = self.tip.height + 1
        self.base_log_size = self.feed.frontier.size

    # --- progress --------------------------------------------------------------------
    @property
    def target(self) -> BlockHeader | None:
        """Header H, once verified and the offer checked against it."""
        if self.offer is None or not self.offer_verified:
            return None
        return self._header(self.offer.height)

    @property
    def entries_cap(self) -> int:
        """The last height whose entries may be imported: H, or before an offer the
        height the peer claimed (an offer is of its head, which only grows)."""
        cap = self.offer.height if self.offer is not None else self.goal
        return min(cap, self.tip.height)

    @property
    def done(self) -> bool:
        target = self.target
        return (target is not None and self.offer is not None
                and self.applied_to == target.height and len(self.chunks) == self.chunks_total)

    @property
    def stuck(self) -> bool:
        """No peer is left to ask for something still missing, or the range crosses a
        validator-set change (block sync must take over)."""
        if self.set_changed:
            return True
        if self.offer is None and not self._usable("snap"):
            return True
        if self.target is None:
            return not self._usable("hdrs")
        return not self._usable("ents") or not self._usable("state")

    def stalled(self, now_ms: int) -> str | None:
        """Why the session should end: nothing new verified for STATE_SYNC_STALL_MS,
        or past its deadline (see STATE_CHUNK_BUDGET_MS); None while it goes on."""
        progress = (len(self.headers), self.applied_to, len(self.chunks), self.offer_verified)
        if progress != self.progress:
            self.progress, self.progress_ms = progress, now_ms
        target = self.target
        if target is not None and not self.deadline_ms:
            entries_left = target.log_size - self.feed.frontier.size
            self.deadline_ms = (now_ms + STATE_SYNC_STALL_MS
                                + STATE_CHUNK_BUDGET_MS * self.chunks_total
                                + ENTRIES_BUDGET_MS_PER_1000 * (entries_left // 1000 + 1))
        if now_ms - self.progress_ms >= STATE_SYNC_STALL_MS:
            return f"nothing verified for {STATE_SYNC_STALL_MS} ms"
        if self.deadline_ms and now_ms >= self.deadline_ms:
            return f"too slow: {len(self.chunks)} of {self.chunks_total} chunks by its deadline"
        return None

    def status(self) -> dict[str, Any]:
        offer = self.offer
        target = self.target
        return {
            "phase": "offer" if offer is None else "headers" if target is None else "data",
            "height": offer.height if offer else None,
            "headers": len(self.headers),
            "records": self.records_fetched,
            "records_total": offer.records if offer else None,
            "entries": self.feed.frontier.size - self.base_log_size,
            "entries_total": target.log_size - self.base_log_size if target else None,
        }

    # --- requests --------------------------------------------------------------------
    def _usable(self, kind: str) -> list[str]:
        unable = self.no_snapshot if kind in ("snap", "state") else self.no_blocks
        return [p for p in self.peers if p not in self.excluded and p not in unable]

    def _send(self, key: tuple[str, int], message: OutgoingMessage, now_ms: int,
              out: Outgoing, peer: str | None = None) -> bool:
        if peer is None:
            usable = self._usable(key[0])
            # A peer that let a request time out gets none while another can serve.
            usable = [p for p in usable if p not in self.slow] or usable
            avoided = self.avoid.pop(key, None)
            if avoided in usable and len(usable) > 1:  # another peer's turn
                usable.remove(avoided)
            if not usable:
                return False
            turn = self.turns.get(key[0], 0)
            self.turns[key[0]] = turn + 1
            peer = usable[turn % len(usable)]
        self.pending[key] = _Request(peer, now_ms, message)
        out.append((peer, message))
        return True

    def start(self, peer: str, claimed_head: int, now_ms: int) -> Outgoing:
        """Ask `peer` (which claims a head far ahead) for a snapshot offer, and the
        peers for the headers and entries up to that head meanwhile."""
        self.goal = claimed_head
        self.progress_ms = now_ms
        offers: Outgoing = []
        self._send(("snap", 0), SnapshotRequest(), now_ms, offers, peer)
        # The headers go out first: a peer answers in order, and cutting its snapshot
        # takes it a while.
        return self.pump(now_ms) + offers

    def pump(self, now_ms: int) -> Outgoing:
        """Re-send what timed out or was refused (to the next peer), fill the window."""
        out: Outgoing = []
        for key, request in list(self.pending.items()):
            if now_ms - request.sent_ms >= SYNC_PROBE_MS:
                del self.pending[key]
                self.slow.add(request.peer)
                if key[0] in ("ents", "state"):
                    self.requeue.append((key, request.message))
                    self.avoid[key] = request.peer
        requeue, self.requeue = self.requeue, []
        for key, message in requeue:
            if key not in self.pending and not self._send(key, message, now_ms, out):
                self.requeue.append((key, message))
        if self.offer is None and ("snap", 0) not in self.pending:
            self._send(("snap", 0), SnapshotRequest(), now_ms, out)
        goal = self.offer.height if self.offer is not None else self.goal
        if self.tip.height < goal and self._in_flight("hdrs") == 0:
            low = self.tip.height + 1
            high = min(goal, low + MAX_SYNC_HEADERS - 1)
            self._send(("hdrs", low), HeadersRequest(low, high), now_ms, out)
        self._ask_entries(now_ms, out)
        if self.target is not None:
            self._ask_state(now_ms, out)
        return out

    def _in_flight(self, kind: str) -> int:
        return sum(1 for pending_kind, _ in self.pending if pending_kind == kind)

    def _ask_entries(self, now_ms: int, out: Outgoing) -> None:
        cap = self.entries_cap
        while (self._in_flight("ents") < ENTRY_REQUESTS_IN_FLIGHT
               and self.entries_asked <= cap):
            low = high = self.entries_asked
            count = self._header(low).tx_count
            while high < cap and count + self._header(high + 1).tx_count <= \
                    ENTRIES_PER_REQUEST:
                high += 1
                count += self._header(high).tx_count
            if not self._send(("ents", low), EntriesRequest(low, high), now_ms, out):
                return
            self.entries_asked = high + 1

    def _ask_state(self, now_ms: int, out: Outgoing) -> None:
        offer = self.offer
        assert offer is not None
        while (self._in_flight("state") < STATE_REQUESTS_IN_FLIGHT
               and self.chunks_asked < len(offer.top)):
            chunk = self.chunks_asked
            # The offering peer holds the snapshot already; another would have to cut
            # one (~0.3 s of CPU at 100,000 records): only a re-sent request (after a
            # timeout or a refusal) goes to the others, in turn.
            owner = (self.offer_peer if self.offer_peer not in self.slow
                     and self.offer_peer in self._usable("state") else None)
            if offer.top[chunk][0] and not self._send(
                    ("state", chunk), StateRequest(offer.height, chunk), now_ms, out, owner):
                return
            self.chunks_asked += 1

    def _header(self, height: int) -> BlockHeader:
        return self.headers[height - self.base_height - 1][0]

    def _blame(self, peer: str, exc: Rejected) -> PeerError:
        """Never ask `peer` again in this session, and name it."""
        self.excluded.add(peer)
        return PeerError(peer, f"state sync: {exc.reason}")

    def _answered(self, peer: str, key: tuple[str, int]) -> _Request | None:
        """The request this answers, taken off the pending list (None if unasked)."""
        request = self.pending.get(key)
        if request is None or request.peer != peer:
            return None
        return self.pending.pop(key)

    # --- answers ---------------------------------------------------------------------
    def on_offer(self, peer: str, message: SnapshotOffer, min_height: int) -> None:
        """Take an offer at least `min_height` high (the next pump asks another peer
        if this one offers none)."""
        if self.offer is not None or self._answered(peer, ("snap", 0)) is None:
            return
        offer = message.offer
        # Not below what entries were asked for: those go into the store up to there.
        if offer is None or offer.height < max(min_height, self.entries_asked - 1):
            self.no_snapshot.add(peer)
            return
        self.offer, self.offer_peer = offer, peer
        self._check_offer()

    def _check_offer(self) -> None:
        """Check the offer against its header, once that header is verified."""
        offer = self.offer
        if offer is None or self.offer_verified or self.tip.height < offer.height:
            return
        try:
            verify_offer(offer, self._header(offer.height).state_root)
        except Rejected as exc:
            # Named in the log, not raised: the sender of the message at hand may be
            # another peer, and a raised PeerError disconnects the sender.
            offerer, self.offer = self.offer_peer, None  # ask another for an offer
            log.warning("%s", self._blame(offerer, exc).reason)
            return
        self.offer_verified = True
        self.assembly = StateAssembly(offer)
        self.chunks_total = sum(1 for count, _ in offer.top if count)

    def on_headers(self, peer: str, message: Headers) -> None:
        if self._answered(peer, ("hdrs", self.tip.height + 1)) is None:
            return
        if not message.headers:
            self.no_blocks.add(peer)
        goal = self.offer.height if self.offer is not None else self.goal
        try:
            for header, certificate in message.headers:
                if header.height > goal:
                    break
                verify_header(self.tip, header, certificate, self.chain_id, self.origin,
                              self.validators, self.validators_hash)
                self.headers.append((header, certificate))
                self.tip = tip_of(header)
        except UnknownValidatorSet:
            self.set_changed = True
            return
        except Rejected as exc:
            raise self._blame(peer, exc) from exc
        self._check_offer()

    def on_entries(self, peer: str, message: Entries, store: Importer) -> None:
        request = self._answered(peer, ("ents", message.from_height))
        if request is None:
            return
        asked = request.message
        assert isinstance(asked, EntriesRequest)
        if not message.blocks or len(message.blocks) > asked.to_height - asked.from_height + 1:
            self.no_blocks.add(peer)  # it cannot serve them: another peer will
            self.requeue.append((("ents", asked.from_height), asked))
            return
        end = message.from_height + len(message.blocks) - 1
        if end < asked.to_height:  # a short answer: the rest is asked for again
            self.requeue.append((("ents", end + 1), EntriesRequest(end + 1, asked.to_height)))
        self.early[message.from_height] = (peer, message)
        self.slow.discard(peer)
        self._apply_entries(store)

    def _apply_entries(self, store: Importer) -> None:
        """Import answers in block order, as far as they reach without a gap."""
        while (found := self.early.pop(self.applied_to + 1, None)) is not None:
            peer, message = found
            end = message.from_height + len(message.blocks) - 1
            imported = []
            try:
                for entries in message.blocks:
                    height = self.applied_to + 1
                    header, certificate = self.headers[height - self.base_height - 1]
                    block = self.feed.add_block(header, entries)
                    note = checkpoint_note(header.checkpoint_body(self.origin),
                                           CommitCertificate.decode(certificate),
                                           self.verifiers)
                    imported.append((block, certificate, note))
                    self.applied_to = height
            except Rejected as exc:
                low = self.applied_to + 1
                self.requeue.append((("ents", low), EntriesRequest(low, end)))
                raise self._blame(peer, exc) from exc
            finally:
                store.import_blocks(imported)  # the good blocks, even before a bad one

    def on_state(self, peer: str, message: StateChunk, store: Importer) -> None:
        offer = self.offer
        key = ("state", message.chunk)
        if offer is None or message.height != offer.height:
            return
        request = self._answered(peer, key)
        if request is None:
            return
        if message.records is None:
            self.no_snapshot.add(peer)
            self.requeue.append((key, request.message))
            return
        if message.chunk in self.chunks or self.assembly is None:
            return  # a duplicate answer (re-sent after a timeout): taken already
        try:
            # Checked by staging it into the state tree (hashed once, ADR 0009), in
            # any order, while other answers are on their way.
            self.assembly.add(message.chunk, message.records)
        except Rejected as exc:
            self.requeue.append((key, request.message))
            raise self._blame(peer, exc) from exc
        self.chunks.add(message.chunk)
        self.slow.discard(peer)
        self.records_fetched += len(message.records)
        store.import_state(message.records)

    @property
    def frontier(self) -> merkle.CompactRange:
        return self.feed.frontier
