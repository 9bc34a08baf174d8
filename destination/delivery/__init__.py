"""Getting items to the destination: the queue, batching, executors, retry policy, outbox.

The public names of the delivery engine; the submodules hold one concern each.
They are imported on first use, so a command that only needs one submodule
(``destination outbox status`` needs the outbox, not the engine and asyncio)
does not pay for the others; ``from destination.delivery import X`` works as
ever.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
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

#: Public name -> the submodule that defines it.
_LAZY = {
    "MAX_BATCH_SIZE": ".batcher",
    "Batch": ".batcher",
    "Batcher": ".batcher",
    "COUNTER_NAMES": ".engine",
    "Counters": ".engine",
    "DeliveryEngine": ".engine",
    "DeliveryOptions": ".engine",
    "DeliveryResult": ".engine",
    "ResultOutcome": ".engine",
    "event_id_for": ".eventid",
    "DryRunExecutor": ".executors",
    "Executor": ".executors",
    "FileExecutor": ".executors",
    "HttpExecutor": ".executors",
    "Response": ".executors",
    "TransportError": ".executors",
    "make_executor": ".factories",
    "make_queue": ".factories",
    "DEFAULT_OUTBOX_PATH": ".outbox",
    "OutboxLockedError": ".outbox",
    "SqliteQueue": ".outbox",
    "Chunk": ".queue",
    "DeadLetter": ".queue",
    "Queue": ".queue",
    "QueueStats": ".queue",
    "RouteStats": ".queue",
    "TokenBucket": ".ratelimit",
    "RetryPolicy": ".retry",
}

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


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
