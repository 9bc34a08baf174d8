"""``destination run``: deliver the events of NDJSON files (or stdin) and say what happened.

The command is the host API (:class:`~destination.host.Runtime`) fed from
files: lines are read one at a time and handed over in chunks, so memory
stays flat however large the input, and the outbox keeps whatever is not
yet acknowledged when the run ends. A line that is not JSON, not an object
or not a Segment event is counted and reported with its file and line
number; the run goes on. Without an access token the run delivers to the
embedded TikTok sandbox (started in-process, on loopback) and says so, which
is what makes the README's quickstart work on a fresh machine.

Exit codes, in order of precedence (docs/cli.md):
2 a configuration or usage error, before any event was read;
3 delivery stopped (an authentication or permission answer, no TikTok API at
the configured address, the dry-run output closed): the whole input is still
read and stored, and the events stay queued;
1 a dry or sandbox run ended with events undelivered (its outbox is temporary);
75 (EX_TEMPFAIL) events are still queued for a later run or
``destination outbox flush``, or the outbox could not store more (disk full);
0 nothing deliverable is left: invalid, unmatched and dead-lettered events
included (they are listed).

With a shared queue (``--queue nats://…`` or ``delivery.queue: nats://…``)
the run is a producer: it publishes and exits 0 once every publish is
acknowledged, delivering nothing (the queue is opened with ``deliver=False``),
unless ``--deliver`` is given; ``destination deliver`` workers deliver.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from .cli import int_between
from .errors import DestinationError, StorageError, kind_of

if TYPE_CHECKING:  # the engine, the host and the config load only when a run starts
    from .config import Config
    from .delivery.engine import DeliveryResult
    from .host import EventOutcome, Runtime

__all__ = ["SEGMENT_TYPES", "add_parser", "run"]

#: The event types of Segment's spec; anything else is a bad line.
SEGMENT_TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})
#: Events handed to the runtime at once (one outbox transaction each).
CHUNK = 500
#: Bad lines and invalid events reported one by one before only counting them.
SHOWN_PROBLEMS = 20

_UNKNOWN_TYPE = "not a Segment event: unknown type"

EXIT_OK, EXIT_UNDELIVERED, EXIT_CONFIG, EXIT_STOPPED, EXIT_QUEUED = 0, 1, 2, 3, 75


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="deliver the events of NDJSON files",
        description="Read Segment-spec events (one JSON object per line) from files or - "
        "(stdin), match them against the presets and deliver them. Without an access token "
        "(TIKTOK_ACCESS_TOKEN) the events go to an embedded local sandbox. A summary is "
        "printed on stderr.",
    )
    parser.add_argument("events", nargs="+", metavar="EVENTS", help="NDJSON file, or - for stdin")
    parser.add_argument("--config", metavar="FILE", help="configuration file (YAML)")
    parser.add_argument(
        "--presets",
        nargs="+",
        metavar="NAME|FILE",
        help="bundle names and preset/mapping files, layered in order (replaces the config's)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: print one JSON line per request on stdout (token redacted)",
    )
    mode.add_argument(
        "--sandbox", action="store_true", help="deliver to the embedded local sandbox"
    )
    parser.add_argument(
        "--batch-size",
        type=int_between("batch size", 1, 1000),
        metavar="N",
        help="events per request (1-1000)",
    )
    parser.add_argument("--outbox", metavar="PATH", help="outbox database (SQLite)")
    parser.add_argument(
        "--queue",
        metavar="URL",
        help="publish to a shared queue (nats://host:4222[,nats://…]) instead of the outbox; "
        "the run then only publishes, and `destination deliver` workers deliver",
    )
    parser.add_argument(
        "--deliver",
        action="store_true",
        help="with a shared queue: also deliver from it, like a normal run",
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep retrying at the end before leaving the rest queued "
        "(default: %(default)s); the run returns within this plus a second",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: only on a terminal)",
    )
    parser.set_defaults(handler=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86_400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"seconds must be between 0 and 86400, got {text}")
    return value


@dataclass
class Tally:
    """What the run saw and what became of it, for the summary."""

    lines: int = 0
    events: int = 0
    bad_lines: int = 0
    bad_reasons: Counter[str] = field(default_factory=Counter)
    shown: int = 0
    dead_reasons: Counter[str] = field(default_factory=Counter)
    #: where reading stopped because the outbox could not store (file:line), and why
    storage_stop: str | None = None
    #: events of the chunk the outbox refused (read, not stored)
    unstored: int = 0

    def on_result(self, result: DeliveryResult) -> None:
        """Count why events were dead-lettered (called on the engine's thread)."""
        if result.outcome.value == "delivered":
            return
        if len(self.dead_reasons) < 1000 or result.message in self.dead_reasons:
            self.dead_reasons[result.message] += 1


def run(args: argparse.Namespace) -> int:
    from .config import Config, load_config
    from .host import Runtime

    err = sys.stderr
    problem = _check_inputs(args.events)
    if problem:
        print(f"destination run: {problem}", file=err)
        return EXIT_CONFIG
    tally = Tally()
    with ExitStack() as stack:
        try:
            config = load_config(args.config) if args.config else Config()
            config, environ, note, temporary = _mode(config, args, stack)
            shared = _shared_url(config)
            producer = shared is not None and not args.deliver
            queue = _open_shared(config, deliver=not producer) if shared else None
            try:
                runtime = Runtime(
                    config,
                    queue=queue,
                    on_result=tally.on_result,
                    track_results=False,
                    environ=environ,
                )
            except BaseException:
                if queue is not None:
                    queue.close()
                raise
        except DestinationError as exc:  # configuration, settings, a locked outbox, no NATS
            print(f"destination run: {exc}", file=err)
            return EXIT_CONFIG
        if note:
            print(note, file=err)
        started = time.monotonic()
        deadline = None
        try:
            with _progress(args.progress, args.events) as progress:
                _read_all(runtime, args.events, tally, progress)
            # The whole --wait: retries as the backoff says, then close within what is left.
            deadline = time.monotonic() + (0.0 if producer else args.wait)
            if not tally.storage_stop and not producer:
                runtime.drain(args.wait)
        finally:
            left = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
            runtime.close(timeout=left)
        # Read after the engine closed: what it delivered while closing is counted.
        stats = runtime.stats(routes=True)
        elapsed = time.monotonic() - started
    _summary(stats, tally, elapsed, dry_run=args.dry_run, published=producer)
    if producer:
        return _published(stats, tally, config)
    return _verdict(stats, tally, config, temporary)


def _shared_url(config: Config) -> str | None:
    """The shared queue's URL when the config's queue is one (``--queue`` was applied)."""
    from .sharedqueue import is_shared

    return config.delivery.queue if is_shared(config) else None


def _open_shared(config: Config, *, deliver: bool) -> Any:
    from .sharedqueue import open_shared

    return open_shared(config, deliver=deliver)


def _published(stats: dict[str, Any], tally: Tally, config: Config) -> int:
    """A producer's verdict: 0 once everything read was published (every PubAck in),
    75 when publishing failed part way (the events before it are stored)."""
    from .delivery.factories import queue_name

    where = queue_name(config.delivery.queue)
    print(
        f"destination run: published {stats['accepted']:,} event(s) to {where}; "
        f"`destination deliver --queue {where}` workers deliver them",
        file=sys.stderr,
    )
    return EXIT_QUEUED if tally.storage_stop else EXIT_OK


def _read_all(runtime: Runtime, paths: list[str], tally: Tally, progress: Any) -> None:
    """Hand every good line to the runtime; stop reading only when the outbox cannot store.

    A stopped delivery does not stop the reading: the events are stored and
    wait for the fixed settings (exit 3 says so).
    """
    for chunk in _chunks(paths, tally, progress):
        try:
            outcomes = runtime.process_batch([event for _, _, event in chunk])
        except StorageError as exc:
            name, number, _ = chunk[0]
            tally.storage_stop = f"{exc}; stopped reading at {name}:{number}"
            tally.unstored = len(chunk)
            where = "the queue is back" if _shared_url(runtime.config) else "the outbox has room"
            print(
                f"destination run: {tally.storage_stop} (the events before it are stored; "
                f"run again from there once {where})",
                file=sys.stderr,
            )
            return
        _report_invalid(chunk, outcomes, tally)


def _verdict(stats: dict[str, Any], tally: Tally, config: Config, temporary: bool) -> int:
    """The exit code, by the precedence of docs/cli.md, with its cause on stderr."""
    err = sys.stderr
    pending = stats.get("pending") or 0
    if stats["stopped"]:
        print(f"destination run: {stats['stop_reason']}", file=err)
        return EXIT_STOPPED
    if pending and temporary:
        print(
            f"destination run: {pending} event(s) were not delivered before the end and go "
            "with this run's temporary outbox (raise --wait)",
            file=err,
        )
        return EXIT_UNDELIVERED
    if tally.storage_stop:
        return EXIT_QUEUED
    if pending:
        where: Any = config.delivery.outbox
        if _shared_url(config):
            from .delivery.factories import queue_name

            where = queue_name(config.delivery.queue)
        print(
            f"destination run: {pending:,} event(s) still queued in {where}: "
            "the next run or `destination outbox flush` sends them",
            file=err,
        )
        for line in _route_errors(stats):
            print(f"  {line}", file=err)
        return EXIT_QUEUED
    return EXIT_OK


def _route_errors(stats: dict[str, Any]) -> list[str]:
    """One line per route that still holds events: how many, and the last error."""
    lines = []
    for route in stats.get("routes") or ():
        label = f"{route['route']['instance']}/{route['route']['event_source']}"
        text = f"{label}: {route['pending']:,} queued"
        if route.get("last_error"):
            text += f"; last error: {route['last_error']} ({route['last_error_count']:,} events)"
        lines.append(text)
    return lines


def _check_inputs(paths: list[str]) -> str | None:
    if paths.count("-") > 1:
        return "'-' (stdin) can be given only once"
    if "-" in paths and sys.stdin is None:
        return "'-': stdin is closed"
    for path in paths:
        if path != "-" and not Path(path).is_file():
            return f"{path}: no such file"
    return None


def _mode(
    config: Config, args: argparse.Namespace, stack: ExitStack
) -> tuple[Config, dict[str, str], str, bool]:
    """Apply the command line to the config: presets, batch size, dry-run or sandbox.

    Returns the config, the environment to read settings from, a note for
    stderr and whether the outbox is temporary (removed when the run ends).
    """
    from .sandboxmode import SANDBOX_PIXEL, token_configured, use_sandbox, without_token

    environ = dict(os.environ)
    if args.presets:
        config = config.with_overrides(presets=tuple(args.presets))
    if args.batch_size:
        config = config.with_delivery(options={"batch_size": args.batch_size})
    if args.outbox:
        config = config.with_delivery(outbox=Path(args.outbox))
    if args.queue or "://" in config.delivery.queue:
        return _shared_mode(config, args, environ)
    if args.deliver:
        raise UsageError(
            "--deliver is for a shared queue: give --queue URL "
            "(or delivery.queue: nats://… in the config)"
        )
    note = ""
    temporary = args.dry_run or args.sandbox or not token_configured(config, environ)
    if temporary and args.outbox:
        # A real outbox holds events routed to TikTok: a dry run would mark them sent,
        # a sandbox run would send them with the sandbox's token. Never mix the two.
        raise UsageError(
            "--outbox is for deliveries to TikTok; a dry run or a sandbox run "
            "(no access token) uses a temporary outbox of its own"
        )
    if temporary:
        # Dry runs and sandbox runs leave nothing behind: their own outbox, removed at the end.
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="destination-run-"))
        config = config.with_delivery(outbox=Path(folder) / "outbox.db")
    if args.dry_run:
        settings = dict(config.settings)
        settings.setdefault("pixel_code", environ.get("TIKTOK_PIXEL_CODE") or SANDBOX_PIXEL)
        config = without_token(config.with_overrides(settings=settings), environ).with_delivery(
            executor="dry-run", executor_options={}, options={"linger": 0.0}
        )
    elif temporary:
        config, url = use_sandbox(config, environ, stack)
        why = "--sandbox" if args.sandbox else "no access token (TIKTOK_ACCESS_TOKEN)"
        note = (
            f"{why}: delivering to the embedded TikTok sandbox at {url} "
            "(nothing leaves this machine)"
        )
    return config, environ, note, temporary


def _shared_mode(
    config: Config, args: argparse.Namespace, environ: dict[str, str]
) -> tuple[Config, dict[str, str], str, bool]:
    """``--queue URL`` (or a config's ``delivery.queue: nats://…``): publish to the shared
    queue; deliver too only with ``--deliver`` (then an access token is required: the
    events are everyone's, so they never go to a sandbox of this run's own)."""
    from .sandboxmode import token_configured, without_token
    from .sharedqueue import with_queue

    if args.queue:
        config = with_queue(config, args.queue)
    for flag, given in (("--dry-run", args.dry_run), ("--sandbox", args.sandbox)):
        if given:
            raise UsageError(f"{flag} cannot be used with a shared queue (--queue)")
    if args.outbox:
        raise UsageError("--outbox is the SQLite outbox; a shared queue (--queue) has none")
    if args.deliver:
        if not token_configured(config, environ):
            raise UsageError(
                "--deliver sends the shared queue's events to TikTok: configure an access "
                "token (TIKTOK_ACCESS_TOKEN or settings.access_token)"
            )
        return config, environ, "", False
    # A producer sends nothing: the workers deliver with their own settings.
    return without_token(config, environ), environ, "", False


class UsageError(DestinationError):
    """Options that contradict each other."""


Line = tuple[str, int, Any]


def _open(path: str) -> IO[bytes]:
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def _lines(paths: list[str], tally: Tally, progress: Any) -> Iterator[Line]:
    """(file, line number, event) for every good line; bad lines are tallied and reported."""
    for path in paths:
        name = "<stdin>" if path == "-" else path
        handle = _open(path)
        try:
            for number, raw in enumerate(handle, start=1):
                progress.advance(len(raw))
                if not raw.strip():
                    continue
                tally.lines += 1
                event, problem = _parse(raw)
                if problem is not None:
                    _bad(tally, name, number, problem)
                    continue
                tally.events += 1
                yield name, number, event
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()


def _parse(raw: bytes) -> tuple[Any, str | None]:
    try:
        event = orjson.loads(raw)
    except ValueError:
        # The standard library's reading wins where orjson is stricter (NaN, integers
        # past 64 bits, lone surrogates), and its messages say where the line is broken.
        try:
            event = json.loads(raw)
        except UnicodeDecodeError:
            return None, "not UTF-8 text"
        except ValueError as exc:
            return None, f"not JSON: {exc.msg if hasattr(exc, 'msg') else exc}"
        except RecursionError:
            return None, "not JSON this program reads: nested too deeply"
    if not isinstance(event, dict):
        return None, f"not a JSON object (got {kind_of(event)})"
    kind = event.get("type")
    if not isinstance(kind, str):
        return None, "not a Segment event: no 'type'"
    if kind not in SEGMENT_TYPES:
        return None, f"{_UNKNOWN_TYPE} {kind[:40]!r}"
    return event, None


def _bad(tally: Tally, name: str, number: int, problem: str) -> None:
    tally.bad_lines += 1
    # Counted without what differs per line (where the JSON broke, which type), so the
    # counter holds a handful of reasons however many bad lines there are.
    reason = problem
    if problem.startswith("not JSON"):
        reason = problem.split(":")[0]
    elif problem.startswith(_UNKNOWN_TYPE):
        reason = _UNKNOWN_TYPE
    tally.bad_reasons[reason] += 1
    _show(tally, f"{name}:{number}: {problem}")


def _show(tally: Tally, message: str) -> None:
    tally.shown += 1
    if tally.shown <= SHOWN_PROBLEMS:
        print(message, file=sys.stderr)
    elif tally.shown == SHOWN_PROBLEMS + 1:
        print("… (further problems are only counted; see the summary)", file=sys.stderr)


def _chunks(paths: list[str], tally: Tally, progress: Any) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for line in _lines(paths, tally, progress):
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _report_invalid(chunk: list[Line], outcomes: list[EventOutcome], tally: Tally) -> None:
    for (name, number, _), outcome in zip(chunk, outcomes, strict=True):
        for error in outcome.errors:
            _show(tally, f"{name}:{number}: {error}")


class _NoProgress:
    def advance(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Progress:
    """A rich progress bar over the bytes of the input files, on stderr."""

    def __init__(self, paths: list[str], *, force: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

        total = None if "-" in paths else sum(Path(p).stat().st_size for p in paths)
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            # --progress always draws even when stderr is not a terminal (a CI log).
            console=Console(file=sys.stderr, force_terminal=force or None),
            transient=True,
        )
        self._task = self._progress.add_task("reading events", total=total)
        self._pending = 0

    def advance(self, n: int) -> None:
        self._pending += n
        if self._pending >= 65536:
            self._progress.advance(self._task, self._pending)
            self._pending = 0

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.advance(self._task, self._pending)
        self._progress.stop()


def _progress(mode: str, paths: list[str]) -> _Progress | _NoProgress:
    show = mode == "always" or (mode == "auto" and sys.stderr.isatty())
    return _Progress(paths, force=mode == "always") if show else _NoProgress()


def _summary(
    stats: dict[str, Any], tally: Tally, elapsed: float, *, dry_run: bool, published: bool = False
) -> None:
    from rich.table import Table

    table = Table(title="destination run", show_header=False, title_justify="left")
    table.add_column("what", no_wrap=True, overflow="ellipsis", max_width=64)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_row("lines read", f"{tally.lines:,}")
    table.add_row("events", f"{tally.events:,}")
    table.add_row("bad lines", f"{tally.bad_lines:,}")
    for reason, count in tally.bad_reasons.most_common(5):
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("matched", f"{stats['matched']:,}")
    for preset, count in sorted(stats["matched_by_preset"].items(), key=lambda kv: -kv[1]):
        table.add_row(f"  {preset}", f"{count:,}")
    table.add_row("not matched", f"{tally.events - stats['matched']:,}")
    if tally.storage_stop:
        table.add_row("not stored (outbox)", f"{tally.unstored:,}")
    table.add_row("invalid", f"{stats['invalid']:,}")
    for reason, count in list(stats["invalid_reasons"].items())[:5]:
        table.add_row(f"  {_short(reason)}", f"{count:,}")
    if published:
        # A producer delivers nothing: what waits in the shared queue is everyone's.
        table.add_row("published", f"{stats['accepted']:,}")
        _summary_end(table, stats, tally, elapsed)
        return
    table.add_row("written (dry run)" if dry_run else "delivered", f"{stats['delivered']:,}")
    table.add_row("dead-lettered", f"{stats['dead_lettered']:,}")
    for reason, count in tally.dead_reasons.most_common(5):
        table.add_row(f"  {_short(reason)}", f"{count:,}")
    table.add_row("still queued", f"{stats.get('pending', 0):,}")
    for route in stats.get("routes") or ():
        if route.get("last_error"):
            label = f"{route['route']['instance']}/{route['route']['event_source']}"
            table.add_row(
                f"  {label}: {_short(route['last_error'])}", f"{route['last_error_count']:,}"
            )
    _summary_end(table, stats, tally, elapsed)


def _summary_end(table: Any, stats: dict[str, Any], tally: Tally, elapsed: float) -> None:
    from rich.console import Console

    if stats.get("storage_error") or tally.storage_stop:
        table.add_row(f"  outbox: {_short(tally.storage_stop or stats['storage_error'])}", "")
    table.add_row("seconds", f"{elapsed:,.1f}")
    Console(file=sys.stderr).print(table)


def _short(text: str, limit: int = 64) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
