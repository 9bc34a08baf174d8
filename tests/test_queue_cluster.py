"""A 3-node JetStream cluster with R3: stopping a node mid-run loses nothing acknowledged,
and storing and delivering go on (issue 18).

Three nats-server processes on loopback, routed to each other, are started by
the test. The queue's stream and consumer have three replicas. Events are
stored in chunks (a store counts as acknowledged when ``submit_many``
returns) while an engine delivers them; halfway, the node the client is most
likely connected to is killed. A store that fails during the fail-over is
retried by the test, as a Segment client retries a 503; every acknowledged
event must reach the endpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nats", reason="nats-py is not installed (the serve extra)")

from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor
from destination.delivery.jetstream import JetStreamQueue
from destination.delivery.retry import RetryPolicy
from destination.errors import StorageError

from .delivery_support import TOKEN, FakeDestination, FakeServer, item, route
from .nats_support import NATS_SERVER, NatsServer, free_port

pytestmark = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed")


def start_cluster(folder: Path) -> list[NatsServer]:
    cluster_ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{port}" for port in cluster_ports)
    return [
        NatsServer(
            folder / f"n{i}",
            "--server_name",
            f"n{i}",
            "--cluster_name",
            "destination-test",
            "--cluster",
            f"nats://127.0.0.1:{cluster_ports[i]}",
            "--routes",
            routes,
        )
        for i in range(3)
    ]


def open_when_ready(url: str, seconds: float = 60.0) -> JetStreamQueue:
    """The queue once the cluster has elected its leaders (R3 needs all three up)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return JetStreamQueue(url, replicas=3, ack_wait=5.0, timeout=5.0)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def submit_until_stored(engine: DeliveryEngine, events: list[Any], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            engine.submit_many(events)
            return
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # a fail-over: not acknowledged, so retried, as a client would


def read_stats(engine: DeliveryEngine, seconds: float = 30.0) -> dict[str, Any]:
    """The engine's figures; a question to a cluster that is still failing over is asked again."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return engine.stats()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_stopping_one_node_of_three_loses_nothing_acknowledged(tmp_path):
    servers = start_cluster(tmp_path)
    try:
        url = ",".join(s.url for s in servers)
        queue = open_when_ready(url)
        server = FakeServer()
        engine = DeliveryEngine(
            FakeDestination(),
            {"token": TOKEN},
            queue=queue,
            executor=HttpExecutor(transport=server.transport()),
            options=DeliveryOptions(
                retry=RetryPolicy(base=0.05, cap=0.5), linger=0.01, rate=10_000, batch_size=100
            ),
        )
        acknowledged: list[str] = []
        with engine:
            for start in range(0, 3000, 100):
                if start == 1500:
                    servers[0].stop()  # the first URL: where the client most likely is
                batch = [(route(), item(i), f"e{i}") for i in range(start, start + 100)]
                submit_until_stored(engine, batch)
                acknowledged += [event_id for _, _, event_id in batch]
                time.sleep(0.01)
            drained = engine.drain(timeout=120)
            stats = read_stats(engine)
            assert drained, stats
        missing = set(acknowledged) - set(server.received)
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert stats["delivered"] >= 3000
        # Duplicates only from what was in flight when the node went away.
        duplicates = sum(n - 1 for n in server.received.values())
        assert duplicates <= DeliveryOptions(batch_size=100).effective_window
    finally:
        for nats_server in servers:
            nats_server.stop()
