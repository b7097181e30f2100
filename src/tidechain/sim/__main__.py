"""`python -m tidechain.sim`: run a campaign of seeds, or replay one seed.

    python -m tidechain.sim --seeds 5000 --validators 4            # campaign
    python -m tidechain.sim --seeds 5000 --validators 7 --jobs 2   # on two cores
    python -m tidechain.sim --validators 4 --seed 14 --verbose     # replay with trace
    python -m tidechain.sim --nodes --seeds 200                    # real nodes (sim/nodes.py)
    python -m tidechain.sim --nodes --seed 7 --verbose             # replay one node-level seed
    python -m tidechain.sim --seeds 100 --mutation forget-lock      # a weakened replica

Exit status 1 if any seed failed (safety, conformance, liveness or crash); every failure
prints its seed and the command that replays it. `--safety-only` exits 1 only for safety
violations, conformance failures and crashes (liveness failures are still printed).
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import sys
import time
from collections.abc import Iterator

from tidechain.sim.campaign import Summary, failure_line, run_campaign, run_seed
from tidechain.sim.mutations import MUTATIONS, applied
from tidechain.sim.nodes import (
    NODE_FAULT_MS,
    NODE_HEAL_BUDGET_MS,
    NodeResult,
    NodeSummary,
    NodeWorld,
    node_failure_line,
    run_node_seed,
)
from tidechain.sim.scenario import HEAL_BUDGET_MS
from tidechain.sim.world import DEFAULT_FAULT_MS, SimResult, World

_PROGRESS_EVERY = 500  # seeds between progress lines


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tidechain.sim",
                                     description="Seeded consensus simulator.")
    parser.add_argument("--validators", "-n", type=int, default=4)
    parser.add_argument("--byzantine", "-f", type=int, default=None,
                        help="Byzantine validators (default: the most tolerated, (n-1)//3)")
    parser.add_argument("--seeds", type=int, default=200, help="campaign size")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed")
    parser.add_argument("--verbose", "-v", action="store_true", help="print the trace")
    parser.add_argument("--fault-ms", type=int, default=None,
                        help=f"length of the fault phase (default {DEFAULT_FAULT_MS}; "
                             f"{NODE_FAULT_MS} with --nodes)")
    parser.add_argument("--heal-budget-ms", type=int, default=None,
                        help="virtual time allowed for recovery after the heal (default "
                             f"{HEAL_BUDGET_MS}; {NODE_HEAL_BUDGET_MS} with --nodes)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    parser.add_argument("--safety-only", action="store_true")
    parser.add_argument("--reconfigure", action="store_true",
                        help="change the validator set during each run (ADR 0011)")
    parser.add_argument("--nodes", action="store_true",
                        help="run real Nodes on MemoryStores (sim/nodes.py) instead of "
                             "bare replicas; all validators honest")
    parser.add_argument("--mutation", choices=sorted(MUTATIONS), default=None,
                        help="weaken one rule of the replica (sim/mutations.py; tests only)")
    parser.add_argument("--no-conformance", action="store_true",
                        help="do not run the honest step auditor (sim/conformance.py)")
    args = parser.parse_args(argv)
    if args.fault_ms is None:
        args.fault_ms = NODE_FAULT_MS if args.nodes else DEFAULT_FAULT_MS
    if args.heal_budget_ms is None:
        args.heal_budget_ms = NODE_HEAL_BUDGET_MS if args.nodes else HEAL_BUDGET_MS
    return args


def _replay(args: argparse.Namespace, byzantine: int) -> int:
    sink = print if args.verbose else None
    with applied(args.mutation):
        result = World(args.seed, args.validators, byzantine, fault_ms=args.fault_ms,
                       heal_budget_ms=args.heal_budget_ms, sink=sink,
                       reconfigure=args.reconfigure,
                       conformance=not args.no_conformance).run()
    print(f"seed={result.seed} {'ok' if result.ok else result.kind}: "
          f"{result.reason or 'all checks passed'}; min height {result.min_height}, "
          f"virtual {result.end_ms} ms, trace {result.digest}")
    return 0 if result.ok else 1


def _results(args: argparse.Namespace, byzantine: int) -> Iterator[SimResult]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    one = functools.partial(run_seed, validators=args.validators, byzantine=byzantine,
                            fault_ms=args.fault_ms, heal_budget_ms=args.heal_budget_ms,
                            reconfigure=args.reconfigure, mutation=args.mutation,
                            conformance=not args.no_conformance)
    if args.jobs <= 1:
        yield from map(one, seeds)
        return
    with multiprocessing.Pool(args.jobs) as pool:
        yield from pool.imap(one, seeds, chunksize=8)


def _node_results(args: argparse.Namespace) -> Iterator[NodeResult]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    one = functools.partial(run_node_seed, validators=args.validators,
                            fault_ms=args.fault_ms, heal_budget_ms=args.heal_budget_ms)
    if args.jobs <= 1:
        yield from map(one, seeds)
        return
    with multiprocessing.Pool(args.jobs, initializer=_quiet) as pool:
        yield from pool.imap(one, seeds, chunksize=4)


def _quiet() -> None:
    """The nodes log what a real node logs (untimely proposals, abandoned state syncs);
    a campaign prints only its results."""
    logging.getLogger("tidechain").setLevel(logging.CRITICAL)


def _nodes_main(args: argparse.Namespace) -> int:
    logger = logging.getLogger("tidechain")
    saved = logger.level
    if not args.verbose:
        _quiet()
    try:
        return _nodes_run(args)
    finally:
        logger.setLevel(saved)  # `main` is called in-process by the tests


def _nodes_run(args: argparse.Namespace) -> int:
    if args.seed is not None:
        sink = print if args.verbose else None
        result = NodeWorld(args.seed, args.validators, fault_ms=args.fault_ms,
                           heal_budget_ms=args.heal_budget_ms, sink=sink).run()
        print(f"seed={result.seed} {'ok' if result.ok else result.kind}: "
              f"{result.reason or 'all checks passed'}; heights {list(result.heights)}, "
              f"virtual {result.end_ms} ms, digest {result.digest}")
        return 0 if result.ok else 1
    started = time.monotonic()
    summary = NodeSummary(args.validators)
    for result in _node_results(args):
        summary.add(result)
        if not result.ok:
            print(node_failure_line(result), flush=True)
        if summary.runs % _PROGRESS_EVERY == 0 and summary.runs < args.seeds:
            print(f"... {summary.text(time.monotonic() - started)}", flush=True)
    print(summary.text(time.monotonic() - started))
    print(summary.detail_text())
    fatal = summary.count("safety") + summary.count("crash")
    return 1 if fatal or (summary.failures and not args.safety_only) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.nodes:
        return _nodes_main(args)
    byzantine = (args.validators - 1) // 3 if args.byzantine is None else args.byzantine
    if args.seed is not None:
        return _replay(args, byzantine)
    started = time.monotonic()

    summary = Summary(args.validators, byzantine)

    def report(result: SimResult) -> None:
        if not result.ok:
            print(failure_line(result, args.fault_ms, args.heal_budget_ms, args.mutation),
                  flush=True)
        if summary.runs % _PROGRESS_EVERY == 0 and summary.runs < args.seeds:
            print(f"... {summary.text(time.monotonic() - started)}", flush=True)

    run_campaign(_results(args, byzantine), summary, report)
    print(summary.text(time.monotonic() - started))
    print(summary.coverage_text())
    if args.mutation is not None:
        print(f"mutation {args.mutation}: {MUTATIONS[args.mutation]}")
    fatal = summary.count("safety") + summary.count("conformance") + summary.count("crash")
    return 1 if fatal or (summary.failures and not args.safety_only) else 0


if __name__ == "__main__":
    sys.exit(main())
