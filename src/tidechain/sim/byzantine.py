"""Byzantine validators that equivocate: they hold their own key and sign two
different proposals or votes for one slot, each sent to part of the network.

Twins (two replicas running one key) are set up by the world; this module is the
other kind, one replica whose outgoing messages are split and mutated here."""

from __future__ import annotations

import random
from collections.abc import Callable

from tidechain.consensus import Message, Proposal, ValidatorSet, Vote
from tidechain.consensus.messages import BlockLike, sign_proposal, sign_vote
from tidechain.core.crypto import SigningKey
from tidechain.sim.blocks import SimBlock, make_block

_MAX_KNOWN_BLOCKS = 64  # recent blocks to vote for instead of the honest choice


class Equivocator:
    """Turns one outgoing message into two conflicting ones for a random split of the
    recipients. The conflicting vote goes to another known block (or nil, or a block
    nobody has); a conflicting proposal carries a fresh block, possibly invalid."""

    def __init__(self, *, name: str, key: SigningKey, validators: ValidatorSet,
                 rng: random.Random, chance: float, invalid_chance: float,
                 mark_invalid: Callable[[bytes], None]) -> None:
        self._name = name
        self._key = key
        self._digest = validators.digest
        self._rng = rng
        self._chance = chance
        self._invalid_chance = invalid_chance
        self._mark_invalid = mark_invalid
        self._known: dict[bytes, BlockLike] = {}  # insertion-ordered: deterministic

    def use_set(self, validators: ValidatorSet) -> None:
        """Sign for another validator set from now on (a reconfiguration, ADR 0011)."""
        self._digest = validators.digest

    def learn(self, block: BlockLike) -> None:
        """Remember a block seen in a proposal, to vote for it out of turn."""
        if block.block_hash not in self._known:
            self._known[block.block_hash] = block
            while len(self._known) > _MAX_KNOWN_BLOCKS:
                del self._known[next(iter(self._known))]

    def split(self, message: Message, peers: list[str], *, only_to: list[str] | None = None
              ) -> list[tuple[list[str], Message]]:
        """Who gets what. Messages signed by others (relays) pass unchanged.
        `only_to`: split for sure, the real message to those peers only, the
        conflicting one to the rest (the world's split traps)."""
        if (not peers or _signer(message) != self._name
                or (only_to is None and self._rng.random() >= self._chance)):
            return [(peers, message)]
        other = self._conflicting(message)
        if only_to is not None:
            return [([p for p in peers if p in only_to], message),
                    ([p for p in peers if p not in only_to], other)]
        shuffled = list(peers)
        self._rng.shuffle(shuffled)
        cut = self._rng.randint(0, len(shuffled))
        return [(shuffled[:cut], message), (shuffled[cut:], other)]

    def _conflicting(self, message: Message) -> Message:
        if isinstance(message, Proposal):
            block = self.fresh_block(message.height, b"conflict")
            pol_round = self._rng.choice((-1, message.pol_round))
            return sign_proposal(self._key, self._name, self._digest, message.height,
                                 message.round, block, pol_round)
        target = self._other_target(message)
        return sign_vote(self._key, self._name, self._digest, message.kind, message.height,
                         message.round, target)

    def _other_target(self, vote: Vote) -> BlockLike | None:
        """A block (or nil) other than the one `vote` is for."""
        same_height = [b for b in self._known.values()
                       if b.height == vote.height and b.block_hash != vote.block_hash]
        choices: list[BlockLike | None] = [*same_height]
        if vote.block_hash is not None:
            choices.append(None)
        choices.append(self.fresh_block(vote.height, b"phantom"))
        return self._rng.choice(choices)

    def fresh_block(self, height: int, why: bytes) -> SimBlock:
        """A new block, invalid for every honest validator with `invalid_chance`."""
        block = make_block(height, self._name.encode() + why + self._rng.randbytes(8))
        if self._rng.random() < self._invalid_chance:
            self._mark_invalid(block.block_hash)
        self.learn(block)
        return block


def _signer(message: Message) -> str:
    return message.proposer if isinstance(message, Proposal) else message.voter
