"""A delivering process killed with SIGKILL loses nothing: on restart, pending events are sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue

from .delivery_support import TOKEN, FakeDestination, FakeServer, serve_http

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys
from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue
from tests.delivery_support import TOKEN, FakeDestination, item, route

url, outbox = sys.argv[1], sys.argv[2]
engine = DeliveryEngine(
    FakeDestination(), {"token": TOKEN, "url": url}, queue=SqliteQueue(outbox),
    executor=HttpExecutor(), options=DeliveryOptions(batch_size=100, linger=0.01),
)
n = 0
while True:
    engine.submit_many([(route(), item(i), f"e{i}") for i in range(n, n + 50)])
    n += 50
    print(n, flush=True)  # everything below n is accepted (committed)
"""


@pytest.mark.slow
def test_sigkill_mid_delivery_then_restart_delivers_every_accepted_event(tmp_path):
    server = FakeServer()
    original = server.answer

    def slow_answer(headers, body):
        time.sleep(0.005)
        return original(headers, body)

    server.answer = slow_answer  # type: ignore[method-assign]
    httpd, url = serve_http(server)
    outbox = tmp_path / "outbox.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(outbox)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
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
            if accepted >= 5000 and len(server.received) > 500:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    before_restart = len(server.received)
    assert accepted >= 5000 and 0 < before_restart < accepted  # killed mid-delivery

    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN, "url": url},
        queue=SqliteQueue(outbox),
        executor=HttpExecutor(),
        options=DeliveryOptions(batch_size=100, linger=0.01),
    )
    with engine:
        assert engine.flush(timeout=60)
        assert engine.stats()["pending"] == 0
    httpd.shutdown()
    httpd.server_close()
    missing = {f"e{i}" for i in range(accepted)} - set(server.received)
    assert not missing, f"{len(missing)} accepted events lost"
    # Re-sent at most what was in flight when the process died (window = 600 entries).
    duplicates = sum(n - 1 for n in server.received.values())
    assert duplicates <= DeliveryOptions(batch_size=100).effective_window
