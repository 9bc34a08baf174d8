"""``destination serve --queue nats://… [--no-deliver]``: ingest nodes on a shared JetStream
queue, against nats-server processes the tests start (never the shared one on 4222).

200 only after JetStream's publish ack, 503 while NATS is away and back to 200 when it
returns; /metrics shows the consumer's lag; two ingest-only nodes and a delivering one,
fed by the real Segment client, get every acknowledged event to the sandbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("nats", reason="nats-py is not installed (the serve extra)")

from segment.analytics import Client
from segment.analytics.request import APIError, post

from destination.config import Config
from destination.errors import ConfigurationError
from destination.host import Runtime
from destination.serve.metrics import RequestMetrics, render
from destination.serve.workers import PutOnlyQueue, put_only_queue
from destination.tiktok.sandbox import Sandbox

from . import nats_support
from .nats_support import NATS_SERVER
from .serve_support import KEY, PIXEL, ROOT, ServeProcess, messages, running_server, wait_for

pytestmark = [
    pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed"),
    pytest.mark.usefixtures("clean_environment"),
]


class NatsServer(nats_support.NatsServer):
    """The tests' own nats-server; ``stop`` here is graceful (SIGTERM), as an operator's
    restart is, and ``start`` brings it back on the same port and store."""

    def stop(self, *, graceful: bool = True) -> None:
        super().stop(graceful=graceful)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


def settings(box: Sandbox) -> dict[str, str]:
    return {"access_token": box.token, "api_base_url": box.url, "pixel_code": PIXEL}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "destination.cli", "serve", "--write-key", KEY, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TIKTOK_ACCESS_TOKEN": "t", **(env or {})},
    )


# -- the command line ---------------------------------------------------------------------


def test_no_deliver_needs_a_shared_queue():
    result = run_cli("--no-deliver")
    assert result.returncode == 2
    assert "--no-deliver needs a shared queue (--queue nats://...)" in result.stderr


def test_sandbox_and_outbox_are_refused_with_a_shared_queue(tmp_path):
    result = run_cli("--sandbox", "--queue", "nats://127.0.0.1:1")
    assert result.returncode == 2
    assert "--sandbox cannot use a shared queue" in result.stderr
    result = run_cli("--outbox", str(tmp_path / "o.db"), "--queue", "nats://127.0.0.1:1")
    assert result.returncode == 2 and "--outbox is the SQLite outbox" in result.stderr


def test_an_unreachable_queue_at_start_is_exit_2_naming_the_servers_not_the_password():
    result = run_cli("--queue", "nats://user:s3cret@127.0.0.1:1", "--no-deliver")
    assert result.returncode == 2
    assert "JetStream nats://127.0.0.1:1: cannot connect" in result.stderr
    assert "s3cret" not in result.stderr


def test_put_only_queue_takes_a_nats_url_and_refuses_other_backends(nats_server):
    config = Config().with_delivery(queue=nats_server.url)
    queue = put_only_queue(config)
    try:
        assert isinstance(queue, PutOnlyQueue)
        assert queue.claim(10) == [] and queue.next_due() is None
        assert queue.consumer_info()["messages"] == 0
    finally:
        queue.close()
    with pytest.raises(ConfigurationError, match="needs the sqlite outbox or a nats:// queue"):
        put_only_queue(Config().with_delivery(queue="kafka://k:9092"))


# -- /metrics -----------------------------------------------------------------------------


def test_render_shows_the_queue_gauges_only_with_a_queue_that_has_them():
    figures = {
        "num_pending": 3,
        "num_ack_pending": 2,
        "num_redelivered": 1,
        "messages": 5,
        "bytes": 900,
    }
    text = render({}, RequestMetrics(), queue=figures).splitlines()
    assert "destination_queue_lag_messages 3" in text
    assert "destination_queue_ack_pending 2" in text
    assert "destination_queue_redelivered 1" in text
    assert "destination_queue_stream_messages 5" in text
    assert "destination_queue_stream_bytes 900" in text
    assert "# TYPE destination_queue_lag_messages gauge" in text
    assert "destination_queue_lag" not in render({}, RequestMetrics())


# -- NATS going away ----------------------------------------------------------------------


def test_nats_down_gives_503_never_200_and_serve_recovers(nats_server, tmp_path):
    with Sandbox(pixels=[PIXEL]) as box:
        runtime = Runtime.from_config(
            {
                "settings": settings(box),
                "delivery": {
                    "queue": nats_server.url,
                    "queue_options": {"timeout": 1.0, "connect_timeout": 2.0},
                    "linger": 0.02,
                    "poll_interval": 0.1,
                },
            },
            track_results=False,
        )
        with running_server(runtime) as url:
            maker = Client(write_key=KEY, host=url, send=False)
            acked: list[str] = []
            statuses: list[int] = []
            stop = threading.Event()

            def send() -> None:
                n = 0
                while not stop.is_set():
                    batch = messages(maker, 20, n)
                    n += 20
                    try:
                        post(KEY, host=url, timeout=15, batch=batch)
                    except APIError as exc:
                        statuses.append(exc.status)
                        time.sleep(0.05)
                        continue
                    statuses.append(200)
                    acked.extend(m["messageId"] for m in batch)

            sender = threading.Thread(target=send)
            sender.start()
            try:
                assert wait_for(lambda: len(acked) >= 200 and box.events())
                nats_server.stop()
                down_from = len(statuses)
                assert wait_for(lambda: 503 in statuses[down_from:], timeout=20)
                with httpx.Client() as http:
                    health = http.get(url + "/healthz")
                assert health.status_code == 503
                assert health.json()["status"].startswith("degraded: storage: JetStream")
                refused = statuses.count(503)
                nats_server.start()
                back_from = len(statuses)
                assert wait_for(lambda: 200 in statuses[back_from:], timeout=30)
                assert wait_for(lambda: len(acked) >= 400)
            finally:
                stop.set()
                sender.join(30)
            assert refused >= 1 and set(statuses) <= {200, 503}
            # Every request answered 200 had its events stored: all reach the sandbox.
            assert wait_for(lambda: set(acked) <= {e.event_id for e in box.events()}, timeout=40), (
                f"{len(set(acked) - {e.event_id for e in box.events()})} acknowledged lost"
            )
            with httpx.Client() as http:
                assert http.get(url + "/healthz").status_code == 200
                text = http.get(url + "/metrics").text.splitlines()
            assert "destination_queue_lag_messages 0" in text
            assert any(line.startswith("destination_queue_ack_pending ") for line in text)
            assert any(line.startswith("destination_queue_redelivered ") for line in text)


# -- processes: two ingest nodes and a delivering one -------------------------------------


def write_config(tmp_path: Path, box: Sandbox, queue: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "settings:\n"
        + "".join(f"  {k}: {v}\n" for k, v in settings(box).items())
        + f"delivery:\n  queue: {queue}\n  linger: 0.02\n  poll_interval: 0.1\n"
    )
    return path


@pytest.mark.slow
def test_two_ingest_nodes_and_a_delivering_node_deliver_every_acknowledged_event(
    nats_server, tmp_path
):
    with Sandbox(pixels=[PIXEL]) as box:
        config = str(write_config(tmp_path, box, nats_server.url))
        base = ("--config", config, "--write-key", KEY)
        nodes = []
        try:
            nodes.append(ServeProcess(*base, "--no-deliver"))
            nodes.append(ServeProcess(*base, "--no-deliver", "--workers", "1"))
            ingest = [n.url for n in nodes]
            for node in nodes:
                assert f"queue {nats_server.url}; ingest only" in node.output
            with httpx.Client() as http:
                health = http.get(ingest[0] + "/healthz").json()
            assert health["delivery"] == "ingest only" and health["status"] == "ok"
            acked: list[str] = []
            maker = Client(write_key=KEY, host=ingest[0], send=False)
            for n in range(0, 600, 50):
                batch = messages(maker, 50, n)
                post(KEY, host=ingest[(n // 50) % 2], gzip=bool(n % 100), batch=batch)
                acked += [m["messageId"] for m in batch]
            # The real client, queueing and flushing in its own thread, on the second node.
            failures: list[Any] = []
            client = Client(
                write_key=KEY,
                host=ingest[1],
                on_error=lambda exc, batch: failures.append(exc),
                max_retries=0,
            )
            for msg in messages(client, 100, 1000):
                acked.append(msg["messageId"])
            client.flush()
            client.join()
            assert not failures
            time.sleep(0.5)
            assert not box.events(), "an ingest-only node delivered"
            with httpx.Client() as http:
                text = http.get(ingest[0] + "/metrics").text.splitlines()
            gauges = {
                name: int(value)
                for name, _, value in (line.partition(" ") for line in text)
                if name.startswith("destination_queue_")
            }
            # No consumer yet: every message is lag; one message per request (one route).
            assert gauges["destination_queue_lag_messages"] >= 13  # 12 posts, the client's
            assert (
                gauges["destination_queue_lag_messages"]
                == gauges["destination_queue_stream_messages"]
            )
            assert gauges["destination_queue_ack_pending"] == 0
            assert "destination_outbox_pending 700" in text
            # Delivers, and ingests through a worker process that publishes to JetStream.
            nodes.append(ServeProcess(*base, "--workers", "1"))
            assert f"queue {nats_server.url}; 1 worker processes)" in nodes[-1].output
            batch = messages(maker, 100, 2000)
            post(KEY, host=nodes[-1].url, batch=batch)
            acked += [m["messageId"] for m in batch]
            with httpx.Client() as http:
                assert "delivery" not in http.get(nodes[-1].url + "/healthz").json()
            assert wait_for(lambda: set(acked) <= {e.event_id for e in box.events()}, timeout=40)
            for node in nodes:
                os.kill(node.proc.pid, signal.SIGTERM)
            assert [node.wait() for node in nodes] == [0, 0, 0]
        finally:
            for node in nodes:
                node.kill()
        received = [e.event_id for e in box.events()]
    assert sorted(set(received)) == sorted(set(acked))
    assert len(received) == len(acked)  # nobody died: no duplicates


def test_an_ingest_only_node_needs_no_access_token(nats_server, tmp_path):
    """It never sends: the pixel and phone region shape its items, the token is not needed."""
    config = tmp_path / "ingest.yaml"
    config.write_text(f"settings:\n  pixel_code: {PIXEL}\ndelivery:\n  queue: {nats_server.url}\n")
    env = {"TIKTOK_ACCESS_TOKEN": ""}
    node = ServeProcess("--config", str(config), "--write-key", KEY, "--no-deliver", env=env)
    try:
        with httpx.Client() as http:
            answer = http.post(
                node.url + "/v1/track",
                json={
                    "type": "track",
                    "event": "Order Completed",
                    "messageId": "ingest-1",
                    "userId": "u1",
                    "properties": {"revenue": 10, "currency": "USD"},
                },
                auth=(KEY, ""),
            )
            assert answer.status_code == 200
            assert http.get(node.url + "/healthz").json()["delivery"] == "ingest only"
    finally:
        node.kill()
    # Without --no-deliver the same config is refused: that node would deliver.
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "destination.cli",
            "serve",
            "--config",
            str(config),
            "--write-key",
            KEY,
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TIKTOK_ACCESS_TOKEN": ""},
    )
    assert refused.returncode == 2 and "no access token" in refused.stderr
