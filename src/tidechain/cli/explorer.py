"""`tide explorer verify-html [-o FILE]`: write the receipt verifier as one standalone
HTML file (explorer/verify_html.py) and print its SHA-256, so that a court or an auditor
can check receipts in a browser with no node, no server and no network, and compare the
page with the hash published in docs/verify-html.md. Offline: no node is contacted."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, group
from tidechain.client.sdk import write_atomically

DEFAULT_OUTPUT = "verify.html"


def cmd_verify_html(args: argparse.Namespace, out: Output) -> int:
    from tidechain.explorer.verify_html import build_verify_html, verify_html_sha256

    html = build_verify_html()
    path = Path(args.output)
    write_atomically(path, html)
    digest = verify_html_sha256(html)
    size = len(html.encode("utf-8"))
    out.result({"path": str(path), "sha256": digest, "bytes": size},
               [f"wrote the standalone receipt verifier to {path} ({size} bytes)",
                f"  sha256           {digest}",
                "  open it from disk in any browser: it loads nothing and sends nothing"])
    return EXIT_OK


def register(commands: Any) -> None:
    explorer = group(commands, "explorer", "the web explorer's files")
    p = add(explorer, "verify-html", cmd_verify_html,
            "write the receipt verifier as one self-contained HTML file and print its "
            "SHA-256")
    p.add_argument("-o", "--output", metavar="FILE", default=DEFAULT_OUTPUT,
                   help=f"where to write it (default: {DEFAULT_OUTPUT})")
