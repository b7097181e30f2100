"""An organisation rolls its CA while four validators (real processes, `tide cluster
up`) keep committing a stream of deposits.

Through the real CLI: `tide org init` makes acme's new CA, `tide org add-ca` registers
it, `tide member enrol --org-dir NEW` re-enrols the admin and the client key (renewal)
and enrols a new depositor under it, `tide org remove-ca` retires the old CA. Then the
renewed client key and the new depositor commit deposits, a member holding only an
old-CA certificate is refused with 403 `forbidden`, the stream never paused for more
than a few seconds, and all four nodes end with the same log root.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import tide
from tests.test_cluster import VALIDATORS, ClusterNet, running_cluster, wait_for
from tidechain.client import Client, deposit_tx
from tidechain.client.files import DEFAULT_LEGAL_NAME, DEFAULT_ORG, DEFAULT_USCC, read_key
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Rejected

pytestmark = pytest.mark.slow

MAX_COMMIT_GAP_S = 5.0
"""The longest the stream may go without a committed deposit: a rotation needs no
pause, and a block takes well under a second on loopback."""


@dataclass
class DepositStream:
    """A thread depositing one document at a time, signed by `key`, to the nodes in
    turn; it records when each deposit committed, and any failure."""

    cluster: ClusterNet
    key: SigningKey
    commits: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, log index)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        clients = [Client(self.cluster.url(i)) for i in range(VALIDATORS)]
        try:
            chain_id = clients[0].chain_id()
            n = 0
            while not self.stop.is_set():
                n += 1
                tx = deposit_tx(self.key, chain_id, hashlib.sha256(b"stream %d" % n).digest(),
                                {"n": str(n)}, now_ms=int(time.time() * 1000),
                                nonce=n.to_bytes(16, "big"))
                try:
                    done = clients[n % VALIDATORS].submit(tx, wait=True, timeout_ms=10_000)
                except Rejected as exc:  # recorded: the test fails on any
                    self.errors.append(f"deposit {n}: {exc!r}")
                    continue
                self.commits.append((time.monotonic(), int(done["log_index"])))
        finally:
            for client in clients:
                client.close()

    def largest_gap_s(self, started: float) -> float:
        times = [started] + [t for t, _ in self.commits]
        return max(b - a for a, b in itertools.pairwise(times))


def cli(*args: str | Path) -> dict[str, Any]:
    """Run `tide ... --json`; fail with its stderr if it did not exit 0."""
    done = tide(*(str(a) for a in args), "--json", timeout_s=60)
    assert done.returncode == 0, f"tide {' '.join(map(str, args))}: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def submit_raw(url: str, key: SigningKey, chain_id: bytes, label: bytes) -> httpx.Response:
    tx = deposit_tx(key, chain_id, hashlib.sha256(label).digest(), {},
                    now_ms=int(time.time() * 1000), nonce=hashlib.sha256(label).digest()[:16])
    return httpx.post(f"{url}/v1/tx?wait=true", content=tx.encoded,
                      headers={"content-type": "application/cbor"}, timeout=30)


@pytest.mark.timeout(120)
def test_a_ca_rotation_under_load_keeps_the_network_committing(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        net = cluster.net
        old_ca_dir, new_ca_dir = net / "orgs" / DEFAULT_ORG, tmp_path / "acme-ca-2"
        # A member enrolled under the old CA only: it must stop counting with that CA.
        cli("member", "enrol", "--net", net, "--role", "depositor", "--name", "Old Olga",
            "--new-key", tmp_path / "old.key")

        stream = DepositStream(cluster, read_key(net / "client.key").key)
        worker = threading.Thread(target=stream.run, name="deposit-stream")
        started = time.monotonic()
        worker.start()
        try:
            wait_for(lambda: len(stream.commits) >= 3 or bool(stream.errors), 30,
                     "the stream to commit")
            new_ca = cli("org", "init", new_ca_dir, "--org", DEFAULT_ORG,
                         "--legal-name", DEFAULT_LEGAL_NAME, "--uscc", DEFAULT_USCC)
            cli("org", "add-ca", new_ca_dir, "--net", net)
            # The admin first: the chain never lets it remove the CA of its own certificate.
            cli("member", "enrol", "--net", net, "--org-dir", new_ca_dir, "--role", "admin",
                "--name", "admin", "--key", net / "admin.key")
            renewed = cli("member", "enrol", "--net", net, "--org-dir", new_ca_dir,
                          "--role", "depositor", "--name", "client", "--key",
                          net / "client.key")
            newcomer = cli("member", "enrol", "--net", net, "--org-dir", new_ca_dir,
                           "--role", "depositor", "--name", "New Nina", "--new-key",
                           tmp_path / "new.key")
            assert renewed["ca"] == newcomer["ca"] == new_ca["fingerprint"]
            removed = cli("org", "remove-ca", "--net", net, "--dir", old_ca_dir)
            wait_for(lambda: any(i > removed["log_index"] for _, i in stream.commits)
                     or bool(stream.errors), 30, "the renewed client key to commit")
        finally:
            stream.stop.set()
            worker.join(timeout=30)
        ended = time.monotonic()

        assert not stream.errors, stream.errors
        gaps = stream.largest_gap_s(started)
        assert gaps < MAX_COMMIT_GAP_S, f"no deposit committed for {gaps:.1f} s"
        assert ended - stream.commits[-1][0] < MAX_COMMIT_GAP_S

        chain_id = Client(cluster.url(0)).chain_id()
        fresh = submit_raw(cluster.url(1), read_key(tmp_path / "new.key").key, chain_id,
                           b"the new depositor's document")
        assert fresh.status_code == 200 and fresh.json()["status"] == "committed", fresh.text
        refused = submit_raw(cluster.url(2), read_key(tmp_path / "old.key").key, chain_id,
                             b"an old-CA member's document")
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "forbidden"
        assert "no longer has" in refused.json()["reason"]

        listed = cli("member", "list", "--net", net)
        assert listed["cas"] == [new_ca["fingerprint"]]
        status = {m["name"]: m["status"] for m in listed["members"]}
        assert status == {"Old Olga": "ca_removed", "admin": "active", "client": "active",
                          "New Nina": "active"}

        head = cluster.heads(range(1)).pop()
        wait_for(lambda: cluster.heads() == {head}, 30, "all four nodes to agree")
