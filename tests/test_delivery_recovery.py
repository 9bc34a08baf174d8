"""Retries as whole requests, pauses after repeated rate limits, a stop that retries by
itself, the queue's cap, settings resolved at send time and the outbox's migration."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue
from destination.delivery.retry import RetryPolicy
from destination.errors import ConfigurationError, QueueFullError

from .delivery_support import TOKEN, FakeDestination, FakeServer, item, route

FAST = RetryPolicy(base=0.01, cap=0.05)


def make_engine(
    server: FakeServer, tmp_path: Path, settings: dict[str, Any] | None = None, **options: Any
) -> DeliveryEngine:
    options.setdefault("retry", FAST)
    options.setdefault("linger", 0.01)
    options.setdefault("rate", 10_000)
    return DeliveryEngine(
        FakeDestination(),
        settings or {"token": TOKEN},
        queue=SqliteQueue(tmp_path / "outbox.sqlite3"),
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(**options),
    )


def events(n: int, start: int = 0) -> list[tuple[Any, dict[str, Any], str]]:
    return [(route(), item(i), f"e{i}") for i in range(start, start + n)]


def scripted(server: FakeServer, answers: list[tuple[int, dict[str, str], bytes]]) -> list[int]:
    """Answer the first requests from ``answers``, then as usual; return the batch sizes seen."""
    original = server.answer
    sizes: list[int] = []

    def answer(headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        sizes.append(len(json.loads(body)["data"]))
        if answers:
            return answers.pop(0)
        return original(headers, body)

    server.answer = answer  # type: ignore[method-assign]
    return sizes


def test_a_failed_request_comes_back_whole(tmp_path):
    server = FakeServer()
    sizes = scripted(server, [(503, {}, b"unavailable")] * 3)
    with make_engine(server, tmp_path, batch_size=100) as engine:
        engine.submit_many(events(300))
        assert engine.drain(timeout=20)
    # Three requests of 100 failed; each came back as one request of 100, never in pieces.
    assert sizes == [100] * 6
    assert len(server.received) == 300


def test_one_due_time_per_failed_request(tmp_path):
    server = FakeServer()
    scripted(server, [(503, {}, b"unavailable")] * 100)
    slow = RetryPolicy(base=30, cap=60)
    with make_engine(server, tmp_path, batch_size=50, retry=slow) as engine:
        engine.submit_many(events(200))
        engine.flush(timeout=10)
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
            times = db.execute(
                "SELECT next_attempt_at, sum(count) FROM chunks GROUP BY next_attempt_at"
            ).fetchall()
    assert sorted(count for _, count in times) == [50, 50, 50, 50]


def test_repeated_rate_limits_pause_the_route(tmp_path):
    throttle = (200, {}, b'{"code": 40100, "message": "Too many requests"}')
    server = FakeServer()
    scripted(server, [throttle] * 10)

    class Destination(FakeDestination):
        def classify(self, status, headers, body):  # type: ignore[no-untyped-def]
            verdict = super().classify(status, headers, body)
            if b"40100" in body:
                from dataclasses import replace

                verdict = replace(verdict, rate_limited=True)
            return verdict

    engine = DeliveryEngine(
        Destination(),
        {"token": TOKEN},
        queue=SqliteQueue(tmp_path / "outbox.sqlite3"),
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(
            retry=FAST, linger=0.0, rate=10_000, rate_limit_pause_after=3, rate_limit_pause=120
        ),
    )
    with engine:
        engine.submit_many(events(10))
        started = time.time()
        assert engine.drain(timeout=3) is False  # paused after the third 40100 in a row
        assert server.received == {}
        next_due = engine.queue.next_due()
    assert next_due is not None and next_due >= started + 119
    # The first two came back within the ordinary backoff (FAST: ≤ 0.05 s), not minutes.


def test_a_single_rate_limit_backs_off_like_a_5xx(tmp_path):
    throttle = (429, {}, b"slow down")
    server = FakeServer()
    scripted(server, [throttle])
    with make_engine(server, tmp_path, retry=RetryPolicy(base=0.5, cap=60)) as engine:
        engine.submit_many(events(5))
        started = time.monotonic()
        assert engine.drain(timeout=10)
        assert time.monotonic() - started < 2.0  # first step ≤ base, no long pause
    assert len(server.received) == 5


def test_a_stopped_delivery_tries_again_by_itself(tmp_path):
    server = FakeServer(token="the-right-token-0001")
    engine = make_engine(server, tmp_path, stop_retry_interval=0.3)
    with engine:
        engine.submit_many(events(20))
        assert engine.drain(timeout=5) is False
        assert engine.stopped
        server.token = TOKEN  # TikTok's side fixed (a restored token, a granted permission)
        deadline = time.monotonic() + 10
        while engine.stopped and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.drain(timeout=10)
    assert len(server.received) == 20


def test_stopped_entries_carry_the_cause_for_outbox_status(tmp_path):
    server = FakeServer(token="the-right-token-0001")
    with make_engine(server, tmp_path) as engine:
        engine.submit_many(events(5))
        engine.drain(timeout=5)
        (stats,) = engine.queue.route_stats()
    assert stats.pending == 5 and stats.last_error is not None
    assert stats.last_error.startswith("delivery stopped:") and stats.last_error_count == 5


def test_settings_in_force_decide_where_queued_events_go(tmp_path):
    """Tried, and failing, under a wrong address and pixel; once the settings are fixed the
    same queued events go to the corrected address, with the corrected pixel."""
    server = FakeServer()
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        seen.append((request.url.path, body["event_source_id"]))
        if request.url.path == "/wrong":
            return httpx.Response(503, content=b"no such service")
        status, headers, answer = server.answer(request.headers, request.read())
        return httpx.Response(status, headers=headers, content=answer)

    def engine_with(settings: dict[str, Any]) -> DeliveryEngine:
        return DeliveryEngine(
            FakeDestination(),
            settings,
            queue=SqliteQueue(tmp_path / "outbox.sqlite3"),
            executor=HttpExecutor(transport=httpx.MockTransport(handler)),
            options=DeliveryOptions(retry=FAST, linger=0.01, rate=10_000),
        )

    with engine_with({"token": TOKEN, "url": "http://fake.test/wrong", "pixel": "WRONG"}) as e:
        e.submit_many(events(30))
        assert e.drain(timeout=1) is False  # retried under the wrong settings, never delivered
    assert seen and set(seen) == {("/wrong", "WRONG")} and not server.received
    right = {"token": TOKEN, "url": "http://fake.test/right", "pixel": "RIGHT"}
    with engine_with(right) as engine:
        assert engine.drain(timeout=10)
    assert len(server.received) == 30
    assert seen[-1] == ("/right", "RIGHT")


def test_the_queue_cap_refuses_new_events(tmp_path):
    server = FakeServer(token="the-right-token-0001")  # stopped: nothing leaves
    with make_engine(server, tmp_path, max_pending=25) as engine:
        engine.submit_many(events(20))
        with pytest.raises(QueueFullError, match="max_pending 25"):
            engine.submit_many(events(10, start=20))
        assert engine.submit_many(events(5, start=30)) == 5  # exactly up to the cap
        assert engine.stats()["pending"] == 25


def test_stats_after_close_are_the_final_figures(tmp_path):
    server = FakeServer()
    engine = make_engine(server, tmp_path)
    engine.submit_many(events(50))
    engine.close(timeout=10)
    stats = engine.stats(routes=True)
    assert stats["delivered"] == 50 and stats["pending"] == 0 and stats["routes"] == []


def test_options_refuse_negative_values():
    with pytest.raises(ConfigurationError, match="max_pending"):
        DeliveryOptions(max_pending=-1)
    with pytest.raises(ConfigurationError, match="rate_limit_pause_after"):
        DeliveryOptions(rate_limit_pause_after=0)


# -- the outbox file's layout --------------------------------------------------------------


def layout_zero(path: Path) -> None:
    """An outbox as the previous version wrote it: routes with a frozen URL and pixel."""
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE routes (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
            CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,
                route_id INTEGER NOT NULL REFERENCES routes(id), item TEXT NOT NULL,
                enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL, last_error TEXT,
                claimed INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,
                route_id INTEGER NOT NULL REFERENCES routes(id), item TEXT NOT NULL,
                enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL, reason TEXT NOT NULL,
                code INTEGER, dead_at REAL NOT NULL);
            """
        )
        for rid, pixel in ((1, "CWRONG"), (2, "CRIGHT")):
            old = {
                "destination": "tiktok",
                "url": "https://business-api.tiktok.com/open_api/v1.3/event/track/",
                "event_source": "web",
                "event_source_id": pixel,
                "test_event_code": None,
                "credential": "default",
            }
            db.execute("INSERT INTO routes VALUES (?, ?)", (rid, json.dumps(old)))
        now = time.time()
        for i in range(6):
            db.execute(
                "INSERT INTO outbox(event_id, route_id, item, enqueued_at, next_attempt_at,"
                " claimed) VALUES (?, ?, ?, ?, ?, ?)",
                (f"e{i}", 1 + i % 2, json.dumps({"event_id": f"e{i}"}), now, now, i == 0),
            )
        db.execute(
            "INSERT INTO dead_letters VALUES (99, 'd1', 1, '{}', ?, 1, 'bad', 40002, ?)",
            (now, now),
        )


def test_an_outbox_of_the_previous_layout_is_migrated_in_place(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    layout_zero(path)
    queue = SqliteQueue(path)
    (chunk,) = queue.claim(10)  # one chunk: the claimed row of the dead process is due too
    assert sorted(chunk.event_ids) == [f"e{i}" for i in range(6)]
    assert sorted(json.loads(text)["event_id"] for text in chunk.items) == sorted(chunk.event_ids)
    # Routes that differed only by the frozen pixel are one route now.
    assert chunk.route == route_of("tiktok")
    (letter,) = queue.dead_letters()
    assert letter.route == route_of("tiktok") and letter.code == 40002
    queue.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("SELECT count(*) FROM routes").fetchone() == (1,)
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert "outbox" not in tables


def route_of(destination: str) -> Any:
    from destination.actions import Route

    return Route(destination, "web", "default")


def test_an_outbox_of_a_newer_layout_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    SqliteQueue(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(ConfigurationError, match=r"newer version .*outbox flush"):
        SqliteQueue(path)


def test_the_lock_follows_symlinks(tmp_path):
    from destination.delivery import OutboxLockedError

    path = tmp_path / "outbox.sqlite3"
    link = tmp_path / "link.sqlite3"
    first = SqliteQueue(path)
    link.symlink_to(path)
    with pytest.raises(OutboxLockedError):
        SqliteQueue(link)
    first.close()


@pytest.mark.parametrize("name_index", [True, False])
def test_bisect_across_chunks_dead_letters_exactly_the_bad_events(tmp_path, name_index):
    """Chunks of 70 (stored by separate calls) in batches of 200: the bad events sit in
    different chunks, one right at a chunk's edge; only they become dead letters."""
    server = FakeServer(poison={"e69", "e70", "e150"}, name_index=name_index)
    with make_engine(server, tmp_path, batch_size=200) as engine:
        for start in range(0, 280, 70):
            engine.submit_many(events(70, start=start))
        assert engine.drain(timeout=30)
        letters = engine.queue.dead_letters()
        stats = engine.stats()
    assert sorted(d.event_id for d in letters) == ["e150", "e69", "e70"]
    assert set(server.received) == {f"e{i}" for i in range(280)} - {"e69", "e70", "e150"}
    assert stats["delivered"] == 277 and stats["rejected"] == 3 and stats["pending"] == 0


def test_the_byte_cap_counts_pages_in_use_so_a_drained_outbox_has_room(tmp_path):
    server = FakeServer(token="the-right-token-0001")  # stopped: nothing leaves
    big = [(route(), item(i, pad="x" * 2000), f"e{i}") for i in range(300)]
    with make_engine(server, tmp_path, max_queue_bytes=400_000) as engine:
        with pytest.raises(QueueFullError, match="max_queue_bytes"):
            for start in range(0, 300, 50):
                engine.submit_many(big[start : start + 50])
        server.token = TOKEN
        engine.resume()
        assert engine.drain(timeout=20)
        # The file keeps its size (SQLite reuses freed pages); the cap does not count them.
        on_disk = sum(
            p.stat().st_size for p in tmp_path.glob("outbox.sqlite3*") if not p.name.endswith("ve")
        )
        assert on_disk > 400_000  # the .sqlite3 and its -wal; the .reserve is not counted
        assert engine.submit_many(big[:50]) == 50


def test_a_throttled_route_slows_down_alone(tmp_path):
    """429s on one route halve that route's rate; another route keeps its own."""
    server = FakeServer()
    original = server.answer

    def answer(headers, body):  # type: ignore[no-untyped-def]
        if json.loads(body)["event_source"] == "offline":
            return 429, {"retry-after": "0"}, b"slow down"
        return original(headers, body)

    server.answer = answer  # type: ignore[method-assign]
    with make_engine(server, tmp_path, rate=50) as engine:
        engine.submit_many([(route(event_source="offline"), item(0), "o0")])
        engine.submit_many(events(5))
        engine.drain(timeout=3)
        buckets = {r.event_source: b for r, b in engine._buckets.items()}
    assert buckets["offline"].rate < 50 / 2 and buckets["web"].rate == 50
    assert len(server.received) == 5


def test_a_settlement_the_queue_could_not_record_is_given_back_later(tmp_path):
    """A retry the storage refused (disk full, NATS away) used to leave its chunk claimed by
    the engine for good: never sent again, never given back, until a restart."""
    from destination.errors import StorageError

    class Flaky(SqliteQueue):
        failures = 2

        def retry(self, ids, next_attempt_at, error):  # type: ignore[no-untyped-def]
            if Flaky.failures:
                Flaky.failures -= 1
                raise StorageError("outbox: database or disk is full")
            super().retry(ids, next_attempt_at, error)

        def release(self, ids, error=None):  # type: ignore[no-untyped-def]
            if Flaky.failures:
                Flaky.failures -= 1
                raise StorageError("outbox: database or disk is full")
            super().release(ids, error)

    server = FakeServer()
    scripted(server, [(503, {}, b"unavailable")])
    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN},
        queue=Flaky(tmp_path / "outbox.sqlite3"),
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(retry=FAST, linger=0.01, rate=10_000, poll_interval=0.05),
    )
    with engine:
        engine.submit_many(events(20))
        assert engine.drain(timeout=10), engine.stats()
    assert len(server.received) == 20 and Flaky.failures == 0
