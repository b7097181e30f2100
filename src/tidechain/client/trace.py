"""Traceability from the SDK: capture EPCIS documents, query events, trace an item and
verify each event's receipt offline (docs/traceability.md).

Two ways to capture:
* `capture(client, document)` POSTs to the node's EPCIS binding, as any EPCIS capture
  client does; the node's capturing member signs the events (ADR 0018);
* `capture_signed(client, key, document)` splits the document here and signs one
  `trace.capture` transaction per event with the member's own key.

`verify_event_receipt(receipt, trust)` proves, with the trust file alone, that an event
is on the chain: it checks the receipt, re-reads the event from the entry's bytes and
recomputes its CBV 2.0 hash.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tidechain.client.sdk import Client
from tidechain.client.session import Session
from tidechain.client.verify import load_trust
from tidechain.contracts.trace.contract import NAME, read_capture
from tidechain.contracts.trace.document import split_document
from tidechain.core.errors import ProofError, Rejected
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import Trust
from tidechain.ledger.types import LogEntry

__all__ = ["VerifiedEvent", "capture", "capture_signed", "events", "media_of", "recall",
           "trace", "verify_event_receipt", "wait_job"]

EPCIS: Final = "/v1/epcis"
JOB_POLL_S: Final = 0.25
MAX_PAGES: Final = 10_000
"""Pages `events` follows at most: a query answering more should be narrowed."""


def media_of(document: bytes) -> str:
    """`xml` for an XML document, else `json` (what its first non-blank byte says)."""
    start = document.removeprefix(b"\xef\xbb\xbf").lstrip()  # XML may open with a BOM
    return "xml" if start[:1] == b"<" else "json"


def _content_type(media: str) -> str:
    return "application/xml" if media == "xml" else "application/ld+json"


def capture(client: Client, document: bytes, *, media: str | None = None,
            behaviour: str = "rollback") -> dict[str, Any]:
    """POST an EPCISDocument to the node's capture endpoint; the capture job (202)."""
    kind = media or media_of(document)
    response = client._http.post(f"{EPCIS}/capture", content=document, headers={
        "Content-Type": _content_type(kind), "GS1-Capture-Error-Behaviour": behaviour})
    if response.status_code != 202:
        raise _problem(response)
    job: dict[str, Any] = response.json()
    return job


def wait_job(client: Client, job_id: str, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll a capture job until it stops running; its last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client._http.get(f"{EPCIS}/capture/{job_id}")
        if response.status_code != 200:
            raise _problem(response)
        job: dict[str, Any] = response.json()
        if not job["running"]:
            return job
        if time.monotonic() > deadline:
            raise Rejected(f"capture job {job_id} still running after {timeout_s:.0f} s",
                           code="timeout")
        time.sleep(JOB_POLL_S)


def capture_signed(session: Session, document: bytes, *,
                   media: str | None = None) -> list[dict[str, Any]]:
    """Split `document` here and sign one capture transaction per event with the
    session's member key; submit them together and wait for their commits. One outcome
    per event."""
    kind = media or media_of(document)
    digest = hashlib.sha256(document).digest()
    split = split_document(document, kind)
    txs = [session.build(NAME, "capture", {"format": e.format, "source": e.source,
                                           "context": e.context, "document": digest,
                                           "position": i})
           for i, e in enumerate(split.events)]
    session.client.submit_batch(txs)
    return [session.client.wait(tx.tx_id) for tx in txs]


def events(client: Client, params: Mapping[str, str] | None = None, *,
           per_page: int = 100) -> Iterator[dict[str, Any]]:
    """Every event a query answers (EPCIS binding parameters), following the pages."""
    # The first request carries the query; a next page's link carries it on (an empty
    # `params` would strip the link's own query string, token and all).
    query: dict[str, str] | None = dict(params or {}) | {"perPage": str(per_page)}
    url: str | None = f"{EPCIS}/events"
    for _ in range(MAX_PAGES):
        if url is None:
            return
        response = client._http.get(url, params=query)
        if response.status_code != 200:
            raise _problem(response)
        body = response.json()
        yield from body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        url, query = _next(response.headers.get("Link")), None
    raise Rejected(f"more than {MAX_PAGES} pages: narrow the query", code="too_large")


def _next(link: str | None) -> str | None:
    if not link or 'rel="next"' not in link:
        return None
    return link.split(">", 1)[0].lstrip("<")


def trace(client: Client, identifier: str) -> dict[str, Any]:
    """The history of an identifier (EPC URN or GS1 Digital Link): `lineage.to_json`'s
    shape, events the caller may not read reduced to stubs (`hidden`)."""
    response = client._http.get("/v1/trace", params={"id": identifier})
    if response.status_code != 200:
        raise _problem(response)
    found: dict[str, Any] = response.json()
    return found


def recall(client: Client, identifier: str) -> list[str]:
    """Every identifier that shows as recalled because of a recall of `identifier`."""
    response = client._http.get("/v1/trace/recall", params={"id": identifier})
    if response.status_code != 200:
        raise _problem(response)
    affected: list[str] = response.json()["affected"]
    return affected


@dataclass(frozen=True)
class VerifiedEvent:
    """What an event receipt proves offline."""

    index: int
    hash: str
    event: Mapping[str, Any]
    signer: str
    """The member key (hex) that signed the capture."""
    time_ms: int
    """The block time it was recorded at (the repository's recordTime)."""
    document: str
    """The SHA-256 (hex) of the document the event came from."""
    signers: tuple[str, ...]
    """The validators whose checkpoint signatures proved it."""


def verify_event_receipt(receipt: str | bytes, trust: str | bytes | Trust, *,
                         expected_hash: str | None = None) -> VerifiedEvent:
    """Check an event's receipt against the trust file alone, re-read the event from
    the entry and recompute its hash; ProofError naming the failed check."""
    proven = verify_receipt(receipt, load_trust(trust))
    entry = LogEntry.decode(proven.entry)
    body = entry.tx.body
    if body.contract != NAME or body.method != "capture":
        raise ProofError(f"entry {proven.index} is a {body.contract}.{body.method}, "
                         "not a traceability event")
    if not entry.result.ok:
        raise ProofError(f"entry {proven.index} is a capture the chain refused "
                         f"({entry.result.error})")
    event, hash_text = read_capture(body.args)
    if expected_hash is not None and hash_text != expected_hash:
        raise ProofError(f"the event hashes to {hash_text}, not {expected_hash}")
    return VerifiedEvent(proven.index, hash_text, event, body.sender.hex(), entry.time_ms,
                         bytes(body.args["document"]).hex(), proven.signers)


def _problem(response: Any) -> Rejected:
    try:
        body = response.json()
        reason = body.get("detail") or body.get("reason") or response.text
        code = body.get("error") or str(body.get("type", "http")).rpartition(":")[2]
    except (ValueError, json.JSONDecodeError, AttributeError):
        reason, code = response.text, "http"
    error = Rejected(f"{response.status_code}: {reason}", code=code)
    error.http_status = response.status_code
    return error
