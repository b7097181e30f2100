"""Many seeds: run them, count failures by kind, name every failing seed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tidechain.sim.scenario import HEAL_BUDGET_MS
from tidechain.sim.world import DEFAULT_FAULT_MS, SimResult, World


def run_seed(seed: int, validators: int, byzantine: int, fault_ms: int = DEFAULT_FAULT_MS,
             heal_budget_ms: int = HEAL_BUDGET_MS, reconfigure: bool = False) -> SimResult:
    """One seeded run; the same arguments always give the same result and digest."""
    return World(seed, validators, byzantine, fault_ms=fault_ms,
                 heal_budget_ms=heal_budget_ms, reconfigure=reconfigure).run()


def replay_command(result: SimResult, fault_ms: int = DEFAULT_FAULT_MS,
                   heal_budget_ms: int = HEAL_BUDGET_MS) -> str:
    extra = "" if fault_ms == DEFAULT_FAULT_MS else f" --fault-ms {fault_ms}"
    if heal_budget_ms != HEAL_BUDGET_MS:
        extra += f" --heal-budget-ms {heal_budget_ms}"
    if result.reconfigure:
        extra += " --reconfigure"
    return (f"python -m tidechain.sim --validators {result.validators} "
            f"--byzantine {result.byzantine}{extra} --seed {result.seed} --verbose")


def failure_line(result: SimResult, fault_ms: int = DEFAULT_FAULT_MS,
                 heal_budget_ms: int = HEAL_BUDGET_MS) -> str:
    """`seed=N kind: reason` and how to replay it."""
    return (f"FAIL seed={result.seed} {result.kind}: {result.reason}\n"
            f"     replay: {replay_command(result, fault_ms, heal_budget_ms)}")


@dataclass
class Summary:
    validators: int
    byzantine: int
    runs: int = 0
    failures: list[SimResult] = field(default_factory=list)
    virtual_ms: int = 0
    evidence: int = 0

    def add(self, result: SimResult) -> None:
        self.runs += 1
        self.virtual_ms += result.end_ms
        self.evidence += result.evidence
        if not result.ok:
            self.failures.append(result)

    def count(self, kind: str) -> int:
        return sum(1 for r in self.failures if r.kind == kind)

    def text(self, seconds: float) -> str:
        kinds = Counter(r.kind for r in self.failures)
        return (f"n={self.validators} byzantine={self.byzantine}: {self.runs} seeds, "
                f"{kinds['safety']} safety violations, {kinds['liveness']} liveness "
                f"failures, {kinds['crash']} crashes; {self.virtual_ms / 1000:.0f} s virtual "
                f"time, {self.evidence} equivocations caught, {seconds:.1f} s wall")


def run_campaign(results: Iterable[SimResult], summary: Summary,
                 report: Callable[[SimResult], None] | None = None) -> Summary:
    """Fold results (however they were computed) into `summary`; `report` sees each."""
    for result in results:
        summary.add(result)
        if report is not None:
            report(result)
    return summary
