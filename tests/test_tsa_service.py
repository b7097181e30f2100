"""The node's RFC 3161 time-stamp authority (api/tsa.py, ADR 0017) end to end: a real
`tide init` network and `tide node start` process, requests made by `openssl ts -query`
and sent by curl, tokens checked by `openssl ts -verify` and by rfc3161-client (PyPI),
the deposit behind each token fetched without credentials and verified offline, and
`tide timestamp` as a user runs it.

Bad requests over HTTP each get an RFC 3161 rejection, never a 5xx; a Hypothesis
property sends random and mutated requests to the node and checks that no rejected
request leaves anything in the log (`pytest -s` prints which failures it met). A
second network, `tsa_access = "members"` and `tsa_requests_per_s = 1`, answers
strangers 401 and a caller past its rate 429 with Retry-After."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import rfc3161_client
from asn1crypto import tsp  # type: ignore[import-untyped]
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nodes import RunningNode, running_node, tide
from tests.test_rfc3161 import (
    _MUTATED,
    _RANDOM_DER,
    OPENSSL_REQUEST,
    _mutate,
    _structured_requests,
)
from tidechain.api.tsa import DEFAULT_POLICY
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import DEFAULT_ORG, read_key
from tidechain.client.sdk import Client
from tidechain.client.verify import verify_deposit_receipt
from tidechain.core.crypto import SigningKey
from tidechain.identity import make_org_ca, to_pem
from tidechain.timestamp import TokenSummary, describe_token
from tidechain.timestamp.request import build_request
from tidechain.timestamp.rfc3161 import MAX_REQUEST_BYTES

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
TOOL_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 30.0
LIFTED_TSA_RATE_TOML = "tsa_requests_per_s = 1000\n"
"""The main node lifts the per-caller rate (20/s by default): the property test sends
its requests back to back from one address. The limiter has its own network below."""
MEMBERS_TOML = 'tsa_requests_per_s = 1\ntsa_access = "members"\n'
"""The second network: members only, one request a second per caller (burst 2)."""
MAX_QUICK_REQUESTS = 10
"""How many requests the rate-limit test sends at most before it must have seen a 429
(at 1/s with a burst of 2, the third quick one already is)."""
DOC = b"bill of lading 7731: 1,200 cartons of tea, Xiamen to Rotterdam\n"


@pytest.fixture(scope="module")
def tools_installed() -> None:
    """openssl and curl are the reference client: skipped locally without them,
    required under CI=true."""
    missing = [name for name, path in (("openssl", OPENSSL), ("curl", CURL)) if path is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{' and '.join(missing)} not installed; CI must run: "
                        f"apt-get install -y {' '.join(missing)}")
        pytest.skip(f"{' and '.join(missing)} not installed")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    """One validator of a fresh `tide init` network, its TSA on (`tide init` writes
    `tsa = true` and NODE/tsa/)."""
    with running_node(tmp_path_factory.mktemp("tsa"), "tsa-net",
                      LIFTED_TSA_RATE_TOML) as running:
        yield running


@pytest.fixture(scope="module")
def members_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("tsa-members"), "tsa-members",
                      MEMBERS_TOML) as running:
        yield running


@dataclass(frozen=True)
class Stamped:
    """DOC, an `openssl ts -query` for it and the node's reply, all on disk."""

    directory: Path
    ca: Path
    node: RunningNode

    @property
    def doc(self) -> Path:
        return self.directory / "doc.txt"

    @property
    def query(self) -> Path:
        return self.directory / "req.tsq"

    @property
    def reply(self) -> Path:
        return self.directory / "resp.tsr"

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(DOC).digest()


def openssl(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)


def verifies(cwd: Path, reply: str | Path, *options: str | Path) -> bool:
    """Whether `openssl ts -verify` accepts `reply`; its exit code and its words agree."""
    done = openssl(cwd, "ts", "-verify", "-in", reply, *options)
    assert ("Verification: OK" in done.stdout) == (done.returncode == 0), done
    return done.returncode == 0


def curl_post(url: str, body: Path, out: Path) -> None:
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-sS", "--max-time", str(TOOL_TIMEOUT_S), "--data-binary", f"@{body}",
         "-H", f"Content-Type: {QUERY_TYPE}", f"{url}/v1/timestamp", "-o", str(out),
         "-w", "%{http_code} %{content_type}"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S + 10, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"200 {REPLY_TYPE}", done.stdout


@pytest.fixture(scope="module")
def stamped(tools_installed: None, node: RunningNode,
            tmp_path_factory: pytest.TempPathFactory) -> Stamped:
    """`openssl ts -query -data DOC -sha256 -cert`, POSTed by curl as RFC 3161 shows."""
    directory = tmp_path_factory.mktemp("stamped")
    out = Stamped(directory, node.net / "orgs" / DEFAULT_ORG / "ca.pem", node)
    out.doc.write_bytes(DOC)
    made = openssl(directory, "ts", "-query", "-data", out.doc, "-sha256", "-cert",
                   "-out", out.query)
    assert made.returncode == 0, made.stderr
    curl_post(node.url, out.query, out.reply)
    return out


def log_size(node: RunningNode) -> int:
    size: int = httpx.get(f"{node.url}/v1/status", timeout=HTTP_TIMEOUT_S).json()["log_size"]
    return size


def post(http: httpx.Client, url: str, body: bytes,
         content_type: str = QUERY_TYPE) -> httpx.Response:
    return http.post(f"{url}/v1/timestamp", content=body,
                     headers={"Content-Type": content_type})


def rejection_of(response: httpx.Response) -> TokenSummary:
    """The RFC 3161 rejection in a 200 reply: status 2, one failure, no token."""
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"] == REPLY_TYPE
    assert "X-Tidechain-Log-Index" not in response.headers
    summary = describe_token(response.content)
    assert summary.status == 2 and len(summary.failure_info) == 1, summary
    assert summary.serial is None and summary.deposit_index is None
    return summary


# --- granted: what standard tools make of the token -----------------------------------


def test_openssl_verifies_the_token_by_data_digest_and_query(stamped: Stamped) -> None:
    cwd, ca = stamped.directory, stamped.ca
    assert verifies(cwd, stamped.reply, "-data", stamped.doc, "-CAfile", ca)
    assert verifies(cwd, stamped.reply, "-digest", stamped.digest.hex(), "-CAfile", ca)
    # -queryfile compares the imprint and the nonce of this very request too.
    assert verifies(cwd, stamped.reply, "-queryfile", stamped.query, "-CAfile", ca)


def test_openssl_refuses_another_document_another_ca_and_a_tampered_token(
        stamped: Stamped) -> None:
    cwd, ca, reply = stamped.directory, stamped.ca, stamped.reply.read_bytes()
    other = cwd / "other.txt"
    other.write_bytes(DOC.replace(b"1,200", b"1,300"))
    assert not verifies(cwd, stamped.reply, "-data", other, "-CAfile", ca)

    seed = hashlib.sha256(b"another organisation's CA").digest()
    now_ms = time.time_ns() // 1_000_000
    other_ca = cwd / "other-ca.pem"
    other_ca.write_bytes(to_pem(make_org_ca("rival", "Rival Co., Ltd.", "91350100M000100Y43",
                                            seed, now_ms - 86_400_000,
                                            now_ms + 365 * 86_400_000, 7)))
    assert not verifies(cwd, stamped.reply, "-data", stamped.doc, "-CAfile", other_ca)

    # One byte of the TSTInfo's imprint changed. Checked against the changed imprint
    # itself (-digest), only the signature can tell: the TSTInfo no longer matches the
    # messageDigest the TSA signed.
    assert reply.count(stamped.digest) == 1
    at = reply.index(stamped.digest) + 5
    tampered = bytearray(reply)
    tampered[at] ^= 0x01
    (cwd / "tampered.tsr").write_bytes(tampered)
    changed = bytes(tampered[at - 5:at + 27])
    assert not verifies(cwd, "tampered.tsr", "-data", stamped.doc, "-CAfile", ca)
    assert not verifies(cwd, "tampered.tsr", "-digest", changed.hex(), "-CAfile", ca)
    verifier = rfc3161_client.VerifierBuilder(roots=[x509.load_pem_x509_certificate(
        ca.read_bytes())]).build()
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify(rfc3161_client.decode_timestamp_response(bytes(tampered)), changed)


def test_rfc3161_client_verifies_the_token(stamped: Stamped) -> None:
    ca = x509.load_pem_x509_certificate(stamped.ca.read_bytes())
    nonce = tsp.TimeStampReq.load(stamped.query.read_bytes())["nonce"].native
    decoded = rfc3161_client.decode_timestamp_response(stamped.reply.read_bytes())
    assert decoded.status == 0 and decoded.tst_info.nonce == nonce
    verifier = rfc3161_client.VerifierBuilder(
        policy_id=x509.ObjectIdentifier(DEFAULT_POLICY), nonce=nonce, roots=[ca]).build()
    assert verifier.verify_message(decoded, DOC)
    # A request rfc3161-client builds itself, checked against that request.
    request = (rfc3161_client.TimestampRequestBuilder().data(DOC)
               .cert_request(cert_request=True).build())
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        reply = post(http, stamped.node.url, request.as_bytes())
    assert reply.status_code == 200 and reply.headers["content-type"] == REPLY_TYPE
    own = rfc3161_client.decode_timestamp_response(reply.content)
    assert (rfc3161_client.VerifierBuilder.from_request(request).add_root_certificate(ca)
            .build().verify_message(own, DOC))


def test_the_tokens_deposit_is_public_and_proves_the_same_time(stamped: Stamped) -> None:
    token = describe_token(stamped.reply.read_bytes())
    assert token.status == 0 and token.deposit_index is not None
    assert token.imprint == stamped.digest and token.hash_alg == "sha256"
    assert token.policy == DEFAULT_POLICY
    assert token.serial == token.deposit_index + 1
    # No credentials at all: the TSA's deposits are public.
    answer = httpx.get(f"{stamped.node.url}/v1/proof/{token.deposit_index}",
                       timeout=HTTP_TIMEOUT_S)
    assert answer.status_code == 200, answer.text
    proven = verify_deposit_receipt(answer.text, stamped.node.trust_text, stamped.digest)
    assert proven.log_index == token.deposit_index
    assert proven.digest == token.imprint == stamped.digest
    assert proven.time_ms == token.gen_time_ms
    assert proven.meta == {"rfc3161": f"sha256:{stamped.digest.hex()}"}
    depositor = read_key(stamped.node.net / "client.key").key
    assert proven.depositor == depositor.public_key.hex()


def test_tide_timestamp_writes_a_token_and_a_receipt_that_verify(
        tools_installed: None, node: RunningNode, tmp_path: Path) -> None:
    doc = tmp_path / "invoice.pdf"
    doc.write_bytes(b"%PDF-1.7 invoice 2025-0042\n" + os.urandom(64))
    done = tide("timestamp", str(doc), env={"TIDE_NET": str(node.net)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    token, receipt = Path(f"{doc}.tsr"), Path(f"{doc}.tsr.tlog-proof")
    assert token.is_file() and receipt.is_file()
    ca = node.net / "orgs" / DEFAULT_ORG / "ca.pem"
    assert verifies(tmp_path, token, "-data", doc, "-CAfile", ca)
    checked = tide("verify", str(doc), str(receipt), "--trust", str(node.net / "trust.txt"))
    assert checked.returncode == 0, checked.stderr + checked.stdout
    summary = describe_token(token.read_bytes())
    assert summary.imprint == hashlib.sha256(doc.read_bytes()).digest()


def test_a_request_that_arrives_in_pieces_is_granted(node: RunningNode) -> None:
    """A request whose body comes in two TCP segments: the service must read the whole
    body, not what one read returns (it once refused such a request as
    badDataFormat)."""
    body = build_request(hashlib.sha256(DOC).digest(), 42)
    head = (f"POST /v1/timestamp HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
            f"Content-Type: {QUERY_TYPE}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", node.port), timeout=HTTP_TIMEOUT_S) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head + body[:10])
        time.sleep(0.3)  # the node reads the first piece on its own
        s.sendall(body[10:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", data[:200]
    summary = describe_token(rest.partition(b"\r\n\r\n")[2])
    assert summary.status == 0, summary
    assert summary.nonce == 42 and summary.imprint == hashlib.sha256(DOC).digest()


# --- refused: an RFC 3161 rejection, never a 5xx, nothing deposited --------------------


def _openssl_query(cwd: Path, *options: str) -> bytes:
    (cwd / "doc.txt").write_bytes(DOC)
    done = openssl(cwd, "ts", "-query", "-data", "doc.txt", *options, "-out", "q.tsq")
    assert done.returncode == 0, done.stderr
    return (cwd / "q.tsq").read_bytes()


def test_bad_requests_get_the_rfc_3161_rejection_they_deserve(
        tools_installed: None, node: RunningNode, tmp_path: Path) -> None:
    good = _openssl_query(tmp_path, "-sha256", "-cert")
    cases = [
        ("empty body", b"", QUERY_TYPE, "badDataFormat"),
        ("random bytes", random.Random(3161).randbytes(100), QUERY_TYPE, "badDataFormat"),
        ("SHA-1", _openssl_query(tmp_path, "-sha1", "-cert"), QUERY_TYPE, "badAlg"),
        ("another policy", _openssl_query(tmp_path, "-sha256", "-tspolicy", "1.2.3.4"),
         QUERY_TYPE, "unacceptedPolicy"),
        ("5000 bytes", good + bytes(5000 - len(good)), QUERY_TYPE, "badRequest"),
        ("wrong content type", good, "application/octet-stream", "badDataFormat"),
    ]
    before = log_size(node)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        for name, body, content_type, expected in cases:
            summary = rejection_of(post(http, node.url, body, content_type))
            assert summary.failure_info == (expected,), (name, summary)
    assert log_size(node) == before


_BODIES = st.one_of(
    st.binary(max_size=200),
    st.binary(min_size=MAX_REQUEST_BYTES - 2, max_size=MAX_REQUEST_BYTES + 2),
    _MUTATED.map(lambda edits: _mutate(OPENSSL_REQUEST, edits)),
    _structured_requests(),
    _structured_requests(),  # twice: later checks need requests passing the earlier
    _RANDOM_DER,
)
"""Random bytes, bodies at the size limit, a real OpenSSL request mutated, requests
built field by field (mostly valid, so later checks are reached) and random DER trees:
test_rfc3161.py's strategies, here sent to a node."""


def test_no_request_gets_a_5xx_and_no_rejected_request_leaves_a_deposit(
        node: RunningNode) -> None:
    counts: Counter[str] = Counter()
    before = log_size(node)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:

        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(_BODIES)
        def send(body: bytes) -> None:
            response = post(http, node.url, body)
            assert response.status_code == 200, (response.status_code, response.text)
            assert response.headers["content-type"] == REPLY_TYPE
            summary = describe_token(response.content)
            if summary.status == 0:
                counts["granted"] += 1
                index = int(response.headers["X-Tidechain-Log-Index"])
                assert summary.deposit_index == index and summary.serial == index + 1
            else:
                counts[rejection_of(response).failure_info[0]] += 1

        send()
    print(f"\nTSA replies over HTTP: {dict(counts.most_common())}")
    # Each granted request deposited exactly once; the rejected ones not at all.
    assert log_size(node) - before == counts["granted"]
    assert len(set(counts) - {"granted"}) >= 3, counts


# --- access and rate: the members-only network ----------------------------------------


def test_a_members_only_tsa_refuses_strangers_and_serves_members(
        members_node: RunningNode) -> None:
    request = build_request(hashlib.sha256(DOC).digest(), 7)
    with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
        anonymous = post(http, members_node.url, request)
    assert anonymous.status_code == 401, anonymous.text
    challenge = anonymous.headers["WWW-Authenticate"]
    assert challenge.startswith("Basic") and "Signature" in challenge, challenge
    key = read_key(members_node.net / "client.key").key
    with Client(members_node.url, trust=members_node.trust_text, key=key) as sdk:
        reply = sdk.timestamp(request)
    summary = describe_token(reply)
    assert summary.status == 0 and summary.nonce == 7, summary
    assert summary.imprint == hashlib.sha256(DOC).digest()


def test_past_its_rate_a_caller_gets_429_with_retry_after(members_node: RunningNode) -> None:
    # Empty bodies: refused quickly and cheaply, but each still counts against the rate.
    key: SigningKey = read_key(members_node.net / "client.key").key
    statuses: list[int] = []
    with httpx.Client(timeout=HTTP_TIMEOUT_S, auth=MemberSignatures(key)) as http:
        for _ in range(MAX_QUICK_REQUESTS):
            response = post(http, members_node.url, b"")
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) <= {200}, statuses
    assert int(response.headers["Retry-After"]) >= 1
