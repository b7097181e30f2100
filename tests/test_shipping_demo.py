"""Co-signed deposits on four validators with real processes (issue 15, acceptance 1 and
5): the shipping demo (`python -m tidechain.shipping_demo`, scripts/shipping-demo) runs
end to end, and the proof sets it wrote are then checked offline here, against the
trust file alone: pending after one signature, effective after two (the proof set
alone proves which named parties signed), lapsed past the deadline. Every change to a
proof set, to the document or to the trust file is refused."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tidechain.client.deposit_proof import verify_deposit_proof
from tidechain.contracts.evidence import cosign
from tidechain.core.crypto import sha256
from tidechain.core.errors import Rejected
from tidechain.core.proofset import HEADER

pytestmark = [pytest.mark.slow, pytest.mark.demo]

DEMO_TIMEOUT_S = 240
"""About a minute on a laptop, twelve seconds of it waiting for a deadline."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if os.environ.get("CI") == "true" and shutil.which("openssl") is None:
        pytest.fail("openssl is required under CI=true (.ci/run installs it)")
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    root = tmp_path_factory.mktemp("shipping") / "demo"
    done = subprocess.run([sys.executable, "-m", "tidechain.shipping_demo", "--dir", str(root)],
                          env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done.stdout


@pytest.mark.timeout(DEMO_TIMEOUT_S + 30)
def test_the_demo_shows_every_state_and_refusal(demo: tuple[Path, str]) -> None:
    _, out = demo
    for expected in [
        "$ tide init net --name shipping-demo --validators 4",
        "node3  pid",
        "status           pending: 2 of 3 co-signers must sign",
        "error: not_a_cosigner: you are not one of this deposit's co-signers",
        "signatures       1 of 2 needed",
        "error: already_signed: you have already signed deposit",
        "status           PENDING as of block",
        "signatures       2 of 2 needed",
        "status           EFFECTIVE at block",
        "2 named parties signed, each with its own key",
        "error: lapsed: deposit",
        "status           LAPSED as of block",
        "0 deposit(s) of sha256:",  # anonymous, before publication
        "is public (log index",
        "1 deposit(s) of sha256:",  # anonymous, after
        "time-stamped documents/tally-report.txt (RFC 3161, backed by a chain deposit; both "
        "verified)",
    ]:
        assert expected in out, f"missing {expected!r} in:\n{out}"
    if shutil.which("openssl") is not None:
        assert "Verification: OK" in out


def _proof(root: Path, name: str) -> str:
    return (root / "receipts" / name).read_text()


def _trust(root: Path) -> str:
    return (root / "net" / "trust.txt").read_text()


def test_each_state_is_proven_offline(demo: tuple[Path, str]) -> None:
    root, _ = demo
    report = sha256((root / "documents" / "tally-report.txt").read_bytes())
    pending = verify_deposit_proof(_proof(root, "tally-pending.tlog-proofs"), _trust(root),
                                   report)
    assert pending.status == cosign.PENDING and len(pending.signatures) == 1
    assert pending.state_height is not None and pending.effective is None
    effective = verify_deposit_proof(_proof(root, "tally-effective.tlog-proofs"),
                                     _trust(root), report)
    assert effective.status == cosign.EFFECTIVE and effective.threshold == 2
    assert len(effective.slots) == 3
    assert effective.effective is not None
    assert effective.effective.log_index == max(s.log_index for s in effective.signatures)
    # the k named parties: a key slot filled by that key, the port's by an org member
    filled = {s.slot: s for s in effective.signatures}
    assert set(filled) == {0, 1}
    assert effective.slots[0].key is not None
    assert filled[0].signer == effective.slots[0].key.hex()
    assert effective.slots[1].org == "acme" and filled[1].org == "acme"
    lapsed = verify_deposit_proof(_proof(root, "draft-lapsed.tlog-proofs"), _trust(root))
    assert lapsed.status == cosign.LAPSED and len(lapsed.signatures) == 1
    assert lapsed.state_time_ms is not None and lapsed.state_time_ms > lapsed.deadline_ms


def test_the_cli_verifies_a_proof_set_offline(demo: tuple[Path, str]) -> None:
    root, _ = demo
    env = {k: v for k, v in os.environ.items() if k not in ("TIDE_NET", "TIDE_NODE")}
    done = subprocess.run(
        [sys.executable, "-m", "tidechain", "verify", "documents/tally-report.txt",
         "receipts/tally-effective.tlog-proofs", "--trust", "net/trust.txt"],
        cwd=root, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "EFFECTIVE at block" in done.stdout
    other = root / "documents" / "draft-report.txt"
    done = subprocess.run(
        [sys.executable, "-m", "tidechain", "verify", str(other),
         "receipts/tally-effective.tlog-proofs", "--trust", "net/trust.txt"],
        cwd=root, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "a different or modified document" in done.stdout + \
        done.stderr


def _lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _flip_receipt(line: str, at: int) -> str:
    """The receipt line with one base64 character of its embedded receipt changed."""
    kind, _, b64 = line.partition(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[at % len(raw)] ^= 0x01
    return f"{kind} {base64.b64encode(bytes(raw)).decode()}"


def test_every_change_is_refused(demo: tuple[Path, str]) -> None:
    root, _ = demo
    trust = _trust(root)
    report = sha256((root / "documents" / "tally-report.txt").read_bytes())
    good = _proof(root, "tally-effective.tlog-proofs")
    lines = _lines(good)
    # the header, the deposit, two signatures, the record's state proof
    assert lines[0] == HEADER and len(lines) == 5
    tampered: dict[str, str] = {
        "the deposit's receipt changed": _join([lines[0], _flip_receipt(lines[1], 200),
                                                *lines[2:]]),
        "a signature's receipt changed": _join([*lines[:2], _flip_receipt(lines[2], 150),
                                                *lines[3:]]),
        "the signature repeated": _join([*lines[:3], lines[2], *lines[3:]]),
        "another deposit's signature": _join([*lines[:2], _lines(_proof(
            root, "draft-lapsed.tlog-proofs"))[2], *lines[3:]]),
        "the state line twice": _join([*lines, lines[4]]),
        "the header": _join(["tidechain.dev/proof-set@v2", *lines[1:]]),
    }
    for what, text in tampered.items():
        with pytest.raises(Rejected):
            verify_deposit_proof(text, trust, report)
            pytest.fail(f"accepted with {what}")
    # One signature fewer still verifies, but the entries no longer prove it effective:
    # the certified record does, and the answer says so.
    fewer = verify_deposit_proof(_join([lines[0], lines[1], lines[3], lines[4]]), trust,
                                 report)
    assert fewer.effective is None and len(fewer.signatures) == 1
    assert fewer.status == cosign.EFFECTIVE and "lacks the signatures' entries" in fewer.notes[0]
    with pytest.raises(Rejected, match="different or modified document"):
        verify_deposit_proof(good, trust, sha256(b"another document"))
    with pytest.raises(Rejected):  # one validator key left: no quorum of the trusted set
        verify_deposit_proof(good, _trust_of_one(trust), report)


def _trust_of_one(trust: str) -> str:
    """The trust file with one validator key left (quorum still 3): no checkpoint carries
    three signatures of keys it trusts."""
    lines = trust.rstrip("\n").split("\n")
    keys = [line for line in lines if line.startswith("shipping-demo/")]
    kept = [line for line in lines if line not in keys[1:]]
    return "\n".join(kept) + "\n"
