"""Issue 4, acceptance 1 and 4, with real processes: a network of three organisations
(three validators) adds a fourth organisation by proposal and vote, then that
organisation's node as a validator. The node is made by `tide node join` from the
public genesis and network CA certificate, its TLS certificate issued by its own
organisation's CA, with one bootstrap peer: no file is edited by hand, the network CA
is not involved and no node restarted. Later an organisation leaves and its validator is
removed: its node stops counting toward quorum. Deposits commit throughout, and
receipts from before a key rotation verify with `tide trust export`'s file."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.nodes import free_port_block, tide
from tests.test_cluster import status_of, wait_for
from tests.test_governance import uscc
from tidechain.client import Client, deposit_tx
from tidechain.client.files import OrgDir, client_signer, init_org, issue_member, read_key
from tidechain.client.txbuilder import call_tx, propose_args, vote_args
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import ProofError
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.identity import Role
from tidechain.ops.network import init_network

pytestmark = pytest.mark.slow

NODES = 4  # node0..2 validators from the genesis, node3 joins (delta's node)
COMMIT_TIMEOUT_S = 60.0


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.net = root / "net"
        self.port = free_port_block(NODES)
        init_network(self.net, "vs", validators=3, base_port=self.port)
        self.joined = root / "delta-net" / "node3"  # the joining organisation's files
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.nonce = iter(range(10**9))
        self.admins: dict[str, SigningKey] = {"acme": read_key(self.net / "admin.key").key}
        self.depositor = client_signer(self.net).key
        # Reads are members-only (ADR 0015): the depositor reads its deposits' receipts
        # (and, as any member, blocks); acme's admin reads the governance records.
        self.clients = [Client(self.url(i), key=self.depositor) for i in range(NODES)]
        self.admin_clients = [Client(self.url(i), key=self.admins["acme"])
                              for i in range(NODES)]

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port + i}"

    def node_dir(self, i: int) -> Path:
        return self.joined if i == 3 else self.net / f"node{i}"

    def start(self, i: int) -> None:
        node_dir = self.node_dir(i)
        log = (node_dir / "node.log").open("ab")
        self.processes[i] = subprocess.Popen(
            [sys.executable, "-m", "tidechain", "node", "start", str(node_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def wait_ready(self, i: int) -> None:
        wait_for(lambda: status_of(self.port + i) is not None, 30, f"node{i} to answer")

    def stop(self, i: int) -> None:
        process = self.processes.pop(i)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)

    def status(self, i: int) -> dict[str, Any]:
        status = status_of(self.port + i)
        assert status is not None, f"node{i} does not answer"
        return status

    def log_text(self, i: int) -> str:
        path = self.node_dir(i) / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- transactions ------------------------------------------------------------------
    def _nonce(self) -> bytes:
        return next(self.nonce).to_bytes(16, "big")

    def deposit(self, via: int = 0) -> dict[str, Any]:
        client = self.clients[via]
        digest = sha256(b"valset doc %d" % next(self.nonce))
        tx = deposit_tx(self.depositor, client.chain_id(), digest, {}, now_ms=_now_ms(),
                        nonce=self._nonce())
        committed = client.submit(tx, wait=True, timeout_ms=int(COMMIT_TIMEOUT_S * 1000))
        return committed

    def decide(self, action: str, args: dict[str, Any], voters: list[str], via: int = 0
               ) -> dict[str, Any]:
        """Propose (first voter's admin) and vote with each of `voters`; then wait for
        the decision to apply (the next block applies it: a deposit makes one)."""
        client = self.clients[via]
        proposed = client.submit(call_tx(
            self.admins[voters[0]], client.chain_id(), "gov", "propose",
            propose_args(action, args), now_ms=_now_ms(),
            nonce=self._nonce()), wait=True)  # raises ContractError if refused
        proposal = proposed["log_index"]
        for org in voters:
            client.submit(call_tx(self.admins[org], client.chain_id(), "gov", "vote",
                                  vote_args(proposal, True), now_ms=_now_ms(),
                                  nonce=self._nonce()), wait=True)
        self.deposit(via)
        record = self.admin_clients[via].gov_get(proposal)
        assert record["status"] == "applied", record
        return record

    def new_org(self, org: str) -> OrgDir:
        """An organisation's CA and its first admin (a new key), as `tide org init` and
        `tide org issue` make them."""
        now = _now_ms()
        ca = init_org(self.root / "orgs" / org, org, f"{org.title()} Co., Ltd.", uscc(org), now)
        admin = SigningKey(os.urandom(32))
        self.admins[org] = admin
        (ca.directory / "admin.der").write_bytes(
            issue_member(ca, f"{org} admin", admin.public_key, (Role.ADMIN,), now))
        return ca


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def running_network(root: Path) -> Iterator[Network]:
    network = Network(root)
    try:
        for i in range(3):
            network.start(i)
        for i in range(3):
            network.wait_ready(i)
        yield network
    finally:
        for i in list(network.processes):
            network.stop(i)
        for client in [*network.clients, *network.admin_clients]:
            client.close()
    bad = [i for i in range(NODES) if "Traceback" in network.log_text(i)]
    assert not bad, "\n".join(f"node{i}:\n{network.log_text(i)[-5000:]}" for i in bad)


def validators_of(network: Network, i: int) -> list[str]:
    return list(network.status(i)["validators"])


def signers_of_checkpoint(network: Network, via: int, height: int) -> set[str]:
    note = network.clients[via].block(height)["checkpoint"]
    return {line.split(" ")[1].split("+")[0] for line in note.splitlines()
            if line.startswith("\u2014 ")}


@pytest.mark.timeout(400)
def test_an_org_and_its_validator_join_and_another_leaves_while_deposits_commit(
        tmp_path: Path) -> None:
    with running_network(tmp_path) as network:
        first = network.deposit()

        # Three organisations: acme (the genesis one) adds beta and gamma, then the three
        # add delta, whose node (node3) then becomes a validator.
        for org, voters in (("beta", ["acme"]), ("gamma", ["acme", "beta"]),
                            ("delta", ["acme", "beta", "gamma"])):
            ca = network.new_org(org)
            network.decide("add_org", {"ca": ca.cert(), "members": [
                (ca.directory / "admin.der").read_bytes()]}, voters)

        # delta makes its node from the public genesis and network CA certificate, with
        # a TLS certificate from its own CA and node0 as its only bootstrap peer.
        made = tide("node", "join", str(network.joined), "--genesis",
                    str(network.net / "genesis.cbor"), "--network-ca",
                    str(network.net / "ca.pem"), "--org-dir", str(tmp_path / "orgs" / "delta"),
                    "--name", "node3", "--bootstrap", f"node0@127.0.0.1:{network.port + 100}",
                    "--api-port", str(network.port + 3), "--peer-port",
                    str(network.port + 103), "--json")
        assert made.returncode == 0, made.stderr
        joining = json.loads(made.stdout)
        assert not (network.joined / "tls" / "ca.key").exists()
        assert "[[peers]]" in (network.joined / "node.toml").read_text()
        network.start(3)
        network.wait_ready(3)
        assert validators_of(network, 3) == ["vs/node0", "vs/node1", "vs/node2"]

        # The line `tide node join` printed, run as a dry run by an admin.
        propose = shlex.split(joining["propose"])
        assert propose[:3] == ["tide", "gov", "propose"]
        dry = tide(*propose[1:], "--dry-run", "--json", "--net", str(network.net),
                   "--node", network.url(0))
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["quorum"]["quorum"] == 3
        node3_key = bytes.fromhex(joining["key"])
        assert node3_key == read_key(network.joined / "validator.key").key.public_key
        record = network.decide("add_validator", {
            "name": "vs/node3", "key": node3_key, "org": "delta",
            "address": joining["address"], "tls": bytes.fromhex(joining["tls_fingerprint"])},
            ["acme", "beta", "gamma"])
        joined = record["effect"]["from_height"]
        # node0 dials node3 at its address on chain; node3 syncs and learns the set.
        wait_for(lambda: network.status(3)["height"] >= first["height"], 60,
                 "node3 to sync from its bootstrap peer")
        wait_for(lambda: all(validators_of(network, i)[-1:] == ["vs/node3"]
                             for i in range(NODES)), 60, "every node to see node3 join")
        assert network.status(3)["quorum"] == 3

        # node3 counts: with node2 stopped, node0, node1 and node3 make the quorum.
        network.stop(2)
        after_join = network.deposit(via=1)
        assert after_join["height"] >= joined
        assert "vs/node3" in signers_of_checkpoint(network, 1, after_join["height"])
        network.start(2)
        network.wait_ready(2)

        # The trust file before any removal or rotation, and a receipt under it.
        export = tide("trust", "export", "--net", str(network.net), "--node", network.url(0),
                      "--json")
        assert export.returncode == 0, export.stderr
        before = parse_trust(json.loads(export.stdout)["trust"])
        receipt_before = network.clients[0].receipt(after_join["log_index"])
        assert verify_receipt(receipt_before, before).index == after_join["log_index"]

        # node2's key is rotated (acceptance 4): its operator makes a key, the orgs
        # approve, and node2 restarts with it; the other three commit meanwhile.
        new_key_file = tmp_path / "node2-new.key"
        made = tide("node", "keygen", str(new_key_file), "--name", "vs/node2", "--json")
        assert made.returncode == 0, made.stderr
        new_key = bytes.fromhex(json.loads(made.stdout)["key"])
        network.decide("replace_validator_key", {"validator": "vs/node2", "key": new_key},
                       ["acme", "beta", "gamma"])
        network.stop(2)
        os.replace(new_key_file, network.net / "node2" / "validator.key")
        network.start(2)
        network.wait_ready(2)
        rotated = network.deposit(via=3)
        wait_for(lambda: network.status(2)["height"] >= rotated["height"], 60,
                 "node2 to catch up with its new key")

        # beta leaves; node1 (its node) is removed and stops counting: stopped, the
        # network still commits with node0, node2 and node3 (quorum 3 of 3).
        network.decide("remove_org", {"org": "beta"}, ["acme", "gamma", "delta"])
        network.decide("remove_validator", {"validator": "vs/node1"},
                       ["acme", "gamma", "delta"])
        wait_for(lambda: "vs/node1" not in validators_of(network, 0), 30, "node1 removed")
        network.stop(1)
        wait_for(lambda: network.status(2)["height"] >= network.status(0)["height"], 60,
                 "node2 to catch up")
        after_removal = network.deposit(via=0)  # needs node2, signing with its new key
        assert signers_of_checkpoint(network, 0, after_removal["height"]) == {
            "vs/node0", "vs/node2", "vs/node3"}

        # Receipts made before still verify with the file exported now.
        export = tide("trust", "export", "--net", str(network.net), "--node", network.url(0),
                      "--json")
        assert export.returncode == 0, export.stderr
        now = parse_trust(json.loads(export.stdout)["trust"])
        assert json.loads(export.stdout)["source"] == "chain"
        assert verify_receipt(receipt_before, now).index == after_join["log_index"]
        latest = network.clients[0].receipt(after_removal["log_index"])
        assert verify_receipt(latest, now).index == after_removal["log_index"]
        assert "sizes=" in json.loads(export.stdout)["trust"]  # node2's two keys, node1's end
        with pytest.raises(ProofError):  # the file from before knows neither change
            verify_receipt(latest, before)
        heads = {(network.status(i)["log_size"], network.status(i)["log_root"])
                 for i in (0, 2, 3)}
        assert len(heads) == 1, heads
