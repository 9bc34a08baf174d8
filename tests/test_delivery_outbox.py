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


def put(q: SqliteQueue, n: int, start: int = 0) -> None:
    q.put_many([(route(), item(i), f"e{i}") for i in range(start, start + n)])


def test_is_a_queue_in_wal_mode(queue, tmp_path):
    assert isinstance(queue, Queue)
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_claim_is_fifo_and_exclusive(queue):
    put(queue, 10)
    first = queue.claim(4)
    second = queue.claim(100)
    assert [e.event_id for e in first] == ["e0", "e1", "e2", "e3"]
    assert [e.event_id for e in second] == [f"e{i}" for i in range(4, 10)]
    assert queue.claim(10) == []
    assert first[0].route == route() and first[0].item == item(0)
    assert first[0].size == len(
        '{"event":"Purchase","event_time":1700000000,"event_id":"e0",'
        '"user":{"email":"' + "a" * 64 + '"}}'
    )
    stats = queue.stats()
    assert (stats.pending, stats.in_flight, stats.due) == (10, 10, 0)


def test_ack_removes_retry_reschedules(queue):
    put(queue, 3)
    a, b, c = queue.claim(3)
    queue.ack([a.seq])
    queue.retry([b.seq], b.enqueued_at + 1000, "HTTP 503")
    queue.release([c.seq])
    assert [e.event_id for e in queue.claim(10)] == ["e2"]
    later = queue.claim(10, now=b.enqueued_at + 1001)
    assert [(e.event_id, e.attempts, e.last_error) for e in later] == [("e1", 1, "HTTP 503")]
    assert queue.next_due() is None
    assert queue.stats().pending == 2


def test_dead_letters_keep_reason_and_replay(queue):
    put(queue, 4)
    entries = queue.claim(4)
    queue.dead_letter([entries[1].seq, entries[3].seq], "content_id: Not a valid string", 40002)
    queue.ack([entries[0].seq, entries[2].seq])
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
    assert [e.event_id for e in queue.claim(10)] == ["e3"]
    assert queue.replay([]) == 0
    assert queue.replay() == 1
    assert queue.stats().dead_letters == 0


def test_reschedule_makes_waiting_entries_due(queue):
    put(queue, 2)
    entries = queue.claim(2)
    queue.retry([e.seq for e in entries], entries[0].enqueued_at + 3600, "x")
    assert queue.claim(10) == []
    assert queue.reschedule() == 2
    assert len(queue.claim(10)) == 2


def test_reopen_hands_out_what_a_dead_process_claimed(tmp_path):
    path = tmp_path / "o.sqlite3"
    q = SqliteQueue(path)
    put(q, 5)
    assert len(q.claim(5)) == 5
    q.close()  # as if the process died: nothing was acked
    again = SqliteQueue(path)
    try:
        assert [e.event_id for e in again.claim(10)] == [f"e{i}" for i in range(5)]
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
    (entry,) = queue.claim(1)
    assert entry.item == {"event_id": "é", "x": "日本"}
    assert entry.size == len('{"event_id":"é","x":"日本"}'.encode())
