"""``--workers N``: reading and storing events in N processes, delivering from one.

Turning an event into a stored TikTok item (triggers, mappings, schema
checks, normalising and hashing) is pure Python, so one process tops out at
one core. With workers, the server process keeps HTTP, write-key checks on
headers, metrics and the delivering engine; each request body goes to a
worker process, which decodes it, validates it and stores its events in the
same SQLite outbox in one transaction before the server answers 200. The
outbox lets only one process deliver (its lock file), so the workers' queues
are put-only (:class:`PutOnlyQueue`) and the server's engine picks their
entries up by polling the outbox. With a shared queue (``--queue nats://…``)
each worker publishes straight to JetStream through a put-only view of its
own, and whoever delivers (this server, or other nodes) claims from there.

A worker ignores SIGINT and SIGTERM (the server decides when to stop) and
leaves on its own when the server process is gone, even after a SIGKILL.
A storage failure or a full queue in a worker crosses back to the server as
the StorageError it is; the server answers and logs it, once for all workers.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any

from ..actions import Route
from ..config import Config
from ..delivery.factories import make_queue, queue_name
from ..delivery.queue import Chunk, Queue, QueueStats, StoredItem
from ..errors import ConfigurationError
from .auth import WriteKeys

__all__ = ["PutOnlyQueue", "Tally", "WorkerPool", "put_only_queue", "shared_queue"]

#: how often the delivering engine looks for entries the workers stored
WORKER_POLL_INTERVAL = 0.05
_COUNTED = ("received", "matched", "invalid", "accepted")


#: what a put-only queue passes on to the queue it wraps besides storing: reading only
_READS = frozenset(
    {"size_bytes", "route_stats", "dead_letters", "dead_letter_reasons", "consumer_info"}
)


class PutOnlyQueue:
    """A queue that stores and never hands out: an ingest worker's view of the outbox, or
    an ingest-only server's (``serve --no-deliver``) view of the shared queue."""

    def __init__(self, inner: Queue) -> None:
        self._inner = inner

    def put_many(
        self,
        events: Iterable[tuple[Route, StoredItem, str]],
        *,
        max_items: int = 1000,
        max_bytes: int = 2_000_000,
    ) -> int:
        return self._inner.put_many(events, max_items=max_items, max_bytes=max_bytes)

    def claim(self, limit: int, now: float | None = None) -> list[Chunk]:
        return []

    def next_due(self) -> float | None:
        return None

    def stats(self, now: float | None = None) -> QueueStats:
        return self._inner.stats(now)

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:  # ack/retry/release/dead letters: never called
        if name in _READS:
            return getattr(self._inner, name)
        raise AttributeError(f"a put-only queue has no {name!r}")

    def __repr__(self) -> str:
        return f"PutOnlyQueue({self._inner!r})"


def shared_queue(spec: str) -> bool:
    """Whether a queue spec names a queue shared by processes on any machine (JetStream)."""
    return spec.partition("://")[0] in ("nats", "tls")


def put_only_queue(config: Config, what: str = "--workers") -> PutOnlyQueue:
    """A view of the configured queue that stores and never claims: the sqlite outbox,
    or a JetStream queue (``deliver=False``: it creates no consumer)."""
    delivery = config.delivery
    options = {**delivery.queue_options, "deliver": False}
    if delivery.queue == "sqlite":
        options.setdefault("path", delivery.outbox)
    elif not shared_queue(delivery.queue):
        raise ConfigurationError(
            f"{what} needs the sqlite outbox or a nats:// queue, "
            f"not queue {queue_name(delivery.queue)!r}"
        )
    return PutOnlyQueue(make_queue(delivery.queue, **options))


@dataclass
class Tally:
    """What the workers counted, added to the server runtime's own counters."""

    counters: Counter[str]
    by_preset: Counter[str]
    reasons: Counter[str]

    @classmethod
    def empty(cls) -> Tally:
        return cls(Counter(), Counter(), Counter())

    def add(self, delta: Mapping[str, Any]) -> None:
        self.counters.update(delta["counters"])
        self.by_preset.update(delta["by_preset"])
        if len(self.reasons) < 1000:
            self.reasons.update(delta["reasons"])

    def merge_into(self, stats: dict[str, Any]) -> dict[str, Any]:
        for name in _COUNTED:
            stats[name] = stats.get(name, 0) + self.counters[name]
        stats["matched_by_preset"] = dict(
            Counter(stats.get("matched_by_preset", {})) + self.by_preset
        )
        stats["invalid_reasons"] = dict(Counter(stats.get("invalid_reasons", {})) + self.reasons)
        return stats


class WorkerPool:
    """N spawned processes, each with a runtime whose queue only stores."""

    def __init__(self, workers: int, config: Config, environ: Mapping[str, str], keys: WriteKeys):
        self.workers = workers
        self._spec = (replace(config, _doc=None), dict(environ), keys, os.getpid())
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.workers, mp_context=get_context("spawn"), initializer=_init, initargs=self._spec
        )
        # Start every worker now, so a broken one shows at start-up, not on a request.
        try:
            for future in [pool.submit(_ready) for _ in range(self.workers)]:
                future.result(timeout=120)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    @property
    def executor(self) -> ProcessPoolExecutor:
        return self._pool

    def restart(self, broken: ProcessPoolExecutor) -> None:
        """After a worker of ``broken`` died (BrokenProcessPool): a fresh pool, once."""
        with self._lock:
            if self._pool is not broken:
                return  # another request restarted it already
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()

    def reload(self, config: Config) -> None:
        """Workers with ``config`` (new settings) from now on, unless it is the one they
        have; requests already given to the old ones finish there."""
        config = replace(config, _doc=None)
        with self._lock:
            if self._closed or config == self._spec[0]:
                return
            old, spec = self._pool, self._spec
            self._spec = (config, *spec[1:])
            try:
                self._pool = self._start()
            except BaseException:
                self._spec = spec
                raise
        old.shutdown(wait=False)

    def close(self) -> None:
        with self._lock:  # not while a reload starts workers that would then be left behind
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- in the worker process ----------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init(config: Config, environ: dict[str, str], keys: WriteKeys, parent: int) -> None:
    from ..host import Runtime

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # This engine only stores; its storage failures reach the server, which logs them.
    logging.getLogger("destination.delivery").setLevel(logging.CRITICAL)
    runtime = Runtime(config, queue=put_only_queue(config), track_results=False, environ=environ)
    _worker.update(runtime=runtime, keys=keys)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)  # the server is gone (SIGKILL): everything acknowledged is already stored


def _ready() -> int:
    return os.getpid()


def take(raw: bytes, encoding: str | None, kind: str | None, body_auth: bool) -> dict[str, Any]:
    """Decode, validate and store one request body; the counts it added."""
    from .app import take_events

    runtime = _worker["runtime"]
    counters = runtime.engine.counters
    before = counters.snapshot()
    outcomes = take_events(runtime, _worker["keys"], raw, encoding, kind, body_auth)
    after = counters.snapshot()
    reasons: Counter[str] = Counter()
    for outcome in outcomes:
        for error in outcome.errors:
            reasons[f"{error.field}: {error.summary}" if error.field else error.summary] += 1
    return {
        "events": len(outcomes),
        "counters": {k: after[k] - before[k] for k in _COUNTED},
        "by_preset": Counter(name for outcome in outcomes for name in outcome.matched),
        "reasons": reasons,
    }
