"""The delivery engine: outbox → batches → executor → verdict → ack, retry or dead letter.

Callers (the host API, ``destination run``, the ingest server) live in
ordinary threads, so the entry points are synchronous and thread-safe: a
``submit`` returns once the items are committed to the outbox, which is the
moment an event counts as accepted. Sending happens on an asyncio loop in a
background thread that claims due chunks (the queue's unit: the items of one
store, for one route) from the queue in a bounded window (memory stays flat
however long the input), batches whole chunks per route, and resolves every
claimed chunk in exactly one way:

- delivered: acknowledged by the destination, removed from the outbox;
- retry: attempt counted, due again after a jittered backoff, until max age;
- rejected: bisected until the refused events are alone, then dead-lettered
  with the destination's message while every other event is delivered;
- stop (auth/permission, or no destination API at the configured address):
  delivery halts with one clear message, the entries stay queued for a
  restart, :meth:`DeliveryEngine.resume` or the periodic retry of a stopped
  route.

Retries are per request, not per event: the entries of a failed request get
one due time and come back together, to be batched again up to the batch
size; a partial batch is only sent when nothing more is due, so an outage
never turns into a storm of one-item requests. Each route (destination
instance and event source) has its own token bucket, halved by 429s and 5xx.

An entry is removed only after the destination acknowledged it, so a crash
between send and acknowledgement re-sends that batch with the same event_ids,
which the destination deduplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from ..actions import Destination, Outcome, Route, Verdict
from ..errors import (
    ConfigurationError,
    DeliveryError,
    DestinationError,
    FatalDeliveryError,
    QueueFullError,
    RejectedDeliveryError,
    RetryableDeliveryError,
    StorageError,
    redact,
)
from ..logthrottle import LogThrottle
from ..plugins import load_plugins, pm
from .batcher import ENVELOPE_BYTES, MAX_BATCH_SIZE, Batch, Batcher, items_of
from .executors import Executor, TransportError
from .queue import Chunk, Queue, StoredItem
from .ratelimit import TokenBucket
from .retry import RetryPolicy

__all__ = [
    "COUNTER_NAMES",
    "Counters",
    "DeliveryEngine",
    "DeliveryOptions",
    "DeliveryResult",
    "ResultOutcome",
]

log = logging.getLogger("destination.delivery")

COUNTER_NAMES = (
    "received",
    "matched",
    "invalid",
    "accepted",
    "delivered",
    "retried",
    "rejected",
    "dead_lettered",
)


class ResultOutcome(enum.Enum):
    """How one event's delivery ended."""

    DELIVERED = "delivered"
    #: the destination refused the event's content; kept as a dead letter with its message
    REJECTED = "rejected"
    #: given up (older than max age); kept as a dead letter
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one event; sent to ``on_result`` and the ``delivery_result`` hook."""

    event_id: str
    outcome: ResultOutcome
    message: str = ""
    code: int | None = None
    status: int | None = None
    attempts: int = 1
    route: Route | None = None


@dataclass(frozen=True)
class DeliveryOptions:
    """Knobs of the engine; defaults suit TikTok."""

    batch_size: int = MAX_BATCH_SIZE
    max_bytes: int = 2_000_000
    linger: float = 1.0
    #: requests in flight at once
    concurrency: int = 4
    #: requests per second (token bucket) and its burst
    rate: float = 100.0
    burst: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: entries held in memory (claimed, batching or in flight); 0 = batch_size * (concurrency + 2)
    window: int = 0
    #: how often to look for entries other processes put in the outbox (replay)
    poll_interval: float = 1.0
    #: after this many "too many requests" answers in a row, a route waits at least
    #: ``rate_limit_pause`` seconds (TikTok: about 5 minutes after a per-minute limit)
    rate_limit_pause_after: int = 3
    rate_limit_pause: float = 300.0
    #: a stopped delivery tries again by itself after this many seconds (0: never)
    stop_retry_interval: float = 300.0
    #: refuse new events (QueueFullError) once this many wait (0: no cap)
    max_pending: int = 0
    #: refuse new events once the queue's storage is this large, in bytes (0: no cap)
    max_queue_bytes: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.window < 0:
            raise ConfigurationError(f"window must be >= 0, got {self.window}")
        if self.poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be > 0, got {self.poll_interval}")
        for name in ("rate_limit_pause", "stop_retry_interval", "max_pending", "max_queue_bytes"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.rate_limit_pause_after < 1:
            raise ConfigurationError(
                f"rate_limit_pause_after must be >= 1, got {self.rate_limit_pause_after}"
            )

    @property
    def effective_window(self) -> int:
        return self.window or self.batch_size * (self.concurrency + 2)


class Counters:
    """Thread-safe event counters. The pipeline adds received/matched/invalid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTER_NAMES, 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                if name not in self._values:
                    raise KeyError(f"unknown counter {name!r}; known: {', '.join(COUNTER_NAMES)}")
                self._values[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


ResultCallback = Callable[[DeliveryResult], Any]


def _finite(timeout: float | None) -> float | None:
    """A timeout asyncio and futures accept: infinity means none; NaN is refused."""
    if timeout is None or timeout == float("inf"):
        return None
    if timeout != timeout:
        raise ValueError("timeout must be a number of seconds, got nan")
    return max(0.0, timeout)


class DeliveryEngine:
    """Delivers what is submitted, durably. Use as a context manager or call :meth:`close`.

    The engine owns ``queue`` and ``executor`` and closes them on :meth:`close`.
    ``on_result`` is called on the engine's thread: keep it quick.
    """

    def __init__(
        self,
        destination: Destination,
        settings: Any,
        *,
        queue: Queue,
        executor: Executor,
        options: DeliveryOptions | None = None,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.destination = destination
        self._settings = settings
        self._secrets = [s for s in destination.secrets(settings) if s]
        self.queue = queue
        self.executor = executor
        self.options = options or DeliveryOptions()
        self.on_result = on_result
        self.counters = Counters()
        self._batcher = Batcher(
            self.options.batch_size, self.options.max_bytes, self.options.linger
        )
        self._window = self.options.effective_window
        #: chunks claimed (batching or in flight) by id, and how many items they hold
        self._claimed: dict[int, Chunk] = {}
        self._held = 0
        #: delivered, but removing them from the queue failed (a full disk): held, not resent
        self._unacked: list[int] = []
        #: a retry, release or dead letter the queue could not record: given back later
        self._unsettled: list[Chunk] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._buckets: dict[Route, TokenBucket] = {}
        self._rate_limited_in_a_row: dict[Route, int] = {}
        self._flushing = 0
        self._stop_reason: str | None = None
        self._stop_timer: asyncio.TimerHandle | None = None
        #: the last storage failure (disk full, read-only...), cleared once storage works again
        self._storage_error: str | None = None
        self._pending_estimate: int | None = None
        self._pending_checked = 0.0
        self._log = LogThrottle(log)
        self._final: dict[str, Any] | None = None
        self._closed = False
        self._closing = False
        self._accepting = True
        load_plugins()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name="destination-delivery", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()

    # -- public, thread-safe --------------------------------------------------------------

    def submit(self, route: Route, item: dict[str, Any], event_id: str) -> None:
        """Store one item durably; it counts as accepted when this returns."""
        self.submit_many([(route, item, event_id)])

    def submit_many(self, events: Iterable[tuple[Route, StoredItem, str]]) -> int:
        """Store (route, item, event_id) triples in one transaction; return how many.

        Raises :class:`~destination.errors.StorageError` when the queue cannot
        store them (nothing of this call is accepted then) and
        :class:`~destination.errors.QueueFullError` at the configured cap.
        """
        if not self._accepting:
            raise DeliveryError("delivery engine is closed: nothing more can be submitted")
        events = events if isinstance(events, list) else list(events)
        self._check_room(len(events))
        try:
            stored = self.queue.put_many(
                events,
                max_items=self.options.batch_size,
                max_bytes=self.options.max_bytes - ENVELOPE_BYTES,
            )
        except StorageError as exc:
            self._storage_failed(str(exc))
            raise
        self._storage_error = None
        if stored:
            self.counters.add(accepted=stored)
            if self._pending_estimate is not None:
                self._pending_estimate += stored
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stored anyway
                self._loop.call_soon_threadsafe(self._wake.set)
        return stored

    def _check_room(self, adding: int) -> None:
        """Refuse at the configured cap (events waiting, or bytes of storage)."""
        options = self.options
        if options.max_pending:
            now = time.monotonic()
            if self._pending_estimate is None or now - self._pending_checked > 1.0:
                # Other processes (serve's workers, replay) add too: recount now and then.
                self._pending_estimate = self.queue.stats().pending
                self._pending_checked = now
            if self._pending_estimate + adding > options.max_pending:
                raise QueueFullError(
                    f"the queue is full: {self._pending_estimate:,} events wait "
                    f"(delivery.max_pending {options.max_pending:,})"
                )
        if options.max_queue_bytes:
            size = self.queue.size_bytes()
            if size is not None and size >= options.max_queue_bytes:
                raise QueueFullError(
                    f"the queue is full: {size:,} bytes stored "
                    f"(delivery.max_queue_bytes {options.max_queue_bytes:,})"
                )

    async def asubmit_many(self, events: Iterable[tuple[Route, StoredItem, str]]) -> int:
        """``submit_many`` for async callers (an ingest server): the write runs in a thread."""
        return await asyncio.to_thread(self.submit_many, list(events))

    async def aflush(self, timeout: float | None = None) -> bool:
        """``flush`` for async callers; does not block their event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything due now, ignoring linger; True when nothing due is left unsent.

        Entries waiting for a retry later are not waited for. False on timeout
        or when delivery is stopped.
        """
        return self._call(self._flush(), timeout, "flush")

    def drain(self, timeout: float | None = None) -> bool:
        """Deliver until nothing waits, retrying as the backoff says, for up to ``timeout`` s.

        True when the queue is empty (everything delivered or dead-lettered);
        False on timeout or when delivery is stopped. What is left stays queued.
        """
        return self._call(self._drain(), timeout, "drain")

    def _call(self, coroutine: Any, timeout: float | None, what: str) -> bool:
        if self._closed:
            coroutine.close()
            return False
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise DeliveryError(f"{what}() called from on_result or a hook would deadlock")
        timeout = _finite(timeout)
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return bool(future.result(timeout))
        except FutureTimeout:
            future.cancel()
            return False

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush within ``timeout`` seconds, keep the rest queued, release everything.

        Returns True when everything due was delivered before the deadline.
        Safe to call twice. :meth:`stats` still answers afterwards, with the
        figures as they were once the engine had stopped.
        """
        if self._closed:
            return True
        if threading.current_thread() is self._thread:
            raise DeliveryError("close() called from on_result or a hook would deadlock")
        timeout = _finite(timeout)
        if timeout is None:
            timeout = 365 * 86_400.0  # "no deadline", in a number asyncio can schedule
        self._accepting = False
        future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        try:
            flushed = future.result(timeout + 30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30.0)
            self._loop.close()
            try:
                self._final = self._snapshot(routes=True)
            except StorageError as exc:
                self._final = self._snapshot(routes=False, queue_error=str(exc))
            self._closed = True
            self.queue.close()
        return flushed

    def resume(self, settings: Any = None) -> None:
        """Start delivering again after a stop, with new settings (e.g. a rotated token)."""
        if settings is not None:
            self._settings = settings
            self._secrets = [s for s in self.destination.secrets(settings) if s]
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._resume)

    def _resume(self) -> None:
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None
        if self._stop_reason is not None:
            log.info("delivery: resuming (was: %s)", self._stop_reason)
        self._stop_reason = None
        self._wake.set()

    @property
    def settings(self) -> Any:
        """The settings requests are built with now (:meth:`resume` replaces them)."""
        return self._settings

    @property
    def stopped(self) -> bool:
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def storage_error(self) -> str | None:
        """The last failure of the queue's storage, until it works again."""
        return self._storage_error

    def stats(self, *, routes: bool = False) -> dict[str, Any]:
        """Counters, what the queue holds and whether delivery is stopped.

        ``routes=True`` adds ``routes`` (per route: what waits and its last
        error, as dicts) and ``dead_letter_reasons``. After :meth:`close` the
        figures are those at the moment the engine stopped.
        """
        if self._final is not None:
            data = dict(self._final)
            if not routes:
                data.pop("routes", None)
                data.pop("dead_letter_reasons", None)
            return data
        return self._snapshot(routes=routes)

    def _snapshot(self, *, routes: bool, queue_error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.counters.snapshot()
        if queue_error is None:
            q = self.queue.stats()
            data.update(pending=q.pending, due=q.due, dead_letters=q.dead_letters)
            if routes:
                data["routes"] = [r.as_dict() for r in self.queue.route_stats()]
                data["dead_letter_reasons"] = [
                    {"reason": reason, "code": code, "count": count}
                    for reason, code, count in self.queue.dead_letter_reasons()
                ]
        data.update(
            in_memory=self._held,
            stopped=self.stopped,
            stop_reason=self._stop_reason,
            storage_error=queue_error or self._storage_error,
        )
        return data

    def __enter__(self) -> DeliveryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeliveryEngine(destination={self.destination.name!r}, queue={self.queue!r})"

    # -- the loop ---------------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _start(self) -> None:
        self._wake = asyncio.Event()
        #: set whenever a request finishes: flush and drain look again at once
        self._progress = asyncio.Event()
        self._semaphore = asyncio.Semaphore(self.options.concurrency)
        self._pump_task = asyncio.create_task(self._pump(), name="destination-pump")

    def _bucket(self, route: Route) -> TokenBucket:
        bucket = self._buckets.get(route)
        if bucket is None:
            bucket = self._buckets[route] = TokenBucket(self.options.rate, self.options.burst)
        return bucket

    def _storage_failed(self, message: str) -> None:
        self._storage_error = message
        self._log.log(logging.ERROR, f"delivery: {message}")

    def _nothing_left(self) -> bool:
        """Nothing claimed and nothing waiting in the queue (delivered ones not yet removed
        count as done)."""
        held = set(self._claimed) - set(self._unacked)
        return not held and self.queue.next_due() is None

    def _idle(self) -> bool:
        if self._claimed:
            return False
        next_due = self.queue.next_due()
        return next_due is None or next_due > time.time()

    async def _pump(self) -> None:
        while not self._closing:
            try:
                if self._unacked:
                    self._ack_held()
                if self._unsettled:
                    self._release_held()
                more = self._pump_once()
                if self._storage_error is not None and not (self._unacked or self._unsettled):
                    self._storage_error = None
            except StorageError as exc:
                # A full disk, a lock held elsewhere: say it once per interval, try again.
                self._storage_failed(self._redact(str(exc)))
                more = False
            except Exception as exc:
                self._log.log(
                    logging.ERROR, f"delivery: reading the queue failed: {self._redact(repr(exc))}"
                )
                more = False
            if more:
                await asyncio.sleep(0)  # let sends progress between claims
                continue
            await self._sleep()

    def _pump_once(self) -> bool:
        """Claim what fits in the window and start the batches that are ready.

        Returns True when the claim was full, i.e. more may be due right away.
        A batch smaller than the batch size leaves only when nothing more is
        due to join it (or the window is full of requests in flight, which
        free room as they finish).
        """
        batcher = self._batcher
        if self._stop_reason is not None:
            for batch in batcher.drain():  # stopped: give back what waits to be batched
                self._release(batch.chunks)
            return False
        more = False
        room = self._window - self._held
        saturated = room <= 0
        if room > 0:
            want = min(room, self.options.batch_size)
            chunks = self.queue.claim(want)
            got = sum(len(c.items) for c in chunks)
            full = bool(chunks) and (got >= want or self._more_due())
            # A claim cut short by the window, not by what is due: more may be waiting.
            saturated = full and want < self.options.batch_size
            more = full and not saturated
            now = time.monotonic()
            for chunk in chunks:
                for part in self._fit(chunk):
                    self._claimed[part.id] = part
                    self._held += len(part.items)
                    for batch in batcher.add(part, now):
                        self._spawn(batch)
        if more or (saturated and self._tasks):
            # More is due: fill the open batches first. Requests in flight free room
            # (and wake the pump) as they finish.
            ready = []
        elif self._flushing:
            ready = batcher.drain()
        else:
            ready = batcher.due(time.monotonic())
        for batch in ready:
            self._spawn(batch)
        return more

    def _more_due(self) -> bool:
        next_due = self.queue.next_due()
        return next_due is not None and next_due <= time.time()

    def _fit(self, chunk: Chunk) -> list[Chunk]:
        """A chunk as parts no larger than a request (stored under a larger batch size)."""
        limit, room = self.options.batch_size, self.options.max_bytes - ENVELOPE_BYTES
        if len(chunk.items) <= limit and chunk.size <= room:
            return [chunk]
        sizes: list[int] = []
        count = size = 0
        for item in chunk.items:
            n = len(item.encode("utf-8")) + 1
            if count and (count >= limit or size + n > room):
                sizes.append(count)
                count = size = 0
            count += 1
            size += n
        sizes.append(count)
        return self.queue.split(chunk, sizes) if len(sizes) > 1 else [chunk]

    async def _sleep(self) -> None:
        timeout = self.options.poll_interval
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        if self._stop_reason is None and self._held < self._window:
            with contextlib.suppress(StorageError):
                next_due = self.queue.next_due()
                if next_due is not None:
                    timeout = min(timeout, max(0.0, next_due - time.time()))
        # call_later rather than wait_for: wait_for can swallow a cancellation (bpo-42130).
        timer = asyncio.get_running_loop().call_later(max(timeout, 0.001), self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()
        self._wake.clear()

    def _spawn(self, batch: Batch) -> None:
        task = asyncio.create_task(self._deliver(batch.chunks))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, StorageError):
                self._storage_failed(self._redact(str(exc)))
            else:
                self._log.log(logging.ERROR, f"delivery task failed: {self._redact(repr(exc))}")
        self._wake.set()
        self._progress.set()

    async def _flush(self) -> bool:
        return await self._until(self._idle)

    async def _drain(self) -> bool:
        return await self._until(self._nothing_left)

    async def _until(self, done: Callable[[], bool]) -> bool:
        """Send without linger until ``done()``; False when delivery stops first.

        Looks again as soon as a request finishes, and at least every 50 ms
        (for what becomes due meanwhile)."""
        self._flushing += 1
        self._wake.set()
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._stop_reason is not None:
                    return False
                with contextlib.suppress(StorageError):
                    if done():
                        return True
                self._progress.clear()
                timer = loop.call_later(0.05, self._progress.set)
                try:
                    await self._progress.wait()
                finally:
                    timer.cancel()
        finally:
            self._flushing -= 1

    async def _shutdown(self, timeout: float) -> bool:
        try:
            flushed = await asyncio.wait_for(self._flush(), timeout)
        except TimeoutError:
            flushed = False
        self._closing = True
        self._wake.set()
        await self._pump_task
        if self._stop_timer is not None:
            self._stop_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._batcher.drain()
        if self._unacked:
            with contextlib.suppress(StorageError):
                self._ack_held()
            if self._unacked:
                log.error(
                    "delivery: %d delivered events could not be removed from the queue (%s); "
                    "a later run sends them again and TikTok deduplicates them by event_id",
                    len(self._unacked),
                    self._storage_error,
                )
        if self._claimed:
            try:
                self.queue.release(list(self._claimed))
            except StorageError as exc:
                # Not lost: claims of a dead process are handed out again on the next start.
                self._storage_failed(self._redact(str(exc)))
            self._claimed.clear()
            self._held = 0
        try:
            await self.executor.aclose()
        except Exception as exc:  # closing must not hang or raise on a broken executor
            log.warning("closing the executor failed: %s", self._redact(repr(exc)))
        return flushed

    # -- one batch -------------------------------------------------------------------------

    async def _deliver(self, chunks: list[Chunk]) -> None:
        # The chunks this request is responsible for; a bisect replaces some by their parts.
        owned = {c.id for c in chunks}
        try:
            await self._deliver_batch(chunks, owned)
        except Exception:
            # Never strand claimed chunks: give back whatever this request still holds.
            self._give_back([self._claimed[i] for i in owned if i in self._claimed])
            raise

    def _give_back(self, chunks: list[Chunk]) -> None:
        """Release chunks a failed settlement left claimed; if the queue cannot take them
        now (storage down), hold them and release them once it can (:meth:`_pump`)."""
        try:
            self._release(chunks)
        except StorageError:
            self._unsettled.extend(c for c in chunks if c not in self._unsettled)

    def _release_held(self) -> None:
        """Give back what could not be given back before (storage is back)."""
        held = [c for c in self._unsettled if c.id in self._claimed]
        self._release(held)
        self._unsettled = []

    async def _deliver_batch(self, chunks: list[Chunk], owned: set[int] | None = None) -> None:
        if not chunks:
            return
        if self._stop_reason is not None:
            self._release(chunks)
            return
        route = chunks[0].route
        bucket = self._bucket(route)
        async with self._semaphore:
            if self._stop_reason is not None:
                self._release(chunks)
                return
            await bucket.acquire()
            verdict = await self._attempt(route, chunks)
        outcome = verdict.outcome
        if outcome is Outcome.DELIVERED:
            bucket.succeeded()
            self._rate_limited_in_a_row.pop(route, None)
            self._resolve_delivered(chunks, verdict)
        elif outcome is Outcome.RETRY:
            if (
                verdict.rate_limited
                or verdict.retry_after is not None
                or verdict.status in (None, 429)
                or verdict.status >= 500
            ):
                bucket.throttled()  # the route slows down as a whole, not each event
            self._resolve_retry(route, chunks, verdict)
        elif outcome is Outcome.STOP:
            self._stop(verdict)
            self._release(chunks, self._stop_reason)
        elif sum(len(c.items) for c in chunks) == 1:
            self._resolve_dead(chunks, verdict, ResultOutcome.REJECTED, verdict.message)
        else:
            for part in self._split(chunks, verdict.index, owned):
                await self._deliver_batch(part, owned)

    def _split(
        self, chunks: list[Chunk], index: int | None, owned: set[int] | None = None
    ) -> list[list[Chunk]]:
        """Isolate a rejected batch's bad events: around the named index, else in halves.

        An event is dead-lettered only when it is rejected alone, so a wrong
        index costs requests, never a good event. Chunks are cut where a part
        ends (the queue replaces them by their parts), so each part is whole
        chunks again.
        """
        total = sum(len(c.items) for c in chunks)
        if index is not None and 0 <= index < total:
            cuts = {index, index + 1} - {0, total}
        else:
            cuts = {total // 2}
        pieces: list[Chunk] = []
        offset = 0
        for chunk in chunks:
            n = len(chunk.items)
            inner = sorted(k - offset for k in cuts if offset < k < offset + n)
            if inner:
                bounds = [0, *inner, n]
                parts = self.queue.split(chunk, [b - a for a, b in itertools.pairwise(bounds)])
                del self._claimed[chunk.id]
                for part in parts:
                    self._claimed[part.id] = part
                if owned is not None:
                    owned.discard(chunk.id)
                    owned.update(part.id for part in parts)
                pieces.extend(parts)
            else:
                pieces.append(chunk)
            offset += n
        groups: list[list[Chunk]] = [[]]
        position = 0
        for piece in pieces:
            if position in cuts and groups[-1]:
                groups.append([])
            groups[-1].append(piece)
            position += len(piece.items)
        return groups

    async def _attempt(self, route: Route, chunks: list[Chunk]) -> Verdict:
        """Build, send and classify; every failure becomes a Verdict, never an exception."""
        items = items_of(chunks)
        try:
            request = self.destination.build_request_json(self._settings, route, items)
        except ConfigurationError as exc:
            return Verdict(Outcome.STOP, message=self._redact(f"settings: {exc}"))
        except DestinationError as exc:
            return Verdict(Outcome.REJECTED, message=self._redact(str(exc)))
        except Exception as exc:  # a bug or wrong settings: stop, keep everything queued
            message = f"could not build the request: {type(exc).__name__}: {exc}"
            return Verdict(Outcome.STOP, message=self._redact(message))
        try:
            response = await self.executor.send(request)
        except TransportError as exc:
            return Verdict(Outcome.RETRY, message=self._redact(str(exc)))
        except DeliveryError as exc:
            return self._verdict_from_error(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.log(logging.WARNING, f"executor error: {self._redact(repr(exc))}")
            return Verdict(
                Outcome.RETRY, message=self._redact(f"executor error: {type(exc).__name__}: {exc}")
            )
        if response.synthetic:
            return Verdict(Outcome.DELIVERED, status=response.status)
        try:
            verdict = self.destination.classify(response.status, response.headers, response.body)
        except Exception as exc:
            self._log.log(logging.WARNING, f"could not read the answer: {self._redact(repr(exc))}")
            return Verdict(
                Outcome.RETRY,
                status=response.status,
                message=self._redact(f"unreadable answer (HTTP {response.status}): {exc}"),
            )
        if verdict.message:
            verdict = dataclasses.replace(verdict, message=self._redact(verdict.message))
        return verdict

    def _verdict_from_error(self, exc: DeliveryError) -> Verdict:
        message = self._redact(exc.message)
        common: dict[str, Any] = {"message": message, "status": exc.status, "code": exc.code}
        if isinstance(exc, FatalDeliveryError):
            return Verdict(Outcome.STOP, **common)
        if isinstance(exc, RejectedDeliveryError):
            return Verdict(Outcome.REJECTED, index=exc.index, **common)
        if isinstance(exc, RetryableDeliveryError):
            return Verdict(Outcome.RETRY, retry_after=exc.retry_after, **common)
        return Verdict(Outcome.RETRY, **common)

    # -- resolutions: every claimed entry ends in exactly one ----------------------------------

    def _forget(self, chunks: Sequence[Chunk]) -> list[int]:
        ids = []
        for chunk in chunks:
            if self._claimed.pop(chunk.id, None) is not None:
                self._held -= len(chunk.items)
                ids.append(chunk.id)
        return ids

    def _release(self, chunks: Sequence[Chunk], error: str | None = None) -> None:
        ids = [c.id for c in chunks if c.id in self._claimed]
        if ids:
            self.queue.release(ids, error)
            self._forget(chunks)

    def _ack_held(self) -> None:
        """Remove delivered chunks whose removal failed before (storage is back)."""
        held = self._unacked
        self.queue.ack(held)
        for chunk_id in held:
            chunk = self._claimed.pop(chunk_id, None)
            if chunk is not None:
                self._held -= len(chunk.items)
        self._unacked = []

    def _resolve_delivered(self, chunks: Sequence[Chunk], verdict: Verdict) -> None:
        ids = [c.id for c in chunks]
        count = sum(len(c.items) for c in chunks)
        try:
            self.queue.ack(ids)
        except StorageError as exc:
            # Delivered all the same: hold them as claimed (never resent by this process)
            # and remove them once storage works again.
            self._storage_failed(self._redact(str(exc)))
            self._unacked.extend(ids)
        else:
            self._forget(chunks)
        if self._pending_estimate is not None:
            self._pending_estimate -= count
        self.counters.add(delivered=count)
        self._emit(
            chunks,
            lambda c, event_id: DeliveryResult(
                event_id,
                ResultOutcome.DELIVERED,
                verdict.message,
                verdict.code,
                verdict.status,
                c.attempts + 1,
                c.route,
            ),
        )

    def _resolve_retry(self, route: Route, chunks: Sequence[Chunk], verdict: Verdict) -> None:
        policy = self.options.retry
        now = time.time()
        expired = [c for c in chunks if policy.expired(c.enqueued_at, now)]
        waiting = [c for c in chunks if not policy.expired(c.enqueued_at, now)]
        what = verdict.message or (
            f"HTTP {verdict.status}" if verdict.status else "retryable error"
        )
        if waiting:
            # One backoff decision for the whole request: its chunks come back together.
            attempt = max(c.attempts for c in waiting) + 1
            delay = policy.delay(attempt, verdict)
            if verdict.rate_limited:
                in_a_row = self._rate_limited_in_a_row.get(route, 0) + 1
                self._rate_limited_in_a_row[route] = in_a_row
                if in_a_row >= self.options.rate_limit_pause_after:
                    delay = max(delay, self.options.rate_limit_pause)
            self.queue.retry([c.id for c in waiting], now + delay, what)
            self._forget(waiting)
            self.counters.add(retried=sum(len(c.items) for c in waiting))
        if expired:
            reason = f"gave up after max age {policy.max_age:g}s: {what}"
            self._resolve_dead(expired, verdict, ResultOutcome.DEAD_LETTERED, reason)

    def _resolve_dead(
        self, chunks: Sequence[Chunk], verdict: Verdict, outcome: ResultOutcome, reason: str
    ) -> None:
        reason = reason or "rejected by the destination"
        count = sum(len(c.items) for c in chunks)
        self.queue.dead_letter([c.id for c in chunks], reason, verdict.code)
        self._forget(chunks)
        if self._pending_estimate is not None:
            self._pending_estimate -= count
        if outcome is ResultOutcome.REJECTED:
            self.counters.add(rejected=count, dead_lettered=count)
        else:
            self.counters.add(dead_lettered=count)
        first = chunks[0].event_ids[0]
        more = f" and {count - 1} more" if count > 1 else ""
        log.warning("event %s%s dead-lettered: %s", first, more, reason)
        self._emit(
            chunks,
            lambda c, event_id: DeliveryResult(
                event_id, outcome, reason, verdict.code, verdict.status, c.attempts + 1, c.route
            ),
        )

    def _stop(self, verdict: Verdict) -> None:
        if self._stop_reason is not None:
            return
        detail = verdict.message or "credentials or permission refused"
        codes = ", ".join(
            part
            for part in (
                f"HTTP {verdict.status}" if verdict.status is not None else "",
                f"code {verdict.code}" if verdict.code is not None else "",
            )
            if part
        )
        # Only an answer from the destination is about credentials; a local stop
        # (an executor's output closed) just keeps the events.
        advice = " — fix the settings (token, pixel, api_base_url), then restart" if codes else ""
        self._stop_reason = self._redact(
            f"delivery stopped: {detail}{f' ({codes})' if codes else ''}; "
            f"events stay queued in the outbox{advice}"
        )
        log.error("%s", self._stop_reason)
        interval = self.options.stop_retry_interval
        if interval and not self._closing:
            # Try again by itself later: a revoked token may be restored, an outage end.
            self._stop_timer = asyncio.get_running_loop().call_later(interval, self._resume)

    def _emit(self, chunks: Sequence[Chunk], make: Callable[[Chunk, str], DeliveryResult]) -> None:
        hook = pm.hook.delivery_result
        has_hook = bool(hook.get_hookimpls())
        if self.on_result is None and not has_hook:
            return
        for chunk in chunks:
            for event_id in chunk.event_ids:
                result = make(chunk, event_id)
                if self.on_result is not None:
                    try:
                        self.on_result(result)
                    except Exception as exc:
                        log.warning("on_result callback failed: %s", self._redact(repr(exc)))
                if has_hook:
                    try:
                        hook(result=result)
                    except Exception as exc:
                        log.warning("delivery_result hook failed: %s", self._redact(repr(exc)))

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)
