"""The `tide` command's parser: every client verb, by area, in one table.

Each area is a module with `register(commands)` (verbs over the SDK; nothing here
imports the node). The operator verbs that run the node's own code (`tide init`,
`tide node ...`, `tide cluster ...`) live in `tidechain.ops` and are added by the
entry point, `tidechain.tide`, which composes both.

Exit codes: 0 success, 1 verification failed, 2 input rejected (by us or by the
node), 3 node unreachable. A `Rejected` is printed as `error: <code>: <reason>`,
never as a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tidechain.cli import (
    chain,
    contracts,
    events,
    evidence,
    explorer,
    generic,
    governance,
    invoice,
    keys,
    members,
    scf,
    timestamp,
    trace,
)
from tidechain.cli.base import Registrar, common_options, run

AREAS: tuple[Registrar, ...] = (
    evidence.register,     # deposit, verify, evidence lookup/sign/show/publish/proof
    timestamp.register,    # timestamp: RFC 3161, backed by a deposit
    chain.register,        # status, tx, block, proof, log, checkpoint, trust
    members.register,      # member, org
    governance.register,   # gov
    invoice.register,      # invoice
    scf.register,          # scf: supply-chain finance
    contracts.register,    # contracts describe
    generic.register,      # call, query: any application, from the registry
    keys.register,         # key pem: key files for OpenSSL and curl
    explorer.register,     # explorer verify-html: the standalone receipt verifier
    events.register,       # events [--follow]: one line per committed block
    trace.register,        # trace ID, epcis capture/events/recall: traceability
)


def build_parser(extra: Sequence[Registrar] = ()) -> argparse.ArgumentParser:
    """The parser of every client verb, after the `extra` areas' (operator verbs)."""
    parser = argparse.ArgumentParser(
        prog="tide", description="tidechain: consortium chain node, client and verifier.",
        epilog="exit codes: 0 ok, 1 verification failed, 2 rejected input, 3 node unreachable",
    )
    common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    for register in (*extra, *AREAS):
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None, extra: Sequence[Registrar] = ()) -> int:
    """Run the client verbs (and the `extra` areas) with `argv`; the exit code."""
    return run(build_parser(extra), argv)
