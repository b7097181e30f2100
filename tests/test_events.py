"""`GET /v1/events` on real nodes (docs/operations.md): one event per committed block,
in order; resumed with Last-Event-ID or `?from=` with nothing missed or repeated; a
bound on open streams (503 with Retry-After); `Client.events()` resuming by itself
across a node restart; `tide events --follow`; and a node with streams open exiting
promptly on SIGTERM.

Blocks are committed by depositing through the SDK (one waited submission, one block
on a single validator at rest).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import RunningNode, running_node
from tidechain.client import Client, deposit_tx
from tidechain.client.files import client_signer
from tidechain.core.crypto import SigningKey, sha256

READ_TIMEOUT_S = 30.0
"""The longest a test waits for one event or line: a failure, never a measure."""
EXIT_TIMEOUT_S = 20.0
"""SIGTERM to exit with streams open (it took about two minutes before streams were
ended on stop)."""
EVENT_FIELDS = {"height", "hash", "time_ms", "tx_count", "log_size", "log_root", "proposer"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("events"), "events-net") as running:
        yield running


@pytest.fixture(scope="module")
def sdk(node: RunningNode) -> Iterator[Client]:
    with Client(node.url, trust=node.trust_text, key=client_signer(node.net).key) as client:
        yield client


def commit(sdk: Client, key: SigningKey) -> int:
    """Deposit a fresh digest, waiting for its commit; its block's height."""
    nonce = os.urandom(16)
    tx = deposit_tx(key, sdk.chain_id(), sha256(nonce), {"test": "events"},
                    now_ms=int(time.time() * 1000), nonce=nonce)
    answer = sdk.submit(tx)
    assert answer["status"] == "committed", answer
    return int(answer["height"])


class Stream:
    """One raw event stream, read line by line."""

    def __init__(self, url: str, *, last_id: int | None = None,
                 params: dict[str, str] | None = None) -> None:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(
                httpx.Client(timeout=httpx.Timeout(10, read=READ_TIMEOUT_S)))
            headers = {} if last_id is None else {"Last-Event-ID": str(last_id)}
            self.response = stack.enter_context(
                client.stream("GET", f"{url}/v1/events", headers=headers, params=params))
            assert self.response.status_code == 200, self.response.read()
            assert self.response.headers["content-type"].startswith("text/event-stream")
            self._lines = self.response.iter_lines()
            assert next(self._lines).startswith("retry: ")  # the stream has started
            assert next(self._lines) == ""
            self._stack = stack.pop_all()  # open until `close`

    def next_line(self) -> str:
        return next(self._lines)

    def next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                continue  # keepalive
            if not line:
                assert fields["event"] == "commit"
                data: dict[str, Any] = json.loads(fields["data"])
                assert set(data) == EVENT_FIELDS
                assert int(fields["id"]) == data["height"]
                return data
            name, _, value = line.partition(": ")
            fields[name] = value
        raise EOFError("the stream ended")

    def heights(self, count: int) -> list[int]:
        return [self.next_event()["height"] for _ in range(count)]

    def ended(self) -> bool:
        """Whether the server ends the stream (EOF or a dropped connection) before any
        further event."""
        try:
            self.next_event()
        except (EOFError, httpx.RemoteProtocolError, httpx.ReadError):
            return True
        return False

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def stream(url: str, **options: Any) -> Iterator[Stream]:
    opened = Stream(url, **options)
    try:
        yield opened
    finally:
        opened.close()


def test_each_commit_is_one_event_in_order(node: RunningNode, sdk: Client) -> None:
    key = client_signer(node.net).key
    with stream(node.url) as events:
        committed = [commit(sdk, key) for _ in range(3)]
        received = [events.next_event() for _ in range(3)]
    assert [e["height"] for e in received] == committed
    assert committed == list(range(committed[0], committed[0] + 3))
    status = sdk.status()
    last = received[-1]
    assert last["height"] == status["height"]
    assert (last["hash"], last["log_size"], last["log_root"]) == (
        status["block_hash"], status["log_size"], status["log_root"])
    assert last["tx_count"] == 1 and last["proposer"] == "events-net/node0"


def test_a_dropped_stream_resumes_with_last_event_id(node: RunningNode, sdk: Client) -> None:
    key = client_signer(node.net).key
    with stream(node.url) as first:
        before = [commit(sdk, key) for _ in range(2)]
        assert first.heights(2) == before
    missed = [commit(sdk, key) for _ in range(3)]  # while no stream is open
    with stream(node.url, last_id=before[-1]) as resumed:
        assert resumed.heights(3) == missed  # from the store, in order
        live = commit(sdk, key)
        assert resumed.heights(1) == [live]
    seen = before + missed + [live]
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # no gap, no duplicate
    assert seen[-1] == sdk.status()["height"]


def test_from_replays_the_chain_and_last_event_id_wins(node: RunningNode, sdk: Client) -> None:
    key = client_signer(node.net).key
    commit(sdk, key)
    head = int(sdk.status()["height"])
    with stream(node.url, params={"from": "1"}) as replay:
        assert replay.heights(head) == list(range(1, head + 1))
    # An EventSource resuming sends Last-Event-ID beside the `from` of its URL.
    with stream(node.url, params={"from": "1"}, last_id=head - 1) as resumed:
        assert resumed.heights(1) == [head]
        assert commit(sdk, key) == head + 1
        assert resumed.heights(1) == [head + 1]


def test_a_quiet_stream_gets_keepalives(node: RunningNode) -> None:
    """Nothing commits here for KEEPALIVE_S (15 s): the stream says it is alive."""
    with stream(node.url) as quiet:
        assert quiet.next_line() == ": keepalive"  # within READ_TIMEOUT_S, or a ReadTimeout
        assert quiet.next_line() == ""


@pytest.mark.parametrize(("params", "headers"), [
    ({"from": "x"}, {}), ({"from": "-1"}, {}), ({"from": "1e3"}, {}),
    ({"from": "99999999999999999999"}, {}), ({"since": "1"}, {}),
    ({}, {"Last-Event-ID": "abc"}),
])
def test_bad_starting_points_are_400(node: RunningNode, params: dict[str, str],
                                     headers: dict[str, str]) -> None:
    answer = httpx.get(f"{node.url}/v1/events", params=params, headers=headers, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "malformed"


def test_streams_beyond_the_bound_are_503_with_retry_after(tmp_path: Path) -> None:
    with running_node(tmp_path, "bound-net", "events_max_subscribers = 2\n") as bounded:
        with stream(bounded.url), stream(bounded.url):
            refused = httpx.get(f"{bounded.url}/v1/events", timeout=10)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "busy"
            assert int(refused.headers["Retry-After"]) > 0
        # Both closed: their slots come back within a second or so.
        deadline = time.monotonic() + READ_TIMEOUT_S
        while True:
            with contextlib.suppress(AssertionError), stream(bounded.url):
                break
            assert time.monotonic() < deadline, "the slots of closed streams never came back"
            time.sleep(0.2)


def test_the_sdk_follows_and_stops_at_the_head(node: RunningNode, sdk: Client) -> None:
    key = client_signer(node.net).key
    # Three blocks of its own: it must not rely on the file's earlier tests having
    # committed some (under `--dist load` a worker may run it first).
    head = [commit(sdk, key) for _ in range(3)][-1]
    assert head >= 3 and [e["height"] for e in sdk.events(follow=False)] == [head]
    assert [e["height"] for e in sdk.events(from_height=head - 2, follow=False)] == [
        head - 2, head - 1, head]
    assert list(sdk.events(from_height=head + 1, follow=False)) == []


def tide_events(*args: str) -> list[str]:
    """`python -m tidechain events ...`, or the same through `cli.main` with the events
    verb added where the entry point does not list it yet."""
    from tidechain.cli import events
    from tidechain.cli.main import AREAS

    if events.register in AREAS:
        return [sys.executable, "-m", "tidechain", "events", *args]
    code = ("import sys; from tidechain.cli import events; from tidechain.cli.main import "
            "main; sys.exit(main(sys.argv[1:], extra=(events.register,)))")
    return [sys.executable, "-c", code, "events", *args]


def test_tide_events_prints_a_line_per_commit(node: RunningNode, sdk: Client) -> None:
    key = client_signer(node.net).key
    head = commit(sdk, key)
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    once = subprocess.run(tide_events("--net", str(node.net), "--node", node.url),
                          capture_output=True, text=True, timeout=60, env=env)
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith(f"height {head}  ") and once.stdout.count("\n") == 1
    follower = subprocess.Popen(
        tide_events("--net", str(node.net), "--node", node.url, "--follow", "--json",
                    "--from", str(head + 1)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout],
                              daemon=True)
    reader.start()
    try:
        # No need to wait for it to connect: it starts at --from, wherever the head is.
        committed = [commit(sdk, key) for _ in range(2)]
        printed = [json.loads(lines.get(timeout=READ_TIMEOUT_S)) for _ in committed]
        assert [event["height"] for event in printed] == committed
        assert set(printed[0]) == EVENT_FIELDS
    finally:
        follower.terminate()
        follower.wait(timeout=EXIT_TIMEOUT_S)


def test_sigterm_ends_open_streams_and_the_sdk_resumes_after_restart(tmp_path: Path) -> None:
    with running_node(tmp_path, "stop-net") as node:
        key = client_signer(node.net).key
        with Client(node.url, trust=node.trust_text, key=key) as sdk:
            first = commit(sdk, key)
            received: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

            def follow() -> None:
                with Client(node.url) as reader:  # anonymous, as an EventSource is
                    try:
                        for event in reader.events(from_height=first):
                            received.put(event)
                    except BaseException as exc:  # handed to the test
                        received.put(exc)

            threading.Thread(target=follow, daemon=True).start()
            assert _next(received)["height"] == first
            streams = [Stream(node.url) for _ in range(3)]
            try:
                started = time.monotonic()
                node.process.terminate()  # SIGTERM
                assert node.process.wait(timeout=EXIT_TIMEOUT_S) == 0
                stopped_in = time.monotonic() - started
                assert all(s.ended() for s in streams)
            finally:
                for s in streams:
                    s.close()
            log = node.log()
            assert "ending 4 event stream(s)" in log, log
            assert "stopped cleanly" in log, log
            # The same node again, on the same port: the SDK's iterator resumes by itself.
            restarted = subprocess.Popen(
                [sys.executable, "-m", "tidechain", "node", "start", str(node.net / "node0")],
                stdout=(tmp_path / "restarted.log").open("wb"), stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
            try:
                _wait_ready(node.url, restarted)
                later = [commit(sdk, key) for _ in range(2)]
                assert [_next(received)["height"] for _ in later] == later
                assert later[0] == first + 1  # nothing missed, nothing repeated
            finally:
                restarted.terminate()
                assert restarted.wait(timeout=EXIT_TIMEOUT_S) == 0
    assert stopped_in < EXIT_TIMEOUT_S
    assert "Traceback" not in (tmp_path / "restarted.log").read_text()


def _next(received: queue.Queue[dict[str, Any] | BaseException]) -> dict[str, Any]:
    item = received.get(timeout=READ_TIMEOUT_S)
    if isinstance(item, BaseException):
        raise item
    return item


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the restarted node exited"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail("the restarted node did not become ready")
