"""The seeded consensus simulator (`tidechain.sim`): campaigns of seeds with every
fault on, exact replay, and checkers that fire on fabricated violations.

A failing seed is named with the command that replays it (docs/simulator.md)."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tidechain.consensus import (
    PRECOMMIT,
    PREVOTE,
    CommitCertificate,
    SafetyState,
    SignStep,
    ValidatorInfo,
    ValidatorSet,
)
from tidechain.consensus.messages import sign_proposal, sign_vote
from tidechain.consensus.replica import RULE_NAMES, Replica
from tidechain.core.crypto import SigningKey
from tidechain.sim.__main__ import main
from tidechain.sim.blocks import SimBlock, make_block
from tidechain.sim.campaign import Summary, failure_line, run_campaign, run_seed
from tidechain.sim.checkers import Checkers, SimFailure
from tidechain.sim.world import HARD_CASES, SimResult, sim_keys

CI_FAULT_MS = 3_000  # shorter fault phase and recovery budget than the campaign's,
CI_HEAL_MS = 8_000  # to keep CI fast (`--fault-ms 3000 --heal-budget-ms 8000`)
N4_SEEDS = range(200)
N7_SEEDS = range(50)
STEERED_SEEDS = range(100)  # at the default fault phase: the hard cases (issue 12)
REPO = Path(__file__).resolve().parents[1]


@functools.cache
def campaign(validators: int, seeds: range) -> tuple[SimResult, ...]:
    """Run once, shared by the safety and liveness tests."""
    byzantine = (validators - 1) // 3
    return tuple(run_seed(s, validators, byzantine, CI_FAULT_MS, CI_HEAL_MS) for s in seeds)


def failures(results: tuple[SimResult, ...], *kinds: str) -> list[str]:
    return [failure_line(r, CI_FAULT_MS, CI_HEAL_MS) for r in results if r.kind in kinds]


def fatal(results: tuple[SimResult, ...]) -> list[str]:
    return failures(results, "safety", "crash")


# --- campaigns -----------------------------------------------------------------------------

def test_four_validators_one_byzantine_never_violate_safety() -> None:
    results = campaign(4, N4_SEEDS)
    assert not fatal(results), "\n".join(fatal(results))
    assert sum(r.evidence for r in results) > 0  # the Byzantine validators did equivocate


def test_seven_validators_two_byzantine_never_violate_safety() -> None:
    results = campaign(7, N7_SEEDS)
    assert not fatal(results), "\n".join(fatal(results))


def test_campaign_exercises_every_fault() -> None:
    totals: dict[str, int] = {}
    for result in campaign(4, N4_SEEDS) + campaign(7, N7_SEEDS):
        for what, count in result.stats.items():
            totals[what] = totals.get(what, 0) + count
    for what in ("lost", "duplicated", "partitions", "crashes", "crashes mid-step",
                 "equivocations", "blocks synced", "untimely proposals",
                 "lock traps sprung", "rounds split"):
        assert totals.get(what, 0) > 0, f"no {what} in the whole campaign: {totals}"
    assert all(r.min_height > 0 for r in campaign(4, N4_SEEDS) if r.ok)


def test_all_honest_nodes_commit_after_the_heal() -> None:
    stuck = failures(campaign(4, N4_SEEDS) + campaign(7, N7_SEEDS), "liveness")
    assert not stuck, "\n".join(stuck)


def test_a_new_proposal_found_untimely_does_not_stall_the_height() -> None:
    """Issue 12's kill-loop stall, in the simulator: a validator that finds a new
    proposal untimely (ADR 0006) must still prevote its block when a later round
    re-proposes it with a proof-of-lock. With the verdict cached as "invalid block",
    seed 255 (n = 4, default fault phase) never decided height 2 after the heal."""
    result = run_seed(255, 4, 1)
    assert result.ok, failure_line(result)
    assert result.stats.get("untimely proposals", 0) > 0


# --- coverage and steering ----------------------------------------------------------------

def test_rule_names_are_the_rules_in_firing_order() -> None:
    """The counted firing (`rule_counter`) must try the rules in `_fire_one_rule`'s
    order, or instrumented runs would differ from plain ones."""
    source = textwrap.dedent(inspect.getsource(Replica._fire_one_rule))
    called = [node.func.attr for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    assert tuple(called) == RULE_NAMES
    assert {n for n in vars(Replica) if n.startswith("_rule_")} == set(RULE_NAMES)


def test_rule_and_hard_case_counts_are_reported_and_deterministic() -> None:
    first, second = run_seed(5, 4, 1, CI_FAULT_MS), run_seed(5, 4, 1, CI_FAULT_MS)
    assert first.rules == second.rules and first.hard_cases == second.hard_cases
    assert first.rules["_rule_decide"] > 0 and set(first.rules) <= set(RULE_NAMES)
    assert set(first.hard_cases) <= set(HARD_CASES)
    summary = run_campaign(campaign(4, N4_SEEDS)[:20], Summary(4, 1))
    text = summary.coverage_text()
    for name in RULE_NAMES + HARD_CASES:
        assert name in text
    assert f"{summary.rule_seeds['_rule_decide']:>6}/20" in text


def test_steering_reaches_every_hard_case_in_most_seeds() -> None:
    """Lock traps and split traps (docs/simulator.md, "Steering"): over 100 seeds at
    the default fault phase, each hard case in a majority of seeds, and still no
    failure of any kind."""
    results = tuple(run_seed(s, 4, 1) for s in STEERED_SEEDS)
    assert not [r for r in results if not r.ok], [failure_line(r) for r in results if not r.ok]
    reached = {case: sum(r.hard_cases.get(case, 0) > 0 for r in results) for case in HARD_CASES}
    # Since a validator relays the polka it saw (seed 2789's fix), split locks heal
    # faster, and a locked validator meets another block in about a third of the seeds
    # (33 of these 100); the other two cases in most (docs/simulator.md).
    floor = {"locked validator got another block": len(results) // 4}
    assert all(seeds > floor.get(case, len(results) // 2) for case, seeds in reached.items()), \
        reached


# --- replay --------------------------------------------------------------------------------

def test_a_seed_replays_exactly() -> None:
    for seed in (5, 14):  # 14 was stuck by bug L2 before the fix (docs/simulator.md)
        first, second = run_seed(seed, 4, 1, CI_FAULT_MS), run_seed(seed, 4, 1, CI_FAULT_MS)
        assert first == second
    assert run_seed(5, 4, 1, CI_FAULT_MS).digest != run_seed(6, 4, 1, CI_FAULT_MS).digest


def test_replay_does_not_depend_on_the_process() -> None:
    """Python randomises str and bytes hashes per process: nothing may depend on it."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "tidechain.sim", "-n", "4", "--fault-ms", "1500",
             "--seed", "5"], capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
            check=False)
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert outputs[0] == outputs[1] and "trace " in outputs[0]


def test_cli_names_failing_seeds_and_replays_them(capsys: pytest.CaptureFixture[str]) -> None:
    summary = Summary(4, 1)
    failing = SimResult(seed=42, validators=4, byzantine=1, kind="safety", reason="fabricated",
                        digest="x", end_ms=1, min_height=0, evidence=0, stats={})
    lines: list[str] = []
    run_campaign([failing], summary, lambda r: lines.append(failure_line(r)))
    assert summary.count("safety") == 1
    assert lines == ["FAIL seed=42 safety: fabricated\n     replay: python -m tidechain.sim "
                     "--validators 4 --byzantine 1 --seed 42 --verbose"]
    assert main(["-n", "4", "--seeds", "2", "--fault-ms", "1000"]) in (0, 1)
    assert "n=4 byzantine=1: 2 seeds, 0 safety violations" in capsys.readouterr().out
    main(["-n", "4", "--seed", "3", "--fault-ms", "1000", "--verbose"])
    out = capsys.readouterr().out
    assert "scenario Scenario(seed=3" in out and "COMMIT h1" in out
    assert out.splitlines()[-1].endswith(run_seed(3, 4, 1, 1000).digest)


# --- the checkers fire ---------------------------------------------------------------------

def _validators() -> tuple[ValidatorSet, list[SigningKey]]:
    keys = sim_keys(4)
    return ValidatorSet(tuple(ValidatorInfo(f"v{i}", k.public_key)
                              for i, k in enumerate(keys))), keys


def _certificate(block: SimBlock, voters: range) -> CommitCertificate:
    validators, keys = _validators()
    votes = tuple(sign_vote(keys[i], f"v{i}", validators.digest, PRECOMMIT, block.height, 0,
                            block) for i in voters)
    return CommitCertificate(block.height, 0, block.block_hash, votes)


def test_agreement_checker_fires_on_two_blocks_at_one_height() -> None:
    validators, _ = _validators()
    checkers = Checkers(validators, set())
    x, y = make_block(1, b"x"), make_block(1, b"y")
    checkers.on_commit("v0", True, 0, x, _certificate(x, range(3)))
    checkers.on_commit("v1", True, 0, x, _certificate(x, range(1, 4)))  # same block: fine
    with pytest.raises(SimFailure, match="agreement: height 1") as info:
        checkers.on_commit("v2", True, 0, y, _certificate(y, range(1, 4)))
    assert info.value.kind == "safety"


@pytest.mark.parametrize("what", ["below quorum", "other block", "wrong height", "invalid",
                                  "gap"])
def test_commit_checkers_fire(what: str) -> None:
    validators, _ = _validators()
    x = make_block(1, b"x")
    checkers = Checkers(validators, {x.block_hash} if what == "invalid" else set())
    certificate, committed = _certificate(x, range(3)), 0
    if what == "below quorum":
        certificate = _certificate(x, range(2))
    elif what == "other block":
        certificate = _certificate(make_block(1, b"other"), range(3))
    elif what == "wrong height":
        certificate = _certificate(make_block(2, b"x"), range(3))
    elif what == "gap":
        committed = 3
    with pytest.raises(SimFailure):
        checkers.on_commit("v0", True, committed, x, certificate)


def test_honest_signing_checker_fires_on_double_signing_and_early_sends() -> None:
    validators, keys = _validators()
    checkers = Checkers(validators, set())
    x, y = make_block(1, b"x"), make_block(1, b"y")
    persisted = SafetyState(1, 0, SignStep.PREVOTE, bytes(32))
    first = sign_vote(keys[0], "v0", validators.digest, PREVOTE, 1, 0, x)
    checkers.on_honest_send("v0", first, persisted, 0)
    checkers.on_honest_send("v0", first, persisted, 0)  # re-sending the same bytes is fine
    with pytest.raises(SimFailure, match="signed two different prevotes"):
        checkers.on_honest_send("v0", sign_vote(keys[0], "v0", validators.digest, PREVOTE,
                                                1, 0, y), persisted, 0)
    early = sign_proposal(keys[1], "v1", validators.digest, 1, 1, x, -1)
    with pytest.raises(SimFailure, match="before persisting"):
        checkers.on_honest_send("v1", early, SafetyState(1, 0, SignStep.PRECOMMIT,
                                                         bytes(32)), 0)
    checkers.on_honest_send("v1", early, None, 1)  # the height is committed: no record needed
