"""`tide events [--follow] [--from HEIGHT]`: committed blocks as the node's event stream
reports them (GET /v1/events, docs/operations.md), one line each, or one JSON object a
line with --json. Without --follow it prints up to the head and stops (the head alone
without --from); with --follow it goes on with each new block until interrupted,
resuming by itself where it left off if the connection drops."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, client
from tidechain.core.timefmt import iso_utc


def event_line(event: dict[str, Any]) -> str:
    """`height 12  2026-01-05T10:00:00.253Z  3 txs  log size 18  by acme-net/node0  3b9e5f...`"""
    count = event["tx_count"]
    return (f"height {event['height']}  {iso_utc(event['time_ms'])}  "
            f"{count} tx{'s' * (count != 1)}  log size {event['log_size']}  "
            f"by {event['proposer']}  {event['hash']}")


def cmd_events(args: argparse.Namespace, out: Output) -> int:
    with client(args) as sdk:
        for event in sdk.events(from_height=args.from_height, follow=args.follow):
            out.out.write((json.dumps(event, sort_keys=True) if out.as_json
                           else event_line(event)) + "\n")
            out.out.flush()  # one line per commit as it happens, also into a pipe
    return EXIT_OK


def _height(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a height (a decimal integer)")
    return int(text)


def register(commands: Any) -> None:
    p = add(commands, "events", cmd_events,
            "committed blocks as they happen (the node's event stream), one line each")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing each new block until interrupted")
    p.add_argument("--from", dest="from_height", type=_height, metavar="HEIGHT",
                   help="start at this height (default: the head without --follow, the "
                        "next block with it)")
