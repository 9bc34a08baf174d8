"""The shared queue: NATS JetStream, so any number of processes on any machines share work.

A chunk is one message of the stream ``DESTINATION`` (work-queue retention:
a message leaves when it is acknowledged), on the subject
``destination.items.<destination>.<instance>.<event_source>.<events>``. The
payload is the chunk's items joined by newlines (compact JSON never holds a
raw one); headers carry what :class:`~destination.delivery.queue.Chunk`
needs (event ids, route, enqueued_at, attempts, a due time, the last
error). ``Nats-Msg-Id`` is a SHA-256 of the route and the event ids, so a
publish retried after a lost answer is stored once (the stream's duplicate
window, 2 minutes). The last subject token is the chunk's number of events:
the stream's per-subject message counts then give exact counts in events, per
route, without reading a message.

Every worker pulls from one durable consumer, ``destination-deliver``:
``claim`` is a fetch, ``ack`` a double-acked ack, ``retry`` a ``nak`` with a
delay (the backoff), ``release`` a plain ``nak``, ``dead_letter`` one
message per event on the dead-letter stream ``DESTINATION_DEAD``
(``destination.dead.<destination>.<instance>.<event_source>``, limits
retention) and then an ack. A worker that dies leaves its messages
unacknowledged, and JetStream hands them out again after ``ack_wait``; a
living worker tells JetStream it is still working (``+WPI``) every third of
``ack_wait``, so a slow send is not redelivered behind its back.

**Attempts** are the ``Destination-Attempts`` header plus the deliveries of
the message so far, less one (less one more for a message that was claimed
before its due time and given back until then). So a release (a stop, a
shutdown, a claim cut short) or a worker's death also counts as an attempt.
The engine gives up by age (``max_age``), never by attempts, so this only
lengthens the backoff a little.

**Split.** A rejected batch is bisected by the engine. The parts stay in
this process's memory as children of the one message. An acknowledged or
dead-lettered part is settled there. A retried or released part is
republished as a message of its own (with a due time) and is then settled.
The message is acknowledged once every part is settled. If the process dies
meanwhile, the whole message comes back after ``ack_wait``. Parts already
delivered are then sent again with the same event ids, which TikTok
deduplicates: at least once, never lost.

**A due time** in the future is JetStream's business for a ``nak``; only a
republished part carries it in a header (``Destination-Due-At``), and a
worker that claims such a message early gives it back with ``nak(delay)``.

Errors of failed requests are kept in memory and, so that ``outbox status``
in another process sees them, in the key-value bucket
``destination-route-errors`` (one key per route, 1 day TTL; a process
removes its own entry once that route delivers again).

nats-py is asyncio: the queue runs its own event loop in a background
thread and every method of the (synchronous, thread-safe) interface runs a
coroutine there, bounded by ``timeout``. Every failure is a
:class:`~destination.errors.StorageError` naming the servers, never the
credentials a URL may hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from .. import compactjson
from ..actions import Route
from ..errors import ConfigurationError, StorageError, redact
from ..logthrottle import LogThrottle
from .factories import queue_name
from .queue import Chunk, DeadLetter, QueueStats, RouteStats, StoredItem, chunk_cuts

__all__ = ["JetStreamQueue"]

log = logging.getLogger("destination.delivery.jetstream")
_T = TypeVar("_T")

H_EVENT_IDS = "Destination-Event-Ids"
H_EVENTS = "Destination-Events"
H_ROUTE = "Destination-Route"
H_ENQUEUED_AT = "Destination-Enqueued-At"
H_ATTEMPTS = "Destination-Attempts"
H_DUE_AT = "Destination-Due-At"
H_LAST_ERROR = "Destination-Last-Error"
H_EVENT_ID = "Destination-Event-Id"
H_REASON = "Destination-Reason"
H_CODE = "Destination-Code"
H_DEAD_AT = "Destination-Dead-At"
H_MSG_ID = "Nats-Msg-Id"

_SEP = "\n"
#: room left in a message for its headers, besides the event ids
_HEADER_ROOM = 4096
#: when the next due time of messages other workers hold is unknown, look again this soon
_UNKNOWN_DUE = 1.0
_SCAN_BATCH = 256
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_NATS_ERRORS = (nats.errors.Error, OSError, asyncio.TimeoutError)


def _token(name: str) -> str:
    """A route's name as one subject token (and key-value key part), reversibly:
    anything but letters, digits, ``_`` and ``-`` becomes ``=XX`` per UTF-8 byte."""
    if not name:
        return "="
    if all(c in _SAFE for c in name):
        return name
    return "".join(c if c in _SAFE else "".join(f"={b:02X}" for b in c.encode()) for c in name)


def _untoken(token: str) -> str:
    if token == "=":
        return ""
    if "=" not in token:
        return token
    out = bytearray()
    index = 0
    while index < len(token):
        if token[index] == "=":
            out.append(int(token[index + 1 : index + 3], 16))
            index += 3
        else:
            out += token[index].encode()
            index += 1
    return out.decode()


def _route_label(route: Route) -> str:
    return f"{_token(route.destination)}.{_token(route.instance)}.{_token(route.event_source)}"


def _route_json(route: Route) -> str:
    return json.dumps(
        {
            "destination": route.destination,
            "event_source": route.event_source,
            "instance": route.instance,
        },
        separators=(",", ":"),
    )


def _route_from_json(text: str) -> Route:
    data = json.loads(text)
    return Route(data["destination"], data["event_source"], data.get("instance") or "default")


def _msg_id(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _text(value: str) -> str:
    """Free text as a header value: JSON, so it is ASCII on one line."""
    return json.dumps(value)


def _item_text(item: StoredItem) -> str:
    text = item if type(item) is str else compactjson.dumps(item).decode("utf-8")
    if _SEP in text:  # not compact JSON after all: make it so
        text = compactjson.dumps(json.loads(text)).decode("utf-8")
    return text


def _servers(url: str) -> list[str]:
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ConfigurationError("queue: no NATS server in the URL")
    for server in servers:
        scheme = urlsplit(server).scheme
        if scheme not in ("nats", "tls"):
            raise ConfigurationError(
                f"queue: {queue_name(server)!r} is not a NATS URL (nats://host:4222 or tls://…)"
            )
    return servers


def _credentials(servers: Iterable[str]) -> list[str]:
    secrets: list[str] = []
    for server in servers:
        parts = urlsplit(server)
        userinfo = parts.netloc.rpartition("@")[0]
        if userinfo:
            secrets.extend(s for s in (userinfo, parts.username, parts.password) if s)
    return sorted(set(secrets), key=len, reverse=True)


@dataclass(eq=False)
class _Message:
    """A claimed message: the chunk as stored, or the root of the parts it was split into."""

    msg: Msg
    seq: int
    #: chunk ids of this message held and not settled yet
    open: set[int] = field(default_factory=set)
    #: when acknowledging it first failed (the heartbeat tries again for a while)
    unacked_since: float | None = None


@dataclass(eq=False)
class _Held:
    chunk: Chunk
    root: _Message
    #: False once split: the chunk is a part of its message, not the whole of it
    whole: bool


@dataclass
class _RouteError:
    error: str
    count: int
    at: float
    attempts: int


def _storage(what: str) -> Callable[[Callable[..., Coroutine[Any, Any, _T]]], Callable[..., _T]]:
    """Run the coroutine method on the queue's loop; NATS failures become StorageErrors."""

    def decorate(method: Callable[..., Coroutine[Any, Any, _T]]) -> Callable[..., _T]:
        @functools.wraps(method)
        def wrapper(self: JetStreamQueue, *args: Any, **kwargs: Any) -> _T:
            return self._call(method(self, *args, **kwargs), what)

        return wrapper

    return decorate


class JetStreamQueue:
    """A :class:`~destination.delivery.queue.Queue` on a NATS JetStream stream, shared by
    any number of processes (see the module's docstring for the layout and semantics).

    ``url`` lists one or more servers, ``nats://h1:4222,nats://h2:4222``
    (``user:password@`` allowed; never shown). The streams, the consumer and
    the bucket are created when missing (``replicas`` copies each); existing
    ones are used as they are. ``deliver=False`` opens a put-only and
    inspection view: it never creates the consumer and ``claim`` hands out
    nothing. ``timeout`` bounds every request to the server, so no call
    hangs when NATS is away (the connection itself reconnects forever).
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "DESTINATION",
        subject_prefix: str = "destination.items",
        dead_stream: str = "DESTINATION_DEAD",
        dead_subject_prefix: str = "destination.dead",
        consumer: str = "destination-deliver",
        errors_bucket: str | None = "destination-route-errors",
        replicas: int = 1,
        ack_wait: float = 30.0,
        duplicate_window: float = 120.0,
        max_ack_pending: int = -1,
        deliver: bool = True,
        connect_timeout: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        self._servers = _servers(url)
        self.url = queue_name(",".join(self._servers))
        self._secrets = _credentials(self._servers)
        if replicas < 1:
            raise ConfigurationError(f"queue: replicas must be >= 1, got {replicas}")
        if ack_wait <= 0 or timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("queue: ack_wait, timeout and connect_timeout must be > 0")
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.dead_stream = dead_stream
        self.dead_subject_prefix = dead_subject_prefix
        self.consumer = consumer
        self.errors_bucket = errors_bucket
        self.replicas = replicas
        self.ack_wait = ack_wait
        self.duplicate_window = duplicate_window
        self.max_ack_pending = max_ack_pending
        self.deliver = deliver
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._prefix_tokens = len(subject_prefix.split("."))
        self._nc = Client()
        self._js: Any = None
        self._kv: Any = None
        self._max_payload = 1 << 20
        self._last_error: str | None = None
        self._log = LogThrottle(log)
        # State below is touched only on the loop's thread.
        self._held: dict[int, _Held] = {}
        self._ids = 0
        self._replies: asyncio.Queue[Msg] | None = None
        self._inbox = ""
        self._unacked: list[_Message] = []
        #: stream sequence -> (due time, error), of what this process gave back with a delay
        self._delayed: dict[int, tuple[float, str | None]] = {}
        self._sizes: deque[int] = deque(maxlen=64)
        self._errors: dict[Route, _RouteError] = {}
        self._beat: asyncio.Task[None] | None = None
        self._closed = self._closing = self._opened = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="destination-jetstream", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._open(), "connecting", connect_timeout + 4 * timeout)
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"JetStreamQueue({self.url!r}, stream={self.stream!r})"

    # -- the loop and errors -----------------------------------------------------------

    def _where(self) -> str:
        return f"JetStream {self.url}"

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
            text = "no JetStream answered (is the server running with JetStream, -js?)"
        elif isinstance(exc, asyncio.TimeoutError):
            text = f"no answer within {self.timeout:g} s (is the server up?)"
        elif isinstance(exc, nats.errors.ConnectionClosedError):
            text = "the connection is closed"
        elif isinstance(exc, nats.errors.ConnectionReconnectingError):
            text = "not connected, reconnecting" + (
                f" (last error: {self._last_error})" if self._last_error else ""
            )
        else:
            text = str(exc) or type(exc).__name__
        return redact(" ".join(text.split()), self._secrets)

    def _call(
        self, coroutine: Coroutine[Any, Any, _T], what: str, timeout: float | None = None
    ) -> _T:
        if self._closed:
            coroutine.close()
            raise StorageError(f"{self._where()}: the queue is closed")
        limit = timeout if timeout is not None else 2 * self.timeout + 1.0
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(limit)
        except StorageError:
            raise
        except (*_NATS_ERRORS, FutureTimeout) as exc:
            if not future.done():  # the wait ran out, not a request
                future.cancel()
                raise StorageError(
                    f"{self._where()}: {what}: no answer within {limit:g} s (is the server up?)"
                ) from None
            raise StorageError(f"{self._where()}: {what}: {self._describe(exc)}") from None

    def _stop_loop(self) -> None:
        self._closed = self._closing = True
        with contextlib.suppress(RuntimeError, FutureTimeout):
            asyncio.run_coroutine_threadsafe(self._finish(), self._loop).result(self.timeout)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        if not self._loop.is_running():
            self._loop.close()

    def _connected(self) -> None:
        """Fail at once while the connection is down, rather than after ``timeout``."""
        if not self._nc.is_connected:
            raise nats.errors.ConnectionReconnectingError

    # -- opening -----------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = self._describe(exc)
        if self._opened and not self._closing:  # before, connecting raises with it
            self._log.log(logging.WARNING, f"{self._where()}: {self._last_error}")

    async def _on_disconnect(self) -> None:
        if self._opened and not self._closing:
            self._log.log(logging.WARNING, f"{self._where()}: disconnected, reconnecting")

    async def _on_reconnect(self) -> None:
        self._last_error = None
        log.info("%s: reconnected", self._where())

    async def _open(self) -> None:
        try:
            await asyncio.wait_for(
                self._nc.connect(
                    servers=self._servers,
                    name="destination",
                    connect_timeout=max(1, round(self.connect_timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    drain_timeout=int(max(1, self.timeout)),
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                self.connect_timeout,
            )
        except (*_NATS_ERRORS, asyncio.CancelledError) as exc:
            self._closing = True
            with contextlib.suppress(Exception):
                await self._nc.close()
            detail = self._last_error or self._describe(exc)
            if isinstance(exc, asyncio.TimeoutError) and self._last_error is None:
                detail = f"no server answered within {self.connect_timeout:g} s"
            raise StorageError(f"{self._where()}: cannot connect: {detail}") from None
        self._max_payload = self._nc.max_payload or self._max_payload
        self._js = self._nc.jetstream(timeout=self.timeout)
        await self._ensure_stream(
            self.stream,
            f"{self.subject_prefix}.>",
            retention=api.RetentionPolicy.WORK_QUEUE,
            duplicate_window=self.duplicate_window,
        )
        await self._ensure_stream(
            self.dead_stream,
            f"{self.dead_subject_prefix}.>",
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=self.duplicate_window,
        )
        if self.errors_bucket:
            try:
                self._kv = await self._bucket()
            except nats.js.errors.APIError as exc:  # a nicety: deliver without it
                log.warning(
                    "%s: no errors bucket %s (%s); last errors stay per process",
                    self._where(),
                    self.errors_bucket,
                    self._describe(exc),
                )
        if self.deliver:
            await self._ensure_consumer()
            self._replies = asyncio.Queue()
            self._inbox = self._nc.new_inbox()
            await self._nc.subscribe(self._inbox, cb=_collect(self._replies))
            self._beat = asyncio.create_task(self._heartbeat())
        self._opened = True

    async def _ensure_stream(self, name: str, subjects: str, **settings: Any) -> None:
        try:
            await self._js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        config = api.StreamConfig(
            name=name,
            subjects=[subjects],
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            **settings,
        )
        try:
            await self._js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            try:  # created by another process meanwhile?
                await self._js.stream_info(name)
            except nats.js.errors.NotFoundError:
                raise exc from None  # no: say why it was refused (subjects overlap…)

    async def _ensure_consumer(self) -> None:
        try:
            info = await self._js.consumer_info(self.stream, self.consumer)
        except nats.js.errors.NotFoundError:
            pass
        else:
            if (
                info.config.ack_wait is not None
                and abs(info.config.ack_wait - self.ack_wait) > 1e-3
            ):
                log.warning(
                    "%s: consumer %s exists with ack_wait %g s (asked %g s); keeping it",
                    self._where(),
                    self.consumer,
                    info.config.ack_wait,
                    self.ack_wait,
                )
            return
        config = api.ConsumerConfig(
            durable_name=self.consumer,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=self.max_ack_pending,
            filter_subject=f"{self.subject_prefix}.>",
            deliver_policy=api.DeliverPolicy.ALL,
        )
        try:
            await self._js.add_consumer(self.stream, config)
        except nats.js.errors.BadRequestError as exc:
            try:  # created by another worker meanwhile?
                await self._js.consumer_info(self.stream, self.consumer)
            except nats.js.errors.NotFoundError:
                raise exc from None

    async def _bucket(self) -> Any:
        try:
            return await self._js.key_value(self.errors_bucket)
        except nats.js.errors.BucketNotFoundError:
            if not self.deliver:
                return None
        with contextlib.suppress(nats.js.errors.BadRequestError):
            return await self._js.create_key_value(
                bucket=self.errors_bucket,
                history=1,
                ttl=86_400.0,
                replicas=self.replicas,
                storage=api.StorageType.FILE,
            )
        return await self._js.key_value(self.errors_bucket)

    # -- messages ----------------------------------------------------------------------

    def _subject(self, route: Route, events: int) -> str:
        return f"{self.subject_prefix}.{_route_label(route)}.{events}"

    def _dead_subject(self, route: Route) -> str:
        return f"{self.dead_subject_prefix}.{_route_label(route)}"

    def _route_of(self, subject: str) -> tuple[Route, int] | None:
        """(route, events) from a chunk's subject; None for a subject not in our layout."""
        tokens = subject.split(".")[self._prefix_tokens :]
        if len(tokens) != 4 or not tokens[3].isdigit():
            return None
        d, i, s = (_untoken(t) for t in tokens[:3])
        return Route(destination=d, event_source=s, instance=i), int(tokens[3])

    @staticmethod
    def _headers(
        route: Route,
        event_ids: Sequence[str],
        *,
        enqueued_at: float,
        msg_id: str,
        attempts: int = 0,
        due_at: float | None = None,
        last_error: str | None = None,
    ) -> dict[str, str]:
        headers = {
            H_MSG_ID: msg_id,
            H_ROUTE: _route_json(route),
            H_EVENT_IDS: json.dumps(list(event_ids), separators=(",", ":")),
            H_EVENTS: str(len(event_ids)),
            H_ENQUEUED_AT: repr(enqueued_at),
            H_ATTEMPTS: str(attempts),
        }
        if due_at is not None:
            headers[H_DUE_AT] = repr(due_at)
        if last_error is not None:
            headers[H_LAST_ERROR] = _text(last_error)
        return headers

    def _fits(self, payload: bytes, headers: dict[str, str]) -> bool:
        size = len(payload) + sum(len(k) + len(v) + 4 for k, v in headers.items()) + 16
        return size <= self._max_payload

    def _chunk_messages(
        self,
        route: Route,
        items: list[str],
        ids: list[str],
        *,
        enqueued_at: float,
        tag: Sequence[object] = (),
        attempts: int = 0,
        due_at: float | None = None,
        last_error: str | None = None,
    ) -> Iterable[tuple[str, bytes, dict[str, str]]]:
        """(subject, payload, headers) of one chunk, halved until each fits the server's
        largest message (max_payload, 1 MB unless configured)."""
        payload = _SEP.join(items).encode()
        headers = self._headers(
            route,
            ids,
            enqueued_at=enqueued_at,
            msg_id=_msg_id(*tag, _route_json(route), ids),
            attempts=attempts,
            due_at=due_at,
            last_error=last_error,
        )
        if len(items) > 1 and not self._fits(payload, headers):
            half = len(items) // 2
            for part in ((items[:half], ids[:half]), (items[half:], ids[half:])):
                yield from self._chunk_messages(
                    route,
                    part[0],
                    part[1],
                    enqueued_at=enqueued_at,
                    tag=tag,
                    attempts=attempts,
                    due_at=due_at,
                    last_error=last_error,
                )
            return
        if not self._fits(payload, headers):
            raise StorageError(
                f"{self._where()}: event {ids[0]} is larger than the server's largest "
                f"message ({self._max_payload:,} bytes, max_payload)"
            )
        yield self._subject(route, len(items)), payload, headers

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str], stream: str | None = None
    ) -> None:
        """Publish and wait for JetStream's acknowledgement (the message is stored)."""
        await self._js.publish(
            subject, payload, timeout=self.timeout, stream=stream or self.stream, headers=headers
        )

    async def _publish_all(self, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> None:
        self._connected()
        results = await asyncio.gather(
            *(self._publish(*m) for m in messages), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _parse(self, msg: Msg) -> Chunk:
        headers = msg.headers or {}
        ids = json.loads(headers[H_EVENT_IDS])
        items = msg.data.decode("utf-8").split(_SEP)
        if len(items) != len(ids):
            raise ValueError(f"{len(items)} items but {len(ids)} event ids")
        enqueued = float(headers[H_ENQUEUED_AT])
        due = headers.get(H_DUE_AT)
        error = headers.get(H_LAST_ERROR)
        redelivered = msg.metadata.num_delivered - 1
        if due and redelivered:
            # Claimed before its due time, it was given back until then: that is no attempt,
            # and it happens once (the delay brings it back at the due time).
            redelivered -= 1
        self._ids += 1
        return Chunk(
            id=self._ids,
            route=_route_from_json(headers[H_ROUTE]),
            items=items,
            event_ids=ids,
            enqueued_at=enqueued,
            attempts=int(headers.get(H_ATTEMPTS, "0")) + redelivered,
            next_attempt_at=float(due) if due else enqueued,
            last_error=json.loads(error) if error else None,
            size=len(msg.data),
        )

    # -- pulling -----------------------------------------------------------------------

    async def _pull(
        self,
        stream: str,
        consumer: str,
        batch: int,
        replies: asyncio.Queue[Msg],
        inbox: str,
        *,
        quiet_is_empty: bool = False,
    ) -> list[Msg]:
        """Up to ``batch`` messages available now (a no-wait pull: never waits for more).

        A server that does not answer within ``timeout`` raises, unless
        ``quiet_is_empty``: then, after a shorter wait, the pull counts as empty.
        nats-server 2.9 may leave a no-wait pull unanswered when messages it
        counted as pending were deleted (a purge); reading the consumer's info
        puts its count right, and whatever that pull gets later reaches the next.
        """
        msgs: list[Msg] = []
        while not replies.empty():  # late answers to an earlier pull are ours too
            msg = replies.get_nowait()
            if not _is_status(msg):
                msgs.append(msg)
        if len(msgs) >= batch:
            return msgs
        request = json.dumps({"batch": batch - len(msgs), "no_wait": True}).encode()
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", request, reply=inbox
        )
        deadline = time.monotonic() + (min(self.timeout, 1.0) if quiet_is_empty else self.timeout)
        while len(msgs) < batch:
            remaining = deadline - time.monotonic()
            try:
                msg = await asyncio.wait_for(replies.get(), max(remaining, 0.001))
            except TimeoutError:
                if msgs:
                    break
                if not quiet_is_empty:
                    raise
                await self._js.consumer_info(stream, consumer)
                break
            if _is_status(msg):
                status = (msg.headers or {}).get("Status", "")
                if status not in ("404", "408", "409"):
                    raise nats.js.errors.APIError.from_msg(msg)
                break
            msgs.append(msg)
        return msgs

    # -- the Queue interface ----------------------------------------------------------

    def put_many(
        self,
        events: Iterable[tuple[Route, StoredItem, str]],
        *,
        max_items: int = 1000,
        max_bytes: int = 2_000_000,
    ) -> int:
        """Publish the chunks and return once JetStream acknowledged every one of them.

        On a failure some chunks may be stored already; storing the same events
        again within the duplicate window stores them once.
        """
        by_route: dict[Route, tuple[list[str], list[str]]] = {}
        count = 0
        for route, item, event_id in events:
            group = by_route.get(route)
            if group is None:
                group = by_route[route] = ([], [])
            group[0].append(_item_text(item))
            group[1].append(event_id)
            count += 1
        if not count:
            return 0
        now = time.time()
        cap = min(max_bytes, self._max_payload - _HEADER_ROOM)
        messages = [
            message
            for route, (items, ids) in by_route.items()
            for start, end, _ in chunk_cuts(items, max_items, cap)
            for message in self._chunk_messages(
                route, items[start:end], ids[start:end], enqueued_at=now
            )
        ]
        self._call(self._publish_all(messages), f"storing {count} events", self.timeout + 2.0)
        return count

    def claim(self, limit: int, now: float | None = None) -> list[Chunk]:
        """Fetch messages up to ``limit`` events (at least one chunk when any is there).

        A message due later (a republished part) goes back with ``nak(delay)``;
        one that would overshoot ``limit`` goes back with a plain ``nak``. An
        inspection view (``deliver=False``) hands out nothing.
        """
        if limit <= 0 or not self.deliver:
            return []
        return self._call(self._claim(limit, now), "claiming")

    async def _claim(self, limit: int, now: float | None) -> list[Chunk]:
        assert self._replies is not None
        self._connected()
        now = time.time() if now is None else now
        chunks: list[Chunk] = []
        total = 0
        full = False
        while total < limit and not full:
            # As many messages as fit for sure, judged by the largest chunks seen lately.
            largest = max(self._sizes, default=1000)
            want = max(1, (limit - total) // max(largest, 1))
            msgs = await self._pull(
                self.stream, self.consumer, want, self._replies, self._inbox, quiet_is_empty=True
            )
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                given_back = self._delayed.pop(seq, None)
                try:
                    chunk = self._parse(msg)
                except (KeyError, ValueError, UnicodeDecodeError) as exc:
                    self._log.log(
                        logging.ERROR,
                        f"{self._where()}: message {seq} on {msg.subject} is not a chunk "
                        f"({type(exc).__name__}: {exc}); terminated",
                    )
                    await msg.term()
                    continue
                if chunk.last_error is None and given_back is not None:
                    chunk.last_error = given_back[1]  # a nak keeps no error: this process knows
                self._sizes.append(len(chunk.items))
                due = chunk.next_attempt_at if H_DUE_AT in (msg.headers or {}) else now
                if due > now:
                    await msg.nak(delay=due - now)
                    self._delayed[seq] = (due, chunk.last_error)
                    continue
                if chunks and total + len(chunk.items) > limit:
                    # Does not fit: given back, and this claim is done. (Pulling again would
                    # fetch the same message at once, forever: it is available again.)
                    await msg.nak()
                    self._delayed[seq] = (now, chunk.last_error)
                    full = True
                    continue
                root = _Message(msg, seq, {chunk.id})
                self._held[chunk.id] = _Held(chunk, root, whole=True)
                chunks.append(chunk)
                total += len(chunk.items)
            if len(msgs) < want:
                # Nothing more to have: what this process gave back is with another worker
                # by now, or still waits for its delay.
                for seq, (due, _) in list(self._delayed.items()):
                    if due <= now:
                        del self._delayed[seq]
                break
        return chunks

    def _take(self, ids: Sequence[int]) -> list[_Held]:
        return [self._held[i] for i in ids if i in self._held]

    async def _settle(self, held: _Held) -> None:
        """A part is done: forget it, and acknowledge its message once no part is open."""
        self._held.pop(held.chunk.id, None)
        root = held.root
        root.open.discard(held.chunk.id)
        if not root.open:
            await self._ack_message(root)

    async def _ack_message(self, root: _Message) -> None:
        try:
            await root.msg.ack_sync(timeout=self.timeout)
        except BaseException:
            # The heartbeat tries again, until JetStream has surely handed it out anew.
            if root.unacked_since is None:
                root.unacked_since = time.monotonic()
            if time.monotonic() - root.unacked_since < 2 * self.ack_wait:
                self._unacked.append(root)
            raise

    async def _each(
        self, helds: Sequence[_Held], action: Callable[[_Held], Awaitable[None]]
    ) -> None:
        """Run ``action`` on every chunk, all at once; raise the first failure after all ran."""
        results = await asyncio.gather(*(action(h) for h in helds), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @_storage("acknowledging")
    async def ack(self, ids: Sequence[int]) -> None:
        helds = self._take(ids)
        forget = {h.chunk.route for h in helds if h.chunk.route in self._errors}
        await self._each(helds, self._settle)
        for route in forget:  # the route delivers again: its error is history
            self._errors.pop(route, None)
            await self._forget_error(route)

    @_storage("retrying")
    async def retry(self, ids: Sequence[int], next_attempt_at: float, error: str) -> None:
        helds = self._take(ids)
        if not helds:
            return
        now = time.time()

        async def one(held: _Held) -> None:
            chunk = held.chunk
            if held.whole:
                self._held.pop(chunk.id, None)
                await held.root.msg.nak(delay=max(0.0, next_attempt_at - now))
                self._delayed[held.root.seq] = (next_attempt_at, error)
            else:
                await self._republish(
                    held, attempts=chunk.attempts + 1, due_at=next_attempt_at, error=error
                )
                await self._settle(held)

        await self._each(helds, one)
        await self._nc.flush(timeout=int(max(1, self.timeout)))
        await self._record_error(helds, error, now, attempts_added=1)

    @_storage("releasing")
    async def release(self, ids: Sequence[int], error: str | None = None) -> None:
        helds = self._take(ids)
        if not helds:
            return

        async def one(held: _Held) -> None:
            if held.whole:
                self._held.pop(held.chunk.id, None)
                await held.root.msg.nak()
                self._delayed[held.root.seq] = (time.time(), error or held.chunk.last_error)
            else:
                chunk = held.chunk
                await self._republish(
                    held, attempts=chunk.attempts, due_at=None, error=error or chunk.last_error
                )
                await self._settle(held)

        await self._each(helds, one)
        await self._nc.flush(timeout=int(max(1, self.timeout)))
        if error is not None:
            await self._record_error(helds, error, time.time(), attempts_added=0)

    async def _republish(
        self, held: _Held, *, attempts: int, due_at: float | None, error: str | None
    ) -> None:
        chunk = held.chunk
        # Tagged with the message it came from: a publish retried after a lost answer, or
        # the same part of the same message after a crash, is stored once.
        for message in self._chunk_messages(
            chunk.route,
            chunk.items,
            chunk.event_ids,
            enqueued_at=chunk.enqueued_at,
            tag=("part", held.root.seq),
            attempts=attempts,
            due_at=due_at,
            last_error=error,
        ):
            await self._publish(*message)

    def split(self, chunk: Chunk, sizes: Sequence[int]) -> list[Chunk]:
        """Parts held in memory in place of the chunk; see the module's docstring."""
        if sum(sizes) != len(chunk.items) or any(n <= 0 for n in sizes):
            raise ValueError(f"parts {list(sizes)} do not add up to {len(chunk.items)} items")
        return self._call(self._split(chunk, list(sizes)), "splitting")

    async def _split(self, chunk: Chunk, sizes: list[int]) -> list[Chunk]:
        held = self._held.pop(chunk.id, None)
        if held is None:
            raise ValueError(f"chunk {chunk.id} is not claimed by this queue")
        root = held.root
        root.open.discard(chunk.id)
        parts: list[Chunk] = []
        start = 0
        for n in sizes:
            items = chunk.items[start : start + n]
            self._ids += 1
            part = Chunk(
                id=self._ids,
                route=chunk.route,
                items=items,
                event_ids=chunk.event_ids[start : start + n],
                enqueued_at=chunk.enqueued_at,
                attempts=chunk.attempts,
                next_attempt_at=chunk.next_attempt_at,
                last_error=chunk.last_error,
                size=sum(len(i.encode()) for i in items) + n - 1,
            )
            self._held[part.id] = _Held(part, root, whole=False)
            root.open.add(part.id)
            parts.append(part)
            start += n
        return parts

    @_storage("dead-lettering")
    async def dead_letter(self, ids: Sequence[int], reason: str, code: int | None = None) -> None:
        helds = self._take(ids)
        now = time.time()

        async def one(held: _Held) -> None:
            chunk = held.chunk
            await asyncio.gather(
                *(
                    self._publish(
                        self._dead_subject(chunk.route),
                        item.encode(),
                        self._dead_headers(held, event_id, reason, code, now),
                        self.dead_stream,
                    )
                    for event_id, item in zip(chunk.event_ids, chunk.items, strict=True)
                )
            )
            await self._settle(held)

        await self._each(helds, one)

    @staticmethod
    def _dead_headers(
        held: _Held, event_id: str, reason: str, code: int | None, now: float
    ) -> dict[str, str]:
        chunk = held.chunk
        headers = {
            # The same event of the same message dies once, even when a crash had the
            # message claimed and split again.
            H_MSG_ID: _msg_id("dead", held.root.seq, event_id),
            H_EVENT_ID: _text(event_id),
            H_ROUTE: _route_json(chunk.route),
            H_ENQUEUED_AT: repr(chunk.enqueued_at),
            H_ATTEMPTS: str(chunk.attempts + 1),
            H_REASON: _text(reason),
            H_DEAD_AT: repr(now),
        }
        if code is not None:
            headers[H_CODE] = str(code)
        return headers

    # -- dead letters ------------------------------------------------------------------

    async def _scan(self, *, headers_only: bool, limit: int | None = None) -> AsyncIterator[Msg]:
        """Every dead letter in order, through a throwaway consumer (batches, not one
        request per message)."""
        info = await self._js.add_consumer(
            self.dead_stream,
            api.ConsumerConfig(
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=3600.0,
                deliver_policy=api.DeliverPolicy.ALL,
                filter_subject=f"{self.dead_subject_prefix}.>",
                headers_only=headers_only or None,
                inactive_threshold=max(10.0, 4 * self.timeout),
                mem_storage=True,
                max_ack_pending=-1,
            ),
        )
        replies: asyncio.Queue[Msg] = asyncio.Queue()
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=_collect(replies))
        seen = 0
        try:
            while limit is None or seen < limit:
                batch = _SCAN_BATCH if limit is None else min(_SCAN_BATCH, limit - seen)
                msgs = await self._pull(self.dead_stream, info.name, batch, replies, inbox)
                for msg in msgs:
                    seen += 1
                    yield msg
                if len(msgs) < batch:
                    break
        finally:  # if this fails, the consumer goes by itself once inactive
            with contextlib.suppress(*_NATS_ERRORS):
                await sub.unsubscribe()
            with contextlib.suppress(*_NATS_ERRORS):
                await self._js.delete_consumer(self.dead_stream, info.name)

    @staticmethod
    def _dead_letter(msg: Msg) -> DeadLetter:
        headers = msg.headers or {}
        code = headers.get(H_CODE)
        return DeadLetter(
            seq=msg.metadata.sequence.stream,
            event_id=json.loads(headers[H_EVENT_ID]),
            route=_route_from_json(headers[H_ROUTE]),
            item=json.loads(msg.data) if msg.data else {},
            enqueued_at=float(headers[H_ENQUEUED_AT]),
            attempts=int(headers.get(H_ATTEMPTS, "1")),
            reason=json.loads(headers[H_REASON]),
            code=int(code) if code else None,
            dead_at=float(headers[H_DEAD_AT]),
        )

    @_storage("reading dead letters")
    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters in the order they died (the dead-letter stream's order)."""
        return [self._dead_letter(m) async for m in self._scan(headers_only=False, limit=limit)]

    @_storage("reading dead letters")
    async def dead_letter_reasons(self) -> list[tuple[str, int | None, int]]:
        counts: Counter[tuple[str, int | None]] = Counter()
        async for msg in self._scan(headers_only=True):
            headers = msg.headers or {}
            code = headers.get(H_CODE)
            counts[(json.loads(headers[H_REASON]), int(code) if code else None)] += 1
        return sorted(
            ((reason, code, n) for (reason, code), n in counts.items()),
            key=lambda row: (-row[2], row[0]),
        )

    @_storage("replaying dead letters")
    async def replay(self, event_ids: Sequence[str] | None = None) -> int:
        """Publish dead letters again as chunks (a full max age ahead), then delete them."""
        wanted = None if event_ids is None else set(event_ids)
        if wanted is not None and not wanted:
            return 0
        # (seq, event id, item text) by route, in the order they died
        by_route: dict[Route, list[tuple[int, str, str]]] = {}
        async for msg in self._scan(headers_only=False):
            headers = msg.headers or {}
            event_id = json.loads(headers[H_EVENT_ID])
            if wanted is None or event_id in wanted:
                by_route.setdefault(_route_from_json(headers[H_ROUTE]), []).append(
                    (msg.metadata.sequence.stream, event_id, msg.data.decode("utf-8"))
                )
        seqs = [seq for group in by_route.values() for seq, _, _ in group]
        if not seqs:
            return 0
        now = time.time()
        cap = min(2_000_000, self._max_payload - _HEADER_ROOM)
        messages: list[tuple[str, bytes, dict[str, str]]] = []
        for route, group in by_route.items():
            items = [text for _, _, text in group]
            ids = [event_id for _, event_id, _ in group]
            for start, end, _ in chunk_cuts(items, 1000, cap):
                tag = ("replay", [seq for seq, _, _ in group[start:end]])
                messages.extend(
                    self._chunk_messages(
                        route, items[start:end], ids[start:end], enqueued_at=now, tag=tag
                    )
                )
        await self._publish_all(messages)
        await self._delete_dead(seqs, everything=wanted is None)
        return len(seqs)

    async def _delete_dead(self, seqs: Sequence[int], *, everything: bool) -> None:
        if everything:
            # What was read, and nothing that died since: everything below the last + 1.
            await self._js.purge_stream(self.dead_stream, seq=max(seqs) + 1)
            return
        await asyncio.gather(*(self._js.delete_msg(self.dead_stream, s) for s in seqs))

    # -- purge, reschedule -------------------------------------------------------------

    @_storage("purging")
    async def purge(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        older_than: float | None = None,
        dry_run: bool = False,
    ) -> tuple[int, int]:
        """Remove waiting events and dead letters.

        Everything: a purge of both streams (messages in flight too; their acks
        then do nothing). By event ids or age: one request per stored message
        (O(n)); a chunk that holds some of the event ids is published again
        without them.
        """
        if event_ids is None and older_than is None:
            waiting = sum(n for _, n in (await self._subject_counts())[0])
            dead = (await self._js.stream_info(self.dead_stream)).state.messages
            if not dry_run:
                await self._js.purge_stream(self.stream)
                await self._js.purge_stream(self.dead_stream)
            return waiting, dead
        wanted = None if event_ids is None else set(event_ids)
        if wanted is not None and not wanted:
            return 0, 0
        cutoff = None if older_than is None else time.time() - older_than
        waiting = 0
        async for raw in self._stored():
            headers = raw.headers or {}
            ids = json.loads(headers[H_EVENT_IDS])
            if wanted is not None:
                gone = [i for i in ids if i in wanted]
            else:
                gone = ids if float(headers[H_ENQUEUED_AT]) < (cutoff or 0) else []
            if not gone:
                continue
            waiting += len(gone)
            if dry_run:
                continue
            if wanted is not None and len(gone) < len(ids):
                items = (raw.data or b"").decode().split(_SEP)
                kept = [(i, t) for i, t in zip(ids, items, strict=True) if i not in wanted]
                error = headers.get(H_LAST_ERROR)
                for message in self._chunk_messages(
                    _route_from_json(headers[H_ROUTE]),
                    [t for _, t in kept],
                    [i for i, _ in kept],
                    enqueued_at=float(headers[H_ENQUEUED_AT]),
                    tag=("purge", raw.seq),
                    attempts=int(headers.get(H_ATTEMPTS, "0")),
                    due_at=float(headers[H_DUE_AT]) if H_DUE_AT in headers else None,
                    last_error=json.loads(error) if error else None,
                ):
                    await self._publish(*message)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self._js.delete_msg(self.stream, raw.seq)
        dead_seqs: list[int] = []
        async for msg in self._scan(headers_only=True):
            headers = msg.headers or {}
            if wanted is not None:
                hit = json.loads(headers.get(H_EVENT_ID, "null")) in wanted
            else:
                hit = float(headers.get(H_ENQUEUED_AT, "0")) < (cutoff or 0)
            if hit:
                dead_seqs.append(msg.metadata.sequence.stream)
        if dead_seqs and not dry_run:
            await self._delete_dead(dead_seqs, everything=False)
        return waiting, len(dead_seqs)

    async def _stored(self) -> AsyncIterator[api.RawStreamMsg]:
        """Every message of the stream, one request each (a work queue takes no second
        consumer to read it with)."""
        seq = 1
        while True:
            try:
                raw = await self._js.get_msg(
                    self.stream, seq=seq, subject=f"{self.subject_prefix}.>", next=True
                )
            except nats.js.errors.NotFoundError:
                return
            yield raw
            seq = (raw.seq or seq) + 1

    def reschedule(self, now: float | None = None) -> int:
        """Does nothing and returns 0: a ``nak``'s delay lives in the consumer's state and
        JetStream has no call to shorten it. Delays end by themselves (the retry policy
        caps them at ``retry_cap``, a Retry-After at ``max_retry_after``)."""
        return 0

    # -- figures -----------------------------------------------------------------------

    async def _subject_counts(self) -> tuple[list[tuple[Route | None, int]], int]:
        """(route, events) per subject of the stream, exact from its per-subject message
        counts, and the number of messages."""
        info = await self._js.stream_info(self.stream, subjects_filter=f"{self.subject_prefix}.>")
        rows: list[tuple[Route | None, int]] = []
        for subject, messages in (info.state.subjects or {}).items():
            parsed = self._route_of(subject)
            rows.append((parsed[0], parsed[1] * messages) if parsed else (None, messages))
        return rows, int(info.state.messages)

    async def _consumer(self) -> Any:
        try:
            return await self._js.consumer_info(self.stream, self.consumer)
        except nats.js.errors.NotFoundError:
            return None

    def _roots(self) -> list[_Message]:
        return list({id(h.root): h.root for h in self._held.values()}.values())

    def _estimate_due(self, info: Any, messages: int, now: float) -> float | None:
        if info is None:
            return now if messages else None
        if info.num_pending > 0:
            return now
        others = info.num_ack_pending - len(self._roots())
        if others <= 0:
            return None
        # Held by other workers, or given back: this process knows when what it gave back
        # is due (a claim that finds nothing forgets those another worker took); for the
        # rest, look again soon.
        later = [max(now, due) for due, _ in self._delayed.values()]
        if len(later) < others:
            later.append(now + _UNKNOWN_DUE)
        return min(later)

    @_storage("reading the consumer")
    async def next_due(self) -> float | None:
        """None when nothing waits; now when messages wait undelivered; else the earliest
        delay this process gave back, or one second from now for messages held by
        others (JetStream does not tell their due times).

        A view that does not deliver (``deliver=False``) claims nothing, so nothing is
        ever due for it: None, and an engine over it (a producer, an ingest node) sleeps
        instead of asking the server again and again."""
        if not self.deliver:
            return None
        now = time.time()
        info = await self._consumer()
        messages = 0
        if info is None:
            messages = (await self._js.stream_info(self.stream)).state.messages
        return self._estimate_due(info, messages, now)

    def _in_flight(self) -> Counter[Route]:
        counts: Counter[Route] = Counter()
        for held in self._held.values():
            counts[held.chunk.route] += len(held.chunk.items)
        return counts

    @staticmethod
    def _due_share(info: Any, messages: int) -> float:
        """The share of waiting messages no one holds: undelivered ones, of all."""
        if info is None or not messages:
            return 1.0
        return min(1.0, info.num_pending / messages)

    async def _oldest(self, subject: str) -> dict[str, str] | None:
        try:
            raw = await self._js.get_msg(self.stream, seq=1, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return None
        return raw.headers or {}

    @_storage("reading statistics")
    async def stats(self, now: float | None = None) -> QueueStats:
        """Counts in events: ``pending`` exactly (from the per-subject counts), ``due``
        estimated as the pending events times the share of messages no worker holds,
        ``in_flight`` what this process holds, ``dead_letters`` exactly (one message
        per event). ``oldest_enqueued_at`` is that of the stream's first message."""
        now = time.time() if now is None else now
        (counts, messages), info, dead, oldest = await asyncio.gather(
            self._subject_counts(),
            self._consumer(),
            self._js.stream_info(self.dead_stream),
            self._oldest(f"{self.subject_prefix}.>"),
        )
        pending = sum(n for _, n in counts)
        in_flight = sum(self._in_flight().values())
        return QueueStats(
            pending=pending,
            due=round(pending * self._due_share(info, messages)) if pending else 0,
            in_flight=in_flight,
            dead_letters=dead.state.messages,
            oldest_enqueued_at=float(oldest[H_ENQUEUED_AT]) if oldest else None,
            next_attempt_at=self._estimate_due(info, messages, now),
        )

    @_storage("reading statistics")
    async def route_stats(self, now: float | None = None) -> list[RouteStats]:
        """Per route: ``pending`` exactly; ``due`` estimated as in :meth:`stats`;
        ``oldest_enqueued_at`` and ``max_attempts`` from the route's first message (and
        what this process saw); the last error from this process or the errors bucket
        (``last_error_count``: the events of that failed request)."""
        (counts, messages), info = await asyncio.gather(self._subject_counts(), self._consumer())
        pending: Counter[Route] = Counter()
        for route, n in counts:
            if route is not None:
                pending[route] += n
        share = self._due_share(info, messages)
        in_flight = self._in_flight()
        routes = sorted(pending, key=lambda r: (r.destination, r.instance, r.event_source))
        firsts = await asyncio.gather(
            *(self._oldest(f"{self.subject_prefix}.{_route_label(r)}.*") for r in routes)
        )
        errors = await asyncio.gather(*(self._error_of(r) for r in routes))
        rows = []
        for route, first, error in zip(routes, firsts, errors, strict=True):
            attempts = max(
                [int(first.get(H_ATTEMPTS, "0")) if first else 0]
                + [h.chunk.attempts for h in self._held.values() if h.chunk.route == route]
                + [error.attempts if error else 0]
            )
            rows.append(
                RouteStats(
                    route=route,
                    pending=pending[route],
                    due=round(pending[route] * share),
                    in_flight=in_flight[route],
                    oldest_enqueued_at=float(first[H_ENQUEUED_AT]) if first else None,
                    max_attempts=attempts,
                    last_error=error.error if error else None,
                    last_error_count=error.count if error else 0,
                )
            )
        return rows

    @_storage("reading the stream")
    async def size_bytes(self) -> int | None:
        """Bytes of both streams (waiting chunks and dead letters), as JetStream counts them."""
        items, dead = await asyncio.gather(
            self._js.stream_info(self.stream), self._js.stream_info(self.dead_stream)
        )
        return int(items.state.bytes + dead.state.bytes)

    # -- route errors ------------------------------------------------------------------

    async def _record_error(
        self, helds: Sequence[_Held], error: str, now: float, *, attempts_added: int
    ) -> None:
        by_route: dict[Route, list[Chunk]] = {}
        for held in helds:
            by_route.setdefault(held.chunk.route, []).append(held.chunk)
        for route, chunks in by_route.items():
            record = _RouteError(
                error=error,
                count=sum(len(c.items) for c in chunks),
                at=now,
                attempts=max(c.attempts for c in chunks) + attempts_added,
            )
            self._errors[route] = record
            if self._kv is not None:
                value = json.dumps(dataclasses.asdict(record)).encode()
                try:
                    await self._kv.put(_route_label(route), value)
                except _NATS_ERRORS as exc:  # the figure is a nicety: never fail a retry for it
                    log.debug("%s: recording a route error: %s", self._where(), self._describe(exc))

    async def _forget_error(self, route: Route) -> None:
        if self._kv is not None:
            with contextlib.suppress(*_NATS_ERRORS):
                await self._kv.delete(_route_label(route))

    async def _error_of(self, route: Route) -> _RouteError | None:
        mine = self._errors.get(route)
        theirs = None
        if self._kv is not None:
            with contextlib.suppress(*_NATS_ERRORS, ValueError, TypeError, KeyError):
                entry = await self._kv.get(_route_label(route))
                if entry.value:
                    theirs = _RouteError(**json.loads(entry.value))
        if mine is None or (theirs is not None and theirs.at > mine.at):
            return theirs
        return mine

    # -- keeping claims, closing -------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Keep what this process holds from being redelivered while it works on it, and
        acknowledge messages whose acknowledgement failed before."""
        interval = max(0.05, self.ack_wait / 3)
        while True:
            await asyncio.sleep(interval)
            for root in self._roots():
                with contextlib.suppress(*_NATS_ERRORS):
                    await root.msg.in_progress()
            unacked, self._unacked = self._unacked, []
            for root in unacked:
                with contextlib.suppress(*_NATS_ERRORS):
                    await self._ack_message(root)

    def close(self) -> None:
        """Give back what is still held, drain the connection, stop the loop's thread."""
        if self._closed:
            return
        try:
            self._call(self._shutdown(), "closing", 3 * self.timeout + 2.0)
        except StorageError as exc:
            log.warning("%s", exc)
        finally:
            self._stop_loop()

    async def _shutdown(self) -> None:
        self._closing = True
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        if self._nc.is_connected:
            for root in self._roots():
                with contextlib.suppress(*_NATS_ERRORS):
                    await root.msg.nak()  # whole again, at once (parts settled are resent)
            for root in self._unacked:
                with contextlib.suppress(*_NATS_ERRORS):
                    await root.msg.ack_sync(timeout=self.timeout)
        self._held.clear()
        try:
            if self._nc.is_connected:
                await asyncio.wait_for(self._nc.drain(), self.timeout)
        except (*_NATS_ERRORS, asyncio.CancelledError):
            pass
        finally:
            await self._finish()

    async def _finish(self) -> None:
        """Close the connection and end every task left on the loop (nats-py's own)."""
        with contextlib.suppress(*_NATS_ERRORS):
            await self._nc.close()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    @_storage("reading the consumer")
    async def consumer_info(self) -> dict[str, int]:
        """Figures for monitoring, in messages (chunks), read from the server: the
        stream's ``messages`` and ``bytes``, and the consumer's ``num_pending`` (not
        taken by any worker yet: the lag), ``num_ack_pending`` (taken, or given back
        with a delay, and not acknowledged yet) and ``num_redelivered`` (of those, the
        ones delivered more than once). Before any worker created the consumer, every
        message is lag."""
        stream, info = await asyncio.gather(self._js.stream_info(self.stream), self._consumer())
        messages = int(stream.state.messages)
        figures = {"messages": messages, "bytes": int(stream.state.bytes)}
        if info is None:
            return {**figures, "num_pending": messages, "num_ack_pending": 0, "num_redelivered": 0}
        return {
            **figures,
            "num_pending": int(info.num_pending or 0),
            "num_ack_pending": int(info.num_ack_pending or 0),
            "num_redelivered": int(info.num_redelivered or 0),
        }


def _collect(replies: asyncio.Queue[Msg]) -> Callable[[Msg], Awaitable[None]]:
    """A subscription's callback that queues what it receives (nats-py wants a coroutine)."""

    async def collect(msg: Msg) -> None:
        replies.put_nowait(msg)

    return collect


def _is_status(msg: Msg) -> bool:
    return not msg.data and bool(msg.headers) and "Status" in (msg.headers or {})
