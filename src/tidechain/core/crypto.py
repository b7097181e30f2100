"""Ed25519 signatures and SHA-256, the only primitives the core uses.

libsodium (through PyNaCl) rather than OpenSSL: on this project's reference machine it
verifies 1.8x faster, and signature checks are the ledger's hot path (ADR 0001).
Signing is deterministic (RFC 8032), so everything here stays pure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from tidechain.core.errors import BadSignature, DecodeError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise BadSignature unless `signature` is a valid Ed25519 signature of `message`."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise DecodeError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
        raise BadSignature("Ed25519 signature does not verify") from exc


def is_valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, message, signature)
    except (BadSignature, DecodeError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key, held as its 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise DecodeError(f"Ed25519 seed must be {SEED_BYTES} bytes")
        public, secret = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "public_key", public)

    public_key: bytes = b""  # set in __post_init__

    @classmethod
    def generate(cls, entropy: bytes) -> SigningKey:
        """From caller-supplied randomness (the shell passes os.urandom(32))."""
        return cls(seed=sha256(b"tidechain/keygen/v1" + entropy))

    def sign(self, message: bytes) -> bytes:
        secret: bytes = object.__getattribute__(self, "_secret")
        signed: bytes = nacl.bindings.crypto_sign(message, secret)
        return signed[:SIGNATURE_BYTES]

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey(public_key={self.public_key.hex()})"
