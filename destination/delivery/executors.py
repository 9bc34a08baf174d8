"""Executors: the one place a built request leaves the process.

The engine never talks HTTP itself: it hands a :class:`~destination.actions.Request`
to an executor and reads back a :class:`Response`, or catches
:class:`TransportError` when nothing came back (network failure, timeout).
That lets ``dry-run`` and ``file`` reuse the whole pipeline without a network,
tests swap in ``httpx.MockTransport``, and third parties register their own
executors through the ``register_executors`` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson

from ..actions import Request
from ..errors import ConfigurationError, FatalDeliveryError, RetryableDeliveryError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DryRunExecutor",
    "Executor",
    "FileExecutor",
    "HttpExecutor",
    "Response",
    "TransportError",
]


@dataclass(frozen=True, slots=True)
class Response:
    """An answer. ``synthetic`` answers (dry-run, file) count as delivered without asking
    the destination to read them."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    synthetic: bool = False


class TransportError(RetryableDeliveryError):
    """No answer came back: connection refused or reset, DNS, timeout."""


@runtime_checkable
class Executor(Protocol):
    """Sends one request. Must be safe to call concurrently from one event loop."""

    async def send(self, request: Request) -> Response:
        """Send ``request``; raise TransportError when no answer arrives."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


class HttpExecutor:
    """httpx, async: one pooled client, at most ``concurrency`` requests at a time.

    httpx is imported when the first one is made: a dry run, a file executor or
    ``destination lint`` never load it (it costs more than the rest of a start).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        concurrency: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        **_ignored: Any,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"http executor: concurrency must be >= 1, got {concurrency}")
        import httpx

        self.concurrency = concurrency
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._limits = httpx.Limits(
            max_connections=concurrency, max_keepalive_connections=concurrency
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _ensure(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        # Created lazily so they bind to the loop that sends.
        if self._client is None or self._semaphore is None:
            import httpx

            self._client = httpx.AsyncClient(
                timeout=self._timeout, limits=self._limits, transport=self._transport
            )
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._client, self._semaphore

    async def send(self, request: Request) -> Response:
        import httpx

        client, semaphore = self._ensure()
        async with semaphore:
            try:
                answer = await client.post(
                    request.url, content=request.body, headers=dict(request.headers)
                )
            except httpx.TimeoutException as exc:
                raise TransportError(f"timeout: {type(exc).__name__} for {request.url}") from None
            except httpx.TransportError as exc:
                # Only the class and URL: messages of some transports echo headers.
                raise TransportError(
                    f"network error: {type(exc).__name__} for {request.url}"
                ) from None
        response = Response(
            status=answer.status_code, headers=dict(answer.headers), body=answer.content
        )
        # An httpx response and its stream refer to each other: a cycle that holds the
        # request and its body (up to the byte cap) until a full garbage collection,
        # which a streaming process runs rarely. Hundreds of MB over a long run; the
        # answer is read, so the stream goes now and the rest with it.
        answer.stream = httpx.ByteStream(b"")
        return response

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._semaphore = None


def request_line(request: Request) -> str:
    """One JSON line describing a request, token redacted: ``{"url", "headers", "body"}``.

    A JSON body is spliced in as it is (checked by orjson, not decoded and
    encoded again: that doubled the cost of a dry run); any other body is
    shown as a string.
    """
    head = json.dumps(
        {"url": request.url, "headers": request.redacted_headers()},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    try:
        value = orjson.loads(request.body)
        if b"\n" in request.body or b"\r" in request.body:  # keep it one line
            body = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            body = request.body.decode("utf-8")
    except ValueError:  # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors
        body = json.dumps(request.body.decode("utf-8", "replace"), ensure_ascii=False)
    return f'{head[:-1]},"body":{body}}}'


_SYNTHETIC_OK = Response(status=200, body=b'{"code":0,"message":"OK"}', synthetic=True)


class DryRunExecutor:
    """Writes one JSON line per request to stdout (or ``stream``) and sends nothing."""

    def __init__(self, *, stream: IO[str] | None = None, **_ignored: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    async def send(self, request: Request) -> Response:
        line = request_line(request)
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (BrokenPipeError, ValueError) as exc:  # `| head` closed it; or closed
                if stream is sys.stdout:
                    # Python would complain again flushing stdout at exit.
                    with contextlib.suppress(OSError):
                        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise FatalDeliveryError(
                    f"the dry-run output was closed ({type(exc).__name__}); nothing more is written"
                ) from None
        return _SYNTHETIC_OK

    async def aclose(self) -> None:
        return None


class FileExecutor:
    """Appends the same JSON lines as ``dry-run`` to a file."""

    def __init__(self, *, path: str | Path | None = None, **_ignored: Any) -> None:
        if not path:
            raise ConfigurationError("file executor: a 'path' option is required")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"file executor: cannot create {self.path.parent}: {exc.strerror or exc}"
            ) from None
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()

    async def send(self, request: Request) -> Response:
        line = request_line(request)
        with self._lock:
            if self._handle is None:
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()
        return _SYNTHETIC_OK

    async def aclose(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
