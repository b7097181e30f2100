"""HTTPS for the node's REST API, and who called over it.

With `api_tls = true` in node.toml the API is served over TLS 1.2 or later with the
node's API certificate (`api_cert`, `api_key`: by default `api-tls/` in the node
directory, issued by `tide init` from the founding organisation's CA). A client
certificate is *optional* (`ssl.CERT_OPTIONAL`): anonymous callers and callers that
sign their requests (RFC 9421) use plain server-authenticated TLS, while a member may
present its member certificate (Ed25519, from its organisation's CA) instead.

A certificate that is presented must chain to a trust anchor, or the handshake
fails. The anchors are the organisation CAs registered on chain, added to the live
context as the chain registers them (`runtime.ChainCas`, the same follower the peer
transport uses). Only ever added: OpenSSL cannot forget an anchor, and need not, since
a verified certificate only says "someone holds this member key";
`contracts.members.credentials.certificate_member` then names the member it is
enrolled as, and the caller's standing (revoked, expired, CA or organisation removed,
roles) is checked on every request against the chain.

The peer network's TLS (`tls.py`, ADR 0005) is separate: TLS 1.3 only, both sides
certified, by the network CA or an organisation's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from tidechain.node.tls import TlsError

__all__ = [
    "API_CIPHERS_TLS12",
    "ApiExposure",
    "api_exposure",
    "api_server_context",
    "is_loopback",
    "peer_certificate",
]

API_CIPHERS_TLS12 = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites: forward secret and authenticated encryption only (no CBC, no RSA key
exchange). TLS 1.3's suites are all of that kind and need no list."""


def api_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The API's server context: TLS 1.2 or later, the node's API certificate, and a
    client certificate optional; trust anchors for client certificates are added by
    the caller as the chain registers organisation CAs (`tls.add_trust_anchors`). Until
    then no client certificate verifies, and a client that presents one is refused at
    the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.set_ciphers(API_CIPHERS_TLS12)
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the API's TLS certificate {cert} and key {key}: "
                       f"{exc}") from exc
    return ctx


def peer_certificate(transport: asyncio.BaseTransport | None) -> bytes | None:
    """The DER of the client certificate a TLS connection presented and OpenSSL
    verified against the trust anchors, or None: a plain HTTP connection, or TLS
    without a client certificate (with `CERT_OPTIONAL` a certificate that does not
    verify never gets this far: the handshake fails)."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


@dataclass(frozen=True)
class ApiExposure:
    """What the node says at start about where its API listens."""

    info: str
    warning: str | None


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the API on this machine: a loopback address or
    `localhost`. A host name is taken as reachable from elsewhere (it may resolve to
    any address), as are the wildcard addresses 0.0.0.0 and ::."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_exposure(host: str, port: int, tls: bool) -> ApiExposure:
    """The start-up line about the API's address, and a warning when it is reachable
    from other machines over plain HTTP."""
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    if is_loopback(host):
        where = "loopback only: reachable from this machine only"
    else:
        where = "not loopback: reachable from other machines"
    info = f"API listens on {scheme}://{shown}:{port} ({where})"
    if tls or is_loopback(host):
        return ApiExposure(info, None)
    warning = (f"the API on {shown}:{port} is reachable from other machines over plain "
               "HTTP: credentials and chain data sent to it can be observed and altered "
               "on the way; set api_tls = true in node.toml (HTTPS with the "
               "organisation's certificate) or bind api_host to 127.0.0.1")
    return ApiExposure(info, warning)
