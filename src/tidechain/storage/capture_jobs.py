"""The EPCIS capture jobs of one node, and the documents as they were captured.

An EPCIS capture is asynchronous (the REST binding answers 202 and a job): the node
keeps each job and its document in a SQLite file beside its chain (`epcis.sqlite`), so
that a job survives a restart of the node (it resumes where it was: its transactions
are deterministic, and those already committed are found by their ids) and so that the
document every event came from can be returned byte for byte. The chain holds each
event's own bytes; this file holds the whole document, keyed by its SHA-256, which every
event's record names.

Writes are committed before the API answers (WAL, synchronous=FULL): a 202 means the job
is on disk.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tidechain.core.errors import NotFound, Rejected, TooLarge, invariant

__all__ = ["MAX_JOBS_KEPT", "CaptureJob", "CaptureJobs", "JobEvent"]

MAX_JOBS_KEPT: Final = 100_000
"""Jobs remembered; the oldest finished jobs are forgotten beyond this (their documents
stay: events on chain name them)."""
MAX_ERRORS_PER_JOB: Final = 1_000
"""Errors a job reports; a document with more says how many were left out."""


@dataclass
class JobEvent:
    """One event of a capture job: its position, hash and transaction, and what became
    of it (its log index once committed, or the error)."""

    position: int
    hash: str
    tx_id: str
    log_index: int | None = None
    error: str | None = None
    attempt: int = 0
    """0 for the job's first transaction; n when the n-th replaced an expired one."""
    since_ms: int | None = None
    """The time the current attempt's transaction was built at (None: the job's)."""


@dataclass
class CaptureJob:
    id: str
    created_ms: int
    behaviour: str
    """`rollback` or `proceed` (GS1-Capture-Error-Behaviour)."""
    media: str
    document_sha256: bytes
    member: str
    """The capturing member key (hex): whose signature the events carry."""
    finished_ms: int | None = None
    running: bool = True
    success: bool = True
    events: list[JobEvent] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "created_ms": self.created_ms, "behaviour": self.behaviour,
                "media": self.media, "document": self.document_sha256.hex(),
                "member": self.member, "finished_ms": self.finished_ms,
                "running": self.running, "success": self.success,
                "events": [vars(e) for e in self.events], "errors": self.errors}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaptureJob:
        return cls(id=data["id"], created_ms=data["created_ms"],
                   behaviour=data["behaviour"], media=data["media"],
                   document_sha256=bytes.fromhex(data["document"]), member=data["member"],
                   finished_ms=data["finished_ms"], running=data["running"],
                   success=data["success"],
                   events=[JobEvent(**e) for e in data["events"]], errors=data["errors"])


class CaptureJobs:
    """The node's capture jobs and captured documents (one SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS documents (sha256 BLOB PRIMARY KEY, "
                         "media TEXT NOT NULL, body BLOB NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY "
                         "AUTOINCREMENT, id TEXT UNIQUE NOT NULL, running INTEGER NOT NULL, "
                         "job TEXT NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS queries (name TEXT PRIMARY KEY, "
                         "body TEXT NOT NULL, owner TEXT NOT NULL)")

    def close(self) -> None:
        self._db.close()

    def add(self, job: CaptureJob, document: bytes) -> None:
        """Keep the document and the new job, durably, in one transaction."""
        invariant(hashlib.sha256(document).digest() == job.document_sha256,
                  "a capture job names another document")
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR IGNORE INTO documents VALUES (?, ?, ?)",
                             (job.document_sha256, job.media, document))
            self._db.execute("INSERT INTO jobs (id, running, job) VALUES (?, ?, ?)",
                             (job.id, int(job.running), json.dumps(job.to_json())))
            self._forget_old()

    def _forget_old(self) -> None:
        row = self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()
        excess = int(row[0]) - MAX_JOBS_KEPT
        if excess > 0:
            self._db.execute("DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE "
                             "running = 0 ORDER BY seq LIMIT ?)", (excess,))

    def update(self, job: CaptureJob) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE jobs SET running = ?, job = ? WHERE id = ?",
                             (int(job.running), json.dumps(job.to_json()), job.id))

    def get(self, job_id: str) -> CaptureJob:
        row = self._db.execute("SELECT job FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no capture job {job_id[:80]!r}")
        return CaptureJob.from_json(json.loads(row[0]))

    def page(self, after_seq: int | None, limit: int) -> tuple[list[CaptureJob], int | None]:
        """Jobs newest first, below sequence `after_seq`; the next page's position."""
        bound = 2**63 - 1 if after_seq is None else after_seq
        rows = self._db.execute("SELECT seq, job FROM jobs WHERE seq < ? ORDER BY seq DESC "
                                "LIMIT ?", (bound, limit + 1)).fetchall()
        jobs = [CaptureJob.from_json(json.loads(r[1])) for r in rows[:limit]]
        return jobs, (int(rows[limit - 1][0]) if len(rows) > limit else None)

    def running(self) -> list[CaptureJob]:
        """The jobs a restart must resume, oldest first."""
        rows = self._db.execute("SELECT job FROM jobs WHERE running = 1 ORDER BY seq")
        return [CaptureJob.from_json(json.loads(r[0])) for r in rows.fetchall()]

    def document(self, sha256: bytes) -> tuple[str, bytes]:
        """(media type, bytes) of a captured document."""
        row = self._db.execute("SELECT media, body FROM documents WHERE sha256 = ?",
                               (sha256,)).fetchone()
        if row is None:
            raise NotFound(f"no captured document {sha256.hex()}")
        body = bytes(row[1])
        invariant(hashlib.sha256(body).digest() == sha256, "a stored document changed")
        return str(row[0]), body

    # --- named queries (the binding's /queries) -------------------------------------
    def save_query(self, name: str, query: dict[str, Any], max_queries: int,
                   owner: str) -> None:
        """Keep a named query of organisation `owner`; a name is defined once (409 to
        define it again)."""
        with self._db:
            self._db.execute("BEGIN")
            if self._db.execute("SELECT 1 FROM queries WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"a query named {name!r} exists: delete it first")
            count = int(self._db.execute("SELECT COUNT(*) FROM queries").fetchone()[0])
            if count >= max_queries:
                raise TooLarge(f"this node keeps at most {max_queries} named queries")
            self._db.execute("INSERT INTO queries VALUES (?, ?, ?)",
                             (name, json.dumps(query), owner))

    def query(self, name: str) -> dict[str, Any]:
        row = self._db.execute("SELECT body FROM queries WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no named query {name[:80]!r}")
        body: dict[str, Any] = json.loads(row[0])
        return body

    def queries(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self._db.execute("SELECT name, body FROM queries ORDER BY name").fetchall()
        return [(str(n), json.loads(b)) for n, b in rows]

    def delete_query(self, name: str, owner: str | None) -> None:
        """Forget a named query: only its organisation may (`owner`), or anyone (None)."""
        with self._db:
            cursor = self._db.execute(
                "DELETE FROM queries WHERE name = ? AND (owner = ? OR ? IS NULL)",
                (name, owner, owner))
        if cursor.rowcount == 0:
            raise NotFound(f"no named query {name[:80]!r} of your organisation")


class Conflict(Rejected):
    code = "conflict"
    http_status = 409
