"""`tide call` and `tide query` (cli/generic.py) as subprocesses against a real node,
and their help generated from the registry of applications."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodes import RunningNode, running_node, tide
from tidechain.contracts import default_registry
from tidechain.core.crypto import sha256


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("generic"), "generic-net") as running:
        yield running


def _tide(node: RunningNode, *args: str) -> subprocess.CompletedProcess[str]:
    result = tide(*args, env={"TIDE_NET": str(node.net)})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def test_call_help_lists_every_method_of_every_application() -> None:
    listed = _ok(tide("call", "--help"))
    registry = default_registry()
    for name in registry.applications:
        contract = registry.newest(name)
        assert contract is not None
        for method, spec in contract.methods.items():
            [line] = [line for line in listed.splitlines()
                      if line.startswith(f"  {name}.{method}  ")]  # once, the newest's
            for role in spec.roles:
                assert role.value in line, (line, role)
    assert "--arg digest=<hex, 32 bytes>  (required)" in listed


def test_call_help_of_one_method_shows_its_arguments_and_types() -> None:
    shown = _ok(tide("call", "evidence.amend", "--help"))
    assert "evidence.amend  (roles: depositor)" in shown
    assert "--arg of=<integer >= 0>  (required)  a log index" in shown
    assert "--arg meta=<JSON object or null>  (optional)" in shown
    assert "evidence.deposit" not in shown
    unknown = tide("call", "evidence.steal", "--help")
    assert unknown.returncode == 2 and "no method 'evidence.steal'" in unknown.stderr


def test_query_help_lists_the_queries_and_their_parameters() -> None:
    shown = _ok(tide("query", "--help"))
    for name, app in default_registry().applications.items():
        for query in app.queries:
            assert f"  {name} {query}  (readers: " in shown
    assert "--param digest=<text or null>  (optional)" in shown


def test_call_deposits_and_verifies_its_receipt_then_query_finds_it(
        node: RunningNode, tmp_path: Path) -> None:
    document = tmp_path / "bill-of-lading.txt"
    document.write_text("bill of lading 7\n")
    digest = sha256(document.read_bytes()).hex()
    receipt = tmp_path / "bill.tlog-proof"
    called = json.loads(_ok(_tide(node, "call", "evidence.deposit", "--arg",
                                  f"digest={digest}", "--arg", 'meta={"kind": "bl"}',
                                  "-o", str(receipt), "--json")))
    assert called["status"] == "committed" and called["signers"] == ["generic-net/node0"]
    assert receipt.read_text() == called["receipt"]
    verified = _ok(_tide(node, "verify", str(document), str(receipt), "--trust",
                         str(node.net / "trust.txt")))
    assert "verification OK" in verified

    page = json.loads(_ok(_tide(node, "query", "evidence", "deposits", "--param",
                                f"digest={digest}", "--json")))
    assert [d["index"] for d in page["items"]] == [called["log_index"]]
    assert page["items"][0]["meta"] == {"kind": "bl"}
    one = json.loads(_ok(_tide(node, "query", "evidence", "deposit", "--param",
                               f"index={called['log_index']}", "--json")))
    assert one["digest"] == digest

    human = _ok(_tide(node, "call", "evidence.amend", "--arg", f"of={called['log_index']}",
                      "--arg", f"digest={sha256(b'v2').hex()}"))
    assert human.startswith("evidence.amend: committed at log index ")
    assert "c2sp.org/tlog-proof@v1" in human  # the verified receipt, printed


def test_query_all_walks_every_page(node: RunningNode) -> None:
    for n in range(3):
        _ok(_tide(node, "call", "evidence.deposit", "--arg",
                  f"digest={sha256(b'page %d' % n).hex()}"))
    first = json.loads(_ok(_tide(node, "query", "evidence", "deposits", "--param", "limit=2",
                                 "--json")))
    assert len(first["items"]) == 2 and first["next"] is not None
    every = json.loads(_ok(_tide(node, "query", "evidence", "deposits", "--all", "--json")))
    assert len(every["items"]) >= 3
    indexes = [d["index"] for d in every["items"]]
    assert indexes == sorted(indexes, reverse=True)  # newest first, no page repeated


def test_call_names_the_argument_it_cannot_read(node: RunningNode) -> None:
    bad_hex = _tide(node, "call", "evidence.deposit", "--arg", "digest=xyz")
    assert bad_hex.returncode == 2
    assert "error: bad_argument: --arg digest: expected hex bytes" in bad_hex.stderr
    short = _tide(node, "call", "evidence.deposit", "--arg", "digest=abcd")
    assert short.returncode == 2 and "$.digest" in short.stderr
    unknown = _tide(node, "call", "evidence.deposit", "--arg", f"digest={'00' * 32}",
                    "--arg", "colour=red")
    assert unknown.returncode == 2 and "--arg colour" in unknown.stderr
    missing = _tide(node, "call", "evidence.amend", "--arg", f"digest={'00' * 32}")
    assert missing.returncode == 2 and "--arg of" in missing.stderr
    not_int = _tide(node, "call", "evidence.amend", "--arg", "of=seven", "--arg",
                    f"digest={'00' * 32}")
    assert not_int.returncode == 2 and "expected an integer, got 'seven'" in not_int.stderr
    refused = _tide(node, "call", "evidence.amend", "--arg", "of=999999", "--arg",
                    f"digest={'00' * 32}")
    assert refused.returncode == 2 and "error: not_found: " in refused.stderr
    no_query = _tide(node, "query", "evidence", "nothing")
    assert no_query.returncode == 2 and "has no query 'nothing'" in no_query.stderr
    bad_param = _tide(node, "query", "evidence", "deposit", "--param", "colour=red")
    assert bad_param.returncode == 2 and "--param colour" in bad_param.stderr
