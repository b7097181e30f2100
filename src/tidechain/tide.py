"""The `tide` command: the client verbs (cli/) and the operator verbs that run the
node's code (ops/) in one parser. `python -m tidechain` runs it too."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tidechain.cli.main import main as cli_main
from tidechain.ops.commands import register as operator_verbs


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tide` with `argv` (default: sys.argv[1:]); return the exit code."""
    return cli_main(argv, extra=(operator_verbs,))


if __name__ == "__main__":
    sys.exit(main())
