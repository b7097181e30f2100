"""Four validators with real ledgers and SQLite stores in one process, exchanging the
real wire encoding through an in-memory router (the TCP/TLS transport is tested on
its own). Shows that the node, not just the consensus core, is ready for n = 3f + 1:
proposals carry their blocks, followers re-execute them, and every node ends with the
same log and a quorum-signed checkpoint that verifies against the trust file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import GENESIS_TIME_MS, genesis, key, tx
from tests.node_effects import take_sends
from tidechain.client.files import trust_file_text
from tidechain.consensus import (
    PREVOTE,
    Broadcast,
    Proposal,
    ProposalValidated,
    SendTo,
    Start,
    Tick,
    ValidateProposal,
    Vote,
)
from tidechain.consensus.messages import sign_proposal
from tidechain.core import cbor
from tidechain.core.checkpoint import verify_checkpoint
from tidechain.core.errors import InvariantViolation, PeerError
from tidechain.core.limits import BLOCK_TIME_DELAY_MS, CLOCK_PRECISION_MS, SYNC_PROBE_MS
from tidechain.core.note import Signer
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger.types import Genesis, SignedTx
from tidechain.node.node import Node
from tidechain.node.wire import (
    HeadRequest,
    SyncBlocks,
    SyncedBlock,
    TxGossip,
    WireBlock,
    encode_message,
)
from tidechain.storage.store import Store

TICK_MS = 10


class Cluster:
    def __init__(self, g: Genesis, root: Path, down: frozenset[int] = frozenset(),
                 **store_options: int) -> None:
        self.genesis = g
        self.nodes = [
            Node(g, Store(root / f"node{i}.sqlite", **store_options),
                 Signer(v.name, key(1000 + i)))
            for i, v in enumerate(g.validators)
        ]
        self.down = down
        self.now_ms = GENESIS_TIME_MS + 1000
        for _, node in self.live():
            node.step(Start(self.now_ms))

    def live(self) -> list[tuple[int, Node]]:
        return [(i, n) for i, n in enumerate(self.nodes) if i not in self.down]

    @staticmethod
    def take_sends(node: Node) -> list[Broadcast | SendTo]:
        """What `node` queued for its peers (gossip, consensus, replies), taken off it."""
        return take_sends(node)

    def targets(self, sender: int, action: Broadcast | SendTo) -> list[int]:
        """The live nodes `action` of node `sender` reaches."""
        if isinstance(action, Broadcast):
            return [j for j, _ in self.live() if j != sender]
        return [j for j, n in self.live() if n.signer.name == action.peer]

    def route(self) -> None:
        """Deliver every queued message until all outboxes are empty."""
        moved = True
        while moved:
            moved = False
            for i, node in self.live():
                for action in self.take_sends(node):
                    moved = True
                    data = encode_message(action.message)
                    for j in self.targets(i, action):
                        self.nodes[j].receive(node.signer.name, data, self.now_ms)

    def run(self, ms: int) -> None:
        for _ in range(ms // TICK_MS):
            self.now_ms += TICK_MS
            for _, node in self.live():
                node.step(Tick(self.now_ms))
                node.poll_sync(self.now_ms)
            self.route()

    def submit(self, txs: list, at: int = 0) -> None:  # type: ignore[type-arg]
        """Clients submit to one node; gossip carries the transactions to the rest."""
        node = self.nodes[at]
        assert node.admit(txs, self.now_ms) == [None] * len(txs)
        node.wake()
        self.route()


@pytest.fixture
def g() -> Genesis:
    return genesis(validators=4)


def test_four_validators_commit_the_same_log_with_quorum_checkpoints(
        g: Genesis, tmp_path: Path) -> None:
    cluster = Cluster(g, tmp_path)
    depositor = key(7)
    for round_ in range(3):
        cluster.submit([tx(g, depositor, nonce=round_ * 100 + i) for i in range(20)],
                       at=round_)
        cluster.run(2_000)
    heads = {(n.chain.height, n.chain.frontier.size, n.chain.frontier.root())
             for n in cluster.nodes}
    assert len(heads) == 1, heads
    (height, size, _), = heads
    assert size == 60 and height >= 3
    trust = parse_trust(trust_file_text(g))
    for node in cluster.nodes:
        checkpoint, signers = verify_checkpoint(node.views.checkpoint(), trust)
        assert checkpoint.size == 60 and len(signers) >= trust.quorum
        assert verify_receipt(node.views.receipt(17), trust).index == 17
    proposers = {cluster.nodes[0].views.block(h)["proposer"] for h in range(1, height + 1)}
    assert len(proposers) > 1  # leadership rotates


def test_three_of_four_keep_committing_and_two_of_four_cannot(
        g: Genesis, tmp_path: Path) -> None:
    three = Cluster(g, tmp_path / "three", down=frozenset({3}))
    three.submit([tx(g, key(7), nonce=i) for i in range(10)])
    three.run(15_000)  # long enough for rounds whose proposer is down to time out
    assert {n.chain.frontier.size for _, n in three.live()} == {10}

    two = Cluster(g, tmp_path / "two", down=frozenset({2, 3}))
    two.submit([tx(g, key(7), nonce=i) for i in range(10)])
    two.run(15_000)
    assert {n.chain.frontier.size for _, n in two.live()} == {0}


def test_garbage_from_a_peer_is_a_peer_error_naming_it(g: Genesis, tmp_path: Path) -> None:
    node = Cluster(g, tmp_path).nodes[0]
    for junk in (b"", b"\xff" * 10, b"\xa1atdvote"):
        with pytest.raises(PeerError) as exc:
            node.receive("test-net/node2", junk, GENESIS_TIME_MS)
        assert exc.value.peer == "test-net/node2"


def test_gossiped_transactions_are_signature_checked(g: Genesis, tmp_path: Path) -> None:
    node = Cluster(g, tmp_path).nodes[0]
    good = tx(g, key(7), nonce=1)
    forged = type(good)(good.body_bytes, bytes(64), good.body, good.tx_id)
    with pytest.raises(PeerError) as exc:
        node.receive("test-net/node1", encode_message(TxGossip((good, forged))),
                     GENESIS_TIME_MS)
    assert exc.value.peer == "test-net/node1" and len(node.mempool) == 0


def test_a_validator_that_was_down_catches_up_by_block_sync(g: Genesis, tmp_path: Path) -> None:
    cluster = Cluster(g, tmp_path, down=frozenset({3}))
    for i in range(4):  # several heights pass while node3 is down
        cluster.submit([tx(g, key(7), nonce=i * 10 + j) for j in range(5)], at=i % 3)
        cluster.run(12_000)
    behind = cluster.nodes[3]
    assert behind.chain.height == 0 and cluster.nodes[0].chain.height >= 4
    cluster.down = frozenset()
    behind.step(Start(cluster.now_ms))
    cluster.submit([tx(g, key(7), nonce=999)], at=0)  # new traffic shows it is behind
    cluster.run(20_000)
    heads = {(n.chain.height, n.chain.frontier.root()) for n in cluster.nodes}
    assert len(heads) == 1, heads
    assert behind.chain.frontier.size == 21


def test_a_validator_restarted_in_an_idle_network_still_catches_up(
        g: Genesis, tmp_path: Path) -> None:
    cluster = Cluster(g, tmp_path, down=frozenset({3}))
    for i in range(3):
        cluster.submit([tx(g, key(7), nonce=i * 10 + j) for j in range(4)], at=i % 3)
        cluster.run(8_000)
    leader_height = cluster.nodes[0].chain.height
    # node3 comes back with an empty store (a new or wiped validator) and nobody sends
    # it anything: no transactions, no consensus messages.
    behind = Node(g, Store(tmp_path / "node3-new.sqlite"), cluster.nodes[3].signer)
    cluster.nodes[3] = behind
    cluster.down = frozenset()
    behind.step(Start(cluster.now_ms))
    assert behind.sync_status()["behind_blocks"] == 0  # it knows nothing yet
    cluster.run(5_000)
    assert (behind.chain.height, behind.chain.frontier.root()) == (
        leader_height, cluster.nodes[0].chain.frontier.root())
    assert behind.sync_status() == {"peer_height": leader_height, "behind_blocks": 0,
                                    "catching_up": False, "mode": "consensus"}


def test_a_peer_that_claims_a_higher_head_is_shown_not_trusted(
        g: Genesis, tmp_path: Path) -> None:
    node = Cluster(g, tmp_path).nodes[0]
    node.receive("test-net/node1", encode_message(SyncBlocks((), head=500)), GENESIS_TIME_MS)
    assert node.chain.height == 0
    assert node.sync_status() == {"peer_height": 500, "behind_blocks": 500,
                                  "catching_up": True, "mode": "consensus"}
    # One peer's word is not enough to state-sync (f + 1 are needed, ADR 0009): the
    # node asks the other peers for their heads before fetching anything.
    assert [(a.peer, type(a.message).__name__) for a in take_sends(node)
            if isinstance(a, SendTo)] == [
        ("test-net/node2", "HeadRequest"), ("test-net/node3", "HeadRequest")]
    # Their answers are head answers too: within SYNC_PROBE_MS they ask nothing more
    # (each answered with a round of requests grew without bound; found by the
    # node-level simulator).
    node.receive("test-net/node1", encode_message(SyncBlocks((), head=500)),
                 GENESIS_TIME_MS + 10)
    assert not [a for a in take_sends(node) if isinstance(a.message, HeadRequest)]
    node.receive("test-net/node1", encode_message(SyncBlocks((), head=501)),
                 GENESIS_TIME_MS + SYNC_PROBE_MS)
    assert [a.peer for a in take_sends(node) if isinstance(a.message, HeadRequest)] == [
        "test-net/node2", "test-net/node3"]


def test_synced_blocks_need_a_valid_certificate(g: Genesis, tmp_path: Path) -> None:
    cluster = Cluster(g, tmp_path, down=frozenset({3}))
    cluster.submit([tx(g, key(7), nonce=i) for i in range(3)])
    cluster.run(3_000)
    cluster.submit([tx(g, key(7), nonce=10 + i) for i in range(3)])
    cluster.run(3_000)
    source = cluster.nodes[0].store
    first, second = source.block(1), source.block(2)
    txs = tuple(SignedTx.from_cbor(t) for t in cbor.decode(first.txs))
    behind = cluster.nodes[3]
    forged = SyncBlocks((SyncedBlock(first.header, txs, second.certificate),))
    with pytest.raises(PeerError, match="certificate"):
        behind.receive("test-net/node0", encode_message(forged), cluster.now_ms)
    assert behind.chain.height == 0
    genuine = SyncBlocks((SyncedBlock(first.header, txs, first.certificate),))
    behind.receive("test-net/node0", encode_message(genuine), cluster.now_ms)
    assert behind.chain.height == 1


@pytest.mark.parametrize(("offset_ms", "timely"), [
    (0, True),
    (CLOCK_PRECISION_MS, True),
    (CLOCK_PRECISION_MS + 1, False),  # dated ahead of this validator's clock
    (-(CLOCK_PRECISION_MS + BLOCK_TIME_DELAY_MS), True),
    (-(CLOCK_PRECISION_MS + BLOCK_TIME_DELAY_MS) - 1, False),  # too old for round 0
])
def test_a_validator_prevotes_only_a_block_dated_near_its_own_clock(
        g: Genesis, tmp_path: Path, offset_ms: int, timely: bool) -> None:
    cluster = Cluster(g, tmp_path)
    cluster.now_ms += 10_000  # well after genesis, so a block may be dated in the past
    names = [n.signer.name for n in cluster.nodes]
    proposer = cluster.nodes[names.index(cluster.nodes[0].validators.proposer(1, 0).name)]
    voter = cluster.nodes[(names.index(proposer.signer.name) + 1) % 4]
    prepared = proposer.chain.prepare([tx(g, key(7), nonce=1)], cluster.now_ms + offset_ms,
                                      proposer.signer.name)
    block = WireBlock(prepared.header, prepared.txs, g.origin)
    proposal = sign_proposal(proposer.signer.key, proposer.signer.name,
                             voter.validators.digest, 1, 0, block, -1)
    voter.receive(proposer.signer.name, encode_message(proposal), cluster.now_ms)
    prevotes = [a.message for a in take_sends(voter) if isinstance(a, Broadcast)
                and isinstance(a.message, Vote) and a.message.kind is PREVOTE]
    assert [v.block_hash for v in prevotes] == [block.block_hash if timely else None]


def test_a_block_re_proposed_with_a_proof_of_lock_by_another_validator_is_valid(
        g: Genesis, tmp_path: Path) -> None:
    # Found by the kill loop: a validator that restarted (so never saw the block) must
    # accept a locked block that a later round's proposer carries, or it prevotes nil
    # forever and, with one validator down, the height never commits.
    cluster = Cluster(g, tmp_path)
    builder, carrier, voter = cluster.nodes[1], cluster.nodes[2], cluster.nodes[3]
    prepared = builder.chain.prepare([tx(g, key(7), nonce=1)], cluster.now_ms,
                                     builder.signer.name)
    block = WireBlock(prepared.header, prepared.txs, g.origin)
    digest = voter.validators.digest
    carried = sign_proposal(carrier.signer.key, carrier.signer.name, digest, 1, 1, block, 0)
    assert voter.core._validate(carried)  # re-proposal: built by node1, carried by node2
    fresh = sign_proposal(carrier.signer.key, carrier.signer.name, digest, 1, 1, block, -1)
    other = Cluster(g, tmp_path / "other").nodes[3]
    # A new block must name its own proposer: a verdict on that proposal (refused as
    # not timely), not on the block, which stays valid for a re-proposal (issue 12).
    assert not other.core._built_by_proposer(fresh) and other.core._validate(fresh)
    assert other.core._built_by_proposer(carried)


def test_a_late_new_proposal_is_refused_as_untimely_but_its_block_stays_valid(
        g: Genesis, tmp_path: Path) -> None:
    """Issue 12's stall: the shell answered "invalid" for a block it only found late,
    the replica cached that per block, and the same block re-proposed with its
    proof-of-lock got nil prevotes from that validator forever. The shell now says
    which verdict is which: the block is valid; this new proposal was not timely."""
    cluster = Cluster(g, tmp_path)
    builder, voter = cluster.nodes[1], cluster.nodes[3]
    prepared = builder.chain.prepare([tx(g, key(7), nonce=1)], cluster.now_ms,
                                     builder.signer.name)
    block = WireBlock(prepared.header, prepared.txs, g.origin)
    digest = voter.validators.digest
    late = sign_proposal(builder.signer.key, builder.signer.name, digest, 1, 0, block, -1)
    voter.step(Tick(cluster.now_ms + 20_000))  # the voter sees it 20 s after it was built
    answer = voter.core._execute(ValidateProposal(late))
    assert answer == ProposalValidated(late, True, timely=False)
    relayed = sign_proposal(builder.signer.key, builder.signer.name, digest, 1, 2, block, 0)
    assert voter.core._execute(ValidateProposal(relayed)) == ProposalValidated(relayed, True)


def one_committed(g: Genesis, tmp_path: Path, **store_options: int
                  ) -> tuple[Cluster, SignedTx]:
    """Four validators that have committed one transaction, and that transaction."""
    cluster = Cluster(g, tmp_path, **store_options)
    committed = tx(g, key(7), nonce=1)
    cluster.submit([committed])
    cluster.run(2_000)
    assert {n.chain.frontier.size for n in cluster.nodes} == {1}
    return cluster, committed


def next_block_proposal(builder: Node, voter: Node, txs: list[SignedTx], time_ms: int) -> Proposal:
    """`builder`'s round-0 proposal of `txs` as the block after the voter's head."""
    prepared = builder.chain.prepare(txs, time_ms, builder.signer.name)
    block = WireBlock(prepared.header, prepared.txs, builder.genesis.origin)
    return sign_proposal(builder.signer.key, builder.signer.name, voter.validators.digest,
                         voter.chain.height + 1, 0, block, -1)


def test_a_replayed_transaction_is_refused_and_a_pending_one_accepted_in_a_block(
        g: Genesis, tmp_path: Path) -> None:
    """A block's transactions pending in a validator's mempool are not looked up in its
    store again (`NodeCore._committed_unless_pending`): a pending transaction is not
    committed. One that is not pending still is looked up, so a replay is refused."""
    cluster, replayed = one_committed(g, tmp_path)
    builder, voter = cluster.nodes[1], cluster.nodes[3]
    assert not voter.core._validate(
        next_block_proposal(builder, voter, [replayed], cluster.now_ms))
    fresh = tx(g, key(7), nonce=2)
    assert voter.admit([fresh], cluster.now_ms) == [None]  # pending on the voter alone
    proposal = next_block_proposal(builder, voter, [fresh], cluster.now_ms)
    assert fresh.tx_id in voter.mempool and voter.core._validate(proposal)


@pytest.mark.parametrize(("tx_id_flush", "refusal"), [
    (100_000, r"is committed already \(held"),  # the store holds the id in memory
    (1, r"UNIQUE constraint failed: tx_ids\.tx_id"),  # it wrote the id into tx_ids
])
def test_a_committed_transaction_back_in_every_mempool_stops_the_nodes_not_the_chain(
        g: Genesis, tmp_path: Path, tx_id_flush: int, refusal: str) -> None:
    """The net under that shortcut: if the invariant broke and a committed transaction
    were pending on every validator, the block would be built and validated, and its
    write refused by the store's one entry per transaction id (ADR 0024), which stops
    the node (`Node._write`) rather than commit the transaction twice."""
    cluster, replayed = one_committed(g, tmp_path, tx_id_flush=tx_id_flush)
    heads = {n.store.head().header.height for n in cluster.nodes}  # type: ignore[union-attr]
    for node in cluster.nodes:
        node.mempool.add(replayed)  # what admission and every commit keep from happening
        node.wake()
    with pytest.raises(InvariantViolation, match=refusal):
        cluster.run(2_000)
    for node in cluster.nodes:  # the stores hold the block before, and the entry once
        assert {node.store.head().header.height} == heads  # type: ignore[union-attr]
        assert node.store.entry_by_tx(replayed.tx_id)[0] == 0  # type: ignore[index]
