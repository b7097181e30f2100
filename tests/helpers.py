"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

import hashlib
from typing import Any

from tidechain.core.crypto import SigningKey
from tidechain.ledger.types import Genesis, GenesisValidator, SignedTx, TxBody

GENESIS_TIME_MS = 1_760_000_000_000


def key(n: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"test key %d" % n).digest())


def genesis(validators: int = 1, name: str = "test-net") -> Genesis:
    return Genesis(
        name,
        GENESIS_TIME_MS,
        tuple(GenesisValidator(f"{name}/node{i}", key(1000 + i).public_key)
              for i in range(validators)),
    )


def tx(
    g: Genesis, signer: SigningKey, method: str = "deposit", args: dict[str, Any] | None = None,
    *, nonce: int = 0, expires_ms: int | None = None, contract: str = "evidence",
) -> SignedTx:
    if args is None:
        args = {"digest": hashlib.sha256(b"doc %d" % nonce).digest(), "meta": {"n": str(nonce)}}
    body = TxBody(
        chain_id=g.chain_id,
        sender=signer.public_key,
        nonce=nonce.to_bytes(16, "big"),
        expires_ms=expires_ms if expires_ms is not None else GENESIS_TIME_MS + 3_600_000,
        contract=contract,
        method=method,
        args=args,
    )
    return SignedTx.create(body, signer)
