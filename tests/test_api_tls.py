"""The API over HTTPS (`api_tls`), with members' certificates as optional client
certificates (mutual TLS), as curl uses it; and what the node says at start about
where its API listens. Real `tide node start` processes; curl as the client."""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from tests.helpers import signed_now
from tests.nodes import READY_TIMEOUT_S, free_port, tide
from tidechain.client.files import (
    DEFAULT_LEGAL_NAME,
    DEFAULT_ORG,
    DEFAULT_USCC,
    OrgDir,
    export_key_pem,
    init_org,
    issue_member,
    load_genesis,
    read_key,
    write_key,
)
from tidechain.core import cbor
from tidechain.core.crypto import sha256
from tidechain.core.errors import ConfigError
from tidechain.identity import Role, from_pem, private_key_from_pem, to_pem
from tidechain.ledger.runtime import namespaced
from tidechain.node.api_tls import api_exposure, is_loopback, peer_certificate
from tidechain.node.config import load_node
from tidechain.node.runtime import ChainCas

CURL = shutil.which("curl")
needs_curl = pytest.mark.usefixtures("curl_installed")
"""curl is what the issue names (any TLS client): skipped locally without it, required
under CI=true, where .ci/run installs it."""


@pytest.fixture
def curl_installed() -> None:
    if CURL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is not installed; CI must run: apt-get install -y curl")
        pytest.skip("curl is not installed")
CURL_TIMEOUT_S = 20


@dataclass
class TlsNode:
    net: Path
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.net / "orgs" / DEFAULT_ORG / "ca.pem"

    @property
    def admin_cert(self) -> Path:
        return self.net / "orgs" / DEFAULT_ORG / "admin.pem"

    @property
    def admin_pem_key(self) -> Path:
        return self.net / "admin-key.pem"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _start(node_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tidechain", "node", "start", str(node_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _running(process: subprocess.Popen[bytes], url: str, log_path: Path,
             verify: ssl.SSLContext | bool) -> Iterator[None]:
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"node exited with {process.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/status", timeout=1, verify=verify).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"node not ready after {READY_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    assert "Traceback" not in log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    """`tide init --api-tls`, the admin's key as PEM (`tide key pem`), a node."""
    root = tmp_path_factory.mktemp("api-tls")
    net, port = root / "net", free_port()
    created = tide("init", str(net), "--name", "tls-net", "--port", str(port), "--api-tls")
    assert created.returncode == 0, created.stderr
    exported = tide("key", "pem", str(net / "admin.key"))
    assert exported.returncode == 0, exported.stderr
    node = TlsNode(net, port, root / "node.log")
    ca = ssl.create_default_context(cafile=str(node.ca))
    with _running(_start(net / "node0", node.log_path), node.url, node.log_path, ca):
        yield node


def curl(url: str, *options: str | Path) -> tuple[int, str]:
    """curl's exit code and the HTTP status it got ("000" when there was none)."""
    assert CURL is not None
    result = subprocess.run(
        [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
         str(CURL_TIMEOUT_S), *(str(o) for o in options), url],
        capture_output=True, text=True, timeout=CURL_TIMEOUT_S + 10, stdin=subprocess.DEVNULL)
    return result.returncode, result.stdout.strip()


def _outsider(root: Path, org_dir: OrgDir, name: str) -> tuple[Path, Path]:
    """A member certificate of `org_dir`'s CA for a new key (not enrolled anywhere),
    and the key as PEM: (certificate PEM, key PEM)."""
    signer = write_key(root / f"{name}.key", f"tls-net/{name}", os.urandom(32))
    cert = issue_member(org_dir, name, signer.key.public_key, (Role.DEPOSITOR,),
                        int(time.time() * 1000))
    cert_path = root / f"{name}.pem"
    cert_path.write_bytes(to_pem(cert))
    key_pem = root / f"{name}-key.pem"
    export_key_pem(root / f"{name}.key", key_pem)
    return cert_path, key_pem


# --- HTTPS with curl ---------------------------------------------------------------------


@needs_curl
def test_anyone_reads_status_over_https_verifying_the_org_ca(tls_node: TlsNode) -> None:
    assert curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca) == (0, "200")
    # The API certificate is the organisation's, not the peer network's CA's.
    code, _ = curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.net / "ca.pem")
    assert code != 0


@needs_curl
def test_a_member_presents_its_certificate(tls_node: TlsNode) -> None:
    assert curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca,
                "--cert", tls_node.admin_cert, "--key", tls_node.admin_pem_key) == (0, "200")
    # TLS 1.2 too (curl's default is 1.3).
    assert curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca, "--tls-max", "1.2",
                "--cert", tls_node.admin_cert, "--key", tls_node.admin_pem_key) == (0, "200")


@needs_curl
def test_a_certificate_from_an_unknown_ca_is_refused(tls_node: TlsNode,
                                                     tmp_path: Path) -> None:
    stranger_org = init_org(tmp_path / "other", "other", "Other Co., Ltd.", DEFAULT_USCC,
                            int(time.time() * 1000))
    cert, key = _outsider(tmp_path, stranger_org, "mallory")
    code, status = curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca,
                        "--cert", cert, "--key", key)
    assert code != 0 or status == "401", (code, status)  # at the handshake, or 401


@needs_curl
def test_plain_http_to_the_https_port_gets_no_answer(tls_node: TlsNode) -> None:
    code, status = curl(f"http://127.0.0.1:{tls_node.port}/v1/status")
    assert code != 0 or status == "400", (code, status)


@needs_curl
def test_member_only_reads_need_the_member_certificate(tls_node: TlsNode) -> None:
    url = f"{tls_node.url}/v1/apps/members/orgs"
    assert curl(url, "--cacert", tls_node.ca, "--cert", tls_node.admin_cert,
                "--key", tls_node.admin_pem_key) == (0, "200")
    assert curl(url, "--cacert", tls_node.ca) == (0, "401")


@needs_curl
def test_a_ca_the_chain_registers_later_is_trusted_without_a_restart(
        tls_node: TlsNode, tmp_path: Path) -> None:
    """The organisation rotates its CA (members.add_ca) and enrols a member under the
    new one: the running node accepts that member's certificate at the handshake."""
    now = int(time.time() * 1000)
    new_ca = init_org(tmp_path / "acme-2", DEFAULT_ORG, DEFAULT_LEGAL_NAME, DEFAULT_USCC, now)
    cert, key = _outsider(tmp_path, new_ca, "bob")
    before = curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca, "--cert", cert,
                  "--key", key)
    assert before[0] != 0 or before[1] == "401", before  # an unknown CA so far

    chain_id = load_genesis(tls_node.net).chain_id
    admin = read_key(tls_node.net / "admin.key").key
    ca = ssl.create_default_context(cafile=str(tls_node.ca))
    with httpx.Client(base_url=tls_node.url, verify=ca, timeout=30) as http:
        for args in ({"ca": new_ca.cert()}, None):
            method = "add_ca" if args else "enrol"
            tx = signed_now(admin, chain_id, "members", method,
                            args or {"cert": from_pem(cert.read_bytes())})
            answer = http.post("/v1/tx", params={"wait": "true"}, content=tx.encode(),
                               headers={"content-type": "application/cbor"})
            assert answer.status_code == 200, answer.text
            events = [e["type"] for e in answer.json()["events"]]
            assert events == ["ca_added" if args else "enrolled"], answer.text
    deadline = time.monotonic() + 10
    while True:  # the head moved: the runtime hands the new CA to the API's context
        after = curl(f"{tls_node.url}/v1/status", "--cacert", tls_node.ca, "--cert", cert,
                     "--key", key)
        if after == (0, "200") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after == (0, "200"), (after, tls_node.log())
    assert "trusting 1 more organisation CA(s)" in tls_node.log()


def test_the_start_log_says_https_and_loopback_only(tls_node: TlsNode) -> None:
    log = tls_node.log()
    assert (f"API listens on https://127.0.0.1:{tls_node.port} (loopback only: reachable "
            "from this machine only)") in log
    assert "WARNING" not in log


def test_a_non_loopback_api_without_tls_is_warned_about(tmp_path: Path) -> None:
    net, port = tmp_path / "net", free_port()
    created = tide("init", str(net), "--name", "open-net", "--port", str(port))
    assert created.returncode == 0, created.stderr
    toml = net / "node0" / "node.toml"
    toml.write_text(toml.read_text().replace('api_host = "127.0.0.1"', 'api_host = "0.0.0.0"'))
    log_path = tmp_path / "node.log"
    with _running(_start(net / "node0", log_path), f"http://127.0.0.1:{port}", log_path,
                  True):
        pass
    log = log_path.read_text()
    assert f"API listens on http://0.0.0.0:{port} (not loopback" in log
    warning = next(line for line in log.splitlines() if " WARNING " in line)
    assert "reachable from other machines over plain HTTP" in warning
    assert "observed" in warning and "api_tls = true" in warning


# --- the pieces, without processes ------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("node.example.com", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    plain = api_exposure(host, 8680, tls=False)
    assert (plain.warning is None) is loopback
    assert api_exposure(host, 8680, tls=True).warning is None
    assert ("loopback only" in plain.info) is loopback


def test_exposure_lines() -> None:
    assert api_exposure("::", 8680, tls=True).info == (
        "API listens on https://[::]:8680 (not loopback: reachable from other machines)")


class _Transport:
    def __init__(self, extra: dict[str, Any]) -> None:
        self.extra = extra

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


def test_peer_certificate_of_plain_and_absent_transports() -> None:
    assert peer_certificate(None) is None
    assert peer_certificate(_Transport({})) is None  # type: ignore[arg-type]
    assert peer_certificate(_Transport({"ssl_object": object()})) is None  # type: ignore[arg-type]


def test_init_writes_api_certificates_but_stays_plain_http(tmp_path: Path) -> None:
    net = tmp_path / "net"
    assert tide("init", str(net), "--name", "plain", "--validators", "2").returncode == 0
    assert "http://" in (net / "network.toml").read_text()
    assert "api_tls" not in (net / "network.toml").read_text()
    for node_dir in (net / "node0", net / "node1"):
        config = load_node(node_dir)
        assert not config.api_tls and config.api_url.startswith("http://")
        assert config.api_cert_path.is_file() and config.api_ca_path.is_file()
        assert stat.S_IMODE(config.api_key_path.stat().st_mode) == 0o600
        assert config.api_ca_path.read_bytes() == (net / "orgs" / DEFAULT_ORG / "ca.pem"
                                                   ).read_bytes()


def test_api_tls_is_a_boolean_that_appending_turns_on(tmp_path: Path) -> None:
    net = tmp_path / "net"
    assert tide("init", str(net), "--name", "plain").returncode == 0
    toml = net / "node0" / "node.toml"
    plain = toml.read_text()
    # A network of one has no [[peers]] table: appending the switch is enough, as
    # tests/nodes.py's `node_toml_extra` does.
    toml.write_text(plain + "api_tls = true\n")
    assert load_node(net / "node0").api_url.startswith("https://")
    toml.write_text(plain + 'api_tls = "yes"\n')
    with pytest.raises(ConfigError, match="api_tls must be true or false"):
        load_node(net / "node0")


def test_api_tls_init_writes_https_urls_and_the_ca(tmp_path: Path) -> None:
    net = tmp_path / "net"
    assert tide("init", str(net), "--name", "tls", "--api-tls").returncode == 0
    network = (net / "network.toml").read_text()
    assert "api_tls = true" in network and f'api_ca = "orgs/{DEFAULT_ORG}/ca.pem"' in network
    assert 'api = "https://127.0.0.1:' in network
    node = load_node(net / "node0")
    assert node.api_tls and node.api_cert == "api-tls/cert.pem"


# --- tide key pem ------------------------------------------------------------------------


def test_key_pem_writes_pkcs8_readable_by_its_owner_only(tmp_path: Path) -> None:
    signer = write_key(tmp_path / "alice.key", "net/alice", bytes(range(32)))
    done = tide("key", "pem", str(tmp_path / "alice.key"))
    assert done.returncode == 0, done.stderr
    pem = tmp_path / "alice-key.pem"
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert private_key_from_pem(pem.read_bytes()) == signer.key.seed
    again = tide("key", "pem", str(tmp_path / "alice.key"))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    out = tmp_path / "elsewhere.pem"
    assert tide("key", "pem", str(tmp_path / "alice.key"), "--out", str(out)).returncode == 0
    assert out.read_bytes() == pem.read_bytes()


def test_key_pem_of_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tide("key", "pem", str(tmp_path / "nope.key"))
    assert missing.returncode == 2 and "not found" in missing.stderr


# --- trust anchors follow the chain --------------------------------------------------------


class _Chain:
    """What ChainCas reads of a node: the head's hash and state."""

    def __init__(self) -> None:
        self.chain = SimpleNamespace(head_hash=b"", state={})

    def move_head(self, cas_by_org: dict[str, list[bytes]]) -> None:
        state = {namespaced("members", b"orgs"): cbor.encode(list(cas_by_org))}
        for org_id, cas in cas_by_org.items():
            state[namespaced("members", b"org/" + org_id.encode())] = cbor.encode(
                {"id": org_id, "legal_name": org_id, "uscc": "", "cas": cas})
        head = sha256(b"".join(k + v for k, v in sorted(state.items())))
        self.chain = SimpleNamespace(head_hash=head, state=state)


def test_followers_get_every_ca_once_and_never_lose_one() -> None:
    node = _Chain()
    node.move_head({"acme": [b"ca-1"]})
    cas = ChainCas(node)  # type: ignore[arg-type]
    first: list[list[bytes]] = []
    cas.follow(first.append)
    assert first == [[b"ca-1"]]
    node.move_head({"acme": [b"ca-1", b"ca-2"], "delta": [b"ca-3"]})
    second: list[list[bytes]] = []
    cas.follow(second.append)  # a late follower: everything so far
    assert first == [[b"ca-1"], [b"ca-2", b"ca-3"]]
    assert sorted(ca for batch in second for ca in batch) == [b"ca-1", b"ca-2", b"ca-3"]
    node.move_head({"acme": [b"ca-2"]})  # a CA and an organisation removed: adding only
    cas.refresh()
    assert len(first) == 2 and cas.org_cas("acme") == [b"ca-2"] and cas.org_cas("delta") == []
    assert sorted(cas.trusted()) == [b"ca-1", b"ca-2", b"ca-3"]


def test_the_sdk_reads_over_mutual_tls_and_by_signature(tls_node: TlsNode) -> None:
    """Both credential kinds from the SDK, against the HTTPS node: the member
    certificate (mutual TLS) and a signed request over plain server TLS."""
    from tidechain.client import Client
    from tidechain.core.errors import Rejected

    admin = read_key(tls_node.net / "admin.key").key
    with Client(tls_node.url, certificate=(tls_node.admin_cert, tls_node.admin_pem_key),
                ca=tls_node.ca) as sdk:
        assert sdk.query("members", "orgs")["items"][0]["org"] == DEFAULT_ORG
    with Client(tls_node.url, key=admin, ca=tls_node.ca) as sdk:
        assert sdk.query("members", "orgs")["items"][0]["org"] == DEFAULT_ORG
    with Client(tls_node.url, ca=tls_node.ca) as sdk, pytest.raises(Rejected) as refused:
        sdk.query("members", "orgs")
    assert refused.value.http_status == 401


def test_the_cli_reads_over_mutual_tls(tls_node: TlsNode) -> None:
    """`tide --cert --cert-key` presents the member certificate; network.toml names the
    CA of the node's HTTPS certificate, so no --cacert is needed."""
    done = tide("member", "list", "--net", str(tls_node.net), "--cert",
                str(tls_node.admin_cert), "--cert-key", str(tls_node.admin_pem_key), "--json")
    assert done.returncode == 0, done.stderr
    assert DEFAULT_ORG in done.stdout


def test_a_setting_appended_after_a_peers_table_is_refused_not_ignored(tmp_path: Path) -> None:
    """TOML files a key written after `[[peers]]` inside that table: the node refuses
    such a file with where the setting belongs, instead of ignoring the setting."""
    done = tide("init", str(tmp_path / "net"), "--name", "peers-net", "--validators", "2",
                "--port", str(free_port()))
    assert done.returncode == 0, done.stderr
    node_toml = tmp_path / "net" / "node0" / "node.toml"
    node_toml.write_text(node_toml.read_text() + "api_reads_per_s = 1000\n")
    with pytest.raises(ConfigError, match="go above the first"):
        load_node(node_toml.parent)
