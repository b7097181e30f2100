"""Reconfiguration in node-level runs: the validator set changes by governance, as on a
real network (ADR 0008, ADR 0011), during the fault phase.

Three changes, one after the other, each started at a time drawn from the seed: a
spare node (an observer until then) is added; then an honest validator's key is
replaced and another honest validator removed, in either order. Each change is a
`gov.propose` by the organisation's admin and its `gov.vote`, submitted to a node that
is up like any client transaction (and submitted again if it was lost); it applies at
the height governance gives it. The node whose key was replaced is restarted with the
new key once its chain says so (its operator's part), and a removed validator's node
goes on as an observer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidechain.contracts import governance
from tidechain.core.crypto import SigningKey
from tidechain.ledger.types import LogEntry, SignedTx, TxBody
from tidechain.node.node import Node

RETRY_MS = 1_500
"""A governance transaction not committed after this long is submitted again (the node
it went to may have crashed before gossiping it)."""
TX_TTL_MS = 600_000


@dataclass
class Change:
    action: str
    args: dict[str, Any]
    start_ms: int
    proposal: SignedTx | None = None
    proposal_id: int | None = None
    vote: SignedTx | None = None
    sent_ms: int = 0
    applied: bool = False


@dataclass
class Reconfiguration:
    """The plan of one run and how far it got."""

    admin: SigningKey
    chain_id: bytes
    changes: list[Change]
    nonce: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(1 for c in self.changes if c.applied)

    def tick(self, now_ms: int, nodes: list[Node], submit: Callable[[SignedTx], None]) -> None:
        """Move the current change on: propose, vote once the proposal committed, and
        go to the next once the decision applied (as any up node's chain shows)."""
        change = next((c for c in self.changes if not c.applied), None)
        if change is None or now_ms < change.start_ms or not nodes:
            return
        node = max(nodes, key=lambda n: n.chain.height)  # the furthest chain that is up
        if change.proposal_id is None:
            found = _committed(node, change.proposal)
            if found is not None:
                change.proposal_id = found
                self.log.append(f"PROPOSED {change.action} as proposal {found}")
            elif change.proposal is None or now_ms - change.sent_ms >= RETRY_MS:
                change.proposal = self._tx("propose", {"action": change.action,
                                                       "args": change.args,
                                                       "effective_height": 0}, now_ms)
                change.sent_ms = now_ms
                submit(change.proposal)
                return
        if change.proposal_id is None:
            return
        record = governance.get_proposal(node.chain.state, change.proposal_id)
        if record is not None and record["status"] == "applied":
            change.applied = True
            self.log.append(f"APPLIED {change.action} at height {node.chain.height}")
            return
        voted = record is not None and record["status"] != "open"
        if not voted and (change.vote is None or now_ms - change.sent_ms >= RETRY_MS):
            change.vote = self._tx("vote", {"proposal": change.proposal_id, "approve": True},
                                   now_ms)
            change.sent_ms = now_ms
            submit(change.vote)

    def _tx(self, method: str, args: dict[str, Any], now_ms: int) -> SignedTx:
        self.nonce += 1
        body = TxBody(chain_id=self.chain_id, sender=self.admin.public_key,
                      nonce=b"gov" + self.nonce.to_bytes(13, "big"),
                      expires_ms=now_ms + TX_TTL_MS, contract="gov", method=method, args=args)
        return SignedTx.decode(SignedTx.create(body, self.admin).encode())


def plan(rng: random.Random, admin: SigningKey, chain_id: bytes, *, spare: tuple[str, bytes],
         rotate: tuple[str, bytes], remove: str, org: str, start_ms: int, fault_ms: int
         ) -> Reconfiguration:
    """Add `spare` (name, key) first; then replace `rotate`'s key and remove `remove`, in
    an order drawn from the seed; each starts at a drawn time of the fault phase."""
    add = Change("add_validator", {"name": spare[0], "key": spare[1], "org": org,
                                   "address": "127.0.0.1:1", "tls": b""}, 0)
    rotation = Change("replace_validator_key", {"validator": rotate[0], "key": rotate[1]}, 0)
    removal = Change("remove_validator", {"validator": remove}, 0)
    later = [rotation, removal]
    rng.shuffle(later)
    changes = [add, *later]
    # Early in the fault phase, so that the three (one after the other) mostly apply
    # under faults; each waits for the one before.
    times = sorted(start_ms + rng.randint(0, fault_ms // 3) for _ in changes)
    for change, at in zip(changes, times, strict=True):
        change.start_ms = at
    return Reconfiguration(admin, chain_id, changes)


def _committed(node: Node, tx: SignedTx | None) -> int | None:
    """The log index of `tx` if it committed with an ok result on `node`'s chain."""
    if tx is None:
        return None
    found = node.store.entry_by_tx(tx.tx_id)
    if found is None:
        return None
    log_index, _, entry = found
    result = LogEntry.decode(entry).result
    return log_index if result.ok else None
