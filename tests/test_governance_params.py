"""Consensus parameters by governance (issue 4): the block-size limit and the consensus
timeouts are `set_param` values in state. The value in the state after block h applies
from h + 1 on every node: the proposer fills blocks up to the state's limit, every
validator refuses a larger block, and each node rebuilds its replica with the new
timeouts at that boundary, without a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import genesis, key, tx
from tests.test_governance import (
    ADMIN,
    DEPOSITOR,
    ORGS,
    Runner,
    deposit,
    errors,
    new_chain,
    proposal_id,
    propose,
    vote,
)
from tests.test_multinode import Cluster
from tests.test_validator_set import decide, same_head
from tidechain.consensus.params import (
    GOVERNED_TIMEOUTS,
    ConsensusParams,
    with_governed_timeouts,
)
from tidechain.contracts import governance
from tidechain.core.errors import InvariantViolation, Rejected
from tidechain.core.limits import (
    MAX_BLOCK_TXS,
    MAX_GOVERNED_TIMEOUT_MS,
    MIN_GOVERNED_TIMEOUT_MS,
)
from tidechain.ledger.chain import governed_max_block_txs
from tidechain.ledger.runtime import governed_param_key, namespaced
from tidechain.ledger.types import Genesis, SignedTx

BLOCK_TXS = "consensus.max_block_txs"


def set_by_all(run: Runner, name: str, value: int) -> int:
    """Propose and pass `set_param` (every organisation approves); returns the height
    of the deciding block (the decision applies at the start of the next one)."""
    pid = proposal_id(run.ok(propose(ADMIN["alpha"], "set_param",
                                     {"name": name, "value": value})))
    decided = run.ok(*(vote(ADMIN[o], pid) for o in ORGS[:3]))
    assert run.proposal(pid)["status"] == "passed"
    return decided.height


# --- the block-size limit, at the chain -------------------------------------------------------


def test_a_block_size_set_at_h_limits_blocks_from_h_plus_1() -> None:
    run = Runner(new_chain())
    assert run.chain.max_block_txs == MAX_BLOCK_TXS  # never set: the hard bound
    decided = set_by_all(run, BLOCK_TXS, 3)
    # The block after the decision applies it: it may still hold more than 3.
    applying = run.ok(*(deposit(DEPOSITOR["alpha"]) for _ in range(5)))
    assert applying.height == decided + 1
    assert governed_max_block_txs(run.chain.state) == 3
    assert run.chain.max_block_txs == run.peer.max_block_txs == 3

    # From the next height the proposer selects at most 3...
    candidates = [deposit(DEPOSITOR["beta"]) for _ in range(5)]
    accepted, dropped = run.chain.select(candidates, run.time_ms + 1000, lambda ids: set())
    assert len(accepted) == 3 and dropped == []
    # ...cannot build a larger block (our own bug if it tried)...
    with pytest.raises(InvariantViolation):
        run.chain.prepare(candidates[:4], run.time_ms + 1000, "gov-net/node0")
    # ...and every validator refuses one from another proposer.
    honest = run.chain.prepare(candidates[:3], run.time_ms + 1000, "gov-net/node0")
    oversize = dataclasses.replace(honest.header, tx_count=4)
    with pytest.raises(Rejected) as refused:
        run.peer.validate(oversize, candidates[:4], lambda ids: set())
    assert refused.value.code == "too_large" and "limit" in refused.value.reason
    assert run.block(*candidates[:3]).height == decided + 2  # the limit itself is fine


def test_the_block_size_can_be_raised_again() -> None:
    run = Runner(new_chain())
    set_by_all(run, BLOCK_TXS, 3)  # three organisations vote in one block
    run.ok(deposit(DEPOSITOR["alpha"]))
    assert run.chain.max_block_txs == 3
    set_by_all(run, BLOCK_TXS, 10)
    run.ok(deposit(DEPOSITOR["alpha"]))  # applies the raise: still at most 3 here
    assert run.chain.max_block_txs == 10
    assert len(run.ok(*(deposit(DEPOSITOR["gamma"]) for _ in range(10))).txs) == 10


def test_consensus_parameters_out_of_bounds_are_refused() -> None:
    run = Runner(new_chain())

    def setting(name: str, value: object) -> SignedTx:
        return propose(ADMIN["alpha"], "set_param", {"name": name, "value": value})

    refused = run.block(
        setting(BLOCK_TXS, 0), setting(BLOCK_TXS, MAX_BLOCK_TXS + 1), setting(BLOCK_TXS, "5"),
        setting("consensus.timeout_propose_ms", MIN_GOVERNED_TIMEOUT_MS - 1),
        setting("consensus.timeout_prevote_ms", MAX_GOVERNED_TIMEOUT_MS + 1),
        setting("consensus.timeout_precommit_delta_ms", -1),
        setting("consensus.timeout_max_ms", 1000),  # not governed: a local cap
        setting("consensus.block_interval_ms", 10),
    )
    assert errors(refused) == ["bad_argument"] * 8
    assert "1..4000" in refused.results[0].reason
    accepted = run.block(setting(BLOCK_TXS, MAX_BLOCK_TXS),
                         setting("consensus.timeout_propose_delta_ms", 0),
                         setting("consensus.timeout_prevote_ms", MIN_GOVERNED_TIMEOUT_MS))
    assert all(r.ok for r in accepted.results)


def test_the_timeouts_in_state_are_what_the_node_reads() -> None:
    run = Runner(new_chain())
    assert governance.consensus_timeouts(run.chain.state) == {}
    set_by_all(run, "consensus.timeout_propose_ms", 7000)
    run.ok(deposit(DEPOSITOR["alpha"]))
    set_by_all(run, "consensus.timeout_precommit_delta_ms", 250)
    run.ok(deposit(DEPOSITOR["alpha"]))
    assert governance.consensus_timeouts(run.chain.state) == {
        "timeout_propose_ms": 7000, "timeout_precommit_delta_ms": 250}
    # One key format for the contract that writes and the ledger that reads.
    assert governed_param_key(BLOCK_TXS) == namespaced(
        governance.NAME, governance.param_key(BLOCK_TXS))
    dry = governance.dry_run(run.chain.state, key(ADMIN["alpha"]).public_key, {
        "action": "set_param", "args": {"name": "consensus.timeout_prevote_ms",
                                        "value": 2000}}, run.chain.height + 1, run.time_ms)
    assert dry == {"ok": True, "action": "set_param", "effect": {
        "param": "consensus.timeout_prevote_ms", "value": 2000,
        "from_height": run.chain.height + 2}}


# --- merging governed timeouts into a node's configuration --------------------------------------


timeout_values = st.dictionaries(
    st.sampled_from(GOVERNED_TIMEOUTS),
    st.integers(MIN_GOVERNED_TIMEOUT_MS, MAX_GOVERNED_TIMEOUT_MS))


@settings(max_examples=60, deadline=None)
@given(timeout_values, st.integers(3000, 120_000))
def test_governed_timeouts_override_the_configuration(values: dict[str, int],
                                                      local_cap_ms: int) -> None:
    configured = ConsensusParams(timeout_max_ms=local_cap_ms, create_empty_blocks=False)
    merged = with_governed_timeouts(configured, values)
    for name in GOVERNED_TIMEOUTS:
        expected = values.get(name, getattr(configured, name))
        assert getattr(merged, name) == expected
    assert merged.timeout_max_ms >= max([local_cap_ms, *values.values()])
    assert merged.create_empty_blocks is False  # the rest stays the node's own
    assert with_governed_timeouts(configured, {}) is configured


# --- four nodes in one process: no restart ----------------------------------------------------


@pytest.mark.timeout(120)
def test_four_nodes_switch_block_size_and_timeouts_at_the_boundary(tmp_path: Path) -> None:
    g = genesis(validators=4, name="gp-net")
    cluster = Cluster(g, tmp_path)
    nodes = list(cluster.nodes)
    replicas = [n.replica for n in nodes]
    assert all(n.params.timeout_propose_ms == 3000 for n in nodes)

    decide(cluster, g, "set_param", {"name": BLOCK_TXS, "value": 4}, nonce=100)
    decide(cluster, g, "set_param", {"name": "consensus.timeout_propose_ms", "value": 1500},
           nonce=200)
    decide(cluster, g, "set_param", {"name": "consensus.timeout_prevote_delta_ms",
                                     "value": 100}, nonce=300)
    same_head(nodes)
    for node in nodes:
        assert node.params.timeout_propose_ms == 1500
        assert node.params.timeout_prevote_delta_ms == 100
        assert node.params.create_empty_blocks is False  # the node's own setting stays
        assert node.replica._params is node.params  # the replica runs with them
    assert all(n.replica is not r for n, r in zip(nodes, replicas, strict=True))
    assert cluster.nodes == nodes  # the same node objects: nothing restarted

    # 13 deposits at once: the proposers cut blocks of at most 4 (the state's limit,
    # not the local default of 1000 for a shared block).
    before_height = nodes[0].chain.height
    size = nodes[0].chain.frontier.size
    cluster.submit([tx(g, key(7), nonce=1000 + i) for i in range(13)], at=2)
    cluster.run(8_000)
    height = same_head(nodes)
    assert nodes[0].chain.frontier.size == size + 13
    counts = [nodes[1].views.block(h)["tx_count"] for h in range(before_height + 1, height + 1)]
    assert max(counts) == 4 and sum(counts) == 13 and len(counts) >= 4
    for node in nodes:
        node.store.close()


def _slowest_commit_ms(cluster: Cluster, g: Genesis, nonce: int) -> int:
    """Commit one deposit per height for n heights in turn (so each validator is the
    first proposer of one of them) and return the longest wait for a commit."""
    slowest = 0
    for i in range(len(g.validators)):
        size = cluster.nodes[1].chain.frontier.size
        cluster.submit([tx(g, key(7), nonce=nonce + i)], at=1)
        start = cluster.now_ms
        while cluster.nodes[1].chain.frontier.size == size:
            cluster.run(10)
            assert cluster.now_ms - start < 30_000, "no commit"
        slowest = max(slowest, cluster.now_ms - start)
    return slowest


@pytest.mark.timeout(120)
def test_a_governed_propose_timeout_shortens_the_rounds_of_a_down_proposer(
        tmp_path: Path) -> None:
    g = genesis(validators=4, name="gt-net")
    cluster = Cluster(g, tmp_path, down=frozenset({3}))
    # The configured 3 s: the height whose first proposer is down waits that long.
    assert _slowest_commit_ms(cluster, g, nonce=10) >= 3000
    decide(cluster, g, "set_param", {"name": "consensus.timeout_propose_ms",
                                     "value": MIN_GOVERNED_TIMEOUT_MS}, nonce=100)
    assert _slowest_commit_ms(cluster, g, nonce=20) < 1500
    for node in cluster.nodes:
        node.store.close()
