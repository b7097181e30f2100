"""Typed errors.

Two families, kept apart on purpose (STYLE.md, h11):

* `Rejected` and its subclasses: the *input* was bad (a client's transaction, a
  peer's message, a receipt file). They carry a stable machine-readable `code` and a
  human reason, and map to an HTTP status (`http_status`: 4xx, or 503 for Busy), a
  CLI exit code (2; 1 when a proof does not verify), or a peer error naming the peer.
* `InvariantViolation`: *we* are wrong. Raised by `invariant()`; never caught except
  at the top of a process, which then crashes loudly.
"""

from __future__ import annotations


class Rejected(Exception):
    """Bad input. `code` is stable and documented; `reason` is for humans."""

    code = "rejected"
    http_status = 400

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "reason": self.reason}


class DecodeError(Rejected):
    """Bytes that are not a well-formed canonical encoding."""

    code = "malformed"


class TooLarge(Rejected):
    code = "too_large"
    http_status = 413


class BadSignature(Rejected):
    code = "bad_signature"


class ProofError(Rejected):
    """A Merkle proof, signed note, checkpoint or receipt did not verify."""

    code = "proof_invalid"


class TxRejected(Rejected):
    """A transaction was refused before or during execution (replay, expiry, chain id...)."""

    code = "tx_rejected"


class ContractError(Rejected):
    """A contract rule refused the call. The transaction is still committed, with the
    error in its result (its nonce is spent), and changes no state."""

    code = "contract_error"


class NotFound(Rejected):
    code = "not_found"
    http_status = 404


class Busy(Rejected):
    """Back-pressure: the mempool is full. Retry after `retry_after_s` seconds."""

    code = "busy"
    http_status = 503

    def __init__(self, reason: str, *, retry_after_s: int = 1) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class ConfigError(Rejected):
    """A network, node or key file that is missing or says something we cannot use
    (shared by the node, which reads its own directory, and the client's files)."""

    code = "config"


class PeerError(Rejected):
    """A peer sent something invalid. `peer` names it for the log."""

    code = "peer_error"

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f"peer {peer}: {reason}")
        self.peer = peer


class InvariantViolation(AssertionError):
    """A broken internal invariant: a bug in tidechain. Crash, do not handle."""


def invariant(condition: bool, message: str) -> None:
    """Like `assert`, but survives `python -O` (TigerBeetle style)."""
    if not condition:
        raise InvariantViolation(message)
