"""Opaque blocks for the simulator: just what consensus sees (`BlockLike`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from tidechain.core.crypto import sha256

_BLOCK_DOMAIN = b"tidechain/sim/block/v1\n"


@dataclass(frozen=True)
class SimBlock:
    """A block reduced to its height, hash and checkpoint body."""

    height: int
    block_hash: bytes
    checkpoint_body: bytes


def make_block(height: int, tag: bytes) -> SimBlock:
    """A block at `height` whose hash is fixed by `tag` (the builder and some seeded
    randomness, so two proposals at one height almost never share a hash)."""
    block_hash = sha256(_BLOCK_DOMAIN + height.to_bytes(8, "big") + tag)
    root = base64.b64encode(block_hash).decode()
    body = f"tidechain/sim\n{height}\n{root}\n".encode()
    return SimBlock(height, block_hash, body)
