"""Write docs/vectors/encoding.json: known answers for tidechain's canonical encoding.

Run from the repository root:

    .venv/bin/python tools/make_encoding_vectors.py

Everything is derived from fixed inputs (fixed seeds, fixed times; Ed25519 signing is
deterministic), so running it twice gives the same file. tests/test_encoding_vectors.py
recomputes every output from the inputs stored in the file: a change to the byte format
fails that test until this script is re-run on purpose and the diff reviewed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tidechain.core import cbor
from tidechain.core.crypto import SigningKey, sha256
from tidechain.identity import Role, issue_member_cert, make_org_ca
from tidechain.ledger.types import (
    FORMAT_VERSION,
    TX_SIGNING_DOMAIN,
    BlockHeader,
    Event,
    Genesis,
    GenesisOrg,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
    checkpoint_body,
)

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "vectors" / "encoding.json"

NETWORK = "shanghai-port"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_TIME_MS = GENESIS_TIME_MS + 1_000
EXPIRES_MS = GENESIS_TIME_MS + 3_600_000
CLIENT_SEED = bytes(range(32))
VALIDATOR_SEEDS = [bytes(range(32 * (i + 1), 32 * (i + 2))) for i in range(4)]
NONCE = bytes(range(16))
DIGEST = sha256(b"tally report TR-2026-0001")  # the document's SHA-256: only its hash goes on chain
STATE_ROOT = sha256(b"tidechain vectors: an arbitrary state root")
ZERO_HASH = bytes(32)  # prev_hash of the first block
ORG_ID = "shport"
ORG_LEGAL_NAME = "上海示例港口物流有限公司"
ORG_USCC = "91350100M000100Y43"
ORG_CA_SEED = sha256(b"tidechain vectors: org CA key")
ADMIN_SEED = sha256(b"tidechain vectors: org admin key")
YEAR_MS = 365 * 86_400_000

NOTATION = (
    "CBOR values ('value', 'args', 'result') are written as JSON: numbers are integers, "
    "strings are text strings, arrays are arrays, objects are maps with text keys, "
    "true/false/null are themselves; three extensions: {\"$bytes\": \"<hex>\"} is a byte "
    "string, {\"$int\": \"<decimal>\"} an integer beyond +-(2**53 - 1) that a JSON number "
    "cannot hold exactly, {\"$map\": [[key, value], ...]} a map with integer keys. Every "
    "other byte string (keys, seeds, hashes, signatures, encodings) is lowercase hex. "
    "'diagnostic' is RFC 8949 section 8 diagnostic notation, for reading only."
)

_JSON_SAFE_INT = 2**53 - 1


def to_json_plus(value: Any) -> Any:
    """A CBOR value in the file's JSON notation (see NOTATION)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _JSON_SAFE_INT else {"$int": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [to_json_plus(v) for v in value]
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            # JSON keys are text: a map with integer keys becomes a list of pairs.
            return {"$map": [[to_json_plus(k), to_json_plus(v)] for k, v in value.items()]}
        return {k: to_json_plus(v) for k, v in value.items()}
    raise TypeError(f"not a CBOR value: {value!r}")


def diagnostic(value: Any) -> str:
    """RFC 8949 section 8 diagnostic notation, map entries in canonical order."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return f"h'{value.hex()}'"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(diagnostic(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: cbor.encode(kv[0]))
        return "{" + ", ".join(f"{diagnostic(k)}: {diagnostic(v)}" for k, v in items) + "}"
    if isinstance(value, cbor.Encoded):  # a pre-encoded item spliced in (LogEntry's tx)
        return diagnostic(cbor.decode(value.data))
    raise TypeError(f"not a CBOR value: {value!r}")


def cbor_vectors() -> list[dict[str, Any]]:
    """The data model and its deterministic rules, one value at a time."""
    named: list[tuple[str, Any]] = [
        ("zero", 0), ("largest 1-byte int", 23), ("smallest 2-byte int", 24),
        ("largest 2-byte int", 255), ("smallest 3-byte int", 256), ("largest 3-byte int", 65535),
        ("smallest 5-byte int", 65536), ("largest 5-byte int", 2**32 - 1),
        ("smallest 9-byte int", 2**32), ("largest int", 2**64 - 1), ("minus one", -1),
        ("-24", -24), ("-25", -25), ("-256", -256), ("-257", -257), ("smallest int", -(2**64)),
        ("false", False), ("true", True), ("null", None), ("empty bytes", b""),
        ("24 bytes: length moves to a second byte", bytes(range(24))), ("empty text", ""),
        ("text, UTF-8", "水 tally ü"), ("empty array", []), ("nested arrays", [1, [2, 3], []]),
        ("empty map", {}),
        ("text keys: shorter key first", {"bb": 2, "a": 1, "ab": 3}),
        ("mixed keys: bytewise order of the encoded keys (not length-first)",
         {"a": 4, -1: 3, 1000: 2, 10: 1}),
        ("map in array in map", {"list": [{"k": b"\x00"}], "n": -7}),
    ]
    return [
        {"name": name, "value": to_json_plus(value), "diagnostic": diagnostic(value),
         "hex": cbor.encode(value).hex()}
        for name, value in named
    ]


NON_CANONICAL = [
    ("1817", "23 in a 2-byte head: not the shortest form"),
    ("190017", "23 in a 3-byte head: not the shortest form"),
    ("1900ff", "255 in a 3-byte head: not the shortest form"),
    ("1b00000000ffffffff", "2**32-1 in a 9-byte head: not the shortest form"),
    ("3817", "-24 in a 2-byte head: not the shortest form"),
    ("5801ff", "a 1-byte byte string with a 2-byte length head"),
    ("5f41ff41feff", "indefinite-length byte string"),
    ("7f6161ff", "indefinite-length text string"),
    ("9f01ff", "indefinite-length array"),
    ("bf616101ff", "indefinite-length map"),
    ("a2616201616102", "map keys out of order ('b' before 'a')"),
    ("a2616101616102", "duplicate map key"),
    ("a26161011903e802", "text key before a bytewise-smaller int key"),
    ("a1f501", "map key that is not an integer or text (true)"),
    ("a1410001", "map key that is not an integer or text (a byte string)"),
    ("f93c00", "float (half precision 1.0)"),
    ("fa3f800000", "float (single precision 1.0)"),
    ("fb3ff0000000000000", "float (double precision 1.0)"),
    ("f7", "undefined"),
    ("f0", "simple value 16"),
    ("f820", "simple value 32"),
    ("c11a514b67b0", "tag 1 (epoch time)"),
    ("c249010000000000000000", "tag 2 (bignum)"),
    ("62c328", "invalid UTF-8 in a text string"),
    ("63eda080", "UTF-8 encoded surrogate in a text string"),
    ("0000", "trailing bytes after the item"),
    ("83010203ff", "trailing break byte after the item"),
    ("8301", "truncated array"),
    ("1a0001", "truncated argument"),
    ("", "empty input"),
    ("81" * 17 + "00", "nested deeper than 16"),
    ("991001", "array of 4097 items (more than 4096)"),
]


def founding_org(client: SigningKey) -> GenesisOrg:
    """One founding organisation: its CA, the client as a depositor, an admin."""
    ca = make_org_ca(ORG_ID, ORG_LEGAL_NAME, ORG_USCC, ORG_CA_SEED, GENESIS_TIME_MS,
                     GENESIS_TIME_MS + 10 * YEAR_MS, 1)
    members = [
        issue_member_cert(ca, ORG_CA_SEED, "client", client.public_key, [Role.DEPOSITOR],
                          GENESIS_TIME_MS, GENESIS_TIME_MS + YEAR_MS, 2),
        issue_member_cert(ca, ORG_CA_SEED, "admin", SigningKey(ADMIN_SEED).public_key,
                          [Role.ADMIN], GENESIS_TIME_MS, GENESIS_TIME_MS + YEAR_MS, 3),
    ]
    return GenesisOrg(ca, tuple(members))


def build() -> dict[str, Any]:
    client = SigningKey(CLIENT_SEED)
    validator_keys = [SigningKey(seed) for seed in VALIDATOR_SEEDS]
    validator_names = [f"{NETWORK}/node{i}" for i in range(len(validator_keys))]
    org = founding_org(client)
    genesis = Genesis(NETWORK, GENESIS_TIME_MS, tuple(
        GenesisValidator(name, key.public_key)
        for name, key in zip(validator_names, validator_keys, strict=True)
    ), (org,))

    body = TxBody(
        chain_id=genesis.chain_id, sender=client.public_key, nonce=NONCE, expires_ms=EXPIRES_MS,
        contract="evidence", method="deposit",
        args={"digest": DIGEST, "meta": {"file": "tally.pdf"}},
    )
    tx = SignedTx.create(body, client)

    ok_result = TxResult(True, (Event("deposited", {"index": 0, "digest": DIGEST}),))
    entry = LogEntry(tx, 1, BLOCK_TIME_MS, ok_result)
    leaf_hash = sha256(b"\x00" + entry.encode())
    failed_result = TxResult(False, (), "bad_argument", "'meta' keys and values must be text")
    failed_entry = LogEntry(tx, 1, BLOCK_TIME_MS, failed_result)

    header = BlockHeader(
        chain_id=genesis.chain_id, height=1, prev_hash=ZERO_HASH, time_ms=BLOCK_TIME_MS,
        proposer=validator_names[0],
        tx_root=sha256(b"\x00" + tx.encode()),  # RFC 6962 root of a one-leaf tree
        tx_count=1, log_size=1, log_root=leaf_hash, state_root=STATE_ROOT,
        validators_hash=genesis.validators_hash,
    )

    return {
        "about": "Known answers for tidechain's canonical encoding (docs/encoding.md). "
                 "Generated by tools/make_encoding_vectors.py; checked by "
                 "tests/test_encoding_vectors.py.",
        "notation": NOTATION,
        "format_version": FORMAT_VERSION,
        "cbor": cbor_vectors(),
        "non_canonical": [{"hex": h, "why": why} for h, why in NON_CANONICAL],
        "keys": {
            "client": {"seed": CLIENT_SEED.hex(), "public_key": client.public_key.hex()},
            "validators": [
                {"name": name, "seed": key.seed.hex(), "public_key": key.public_key.hex()}
                for name, key in zip(validator_names, validator_keys, strict=True)
            ],
        },
        "genesis": {
            "name": genesis.name,
            "time_ms": genesis.time_ms,
            "validators": [{"name": v.name, "public_key": v.public_key.hex()}
                           for v in genesis.validators],
            "orgs": [{"ca": o.ca.hex(), "members": [m.hex() for m in o.members]}
                     for o in genesis.orgs],
            "diagnostic": diagnostic(genesis.to_cbor()),
            "bytes": genesis.encode().hex(),
            "chain_id": genesis.chain_id.hex(),
            "validators_hash": genesis.validators_hash.hex(),
            "origin": genesis.origin,
        },
        "transaction": {
            "chain_id": body.chain_id.hex(),
            "sender": body.sender.hex(),
            "nonce": body.nonce.hex(),
            "expires_ms": body.expires_ms,
            "contract": body.contract,
            "method": body.method,
            "args": to_json_plus(body.args),
            "diagnostic": diagnostic(body.to_cbor()),
            "body_bytes": tx.body_bytes.hex(),
            "signing_domain_hex": TX_SIGNING_DOMAIN.hex(),
            "signed_message": (TX_SIGNING_DOMAIN + tx.body_bytes).hex(),
            "signature": tx.signature.hex(),
            "envelope": tx.encode().hex(),
            "tx_id": tx.tx_id.hex(),
        },
        "log_entry": _entry_vector(entry),
        "failed_log_entry": _entry_vector(failed_entry),
        "block_header": {
            "chain_id": header.chain_id.hex(),
            "height": header.height,
            "prev_hash": header.prev_hash.hex(),
            "time_ms": header.time_ms,
            "proposer": header.proposer,
            "tx_root": header.tx_root.hex(),
            "tx_count": header.tx_count,
            "log_size": header.log_size,
            "log_root": header.log_root.hex(),
            "state_root": header.state_root.hex(),
            "validators_hash": header.validators_hash.hex(),
            "diagnostic": diagnostic(header.to_cbor()),
            "bytes": header.encode().hex(),
            "block_hash": header.block_hash.hex(),
        },
        "checkpoint": {
            "origin": genesis.origin,
            "size": header.log_size,
            "root": header.log_root.hex(),
            "body": checkpoint_body(genesis.origin, header.log_size, header.log_root),
        },
    }


def _entry_vector(entry: LogEntry) -> dict[str, Any]:
    """A log entry of the vector transaction; the transaction itself is `transaction`."""
    entry_bytes = entry.encode()
    return {
        "height": entry.height,
        "time_ms": entry.time_ms,
        "result": to_json_plus(entry.result.to_cbor()),
        "diagnostic": diagnostic(entry.to_cbor()),
        "bytes": entry_bytes.hex(),
        "leaf_hash": sha256(b"\x00" + entry_bytes).hex(),
    }


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
