"""Who is calling: the API's gate in front of every route (ADR 0015).

A request proves a member in one of two ways, both standard:

* an RFC 9421 HTTP Message Signature by the member's Ed25519 key
  (`identity/httpsig.py`): verified, its nonce admitted once (`NonceBook`);
* a member certificate presented over mutual TLS (`node/api_tls.py`), named as the
  member it is enrolled as (`contracts/members/credentials.py`).

Either way the key's standing is then checked on the chain as a write's is (`Node.reader`:
enrolled, certificate valid now, its CA still its organisation's, not revoked), and its
roles come from the enrolled certificate. A request with neither is anonymous. A
credential that is present but fails is refused (401) even on public routes: a client
that believes it is signed in must learn that it is not.

Every caller is rate-limited (`ReadLimiter`): a member by its key, anyone else by its
address. What each reader may read is decided by the node (`ledger/access.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from tidechain.api.ratelimit import ReadLimiter
from tidechain.contracts.members.credentials import certificate_member
from tidechain.core.errors import Rejected
from tidechain.core.limits import (
    MAX_RATE_LIMITED_CALLERS,
    READ_BURST_PER_CALLER,
    READS_PER_S_PER_CALLER,
)
from tidechain.identity.httpsig import (
    ALGORITHM,
    COVERED_COMPONENTS,
    LABEL,
    TAG,
    NonceBook,
    SignedBy,
    has_signature,
    verify_request,
)
from tidechain.ledger.access import Reader
from tidechain.node.api_tls import peer_certificate
from tidechain.node.node import Node

_COMPONENTS = " ".join(f'"{c}"' for c in COVERED_COMPONENTS)
ACCEPT_SIGNATURE = (f'{LABEL}=({_COMPONENTS});created;expires;nonce;keyid;'
                    f'alg="{ALGORITHM}";tag="{TAG}"')
"""RFC 9421 section 5.1: what a 401 asks the client to sign, and how."""

READER_KEY = web.RequestKey("tidechain.reader", Reader)
"""Where the gate leaves the request's `Reader` for the handlers."""


class Gate:
    """Identifies each request's caller and counts it against its rate limit."""

    def __init__(self, node: Node, *, clock_s: Callable[[], float] = time.time,
                 limiter: ReadLimiter | None = None, nonces: NonceBook | None = None) -> None:
        self.node = node
        self.clock_s = clock_s
        # `is not None`, not `or`: an empty limiter or nonce book is falsy (it has a length).
        self.limiter = limiter if limiter is not None else ReadLimiter(
            READS_PER_S_PER_CALLER, READ_BURST_PER_CALLER, MAX_RATE_LIMITED_CALLERS)
        self.nonces = nonces if nonces is not None else NonceBook()

    def reader(self, request: web.Request, *, read: bool = True) -> Reader:
        """The caller of `request`, or a typed refusal: 401 for a credential that fails,
        429 past its rate limit when the request is a `read` (a submission has its own
        back-pressure: a full mempool answers 503 with Retry-After)."""
        now_s = self.clock_s()
        try:
            key, signed = self._key(request, now_s)
            reader = self.node.views.reader(key, int(now_s * 1000))
        except Rejected:
            # A failed credential still costs its sender: counted by address.
            self.limiter.check(f"ip:{request.remote}", now_s)
            raise
        if read:
            self.limiter.check(f"ip:{request.remote}" if key is None else f"key:{key.hex()}",
                               now_s)
        if signed is not None:
            # Only a member's nonces are remembered: anyone can make keys, and a book
            # filled by strangers would turn members' reads away.
            self.nonces.admit(signed, int(now_s))
        return reader

    def _key(self, request: web.Request, now_s: float) -> tuple[bytes | None, SignedBy | None]:
        """The member key the request proves possession of, if any, and its signature."""
        if has_signature(request.headers):
            signed = verify_request(request.method, str(request.url),
                                    request.headers.items(), now_s=int(now_s))
            return signed.key, signed
        der = peer_certificate(request.transport) if request.transport is not None else None
        if der is None:
            return None, None
        return certificate_member(self.node.chain.state, der, int(now_s * 1000)), None
