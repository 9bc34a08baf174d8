"""The sandbox's HTTP/1.1 server: TikTok's track endpoint on loopback, in a thread.

Why a hand-written asyncio server rather than http.server or starlette: the
sandbox must run from the core package (``destination run`` starts it when no
access token is configured), so it may use only the standard library; it must
keep connections alive, because httpx pools them and throughput depends on
it; and it needs control below HTTP to reset a connection or leave it
hanging. ``asyncio.start_server`` gives all three in a few hundred lines.

The server runs its own event loop in a daemon thread, so a synchronous
test or CLI can ``start()`` it, talk to it with any client, and ``stop()`` it;
stopping cancels hanging connections and joins the thread, leaving no
sockets or threads behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import secrets
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs

import orjson

from ...errors import ConfigurationError
from .faults import Fault, FaultPlan, RateLimiter
from .recorder import DuplicateKey, ReceivedEvent, Recorder
from .validation import check_event_source_id, validate_body

__all__ = ["SANDBOX_TOKEN", "TRACK_PATH", "Sandbox"]

TRACK_PATH: Final = "/open_api/v1.3/event/track/"
SANDBOX_TOKEN: Final = "sandbox-token"
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
# StreamReader's limit: the longest request head accepted, and (doubled) how
# much may be buffered before reading pauses. 64 KiB (the default) makes a
# 1 MB body arrive in many pause/resume rounds; 1 MiB costs nothing more.
STREAM_LIMIT: Final = 1024 * 1024

log = logging.getLogger("destination.sandbox")


class _HttpError(Exception):
    """A request that cannot be read as HTTP; answered, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(slots=True)
class _Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    size_total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _HttpError(400, "bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size_total += size
        if size_total > limit:
            raise _HttpError(413, "request body too large")
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise _HttpError(400, "bad chunk terminator")


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
) -> _Request | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _HttpError(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise _HttpError(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _HttpError(400, "bad request line") from None
    if not version.startswith("HTTP/1."):
        raise _HttpError(505, "only HTTP/1.x is supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _HttpError(400, "bad header line")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    if headers.get("expect", "").lower() == "100-continue":  # curl, for bodies > 1 KiB
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, max_body)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _HttpError(400, "bad Content-Length") from None
        if length < 0:
            raise _HttpError(400, "bad Content-Length")
        if length > max_body:
            raise _HttpError(413, "request body too large")
        body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return _Request(method, path, query, headers, body, keep_alive)


def _new_request_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(10).upper()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic GC while a request body becomes ~30,000 objects.

    json.loads of a 1000-event batch otherwise triggers dozens of young
    collections and, as the heap grows by a third per batch, frequent full
    ones: half of the parse time. A JSON tree has no reference cycles, so
    nothing is lost by collecting once afterwards. Only re-enabled if it was
    enabled, so a host that disabled the GC keeps it disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(body: bytes) -> Any:
    """orjson first (a 1000-event body parses several times faster); on anything it
    refuses, the standard library decides, so what is accepted and the error
    messages stay exactly json's (NaN and Infinity are refused by both)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body, parse_constant=_reject_constant)


class Sandbox:
    """A local emulator of ``POST /open_api/v1.3/event/track/``; see docs/sandbox.md.

    ``pixels=None`` accepts any event_source_id; otherwise others get 40001.
    ``keep_events`` caps the events kept for :meth:`events` (counts stay exact);
    ``check_duplicates=False`` keeps no duplicate index, so memory stays flat
    however many events arrive (and :meth:`duplicates` raises).
    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: Iterable[str] = (SANDBOX_TOKEN,),
        pixels: Iterable[str] | None = None,
        faults: FaultPlan | Iterable[str] | None = None,
        rate_limit_rps: float | None = None,
        keep_events: int | None = 100_000,
        max_body_bytes: int = MAX_BODY_BYTES,
        check_duplicates: bool = True,
    ) -> None:
        # A lone string is one token / pixel / spec, never its characters.
        if isinstance(tokens, str):
            tokens = (tokens,)
        if isinstance(pixels, str):
            pixels = (pixels,)
        if isinstance(faults, str):
            faults = (faults,)
        if keep_events is not None and keep_events < 0:
            raise ValueError(f"keep_events must be >= 0 or None, not {keep_events}")
        self.host = host
        self.port = port
        self._tokens = tuple(t.encode() for t in tokens if t)
        if not self._tokens:
            raise ValueError("the sandbox needs at least one access token")
        self.pixels: frozenset[str] | None = None if pixels is None else frozenset(pixels)
        self.max_body_bytes = max_body_bytes
        self.recorder = Recorder(keep_events, check_duplicates=check_duplicates)
        self._plan: FaultPlan | None = None
        self._limiter: RateLimiter | None = None
        self.set_faults(faults)
        self.set_rate_limit(rate_limit_rps)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self._thread else "stopped"
        return f"<Sandbox {self.url if self._thread else self.host} {state}>"

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind and serve in a background thread; returns once the port is open."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        ready = threading.Event()
        self._startup_error = None
        thread = threading.Thread(target=self._run, args=(ready,), name="tiktok-sandbox")
        thread.daemon = True
        thread.start()
        ready.wait()
        if self._startup_error is not None:
            thread.join()
            error, self._startup_error = self._startup_error, None
            raise error
        self._thread = thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection (hanging ones too), stop the loop, join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a bug, not a condition
            raise RuntimeError("sandbox thread did not stop")
        self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``; clients append :data:`TRACK_PATH`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def track_url(self) -> str:
        return self.url + TRACK_PATH

    @property
    def token(self) -> str:
        """The first accepted access token (the sandbox's, never a real one)."""
        return self._tokens[0].decode()

    # -- configuration -----------------------------------------------------

    def set_faults(self, faults: FaultPlan | Iterable[str] | None, seed: int | None = None) -> None:
        """Replace the fault plan: a :class:`FaultPlan`, ``--fault`` specs, or None."""
        if faults is None or isinstance(faults, FaultPlan):
            self._plan = faults
        elif isinstance(faults, str):
            self._plan = FaultPlan.parse([faults], seed=seed)
        else:
            self._plan = FaultPlan.parse(faults, seed=seed)

    def set_rate_limit(self, rps: float | None) -> None:
        """Limit track requests per event_source_id per second (40100 beyond); None: off."""
        self._limiter = None if rps is None else RateLimiter(rps)

    @property
    def faults(self) -> FaultPlan | None:
        return self._plan

    # -- inspection --------------------------------------------------------

    @property
    def requests(self) -> int:
        """Track requests received, whatever the answer."""
        return self.recorder.requests

    def events(self, event_source_id: str | None = None) -> list[ReceivedEvent]:
        return self.recorder.events(event_source_id)

    def counts(self) -> dict[str, int]:
        return self.recorder.counts()

    def duplicates(self) -> dict[DuplicateKey, int]:
        return self.recorder.duplicates()

    def answers(self) -> dict[str, int]:
        """How many times each answer was given: ``{"0": 12, "40002": 1, "http_503": 2}``."""
        return self.recorder.answers()

    def stats(self) -> dict[str, Any]:
        return self.recorder.stats()

    def reset(self) -> None:
        """Forget received events, counts and rate-limit state; faults stay as they are."""
        self.recorder.reset()
        if self._limiter is not None:
            self._limiter = RateLimiter(self._limiter.rps)

    # -- the server thread ---------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.port, limit=STREAM_LIMIT)
                )
            except BaseException as exc:
                self._startup_error = exc
                ready.set()
                return
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown(server))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._loop = None

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await _read_request(reader, writer, self.max_body_bytes)
                except _HttpError as exc:
                    await self._send(writer, exc.status, str(exc).encode(), "text/plain", False)
                    return
                if request is None:
                    return
                if not await self._dispatch(request, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            # stop() cancels idle keep-alive connections. Ending normally matters on
            # Python 3.11, whose StreamReaderProtocol callback calls task.exception() on a
            # cancelled task and logs a CancelledError traceback (fixed in 3.12).
            return
        except Exception:  # a sandbox bug: say so loudly, never pass it off as a fault
            log.exception("sandbox: internal error; closing the connection")
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        keep_alive: bool = True,
        extra: dict[str, str] | None = None,
    ) -> None:
        head = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        if extra:
            head.extend(f"{k}: {v}" for k, v in extra.items())
        if not keep_alive:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _send_json(
        self, writer: asyncio.StreamWriter, request: _Request, status: int, payload: Any
    ) -> bool:
        await self._send(
            writer, status, json.dumps(payload).encode(), keep_alive=request.keep_alive
        )
        return request.keep_alive

    async def _dispatch(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        if request.path == TRACK_PATH:
            if request.method != "POST":
                return await self._not_allowed(writer, request, "POST")
            return await self._track(request, reader, writer)
        if request.path.startswith("/sandbox/"):
            return await self._inspect(request, writer)
        await self._send(writer, 404, b"404 page not found", "text/plain", request.keep_alive)
        return request.keep_alive

    async def _not_allowed(
        self, writer: asyncio.StreamWriter, request: _Request, allow: str
    ) -> bool:
        body = b"405 method not allowed"
        await self._send(writer, 405, body, "text/plain", request.keep_alive, {"Allow": allow})
        return request.keep_alive

    # -- the track endpoint --------------------------------------------------

    async def _track(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        self.recorder.count_request()
        plan = self._plan
        delay_ms, fault = plan.next_faults() if plan is not None else (0, None)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if fault is not None:
            return await self._inject(fault, request, reader, writer)
        request_id = _new_request_id()
        with _gc_paused():
            code, message, accepted = self._check(request, request_id)
        if code:  # accepted requests are counted by the recorder itself
            self.recorder.answer(str(code))
        if log.isEnabledFor(logging.INFO):
            log.info("track %s -> %d %s", accepted or "-", code, message)
        answer = {"code": code, "message": message, "request_id": request_id, "data": {}}
        return await self._send_json(writer, request, 200, answer)

    def _check(self, request: _Request, request_id: str) -> tuple[int, str, str | None]:
        """Validate a track request in TikTok's order; record it if accepted."""
        token = request.headers.get("access-token")
        if token is None:
            return 40105, "Access-Token header is missing", None
        raw_token = token.encode()
        if not any(hmac.compare_digest(raw_token, t) for t in self._tokens):
            if token.lower().startswith("bearer "):
                return 40105, "Access token is incorrect: send it without a 'Bearer ' prefix", None
            return 40105, "Access token is incorrect or has been revoked", None
        body = request.body
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            try:
                inflater = zlib.decompressobj(wbits=31)
                body = inflater.decompress(body, self.max_body_bytes + 1)
            except zlib.error:
                return 40002, "Request body is not valid gzip", None
            if len(body) > self.max_body_bytes or inflater.unconsumed_tail:
                return 40002, "Request body is too large once decompressed", None
            if not inflater.eof:
                return 40002, "Request body is not valid gzip (truncated)", None
        elif encoding != "identity":
            return 40002, f"Unsupported Content-Encoding: {encoding}", None
        try:
            payload = _parse_json(body)
        except json.JSONDecodeError as exc:
            return 40002, f"Invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})", None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return 40002, f"Invalid JSON: {exc}", None
        if type(payload) is not dict:
            return 40002, "Request body must be a JSON object", None
        problem = check_event_source_id(payload)
        if problem:
            return 40002, problem, None
        source_id: str = payload["event_source_id"]
        if self.pixels is not None and source_id not in self.pixels:
            return 40001, f"No permission to access event_source_id {source_id}", None
        limiter = self._limiter
        if limiter is not None and not limiter.allow(source_id):
            return (
                40100,
                f"Too many requests: event_source_id {source_id} is limited to "
                f"{limiter.rps:g} requests per second",
                None,
            )
        problem = validate_body(payload)
        if problem:
            return 40002, problem, None
        data: list[dict[str, Any]] = payload["data"]
        plan = self._plan
        if plan is not None and plan.reject_event_ids:
            rejected = plan.reject_event_ids
            for index, item in enumerate(data):
                if item.get("event_id") in rejected:
                    return (
                        40002,
                        f"data.{index}.event_id: Rejected by the sandbox "
                        f"(reject-event-id fault for {item['event_id']})",
                        None,
                    )
        self.recorder.accept(
            payload["event_source"], source_id, payload.get("test_event_code"), request_id, data
        )
        return 0, "OK", f"{source_id} {len(data)} events"

    async def _inject(
        self,
        fault: Fault,
        request: _Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        log.info("track: injecting fault %s %s", fault.kind, fault.value)
        if fault.kind == "http":
            status = int(fault.value or 500)
            self.recorder.answer(f"http_{status}")
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            body = f"{status} {HTTPStatus(status).phrase}".encode()
            await self._send(writer, status, body, "text/plain", request.keep_alive, extra)
            return request.keep_alive
        if fault.kind == "code":
            code = int(fault.value or 50000)
            self.recorder.answer(str(code))
            answer = {
                "code": code,
                "message": f"Sandbox fault: code {code}",
                "request_id": _new_request_id(),
                "data": {},
            }
            return await self._send_json(writer, request, 200, answer)
        if fault.kind == "reset":
            self.recorder.answer("reset")
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if fault.kind == "hang":
            self.recorder.answer("hang")
            while await reader.read(65536):  # hold until the client gives up
                pass
            return False
        raise AssertionError(f"unexpected fault kind {fault.kind}")  # pragma: no cover

    # -- inspection endpoints ----------------------------------------------------

    async def _inspect(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        route = request.path.rstrip("/")
        if route == "/sandbox/events":
            if request.method != "GET":
                return await self._not_allowed(writer, request, "GET")
            query = parse_qs(request.query)
            source_id = query.get("event_source_id", [None])[0]
            events = [e.as_dict() for e in self.events(source_id)]
            return await self._send_json(writer, request, 200, {"events": events})
        if route == "/sandbox/stats":
            if request.method != "GET":
                return await self._not_allowed(writer, request, "GET")
            return await self._send_json(writer, request, 200, self.stats())
        if route == "/sandbox/reset":
            if request.method != "POST":
                return await self._not_allowed(writer, request, "POST")
            self.reset()
            return await self._send_json(writer, request, 200, {"ok": True})
        if route == "/sandbox/faults":
            if request.method != "POST":
                return await self._not_allowed(writer, request, "POST")
            return await self._configure(request, writer)
        await self._send(writer, 404, b"404 page not found", "text/plain", request.keep_alive)
        return request.keep_alive

    async def _configure(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """``POST /sandbox/faults {"faults": [SPEC...], "seed": N, "rate_limit_rps": R}``."""
        try:
            config = json.loads(request.body or b"{}")
            if type(config) is not dict:
                raise ValueError("body must be a JSON object")
            specs = config.get("faults", [])
            if type(specs) is not list or not all(type(s) is str for s in specs):
                raise ValueError("'faults' must be a list of fault specs")
            seed = config.get("seed")
            if seed is not None and type(seed) is not int:
                raise ValueError("'seed' must be an integer")
            plan = FaultPlan.parse(specs, seed=seed)
            if "rate_limit_rps" in config:
                rps = config["rate_limit_rps"]
                if rps is not None and (type(rps) not in (int, float) or rps <= 0):
                    raise ValueError("'rate_limit_rps' must be a positive number or null")
                self.set_rate_limit(rps)
        except (ValueError, ConfigurationError) as exc:
            return await self._send_json(writer, request, 400, {"error": str(exc)})
        self.set_faults(plan)
        return await self._send_json(writer, request, 200, {"ok": True})
