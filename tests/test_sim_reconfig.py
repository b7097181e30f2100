"""The simulator with validator-set changes (ADR 0011): a spare validator is added, an
honest validator's key rotated and another honest validator removed, at heights drawn
from the seed, under every fault (loss, partitions, crashes cutting a step, twins and
equivocators). Safety, certificates against the set of their height, honest signing
and liveness after the heal must hold; a seed replays exactly."""

from __future__ import annotations

import functools

from tests.test_sim import CI_FAULT_MS, CI_HEAL_MS
from tidechain.sim.campaign import failure_line, run_seed
from tidechain.sim.world import SimResult, World

N4_SEEDS = range(60)
N7_SEEDS = range(12)


@functools.cache
def campaign(validators: int, seeds: range) -> tuple[SimResult, ...]:
    byzantine = (validators - 1) // 3
    return tuple(run_seed(s, validators, byzantine, CI_FAULT_MS, CI_HEAL_MS,
                          reconfigure=True) for s in seeds)


def failed(results: tuple[SimResult, ...]) -> list[str]:
    return [failure_line(r, CI_FAULT_MS, CI_HEAL_MS) for r in results if not r.ok]


def test_four_validators_change_their_set_safely_and_recover() -> None:
    results = campaign(4, N4_SEEDS)
    assert not failed(results), "\n".join(failed(results))
    crossed = sum(r.stats.get("set boundaries crossed", 0) for r in results)
    assert crossed > 3 * len(results)  # by Commit (block sync crosses them too, uncounted)


def test_seven_validators_two_byzantine_change_their_set_safely() -> None:
    results = campaign(7, N7_SEEDS)
    assert not failed(results), "\n".join(failed(results))


def test_a_reconfiguration_seed_replays_exactly() -> None:
    first = run_seed(11, 4, 1, CI_FAULT_MS, CI_HEAL_MS, reconfigure=True)
    assert first.digest == run_seed(11, 4, 1, CI_FAULT_MS, CI_HEAL_MS, reconfigure=True).digest
    assert first.digest != run_seed(11, 4, 1, CI_FAULT_MS, CI_HEAL_MS).digest
    assert "--reconfigure" in failure_line(first, CI_FAULT_MS, CI_HEAL_MS)


def test_the_plan_keeps_byzantine_validators_within_f_of_every_set() -> None:
    for seed in range(30):
        world = World(seed, 4, 1, reconfigure=True)
        kinds = [c.kind for c in world.changes]
        assert kinds[0] == "add" and sorted(kinds) == ["add", "remove", "rotate"]
        heights = [c.height for c in world.changes]
        assert heights == sorted(set(heights))  # one change per height
        for change in world.changes:
            validators = world.set_at(change.height + 1)
            byzantine = {f"v{i}" for i in world.scenario.byzantine}
            names = {v.name for v in validators.validators}
            assert len(names & byzantine) <= validators.max_faulty
