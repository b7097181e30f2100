"""What the runtime counts as things happen, for `/metrics` (docs/operations.md).

Counters and the commit-latency histogram are updated here, at the events; what is
state rather than a count (height, round, mempool, peers, sync, certificates) is read
from the node when Prometheus scrapes (`api/metrics.py`, which serves both). The metric
objects belong to no registry: each API puts them in its own `CollectorRegistry`, so
several nodes in one process never share a series.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from prometheus_client import Counter, Histogram
from prometheus_client.registry import Collector

from tidechain.core.errors import Rejected

MAX_REASON_LABELS = 32
"""Distinct `reason` label values per counter. Reasons are rejection codes, a fixed set
in our code (about twenty, docs/api.md), never text a client chooses; still, every
label value is a series Prometheus keeps, so past this bound further codes count as
`other` rather than let a bug mint series without end."""

OTHER_REASON = "other"

COMMIT_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                            60.0)
"""From one tick plus a block interval at light load (tens of ms) up to a minute, the
longest a submitter may wait for its commit (COMMIT_WAIT_MAX_MS)."""


class _Reasons:
    """The label values a counter has used, at most MAX_REASON_LABELS of them."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def label(self, code: str) -> str:
        if code in self._seen:
            return code
        if len(self._seen) >= MAX_REASON_LABELS - 1:  # one left for `other`
            return OTHER_REASON
        self._seen.add(code)
        return code


class NodeMetrics:
    """The runtime's counters and the commit-latency histogram.

    Commit latency is measured on the node that admitted the transaction from a client
    (`POST /v1/tx`, `/v1/tx/batch`): from its admission to the mempool to the commit of
    its block on this node, on the monotonic clock. Transactions that arrived by gossip
    are not timed (their admission was elsewhere); dropped ones are counted as dropped.
    """

    def __init__(self, max_timed: int, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._max_timed = max_timed
        # tx id -> when it was admitted; bounded by the mempool's capacity (what it can
        # hold pending), the oldest forgotten first.
        self._admitted_at: OrderedDict[bytes, float] = OrderedDict()
        self._rejected_reasons = _Reasons()
        self._dropped_reasons = _Reasons()
        self.admitted = Counter(
            "tidechain_transactions_admitted",
            "Transactions submitted to this node's API and admitted to its mempool.",
            registry=None)
        self.rejected = Counter(
            "tidechain_transactions_rejected",
            "Transactions submitted to this node's API and refused before the mempool, "
            "by rejection code (docs/api.md; `other` past 32 distinct codes).",
            ["reason"], registry=None)
        self.committed = Counter(
            "tidechain_transactions_committed",
            "Transactions in blocks this node committed (consensus or block sync).",
            registry=None)
        self.dropped = Counter(
            "tidechain_transactions_dropped",
            "Pending transactions dropped from the mempool when this node built a block "
            "(expired, replayed), by rejection code.", ["reason"], registry=None)
        self.commit_latency = Histogram(
            "tidechain_commit_latency_seconds",
            "From a client transaction's admission to this node's mempool to the commit "
            "of its block on this node.", buckets=COMMIT_LATENCY_BUCKETS_S, registry=None)

    def collectors(self) -> tuple[Collector, ...]:
        return (self.admitted, self.rejected, self.committed, self.dropped,
                self.commit_latency)

    def note_admitted(self, tx_ids: Sequence[bytes]) -> None:
        """A batch's admitted transactions (timed from now, for commit latency)."""
        if not tx_ids:
            return
        self.admitted.inc(len(tx_ids))
        now = self._clock_s()
        admitted = self._admitted_at
        for tx_id in tx_ids:
            admitted[tx_id] = now
        while len(admitted) > self._max_timed:
            admitted.popitem(last=False)

    def note_rejected(self, rejection: Rejected) -> None:
        self.rejected.labels(self._rejected_reasons.label(rejection.code)).inc()

    def note_committed(self, tx_ids: Sequence[bytes]) -> None:
        """A block's committed transactions (the latency of those admitted here)."""
        self.committed.inc(len(tx_ids))
        admitted = self._admitted_at
        if not admitted:
            return
        now = self._clock_s()
        for tx_id in tx_ids:
            admitted_at = admitted.pop(tx_id, None)
            if admitted_at is not None:
                self.commit_latency.observe(max(0.0, now - admitted_at))

    def note_dropped(self, tx_id: bytes, rejection: Rejected | None) -> None:
        self._admitted_at.pop(tx_id, None)
        code = OTHER_REASON if rejection is None else rejection.code
        self.dropped.labels(self._dropped_reasons.label(code)).inc()
