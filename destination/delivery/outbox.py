"""Where accepted events wait until the destination acknowledges them.

An event counts as accepted only once it is stored here, and it leaves only
when the destination acknowledged its batch (or it was dead-lettered). That is
the whole durability promise, so it lives behind one small interface,
:class:`Queue`: the SQLite outbox below is its first implementation, and a
scale-out backend (Redis Streams consumer groups, NATS JetStream) plugs in at
the same seam — ``claim`` is a consumer-group read, ``ack`` an XACK, ``release``
gives entries back for another worker.

What is stored is the destination's wire item, already normalised and hashed
by the action, plus a route without any secret: never raw email or phone,
never an access token.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed ``put_many``
survives a crash or ``kill -9`` of the process; an operating-system crash or
power loss may lose the last commits before a checkpoint (use
``synchronous="FULL"`` to rule that out too, at a cost in throughput).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .. import compactjson
from ..actions import Route
from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "DeadLetter",
    "Entry",
    "OutboxLockedError",
    "Queue",
    "QueueStats",
    "SqliteQueue",
    "StoredItem",
]

DEFAULT_OUTBOX_PATH = Path(".destination") / "outbox.sqlite3"
#: What ``put_many`` stores: a wire item, or its compact JSON text already encoded.
StoredItem = dict[str, Any] | str


@dataclass(slots=True)
class Entry:
    """One accepted event waiting for delivery. ``seq`` identifies it in the queue.

    Read-only by convention, not frozen: one is made per event claimed, and a
    frozen dataclass's ``__init__`` (``object.__setattr__`` per field) cost
    three times a plain one, on the delivery thread, under the GIL.
    """

    seq: int
    event_id: str
    route: Route
    #: the wire item as stored: compact JSON, spliced into the request body as is
    item_json: str
    enqueued_at: float
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    size: int = 0  # bytes of item_json, for the batcher's byte cap

    @property
    def item(self) -> dict[str, Any]:
        """The wire item, decoded (a new dict on each access)."""
        value: dict[str, Any] = _loads(self.item_json)
        return value


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that will not be retried, with TikTok's (or the engine's) reason."""

    seq: int
    event_id: str
    route: Route
    item: dict[str, Any]
    enqueued_at: float
    attempts: int
    reason: str
    code: int | None
    dead_at: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = asdict(self.route)
        return data


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    due: int
    in_flight: int
    dead_letters: int
    oldest_enqueued_at: float | None
    next_attempt_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Queue(Protocol):
    """The scale-out boundary: everything the engine needs from an event store.

    ``claim`` hands out due entries that no one else holds; every claimed entry
    ends in exactly one of ``ack``, ``retry``, ``dead_letter`` or ``release``.
    Entries claimed by a process that died are handed out again when the store
    is reopened (or, for a shared backend, claimed by another worker).
    """

    def put_many(self, events: Iterable[tuple[Route, StoredItem, str]]) -> int:
        """Durably store (route, item, event_id) triples; return how many.

        An item is a dict or, already encoded, its compact JSON text (what
        :func:`destination.compactjson.dumps` writes), stored as it is.
        """
        ...

    def claim(self, limit: int, now: float | None = None) -> list[Entry]:
        """Take up to ``limit`` due entries, oldest due first."""
        ...

    def ack(self, seqs: Sequence[int]) -> None:
        """The destination acknowledged these: forget them."""
        ...

    def retry(self, seqs: Sequence[int], next_attempt_at: Sequence[float], error: str) -> None:
        """Count an attempt and give the entries back, due at the given times."""
        ...

    def release(self, seqs: Sequence[int]) -> None:
        """Give claimed entries back untouched (no attempt counted)."""
        ...

    def dead_letter(self, seqs: Sequence[int], reason: str, code: int | None = None) -> None:
        """Move entries out of delivery, keeping the reason."""
        ...

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """List dead letters, oldest first."""
        ...

    def replay(self, event_ids: Sequence[str] | None = None) -> int:
        """Put dead letters (all, or those with these event_ids) back in the queue."""
        ...

    def reschedule(self, now: float | None = None) -> int:
        """Make every waiting entry due now (an operator's flush)."""
        ...

    def next_due(self) -> float | None:
        """When the earliest waiting (unclaimed) entry becomes due; None if none waits."""
        ...

    def stats(self, now: float | None = None) -> QueueStats: ...

    def close(self) -> None: ...


class OutboxLockedError(ConfigurationError):
    """Another process is delivering from this outbox."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    json TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    route_id INTEGER NOT NULL REFERENCES routes(id),
    item TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    claimed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_at, seq) WHERE claimed = 0;
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    route_id INTEGER NOT NULL REFERENCES routes(id),
    item TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    code INTEGER,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_event_id ON dead_letters(event_id);
"""

_CHUNK = 500  # bound on SQL variables per statement


def _chunks(seqs: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(seqs), _CHUNK):
        yield seqs[start : start + _CHUNK]


# One encoder, built once: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(item: Any) -> str:
    """An item's compact JSON, the same text as ``_dumps`` writes, through orjson when it can."""
    return compactjson.dumps(item).decode("utf-8")


_loads = json.JSONDecoder().decode


class SqliteQueue:
    """The default outbox: one SQLite file in WAL mode, safe across crashes.

    ``deliver=True`` (the engine's mode) takes an exclusive lock file next to
    the database, so two engines never deliver the same entries, and hands out
    again whatever a previous, dead process had claimed. Inspection (status,
    dead letters, replay) opens with ``deliver=False`` and works while an
    engine runs. Thread-safe: one connection guarded by a lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_OUTBOX_PATH,
        *,
        deliver: bool = True,
        synchronous: str = "NORMAL",
    ) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(f"outbox: unknown synchronous mode {synchronous!r}")
        self.path = str(path)
        self._lock = threading.Lock()
        self._lock_file: Any = None
        self._routes: dict[Route, int] = {}
        self._route_by_id: dict[int, Route] = {}
        try:
            self._open(synchronous, deliver)
        except (OSError, sqlite3.Error) as exc:
            # A folder, /dev/null, a read-only place: the operator's problem, in one line.
            if self._lock_file is not None:
                self._lock_file.close()
            what = getattr(exc, "strerror", None) or str(exc)
            raise ConfigurationError(f"outbox {self.path}: cannot open: {what}") from None
        self._closed = False

    def _open(self, synchronous: str, deliver: bool) -> None:
        memory = self.path == ":memory:"
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if deliver:
                self._lock_file = self._take_lock(self.path + ".lock")
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        try:
            if not memory:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            if deliver:
                # Entries a dead process had claimed are due again.
                self._db.execute("UPDATE outbox SET claimed = 0 WHERE claimed = 1")
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def _take_lock(lock_path: str) -> Any:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held for the queue's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise OutboxLockedError(
                f"outbox {lock_path[: -len('.lock')]} is in use by another delivering process"
            ) from None
        return handle

    def __repr__(self) -> str:
        return f"SqliteQueue({self.path!r})"

    # -- routes ---------------------------------------------------------------

    def _route_id(self, route: Route) -> int:
        rid = self._routes.get(route)
        if rid is None:
            text = _dumps(asdict(route))
            self._db.execute("INSERT OR IGNORE INTO routes(json) VALUES (?)", (text,))
            row = self._db.execute("SELECT id FROM routes WHERE json = ?", (text,)).fetchone()
            rid = int(row[0])
            self._routes[route] = rid
            self._route_by_id[rid] = route
        return rid

    def _route(self, rid: int) -> Route:
        route = self._route_by_id.get(rid)
        if route is None:
            row = self._db.execute("SELECT json FROM routes WHERE id = ?", (rid,)).fetchone()
            route = Route(**json.loads(row[0]))
            self._route_by_id[rid] = route
            self._routes[route] = rid
        return route

    # -- the Queue interface ----------------------------------------------------

    def put_many(self, events: Iterable[tuple[Route, StoredItem, str]]) -> int:
        now = time.time()
        with self._lock:
            rows = [
                (
                    event_id,
                    self._route_id(route),
                    item if type(item) is str else _encode(item),
                    now,
                    now,
                )
                for route, item, event_id in events
            ]
            if not rows:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO outbox(event_id, route_id, item, enqueued_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(rows)

    def claim(self, limit: int, now: float | None = None) -> list[Entry]:
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "UPDATE outbox SET claimed = 1 WHERE seq IN ("
                " SELECT seq FROM outbox WHERE claimed = 0 AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, seq LIMIT ?) "
                "RETURNING seq, event_id, route_id, item, enqueued_at, attempts,"
                " next_attempt_at, last_error",
                (now, limit),
            ).fetchall()
            entries = [
                Entry(
                    seq=row[0],
                    event_id=row[1],
                    route=self._route(row[2]),
                    item_json=row[3],
                    enqueued_at=row[4],
                    attempts=row[5],
                    next_attempt_at=row[6],
                    last_error=row[7],
                    size=len(row[3].encode()) if not row[3].isascii() else len(row[3]),
                )
                for row in rows
            ]
        entries.sort(key=lambda e: (e.next_attempt_at, e.seq))
        return entries

    def _many(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def ack(self, seqs: Sequence[int]) -> None:
        self._many("DELETE FROM outbox WHERE seq = ?", ((s,) for s in seqs))

    def retry(self, seqs: Sequence[int], next_attempt_at: Sequence[float], error: str) -> None:
        self._many(
            "UPDATE outbox SET claimed = 0, attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE seq = ?",
            ((at, error, s) for s, at in zip(seqs, next_attempt_at, strict=True)),
        )

    def release(self, seqs: Sequence[int]) -> None:
        self._many("UPDATE outbox SET claimed = 0 WHERE seq = ?", ((s,) for s in seqs))

    def dead_letter(self, seqs: Sequence[int], reason: str, code: int | None = None) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(list(seqs)):
                    marks = ",".join("?" * len(chunk))
                    self._db.execute(
                        "INSERT OR REPLACE INTO dead_letters(seq, event_id, route_id, item,"
                        " enqueued_at, attempts, reason, code, dead_at) "
                        "SELECT seq, event_id, route_id, item, enqueued_at, attempts + 1, ?, ?, ?"
                        f" FROM outbox WHERE seq IN ({marks})",
                        (reason, code, now, *chunk),
                    )
                    self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", tuple(chunk))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        sql = (
            "SELECT seq, event_id, route_id, item, enqueued_at, attempts, reason, code, dead_at"
            " FROM dead_letters ORDER BY dead_at, seq"
        )
        with self._lock:
            rows = self._db.execute(
                sql + (" LIMIT ?" if limit is not None else ""),
                (limit,) if limit is not None else (),
            ).fetchall()
            return [
                DeadLetter(
                    seq=row[0],
                    event_id=row[1],
                    route=self._route(row[2]),
                    item=_loads(row[3]),
                    enqueued_at=row[4],
                    attempts=row[5],
                    reason=row[6],
                    code=row[7],
                    dead_at=row[8],
                )
                for row in rows
            ]

    def replay(self, event_ids: Sequence[str] | None = None) -> int:
        # A replayed event gets a fresh enqueued_at, so it has a full max age again.
        now = time.time()
        where, params = "", ()  # type: tuple[str, tuple[str, ...]]
        if event_ids is not None:
            if not event_ids:
                return 0
            where = " WHERE event_id IN (SELECT value FROM json_each(?))"
            params = (_dumps(list(event_ids)),)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox(event_id, route_id, item, enqueued_at, next_attempt_at) "
                    f"SELECT event_id, route_id, item, ?, ? FROM dead_letters{where} ORDER BY seq",
                    (now, now, *params),
                )
                count = cur.rowcount
                self._db.execute(f"DELETE FROM dead_letters{where}", params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return count

    def reschedule(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE claimed = 0 AND next_attempt_at > ?",
                (now, now),
            )
            return cur.rowcount

    def stats(self, now: float | None = None) -> QueueStats:
        now = time.time() if now is None else now
        with self._lock:
            pending, in_flight, oldest = self._db.execute(
                "SELECT count(*), coalesce(sum(claimed), 0), min(enqueued_at) FROM outbox"
            ).fetchone()
            due, next_at = self._db.execute(
                "SELECT count(*) FILTER (WHERE next_attempt_at <= ?), min(next_attempt_at)"
                " FROM outbox WHERE claimed = 0",
                (now,),
            ).fetchone()
            (dead,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
        return QueueStats(
            pending=pending,
            due=due,
            in_flight=in_flight,
            dead_letters=dead,
            oldest_enqueued_at=oldest,
            next_attempt_at=next_at,
        )

    def next_due(self) -> float | None:
        """When the earliest waiting entry becomes due (None when nothing waits)."""
        with self._lock:
            (at,) = self._db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE claimed = 0"
            ).fetchone()
        return at

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            if self._lock_file is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None
