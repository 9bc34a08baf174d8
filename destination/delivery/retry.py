"""When to try again: capped exponential backoff with full jitter, and when to give up.

Full jitter (a uniform draw between 0 and the capped exponential) spreads the
retries of many clients hit by the same outage instead of having them return
in waves. A server's Retry-After and a destination's minimum wait (TikTok's
maintenance code) are floors the jitter never goes below. An event older than
``max_age`` is dead-lettered rather than retried forever: past TikTok's 48 h
deduplication window a late retry could count twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..actions import Verdict
from ..errors import ConfigurationError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(attempt)`` for the attempt-th retry (1-based); ``expired`` for give-up."""

    base: float = 0.5
    cap: float = 60.0
    max_age: float = 24 * 3600.0
    #: Longest Retry-After honoured; a larger one is clipped so a bad header cannot park events.
    max_retry_after: float = 3600.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.base <= 0:
            problems.append(f"retry base must be > 0, got {self.base}")
        if self.cap < self.base:
            problems.append(f"retry cap must be >= base, got {self.cap}")
        if self.max_age <= 0:
            problems.append(f"max_age must be > 0, got {self.max_age}")
        if problems:
            raise ConfigurationError("; ".join(problems))

    def backoff(self, attempt: int) -> float:
        """The jittered exponential part alone: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        exponent = min(max(attempt - 1, 0), 62)
        ceiling = min(self.cap, self.base * (2.0**exponent))
        return ceiling * self.random()

    def delay(self, attempt: int, verdict: Verdict | None = None) -> float:
        """Seconds to wait before the attempt-th retry, honouring Retry-After and floors."""
        wait = self.backoff(attempt)
        if verdict is not None:
            if verdict.retry_after is not None and verdict.retry_after > 0:
                wait = max(wait, min(verdict.retry_after, self.max_retry_after))
            if verdict.min_backoff is not None:
                wait = max(wait, verdict.min_backoff)
        return wait

    def expired(self, enqueued_at: float, now: float) -> bool:
        """True when an event has waited longer than ``max_age`` and must be dead-lettered."""
        return now - enqueued_at > self.max_age
