"""What an in-process `Node` queued for its peers, as the runtime would send it."""

from __future__ import annotations

from tidechain.consensus import Broadcast, SendTo
from tidechain.node.effects import Committed, Effect, Gossip, Reply
from tidechain.node.node import Node
from tidechain.node.wire import TxGossip


def sends_of(effects: list[Effect]) -> list[Broadcast | SendTo]:
    """The messages among `effects`, in order: gossip as one broadcast (first, as the
    runtime sends it), sync replies as sends to their peer."""
    gossip = [tx for e in effects if isinstance(e, Gossip) for tx in e.txs]
    sends: list[Broadcast | SendTo] = [Broadcast(TxGossip(tuple(gossip)))] if gossip else []
    for effect in effects:
        if isinstance(effect, Broadcast | SendTo):
            sends.append(effect)
        elif isinstance(effect, Reply):
            sends.append(SendTo(effect.peer, effect.message))  # type: ignore[arg-type]
    return sends


def take_sends(node: Node) -> list[Broadcast | SendTo]:
    """Take everything `node` queued; return its messages."""
    return sends_of(node.take_effects())


def committed_of(effects: list[Effect]) -> list[Committed]:
    return [e for e in effects if isinstance(e, Committed)]
