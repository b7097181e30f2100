"""Byzantine validators of node-level runs: a shipped node whose signed consensus
messages leave twice, as two conflicting versions, each to part of the network.

The node itself runs unchanged (it builds, validates and commits as any node does);
only what it signs is doubled on the way out. The conflicting vote is for another
block seen at that height, for nil, or for a block nobody has; the conflicting
proposal carries another block built on the same head, valid (another choice of
transactions and time) or, by chance, one that fails re-execution, or an earlier
round's block with the prevote quorum it got then: a re-proposal with a proof-of-lock
round below what some honest validators are locked at, sent with its quorum (a
validator locked at a later round must refuse it, line 28 of the paper).
"""

from __future__ import annotations

import dataclasses
import random

from tidechain.consensus import Proposal, Vote, VoteKind
from tidechain.consensus.messages import BlockLike, Message, sign_proposal, sign_vote
from tidechain.core.crypto import sha256
from tidechain.node.node import Node
from tidechain.node.wire import WireBlock
from tidechain.sim.blocks import make_block

_MAX_KNOWN_BLOCKS = 64  # blocks seen in proposals, to vote for out of turn
_MAX_PREVOTE_SLOTS = 256  # (height, round, block) prevote tallies kept, oldest dropped


class NodeEquivocator:
    """Splits the messages one Byzantine node signs. `chance`: how often a message is
    split; `invalid_chance`: how often a conflicting proposal's block is invalid."""

    def __init__(self, name: str, rng: random.Random, chance: float,
                 invalid_chance: float) -> None:
        self.name = name
        self._rng = rng
        self._chance = chance
        self._invalid_chance = invalid_chance
        self._known: dict[bytes, BlockLike] = {}  # insertion-ordered: deterministic
        # Prevotes seen, by (height, round, block hash), voter -> vote: its polkas.
        self._prevotes: dict[tuple[int, int, bytes], dict[str, Vote]] = {}
        self.split_count = 0
        self.old_polkas_proposed = 0

    def observe(self, message: Message) -> None:
        """A message this node received or signed: blocks and prevote quorums."""
        if isinstance(message, Proposal):
            self.learn(message.block)
        elif message.kind is VoteKind.PREVOTE and message.block_hash is not None:
            slot = (message.height, message.round, message.block_hash)
            self._prevotes.setdefault(slot, {})[message.voter] = message
            while len(self._prevotes) > _MAX_PREVOTE_SLOTS:
                del self._prevotes[next(iter(self._prevotes))]

    def learn(self, block: BlockLike) -> None:
        if block.block_hash not in self._known:
            self._known[block.block_hash] = block
            while len(self._known) > _MAX_KNOWN_BLOCKS:
                del self._known[next(iter(self._known))]

    def split(self, node: Node, message: Message, peers: list[str],
              only_to: list[str] | None = None) -> list[tuple[list[str], Message]]:
        """Who gets what; messages signed by others (relays) pass unchanged. With
        `only_to`, the real message goes to those peers only and the conflicting one to
        the rest (steering)."""
        self.observe(message)
        signer = message.proposer if isinstance(message, Proposal) else message.voter
        if (not peers or signer != self.name or message.height != node.chain.height + 1
                or (only_to is None and self._rng.random() >= self._chance)):
            return [(peers, message)]
        polka: list[Vote] = []
        if isinstance(message, Proposal) and self._rng.random() < 0.5:
            other, polka = self._old_polka(node, message)
        else:
            other = self._conflicting(node, message)
        if other is None:
            return [(peers, message)]
        self.split_count += 1
        if only_to is not None:
            mine, theirs = ([p for p in peers if p in only_to],
                            [p for p in peers if p not in only_to])
        else:
            shuffled = list(peers)
            self._rng.shuffle(shuffled)
            cut = self._rng.randint(0, len(shuffled))
            mine, theirs = shuffled[:cut], shuffled[cut:]
        return [(mine, message), (theirs, other), *((theirs, vote) for vote in polka)]

    def _old_polka(self, node: Node, proposal: Proposal) -> tuple[Message | None, list[Vote]]:
        """An earlier round's block with a prevote quorum this node saw, re-proposed
        with that round as its proof-of-lock round, and the quorum to relay."""
        quorum = node.validators.quorum
        candidates = [(round, block_hash, votes)
                      for (height, round, block_hash), votes in self._prevotes.items()
                      if height == proposal.height and round < proposal.round
                      and block_hash != proposal.block_hash and len(votes) >= quorum
                      and block_hash in self._known]
        if not candidates:
            return None, []
        round, block_hash, votes = self._rng.choice(candidates)
        self.old_polkas_proposed += 1
        other = sign_proposal(node.signer.key, self.name, node.validators.digest,
                              proposal.height, proposal.round, self._known[block_hash], round)
        return other, list(votes.values())

    def _conflicting(self, node: Node, message: Message) -> Message | None:
        key = node.signer.key
        digest = node.validators.digest
        if isinstance(message, Proposal):
            block = self._other_block(node, message)
            if block is None:
                return None
            pol_round = self._rng.choice((-1, message.pol_round))
            return sign_proposal(key, self.name, digest, message.height, message.round,
                                 block, pol_round)
        return sign_vote(key, self.name, digest, message.kind, message.height, message.round,
                         self._other_target(message))

    def _other_block(self, node: Node, proposal: Proposal) -> WireBlock | None:
        """Another block at the proposal's height, on this node's head."""
        block = proposal.block
        if not isinstance(block, WireBlock):
            return None
        txs = [tx for tx in block.txs if self._rng.random() < 0.5]
        time_ms = block.header.time_ms + self._rng.randint(1, 50)
        prepared = node.chain.prepare(txs, time_ms, self.name)
        header = prepared.header
        if self._rng.random() < self._invalid_chance:
            # A state root nobody gets by re-executing: every honest validator says no.
            header = dataclasses.replace(header, state_root=sha256(header.state_root))
        other = WireBlock(header, prepared.txs, block.origin)
        self.learn(other)
        return other

    def _other_target(self, vote: Vote) -> BlockLike | None:
        """A block (or nil) other than the one `vote` is for."""
        choices: list[BlockLike | None] = [
            b for b in self._known.values()
            if b.height == vote.height and b.block_hash != vote.block_hash]
        if vote.block_hash is not None:
            choices.append(None)
        choices.append(make_block(vote.height, self.name.encode() + self._rng.randbytes(8)))
        return self._rng.choice(choices)
