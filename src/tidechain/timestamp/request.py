"""Building a time-stamp request (RFC 3161 section 2.4.1), for `tide timestamp`: what
`openssl ts -query -sha256 -cert` builds, so the node's service sees the same."""

from __future__ import annotations

from asn1crypto import algos, tsp  # type: ignore[import-untyped]

from tidechain.core.errors import invariant

SHA256_BYTES = 32
NONCE_BYTES = 8
"""A 64-bit nonce, as OpenSSL sends: it ties the reply to this request."""


def build_request(sha256_digest: bytes, nonce: int, *, cert_req: bool = True) -> bytes:
    """The DER TimeStampReq of a SHA-256 message imprint."""
    invariant(len(sha256_digest) == SHA256_BYTES, "a SHA-256 imprint is 32 bytes")
    invariant(0 <= nonce < 1 << (8 * NONCE_BYTES), "nonce out of range")
    request = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "hashed_message": sha256_digest,
        }),
        "nonce": nonce,
        "cert_req": cert_req,
    })
    der: bytes = request.dump()
    return der
