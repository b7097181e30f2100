"""A members-only time-stamp authority with HTTP basic authentication (issue 15): the
credential that code-signing and PDF tools can send. `tide node tsa-user` issues a
password (stored as an scrypt hash); curl with it is served, without it or with a
wrong one refused with 401 and a Basic challenge."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.nodes import running_node, tide
from tidechain.api.tsa import BasicUsers, hash_password
from tidechain.timestamp import describe_token
from tidechain.timestamp.request import build_request

pytestmark = pytest.mark.slow


def test_basic_users_check_passwords_by_their_scrypt_hash() -> None:
    users = BasicUsers({"carrier": hash_password("s3cret", b"salt" * 4)})
    import base64

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert users.admits(header("carrier", "s3cret"))
    assert users.admits(header("carrier", "s3cret"))  # remembered: no second scrypt
    assert not users.admits(header("carrier", "wrong"))
    assert not users.admits(header("nobody", "s3cret"))
    assert not users.admits("Basic !!!not-base64")
    assert not users.admits("Bearer abc")
    assert not users.admits(None)
    assert not users.admits("Basic " + "A" * 600)


def _restart(net: Path) -> subprocess.Popen[bytes]:
    log = (net.parent / "node-restarted.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "tidechain", "node", "start",
                             str(net / "node0")], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def test_a_members_only_service_serves_a_password_holder(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is required under CI=true (.ci/run installs it)")
        pytest.skip("curl is not installed")
    with running_node(tmp_path, "tsa-basic", 'tsa_access = "members"\n') as node:
        net, url = node.net, node.url
    added = tide("--json", "node", "tsa-user", str(net / "node0"), "carrier-co")
    assert added.returncode == 0, added.stdout + added.stderr
    password = json.loads(added.stdout)["password"]
    assert password not in (net / "node0" / "tsa" / "users").read_text()  # a hash only
    again = tide("node", "tsa-user", str(net / "node0"), "carrier-co")
    assert again.returncode != 0 and "already a user" in again.stdout + again.stderr
    request = tmp_path / "req.tsq"
    request.write_bytes(build_request(hashlib.sha256(b"bill of lading").digest(), 7))
    process = _restart(net)
    try:
        for _ in range(150):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/status", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)

        def curl(*auth: str) -> tuple[int, bytes]:
            out = tmp_path / "reply.tsr"
            done = subprocess.run(
                ["curl", "-s", "-o", str(out), "-w", "%{http_code}", *auth,
                 "--data-binary", f"@{request}", "-H",
                 "Content-Type: application/timestamp-query", f"{url}/v1/timestamp"],
                capture_output=True, text=True, timeout=30)
            return int(done.stdout), out.read_bytes() if out.exists() else b""

        status, body = curl()
        assert status == 401 and b"basic authentication" in body
        status, body = curl("-u", "carrier-co:wrong-password")
        assert status == 401
        status, body = curl("-u", f"carrier-co:{password}")
        assert status == 200, body
        token = describe_token(body)
        assert token.status == 0 and token.nonce == 7
    finally:
        process.terminate()
        process.wait(timeout=15)
