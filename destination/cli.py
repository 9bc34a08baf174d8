"""The ``destination`` command: one subcommand per job, each a thin shell over the library.

Subcommands parse arguments, call library functions and turn errors into a
message on stderr and an exit code; they never print a traceback for bad
input or bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="destination",
        description="Deliver Segment-spec CDP events to the TikTok Events API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_lint(sub)
    _add_presets(sub)
    _add_outbox(sub)
    _add_sandbox(sub)
    _add_serve(sub)
    _add_deliver(sub)
    return parser


def _add_run(subparsers: Any) -> None:
    from . import run

    run.add_parser(subparsers)


def _add_deliver(subparsers: Any) -> None:
    from . import deliver

    deliver.add_parser(subparsers)


def _add_serve(subparsers: Any) -> None:
    from .serve import command

    command.add_parser(subparsers)


def _add_lint(subparsers: Any) -> None:
    lint = subparsers.add_parser(
        "lint",
        help="check preset and mapping files",
        description="Check preset and mapping YAML files (or folders of them); "
        "print every problem as path:line:col: error|warning: message; exit 1 on any error.",
    )
    lint.add_argument("paths", nargs="+", metavar="PATH", help="a file or a folder")
    lint.add_argument("--format", choices=("text", "json"), default="text")
    lint.add_argument(
        "--presets",
        nargs="+",
        default=["default"],
        metavar="NAME",
        help="built-in bundles the preset files layer over (default: default)",
    )
    lint.set_defaults(handler=_run_lint)


def _run_lint(args: argparse.Namespace) -> int:
    from .errors import ConfigurationError
    from .lint import format_json, format_text, lint_paths

    try:
        report = lint_paths(args.paths, bundles=args.presets)
    except ConfigurationError as exc:
        print(f"destination lint: {exc}", file=sys.stderr)
        return 1
    print(format_json(report) if args.format == "json" else format_text(report))
    return report.exit_code


def _add_presets(subparsers: Any) -> None:
    presets = subparsers.add_parser(
        "presets",
        help="list the loaded presets",
        description="List presets after layering bundles and user files (default: the "
        "'default' bundle).",
    )
    presets.add_argument(
        "--presets",
        nargs="+",
        default=[],
        metavar="NAME|FILE",
        help="bundle names and preset/mapping files, layered in order",
    )
    presets.add_argument("--json", action="store_true", help="print JSON")
    presets.set_defaults(handler=_run_presets)


def _run_presets(args: argparse.Namespace) -> int:
    import json

    from .errors import ConfigurationError
    from .mapping import MappingFunctions, compile_expression
    from .plugins import collect_registry
    from .presets import resolve_presets

    try:
        registry = collect_registry()
        config = resolve_presets(args.presets, registry=registry)
        functions = MappingFunctions.from_registry(registry)
        rows = []
        for preset in config.presets:
            text = config.mapping_for(preset).get("event", "")
            constant = compile_expression(text, functions).constant if text else None
            rows.append(_preset_row(preset, constant if isinstance(constant, str) else text))
    except ConfigurationError as exc:
        print(f"destination presets: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "on " if row["enabled"] else "off"
        print(
            f"[{state}] {row['name']} ({row['bundle']}): {row['trigger']} "
            f"-> {row['action']} {row['event']}"
        )
    return 0


def _preset_row(preset: Any, event: str) -> dict[str, Any]:
    return {
        "name": preset.name,
        "bundle": preset.bundle,
        "enabled": preset.enabled,
        "trigger": preset.trigger,
        "action": preset.action,
        "event": event,
        "description": preset.description,
    }


def _add_outbox(subparsers: Any) -> None:
    """``destination outbox status|dead-letters|replay|flush|purge``: inspect and operate it."""
    from .delivery import commands

    outbox = subparsers.add_parser(
        "outbox",
        help="inspect and operate the delivery outbox",
        description=(commands.__doc__ or "").replace("``", ""),
    )
    actions = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--outbox",
        metavar="PATH",
        default=None,
        help="outbox database (default: the config's delivery.outbox, else "
        f"{commands.DEFAULT_OUTBOX_PATH})",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="configuration file: its outbox, destination, settings and delivery options",
    )
    common.add_argument(
        "--queue",
        metavar="URL",
        default=None,
        help="a shared queue instead of the outbox: nats://host:4222[,nats://…] (default: the "
        "config's delivery.queue when it is a URL)",
    )
    status = actions.add_parser(
        "status", parents=[common], help="what waits (per route, last error), what is dead"
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(handler=commands.status)
    dead = actions.add_parser("dead-letters", parents=[common], help="list dead letters")
    dead.add_argument("--json", action="store_true", help="a JSON array, items included")
    dead.add_argument("--limit", type=int, default=None, metavar="N", help="at most N")
    dead.set_defaults(handler=commands.dead_letters)
    replay = actions.add_parser("replay", parents=[common], help="queue dead letters again")
    replay.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.set_defaults(handler=commands.replay)
    flush = actions.add_parser(
        "flush",
        parents=[common],
        help="send everything now (settings from the config, the environment overriding)",
        description="Send every waiting event now, retrying as the backoff says, for up to "
        "--timeout seconds. Exit 0 when nothing is left, 2 for a configuration or usage "
        "problem, 3 when delivery stopped (token, permission, wrong URL), 75 when events "
        "are still queued.",
    )
    flush.add_argument(
        "--destination", default=None, help="destination (default: the config's, else tiktok)"
    )
    flush.add_argument(
        "--executor", default=None, help="executor (default: the config's, else http)"
    )
    flush.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")
    flush.set_defaults(handler=commands.flush)
    purge = actions.add_parser(
        "purge",
        parents=[common],
        help="remove waiting events and dead letters for good",
        usage="%(prog)s (--all | --event-id ID [ID ...] | --older-than DURATION) [--yes] "
        "[--outbox PATH | --queue URL] [--config FILE]",
        description="Remove the waiting events and dead letters chosen by exactly one of "
        "--all, --event-id or --older-than. Refused while a run, serve or flush delivers "
        "from the outbox. Asks first on a terminal; elsewhere --yes is required.",
    )
    purge.add_argument("--all", action="store_true", help="everything in the outbox")
    purge.add_argument(
        "--event-id", dest="event_ids", nargs="+", default=None, metavar="ID", help="these events"
    )
    purge.add_argument(
        "--older-than",
        default=None,
        metavar="DURATION",
        help="accepted more than DURATION ago: 90s, 30m, 12h, 7d (a bare number: seconds)",
    )
    purge.add_argument("--yes", action="store_true", help="do not ask")
    purge.set_defaults(handler=commands.purge)


def int_between(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, else a message naming ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} {value} is not between {low} and {high}")
        return value

    return parse


#: A TCP port; 0 asks for any free one.
port_number = int_between("port", 0, 65535)


def _add_sandbox(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run the local TikTok Events API emulator",
        description="Run a local emulator of TikTok's POST /open_api/v1.3/event/track/ "
        "until Ctrl-C or SIGTERM. See docs/sandbox.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port_number, default=8077, help="port (0: any free port)")
    parser.add_argument(
        "--token", action="append", help="accepted Access-Token (repeatable; default sandbox-token)"
    )
    parser.add_argument(
        "--pixel", action="append", help="known event_source_id (repeatable; default: any)"
    )
    parser.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="fault to inject (repeatable)"
    )
    parser.add_argument("--seed", type=int, help="seed for probabilistic faults")
    parser.add_argument(
        "--rate-limit", type=float, metavar="RPS", help="requests per second per pixel (40100)"
    )
    parser.add_argument(
        "--keep-events", type=int, default=100_000, metavar="N", help="events kept for inspection"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.set_defaults(handler=_run_sandbox)


def _run_sandbox(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from .errors import ConfigurationError
    from .tiktok.sandbox import SANDBOX_TOKEN, FaultPlan, Sandbox

    try:
        box = Sandbox(
            args.host,
            args.port,
            tokens=args.token or [SANDBOX_TOKEN],
            pixels=args.pixel,
            faults=FaultPlan.parse(args.fault, seed=args.seed) if args.fault else None,
            rate_limit_rps=args.rate_limit,
            keep_events=max(0, args.keep_events),
        ).start()
    except (ConfigurationError, ValueError) as exc:
        print(f"destination sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"destination sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    print(f"TikTok Events API sandbox listening on {box.url}")
    print(f"  endpoint:     POST {box.track_url}")
    print(f"  access token: {box.token}")
    print(f"  pixels:       {', '.join(sorted(box.pixels)) if box.pixels else 'any'}")
    if args.fault or args.rate_limit:
        limit = f"; rate limit {args.rate_limit:g}/s per pixel" if args.rate_limit else ""
        print(f"  faults:       {' '.join(args.fault) or 'none'}{limit}")
    print(f"  inspect:      GET {box.url}/sandbox/stats, /sandbox/events; POST /sandbox/reset")
    print("Press Ctrl-C to stop.", flush=True)

    log = logging.getLogger("destination.sandbox")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    if not args.quiet:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        box.stop()
        log.removeHandler(handler)
    stats = box.stats()
    print(f"sandbox stopped: {stats['requests']} requests, {stats['events']} events accepted")
    return 0


#: Commands that turn a stream of events into items for as long as they run.
_STREAMING_COMMANDS = frozenset({"run", "serve"})


def _tune_gc() -> None:
    """Fewer cyclic-GC passes for a process that only streams events (its own process).

    Each event allocates dozens of short-lived dicts and lists without cycles;
    at CPython's default (a young collection every 700 allocations) the
    collector walked the live batch about every ten events, a fifth of the
    per-event cost. What is loaded by now (plugins, compiled presets,
    schemas) is frozen out of every collection. A library host is left alone:
    these are process-wide settings, so only the CLI's own processes change them.
    """
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def main(argv: Sequence[str] | None = None, *, tune_gc: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    if tune_gc and args.command in _STREAMING_COMMANDS:
        _tune_gc()
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def console_main() -> int:
    """The ``destination`` console script: :func:`main` in a process of its own."""
    return main(tune_gc=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
