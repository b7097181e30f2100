"""Write docs/api.md's endpoint table from the route table (api/routes.py), between
its `<!-- generated: ... -->` markers. tests/test_api_doc.py keeps the two equal.

    .venv/bin/python tools/make_api_doc.py          # rewrite docs/api.md
    .venv/bin/python tools/make_api_doc.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from tidechain.api.routes import all_routes, endpoint_table
from tidechain.contracts import default_registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BEGIN = "<!-- generated: tools/make_api_doc.py -->\n"
END = "<!-- end generated -->\n"


def render(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + endpoint_table(all_routes(default_registry())) + text[end:]


def main() -> int:
    text = DOC.read_text()
    fresh = render(text)
    if "--check" in sys.argv[1:]:
        if fresh != text:
            print("docs/api.md is out of date: run .venv/bin/python tools/make_api_doc.py")
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
