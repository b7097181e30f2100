"""The web explorer and console the node serves (issue 16): plain HTML and ES modules in
`static/`, shipped in the wheel with no build step, reading the same typed, paged API
as the SDK with the caller's own credentials; and the receipt verifier that runs in the
browser, trusting no node (`static/verify/`, also as one self-contained verify.html)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
