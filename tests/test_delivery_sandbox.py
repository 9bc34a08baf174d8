"""End to end: the TikTok destination and the delivery engine against the local sandbox.

Faults of every kind, a poison event, a SIGKILL mid-delivery and an expired
token: in each case every accepted event reaches the sandbox, at most the
in-flight batches twice, and only the refused event is dead-lettered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from destination.delivery import (
    DeliveryEngine,
    DeliveryOptions,
    DeliveryResult,
    HttpExecutor,
    ResultOutcome,
    RetryPolicy,
    SqliteQueue,
)
from destination.tiktok.destination import TikTokDestination
from destination.tiktok.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PIXEL = "CSANDBOXPIXEL1"
FAST = RetryPolicy(base=0.005, cap=0.1)


def settings_for(sandbox: Any, token: str | None = None) -> Any:
    return TikTokDestination().load_settings(
        {
            "access_token": token or sandbox.token,
            "pixel_code": PIXEL,
            "api_base_url": sandbox.url,
        },
        {},
    )


def built(settings: Any, start: int, count: int) -> list[tuple[Any, dict[str, Any], str]]:
    action = TikTokDestination().actions["report_web_event"]
    now = int(time.time())
    out = []
    for i in range(start, start + count):
        route, item = action.build(
            {
                "event": "Purchase",
                "event_id": f"evt-{i}",
                "timestamp": now - 60,
                "email": f"user{i}@example.com",
                "value": 10.5,
                "currency": "USD",
            },
            settings,
        )
        out.append((route, item, item["event_id"]))
    return out


def engine_for(
    sandbox: Any, outbox: Path, token: str | None = None, on_result: Any = None, **options: Any
) -> DeliveryEngine:
    settings = settings_for(sandbox, token)
    options.setdefault("retry", FAST)
    options.setdefault("linger", 0.01)
    options.setdefault("rate", 1000)
    return DeliveryEngine(
        TikTokDestination(),
        settings,
        queue=SqliteQueue(outbox),
        executor=HttpExecutor(timeout=1.0, connect_timeout=1.0),
        options=DeliveryOptions(**options),
        on_result=on_result,
    )


def wait_until_empty(engine: DeliveryEngine, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if engine.flush(timeout=1.0) and engine.stats()["pending"] == 0:
            return
    raise AssertionError(f"still pending: {engine.stats()}")


@pytest.mark.slow
def test_thirty_percent_faults_of_every_kind_every_event_delivered(tmp_path):
    faults = [
        "latency:0.05:ms=20",
        "500:0.04",
        "503:0.04",
        "429:0.04:retry-after=0",
        "40100:0.04",  # throttle
        "50000:0.04",  # system
        "40200:0.03",  # transient task error
        "reset:0.04",
        "hang:0.02",
    ]
    total = 3000
    with Sandbox(pixels=[PIXEL]) as sandbox:
        sandbox.set_faults(faults, seed=11)
        # Small batches: a failed request is retried whole, so it takes many requests
        # for every kind of fault to show up at these rates.
        engine = engine_for(sandbox, tmp_path / "outbox.sqlite3", batch_size=25)
        with engine:
            settings = settings_for(sandbox)
            for start in range(0, total, 500):
                engine.submit_many(built(settings, start, 500))
            wait_until_empty(engine, 120)
            stats = engine.stats()
        received = {e.event_id for e in sandbox.events()}
        duplicates = sandbox.duplicates()
        answers = sandbox.answers()
    assert received == {f"evt-{i}" for i in range(total)}
    # Only a batch in flight when its answer was lost can arrive twice.
    in_flight = 25 * DeliveryOptions().concurrency
    assert sum(n - 1 for n in duplicates.values()) <= in_flight
    assert stats["dead_lettered"] == 0 and stats["retried"] > 0
    kinds = {"http_500", "http_503", "http_429", "40100", "50000", "40200", "reset", "hang"}
    assert kinds <= set(answers), answers


@pytest.mark.slow
def test_poison_event_in_a_batch_of_1000_is_exactly_one_dead_letter(tmp_path):
    results: list[DeliveryResult] = []
    with Sandbox(pixels=[PIXEL], faults=["reject-event-id:evt-517"]) as sandbox:
        engine = engine_for(sandbox, tmp_path / "o.sqlite3", on_result=results.append)
        with engine:
            engine.submit_many(built(settings_for(sandbox), 0, 1000))
            wait_until_empty(engine, 60)
            dead = engine.queue.dead_letters()
        received = [e.event_id for e in sandbox.events()]
    assert [d.event_id for d in dead] == ["evt-517"]
    assert "40002" in dead[0].reason and "event_id" in dead[0].reason and dead[0].code == 40002
    assert len(received) == 999 == len(set(received)) and "evt-517" not in received
    assert [r.event_id for r in results if r.outcome is ResultOutcome.REJECTED] == ["evt-517"]


CHILD = """
import sys
from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue
from destination.tiktok.destination import TikTokDestination
from tests.test_delivery_sandbox import built, PIXEL

url, token, outbox = sys.argv[1], sys.argv[2], sys.argv[3]
tiktok = TikTokDestination()
settings = tiktok.load_settings(
    {"access_token": token, "pixel_code": PIXEL, "api_base_url": url}, {}
)
engine = DeliveryEngine(
    tiktok, settings, queue=SqliteQueue(outbox), executor=HttpExecutor(),
    options=DeliveryOptions(batch_size=200, linger=0.01),
)
n = 0
while True:
    engine.submit_many(built(settings, n, 100))
    n += 100
    print(n, flush=True)  # every event below n is accepted (committed)
"""


@pytest.mark.slow
def test_sigkill_mid_delivery_then_restart_every_accepted_event_arrives(tmp_path):
    outbox = tmp_path / "outbox.sqlite3"
    with Sandbox(pixels=[PIXEL], faults=["latency:1:ms=5"]) as sandbox:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, sandbox.url, sandbox.token, str(outbox)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
        )
        accepted = 0
        try:
            assert child.stdout is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = child.stdout.readline()
                if not line:
                    break
                accepted = int(line)
                if accepted >= 4000 and len(sandbox.events()) >= 400:
                    break
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        before = len(sandbox.events())
        assert accepted >= 4000 and 0 < before < accepted  # killed mid-delivery
        sandbox.set_faults(None)
        with engine_for(sandbox, outbox, batch_size=200) as engine:
            wait_until_empty(engine, 60)
        received = [e.event_id for e in sandbox.events()]
        duplicates = sandbox.duplicates()
    missing = {f"evt-{i}" for i in range(accepted)} - set(received)
    assert not missing, f"{len(missing)} accepted events lost"
    window = DeliveryOptions(batch_size=200).effective_window
    assert sum(n - 1 for n in duplicates.values()) <= window


@pytest.mark.slow
def test_expired_token_stops_clearly_and_drops_nothing(tmp_path):
    with Sandbox(pixels=[PIXEL]) as sandbox:
        engine = engine_for(sandbox, tmp_path / "o.sqlite3", token="expired-token-123")
        try:
            engine.submit_many(built(settings_for(sandbox), 0, 500))
            assert engine.flush(timeout=10) is False
            assert engine.stopped
            reason = str(engine.stop_reason)
            assert "40105" in reason and "access token" in reason
            assert "expired-token-123" not in reason
            assert engine.stats()["pending"] == 500 and sandbox.events() == []
            for path in tmp_path.iterdir():  # hashed items only: no raw email, no token
                data = path.read_bytes()
                assert b"@example.com" not in data and b"expired-token-123" not in data
            engine.resume(settings_for(sandbox))
            wait_until_empty(engine, 30)
        finally:
            engine.close()
        assert len({e.event_id for e in sandbox.events()}) == 500


@pytest.mark.slow
def test_cli_flush_delivers_a_stopped_outbox_with_settings_from_the_environment(
    tmp_path, monkeypatch, capsys
):
    from destination.cli import main

    outbox = tmp_path / "o.sqlite3"
    with Sandbox(pixels=[PIXEL]) as sandbox:
        engine = engine_for(sandbox, outbox, token="revoked-token-456")
        engine.submit_many(built(settings_for(sandbox), 0, 250))
        engine.flush(timeout=10)
        assert engine.stopped
        engine.close(timeout=1)
        for name, value in {
            "TIKTOK_ACCESS_TOKEN": sandbox.token,
            "TIKTOK_PIXEL_CODE": PIXEL,
            "TIKTOK_API_BASE_URL": sandbox.url,
        }.items():
            monkeypatch.setenv(name, value)
        assert main(["outbox", "flush", "--outbox", str(outbox)]) == 0
        assert "delivered 250," in capsys.readouterr().out
        assert len({e.event_id for e in sandbox.events()}) == 250
    assert main(["outbox", "status", "--json", "--outbox", str(outbox)]) == 0
    assert '"pending": 0' in capsys.readouterr().out
