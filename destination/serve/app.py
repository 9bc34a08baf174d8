"""The starlette application: Segment's tracking endpoints, ``/healthz`` and ``/metrics``.

A request is answered 200 only after its events are committed to the outbox
(``Runtime.process_batch`` returns then), so an acknowledged event survives a
crash. Decoding, validation and the outbox write run together in one worker
thread per request, keeping the event loop free to read other requests; one
request is one outbox transaction.

The server keeps accepting while delivery is stopped (a revoked token, a
wrong ``api_base_url``): events wait in the outbox, so an outage of
credentials loses nothing. It answers 503 only when it cannot store: the
outbox is at its configured cap (``queue_full``) or its storage fails
(``storage_error``). ``/healthz`` says which of these holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import DeliveryError, QueueFullError, StorageError
from ..host import EventOutcome, Runtime
from ..logthrottle import LogThrottle
from . import workers
from .auth import WriteKeys, basic_user
from .ingest import MAX_REQUEST_BYTES, SEGMENT_TYPES, IngestError, decode_body, parse_request
from .metrics import CONTENT_TYPE, RequestMetrics, render

__all__ = ["STORAGE_FAILURE_HOLD", "Health", "ServerState", "build_app", "take_events"]

log = logging.getLogger("destination.serve")

_OK = b'{"success":true}'

#: seconds a refused store keeps the server "storage failing" when no store succeeds
#: meanwhile: a load balancer that stopped sending on the 503 sends again to try
STORAGE_FAILURE_HOLD = 30.0


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` answers and ``/metrics`` shows about the server's condition."""

    #: "ok", "degraded: delivery stopped: …", "degraded: storage: …", "degraded: queue full: …"
    status: str
    #: 503 while events are refused (storage failing, queue full), else 200
    http_status: int
    #: the cause of a degraded status (never an event's values or the token)
    reason: str | None = None
    storage_failing: bool = False
    queue_full: bool = False


@dataclass
class ServerState:
    """What the endpoints share; ``summary`` is filled in when the runtime closes."""

    runtime: Runtime
    keys: WriteKeys
    shutdown_timeout: float
    #: worker processes that store events (``--workers``); None: this process does
    pool: workers.WorkerPool | None = None
    tally: workers.Tally = field(default_factory=workers.Tally.empty)
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    draining: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    #: one log line per distinct refusal per interval, however many requests get it
    throttle: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    #: the cause of the last refused store and when (monotonic), until a store succeeds
    storage_failure: tuple[str, float] | None = None
    #: the last refusal at the queue's cap, until a store succeeds or the queue has room
    queue_full: str | None = None

    def stats(self) -> dict[str, Any]:
        """The runtime's stats with what the worker processes counted.

        When the outbox cannot be read, the counters kept in memory, without
        the queue's figures, and ``storage_error`` saying why.
        """
        data: dict[str, Any]
        try:
            data = self.runtime.stats()
        except StorageError as exc:
            runtime = self.runtime
            data = dict(runtime.engine.counters.snapshot())
            data.update(
                stopped=runtime.stopped, stop_reason=runtime.stop_reason, storage_error=str(exc)
            )
        return self.tally.merge_into(data)

    def stored(self) -> None:
        """A request's events were stored: storage works and the queue had room."""
        self.storage_failure = None
        self.queue_full = None

    def refuse(self, exc: StorageError) -> JSONResponse:
        """The 503 for a request whose events could not be stored, logged once per interval."""
        message = str(exc)
        if isinstance(exc, QueueFullError):
            self.queue_full = message
            caps = _caps(self.runtime)
            self.throttle.log(
                logging.WARNING,
                f"serve: {f'the queue is full ({caps})' if caps else message}; "
                "answering 503 queue_full until delivery makes room",
            )
            return _error(503, "queue_full", f"{message}; retry later")
        self.storage_failure = (message, time.monotonic())
        if self.pool is not None:
            # A worker's failure; in this process the engine logs its own, once per interval.
            self.throttle.log(logging.ERROR, f"serve: answering 503 storage_error: {message}")
        return _error(
            503, "storage_error", f"the events could not be stored: {message}; retry later"
        )

    def health(self, stats: dict[str, Any]) -> Health:
        """The server's condition; refusing events is worse than a stopped delivery."""
        storage, full = self._storage_failing(stats), self._queue_full(stats)
        flags = {"storage_failing": storage is not None, "queue_full": full is not None}
        if storage is not None:
            return Health(f"degraded: storage: {storage}", 503, storage, **flags)
        if full is not None:
            shown = full.removeprefix("the queue is full: ")
            return Health(f"degraded: queue full: {shown}", 503, full, **flags)
        reason = stats.get("stop_reason") if stats.get("stopped") else None
        if reason:
            # The stop reason starts with "delivery stopped: "; events are still taken.
            return Health(f"degraded: {reason}", 200, reason)
        return Health("ok", 200)

    def _storage_failing(self, stats: dict[str, Any]) -> str | None:
        failure = self.storage_failure
        if failure is not None:
            if time.monotonic() - failure[1] < STORAGE_FAILURE_HOLD:
                return failure[0]
            self.storage_failure = None
        error = stats.get("storage_error")
        return str(error) if error else None

    def _queue_full(self, stats: dict[str, Any]) -> str | None:
        if self.queue_full is not None and not self.draining and _has_room(self.runtime, stats):
            self.queue_full = None  # delivered meanwhile: no request needs to prove it
        return self.queue_full


def _caps(runtime: Runtime) -> str:
    """The configured caps of the queue, as the config names them."""
    options = runtime.engine.options
    caps = (("max_pending", options.max_pending), ("max_queue_bytes", options.max_queue_bytes))
    return ", ".join(f"delivery.{name} {value:,}" for name, value in caps if value)


def _has_room(runtime: Runtime, stats: dict[str, Any]) -> bool:
    """Whether the next event would fit under the caps (the engine refuses at them)."""
    options = runtime.engine.options
    if not (options.max_pending or options.max_queue_bytes):
        return False  # a queue with a cap of its own: only a store tells
    pending = stats.get("pending")
    if options.max_pending and (pending is None or pending >= options.max_pending):
        return False
    if options.max_queue_bytes:
        size = runtime.engine.queue.size_bytes()
        if size is not None and size >= options.max_queue_bytes:
            return False
    return True


def build_app(
    runtime: Runtime,
    keys: WriteKeys,
    *,
    shutdown_timeout: float | None = None,
    pool: workers.WorkerPool | None = None,
) -> Starlette:
    """The ASGI app; on shutdown it drains and closes ``runtime`` (and ``pool``)."""
    timeout = (
        runtime.config.delivery.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
    )
    state = ServerState(runtime, keys, timeout, pool)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.draining = True
        state.summary = await asyncio.to_thread(_drain, state)

    routes = [
        Route(f"/v1/{kind}", _ingest_endpoint(state, kind), methods=["POST"])
        for kind in SEGMENT_TYPES
    ]
    routes.append(Route("/v1/batch", _ingest_endpoint(state, None), methods=["POST"]))
    routes.append(Route("/healthz", _healthz(state), methods=["GET"]))
    routes.append(Route("/metrics", _metrics(state), methods=["GET"]))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error(state)},
    )
    app.state.serve = state
    return app


def _drain(state: ServerState) -> dict[str, Any]:
    """Deliver what is due within the shutdown timeout, keep the rest queued, close."""
    if state.pool is not None:
        state.pool.close()  # no request is in flight any more: uvicorn waited for them
    runtime, timeout = state.runtime, state.shutdown_timeout
    deadline = time.monotonic() + timeout
    runtime.flush(timeout)
    summary = state.stats()
    runtime.close(max(0.0, deadline - time.monotonic()))
    return summary


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "code": code, "message": message}, status_code=status)


def _ingest_endpoint(state: ServerState, kind: str | None) -> Callable[[Request], Any]:
    endpoint = kind or "batch"

    async def ingest(request: Request) -> Response:
        started = time.perf_counter()
        response, events = await _ingest(state, request, kind)
        state.metrics.observe(endpoint, response.status_code, time.perf_counter() - started, events)
        return response

    return ingest


async def _ingest(state: ServerState, request: Request, kind: str | None) -> tuple[Response, int]:
    if state.draining:
        return _error(503, "unavailable", "the server is shutting down; retry"), 0
    header = request.headers.get("authorization")
    if header is not None and not state.keys.accepts(basic_user(header)):
        return _unauthorized(), 0
    executor = None
    try:
        raw = await _read_body(request)
        encoding = request.headers.get("content-encoding")
        if state.pool is None:
            outcomes = await asyncio.to_thread(
                take_events, state.runtime, state.keys, raw, encoding, kind, header is None
            )
            events = len(outcomes)
            stored = sum(outcome.accepted for outcome in outcomes)
        else:
            executor = state.pool.executor
            taken = await asyncio.get_running_loop().run_in_executor(
                executor, workers.take, raw, encoding, kind, header is None
            )
            state.tally.add(taken)
            events = taken["events"]
            stored = taken["counters"]["accepted"]
    except IngestError as exc:
        if exc.status == 401:
            return _unauthorized(), 0
        return _error(exc.status, exc.code, exc.message), 0
    except ClientDisconnect:
        return _error(400, "invalid_request", "the client went away"), 0
    except StorageError as exc:  # QueueFullError too; raised here or in a worker process
        return state.refuse(exc), 0
    except DeliveryError:
        return _error(503, "unavailable", "the server is shutting down; retry"), 0
    except BrokenProcessPool:
        log.error("serve: a worker process died; starting the workers again")
        if state.pool is not None and executor is not None and not state.draining:
            await asyncio.to_thread(state.pool.restart, executor)
        return _error(503, "unavailable", "the events could not be stored; retry"), 0
    except Exception as exc:
        log.error("serve: storing a request failed: %s", type(exc).__name__, exc_info=True)
        return _error(500, "internal", "the events could not be stored; retry"), 0
    if stored:
        state.stored()
    return Response(_OK, media_type="application/json"), events


def take_events(
    runtime: Runtime,
    keys: WriteKeys,
    raw: bytes,
    encoding: str | None,
    kind: str | None,
    body_auth: bool,
) -> list[EventOutcome]:
    """Decode, validate, check a body write key, store in one transaction."""
    events, write_key = parse_request(decode_body(raw, encoding), kind)
    if body_auth and not keys.accepts(write_key):
        raise IngestError(401, "unauthorized", _UNAUTHORIZED)
    return runtime.process_batch(events) if events else []


_UNAUTHORIZED = "missing or unknown write key: send it as the Basic auth user name (empty password)"


def _unauthorized() -> JSONResponse:
    response = _error(401, "unauthorized", _UNAUTHORIZED)
    response.headers["WWW-Authenticate"] = 'Basic realm="destination"'
    return response


async def _read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes the request limit."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise IngestError(400, "invalid_request", "bad Content-Length") from None
        if declared > MAX_REQUEST_BYTES:
            raise IngestError(
                413, "too_large", f"request body larger than {MAX_REQUEST_BYTES // 1024} KB"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise IngestError(
                413, "too_large", f"request body larger than {MAX_REQUEST_BYTES // 1024} KB"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _healthz(state: ServerState) -> Callable[[Request], Any]:
    async def healthz(request: Request) -> Response:
        started = time.perf_counter()
        if state.draining:
            body: dict[str, Any] = {"status": "draining"}
            status = 503
        else:
            stats, health = await asyncio.to_thread(_condition, state)
            body = {"status": health.status}
            if isinstance(state.runtime.engine.queue, workers.PutOnlyQueue):
                body["delivery"] = "ingest only"  # serve --no-deliver: other nodes deliver
            for key in ("pending", "dead_letters"):
                if key in stats:  # absent when the outbox cannot be read
                    body[key] = stats[key]
            if health.reason is not None:
                body["reason"] = health.reason
            if stats.get("stopped") and health.reason != stats.get("stop_reason"):
                body["stop_reason"] = stats["stop_reason"]
            status = health.http_status
        state.metrics.observe("healthz", status, time.perf_counter() - started)
        return JSONResponse(body, status_code=status)

    return healthz


def _condition(state: ServerState) -> tuple[dict[str, Any], Health]:
    """Stats and health in one go, in a thread: both may read the outbox."""
    stats = state.stats()
    return stats, state.health(stats)


def _queue_figures(state: ServerState) -> tuple[dict[str, Any], Health, dict[str, int] | None]:
    """:func:`_condition` and, when the queue offers them (JetStream), its consumer's
    figures; None when it does not, or cannot be read."""
    stats, health = _condition(state)
    read = getattr(state.runtime.engine.queue, "consumer_info", None)
    figures = None
    if callable(read):
        with contextlib.suppress(StorageError):
            figures = read()
    return stats, health, figures


def _metrics(state: ServerState) -> Callable[[Request], Any]:
    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        figures = None
        if state.draining:
            stats = state.summary
            health = state.health(stats)
        else:
            stats, health, figures = await asyncio.to_thread(_queue_figures, state)
        text = render(
            stats,
            state.metrics,
            draining=state.draining,
            storage_failing=health.storage_failing,
            queue_full=health.queue_full,
            queue=figures,
        )
        state.metrics.observe("metrics", 200, time.perf_counter() - started)
        return Response(text, media_type=CONTENT_TYPE)

    return metrics


def _http_error(state: ServerState) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        state.metrics.observe("other", status, 0.0)
        if status == 404:
            return _error(404, "not_found", f"no endpoint {request.url.path[:100]}")
        if status == 405:
            response = _error(405, "method_not_allowed", f"{request.method} is not allowed here")
            if isinstance(exc, HTTPException) and exc.headers:
                response.headers.update(exc.headers)
            return response
        detail = exc.detail if isinstance(exc, HTTPException) else "error"
        return _error(status, "error", str(detail))

    return handler
