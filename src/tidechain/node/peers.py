"""The peer network: authenticated, framed, bounded connections between nodes (ADR 0005).

* Transport: TCP + TLS 1.3, both sides present a certificate from the network CA or
  from an organisation CA the chain registered (`tidechain.node.tls`, ADR 0005 as
  amended). A peer's name is the CN of its verified certificate; a name outside the
  peer set is refused, and so is a certificate the `admit` hook refuses for that name
  (the runtime checks it against the chain: pinned fingerprint, owning organisation).
* Peer set: the configured `[[peers]]` plus the validators on chain (`set_peers`). A
  peer whose address is unknown (None: a genesis validator seen from a node that
  joined later) is never dialled; its inbound connection is accepted whatever the
  names' order.
* Framing: a 4-byte big-endian length, then that many payload bytes. A zero-length
  frame is a heartbeat and is never delivered. A length above `max_frame_bytes`, or a
  connection closed inside a frame, closes the connection and logs a `PeerError`
  naming the peer (its certificate name, or its address before the handshake).
* Ownership: one connection per pair of nodes, dialled by the node with the smaller
  name (unless it does not know the other's address: then the other dials). An
  inbound connection from a peer that already has one replaces it (the dialler only
  redials once it believes the old one dead).
* Back-pressure: `send` never blocks. Each peer has a bounded outbox; when it is full
  the *oldest* frames are dropped (consensus messages are superseded by newer ones, and
  a peer that fell that far behind catches up by block sync, not by replay).
* Liveness: each side sends a heartbeat after `heartbeat_interval_s` without traffic; a
  peer silent for `idle_timeout_s` is disconnected. Dialling retries with capped
  exponential backoff and jitter from an injected `random.Random`.

Every await that depends on the network has a timeout; every buffer has a bound.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from tidechain.core.errors import PeerError, Rejected, invariant
from tidechain.core.limits import MAX_BLOCK_TXS, MAX_TX_BYTES, MAX_VALIDATORS
from tidechain.node.tls import TlsError, add_trust_anchors, check_node_name, peer_name

log = logging.getLogger("tidechain.node.peers")

FRAME_HEADER = struct.Struct(">I")
"""4-byte big-endian payload length."""

# --- bounds (to move into core.limits) -------------------------------------------------
PEER_MAX_FRAME_BYTES = MAX_BLOCK_TXS * MAX_TX_BYTES + 1024 * 1024
"""A full block proposal (MAX_BLOCK_TXS transactions of MAX_TX_BYTES, < 64 MiB) plus
1 MiB for its envelope and signatures; nothing else a peer sends is larger."""

PEER_QUEUE_FRAMES = 4096
"""Frames queued per peer: votes are ~200 bytes, so this holds many rounds of all-to-all
traffic among MAX_VALIDATORS validators while a peer is briefly slow or reconnecting."""

PEER_QUEUE_MAX_BYTES = PEER_MAX_FRAME_BYTES + 32 * 1024 * 1024
"""Bytes queued per peer: one full proposal plus 32 MiB of smaller messages. With
MAX_VALIDATORS peers all stalled at once, ~6 GiB in the worst case; in practice the
outbox of a healthy peer is near empty."""

MAX_PENDING_HANDSHAKES = 2 * MAX_VALIDATORS
"""Inbound connections still in their TLS handshake. Unauthenticated clients cannot hold
more sockets than this; further ones are closed at once."""

STREAM_READ_LIMIT = 64 * 1024
"""StreamReader pauses the socket above twice this, so besides the frame being read
(at most max_frame_bytes, read with readexactly) at most ~128 KiB is buffered."""

WRITE_BUFFER_HIGH_BYTES = 256 * 1024
"""`drain()` waits while more than this is buffered in the transport, so a peer that
reads slowly holds at most one frame plus this much outside its outbox."""

HEARTBEAT_INTERVAL_S = 1.0
"""Idle connections send an empty frame this often, so the other side can tell a quiet
peer from a dead one."""

IDLE_TIMEOUT_S = 5.0
"""A peer that sends nothing (not even a heartbeat) for this long is disconnected:
five heartbeats missed, which a live peer on a WAN does not do."""

FRAME_TIMEOUT_S = 30.0
"""Time to receive one frame's payload once its header arrived: a 64 MiB proposal at
20 Mbit/s. Also bounds a slowloris peer that trickles a frame."""

SEND_TIMEOUT_S = 30.0
"""A peer whose transport takes no data for this long is disconnected (its frames
stay queued, bounded, for the next connection)."""

CONNECT_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 5.0
"""TCP connect and TLS handshake: seconds on any network where consensus can work."""

CLOSE_TIMEOUT_S = 2.0
"""Waiting for a TLS close_notify; after it the socket is aborted."""

BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 2.0
"""Redial after 0.1, 0.2, 0.4 ... seconds, at most 2 s: a restarted validator is back
in consensus within about 2 s (it counts toward quorum, so every second matters), and
an absent one costs one refused dial every 2 s."""


@dataclass(frozen=True)
class PeerTiming:
    """Timeouts and backoff of a `PeerNetwork` (the defaults are the bounds above; tests
    shrink them)."""

    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    frame_timeout_s: float = FRAME_TIMEOUT_S
    send_timeout_s: float = SEND_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    close_timeout_s: float = CLOSE_TIMEOUT_S
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_cap_s: float = BACKOFF_CAP_S

    def __post_init__(self) -> None:
        invariant(0 < self.heartbeat_interval_s < self.idle_timeout_s,
                  "heartbeats must come more often than the idle timeout")
        invariant(0 < self.backoff_base_s <= self.backoff_cap_s, "backoff base <= cap")


def backoff_delay_s(attempt: int, rng: random.Random, base_s: float, cap_s: float) -> float:
    """Delay before redial number `attempt` (0-based): the capped exponential
    min(cap, base * 2**attempt), scaled by a uniform factor in [0.5, 1] so that nodes
    restarted together do not redial in lockstep, yet never retry in a tight loop."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, 62))
    return ceiling * (0.5 + 0.5 * rng.random())


class _Outbox:
    """A peer's bounded queue of frames; full means the oldest frames go."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self._frames: deque[bytes] = deque()
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self.bytes = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, payload: bytes) -> bool:
        """Queue `payload`; False if older frames had to be dropped to make room."""
        overflowed = False
        while self._frames and (len(self._frames) >= self._max_frames
                                or self.bytes + len(payload) > self._max_bytes):
            self.bytes -= len(self._frames.popleft())
            self.dropped += 1
            overflowed = True
        self._frames.append(payload)
        self.bytes += len(payload)
        self.ready.set()
        return not overflowed

    def pop(self) -> bytes | None:
        if not self._frames:
            self.ready.clear()
            return None
        payload = self._frames.popleft()
        self.bytes -= len(payload)
        return payload


class _Connection:
    """One authenticated TLS stream to a named peer."""

    def __init__(self, peer: str, address: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.address = address
        self.reader = reader
        self.writer = writer
        self.confirmed = False  # a frame arrived: the peer accepted us, not just TLS
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH_BYTES)

    def write_buffer_bytes(self) -> int:
        return self.writer.transport.get_write_buffer_size()


class PeerNetwork:
    """Mutually authenticated, framed, bounded connections to a set of peers, which
    `set_peers` changes on the fly (the runtime follows the chain's validators).

    `on_message(peer, payload)` runs on the event loop for every frame received. If it
    raises `Rejected`, the peer sent something invalid: its connection is closed and
    the reason logged. Any other exception is a bug: it is logged, ends that peer's
    connection handling, is passed to `on_failure` (the node decides whether to stop:
    `serve` stops on a broken invariant) and is raised again by `stop()`.
    """

    def __init__(
        self,
        my_name: str,
        listen_host: str,
        listen_port: int,
        peers: Mapping[str, tuple[str, int] | None],
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        on_message: Callable[[str, bytes], None],
        max_frame_bytes: int = PEER_MAX_FRAME_BYTES,
        queue_limit: int = PEER_QUEUE_FRAMES,
        *,
        rng: random.Random,
        queue_max_bytes: int = PEER_QUEUE_MAX_BYTES,
        timing: PeerTiming = PeerTiming(),  # frozen, so one shared default is safe
    ) -> None:
        for name in (my_name, *peers):
            check_node_name(name)
        invariant(my_name not in peers, "a node is not its own peer")
        invariant(len(peers) < MAX_VALIDATORS, "more peers than MAX_VALIDATORS")
        invariant(0 < max_frame_bytes < 2**32, "frame bound must fit the 4-byte header")
        invariant(queue_limit > 0 and queue_max_bytes >= max_frame_bytes,
                  "an outbox must hold at least one frame of the largest size")
        self._me = my_name
        self._listen = (listen_host, listen_port)
        self._peers = dict(peers)
        self.configured_peers: dict[str, tuple[str, int] | None] = dict(peers)
        """The peers the node was started with (node.toml), which `set_peers` callers
        keep beside the chain's."""
        self.admit: Callable[[str, bytes], str | None] | None = None
        # The network CA(s) (DER) genesis and configured peers are admitted by; set by
        # `serve` from the node's TLS directory (ADR 0005 as amended).
        self.network_cas: list[bytes] = []
        """Set by the runtime: (name, certificate DER) -> why that verified certificate
        may not speak for that name, or None. Asked after every handshake."""
        self._server_ctx = server_ctx
        self._client_ctx = client_ctx
        self._on_message = on_message
        self._max_frame = max_frame_bytes
        self._timing = timing
        self._rng = rng
        self._queue_limits = (queue_limit, queue_max_bytes)
        self._outboxes = {p: _Outbox(queue_limit, queue_max_bytes) for p in peers}
        self._connections: dict[str, _Connection] = {}
        self._dialling: set[str] = set()  # peers with a dial loop
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: socket.socket | None = None
        self._pending_handshakes = 0
        self._stopping = False
        self._failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for peers and start dialling those whose name is greater than ours."""
        invariant(self._listener is None and not self._stopping, "start() called twice")
        listener = socket.create_server(self._listen, backlog=MAX_PENDING_HANDSHAKES)
        listener.setblocking(False)
        self._listener = listener
        self._spawn(self._accept_loop(listener), "accept")
        for peer in sorted(self._peers):
            self._start_dialling(peer)

    async def stop(self) -> None:
        """Close every connection and the listener. Raises the first bug (an exception
        other than `Rejected` from `on_message`, say) seen while running."""
        self._stopping = True
        for conn in list(self._connections.values()):
            conn.writer.transport.abort()
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Each task's cleanup is itself bounded by close_timeout_s.
            await asyncio.wait(tasks, timeout=2 * self._timing.close_timeout_s)
        if self._listener is not None:
            self._listener.close()
        if self._failure is not None:
            raise self._failure

    def set_peers(self, peers: Mapping[str, tuple[str, int] | None]) -> None:
        """Follow a new peer set (the validator set changed, ADR 0011): a new peer gets
        an outbox and, if this node dials it, a dial loop; a removed peer is
        disconnected and its queued frames dropped; a moved one is dialled at its new
        address from the next attempt on."""
        for name in peers:
            check_node_name(name)
        invariant(self._me not in peers, "a node is not its own peer")
        invariant(len(peers) < MAX_VALIDATORS, "more peers than MAX_VALIDATORS")
        removed = [p for p in self._peers if p not in peers]
        added = sorted(p for p in peers if p not in self._peers)
        # A peer whose address became known is dialled from now on, if we dial it.
        located = sorted(p for p in peers if p in self._peers and self._peers[p] is None
                         and peers[p] is not None)
        self._peers = dict(peers)
        for peer in removed:
            del self._outboxes[peer]
            conn = self._connections.pop(peer, None)
            if conn is not None:
                conn.writer.transport.abort()
            log.info("peer %s: no longer a peer", peer)
        for peer in added:
            self._outboxes[peer] = _Outbox(*self._queue_limits)
        for peer in [*added, *located]:
            if self._listener is not None and not self._stopping:
                self._start_dialling(peer)
            address = peers[peer]
            log.info("peer %s: new peer at %s", peer,
                     "an unknown address" if address is None else f"{address[0]}:{address[1]}")

    def add_trust_anchors(self, ca_ders: list[bytes]) -> None:
        """Trust more CAs (DER, from the chain) in handshakes from now on."""
        add_trust_anchors(self._server_ctx, ca_ders)
        add_trust_anchors(self._client_ctx, ca_ders)

    # --- sending -----------------------------------------------------------------------
    def send(self, peer: str, payload: bytes) -> bool:
        """Queue `payload` for `peer` without blocking. Returns False when the peer's
        outbox was full and its oldest frames were dropped to make room (the peer is
        lagging), when the network is stopped, or when `peer` is not (or no longer) a
        peer: a validator without a known address is unreachable, not a bug."""
        invariant(0 < len(payload) <= self._max_frame,
                  f"payload of {len(payload)} bytes outside 1..{self._max_frame}")
        if self._stopping or peer not in self._outboxes:
            return False
        return self._outboxes[peer].put(payload)

    def broadcast(self, payload: bytes) -> set[str]:
        """`send` to every peer; returns the peers whose outbox overflowed."""
        return {peer for peer in sorted(self._peers) if not self.send(peer, payload)}

    def connected_peers(self) -> set[str]:
        """Peers with an authenticated connection from which at least one frame arrived."""
        return {peer for peer, conn in self._connections.items() if conn.confirmed}

    def backlog_bytes(self, peer: str) -> int:
        """Bytes waiting for `peer`: its outbox plus its connection's transport buffer."""
        conn = self._connections.get(peer)
        return self._outboxes[peer].bytes + (conn.write_buffer_bytes() if conn else 0)

    def dropped_frames(self, peer: str) -> int:
        """Frames dropped from `peer`'s outbox since start (it was lagging)."""
        return self._outboxes[peer].dropped

    # --- connection ownership ----------------------------------------------------------
    def _dials(self, peer: str) -> bool:
        """The node with the smaller name dials: one connection per pair, no races. A
        peer whose address is unknown dials us instead (it knows ours from the chain)."""
        return self._me < peer and self._peers.get(peer) is not None

    def _start_dialling(self, peer: str) -> None:
        """One dial loop per peer at most, even if set_peers removes and re-adds it
        while the old loop sleeps."""
        if self._dials(peer) and peer not in self._dialling:
            self._dialling.add(peer)
            self._spawn(self._dial_loop(peer), f"dial {peer}")

    async def _dial_loop(self, peer: str) -> None:
        try:
            await self._redial(peer)
        finally:
            self._dialling.discard(peer)

    async def _redial(self, peer: str) -> None:
        attempt = 0
        while not self._stopping and self._dials(peer):  # set_peers may remove it
            conn = await self._dial(peer)
            if conn is not None:
                await self._run_connection(conn)
                if conn.confirmed:  # a real session, not a refusal after the handshake
                    attempt = 0
            timing = self._timing
            delay_s = backoff_delay_s(attempt, self._rng, timing.backoff_base_s,
                                      timing.backoff_cap_s)
            attempt += 1
            await asyncio.sleep(delay_s)

    async def _dial(self, peer: str) -> _Connection | None:
        address_known = self._peers[peer]
        invariant(address_known is not None, "dialling a peer without an address")
        assert address_known is not None
        host, port = address_known
        address = f"{host}:{port}"
        timing = self._timing
        try:
            async with asyncio.timeout(timing.connect_timeout_s + timing.handshake_timeout_s):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._client_ctx, server_hostname=peer,
                    ssl_handshake_timeout=timing.handshake_timeout_s, limit=STREAM_READ_LIMIT)
        except ssl.SSLError as exc:
            log.warning("%s", PeerError(f"{peer}@{address}", f"TLS handshake failed: {exc}"))
            return None
        except (OSError, TimeoutError) as exc:
            log.info("peer %s@%s: cannot connect: %s", peer, address, exc or "timed out")
            return None
        try:
            name = peer_name(writer.get_extra_info("ssl_object"))
        except TlsError as exc:
            name = f"<{exc.reason}>"
        refusal = (f"certificate names {name!r}" if name != peer  # SAN checked; CN too
                   else self._certificate_refusal(name, writer))
        if refusal:
            log.warning("%s", PeerError(f"{peer}@{address}", refusal))
            writer.transport.abort()
            return None
        log.info("peer %s: connected to %s", peer, address)
        return _Connection(peer, address, reader, writer)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                # Waiting for the next connection has no timeout by nature; stop() cancels it.
                sock, addr = await loop.sock_accept(listener)
            except OSError as exc:  # out of file descriptors, say: wait, do not spin
                log.warning("peer network: accept failed: %s", exc)
                await asyncio.sleep(self._timing.backoff_cap_s)
                continue
            address = f"{addr[0]}:{addr[1]}"
            if self._pending_handshakes >= MAX_PENDING_HANDSHAKES:
                log.warning("%s", PeerError(address, "too many handshakes in progress"))
                sock.close()
                continue
            self._pending_handshakes += 1
            self._spawn(self._accept(sock, address), f"accept {address}")

    async def _accept(self, sock: socket.socket, address: str) -> None:
        try:
            streams = await self._handshake(sock, address)
        finally:
            self._pending_handshakes -= 1
        if streams is None:
            return
        reader, writer = streams
        try:
            name = peer_name(writer.get_extra_info("ssl_object"))
        except TlsError as exc:
            log.warning("%s", PeerError(address, exc.reason))
            writer.transport.abort()
            return
        refusal = self._refusal(name) or self._certificate_refusal(name, writer)
        if refusal:
            log.warning("%s", PeerError(f"{name}@{address}", refusal))
            writer.transport.abort()
            return
        log.info("peer %s: accepted from %s", name, address)
        await self._run_connection(_Connection(name, address, reader, writer))

    async def _handshake(
        self, sock: socket.socket, address: str,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """TLS server handshake on an accepted socket. Done here rather than by
        `start_server(ssl=...)` so that a failed handshake is ours to log by address."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_READ_LIMIT, loop=loop)
        timeout_s = self._timing.handshake_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                transport, protocol = await loop.connect_accepted_socket(
                    lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sock,
                    ssl=self._server_ctx, ssl_handshake_timeout=timeout_s)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning("%s", PeerError(address, f"TLS handshake refused: {exc or 'timed out'}"))
            sock.close()
            return None
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _refusal(self, name: str) -> str | None:
        """Why an authenticated inbound peer may not connect, or None if it may."""
        if name not in self._peers:
            return "certificate name is not in the configured peer set"
        if self._dials(name):
            return f"dialled us, but {self._me} dials {name} (the smaller name dials)"
        return None

    def _certificate_refusal(self, name: str, writer: asyncio.StreamWriter) -> str | None:
        """What the `admit` hook says of the peer's verified certificate."""
        if self.admit is None:
            return None
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return "no verified certificate"
        return self.admit(name, der)

    # --- one connection ----------------------------------------------------------------
    async def _run_connection(self, conn: _Connection) -> None:
        old = self._connections.get(conn.peer)
        if old is not None:
            log.info("peer %s: new connection replaces the one from %s", conn.peer, old.address)
            old.writer.transport.abort()
        self._connections[conn.peer] = conn
        reading = asyncio.create_task(self._read_loop(conn), name=f"read {conn.peer}")
        writing = asyncio.create_task(self._write_loop(conn), name=f"write {conn.peer}")
        try:
            # Lifetime of the connection: each loop bounds its own waits.
            done, _ = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reading.cancel()
            writing.cancel()
            await asyncio.wait({reading, writing}, timeout=self._timing.close_timeout_s)
            if self._connections.get(conn.peer) is conn:
                del self._connections[conn.peer]
            await self._close(conn)
        for task in done:
            self._log_end(conn, task)

    def _log_end(self, conn: _Connection, task: asyncio.Task[None]) -> None:
        exc = task.exception()
        if exc is None:
            log.info("peer %s: connection closed", conn.peer)
        elif isinstance(exc, PeerError):
            log.warning("%s", exc)
        elif isinstance(exc, ssl.SSLError):
            log.warning("%s", PeerError(conn.peer, f"TLS error: {exc}"))
        elif isinstance(exc, OSError):
            log.info("peer %s: connection lost: %s", conn.peer, exc)
        else:
            raise exc  # a bug: recorded by _spawn's callback, raised again by stop()

    async def _close(self, conn: _Connection) -> None:
        conn.writer.close()
        try:
            async with asyncio.timeout(self._timing.close_timeout_s):
                await conn.writer.wait_closed()
        except (OSError, TimeoutError):
            conn.writer.transport.abort()

    async def _read_loop(self, conn: _Connection) -> None:
        """Frames in, bounded: read the 4-byte header, check it, then read exactly
        that many bytes. Returns on a clean close between frames."""
        timing = self._timing
        while True:
            header = await self._read_exactly(conn, FRAME_HEADER.size, timing.idle_timeout_s,
                                              eof_ok=True)
            if header is None:
                return
            (length,) = FRAME_HEADER.unpack(header)
            if length > self._max_frame:
                raise PeerError(conn.peer, f"frame of {length} bytes exceeds the bound of "
                                           f"{self._max_frame}")
            payload = b""
            if length:
                payload = await self._read_exactly(conn, length, timing.frame_timeout_s) or b""
            conn.confirmed = True
            if payload:
                self._deliver(conn.peer, payload)
                # readexactly() returns without yielding while frames are buffered:
                # give the writers a turn, so an answer leaves before the next request
                # (a state-sync peer's headers before it cuts a snapshot) is handled.
                await asyncio.sleep(0)

    async def _read_exactly(self, conn: _Connection, size: int, timeout_s: float, *,
                            eof_ok: bool = False) -> bytes | None:
        try:
            async with asyncio.timeout(timeout_s):
                return await conn.reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            if eof_ok and not exc.partial:
                return None
            raise PeerError(conn.peer, f"connection closed inside a frame "
                                       f"({len(exc.partial)} of {size} bytes)") from exc
        except TimeoutError as exc:
            raise PeerError(conn.peer, f"sent nothing for {timeout_s} s") from exc

    def _deliver(self, peer: str, payload: bytes) -> None:
        try:
            self._on_message(peer, payload)
        except PeerError:
            raise
        except Rejected as exc:
            raise PeerError(peer, f"invalid message: {exc.reason}") from exc

    async def _write_loop(self, conn: _Connection) -> None:
        """Frames out: drain the peer's outbox; a heartbeat when idle."""
        outbox = self._outboxes.get(conn.peer)
        if outbox is None:
            return  # removed by set_peers while connecting
        # First frame at once: it tells the dialler that we accepted it.
        await self._write_frame(conn, b"")
        while self._connections.get(conn.peer) is conn:
            payload = outbox.pop()
            if payload is not None:
                await self._write_frame(conn, payload)
                continue
            try:
                async with asyncio.timeout(self._timing.heartbeat_interval_s):
                    await outbox.ready.wait()
            except TimeoutError:
                await self._write_frame(conn, b"")

    async def _write_frame(self, conn: _Connection, payload: bytes) -> None:
        conn.writer.writelines([FRAME_HEADER.pack(len(payload)), payload])
        timeout_s = self._timing.send_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await conn.writer.drain()
        except TimeoutError as exc:
            raise PeerError(conn.peer, f"took no data for {timeout_s} s") from exc

    # --- tasks -------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("peer network task %s failed", task.get_name(), exc_info=exc)
            if self._failure is None:
                self._failure = exc
            if self.on_failure is not None:  # every one: a later one may be the fatal kind
                self.on_failure(exc)
