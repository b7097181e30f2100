"""The `tide` CLI end to end: every command as a subprocess, against a real node.

The module's node is created by `tide init` and run by `tide node start` (see
tests/test_api.py: `running_node`). Commands find it the way a user's do: through
`--net`, `$TIDE_NET`, or `./net` in the working directory.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.nodes import RunningNode, free_port, running_node, tide
from tidechain.core.crypto import sha256

LARGE_FILE_BYTES = 9 * 1024 * 1024  # over the CLI's 8 MiB progress threshold


@dataclass
class Deposited:
    path: Path
    receipt: Path
    summary: dict[str, Any]


@dataclass
class Setup:
    node: RunningNode
    root: Path
    small: Deposited
    large: Deposited

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`tide ARGS` run from the directory holding ./net, so no option is needed."""
        result = tide(*args, cwd=self.root)
        assert "Traceback" not in result.stderr, result.stderr
        return result


def _deposit(node: RunningNode, root: Path, path: Path, *extra: str) -> Deposited:
    result = tide("deposit", str(path), "--json", *extra, env={"TIDE_NET": str(node.net)},
                  cwd=root)
    assert result.returncode == 0, result.stderr
    return Deposited(path, Path(str(path) + ".tlog-proof"), json.loads(result.stdout))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("cli")
    with running_node(root, "cli-net") as node:
        small = root / "tally.txt"
        small.write_text("tally report 42: 1,200 cartons\n")
        large = root / "scan.bin"
        large.write_bytes(bytes(range(256)) * (LARGE_FILE_BYTES // 256))
        yield Setup(node, root, _deposit(node, root, small, "--meta", "kind=tally",
                                         "--meta", "port=Yangshan"),
                    _deposit(node, root, large))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


# --- init and deposit -------------------------------------------------------------------


def test_init_writes_a_network_directory(setup: Setup) -> None:
    net = setup.node.net
    for name in ("network.toml", "genesis.cbor", "trust.txt", "client.key",
                 "node0/node.toml", "node0/validator.key"):
        assert (net / name).is_file(), name
    assert "quorum 1" in (net / "trust.txt").read_text()


def test_init_refuses_a_non_empty_directory(setup: Setup) -> None:
    result = setup.run("init", str(setup.node.net), "--name", "again")
    assert result.returncode == 2
    assert result.stderr.startswith("error: config: ")


def test_deposit_writes_a_receipt_and_a_summary(setup: Setup) -> None:
    small = setup.small
    assert small.receipt.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    assert small.summary["digest"] == sha256(small.path.read_bytes()).hex()
    assert small.summary["meta"] == {"kind": "tally", "port": "Yangshan"}
    assert small.summary["receipt_path"] == str(small.receipt)
    assert small.summary["signers"] == ["cli-net/node0"]
    assert setup.large.summary["log_index"] > small.summary["log_index"]


def test_deposit_prints_a_human_summary_and_progress_for_large_files(setup: Setup) -> None:
    copy = setup.root / "scan-copy.bin"
    copy.write_bytes(setup.large.path.read_bytes() + b"v2")
    result = setup.run("deposit", str(copy), "--amends", str(setup.large.summary["log_index"]))
    out = _ok(result)
    assert f"deposited {copy}" in out
    assert f"amends deposit   {setup.large.summary['log_index']}" in out
    assert "hashing scan-copy.bin: 100%" in result.stderr


def test_deposit_refuses_bad_input_without_a_traceback(setup: Setup) -> None:
    missing = setup.run("deposit", str(setup.root / "no-such-file"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: io: ")
    bad_meta = setup.run("deposit", str(setup.small.path), "--meta", "novalue")
    assert bad_meta.returncode == 2 and "error: bad_argument: " in bad_meta.stderr
    long_key = setup.run("deposit", str(setup.small.path), "--meta", "k" * 65 + "=v")
    assert long_key.returncode == 2 and "error: bad_argument: " in long_key.stderr


# --- verify (offline) -----------------------------------------------------------------------


def test_verify_proves_the_deposit(setup: Setup) -> None:
    small = setup.small
    out = _ok(tide("verify", str(small.path), str(small.receipt), "--trust",
                   str(setup.node.net / "trust.txt"), "--node", "http://127.0.0.1:1"))
    assert out.startswith(f"verification OK: {small.path}")
    assert f"sha256:{small.summary['digest']}" in out
    assert f"block height     {small.summary['height']}" in out
    assert f"log index        {small.summary['log_index']}" in out
    assert "signed by        cli-net/node0" in out
    assert small.summary["depositor"] in out and "kind=tally" in out


def test_verify_json(setup: Setup) -> None:
    large = setup.large
    out = _ok(setup.run("verify", str(large.path), str(large.receipt), "--trust",
                        "net/trust.txt", "--json"))
    proven = json.loads(out)
    assert proven["verified"] is True
    assert proven["digest"] == large.summary["digest"]
    assert proven["time"].endswith("Z")


def test_verify_a_modified_file_fails(setup: Setup) -> None:
    forged = setup.root / "forged.txt"
    forged.write_text(setup.small.path.read_text().replace("1,200", "1,300"))
    result = setup.run("verify", str(forged), str(setup.small.receipt), "--trust", "net/trust.txt")
    assert result.returncode == 1
    assert result.stderr.startswith("verification FAILED: ")
    assert "different or modified document" in result.stderr


def test_verify_with_another_networks_trust_file_fails(setup: Setup) -> None:
    other = setup.root / "other"
    _ok(setup.run("init", str(other), "--name", "other-net"))
    result = setup.run("verify", str(setup.small.path), str(setup.small.receipt),
                       "--trust", str(other / "trust.txt"))
    assert result.returncode == 1 and "verification FAILED: " in result.stderr


def test_verify_a_tampered_receipt_fails(setup: Setup) -> None:
    tampered = setup.root / "tampered.tlog-proof"
    text = setup.small.receipt.read_text()
    index = setup.small.summary["log_index"]
    tampered.write_text(text.replace(f"index {index}\n", f"index {index + 1}\n"))
    result = setup.run("verify", str(setup.small.path), str(tampered), "--trust", "net/trust.txt",
                       "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["ok"] is False
    assert "verification FAILED: " in result.stderr


def test_verify_needs_a_trust_file(setup: Setup) -> None:
    result = setup.run("verify", str(setup.small.path), str(setup.small.receipt))
    assert result.returncode == 2 and "--trust" in result.stderr


# --- queries ----------------------------------------------------------------------------------


def test_status(setup: Setup) -> None:
    out = _ok(setup.run("status"))
    assert "network    cli-net" in out and "cli-net/node0" in out
    status = json.loads(_ok(tide("status", "--json", env={"TIDE_NET": str(setup.node.net)})))
    assert status["log_size"] >= 2
    by_url = json.loads(_ok(tide("--json", "status", "--node", setup.node.url)))
    assert by_url["chain_id"] == status["chain_id"]


def test_checkpoint(setup: Setup) -> None:
    out = _ok(setup.run("checkpoint"))
    assert out.startswith("tidechain/cli-net/")


def test_tx_get(setup: Setup) -> None:
    tx_id = setup.small.summary["tx_id"]
    found = json.loads(_ok(setup.run("tx", "get", tx_id, "--json")))
    assert (found["tx_id"], found["log_index"]) == (tx_id, setup.small.summary["log_index"])
    assert f"transaction {tx_id}" in _ok(setup.run("tx", "get", tx_id))
    bad = setup.run("tx", "get", "zz")
    assert bad.returncode == 2 and bad.stderr.startswith("error: malformed: ")
    missing = setup.run("tx", "get", "00" * 32)
    assert missing.returncode == 2 and missing.stderr.startswith("error: not_found: ")


def test_block_get(setup: Setup) -> None:
    height = setup.small.summary["height"]
    block = json.loads(_ok(setup.run("block", "get", str(height), "--json")))
    assert setup.small.summary["tx_id"] in block["txs"]
    out = _ok(setup.run("block", "get", str(height)))
    assert f"block {height}" in out and "checkpoint:" in out
    assert setup.run("block", "get", "999999999").returncode == 2


def test_proof_writes_a_receipt_that_verifies(setup: Setup) -> None:
    index = setup.small.summary["log_index"]
    target = setup.root / "fresh.tlog-proof"
    out = _ok(setup.run("proof", str(index), "-o", str(target)))
    assert "verified against the trust file" in out
    _ok(setup.run("verify", str(setup.small.path), str(target), "--trust", "net/trust.txt"))
    printed = _ok(setup.run("proof", str(index)))
    assert printed.startswith("c2sp.org/tlog-proof@v1\n")


def test_log_consistency_is_verified_locally(setup: Setup) -> None:
    size = json.loads(_ok(setup.run("status", "--json")))["log_size"]
    out = _ok(setup.run("log", "consistency", "1", str(size)))
    assert out.startswith(f"consistent: the log of size 1 is a prefix of the log of size {size}")
    report = json.loads(_ok(setup.run("log", "consistency", "1", "--json")))
    assert report["consistent"] is True and report["new"]["size"] >= size
    assert report["new"]["attested_by"] == ["cli-net/node0"]
    bad = setup.run("log", "consistency", str(size + 5), str(size + 1))
    assert bad.returncode == 2 and "bad_range" in bad.stderr


def test_evidence_lookup(setup: Setup) -> None:
    small = setup.small
    out = _ok(setup.run("evidence", "lookup", str(small.path)))
    assert out.startswith(f"1 deposit(s) of sha256:{small.summary['digest']}")
    assert f"log index {small.summary['log_index']}" in out and "kind=tally" in out
    found = json.loads(_ok(setup.run("evidence", "lookup", "--digest", small.summary["digest"],
                                     "--json")))
    assert [d["index"] for d in found["deposits"]] == [small.summary["log_index"]]
    none = json.loads(_ok(setup.run("evidence", "lookup", "--digest", "ab" * 32, "--json")))
    assert none["deposits"] == []
    assert setup.run("evidence", "lookup").returncode == 2
    assert setup.run("evidence", "lookup", "--digest", "xyz").returncode == 2


# --- finding the node, and not finding it -------------------------------------------------------


def test_an_unreachable_node_exits_3(setup: Setup) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = setup.run("status", "--node", url)
    assert result.returncode == 3
    assert result.stderr.startswith("error: unreachable: ") and url in result.stderr
    from_env = tide("status", env={"TIDE_NODE": url}, cwd=setup.root)
    assert from_env.returncode == 3


def test_without_a_network_directory_the_error_says_what_to_do(tmp_path: Path) -> None:
    result = tide("status", cwd=tmp_path)
    assert result.returncode == 2 and "--node" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert tide("no-such-command", cwd=tmp_path).returncode == 2
    assert tide("block", "get", "not-a-number", cwd=tmp_path).returncode == 2
    assert tide("--help", cwd=tmp_path).returncode == 0


def test_a_second_node_on_the_same_store_is_refused(setup: Setup) -> None:
    result = tide("node", "start", str(setup.node.net / "node0"), "--port", str(free_port()),
                  timeout_s=30)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "store_in_use" in result.stderr and "Traceback" not in result.stderr
    # ...and the running node is unharmed.
    assert setup.run("status").returncode == 0


def test_trust_export_writes_the_networks_trust_file(tmp_path: Path) -> None:
    net = tmp_path / "net"
    assert tide("init", str(net), "--name", "tx", "--validators", "4").returncode == 0
    out = tmp_path / "exported.txt"
    result = tide("trust", "export", "--net", str(net), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "4 validator keys, quorum 3" in result.stdout
    assert out.read_text() == (net / "trust.txt").read_text()


def test_status_sync_line_shows_block_sync_and_state_sync_progress() -> None:
    from tidechain.cli.chain import sync_line

    assert sync_line(100, {"peer_height": 100, "behind_blocks": 0}) == \
        "in step with its peers (height 100)"
    assert sync_line(40, {"peer_height": 100, "behind_blocks": 60}).startswith(
        "catching up: height 40 of 100 (40%), 60 blocks behind")
    line = sync_line(0, {"peer_height": 100, "behind_blocks": 100, "state_sync": {
        "phase": "data", "height": 100, "headers": 100, "records": 7815,
        "records_total": 100010, "entries": 32000, "entries_total": 100000}})
    assert line == ("state sync to height 100 (data): entries 32000/100000, records "
                    "7815/100010; 100 blocks behind (as its peers report)")
