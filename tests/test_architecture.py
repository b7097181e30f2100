"""Invariants of the code base itself, stated as absences (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tidechain"
PURE_PACKAGES = ["core", "consensus", "ledger", "contracts"]
IMPURE_MODULES = {"asyncio", "socket", "time", "random", "os", "sqlite3", "threading",
                  "subprocess", "aiohttp", "httpx", "secrets", "datetime"}
SHELL_ONLY = {"tidechain.node", "tidechain.api", "tidechain.cli", "tidechain.client",
              "tidechain.storage"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_do_no_io_and_read_no_clock(package: str) -> None:
    for path in _files(package):
        for name in _imports(path):
            root = name.split(".")[0]
            assert root not in IMPURE_MODULES, f"{path.relative_to(SRC)} imports {name}"
            assert not any(name == s or name.startswith(s + ".") for s in SHELL_ONLY), (
                f"{path.relative_to(SRC)} (pure) imports the shell module {name}")


def test_only_storage_opens_the_database() -> None:
    for path in SRC.rglob("*.py"):
        if "sqlite3" in _imports(path):
            assert path.parent.name == "storage", f"{path.relative_to(SRC)} imports sqlite3"


def test_the_offline_verifier_does_not_touch_the_network() -> None:
    verify = SRC / "client" / "verify.py"
    if not verify.exists():
        pytest.skip("client/verify.py not written yet")
    for name in _imports(verify):
        assert name.split(".")[0] not in {"httpx", "socket", "aiohttp", "urllib"}, name
