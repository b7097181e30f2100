"""Many seeds: run them, count failures by kind, name every failing seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tidechain.consensus.replica import RULE_NAMES
from tidechain.sim import mutations
from tidechain.sim.conformance import COUNTS
from tidechain.sim.scenario import HEAL_BUDGET_MS
from tidechain.sim.world import DEFAULT_FAULT_MS, HARD_CASES, SimResult, World


def run_seed(seed: int, validators: int, byzantine: int, fault_ms: int = DEFAULT_FAULT_MS,
             heal_budget_ms: int = HEAL_BUDGET_MS, reconfigure: bool = False,
             mutation: str | None = None, conformance: bool = True) -> SimResult:
    """One seeded run; the same arguments always give the same result and digest.
    `mutation`: a name of `mutations.MUTATIONS`, applied to the replica for this run
    only (in this process: a campaign's worker applies it itself); `conformance`:
    whether the step auditor runs."""
    with mutations.applied(mutation):
        return World(seed, validators, byzantine, fault_ms=fault_ms,
                     heal_budget_ms=heal_budget_ms, reconfigure=reconfigure,
                     conformance=conformance).run()


def replay_command(result: SimResult, fault_ms: int = DEFAULT_FAULT_MS,
                   heal_budget_ms: int = HEAL_BUDGET_MS, mutation: str | None = None) -> str:
    extra = "" if fault_ms == DEFAULT_FAULT_MS else f" --fault-ms {fault_ms}"
    if heal_budget_ms != HEAL_BUDGET_MS:
        extra += f" --heal-budget-ms {heal_budget_ms}"
    if result.reconfigure:
        extra += " --reconfigure"
    if mutation is not None:
        extra += f" --mutation {mutation}"
    return (f"python -m tidechain.sim --validators {result.validators} "
            f"--byzantine {result.byzantine}{extra} --seed {result.seed} --verbose")


def failure_line(result: SimResult, fault_ms: int = DEFAULT_FAULT_MS,
                 heal_budget_ms: int = HEAL_BUDGET_MS, mutation: str | None = None) -> str:
    """`seed=N kind: reason` and how to replay it."""
    return (f"FAIL seed={result.seed} {result.kind}: {result.reason}\n"
            f"     replay: {replay_command(result, fault_ms, heal_budget_ms, mutation)}")


@dataclass
class Summary:
    validators: int
    byzantine: int
    runs: int = 0
    failures: list[SimResult] = field(default_factory=list)
    virtual_ms: int = 0
    evidence: int = 0
    rules: Counter[str] = field(default_factory=Counter)  # firings, all seeds
    rule_seeds: Counter[str] = field(default_factory=Counter)  # seeds it fired in
    hard_cases: Counter[str] = field(default_factory=Counter)  # occurrences, all seeds
    hard_seeds: Counter[str] = field(default_factory=Counter)  # seeds it happened in
    checked: Counter[str] = field(default_factory=Counter)  # step auditor, all seeds
    checked_seeds: Counter[str] = field(default_factory=Counter)

    def add(self, result: SimResult) -> None:
        self.runs += 1
        self.virtual_ms += result.end_ms
        self.evidence += result.evidence
        for counts, total, seeds in ((result.rules, self.rules, self.rule_seeds),
                                     (result.hard_cases, self.hard_cases, self.hard_seeds),
                                     (result.conformance, self.checked, self.checked_seeds)):
            for name, count in counts.items():
                total[name] += count
                seeds[name] += count > 0
        if not result.ok:
            self.failures.append(result)

    def count(self, kind: str) -> int:
        return sum(1 for r in self.failures if r.kind == kind)

    def text(self, seconds: float) -> str:
        kinds = Counter(r.kind for r in self.failures)
        return (f"n={self.validators} byzantine={self.byzantine}: {self.runs} seeds, "
                f"{kinds['safety']} safety violations, {kinds['conformance']} conformance "
                f"failures, {kinds['liveness']} liveness "
                f"failures, {kinds['crash']} crashes; {self.virtual_ms / 1000:.0f} s virtual "
                f"time, {self.evidence} equivocations caught, {seconds:.1f} s wall")

    def coverage_text(self) -> str:
        """Which upon-rules of the honest replicas fired (every rule is listed, a rule
        that never fired with 0), and how many seeds reached each hard case."""
        lines = ["rule coverage (honest replicas): firings, seeds it fired in"]
        lines += [f"  {name:<30} {self.rules[name]:>10} {self.rule_seeds[name]:>6}/{self.runs}"
                  for name in RULE_NAMES]
        lines.append("hard cases (honest nodes): occurrences, seeds reached")
        lines += [f"  {name:<36} {self.hard_cases[name]:>8} {self.hard_seeds[name]:>6}/{self.runs}"
                  for name in HARD_CASES]
        if self.checked:
            lines.append("honest steps checked (conformance.py): count, seeds")
            lines += [f"  {name:<40} {self.checked[name]:>6} "
                      f"{self.checked_seeds[name]:>4}/{self.runs}" for name in COUNTS]
        return "\n".join(lines)


def run_campaign(results: Iterable[SimResult], summary: Summary,
                 report: Callable[[SimResult], None] | None = None) -> Summary:
    """Fold results (however they were computed) into `summary`; `report` sees each."""
    for result in results:
        summary.add(result)
        if report is not None:
            report(result)
    return summary
