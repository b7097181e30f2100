"""The asyncio shell around a `Node`: the clock, the tick loop, commit waiters, and
signature checks off the event loop.

Everything that waits has a timeout; everything that queues has a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from tidechain.consensus import Broadcast, SendTo, Start, Tick
from tidechain.contracts import members
from tidechain.core.crypto import sha256
from tidechain.core.errors import Busy, NotFound, Rejected, TooLarge
from tidechain.core.limits import (
    COMMIT_WAIT_MAX_MS,
    MAX_SUBMIT_BATCH,
    MAX_VALIDATORS,
    MAX_WAITERS,
    TICK_MS,
    VERIFY_THREADS,
)
from tidechain.ledger import validators as validator_sets
from tidechain.ledger.types import LogEntry, SignedTx
from tidechain.node.effects import CheckpointCommitted, Committed, Gossip, Reply
from tidechain.node.metrics import NodeMetrics
from tidechain.node.node import Node
from tidechain.node.peers import PeerNetwork
from tidechain.node.tls import TlsError, admission_refusal, check_node_name
from tidechain.node.wire import SyncBlocks, TxGossip, encode_message

log = logging.getLogger("tidechain.node")

HeadListener = Callable[[int], None]
"""Told the new head height whenever the head moved (consensus, block sync or state
sync), right after the blocks are durable: e.g. the API's event streams. Called on the
consensus path: it must only take note (wake a task) and never raise."""
StopListener = Callable[[], None]
"""Told once when the runtime stops (`stop()`, or `run` ending on an error): e.g. to
end the API's event streams, which would otherwise hold the HTTP server open. Must not
raise."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Network(Protocol):
    """What the runtime needs of the peer transport (`node.peers.PeerNetwork`)."""

    def send(self, peer: str, payload: bytes) -> bool: ...
    def broadcast(self, payload: bytes) -> set[str]: ...


class NodeRuntime:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._network: Network | None = None  # set by `serve` when the node has peers
        self._chain_peers: ChainPeers | None = None
        self.chain_cas = ChainCas(node)
        """The organisation CAs on chain, for every TLS context that trusts them."""
        # Transport names are node names ("node1"); consensus names are key names
        # ("acme-net/node1").
        self._prefix = node.genesis.name + "/"
        self._waiters: dict[bytes, list[asyncio.Future[Committed]]] = {}
        self._waiter_count = 0
        self._verify_pool = ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="verify")
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # set when transactions were admitted
        self.metrics = NodeMetrics(max_timed=node.mempool.max_txs)
        self._head_listeners: list[HeadListener] = []
        self._stop_listeners: list[StopListener] = []
        self._head_told = node.chain.height  # the height head listeners last heard
        self._verifying = 0  # transactions on (or queued for) the verify threads
        self.last_tick_s = time.monotonic()
        """When the consensus loop last turned (monotonic clock): /healthz."""

    @property
    def network(self) -> Network | None:
        return self._network

    @network.setter
    def network(self, network: Network | None) -> None:
        """Set by `serve` before the transport starts: a `PeerNetwork` then follows the
        chain's peers and admits TLS peers by the chain from its first handshake."""
        self._network = network
        self._chain_peers = (ChainPeers(self.node, network, self.chain_cas)
                             if isinstance(network, PeerNetwork) else None)

    # --- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        """Drive consensus until `stop()`. Consensus steps run here and only here, so
        an exception in one (a broken invariant, a failed commit) ends `run` and the
        process, instead of being logged by a callback while the node limps on."""
        try:
            self.node.step(Start(now_ms()))
            self._deliver()
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_MS / 1000)
                if self._wake.is_set():
                    self._wake.clear()
                    self.node.wake()
                now = now_ms()
                self.last_tick_s = time.monotonic()
                self.node.step(Tick(now))
                self.node.poll_sync(now)
                self._deliver()
        finally:
            self._stopping.set()  # also when a step raised: nothing new starts
            self._tell_stop()
            self._fail_waiters()
            self._verify_pool.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._tell_stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def verify_backlog(self) -> int:
        """Transactions waiting for, or having, their signatures checked on the verify
        threads (client submissions and peers' gossip)."""
        return self._verifying

    def on_head(self, listener: HeadListener) -> None:
        self._head_listeners.append(listener)

    def on_stop(self, listener: StopListener) -> None:
        """`listener` runs once when the runtime stops (at once if it has stopped)."""
        if self._stopping.is_set():
            listener()
        else:
            self._stop_listeners.append(listener)

    def _tell_stop(self) -> None:
        listeners, self._stop_listeners = self._stop_listeners, []
        for listener in listeners:
            listener()

    def _check_running(self) -> None:
        if self._stopping.is_set():
            raise Busy("the node is shutting down; try another node or later", retry_after_s=5)

    def _fail_waiters(self) -> None:
        stopping = Busy("the node stopped before the transaction committed; it may still "
                        "commit: ask for it after the node restarts", retry_after_s=5)
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(stopping)

    # --- submit ---------------------------------------------------------------------
    async def submit(self, raw: bytes, *, wait: bool, timeout_ms: int) -> Committed | bytes:
        """Admit one encoded transaction. Returns its id, or with `wait` the commit
        outcome. Raises a Rejected subclass for bad input, Busy for back-pressure."""
        self._check_running()
        try:
            tx = SignedTx.decode(raw)
        except Rejected as exc:
            self.metrics.note_rejected(exc)
            raise
        future = self._register(tx.tx_id) if wait else None  # before it can commit
        (rejection,) = await self._check_and_admit([tx])
        if rejection is not None:
            if future is not None:
                self._unregister(tx.tx_id, future)
            raise rejection
        if future is None:
            return tx.tx_id
        return await self._await(tx.tx_id, future, timeout_ms)

    async def submit_batch(self, raws: list[bytes]) -> list[bytes | Rejected]:
        """Admit many transactions; each gets its id or its own rejection."""
        self._check_running()
        if len(raws) > MAX_SUBMIT_BATCH:
            raise TooLarge(f"batch of {len(raws)} exceeds {MAX_SUBMIT_BATCH}")
        decoded: list[SignedTx | Rejected] = []
        for raw in raws:
            try:
                decoded.append(SignedTx.decode(raw))
            except Rejected as exc:
                self.metrics.note_rejected(exc)
                decoded.append(exc)
        txs = [d for d in decoded if isinstance(d, SignedTx)]
        outcomes = iter(await self._check_and_admit(txs))  # one per `txs`, in order
        out: list[bytes | Rejected] = []
        for item in decoded:
            if isinstance(item, Rejected):
                out.append(item)
            else:
                failure = next(outcomes)
                out.append(item.tx_id if failure is None else failure)
        return out

    async def _check_and_admit(self, txs: list[SignedTx]) -> list[Rejected | None]:
        """Verify signatures on the verify threads, admit the good ones to the mempool,
        and wake consensus (`run` builds the block after this answer)."""
        loop = asyncio.get_running_loop()
        parts = [txs[i::VERIFY_THREADS] for i in range(VERIFY_THREADS)]
        self._verifying += len(txs)
        try:
            checks = await asyncio.gather(
                *(loop.run_in_executor(self._verify_pool, _verify_all, part, _never)
                  for part in parts if part)
            )
        finally:
            self._verifying -= len(txs)
        bad: dict[bytes, Rejected] = {}
        for result in checks:
            bad.update(result)
        good = [tx for tx in txs if tx.tx_id not in bad]
        admitted = iter(self.node.admit(good, now_ms()))  # one answer per `good`, in order
        outcomes = [bad[tx.tx_id] if tx.tx_id in bad else next(admitted) for tx in txs]
        self.metrics.note_admitted(
            [tx.tx_id for tx, outcome in zip(txs, outcomes, strict=True) if outcome is None])
        for outcome in outcomes:
            if outcome is not None:
                self.metrics.note_rejected(outcome)
        self._wake.set()
        return outcomes

    async def wait_for(self, tx_id: bytes, timeout_ms: int) -> Committed:
        """Wait until a submitted transaction commits (or is dropped)."""
        found = self.node.store.entry_by_tx(tx_id)
        if found is not None:
            entry = LogEntry.decode(found[2])
            return Committed(tx_id, found[0], found[1], entry.result)
        dropped = self.node.dropped.get(tx_id)
        if dropped is not None:
            return Committed(tx_id, None, None, None, dropped)
        if tx_id not in self.node.mempool:
            raise NotFound(f"transaction {tx_id.hex()} is neither pending nor committed")
        self._check_running()
        future = self._register(tx_id)
        return await self._await(tx_id, future, timeout_ms)

    # --- waiters ---------------------------------------------------------------------
    def _register(self, tx_id: bytes) -> asyncio.Future[Committed]:
        if self._waiter_count >= MAX_WAITERS:
            raise Busy("too many submitters waiting for commits; try later")
        future: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_id, []).append(future)
        self._waiter_count += 1
        return future

    def _unregister(self, tx_id: bytes, future: asyncio.Future[Committed]) -> None:
        futures = self._waiters.get(tx_id, [])
        if future in futures:
            futures.remove(future)
            self._waiter_count -= 1
        if not futures:
            self._waiters.pop(tx_id, None)

    async def _await(
        self, tx_id: bytes, future: asyncio.Future[Committed], timeout_ms: int
    ) -> Committed:
        timeout_ms = min(timeout_ms, COMMIT_WAIT_MAX_MS)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_ms / 1000)
        except TimeoutError:
            raise Rejected(
                f"not committed within {timeout_ms} ms; it may still commit: "
                f"ask for transaction {tx_id.hex()}", code="timeout") from None
        finally:
            self._unregister(tx_id, future)

    def on_peer_message(self, sender: str, payload: bytes) -> None:
        """From the transport. A PeerError propagates: the transport disconnects the
        sender and logs it by name. Gossiped transactions are signature-checked on the
        verify threads, off the event loop that drives consensus."""
        peer = self._prefix + sender
        message = self.node.decode_peer(peer, payload)
        if isinstance(message, TxGossip):
            if self._stopping.is_set():
                return  # shutting down: the verify threads are going away
            job = asyncio.get_running_loop().run_in_executor(
                self._verify_pool, _verify_all, list(message.txs), self.node.seen.is_verified)
            self._verifying += len(message.txs)
            job.add_done_callback(lambda done: self._admit_gossip(peer, message, done))
            return
        if isinstance(message, SyncBlocks):
            # Ask for the next batch first, so it travels while this one is applied.
            self.node.prefetch_sync(peer, message, now_ms())
            self._deliver()
        self.node.handle_peer(peer, message, now_ms())
        self._deliver()

    def _admit_gossip(self, peer: str, gossip: TxGossip,
                      job: asyncio.Future[dict[bytes, Rejected]]) -> None:
        self._verifying -= len(gossip.txs)
        if job.cancelled() or self._stopping.is_set():
            return
        bad = job.result()
        if bad:
            log.warning("peer %s gossiped %d transaction(s) with bad signatures; dropped",
                        peer, len(bad))
        good = tuple(tx for tx in gossip.txs if tx.tx_id not in bad)
        self.node.seen.remember(good, verified=True)
        self.node.handle_peer(peer, TxGossip(good), now_ms())
        self._deliver()

    def _deliver(self) -> None:
        """Carry out what the node queued, in order: wake submitters whose transactions
        committed or were dropped, tell head listeners of committed checkpoints, and
        send messages to peers (or drop them: a network of one has no peers)."""
        gossip: list[SignedTx] = []
        sends: list[tuple[str | None, bytes]] = []  # None: to every peer
        head: int | None = None
        committed: list[bytes] = []
        waiters = self._waiters
        for effect in self.node.take_effects():
            if isinstance(effect, Committed):
                if effect.log_index is None:
                    self.metrics.note_dropped(effect.tx_id, effect.rejection)
                else:
                    committed.append(effect.tx_id)
                if effect.tx_id in waiters:
                    self._settle(effect)
            elif isinstance(effect, CheckpointCommitted):
                head = effect.height
            elif isinstance(effect, Gossip):
                gossip.extend(effect.txs)
            elif isinstance(effect, Broadcast):
                sends.append((None, encode_message(effect.message)))
            elif isinstance(effect, SendTo | Reply):
                sends.append((effect.peer, encode_message(effect.message)))
        if committed:
            # A block's worth at once: one counter increment, not a locked one per tx.
            self.metrics.note_committed(committed)
        if head is not None:
            self.chain_cas.refresh()  # new organisation CAs to the peer and API contexts
            if self._chain_peers is not None:
                self._chain_peers.refresh()  # before sending: a new validator gets its votes
        network = self.network
        if network is not None:
            if gossip:
                network.broadcast(encode_message(TxGossip(tuple(gossip))))
            for peer, payload in sends:
                if peer is None:
                    network.broadcast(payload)
                else:
                    network.send(self._node_name(peer), payload)
        if head is not None:
            self._tell_head(head)

    def _settle(self, committed: Committed) -> None:
        """Wake the submitters waiting for this transaction."""
        for future in self._waiters.get(committed.tx_id, []):
            if not future.done():
                future.set_result(committed)

    def _node_name(self, key_name: str) -> str:
        return key_name.removeprefix(self._prefix)

    def _tell_head(self, height: int) -> None:
        if height != self._head_told:
            self._head_told = height
            for listener in self._head_listeners:
                listener(height)


def _never(tx: SignedTx) -> bool:
    return False


def _verify_all(txs: list[SignedTx], verified_before: Callable[[SignedTx], bool]
                ) -> dict[bytes, Rejected]:
    bad: dict[bytes, Rejected] = {}
    for tx in txs:
        if verified_before(tx):  # e.g. in a proposal that overtook this gossip
            continue
        try:
            tx.verify_signature()
        except Rejected as exc:
            bad[tx.tx_id] = exc
    return bad


TrustAnchors = Callable[[list[bytes]], None]
"""Adds CA certificates (DER) to a live TLS context's trust anchors."""


class ChainCas:
    """The organisation CAs registered on chain, re-read whenever the head moves: each
    organisation's active CAs, and every CA seen on chain since the node started, which
    each follower (a live TLS context: the peer transport's, the API's) is given as
    trust anchors the first time it appears.

    Anchors are only ever added. OpenSSL cannot drop one, and need not: what keeps a
    CA that left the chain (or whose organisation left) from vouching for anyone is the
    check after the handshake, `admission_refusal` for peers and the member's standing
    for API callers, both against the current state."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._head: bytes | None = None
        self._org_cas: dict[str, list[bytes]] = {}  # org id -> its active CAs (DER)
        self._trusted: dict[bytes, bytes] = {}  # every chain CA ever trusted, by SHA-256
        self._followers: list[TrustAnchors] = []

    def follow(self, add_anchors: TrustAnchors) -> None:
        """Give `add_anchors` every CA trusted so far, then each new one as the chain
        registers it (from `refresh`)."""
        known = self.trusted()
        self._followers.append(add_anchors)
        self.refresh()  # hands any CA new since the last read to every follower
        if known:
            add_anchors(known)

    def org_cas(self, org_id: str) -> list[bytes]:
        """The organisation's active CAs (DER) at the head last read."""
        return self._org_cas.get(org_id, [])

    def trusted(self) -> list[bytes]:
        """Every CA (DER) trusted so far, including those no longer active."""
        return list(self._trusted.values())

    def refresh(self) -> None:
        """Follow the chain if the head moved since the last call (cheap otherwise;
        nothing to do while nothing follows)."""
        head = self._node.chain.head_hash
        if head == self._head or not self._followers:
            return
        self._head = head
        state = self._node.chain.state
        self._org_cas = {}
        for org_id in members.orgs(state):
            record = members.org(state, org_id)
            if record is not None:
                self._org_cas[org_id] = [bytes(der) for der in record["cas"]]
        new = {sha256(der): der for cas in self._org_cas.values() for der in cas
               if sha256(der) not in self._trusted}
        if new:
            self._trusted.update(new)
            for add_anchors in self._followers:
                add_anchors(list(new.values()))
            log.info("TLS: trusting %d more organisation CA(s) from the chain", len(new))


class ChainPeers:
    """Keeps a `PeerNetwork` in step with the chain (ADR 0011 point 4, ADR 0005 as
    amended), re-read whenever the head moves:

    * peers: node.toml's `[[peers]]` plus every validator of the current set, at its
      on-chain address (`Node.chain_peers()`), or None (accept only) if it has none;
    * trust anchors: every organisation CA registered on chain, added to the live TLS
      contexts the first time it is seen (`ChainCas`; OpenSSL cannot drop one:
      admission can);
    * admission: a peer's certificate must be the one pinned for its name, or come
      from its own organisation's CA, or (no organisation: a genesis or configured
      peer) from no chain CA at all, i.e. from the network CA."""

    def __init__(self, node: Node, network: PeerNetwork, cas: ChainCas | None = None) -> None:
        self._node = node
        self._network = network
        self._prefix = node.genesis.name + "/"
        self._head: bytes | None = None
        self._records: dict[str, validator_sets.ValidatorRecord] = {}  # by transport name
        self._cas = ChainCas(node) if cas is None else cas
        self._peers: dict[str, tuple[str, int] | None] | None = None
        network.admit = self.refusal
        self._cas.follow(network.add_trust_anchors)
        self.refresh()

    def refresh(self) -> None:
        """Follow the chain if the head moved since the last call (cheap otherwise)."""
        self._cas.refresh()
        head = self._node.chain.head_hash
        if head == self._head:
            return
        self._head = head
        state = self._node.chain.state
        records = validator_sets.current_set(state, self._node.genesis)
        self._records = {r.name.removeprefix(self._prefix): r for r in records}
        peers = self._peer_set(records)
        if peers != self._peers:
            self._network.set_peers(peers)
            self._peers = peers

    def _peer_set(self, records: tuple[validator_sets.ValidatorRecord, ...]
                  ) -> dict[str, tuple[str, int] | None]:
        me = self._node.signer.name
        validators = {r.name.removeprefix(self._prefix): None for r in records if r.name != me}
        merged: dict[str, tuple[str, int] | None] = {
            **validators, **self._network.configured_peers, **self._node.chain_peers()}
        peers = {name: address for name, address in merged.items() if _transport_name(name)}
        if len(peers) >= MAX_VALIDATORS:  # configured followers give way to validators
            keep = sorted(peers, key=lambda name: (name not in validators, name))
            peers = {name: peers[name] for name in keep[:MAX_VALIDATORS - 1]}
        return peers

    def refusal(self, name: str, certificate_der: bytes) -> str | None:
        """The `PeerNetwork.admit` hook: why this verified certificate may not speak
        for `name`, or None."""
        record = self._records.get(name)
        return admission_refusal(
            certificate_der, pin=record.tls_fingerprint if record else b"",
            org_cas=self._cas.org_cas(record.org) if record and record.org else [],
            chain_cas=self._cas.trusted(), network_cas=self._network.network_cas)


def _transport_name(name: str) -> bool:
    """Whether a validator's name (its key name without the network) can name a peer:
    a certificate CN and DNS label. One that cannot is never a peer, and must not stop
    the node."""
    try:
        check_node_name(name)
    except TlsError:
        return False
    return True
