"""Getting items to the destination: batching, executors, retry policy, outbox.

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
from .outbox import (
    DEFAULT_OUTBOX_PATH,
    DeadLetter,
    Entry,
    OutboxLockedError,
    Queue,
    QueueStats,
    SqliteQueue,
)
from .ratelimit import TokenBucket
from .retry import RetryPolicy

__all__ = [
    "COUNTER_NAMES",
    "DEFAULT_OUTBOX_PATH",
    "MAX_BATCH_SIZE",
    "Batch",
    "Batcher",
    "Counters",
    "DeadLetter",
    "DeliveryEngine",
    "DeliveryOptions",
    "DeliveryResult",
    "DryRunExecutor",
    "Entry",
    "Executor",
    "FileExecutor",
    "HttpExecutor",
    "OutboxLockedError",
    "Queue",
    "QueueStats",
    "Response",
    "ResultOutcome",
    "RetryPolicy",
    "SqliteQueue",
    "TokenBucket",
    "TransportError",
    "event_id_for",
    "make_executor",
    "make_queue",
]
