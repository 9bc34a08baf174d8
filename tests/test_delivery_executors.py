"""Executors: http over httpx (MockTransport), dry-run and file lines with the token redacted."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from destination.actions import Request
from destination.delivery import (
    DryRunExecutor,
    Executor,
    FileExecutor,
    HttpExecutor,
    TransportError,
    event_id_for,
)
from destination.errors import ConfigurationError, RetryableDeliveryError
from destination.plugins import collect_registry

from .delivery_support import TOKEN, URL

REQUEST = Request(
    url=URL,
    headers={"Access-Token": TOKEN, "Content-Type": "application/json"},
    body=b'{"data": [{"event": "Purchase", "event_id": "e1"}]}',
    secret_headers=frozenset({"Access-Token"}),
)


def send(executor, request=REQUEST):
    async def run():
        try:
            return await executor.send(request)
        finally:
            await executor.aclose()

    return asyncio.run(run())


def test_http_posts_body_and_headers():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(
            url=str(request.url), token=request.headers["access-token"], body=request.read()
        )
        return httpx.Response(200, headers={"x-a": "1"}, content=b'{"code": 0}')

    response = send(HttpExecutor(transport=httpx.MockTransport(handler)))
    assert (response.status, response.body, response.synthetic) == (200, b'{"code": 0}', False)
    assert response.headers["x-a"] == "1"
    assert seen == {"url": URL, "token": TOKEN, "body": REQUEST.body}


@pytest.mark.parametrize(
    ("error", "message"),
    [(httpx.ConnectError, "network error: ConnectError"), (httpx.ReadTimeout, "timeout")],
)
def test_http_failures_become_transport_errors_without_secrets(error, message):
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed with token {TOKEN}", request=request)

    with pytest.raises(TransportError, match=message) as info:
        send(HttpExecutor(transport=httpx.MockTransport(handler)))
    assert isinstance(info.value, RetryableDeliveryError)
    assert TOKEN not in str(info.value)


def test_http_concurrency_limit():
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return httpx.Response(200, content=b"{}")

    executor = HttpExecutor(concurrency=3, transport=httpx.MockTransport(handler))

    async def run():
        await asyncio.gather(*(executor.send(REQUEST) for _ in range(12)))
        await executor.aclose()

    asyncio.run(run())
    assert peak == 3
    with pytest.raises(ConfigurationError, match="concurrency"):
        HttpExecutor(concurrency=0)


def test_dry_run_writes_one_redacted_line_per_request():
    stream = io.StringIO()
    response = send(DryRunExecutor(stream=stream))
    assert response.synthetic and response.status == 200
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line) == {
        "url": URL,
        "headers": {"Access-Token": "[REDACTED]", "Content-Type": "application/json"},
        "body": {"data": [{"event": "Purchase", "event_id": "e1"}]},
    }
    assert TOKEN not in stream.getvalue()


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            b'{"data":[{"event":"Purchase","q":"caf\xc3\xa9"}]}',
            {"data": [{"event": "Purchase", "q": "café"}]},
        ),
        (b'{\n  "data": [\n    1\n  ]\n}', {"data": [1]}),  # pretty JSON stays one line
        (b"not json \xff", "not json \ufffd"),  # any other body: shown as a string
    ],
)
def test_dry_run_line_holds_the_body(body, shown):
    stream = io.StringIO()
    send(DryRunExecutor(stream=stream), Request(url=URL, headers={}, body=body))
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line) == {"url": URL, "headers": {}, "body": shown}
    if shown == {"data": [{"event": "Purchase", "q": "café"}]}:
        assert line.endswith(',"body":' + body.decode() + "}")  # spliced, byte for byte


def test_dry_run_defaults_to_stdout(capsys):
    send(DryRunExecutor())
    assert json.loads(capsys.readouterr().out)["url"] == URL


def test_file_executor_appends_lines(tmp_path):
    path = tmp_path / "out" / "requests.ndjson"
    executor = FileExecutor(path=path)

    async def run():
        for _ in range(3):
            await executor.send(REQUEST)
        await executor.aclose()

    asyncio.run(run())
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and TOKEN not in path.read_text()
    assert json.loads(lines[0])["headers"]["Access-Token"] == "[REDACTED]"
    with pytest.raises(ConfigurationError, match="path"):
        FileExecutor()


def test_builtins_registered_through_the_hooks(tmp_path):
    registry = collect_registry()
    assert {"http", "dry-run", "file"} <= set(registry.executors)
    assert registry.owners[("executor", "http")] == "destination.delivery.plugin"
    assert isinstance(registry.executors["dry-run"](), Executor)
    queue = registry.queues["sqlite"](tmp_path / "o.sqlite3")
    queue.close()


def test_event_id_stable():
    assert event_id_for({"messageId": " m-1 ", "x": 1}) == "m-1"
    assert event_id_for({"messageId": 42}) == "42"
    a = {"type": "track", "event": "Buy", "properties": {"a": 1, "b": 2}, "sentAt": "t1"}
    b = {"sentAt": "t2", "properties": {"b": 2, "a": 1}, "event": "Buy", "type": "track"}
    assert event_id_for(a) == event_id_for(b)
    assert event_id_for(a).startswith("h-") and len(event_id_for(a)) == 34
    assert event_id_for(a) != event_id_for({**a, "event": "Sell"})
    assert event_id_for({"messageId": "", "event": "x"}).startswith("h-")


def test_make_executor_and_queue_by_name(tmp_path):
    from destination.delivery import make_executor, make_queue

    assert isinstance(make_executor("http", timeout=5), HttpExecutor)
    assert isinstance(make_executor("file", path=tmp_path / "r.ndjson"), FileExecutor)
    queue = make_queue("sqlite", path=tmp_path / "o.sqlite3")
    queue.close()
    with pytest.raises(ConfigurationError, match=r"unknown executor 'carrier-pigeon'.*dry-run"):
        make_executor("carrier-pigeon")
    with pytest.raises(ConfigurationError, match=r"queue 'sqlite': bad options"):
        make_queue("sqlite", colour="blue")
