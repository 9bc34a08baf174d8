"""``destination outbox``: what an operator needs when events wait or die.

status shows what waits (per route, with the last error) and what is dead
(by reason); dead-letters lists the refused events with the destination's
reason; replay puts them back after a fix; flush sends everything now (e.g.
after an outage, before a deploy); purge removes events for good. Every
subcommand finds the outbox from --outbox, else the --config file's
delivery.outbox, else .destination/outbox.sqlite3. Each handler returns an
exit code and reports a problem in one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, DestinationError, SettingsError
from .outbox import (
    DEFAULT_OUTBOX_PATH,
    OutboxLockedError,
    QueueStats,
    RouteStats,
    SqliteQueue,
)
from .queue import Queue

if TYPE_CHECKING:  # the config and the engine load only when a subcommand runs
    from ..config import Config

__all__ = [
    "DEFAULT_OUTBOX_PATH",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_QUEUED",
    "EXIT_STOPPED",
    "EXIT_USAGE",
    "dead_letters",
    "flush",
    "parse_duration",
    "purge",
    "replay",
    "status",
]

#: 0 done; 1 the outbox cannot be read or operated on (missing, damaged, in use) or the
#: operator said no; 2 configuration or usage; 3 delivery stopped; 75 events still queued
#: (EX_TEMPFAIL: try again later).
EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_STOPPED, EXIT_QUEUED = 0, 1, 2, 3, 75
#: dead-letter reasons shown by ``status`` as text (``--json`` lists all)
TOP_REASONS = 10


class _Usage(Exception):
    """A wrong command line or configuration: exit 2."""


def _fail(message: str, code: int = EXIT_PROBLEM) -> int:
    print(f"destination outbox: {message}", file=sys.stderr)
    return code


def _one_line(exc: BaseException) -> str:
    """An error's message on one line (a config file's problems joined with '; ')."""
    if isinstance(exc, SettingsError):
        return "invalid settings: " + "; ".join(exc.problems)
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _config(args: argparse.Namespace) -> Config:
    from ..config import Config, load_config

    try:
        return load_config(args.config) if args.config else Config()
    except ConfigurationError as exc:
        raise _Usage(_one_line(exc)) from None


def _outbox_path(args: argparse.Namespace, config: Config) -> Path:
    """``--outbox``, else the config's outbox, else the default (the config's default)."""
    if args.outbox:
        return Path(args.outbox)
    delivery = config.delivery
    if delivery.queue != "sqlite":
        from .factories import queue_name

        raise _Usage(
            f"{config.source}: delivery.queue is {queue_name(delivery.queue)!r}; the outbox commands "
            "work on the SQLite outbox (pass --outbox PATH)"
        )
    # The host lets queue_options.path win; find the same file it delivers from.
    return Path(delivery.queue_options.get("path", delivery.outbox))


class _Shared:
    """A shared queue (``--queue URL``, or a config's ``delivery.queue: nats://…``)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __str__(self) -> str:
        from .factories import queue_name

        return queue_name(self.config.delivery.queue)


#: where the commands work: the SQLite outbox's file, or a shared queue
Target = Path | _Shared


def _locate(args: argparse.Namespace) -> tuple[Config, Target]:
    """``--queue URL``, else ``--outbox``, else the config's queue: a shared one when it is
    a URL, else its outbox."""
    from ..sharedqueue import is_shared, with_queue

    config = _config(args)
    queue = getattr(args, "queue", None)
    if queue:
        if args.outbox:
            raise _Usage("--queue and --outbox name two queues: give one")
        try:
            config = with_queue(config, queue)
        except ConfigurationError as exc:
            raise _Usage(_one_line(exc)) from None
        return config, _Shared(config)
    if not args.outbox and is_shared(config):
        return config, _Shared(config)
    return config, _outbox_path(args, config)


def _open(path: Target, *, deliver: bool = False) -> Queue:
    """An existing outbox (never a new one), or the shared queue (``deliver=False``: a view
    that claims nothing); ConfigurationError or StorageError, one line."""
    if isinstance(path, _Shared):
        from ..sharedqueue import open_shared

        return open_shared(path.config, deliver=deliver)
    try:
        return SqliteQueue(path, deliver=deliver, create=False)
    except OutboxLockedError:
        raise ConfigurationError(
            f"another process is delivering from {path} (run, serve or flush): stop it first"
        ) from None


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 3 * 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _flat(text: str) -> str:
    return " ".join(text.split())


def status(args: argparse.Namespace) -> int:
    try:
        _, path = _locate(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    now = time.time()
    try:
        queue = _open(path)
        try:
            stats = queue.stats(now)
            routes = queue.route_stats(now)
            reasons = queue.dead_letter_reasons()
            # The embedded outbox's deliverer holds its claims in memory: say it runs.
            elsewhere = getattr(queue, "delivering_elsewhere", None)
            deliverer = elsewhere() if elsewhere is not None else None
        finally:
            queue.close()
    except DestinationError as exc:  # missing, empty, damaged, unreadable
        return _fail(_one_line(exc))
    if args.json:
        data = {
            "outbox": str(path),
            **stats.as_dict(),
            "deliverer_running": deliverer,
            "routes": [r.as_dict() for r in routes],
            "dead_letter_reasons": [
                {"reason": reason, "code": code, "count": count} for reason, code, count in reasons
            ],
        }
        print(json.dumps(data, ensure_ascii=False))
        return EXIT_OK
    for line in _status_lines(path, stats, routes, reasons, now):
        print(line)
    if deliverer:
        print(
            "\na process is delivering from this outbox (run, serve or flush): what it is "
            "sending now is in its memory, counted above as due, not as being sent"
        )
    return EXIT_OK


def _status_lines(
    path: Target,
    stats: QueueStats,
    routes: Sequence[RouteStats],
    reasons: Sequence[tuple[str, int | None, int]],
    now: float,
) -> list[str]:
    oldest = None if stats.oldest_enqueued_at is None else now - stats.oldest_enqueued_at
    retry_in = None
    if stats.next_attempt_at is not None and stats.next_attempt_at > now:
        retry_in = stats.next_attempt_at - now
    attempts = max((r.max_attempts for r in routes), default=0)
    lines = [
        f"{'queue ' if isinstance(path, _Shared) else 'outbox'}        {path}",
        f"pending       {stats.pending:,} (due now {stats.due:,}, being sent {stats.in_flight:,})",
        f"oldest        {_ago(oldest)}",
        f"max attempts  {attempts:,}",
        f"next retry in {_ago(retry_in)}",
        f"dead letters  {stats.dead_letters:,}",
    ]
    if routes:
        lines += ["", "routes"]
        for r in routes:
            lines += _route_lines(r, now)
    if reasons:
        lines += ["", "dead letters by reason (count, code, reason)"]
        for reason, code, count in reasons[:TOP_REASONS]:
            lines.append(f"  {count:>9,}  {'-' if code is None else code:<5}  {_flat(reason)}")
        if len(reasons) > TOP_REASONS:
            rest = len(reasons) - TOP_REASONS
            lines.append(f"  ... and {_plural(rest, 'more reason')} (--json lists all)")
    return lines


def _route_lines(r: RouteStats, now: float) -> list[str]:
    oldest = None if r.oldest_enqueued_at is None else now - r.oldest_enqueued_at
    lines = [
        f"  {r.route.label}: pending {r.pending:,} (due now {r.due:,}, being sent "
        f"{r.in_flight:,}), oldest {_ago(oldest)}, attempts {r.max_attempts:,}"
    ]
    if r.last_error:
        lines.append(f"    {_last_error(r)}")
    return lines


def _last_error(r: RouteStats) -> str:
    return f"last error: {_flat(r.last_error or '')} ({_plural(r.last_error_count, 'event')})"


def dead_letters(args: argparse.Namespace) -> int:
    try:
        _, path = _locate(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        queue = _open(path)
        try:
            letters = queue.dead_letters(args.limit)
        finally:
            queue.close()
    except DestinationError as exc:
        return _fail(_one_line(exc))
    if args.json:
        print(json.dumps([d.as_dict() for d in letters], ensure_ascii=False))
        return EXIT_OK
    if not letters:
        print("no dead letters")
    for d in letters:
        code = "-" if d.code is None else str(d.code)
        print(f"{d.event_id}\t{code}\t{d.route.label}\t{_flat(d.reason)}")
    return EXIT_OK


def replay(args: argparse.Namespace) -> int:
    if args.all == bool(args.event_ids):
        return _fail("replay needs --all or one or more EVENT_IDs (not both)", EXIT_USAGE)
    try:
        _, path = _locate(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        queue = _open(path)
        try:
            count = queue.replay(None if args.all else args.event_ids)
        finally:
            queue.close()
    except DestinationError as exc:
        return _fail(_one_line(exc))
    print(f"replayed {_plural(count, 'dead letter')}")
    if not args.all and count < len(set(args.event_ids)):
        return _fail("some EVENT_IDs are not dead letters")
    return EXIT_OK


# -- flush --------------------------------------------------------------------------------


def flush(args: argparse.Namespace) -> int:
    from .engine import DeliveryEngine

    timeout = args.timeout
    if math.isnan(timeout) or timeout < 0:
        return _fail(f"--timeout must be a number of seconds >= 0, got {timeout}", EXIT_USAGE)
    try:
        config, path = _locate(args)
        destination, settings = _destination(args, config)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        queue = _open(path, deliver=True)
    except DestinationError as exc:
        return _fail(_one_line(exc))
    try:
        queue.reschedule()
        executor = _executor(args, config)
        options = dataclasses.replace(config.delivery.options, linger=0.0)
        engine = DeliveryEngine(
            destination, settings, queue=queue, executor=executor, options=options
        )
    except _Usage as exc:
        queue.close()
        return _fail(str(exc), EXIT_USAGE)
    except DestinationError as exc:
        queue.close()
        return _fail(_one_line(exc))
    try:
        drained = engine.drain(timeout)
    finally:
        engine.close(timeout=5.0)
    stats = engine.stats()  # after close: the figures as the engine stopped
    pending = stats.get("pending", 0)
    print(
        f"delivered {stats['delivered']:,}, retried {stats['retried']:,}, "
        f"dead-lettered {stats['dead_lettered']:,}, still pending {pending:,}"
    )
    if stats["stopped"]:
        return _fail(_flat(str(stats["stop_reason"])), EXIT_STOPPED)
    if drained and not pending:
        return EXIT_OK
    return _still_queued(path, pending)


def _destination(args: argparse.Namespace, config: Config) -> tuple[Any, Any]:
    """The destination (``--destination``, else the config's) and its settings: the
    config's, the environment overriding them."""
    from ..plugins import collect_registry

    name = args.destination or config.destination
    registry = collect_registry()
    destination = registry.destinations.get(name)
    if destination is None:
        known = ", ".join(sorted(registry.destinations)) or "none"
        raise _Usage(f"unknown destination {name!r} (registered: {known})")
    try:
        settings = destination.load_settings(config.settings, os.environ)
    except SettingsError as exc:
        raise _Usage(_one_line(config.settings_error(exc))) from None
    except ConfigurationError as exc:
        raise _Usage(_one_line(exc)) from None
    return destination, settings


def _executor(args: argparse.Namespace, config: Config) -> Any:
    from .factories import make_executor

    name = args.executor or config.delivery.executor
    # The config's executor options belong to the config's executor only.
    options = dict(config.delivery.executor_options) if name == config.delivery.executor else {}
    try:
        return make_executor(name, **options)
    except ConfigurationError as exc:
        raise _Usage(_one_line(exc)) from None


def _still_queued(path: Target, pending: int) -> int:
    """Name what is left, and the last error of each route (exit 75)."""
    routes: list[RouteStats] = []
    try:
        queue = _open(path)
        try:
            routes = queue.route_stats()
            pending = sum(r.pending for r in routes)
        finally:
            queue.close()
    except DestinationError:
        pass  # the counts the engine saw are still worth saying
    for r in routes:
        if r.pending:
            error = f", {_last_error(r)}" if r.last_error else ""
            _fail(f"{r.route.label}: {_plural(r.pending, 'event')} waiting{error}")
    return _fail(
        f"{_plural(pending, 'event')} still queued in {path}: they stay queued for the next "
        "run, serve or flush",
        EXIT_QUEUED,
    )


# -- purge --------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``12h``, ``7d`` or a bare number of seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (like 90s, 30m, 12h or 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def purge(args: argparse.Namespace) -> int:
    chosen = [args.all, args.event_ids is not None, args.older_than is not None]
    if sum(chosen) != 1:
        return _fail(
            "purge needs exactly one of --all, --event-id ID..., --older-than DURATION",
            EXIT_USAGE,
        )
    older_than = None
    if args.older_than is not None:
        try:
            older_than = parse_duration(args.older_than)
        except ValueError as exc:
            return _fail(f"--older-than: {exc}", EXIT_USAGE)
    event_ids: list[str] | None = args.event_ids
    if event_ids is not None and not event_ids:
        return _fail("--event-id needs one or more IDs", EXIT_USAGE)
    interactive = not args.yes and _stdin_is_a_terminal()
    if not args.yes and not interactive:
        return _fail(
            "purge removes events for good: pass --yes to confirm (stdin is not a terminal)",
            EXIT_USAGE,
        )
    try:
        _, path = _locate(args)
    except _Usage as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        # deliver=True: the outbox's delivering lock, so nothing is purged under a running
        # delivery. A shared queue has no such lock: a view that claims nothing.
        queue = _open(path, deliver=not isinstance(path, _Shared))
        try:
            if interactive:
                waiting, dead = _matching(queue, event_ids, older_than)
                if (waiting or dead) and not _confirm(
                    f"purge {_plural(waiting, 'waiting event')} and "
                    f"{_plural(dead, 'dead letter')} from {path}? [y/N] "
                ):
                    return _fail("purge aborted: nothing removed")
            waiting, dead = queue.purge(event_ids=event_ids, older_than=older_than)
        finally:
            queue.close()
    except DestinationError as exc:
        return _fail(_one_line(exc))
    print(f"purged {waiting:,} waiting event(s) and {dead:,} dead letter(s)")
    return EXIT_OK


def _stdin_is_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed
        return False


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def _matching(
    queue: Queue, event_ids: Sequence[str] | None, older_than: float | None
) -> tuple[int, int]:
    """(waiting, dead) events ``purge`` would remove, counted without removing any (the
    delivering lock held by the caller keeps the waiting ones from leaving meanwhile)."""
    return queue.purge(event_ids=event_ids, older_than=older_than, dry_run=True)
