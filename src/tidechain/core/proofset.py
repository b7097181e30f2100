"""Proof sets: several receipts against one checkpoint, and optionally one state proof,
in one text file (extension `.tlog-proofs`).

    tidechain.dev/proof-set@v1
    receipt <base64 of a c2sp.org/tlog-proof@v1 receipt>     (one or more lines)
    state <base64 of a state proof bundle, JSON>             (at most one line)

A fact made of several log entries (a co-signed deposit: the deposit and each counted
signature) is proven by all of them being in one log that a quorum signed: every
receipt must carry the same checkpoint. Each receipt is a standard tlog-proof that
`base64 -d` recovers and any C2SP verifier checks on its own; the state proof is what
`GET /v1/state/proof/{key}` serves (`client/state_proof.py` checks it).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.limits import MAX_RECEIPT_BYTES

HEADER = "tidechain.dev/proof-set@v1"
MAX_PROOF_SET_RECEIPTS = 16
"""Entries one set proves: a deposit and its at most six signatures fit with room."""
MAX_PROOF_SET_BYTES = MAX_PROOF_SET_RECEIPTS * MAX_RECEIPT_BYTES * 2
"""Base64 of each receipt (4/3) plus the state proof: twice the receipts bounds both."""


@dataclass(frozen=True)
class ProofSet:
    """A parsed proof set: nothing in it is trusted until each part is verified."""

    receipts: tuple[bytes, ...]
    state: dict[str, Any] | None


def format_proof_set(receipts: list[str], state: dict[str, Any] | None) -> str:
    lines = [HEADER]
    lines += [f"receipt {base64.b64encode(r.encode()).decode()}" for r in receipts]
    if state is not None:
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        lines.append(f"state {base64.b64encode(text.encode()).decode()}")
    return "\n".join(lines) + "\n"


def is_proof_set(text: str | bytes) -> bool:
    head = text[:len(HEADER) + 1]
    return (head.decode("ascii", "replace") if isinstance(head, bytes) else head) \
        == HEADER + "\n"


def parse_proof_set(text: str | bytes) -> ProofSet:
    if len(text) > MAX_PROOF_SET_BYTES:
        raise TooLarge(f"a proof set is at most {MAX_PROOF_SET_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("a proof set is ASCII text") from None
    lines = text.split("\n")
    if lines[0] != HEADER:
        raise DecodeError(f"not a proof set: the first line must be {HEADER!r}")
    if lines[-1] != "":
        raise DecodeError("a proof set ends with a newline")
    receipts: list[bytes] = []
    state: dict[str, Any] | None = None
    for line in lines[1:-1]:
        kind, _, value = line.partition(" ")
        raw = _b64(value, kind)
        if kind == "receipt" and state is None:
            if len(receipts) == MAX_PROOF_SET_RECEIPTS:
                raise TooLarge(f"a proof set holds at most {MAX_PROOF_SET_RECEIPTS} receipts")
            receipts.append(raw)
        elif kind == "state" and state is None:
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise DecodeError("the proof set's state line is not JSON") from None
            if not isinstance(decoded, dict):
                raise DecodeError("the proof set's state line is not a JSON object")
            state = decoded
        else:
            raise DecodeError(f"unexpected proof set line {line[:40]!r}: receipt lines, "
                              "then at most one state line")
    if not receipts:
        raise DecodeError("a proof set needs at least one receipt")
    return ProofSet(tuple(receipts), state)


def _b64(value: str, kind: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"the proof set's {kind} line is not base64") from None
