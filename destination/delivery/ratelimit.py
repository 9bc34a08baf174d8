"""A token bucket for requests that backs off when the destination throttles.

The bucket caps the request rate at what the operator configured. When an
answer says "too many requests" (any retry verdict the destination returned),
the rate is halved, down to a floor; each success then adds back a small step
until the configured rate is reached again (additive increase, multiplicative
decrease), so a throttled sender neither hammers the API nor stays slow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..errors import ConfigurationError

__all__ = ["TokenBucket"]


class TokenBucket:
    """``await acquire()`` before each request; ``throttled()`` / ``succeeded()`` after."""

    def __init__(
        self,
        rate: float = 100.0,
        burst: float | None = None,
        *,
        min_rate: float = 0.5,
        recovery: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ConfigurationError(f"rate limit must be > 0 requests/second, got {rate}")
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, rate)
        self.min_rate = min(min_rate, self.max_rate)
        self.recovery = recovery
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> float:
        """Take a token if one is there (return 0.0), else return seconds until one is."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            while (wait := self.try_acquire()) > 0:
                await asyncio.sleep(wait)

    def throttled(self) -> None:
        """The destination asked us to slow down: halve the rate (not below the floor)."""
        self._refill()
        self.rate = max(self.min_rate, self.rate / 2)
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A request went through: recover a step towards the configured rate."""
        if self.rate < self.max_rate:
            self._refill()
            self.rate = min(self.max_rate, self.rate + self.max_rate * self.recovery)
