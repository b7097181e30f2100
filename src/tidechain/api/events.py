"""`GET /v1/events`: server-sent events, one per committed block (docs/operations.md).

    id: 12
    event: commit
    data: {"height":12,"hash":"3b9e...","time_ms":...,"tx_count":3,"log_size":18,
           "log_root":"7Hc1...=","proposer":"acme-net/node0"}

Block-level data only, from the header: public like `/v1/status` and `/v1/checkpoint`
(a browser's EventSource cannot sign a request). The id is the height, so a client
resumes with `Last-Event-ID: <last height seen>` (what EventSource sends by itself), or
`?from=<first height wanted>` where it cannot set headers: the blocks after it come from
the store, in order, then live ones; nothing is missed and nothing repeated. Without
either, the stream starts with the next block.

Each stream pulls: it remembers the next height it owes its client and sends from
there to the head in bounded batches, then sleeps until the head moves, a keepalive
is due, or the node stops. Nothing is queued per stream, so a slow client costs no
memory beyond its socket's buffers; one whose socket does not drain within
SLOW_CLIENT_S is disconnected, and resumes with Last-Event-ID. Recent events are encoded
once for every stream (`_RecentEvents`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from tidechain.api.access import Gate
from tidechain.core.errors import Busy, DecodeError, invariant
from tidechain.ledger.types import BlockHeader
from tidechain.node.config import DEFAULT_EVENT_SUBSCRIBERS
from tidechain.node.runtime import NodeRuntime

log = logging.getLogger("tidechain.api")

PATH = "/v1/events"
EVENT = "commit"
KEEPALIVE_S = 15.0
"""A comment line (`: keepalive`) this often on a quiet stream: well under the 60 s idle
timeouts of common proxies and load balancers (nginx's proxy_read_timeout, AWS ALB), so
they keep the stream open, and a client can treat 3 missed ones as a dead connection."""
RETRY_MS = 2000
"""The reconnection delay the stream asks an EventSource for (its `retry:` field)."""
REPLAY_BATCH = 256
"""Heights read from the store at once for a client that is behind: one query of
~256 headers (under 100 KiB of events), then the event loop serves others."""
RECENT_EVENTS = 1024
"""Events near the head kept encoded for all streams: each block is read from the store
and encoded once, however many clients follow it."""
SLOW_CLIENT_S = 30.0
"""How long one write may wait for a client's socket to drain before that stream is
ended: memory per stream stays bounded by the socket buffers."""
DISCONNECT_CHECK_S = 1.0
"""How often an idle stream checks whether its client has gone (aiohttp does not cancel
a handler when its client disconnects): the slot is free again within this time."""
BUSY_RETRY_AFTER_S = 10
"""Retry-After of the 503 answered past the bound on open streams."""
MAX_HEIGHT = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


class CommitEvent(msgspec.Struct):
    """The `data` of a `commit` event: the committed block's header, in the units of
    `/v1/status` (hashes hex, the log root base64 as in checkpoints)."""

    height: int
    hash: str
    time_ms: int
    tx_count: int
    log_size: int
    log_root: str
    proposer: str


def commit_event(header: BlockHeader) -> CommitEvent:
    return CommitEvent(header.height, header.block_hash.hex(), header.time_ms,
                       header.tx_count, header.log_size,
                       base64.b64encode(header.log_root).decode(), header.proposer)


def frame(header: BlockHeader) -> bytes:
    """One event as it goes on the wire."""
    data = msgspec.json.encode(commit_event(header))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (header.height, EVENT.encode(), data)


@dataclass(eq=False)
class _Stream:
    next_height: int
    transport: asyncio.Transport | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writing: bool = False


class _RecentEvents:
    """The encoded events of the last RECENT_EVENTS heights, shared by every stream."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._store = runtime.node.store
        self._node = runtime.node
        self._frames: OrderedDict[int, bytes] = OrderedDict()

    def frames(self, low: int, high: int) -> list[bytes]:
        """The events of heights low..high (committed), in order."""
        wanted = range(low, high + 1)
        if all(height in self._frames for height in wanted):
            return [self._frames[height] for height in wanted]
        headers = [header for header, _ in self._store.headers(low, high)]
        invariant([h.height for h in headers] == list(wanted),
                  f"the store lacks committed headers in {low}..{high}")
        out = [frame(header) for header in headers]
        recent_from = self._node.chain.height - RECENT_EVENTS
        for header, encoded in zip(headers, out, strict=True):
            if header.height > recent_from:
                self._frames[header.height] = encoded
        while len(self._frames) > RECENT_EVENTS or (
                self._frames and next(iter(self._frames)) <= recent_from):
            self._frames.popitem(last=False)
        return out


class EventStreams:
    """The open event streams of one API, ended when the runtime stops."""

    def __init__(self, runtime: NodeRuntime, gate: Gate, *,
                 max_subscribers: int = DEFAULT_EVENT_SUBSCRIBERS) -> None:
        invariant(max_subscribers > 0, "an event stream bound below 1")
        self._runtime = runtime
        self._node = runtime.node
        self._gate = gate
        self._max = max_subscribers
        self._streams: set[_Stream] = set()
        self._recent = _RecentEvents(runtime)
        self._closed = False
        runtime.on_head(self._on_head)
        runtime.on_stop(self.close)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def _on_head(self, height: int) -> None:
        for stream in self._streams:
            stream.wake.set()

    def close(self) -> None:
        """End every stream now (the node is stopping), and refuse new ones. A stream
        blocked writing to a client that does not read has its connection aborted."""
        if self._closed:
            return
        self._closed = True
        if self._streams:
            log.info("ending %d event stream(s): the node is stopping", len(self._streams))
        for stream in self._streams:
            stream.wake.set()
            if stream.writing and stream.transport is not None:
                stream.transport.abort()

    async def on_shutdown(self, app: web.Application) -> None:
        """aiohttp's shutdown signal: the same, should the runtime not have stopped."""
        self.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._gate.reader(request)  # a failing credential is refused; the rate limit
        first = self._first_height(request)
        if self._closed or self._runtime.stopping:
            raise Busy("the node is shutting down; try another node or later",
                       retry_after_s=BUSY_RETRY_AFTER_S)
        if len(self._streams) >= self._max:
            raise Busy(f"{len(self._streams)} event streams are open, the most this node "
                       "serves (node.toml events_max_subscribers); try later",
                       retry_after_s=BUSY_RETRY_AFTER_S)
        stream = _Stream(self._node.chain.height + 1 if first is None else max(1, first),
                         request.transport)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        })
        self._streams.add(stream)
        try:
            await response.prepare(request)
            await self._write(stream, response, b"retry: %d\n\n" % RETRY_MS)
            await self._serve(stream, response)
        except (ConnectionResetError, TimeoutError):
            pass  # the client went away, or did not read: it resumes with Last-Event-ID
        finally:
            self._streams.discard(stream)
        return response

    def _first_height(self, request: web.Request) -> int | None:
        """The first height the client wants: after Last-Event-ID if it sent one (an
        EventSource resuming sends it, beside the `from` of its URL), else `from`."""
        unknown = sorted(set(request.query) - {"from"})
        if unknown:
            raise DecodeError(f"unknown parameter {unknown[0]!r}: {PATH} takes `from`")
        values = request.query.getall("from", [])
        if len(values) > 1:
            raise DecodeError(f"parameter 'from' given {len(values)} times")
        last_id = request.headers.get("Last-Event-ID", "").strip()
        if last_id:
            return _height(last_id, "Last-Event-ID") + 1
        return _height(values[0], "from") if values else None

    async def _serve(self, stream: _Stream, response: web.StreamResponse) -> None:
        idle_s = 0.0
        while True:
            stream.wake.clear()  # before reading the head: a later commit sets it again
            if self._closed:
                return
            head = self._node.chain.height
            if stream.next_height <= head:
                high = min(head, stream.next_height + REPLAY_BATCH - 1)
                frames = self._recent.frames(stream.next_height, high)
                await self._write(stream, response, b"".join(frames))
                stream.next_height = high + 1
                idle_s = 0.0
                await asyncio.sleep(0)  # a long replay must not hold the event loop
                continue
            try:
                await asyncio.wait_for(stream.wake.wait(), DISCONNECT_CHECK_S)
                continue
            except TimeoutError:
                idle_s += DISCONNECT_CHECK_S
            if stream.transport is None or stream.transport.is_closing():
                return  # the client has gone
            if idle_s >= KEEPALIVE_S:
                await self._write(stream, response, b": keepalive\n\n")
                idle_s = 0.0

    async def _write(self, stream: _Stream, response: web.StreamResponse, data: bytes) -> None:
        stream.writing = True
        try:
            async with asyncio.timeout(SLOW_CLIENT_S):
                await response.write(data)
        except TimeoutError:
            log.info("event stream: client did not read for %.0f s; disconnected",
                     SLOW_CLIENT_S)
            if stream.transport is not None:
                stream.transport.abort()
            raise
        finally:
            stream.writing = False


def _height(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_HEIGHT:
        raise DecodeError(f"bad {what}: a height is a decimal integer in 0..{MAX_HEIGHT}")
    return int(text)
