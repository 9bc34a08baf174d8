"""The JetStream queue against real nats-server processes the tests start (never the shared
one): round trips, claims shared by workers, nak delays, splits, dead letters, publish
de-duplication, a dead worker's redelivery, NATS going away, and the delivery engine on top."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("nats", reason="nats-py is not installed (the serve extra)")

from destination import ResultOutcome, Runtime
from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor
from destination.delivery.factories import make_queue, queue_name
from destination.delivery.jetstream import JetStreamQueue, _token, _untoken
from destination.delivery.retry import RetryPolicy
from destination.errors import StorageError
from destination.tiktok.sandbox import Sandbox

from .delivery_support import TOKEN, FakeDestination, FakeServer, item, route
from .nats_support import NATS_SERVER, NatsServer, free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed")
FAST = RetryPolicy(base=0.01, cap=0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    nats_server = NatsServer(tmp_path_factory.mktemp("nats"))
    try:
        yield nats_server
    finally:
        nats_server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of the test's own, for tests that stop it."""
    nats_server = NatsServer(tmp_path / "nats")
    try:
        yield nats_server
    finally:
        nats_server.stop()


_names = iter(range(1, 1_000_000))


@pytest.fixture
def names() -> dict[str, str]:
    """Streams, subjects, consumer and bucket of the test's own, on the shared server."""
    n = next(_names)
    return {
        "stream": f"T{n}",
        "subject_prefix": f"t{n}.items",
        "dead_stream": f"T{n}_DEAD",
        "dead_subject_prefix": f"t{n}.dead",
        "consumer": f"t{n}-deliver",
        "errors_bucket": f"t{n}-errors",
    }


@pytest.fixture
def open_queue(server: NatsServer, names: dict[str, str]) -> Iterator[Any]:
    opened: list[JetStreamQueue] = []

    def make(url: str | None = None, **options: Any) -> JetStreamQueue:
        queue = JetStreamQueue(url or server.url, **{**names, **options})
        opened.append(queue)
        return queue

    try:
        yield make
    finally:
        for queue in opened:
            queue.close()


def events(n: int, start: int = 0, **kw: Any) -> list[tuple[Any, dict[str, Any], str]]:
    return [(route(**kw), item(i), f"e{i}") for i in range(start, start + n)]


def claim_all(queue: JetStreamQueue, limit: int = 10_000) -> list[Any]:
    chunks = []
    while True:
        got = queue.claim(limit)
        if not got:
            return chunks
        chunks.extend(got)


def wait_for_claim(queue: JetStreamQueue, timeout: float) -> tuple[list[Any], float]:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        chunks = queue.claim(1000)
        if chunks:
            return chunks, time.monotonic() - start
        time.sleep(0.02)
    return [], time.monotonic() - start


# -- names ------------------------------------------------------------------------------------


@given(st.text())
def test_route_names_become_subject_tokens_and_back(name):
    token = _token(name)
    assert token and all(c.isascii() and (c.isalnum() or c in "_-=") for c in token)
    assert _untoken(token) == name


def test_queue_names_never_show_credentials():
    assert queue_name("nats://u:pw@h1:4222,tls://tok@h2:4222") == "nats://h1:4222,tls://h2:4222"
    assert queue_name("sqlite") == "sqlite"


# -- the interface ---------------------------------------------------------------------------


def test_put_claim_ack_round_trip(open_queue):
    queue = open_queue()
    triples = events(2500)
    triples[3] = (triples[3][0], json.dumps(item(3), separators=(",", ":")), "e3")  # text kept
    assert queue.put_many(triples, max_items=1000) == 2500
    stats = queue.stats()
    assert (stats.pending, stats.due, stats.in_flight, stats.dead_letters) == (2500, 2500, 0, 0)
    assert stats.oldest_enqueued_at is not None and queue.next_due() is not None

    first = queue.claim(1000)
    assert [len(c) for c in first] == [1000]
    chunk = first[0]
    assert chunk.route == route() and chunk.attempts == 0 and chunk.last_error is None
    assert chunk.event_ids[:3] == ["e0", "e1", "e2"]
    assert [json.loads(text) for text in chunk.items[:5]] == [item(i) for i in range(5)]
    assert chunk.size == len("\n".join(chunk.items).encode())
    assert queue.stats().in_flight == 1000
    queue.ack([chunk.id])
    assert queue.stats().pending == 1500

    rest = claim_all(queue)
    assert sorted(len(c) for c in rest) == [500, 1000]
    queue.ack([c.id for c in rest])
    assert queue.stats().pending == 0
    assert queue.next_due() is None
    assert queue.claim(1000) == []


def test_claims_are_exclusive_between_workers(open_queue):
    first, second = open_queue(), open_queue()
    first.put_many(events(200), max_items=10)
    seen: dict[str, list[str]] = {"first": [], "second": []}
    while True:
        a, b = first.claim(30), second.claim(30)
        if not a and not b:
            break
        seen["first"] += [e for c in a for e in c.event_ids]
        seen["second"] += [e for c in b for e in c.event_ids]
        assert sum(map(len, a)) <= 30 and sum(map(len, b)) <= 30
        first.ack([c.id for c in a])
        second.ack([c.id for c in b])
    assert seen["first"] and seen["second"]
    assert not set(seen["first"]) & set(seen["second"])
    assert sorted(seen["first"] + seen["second"]) == sorted(f"e{i}" for i in range(200))
    assert first.stats().pending == 0


def test_retry_comes_back_after_its_delay_and_not_before(open_queue):
    queue, other = open_queue(), open_queue()
    queue.put_many(events(10))
    (chunk,) = queue.claim(100)
    due = time.time() + 1.0
    queue.retry([chunk.id], due, "HTTP 503")
    assert queue.claim(100) == [] and other.claim(100) == []
    assert time.time() < queue.next_due() <= due + 0.01
    [row] = queue.route_stats()
    assert (row.pending, row.last_error, row.last_error_count, row.max_attempts) == (
        10,
        "HTTP 503",
        10,
        1,
    )
    # Another process sees the error too (the errors bucket).
    assert other.route_stats()[0].last_error == "HTTP 503"

    back, _ = wait_for_claim(other, 5)
    assert time.time() >= due - 0.05
    assert [c.event_ids for c in back] == [chunk.event_ids]
    assert back[0].attempts == 1
    other.ack([c.id for c in back])
    assert queue.stats().pending == 0


def test_release_gives_the_chunk_back_at_once(open_queue):
    queue, other = open_queue(), open_queue()
    queue.put_many(events(5))
    (chunk,) = queue.claim(100)
    queue.release([chunk.id], "delivery stopped")
    assert queue.next_due() is not None and queue.next_due() <= time.time() + 0.01
    back, waited = wait_for_claim(other, 2)
    assert waited < 1.0 and [c.event_ids for c in back] == [chunk.event_ids]
    # Attempts count deliveries: a release is one (documented; the engine gives up by age).
    assert back[0].attempts == 1
    other.ack([back[0].id])


def test_split_with_mixed_outcomes(open_queue):
    queue, other = open_queue(), open_queue()
    queue.put_many(events(9))
    (chunk,) = queue.claim(100)
    acked, dead, retried = queue.split(chunk, [3, 3, 3])
    assert [p.event_ids for p in (acked, dead, retried)] == [
        ["e0", "e1", "e2"],
        ["e3", "e4", "e5"],
        ["e6", "e7", "e8"],
    ]
    assert acked.size == len("\n".join(acked.items).encode())
    with pytest.raises(ValueError, match="do not add up"):
        queue.split(dead, [1, 1])
    queue.ack([acked.id])
    # A part split again: its parts stand in for it.
    dead_a, dead_b = queue.split(dead, [1, 2])
    queue.dead_letter([dead_a.id, dead_b.id], "data.0: bad content_id", 40002)
    # The message is settled only once every part is: still whole in the stream.
    assert queue.stats().pending == 9 and other.claim(100) == []
    queue.retry([retried.id], time.time() + 0.3, "HTTP 429")

    stats = queue.stats()
    assert (stats.pending, stats.dead_letters, stats.in_flight) == (3, 3, 0)
    assert sorted(d.event_id for d in queue.dead_letters()) == ["e3", "e4", "e5"]
    assert other.claim(100) == []  # the retried part waits for its due time
    back, _ = wait_for_claim(other, 5)
    assert [c.event_ids for c in back] == [["e6", "e7", "e8"]]
    assert back[0].attempts == 1 and back[0].last_error == "HTTP 429"
    other.ack([back[0].id])
    assert queue.stats().pending == 0 and queue.next_due() is None


def test_a_released_part_is_republished_and_due_now(open_queue):
    queue, other = open_queue(), open_queue()
    queue.put_many(events(4))
    (chunk,) = queue.claim(100)
    first, second = queue.split(chunk, [2, 2])
    queue.ack([first.id])
    queue.release([second.id], "delivery stopped")
    back, waited = wait_for_claim(other, 2)
    assert waited < 1.0 and [c.event_ids for c in back] == [["e2", "e3"]]
    assert back[0].last_error == "delivery stopped"
    other.ack([back[0].id])
    assert queue.stats().pending == 0


def test_dead_letters_listed_replayed_and_purged(open_queue):
    queue = open_queue()
    queue.put_many(events(4))
    (chunk,) = queue.claim(100)
    queue.dead_letter([chunk.id], "data.0.properties: Not a valid string", 40002)
    letters = queue.dead_letters()
    assert [d.event_id for d in letters] == ["e0", "e1", "e2", "e3"]
    letter = letters[0]
    assert letter.route == route() and letter.item == item(0)
    assert (letter.reason, letter.code, letter.attempts) == (
        "data.0.properties: Not a valid string",
        40002,
        1,
    )
    assert letter.dead_at >= letter.enqueued_at
    assert [d.event_id for d in queue.dead_letters(limit=2)] == ["e0", "e1"]
    assert queue.dead_letter_reasons() == [("data.0.properties: Not a valid string", 40002, 4)]

    assert queue.replay(["e1"]) == 1
    assert [d.event_id for d in queue.dead_letters()] == ["e0", "e2", "e3"]
    (replayed,) = queue.claim(100)
    assert replayed.event_ids == ["e1"] and replayed.attempts == 0
    assert replayed.enqueued_at > letter.enqueued_at and json.loads(replayed.items[0]) == item(1)
    queue.ack([replayed.id])

    assert queue.purge(event_ids=["e2"], dry_run=True) == (0, 1)
    assert queue.purge(event_ids=["e2"]) == (0, 1)
    assert queue.replay() == 2
    assert queue.stats().dead_letters == 0 and queue.stats().pending == 2
    queue.ack([c.id for c in claim_all(queue)])


def test_purge_waiting_events(open_queue):
    queue = open_queue()
    queue.put_many(events(6), max_items=3)
    assert queue.purge(event_ids=["e1", "e4", "e5"], dry_run=True) == (3, 0)
    assert queue.stats().pending == 6
    assert queue.purge(event_ids=["e1", "e4", "e5"]) == (3, 0)
    chunks = claim_all(queue)
    assert sorted(c.event_ids for c in chunks) == [["e0", "e2"], ["e3"]]
    queue.release([c.id for c in chunks])
    assert queue.purge(older_than=3600) == (0, 0)
    time.sleep(0.05)
    assert queue.purge(older_than=0.01) == (3, 0)
    queue.put_many(events(2, start=10))
    assert queue.purge() == (2, 0)
    assert queue.stats().pending == 0


def test_publish_is_deduplicated_by_msg_id(open_queue):
    queue = open_queue()
    assert queue.put_many(events(50)) == 50
    assert queue.put_many(events(50)) == 50  # a client's retry after a lost answer
    assert queue.stats().pending == 50
    queue.put_many(events(50, start=50))
    assert queue.stats().pending == 100


def test_a_chunk_larger_than_the_servers_largest_message_is_cut(open_queue):
    queue = open_queue()
    big = [(route(), {**item(i), "pad": "x" * 1500}, f"e{i}") for i in range(1000)]
    queue.put_many(big, max_items=1000, max_bytes=2_000_000)
    chunks = claim_all(queue)
    assert len(chunks) >= 2
    assert sorted(e for c in chunks for e in c.event_ids) == sorted(f"e{i}" for i in range(1000))
    queue.ack([c.id for c in chunks])


def test_routes_with_any_names_keep_their_own_subjects(open_queue):
    queue = open_queue()
    odd = route(instance="shop.eu *>é", event_source="web")
    queue.put_many(events(3, instance="shop.eu *>é") + events(2, start=3))
    assert {(r.route, r.pending) for r in queue.route_stats()} == {(odd, 3), (route(), 2)}
    chunks = claim_all(queue)
    assert {c.route for c in chunks} == {odd, route()}
    queue.ack([c.id for c in chunks])


def test_an_inspection_view_never_claims(open_queue):
    view = open_queue(deliver=False)
    view.put_many(events(3))
    assert view.claim(100) == []
    assert view.stats().pending == 3
    # Nothing is ever due for a view: an engine over it (run --queue, serve --no-deliver)
    # sleeps rather than asking the server in a loop.
    assert view.next_due() is None
    worker = open_queue()
    assert worker.next_due() is not None
    chunks = claim_all(worker)
    assert [c.event_ids for c in chunks] == [["e0", "e1", "e2"]]
    worker.ack([chunks[0].id])


# -- workers that die, and one that is slow ----------------------------------------------------

_WORKER = """
import sys, time, json
from destination.delivery.jetstream import JetStreamQueue
queue = JetStreamQueue(sys.argv[1], ack_wait=2.0, **json.loads(sys.argv[2]))
chunks = queue.claim(1000)
print(json.dumps([c.event_ids for c in chunks]), flush=True)
time.sleep(60)
"""


def test_a_dead_workers_chunk_is_redelivered_after_ack_wait(server, names, open_queue):
    survivor = open_queue(ack_wait=2.0)
    survivor.put_many(events(7))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, server.url, json.dumps(names)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert worker.stdout is not None
        claimed = json.loads(worker.stdout.readline())
        assert claimed == [[f"e{i}" for i in range(7)]]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed = time.monotonic()
        assert survivor.claim(1000) == []  # not before ack_wait
        back, _ = wait_for_claim(survivor, 10)
    finally:
        worker.kill()
        worker.wait(10)
        if worker.stdout is not None:
            worker.stdout.close()
    assert time.monotonic() - killed < 6
    assert [c.event_ids for c in back] == claimed and back[0].attempts == 1
    survivor.ack([back[0].id])
    assert survivor.stats().pending == 0


def test_a_slow_but_living_worker_keeps_its_claim(open_queue):
    slow, other = open_queue(ack_wait=1.5), open_queue(ack_wait=1.5)
    slow.put_many(events(3))
    (chunk,) = slow.claim(100)
    deadline = time.monotonic() + 3.5  # well past ack_wait: its progress keeps it
    while time.monotonic() < deadline:
        assert other.claim(100) == []
        time.sleep(0.1)
    slow.ack([chunk.id])
    assert slow.stats().pending == 0


# -- NATS away, credentials ---------------------------------------------------------------------


def test_nats_down_put_many_raises_a_clear_storage_error(own_server, names):
    queue = JetStreamQueue(own_server.url, timeout=1.0, **names)
    try:
        queue.put_many(events(3))
        own_server.stop()
        start = time.monotonic()
        with pytest.raises(StorageError) as caught:
            queue.put_many(events(3, start=3))
        assert time.monotonic() - start < 4
        message = str(caught.value)
        assert message.startswith(f"JetStream {own_server.url}: storing 3 events: ")
        assert "\n" not in message
        for call in (queue.stats, queue.next_due, lambda: queue.claim(10)):
            with pytest.raises(StorageError):
                call()
        # The server comes back: the queue reconnects by itself and nothing stored was lost.
        own_server.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                queue.put_many(events(3, start=3))
                break
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert queue.stats().pending == 6
    finally:
        queue.close()


def test_no_server_fails_fast_when_opening(names):
    port = free_port()
    start = time.monotonic()
    with pytest.raises(StorageError, match=rf"JetStream nats://127.0.0.1:{port}: cannot connect"):
        JetStreamQueue(f"nats://127.0.0.1:{port}", connect_timeout=1.0, **names)
    assert time.monotonic() - start < 4


def test_credentials_in_the_url_are_never_shown(tmp_path, names, caplog):
    secret = "s3cret-Pass"
    nats_server = NatsServer(tmp_path / "nats", "--user", "deliverer", "--pass", secret)
    try:
        url = f"nats://deliverer:{secret}@127.0.0.1:{nats_server.port}"
        queue = make_queue(url, timeout=1.0, **names)
        try:
            assert isinstance(queue, JetStreamQueue)
            queue.put_many(events(2))
            assert secret not in repr(queue) and secret not in queue.url
            assert "deliverer" not in queue.url
            nats_server.stop()
            with pytest.raises(StorageError) as caught:
                queue.put_many(events(2, start=2))
            assert secret not in str(caught.value)
        finally:
            queue.close()
        with pytest.raises(StorageError) as refused:
            JetStreamQueue(
                f"nats://deliverer:wrong-{secret}@127.0.0.1:{nats_server.port}",
                connect_timeout=1.0,
                **names,
            )
        assert secret not in str(refused.value)
    finally:
        nats_server.stop()
    assert secret not in caplog.text


def test_queue_specs_by_url(server, names, tmp_path):
    queue = make_queue(server.url, **names)
    try:
        assert isinstance(queue, JetStreamQueue)
    finally:
        queue.close()
    with pytest.raises(StorageError, match=r"JetStream tls://127\.0\.0\.1:1: cannot connect"):
        make_queue("tls://127.0.0.1:1", connect_timeout=1.0, **names)
    sqlite = make_queue("sqlite", path=tmp_path / "o.sqlite3")
    sqlite.close()


# -- the delivery engine over JetStream -----------------------------------------------------------


def make_engine(server: FakeServer, queue: JetStreamQueue, **options: Any) -> DeliveryEngine:
    options.setdefault("retry", FAST)
    options.setdefault("linger", 0.01)
    options.setdefault("rate", 10_000)
    options.setdefault("batch_size", 100)
    options.setdefault("poll_interval", 0.05)
    return DeliveryEngine(
        FakeDestination(),
        {"token": TOKEN},
        queue=queue,
        executor=HttpExecutor(transport=server.transport()),
        options=DeliveryOptions(**options),
    )


def drain_all(*engines: DeliveryEngine, timeout: float = 60) -> list[bool]:
    done: list[bool] = [False] * len(engines)

    def run(index: int) -> None:
        done[index] = engines[index].drain(timeout=timeout)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 10)
    return done


def test_two_engines_share_the_stream_and_deliver_exactly_once(open_queue):
    fake = FakeServer()
    first, second = make_engine(fake, open_queue()), make_engine(fake, open_queue())
    with first, second:
        first.submit_many(events(1000))
        second.submit_many(events(1000, start=1000))
        assert drain_all(first, second) == [True, True]
        delivered = [e.counters.snapshot()["delivered"] for e in (first, second)]
        stats = first.stats(routes=True)
    assert sum(delivered) == 2000 and min(delivered) > 0
    assert len(fake.received) == 2000 and set(fake.received.values()) == {1}
    assert (stats["pending"], stats["dead_letters"]) == (0, 0)


def test_a_poison_event_is_dead_lettered_exactly_once(open_queue):
    fake = FakeServer(poison={"e1234"})
    first, second = open_queue(), open_queue()
    one, two = make_engine(fake, first), make_engine(fake, second)
    with one, two:
        one.submit_many(events(1000))
        two.submit_many(events(1000, start=1000))
        assert drain_all(one, two) == [True, True]
        letters = first.dead_letters()
        counters = [e.counters.snapshot() for e in (one, two)]
    assert [d.event_id for d in letters] == ["e1234"]
    assert letters[0].code == 40002 and "Not a valid string" in letters[0].reason
    assert sum(c["rejected"] for c in counters) == 1
    assert sum(c["delivered"] for c in counters) == 1999
    assert len(fake.received) == 1999 and set(fake.received.values()) == {1}
    assert "e1234" not in fake.received


def test_faults_are_retried_until_everything_arrives(open_queue):
    fake = FakeServer(fault_rate=0.3, seed=7)
    engine = make_engine(fake, open_queue(), batch_size=20)
    with engine:
        engine.submit_many(events(300))
        assert engine.drain(timeout=60)
        stats = engine.stats()
    assert set(fake.received) == {f"e{i}" for i in range(300)}
    assert stats["retried"] > 0 and stats["pending"] == 0 and stats["dead_letters"] == 0
    # Duplicates only where an answer was lost after TikTok had the batch.
    duplicated = sum(n - 1 for n in fake.received.values())
    assert duplicated <= 20 * fake.faults["lost-ack"]


def test_the_host_takes_a_nats_url_for_its_queue(server, names, tmp_path):
    box = Sandbox(pixels=["CJSPIXEL01"]).start()
    try:
        config = {
            "settings": {
                "access_token": box.token,
                "pixel_code": "CJSPIXEL01",
                "api_base_url": box.url,
            },
            "delivery": {"queue": server.url, "queue_options": names, "linger": 0.01},
        }
        with Runtime.from_config(config, environ={}) as runtime:
            assert isinstance(runtime.engine.queue, JetStreamQueue)
            outcome = runtime.process(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "messageId": "js-1",
                    "timestamp": "2026-11-30T12:00:00Z",
                    "userId": "u1",
                    "properties": {"order_id": "o1", "currency": "USD", "value": 3},
                }
            )
            assert outcome.accepted == 1
            assert runtime.flush(10)
            assert [r.outcome for r in outcome.results(10)] == [ResultOutcome.DELIVERED]
        assert [e.event_id for e in box.events()] == ["js-1"]
        assert not (tmp_path / ".destination").exists()
    finally:
        box.stop()
