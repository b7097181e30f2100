"""A per-caller limit on the REST API's reads: one token bucket per caller.

Pure: no clock is read here. The shell passes its monotonic time (`now_s`) to every
`check`, so tests and the simulator drive the limiter with any clock they like.

Each caller's bucket holds at most `burst` tokens and refills at `rate_per_s`; a read
takes one token, or is refused with `RateLimited` (HTTP 429, `Retry-After` in whole
seconds). A caller is an opaque string chosen by the shell ("key:<hex>" for a member,
"ip:<address>" for an anonymous caller). Addresses are chosen by clients, so the
buckets are bounded (`max_callers`, MAX_RATE_LIMITED_CALLERS).

A clock that goes backwards grants nothing: time only counts past the latest `now_s`
a bucket has seen.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from tidechain.core.errors import Rejected, invariant
from tidechain.core.limits import (
    MAX_RATE_LIMITED_CALLERS,
    READ_BURST_PER_CALLER,
    READS_PER_S_PER_CALLER,
)


class RateLimited(Rejected):
    """Too many reads from one caller. Retry after `retry_after_s` (whole seconds, >= 1)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, reason: str, *, retry_after_s: int) -> None:
        invariant(retry_after_s >= 1, f"retry_after_s must be >= 1, not {retry_after_s}")
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class _Bucket:
    __slots__ = ("last_s", "tokens")

    def __init__(self, tokens: float, last_s: float) -> None:
        self.tokens = tokens
        self.last_s = last_s  # the latest `now_s` seen: never moves backwards


class ReadLimiter:
    def __init__(
        self,
        rate_per_s: float = READS_PER_S_PER_CALLER,
        burst: int = READ_BURST_PER_CALLER,
        max_callers: int = MAX_RATE_LIMITED_CALLERS,
    ) -> None:
        invariant(math.isfinite(rate_per_s) and rate_per_s > 0, f"bad rate {rate_per_s}")
        invariant(burst >= 1, f"burst must be >= 1, not {burst}")
        invariant(max_callers >= 1, f"max_callers must be >= 1, not {max_callers}")
        self._rate_per_s = float(rate_per_s)
        self._burst = burst
        self._max_callers = max_callers
        # Least recently seen caller first.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        # No bucket can be full before this time (a lower bound, exact after a sweep):
        # a new caller meeting a full map sweeps for idle buckets only once one may
        # exist. Measured: a sweep of 10,000 buckets takes ~1 ms, a new caller ~1 us
        # without one, so a stream of new addresses cannot make every request sweep.
        # tests/test_ratelimit.py checks this against the plain always-sweep version.
        self._earliest_full_s = math.inf

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, caller: object) -> bool:
        return caller in self._buckets

    def check(self, caller: str, now_s: float) -> None:
        """Take one token from `caller`'s bucket, or raise RateLimited."""
        invariant(math.isfinite(now_s), f"now_s must be finite, not {now_s}")
        bucket = self._buckets.get(caller)
        if bucket is None:
            self._make_room(now_s)
            bucket = _Bucket(float(self._burst), now_s)
            self._buckets[caller] = bucket
        else:
            self._buckets.move_to_end(caller)
            self._refill(bucket, now_s)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            self._earliest_full_s = min(self._earliest_full_s, self._full_at_s(bucket))
            return
        retry_after_s = max(1, math.ceil((1.0 - bucket.tokens) / self._rate_per_s))
        raise RateLimited(
            f"more than {self._rate_per_s:g} reads/s from this caller; "
            f"retry in {retry_after_s} s",
            retry_after_s=retry_after_s,
        )

    def _refill(self, bucket: _Bucket, now_s: float) -> None:
        elapsed_s = now_s - bucket.last_s
        if elapsed_s <= 0:  # same instant, or a clock that went backwards: nothing accrues
            return
        bucket.tokens = min(float(self._burst), bucket.tokens + elapsed_s * self._rate_per_s)
        bucket.last_s = now_s

    def _full_at_s(self, bucket: _Bucket) -> float:
        """When `bucket` will be full again if its caller stays idle."""
        return bucket.last_s + (self._burst - bucket.tokens) / self._rate_per_s

    def _make_room(self, now_s: float) -> None:
        """Free at least one slot when the map is full: idle callers first, then the least
        recently seen one."""
        if len(self._buckets) < self._max_callers:
            return
        if now_s >= self._earliest_full_s:
            # Dropping a full bucket changes nothing: a caller that comes back gets a
            # new bucket, which starts full too.
            idle = [c for c, b in self._buckets.items() if self._full_at_s(b) <= now_s]
            for caller in idle:
                del self._buckets[caller]
            self._earliest_full_s = min(
                (self._full_at_s(b) for b in self._buckets.values()), default=math.inf
            )
            if idle:
                return
        # Every caller is still using its bucket. Evicting the least recently seen one is
        # safe: when it comes back it starts with a full bucket, so at worst it gets one
        # extra burst per eviction, and evicting it takes max_callers other callers
        # reading meanwhile (whoever can do that could as well read from new addresses).
        # `_earliest_full_s` stays a lower bound when a bucket leaves.
        self._buckets.popitem(last=False)
        invariant(len(self._buckets) < self._max_callers, "rate limiter map over its bound")
