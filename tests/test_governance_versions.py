"""Contract versions by governance (issue 4): a contract may exist in several versions
in the software; `activate_contract {contract, version, height}` makes every node
dispatch that contract's calls to the version from that height. Shown with a test-only
evidence version (here numbered 3, after the shipped v2; called "v2" below: the
version after the one in force; it marks each deposit with an event, and answers a
method v1 lacks): v1 answers before the height, v2 from it, on every node, with one
state root; a node whose software lacks v2 stops at that height instead of diverging;
the dry run
refuses a version the asking node's software does not have."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ADMIN_KEY, GENESIS_TIME_MS, genesis, key, tx
from tests.test_governance import (
    ADMIN,
    DEPOSITOR,
    GENESIS,
    ORGS,
    T0,
    _clock_ms,
    deposit,
    errors,
    proposal_id,
    propose,
    vote,
)
from tests.test_multinode import Cluster
from tests.test_validator_set import decide, same_head
from tidechain.consensus import Start, Tick
from tidechain.contracts import default_registry, evidence, governance, members
from tidechain.core.errors import InvariantViolation, NotFound
from tidechain.core.note import Signer
from tidechain.identity.roles import Role
from tidechain.ledger.chain import Chain, PreparedBlock
from tidechain.ledger.runtime import (
    CallContext,
    Contract,
    MethodSpec,
    MissingContractVersion,
    Registry,
    activations,
    active_version,
    contract_version_key,
    namespaced,
)
from tidechain.ledger.types import SignedTx
from tidechain.node.node import Node
from tidechain.storage.store import Store

# --- a test-only evidence v2 ------------------------------------------------------------------


def deposit_v2(ctx: CallContext, args: dict[str, Any]) -> None:
    """v1's deposit, and an event saying which version took it."""
    evidence.deposit(ctx, args)
    ctx.emit("served_by", {"version": 3})


def ping(ctx: CallContext, args: dict[str, Any]) -> None:
    ctx.emit("pong", {"version": 3})


EVIDENCE_V2 = dataclasses.replace(evidence.CONTRACT, version=3, methods={
    **evidence.CONTRACT.methods,
    "deposit": MethodSpec(deposit_v2, frozenset({Role.DEPOSITOR}), "deposit, v2"),
    "ping": MethodSpec(ping, frozenset({Role.DEPOSITOR}), "which version answers"),
})


def registry_with_v2() -> Registry:
    return Registry([*default_registry(), EVIDENCE_V2], authorize=members.authorize)


# --- a network of chains: the proposer and the validators re-executing its blocks ----------------


class Network:
    """`upgraded` chains have evidence v2 in their software, `stale` ones do not. The
    first chain proposes; every other validates each block (`Chain.validate`: the
    header, state root included, must be exactly what its own execution gives)."""

    def __init__(self, upgraded: int = 3, stale: int = 1) -> None:
        self.chains = [Chain.at_genesis(GENESIS, registry_with_v2()) for _ in range(upgraded)]
        self.stale = [Chain.at_genesis(GENESIS, default_registry()) for _ in range(stale)]
        self.time_ms = _clock_ms[0] = T0

    def block(self, *txs: SignedTx) -> PreparedBlock:
        self.time_ms += 1000
        _clock_ms[0] = self.time_ms
        prepared = self.chains[0].prepare(list(txs), self.time_ms, "gov-net/node0")
        self.chains[0].advance(prepared)
        for peer in [*self.chains[1:], *self.stale]:
            peer.advance(peer.validate(prepared.header, list(txs), lambda ids: set()))
        roots = {c.state.root() for c in [*self.chains, *self.stale]}
        assert roots == {prepared.header.state_root}
        return prepared

    def ok(self, *txs: SignedTx) -> PreparedBlock:
        prepared = self.block(*txs)
        assert all(r.ok for r in prepared.results), [r.reason for r in prepared.results]
        return prepared

    def decide(self, action: str, args: dict[str, Any]) -> int:
        pid = proposal_id(self.ok(propose(ADMIN["alpha"], action, args)))
        self.ok(*(vote(ADMIN[o], pid) for o in ORGS[:3]))
        record = governance.get_proposal(self.chains[0].state, pid)
        assert record is not None and record["status"] == "passed"
        return pid


def ping_tx() -> SignedTx:
    return deposit_like("ping", {})


def deposit_like(method: str, args: dict[str, Any]) -> SignedTx:
    signed = deposit(DEPOSITOR["alpha"])
    body = dataclasses.replace(signed.body, method=method, args=args)
    return SignedTx.create(body, key(DEPOSITOR["alpha"]))


def served_by(prepared: PreparedBlock) -> list[int]:
    """Per transaction: 2 if v2 took it (its event), else 1."""
    return [2 if any(e.kind in ("served_by", "pong") for e in r.events) else 1
            for r in prepared.results]


def test_every_node_switches_to_v2_at_the_height_and_a_stale_node_stops() -> None:
    net = Network()
    height = 6
    pid = net.decide("activate_contract", {"contract": "evidence", "version": 3,
                                           "height": height})  # decided at 2, applied at 3
    applying = net.ok(deposit(DEPOSITOR["alpha"]))
    record = governance.get_proposal(net.chains[0].state, pid)
    assert record is not None and record["status"] == "applied"
    assert record["effect"] == {"contract": "evidence", "version": 3, "from_height": height}
    assert served_by(applying) == [1]
    before = net.block(deposit(DEPOSITOR["beta"]), ping_tx())  # height 4: v1 answers
    assert served_by(before) == [1, 1] and errors(before) == ["", "unknown_method"]
    assert net.ok(deposit(DEPOSITOR["beta"])).height == height - 1  # still v1
    for chain in net.chains:
        assert active_version(chain.state, "evidence", height - 1) == 1
        assert active_version(chain.state, "evidence", height) == 3

    # The stale node followed every block so far, with the same state root; it stops
    # at the activation height, naming what it lacks, rather than run v1 there.
    stale = net.stale.pop()
    txs = [deposit(DEPOSITOR["gamma"]), ping_tx()]
    with pytest.raises(MissingContractVersion) as stopped:
        stale.prepare(txs, net.time_ms + 1000, "gov-net/node0")
    assert "'evidence' version 3" in str(stopped.value)
    assert isinstance(stopped.value, InvariantViolation)  # a critical error, not a rejection

    after = net.ok(*txs)  # height 6: v2 answers, on every upgraded node
    assert after.height == height and served_by(after) == [2, 2]
    with pytest.raises(MissingContractVersion):
        stale.validate(after.header, txs, lambda ids: set())
    assert stale.height == height - 1
    # Deposits made under v1 stay readable: v2 keeps v1's state.
    assert evidence.get_deposit(net.chains[1].state, applying.first_log_index) is not None


def test_an_activation_whose_height_has_passed_counts_from_the_next_block() -> None:
    net = Network(stale=0)
    pid = proposal_id(net.ok(propose(ADMIN["alpha"], "activate_contract", {
        "contract": "evidence", "version": 3, "height": 3})))  # height 1
    net.ok(vote(ADMIN["alpha"], pid))
    net.ok(vote(ADMIN["beta"], pid))
    net.ok(vote(ADMIN["gamma"], pid))  # height 4: passes; applies at 5
    applied = net.ok(deposit(DEPOSITOR["alpha"]))
    assert served_by(applied) == [1]
    record = governance.get_proposal(net.chains[0].state, pid)
    assert record is not None and record["effect"]["from_height"] == 6
    assert served_by(net.ok(ping_tx())) == [2]


def test_switching_back_and_the_activation_list_stays_short() -> None:
    net = Network(stale=0)
    net.decide("activate_contract", {"contract": "evidence", "version": 3, "height": 0})
    net.ok(deposit(DEPOSITOR["alpha"]))  # applies: v2 from the next block
    assert served_by(net.ok(ping_tx())) == [2]
    net.decide("activate_contract", {"contract": "evidence", "version": 1, "height": 0})
    net.ok(deposit(DEPOSITOR["alpha"]))
    assert errors(net.block(ping_tx())) == ["unknown_method"]  # v1 again
    # Kept: the version in force when the last decision applied, and the new one.
    listed = activations(net.chains[0].state, "evidence")
    assert len(listed) == 2 and listed[-1][1] == 1
    # One key format for the contract that writes and the runtime that reads.
    assert contract_version_key("evidence") == namespaced(
        governance.NAME, governance.version_key("evidence"))


def test_bad_activations_are_refused() -> None:
    net = Network(stale=0)

    def activation(args: dict[str, Any]) -> SignedTx:
        return propose(ADMIN["alpha"], "activate_contract", args)

    refused = net.block(
        activation({"contract": "evidence", "version": 0, "height": 0}),
        activation({"contract": "evidence", "version": True, "height": 0}),
        activation({"contract": 7, "version": 3, "height": 0}),
        activation({"contract": "evidence", "version": 3, "height": 1}),  # not ahead
        activation({"contract": "evidence", "version": 3, "height": 0, "extra": 1}),
    )
    assert errors(refused) == ["bad_argument"] * 5


def test_the_dry_run_refuses_a_version_this_software_lacks() -> None:
    head = Chain.at_genesis(GENESIS, default_registry())
    proposer = key(ADMIN["alpha"]).public_key
    args = {"action": "activate_contract",
            "args": {"contract": "evidence", "version": 3, "height": 10}}
    lacking = governance.dry_run(head.state, proposer, args, 1, T0,
                                 software=default_registry().versions())
    assert lacking["ok"] is False and lacking["error"] == "unknown_version"
    assert "no version 3 of contract 'evidence'" in lacking["reason"]
    having = governance.dry_run(head.state, proposer, args, 1, T0,
                                software=registry_with_v2().versions())
    assert having == {"ok": True, "action": "activate_contract", "effect": {
        "contract": "evidence", "version": 3, "from_height": 10}}
    unknown = governance.dry_run(head.state, proposer, {
        "action": "activate_contract", "args": {"contract": "evidnce", "version": 1}},
        1, T0, software=default_registry().versions())
    assert unknown["error"] == "unknown_version" and "no contract" in unknown["reason"]


def test_the_node_s_dry_run_checks_its_own_software(tmp_path: Path) -> None:
    g = genesis(name="ver-net")
    node = Node(g, Store(tmp_path / "node.sqlite"), Signer("ver-net/node0", key(1000)))
    try:
        now_ms = GENESIS_TIME_MS + 10_000  # within the test certificates' validity
        proposal = tx(g, key(ADMIN_KEY), "propose", {
            "action": "activate_contract", "effective_height": 0,
            "args": {"contract": "evidence", "version": 3, "height": 5}},
            contract="gov", nonce=1)
        answer = node.views.gov_dry_run(proposal, now_ms)
        assert answer["ok"] is False and answer["error"] == "unknown_version"
        assert "has 1" in answer["reason"]
    finally:
        node.store.close()


# --- the registry ---------------------------------------------------------------------------------


def test_the_registry_holds_versions_and_every_built_in_contract_is_at_version_1() -> None:
    assert {c.name: c.version for c in default_registry() if c.version > 1} == {"evidence": 2}
    assert default_registry().versions()["evidence"] == (1, 2)
    assert registry_with_v2().versions()["evidence"] == (1, 2, 3)
    # Documentation comes from the newest version (what `tide init` starts on).
    assert "ping" in str(registry_with_v2().describe())
    with pytest.raises(InvariantViolation):
        Registry([evidence.CONTRACT, evidence.CONTRACT])
    with pytest.raises(InvariantViolation):
        Registry([EVIDENCE_V2])  # no version 1
    only_v2: Contract = EVIDENCE_V2
    assert only_v2.version == 3 and "ping" in only_v2.methods


# --- four nodes in one process: three upgraded, one not ------------------------------------------


def halt_recorder(node: Node, halted: list[MissingContractVersion]) -> None:
    """Let the test cluster drive a node that stops: what would end its process is
    recorded, and the node gets no further events."""
    for name in ("step", "receive", "poll_sync"):
        original = getattr(node, name)

        def guarded(*args: Any, _original: Any = original) -> None:
            if halted:
                return
            try:
                _original(*args)
            except MissingContractVersion as exc:
                halted.append(exc)

        setattr(node, name, guarded)


SENDERS = (7, ADMIN_KEY)
"""Who sends this cluster's transactions: key(7) its deposits, the admin the governance
calls (`decide`). Entries are read by their sender (ADR 0015)."""


def entry_as_its_sender(node: Node, index: int) -> dict[str, Any]:
    """Log entry `index`, read by whichever of `SENDERS` sent it."""
    for n in SENDERS:
        with contextlib.suppress(NotFound):
            reader = node.views.reader(key(n).public_key, node.chain.head_time_ms)
            return node.views.entry(index, reader)
    raise AssertionError(f"log entry {index} was sent by none of keys {SENDERS}")


def committed_by_v2(node: Node, height: int) -> list[bool]:
    block = node.views.block(height)
    first = block["log_size"] - block["tx_count"]
    return ["served_by" in str(entry_as_its_sender(node, i)["result"])
            for i in range(first, block["log_size"])]


@pytest.mark.timeout(120)
def test_four_nodes_switch_at_the_height_and_the_one_without_v2_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = genesis(validators=4, name="cv-net")
    monkeypatch.setattr("tidechain.node.node.default_registry", registry_with_v2)
    cluster = Cluster(g, tmp_path)  # every node with evidence v2 in its software...
    monkeypatch.undo()
    cluster.nodes[3].store.close()  # ...but node3, which runs the old release
    stale = Node(g, Store(tmp_path / "node3.sqlite"), Signer("cv-net/node3", key(1003)))
    stale.step(Start(cluster.now_ms))
    cluster.nodes[3] = stale
    halted: list[MissingContractVersion] = []
    halt_recorder(stale, halted)

    height = 7
    decide(cluster, g, "activate_contract",
           {"contract": "evidence", "version": 3, "height": height}, nonce=100)
    nonce = 200
    while cluster.nodes[0].chain.height < height + 1:
        nonce += 1
        cluster.submit([tx(g, key(7), nonce=nonce)], at=1)
        cluster.run(2_000)
    upgraded = cluster.nodes[:3]
    top = same_head(upgraded)
    for node in upgraded:
        assert node.halted is None
        before = [v for h in range(1, height) for v in committed_by_v2(node, h)]
        after = [v for h in range(height, top + 1) for v in committed_by_v2(node, h)]
        assert before and not any(before)  # v1 answered below the height
        assert after and all(after)  # v2 from it
    # The old release followed up to the height before, then stopped, saying why.
    assert stale.chain.height == height - 1
    assert stale.chain.head_hash.hex() == upgraded[0].views.block(height - 1)["hash"]
    assert len(halted) == 1 and "'evidence' version 3" in str(halted[0])
    assert stale.halted is halted[0]
    with pytest.raises(MissingContractVersion):
        Node.step(stale, Tick(cluster.now_ms))  # every later step stops again
    for node in cluster.nodes:
        node.store.close()
