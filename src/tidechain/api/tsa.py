"""The node's RFC 3161 time-stamp authority: `POST /v1/timestamp` (ADR 0017).

A standard client (`openssl ts -query` with curl, a code-signing or PDF tool) sends an
`application/timestamp-query`; the node answers an `application/timestamp-reply`. Before
it answers, the service deposits the request's message imprint on the chain as an
evidence deposit signed by the operating organisation's TSA depositor key, and waits
for the commit: the token's `genTime` is that block's time, its serial number is the
deposit's log index + 1 (unique on the chain, across key rotations), and a TSTInfo
extension carries the log index, so the deposit's receipt can be fetched and checked
too. A SHA-256 imprint is the deposit's digest; another hash's imprint is recorded in
the deposit's metadata and its digest is the SHA-256 of the DER MessageImprint.

Every request that is not a good time-stamp request gets an RFC 3161 rejection (status
2 with its failure info), never a 5xx: the codec refuses before anything is deposited,
so no request leaves anything half-written. A busy mempool or a commit that does not
come in time is `systemFailure` with a `Retry-After`. Callers are rate-limited per
member key, per basic-auth user or per address (429 with `Retry-After`);
`tsa_access = "members"` serves only callers with credentials a standard client can
send: a member certificate over mutual TLS (with `api_tls`), an RFC 9421 signature, or
HTTP basic authentication with a user name and password the operator issued (`tide node
tsa-user`, stored as scrypt hashes in `tsa/users`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import StreamReader, web

from tidechain.api.access import Gate
from tidechain.api.ratelimit import RateLimited, ReadLimiter
from tidechain.client.txbuilder import call_tx
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Busy, ConfigError, Rejected
from tidechain.core.limits import MAX_RATE_LIMITED_CALLERS
from tidechain.ledger.access import ANONYMOUS
from tidechain.ledger.types import LogEntry
from tidechain.node.runtime import NodeRuntime
from tidechain.timestamp.rfc3161 import (
    MAX_REQUEST_BYTES,
    Rejection,
    TimeStampRequest,
    TsaSigner,
    granted_response,
    parse_request,
    rejection_response,
)

log = logging.getLogger("tidechain.tsa")

PATH = "/v1/timestamp"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
COMMIT_WAIT_MS = 20_000
"""How long a request waits for its deposit to commit before `systemFailure`: several
rounds of consensus on a loaded four-validator network."""
DEFAULT_POLICY = "1.3.6.1.4.1.65535.7171.1"
"""The policy OID a node stamps under unless node.toml names its own (`tsa_policy`):
an arc under a private enterprise number placeholder, to be replaced by the operating
organisation's own."""
ACCESS_ANYONE, ACCESS_MEMBERS = "anyone", "members"
TSA_DEPOSIT_TTL_MS = 60_000
"""The deposit transaction's validity: it commits within seconds or not at all."""


@dataclass(frozen=True)
class TsaConfig:
    signer: TsaSigner
    depositor: SigningKey
    policy: str
    access: str
    requests_per_s: int
    users: Mapping[str, str] = field(default_factory=dict)
    """HTTP basic authentication: user name -> `scrypt$salt$hash` (`tsa_users` file,
    written by `tide node tsa-user`), for clients that send a password, not a
    certificate (code-signing and PDF tools)."""


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
"""scrypt's cost (16 MiB, ~50 ms here): a stolen users file resists guessing."""
MAX_USERS = 1000
MAX_BASIC_AUTH_CHARS = 512


def hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


class BasicUsers:
    """Checks `Authorization: Basic` against the users file; a header that verified is
    remembered by its SHA-256 (bounded), so scrypt runs once per client, not per token."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self._verified: set[bytes] = set()

    def admits(self, header: str | None) -> bool:
        if not header or len(header) > MAX_BASIC_AUTH_CHARS or not self.users:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        seen = hashlib.sha256(value.encode()).digest()
        if seen in self._verified:
            return True
        try:
            user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        stored = self.users.get(user)
        if not colon or stored is None or stored.count("$") != 2:
            return False
        salt = bytes.fromhex(stored.split("$")[1])
        if not hmac.compare_digest(hash_password(password, salt), stored):
            return False
        if len(self._verified) >= MAX_USERS:
            self._verified.clear()
        self._verified.add(seen)
        return True


class TimestampService:
    def __init__(self, runtime: NodeRuntime, gate: Gate, config: TsaConfig) -> None:
        self.runtime = runtime
        self.gate = gate
        self.config = config
        self.limiter = ReadLimiter(config.requests_per_s, 2 * config.requests_per_s,
                                   MAX_RATE_LIMITED_CALLERS)
        self.basic = BasicUsers(config.users)

    async def handle(self, request: web.Request) -> web.Response:
        basic = request.headers.get("Authorization", "")
        password = basic.lower().startswith("basic ")
        caller = ANONYMOUS if password else self.gate.reader(request, read=False)
        if self.config.access == ACCESS_MEMBERS and caller.anonymous and not (
                password and self.basic.admits(basic)):
            return web.Response(status=401, text=(
                "this time-stamp service serves members: present your member certificate "
                "(mutual TLS), sign the request (RFC 9421), or send the user name and "
                "password its operator gave you (HTTP basic authentication)\n"),
                # Both challenges: a password for standard tools, a signature for ours.
                headers={"WWW-Authenticate": 'Basic realm="tidechain time stamps", '
                                             'Signature realm="tidechain"'})
        who = (caller.key.hex() if caller.key is not None
               else "basic:" + hashlib.sha256(basic.encode()).hexdigest() if password
               else (request.remote or "unknown"))
        try:
            self.limiter.check(who, time.monotonic())
        except RateLimited as exc:
            return web.Response(status=429, text=exc.reason + "\n",
                                headers={"Retry-After": str(exc.retry_after_s)})
        body = await read_bounded(request.content, MAX_REQUEST_BYTES)
        if request.content_type != QUERY_TYPE:
            return _reply(Rejection("badDataFormat", f"send the request as {QUERY_TYPE}"))
        parsed = parse_request(body, accepted_policies=frozenset({self.config.policy}))
        if isinstance(parsed, Rejection):
            return _reply(parsed)
        return await self._stamp(parsed)

    async def _stamp(self, request: TimeStampRequest) -> web.Response:
        node = self.runtime.node
        digest, meta = deposit_of(request)
        args = {"digest": digest, "meta": meta, "public": True}
        tx = call_tx(self.config.depositor, node.genesis.chain_id, "evidence", "deposit",
                     args, now_ms=int(time.time() * 1000), nonce=os.urandom(16),
                     ttl_ms=TSA_DEPOSIT_TTL_MS)
        try:
            outcome = await self.runtime.submit(tx.encode(), wait=True,
                                                timeout_ms=COMMIT_WAIT_MS)
        except Busy as exc:
            return _reply(Rejection("systemFailure", "the chain is busy: retry later"),
                          retry_after_s=exc.retry_after_s)
        except Rejected as exc:  # the depositor key is not (or no longer) a depositor
            log.warning("time-stamp deposit refused: %s: %s", exc.code, exc.reason)
            return _reply(Rejection("systemFailure", "the service cannot deposit: "
                                    "its operator must check its depositor key"))
        if isinstance(outcome, bytes) or outcome.log_index is None:
            return _reply(Rejection("timeNotAvailable", "the deposit did not commit in "
                                    "time: retry"), retry_after_s=5)
        if outcome.result is None or not outcome.result.ok:
            error = "" if outcome.result is None else outcome.result.error
            log.warning("time-stamp deposit failed on chain: %s", error)
            return _reply(Rejection("systemFailure", "the deposit failed on chain"))
        _, entry_bytes = node.store.entry(outcome.log_index)
        entry = LogEntry.decode(entry_bytes)
        token = granted_response(request, serial=outcome.log_index + 1,
                                 gen_time_ms=entry.time_ms, policy=self.config.policy,
                                 signer=self.config.signer,
                                 deposit_index=outcome.log_index)
        return web.Response(status=200, body=token, content_type=REPLY_TYPE,
                            headers={"X-Tidechain-Log-Index": str(outcome.log_index)})


async def read_bounded(stream: StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` + 1 bytes when it is longer (which the codec
    then refuses as too long). One `read(n)` is not enough: it returns what has arrived
    so far, so a request that comes in several TCP segments would be cut short and a
    good request refused as badDataFormat (tests/test_tsa_service.py)."""
    body = bytearray()
    while len(body) <= limit:
        chunk = await stream.read(limit + 1 - len(body))
        if not chunk:  # the end of the body
            break
        body += chunk
    return bytes(body)


def deposit_of(request: TimeStampRequest) -> tuple[bytes, dict[str, str]]:
    """The evidence deposit of a time-stamp request: (digest, metadata)."""
    meta = {"rfc3161": f"{request.hash_alg}:{request.imprint.hex()}"}
    if request.hash_alg == "sha256":
        return request.imprint, meta
    return hashlib.sha256(request.hash_alg.encode() + b":" + request.imprint).digest(), meta


def _reply(rejection: Rejection, retry_after_s: int | None = None) -> web.Response:
    headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return web.Response(status=200, body=rejection_response(rejection),
                        content_type=REPLY_TYPE, headers=headers)


def read_users(path: Path) -> dict[str, str]:
    """The users file: `name:scrypt$salt$hash` lines (absent: no users)."""
    if not path.exists():
        return {}
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        name, colon, stored = line.strip().partition(":")
        if not line.strip():
            continue
        if not colon or not name or stored.count("$") != 2 or len(users) >= MAX_USERS:
            raise ConfigError(f"{path}:{number}: expected name:scrypt$salt$hash "
                              f"(at most {MAX_USERS} users)")
        users[name] = stored
    return users


def load_tsa_config(node_dir: Path, cert: str, key: str, chain: str, depositor: str,
                    policy: str, access: str, requests_per_s: int,
                    users: str = "tsa/users") -> TsaConfig:
    """The service's configuration from node.toml's `tsa_*` settings: paths relative to
    the node directory. A missing or bad file stops the node with a clear error."""
    from tidechain.client.files import read_key
    from tidechain.timestamp.tsa_cert import load_tsa_signer

    def read(name: str, what: str) -> bytes:
        path = node_dir / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{what} {path}: {exc.strerror}") from None

    try:
        signer = load_tsa_signer(read(cert, "tsa_cert"), read(key, "tsa_key"),
                                 [read(chain, "tsa_chain")] if chain else [])
    except Rejected as exc:
        raise ConfigError(f"tsa: {exc.reason}") from exc
    depositor_key = read_key(node_dir / depositor).key
    if access not in (ACCESS_ANYONE, ACCESS_MEMBERS):
        raise ConfigError(f"tsa_access must be {ACCESS_ANYONE!r} or {ACCESS_MEMBERS!r}")
    return TsaConfig(signer, depositor_key, policy, access, requests_per_s,
                     read_users(node_dir / users))
