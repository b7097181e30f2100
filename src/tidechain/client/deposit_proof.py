"""Offline proof of a co-signed deposit's status: a proof set (`core/proofset.py`) and a
trust file, no node.

What `verify_deposit_proof` checks, on top of each receipt's own checks:

1. every receipt carries the same quorum-signed checkpoint;
2. the first is an evidence deposit (or amendment) that names co-signers: its entry's
   result states the slots, the threshold k and the deadline the chain recorded;
3. each further receipt is a successful `evidence.sign` of that deposit and digest,
   validly signed by its sender: a key slot is filled only by that key, an organisation
   slot by a member the chain found in that organisation (the entry's result says so),
   each slot and each signer once, before the deadline;
4. with k of them, the deposit is **effective** at the k-th by log index, and the
   entries alone prove it: each co-signer's own Ed25519 signature is in the log;
5. with fewer, the state proof, when present, tells the rest: the deposit's record at
   a certified block, **pending** if that block is before the deadline, **lapsed** if
   after it (signing closes at the deadline, so the record cannot change after it).

Like `client.verify`, this module never touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidechain.client.state_proof import verify_state_bundle
from tidechain.client.verify import VerifiedDeposit, _step, deposit_proven, load_trust
from tidechain.contracts import evidence
from tidechain.contracts.evidence import cosign
from tidechain.core import cbor
from tidechain.core.errors import ProofError
from tidechain.core.proofset import ProofSet, parse_proof_set
from tidechain.core.receipt import VerifiedReceipt, verify_receipt
from tidechain.core.timefmt import iso_utc
from tidechain.core.trust import Trust
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import LogEntry


@dataclass(frozen=True)
class ProvenSignature:
    slot: int
    signer: str  # Ed25519 public key, hex
    org: str | None  # the organisation the chain found the signer in
    log_index: int
    height: int
    time_ms: int


@dataclass(frozen=True)
class ProvenCosign:
    """What a proof set proves about a co-signed deposit."""

    deposit: VerifiedDeposit
    slots: tuple[cosign.Slot, ...]
    threshold: int
    deadline_ms: int
    signatures: tuple[ProvenSignature, ...]
    status: str  # effective, pending, lapsed; or "pending?" with no state proof
    effective: ProvenSignature | None
    state_height: int | None = None
    state_time_ms: int | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            **self.deposit.to_json(),
            "cosigners": [s.to_cbor() | ({"key": s.key.hex()} if s.key else {})
                          for s in self.slots],
            "threshold": self.threshold,
            "deadline_ms": self.deadline_ms,
            "deadline": iso_utc(self.deadline_ms),
            "signatures": [vars(s) for s in self.signatures],
            "status": self.status,
            "effective_index": None if self.effective is None else self.effective.log_index,
            "effective_time_ms": None if self.effective is None else self.effective.time_ms,
            "state_height": self.state_height,
            "state_time_ms": self.state_time_ms,
            "notes": list(self.notes),
        }


def cosign_terms(entry: LogEntry) -> tuple[tuple[cosign.Slot, ...], int, int] | None:
    """(slots, threshold, deadline) the chain recorded for a deposit entry, or None for
    a deposit without co-signers. From the entry's result: the deadline there is the
    one the contract resolved (the call may have left it to the default)."""
    for event in entry.result.events:
        if event.kind == "deposited" and "slots" in event.data:
            with _step("the deposit's co-signing terms are malformed"):
                slots = cosign.parse_slots(event.data["slots"])
                threshold = cosign.check_threshold(event.data.get("threshold"), slots)
                deadline = event.data.get("deadline")
                if not isinstance(deadline, int) or isinstance(deadline, bool):
                    raise ProofError("no deadline")
            return slots, threshold, deadline
    return None


def verify_proof_set(text: str | bytes, trust: Trust
                     ) -> tuple[ProofSet, list[VerifiedReceipt]]:
    """Each receipt of a proof set verified, all against one checkpoint (its state proof
    is checked by whoever reads it)."""
    with _step("the proof set is malformed"):
        proof_set = parse_proof_set(text)
    proven: list[VerifiedReceipt] = []
    for n, receipt in enumerate(proof_set.receipts):
        with _step(f"receipt {n + 1} of the proof set does not verify"):
            proven.append(verify_receipt(receipt, trust))
    first = proven[0].checkpoint
    for n, p in enumerate(proven[1:], 2):
        if (p.checkpoint.size, p.checkpoint.root) != (first.size, first.root):
            raise ProofError(f"receipt {n} is against another checkpoint (size "
                             f"{p.checkpoint.size}) than the first's ({first.size})")
    return proof_set, proven


def verify_deposit_proof(text: str | bytes, trust_text: str | bytes | Trust,
                         document_digest: bytes | None = None) -> ProvenCosign:
    """Verify a co-signed deposit's proof set offline; raise a Rejected subclass naming
    the failed check."""
    trust = load_trust(trust_text)
    proof_set, proven = verify_proof_set(text, trust)
    deposit = deposit_proven(proven[0], document_digest)
    terms = cosign_terms(LogEntry.decode(proven[0].entry))
    if terms is None:
        raise ProofError("the deposit names no co-signers: its own receipt proves it")
    slots, threshold, deadline = terms
    signatures = _signatures(deposit, slots, deadline, proven[1:])
    ordered = sorted(signatures, key=lambda s: s.log_index)
    if len(ordered) >= threshold:
        return ProvenCosign(deposit, slots, threshold, deadline, tuple(ordered),
                            cosign.EFFECTIVE, ordered[threshold - 1])
    if proof_set.state is None:
        return ProvenCosign(deposit, slots, threshold, deadline, tuple(ordered), "pending?",
                            None, notes=("no state proof: the set proves these signatures, "
                                         "not that there are no others",))
    return _by_state(deposit, slots, threshold, deadline, tuple(ordered), proof_set.state,
                     trust)


def _signatures(deposit: VerifiedDeposit, slots: tuple[cosign.Slot, ...], deadline: int,
                receipts: list[VerifiedReceipt]) -> list[ProvenSignature]:
    found: list[ProvenSignature] = []
    for p in receipts:
        with _step(f"entry {p.index} is not a signature of deposit {deposit.log_index}"):
            entry = LogEntry.decode(p.entry)
            entry.tx.verify_signature()
            found.append(_signature(deposit, slots, deadline, p.index, entry))
    if len({s.slot for s in found}) != len(found):
        raise ProofError("two signatures fill the same slot")
    if len({s.signer for s in found}) != len(found):
        raise ProofError("one signer signed twice")
    return found


def _signature(deposit: VerifiedDeposit, slots: tuple[cosign.Slot, ...], deadline: int,
               index: int, entry: LogEntry) -> ProvenSignature:
    body = entry.tx.body
    if (body.contract, body.method) != (evidence.NAME, "sign") or not entry.result.ok:
        raise ProofError(f"it is a {body.contract}.{body.method} call "
                         f"({'applied' if entry.result.ok else 'refused'})")
    if body.args.get("of") != deposit.log_index or body.args.get("digest") != deposit.digest:
        raise ProofError("it signs another deposit or digest")
    if body.chain_id != deposit.chain_id or not deposit.log_index < index:
        raise ProofError("it is of another chain, or before the deposit")
    if entry.time_ms > deadline:
        raise ProofError("it is after the deadline")
    events = [e for e in entry.result.events if e.kind == "signed"]
    if len(events) != 1 or not isinstance(events[0].data.get("slot"), int):
        raise ProofError("its result names no slot")
    slot, org = events[0].data["slot"], events[0].data.get("org")
    if not 0 <= slot < len(slots):
        raise ProofError(f"slot {slot} is not one of the deposit's {len(slots)}")
    named = slots[slot]
    if named.key is not None and named.key != body.sender:
        raise ProofError(f"slot {slot} names key {named.key.hex()}, not the signer's")
    if named.key is None and org != named.org:
        raise ProofError(f"slot {slot} is for organisation {named.org!r}, the signer is "
                         f"of {org!r}")
    return ProvenSignature(slot, body.sender.hex(), org if isinstance(org, str) else None,
                           index, entry.height, entry.time_ms)


def _by_state(deposit: VerifiedDeposit, slots: tuple[cosign.Slot, ...], threshold: int,
              deadline: int, signatures: tuple[ProvenSignature, ...], bundle: dict[str, Any],
              trust: Trust) -> ProvenCosign:
    with _step("the proof set's state proof does not verify"):
        state = verify_state_bundle(bundle, trust)
    key = namespaced(evidence.NAME, evidence.record_key(deposit.log_index))
    if state.key != key or state.value is None:
        raise ProofError("the state proof is not of this deposit's record")
    record = cbor.decode(state.value)
    if (not isinstance(record, dict) or record.get("digest") != deposit.digest
            or not isinstance(record.get("signed"), list)):
        raise ProofError("the state proof's record is not this co-signed deposit")
    on_record = {(s.get("slot"), s.get("index")) for s in record["signed"]
                 if isinstance(s, dict)}
    if not {(s.slot, s.log_index) for s in signatures} <= on_record:
        raise ProofError("the record does not list the signatures the set proves")
    header_time = state.time_ms
    status = cosign.status_at(threshold, len(record["signed"]), deadline, header_time)
    notes: tuple[str, ...] = ()
    if status == cosign.EFFECTIVE:
        notes = ("effective by the certified record; the set lacks the signatures' entries",)
    return ProvenCosign(deposit, slots, threshold, deadline, signatures, status, None,
                        state.height, header_time, notes)
