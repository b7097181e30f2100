"""`runtime.ChainPeers`: the transport follows the chain's validators and organisation
CAs as the head moves (ADR 0005 as amended, ADR 0011). Chain state is a dict of the
`members` records here and the transport a recorder; the real thing, over processes,
is tests/test_valset_change.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tidechain.client.files import init_org
from tidechain.contracts import members
from tidechain.core import cbor
from tidechain.core.crypto import sha256
from tidechain.identity import from_pem
from tidechain.ledger import validators as vset
from tidechain.ledger.runtime import namespaced
from tidechain.node.runtime import ChainPeers
from tidechain.node.tls import (
    certificate_fingerprint,
    issue_node_certificate,
    make_network_ca,
)

KEYS = [bytes([i]) * 32 for i in range(1, 6)]


@dataclass
class FakeNetwork:
    configured_peers: dict[str, tuple[str, int] | None]
    admit: Any = None
    network_cas: list[bytes] = field(default_factory=list)
    peer_sets: list[dict[str, tuple[str, int] | None]] = field(default_factory=list)
    anchors: list[list[bytes]] = field(default_factory=list)

    def set_peers(self, peers: dict[str, tuple[str, int] | None]) -> None:
        self.peer_sets.append(dict(peers))

    def add_trust_anchors(self, ca_ders: list[bytes]) -> None:
        self.anchors.append(list(ca_ders))


class FakeNode:
    """What ChainPeers reads of a Node: its genesis name, signer, head and state."""

    def __init__(self) -> None:
        self.genesis = SimpleNamespace(name="vs")
        self.signer = SimpleNamespace(name="vs/node0")
        self.chain = SimpleNamespace(head_hash=b"\x00" * 32, state={})

    def move_head(self, orgs: dict[str, bytes], records: list[vset.ValidatorRecord]) -> None:
        state: dict[bytes, bytes] = {
            namespaced(members.NAME, members.ORGS_KEY): cbor.encode(list(orgs)),
            namespaced(members.NAME, vset.SET_KEY): vset.encode_set(records)}
        for org_id, ca in orgs.items():
            state[namespaced(members.NAME, members.org_key(org_id))] = cbor.encode(
                {"id": org_id, "legal_name": org_id, "uscc": "", "cas": [ca]})
        head = sha256(b"".join(k + v for k, v in sorted(state.items())))
        self.chain = SimpleNamespace(head_hash=head, state=_State(state))

    def chain_peers(self) -> dict[str, tuple[str, int]]:
        out = {}
        for record in vset.decode_set(self.chain.state.get(
                namespaced(members.NAME, vset.SET_KEY))):
            host, _, port = record.address.rpartition(":")
            if record.name != self.signer.name and host:
                out[record.name.removeprefix("vs/")] = (host, int(port))
        return out


class _State:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self._data = data

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root: Path = tmp_path_factory.mktemp("chain-peers")
    now = int(time.time() * 1000)
    network_ca = make_network_ca("vs", now)
    out: dict[str, bytes] = {}
    for org_id in ("acme", "delta"):
        org = init_org(root / org_id, org_id, f"{org_id} Co., Ltd.", "91350100M000100Y43", now)
        out[org_id] = from_pem(org.cert_path.read_bytes())
        pair = (org.cert_path.read_bytes(), org.key_path.read_bytes())
        for node in ("node1", "node3"):
            out[f"{org_id}:{node}"] = from_pem(issue_node_certificate(pair, node, now, 1)[0])
        out[f"{org_id}:node3b"] = from_pem(issue_node_certificate(pair, "node3", now, 1)[0])
    out["network:node1"] = from_pem(issue_node_certificate(network_ca, "node1", now, 1)[0])
    out["network"] = from_pem(network_ca[0])
    return out


def test_peers_anchors_and_admission_follow_the_head(certs: dict[str, bytes]) -> None:
    node = FakeNode()
    genesis_set = [vset.ValidatorRecord("vs/node0", KEYS[0]),
                   vset.ValidatorRecord("vs/node1", KEYS[1]),
                   vset.ValidatorRecord("vs/node2", KEYS[2])]
    node.move_head({"acme": certs["acme"]}, genesis_set)
    network = FakeNetwork({"node1": ("10.0.0.1", 7401)}, network_cas=[certs["network"]])
    follower = ChainPeers(node, network)  # type: ignore[arg-type]
    assert network.admit == follower.refusal
    # node2 has no address anywhere: accepted when it calls, never dialled.
    assert network.peer_sets == [{"node1": ("10.0.0.1", 7401), "node2": None}]
    assert network.anchors == [[certs["acme"]]]
    follower.refresh()  # same head: nothing again
    assert len(network.peer_sets) == 1 and len(network.anchors) == 1
    # A genesis name: the network CA's certificate only, never an organisation's.
    assert follower.refusal("node1", certs["network:node1"]) is None
    assert follower.refusal("node1", certs["acme:node1"]) is not None

    pin = certificate_fingerprint(certs["delta:node3"])
    joined = vset.ValidatorRecord("vs/node3", KEYS[3], "delta", "10.0.0.4:7400", pin)
    node.move_head({"acme": certs["acme"], "delta": certs["delta"]}, [*genesis_set, joined])
    follower.refresh()
    assert network.peer_sets[-1] == {"node1": ("10.0.0.1", 7401), "node2": None,
                                     "node3": ("10.0.0.4", 7400)}
    assert network.anchors[-1] == [certs["delta"]]  # only the new CA
    assert follower.refusal("node3", certs["delta:node3"]) is None
    assert "pinned" in str(follower.refusal("node3", certs["delta:node3b"]))
    assert follower.refusal("node1", certs["delta:node1"]) is not None

    # delta leaves and its validator is removed: its CA, still an OpenSSL anchor,
    # vouches for nobody.
    node.move_head({"acme": certs["acme"]}, genesis_set)
    follower.refresh()
    assert network.peer_sets[-1] == {"node1": ("10.0.0.1", 7401), "node2": None}
    assert follower.refusal("node3", certs["delta:node3"]) is not None
    assert follower.refusal("node1", certs["delta:node1"]) is not None


def test_unpinned_validators_are_admitted_by_their_own_org_ca(certs: dict[str, bytes]) -> None:
    node = FakeNode()
    records = [vset.ValidatorRecord("vs/node0", KEYS[0]),
               vset.ValidatorRecord("vs/node3", KEYS[3], "delta", "10.0.0.4:7400")]
    node.move_head({"acme": certs["acme"], "delta": certs["delta"]}, records)
    follower = ChainPeers(node, FakeNetwork({}))  # type: ignore[arg-type]
    assert follower.refusal("node3", certs["delta:node3b"]) is None
    assert follower.refusal("node3", certs["acme:node3"]) is not None


def test_names_that_cannot_be_peers_are_skipped_not_fatal(certs: dict[str, bytes]) -> None:
    node = FakeNode()
    records = [vset.ValidatorRecord("vs/node0", KEYS[0]),
               vset.ValidatorRecord("vs/node_1", KEYS[1], "acme", "10.0.0.2:1")]
    node.move_head({"acme": certs["acme"]}, records)
    network = FakeNetwork({})
    ChainPeers(node, network)  # type: ignore[arg-type]
    assert network.peer_sets == [{}]
