"""A small fake destination and a fake TikTok-like server for the delivery engine's tests.

The fake speaks a TikTok-shaped protocol (``{"data": [...]}`` in, ``{"code", "message"}``
out) so the engine is tested against the same kinds of answers it will get,
without depending on the real TikTok destination.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from destination.actions import Action, Destination, Outcome, Request, Route, Verdict

TOKEN = "tok-SECRET-123456"
URL = "http://fake.test/open_api/v1.3/event/track/"


def route() -> Route:
    return Route(destination="fake", event_source="web")


def item(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event": "Purchase",
        "event_time": 1700000000 + n,
        "event_id": f"e{n}",
        "user": {"email": "a" * 64},
        **extra,
    }


class FakeDestination(Destination):
    name = "fake"

    @property
    def actions(self) -> Mapping[str, Action]:
        return {}

    def load_settings(
        self, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Any:
        settings = dict(raw)
        if environ and "FAKE_TOKEN" in environ:
            settings["token"] = environ["FAKE_TOKEN"]
        return settings

    def build_request(
        self, settings: Any, route: Route, items: Sequence[dict[str, Any]]
    ) -> Request:
        body = {
            "event_source": route.event_source,
            "event_source_id": route.event_source_id,
            "data": list(items),
        }
        if route.test_event_code:
            body["test_event_code"] = route.test_event_code
        return Request(
            url=route.url,
            headers={"Access-Token": settings["token"], "Content-Type": "application/json"},
            body=json.dumps(body).encode(),
            secret_headers=frozenset({"Access-Token"}),
        )

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        retry_after = headers.get("retry-after")
        after = float(retry_after) if retry_after else None
        if status == 429 or status >= 500:
            return Verdict(Outcome.RETRY, f"HTTP {status}", status=status, retry_after=after)
        if status >= 400:
            return Verdict(Outcome.REJECTED, f"HTTP {status}", status=status)
        answer = json.loads(body)
        code, message = answer.get("code"), answer.get("message", "")
        if code == 0:
            return Verdict(Outcome.DELIVERED, message, status=status, code=code)
        if code in (40001, 40105):
            return Verdict(Outcome.STOP, message, status=status, code=code)
        if code in (40000, 40002):
            match = re.match(r"data\.(\d+)\.", message)
            index = int(match.group(1)) if match else None
            return Verdict(Outcome.REJECTED, message, status=status, code=code, index=index)
        if code == 60001:
            return Verdict(Outcome.RETRY, message, status=status, code=code, min_backoff=0.05)
        return Verdict(Outcome.RETRY, message, status=status, code=code, retry_after=after)

    def secrets(self, settings: Any) -> list[str]:
        return [settings.get("token", "")]


FAULTS = ("reset", "timeout", "429", "500", "throttle", "system", "lost-ack")


@dataclass
class FakeServer:
    """Answers like TikTok. Thread-safe; records every event_id it accepted."""

    token: str = TOKEN
    fault_rate: float = 0.0
    poison: set[str] = field(default_factory=set)
    name_index: bool = False  # say which data[] index is bad, like TikTok does
    seed: int = 1
    received: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    sizes: list[int] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)

    def answer(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) or raise ConnectionError / TimeoutError for network faults."""
        payload = json.loads(body)
        ids = [d["event_id"] for d in payload["data"]]
        with self._lock:
            self.requests += 1
            fault = None
            if self.fault_rate and self._random.random() < self.fault_rate:
                fault = FAULTS[sum(self.faults.values()) % len(FAULTS)]  # every kind
                self.faults[fault] += 1
        if headers.get("access-token") != self.token:
            return 200, {}, b'{"code": 40105, "message": "Access token is incorrect or revoked"}'
        if fault == "reset":
            raise ConnectionResetError("connection reset by peer")
        if fault == "timeout":
            raise TimeoutError("read timed out")
        if fault == "429":
            return 429, {"retry-after": "0.01"}, b"too many"
        if fault == "500":
            return 503, {}, b"unavailable"
        if fault == "throttle":
            return 200, {}, b'{"code": 40100, "message": "Too many requests"}'
        if fault == "system":
            return 200, {}, b'{"code": 50000, "message": "System error"}'
        bad = [i for i, e in enumerate(ids) if e in self.poison]
        if bad:
            where = f"data.{bad[0]}." if self.name_index else "data."
            message = f"{where}properties.contents.0.content_id: Not a valid string"
            return 200, {}, json.dumps({"code": 40002, "message": message}).encode()
        with self._lock:
            self.received.update(ids)
            self.sizes.append(len(ids))
        if fault == "lost-ack":  # accepted, but the answer never arrives
            raise ConnectionResetError("connection reset before the answer")
        return 200, {}, b'{"code": 0, "message": "OK", "request_id": "r1"}'

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            try:
                status, headers, body = self.answer(request.headers, request.read())
            except ConnectionResetError as exc:
                raise httpx.ReadError(str(exc), request=request) from None
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc), request=request) from None
            return httpx.Response(status, headers=headers, content=body)

        return httpx.MockTransport(handler)


def serve_http(server: FakeServer) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``server`` on loopback in a thread; return (httpd, url)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            try:
                status, headers, answer = server.answer(
                    {k.lower(): v for k, v in self.headers.items()}, body
                )
            except (ConnectionResetError, TimeoutError):
                self.close_connection = True
                return
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    return httpd, f"http://{host}:{port}/open_api/v1.3/event/track/"
