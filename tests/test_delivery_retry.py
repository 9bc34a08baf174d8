"""Backoff (capped, full jitter, Retry-After), max age, and the throttling token bucket."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination.actions import Outcome, Verdict
from destination.delivery import RetryPolicy, TokenBucket
from destination.errors import ConfigurationError


@given(st.integers(1, 200), st.floats(0, 1, exclude_max=True))
def test_full_jitter_within_capped_exponential(attempt, draw):
    policy = RetryPolicy(base=0.5, cap=60, random=lambda: draw)
    delay = policy.delay(attempt)
    assert 0 <= delay <= min(60, 0.5 * 2 ** (attempt - 1))
    assert delay == pytest.approx(min(60, 0.5 * 2 ** (attempt - 1)) * draw)


def test_jitter_spreads():
    policy = RetryPolicy(base=1, cap=8)
    delays = {round(policy.delay(4), 6) for _ in range(50)}
    assert len(delays) > 40 and max(delays) <= 8


def test_retry_after_and_min_backoff_are_floors():
    policy = RetryPolicy(base=0.1, cap=1, random=lambda: 0.5)
    assert policy.delay(1, Verdict(Outcome.RETRY, retry_after=30)) == 30
    assert policy.delay(1, Verdict(Outcome.RETRY, min_backoff=120)) == 120
    assert policy.delay(1, Verdict(Outcome.RETRY, retry_after=10**9)) == 3600
    assert policy.delay(1, Verdict(Outcome.RETRY)) == 0.05


def test_max_age():
    policy = RetryPolicy(max_age=60)
    assert not policy.expired(1000, 1060) and policy.expired(1000, 1060.5)


def test_bad_policy():
    with pytest.raises(ConfigurationError, match="cap"):
        RetryPolicy(base=2, cap=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_rate_and_burst():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    assert bucket.try_acquire() == 0 and bucket.try_acquire() == 0
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.now = 0.1
    assert bucket.try_acquire() == 0


def test_bucket_slows_on_throttle_and_recovers_gradually():
    clock = Clock()
    bucket = TokenBucket(rate=100, clock=clock, recovery=0.1)
    bucket.throttled()
    bucket.throttled()
    assert bucket.rate == 25
    bucket.succeeded()
    assert bucket.rate == 35
    for _ in range(20):
        bucket.succeeded()
    assert bucket.rate == 100
    for _ in range(30):
        bucket.throttled()
    assert bucket.rate == bucket.min_rate


def test_bucket_acquire_waits():
    async def run() -> float:
        bucket = TokenBucket(rate=50, burst=1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(4):
            await bucket.acquire()
        return loop.time() - start

    assert asyncio.run(run()) >= 0.055


def test_bad_rate():
    with pytest.raises(ConfigurationError, match="rate"):
        TokenBucket(rate=0)
