"""The peer network over real sockets on 127.0.0.1 with real TLS 1.3 (ADR 0005).

Hostile peers are raw TLS (or TCP) streams built here, so that they can do what a
`PeerNetwork` never would: present the wrong certificate, none, or send bad frames.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import random
import socket
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core.errors import DecodeError, InvariantViolation
from tidechain.node.peers import FRAME_HEADER, PeerNetwork, PeerTiming, backoff_delay_s
from tidechain.node.tls import (
    TlsError,
    TlsFiles,
    check_node_name,
    client_context,
    issue_node_certificate,
    make_network_ca,
    server_context,
    write_node_tls,
)

# ssl checks validity against the wall clock; X.509 stores whole seconds.
NOW_MS = int(time.time()) * 1000
LOGGER = "tidechain.node.peers"
FAST = PeerTiming(heartbeat_interval_s=0.05, idle_timeout_s=0.5, frame_timeout_s=1.0,
                  send_timeout_s=2.0, connect_timeout_s=1.0, handshake_timeout_s=1.0,
                  close_timeout_s=0.3, backoff_base_s=0.02, backoff_cap_s=0.2)
SCENARIO_TIMEOUT_S = 15
NAMES = ["node0", "node1", "node2", "node3"]


# --- certificate material -------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    """node0..node3 and "intruder" from the test-net CA; "evil-node0" is a node0
    certificate from another network's CA."""
    root = tmp_path_factory.mktemp("pki")
    ca = make_network_ca("test-net", NOW_MS)
    files = {name: write_node_tls(root / name, ca[0], issue_node_certificate(ca, name, NOW_MS, 1))
             for name in [*NAMES, "intruder"]}
    other = make_network_ca("evil-net", NOW_MS)
    evil = issue_node_certificate(other, "node0", NOW_MS, 1)
    # Trusts the real CA (so it accepts the server) but presents the other CA's cert.
    files["evil-node0"] = write_node_tls(root / "evil", ca[0], evil)
    return files


def test_node_certificate_names_the_node_and_chains_to_the_ca() -> None:
    ca = make_network_ca("acme-net", NOW_MS)
    cert_pem, key_pem = issue_node_certificate(ca, "node2", NOW_MS, 30)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca[0])
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node2"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node2"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    start = datetime.datetime.fromtimestamp(NOW_MS / 1000, tz=datetime.UTC)
    assert cert.not_valid_after_utc - start == datetime.timedelta(days=30)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "acme-net"
    with pytest.raises(TlsError):
        make_network_ca("n" * 65, NOW_MS)
    assert b"PRIVATE KEY" in key_pem


@pytest.mark.parametrize("name", ["", "node 0", "-node", "a/b", "x" * 64, "nöde"])
def test_node_names_must_be_dns_labels(name: str) -> None:
    with pytest.raises(TlsError):
        check_node_name(name)


def test_private_key_file_is_owner_only(pki: dict[str, TlsFiles]) -> None:
    assert pki["node0"].key.stat().st_mode & 0o777 == 0o600


def test_contexts_are_tls13_only_and_require_certificates(pki: dict[str, TlsFiles]) -> None:
    for ctx in (server_context(pki["node0"]), client_context(pki["node0"])):
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert client_context(pki["node0"]).check_hostname


def test_missing_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="cannot load"):
        server_context(TlsFiles.in_directory(tmp_path))


@settings(max_examples=200)
@given(st.integers(0, 10_000), st.integers(0, 2**32))
def test_backoff_is_capped_exponential_with_bounded_jitter(attempt: int, seed: int) -> None:
    ceiling = min(10.0, 0.1 * 2.0 ** min(attempt, 62))
    delay = backoff_delay_s(attempt, random.Random(seed), 0.1, 10.0)
    assert ceiling / 2 <= delay <= ceiling
    assert delay == backoff_delay_s(attempt, random.Random(seed), 0.1, 10.0)


# --- harness ----------------------------------------------------------------------------
def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def two_node_ports() -> dict[str, int]:
    """Free loopback ports for node0 and node1, the pair most tests run."""
    return dict(zip(NAMES[:2], free_ports(2), strict=True))


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, peer: str, payload: bytes) -> None:
        if payload == b"reject me":
            raise DecodeError("not a message")
        self.messages.append((peer, payload))

    def from_peer(self, peer: str) -> list[bytes]:
        return [m for p, m in self.messages if p == peer]


def network(pki: dict[str, TlsFiles], name: str, ports: dict[str, int], inbox: Inbox,
            **kwargs: object) -> PeerNetwork:
    peers = {n: ("127.0.0.1", port) for n, port in ports.items() if n != name}
    options: dict[str, object] = {"timing": FAST, "max_frame_bytes": 64 * 1024,
                                  "queue_limit": 64, "queue_max_bytes": 1024 * 1024}
    options.update(kwargs)
    return PeerNetwork(name, "127.0.0.1", ports[name], peers, server_context(pki[name]),
                       client_context(pki[name]), inbox, rng=random.Random(name),
                       **options)  # type: ignore[arg-type]


@asynccontextmanager
async def running(*nets: PeerNetwork) -> AsyncIterator[None]:
    for net in nets:
        await net.start()
    try:
        yield
    finally:
        for net in nets:
            await net.stop()


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            await scenario()
    asyncio.run(bounded())


def raw_client_context(trusted: TlsFiles, presented: TlsFiles | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(trusted.ca_cert))
    if presented is not None:
        ctx.load_cert_chain(str(presented.cert), str(presented.key))
    return ctx


async def refused(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed (or failed) the stream without sending a frame."""
    try:
        async with asyncio.timeout(2):
            data = await reader.read(FRAME_HEADER.size)
    except (OSError, asyncio.IncompleteReadError):
        return True
    return data == b""


def logged(caplog: pytest.LogCaptureFixture, *fragments: str) -> bool:
    return any(all(f in r.getMessage() for f in fragments) for r in caplog.records)


@pytest.fixture
def peer_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield caplog


# --- the happy path ---------------------------------------------------------------------
def test_four_nodes_exchange_messages_in_order(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
) -> None:
    ports = dict(zip(NAMES, free_ports(4), strict=True))
    inboxes = {n: Inbox() for n in NAMES}
    nets = {n: network(pki, n, ports, inboxes[n]) for n in NAMES}

    async def scenario() -> None:
        async with running(*nets.values()):
            await eventually(lambda: all(nets[n].connected_peers() == set(NAMES) - {n}
                                         for n in NAMES))
            for i in range(20):
                for n in NAMES:
                    assert nets[n].broadcast(f"{n} says {i}".encode()) == set()
            await eventually(lambda: all(len(inboxes[n].messages) == 60 for n in NAMES))
            for n in NAMES:
                for sender in set(NAMES) - {n}:
                    expected = [f"{sender} says {i}".encode() for i in range(20)]
                    assert inboxes[n].from_peer(sender) == expected
            # Heartbeats keep idle connections up past the idle timeout.
            await asyncio.sleep(3 * FAST.idle_timeout_s)
            assert all(len(nets[n].connected_peers()) == 3 for n in NAMES)
            assert not logged(peer_log, "sent nothing")
            assert not [r for r in peer_log.records if r.levelno >= logging.WARNING]

    run(scenario)


def test_send_checks_its_arguments(pki: dict[str, TlsFiles]) -> None:
    net = network(pki, "node0", dict(zip(NAMES[:2], free_ports(2), strict=True)), Inbox())
    assert net.send("node7", b"x") is False  # not a peer (a validator without address)
    with pytest.raises(InvariantViolation):
        net.send("node1", b"x" * (64 * 1024 + 1))
    with pytest.raises(InvariantViolation):
        net.send("node1", b"")  # an empty frame is a heartbeat


# --- who may connect --------------------------------------------------------------------
@pytest.mark.parametrize("who", ["evil-node0", "no certificate"])
def test_a_peer_without_a_certificate_from_the_network_ca_is_refused(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture, who: str,
) -> None:
    ports = two_node_ports()
    node1 = network(pki, "node1", ports, Inbox())

    async def scenario() -> None:
        async with running(node1):
            ctx = raw_client_context(pki["node0"], pki.get(who))
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", ports["node1"], ssl=ctx, server_hostname="node1")
            local = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
            writer.write(FRAME_HEADER.pack(5) + b"hello")
            assert await refused(reader)
            await eventually(lambda: logged(peer_log, local, "TLS handshake refused"))
            assert node1.connected_peers() == set()
            writer.transport.abort()

    run(scenario)


@pytest.mark.parametrize(("listener", "client", "log_peer", "log_reason"), [
    # a valid certificate, but its name is not in the peer set
    ("node1", "intruder", "intruder@127.0.0.1:", "peer set"),
    # a peer that should be dialled may not dial
    ("node0", "node1", "node1@", "the smaller name dials"),
], ids=["unknown_name", "should_be_dialled"])
def test_a_certified_peer_the_listener_does_not_accept_is_refused(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
    listener: str, client: str, log_peer: str, log_reason: str,
) -> None:
    ports = two_node_ports()
    node = network(pki, listener, ports, Inbox())

    async def scenario() -> None:
        async with running(node):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", ports[listener], server_hostname=listener,
                ssl=raw_client_context(pki[listener], pki[client]))
            assert await refused(reader)
            await eventually(lambda: logged(peer_log, log_peer, log_reason))
            assert node.connected_peers() == set()
            writer.transport.abort()

    run(scenario)


def test_the_dialler_refuses_a_server_with_another_nodes_certificate(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
) -> None:
    ports = two_node_ports()
    node0 = network(pki, "node0", ports, Inbox())

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def scenario() -> None:
        # node2's certificate served at node1's address.
        server = await asyncio.start_server(impostor, "127.0.0.1", ports["node1"],
                                            ssl=server_context(pki["node2"]))
        async with running(node0):
            await eventually(lambda: logged(peer_log, "node1@127.0.0.1", "handshake failed"))
            assert node0.connected_peers() == set()
        server.close()

    run(scenario)


# --- bad frames -------------------------------------------------------------------------
@asynccontextmanager
async def fake_node0(pki: dict[str, TlsFiles], port: int) -> AsyncIterator[
        tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw TLS stream authenticated as node0, connected to node1."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, server_hostname="node1",
        ssl=raw_client_context(pki["node0"], pki["node0"]))
    try:
        yield reader, writer
    finally:
        writer.transport.abort()


BAD_FRAMES = {
    "oversized": (FRAME_HEADER.pack(64 * 1024 + 1) + b"x" * 100, "exceeds the bound"),
    "garbage": (b"this is not a frame, it is text\r\n", "exceeds the bound"),
    "truncated payload": (FRAME_HEADER.pack(100) + b"only ten b", "closed inside a frame"),
    "truncated header": (b"\x00\x00", "closed inside a frame"),
    "invalid message": (FRAME_HEADER.pack(9) + b"reject me", "invalid message"),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_a_bad_frame_disconnects_the_sender_and_names_it(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture, case: str,
) -> None:
    data, reason = BAD_FRAMES[case]
    ports = two_node_ports()
    inbox = Inbox()
    node1 = network(pki, "node1", ports, inbox)

    async def scenario() -> None:
        async with running(node1), fake_node0(pki, ports["node1"]) as (_, writer):
            writer.write(FRAME_HEADER.pack(4) + b"good")
            await eventually(lambda: inbox.messages == [("node0", b"good")])
            assert node1.connected_peers() == {"node0"}
            writer.write(data)
            if case.startswith("truncated"):
                writer.write_eof() if writer.can_write_eof() else writer.close()
            await eventually(lambda: logged(peer_log, "peer node0:", reason))
            await eventually(lambda: node1.connected_peers() == set())
            assert inbox.messages == [("node0", b"good")]

    run(scenario)


def test_garbage_before_the_handshake_is_logged_with_the_address(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
) -> None:
    ports = two_node_ports()
    node1 = network(pki, "node1", ports, Inbox())

    async def scenario() -> None:
        async with running(node1):
            reader, writer = await asyncio.open_connection("127.0.0.1", ports["node1"])
            local = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
            writer.write(b"GET / HTTP/1.1\r\nHost: node1\r\n\r\n")
            assert await refused(reader)
            await eventually(lambda: logged(peer_log, local, "TLS handshake refused"))
            writer.transport.abort()

    run(scenario)


def test_a_silent_peer_is_disconnected(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
) -> None:
    ports = two_node_ports()
    node1 = network(pki, "node1", ports, Inbox())

    async def scenario() -> None:
        async with running(node1), fake_node0(pki, ports["node1"]) as (_, writer):
            writer.write(FRAME_HEADER.pack(0))  # one heartbeat, then nothing
            await eventually(lambda: node1.connected_peers() == {"node0"})
            await eventually(lambda: logged(peer_log, "peer node0:", "sent nothing"))
            assert node1.connected_peers() == set()

    run(scenario)


# --- restarts ---------------------------------------------------------------------------
@pytest.mark.parametrize("victim", ["node0", "node1"])  # the dialler, then a dialled node
def test_a_killed_peer_is_reconnected_when_it_comes_back(
    pki: dict[str, TlsFiles], victim: str,
) -> None:
    names = NAMES[:3]
    ports = dict(zip(names, free_ports(3), strict=True))
    inboxes = {n: Inbox() for n in names}
    nets = {n: network(pki, n, ports, inboxes[n]) for n in names}
    others = [n for n in names if n != victim]

    def everyone_connected() -> bool:
        return all(nets[n].connected_peers() == set(names) - {n} for n in names)

    async def scenario() -> None:
        async with running(*(nets[n] for n in others)):
            await nets[victim].start()
            await eventually(everyone_connected)
            await nets[victim].stop()
            await eventually(lambda: all(victim not in nets[n].connected_peers()
                                         for n in others))
            nets[victim] = network(pki, victim, ports, inboxes[victim])
            await nets[victim].start()
            try:
                await eventually(everyone_connected)
                for n in others:
                    nets[n].send(victim, b"welcome back from " + n.encode())
                await eventually(lambda: len(inboxes[victim].messages) == 2)
            finally:
                await nets[victim].stop()

    run(scenario)


# --- back-pressure ----------------------------------------------------------------------
def test_a_slow_consumer_cannot_grow_the_senders_memory(pki: dict[str, TlsFiles]) -> None:
    """node1 is a TLS server that never reads. node0 sends 48 MiB to it; its backlog and
    its heap stay within the outbox bound plus the transport's buffers."""
    ports = two_node_ports()
    frame_bytes, queue_frames = 64 * 1024, 16
    patient = PeerTiming(heartbeat_interval_s=0.5, idle_timeout_s=60, send_timeout_s=60,
                         close_timeout_s=0.3)
    node0 = network(pki, "node0", ports, Inbox(), timing=patient, max_frame_bytes=frame_bytes,
                    queue_limit=queue_frames, queue_max_bytes=queue_frames * frame_bytes)
    stalled: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)
        await asyncio.sleep(60)

    async def scenario() -> None:
        server = await asyncio.start_server(never_read, "127.0.0.1", ports["node1"],
                                            ssl=server_context(pki["node1"]))
        async with running(node0):
            await eventually(lambda: bool(stalled))
            tracemalloc.start()
            try:
                accepted, peak_backlog = 0, 0
                for i in range(768):
                    accepted += node0.send("node1", bytes([i % 256]) * frame_bytes)
                    peak_backlog = max(peak_backlog, node0.backlog_bytes("node1"))
                    if i % 16 == 0:
                        await asyncio.sleep(0.001)
                _, peak_heap = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            bound = queue_frames * frame_bytes + 4 * 1024 * 1024  # outbox + socket buffers
            assert peak_backlog <= bound, peak_backlog
            assert peak_heap <= bound + 2 * 1024 * 1024, peak_heap
            assert accepted < 768 // 2
            assert node0.dropped_frames("node1") >= 768 - queue_frames - accepted
        for w in stalled:
            w.transport.abort()
        server.close()

    run(scenario)


def test_a_bug_in_the_message_handler_is_reported_and_raised_by_stop(
    pki: dict[str, TlsFiles], peer_log: pytest.LogCaptureFixture,
) -> None:
    """Not a peer's fault (no Rejected): the node is told, to stop, and stop() raises it."""
    ports = two_node_ports()

    def buggy(peer: str, payload: bytes) -> None:
        raise RuntimeError("a broken invariant")

    node0, node1 = network(pki, "node0", ports, Inbox()), network(pki, "node1", ports, buggy)
    reported: list[BaseException] = []
    node1.on_failure = reported.append

    async def scenario() -> None:
        async with running(node0):
            await node1.start()
            await eventually(lambda: node0.connected_peers() == {"node1"})
            node0.broadcast(b"hello")
            await eventually(lambda: bool(reported))
            with pytest.raises(RuntimeError, match="a broken invariant"):
                await node1.stop()
        assert [str(e) for e in reported] == ["a broken invariant"]

    run(scenario)


def test_only_a_broken_invariant_on_the_peer_path_stops_the_node() -> None:
    """A decoder bug (IndexError on hostile bytes, say) must not let a peer stop every
    honest node: it ends one connection; a broken invariant of the node's own stops it."""
    from tidechain.core.errors import InvariantViolation
    from tidechain.node.serve import _stop_on_broken_invariant

    class Runtime:
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    runtime = Runtime()
    _stop_on_broken_invariant(runtime, IndexError("hostile bytes"))  # type: ignore[arg-type]
    assert runtime.stopped == 0
    _stop_on_broken_invariant(runtime, InvariantViolation("head not stored"))  # type: ignore[arg-type]
    assert runtime.stopped == 1
