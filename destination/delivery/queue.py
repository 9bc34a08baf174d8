"""Where accepted events wait: the one small, batch-granular interface every backend keeps.

An event counts as accepted once a queue has stored it, and it leaves only
when the destination acknowledged it (or it was dead-lettered). The unit a
queue stores, hands out and settles is a :class:`Chunk`: the items one
``put_many`` call gave for one route, at most a request's worth. A chunk
travels whole: claimed whole, sent inside one request, acknowledged, retried
or dead-lettered whole, so the cost of the queue is per request, not per
event. Only a rejected request (one bad event) breaks chunks apart:
:meth:`Queue.split` replaces a chunk by smaller ones, so bisecting stays
exact.

Nothing here is SQLite's. The embedded backend is
:class:`~destination.delivery.outbox.SqliteQueue`; the shared one is
:class:`~destination.delivery.jetstream.JetStreamQueue` (NATS JetStream: a
chunk is a message, ``claim`` a pull-consumer fetch, ``ack`` an ack,
``retry`` a ``nak`` with a delay, ``dead_letter`` a publish to a dead-letter
stream plus an ack, ``split`` parts held in memory until every one is
settled). Both register through the ``register_queues`` hook, as others can.

Claims belong to the process that made them: a queue hands a chunk to one
claimer until it is settled, and whatever a dead process had claimed is due
again (when the embedded queue is reopened, or after the shared backend's
ack wait).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from ..actions import Route

__all__ = [
    "Chunk",
    "DeadLetter",
    "Queue",
    "QueueStats",
    "RouteStats",
    "StoredItem",
    "chunk_cuts",
    "utf8_len",
]

#: What ``put_many`` stores: a wire item, or its compact JSON text already encoded.
StoredItem = dict[str, Any] | str


@dataclass(slots=True)
class Chunk:
    """Items of one route stored together, settled together. ``id`` names it in its queue.

    Read-only by convention (one is made per chunk claimed, on the delivery
    thread). ``items`` are compact JSON texts, spliced into a request body
    as they are; ``event_ids[i]`` is the event id of ``items[i]``.
    """

    id: int
    route: Route
    items: list[str]
    event_ids: list[str]
    enqueued_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    #: bytes of the items' UTF-8 text, for the batcher's byte cap
    size: int = 0

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that will not be retried, with the destination's (or the engine's) reason."""

    seq: int
    event_id: str
    route: Route
    item: dict[str, Any]
    enqueued_at: float
    attempts: int
    reason: str
    code: int | None
    dead_at: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = asdict(self.route)
        return data


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts in events. ``in_flight``: claimed by this process (others' claims are not known)."""

    pending: int
    due: int
    in_flight: int
    dead_letters: int
    oldest_enqueued_at: float | None
    next_attempt_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RouteStats:
    """What waits on one route, and the last error its events met."""

    route: Route
    pending: int
    due: int
    in_flight: int
    oldest_enqueued_at: float | None
    #: the most attempts any of its events has had
    max_attempts: int
    #: the error of the most recently failed request, and how many waiting events it holds
    last_error: str | None
    last_error_count: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = asdict(self.route)
        return data


@runtime_checkable
class Queue(Protocol):
    """Everything the delivery engine needs from an event store, in chunks.

    Every claimed chunk ends in exactly one of ``ack``, ``retry``, ``release``,
    ``dead_letter`` or ``split`` (whose parts are claimed in its place).
    Every storage failure is raised as :class:`~destination.errors.StorageError`.
    """

    def put_many(
        self,
        events: Iterable[tuple[Route, StoredItem, str]],
        *,
        max_items: int = 1000,
        max_bytes: int = 2_000_000,
    ) -> int:
        """Durably store (route, item, event_id) triples; return how many.

        Items are grouped by route into chunks of at most ``max_items`` items
        and about ``max_bytes`` bytes (a request's worth). An item is a dict
        or, already encoded, its compact JSON text, stored as it is.
        """
        ...

    def claim(self, limit: int, now: float | None = None) -> list[Chunk]:
        """Take due chunks no one holds, oldest due first, up to ``limit`` items in all
        (at least one chunk when any is due, even a larger one)."""
        ...

    def ack(self, ids: Sequence[int]) -> None:
        """The destination acknowledged these chunks: forget them."""
        ...

    def retry(self, ids: Sequence[int], next_attempt_at: float, error: str) -> None:
        """Count an attempt and give the chunks back, all due again at one time.

        One failed request is one backoff decision: its chunks come back due
        together and are batched again as a whole.
        """
        ...

    def release(self, ids: Sequence[int], error: str | None = None) -> None:
        """Give claimed chunks back, no attempt counted (``error``: why, e.g. a stop)."""
        ...

    def split(self, chunk: Chunk, sizes: Sequence[int]) -> list[Chunk]:
        """Replace a claimed chunk by consecutive parts of ``sizes`` items (they add up to
        its length), claimed in its place: a rejected request is bisected this way."""
        ...

    def dead_letter(self, ids: Sequence[int], reason: str, code: int | None = None) -> None:
        """Move every event of these chunks out of delivery, keeping the reason."""
        ...

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """List dead letters, oldest first."""
        ...

    def dead_letter_reasons(self) -> list[tuple[str, int | None, int]]:
        """(reason, code, count) of the dead letters, most frequent first."""
        ...

    def replay(self, event_ids: Sequence[str] | None = None) -> int:
        """Put dead letters (all, or those with these event_ids) back in the queue."""
        ...

    def purge(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        older_than: float | None = None,
        dry_run: bool = False,
    ) -> tuple[int, int]:
        """Remove waiting events and dead letters (all; those with these event_ids; or
        those accepted more than ``older_than`` seconds ago). Returns (waiting, dead);
        ``dry_run`` only counts them."""
        ...

    def reschedule(self, now: float | None = None) -> int:
        """Make everything waiting due now (an operator's flush); returns how many events."""
        ...

    def next_due(self) -> float | None:
        """When the earliest unclaimed chunk becomes due; None if none waits."""
        ...

    def stats(self, now: float | None = None) -> QueueStats: ...

    def route_stats(self, now: float | None = None) -> list[RouteStats]:
        """Per route: what waits, what is due, the oldest, attempts and the last error."""
        ...

    def size_bytes(self) -> int | None:
        """What the queue occupies on its storage, when it knows (its cap in bytes)."""
        ...

    def close(self) -> None: ...


def utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def chunk_cuts(
    items: Sequence[str], max_items: int, max_bytes: int
) -> Iterator[tuple[int, int, int]]:
    """(start, end, bytes) of consecutive runs of ``items`` within both caps (a single
    item larger than ``max_bytes`` is a run of its own): where every backend's
    ``put_many`` cuts one route's items into chunks. ``bytes`` counts the items
    joined by one separator byte."""
    start, size = 0, 0
    for index, text in enumerate(items):
        n = utf8_len(text)
        extra = n + (1 if index > start else 0)
        if index > start and (index - start >= max_items or size + extra > max_bytes):
            yield start, index, size
            start, size, extra = index, 0, n
        size += extra
    if start < len(items):
        yield start, len(items), size
