"""The SQLite outbox: every claimed entry ends in ack, retry, release or dead letter."""

from __future__ import annotations

import sqlite3

import pytest

from destination.delivery import OutboxLockedError, Queue, SqliteQueue

from .delivery_support import item, route


@pytest.fixture
def queue(tmp_path):
    q = SqliteQueue(tmp_path / "outbox.sqlite3")
    yield q
    q.close()


def put(q: SqliteQueue, n: int, start: int = 0, max_items: int = 1) -> None:
    """``n`` events, one chunk of ``max_items`` each by default (so tests settle them apart)."""
    q.put_many([(route(), item(i), f"e{i}") for i in range(start, start + n)], max_items=max_items)


def ids(chunks) -> list[str]:
    return [event_id for c in chunks for event_id in c.event_ids]


def test_is_a_queue_in_wal_mode(queue, tmp_path):
    assert isinstance(queue, Queue)
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_put_groups_a_call_into_chunks_per_route_within_caps(queue):
    events = [(route(instance=f"P{i % 2}"), item(i), f"e{i}") for i in range(10)]
    assert queue.put_many(events, max_items=3) == 10
    chunks = queue.claim(100)
    assert [len(c) for c in chunks] == [3, 2, 3, 2]  # P0: 5 events, P1: 5 events
    assert {c.route.instance for c in chunks[:2]} == {"P0"}
    assert ids(chunks[:2]) == [f"e{i}" for i in range(0, 10, 2)]
    big = [(route(), {"pad": "x" * 300}, f"b{i}") for i in range(10)]
    queue.put_many(big, max_bytes=1000)
    assert [len(c) for c in queue.claim(100)] == [3, 3, 3, 1]  # 3 × 310 B + 2 commas


def test_claim_is_fifo_and_exclusive_in_whole_chunks(queue):
    put(queue, 10, max_items=2)
    first = queue.claim(4)
    second = queue.claim(100)
    assert ids(first) == ["e0", "e1", "e2", "e3"]
    assert ids(second) == [f"e{i}" for i in range(4, 10)]
    assert queue.claim(10) == []
    assert first[0].route == route() and first[0].items[0] == compact(item(0))
    assert first[0].size == 2 * len(compact(item(0))) + 1  # the comma between them
    stats = queue.stats()
    assert (stats.pending, stats.in_flight, stats.due) == (10, 10, 0)


def test_claim_takes_at_least_one_chunk_even_a_larger_one(queue):
    put(queue, 5, max_items=5)
    (chunk,) = queue.claim(2)
    assert len(chunk) == 5


def compact(value) -> str:
    from destination import compactjson

    return compactjson.dumps(value).decode()


def test_ack_removes_retry_reschedules(queue):
    put(queue, 3)
    a, b, c = queue.claim(3)
    queue.ack([a.id])
    queue.retry([b.id], b.enqueued_at + 1000, "HTTP 503")
    queue.release([c.id])
    assert ids(queue.claim(10)) == ["e2"]
    later = queue.claim(10, now=b.enqueued_at + 1001)
    assert [(c.event_ids, c.attempts, c.last_error) for c in later] == [(["e1"], 1, "HTTP 503")]
    assert queue.next_due() is None
    assert queue.stats().pending == 2


def test_split_replaces_a_chunk_by_its_parts(queue):
    put(queue, 6, max_items=6)
    (chunk,) = queue.claim(10)
    parts = queue.split(chunk, [2, 1, 3])
    assert [p.event_ids for p in parts] == [["e0", "e1"], ["e2"], ["e3", "e4", "e5"]]
    assert queue.stats().in_flight == 6 and queue.claim(10) == []
    queue.ack([parts[0].id, parts[2].id])
    queue.dead_letter([parts[1].id], "bad", 40002)
    assert queue.stats().pending == 0
    assert [d.event_id for d in queue.dead_letters()] == ["e2"]
    with pytest.raises(ValueError, match="do not add up"):
        put(queue, 2, max_items=2)
        (other,) = queue.claim(10)
        queue.split(other, [1, 2])


def test_dead_letters_keep_reason_and_replay(queue):
    put(queue, 4)
    chunks = queue.claim(4)
    queue.dead_letter([chunks[1].id, chunks[3].id], "content_id: Not a valid string", 40002)
    queue.ack([chunks[0].id, chunks[2].id])
    dead = queue.dead_letters()
    assert [(d.event_id, d.reason, d.code, d.attempts) for d in dead] == [
        ("e1", "content_id: Not a valid string", 40002, 1),
        ("e3", "content_id: Not a valid string", 40002, 1),
    ]
    assert dead[0].as_dict()["route"] == {
        "destination": "fake",
        "event_source": "web",
        "instance": "default",
    }
    assert queue.replay(["e3", "nope"]) == 1
    assert [d.event_id for d in queue.dead_letters()] == ["e1"]
    assert ids(queue.claim(10)) == ["e3"]
    assert queue.replay([]) == 0
    assert queue.replay() == 1
    assert queue.stats().dead_letters == 0


def test_reschedule_makes_waiting_entries_due(queue):
    put(queue, 2)
    chunks = queue.claim(2)
    queue.retry([c.id for c in chunks], chunks[0].enqueued_at + 3600, "x")
    assert queue.claim(10) == []
    assert queue.reschedule() == 2
    assert len(queue.claim(10)) == 2


def test_purge_by_event_id_rewrites_the_chunk(queue):
    put(queue, 5, max_items=5)
    assert queue.purge(event_ids=["e1", "e3", "zz"]) == (2, 0)
    assert ids(queue.claim(10)) == ["e0", "e2", "e4"]


def test_reopen_hands_out_what_a_dead_process_claimed(tmp_path):
    path = tmp_path / "o.sqlite3"
    q = SqliteQueue(path)
    put(q, 5)
    assert len(q.claim(5)) == 5
    q.close()  # as if the process died: nothing was acked
    again = SqliteQueue(path)
    try:
        assert ids(again.claim(10)) == [f"e{i}" for i in range(5)]
    finally:
        again.close()


def test_one_delivering_process_per_outbox(tmp_path):
    path = tmp_path / "o.sqlite3"
    q = SqliteQueue(path)
    try:
        with pytest.raises(OutboxLockedError, match="in use by another delivering process"):
            SqliteQueue(path)
        reader = SqliteQueue(path, deliver=False)  # status / dead letters still work
        put(q, 1)
        assert reader.stats().pending == 1
        reader.close()
    finally:
        q.close()
    SqliteQueue(path).close()  # the lock is released on close


def test_routes_stored_once_and_without_secrets(tmp_path):
    q = SqliteQueue(tmp_path / "o.sqlite3")
    q.put_many([(route(instance=f"P{i % 2}"), item(i), f"e{i}") for i in range(10)])
    q.close()
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    assert db.execute("SELECT count(*) FROM routes").fetchone()[0] == 2
    db.close()


def test_bad_synchronous_mode(tmp_path):
    from destination.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="synchronous"):
        SqliteQueue(tmp_path / "o.sqlite3", synchronous="SOMETIMES")


def test_unicode_items_sized_in_bytes(queue):
    queue.put_many([(route(), {"event_id": "é", "x": "日本"}, "é")])
    (chunk,) = queue.claim(1)
    assert chunk.items == ['{"event_id":"é","x":"日本"}']
    assert chunk.size == len('{"event_id":"é","x":"日本"}'.encode())
