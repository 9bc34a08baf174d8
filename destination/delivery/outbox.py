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

import contextlib
import fcntl
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .. import compactjson
from ..actions import Route
from ..errors import ConfigurationError, StorageError

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "DeadLetter",
    "Entry",
    "OutboxLockedError",
    "Queue",
    "QueueStats",
    "RouteStats",
    "SqliteQueue",
    "StoredItem",
]

DEFAULT_OUTBOX_PATH = Path(".destination") / "outbox.sqlite3"
#: What ``put_many`` stores: a wire item, or its compact JSON text already encoded.
StoredItem = dict[str, Any] | str
_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class RouteStats:
    """What waits on one route, and the last error its events met."""

    route: Route
    pending: int
    due: int
    in_flight: int
    oldest_enqueued_at: float | None
    #: the most attempts any of its events has had
    max_attempts: int
    #: the error of the most recently failed request, and how many waiting events it holds
    last_error: str | None
    last_error_count: int

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["route"] = asdict(self.route)
        return data


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

    def retry(self, seqs: Sequence[int], next_attempt_at: float, error: str) -> None:
        """Count an attempt and give the entries back, all due again at one time.

        One failed request is one backoff decision: its entries come back due
        together and are batched again as a whole.
        """
        ...

    def release(self, seqs: Sequence[int], error: str | None = None) -> None:
        """Give claimed entries back, no attempt counted (``error``: why, e.g. a stop)."""
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

    def route_stats(self, now: float | None = None) -> list[RouteStats]:
        """Per route: what waits, what is due, the oldest, attempts and the last error."""
        ...

    def dead_letter_reasons(self) -> list[tuple[str, int | None, int]]:
        """(reason, code, count) of the dead letters, most frequent first."""
        ...

    def purge(
        self, *, event_ids: Sequence[str] | None = None, older_than: float | None = None
    ) -> tuple[int, int]:
        """Remove waiting entries and dead letters (all; those with these event_ids; or
        those accepted more than ``older_than`` seconds ago). Returns (waiting, dead)."""
        ...

    def size_bytes(self) -> int | None:
        """What the queue occupies on its storage, when it knows (its cap in bytes)."""
        ...

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
#: ``PRAGMA user_version`` of the current layout. 0: routes held a frozen URL and pixel.
SCHEMA_VERSION = 1


def _chunks(seqs: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(seqs), _CHUNK):
        yield seqs[start : start + _CHUNK]


# One encoder, built once: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(item: Any) -> str:
    """An item's compact JSON, the same text as ``_dumps`` writes, through orjson when it can."""
    return compactjson.dumps(item).decode("utf-8")


_loads = json.JSONDecoder().decode


def _route_json(route: Route) -> str:
    return _dumps(
        {
            "destination": route.destination,
            "event_source": route.event_source,
            "instance": route.instance,
        }
    )


def _route_from_json(text: str) -> Route:
    data = json.loads(text)
    # Layout 0 named the settings "credential"; both name the instance.
    instance = data.get("instance") or data.get("credential") or "default"
    return Route(data["destination"], data["event_source"], instance)


def _storage(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn SQLite's and the file system's failures into one-line StorageErrors."""

    @functools.wraps(method)
    def wrapper(self: SqliteQueue, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"outbox {self.path}: {_describe(exc)}") from None

    return wrapper


def _settling(method: Callable[..., _T]) -> Callable[..., _T]:
    """For what settles claimed entries (ack, retry, release, dead letter): on a full
    disk, give up the reserved space and try once more.

    Removing acknowledged rows needs room in the write-ahead log too; without
    it a delivered event would stay queued and be sent again after a restart.
    """

    @functools.wraps(method)
    def wrapper(self: SqliteQueue, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc) or not self._release_reserve():
                raise
            return method(self, *args, **kwargs)

    return wrapper


def _is_full(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        text += " (the file is damaged or is not an outbox)"
    return text


class SqliteQueue:
    """The default outbox: one SQLite file in WAL mode, safe across crashes.

    ``deliver=True`` (the engine's mode) takes an exclusive lock file next to
    the database, so two engines never deliver the same entries, and hands out
    again whatever a previous, dead process had claimed. Inspection (status,
    dead letters, replay) opens with ``deliver=False`` and works while an
    engine runs. Thread-safe: one connection guarded by a lock. Every failure
    of the storage (disk full, read-only, locked, damaged) is raised as a
    :class:`~destination.errors.StorageError` naming the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_OUTBOX_PATH,
        *,
        deliver: bool = True,
        synchronous: str = "NORMAL",
        create: bool = True,
        reserve_bytes: int = 8 << 20,
    ) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ConfigurationError(f"outbox: unknown synchronous mode {synchronous!r}")
        self.path = str(path)
        self._lock = threading.Lock()
        self._lock_file: Any = None
        #: space kept free for settling claimed entries when the disk fills (deliverer only)
        self._reserve_bytes = reserve_bytes if deliver and self.path != ":memory:" else 0
        self._routes: dict[Route, int] = {}
        self._route_by_id: dict[int, Route] = {}
        if not create and self.path != ":memory:":
            problem = _not_an_outbox(Path(self.path))
            if problem:
                raise ConfigurationError(f"outbox {self.path}: {problem}")
        try:
            self._open(synchronous, deliver)
        except (OSError, sqlite3.Error) as exc:
            # A folder, /dev/null, a read-only place: the operator's problem, in one line.
            if self._lock_file is not None:
                self._lock_file.close()
            raise ConfigurationError(f"outbox {self.path}: cannot open: {_describe(exc)}") from None
        self._closed = False

    def _open(self, synchronous: str, deliver: bool) -> None:
        memory = self.path == ":memory:"
        if not memory:
            # The lock is keyed by the file itself, not the name it was given (a symlink).
            self.path = os.path.realpath(self.path)
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
            self._migrate()
            if deliver:
                # Entries a dead process had claimed are due again.
                self._db.execute("UPDATE outbox SET claimed = 0 WHERE claimed = 1")
        except BaseException:
            self._db.close()
            raise
        self._take_reserve()

    # -- the reserve: room to settle what is in flight on a full disk ------------

    @property
    def _reserve_path(self) -> str:
        return self.path + ".reserve"

    def _take_reserve(self) -> bool:
        """Hold ``reserve_bytes`` of the disk in a file next to the outbox; True if held."""
        if not self._reserve_bytes:
            return True
        if os.path.exists(self._reserve_path):
            return True
        try:
            with open(self._reserve_path, "wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, self._reserve_bytes)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(self._reserve_path)
            return False
        return True

    def _release_reserve(self) -> bool:
        """Give the reserved space back to the file system; True if there was some."""
        if not self._reserve_bytes:
            return False
        try:
            os.unlink(self._reserve_path)
        except OSError:
            return False
        return True

    def _migrate(self) -> None:
        """Create the tables, or bring an older outbox to the current layout in place."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer version (layout {version}, this one reads {SCHEMA_VERSION}); "
                "drain it with that version (destination outbox flush)"
            )
        self._db.execute("BEGIN IMMEDIATE")
        try:
            old = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'routes'"
            ).fetchone()
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if old and version < 1:
                self._routes_by_name()
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _routes_by_name(self) -> None:
        """Layout 0 → 1: routes kept a frozen URL, pixel and test code; keep only names.

        Routes that differed only by the frozen values merge, so what was queued
        for a wrong pixel or URL goes where the current settings say.
        """
        keep: dict[str, int] = {}
        for rid, text in self._db.execute("SELECT id, json FROM routes ORDER BY id").fetchall():
            new = _route_json(_route_from_json(text))
            if new in keep:
                for table in ("outbox", "dead_letters"):
                    self._db.execute(
                        f"UPDATE {table} SET route_id = ? WHERE route_id = ?", (keep[new], rid)
                    )
                self._db.execute("DELETE FROM routes WHERE id = ?", (rid,))
            else:
                keep[new] = rid
        for new, rid in keep.items():
            self._db.execute("UPDATE routes SET json = ? WHERE id = ?", (new, rid))

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
            text = _route_json(route)
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
            route = _route_from_json(row[0])
            self._route_by_id[rid] = route
            self._routes[route] = rid
        return route

    # -- the Queue interface ----------------------------------------------------

    @_storage
    def put_many(self, events: Iterable[tuple[Route, StoredItem, str]]) -> int:
        now = time.time()
        with self._lock:
            events = list(events)
            if not events:
                return 0
            if not self._take_reserve():
                # The reserve went to settling deliveries and the disk has no room to take it
                # back: new events would eat the space acknowledgements need.
                raise StorageError(
                    f"outbox {self.path}: disk is full: no room for the "
                    f"{self._reserve_bytes / 1e6:g} MB kept free next to the outbox "
                    "to acknowledge deliveries"
                )
            self._db.execute("BEGIN IMMEDIATE")
            try:
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
                self._db.executemany(
                    "INSERT INTO outbox(event_id, route_id, item, enqueued_at, next_attempt_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._rollback()
                raise
            self._db.execute("COMMIT")
        return len(rows)

    def _rollback(self) -> None:
        # A failed ROLLBACK (the disk is gone) must not hide the error that caused it;
        # a route id read inside the failed transaction may not exist any more.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        self._routes.clear()
        self._route_by_id.clear()

    @_storage
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
                self._rollback()
                raise
            self._db.execute("COMMIT")

    @_storage
    @_settling
    def ack(self, seqs: Sequence[int]) -> None:
        self._many("DELETE FROM outbox WHERE seq = ?", ((s,) for s in seqs))

    @_storage
    @_settling
    def retry(self, seqs: Sequence[int], next_attempt_at: float, error: str) -> None:
        self._many(
            "UPDATE outbox SET claimed = 0, attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE seq = ?",
            ((next_attempt_at, error, s) for s in seqs),
        )

    @_storage
    @_settling
    def release(self, seqs: Sequence[int], error: str | None = None) -> None:
        if error is None:
            self._many("UPDATE outbox SET claimed = 0 WHERE seq = ?", ((s,) for s in seqs))
        else:
            self._many(
                "UPDATE outbox SET claimed = 0, last_error = ? WHERE seq = ?",
                ((error, s) for s in seqs),
            )

    @_storage
    @_settling
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
                self._rollback()
                raise
            self._db.execute("COMMIT")

    @_storage
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

    @_storage
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
                self._rollback()
                raise
            self._db.execute("COMMIT")
        return count

    @_storage
    def purge(
        self, *, event_ids: Sequence[str] | None = None, older_than: float | None = None
    ) -> tuple[int, int]:
        where, params = "", ()  # type: tuple[str, tuple[Any, ...]]
        if event_ids is not None:
            if not event_ids:
                return 0, 0
            where = " WHERE event_id IN (SELECT value FROM json_each(?))"
            params = (_dumps(list(event_ids)),)
        elif older_than is not None:
            where = " WHERE enqueued_at < ?"
            params = (time.time() - older_than,)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                waiting = self._db.execute(f"DELETE FROM outbox{where}", params).rowcount
                dead = self._db.execute(f"DELETE FROM dead_letters{where}", params).rowcount
            except BaseException:
                self._rollback()
                raise
            self._db.execute("COMMIT")
        return waiting, dead

    @_storage
    def reschedule(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            cur = self._db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE claimed = 0 AND next_attempt_at > ?",
                (now, now),
            )
            return cur.rowcount

    @_storage
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

    @_storage
    def route_stats(self, now: float | None = None) -> list[RouteStats]:
        now = time.time() if now is None else now
        with self._lock:
            totals = self._db.execute(
                "SELECT route_id, count(*), count(*) FILTER (WHERE claimed = 0 AND"
                " next_attempt_at <= ?), coalesce(sum(claimed), 0), min(enqueued_at),"
                " max(attempts) FROM outbox GROUP BY route_id ORDER BY route_id",
                (now,),
            ).fetchall()
            # The entries of one failed request share its error and its due time, so
            # the error of the latest due time is the route's last one.
            errors = self._db.execute(
                "SELECT route_id, last_error, count(*), max(next_attempt_at) FROM outbox"
                " WHERE last_error IS NOT NULL GROUP BY route_id, last_error"
            ).fetchall()
            last: dict[int, tuple[str, int, float]] = {}
            for rid, error, count, at in errors:
                if rid not in last or at > last[rid][2]:
                    last[rid] = (error, count, at)
            return [
                RouteStats(
                    route=self._route(rid),
                    pending=pending,
                    due=due,
                    in_flight=in_flight,
                    oldest_enqueued_at=oldest,
                    max_attempts=attempts,
                    last_error=last[rid][0] if rid in last else None,
                    last_error_count=last[rid][1] if rid in last else 0,
                )
                for rid, pending, due, in_flight, oldest, attempts in totals
            ]

    @_storage
    def dead_letter_reasons(self) -> list[tuple[str, int | None, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT reason, code, count(*) AS n FROM dead_letters"
                " GROUP BY reason, code ORDER BY n DESC, reason"
            ).fetchall()
        return [(reason, code, count) for reason, code, count in rows]

    @_storage
    def next_due(self) -> float | None:
        """When the earliest waiting entry becomes due (None when nothing waits)."""
        with self._lock:
            (at,) = self._db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE claimed = 0"
            ).fetchone()
        return at

    def size_bytes(self) -> int | None:
        """The database file and its write-ahead log, in bytes (None in memory)."""
        if self.path == ":memory:":
            return None
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(self.path + suffix).st_size
        return total

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._reserve_bytes:
                self._release_reserve()
            if self._lock_file is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None


def _not_an_outbox(path: Path) -> str | None:
    """Why an existing file cannot be opened as an outbox for inspection, or None."""
    if not path.exists():
        return "no such file (use --outbox PATH or --config FILE)"
    if path.is_dir():
        return "is a folder, not an outbox"
    if path.stat().st_size == 0:
        return "is an empty file, not an outbox (an outbox is an SQLite database)"
    with open(path, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            return "is not an SQLite database, so not an outbox (damaged or the wrong file)"
    return None
