"""docs/api.md's endpoint table is the route table's (tools/make_api_doc.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_endpoint_table_in_the_docs_is_generated_from_the_routes() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "make_api_doc.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
