"""Signed reads for the SDK: every request signed with the member's key (ADR 0015).

    client = httpx.Client(base_url=node_url, auth=MemberSignatures(signing_key))

The signature profile is `tidechain.identity.httpsig`'s, the same code the node
verifies with. This is the shell around it: the clock and the nonces come from here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator

import httpx

from tidechain.core.crypto import SigningKey
from tidechain.core.limits import DEFAULT_SIGNATURE_LIFETIME_S
from tidechain.identity.httpsig import sign_headers


def _fresh_nonce() -> str:
    # 16 random bytes: a repeat is as unlikely as guessing a 128-bit key.
    return secrets.token_urlsafe(16)


class MemberSignatures(httpx.Auth):
    """An `httpx.Auth` that adds `Signature-Input` and `Signature` to each request sent,
    each with a fresh nonce and `created` from `clock_s`.

    httpx runs an auth flow once per `send`: a redirect it follows (`follow_redirects`)
    would go out with the first URL's signature and be refused. The node's API does not
    redirect, and the SDK leaves httpx's default (do not follow) alone.

    The body is not signed (reads have none), so httpx need not read it first.
    """

    requires_request_body = False

    def __init__(
        self,
        key: SigningKey,
        *,
        clock_s: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _fresh_nonce,
        lifetime_s: int = DEFAULT_SIGNATURE_LIFETIME_S,
    ) -> None:
        self._key = key
        self._clock_s = clock_s
        self._nonce = nonce
        self._lifetime_s = lifetime_s

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # str(request.url) is what httpx puts on the wire (path and query as encoded),
        # and the node rebuilds the same URL from the request line and Host header.
        request.headers.update(sign_headers(
            request.method, str(request.url), request.headers, self._key,
            created_s=int(self._clock_s()), nonce=self._nonce(), lifetime_s=self._lifetime_s))
        yield request
