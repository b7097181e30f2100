"""The Python SDK: a synchronous client for a tidechain node's REST API.

Errors are the same typed rejections the node raises: an HTTP error whose body is
`{"error", "reason"}` becomes the matching `Rejected` subclass with the server's code,
so an SDK user sees exactly what an API user sees. A node that cannot be reached
raises `NodeUnreachable`, naming the URL.

The SDK checks what it can of what it receives: a consistency proof against the
roots it comes with, and, given the network's trust file, checkpoints and receipts
against the validators' keys before returning (or writing) them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

import tidechain.api.models as models  # the wire models the server and the SDK share
from tidechain.client import sealing
from tidechain.client.auth import MemberSignatures
from tidechain.client.txbuilder import Progress
from tidechain.client.verify import VerifiedDeposit, load_trust
from tidechain.core import cbor, merkle
from tidechain.core.checkpoint import verify_checkpoint
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import (
    BadSignature,
    Busy,
    ContractError,
    DecodeError,
    NotFound,
    ProofError,
    Rejected,
    TooLarge,
)
from tidechain.core.hexcodec import parse_hex
from tidechain.core.limits import (
    COMMIT_WAIT_MAX_MS,
    MAX_HTTP_BODY_BYTES,
    MAX_PAGE_SIZE,
    MAX_QUERY_RESULTS,
    MAX_SUBMIT_BATCH,
)
from tidechain.core.proofset import MAX_PROOF_SET_RECEIPTS
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import Trust
from tidechain.ledger.access import ReadForbidden, Unauthenticated
from tidechain.ledger.application import Page
from tidechain.ledger.runtime import Forbidden, Registry
from tidechain.ledger.types import HASH_BYTES, SignedTx

CBOR = "application/cbor"
NONCE_BYTES = 16
"""Random nonce per transaction: 128 bits never collide by chance."""

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_COMMIT_WAIT_MS = 30_000
RECEIPT_SUFFIX = ".tlog-proof"

EVENTS_PATH = "/v1/events"
EVENTS_READ_TIMEOUT_S = 50.0
"""A stream silent this long is taken for dead and resumed: the node sends a keepalive
every 15 s (api/events.py), so that is three missed and some."""
EVENTS_MAX_RETRIES = 6
"""Failed connections in a row (refused, dropped, busy) before `events` gives up and
raises the last failure; each event received starts the count again."""
EVENTS_BACKOFF_S = 0.5
EVENTS_BACKOFF_MAX_S = 8.0
"""The wait before a reconnection doubles from the first to the cap (a busy node's
Retry-After is honoured instead, up to the same cap): 0.5 + 1 + 2 + 4 + 8 + 8 s, so a
node has about 24 s to come back before `events` gives up."""
MAX_EVENT_LINE_BYTES = 64 * 1024
"""A line of the event stream: a commit event is ~350 bytes."""
COMMIT_EVENT_FIELDS = {"height": int, "hash": str, "time_ms": int, "tx_count": int,
                       "log_size": int, "log_root": str, "proposer": str}
"""The `data` of a `commit` event (docs/operations.md)."""

_CODE_TYPES: dict[str, type[Rejected]] = {
    "malformed": DecodeError,
    "bad_signature": BadSignature,
    "proof_invalid": ProofError,
    "too_large": TooLarge,
    "forbidden": Forbidden,
}
"""Error codes that name one exception type, whatever the HTTP status."""


class NodeUnreachable(Rejected):
    """No answer from the node (refused, reset, DNS...). Its reason names the URL."""

    code = "unreachable"
    http_status = 503


@dataclass(frozen=True)
class DepositOutcome:
    """A committed deposit and its receipt, already verified against the trust file."""

    path: Path
    digest: bytes
    tx_id: bytes
    log_index: int
    height: int
    receipt: str
    receipt_path: Path | None
    proven: VerifiedDeposit

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "receipt_path": None if self.receipt_path is None else str(self.receipt_path),
            **self.proven.to_json(),
        }


@dataclass(frozen=True)
class CheckedRoot:
    """A log root, and the validators whose signed checkpoint at that size attests it
    (empty when no checkpoint was signed at exactly that size, or without trust)."""

    size: int
    root: bytes
    signers: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "root": base64.b64encode(self.root).decode(),
                "attested_by": list(self.signers)}


@dataclass(frozen=True)
class ConsistencyReport:
    """A verified RFC 9162 consistency proof between two log sizes."""

    old: CheckedRoot
    new: CheckedRoot
    proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {"consistent": True, "old": self.old.to_json(), "new": self.new.to_json(),
                "proof": [base64.b64encode(h).decode() for h in self.proof]}


def _rejection_from(response: httpx.Response) -> Rejected:
    """The typed rejection for an HTTP error response, keeping the server's code."""
    status = response.status_code
    try:
        body = response.json()
        code, reason = str(body["error"]), str(body["reason"])
    except (ValueError, KeyError, TypeError):
        text = response.text[:200].strip()
        code = "server_error" if status >= 500 else "http"
        return Rejected(f"HTTP {status} from {response.request.url}: {text}", code=code)
    if status in (429, 503):
        retry = response.headers.get("Retry-After", "1")
        busy = Busy(reason, retry_after_s=int(retry) if retry.isdigit() else 1)
        busy.code = code
        busy.http_status = status
        return busy
    if status == 422 and "log_index" in body:
        # Committed, but the contract refused it: say where it landed.
        where = f" (committed as tx {body.get('tx_id')} at log index {body['log_index']})"
        return ContractError(reason + where, code=code)
    # A refused read answers code `forbidden` as a write's permission check does: both
    # raise `Forbidden`, so a caller catches one type for "not allowed".
    exc_type = ({401: Unauthenticated, 404: NotFound, 413: TooLarge}.get(status)
                or _CODE_TYPES.get(code, ReadForbidden if status == 403 else Rejected))
    exc = exc_type(reason, code=code)
    exc.http_status = status
    return exc


def _hex32(value: bytes | str, what: str) -> str:
    if isinstance(value, bytes):
        if len(value) != HASH_BYTES:
            raise DecodeError(f"{what} must be {HASH_BYTES} bytes")
        return value.hex()
    return parse_hex(value, HASH_BYTES, what).hex()


def _b64_hash(text: Any, what: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"node sent a malformed {what}") from exc
    if len(raw) != HASH_BYTES:
        raise DecodeError(f"node sent a {what} that is not {HASH_BYTES} bytes")
    return raw


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` so that a crash leaves either the old file or
    the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(text.encode() if isinstance(text, str) else text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Client:
    """A node's REST API. `trust` (a trust file's text or a parsed `Trust`) lets the
    client verify checkpoints and receipts it receives; `deposit_file` requires it.

    Reads of member data need a member credential (docs/access.md): `key`, the member's
    Ed25519 key, signs every request (RFC 9421); or, against a node serving HTTPS,
    `certificate` = (certificate PEM file, private key PEM file) is presented over
    mutual TLS. `ca` is the PEM file of the CA that issued the node's API certificate
    (default: the system's)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        trust: str | bytes | Trust | None = None,
        transport: httpx.BaseTransport | None = None,
        chain_id: bytes | None = None,
        registry: Registry | None = None,
        key: SigningKey | None = None,
        certificate: tuple[Path, Path] | None = None,
        ca: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.trust = None if trust is None else load_trust(trust)
        self.key = key
        verify: ssl.SSLContext | bool = True
        if certificate is not None or ca is not None:
            verify = ssl.create_default_context(cafile=None if ca is None else str(ca))
            if certificate is not None:
                verify.load_cert_chain(str(certificate[0]), str(certificate[1]))
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                  transport=transport, verify=verify,
                                  auth=None if key is None else MemberSignatures(key))
        # Known from the network's genesis, the chain id costs no round trip (a wrong
        # one is refused by the node as `wrong_chain`); otherwise asked once.
        self._chain_id: bytes | None = chain_id
        self._registry = registry

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- transport -----------------------------------------------------------------------
    def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        content: bytes | None = None, timeout_s: float | None = None,
        content_type: str = CBOR,
    ) -> httpx.Response:
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            response = self._http.request(
                method, path, params=params, content=content, headers=headers,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise Rejected(f"no answer from {self.base_url}{path} in time ({exc})",
                           code="timeout") from exc
        except httpx.TransportError as exc:
            raise NodeUnreachable(
                f"cannot reach the tidechain node at {self.base_url} "
                f"({exc or type(exc).__name__}); is it running?"
            ) from exc
        if response.status_code >= 400:
            raise _rejection_from(response)
        return response

    def _get_json(self, path: str, params: dict[str, Any] | None = None,
                  model: Any = None) -> Any:
        """The JSON answer, checked against the route's declared model when given (the
        same msgspec model the server converts its answer through, ADR 0014)."""
        response = self._request("GET", path, params=params)
        answer = _json_of(response)
        if model is not None:
            try:
                msgspec.convert(answer, model)
            except msgspec.ValidationError as exc:
                raise Rejected(f"the node's answer to {path} is not as its API documents: "
                               f"{exc}", code="bad_answer") from None
        return answer

    # --- queries -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Chain head, log size and root, mempool fill, validators."""
        status: dict[str, Any] = self._get_json("/v1/status", model=models.Status)
        return status

    def chain_id(self) -> bytes:
        """The network's chain id (asked once, then remembered)."""
        if self._chain_id is None:
            self._chain_id = bytes.fromhex(_hex32(str(self.status()["chain_id"]), "chain id"))
        return self._chain_id

    def checkpoint(self) -> str:
        """The latest checkpoint note; verified against the trust file when the client
        has one (ProofError otherwise)."""
        text = self._request("GET", "/v1/checkpoint").text
        if self.trust is not None:
            with checking("the node's checkpoint"):
                verify_checkpoint(text, self.trust)
        return text

    def tx(self, tx_id: bytes | str) -> dict[str, Any]:
        found: dict[str, Any] = self._get_json(f"/v1/tx/{_hex32(tx_id, 'tx id')}",
                                               model=models.Transaction)
        return found

    def wait(self, tx_id: bytes | str, timeout_ms: int = DEFAULT_COMMIT_WAIT_MS) -> dict[str, Any]:
        """Block until the transaction commits; ContractError if the contract refused it."""
        path = f"/v1/tx/{_hex32(tx_id, 'tx id')}/wait"
        response = self._request("GET", path, params={"timeout_ms": timeout_ms},
                                 timeout_s=self.timeout_s + timeout_ms / 1000)
        committed: dict[str, Any] = _json_of(response)
        return committed

    def block(self, height: int) -> dict[str, Any]:
        found: dict[str, Any] = self._get_json(f"/v1/block/{_uint(height, 'height')}",
                                               model=models.Block)
        return found

    def entry(self, index: int) -> dict[str, Any]:
        found: dict[str, Any] = self._get_json(f"/v1/log/entry/{_uint(index, 'log index')}",
                                               model=models.Transaction)
        return found

    def receipt(self, index: int) -> str:
        """The tlog-proof receipt of log entry `index`; verified against the trust file
        when the client has one."""
        text = self._request("GET", f"/v1/proof/{_uint(index, 'log index')}").text
        if self.trust is not None:
            with checking(f"the node's receipt for entry {index}"):
                proven = verify_receipt(text, self.trust)
                if proven.index != index:
                    raise ProofError(f"it is for entry {proven.index}")
        return text

    def proof_set(self, indexes: Sequence[int], state_key: bytes | None = None) -> str:
        """Receipts of log entries `indexes` against one checkpoint, with the proof of
        state key `state_key` when given (a tidechain.dev/proof-set@v1 file); each part
        verified against the trust file when the client has one."""
        if not 0 < len(indexes) <= MAX_PROOF_SET_RECEIPTS:
            raise Rejected(f"a proof set proves 1..{MAX_PROOF_SET_RECEIPTS} entries",
                           code="bad_argument")
        params = {"indexes": ",".join(str(_uint(i, "log index")) for i in indexes)}
        if state_key is not None:
            params["state"] = state_key.hex()
        text = self._request("GET", "/v1/proofs", params=params).text
        if self.trust is not None:
            from tidechain.client.deposit_proof import verify_proof_set

            with checking("the node's proof set"):
                verify_proof_set(text, self.trust)
        return text

    def timestamp(self, request_der: bytes) -> bytes:
        """The node's RFC 3161 reply (DER TimeStampResp) to a time-stamp request; a
        rejection is a reply too (status 2): `timestamp.describe_token` reads it."""
        response = self._request("POST", "/v1/timestamp", content=request_der,
                                 content_type="application/timestamp-query",
                                 timeout_s=self.timeout_s + 20)
        return response.content

    def consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        """The node's consistency proof, checked against the two roots it comes with."""
        params = {"old": _uint(old, "old size")}
        if new is not None:
            params["new"] = _uint(new, "new size")
        answer: dict[str, Any] = self._get_json("/v1/log/consistency", params,
                                                model=models.Consistency)
        with checking("the node's consistency proof"):
            merkle.verify_consistency(
                int(answer["old_size"]), int(answer["new_size"]),
                [_b64_hash(h, "proof hash") for h in answer["proof"]],
                _b64_hash(answer["old_root"], "old root"),
                _b64_hash(answer["new_root"], "new root"),
            )
            if answer["old_size"] != old or (new is not None and answer["new_size"] != new):
                raise ProofError("it is for other sizes than asked")
        return answer

    # --- live events (GET /v1/events) ------------------------------------------------------
    def events(self, from_height: int | None = None, follow: bool = True
               ) -> Iterator[dict[str, Any]]:
        """Committed blocks as the node's event stream reports them, one dict each
        (height, hash, time_ms, tx_count, log_size, log_root, proposer), in height order:
        from `from_height` (default: the next block to commit), and then, with `follow`,
        each new one as it commits. Without `follow` it ends at the head the node had when
        called (`from_height` defaulting to that head: its last block alone).

        A dropped stream (the node restarted, the network failed, the node ended a slow
        stream) is resumed with Last-Event-ID where it left off: no block is missed or
        repeated. After EVENTS_MAX_RETRIES failed connections in a row the last failure is
        raised (NodeUnreachable, Busy, ...); a refusal other than 503 is raised at once."""
        head = int(self.status()["height"])  # a definite start, so a resume misses nothing
        if from_height is not None:
            _uint(from_height, "from_height")
        start = max(1, from_height if from_height is not None else head if not follow
                    else head + 1)
        if not follow and start > head:
            return
        last = start - 1  # the last height delivered
        failures = 0
        while True:
            try:
                for event in self._event_stream(last):
                    if event["height"] != last + 1:
                        raise Rejected(f"the node's event stream skipped from height {last} "
                                       f"to {event['height']}", code="bad_answer")
                    last = event["height"]
                    failures = 0
                    yield event
                    if not follow and last >= head:
                        return
                failure: Rejected = NodeUnreachable(
                    f"{self.base_url} ended the event stream after height {last}")
            except (NodeUnreachable, Busy) as exc:
                failure = exc
            except Rejected as exc:
                if exc.code != "timeout":
                    raise
                failure = exc
            failures += 1
            if failures > EVENTS_MAX_RETRIES:
                raise failure
            backoff_s = EVENTS_BACKOFF_S * 2 ** (failures - 1)
            if isinstance(failure, Busy):
                backoff_s = max(backoff_s, failure.retry_after_s)
            time.sleep(min(backoff_s, EVENTS_BACKOFF_MAX_S))

    def _event_stream(self, last: int) -> Iterator[dict[str, Any]]:
        """One connection's commit events, after height `last`."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last > 0:
            headers["Last-Event-ID"] = str(last)
        timeout = httpx.Timeout(self.timeout_s, read=EVENTS_READ_TIMEOUT_S)
        try:
            with self._http.stream("GET", EVENTS_PATH, headers=headers, timeout=timeout,
                                   params=None if last > 0 else {"from": "1"}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _rejection_from(response)
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise Rejected(f"{response.request.url} answered {kind!r}, not an event "
                                   "stream", code="bad_answer")
                for name, data in _sse_events(response.iter_bytes()):
                    if name == "commit":
                        yield _commit_event(data)
        except httpx.TimeoutException as exc:
            raise Rejected(f"the event stream of {self.base_url} went silent ({exc})",
                           code="timeout") from exc
        except httpx.TransportError as exc:
            raise NodeUnreachable(
                f"lost the event stream of {self.base_url} ({exc or type(exc).__name__})"
            ) from exc

    # --- applications' queries (GET /v1/apps/{app}/{query}) -------------------------------
    def query(self, app: str, name: str, **params: Any) -> Any:
        """One application query's answer (one page, for a list: {items, next})."""
        query = {k: _param_text(v) for k, v in params.items() if v is not None}
        return self._get_json(f"/v1/apps/{quote(app, safe='')}/{quote(name, safe='')}",
                              params=query, model=self._answer_model(app, name))

    @property
    def registry(self) -> Registry:
        """The applications this client's software knows (the built-in ones unless
        given: `Client(..., registry=...)`)."""
        if self._registry is None:
            from tidechain.contracts import default_registry  # members loads x509

            self._registry = default_registry()
        return self._registry

    def _answer_model(self, app: str, name: str) -> Any:
        """The declared answer of a query this client's software knows (a newer node's
        own application is taken as it comes)."""
        application = self.registry.applications.get(app)
        query = None if application is None else application.queries.get(name)
        if query is None:
            return None
        return Page[query.result] if query.paged else query.result  # type: ignore[name-defined]

    def walk(self, app: str, name: str, **params: Any) -> Iterator[Any]:
        """Every item of a paged query, page after page, in its order (newest first
        for lists with a log position). Lazy: the caller decides how far to go."""
        cursor = None
        while True:
            page = self.query(app, name, cursor=cursor, **params)
            yield from page["items"]
            cursor = page.get("next")
            if cursor is None:
                return

    def gather(self, app: str, name: str, *, max_items: int = MAX_QUERY_RESULTS,
               **params: Any) -> tuple[list[Any], str | None]:
        """At most `max_items` items of a paged query, read in the largest pages, and
        the cursor to go on from (None: that was all). Never silently cut."""
        if max_items < 1:
            raise Rejected("gather needs max_items >= 1", code="bad_argument")
        items: list[Any] = []
        cursor = None
        page_size = int(params.pop("limit", MAX_PAGE_SIZE))
        while True:
            limit = min(page_size, max_items - len(items))
            page = self.query(app, name, cursor=cursor, limit=limit, **params)
            items.extend(page["items"])
            cursor = page.get("next")
            if cursor is None or len(items) >= max_items:
                return items, cursor

    def deposits(self, digest: bytes | str) -> list[dict[str, Any]]:
        """Every deposit of a SHA-256 digest, newest first. More than MAX_QUERY_RESULTS
        is TooLarge (page through them with `walk` or `gather`), never a cut list."""
        found, more = self.gather("evidence", "deposits", digest=_hex32(digest, "digest"))
        if more is not None:
            raise TooLarge(f"more than {MAX_QUERY_RESULTS} deposits of this digest: page "
                           f"through them with Client.gather or walk")
        return found

    def deposit(self, index: int) -> dict[str, Any]:
        found: dict[str, Any] = self.query("evidence", "deposit", index=_uint(index, "index"))
        return found

    def contracts(self) -> list[dict[str, Any]]:
        """Every contract method with the roles allowed to call it."""
        found = self._get_json("/v1/contracts")
        described: list[dict[str, Any]] = found["contracts"]
        return described

    def member(self, public_key: bytes | str) -> dict[str, Any]:
        """The member record of an Ed25519 public key, with its status at the head."""
        found: dict[str, Any] = self.query("members", "member",
                                           key=_hex32(public_key, "key"))
        return found

    def members(self, org: str) -> dict[str, Any]:
        """An organisation, its active CAs and its members (by key; `truncated` when
        there are more than MAX_QUERY_RESULTS: walk `members`/`members` for all)."""
        found: dict[str, Any] = self.query("members", "org", org=org)
        listed, more = self.gather("members", "members", org=org)
        truncated = more is not None
        return {**found, "members": listed, "truncated": truncated}

    def gov_list(self) -> dict[str, Any]:
        """The governance proposals, newest first (at most MAX_QUERY_RESULTS; `truncated`
        when there are more), the threshold, the registered orgs, the voting period."""
        settings: dict[str, Any] = self.query("gov", "settings")
        proposals, more = self.gather("gov", "proposals")
        truncated = more is not None
        return {"proposals": proposals, "truncated": truncated, **settings}

    def gov_get(self, proposal: int) -> dict[str, Any]:
        """One governance proposal with its votes and tally."""
        found: dict[str, Any] = self.query("gov", "proposal", id=_uint(proposal, "id"))
        return found

    def gov_dry_run(self, tx: SignedTx) -> dict[str, Any]:
        """What a signed gov.propose would do, evaluated by the node without submitting
        it: {ok, action, effect} or {ok: false, error, reason}."""
        answer: dict[str, Any] = _json_of(self._request("POST", "/v1/gov/dry-run",
                                                        content=tx.encode()))
        return answer

    def invoice(self, number: str) -> dict[str, Any]:
        """An e-invoice record (20-digit number) and its state at the head."""
        found: dict[str, Any] = self.query("invoice", "invoice", number=number)
        return found

    def invoice_auditors(self) -> list[bytes]:
        """The tax authority's audit keys: every invoice is sealed to each of them."""
        found = self.query("invoice", "auditors")
        return [bytes.fromhex(key) for key in found["auditors"]]

    def invoice_content(self, number: str, *, key: SigningKey | None = None,
                        code: bytes | None = None) -> dict[str, Any]:
        """An invoice's content, opened here with a reader's member `key` (or the
        buyer's claim `code`) and checked against its commitment and public total.
        NotAReader for anyone the invoice is not sealed to; nothing leaves this process."""
        return sealing.open_content(self.invoice(number), key=key, code=code)

    def invoice_stats(self, issuer: str | bytes, month: str) -> dict[str, Any]:
        """The invoice contract's counters for an issuer (tax id, or member key) in the
        UTC month `YYYY-MM`: issued, issued_count, reversed, reimbursed (fen)."""
        who = issuer.hex() if isinstance(issuer, bytes) else issuer
        found: dict[str, Any] = self.query("invoice", "stats", issuer=who, month=month)
        return found

    # --- submit ------------------------------------------------------------------------
    def submit(
        self, tx: SignedTx, wait: bool = True, timeout_ms: int = DEFAULT_COMMIT_WAIT_MS,
        *, receipt: bool = False,
    ) -> dict[str, Any]:
        """Submit one transaction. With `wait`, returns once it is committed (with
        `receipt`, the answer carries the entry's tlog-proof receipt, unverified: the
        `Session` verifies it); raises the node's typed rejection (ContractError if
        committed but refused by the contract)."""
        timeout_ms = min(_uint(timeout_ms, "timeout_ms"), COMMIT_WAIT_MAX_MS)
        params: dict[str, Any] = {"wait": "true" if wait else "false", "timeout_ms": timeout_ms}
        if wait and receipt:
            params["receipt"] = "true"
        response = self._request("POST", "/v1/tx", params=params, content=tx.encode(),
                                 timeout_s=self.timeout_s + (timeout_ms / 1000 if wait else 0))
        outcome: dict[str, Any] = _json_of(response)
        return outcome

    def submit_batch(self, txs: Sequence[SignedTx]) -> list[dict[str, Any]]:
        """Submit many transactions at once (no waiting). One result per transaction, in
        order: `{"tx_id": ...}` if admitted, else `{"error", "reason"}`."""
        if len(txs) > MAX_SUBMIT_BATCH:
            raise TooLarge(f"batch of {len(txs)} transactions exceeds {MAX_SUBMIT_BATCH}")
        body = cbor.encode([tx.encode() for tx in txs])
        if len(body) > MAX_HTTP_BODY_BYTES:
            raise TooLarge(f"batch is {len(body)} bytes, limit {MAX_HTTP_BODY_BYTES}")
        answer = _json_of(self._request("POST", "/v1/tx/batch", content=body))
        results: list[dict[str, Any]] = answer["results"]
        return results

    def deposit_file(
        self,
        path: str | Path,
        signer: SigningKey,
        meta: dict[str, str] | None = None,
        progress: Progress | None = None,
        *,
        amends: int | None = None,
        write_receipt: bool = True,
        timeout_ms: int = DEFAULT_COMMIT_WAIT_MS,
    ) -> DepositOutcome:
        """Hash a file locally, deposit (or amend) its digest in one round trip, verify
        the receipt against the trust file and the file's digest, and (by default) write
        it to `<file>.tlog-proof` (`Session.deposit_file`, with the wall clock and random
        nonces). The file itself never leaves here."""
        from tidechain.client.session import Session

        return Session(self, signer).deposit_file(path, meta, progress, amends=amends,
                                                  write_receipt=write_receipt,
                                                  timeout_ms=timeout_ms)

    # --- audits --------------------------------------------------------------------------
    def verified_consistency(self, old: int, new: int | None = None) -> ConsistencyReport:
        """Fetch and verify a consistency proof, and check each root against the
        quorum-signed checkpoint of the block that ended at that log size, when there is
        one (needs the trust file). Raises ProofError if anything disagrees."""
        answer = self.consistency(old, new)
        proof = tuple(_b64_hash(h, "proof hash") for h in answer["proof"])
        old_root = self._attested(int(answer["old_size"]), _b64_hash(answer["old_root"], "root"))
        new_root = self._attested(int(answer["new_size"]), _b64_hash(answer["new_root"], "root"))
        return ConsistencyReport(old_root, new_root, proof)

    def _attested(self, size: int, root: bytes) -> CheckedRoot:
        if self.trust is None:
            return CheckedRoot(size, root, ())
        height = int(self.entry(size - 1)["height"])
        block = self.block(height)
        if int(block["log_size"]) != size:
            return CheckedRoot(size, root, ())  # no checkpoint was signed at this size
        with checking(f"the checkpoint of block {height}"):
            checkpoint, signers = verify_checkpoint(str(block["checkpoint"]), self.trust)
            if checkpoint.size != size or checkpoint.root != root:
                raise ProofError(f"it says size {checkpoint.size} has root "
                                 f"{base64.b64encode(checkpoint.root).decode()}, the proof "
                                 f"used {base64.b64encode(root).decode()}")
        return CheckedRoot(size, root, tuple(signers))


def _sse_events(chunks: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event type, data) of each event of a text/event-stream (the WHATWG rules: lines
    end with LF, CRLF or CR; comments start with `:`; data lines are joined by LF; an
    event without data is not dispatched). Lines are bounded by MAX_EVENT_LINE_BYTES."""
    buffer = b""
    name = ""
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if buffer.endswith(b"\r"):  # a CR that may start a CRLF: wait for the next chunk
            lines[-2:] = [lines[-2] + b"\r"]
        buffer = lines.pop()
        if len(buffer) > MAX_EVENT_LINE_BYTES:
            raise DecodeError(f"a line of the event stream exceeds {MAX_EVENT_LINE_BYTES} bytes")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield name or "message", "\n".join(data)
                name, data = "", []
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            # `id`, `retry` and comments (empty field) need nothing here: the height
            # in each event is its id.


def _commit_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError as exc:
        raise Rejected("a commit event that is not JSON", code="bad_answer") from exc
    if not isinstance(event, dict) or not all(
            isinstance(event.get(key), kind) and not isinstance(event.get(key), bool)
            for key, kind in COMMIT_EVENT_FIELDS.items()):
        raise Rejected(f"a commit event not as docs/operations.md describes it: {data[:200]}",
                       code="bad_answer")
    return event


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _uint(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecodeError(f"{what} must be a non-negative integer")
    return value


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise Rejected(f"{response.request.url} answered with something that is not JSON",
                       code="bad_response") from exc


@contextmanager
def checking(what: str) -> Iterator[None]:
    """Turn a failed check of something the node sent into a ProofError naming it."""
    try:
        yield
    except Rejected as exc:
        raise ProofError(f"{what} does not verify: {exc.reason}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"{what} is malformed: {exc!r}") from exc
