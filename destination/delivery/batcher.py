"""Grouping chunks into requests: per route, capped by count and bytes, cut by time.

A batch may only hold items that can share one request, i.e. one route
(destination instance and event source). It holds whole chunks (the unit the
queue stores and settles), is cut as soon as one more chunk would break the
item or byte cap, and after ``linger`` seconds at the latest so a quiet
stream still leaves promptly. A chunk is never larger than a request: the
engine splits one that is (stored under a larger batch size) before adding
it. Pure and synchronous, with the clock passed in, so it is tested without
waiting.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from .queue import Chunk

__all__ = ["MAX_BATCH_SIZE", "Batch", "Batcher", "items_of"]

#: TikTok rejects a whole request with more than 1000 events.
MAX_BATCH_SIZE = 1000
#: Bytes reserved for the request envelope around the items.
ENVELOPE_BYTES = 512


@dataclass(slots=True)
class Batch:
    """Chunks for one request, in the order they were added; ``count`` items in all."""

    key: Hashable
    chunks: list[Chunk] = field(default_factory=list)
    size: int = ENVELOPE_BYTES
    opened_at: float = 0.0
    count: int = 0

    def __len__(self) -> int:
        return self.count

    @property
    def items(self) -> list[str]:
        """The items of every chunk, in order: what the request carries."""
        return items_of(self.chunks)


def items_of(chunks: list[Chunk]) -> list[str]:
    """The items of these chunks, in order (a single chunk's own list, not a copy)."""
    if len(chunks) == 1:
        return chunks[0].items
    return [item for chunk in chunks for item in chunk.items]


class Batcher:
    """Open batches keyed by route; ``add`` and ``due`` return the batches to send."""

    def __init__(
        self,
        batch_size: int = MAX_BATCH_SIZE,
        max_bytes: int = 2_000_000,
        linger: float = 1.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ConfigurationError(
                f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
            )
        if max_bytes <= ENVELOPE_BYTES:
            raise ConfigurationError(f"max_bytes must exceed {ENVELOPE_BYTES}, got {max_bytes}")
        if linger < 0:
            raise ConfigurationError(f"linger must be >= 0 seconds, got {linger}")
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.linger = linger
        self._open: dict[Any, Batch] = {}
        self._count = 0

    def __len__(self) -> int:
        """Items held in open batches."""
        return self._count

    def add(self, chunk: Chunk, now: float) -> list[Batch]:
        """Add one chunk; return the batches this closed (zero, one or two)."""
        ready: list[Batch] = []
        key = chunk.route
        count = len(chunk.items)
        chunk_bytes = chunk.size + 1  # the comma before it
        batch = self._open.get(key)
        if (
            batch is not None
            and batch.chunks
            and (batch.count + count > self.batch_size or batch.size + chunk_bytes > self.max_bytes)
        ):
            if count >= self.batch_size or ENVELOPE_BYTES + chunk_bytes >= self.max_bytes:
                # A full chunk is a request of its own; the open batch keeps filling.
                return [Batch(key, [chunk], ENVELOPE_BYTES + chunk_bytes, now, count)]
            # One more chunk would break a cap: send what is there first.
            ready.append(self._close(key))
            batch = None
        if batch is None:
            batch = Batch(key=key, opened_at=now)
            self._open[key] = batch
        batch.chunks.append(chunk)
        batch.size += chunk_bytes
        batch.count += count
        self._count += count
        if batch.count >= self.batch_size or batch.size >= self.max_bytes:
            ready.append(self._close(key))
        return ready

    def due(self, now: float) -> list[Batch]:
        """Batches open for ``linger`` seconds or more."""
        keys = [k for k, b in self._open.items() if now - b.opened_at >= self.linger]
        return [self._close(k) for k in keys]

    def drain(self) -> list[Batch]:
        """Every open batch, regardless of age (flush and shutdown)."""
        return [self._close(k) for k in list(self._open)]

    def next_deadline(self) -> float | None:
        """When the oldest open batch reaches its linger (None when nothing is open)."""
        if not self._open:
            return None
        return min(b.opened_at for b in self._open.values()) + self.linger

    def _close(self, key: Any) -> Batch:
        batch = self._open.pop(key)
        self._count -= batch.count
        return batch
