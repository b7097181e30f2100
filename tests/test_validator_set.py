"""Validator-set changes by governance (ADR 0011): the set in state, its history, the
header field that names the next set, the per-height change budget, the dry run's
quorum check; then four nodes in one process (real ledgers, SQLite stores and wire
encoding) adding a validator, removing one and rotating a key, with receipts from
before the rotation verifying against the exported trust file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ADMIN_KEY, GENESIS_TIME_MS, TEST_ORG, genesis, key, tx
from tests.test_governance import (
    ADMIN,
    DEPOSITOR,
    GENESIS,
    ORGS,
    T0,
    Runner,
    ca_der,
    deposit,
    errors,
    new_chain,
    org_members,
    proposal_id,
    propose,
    vote,
)
from tests.test_multinode import Cluster
from tidechain.client.files import trust_file_from_chain, trust_file_text
from tidechain.consensus import Start
from tidechain.contracts import default_registry, governance, members
from tidechain.core.errors import ProofError
from tidechain.core.note import Signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger import validators as vset
from tidechain.ledger.chain import Chain
from tidechain.ledger.runtime import CallContext, Overlay
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator
from tidechain.node.node import Node
from tidechain.storage.store import Store

NODE0 = "gov-net/node0"


def add_args(name: str, n: int, org: str = "alpha") -> dict[str, Any]:
    return {"name": name, "key": key(n).public_key, "org": org,
            "address": "127.0.0.1:7001", "tls": b""}


def passed_by_all(run: Runner, action: str, args: dict[str, Any]) -> int:
    """Propose and vote with every organisation; returns the proposal id."""
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], action, args)))
    run.ok(*(vote(ADMIN[o], pid) for o in ORGS[:3]))
    return pid


def names(records: tuple[vset.ValidatorRecord, ...]) -> list[str]:
    return [r.name for r in records]


# --- the set in state -----------------------------------------------------------------------


def test_the_genesis_set_is_in_state_and_the_header_names_it() -> None:
    run = Runner(new_chain())
    block = run.ok(deposit(DEPOSITOR["alpha"]))
    assert block.header.validators_hash == GENESIS.validators_hash
    assert vset.current_set(run.chain.state, GENESIS) == vset.genesis_records(GENESIS)
    assert vset.set_hash(vset.genesis_records(GENESIS)) == GENESIS.validators_hash


def test_an_added_validator_signs_from_the_height_after_the_decision() -> None:
    run = Runner(new_chain())
    pid = passed_by_all(run, "add_validator", add_args("gov-net/node1", 1001))
    decided = run.chain.height
    assert run.proposal(pid)["apply_height"] == decided + 1
    applied = run.ok(deposit(DEPOSITOR["alpha"]))
    record = run.proposal(pid)
    assert record["status"] == "applied", record["reason"]
    assert record["effect"] == {"validators": [NODE0, "gov-net/node1"],
                                "from_height": applied.height + 1, "quorum": 2}
    new = vset.current_set(run.chain.state, GENESIS)
    assert names(new) == [NODE0, "gov-net/node1"] and new[1].org == "alpha"
    # The header of the deciding block names the next set; blocks before, the genesis one.
    assert applied.header.validators_hash == vset.set_hash(new)
    assert run.peer.head == applied.header  # a peer re-executing gets the same header
    state = run.chain.state
    assert names(vset.set_at_height(state, GENESIS, applied.height)) == [NODE0]
    assert names(vset.set_at_height(state, GENESIS, applied.height + 1)) == [
        NODE0, "gov-net/node1"]
    spans = vset.key_spans(state, GENESIS)
    assert [(s.name, s.first, s.last) for s in spans] == [
        (NODE0, 1, None), ("gov-net/node1", applied.height + 1, None)]


def test_a_replaced_key_keeps_its_position_and_its_heights() -> None:
    run = Runner(new_chain())
    passed_by_all(run, "add_validator", add_args("gov-net/node1", 1001))
    run.ok(deposit(DEPOSITOR["alpha"]))
    passed_by_all(run, "replace_validator_key", {"validator": NODE0, "key": key(2000).public_key})
    rotated = run.ok(deposit(DEPOSITOR["alpha"]))
    current = vset.current_set(run.chain.state, GENESIS)
    assert [(r.name, r.public_key) for r in current] == [
        (NODE0, key(2000).public_key), ("gov-net/node1", key(1001).public_key)]
    spans = vset.key_spans(run.chain.state, GENESIS)
    assert [(s.name, s.public_key, s.first, s.last) for s in spans] == [
        (NODE0, key(1000).public_key, 1, rotated.height),
        ("gov-net/node1", key(1001).public_key, 4, None),
        (NODE0, key(2000).public_key, rotated.height + 1, None)]


def test_changes_beyond_the_height_budget_wait_for_the_next_height() -> None:
    run = Runner(new_chain())
    first = proposal_id(run.ok(propose(ADMIN["alpha"], "add_validator",
                                       add_args("gov-net/node1", 1001))))
    second = proposal_id(run.ok(propose(ADMIN["alpha"], "add_validator",
                                        add_args("gov-net/node2", 1002))))
    run.ok(*(vote(ADMIN[o], p) for o in ORGS[:3] for p in (first, second)))
    both_due = run.ok(deposit(DEPOSITOR["alpha"]))
    # One validator, f = 0: one change per height (max(1, f)).
    assert run.proposal(first)["status"] == "applied"
    assert run.proposal(second)["status"] == "passed"
    assert run.proposal(second)["apply_height"] == both_due.height + 1
    run.ok(deposit(DEPOSITOR["alpha"]))
    assert run.proposal(second)["status"] == "applied"
    assert vset.change_heights(run.chain.state) == [both_due.height + 1, both_due.height + 2]
    assert len(vset.current_set(run.chain.state, GENESIS)) == 3


def test_bad_validator_changes_are_refused() -> None:
    run = Runner(new_chain())
    refused = run.block(
        propose(ADMIN["alpha"], "add_validator", add_args("gov-net/x", 1001, org="nobody")),
        propose(ADMIN["alpha"], "add_validator", add_args(NODE0, 1001)),
        propose(ADMIN["alpha"], "add_validator", add_args("gov-net/x", 1000)),  # genesis key
        propose(ADMIN["alpha"], "add_validator", add_args("bad name", 1001)),
        propose(ADMIN["alpha"], "add_validator", {**add_args("gov-net/x", 1001), "key": b"k"}),
        propose(ADMIN["alpha"], "remove_validator", {"validator": "gov-net/none"}),
        propose(ADMIN["alpha"], "replace_validator_key",
                {"validator": NODE0, "key": key(1000).public_key}),
        propose(ADMIN["alpha"], "add_validator", {"name": "gov-net/x"}),
        # Peers know validators by the name after the network prefix: a name without
        # it, or with another, could take an existing node's TLS name.
        propose(ADMIN["alpha"], "add_validator", add_args("other-net/x", 1001)),
        propose(ADMIN["alpha"], "add_validator", add_args(NODE0.split("/", 1)[1], 1001)),
    )
    assert errors(refused) == ["not_found", "duplicate", "duplicate", "bad_argument",
                               "bad_argument", "not_found", "duplicate", "bad_argument",
                               "bad_argument", "bad_argument"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "rotate"]), st.integers(0, 9),
                          st.integers(1, 3)), max_size=12))
def test_the_history_gives_every_heights_set_and_each_keys_heights(
        ops: list[tuple[str, int, int]]) -> None:
    """Random changes through `members` against a model: `set_at_height` for every
    height, and `key_spans` naming each key once, with its exact heights."""
    g = genesis(validators=2, name="prop-net")
    state = Overlay(default_registry().genesis_state(g))
    model = {1: [(v.name, v.public_key) for v in g.validators]}
    height, fresh = 1, iter(range(3000, 4000))
    for kind, pick, gap in ops:
        height += gap
        ctx = CallContext("members", b"", height, T0, 0, b"", state)
        current = [(r.name, r.public_key) for r in members.validator_records(ctx)]
        name = current[pick % len(current)][0]
        if kind == "add":
            n = next(fresh)
            members.apply_validator_change(ctx, None, members.check_new_validator(ctx, {
                "name": f"prop-net/x{n}", "key": key(n).public_key, "org": TEST_ORG}))
            current.append((f"prop-net/x{n}", key(n).public_key))
        elif kind == "rotate":
            new_key = key(next(fresh)).public_key
            members.apply_validator_change(ctx, name, members.check_key_replacement(
                ctx, name, new_key))
            current = [(x, new_key if x == name else k) for x, k in current]
        elif len(current) > 1:
            members.apply_validator_change(ctx, members.check_validator_removal(ctx, name).name,
                                           None)
            current = [(x, k) for x, k in current if x != name]
        else:
            continue
        model[height + 1] = current
    starts = sorted(model)
    for h in range(1, height + 3):
        expected = model[max(s for s in starts if s <= h)]
        got = vset.set_at_height(state, g, h)
        assert [(r.name, r.public_key) for r in got] == expected
        spans = vset.key_spans(state, g)
        signing = {(s.name, s.public_key) for s in spans
                   if s.first <= h and (s.last is None or h <= s.last)}
        assert signing == set(expected)
    keys = [s.public_key for s in spans]
    assert len(keys) == len(set(keys))  # a key signs for one span, once


def four_validator_chain() -> tuple[Genesis, Chain]:
    g = Genesis("gov-net", GENESIS_TIME_MS,
                tuple(GenesisValidator(f"gov-net/node{i}", key(1000 + i).public_key)
                      for i in range(4)),
                tuple(GenesisOrg(ca_der(o), tuple(org_members(o))) for o in ORGS[:3]))
    return g, new_chain(g)


def test_the_dry_run_refuses_a_set_that_the_live_validators_cannot_carry() -> None:
    _, chain = four_validator_chain()
    everyone = [f"gov-net/node{i}" for i in range(4)]
    proposer = key(ADMIN["alpha"]).public_key

    def dry(action: str, args: dict[str, Any], live: list[str]) -> dict[str, Any]:
        return governance.dry_run(chain.state, proposer, {"action": action, "args": args},
                                  1, T0, validators=everyone, live=live)

    ok = dry("remove_validator", {"validator": "gov-net/node3"}, everyone)
    assert ok["ok"] and ok["quorum"]["quorum"] == 3
    two_live = dry("remove_validator", {"validator": "gov-net/node3"}, everyone[:2])
    assert two_live["ok"] is False and two_live["error"] == "no_quorum"
    assert two_live["quorum"] == {"remaining": everyone[:3], "quorum": 3,
                                  "tolerated_faults": 0, "live": 2, "can_reach_quorum": False,
                                  "reason": two_live["reason"]}
    grow = dry("add_validator", add_args("gov-net/node4", 1004), everyone[:2])
    assert grow["error"] == "no_quorum"  # 5 validators need 4; 2 live + the new one
    assert dry("add_validator", add_args("gov-net/node4", 1004), everyone[:3])["ok"]
    # A key replacement: the validator whose key changes does not count as live.
    rotate = {"validator": "gov-net/node0", "key": key(2000).public_key}
    assert dry("replace_validator_key", rotate, everyone)["ok"]
    assert dry("replace_validator_key", rotate, everyone[:3])["error"] == "no_quorum"


# --- four nodes in one process --------------------------------------------------------------


def gov_tx(g: Genesis, action: str, args: dict[str, Any], nonce: int) -> list[Any]:
    """Propose and approve (one organisation: its vote passes it)."""
    admin = key(ADMIN_KEY)
    proposal = tx(g, admin, "propose", {"action": action, "args": args, "effective_height": 0},
                  contract="gov", nonce=nonce)
    return [proposal]


def approve(g: Genesis, proposal: int, nonce: int) -> Any:
    return tx(g, key(ADMIN_KEY), "vote", {"proposal": proposal, "approve": True},
              contract="gov", nonce=nonce)


def decide(cluster: Cluster, g: Genesis, action: str, args: dict[str, Any], nonce: int) -> None:
    """Propose, approve, and let the decision apply (a deposit makes the next block)."""
    node = cluster.nodes[1]
    cluster.submit(gov_tx(g, action, args, nonce), at=1)
    cluster.run(10_000)  # a round whose proposer is down times out
    proposal = node.chain.frontier.size - 1
    cluster.submit([approve(g, proposal, nonce + 1)], at=1)
    cluster.run(10_000)  # a round whose proposer is down times out
    record = governance.get_proposal(node.chain.state, proposal)
    assert record is not None and record["status"] in ("passed", "applied"), record
    cluster.submit([tx(g, key(7), nonce=nonce + 2)], at=1)
    cluster.run(10_000)  # a round whose proposer is down times out
    record = governance.get_proposal(node.chain.state, proposal)
    assert record is not None and record["status"] == "applied", record


def same_head(nodes: list[Node]) -> int:
    heads = {(n.chain.height, n.chain.head_hash) for n in nodes}
    assert len(heads) == 1, heads
    return nodes[0].chain.height


@pytest.mark.timeout(120)
def test_four_nodes_add_remove_and_rotate_validators(tmp_path: Path) -> None:
    g = genesis(validators=3, name="vs-net")
    cluster = Cluster(g, tmp_path)
    cluster.submit([tx(g, key(7), nonce=1)])
    cluster.run(1_000)
    assert same_head(cluster.nodes) == 1
    # While the set is the genesis one, the chain's file is the genesis file.
    status = cluster.nodes[0].views.validator_set_status()
    assert trust_file_from_chain(g, status["keys"]) == trust_file_text(g)

    # A fourth node starts with nothing but the genesis, follows, then is added.
    newcomer = Node(g, Store(tmp_path / "node3.sqlite"), Signer("vs-net/node3", key(1003)))
    cluster.nodes.append(newcomer)
    newcomer.step(Start(cluster.now_ms))
    decide(cluster, g, "add_validator",
           {"name": "vs-net/node3", "key": key(1003).public_key, "org": TEST_ORG,
            "address": "127.0.0.1:7003", "tls": b""}, nonce=100)
    cluster.run(3_000)  # block sync brings the newcomer to the head
    same_head(cluster.nodes)
    assert [v.name for v in newcomer.validators.validators] == [
        "vs-net/node0", "vs-net/node1", "vs-net/node2", "vs-net/node3"]
    assert newcomer.views.status()["quorum"] == 3
    # Genesis validators registered no address; node3 did, for the transport to dial.
    assert cluster.nodes[0].chain_peers() == {"node3": ("127.0.0.1", 7003)}
    assert newcomer.chain_peers() == {}

    # With node0 down, node3's votes are needed for a quorum of 3 of 4.
    cluster.down = frozenset({0})
    before = cluster.nodes[1].chain.frontier.size
    cluster.submit([tx(g, key(7), nonce=200 + i) for i in range(5)], at=1)
    cluster.run(15_000)
    assert {n.chain.frontier.size for _, n in cluster.live()} == {before + 5}

    # node0 is removed while down: three validators remain, all needed (quorum 3).
    decide(cluster, g, "remove_validator", {"validator": "vs-net/node0"}, nonce=300)
    live_nodes = [n for _, n in cluster.live()]
    same_head(live_nodes)
    assert [v.name for v in cluster.nodes[1].validators.validators] == [
        "vs-net/node1", "vs-net/node2", "vs-net/node3"]

    # Before any key rotation: a receipt (against the latest checkpoint, which node3
    # signed), and the trust file exported then.
    old_receipt = cluster.nodes[2].views.receipt(2)
    old_trust = parse_trust(trust_file_from_chain(
        g, cluster.nodes[2].views.validator_set_status()["keys"]))
    assert verify_receipt(old_receipt, old_trust).index == 2

    # node2's key is rotated; its operator restarts it with the new key.
    decide(cluster, g, "replace_validator_key",
           {"validator": "vs-net/node2", "key": key(2002).public_key}, nonce=400)
    cluster.nodes[2].store.close()
    cluster.nodes[2] = Node(g, Store(tmp_path / "node2.sqlite"),
                            Signer("vs-net/node2", key(2002)))
    cluster.nodes[2].step(Start(cluster.now_ms))
    size = cluster.nodes[1].chain.frontier.size
    cluster.submit([tx(g, key(7), nonce=500 + i) for i in range(3)], at=1)
    cluster.run(15_000)
    assert {n.chain.frontier.size for _, n in cluster.live()} == {size + 3}
    same_head([n for _, n in cluster.live()])

    # The exported trust file keeps the old keys with the sizes they signed.
    keys = cluster.nodes[1].views.validator_set_status()["keys"]
    text = trust_file_from_chain(g, keys)
    assert "sizes=" in text
    trust = parse_trust(text)
    assert verify_receipt(old_receipt, trust).index == 2
    new_receipt = cluster.nodes[1].views.receipt(size + 1)
    assert verify_receipt(new_receipt, trust).index == size + 1
    # ...and the file from before the rotation does not verify the new checkpoints.
    with pytest.raises(ProofError):
        verify_receipt(new_receipt, old_trust)

    # A node still holding node2's old key syncs past the rotation and only observes.
    stale = Node(g, Store(tmp_path / "stale.sqlite"), Signer("vs-net/node2", key(1002)))
    cluster.nodes.append(stale)
    stale.step(Start(cluster.now_ms))
    cluster.run(3_000)
    assert stale.chain.height == cluster.nodes[1].chain.height
    assert stale.replica.height == stale.chain.height + 1
    for node in cluster.nodes:
        node.store.close()
