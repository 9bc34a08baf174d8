"""``destination outbox``: what an operator needs when events wait or die.

status shows what waits and what is dead; dead-letters lists the refused
events with the destination's reason; replay puts them back after a fix;
flush sends everything now (e.g. after an outage, before a deploy). Each
handler returns an exit code and reports a problem in one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DestinationError
from ..plugins import collect_registry
from .engine import DeliveryEngine, DeliveryOptions
from .factories import make_executor
from .outbox import DEFAULT_OUTBOX_PATH, SqliteQueue

__all__ = ["DEFAULT_OUTBOX_PATH", "dead_letters", "flush", "replay", "status"]


def _fail(message: str, code: int = 1) -> int:
    print(f"destination outbox: {message}", file=sys.stderr)
    return code


def _open(path_text: str, *, deliver: bool = False) -> SqliteQueue:
    path = Path(path_text)
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path} (use --outbox PATH)")
    return SqliteQueue(path, deliver=deliver)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status(args: argparse.Namespace) -> int:
    try:
        queue = _open(args.outbox)
    except (FileNotFoundError, DestinationError) as exc:
        return _fail(str(exc))
    try:
        stats = queue.stats()
    finally:
        queue.close()
    if args.json:
        print(json.dumps({"outbox": args.outbox, **stats.as_dict()}))
        return 0
    now = time.time()
    oldest = None if stats.oldest_enqueued_at is None else now - stats.oldest_enqueued_at
    retry_in = None
    if stats.next_attempt_at is not None and stats.next_attempt_at > now:
        retry_in = stats.next_attempt_at - now
    print(f"outbox        {args.outbox}")
    print(f"pending       {stats.pending} (due now {stats.due}, being sent {stats.in_flight})")
    print(f"oldest        {_ago(oldest)}")
    print(f"next retry in {_ago(retry_in)}")
    print(f"dead letters  {stats.dead_letters}")
    return 0


def dead_letters(args: argparse.Namespace) -> int:
    try:
        queue = _open(args.outbox)
    except (FileNotFoundError, DestinationError) as exc:
        return _fail(str(exc))
    try:
        letters = queue.dead_letters(args.limit)
    finally:
        queue.close()
    if args.json:
        print(json.dumps([d.as_dict() for d in letters], ensure_ascii=False))
        return 0
    if not letters:
        print("no dead letters")
    for d in letters:
        code = "-" if d.code is None else str(d.code)
        print(f"{d.event_id}\t{code}\t{d.route.event_source_id}\t{d.reason}")
    return 0


def replay(args: argparse.Namespace) -> int:
    if args.all == bool(args.event_ids):
        return _fail("replay needs --all or one or more EVENT_IDs (not both)", 2)
    try:
        queue = _open(args.outbox)
    except (FileNotFoundError, DestinationError) as exc:
        return _fail(str(exc))
    try:
        count = queue.replay(None if args.all else args.event_ids)
    finally:
        queue.close()
    print(f"replayed {count} dead letter{'s' if count != 1 else ''}")
    if not args.all and count < len(set(args.event_ids)):
        return _fail("some EVENT_IDs are not dead letters")
    return 0


def flush(args: argparse.Namespace) -> int:
    try:
        queue = _open(args.outbox, deliver=True)
    except (FileNotFoundError, DestinationError) as exc:
        return _fail(str(exc))
    try:
        registry = collect_registry()
        destination = registry.destinations.get(args.destination)
        if destination is None:
            known = ", ".join(sorted(registry.destinations)) or "none"
            raise _Usage(f"unknown destination {args.destination!r} (registered: {known})")
        settings: Any = destination.load_settings({}, os.environ)
        executor = make_executor(args.executor)
    except (_Usage, DestinationError) as exc:
        queue.close()
        return _fail(str(exc).replace("\n", " "), 2)
    queue.reschedule()
    engine = DeliveryEngine(
        destination, settings, queue=queue, executor=executor, options=DeliveryOptions(linger=0.0)
    )
    try:
        engine.flush(args.timeout)
        stats = engine.stats()
    finally:
        engine.close(timeout=5.0)
    print(
        f"delivered {stats['delivered']}, retried {stats['retried']}, "
        f"dead-lettered {stats['dead_lettered']}, still pending {stats['pending']}"
    )
    if stats["stopped"]:
        return _fail(str(stats["stop_reason"]))
    if stats["pending"]:
        return _fail(f"{stats['pending']} events still pending (they stay queued)")
    return 0


class _Usage(Exception):
    """A wrong name on the command line."""
