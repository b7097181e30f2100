"""Ledger structures: one byte form each, strict decoding with typed rejections,
signatures that cover exactly the body bytes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.core import cbor
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import BadSignature, DecodeError, InvariantViolation, Rejected, TooLarge
from tidechain.core.limits import MAX_NAME_BYTES, MAX_TX_BYTES, MAX_VALIDATORS
from tidechain.ledger.types import (
    TX_SIGNING_DOMAIN,
    BlockHeader,
    Event,
    Genesis,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
    checkpoint_body,
)

UINT64_MAX = 2**64 - 1
CLIENT = SigningKey(bytes(range(32)))

# --- strategies ---------------------------------------------------------------------

uints = st.integers(0, UINT64_MAX)
hashes = st.binary(min_size=32, max_size=32)
scalars = (st.integers(-(2**64), UINT64_MAX) | st.binary(max_size=40) | st.text(max_size=20)
           | st.booleans() | st.none())
cbor_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.integers(-1000, 1000) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
text_maps = st.dictionaries(st.text(max_size=12), cbor_values, max_size=4)
idents = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64)
name_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="+/")
network_names = st.text(name_chars, min_size=1, max_size=40)
key_names = st.text(name_chars | st.just("/"), min_size=1, max_size=MAX_NAME_BYTES)
signing_keys = st.binary(min_size=32, max_size=32).map(SigningKey)


@st.composite
def tx_bodies(draw: st.DrawFn, sender: bytes | None = None) -> TxBody:
    return TxBody(
        chain_id=draw(hashes),
        sender=sender if sender is not None else draw(hashes),
        nonce=draw(st.binary(min_size=8, max_size=32)),
        expires_ms=draw(uints),
        contract=draw(idents),
        method=draw(idents),
        args=draw(text_maps),
    )


@st.composite
def signed_txs(draw: st.DrawFn) -> SignedTx:
    key = draw(signing_keys)
    return SignedTx.create(draw(tx_bodies(sender=key.public_key)), key)


events = st.builds(Event, st.text(max_size=20), text_maps)
tx_results = (
    st.builds(TxResult, st.just(True), st.lists(events, max_size=3).map(tuple))
    | st.builds(lambda e, r: TxResult(False, (), e, r), st.text(max_size=20), st.text(max_size=40))
)
log_entries = st.builds(LogEntry, signed_txs(), uints, uints, tx_results)
block_headers = st.builds(
    BlockHeader, hashes, uints, hashes, uints, st.text(max_size=40), hashes, uints, uints,
    hashes, hashes, hashes,
)
genesis_validators = st.builds(GenesisValidator, key_names, hashes)
geneses = st.builds(Genesis, network_names, uints,
                    st.lists(genesis_validators, max_size=4).map(tuple))


def a_body(**changes: Any) -> TxBody:
    body = TxBody(
        chain_id=bytes(32), sender=CLIENT.public_key, nonce=bytes(range(16)), expires_ms=10**12,
        contract="evidence", method="deposit",
        args={"digest": bytes(range(32)), "meta": {"file": "tally.pdf"}},
    )
    return replace(body, **changes)


def a_tx() -> SignedTx:
    return SignedTx.create(a_body(), CLIENT)


def envelope(body_map: dict[str, Any], sig: bytes = bytes(64)) -> bytes:
    return cbor.encode({"body": cbor.encode(body_map), "sig": sig})


# --- round trips ----------------------------------------------------------------------


@settings(max_examples=100)
@given(tx_bodies())
def test_tx_body_round_trip(body: TxBody) -> None:
    encoded = body.encode()
    assert TxBody.from_cbor(cbor.decode(encoded)) == body
    assert TxBody.from_cbor(cbor.decode(encoded)).encode() == encoded


@settings(max_examples=50)
@given(signed_txs())
def test_signed_tx_round_trip(tx: SignedTx) -> None:
    decoded = SignedTx.decode(tx.encode())
    assert decoded == tx
    assert decoded.body == tx.body
    assert decoded.tx_id == tx.tx_id
    assert decoded.encode() == tx.encode()
    decoded.verify_signature()


@settings(max_examples=50)
@given(log_entries)
def test_log_entry_round_trip(entry: LogEntry) -> None:
    decoded = LogEntry.decode(entry.encode())
    assert decoded == entry
    assert decoded.encode() == entry.encode()
    assert LogEntry.from_cbor(entry.to_cbor()) == entry


@settings(max_examples=100)
@given(tx_results)
def test_tx_result_round_trip(result: TxResult) -> None:
    assert TxResult.from_cbor(cbor.decode(cbor.encode(result.to_cbor()))) == result


@settings(max_examples=100)
@given(block_headers)
def test_block_header_round_trip(header: BlockHeader) -> None:
    encoded = header.encode()
    assert BlockHeader.from_cbor(cbor.decode(encoded)) == header
    assert header.block_hash == hashlib.sha256(encoded).digest()


@settings(max_examples=100)
@given(geneses)
def test_genesis_round_trip(genesis: Genesis) -> None:
    encoded = genesis.encode()
    assert Genesis.decode(encoded) == genesis
    assert genesis.chain_id == hashlib.sha256(encoded).digest()
    assert genesis.origin == f"tidechain/{genesis.name}/{genesis.chain_id[:8].hex()}"
    validators = [{"name": v.name, "key": v.public_key} for v in genesis.validators]
    assert genesis.validators_hash == hashlib.sha256(cbor.encode(validators)).digest()


def test_checkpoint_body_is_a_c2sp_checkpoint() -> None:
    root = bytes(range(32))
    text = checkpoint_body("tidechain/net/0011223344556677", 7, root)
    assert text == f"tidechain/net/0011223344556677\n7\n{base64.b64encode(root).decode()}\n"


# --- transactions: ids and signatures -------------------------------------------------------


def test_tx_id_is_sha256_of_the_body_bytes() -> None:
    tx = a_tx()
    assert tx.tx_id == hashlib.sha256(a_body().encode()).digest()
    assert tx.body_bytes == a_body().encode()


def test_signature_is_domain_separated() -> None:
    tx = a_tx()
    assert tx.signature == CLIENT.sign(TX_SIGNING_DOMAIN + tx.body_bytes)
    undomained = CLIENT.sign(tx.body_bytes)
    with pytest.raises(BadSignature):
        SignedTx(tx.body_bytes, undomained, tx.body, tx.tx_id).verify_signature()


def test_changing_any_byte_of_the_body_breaks_the_signature() -> None:
    tx = a_tx()
    for position in range(len(tx.body_bytes)):
        for mask in (0x01, 0x80):
            mutated = bytearray(tx.body_bytes)
            mutated[position] ^= mask
            forged = SignedTx(bytes(mutated), tx.signature, tx.body,
                              hashlib.sha256(mutated).digest())
            with pytest.raises(BadSignature):
                forged.verify_signature()
            # Through the wire format the mutation is refused either way.
            with pytest.raises(Rejected):
                wire = SignedTx.decode(cbor.encode({"body": bytes(mutated), "sig": tx.signature}))
                wire.verify_signature()


def test_changing_any_byte_of_the_signature_breaks_it() -> None:
    tx = a_tx()
    for position in range(len(tx.signature)):
        mutated = bytearray(tx.signature)
        mutated[position] ^= 0x01
        with pytest.raises(BadSignature):
            SignedTx.decode(cbor.encode({"body": tx.body_bytes, "sig": bytes(mutated)})
                            ).verify_signature()


def test_a_signature_by_another_key_does_not_verify() -> None:
    other = SigningKey(bytes(range(1, 33)))
    tx = SignedTx.create(a_body(), other)  # signed by `other`, but 'from' names CLIENT
    with pytest.raises(BadSignature):
        SignedTx.decode(tx.encode()).verify_signature()


def test_non_canonical_body_bytes_are_refused_even_when_signed() -> None:
    canonical = a_body().encode()
    # Same value, map keys in insertion order instead of sorted: a second encoding.
    reordered = b"\xa8" + b"".join(
        cbor.encode(k) + cbor.encode(v) for k, v in a_body().to_cbor().items()
    )
    assert reordered != canonical and cbor.encode(a_body().to_cbor()) == canonical
    signature = CLIENT.sign(TX_SIGNING_DOMAIN + reordered)
    with pytest.raises(DecodeError):
        SignedTx.decode(cbor.encode({"body": reordered, "sig": signature}))


# --- transactions: typed rejections ------------------------------------------------------

BODY_FIELDS = ["v", "chain", "from", "nonce", "exp", "contract", "method", "args"]


@pytest.mark.parametrize("name", BODY_FIELDS)
def test_missing_body_field_is_rejected(name: str) -> None:
    body_map = a_body().to_cbor()
    del body_map[name]
    with pytest.raises(DecodeError, match="missing"):
        SignedTx.decode(envelope(body_map))


@pytest.mark.parametrize("name", ["body", "sig"])
def test_missing_envelope_field_is_rejected(name: str) -> None:
    env = a_tx().to_cbor()
    del env[name]
    with pytest.raises(DecodeError, match="missing"):
        SignedTx.decode(cbor.encode(env))


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(DecodeError, match="unknown"):
        SignedTx.decode(envelope({**a_body().to_cbor(), "fee": 1}))
    with pytest.raises(DecodeError, match="unknown"):
        SignedTx.decode(cbor.encode({**a_tx().to_cbor(), "memo": "x"}))
    with pytest.raises(DecodeError, match="unknown"):
        SignedTx.decode(envelope({**a_body().to_cbor(), 1: 1}))  # type: ignore[dict-item]


@pytest.mark.parametrize(("name", "bad"), [
    ("v", True), ("v", "1"), ("v", 2), ("v", -1), ("v", None),
    ("exp", True), ("exp", False), ("exp", -1), ("exp", b"\x01"), ("exp", "10"),
    ("chain", "00" * 32), ("chain", [0] * 32), ("from", 1), ("nonce", "nonce-16-chars!!"),
    ("contract", b"evidence"), ("contract", ""), ("contract", "x" * 65), ("contract", "证据"),
    ("method", 7), ("method", None), ("args", [1, 2]), ("args", b""), ("args", True),
])
def test_wrong_types_and_values_are_rejected(name: str, bad: Any) -> None:
    with pytest.raises(DecodeError, match=name):
        SignedTx.decode(envelope({**a_body().to_cbor(), name: bad}))


@pytest.mark.parametrize(("name", "size"), [
    ("chain", 31), ("chain", 33), ("chain", 0), ("from", 31), ("from", 33), ("from", 64),
    ("nonce", 7), ("nonce", 33), ("nonce", 0),
])
def test_wrong_sizes_are_rejected(name: str, size: int) -> None:
    with pytest.raises(DecodeError):
        SignedTx.decode(envelope({**a_body().to_cbor(), name: bytes(size)}))


@pytest.mark.parametrize("size", [0, 63, 65, 128])
def test_wrong_signature_size_is_rejected(size: int) -> None:
    with pytest.raises(DecodeError, match="signature"):
        SignedTx.decode(cbor.encode({"body": a_body().encode(), "sig": bytes(size)}))


@pytest.mark.parametrize("bad", [True, 1, "body", [], {}])
def test_envelope_field_types_are_checked(bad: Any) -> None:
    with pytest.raises(DecodeError):
        SignedTx.decode(cbor.encode({"body": bad, "sig": bytes(64)}))
    with pytest.raises(DecodeError):
        SignedTx.decode(cbor.encode({"body": a_body().encode(), "sig": bad}))


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xf6", b"\x40", b"\xa0", b"\xff", b"\x18"])
def test_non_map_or_broken_input_is_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError):
        SignedTx.decode(data)


def _padded_body(pad_bytes: int) -> TxBody:
    return a_body(args={"pad": bytes(pad_bytes)})


def test_oversize_is_rejected_at_every_entry_point() -> None:
    with pytest.raises(TooLarge):
        SignedTx.decode(bytes(MAX_TX_BYTES + 1))
    big_body = _padded_body(MAX_TX_BYTES).encode()
    with pytest.raises(TooLarge):
        SignedTx.from_cbor({"body": big_body, "sig": bytes(64)})
    with pytest.raises(TooLarge):
        SignedTx.create(_padded_body(MAX_TX_BYTES), CLIENT)


def test_create_and_decode_agree_on_the_size_limit() -> None:
    """The largest transaction `create` accepts is exactly the largest `decode` accepts."""
    overhead = len(SignedTx.create(_padded_body(10_000), CLIENT).encode()) - 10_000
    largest = SignedTx.create(_padded_body(MAX_TX_BYTES - overhead), CLIENT)
    assert len(largest.encode()) == MAX_TX_BYTES
    assert SignedTx.decode(largest.encode()) == largest
    with pytest.raises(TooLarge):
        SignedTx.create(_padded_body(MAX_TX_BYTES - overhead + 1), CLIENT)


# --- results, entries, headers, genesis: typed rejections -------------------------------


@pytest.mark.parametrize("value", [
    None, [], {"ok": 1, "error": "", "reason": ""}, {"ok": True},
    {"ok": True, "events": [], "error": "x"}, {"ok": False, "error": "e"},
    {"ok": False, "error": "e", "reason": "r", "events": []}, {"ok": True, "events": {}},
    {"ok": True, "events": [["type"]]}, {"ok": True, "events": ["type"]},
    {"ok": True, "events": [{"type": "t"}]}, {"ok": True, "events": [{"type": "t", "data": 1}]},
    {"ok": True, "events": [{"type": "t", "data": {}, "x": 0}]},
])
def test_malformed_results_are_rejected(value: Any) -> None:
    with pytest.raises(DecodeError):
        TxResult.from_cbor(value)


def test_results_cannot_be_built_with_fields_they_would_not_encode() -> None:
    with pytest.raises(InvariantViolation):
        TxResult(True, error="x")
    with pytest.raises(InvariantViolation):
        TxResult(False, (Event("t", {}),), "e", "r")


def _entry_map() -> dict[str, Any]:
    return LogEntry(a_tx(), 1, 2, TxResult(True, (Event("deposited", {"index": 0}),))).to_cbor()


@pytest.mark.parametrize("name", ["v", "tx", "height", "time", "result"])
def test_log_entry_missing_field_is_rejected(name: str) -> None:
    m = _entry_map()
    del m[name]
    with pytest.raises(DecodeError, match="missing"):
        LogEntry.decode(cbor.encode(m))


@pytest.mark.parametrize(("name", "bad"), [
    ("v", 0), ("v", True), ("tx", b""), ("tx", {"body": b"", "sig": b""}), ("height", -1),
    ("height", True), ("time", "now"), ("result", True), ("extra", 1),
])
def test_log_entry_bad_fields_are_rejected(name: str, bad: Any) -> None:
    with pytest.raises(DecodeError):
        LogEntry.decode(cbor.encode({**_entry_map(), name: bad}))


def _header_map() -> dict[str, Any]:
    return BlockHeader(bytes(32), 1, bytes(32), 5, "net/node0", bytes(32), 0, 0, bytes(32),
                       bytes(32), bytes(32)).to_cbor()


@pytest.mark.parametrize(("name", "bad"), [
    ("v", 2), ("chain", bytes(31)), ("prev", bytes(33)), ("height", True), ("time", -5),
    ("proposer", b"node0"), ("txroot", "00" * 32), ("txcount", None), ("logsize", "1"),
    ("logroot", bytes(0)), ("state", 0), ("validators", [bytes(32)]), ("extra", 0),
])
def test_block_header_bad_fields_are_rejected(name: str, bad: Any) -> None:
    with pytest.raises(DecodeError):
        BlockHeader.from_cbor(cbor.decode(cbor.encode({**_header_map(), name: bad})))


def _genesis_map(**changes: Any) -> dict[str, Any]:
    m = Genesis("net", 0, (GenesisValidator("net/node0", bytes(32)),)).to_cbor()
    m.update(changes)
    return m


@pytest.mark.parametrize("changes", [
    {"v": 2}, {"v": True}, {"name": ""}, {"name": "a b"}, {"name": "a+b"}, {"name": "a/b"},
    {"name": "net\n"}, {"name": "n" * (MAX_NAME_BYTES + 1)}, {"name": "网络"}, {"time": -1},
    {"validators": {}}, {"validators": ["name"]}, {"validators": [["name", "key"]]},
    {"validators": [{"name": "net/node0"}]}, {"validators": [{"name": "net/n", "key": bytes(31)}]},
    {"validators": [{"name": "net n", "key": bytes(32)}]},
    {"validators": [{"name": "net/n", "key": bytes(32), "x": 1}]}, {"extra": 1},
])
def test_bad_genesis_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        Genesis.decode(cbor.encode(_genesis_map(**changes)))


def test_genesis_without_version_is_rejected() -> None:
    m = _genesis_map()
    del m["v"]
    with pytest.raises(DecodeError, match="missing"):
        Genesis.decode(cbor.encode(m))


def test_genesis_with_too_many_validators_is_too_large() -> None:
    validators = [{"name": f"net/n{i}", "key": bytes(32)} for i in range(MAX_VALIDATORS + 1)]
    with pytest.raises(TooLarge):
        Genesis.decode(cbor.encode(_genesis_map(validators=validators)))


# --- fuzzing: arbitrary CBOR into every decoder ------------------------------------------


DECODERS: list[Any] = [
    SignedTx.from_cbor,
    TxBody.from_cbor,
    TxResult.from_cbor,
    LogEntry.from_cbor,
    BlockHeader.from_cbor,
    lambda v: LogEntry.decode(cbor.encode(v)),
    lambda v: Genesis.decode(cbor.encode(v)),
    lambda v: SignedTx.decode(cbor.encode(v)),
]


def _decodes_or_rejects(decoder: Any, value: Any) -> None:
    """The decoder returns a structure that re-encodes to exactly `value`, or raises a
    Rejected: never another exception, and never a silently altered value."""
    try:
        wire = cbor.encode(value)
    except Rejected:
        return  # too deep or too big to ever come out of cbor.decode
    try:
        decoded = decoder(cbor.decode(wire))
    except Rejected:
        return
    assert cbor.encode(decoded.to_cbor()) == wire


@settings(max_examples=300)
@given(cbor_values)
def test_arbitrary_cbor_values_only_raise_rejected(value: Any) -> None:
    for decoder in DECODERS:
        _decodes_or_rejects(decoder, value)


def _mutate(value: Any, data: st.DataObject) -> Any:
    """Replace, delete or add one field somewhere in a nested map, or mutate the map
    inside an embedded byte string (the body of a transaction)."""
    if isinstance(value, bytes) and data.draw(st.booleans()):
        try:
            embedded = cbor.decode(value)
        except Rejected:
            return data.draw(cbor_values)
        return cbor.encode(_mutate(embedded, data))
    if isinstance(value, list) and value:
        i = data.draw(st.integers(0, len(value) - 1))
        return [*value[:i], _mutate(value[i], data), *value[i + 1:]]
    if not isinstance(value, dict):
        return data.draw(cbor_values)
    action = data.draw(st.sampled_from(["replace", "delete", "add", "descend"]))
    keys = sorted(value, key=cbor.encode)
    if action == "add" or not keys:
        new_key = data.draw(st.text(max_size=8) | st.integers(-5, 5))
        return {**value, new_key: data.draw(cbor_values)}
    key = data.draw(st.sampled_from(keys))
    if action == "delete":
        return {k: v for k, v in value.items() if k != key}
    if action == "replace":
        return {**value, key: data.draw(cbor_values)}
    return {**value, key: _mutate(value[key], data)}


@settings(max_examples=300)
@given(log_entries, block_headers, geneses, st.data())
def test_mutated_structures_only_raise_rejected(
    entry: LogEntry, header: BlockHeader, genesis: Genesis, data: st.DataObject
) -> None:
    cases = [
        (LogEntry.from_cbor, entry.to_cbor()),
        (SignedTx.from_cbor, entry.tx.to_cbor()),
        (TxBody.from_cbor, entry.tx.body.to_cbor()),
        (TxResult.from_cbor, entry.result.to_cbor()),
        (BlockHeader.from_cbor, header.to_cbor()),
        (lambda v: Genesis.decode(cbor.encode(v)), genesis.to_cbor()),
    ]
    for decoder, valid in cases:
        _decodes_or_rejects(decoder, _mutate(valid, data))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_into_byte_decoders_only_raise_rejected(data: bytes) -> None:
    for decoder in (SignedTx.decode, LogEntry.decode, Genesis.decode):
        with contextlib.suppress(Rejected):
            decoder(data)
