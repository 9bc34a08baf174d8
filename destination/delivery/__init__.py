"""Getting items to the destination: the queue, batching, executors, retry policy, outbox.

The public names of the delivery engine; the submodules hold one concern each.
"""

from __future__ import annotations

from .batcher import MAX_BATCH_SIZE, Batch, Batcher
from .engine import (
    COUNTER_NAMES,
    Counters,
    DeliveryEngine,
    DeliveryOptions,
    DeliveryResult,
    ResultOutcome,
)
from .eventid import event_id_for
from .executors import (
    DryRunExecutor,
    Executor,
    FileExecutor,
    HttpExecutor,
    Response,
    TransportError,
)
from .factories import make_executor, make_queue
from .outbox import DEFAULT_OUTBOX_PATH, OutboxLockedError, SqliteQueue
from .queue import Chunk, DeadLetter, Queue, QueueStats, RouteStats
from .ratelimit import TokenBucket
from .retry import RetryPolicy

__all__ = [
    "COUNTER_NAMES",
    "DEFAULT_OUTBOX_PATH",
    "MAX_BATCH_SIZE",
    "Batch",
    "Batcher",
    "Chunk",
    "Counters",
    "DeadLetter",
    "DeliveryEngine",
    "DeliveryOptions",
    "DeliveryResult",
    "DryRunExecutor",
    "Executor",
    "FileExecutor",
    "HttpExecutor",
    "OutboxLockedError",
    "Queue",
    "QueueStats",
    "Response",
    "ResultOutcome",
    "RetryPolicy",
    "RouteStats",
    "SqliteQueue",
    "TokenBucket",
    "TransportError",
    "event_id_for",
    "make_executor",
    "make_queue",
]
