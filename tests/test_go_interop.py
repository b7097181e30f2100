"""Cross-check against the Go reference implementation (golang.org/x/mod/sumdb/note, tlog).

tools/goverify is built once per session with Debian's Go packages. Without Go this
file is skipped locally, but fails under CI=true, where Go must be installed:

    apt-get install -y golang-go golang-golang-x-mod-dev
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tidechain.core import merkle
from tidechain.core.checkpoint import Checkpoint, sign_checkpoint
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import Rejected
from tidechain.core.note import Signer
from tidechain.core.receipt import Receipt, format_receipt, verify_receipt
from tidechain.core.trust import Trust, format_trust, parse_trust

REPO = Path(__file__).resolve().parents[1]
DEBIAN_GOPATH = Path("/usr/share/gocode")
ORIGIN = "tidechain/devnet/00112233aabbccdd"
SIGNERS = [Signer(f"devnet/node-{i}", SigningKey(sha256(f"go-{i}".encode()))) for i in range(4)]
TRUST_1 = Trust.of([SIGNERS[0].verifier()], origin=ORIGIN)
TRUST_4 = Trust.of([s.verifier() for s in SIGNERS], origin=ORIGIN)  # quorum 3


def _gopath() -> Path | None:
    candidates = [os.environ.get("GOPATH", ""), str(DEBIAN_GOPATH)]
    for candidate in candidates:
        if candidate and (Path(candidate) / "src/golang.org/x/mod/sumdb/note").is_dir():
            return Path(candidate)
    return None


def _missing_go(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run: apt-get install -y golang-go golang-golang-x-mod-dev")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def goverify(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    go = shutil.which("go")
    gopath = _gopath()
    if go is None:
        _missing_go("go is not on PATH")
    if gopath is None:
        _missing_go("golang.org/x/mod is not installed (Debian: golang-golang-x-mod-dev)")
    assert go is not None and gopath is not None
    build_dir = tmp_path_factory.mktemp("goverify")
    binary = build_dir / "goverify"
    env = {
        **os.environ,
        # Debian ships x/mod as GOPATH source, so build in GOPATH mode, offline.
        "GO111MODULE": "off",
        "GOPATH": str(gopath),
        "GOCACHE": str(build_dir / "cache"),
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "build", "-o", str(binary), "./tools/goverify"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"go build failed:\n{result.stdout}{result.stderr}"
    yield binary


def run_go(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )


# --- building logs with tidechain's own merkle module -------------------------------


def build_log(entries: Sequence[bytes]) -> merkle.MemoryNodeStore:
    store = merkle.MemoryNodeStore()
    frontier = merkle.CompactRange()
    for entry in entries:
        for level, index, node in frontier.append(merkle.leaf_hash(entry)):
            store.put(level, index, node)
    return store


def make_receipt(index: int, size: int, signers: Sequence[Signer]) -> str:
    entries = [f"go entry {i}".encode() for i in range(size)]
    store = build_log(entries)
    checkpoint = Checkpoint(ORIGIN, size, merkle.root_at(store, size))
    return format_receipt(
        Receipt(
            index=index,
            proof=tuple(merkle.inclusion_proof(store, index, size)),
            checkpoint_note=sign_checkpoint(checkpoint, signers),
            extra=entries[index],
        )
    )


def check_receipt(binary: Path, tmp_path: Path, receipt: str, trust: Trust) -> str:
    """Run Go on the receipt; assert Python agrees; return Go's output ('' if rejected)."""
    receipt_file, trust_file = tmp_path / "r.tlog-proof", tmp_path / "trust.txt"
    receipt_file.write_text(receipt, encoding="utf-8")
    trust_file.write_text(format_trust(trust), encoding="utf-8")
    result = run_go(binary, "receipt", str(receipt_file), str(trust_file))
    try:
        verify_receipt(receipt, trust)
        python_ok = True
    except Rejected:
        python_ok = False
    assert (result.returncode == 0) == python_ok, f"Go and Python disagree: {result.stdout}"
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip() if result.returncode == 0 else ""


# --- receipts -----------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 2), (1, 2), (4, 7), (12, 13), (63, 100)])
def test_single_validator_receipts_verify_in_go(
    goverify: Path, tmp_path: Path, index: int, size: int
) -> None:
    out = check_receipt(goverify, tmp_path, make_receipt(index, size, SIGNERS[:1]), TRUST_1)
    assert out == f"OK index={index} size={size} signers=devnet/node-0"


def test_quorum_receipts_verify_in_go(goverify: Path, tmp_path: Path) -> None:
    out = check_receipt(goverify, tmp_path, make_receipt(5, 9, SIGNERS[1:]), TRUST_4)
    assert out == "OK index=5 size=9 signers=devnet/node-1,devnet/node-2,devnet/node-3"
    out = check_receipt(goverify, tmp_path, make_receipt(5, 9, SIGNERS), TRUST_4)
    assert out.endswith("signers=devnet/node-0,devnet/node-1,devnet/node-2,devnet/node-3")


def test_below_quorum_fails_in_go(goverify: Path, tmp_path: Path) -> None:
    assert check_receipt(goverify, tmp_path, make_receipt(5, 9, SIGNERS[:2]), TRUST_4) == ""


def test_wrong_origin_fails_in_go(goverify: Path, tmp_path: Path) -> None:
    other = Trust.of(TRUST_4.validators, origin="tidechain/othernet/ffffffffffffffff")
    assert check_receipt(goverify, tmp_path, make_receipt(5, 9, SIGNERS), other) == ""


def _tamper(text: str, line_number: int, column: int) -> str:
    lines = text.split("\n")
    line = lines[line_number]
    replacement = "B" if line[column] != "B" else "C"
    lines[line_number] = line[:column] + replacement + line[column + 1 :]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("line_number", "column", "what"),
    [
        (1, 8, "entry (extra)"),
        (3, 0, "first proof hash"),
        (6, 20, "last proof hash"),
        (8, 10, "checkpoint origin"),
        (10, 5, "checkpoint root"),
        (12, 40, "a validator signature"),
    ],
)
def test_tampered_receipt_fails_in_go(
    goverify: Path, tmp_path: Path, line_number: int, column: int, what: str
) -> None:
    receipt = make_receipt(6, 11, SIGNERS[:1])  # four proof hashes: lines 3 to 6
    assert receipt.split("\n")[7] == "", "layout changed: fix the line numbers above"
    assert check_receipt(goverify, tmp_path, receipt, TRUST_1), "untampered receipt must pass"
    tampered = _tamper(receipt, line_number, column)
    assert tampered != receipt
    assert check_receipt(goverify, tmp_path, tampered, TRUST_1) == "", what


def test_tampered_index_and_entry_fail_in_go(goverify: Path, tmp_path: Path) -> None:
    receipt = make_receipt(6, 11, SIGNERS[:1])
    other_index = receipt.replace("\nindex 6\n", "\nindex 7\n")
    assert check_receipt(goverify, tmp_path, other_index, TRUST_1) == ""
    other_entry = receipt.replace(
        base64.b64encode(b"go entry 6").decode(), base64.b64encode(b"go entry 7").decode()
    )
    assert check_receipt(goverify, tmp_path, other_entry, TRUST_1) == ""


# --- consistency --------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("size1", "size2"), [(1, 1), (1, 2), (1, 8), (3, 7), (4, 8), (6, 13), (7, 7), (13, 100)]
)
def test_consistency_proofs_verify_in_go(goverify: Path, size1: int, size2: int) -> None:
    store = build_log([f"c{i}".encode() for i in range(size2)])
    root1, root2 = merkle.root_at(store, size1), merkle.root_at(store, size2)
    proof = [_b64(h) for h in merkle.consistency_proof(store, size1, size2)]
    args = [str(size1), _b64(root1), str(size2), _b64(root2), *proof]
    result = run_go(goverify, "consistency", *args)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == f"OK size1={size1} size2={size2}"
    if proof:
        tampered = [*proof[:-1], _b64(bytes(32))]
        bad = run_go(goverify, "consistency", *args[:4], *tampered)
        assert bad.returncode == 1
    wrong_old_root = run_go(goverify, "consistency", args[0], _b64(bytes(32)), *args[2:])
    assert wrong_old_root.returncode == 1


def test_go_usage_errors(goverify: Path) -> None:
    assert run_go(goverify).returncode == 2
    assert run_go(goverify, "nonsense").returncode == 2
    assert run_go(goverify, "receipt", "/nonexistent", "/nonexistent").returncode == 1


def docs_example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->` in docs/formats.md."""
    text = (REPO / "docs" / "formats.md").read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->\n```\n"
    start = text.index(marker) + len(marker)
    return text[start : text.index("```", start)]


def test_docs_example_verifies_in_go(goverify: Path, tmp_path: Path) -> None:
    trust = parse_trust(docs_example("trust.txt"))
    out = check_receipt(goverify, tmp_path, docs_example("receipt.tlog-proof"), trust)
    assert out == "OK index=3 size=5 signers=devnet/node0,devnet/node1,devnet/node3"
