"""docs/vectors/encoding.json pins the byte format: every output in it is recomputed
here from the inputs in it. A failure means the format changed; if that was meant,
re-run tools/make_encoding_vectors.py and review the diff (it is a hard fork).

The recomputation uses hashlib, cbor2 and the `cryptography` package's Ed25519 beside
our own code, so the vectors are also checked against independent implementations.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tidechain.core import cbor
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import DecodeError, TooLarge
from tidechain.ledger.types import (
    FORMAT_VERSION,
    TX_SIGNING_DOMAIN,
    BlockHeader,
    Genesis,
    GenesisOrg,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
    checkpoint_body,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "docs" / "vectors" / "encoding.json"


@cache
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return loaded


def from_json_plus(value: Any) -> Any:
    """The file's JSON notation for CBOR values, back to Python (see its 'notation')."""
    if isinstance(value, list):
        return [from_json_plus(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        if set(value) == {"$int"}:
            return int(value["$int"])
        if set(value) == {"$map"}:
            return {from_json_plus(k): from_json_plus(v) for k, v in value["$map"]}
        return {k: from_json_plus(v) for k, v in value.items()}
    return value


def diagnostic(value: Any) -> str:
    """RFC 8949 section 8 diagnostic notation, map entries in canonical order."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "h'" + value.hex() + "'"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(map(diagnostic, value)) + "]"
    entries = sorted(value.items(), key=lambda kv: cbor2.dumps(kv[0]))
    return "{" + ", ".join(diagnostic(k) + ": " + diagnostic(v) for k, v in entries) + "}"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def genesis() -> Genesis:
    g = vectors()["genesis"]
    validators = tuple(GenesisValidator(v["name"], bytes.fromhex(v["public_key"]))
                       for v in g["validators"])
    orgs = tuple(GenesisOrg(bytes.fromhex(o["ca"]), tuple(bytes.fromhex(m) for m in o["members"]))
                 for o in g["orgs"])
    return Genesis(g["name"], g["time_ms"], validators, orgs)


def body() -> TxBody:
    t = vectors()["transaction"]
    return TxBody(
        chain_id=bytes.fromhex(t["chain_id"]), sender=bytes.fromhex(t["sender"]),
        nonce=bytes.fromhex(t["nonce"]), expires_ms=t["expires_ms"], contract=t["contract"],
        method=t["method"], args=from_json_plus(t["args"]),
    )


def signed_tx() -> SignedTx:
    return SignedTx.decode(bytes.fromhex(vectors()["transaction"]["envelope"]))


# --- the data model --------------------------------------------------------------------------


def test_format_version() -> None:
    assert vectors()["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize("case", vectors()["cbor"], ids=lambda c: c["name"])
def test_cbor_value_vectors(case: dict[str, Any]) -> None:
    value = from_json_plus(case["value"])
    encoded = bytes.fromhex(case["hex"])
    assert cbor.encode(value) == encoded
    assert cbor.decode(encoded) == value
    assert cbor2.loads(encoded) == value
    assert diagnostic(value) == case["diagnostic"]


@pytest.mark.parametrize("case", vectors()["non_canonical"], ids=lambda c: c["why"])
def test_non_canonical_vectors_are_rejected(case: dict[str, Any]) -> None:
    with pytest.raises((DecodeError, TooLarge)):
        cbor.decode(bytes.fromhex(case["hex"]))


def test_keys() -> None:
    keys = vectors()["keys"]
    for key in [keys["client"], *keys["validators"]]:
        assert SigningKey(bytes.fromhex(key["seed"])).public_key.hex() == key["public_key"]


# --- genesis and chain id -------------------------------------------------------------------


def test_genesis() -> None:
    g = vectors()["genesis"]
    encoded = genesis().encode()
    assert encoded.hex() == g["bytes"]
    assert Genesis.decode(encoded) == genesis()
    assert diagnostic(cbor2.loads(encoded)) == g["diagnostic"]
    assert sha256(encoded).hex() == g["chain_id"] == genesis().chain_id.hex()
    validators = cbor2.loads(encoded)["validators"]
    assert sha256(cbor.encode(validators)).hex() == g["validators_hash"]
    assert genesis().validators_hash.hex() == g["validators_hash"]
    assert g["origin"] == f"tidechain/{g['name']}/{g['chain_id'][:16]}" == genesis().origin
    names = [v["name"] for v in vectors()["keys"]["validators"]]
    keys = [v["public_key"] for v in vectors()["keys"]["validators"]]
    assert [v["name"] for v in g["validators"]] == names
    assert [v["public_key"] for v in g["validators"]] == keys


# --- the transaction -------------------------------------------------------------------------


def test_transaction_body() -> None:
    t = vectors()["transaction"]
    encoded = body().encode()
    assert encoded.hex() == t["body_bytes"]
    assert TxBody.from_cbor(cbor2.loads(encoded)) == body()
    assert diagnostic(cbor2.loads(encoded)) == t["diagnostic"]
    assert t["chain_id"] == vectors()["genesis"]["chain_id"]
    assert t["sender"] == vectors()["keys"]["client"]["public_key"]


def test_transaction_signature_and_id() -> None:
    t = vectors()["transaction"]
    body_bytes = bytes.fromhex(t["body_bytes"])
    assert t["signing_domain_hex"] == TX_SIGNING_DOMAIN.hex() == b"tidechain/tx/v1\n".hex()
    message = TX_SIGNING_DOMAIN + body_bytes
    assert message.hex() == t["signed_message"]
    client = SigningKey(bytes.fromhex(vectors()["keys"]["client"]["seed"]))
    assert client.sign(message).hex() == t["signature"]  # Ed25519 is deterministic
    # An independent Ed25519 (OpenSSL) accepts it; raises InvalidSignature otherwise.
    Ed25519PublicKey.from_public_bytes(client.public_key).verify(
        bytes.fromhex(t["signature"]), message)
    assert sha256(body_bytes).hex() == t["tx_id"]


def test_transaction_envelope() -> None:
    t = vectors()["transaction"]
    tx = SignedTx.create(body(), SigningKey(bytes.fromhex(vectors()["keys"]["client"]["seed"])))
    assert tx.encode().hex() == t["envelope"]
    assert tx.tx_id.hex() == t["tx_id"]
    assert cbor2.loads(bytes.fromhex(t["envelope"])) == {
        "body": bytes.fromhex(t["body_bytes"]), "sig": bytes.fromhex(t["signature"]),
    }
    decoded = signed_tx()
    assert decoded == tx and decoded.body == body()
    decoded.verify_signature()


# --- log entries, block header, checkpoint -----------------------------------------------------


@pytest.mark.parametrize("name", ["log_entry", "failed_log_entry"])
def test_log_entry(name: str) -> None:
    e = vectors()[name]
    result = TxResult.from_cbor(from_json_plus(e["result"]))
    entry = LogEntry(signed_tx(), e["height"], e["time_ms"], result)
    encoded = entry.encode()
    assert encoded.hex() == e["bytes"]
    assert LogEntry.decode(encoded) == entry
    assert diagnostic(cbor2.loads(encoded)) == e["diagnostic"]
    assert sha256(b"\x00" + encoded).hex() == e["leaf_hash"]
    assert cbor2.loads(encoded)["tx"] == cbor2.loads(bytes.fromhex(
        vectors()["transaction"]["envelope"]))


def test_block_header() -> None:
    h = vectors()["block_header"]
    header = BlockHeader(
        chain_id=bytes.fromhex(h["chain_id"]), height=h["height"],
        prev_hash=bytes.fromhex(h["prev_hash"]), time_ms=h["time_ms"], proposer=h["proposer"],
        tx_root=bytes.fromhex(h["tx_root"]), tx_count=h["tx_count"], log_size=h["log_size"],
        log_root=bytes.fromhex(h["log_root"]), state_root=bytes.fromhex(h["state_root"]),
        validators_hash=bytes.fromhex(h["validators_hash"]),
    )
    encoded = header.encode()
    assert encoded.hex() == h["bytes"]
    assert BlockHeader.from_cbor(cbor.decode(encoded)) == header
    assert diagnostic(cbor2.loads(encoded)) == h["diagnostic"]
    assert sha256(encoded).hex() == h["block_hash"] == header.block_hash.hex()


def test_block_header_is_coherent_with_the_other_vectors() -> None:
    v = vectors()
    h = v["block_header"]
    envelope = bytes.fromhex(v["transaction"]["envelope"])
    assert h["tx_root"] == sha256(b"\x00" + envelope).hex()  # RFC 6962, one leaf
    assert h["log_root"] == v["log_entry"]["leaf_hash"]  # a one-entry log
    assert (h["chain_id"], h["validators_hash"]) == (
        v["genesis"]["chain_id"], v["genesis"]["validators_hash"])
    assert (h["height"], h["time_ms"]) == (v["log_entry"]["height"], v["log_entry"]["time_ms"])
    assert h["prev_hash"] == "00" * 32  # the first block's parent


def test_checkpoint_body() -> None:
    c = vectors()["checkpoint"]
    root = bytes.fromhex(c["root"])
    expected = f"{c['origin']}\n{c['size']}\n{base64.b64encode(root).decode()}\n"
    assert c["body"] == expected == checkpoint_body(c["origin"], c["size"], root)
    assert c["origin"] == vectors()["genesis"]["origin"]
    assert (c["size"], c["root"]) == (vectors()["block_header"]["log_size"],
                                      vectors()["block_header"]["log_root"])
