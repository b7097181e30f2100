"""Offline receipt verification (client.verify) and transaction building (client.txbuilder).

Receipts are built here in-process exactly as a node builds them: log entries hashed
into an RFC 6962 tree (core.merkle), a checkpoint signed by test validator keys
(core.checkpoint), the receipt formatted by core.receipt. Then one changed byte of the
document, the receipt or the trust file must make verification fail with a reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.client.txbuilder import (
    DEFAULT_TTL_MS,
    HASH_CHUNK_BYTES,
    amend_args,
    call_tx,
    deposit_tx,
    hash_file,
)
from tidechain.client.verify import VerifiedDeposit, verify_deposit_receipt
from tidechain.contracts import evidence
from tidechain.core import merkle
from tidechain.core.checkpoint import Checkpoint, sign_checkpoint
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import (
    BadSignature,
    ContractError,
    DecodeError,
    ProofError,
    Rejected,
    TooLarge,
)
from tidechain.core.limits import MAX_META_ENTRIES, MAX_TX_VALIDITY_MS
from tidechain.core.note import Signer
from tidechain.core.receipt import Receipt, format_receipt
from tidechain.core.trust import Trust, format_trust
from tidechain.ledger.types import (
    Event,
    Genesis,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
)

NETWORK = "testnet"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_TIME_MS = GENESIS_TIME_MS + 60_000


def validators(count: int, network: str = NETWORK) -> list[Signer]:
    return [Signer(f"{network}/node{i}", SigningKey(sha256(f"{network}-v{i}".encode())))
            for i in range(count)]


def genesis_of(signers: list[Signer], network: str = NETWORK) -> Genesis:
    members = tuple(GenesisValidator(s.name, s.key.public_key) for s in signers)
    return Genesis(network, GENESIS_TIME_MS, members)


VALIDATORS = validators(4)
GENESIS = genesis_of(VALIDATORS)
CHAIN_ID = GENESIS.chain_id
ORIGIN = GENESIS.origin
DEPOSITOR = SigningKey(sha256(b"depositor"))
DOCUMENT = b"shipping tally report #42: 1,200 cartons, Yangshan terminal\n"
DIGEST = sha256(DOCUMENT)
META = {"kind": "tally", "vessel": "MSC Aurora"}


def committed(tx: SignedTx, height: int = 3, ok: bool = True) -> bytes:
    if ok:
        result = TxResult(True, (Event("deposited", {"digest": tx.body.args.get("digest")}),))
    else:
        result = TxResult(False, (), "bad_argument", "'digest' must be a 32-byte SHA-256 digest")
    return LogEntry(tx, height, BLOCK_TIME_MS, result).encode()


def a_deposit(digest: bytes = DIGEST, nonce: int = 0, meta: dict[str, str] | None = None,
              chain_id: bytes = CHAIN_ID) -> SignedTx:
    return deposit_tx(DEPOSITOR, chain_id, digest, META if meta is None else meta,
                      now_ms=GENESIS_TIME_MS, nonce=nonce.to_bytes(8, "big"))


def other_entries(count: int) -> list[bytes]:
    return [committed(a_deposit(sha256(b"other %d" % i), nonce=1000 + i), height=1 + i // 3)
            for i in range(count)]


def receipt_for(entries: list[bytes], index: int, signers: list[Signer],
                origin: str = ORIGIN) -> str:
    """A receipt for entries[index] against a checkpoint of all `entries`."""
    store = merkle.MemoryNodeStore()
    frontier = merkle.CompactRange()
    for entry in entries:
        for level, position, node in frontier.append(merkle.leaf_hash(entry)):
            store.put(level, position, node)
    proof = merkle.inclusion_proof(store, index, len(entries))
    note = sign_checkpoint(Checkpoint(origin, len(entries), frontier.root()), signers)
    return format_receipt(Receipt(index, tuple(proof), note, entries[index]))


def trust_for(signers: list[Signer], quorum: int | None = None, origin: str | None = ORIGIN,
              comment: str | None = "test network") -> str:
    trust = Trust.of([s.verifier() for s in signers], quorum=quorum, origin=origin)
    return format_trust(trust, comment)


ONE = validators(1)
ONE_ORIGIN = genesis_of(ONE).origin
ONE_TRUST = trust_for(ONE, origin=ONE_ORIGIN)


def one_validator_receipt(entry_tx: SignedTx | None = None) -> str:
    tx = entry_tx or a_deposit(chain_id=genesis_of(ONE).chain_id)
    entries = [*other_entries(5), committed(tx), *other_entries(2)]
    return receipt_for(entries, 5, ONE, origin=ONE_ORIGIN)


ONE_RECEIPT = one_validator_receipt()
TARGET_TX = a_deposit()
ENTRIES = [*other_entries(6), committed(TARGET_TX, height=4), *other_entries(4)]
FOUR_RECEIPT = receipt_for(ENTRIES, 6, VALIDATORS[:3])
FOUR_TRUST = trust_for(VALIDATORS)


# --- what a valid receipt proves -----------------------------------------------------


def test_valid_receipt_proves_the_deposit() -> None:
    proven = verify_deposit_receipt(FOUR_RECEIPT, FOUR_TRUST, DIGEST)
    assert isinstance(proven, VerifiedDeposit)
    assert proven.digest == DIGEST
    assert proven.meta == META
    assert proven.depositor == DEPOSITOR.public_key.hex()
    assert proven.method == "deposit"
    assert proven.amends is None
    assert proven.height == 4
    assert proven.time_ms == BLOCK_TIME_MS
    assert proven.time_iso == "2023-11-14T22:14:20.000Z"
    assert proven.log_index == 6
    assert proven.tx_id == TARGET_TX.tx_id
    assert proven.chain_id == CHAIN_ID
    assert proven.origin == ORIGIN
    assert proven.checkpoint_size == len(ENTRIES)
    assert proven.signers == ("testnet/node0", "testnet/node1", "testnet/node2")
    as_json = proven.to_json()
    assert as_json["digest"] == DIGEST.hex()
    assert as_json["time"] == proven.time_iso


def test_digest_is_optional() -> None:
    assert verify_deposit_receipt(FOUR_RECEIPT, FOUR_TRUST).digest == DIGEST


def test_trust_may_be_parsed_once_and_bytes_are_accepted() -> None:
    from tidechain.client.verify import load_trust

    trust = load_trust(FOUR_TRUST)
    assert verify_deposit_receipt(FOUR_RECEIPT.encode(), trust, DIGEST).log_index == 6


def test_amendment_reports_what_it_amends() -> None:
    amendment = call_tx(DEPOSITOR, CHAIN_ID, "evidence", "amend",
                        amend_args(6, sha256(b"v2"), {"rev": "2"}),
                        now_ms=GENESIS_TIME_MS, nonce=b"amend-01")
    receipt = receipt_for([*ENTRIES, committed(amendment, height=5)], len(ENTRIES), VALIDATORS)
    proven = verify_deposit_receipt(receipt, FOUR_TRUST, sha256(b"v2"))
    assert (proven.method, proven.amends, proven.meta) == ("amend", 6, {"rev": "2"})
    assert proven.signers == tuple(v.name for v in VALIDATORS)


def test_first_and_last_entries_of_a_one_entry_log() -> None:
    receipt = receipt_for([committed(TARGET_TX)], 0, VALIDATORS)
    assert verify_deposit_receipt(receipt, FOUR_TRUST, DIGEST).checkpoint_size == 1


# --- a different document, a wrong trust file, a tampered receipt ---------------------


def test_a_different_document_fails() -> None:
    with pytest.raises(ProofError, match="different or modified document"):
        verify_deposit_receipt(FOUR_RECEIPT, FOUR_TRUST, sha256(DOCUMENT + b" "))


@given(position=st.integers(0, len(DOCUMENT) - 1), mask=st.integers(1, 255))
@settings(max_examples=50, deadline=None)
def test_one_changed_byte_of_the_document_fails(position: int, mask: int) -> None:
    changed = bytearray(DOCUMENT)
    changed[position] ^= mask
    with pytest.raises(ProofError, match="document does not match"):
        verify_deposit_receipt(FOUR_RECEIPT, FOUR_TRUST, sha256(bytes(changed)))


def test_the_trust_file_of_another_network_fails() -> None:
    strangers = validators(4, network="othernet")
    with pytest.raises(ProofError, match="no signature from a known key"):
        verify_deposit_receipt(FOUR_RECEIPT, trust_for(strangers, origin=None), DIGEST)
    with pytest.raises(ProofError, match="not the trusted origin"):
        other_origin = genesis_of(strangers, "othernet").origin
        verify_deposit_receipt(FOUR_RECEIPT, trust_for(strangers, origin=other_origin), DIGEST)


def test_fewer_signers_than_the_quorum_fails() -> None:
    receipt = receipt_for(ENTRIES, 6, VALIDATORS[:2])
    with pytest.raises(ProofError, match="quorum is 3"):
        verify_deposit_receipt(receipt, FOUR_TRUST, DIGEST)
    # The same receipt passes for a verifier who chose to trust a quorum of 2.
    assert verify_deposit_receipt(receipt, trust_for(VALIDATORS, quorum=2), DIGEST)


def test_a_malformed_trust_file_is_reported_as_such() -> None:
    with pytest.raises(DecodeError, match="trust file is not valid"):
        verify_deposit_receipt(FOUR_RECEIPT, "quorum 1\nnot-a-key\n", DIGEST)


def test_every_single_byte_change_of_the_receipt_fails() -> None:
    # Exhaustive over positions (XOR 0x01 keeps most bytes printable, so this probes
    # the parser and every hash, not just the UTF-8 decoder).
    data = ONE_RECEIPT.encode()
    assert verify_deposit_receipt(data, ONE_TRUST)
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises(Rejected):
            verify_deposit_receipt(bytes(changed), ONE_TRUST)


@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_byte_change_of_the_receipt_fails(data: st.DataObject) -> None:
    raw = FOUR_RECEIPT.encode()
    position = data.draw(st.integers(0, len(raw) - 1))
    changed = bytearray(raw)
    changed[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(Rejected):
        verify_deposit_receipt(bytes(changed), FOUR_TRUST, DIGEST)


def _meaningful_positions(text: str) -> list[int]:
    """Byte positions of the trust file outside comment lines (comments are free text)."""
    positions: list[int] = []
    offset = 0
    for line in text.encode().split(b"\n"):
        if not line.startswith(b"#"):
            positions.extend(range(offset, offset + len(line)))
        offset += len(line) + 1
    return positions


def _key_id_span(raw: bytes) -> range:
    start = raw.index(b"testnet/node0+") + len(b"testnet/node0+")
    return range(start, start + 8)


def test_every_single_byte_change_of_the_trust_file_fails() -> None:
    raw = ONE_TRUST.encode()
    positions = _meaningful_positions(ONE_TRUST)
    assert len(positions) > 60
    for position in positions:
        for mask in (0x01, 0x20):
            changed = bytearray(raw)
            changed[position] ^= mask
            if position in _key_id_span(raw) and chr(raw[position]) in "abcdef" and mask == 0x20:
                # Key ids are hex, read case-insensitively (as Go's note package does):
                # `04B1...` names the same key as `04b1...`: no change of meaning.
                assert verify_deposit_receipt(ONE_RECEIPT, bytes(changed))
                continue
            with pytest.raises(Rejected):
                verify_deposit_receipt(ONE_RECEIPT, bytes(changed))


def test_a_comment_change_in_the_trust_file_changes_nothing() -> None:
    assert verify_deposit_receipt(ONE_RECEIPT, ONE_TRUST.replace("test network", "edited"))


# --- what the entry itself must be ----------------------------------------------------


def _signed_badly(tx: SignedTx) -> SignedTx:
    signature = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    return SignedTx(tx.body_bytes, signature, tx.body, tx.tx_id)


def _custom_tx(contract: str, method: str, args: dict[str, Any],
               chain_id: bytes = CHAIN_ID) -> SignedTx:
    body = TxBody(chain_id, DEPOSITOR.public_key,
                  b"nonce-xx", GENESIS_TIME_MS + DEFAULT_TTL_MS, contract, method, args)
    return SignedTx.create(body, DEPOSITOR)


def _receipt_of(tx: SignedTx, ok: bool = True) -> str:
    return receipt_for([*other_entries(2), committed(tx, ok=ok)], 2, VALIDATORS)


def test_a_badly_signed_transaction_in_the_log_fails() -> None:
    # A log that committed it anyway (a faulty quorum) still does not prove a deposit.
    with pytest.raises(BadSignature, match="not validly signed"):
        verify_deposit_receipt(_receipt_of(_signed_badly(TARGET_TX)), FOUR_TRUST, DIGEST)


def test_a_transaction_of_another_contract_fails() -> None:
    tx = _custom_tx("invoice", "issue", {"digest": DIGEST})
    with pytest.raises(ProofError, match="not an evidence deposit"):
        verify_deposit_receipt(_receipt_of(tx), FOUR_TRUST, DIGEST)


def test_a_deposit_refused_on_chain_fails() -> None:
    with pytest.raises(ProofError, match="refused on chain"):
        verify_deposit_receipt(_receipt_of(TARGET_TX, ok=False), FOUR_TRUST, DIGEST)


def test_a_transaction_of_another_chain_fails() -> None:
    tx = a_deposit(chain_id=sha256(b"another chain"))
    with pytest.raises(ProofError, match="belongs to chain"):
        verify_deposit_receipt(_receipt_of(tx), FOUR_TRUST, DIGEST)


def test_an_entry_that_is_not_a_log_entry_fails() -> None:
    receipt = receipt_for([b"\xa1avb", b"not cbor"], 1, VALIDATORS)
    with pytest.raises(DecodeError, match="not a valid tidechain log entry"):
        verify_deposit_receipt(receipt, FOUR_TRUST)


def test_a_receipt_without_the_entry_fails() -> None:
    lines = FOUR_RECEIPT.split("\n")
    without_extra = "\n".join(line for line in lines if not line.startswith("extra "))
    with pytest.raises(ProofError, match="no extra line"):
        verify_deposit_receipt(without_extra, FOUR_TRUST, DIGEST)


# --- building transactions --------------------------------------------------------------


def test_deposit_tx_is_a_valid_signed_transaction() -> None:
    tx = deposit_tx(DEPOSITOR, CHAIN_ID, DIGEST, META, now_ms=1000, nonce=b"12345678")
    decoded = SignedTx.decode(tx.encode())
    decoded.verify_signature()
    assert decoded.tx_id == tx.tx_id == sha256(tx.body_bytes)
    body = decoded.body
    assert (body.chain_id, body.sender, body.nonce) == (CHAIN_ID, DEPOSITOR.public_key,
                                                        b"12345678")
    assert body.expires_ms == 1000 + DEFAULT_TTL_MS
    assert (body.contract, body.method) == (evidence.NAME, "deposit")
    assert body.args == {"digest": DIGEST, "meta": META}


def test_amend_args_name_the_original() -> None:
    tx = call_tx(DEPOSITOR, CHAIN_ID, "evidence", "amend", amend_args(7, DIGEST, {}),
                 now_ms=5, nonce=b"n" * 16, ttl_ms=10)
    assert tx.body.method == "amend"
    assert tx.body.args == {"of": 7, "digest": DIGEST, "meta": {}}
    assert tx.body.expires_ms == 15
    for bad in (-1, True):
        with pytest.raises(ContractError):
            amend_args(bad, DIGEST, {})


@pytest.mark.parametrize("digest", [b"", b"x" * 31, b"x" * 33])
def test_deposit_tx_refuses_a_digest_that_is_not_sha256(digest: bytes) -> None:
    with pytest.raises(ContractError, match="32-byte"):
        deposit_tx(DEPOSITOR, CHAIN_ID, digest, {}, now_ms=0, nonce=b"12345678")


@pytest.mark.parametrize(
    ("nonce", "ttl_ms", "chain_id"),
    [(b"1234567", 1, CHAIN_ID), (b"x" * 33, 1, CHAIN_ID), (b"12345678", 0, CHAIN_ID),
     (b"12345678", MAX_TX_VALIDITY_MS + 1, CHAIN_ID), (b"12345678", 1, b"short")],
)
def test_deposit_tx_refuses_a_bad_envelope(nonce: bytes, ttl_ms: int, chain_id: bytes) -> None:
    with pytest.raises(DecodeError):
        deposit_tx(DEPOSITOR, chain_id, DIGEST, {}, now_ms=0, nonce=nonce, ttl_ms=ttl_ms)


def test_deposit_tx_refuses_an_oversized_transaction() -> None:
    meta = {f"k{i}": "v" * 1024 for i in range(MAX_META_ENTRIES)}  # 32 KiB of metadata
    with pytest.raises(TooLarge):
        deposit_tx(DEPOSITOR, CHAIN_ID, DIGEST, meta, now_ms=0, nonce=b"12345678")


_meta_text = st.text(st.characters(codec="utf-8"), max_size=70)


@given(meta=st.dictionaries(_meta_text, _meta_text | st.integers(), max_size=MAX_META_ENTRIES + 2)
       | st.integers() | st.lists(st.text(max_size=3), max_size=2))
@settings(max_examples=200, deadline=None)
def test_the_client_refuses_exactly_what_the_contract_refuses(meta: Any) -> None:
    try:
        evidence.validate_meta(meta)
        contract_error = None
    except ContractError as exc:
        contract_error = exc.reason
    try:
        deposit_tx(DEPOSITOR, CHAIN_ID, DIGEST, meta, now_ms=0, nonce=b"12345678")
        client_error = None
    except ContractError as exc:
        client_error = exc.reason
    except TooLarge:
        return  # valid metadata, but more than one transaction may carry
    assert client_error == contract_error


# --- hashing files ----------------------------------------------------------------------


def test_hash_file_streams_in_chunks_and_reports_progress(tmp_path: Path) -> None:
    content = bytes(range(256)) * (HASH_CHUNK_BYTES * 2 // 256) + b"tail"
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    calls: list[tuple[int, int]] = []
    assert hash_file(path, lambda done, total: calls.append((done, total))) == sha256(content)
    total = len(content)
    assert calls == [(0, total), (HASH_CHUNK_BYTES, total), (2 * HASH_CHUNK_BYTES, total),
                     (total, total)]


def test_hash_file_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hash_file(path) == sha256(b"")


def test_hash_file_of_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing")


# --- offline means offline -----------------------------------------------------------------


def test_the_verifier_loads_no_network_code() -> None:
    probe = (
        "import sys, tidechain.client.verify, tidechain.client.txbuilder\n"
        "from tidechain.client import verify_deposit_receipt\n"
        "loaded = {'httpx', 'aiohttp', 'socket', 'asyncio', 'urllib.request'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
