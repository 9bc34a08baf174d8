"""Every sandbox fault: the spec language, and each fault observed over real HTTP."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from destination.errors import ConfigurationError
from destination.tiktok.sandbox import (
    SANDBOX_TOKEN,
    TRACK_PATH,
    Fault,
    FaultPlan,
    FaultSpecError,
    RateLimiter,
    Sandbox,
    parse_fault,
)

HASH = hashlib.sha256(b"bob@example.com").hexdigest()


def batch(*event_ids: str, pixel: str = "PIXEL1") -> dict[str, Any]:
    data = [
        {
            "event": "AddToCart",
            "event_time": 1_763_800_000,
            "event_id": eid,
            "user": {"email": HASH},
        }
        for eid in event_ids or ("e-1",)
    ]
    return {"event_source": "web", "event_source_id": pixel, "data": data}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    sandbox.reset()
    sandbox.set_faults(None)
    sandbox.set_rate_limit(None)
    with httpx.Client(base_url=sandbox.url, timeout=5) as http:
        yield http
    sandbox.set_faults(None)
    sandbox.set_rate_limit(None)


def send(client: httpx.Client, payload: dict[str, Any] | None = None) -> httpx.Response:
    return client.post(TRACK_PATH, json=payload or batch(), headers={"Access-Token": SANDBOX_TOKEN})


def outcome(answer: httpx.Response) -> str:
    """'ok', 'http_503' or the body code, for comparing sequences."""
    if answer.status_code != 200:
        return f"http_{answer.status_code}"
    code = answer.json()["code"]
    return "ok" if code == 0 else str(code)


# -- the spec language ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("500", Fault("http", 1.0, 500)),
        ("503:0.25", Fault("http", 0.25, 503)),
        ("429", Fault("http", 1.0, 429, 1.0)),
        ("429:0.05:retry-after=2", Fault("http", 0.05, 429, 2.0)),
        ("502:retry-after=3", Fault("http", 1.0, 502, 3.0)),
        ("40100", Fault("code", 1.0, 40100)),
        ("50000:0.5", Fault("code", 0.5, 50000)),
        ("latency:0.2:ms=300", Fault("latency", 0.2, 300)),
        ("latency:ms=50", Fault("latency", 1.0, 50)),
        ("reset:0.02", Fault("reset", 0.02)),
        ("hang", Fault("hang", 1.0)),
        ("reject-event-id:evt-42", Fault("reject-event-id", 1.0, "evt-42")),
        ("reject-event-id:a:b", Fault("reject-event-id", 1.0, "a:b")),
        (
            "script:500,ok,429=0,40100,reset,hang,latency=20",
            [
                Fault("http", 1.0, 500),
                Fault("ok"),
                Fault("http", 1.0, 429, 0.0),
                Fault("code", 1.0, 40100),
                Fault("reset"),
                Fault("hang"),
                Fault("latency", 1.0, 20),
            ],
        ),
    ],
)
def test_fault_specs_parse(spec: str, expected: Fault | list[Fault]) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty fault spec"),
        ("boom", "unknown fault 'boom'"),
        ("500:lots", "probability 'lots' is not a number"),
        ("500:1.5", "not between 0 and 1"),
        ("200", "not between 400 and 599"),
        ("4010", "unknown fault"),
        ("latency:0.5", "latency needs ms=N"),
        ("latency:ms=fast", "ms 'fast' is not an integer"),
        ("latency:ms=-1", "negative"),
        ("reset:0.1:ms=3", "unknown option 'ms'"),
        ("40100:retry-after=1", "unknown option 'retry-after'"),
        ("reject-event-id:", "needs an event_id"),
        ("script:", "at least one step"),
        ("script:500,nope", "unknown step 'nope'"),
        ("script:ok=1", "unknown step"),
        ("500:0.1:0.2", "unexpected '0.2'"),
    ],
)
def test_bad_fault_specs_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault(spec)
    assert message in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_several_scripts_concatenate_and_ok_is_script_only() -> None:
    plan = FaultPlan.parse(["script:500", "script:ok,503"])
    assert [f.kind for f in plan.script] == ["http", "ok", "http"]
    with pytest.raises(FaultSpecError):
        FaultPlan(faults=[Fault.ok()])
    with pytest.raises(FaultSpecError):
        FaultPlan(script=[Fault.reject_event_id("x")])


def test_probabilistic_faults_repeat_with_a_seed() -> None:
    def run(seed: int) -> list[Any]:
        plan = FaultPlan.parse(["500:0.3", "40100:0.3", "latency:0.5:ms=7"], seed=seed)
        return [plan.next_faults() for _ in range(200)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    kinds = [fault.value if fault else None for _, fault in first]
    assert {500, 40100, None} == set(kinds)
    assert 0.15 < kinds.count(500) / 200 < 0.45  # 0.3 of requests
    assert {delay for delay, _ in first} == {0, 7}


def test_probability_zero_never_fires_and_one_always_does() -> None:
    never = FaultPlan.parse(["500:0"], seed=1)
    assert all(never.next_faults() == (0, None) for _ in range(100))
    always = FaultPlan.parse(["503"])
    assert all(always.next_faults()[1] == Fault("http", 1.0, 503) for _ in range(100))


def test_rate_limiter_token_bucket() -> None:
    now = [100.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.allow("A") for _ in range(3)] == [True, True, False]
    assert limiter.allow("B")  # per key
    now[0] += 0.5  # one token back
    assert [limiter.allow("A") for _ in range(2)] == [True, False]
    now[0] += 10  # refills to the burst, not beyond
    assert [limiter.allow("A") for _ in range(3)] == [True, True, False]
    with pytest.raises(FaultSpecError):
        RateLimiter(0)


# -- each fault over HTTP -----------------------------------------------------------


def test_scripted_sequence_is_exact_then_normal(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["script:500,502,503,429=0,40100,50000,ok,60001"])
    outcomes = [outcome(send(client)) for _ in range(10)]
    assert outcomes == [
        "http_500",
        "http_502",
        "http_503",
        "http_429",
        "40100",
        "50000",
        "ok",
        "60001",
        "ok",
        "ok",
    ]
    assert sandbox.counts() == {"AddToCart": 3}  # only the accepted requests were recorded
    assert sandbox.requests == 10
    assert sandbox.answers() == {
        "http_500": 1,
        "http_502": 1,
        "http_503": 1,
        "http_429": 1,
        "40100": 1,
        "50000": 1,
        "60001": 1,
        "0": 3,
    }


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx(client: httpx.Client, sandbox: Sandbox, status: int) -> None:
    sandbox.set_faults([str(status)])
    answer = send(client)
    assert answer.status_code == status
    assert "retry-after" not in answer.headers
    assert sandbox.events() == []


def test_http_429_carries_retry_after(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["429:1:retry-after=2"])
    answer = send(client)
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "2")
    sandbox.set_faults(["429"])
    assert send(client).headers["retry-after"] == "1"
    sandbox.set_faults(["script:429=0.5"])
    assert send(client).headers["retry-after"] == "0.5"


@pytest.mark.parametrize("code", [40100, 50000])
def test_body_codes_come_with_http_200(client: httpx.Client, sandbox: Sandbox, code: int) -> None:
    sandbox.set_faults([str(code)])
    answer = send(client)
    assert answer.status_code == 200
    assert answer.json()["code"] == code
    assert answer.json()["request_id"]
    assert sandbox.events() == []


def test_latency_delays_then_answers(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["latency:ms=300"])
    started = time.monotonic()
    assert outcome(send(client)) == "ok"
    assert time.monotonic() - started >= 0.29
    sandbox.set_faults(["script:latency=200,ok"])
    started = time.monotonic()
    assert outcome(send(client)) == "ok"
    assert time.monotonic() - started >= 0.19
    assert len(sandbox.events()) == 2


def test_latency_does_not_block_other_connections(sandbox: Sandbox) -> None:
    sandbox.reset()
    sandbox.set_faults(["script:latency=1500"])
    try:
        with (
            httpx.Client(base_url=sandbox.url, timeout=5) as slow,
            httpx.Client(base_url=sandbox.url, timeout=5) as fast,
        ):
            thread = threading.Thread(target=send, args=(slow,))
            thread.start()
            time.sleep(0.1)
            started = time.monotonic()
            assert outcome(send(fast)) == "ok"
            assert time.monotonic() - started < 1.0
            thread.join()
    finally:
        sandbox.set_faults(None)


def test_reset_drops_the_connection(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["script:reset"])
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        send(client)
    assert outcome(send(client)) == "ok"  # the client reconnects, the sandbox goes on
    assert sandbox.answers() == {"reset": 1, "0": 1}
    assert len(sandbox.events()) == 1


def test_reset_is_a_tcp_reset(sandbox: Sandbox) -> None:
    sandbox.set_faults(["script:reset"])
    try:
        with socket.create_connection((sandbox.host, sandbox.port), timeout=5) as sock:
            sock.sendall(_raw_request(b'{"event_source":"web"}'))
            with pytest.raises(ConnectionResetError):
                sock.recv(1024)
    finally:
        sandbox.set_faults(None)


def test_hang_outlasts_the_client_timeout(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["script:hang"])
    with httpx.Client(base_url=sandbox.url, timeout=0.3) as impatient:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            send(impatient)
        assert time.monotonic() - started < 3
    assert outcome(send(client)) == "ok"
    assert sandbox.answers() == {"hang": 1, "0": 1}


def test_stop_ends_hanging_connections() -> None:
    box = Sandbox(faults=["hang"]).start()
    sock = socket.create_connection((box.host, box.port), timeout=5)
    try:
        sock.sendall(_raw_request(b"{}"))
        time.sleep(0.1)
        started = time.monotonic()
        box.stop()
        assert time.monotonic() - started < 2
        assert sock.recv(1024) == b""  # closed by the server, no answer
    finally:
        sock.close()


def test_reject_event_id_rejects_the_whole_batch(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["reject-event-id:evt-42", "reject-event-id:evt-7"])
    answer = send(client, batch("a", "b", "evt-42", "c")).json()
    assert answer["code"] == 40002
    assert answer["message"].startswith("data.2.event_id: ")
    assert "evt-42" in answer["message"]
    assert send(client, batch("evt-7")).json()["message"].startswith("data.0.event_id")
    assert outcome(send(client, batch("a", "b", "c"))) == "ok"
    assert [e.event_id for e in sandbox.events()] == ["a", "b", "c"]


def test_reject_event_id_applies_during_scripts(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_faults(["script:ok", "reject-event-id:bad"])
    assert send(client, batch("bad")).json()["code"] == 40002


def test_rate_limit_per_pixel_answers_40100(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.set_rate_limit(2)
    answers = [send(client).json() for _ in range(3)]
    assert [a["code"] for a in answers] == [0, 0, 40100]
    assert "PIXEL1" in answers[2]["message"]
    assert send(client, batch(pixel="PIXEL2")).json()["code"] == 0  # per pixel
    time.sleep(0.6)  # 2 per second: a token is back after 0.5 s
    assert send(client).json()["code"] == 0
    assert sandbox.counts() == {"AddToCart": 4}


def test_faults_over_http(client: httpx.Client, sandbox: Sandbox) -> None:
    answer = client.post("/sandbox/faults", json={"faults": ["script:503,ok"], "seed": 3})
    assert answer.json() == {"ok": True}
    assert [outcome(send(client)) for _ in range(3)] == ["http_503", "ok", "ok"]
    client.post("/sandbox/faults", json={"faults": [], "rate_limit_rps": 1})
    assert [send(client).json()["code"] for _ in range(2)] == [0, 40100]
    client.post("/sandbox/faults", json={"rate_limit_rps": None})
    assert send(client).json()["code"] == 0
    for bad in ({"faults": ["nope"]}, {"faults": "500"}, {"seed": "x"}, [], {"rate_limit_rps": 0}):
        answer = client.post("/sandbox/faults", json=bad)
        assert answer.status_code == 400
        assert answer.json()["error"]
    assert client.get("/sandbox/faults").status_code == 405


def _raw_request(body: bytes) -> bytes:
    head = (
        f"POST {TRACK_PATH} HTTP/1.1\r\nHost: x\r\nAccess-Token: {SANDBOX_TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
