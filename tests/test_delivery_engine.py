"""The delivery engine against a fake TikTok-like server: outcomes, faults, stop, shutdown."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination import hookimpl
from destination.actions import Request
from destination.delivery import (
    DeliveryEngine,
    DeliveryOptions,
    DeliveryResult,
    HttpExecutor,
    Response,
    ResultOutcome,
    RetryPolicy,
    SqliteQueue,
)
from destination.errors import DeliveryError

from .conftest import registered
from .delivery_support import TOKEN, FakeDestination, FakeServer, item, route

FAST = RetryPolicy(base=0.001, cap=0.02)


def make_engine(
    server: FakeServer,
    tmp_path: Path,
    *,
    token: str = TOKEN,
    on_result: Any = None,
    **options: Any,
) -> DeliveryEngine:
    options.setdefault("retry", FAST)
    options.setdefault("linger", 0.01)
    options.setdefault("rate", 10_000)
    return DeliveryEngine(
        FakeDestination(),
        {"token": token},
        queue=SqliteQueue(tmp_path / "outbox.sqlite3"),
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(**options),
        on_result=on_result,
    )


def events(n: int, start: int = 0) -> list[tuple[Any, dict[str, Any], str]]:
    return [(route(), item(i), f"e{i}") for i in range(start, start + n)]


def test_everything_delivered_once_in_capped_batches(tmp_path):
    server = FakeServer()
    results: list[DeliveryResult] = []
    with make_engine(server, tmp_path, batch_size=100, on_result=results.append) as engine:
        assert engine.submit_many(events(1050)) == 1050
        assert engine.flush(timeout=10)
        stats = engine.stats()
    assert sorted(server.received) == sorted(f"e{i}" for i in range(1050))
    assert set(server.received.values()) == {1}
    assert max(server.sizes) == 100
    assert stats["accepted"] == 1050 and stats["delivered"] == 1050 and stats["pending"] == 0
    assert len(results) == 1050 and {r.outcome for r in results} == {ResultOutcome.DELIVERED}
    assert all(r.attempts == 1 for r in results)


def test_single_submit_waits_for_linger_then_leaves(tmp_path):
    server = FakeServer()
    with make_engine(server, tmp_path, linger=0.05) as engine:
        engine.submit(route(), item(1), "e1")
        for _ in range(200):
            if server.received:
                break
            threading.Event().wait(0.01)
    assert server.received == {"e1": 1}


def test_routes_never_share_a_request(tmp_path):
    seen: list[set[str]] = []
    server = FakeServer()
    original = server.answer

    def answer(headers, body):
        import json

        seen.append({json.loads(body)["event_source_id"]})
        return original(headers, body)

    server.answer = answer  # type: ignore[method-assign]
    with make_engine(server, tmp_path) as engine:
        engine.submit_many([(route(instance=f"P{i % 3}"), item(i), f"e{i}") for i in range(90)])
        assert engine.flush(timeout=10)
    assert len(server.received) == 90
    assert all(len(s) == 1 for s in seen)


def test_thirty_percent_faults_every_event_delivered(tmp_path):
    server = FakeServer(fault_rate=0.3, seed=7)
    with make_engine(server, tmp_path, batch_size=50) as engine:
        engine.submit_many(events(2000))
        for _ in range(100):
            if engine.flush(timeout=1) and engine.stats()["pending"] == 0:
                break
        stats = engine.stats()
    assert set(server.received) == {f"e{i}" for i in range(2000)}
    # Only a lost acknowledgement re-sends, and only its own batch.
    duplicates = sum(n - 1 for n in server.received.values())
    assert duplicates <= server.faults["lost-ack"] * 50
    assert set(server.faults) == {
        "reset",
        "timeout",
        "429",
        "500",
        "throttle",
        "system",
        "lost-ack",
    }
    assert stats["retried"] > 0 and stats["dead_lettered"] == 0 and stats["pending"] == 0


@pytest.mark.parametrize("name_index", [False, True])
def test_poison_event_in_a_batch_of_1000_is_the_only_dead_letter(tmp_path, name_index):
    server = FakeServer(poison={"e517"}, name_index=name_index)
    results: list[DeliveryResult] = []
    with make_engine(server, tmp_path, on_result=results.append) as engine:
        engine.submit_many(events(1000))
        assert engine.flush(timeout=20)
        dead = engine.queue.dead_letters()
        stats = engine.stats()
    assert [d.event_id for d in dead] == ["e517"]
    assert "content_id: Not a valid string" in dead[0].reason and dead[0].code == 40002
    assert len(server.received) == 999 and "e517" not in server.received
    assert set(server.received.values()) == {1}
    assert stats["rejected"] == 1 and stats["dead_lettered"] == 1 and stats["delivered"] == 999
    rejected = [r for r in results if r.outcome is ResultOutcome.REJECTED]
    assert [r.event_id for r in rejected] == ["e517"]
    if name_index:  # the index hint isolates it in a handful of requests, not a bisection
        assert server.requests <= 4


def test_several_poison_events_isolated(tmp_path):
    poison = {"e3", "e4", "e250", "e999"}
    server = FakeServer(poison=poison)
    with make_engine(server, tmp_path) as engine:
        engine.submit_many(events(1000))
        assert engine.flush(timeout=20)
        dead = {d.event_id for d in engine.queue.dead_letters()}
    assert dead == poison
    assert set(server.received) == {f"e{i}" for i in range(1000)} - poison


def test_expired_token_stops_cleanly_and_keeps_events(tmp_path, caplog):
    server = FakeServer()
    engine = make_engine(server, tmp_path, token="expired-token-XYZ")
    with caplog.at_level(logging.ERROR, logger="destination.delivery"):
        engine.submit_many(events(300))
        assert engine.flush(timeout=10) is False
    assert engine.stopped
    reason = engine.stop_reason or ""
    assert "Access token is incorrect or revoked" in reason and "code 40105" in reason
    assert "expired-token-XYZ" not in reason and "expired-token-XYZ" not in caplog.text
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert server.received == {}
    assert engine.stats()["pending"] == 300
    # Submitting while stopped still stores (nothing is dropped).
    engine.submit_many(events(10, start=300))
    assert engine.stats()["pending"] == 310
    engine.resume({"token": TOKEN})
    assert engine.flush(timeout=10)
    engine.close()
    assert len(server.received) == 310


def test_stop_survives_restart_with_nothing_lost(tmp_path):
    server = FakeServer()
    engine = make_engine(server, tmp_path, token="bad")
    engine.submit_many(events(50))
    engine.flush(timeout=5)
    assert engine.stopped
    engine.close(timeout=1)
    with make_engine(server, tmp_path) as again:
        assert again.flush(timeout=10)
    assert len(server.received) == 50


def test_max_age_dead_letters_instead_of_retrying_forever(tmp_path):
    server = FakeServer(fault_rate=1.0)
    server.answer = lambda headers, body: (503, {}, b"down")  # type: ignore[method-assign]
    results: list[DeliveryResult] = []
    policy = RetryPolicy(base=0.001, cap=0.005, max_age=0.2)
    with make_engine(server, tmp_path, retry=policy, on_result=results.append) as engine:
        engine.submit_many(events(5))
        for _ in range(300):
            if engine.stats()["dead_letters"] == 5:
                break
            threading.Event().wait(0.01)
        dead = engine.queue.dead_letters()
    assert len(dead) == 5 and all("max age" in d.reason for d in dead)
    assert all(d.attempts > 1 for d in dead)
    assert {r.outcome for r in results} == {ResultOutcome.DEAD_LETTERED}


def test_retry_after_is_honoured(tmp_path):
    calls: list[float] = []
    import time

    def answer(headers, body):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return 429, {"retry-after": "0.3"}, b""
        return 200, {}, b'{"code": 0, "message": "OK"}'

    server = FakeServer()
    server.answer = answer  # type: ignore[method-assign]
    with make_engine(server, tmp_path) as engine:
        engine.submit(route(), item(1), "e1")
        for _ in range(200):
            if len(calls) >= 2:
                break
            threading.Event().wait(0.01)
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.29


class _HangingExecutor:
    """Never answers: models a destination that stopped responding."""

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, request: Request) -> Response:
        self.sent += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


def test_close_respects_deadline_and_keeps_the_rest_queued(tmp_path):
    import time

    executor = _HangingExecutor()
    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN},
        queue=SqliteQueue(tmp_path / "o.sqlite3"),
        executor=executor,
        options=DeliveryOptions(linger=0.0, batch_size=10),
    )
    engine.submit_many(events(100))
    started = time.monotonic()
    assert engine.close(timeout=0.3) is False
    assert time.monotonic() - started < 5
    assert executor.sent > 0
    queue = SqliteQueue(tmp_path / "o.sqlite3")
    try:
        stats = queue.stats()
        assert stats.pending == 100 and stats.in_flight == 0
    finally:
        queue.close()
    with pytest.raises(DeliveryError, match="closed"):
        engine.submit(route(), item(1), "e1")
    assert engine.close() is True  # twice is fine


def test_memory_window_bounds_claimed_entries(tmp_path):
    server = FakeServer()
    peak = 0
    engine_ref: list[DeliveryEngine] = []
    original = server.answer

    def answer(headers, body):
        nonlocal peak
        peak = max(peak, engine_ref[0].stats()["in_memory"])
        return original(headers, body)

    server.answer = answer  # type: ignore[method-assign]
    engine = make_engine(server, tmp_path, batch_size=10, concurrency=2, window=40)
    engine_ref.append(engine)
    engine.submit_many(events(500))
    assert engine.flush(timeout=20)
    engine.close()
    assert len(server.received) == 500
    assert 0 < peak <= 40


def test_token_never_written_to_the_outbox(tmp_path):
    server = FakeServer()
    engine = make_engine(server, tmp_path, token=TOKEN)
    engine.submit_many(events(20))
    engine.flush(timeout=5)
    engine.close()
    for path in tmp_path.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path


def test_hook_delivery_result(tmp_path):
    seen: list[DeliveryResult] = []

    class Plugin:
        @hookimpl
        def delivery_result(self, result):
            seen.append(result)

    server = FakeServer(poison={"e2"})
    with registered(Plugin(), "observer"), make_engine(server, tmp_path) as engine:
        engine.submit_many(events(4))
        assert engine.flush(timeout=10)
    outcomes = {r.event_id: r.outcome for r in seen}
    assert outcomes == {
        "e0": ResultOutcome.DELIVERED,
        "e1": ResultOutcome.DELIVERED,
        "e2": ResultOutcome.REJECTED,
        "e3": ResultOutcome.DELIVERED,
    }


def test_failing_callback_does_not_stop_delivery(tmp_path, caplog):
    def boom(result: DeliveryResult) -> None:
        raise RuntimeError("observer bug")

    server = FakeServer()
    with caplog.at_level(logging.WARNING), make_engine(server, tmp_path, on_result=boom) as e:
        e.submit_many(events(3))
        assert e.flush(timeout=5)
    assert len(server.received) == 3 and "observer bug" in caplog.text


def test_counters_from_the_pipeline(tmp_path):
    with make_engine(FakeServer(), tmp_path) as engine:
        engine.counters.add(received=5, matched=3, invalid=1)
        stats = engine.stats()
        with pytest.raises(KeyError, match="unknown counter"):
            engine.counters.add(bogus=1)
    assert (stats["received"], stats["matched"], stats["invalid"]) == (5, 3, 1)


def test_transport_errors_and_unexpected_executor_errors_are_retried(tmp_path):
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("refused", request=request)
        if attempts == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, content=b'{"code": 0, "message": "OK"}')

    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN},
        queue=SqliteQueue(tmp_path / "o.sqlite3"),
        executor=HttpExecutor(transport=httpx.MockTransport(handler)),
        options=DeliveryOptions(linger=0.0, retry=FAST),
    )
    with engine:
        engine.submit(route(), item(1), "e1")
        for _ in range(200):
            if engine.stats()["delivered"]:
                break
            threading.Event().wait(0.01)
        assert engine.stats()["delivered"] == 1 and engine.stats()["retried"] == 2


class _BrokenDestination(FakeDestination):
    def build_request(self, settings, route, items):
        raise TypeError(f"expected settings object, got token {settings['token']}")


def test_a_destination_bug_stops_delivery_and_keeps_events(tmp_path):
    engine = DeliveryEngine(
        _BrokenDestination(),
        {"token": TOKEN},
        queue=SqliteQueue(tmp_path / "o.sqlite3"),
        executor=HttpExecutor(transport=FakeServer().transport()),
        options=DeliveryOptions(linger=0.0),
    )
    with engine:
        engine.submit_many(events(5))
        assert engine.flush(timeout=5) is False
        assert engine.stopped and "could not build the request: TypeError" in str(
            engine.stop_reason
        )
        assert TOKEN not in str(engine.stop_reason)
        assert engine.stats()["pending"] == 5


def test_async_entry_points(tmp_path):
    server = FakeServer()
    engine = make_engine(server, tmp_path)

    async def host() -> tuple[int, bool]:
        stored = await engine.asubmit_many(events(30))
        return stored, await engine.aflush(timeout=10)

    with engine:
        assert asyncio.run(host()) == (30, True)
    assert len(server.received) == 30


class _FlakyQueue(SqliteQueue):
    """Claims fail twice, as when another process holds the database locked."""

    failures = 2

    def claim(self, limit, now=None):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().claim(limit, now)


def test_outbox_read_errors_are_logged_and_retried(tmp_path, caplog):
    server = FakeServer()
    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN},
        queue=_FlakyQueue(tmp_path / "o.sqlite3"),
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(linger=0.0, poll_interval=0.05),
    )
    with caplog.at_level(logging.ERROR, logger="destination.delivery"), engine:
        engine.submit_many(events(10))
        assert engine.flush(timeout=10)
    assert len(server.received) == 10
    assert "reading the queue failed" in caplog.text and "database is locked" in caplog.text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 60),
    poison_at=st.sets(st.integers(0, 59), max_size=6),
    name_index=st.booleans(),
)
def test_bisection_dead_letters_exactly_the_poison(tmp_path_factory, size, poison_at, name_index):
    poison = {f"e{i}" for i in poison_at if i < size}
    server = FakeServer(poison=poison, name_index=name_index)
    with make_engine(server, tmp_path_factory.mktemp("bisect")) as engine:
        engine.submit_many(events(size))
        assert engine.flush(timeout=20)
        dead = [d.event_id for d in engine.queue.dead_letters()]
    assert sorted(dead) == sorted(poison)
    assert set(server.received) == {f"e{i}" for i in range(size)} - poison
    assert set(server.received.values()) <= {1}


def test_flush_or_close_from_the_callback_is_refused_not_a_deadlock(tmp_path):
    errors: list[str] = []
    engine_ref: list[DeliveryEngine] = []

    def on_result(result: DeliveryResult) -> None:
        for call in (engine_ref[0].flush, engine_ref[0].close):
            try:
                call()
            except DeliveryError as exc:
                errors.append(str(exc))

    engine = make_engine(FakeServer(), tmp_path, on_result=on_result)
    engine_ref.append(engine)
    with engine:
        engine.submit(route(), item(1), "e1")
        assert engine.flush(timeout=5)
    assert errors == [
        "flush() called from on_result or a hook would deadlock",
        "close() called from on_result or a hook would deadlock",
    ]
