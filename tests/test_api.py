"""The REST API and the SDK, end to end against a real node process.

One node per module (`node` fixture): created with `tide init`, started with
`tide node start` as a subprocess on a free loopback port, in a temporary directory.
Reads are members-only (ADR 0015): `http` and `sdk` sign every request with the
network's depositor key (client.key), whose deposits these tests make; `anonymous`
signs nothing. Bad input of every kind must get a 4xx JSON `{error, reason}`, never a
5xx. The SDK's mapping of HTTP errors onto typed rejections is also checked over a fake
transport, which needs no node.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.nodes import RunningNode, free_port, running_node, tide
from tidechain.api.openapi import openapi_document
from tidechain.api.routes import all_routes
from tidechain.client import Client, NodeUnreachable, deposit_tx, verify_deposit_receipt
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import client_signer, read_key
from tidechain.client.state_proof import verify_state_bundle
from tidechain.contracts import default_registry, evidence
from tidechain.core import cbor
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import (
    BadSignature,
    Busy,
    ContractError,
    DecodeError,
    NotFound,
    ProofError,
    Rejected,
    TooLarge,
)
from tidechain.core.limits import MAX_HTTP_BODY_BYTES, MAX_TX_BYTES
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import SignedTx, TxBody

CBOR = "application/cbor"
OPENAPI = openapi_document(all_routes(default_registry()))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("api"), "api-net") as running:
        yield running


@pytest.fixture(scope="module")
def depositor(node: RunningNode) -> SigningKey:
    return client_signer(node.net).key


@pytest.fixture(scope="module")
def http(node: RunningNode, depositor: SigningKey) -> Iterator[httpx.Client]:
    """Raw HTTP as the depositor: each request signed (RFC 9421) with its key."""
    with httpx.Client(base_url=node.url, timeout=30,
                      auth=MemberSignatures(depositor)) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(node: RunningNode) -> Iterator[httpx.Client]:
    """Raw HTTP with no credential."""
    with httpx.Client(base_url=node.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(node: RunningNode, depositor: SigningKey) -> Iterator[Client]:
    with Client(node.url, trust=node.trust_text, key=depositor) as client:
        yield client


@pytest.fixture(scope="module")
def regulator(node: RunningNode, tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    """A regulator enrolled by the network's admin (`tide member enrol`): it reads
    every record, state proofs of every application's namespace included."""
    key_path = tmp_path_factory.mktemp("regulator") / "regulator.key"
    done = tide("member", "enrol", "--role", "regulator", "--name", "Regulator",
                "--new-key", str(key_path), "--net", str(node.net), "--node", node.url)
    assert done.returncode == 0, done.stderr
    return read_key(key_path).key


_nonces = iter(range(1, 10**9))


def make_tx(sdk: Client, key: SigningKey, digest: bytes | None = None, *,
            now_ms: int | None = None, ttl_ms: int = 600_000,
            chain_id: bytes | None = None) -> SignedTx:
    nonce = next(_nonces).to_bytes(8, "big") + os.urandom(8)
    return deposit_tx(key, chain_id or sdk.chain_id(), digest or sha256(nonce), {"test": "api"},
                      now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
                      nonce=nonce, ttl_ms=ttl_ms)


def assert_rejection(response: httpx.Response, status: int | None = None,
                     code: str | None = None) -> dict[str, Any]:
    """A typed 4xx: JSON {error, reason}, the status and code asked for."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["reason"], str) and body["reason"]
    if code is not None:
        assert body["error"] == code, body
    return body


# --- the happy path, through HTTP and through the SDK ------------------------------------


def test_status_describes_the_network(http: httpx.Client, node: RunningNode) -> None:
    status = http.get("/v1/status").json()
    assert status["network"] == "api-net"
    assert status["validators"] == ["api-net/node0"]
    assert status["quorum"] == 1
    assert len(bytes.fromhex(status["chain_id"])) == 32
    assert status["origin"] == parse_trust(node.trust_text).origin


def test_openapi_document_is_served_and_covers_every_route(http: httpx.Client) -> None:
    from tidechain.api.server import Api

    assert http.get("/v1/openapi.json").json() == OPENAPI
    api = Api.__new__(Api)
    api.routes = all_routes(default_registry())
    app = api.app()  # routes only: the handlers are never called
    # The API's routes: the explorer's pages (`/`, `/explorer/...`) are files, not API.
    served = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"
              and r.resource.canonical.startswith("/v1/")}
    documented = {(method, path) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert served == documented


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield str(item)
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def test_openapi_references_resolve_and_every_operation_documents_errors() -> None:
    for ref in _refs(OPENAPI):
        assert ref.startswith("#/components/"), ref
        _, _, kind, name = ref.split("/")
        assert name in OPENAPI["components"][kind], ref
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert statuses & {"200", "202"}, (method, path)
            if method == "post" or "{" in path:
                assert any(s.startswith("4") for s in statuses), (method, path)


def test_submit_and_wait_then_query_everything(http: httpx.Client, sdk: Client,
                                               depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor)
    response = http.post("/v1/tx", params={"wait": "true"}, content=tx.encode(),
                         headers={"content-type": CBOR})
    assert response.status_code == 200, response.text
    committed = response.json()
    assert committed["tx_id"] == tx.tx_id.hex()
    assert committed["status"] == "committed"
    index, height = committed["log_index"], committed["height"]
    assert committed["events"][0]["type"] == "deposited"

    found = http.get(f"/v1/tx/{tx.tx_id.hex()}").json()
    assert (found["log_index"], found["height"], found["method"]) == (index, height, "deposit")
    assert http.get(f"/v1/log/entry/{index}").json() == found
    block = http.get(f"/v1/block/{height}").json()
    assert tx.tx_id.hex() in block["txs"]
    receipt = http.get(f"/v1/proof/{index}")
    assert receipt.headers["content-type"].startswith("text/plain")
    proven = verify_deposit_receipt(receipt.text, sdk.trust or "", tx.body.args["digest"])
    assert proven.tx_id == tx.tx_id
    deposits = http.get("/v1/apps/evidence/deposits",
                        params={"digest": tx.body.args["digest"].hex()}).json()["items"]
    assert [d["index"] for d in deposits] == [index]
    deposit = http.get("/v1/apps/evidence/deposit", params={"index": index}).json()
    assert deposit["depositor"] == depositor.public_key.hex()
    assert deposit["amended_by"] == []
    checkpoint = http.get("/v1/checkpoint")
    assert checkpoint.headers["content-type"].startswith("text/plain")


def test_a_deposit_is_read_by_its_depositor_only(http: httpx.Client, sdk: Client,
                                                 anonymous: httpx.Client, depositor: SigningKey,
                                                 node: RunningNode) -> None:
    """ADR 0015: evidence is read by its depositor and the regulator. Anonymous reads
    are 401; another member (the admin) finds the deposit as if it did not exist."""
    outcome = sdk.submit(make_tx(sdk, depositor), wait=True)
    index, tx_id = outcome["log_index"], outcome["tx_id"]
    paths = [f"/v1/tx/{tx_id}", f"/v1/log/entry/{index}", f"/v1/proof/{index}",
             f"/v1/apps/evidence/deposit?index={index}"]
    for path in paths:
        assert http.get(path).status_code == 200, path
        assert_rejection(anonymous.get(path), 401, "unauthenticated")
    admin = read_key(node.net / "admin.key").key
    absent = {f"/v1/tx/{tx_id}": ("/v1/tx/" + "00" * 32, tx_id, "00" * 32),
              f"/v1/tx/{tx_id}/wait": ("/v1/tx/" + "00" * 32 + "/wait", tx_id, "00" * 32),
              f"/v1/log/entry/{index}": ("/v1/log/entry/999999999", str(index), "999999999"),
              f"/v1/proof/{index}": ("/v1/proof/999999999", str(index), "999999999")}
    with httpx.Client(base_url=node.url, timeout=30, auth=MemberSignatures(admin)) as other:
        for path, (missing_path, ident, missing_ident) in absent.items():
            hidden = assert_rejection(other.get(path), 404, "not_found")
            missing = assert_rejection(other.get(missing_path), 404, "not_found")
            # The same text but for the id asked: nothing tells that one exists.
            assert hidden["reason"].replace(ident, "ID") == \
                missing["reason"].replace(missing_ident, "ID"), path
        hidden_deposit = assert_rejection(other.get(paths[3]), 403, "forbidden")
        missing_deposit = assert_rejection(
            other.get("/v1/apps/evidence/deposit", params={"index": 999_999_999}), 403)
        assert hidden_deposit == missing_deposit
        assert other.get(f"/v1/block/{outcome['height']}").status_code == 200  # any member
        listed = other.get("/v1/txs", params={"sender": depositor.public_key.hex()}).json()
        assert listed["items"] == []
    mine = http.get("/v1/txs", params={"sender": depositor.public_key.hex()}).json()
    assert tx_id in [t["tx_id"] for t in mine["items"]]


def test_submit_as_json_then_wait(http: httpx.Client, sdk: Client, depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor)
    response = http.post("/v1/tx", json={"tx": base64.b64encode(tx.encode()).decode()})
    assert response.status_code == 202, response.text
    assert response.json() == {"tx_id": tx.tx_id.hex(), "status": "pending"}
    waited = http.get(f"/v1/tx/{tx.tx_id.hex()}/wait", params={"timeout_ms": 10_000})
    assert waited.status_code == 200 and waited.json()["status"] == "committed"


def test_batch_gives_each_transaction_its_own_answer(sdk: Client, depositor: SigningKey) -> None:
    good = [make_tx(sdk, depositor) for _ in range(3)]
    forged = _forged(make_tx(sdk, depositor))
    results = sdk.submit_batch([good[0], forged, good[1], good[2]])
    assert [r.get("tx_id") for r in results] == [good[0].tx_id.hex(), None,
                                                 good[1].tx_id.hex(), good[2].tx_id.hex()]
    assert results[1]["error"] == "bad_signature"
    for tx in good:
        assert sdk.wait(tx.tx_id, 10_000)["status"] == "committed"


def test_sdk_deposit_file_writes_a_verified_receipt(tmp_path: Path, sdk: Client,
                                                    depositor: SigningKey,
                                                    node: RunningNode) -> None:
    document = tmp_path / "contract.pdf"
    document.write_bytes(b"%PDF-1.7 a contract " * 1000)
    outcome = sdk.deposit_file(document, depositor, {"kind": "contract"})
    assert outcome.receipt_path == tmp_path / "contract.pdf.tlog-proof"
    assert outcome.receipt_path.read_text() == outcome.receipt
    proven = verify_deposit_receipt(outcome.receipt, node.trust_text,
                                    hashlib.sha256(document.read_bytes()).digest())
    assert proven.meta == {"kind": "contract"}
    assert proven.log_index == outcome.log_index

    amended = sdk.deposit_file(document, depositor, {"rev": "2"}, amends=outcome.log_index,
                               write_receipt=False)
    assert amended.proven.amends == outcome.log_index and amended.receipt_path is None
    assert sdk.deposit(outcome.log_index)["amended_by"] == [amended.log_index]
    assert [d["index"] for d in sdk.deposits(outcome.digest)] == [amended.log_index,
                                                                  outcome.log_index]


def test_sdk_checks_checkpoints_receipts_and_consistency(sdk: Client) -> None:
    assert sdk.checkpoint().startswith(sdk.status()["origin"] + "\n")
    size = int(sdk.status()["log_size"])
    assert size >= 2
    assert sdk.trust is not None
    assert verify_receipt(sdk.receipt(0), sdk.trust).index == 0
    report = sdk.verified_consistency(1, size)
    assert (report.old.size, report.new.size) == (1, size)
    assert report.new.signers == ("api-net/node0",)  # the latest block ends at `size`


def test_sdk_raises_typed_rejections(sdk: Client, depositor: SigningKey) -> None:
    with pytest.raises(NotFound) as missing:
        sdk.tx(bytes(32))
    assert missing.value.code == "not_found"
    with pytest.raises(BadSignature):
        sdk.submit(_forged(make_tx(sdk, depositor)))
    with pytest.raises(ContractError) as refused:
        sdk.submit(_amend_of_nothing(sdk, depositor))
    assert refused.value.code == "not_found" and "committed as tx" in refused.value.reason


# --- bad input: always a typed 4xx with a reason ---------------------------------------------


def _forged(tx: SignedTx) -> SignedTx:
    signature = bytes([tx.signature[0] ^ 0x80]) + tx.signature[1:]
    return SignedTx(tx.body_bytes, signature, tx.body, tx.tx_id)


def _amend_of_nothing(sdk: Client, key: SigningKey) -> SignedTx:
    nonce = os.urandom(16)
    body = TxBody(sdk.chain_id(), key.public_key, nonce, int(time.time() * 1000) + 60_000,
                  "evidence", "amend", {"of": 10**12, "digest": sha256(nonce), "meta": {}})
    return SignedTx.create(body, key)


def _post_tx(http: httpx.Client, data: bytes, content_type: str = CBOR) -> httpx.Response:
    return http.post("/v1/tx", content=data, headers={"content-type": content_type})


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        (b"", CBOR, "malformed"),
        (b"\xff\x00\x01", CBOR, "malformed"),
        (cbor.encode({"body": b"x", "sig": bytes(64)}), CBOR, "malformed"),
        (cbor.encode({"body": b"x", "sig": bytes(64), "extra": 1}), CBOR, "malformed"),
        (cbor.encode([1, 2, 3]), CBOR, "malformed"),
        (b"hello", "text/plain", "malformed"),
        (b'{"tx": "not base64!"}', "application/json", "malformed"),
        (b'{"tx": 5}', "application/json", "malformed"),
        (b"[1, 2]", "application/json", "malformed"),
        (b"\xa1", "application/x-www-form-urlencoded", "malformed"),
    ],
)
def test_malformed_submissions_are_refused(http: httpx.Client, data: bytes, content_type: str,
                                           code: str) -> None:
    assert_rejection(_post_tx(http, data, content_type), 400, code)


def test_batch_needs_cbor(http: httpx.Client) -> None:
    assert_rejection(http.post("/v1/tx/batch", json=[]), 400, "malformed")
    assert_rejection(http.post("/v1/tx/batch", content=cbor.encode({"a": 1}),
                               headers={"content-type": CBOR}), 400, "malformed")
    assert_rejection(http.post("/v1/tx/batch", content=cbor.encode([1, 2]),
                               headers={"content-type": CBOR}), 400, "malformed")


def test_oversized_transaction_is_refused(http: httpx.Client) -> None:
    big = cbor.encode({"body": b"x" * MAX_TX_BYTES, "sig": bytes(64)})
    assert_rejection(_post_tx(http, big), 413, "too_large")


def test_oversized_request_body_is_refused(http: httpx.Client) -> None:
    response = _post_tx(http, b"\x00" * (MAX_HTTP_BODY_BYTES + 1))
    assert_rejection(response, 413, "too_large")


@pytest.mark.parametrize(
    "path",
    ["/v1/tx/zz", "/v1/tx/" + "ab" * 31, "/v1/tx/" + "ab" * 33, "/v1/tx/" + "g" * 64 + "/wait",
     "/v1/apps/evidence/deposits?digest=xyz", "/v1/apps/evidence/deposits?digest=" + "00" * 31,
     "/v1/block/-1", "/v1/block/abc", "/v1/block/1e3", "/v1/block/" + "9" * 30,
     "/v1/log/entry/-5", "/v1/proof/x", "/v1/apps/evidence/deposit?index=0x10",
     "/v1/log/consistency", "/v1/log/consistency?old=x", "/v1/log/consistency?old=0",
     "/v1/log/consistency?old=5&new=2", "/v1/tx/" + "00" * 32 + "/wait?timeout_ms=-1"],
)
def test_bad_parameters_are_refused(http: httpx.Client, path: str) -> None:
    assert_rejection(http.get(path), 400)


def test_a_request_line_too_long_for_http_is_refused_without_a_traceback(
        http: httpx.Client, node: RunningNode) -> None:
    """The HTTP layer refuses a request line over 8 KiB before any handler runs (a
    plain-text 400); the node logs one warning line, not a traceback (the fixture's
    teardown checks the whole log for tracebacks)."""
    response = http.get("/v1/blocks", params={"cursor": "a" * 9000})
    assert response.status_code == 400
    assert http.get("/v1/status").status_code == 200
    assert "Traceback" not in node.log()


MISSING = ["/v1/tx/" + "00" * 32, "/v1/block/999999999", "/v1/log/entry/999999999",
           "/v1/proof/999999999", "/v1/apps/evidence/deposit?index=999999999"]


@pytest.mark.parametrize("path", MISSING)
def test_missing_objects_are_404(node: RunningNode, regulator: SigningKey, path: str) -> None:
    """The regulator reads every record, so it learns what is missing."""
    with httpx.Client(base_url=node.url, timeout=30, auth=MemberSignatures(regulator)) as r:
        assert_rejection(r.get(path), 404, "not_found")


@pytest.mark.parametrize("path", MISSING[:4])
def test_missing_entries_and_blocks_are_404_to_any_member(http: httpx.Client,
                                                          path: str) -> None:
    assert_rejection(http.get(path), 404, "not_found")


def test_a_missing_deposit_is_refused_to_a_depositor_like_a_hidden_one(
        http: httpx.Client) -> None:
    """A depositor reads its own deposits: one it cannot see, missing or another's,
    gets the same 403 naming the roles, so no answer tells whether it exists."""
    body = assert_rejection(http.get(MISSING[4]), 403, "forbidden")
    assert "regulator" in body["reason"] and "party" in body["reason"]


@pytest.mark.parametrize("path", MISSING)
def test_anonymous_reads_of_records_are_401(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path)
    assert_rejection(response, 401, "unauthenticated")
    assert "Signature" not in response.request.headers


def test_unknown_routes_and_methods_are_json_4xx(http: httpx.Client) -> None:
    assert_rejection(http.get("/v1/nothing-here"), 404)
    assert_rejection(http.delete("/v1/status"), 405)


def test_wrongly_signed_transaction_is_bad_signature(http: httpx.Client, sdk: Client,
                                                     depositor: SigningKey) -> None:
    body = assert_rejection(_post_tx(http, _forged(make_tx(sdk, depositor)).encode()), 400,
                            "bad_signature")
    assert "signature" in body["reason"]


def test_transaction_signed_by_someone_else_is_bad_signature(http: httpx.Client,
                                                             sdk: Client) -> None:
    honest = make_tx(sdk, SigningKey(sha256(b"alice")))
    mallory = SigningKey(sha256(b"mallory"))
    from tidechain.ledger.types import TX_SIGNING_DOMAIN

    stolen = SignedTx(honest.body_bytes, mallory.sign(TX_SIGNING_DOMAIN + honest.body_bytes),
                      honest.body, honest.tx_id)
    assert_rejection(_post_tx(http, stolen.encode()), 400, "bad_signature")


def test_replayed_transaction_is_refused(http: httpx.Client, sdk: Client,
                                         depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor)
    first = http.post("/v1/tx", params={"wait": "true"}, content=tx.encode(),
                      headers={"content-type": CBOR})
    assert first.status_code == 200, first.text
    body = assert_rejection(_post_tx(http, tx.encode()), 400, "replay")
    assert "already committed" in body["reason"]
    with pytest.raises(Rejected) as through_sdk:
        sdk.submit(tx)
    assert through_sdk.value.code == "replay"


def test_duplicate_pending_transaction_is_refused(http: httpx.Client, sdk: Client,
                                                  depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor)
    results = sdk.submit_batch([tx, tx])
    assert results[0] == {"tx_id": tx.tx_id.hex()}
    assert results[1]["error"] in ("duplicate", "replay")  # the first may have committed
    sdk.wait(tx.tx_id, 10_000)


def test_expired_transaction_is_refused(http: httpx.Client, sdk: Client,
                                        depositor: SigningKey) -> None:
    head_ms = int(sdk.status()["block_time_ms"])
    tx = make_tx(sdk, depositor, now_ms=head_ms - 10_000, ttl_ms=1_000)
    assert_rejection(_post_tx(http, tx.encode()), 400, "expired")


def test_expiry_too_far_ahead_is_refused(http: httpx.Client, sdk: Client,
                                         depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor, now_ms=int(time.time() * 1000) + 3 * 24 * 3600 * 1000)
    assert_rejection(_post_tx(http, tx.encode()), 400, "expiry_too_far")


def test_transaction_for_another_chain_is_refused(http: httpx.Client, sdk: Client,
                                                  depositor: SigningKey) -> None:
    tx = make_tx(sdk, depositor, chain_id=sha256(b"another chain"))
    assert_rejection(_post_tx(http, tx.encode()), 400, "wrong_chain")


def test_contract_refusal_is_422_with_where_it_landed(http: httpx.Client, sdk: Client,
                                                      depositor: SigningKey) -> None:
    tx = _amend_of_nothing(sdk, depositor)
    response = http.post("/v1/tx", params={"wait": "true"}, content=tx.encode(),
                         headers={"content-type": CBOR})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "not_found" and body["status"] == "committed"
    assert isinstance(body["log_index"], int)


@given(data=st.binary(max_size=300), content_type=st.sampled_from([CBOR, "application/json",
                                                                   "text/plain"]))
@settings(max_examples=60, deadline=None)
def test_fuzzed_submissions_never_cause_5xx(http: httpx.Client, data: bytes,
                                            content_type: str) -> None:
    assert_rejection(_post_tx(http, data, content_type))


@given(tx_bytes=st.binary(min_size=1, max_size=40))
@settings(max_examples=30, deadline=None)
def test_fuzzed_batches_never_cause_5xx(http: httpx.Client, tx_bytes: bytes) -> None:
    response = http.post("/v1/tx/batch", content=cbor.encode([tx_bytes, tx_bytes[::-1]]),
                         headers={"content-type": CBOR})
    assert response.status_code == 200, response.text
    assert all("error" in r for r in response.json()["results"])


# --- the SDK over a fake transport (no node) -----------------------------------------------


def _fake(status: int, body: Any = None, text: str | None = None,
          headers: dict[str, str] | None = None) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return Client("http://node.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(404, "not_found", NotFound), (413, "too_large", TooLarge), (400, "malformed", DecodeError),
     (400, "bad_signature", BadSignature), (400, "expired", Rejected),
     (400, "proof_invalid", ProofError)],
)
def test_http_errors_become_typed_rejections_with_the_server_code(
        status: int, code: str, expected: type[Rejected]) -> None:
    with pytest.raises(expected) as raised:
        _fake(status, {"error": code, "reason": "because"}).status()
    assert type(raised.value) is expected
    assert (raised.value.code, raised.value.reason, raised.value.http_status) == (
        code, "because", status)


def test_busy_carries_retry_after() -> None:
    client = _fake(503, {"error": "busy", "reason": "mempool full"}, headers={"Retry-After": "7"})
    with pytest.raises(Busy) as raised:
        client.status()
    assert raised.value.retry_after_s == 7


def test_a_non_json_error_is_still_typed() -> None:
    with pytest.raises(Rejected) as raised:
        _fake(502, text="<html>bad gateway</html>").status()
    assert raised.value.code == "server_error" and "502" in raised.value.reason


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeUnreachable) as raised, Client(url, timeout_s=2) as client:
        client.status()
    assert url in raised.value.reason


def test_a_tampered_receipt_from_the_node_is_refused() -> None:
    from tests.test_client_verify import FOUR_RECEIPT, FOUR_TRUST

    tampered = FOUR_RECEIPT.replace("index 6", "index 5")
    client = Client("http://node.test", trust=FOUR_TRUST, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, text=tampered)))
    with pytest.raises(ProofError, match="receipt for entry 5 does not verify"):
        client.receipt(5)


def test_an_inconsistent_consistency_proof_is_refused() -> None:
    root = base64.b64encode(sha256(b"root")).decode()
    answer = {"old_size": 1, "new_size": 2, "old_root": root, "new_root": root,
              "proof": [base64.b64encode(bytes(32)).decode()]}
    with pytest.raises(ProofError, match="consistency proof does not verify"):
        _fake(200, answer).consistency(1, 2)


def test_the_client_refuses_bad_ids_before_sending() -> None:
    client = _fake(200, {})
    for bad in ("zz", "ab" * 31, b"short"):
        with pytest.raises(DecodeError):
            client.tx(bad)
    with pytest.raises(DecodeError):
        client.block(-1)


def test_state_values_are_provable_offline(http: httpx.Client, sdk: Client,
                                           depositor: SigningKey, regulator: SigningKey,
                                           node: RunningNode, tmp_path: Path) -> None:
    """A state proof of the evidence namespace is read by the regulator, who reads all
    of it (ADR 0015), and by a record's parties (ADR 0017): a depositor reads its own
    deposit's, not another's (403)."""
    outcome = sdk.submit(make_tx(sdk, depositor), wait=True)
    index = outcome["log_index"]
    key = namespaced(evidence.NAME, evidence.record_key(index))
    with httpx.Client(base_url=node.url, timeout=30,
                      auth=MemberSignatures(depositor)) as as_depositor:
        own = as_depositor.get(f"/v1/state/proof/{key.hex()}")
        assert own.status_code == 200, own.text
        assert verify_state_bundle(own.json(), parse_trust(node.trust_text)).key == key
    enrolled = tide("member", "enrol", "--role", "depositor", "--name", "Other Depositor",
                    "--new-key", str(tmp_path / "other.key"), "--net", str(node.net),
                    "--node", node.url)
    assert enrolled.returncode == 0, enrolled.stderr
    other = sdk.submit(make_tx(sdk, read_key(tmp_path / "other.key").key), wait=True)
    theirs = namespaced(evidence.NAME, evidence.record_key(other["log_index"]))
    with httpx.Client(base_url=node.url, timeout=30,
                      auth=MemberSignatures(depositor)) as as_depositor:
        assert_rejection(as_depositor.get(f"/v1/state/proof/{theirs.hex()}"), 403,
                         "forbidden")
    with httpx.Client(base_url=node.url, timeout=30,
                      auth=MemberSignatures(regulator)) as as_regulator:
        bundle = as_regulator.get(f"/v1/state/proof/{key.hex()}").json()
        trust = parse_trust(node.trust_text)
        verified = verify_state_bundle(bundle, trust)
        assert verified.value is not None and verified.key == key
        assert evidence.decode_record(verified.value)["index"] == index
        absent = namespaced(evidence.NAME, evidence.record_key(10**12))
        missing = verify_state_bundle(
            as_regulator.get(f"/v1/state/proof/{absent.hex()}").json(), trust)
        assert missing.value is None
        with pytest.raises(Rejected):  # a changed value no longer matches the proof
            verify_state_bundle(bundle | {"value": bundle["value"][:-2] + "00"}, trust)
        with pytest.raises(Rejected):  # claiming absence of a present key fails too
            verify_state_bundle(bundle | {"value": None}, trust)
        assert_rejection(as_regulator.get("/v1/state/proof/zz"), 400)


def test_a_full_mempool_answers_busy_with_retry_after(tmp_path: Path) -> None:
    with running_node(tmp_path, "busy-net", "mempool_max_txs = 50\n") as small, \
            Client(small.url, trust=small.trust_text,
                   key=client_signer(small.net).key) as client:
        key = client_signer(small.net).key
        txs = [make_tx(client, key) for _ in range(200)]
        response = httpx.post(f"{small.url}/v1/tx/batch", headers={"content-type": CBOR},
                              content=cbor.encode([t.encode() for t in txs]), timeout=30)
        assert response.status_code == 200
        assert "Retry-After" in response.headers, response.text[:300]
        assert int(response.headers["Retry-After"]) >= 1
        codes = [r.get("error") for r in response.json()["results"]]
        assert codes.count(None) == 50 and codes.count("busy") == 150
        # What was admitted commits; what was refused was not half-taken.
        last = txs[49]
        assert client.wait(last.tx_id.hex(), timeout_ms=30_000)["status"] == "committed"
        with pytest.raises(NotFound):
            client.tx(txs[50].tx_id.hex())


@pytest.mark.parametrize("path", [
    "/v1/block/%C2%B2", "/v1/proof/%C2%B2", "/v1/apps/evidence/deposit?index=%C2%B2",
    "/v1/log/consistency?old=%C2%B2", "/v1/block/9999999999999999999",
    "/v1/log/entry/9999999999999999999", "/v1/log/consistency?old=1&new=0",
])
def test_odd_numbers_in_urls_are_refused_not_500(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


def test_deeply_nested_json_is_refused_not_500(http: httpx.Client) -> None:
    response = _post_tx(http, b"[" * 200_000, "application/json")
    assert response.status_code == 400, response.text


def test_the_documented_envelope_names_the_body_fields_the_node_reads() -> None:
    """A client built from the OpenAPI document alone must use the real field names."""
    description = OPENAPI["paths"]["/v1/tx"]["post"]["requestBody"]["content"][CBOR][
        "schema"]["description"]
    body = TxBody(bytes(32), bytes(32), bytes(8), 0, "evidence", "deposit", {}).to_cbor()
    for key in body:
        assert f"{key}:" in description, key
