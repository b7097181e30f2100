"""api/ratelimit.py: a token bucket per caller, driven by a clock passed in, with a
bounded number of callers."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidechain.api.ratelimit import RateLimited, ReadLimiter
from tidechain.core import limits
from tidechain.core.errors import Rejected

EPSILON = 1e-6
"""Tokens are floats: a bound computed from the same times may differ by rounding
(by far less than this, in tokens or in seconds)."""


def refused(limiter: ReadLimiter, caller: str, now_s: float) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.check(caller, now_s)
    return info.value


def test_a_burst_is_admitted_then_refused_with_retry_after() -> None:
    limiter = ReadLimiter(rate_per_s=50, burst=5, max_callers=10)
    for _ in range(5):
        limiter.check("ip:10.0.0.1", 0.0)
    err = refused(limiter, "ip:10.0.0.1", 0.0)
    assert isinstance(err, Rejected)
    assert err.http_status == 429 and err.code == "rate_limited"
    assert err.retry_after_s == 1  # 20 ms to the next token, rounded up to a whole second
    assert err.reason == "more than 50 reads/s from this caller; retry in 1 s"
    assert err.to_dict() == {"error": "rate_limited", "reason": err.reason}


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    limiter = ReadLimiter(rate_per_s=0.1, burst=1, max_callers=10)
    limiter.check("key:ab", 0.0)
    assert refused(limiter, "key:ab", 0.0).retry_after_s == 10
    err = refused(limiter, "key:ab", 2.5)  # 0.25 of a token: 7.5 s to go
    assert err.retry_after_s == 8
    assert err.reason == "more than 0.1 reads/s from this caller; retry in 8 s"
    assert refused(limiter, "key:ab", 9.95).retry_after_s == 1  # never 0
    limiter.check("key:ab", 10.0)  # exactly when promised


def test_tokens_refill_over_time_up_to_the_burst() -> None:
    limiter = ReadLimiter(rate_per_s=10, burst=3, max_callers=10)
    for _ in range(3):
        limiter.check("a", 0.0)
    refused(limiter, "a", 0.0999)
    limiter.check("a", 0.1)  # one token back after 100 ms
    refused(limiter, "a", 0.1)
    for _ in range(3):  # a long pause refills the bucket, but no further than the burst
        limiter.check("a", 100.0)
    refused(limiter, "a", 100.0)


def test_callers_have_independent_buckets() -> None:
    limiter = ReadLimiter(rate_per_s=1, burst=2, max_callers=10)
    limiter.check("ip:1", 0.0)
    limiter.check("ip:1", 0.0)
    refused(limiter, "ip:1", 0.0)
    limiter.check("ip:2", 0.0)
    limiter.check("ip:2", 0.0)
    refused(limiter, "ip:2", 0.0)
    limiter.check("key:1", 0.0)


def test_callers_are_bounded_idle_ones_dropped_first_then_the_least_recent() -> None:
    limiter = ReadLimiter(rate_per_s=1, burst=2, max_callers=3)
    limiter.check("a", 0.0)  # each read leaves a bucket one token short: full 1 s later
    limiter.check("b", 0.0)
    limiter.check("c", 0.0)
    limiter.check("a", 0.2)  # least recent first: b, c, a
    limiter.check("d", 0.5)  # nobody idle yet: the least recent (b) goes
    assert len(limiter) == 3
    assert "b" not in limiter and all(c in limiter for c in ("a", "c", "d"))
    limiter.check("c", 0.6)  # least recent first: a (full at 2.0), d (1.5), c (2.0)
    limiter.check("e", 1.6)  # d is full again: it goes, not a, the least recent
    assert "d" not in limiter and all(c in limiter for c in ("a", "c", "e"))
    assert len(limiter) == 3


def test_every_idle_caller_goes_in_one_sweep() -> None:
    limiter = ReadLimiter(rate_per_s=1, burst=1, max_callers=4)
    for caller in "abcd":
        limiter.check(caller, 0.0)
    limiter.check("e", 5.0)  # a, b, c, d are all full again
    assert len(limiter) == 1 and "e" in limiter


def test_an_evicted_caller_gets_at_most_one_extra_burst() -> None:
    limiter = ReadLimiter(rate_per_s=1, burst=2, max_callers=1)
    limiter.check("a", 0.0)
    limiter.check("a", 0.0)
    refused(limiter, "a", 0.0)
    limiter.check("b", 0.0)  # a is still using its bucket, but it is the least recent
    assert "a" not in limiter
    limiter.check("a", 0.0)  # a new, full bucket: the extra burst
    limiter.check("a", 0.0)
    refused(limiter, "a", 0.0)


def test_many_new_callers_never_exceed_the_bound() -> None:
    limiter = ReadLimiter(rate_per_s=5, burst=3, max_callers=50)
    for i in range(2000):
        limiter.check(f"ip:{i}", i / 1000)
        assert len(limiter) <= 50


def test_a_clock_going_backwards_grants_nothing_and_does_not_crash() -> None:
    limiter = ReadLimiter(rate_per_s=1, burst=2, max_callers=10)
    limiter.check("a", 10.0)
    limiter.check("a", 10.0)
    err = refused(limiter, "a", 5.0)  # back in time: no tokens, a sane Retry-After
    assert err.retry_after_s == 1
    refused(limiter, "a", 10.5)  # forward again: time counts from 10.0, not from 5.0
    limiter.check("a", 11.0)
    refused(limiter, "a", 11.0)
    limiter.check("b", 3.0)  # a new caller at an earlier time is fine too
    limiter.check("b", 2.0)
    refused(limiter, "b", 1.0)


def test_defaults_come_from_limits() -> None:
    limiter = ReadLimiter()
    for _ in range(limits.READ_BURST_PER_CALLER):
        limiter.check("ip:x", 0.0)
    err = refused(limiter, "ip:x", 0.0)
    assert f"{limits.READS_PER_S_PER_CALLER} reads/s" in err.reason


# --- properties -------------------------------------------------------------------------

STEPS = st.lists(
    st.tuples(
        st.sampled_from(["key:aa", "key:bb", "ip:1", "ip:2"]),
        st.one_of(st.just(0.0), st.floats(min_value=-1.0, max_value=2.0, allow_nan=False)),
    ),
    min_size=1,
    max_size=200,
)
RATES = st.floats(min_value=0.1, max_value=100.0)
BURSTS = st.integers(min_value=1, max_value=20)


class Reference:
    """The plain version: the same token arithmetic, and a sweep of every bucket whenever a
    new caller meets a full map (ReadLimiter skips sweeps that cannot find an idle one)."""

    def __init__(self, rate_per_s: float, burst: int, max_callers: int) -> None:
        self.rate_per_s, self.burst, self.max_callers = rate_per_s, burst, max_callers
        self.buckets: dict[str, tuple[float, float]] = {}  # tokens, latest time; oldest first

    def check(self, caller: str, now_s: float) -> int:
        """0 if admitted, else the Retry-After."""
        if caller in self.buckets:
            tokens, last_s = self.buckets.pop(caller)
            if now_s > last_s:
                tokens = min(float(self.burst), tokens + (now_s - last_s) * self.rate_per_s)
                last_s = now_s
        else:
            if len(self.buckets) == self.max_callers:
                idle = [
                    c for c, (t, l_s) in self.buckets.items()
                    if l_s + (self.burst - t) / self.rate_per_s <= now_s
                ]
                for c in idle or [next(iter(self.buckets))]:
                    del self.buckets[c]
            tokens, last_s = float(self.burst), now_s
        retry_after_s = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            retry_after_s = max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
        self.buckets[caller] = (tokens, last_s)
        return retry_after_s


class Bucket:
    """What the property knows of one of a caller's buckets: the latest time it had seen
    (the clock may go backwards) at each of its admissions."""

    def __init__(self, now_s: float) -> None:
        self.latest_s = now_s
        self.admitted_at_s: list[float] = []


def run(
    limiter: ReadLimiter,
    steps: list[tuple[str, float]],
    burst: int,
    rate_per_s: float,
    max_callers: int,
) -> tuple[int, dict[str, list[Bucket]]]:
    """Drive `limiter` along `steps`, checking at every step that

    * it decides exactly as the plain Reference and forgets the same callers;
    * in any run of one bucket's admissions, from the i-th to the j-th, there were at most
      burst + rate * (time between them) (so since a bucket was made, too);
    * a refused caller is admitted when its Retry-After has passed.

    Returns the number of checks made and each caller's buckets (more than one if the
    caller was forgotten and came back)."""
    reference = Reference(rate_per_s, burst, max_callers)
    buckets: dict[str, list[Bucket]] = {}
    now_s = 0.0
    checks = 0
    for caller, step_s in steps:
        now_s += step_s
        if caller not in limiter:  # new, or forgotten: a new, full bucket
            buckets.setdefault(caller, []).append(Bucket(now_s))
        bucket = buckets[caller][-1]
        bucket.latest_s = max(bucket.latest_s, now_s)
        expected_retry_s = reference.check(caller, now_s)
        try:
            limiter.check(caller, now_s)
        except RateLimited as err:
            assert err.retry_after_s == expected_retry_s >= 1
            # Honoured up to float rounding (a client's timer never fires early by 1 us).
            later = copy.deepcopy(limiter)
            later.check(caller, bucket.latest_s + err.retry_after_s + EPSILON)
        else:
            assert expected_retry_s == 0
            bucket.admitted_at_s.append(bucket.latest_s)
            times = bucket.admitted_at_s
            for i, first_s in enumerate(times):
                admitted = len(times) - i
                assert admitted <= burst + rate_per_s * (times[-1] - first_s) + EPSILON
        checks += 1
        assert set(reference.buckets) == {c for c in buckets if c in limiter}
        assert len(limiter) <= max_callers
    return checks, buckets


@settings(max_examples=300)
@given(steps=STEPS, rate_per_s=RATES, burst=BURSTS)
def test_never_more_than_burst_plus_rate_times_elapsed(
    steps: list[tuple[str, float]], rate_per_s: float, burst: int
) -> None:
    limiter = ReadLimiter(rate_per_s=rate_per_s, burst=burst, max_callers=4)  # no eviction
    checks, buckets = run(limiter, steps, burst, rate_per_s, max_callers=4)
    assert checks == len(steps) > 0
    assert all(len(b) == 1 for b in buckets.values())  # one bucket per caller: the plain bound


@settings(max_examples=300)
@given(steps=STEPS, rate_per_s=RATES, burst=BURSTS, max_callers=st.integers(1, 3))
def test_with_eviction_each_bucket_keeps_the_bound(
    steps: list[tuple[str, float]], rate_per_s: float, burst: int, max_callers: int
) -> None:
    limiter = ReadLimiter(rate_per_s=rate_per_s, burst=burst, max_callers=max_callers)
    checks, _ = run(limiter, steps, burst, rate_per_s, max_callers)
    assert checks == len(steps) > 0
