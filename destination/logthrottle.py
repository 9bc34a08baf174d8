"""One log line per distinct failure per interval, however often it happens.

A full disk or a dead endpoint fails the same way thousands of times a
second; logging each one buries the cause and can fill the very disk that is
full. :class:`LogThrottle` logs the first occurrence of each distinct
message, then at most one line per ``interval`` that says how many were
suppressed meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """``throttle.log(level, message)``: logged now, or counted until the interval passes."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 256,
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # message -> (when last logged, how many suppressed since)
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, message: str) -> bool:
        """Log ``message`` unless it was logged less than ``interval`` ago; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._seen.get(message)
            if last is not None and now - last[0] < self.interval:
                self._seen[message] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            if last is None and len(self._seen) >= self._max_keys:
                self._seen.clear()  # a flood of distinct messages: start counting afresh
            self._seen[message] = (now, 0)
        if suppressed:
            self._logger.log(level, "%s (and %d more times since)", message, suppressed)
        else:
            self._logger.log(level, "%s", message)
        return True
