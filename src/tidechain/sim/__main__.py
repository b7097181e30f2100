"""`python -m tidechain.sim`: run a campaign of seeds, or replay one seed.

Every seed runs n copies of the shipped node core (`node/core.py`) on in-memory
stores, with a fake network, clock and disks (sim/nodes.py, docs/simulator.md).

    python -m tidechain.sim --seeds 5000 --validators 4 --jobs 2    # campaign, f = 1
    python -m tidechain.sim --seeds 5000 --validators 7 --jobs 2    # f = 2
    python -m tidechain.sim --validators 4 --seed 14 --verbose      # replay with trace
    python -m tidechain.sim --seeds 300 --mutation forget-lock      # a weakened rule

Exit status 1 if any seed failed (safety, honest-step, liveness or crash); every
failure prints its seed and the command that replays it. `--safety-only` exits 1 only
for safety and honest-step violations and crashes (liveness failures are printed).
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import sys
import time
from collections.abc import Iterator

from tidechain.sim.mutations import MUTATIONS
from tidechain.sim.nodes import (
    NODE_FAULT_MS,
    NODE_HEAL_BUDGET_MS,
    NodeResult,
    NodeSummary,
    node_failure_line,
    replay_node_seed,
    run_node_seed,
)

_PROGRESS_EVERY = 500  # seeds between progress lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tidechain.sim",
                                     description="Seeded simulator of the shipped node core.")
    parser.add_argument("--validators", "-n", type=int, default=4)
    parser.add_argument("--byzantine", "-f", type=int, default=None,
                        help="equivocating validators (default: the most tolerated, (n-1)//3)")
    parser.add_argument("--seeds", type=int, default=200, help="campaign size")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed")
    parser.add_argument("--verbose", "-v", action="store_true", help="print the trace")
    parser.add_argument("--fault-ms", type=int, default=NODE_FAULT_MS,
                        help=f"length of the fault phase (default {NODE_FAULT_MS})")
    parser.add_argument("--heal-budget-ms", type=int, default=NODE_HEAL_BUDGET_MS,
                        help="virtual time allowed for recovery after the heal (default "
                             f"{NODE_HEAL_BUDGET_MS})")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    parser.add_argument("--safety-only", action="store_true")
    parser.add_argument("--reconfigure", action="store_true",
                        help="change the validator set by governance in every seed (by "
                             "default in half of them, drawn from the seed)")
    parser.add_argument("--mutation", choices=sorted(MUTATIONS), default=None,
                        help="weaken one rule of the replica (sim/mutations.py; tests only)")
    parser.add_argument("--no-conformance", action="store_true",
                        help="do not run the honest step auditor (sim/conformance.py)")
    parser.add_argument("--nodes", action="store_true",
                        help="accepted for old commands: every run is node-level now")
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> dict[str, object]:
    return {"validators": args.validators, "fault_ms": args.fault_ms,
            "heal_budget_ms": args.heal_budget_ms, "byzantine": args.byzantine,
            "reconfigure": True if args.reconfigure else None, "mutation": args.mutation,
            "conformance": not args.no_conformance}


def _results(args: argparse.Namespace) -> Iterator[NodeResult]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    one = functools.partial(run_node_seed, **_options(args))  # type: ignore[arg-type]
    if args.jobs <= 1:
        yield from map(one, seeds)
        return
    with multiprocessing.Pool(args.jobs, initializer=_quiet) as pool:
        yield from pool.imap(one, seeds, chunksize=4)


def _quiet() -> None:
    """The nodes log what a real node logs (untimely proposals, abandoned state syncs);
    a campaign prints only its results."""
    logging.getLogger("tidechain").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logger = logging.getLogger("tidechain")
    saved = logger.level
    if not args.verbose:
        _quiet()
    try:
        return _run(args)
    finally:
        logger.setLevel(saved)  # `main` is called in-process by the tests


def _run(args: argparse.Namespace) -> int:
    if args.seed is not None:
        result = replay_node_seed(args.seed, sink=print if args.verbose else None,
                                  **_options(args))  # type: ignore[arg-type]
        print(f"seed={result.seed} {'ok' if result.ok else result.kind}: "
              f"{result.reason or 'all checks passed'}; heights {list(result.heights)}, "
              f"virtual {result.end_ms} ms, digest {result.digest}")
        return 0 if result.ok else 1
    started = time.monotonic()
    summary = NodeSummary(args.validators)
    for result in _results(args):
        summary.add(result)
        if not result.ok:
            print(node_failure_line(result), flush=True)
        if summary.runs % _PROGRESS_EVERY == 0 and summary.runs < args.seeds:
            print(f"... {summary.text(time.monotonic() - started)}", flush=True)
    print(summary.text(time.monotonic() - started))
    print(summary.detail_text())
    fatal = summary.count("safety") + summary.count("conformance") + summary.count("crash")
    return 1 if fatal or (summary.failures and not args.safety_only) else 0


if __name__ == "__main__":
    sys.exit(main())
