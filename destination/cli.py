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
    _add_outbox(sub)
    return parser


def _add_outbox(subparsers: Any) -> None:
    """``destination outbox status|dead-letters|replay|flush``: inspect and operate the outbox."""
    from .delivery import commands

    outbox = subparsers.add_parser(
        "outbox", help="inspect and operate the delivery outbox", description=commands.__doc__
    )
    actions = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--outbox",
        metavar="PATH",
        default=str(commands.DEFAULT_OUTBOX_PATH),
        help="outbox database (default: %(default)s)",
    )
    status = actions.add_parser("status", parents=[common], help="what waits, what is dead")
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
        "flush", parents=[common], help="send everything now (settings from the environment)"
    )
    flush.add_argument("--destination", default="tiktok", help="destination (default: tiktok)")
    flush.add_argument("--executor", default="http", help="executor (default: http)")
    flush.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")
    flush.set_defaults(handler=commands.flush)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
