"""The ingest server under faults: it keeps taking events while delivery is stopped,
answers 503 only when it cannot store them, and says so on /healthz and /metrics.

Storage failures are real SQLite failures: a trigger on the outbox table makes
every insert fail, from this process or a worker process alike, and dropping
it makes storage work again.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from destination.config import load_config
from destination.errors import StorageError
from destination.host import Runtime
from destination.serve import app as serve_app
from destination.serve.auth import WriteKeys
from destination.serve.command import reload_settings
from destination.serve.metrics import MAX_LABEL_CHARS, RequestMetrics, render
from destination.serve.workers import WorkerPool
from destination.tiktok.sandbox import Sandbox

from .serve_support import KEY, PIXEL, running_server, runtime_config, wait_for, write_settings

AUTH = (KEY, "")
WRONG_TOKEN = "revoked-token-4e1f9a"


def order(**extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": str(uuid.uuid4()),
        "userId": "user-1",
        "properties": {"order_id": "o1", "value": 25, "currency": "USD"},
        "context": {"ip": "203.0.113.7", "traits": {"email": "a@example.com"}},
        **extra,
    }


def batch(count: int) -> dict[str, Any]:
    return {"batch": [order() for _ in range(count)]}


def metric_lines(http: httpx.Client, url: str) -> list[str]:
    answer = http.get(url + "/metrics")
    assert answer.status_code == 200
    return answer.text.splitlines()


@contextmanager
def failing_inserts(outbox: Path, message: str = "database or disk is full") -> Iterator[None]:
    """Every insert into the outbox fails with ``message`` until the block ends."""
    with sqlite3.connect(outbox, isolation_level=None) as db:
        db.execute(
            "CREATE TRIGGER refuse_inserts BEFORE INSERT ON chunks "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )
    try:
        yield
    finally:
        with sqlite3.connect(outbox, isolation_level=None) as db:
            db.execute("DROP TRIGGER refuse_inserts")


def stopped_config(box: Sandbox, outbox: Path, **delivery: Any) -> dict[str, Any]:
    """A config whose token the sandbox refuses (40105); no retry of its own meanwhile."""
    config = runtime_config(box, outbox, stop_retry_interval=0, **delivery)
    config["settings"]["access_token"] = WRONG_TOKEN
    return config


@pytest.fixture
def box():
    with Sandbox(pixels=[PIXEL], tokens=["the-right-token-77"]) as sandbox:
        yield sandbox


# -- delivery stopped: still accepting ----------------------------------------------------


def test_a_stopped_delivery_keeps_accepting_until_the_cap_then_recovers(box, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    runtime = Runtime.from_config(
        stopped_config(box, tmp_path / "outbox.db", max_pending=50),
        environ={},
        track_results=False,
    )
    with running_server(runtime) as url, httpx.Client() as http:
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200
        assert wait_for(lambda: runtime.stopped)

        reason = runtime.stop_reason
        assert reason is not None and reason.startswith("delivery stopped: ")
        health = http.get(url + "/healthz")
        body = health.json()
        assert health.status_code == 200  # the node still takes events
        assert body["status"] == "degraded: " + reason and body["reason"] == reason
        assert "40105" in body["status"]
        assert body["pending"] == 1 and body["dead_letters"] == 0
        lines = metric_lines(http, url)
        assert "destination_delivery_stopped 1" in lines
        assert "destination_storage_failing 0" in lines
        assert "destination_queue_full 0" in lines
        (info,) = [line for line in lines if line.startswith("destination_delivery_stop_info{")]
        assert info.startswith('destination_delivery_stop_info{reason="delivery stopped: ')
        assert info.endswith("} 1") and "40105" in info

        # A credentials outage loses nothing: events wait in the outbox up to the cap.
        assert http.post(url + "/v1/batch", json=batch(48), auth=AUTH).status_code == 200
        refused = http.post(url + "/v1/batch", json=batch(2), auth=AUTH)  # 49 + 2 > 50
        assert refused.status_code == 503
        assert refused.json()["success"] is False and refused.json()["code"] == "queue_full"
        assert "delivery.max_pending 50" in refused.json()["message"]
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200  # 50
        for _ in range(5):
            answer = http.post(url + "/v1/track", json=order(), auth=AUTH)
            assert answer.status_code == 503 and answer.json()["code"] == "queue_full"
        assert runtime.stats()["pending"] == 50

        health = http.get(url + "/healthz")
        assert health.status_code == 503
        assert health.json()["status"].startswith("degraded: queue full: 50 events wait")
        assert health.json()["stop_reason"] == runtime.stop_reason
        lines = metric_lines(http, url)
        assert "destination_queue_full 1" in lines and "destination_delivery_stopped 1" in lines
        assert 'destination_serve_requests_total{endpoint="track",status="503"} 5' in lines

        # The right token: delivery resumes, the queue empties, the node is healthy again
        # without a request having to prove it.
        runtime.reload_settings({**runtime.config.settings, "access_token": box.token}, {})
        assert wait_for(lambda: len(box.events()) == 50)
        assert wait_for(lambda: http.get(url + "/healthz").json()["status"] == "ok")
        assert http.get(url + "/healthz").status_code == 200
        assert "destination_queue_full 0" in metric_lines(http, url)
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200
        assert wait_for(lambda: len(box.events()) == 51)
    full = [r for r in caplog.records if "queue_full" in r.getMessage()]
    assert len(full) == 1 and full[0].levelno == logging.WARNING  # 6 refusals, one line
    assert "the queue is full (delivery.max_pending 50)" in full[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert WRONG_TOKEN not in caplog.text and box.token not in caplog.text


def test_a_wrong_api_base_url_is_degraded_not_down(box, tmp_path):
    config = runtime_config(box, tmp_path / "outbox.db", stop_retry_interval=0)
    config["settings"]["api_base_url"] = box.url + "/not-tiktok"
    runtime = Runtime.from_config(config, environ={}, track_results=False)
    with running_server(runtime) as url, httpx.Client() as http:
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200
        assert wait_for(lambda: runtime.stopped)
        health = http.get(url + "/healthz")
        assert health.status_code == 200
        assert health.json()["status"].startswith("degraded: delivery stopped: ")
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200
        assert runtime.stats()["pending"] == 2


def test_a_long_stop_reason_is_cut_and_escaped_in_its_label():
    reason = 'delivery stopped: "odd" \\ answer\n' + "x" * 500
    text = render({"stopped": True, "stop_reason": reason}, RequestMetrics())
    (line,) = [x for x in text.splitlines() if x.startswith("destination_delivery_stop_info")]
    value = line.split('reason="', 1)[1].rsplit('"} 1', 1)[0]
    assert value.startswith('delivery stopped: \\"odd\\" \\\\ answer\\nxxx')
    assert value.endswith("…") and len(value) < MAX_LABEL_CHARS + 10
    assert "\n" not in line
    idle = render({"stopped": False}, RequestMetrics())
    assert "# TYPE destination_delivery_stop_info gauge" in idle
    assert "destination_delivery_stop_info{" not in idle


# -- storage failing ----------------------------------------------------------------------


def test_a_storage_failure_is_503_logged_once_and_clears_when_storage_works(box, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    outbox = tmp_path / "outbox.db"
    runtime = Runtime.from_config(runtime_config(box, outbox), environ={}, track_results=False)
    with running_server(runtime) as url, httpx.Client() as http:
        with failing_inserts(outbox):
            for _ in range(20):
                answer = http.post(url + "/v1/track", json=order(), auth=AUTH)
                assert answer.status_code == 503
                body = answer.json()
                assert body["success"] is False and body["code"] == "storage_error"
                assert f"outbox {outbox}: database or disk is full" in body["message"]
            health = http.get(url + "/healthz")
            assert health.status_code == 503
            assert health.json()["status"] == f"degraded: storage: outbox {outbox}: " + (
                "database or disk is full"
            )
            assert "destination_storage_failing 1" in metric_lines(http, url)
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 200
        health = http.get(url + "/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert "destination_storage_failing 0" in metric_lines(http, url)
        assert wait_for(lambda: len(box.events()) == 1)
    failures = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # 20 refusals, one line
    assert failures[0].levelno == logging.ERROR
    assert not any(r.exc_info for r in caplog.records)  # never a traceback
    assert "Traceback" not in caplog.text


def test_a_refused_store_stops_counting_as_failing_after_a_while(box, tmp_path, monkeypatch):
    # A load balancer that took the node out on the 503 sends no request that could
    # prove storage works again: the node comes back on its own to be tried.
    monkeypatch.setattr(serve_app, "STORAGE_FAILURE_HOLD", 0.3)
    outbox = tmp_path / "outbox.db"
    runtime = Runtime.from_config(runtime_config(box, outbox), environ={}, track_results=False)
    with running_server(runtime) as url, httpx.Client() as http, failing_inserts(outbox):
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 503
        assert http.get(url + "/healthz").status_code == 503
        assert wait_for(lambda: http.get(url + "/healthz").status_code == 200, timeout=10)
        assert http.post(url + "/v1/track", json=order(), auth=AUTH).status_code == 503
        assert http.get(url + "/healthz").status_code == 503


def test_an_unreadable_outbox_makes_healthz_503_and_metrics_still_answer(
    box, tmp_path, monkeypatch
):
    runtime = Runtime.from_config(
        runtime_config(box, tmp_path / "outbox.db"), environ={}, track_results=False
    )
    state = serve_app.ServerState(runtime, WriteKeys((KEY,)), 1.0)
    try:

        def unreadable(*args: Any, **kwargs: Any) -> Any:
            raise StorageError("outbox x: disk I/O error")

        with monkeypatch.context() as patch:
            patch.setattr(runtime.engine.queue, "stats", unreadable)
            stats = state.stats()
        assert stats["storage_error"] == "outbox x: disk I/O error" and "pending" not in stats
        assert stats["received"] == 0  # the counters kept in memory still show
        health = state.health(stats)
        assert health.http_status == 503
        assert health.status == "degraded: storage: outbox x: disk I/O error"
        lines = render(stats, state.metrics, storage_failing=health.storage_failing).splitlines()
        assert "destination_storage_failing 1" in lines
        assert "destination_events_received_total 0" in lines
        # Unknown, not a made-up 0:
        assert not any(line.startswith("destination_outbox_pending ") for line in lines)
    finally:
        runtime.close(0)


# -- worker processes ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_workers_storage_failure_and_full_queue_are_answered_like_the_servers(
    box, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    outbox = tmp_path / "outbox.db"
    config = load_config(stopped_config(box, outbox, max_pending=5))
    runtime = Runtime(config, environ={}, track_results=False)
    pool = WorkerPool(1, config, {}, WriteKeys((KEY,)))
    with running_server(runtime, pool=pool) as url, httpx.Client() as http:
        with failing_inserts(outbox):
            for _ in range(5):
                answer = http.post(url + "/v1/track", json=order(), auth=AUTH)
                assert answer.status_code == 503 and answer.json()["code"] == "storage_error"
                assert "database or disk is full" in answer.json()["message"]
            health = http.get(url + "/healthz")
            assert health.status_code == 503
            assert health.json()["status"].startswith("degraded: storage: outbox ")
            assert "destination_storage_failing 1" in metric_lines(http, url)
        assert http.post(url + "/v1/batch", json=batch(5), auth=AUTH).status_code == 200
        assert "destination_storage_failing 0" in metric_lines(http, url)
        refused = http.post(url + "/v1/track", json=order(), auth=AUTH)
        assert refused.status_code == 503 and refused.json()["code"] == "queue_full"
        assert "delivery.max_pending 5" in refused.json()["message"]
        health = http.get(url + "/healthz")
        assert health.status_code == 503
        assert health.json()["status"].startswith("degraded: queue full: ")
        assert "destination_queue_full 1" in metric_lines(http, url)
    failures = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(failures) == 1 and failures[0].name == "destination.serve"
    assert not any(r.exc_info for r in caplog.records)


# -- reloading the settings (what SIGHUP runs; the signal itself: test_serve_process.py) ---


def test_reload_settings_resumes_with_the_files_settings_or_keeps_the_old_ones(
    box, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    outbox = tmp_path / "outbox.db"
    path = tmp_path / "serve.yaml"

    def write(token: str, extra: str = "", destination: str = "tiktok") -> None:
        write_settings(path, box, outbox, token, extra, destination=destination)

    write(WRONG_TOKEN)
    config = load_config(path)
    args = argparse.Namespace(sandbox=False, config=str(path))
    with Runtime(config, environ={}, track_results=False) as runtime:
        runtime.process(order(timestamp="2026-01-01T00:00:00Z"))
        assert wait_for(lambda: runtime.stopped)

        write(box.token, "  pixle_code: typo\n")
        assert not reload_settings(args, config, runtime, None, {})
        write(box.token, destination="other")
        assert not reload_settings(args, config, runtime, None, {})
        assert runtime.stopped and box.events() == []

        write(WRONG_TOKEN)  # the environment still wins over the file
        assert reload_settings(args, config, runtime, None, {"TIKTOK_ACCESS_TOKEN": box.token})
        assert wait_for(lambda: len(box.events()) == 1) and not runtime.stopped
    lines = [r.getMessage() for r in caplog.records if r.name == "destination.serve"]
    assert lines[0].startswith("serve: SIGHUP: settings not reloaded, the old ones stay: ")
    assert f"{path}:6:3: error: settings: pixle_code: unknown setting" in lines[0]
    assert "destination changed from 'tiktok' to 'other'" in lines[1]
    assert lines[2] == "serve: SIGHUP: settings reloaded; delivery resumed"
    assert len(lines) == 3 and "\n" not in "".join(lines)
    assert WRONG_TOKEN not in caplog.text and box.token not in caplog.text
