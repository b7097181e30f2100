"""Offline verification of a world-state value: "at block H, key K held value V (or
nothing)", provable to a third party with only the trust file.

A state proof bundle (served by GET /v1/state/proof/{key}) carries the block header,
its commit certificate and a state-tree proof:

1. the certificate holds precommits for the header's hash from a quorum of the
   validators in the trust file, each also signing the block's checkpoint;
2. the header's `state` field is the root the tree proof is checked against
   (ADR 0003);
3. the tree proof shows the key's value, or its absence, under that root.

Like `client.verify`, this module never touches the network.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tidechain.consensus import CommitCertificate, ValidatorInfo, ValidatorSet
from tidechain.core import cbor
from tidechain.core.errors import DecodeError, ProofError
from tidechain.core.trust import Trust
from tidechain.ledger.state_tree import StateProof, verify_state_proof
from tidechain.ledger.types import BlockHeader


@dataclass(frozen=True)
class VerifiedState:
    key: bytes
    value: bytes | None
    height: int
    block_hash: bytes
    state_root: bytes
    signers: tuple[str, ...]
    time_ms: int = 0
    """The certified block's time."""


def _b64(bundle: dict[str, Any], name: str) -> bytes:
    raw = bundle.get(name)
    if not isinstance(raw, str):
        raise DecodeError(f"state proof bundle: missing {name!r}")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise DecodeError(f"state proof bundle: {name!r} is not base64") from exc


def verify_state_bundle(bundle: dict[str, Any], trust: Trust) -> VerifiedState:
    """Check a bundle as served by the API; raise ProofError/DecodeError on any failure."""
    header = BlockHeader.from_cbor(cbor.decode(_b64(bundle, "header")))
    certificate = CommitCertificate.decode(_b64(bundle, "certificate"))
    proof = StateProof.from_bytes(_b64(bundle, "proof"))
    key = _hex(bundle.get("key"), "key")
    value_hex = bundle.get("value")
    value = None if value_hex is None else _hex(value_hex, "value")
    if trust.origin is None:
        raise ProofError("the trust file names no origin: cannot rebuild the checkpoint")
    if certificate.block_hash != header.block_hash or certificate.height != header.height:
        raise ProofError("the certificate is for another block than the header")
    # Votes sign the validator set's digest, which follows genesis order; `tide init`
    # writes the trust file in that order.
    validators = ValidatorSet(tuple(ValidatorInfo(v.name, v.public_key)
                                    for v in trust.validators))
    body = header.checkpoint_body(trust.origin)
    certificate.verify(validators, body)
    signers = tuple(sorted({v.voter for v in certificate.precommits}))
    if len(signers) < trust.quorum:  # the trust file's own quorum rule, if stricter
        raise ProofError(f"{len(signers)} validators signed; the trust file asks for "
                         f"{trust.quorum}")
    verify_state_proof(header.state_root, key, value, proof)
    return VerifiedState(key, value, header.height, header.block_hash, header.state_root,
                         signers, header.time_ms)


def _hex(raw: Any, name: str) -> bytes:
    try:
        return bytes.fromhex(str(raw))
    except ValueError:
        raise DecodeError(f"state proof bundle: {name!r} is not hex") from None
