"""Node-level runs of the simulator (`tidechain.sim.nodes`, issue 12): real Nodes on
MemoryStores with a fake network, clock and disks; a handful of seeds pass every
checker, reach block sync and a crash in the middle of a state sync, replay exactly,
and each checker fires on a fabricated violation (docs/simulator.md, "Node-level
runs"). About 10 s."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tidechain.node.core import NodeCore
from tidechain.node.node import Node
from tidechain.sim.__main__ import main
from tidechain.sim.nodes import (
    NodeFailure,
    NodeResult,
    NodeWorld,
    check_agreement,
    node_failure_line,
    run_node_seed,
)
from tidechain.storage.memory import MemoryStore

SEEDS = (0, 1, 3, 5, 8, 28)
SYNC_SEED = 28
"""Among SEEDS: a state sync cut by a crash, then redone to the end, and block sync."""
REPO = Path(__file__).resolve().parents[1]


@functools.cache
def results() -> dict[int, NodeResult]:
    return {seed: run_node_seed(seed) for seed in SEEDS}


@functools.cache
def finished_world() -> NodeWorld:
    """A run that passed, for the checkers to be fed violations (each test copies
    nothing: the ones that alter it alter only what they then check)."""
    world = NodeWorld(5)
    assert world.run().ok
    return world


def _memory_store(world: NodeWorld, index: int) -> MemoryStore:
    node = world.hosts[world.names[index]].node
    assert node is not None and isinstance(node.store, MemoryStore)
    return node.store


# --- campaigns -------------------------------------------------------------------------------

def test_a_handful_of_seeds_pass_every_checker() -> None:
    failed = [node_failure_line(r) for r in results().values() if not r.ok]
    assert not failed, "\n".join(failed)
    for result in results().values():
        # Every node past genesis (the liveness checker holds each to the heal target;
        # the others may have gone on meanwhile).
        assert min(result.heights) > 0, result.heights


def test_the_seeds_reach_block_sync_and_a_crash_in_the_middle_of_a_state_sync() -> None:
    stats = results()[SYNC_SEED].stats
    assert stats["state syncs cut"] >= 1, stats
    assert stats["state syncs finished"] >= 1, stats
    assert stats["blocks by block sync"] >= 1, stats
    totals: Counter[str] = Counter()
    for result in results().values():
        totals.update(result.stats)
    for what in ("crashes", "crashes before the sends", "long outages", "partitions",
                 "state syncs started", "block sync batches", "acknowledged",
                 "messages lost"):
        assert totals[what] > 0, (what, dict(totals))


def test_a_seed_replays_exactly() -> None:
    again = run_node_seed(SYNC_SEED)
    first = results()[SYNC_SEED]
    assert (again.digest, again.heights, again.stats) == (first.digest, first.heights,
                                                          first.stats)
    assert run_node_seed(3).digest != first.digest


def test_replay_does_not_depend_on_the_process() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    done = subprocess.run([sys.executable, "-m", "tidechain.sim", "--nodes", "--seed", "3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"digest {results()[3].digest}" in done.stdout


# --- the checkers fire ---------------------------------------------------------------------

def test_the_acknowledged_checker_fires_when_a_node_loses_a_committed_transaction() -> None:
    world = finished_world()
    world._final_checks()  # as it passed
    tx_id, (log_index, _) = next(iter(world.acked.items()))
    store = _memory_store(world, 2)
    kept = store._tables.by_tx.pop(tx_id)  # node2 no longer finds it
    try:
        with pytest.raises(NodeFailure, match="is missing on sim-net/node2") as failure:
            world._final_checks()
        assert failure.value.kind == "safety"
    finally:
        store._tables.by_tx[tx_id] = kept
    world.acked[tx_id] = (log_index + 1, world.acked[tx_id][1])  # acknowledged elsewhere
    try:
        with pytest.raises(NodeFailure, match=f"at {log_index} on sim-net/node0"):
            world._final_checks()
    finally:
        world.acked[tx_id] = (log_index, world.acked[tx_id][1])
    world._final_checks()


def test_the_agreement_checker_fires_on_another_block_at_a_height() -> None:
    world = finished_world()
    host = world.hosts[world.names[1]]
    with pytest.raises(NodeFailure, match="at height 1, another node") as failure:
        world._check_block(host, 1, b"\x01" * 32, b"\x02" * 32)
    assert failure.value.kind == "safety"
    # On disks at rest: another seed's chain differs from block 1 on.
    other = NodeWorld(3)
    assert other.run().ok
    check_agreement([("a", _memory_store(world, 0)), ("b", _memory_store(world, 1))])
    with pytest.raises(NodeFailure, match="differ at height 1"):
        check_agreement([("a", _memory_store(world, 0)), ("b", _memory_store(other, 0))])


def test_a_restart_below_the_height_committed_before_the_crash_fails() -> None:
    world = NodeWorld(8)
    assert world.run().ok
    host = world.hosts[world.names[3]]
    world._crash(host, None)
    assert host.durable_height > 0
    host.image = MemoryStore().crash()  # a disk that lost every block
    with pytest.raises(NodeFailure, match=f"restarted at height 0, had committed "
                                          f"{host.durable_height}") as failure:
        world._restart(host)
    assert failure.value.kind == "safety"


def test_the_liveness_checker_fires_when_the_nodes_do_not_commit_after_the_heal() -> None:
    result = run_node_seed(5, heal_budget_ms=0)
    assert result.kind == "liveness" and "did not all reach" in (result.reason or "")
    assert ("replay: python -m tidechain.sim --validators 4 --heal-budget-ms 0 "
            "--seed 5 --verbose") in node_failure_line(result)


def test_an_exception_in_a_node_or_a_peer_error_on_honest_bytes_fails_the_seed() -> None:
    world = finished_world()
    host = world.hosts[world.names[0]]

    def broken(node: Node) -> None:
        raise ValueError("a bug in the node")

    with pytest.raises(NodeFailure, match="node0: ValueError: a bug in the node") as failure:
        world._call(host, broken)
    assert failure.value.kind == "crash"
    honest = next(n for n in world.names[1:] if n not in world.scenario.byzantine)
    with pytest.raises(NodeFailure, match=f"rejected honest {honest}'s message") as failure:
        world._on_msg((host.name, host.incarnation, honest, b"\x00not a message"))
    assert failure.value.kind == "crash"


def test_cli_runs_a_node_campaign_and_names_each_failing_seed(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--nodes", "--seeds", "2", "--first-seed", "5", "--heal-budget-ms", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL seed=5 liveness" in out and "FAIL seed=6 liveness" in out
    assert "--validators 4 --heal-budget-ms 0 --seed 6 --verbose" in out
    assert ("nodes n=4: 2 seeds, 0 safety violations, 0 honest-step violations, "
            "2 liveness failures, 0 crashes") in out
    assert "state syncs cut" in out and "blocks by block sync" in out
    assert main(["--nodes", "--seed", "5", "--heal-budget-ms", "0"]) == 1
    assert "seed=5 liveness" in capsys.readouterr().out


def test_a_transaction_a_state_sync_imported_is_reported_committed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 6 (seed 32 before Byzantine validators changed the draws): a node admits
    transactions while it state-syncs; the sync imports the blocks holding them. The
    node used to leave them pending, drop them at its next proposal as replays and
    tell their waiters "dropped" (NodeCore._settle_imported now settles them)."""
    settled: list[int] = []
    original = NodeCore._settle_imported

    def counted(core: NodeCore) -> None:
        before = len(core._effects)
        original(core)
        settled.append(len(core._effects) - before)

    monkeypatch.setattr(NodeCore, "_settle_imported", counted)
    result = run_node_seed(6)
    assert result.ok, node_failure_line(result)
    assert result.stats.get("committed but reported dropped", 0) == 0
    assert result.stats["state syncs finished"] >= 1
    assert sum(settled) > 0  # the path ran: imported transactions were settled


# --- Byzantine validators, reconfiguration, steering ----------------------------------------

def test_equivocating_validators_split_what_they_sign_and_the_honest_ones_agree() -> None:
    for result in results().values():
        assert result.stats["Byzantine splits"] > 0, result.stats  # f = 1 at n = 4
    world = NodeWorld(3)
    assert len(world.scenario.byzantine) == 1
    assert world.run().ok


def test_the_set_changes_three_times_by_governance_and_the_runs_pass() -> None:
    """Add the spare, replace a key (its node restarts with the new key), remove a
    validator: all applied, every checker passes (n = 4, and n = 7 for one seed)."""
    for seed in (0, 2, 4):
        world = NodeWorld(seed, reconfigure=True)
        result = world.run()
        assert result.ok, node_failure_line(result)
        assert result.stats["set changes applied"] == 3, result.stats
        assert result.stats.get("restarts with a new key", 0) >= 1, result.stats
        nodes = [h.node for h in world.hosts.values() if h.node is not None]
        node = max(nodes, key=lambda n: n.chain.height)
        names = [v.name for v in node.validators.validators]
        assert world.cast.spare.name in names and len(names) == 4
    result = run_node_seed(1, validators=7, reconfigure=True)
    assert result.ok and result.stats["set changes applied"] == 3, node_failure_line(result)


def test_the_steering_reaches_the_hard_cases_in_most_seeds() -> None:
    """Lock traps crash validators that just locked; Byzantine splits and crashes make
    conflicting proposals and proof-of-lock re-proposals (issue 12)."""
    runs = [run_node_seed(seed) for seed in range(20)]
    assert all(r.ok for r in runs), [node_failure_line(r) for r in runs if not r.ok]

    def seeds_with(stat: str) -> int:
        return sum(1 for r in runs if r.stats.get(stat, 0) > 0)

    assert seeds_with("hard case: locked validator restarted") > 10
    assert seeds_with("hard case: proof-of-lock proposal received") > 10
    assert seeds_with("hard case: locked validator got another block") >= 5
    assert seeds_with("rule _rule_precommit_on_polka") == 20


# --- the CI campaign -------------------------------------------------------------------------

CI_CAMPAIGNS = ((4, 150), (7, 30))
"""(validators, seeds) the default suite runs, on two worker processes: with the other
tests here, a couple of hundred seeds of the shipped node core on every CI run. The
5,000-seed campaigns are in docs/simulator.md."""


@pytest.mark.parametrize(("validators", "seeds"), CI_CAMPAIGNS)
def test_ci_campaign_passes_every_checker(validators: int, seeds: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidechain.sim", "--validators", str(validators),
         "--seeds", str(seeds), "--first-seed", "1000", "--jobs", "2"],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"nodes n={validators}: {seeds} seeds, 0 safety violations, 0 honest-step "
            "violations, 0 liveness failures, 0 crashes") in done.stdout, done.stdout
    assert "prevotes checked while locked" in done.stdout
