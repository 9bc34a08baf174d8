"""The embedded queue: an SQLite file (WAL) where accepted events wait, in chunks.

This is the default backend of :class:`~destination.delivery.queue.Queue`.
A chunk (the items one ``put_many`` gave for one route, at most a request's
worth) is one row of ``chunks`` (its state: attempts, due time, last error)
plus one row of ``chunk_items`` (its items and event ids, written once), so
storing, claiming, acknowledging and retrying cost a few statements per
request, not per event. Claims live in this process's memory: the delivering
process holds the outbox's lock, and after a crash everything it had claimed
and not settled is simply due again. Only dead letters are stored per event.

What is stored is the destination's wire item, already normalised and hashed
by the action, plus a route of names: never raw email or phone, never an
access token, never a frozen address.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .. import compactjson
from ..actions import Route
from ..errors import ConfigurationError, StorageError
from .queue import Chunk, DeadLetter, Queue, QueueStats, RouteStats, StoredItem
from .queue import chunk_cuts as _cuts
from .queue import utf8_len as _utf8_len

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "Chunk",
    "DeadLetter",
    "OutboxLockedError",
    "Queue",
    "QueueStats",
    "RouteStats",
    "SqliteQueue",
    "StoredItem",
]

DEFAULT_OUTBOX_PATH = Path(".destination") / "outbox.sqlite3"
_T = TypeVar("_T")


class OutboxLockedError(ConfigurationError):
    """Another process is delivering from this outbox."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY,
    json TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    route_id INTEGER NOT NULL REFERENCES routes(id),
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS chunks_due ON chunks(next_attempt_at, id);
CREATE TABLE IF NOT EXISTS chunk_items (
    id INTEGER PRIMARY KEY,
    event_ids TEXT NOT NULL,
    items TEXT NOT NULL
);
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

#: ``PRAGMA user_version`` of the current layout. 0: one row per event, routes with a
#: frozen URL and pixel; 1: one row per event, routes of names; 2: chunks.
SCHEMA_VERSION = 2
_VARIABLES = 500  # bound on SQL variables per statement
#: Items are joined by a newline in storage: compact JSON never holds a raw one.
_SEP = "\n"


def _groups(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _VARIABLES):
        yield ids[start : start + _VARIABLES]


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


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
    the database, so two engines never deliver the same chunks; whatever a
    previous, dead process had claimed is due again because claims are only
    in memory. Inspection (status, dead letters, replay) opens with
    ``deliver=False`` and works while an engine runs. Thread-safe: one
    connection guarded by a lock. Every failure of the storage (disk full,
    read-only, locked, damaged) is raised as a
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
        #: space kept free for settling claimed chunks when the disk fills (deliverer only)
        self._reserve_bytes = reserve_bytes if deliver and self.path != ":memory:" else 0
        self._routes: dict[Route, int] = {}
        self._route_by_id: dict[int, Route] = {}
        #: chunk id -> events, of the chunks this process holds
        self._claimed: dict[int, int] = {}
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
        except BaseException:
            self._db.close()
            raise
        self._take_reserve()

    def _migrate(self) -> None:
        """Create the tables, or bring an older outbox to the current layout in place."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer version (layout {version}, this one reads {SCHEMA_VERSION}); "
                "drain it with that version (destination outbox flush)"
            )
        if version == SCHEMA_VERSION:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            tables = {
                name
                for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            if "routes" in tables and version < 1:
                self._routes_by_name()
            if "outbox" in tables:
                self._rows_to_chunks()
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

    def _rows_to_chunks(self) -> None:
        """Layouts 0 and 1 → 2: one row per event becomes chunks of up to 1000 per route."""
        rows = self._db.execute(
            "SELECT route_id, event_id, item, enqueued_at, attempts, next_attempt_at, last_error"
            " FROM outbox ORDER BY route_id, next_attempt_at, seq"
        )
        pending: list[tuple[Any, ...]] = []

        def write() -> None:
            if pending:
                first = pending[0]
                self._insert_chunk(
                    first[0],
                    [r[2] for r in pending],
                    [r[1] for r in pending],
                    enqueued_at=min(r[3] for r in pending),
                    attempts=max(r[4] for r in pending),
                    next_attempt_at=min(r[5] for r in pending),
                    last_error=next((r[6] for r in reversed(pending) if r[6]), None),
                )
                pending.clear()

        for row in rows.fetchall():
            if pending and (row[0] != pending[0][0] or len(pending) >= 1000):
                write()
            pending.append(row)
        write()
        self._db.execute("DROP TABLE outbox")

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

    def delivering_elsewhere(self) -> bool:
        """True when another process holds this outbox's delivering lock (``run``,
        ``serve``, ``flush``): its claims are in its memory, so what it is sending counts
        as due here, not as in flight."""
        if self._lock_file is not None or self.path == ":memory:":
            return False
        try:
            handle = open(self.path + ".lock", "a+")  # noqa: SIM115 - closed below
        except OSError:
            return False
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
        finally:
            handle.close()

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

    # -- routes and rows ----------------------------------------------------------

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

    def _insert_chunk(
        self,
        route_id: int,
        items: Sequence[str],
        event_ids: Sequence[str],
        *,
        enqueued_at: float,
        attempts: int = 0,
        next_attempt_at: float,
        last_error: str | None = None,
        size: int | None = None,
    ) -> int:
        blob = _SEP.join(items)
        if size is None:
            size = _utf8_len(blob) - len(items) + 1
        cur = self._db.execute(
            "INSERT INTO chunks(route_id, count, bytes, enqueued_at, attempts, next_attempt_at,"
            " last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (route_id, len(items), size, enqueued_at, attempts, next_attempt_at, last_error),
        )
        chunk_id = int(cur.lastrowid or 0)
        self._db.execute(
            "INSERT INTO chunk_items(id, event_ids, items) VALUES (?, ?, ?)",
            (chunk_id, _dumps(list(event_ids)), blob),
        )
        return chunk_id

    def _insert_chunks(
        self,
        route_id: int,
        items: Sequence[str],
        event_ids: Sequence[str],
        now: float,
        max_items: int,
        max_bytes: int,
    ) -> None:
        """New events of one route, as chunks cut at the caps, due now."""
        for start, end, size in _cuts(items, max_items, max_bytes):
            self._insert_chunk(
                route_id,
                items[start:end],
                event_ids[start:end],
                enqueued_at=now,
                next_attempt_at=now,
                size=size,
            )

    def _rollback(self) -> None:
        # A failed ROLLBACK (the disk is gone) must not hide the error that caused it;
        # a route id read inside the failed transaction may not exist any more.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        self._routes.clear()
        self._route_by_id.clear()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        self._db.execute("COMMIT")

    def _unclaimed(self, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (chunk id first) that this process does not hold."""
        claimed = self._claimed
        cur = self._db.execute(sql, params)
        while True:
            rows = cur.fetchmany(256)
            if not rows:
                return
            for row in rows:
                if row[0] not in claimed:
                    yield row

    # -- the Queue interface ----------------------------------------------------

    @_storage
    def put_many(
        self,
        events: Iterable[tuple[Route, StoredItem, str]],
        *,
        max_items: int = 1000,
        max_bytes: int = 2_000_000,
    ) -> int:
        by_route: dict[Route, tuple[list[str], list[str]]] = {}
        count = 0
        for route, item, event_id in events:
            text = item if type(item) is str else _encode(item)
            if _SEP in text:  # not compact JSON after all: make it so
                text = _encode(_loads(text))
            group = by_route.get(route)
            if group is None:
                group = by_route[route] = ([], [])
            group[0].append(text)
            group[1].append(event_id)
            count += 1
        if not count:
            return 0
        now = time.time()
        with self._lock:
            if not self._take_reserve():
                # The reserve went to settling deliveries and the disk has no room to take it
                # back: new events would eat the space acknowledgements need.
                raise StorageError(
                    f"outbox {self.path}: disk is full: no room for the "
                    f"{self._reserve_bytes / 1e6:g} MB kept free next to the outbox "
                    "to acknowledge deliveries"
                )
            with self._transaction():
                for route, (items, ids) in by_route.items():
                    self._insert_chunks(
                        self._route_id(route), items, ids, now, max_items, max_bytes
                    )
        return count

    @_storage
    def claim(self, limit: int, now: float | None = None) -> list[Chunk]:
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        with self._lock:
            chosen: list[int] = []
            total = 0
            for chunk_id, count in self._unclaimed(
                "SELECT id, count FROM chunks WHERE next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id",
                (now,),
            ):
                if chosen and total + count > limit:
                    break
                chosen.append(chunk_id)
                total += count
                if total >= limit:
                    break
            if not chosen:
                return []
            rows = self._db.execute(
                "SELECT c.id, c.route_id, c.bytes, c.enqueued_at, c.attempts, c.next_attempt_at,"
                " c.last_error, i.event_ids, i.items FROM chunks c JOIN chunk_items i"
                f" ON i.id = c.id WHERE c.id IN ({_marks(chosen)})",
                chosen,
            ).fetchall()
            chunks = [
                Chunk(
                    id=row[0],
                    route=self._route(row[1]),
                    items=row[8].split(_SEP),
                    event_ids=_loads(row[7]),
                    enqueued_at=row[3],
                    attempts=row[4],
                    next_attempt_at=row[5],
                    last_error=row[6],
                    size=row[2],
                )
                for row in rows
            ]
            for chunk in chunks:
                self._claimed[chunk.id] = len(chunk.items)
        chunks.sort(key=lambda c: (c.next_attempt_at, c.id))
        return chunks

    def _forget(self, ids: Sequence[int]) -> None:
        for chunk_id in ids:
            self._claimed.pop(chunk_id, None)

    def _delete(self, ids: Sequence[int]) -> None:
        for group in _groups(list(ids)):
            marks = _marks(group)
            self._db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", group)
            self._db.execute(f"DELETE FROM chunk_items WHERE id IN ({marks})", group)

    @_storage
    @_settling
    def ack(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            with self._transaction():
                self._delete(ids)
            self._forget(ids)

    @_storage
    @_settling
    def retry(self, ids: Sequence[int], next_attempt_at: float, error: str) -> None:
        if not ids:
            return
        with self._lock:
            with self._transaction():
                for group in _groups(list(ids)):
                    self._db.execute(
                        "UPDATE chunks SET attempts = attempts + 1, next_attempt_at = ?,"
                        f" last_error = ? WHERE id IN ({_marks(group)})",
                        (next_attempt_at, error, *group),
                    )
            self._forget(ids)

    @_storage
    @_settling
    def release(self, ids: Sequence[int], error: str | None = None) -> None:
        with self._lock:
            if error is not None and ids:
                with self._transaction():
                    for group in _groups(list(ids)):
                        self._db.execute(
                            f"UPDATE chunks SET last_error = ? WHERE id IN ({_marks(group)})",
                            (error, *group),
                        )
            self._forget(ids)

    @_storage
    @_settling
    def split(self, chunk: Chunk, sizes: Sequence[int]) -> list[Chunk]:
        if sum(sizes) != len(chunk.items) or any(n <= 0 for n in sizes):
            raise ValueError(f"parts {list(sizes)} do not add up to {len(chunk.items)} items")
        parts: list[Chunk] = []
        with self._lock:
            with self._transaction():
                self._delete([chunk.id])
                rid = self._route_id(chunk.route)
                start = 0
                for n in sizes:
                    items = chunk.items[start : start + n]
                    ids = chunk.event_ids[start : start + n]
                    size = sum(map(_utf8_len, items)) + n - 1
                    new_id = self._insert_chunk(
                        rid,
                        items,
                        ids,
                        enqueued_at=chunk.enqueued_at,
                        attempts=chunk.attempts,
                        next_attempt_at=chunk.next_attempt_at,
                        last_error=chunk.last_error,
                        size=size,
                    )
                    parts.append(
                        Chunk(
                            new_id,
                            chunk.route,
                            items,
                            ids,
                            chunk.enqueued_at,
                            chunk.attempts,
                            chunk.next_attempt_at,
                            chunk.last_error,
                            size,
                        )
                    )
                    start += n
            self._forget([chunk.id])
            for part in parts:
                self._claimed[part.id] = len(part.items)
        return parts

    @_storage
    @_settling
    def dead_letter(self, ids: Sequence[int], reason: str, code: int | None = None) -> None:
        if not ids:
            return
        now = time.time()
        with self._lock:
            with self._transaction():
                for group in _groups(list(ids)):
                    rows = self._db.execute(
                        "SELECT c.route_id, c.enqueued_at, c.attempts, i.event_ids, i.items"
                        " FROM chunks c JOIN chunk_items i ON i.id = c.id"
                        f" WHERE c.id IN ({_marks(group)}) ORDER BY c.id",
                        group,
                    ).fetchall()
                    self._db.executemany(
                        "INSERT INTO dead_letters(event_id, route_id, item, enqueued_at,"
                        " attempts, reason, code, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            (event_id, rid, item, enqueued, attempts + 1, reason, code, now)
                            for rid, enqueued, attempts, event_ids, items in rows
                            for event_id, item in zip(
                                _loads(event_ids), items.split(_SEP), strict=True
                            )
                        ),
                    )
                    self._delete(group)
            self._forget(ids)

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
    def dead_letter_reasons(self) -> list[tuple[str, int | None, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT reason, code, count(*) AS n FROM dead_letters"
                " GROUP BY reason, code ORDER BY n DESC, reason"
            ).fetchall()
        return [(reason, code, count) for reason, code, count in rows]

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
        with self._lock, self._transaction():
            rows = self._db.execute(
                f"SELECT route_id, event_id, item FROM dead_letters{where} ORDER BY seq",
                params,
            ).fetchall()
            by_route: dict[int, tuple[list[str], list[str]]] = {}
            for rid, event_id, item in rows:
                items, ids = by_route.setdefault(rid, ([], []))
                items.append(item)
                ids.append(event_id)
            for rid, (items, ids) in by_route.items():
                self._insert_chunks(rid, items, ids, now, 1000, 2_000_000)
            self._db.execute(f"DELETE FROM dead_letters{where}", params)
        return len(rows)

    @_storage
    def purge(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        older_than: float | None = None,
        dry_run: bool = False,
    ) -> tuple[int, int]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if event_ids is not None:
                    waiting, dead = self._purge_events(set(event_ids))
                else:
                    waiting, dead = self._purge_where(older_than)
            except BaseException:
                self._rollback()
                raise
            # A dry run counts by doing it, then takes it back.
            self._db.execute("ROLLBACK" if dry_run else "COMMIT")
        return waiting, dead

    def _purge_where(self, older_than: float | None) -> tuple[int, int]:
        where, params = "", ()  # type: tuple[str, tuple[Any, ...]]
        if older_than is not None:
            where, params = " WHERE enqueued_at < ?", (time.time() - older_than,)
        rows = self._db.execute(f"SELECT id, count FROM chunks{where}", params).fetchall()
        ids = [chunk_id for chunk_id, _ in rows if chunk_id not in self._claimed]
        waiting = sum(count for chunk_id, count in rows if chunk_id not in self._claimed)
        self._delete(ids)
        dead = self._db.execute(f"DELETE FROM dead_letters{where}", params).rowcount
        return int(waiting), dead

    def _purge_events(self, wanted: set[str]) -> tuple[int, int]:
        """Remove these event ids from their chunks (a chunk left empty goes too)."""
        if not wanted:
            return 0, 0
        removed = 0
        rows = self._db.execute(
            "SELECT c.id, c.route_id, c.enqueued_at, c.attempts, c.next_attempt_at,"
            " c.last_error, i.event_ids, i.items FROM chunks c JOIN chunk_items i"
            " ON i.id = c.id"
        ).fetchall()
        for chunk_id, rid, enqueued, attempts, due, error, ids_text, blob in rows:
            if chunk_id in self._claimed:
                continue
            ids = _loads(ids_text)
            if wanted.isdisjoint(ids):
                continue
            items = blob.split(_SEP)
            kept = [(i, t) for i, t in zip(ids, items, strict=True) if i not in wanted]
            removed += len(ids) - len(kept)
            self._delete([chunk_id])
            if kept:
                self._insert_chunk(
                    rid,
                    [t for _, t in kept],
                    [i for i, _ in kept],
                    enqueued_at=enqueued,
                    attempts=attempts,
                    next_attempt_at=due,
                    last_error=error,
                )
        dead = self._db.execute(
            "DELETE FROM dead_letters WHERE event_id IN (SELECT value FROM json_each(?))",
            (_dumps(sorted(wanted)),),
        ).rowcount
        return removed, dead

    @_storage
    def reschedule(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            ids = [
                row[0]
                for row in self._unclaimed(
                    "SELECT id FROM chunks WHERE next_attempt_at > ?", (now,)
                )
            ]
            if not ids:
                return 0
            with self._transaction():
                total = 0
                for group in _groups(ids):
                    marks = _marks(group)
                    (n,) = self._db.execute(
                        f"SELECT coalesce(sum(count), 0) FROM chunks WHERE id IN ({marks})", group
                    ).fetchone()
                    total += n
                    self._db.execute(
                        f"UPDATE chunks SET next_attempt_at = ? WHERE id IN ({marks})",
                        (now, *group),
                    )
        return int(total)

    @_storage
    def stats(self, now: float | None = None) -> QueueStats:
        now = time.time() if now is None else now
        with self._lock:
            pending, oldest = self._db.execute(
                "SELECT coalesce(sum(count), 0), min(enqueued_at) FROM chunks"
            ).fetchone()
            (due,) = self._db.execute(
                "SELECT coalesce(sum(count), 0) FROM chunks WHERE next_attempt_at <= ?", (now,)
            ).fetchone()
            (dead,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
            in_flight = sum(self._claimed.values())
            due_claimed = self._claimed_due(now)
            next_at = self._next_due()
        return QueueStats(
            pending=int(pending),
            due=int(due) - due_claimed,
            in_flight=in_flight,
            dead_letters=int(dead),
            oldest_enqueued_at=oldest,
            next_attempt_at=next_at,
        )

    def _claimed_due(self, now: float) -> int:
        """Events of the claimed chunks that count as due in the table (to subtract)."""
        if not self._claimed:
            return 0
        total = 0
        ids = list(self._claimed)
        for group in _groups(ids):
            (n,) = self._db.execute(
                "SELECT coalesce(sum(count), 0) FROM chunks WHERE next_attempt_at <= ?"
                f" AND id IN ({_marks(group)})",
                (now, *group),
            ).fetchone()
            total += n
        return int(total)

    @_storage
    def route_stats(self, now: float | None = None) -> list[RouteStats]:
        now = time.time() if now is None else now
        with self._lock:
            claimed = self._claimed
            totals: dict[int, list[Any]] = {}
            last: dict[int, tuple[str, int, float]] = {}
            errors: dict[tuple[int, str], list[float]] = {}
            for chunk_id, rid, count, enqueued, attempts, due, error in self._db.execute(
                "SELECT id, route_id, count, enqueued_at, attempts, next_attempt_at, last_error"
                " FROM chunks"
            ):
                row = totals.setdefault(rid, [0, 0, 0, None, 0])
                row[0] += count
                if chunk_id in claimed:
                    row[2] += count
                elif due <= now:
                    row[1] += count
                row[3] = enqueued if row[3] is None else min(row[3], enqueued)
                row[4] = max(row[4], attempts)
                if error is not None:
                    seen = errors.setdefault((rid, error), [0, due])
                    seen[0] += count
                    seen[1] = max(seen[1], due)
            # The chunks of one failed request share its error and its due time, so
            # the error of the latest due time is the route's last one.
            for (rid, error), (count, due) in errors.items():
                if rid not in last or due > last[rid][2]:
                    last[rid] = (error, int(count), due)
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
                for rid, (pending, due, in_flight, oldest, attempts) in sorted(totals.items())
            ]

    def _next_due(self) -> float | None:
        for _, at in self._unclaimed(
            "SELECT id, next_attempt_at FROM chunks ORDER BY next_attempt_at, id", ()
        ):
            return float(at)
        return None

    @_storage
    def next_due(self) -> float | None:
        """When the earliest unclaimed chunk becomes due (None when nothing waits)."""
        with self._lock:
            return self._next_due()

    @_storage
    def size_bytes(self) -> int | None:
        """Bytes of the pages in use (None in memory).

        Not the file's size: SQLite keeps freed pages in the file for reuse, so
        the file never shrinks, and a cap on it would refuse events forever
        once reached, even with the outbox drained.
        """
        if self.path == ":memory:":
            return None
        with self._lock:
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
            (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * size)

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
