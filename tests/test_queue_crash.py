"""kill -9 at every step of the queue's life loses nothing acknowledged.

A child process stores and delivers events through a DeliveryEngine over a
SqliteQueue, and kills itself (SIGKILL, no clean-up of any kind) the n-th
time it reaches one step: inside a ``put_many`` transaction, right after a
``claim``, while a request is on the wire, inside an ``ack`` transaction.
A new engine then opens the same outbox and drains it. Every event whose
``put_many`` had returned (the child printed its number) must reach the
server; nothing of the interrupted ``put_many`` may (it was never
acknowledged to its caller); duplicates are only what was in flight.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue

from .delivery_support import TOKEN, FakeDestination, FakeServer, serve_http

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, signal, sys
from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue
from destination.delivery import executors, outbox
from tests.delivery_support import TOKEN, FakeDestination, item, route

url, path, step, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = {"n": 0}

def die_on_nth():
    calls["n"] += 1
    if calls["n"] >= nth:
        os.kill(os.getpid(), signal.SIGKILL)

def wrap(owner, name, before):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if before:
            die_on_nth()
        result = original(*args, **kwargs)
        if not before:
            die_on_nth()
        return result
    setattr(owner, name, wrapper)

if step == "put":  # inside the transaction: after a chunk row was written, before COMMIT
    wrap(outbox.SqliteQueue, "_insert_chunk", before=False)
elif step == "claim":  # the claim is made (in memory only) and the process dies
    wrap(outbox.SqliteQueue, "claim", before=False)
elif step == "ack":  # inside the transaction: rows deleted, not committed
    wrap(outbox.SqliteQueue, "_delete", before=False)
elif step == "send":  # the server got the request; the answer never comes back
    original_send = executors.HttpExecutor.send
    async def send(self, request):
        response = await original_send(self, request)
        die_on_nth()
        return response
    executors.HttpExecutor.send = send

engine = DeliveryEngine(
    FakeDestination(), {"token": TOKEN, "url": url}, queue=SqliteQueue(path),
    executor=HttpExecutor(), options=DeliveryOptions(batch_size=100, linger=0.01),
)
n = 0
while True:
    print(f"put {n}", flush=True)  # events from n on: this call is not acknowledged yet
    engine.submit_many([(route(), item(i), f"e{i}") for i in range(n, n + 250)])
    n += 250
    print(f"accepted {n}", flush=True)  # everything below n is stored
"""


@pytest.mark.slow
@pytest.mark.parametrize(("step", "nth"), [("put", 7), ("claim", 5), ("send", 6), ("ack", 4)])
def test_kill_9_at_each_step_loses_nothing_acknowledged(tmp_path, step, nth):
    server = FakeServer()
    httpd, url = serve_http(server)
    outbox = tmp_path / "outbox.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(outbox), step, str(nth)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    lines = done.stdout.split()
    accepted = max((int(v) for k, v in itertools.pairwise(lines) if k == "accepted"), default=0)
    interrupted = max(int(v) for k, v in itertools.pairwise(lines) if k == "put")
    before = set(server.received)

    engine = DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN, "url": url},
        queue=SqliteQueue(outbox),
        executor=HttpExecutor(),
        options=DeliveryOptions(batch_size=100, linger=0.01),
    )
    with engine:
        assert engine.drain(timeout=60)
    httpd.shutdown()
    httpd.server_close()

    received = set(server.received)
    assert {f"e{i}" for i in range(accepted)} <= received, "an accepted event was lost"
    if step == "put":  # died inside put_many's transaction: none of that call was stored
        assert interrupted == accepted
        assert not {f"e{i}" for i in range(interrupted, interrupted + 250)} & received
    # Only what was on the wire or not yet acknowledged when the process died comes twice.
    duplicates = sum(n - 1 for n in server.received.values())
    window = DeliveryOptions(batch_size=100).effective_window
    assert duplicates <= window
    if step in ("send", "ack"):
        assert before, "the child delivered something before dying"
