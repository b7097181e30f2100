"""One client session: the only place a transaction is built, signed and sent.

    session = Session(client, signer)                 # wall clock, os.urandom nonces
    outcome = session.call("evidence", "deposit", {"digest": d, "meta": {}})
    outcome.receipt                                   # verified tlog-proof text

`Session(client, signer, clock=..., nonces=...)` takes the clock (ms) and the nonce
source as arguments, so a test gets the same transaction bytes every time. A call
checks its arguments against the method's declared `args` Struct (and the helpers in
`txbuilder` apply the application's own checks) before anything is signed, asks the
chain id once, and sends `POST /v1/tx?wait=true&receipt=true`: one round trip answers
the committed outcome with its receipt, which is verified here against the client's
trust file and checked to be for this very transaction before the call returns.

Failures are typed `Rejected`s: `ContractError` (code and reason) for a call that was
committed but refused by the contract, the node's own rejection otherwise,
`ProofError` when what the node sent does not verify.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import msgspec

from tidechain.client.sdk import (
    DEFAULT_COMMIT_WAIT_MS,
    NONCE_BYTES,
    RECEIPT_SUFFIX,
    DepositOutcome,
    checking,
    write_atomically,
)
from tidechain.client.txbuilder import (
    DEFAULT_TTL_MS,
    EVIDENCE,
    Progress,
    amend_args,
    call_tx,
    deposit_args,
    hash_file,
    sign_args,
)
from tidechain.client.verify import deposit_proven
from tidechain.contracts.evidence import record_key
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import DecodeError, ProofError, Rejected
from tidechain.core.hexcodec import to_json
from tidechain.core.proofset import MAX_PROOF_SET_RECEIPTS
from tidechain.core.receipt import VerifiedReceipt, verify_receipt
from tidechain.core.trust import Trust
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import LogEntry, SignedTx

if TYPE_CHECKING:
    from tidechain.client.sdk import Client
    from tidechain.ledger.runtime import MethodSpec, Registry

Clock = Callable[[], int]
"""The current time in ms since the Unix epoch (a transaction expires TTL after it)."""
Nonces = Callable[[], bytes]
"""A fresh nonce per transaction (MIN_NONCE_BYTES..MAX_NONCE_BYTES bytes)."""


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


def random_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


@dataclass(frozen=True)
class Outcome:
    """A committed, applied call and its receipt, verified against the trust file."""

    tx_id: bytes
    log_index: int
    height: int
    events: tuple[dict[str, Any], ...]
    """As the node reports them: {"type", "data"} (data in JSON form)."""
    receipt: str
    entry: LogEntry
    """The log entry the receipt proves (this transaction, its height, time, result)."""
    signers: tuple[str, ...]
    proven: VerifiedReceipt
    """The receipt as verified against the trust file."""

    def event_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    def to_json(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id.hex(), "status": "committed",
                "log_index": self.log_index, "height": self.height,
                "time_ms": self.entry.time_ms, "events": list(self.events),
                "signers": list(self.signers), "receipt": self.receipt}


class Session:
    """A signer's calls through one `Client`: see the module docstring."""

    def __init__(self, client: Client, signer: SigningKey, *, clock: Clock = wall_clock_ms,
                 nonces: Nonces = random_nonce, ttl_ms: int = DEFAULT_TTL_MS,
                 registry: Registry | None = None) -> None:
        self.client = client
        self.signer = signer
        self.clock = clock
        self.nonces = nonces
        self.ttl_ms = ttl_ms
        self._registry = registry

    @property
    def registry(self) -> Registry:
        """The applications whose declared arguments calls are checked against (the
        client's, unless the session was given its own)."""
        return self._registry if self._registry is not None else self.client.registry

    def method(self, app: str, method: str) -> MethodSpec:
        """The method's declaration; ContractError (unknown_contract or
        unknown_method) if this software has no such method."""
        return self.registry.method(app, method)

    def check_args(self, app: str, method: str, args: Mapping[str, Any]) -> None:
        """Refuse (bad_argument) arguments the method's declared Struct does not accept,
        naming the argument, before anything is signed."""
        spec = self.method(app, method)
        if spec.args is None:
            return
        try:
            msgspec.convert(dict(args), spec.args)
        except msgspec.ValidationError as exc:
            raise DecodeError(f"{app}.{method}: {exc}", code="bad_argument") from exc

    def build(self, app: str, method: str, args: Mapping[str, Any]) -> SignedTx:
        """The signed call, its time and nonce from the session's clock and nonce
        source (nothing is sent)."""
        self.check_args(app, method, args)
        return call_tx(self.signer, self.client.chain_id(), app, method, dict(args),
                       now_ms=self.clock(), nonce=self.nonces(), ttl_ms=self.ttl_ms)

    @overload
    def call(self, app: str, method: str, args: Mapping[str, Any], *,
             wait: Literal[True] = ..., timeout_ms: int = ...) -> Outcome: ...

    @overload
    def call(self, app: str, method: str, args: Mapping[str, Any], *,
             wait: Literal[False], timeout_ms: int = ...) -> bytes: ...

    def call(self, app: str, method: str, args: Mapping[str, Any], *, wait: bool = True,
             timeout_ms: int = DEFAULT_COMMIT_WAIT_MS) -> Outcome | bytes:
        """Build, sign and submit `app.method(args)`. With `wait` (the default): one
        HTTP round trip, then the verified outcome; without: the transaction id once
        the node has admitted it."""
        trust = self._trust() if wait else None
        tx = self.build(app, method, args)
        if trust is None:
            self.client.submit(tx, wait=False)
            return tx.tx_id
        answer = self.client.submit(tx, wait=True, timeout_ms=timeout_ms, receipt=True)
        return _verified(tx, answer, trust)

    def deposit_file(self, path: str | Path, meta: dict[str, str] | None = None,
                     progress: Progress | None = None, *, amends: int | None = None,
                     write_receipt: bool = True,
                     timeout_ms: int = DEFAULT_COMMIT_WAIT_MS,
                     cosign: Mapping[str, Any] | None = None,
                     public: bool = False) -> DepositOutcome:
        """Hash a file locally, deposit (or amend) its digest in one round trip, verify
        the receipt against the trust file and the file's digest, and (by default)
        write it to `<file>.tlog-proof`. The file itself never leaves here. `cosign`
        (`txbuilder.cosign_args`) names co-signers; `public` opens it to anyone."""
        self._trust()  # before hashing a large file: a waited call needs it
        path = Path(path)
        digest = hash_file(path, progress)
        extra: dict[str, Any] = {**(cosign or {}), **({"public": True} if public else {})}
        if amends is None:
            outcome = self.call(EVIDENCE, "deposit", {**deposit_args(digest, meta), **extra},
                                timeout_ms=timeout_ms)
        else:
            outcome = self.call(EVIDENCE, "amend",
                                {**amend_args(amends, digest, meta), **extra},
                                timeout_ms=timeout_ms)
        with checking(f"the receipt of our deposit (tx {outcome.tx_id.hex()}, log index "
                      f"{outcome.log_index})"):
            proven = deposit_proven(outcome.proven, digest)  # its signatures checked once
        receipt_path = path.with_name(path.name + RECEIPT_SUFFIX) if write_receipt else None
        if receipt_path is not None:
            write_atomically(receipt_path, outcome.receipt)
        return DepositOutcome(path, digest, outcome.tx_id, outcome.log_index, outcome.height,
                              outcome.receipt, receipt_path, proven)

    def sign_deposit(self, of: int, digest: bytes, *,
                     timeout_ms: int = DEFAULT_COMMIT_WAIT_MS) -> Outcome:
        """Co-sign deposit `of`, having checked that its document has `digest`."""
        return self.call(EVIDENCE, "sign", sign_args(of, digest), timeout_ms=timeout_ms)

    def deposit_proof(self, of: int) -> str:
        """The proof set of co-signed deposit `of`: its entry, each signature's entry and
        its record's state proof, against one checkpoint (verified when the client has
        the trust file; `client.deposit_proof.verify_deposit_proof` says what it
        proves)."""
        return deposit_proof(self.client, of)

    def _trust(self) -> Trust:
        if self.client.trust is None:
            raise Rejected("a waited call needs the network's trust file to check its "
                           "receipt: Client(url, trust=...)", code="no_trust")
        return self.client.trust


def deposit_proof(client: Client, of: int) -> str:
    """`Session.deposit_proof` for any reader of the deposit (anonymous for a public
    one): its record names the signatures' entries."""
    record = client.query(EVIDENCE, "deposit", index=of)
    indexes = [of, *(s["index"] for s in (record.get("cosign") or {}).get("signed", []))]
    key = namespaced(EVIDENCE, record_key(of))
    return client.proof_set(indexes[:MAX_PROOF_SET_RECEIPTS], key)


def _verified(tx: SignedTx, answer: dict[str, Any], trust: Trust) -> Outcome:
    """The node's answer to our waited submission, its receipt checked to prove this
    transaction, applied, at the log index the answer names."""
    ours = tx.tx_id.hex()
    with checking(f"the node's answer to tx {ours}"):
        if answer.get("tx_id") != ours:
            raise ProofError(f"it is about transaction {answer.get('tx_id')}")
        log_index, height = int(answer["log_index"]), int(answer["height"])
        receipt = answer.get("receipt")
        if not isinstance(receipt, str):
            raise ProofError("it carries no receipt")
    with checking(f"the receipt of tx {ours} (log index {log_index})"):
        proven = verify_receipt(receipt, trust)
        entry = LogEntry.decode(proven.entry)
        if entry.tx.tx_id != tx.tx_id:
            raise ProofError(f"it is for transaction {entry.tx.tx_id.hex()}, not ours")
        if proven.index != log_index or entry.height != height:
            raise ProofError(f"it is for log index {proven.index} at height "
                             f"{entry.height}, the answer said {log_index} at {height}")
        if not entry.result.ok:
            raise ProofError("it records the call as refused, the answer as applied")
    # The events as the proven entry records them, not as the answer says.
    events = tuple({"type": e.kind, "data": to_json(e.data)} for e in entry.result.events)
    return Outcome(tx.tx_id, log_index, height, events, receipt, entry, proven.signers,
                   proven)
