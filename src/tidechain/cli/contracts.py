"""`tide contracts describe`: every contract method the node runs, with the roles
allowed to call it (ask `tide call --help` for their arguments)."""

from __future__ import annotations

import argparse
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, client, group


def cmd_contracts_describe(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        contracts = sdk.contracts()
    lines = []
    for contract in contracts:
        lines.append(f"{contract['name']}: {contract['description']}")
        for method in contract["methods"]:
            roles = ", ".join(method["roles"])
            lines.append(f"  {contract['name']}.{method['name']:<12} roles: {roles:<14} "
                         f"{method['summary']}")
    out.result({"contracts": contracts}, lines)
    return EXIT_OK


def register(commands: Any) -> None:
    contracts = group(commands, "contracts", "the built-in contracts")
    add(contracts, "describe", cmd_contracts_describe,
        "list every contract method and the roles allowed to call it")
