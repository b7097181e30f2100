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
    """Every module `path` imports, relative imports resolved against its package."""
    package = ["tidechain", *path.relative_to(SRC).parent.parts]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[:len(package) - (node.level - 1)]
            if node.module:
                names.add(".".join([*base, node.module]))
            else:
                names.update(".".join([*base, alias.name]) for alias in node.names)
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


@pytest.mark.parametrize("module", ["rfc3161.py", "request.py"])
def test_the_time_stamp_codec_is_pure(module: str) -> None:
    """The RFC 3161 codec gets time and serials as arguments (ADR 0017); the TSA's
    certificate issuing (`tsa_cert.py`) reads dates, as identity/certs.py does."""
    path = SRC / "timestamp" / module
    for name in _imports(path):
        assert name.split(".")[0] not in IMPURE_MODULES, f"{module} imports {name}"
        assert not any(name == s or name.startswith(s + ".") for s in SHELL_ONLY), name


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


LAYERS: dict[str, set[str]] = {
    # package: the tidechain packages it must never import
    "node": {"api", "client", "cli", "ops"},
    "cli": {"node", "api", "ops"},
    "client": {"node", "api", "cli", "ops"},
    "contracts": {"node", "api", "client", "cli", "storage", "sim", "ops"},
}
"""Who may import whom: the node knows nothing of its edges (the API is handed to it by
ops/), the CLI talks to a node only through the SDK, and contracts sit on `ledger`."""


SHARED_MODELS = "tidechain.api.models"
"""The API's wire models (msgspec only): the server converts its answers through them
and the SDK checks what it receives with them (ADR 0014), so the client may import
this one module of `api`."""


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_import_only_downwards(package: str) -> None:
    banned = {f"tidechain.{name}" for name in LAYERS[package]}
    for path in _files(package):
        for name in _imports(path):
            if package == "client" and name == SHARED_MODELS:
                continue
            assert not any(name == b or name.startswith(b + ".") for b in banned), (
                f"{path.relative_to(SRC)} imports {name}")


def test_cli_modules_do_not_import_each_others_private_helpers() -> None:
    for path in _files("cli"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "tidechain.cli"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(SRC)} imports {private}"


def test_only_the_session_and_txbuilder_build_transactions() -> None:
    """Every transaction is built by `Session` through `txbuilder.call_tx`: nothing else
    in the package signs a call with its own clock and nonce."""
    # ...and the node's time-stamp authority and EPCIS capture, which sign with their
    # operator's key inside the node (there is no client to hold a session).
    allowed = {SRC / "client" / "txbuilder.py", SRC / "client" / "session.py",
               SRC / "api" / "tsa.py", SRC / "api" / "epcis.py"}
    for path in SRC.rglob("*.py"):
        if path in allowed:
            continue
        text = path.read_text()
        for builder in ("call_tx(", "deposit_tx(", "SignedTx.create("):
            assert builder not in text or path.parent.name in {"ledger", "sim"}, (
                f"{path.relative_to(SRC)} builds a transaction with {builder}")


def test_the_shared_models_import_nothing_of_the_server() -> None:
    assert _imports(SRC / "api" / "models.py") <= {"__future__", "typing", "msgspec"}
