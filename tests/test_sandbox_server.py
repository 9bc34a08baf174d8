"""The sandbox as a server: lifecycle, HTTP/1.1 details, inspection, recording."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from destination.tiktok.sandbox import SANDBOX_TOKEN, TRACK_PATH, Sandbox

HASH = hashlib.sha256(b"carol@example.com").hexdigest()
HEADERS = {"Access-Token": SANDBOX_TOKEN}


def batch(*names_and_ids: tuple[str, str], pixel: str = "PIXEL1", **extra: Any) -> dict[str, Any]:
    data = [
        {"event": name, "event_time": 1_763_800_000, "event_id": eid, "user": {"email": HASH}}
        for name, eid in names_and_ids
    ]
    return {"event_source": "web", "event_source_id": pixel, "data": data, **extra}


def sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tiktok-sandbox"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=5, headers=HEADERS) as http:
        yield http


# -- lifecycle -------------------------------------------------------------------------


def test_start_stop_leaves_no_thread_and_frees_the_port() -> None:
    box = Sandbox().start()
    port = box.port
    assert port > 0
    assert box.url == f"http://127.0.0.1:{port}"
    assert box.track_url == f"http://127.0.0.1:{port}{TRACK_PATH}"
    assert len(sandbox_threads()) == 1
    with httpx.Client() as http:
        assert http.post(box.track_url, json=batch(("A", "1")), headers=HEADERS).json()["code"] == 0
    box.stop()
    assert sandbox_threads() == []
    box.stop()  # idempotent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds the port any more


def test_stop_with_open_keep_alive_connections(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    http = httpx.Client(base_url=sandbox.url, headers=HEADERS)
    try:
        assert http.post(TRACK_PATH, json=batch(("A", "1"))).json()["code"] == 0
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            sandbox.stop()
        assert sandbox_threads() == []
        # No "Exception in callback ... CancelledError" from the idle connection (Python 3.11).
        assert not [r for r in caplog.records if r.name == "asyncio"]
        with pytest.raises(httpx.TransportError):
            http.post(TRACK_PATH, json=batch(("A", "2")))
    finally:
        http.close()


def test_can_restart_and_rejects_double_start() -> None:
    box = Sandbox().start()
    try:
        with pytest.raises(RuntimeError):
            box.start()
    finally:
        box.stop()
    with box:
        assert httpx.get(box.url + "/sandbox/stats").status_code == 200
    assert sandbox_threads() == []


def test_port_in_use_raises_at_start(sandbox: Sandbox) -> None:
    with pytest.raises(OSError):
        Sandbox(port=sandbox.port).start()
    assert len(sandbox_threads()) == 1


def test_needs_a_token_and_sane_arguments() -> None:
    with pytest.raises(ValueError):
        Sandbox(tokens=[])
    with pytest.raises(ValueError):
        Sandbox(keep_events=-1)


def test_a_lone_string_is_one_token_pixel_or_fault() -> None:
    with Sandbox(tokens="tok", pixels="PIXEL1", faults="script:503") as box:
        assert box.pixels == frozenset({"PIXEL1"})
        with httpx.Client(base_url=box.url, headers={"Access-Token": "tok"}) as http:
            assert http.post(TRACK_PATH, json=batch(("A", "1"))).status_code == 503
            assert http.post(TRACK_PATH, json=batch(("A", "1"))).json()["code"] == 0
        box.set_faults("500")
        assert box.faults is not None and len(box.faults.faults) == 1


def test_repr_and_logs_never_show_the_token(caplog: pytest.LogCaptureFixture) -> None:
    secret = "tok-3f9a-very-secret"
    caplog.set_level(logging.INFO, logger="destination.sandbox")
    with Sandbox(tokens=[secret], faults=["script:500"]) as box:
        assert secret not in repr(box)
        with httpx.Client(base_url=box.url, headers={"Access-Token": secret}) as http:
            http.post(TRACK_PATH, json=batch(("A", "1")))
            http.post(TRACK_PATH, json=batch(("A", "1")))
            http.post(TRACK_PATH, json=batch(("A", "1")), headers={"Access-Token": "wrong"})
    assert caplog.records
    assert all(secret not in r.getMessage() for r in caplog.records)


# -- HTTP/1.1 ------------------------------------------------------------------------------


def _raw(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAccess-Token: {SANDBOX_TOKEN}\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response, byte by byte for the head, so nothing is over-read."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, "connection closed before a response"
        head += byte
    lines = head.decode().strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return int(lines[0].split()[1]), headers, body


def test_keep_alive_serves_many_requests_on_one_connection(sandbox: Sandbox) -> None:
    body = json.dumps(batch(("A", "1"))).encode()
    with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(_raw("POST", TRACK_PATH, body))
            status, headers, payload = _read_response(sock)
            assert status == 200
            assert "connection" not in headers
            assert json.loads(payload)["code"] == 0
        sock.sendall(_raw("POST", TRACK_PATH, body, "Connection: close\r\n"))
        status, headers, _ = _read_response(sock)
        assert headers["connection"] == "close"
        assert sock.recv(10) == b""  # the server closed it
    assert sandbox.requests == 4


def test_pipelined_requests_are_answered_in_order(sandbox: Sandbox) -> None:
    one = json.dumps(batch(("A", "1"))).encode()
    with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
        sock.sendall(_raw("POST", TRACK_PATH, one) + _raw("GET", "/sandbox/stats"))
        assert json.loads(_read_response(sock)[2])["code"] == 0
        assert json.loads(_read_response(sock)[2])["requests"] == 1


def test_gzip_bodies(client: httpx.Client, sandbox: Sandbox) -> None:
    body = gzip.compress(json.dumps(batch(("A", "1"), ("B", "2"))).encode())
    answer = client.post(TRACK_PATH, content=body, headers={"Content-Encoding": "gzip"})
    assert answer.json()["code"] == 0
    assert sandbox.counts() == {"A": 1, "B": 1}
    answer = client.post(TRACK_PATH, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert answer.json()["code"] == 40002
    assert answer.json()["message"] == "Request body is not valid gzip"
    answer = client.post(TRACK_PATH, content=body[:-12], headers={"Content-Encoding": "gzip"})
    assert answer.json()["message"] == "Request body is not valid gzip (truncated)"
    answer = client.post(TRACK_PATH, content=b"{}", headers={"Content-Encoding": "br"})
    assert answer.json()["message"] == "Unsupported Content-Encoding: br"


def test_gzip_bomb_is_refused() -> None:
    with Sandbox(max_body_bytes=10_000) as box, httpx.Client(headers=HEADERS) as http:
        bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
        answer = http.post(box.track_url, content=bomb, headers={"Content-Encoding": "gzip"})
        assert answer.json()["code"] == 40002
        assert "too large" in answer.json()["message"]
        answer = http.post(box.track_url, content=b" " * 20_000)
        assert answer.status_code == 413


def test_chunked_bodies(client: httpx.Client, sandbox: Sandbox) -> None:
    raw = json.dumps(batch(("A", "1"))).encode()

    def chunks() -> Iterator[bytes]:
        yield raw[:10]
        yield raw[10:]

    answer = client.post(TRACK_PATH, content=chunks())
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.json()["code"] == 0
    assert sandbox.counts() == {"A": 1}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST / HTTP/2.0\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nno-colon-here\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: many\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
def test_broken_http_is_answered_then_closed(sandbox: Sandbox, raw: bytes, status: int) -> None:
    with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
        sock.sendall(raw)
        assert _read_response(sock)[0] == status
        assert sock.recv(10) == b""


# -- inspection ----------------------------------------------------------------------------


def test_events_counts_and_duplicates(client: httpx.Client, sandbox: Sandbox) -> None:
    client.post(TRACK_PATH, json=batch(("Purchase", "1"), ("AddToCart", "2"), test_event_code="T1"))
    client.post(TRACK_PATH, json=batch(("Purchase", "1"), ("Purchase", "3")))  # "1" again
    client.post(TRACK_PATH, json=batch(("Purchase", "1"), pixel="PIXEL2"))  # other pixel
    client.post(TRACK_PATH, json=batch(("AddToCart", "1")))  # other event name
    client.post(TRACK_PATH, json=batch(("Purchase", "1"), ("Bad", 5)))  # rejected: not counted
    assert sandbox.counts() == {"Purchase": 4, "AddToCart": 2}
    assert sandbox.duplicates() == {("PIXEL1", "Purchase", "1"): 2}
    assert sandbox.requests == 5
    events = sandbox.events()
    assert [(e.event_source_id, e.event, e.event_id) for e in events] == [
        ("PIXEL1", "Purchase", "1"),
        ("PIXEL1", "AddToCart", "2"),
        ("PIXEL1", "Purchase", "1"),
        ("PIXEL1", "Purchase", "3"),
        ("PIXEL2", "Purchase", "1"),
        ("PIXEL1", "AddToCart", "1"),
    ]
    assert [e.test_event_code for e in events[:3]] == ["T1", "T1", None]
    assert [e.event_id for e in sandbox.events("PIXEL2")] == ["1"]

    over_http = client.get("/sandbox/events").json()["events"]
    assert over_http == [e.as_dict() for e in events]
    assert over_http[0]["event_source"] == "web"
    assert over_http[0]["data"]["user"] == {"email": HASH}
    filtered = client.get("/sandbox/events", params={"event_source_id": "PIXEL2"}).json()
    assert len(filtered["events"]) == 1

    stats = client.get("/sandbox/stats").json()
    assert stats["requests"] == 5
    assert stats["events"] == 6
    assert stats["counts"] == {"Purchase": 4, "AddToCart": 2}
    assert stats["answers"] == {"0": 4, "40002": 1}
    assert stats["duplicates"] == [
        {"event_source_id": "PIXEL1", "event": "Purchase", "event_id": "1", "count": 2}
    ]


def test_events_without_event_id_are_never_duplicates(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    payload = batch(("A", "x"))
    del payload["data"][0]["event_id"]
    client.post(TRACK_PATH, json=payload)
    client.post(TRACK_PATH, json=payload)
    assert sandbox.counts() == {"A": 2}
    assert sandbox.duplicates() == {}


def test_reset_over_http_and_in_python(client: httpx.Client, sandbox: Sandbox) -> None:
    client.post(TRACK_PATH, json=batch(("A", "1"), ("A", "1")))
    assert client.post("/sandbox/reset").json() == {"ok": True}
    assert client.get("/sandbox/stats").json()["events"] == 0
    assert sandbox.events() == [] and sandbox.counts() == {} and sandbox.duplicates() == {}
    assert sandbox.requests == 0
    client.post(TRACK_PATH, json=batch(("A", "1")))
    sandbox.reset()
    assert sandbox.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/sandbox/events", 405),
        ("POST", "/sandbox/stats", 405),
        ("GET", "/sandbox/reset", 405),
        ("GET", "/sandbox/nothing", 404),
    ],
)
def test_inspection_methods(client: httpx.Client, method: str, path: str, status: int) -> None:
    assert client.request(method, path).status_code == status


def test_keep_events_caps_storage_not_counts() -> None:
    with Sandbox(keep_events=3) as box, httpx.Client(base_url=box.url, headers=HEADERS) as http:
        http.post(TRACK_PATH, json=batch(("A", "1"), ("A", "2")))
        http.post(TRACK_PATH, json=batch(("A", "3"), ("A", "4"), ("A", "5")))
        http.post(TRACK_PATH, json=batch(("A", "6")))
        assert [e.event_id for e in box.events()] == ["4", "5", "6"]
        assert box.counts() == {"A": 6}
        assert box.stats()["stored_events"] == 3
    with Sandbox(keep_events=0) as box, httpx.Client(base_url=box.url, headers=HEADERS) as http:
        http.post(TRACK_PATH, json=batch(("A", "1"), ("A", "1")))
        assert box.events() == []
        assert box.duplicates() == {("PIXEL1", "A", "1"): 2}


def test_many_concurrent_clients_lose_nothing(sandbox: Sandbox) -> None:
    def worker(n: int) -> None:
        with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
            for i in range(10):
                events = [("E", f"{n}-{i}-{k}") for k in range(20)]
                assert http.post(TRACK_PATH, json=batch(*events)).json()["code"] == 0

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sandbox.counts() == {"E": 800}
    assert sandbox.duplicates() == {}
    assert len({e.event_id for e in sandbox.events()}) == 800


def test_expect_100_continue(sandbox: Sandbox) -> None:
    body = json.dumps(batch(("A", "1"))).encode()
    head = _raw("POST", TRACK_PATH, b"", "Expect: 100-continue\r\n").replace(
        b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
    )
    with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
        sock.sendall(head)
        assert _read_response_head(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, payload = _read_response(sock)
        assert (status, json.loads(payload)["code"]) == (200, 0)


def _read_response_head(sock: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    return head


def test_an_internal_error_is_logged_not_disguised(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(sandbox, "_check", broken)
    with httpx.Client(base_url=sandbox.url, headers=HEADERS) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(TRACK_PATH, json=batch(("A", "1")))
        monkeypatch.undo()
        assert http.post(TRACK_PATH, json=batch(("A", "1"))).json()["code"] == 0
    assert any("internal error" in r.getMessage() for r in caplog.records)
