"""The starlette application: Segment's tracking endpoints, ``/healthz`` and ``/metrics``.

A request is answered 200 only after its events are committed to the outbox
(``Runtime.process_batch`` returns then), so an acknowledged event survives a
crash. Decoding, validation and the outbox write run together in one worker
thread per request, keeping the event loop free to read other requests; one
request is one outbox transaction.
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

from ..errors import DeliveryError
from ..host import EventOutcome, Runtime
from . import workers
from .auth import WriteKeys, basic_user
from .ingest import MAX_REQUEST_BYTES, SEGMENT_TYPES, IngestError, decode_body, parse_request
from .metrics import CONTENT_TYPE, RequestMetrics, render

__all__ = ["ServerState", "build_app", "take_events"]

log = logging.getLogger("destination.serve")

_OK = b'{"success":true}'


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

    def stats(self) -> dict[str, Any]:
        """The runtime's stats with what the worker processes counted."""
        return self.tally.merge_into(self.runtime.stats())


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
        else:
            executor = state.pool.executor
            taken = await asyncio.get_running_loop().run_in_executor(
                executor, workers.take, raw, encoding, kind, header is None
            )
            state.tally.add(taken)
            events = taken["events"]
    except IngestError as exc:
        if exc.status == 401:
            return _unauthorized(), 0
        return _error(exc.status, exc.code, exc.message), 0
    except ClientDisconnect:
        return _error(400, "invalid_request", "the client went away"), 0
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
        else:
            stats = await asyncio.to_thread(state.stats)
            body = {
                "status": "stopped" if stats["stopped"] else "ok",
                "pending": stats.get("pending", 0),
                "dead_letters": stats.get("dead_letters", 0),
            }
            if stats["stopped"]:
                body["reason"] = stats["stop_reason"]
        status = 200 if body["status"] == "ok" else 503
        state.metrics.observe("healthz", status, time.perf_counter() - started)
        return JSONResponse(body, status_code=status)

    return healthz


def _metrics(state: ServerState) -> Callable[[Request], Any]:
    async def metrics(request: Request) -> Response:
        started = time.perf_counter()
        if state.draining:
            stats = state.summary
        else:
            stats = await asyncio.to_thread(state.stats)
        text = render(stats, state.metrics, draining=state.draining)
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
