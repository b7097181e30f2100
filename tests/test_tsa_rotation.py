"""The time-stamp authority's key can be rotated, and tokens signed with the old key stay
valid (issue 15): `tide node tsa-rotate` issues a new key and certificate from the
organisation's CA; after a restart the node signs with it, and `openssl ts -verify`
accepts both the old token and the new one against the same CA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.nodes import running_node, tide
from tidechain.timestamp import describe_token

pytestmark = pytest.mark.slow


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is required under CI=true (.ci/run installs it)")
        pytest.skip("openssl is not installed: the rotation is checked with openssl ts")
    return found


def _verify(openssl: str, document: Path, token: Path,
            ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl, "ts", "-verify", "-data", str(document), "-in", str(token),
                           "-CAfile", str(ca)], capture_output=True, text=True)


def _start_again(net: Path) -> subprocess.Popen[bytes]:
    log = (net.parent / "node-restarted.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tidechain", "node", "start",
                             str(net / "node0")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def test_a_rotated_key_signs_new_tokens_and_old_ones_stay_valid(tmp_path: Path) -> None:
    openssl = _openssl()
    old_doc, new_doc = tmp_path / "before.txt", tmp_path / "after.txt"
    old_doc.write_text("signed before the rotation\n")
    new_doc.write_text("signed after the rotation\n")
    with running_node(tmp_path, "tsa-rotation") as node:
        net = node.net
        ca = net / "orgs" / "acme" / "ca.pem"
        stamped = tide("timestamp", str(old_doc), "--net", str(net))
        assert stamped.returncode == 0, stamped.stdout + stamped.stderr
        old_cert = (net / "node0" / "tsa" / "tsa.pem").read_bytes()
    rotated = tide("node", "tsa-rotate", str(net / "node0"), "--org-dir",
                   str(net / "orgs" / "acme"))
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert (net / "node0" / "tsa" / "tsa.pem").read_bytes() != old_cert
    [retired] = (net / "node0" / "tsa" / "retired").iterdir()
    assert retired.read_bytes() == old_cert
    process = _start_again(net)
    try:
        for _ in range(100):
            stamped = tide("timestamp", str(new_doc), "--net", str(net))
            if stamped.returncode == 0:
                break
            assert "unreachable" in stamped.stdout + stamped.stderr, stamped.stdout
            time.sleep(0.2)
        assert stamped.returncode == 0, stamped.stdout + stamped.stderr
    finally:
        process.terminate()
        process.wait(timeout=15)
    old_token = Path(str(old_doc) + ".tsr")
    new_token = Path(str(new_doc) + ".tsr")
    for document, token in ((old_doc, old_token), (new_doc, new_token)):
        checked = _verify(openssl, document, token, ca)
        assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    # the two tokens carry different certificates: the new one is really the new key
    old_der, new_der = old_token.read_bytes(), new_token.read_bytes()
    assert describe_token(old_der).serial != describe_token(new_der).serial
    from cryptography import x509

    old_serial = x509.load_pem_x509_certificate(old_cert).serial_number
    new_serial = x509.load_pem_x509_certificate(
        (net / "node0" / "tsa" / "tsa.pem").read_bytes()).serial_number
    assert old_serial.to_bytes(20, "big").lstrip(b"\0") in old_der
    assert new_serial.to_bytes(20, "big").lstrip(b"\0") in new_der
    assert old_serial.to_bytes(20, "big").lstrip(b"\0") not in new_der
