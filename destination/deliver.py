"""``destination deliver``: a delivery-only worker of the shared queue (issue 18).

Any number of workers, on any machines, pull from the one durable consumer
of the shared queue (``--queue nats://…`` or the config's ``delivery.queue``):
each fetches up to a batch, sends it, then acks, naks with the backoff as
delay, or dead-letters. Destination, settings and delivery options come from
the config and the environment exactly as for ``run``; unlike ``run`` there
is no sandbox fallback, a worker without an access token refuses to start.
It runs until SIGTERM or SIGINT, then drains gracefully (what it holds is
sent within ``delivery.shutdown_timeout``; the rest is given back to the
queue for the other workers) and prints one summary line.

Exit codes (docs/cli.md): 0 stopped by a signal; 2 a configuration or usage
error, or the queue unreachable at start-up; 3 delivery was stopped (token
or pixel refused, no TikTok API at the address) when the worker exited.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from .cli import int_between
from .errors import DestinationError

__all__ = ["add_parser", "deliver"]

EXIT_OK, EXIT_CONFIG, EXIT_STOPPED = 0, 2, 3


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deliver",
        help="deliver from a shared queue until SIGTERM (a worker)",
        description="Deliver the events of a shared queue (NATS JetStream) as one worker of "
        "its consumer group, until SIGTERM or Ctrl-C; then drain within "
        "delivery.shutdown_timeout and print a summary. Settings come from --config and the "
        "environment (TIKTOK_ACCESS_TOKEN, …) as for run; an access token is required.",
    )
    parser.add_argument(
        "--queue",
        metavar="URL",
        help="the shared queue, nats://host:4222[,nats://…] (default: the config's delivery.queue)",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (YAML)")
    parser.add_argument(
        "--concurrency",
        type=int_between("concurrency", 1, 256),
        metavar="N",
        help="requests in flight at once (default: delivery.concurrency)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_between("batch size", 1, 1000),
        metavar="N",
        help="events per request (1-1000)",
    )
    parser.set_defaults(handler=deliver)


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    text = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"destination deliver: {text}", file=sys.stderr)
    return code


def deliver(args: argparse.Namespace) -> int:
    from .config import Config, load_config
    from .delivery.factories import queue_name
    from .host import Runtime
    from .sandboxmode import token_configured
    from .sharedqueue import is_shared, open_shared, with_queue

    environ = dict(os.environ)
    try:
        config = load_config(args.config) if args.config else Config()
        if args.queue:
            config = with_queue(config, args.queue)
    except DestinationError as exc:
        return _fail(str(exc))
    if not is_shared(config):
        return _fail(
            "no shared queue: give --queue URL (or delivery.queue: nats://… in the config)"
        )
    changes: dict[str, Any] = {}
    if args.concurrency:
        changes["concurrency"] = args.concurrency
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    if changes:
        config = config.with_delivery(options=changes)
    if not token_configured(config, environ):
        return _fail(
            "no access token (TIKTOK_ACCESS_TOKEN or settings.access_token): a worker delivers "
            "to TikTok and has no sandbox fallback"
        )
    try:
        queue = open_shared(config, deliver=True)
        try:
            runtime = Runtime(config, queue=queue, track_results=False, environ=environ)
        except BaseException:
            queue.close()
            raise
    except DestinationError as exc:  # configuration, settings, NATS unreachable
        return _fail(str(exc))
    where = queue_name(config.delivery.queue)
    names = ", ".join(
        f"{what} {getattr(queue, what)}" for what in ("stream", "consumer") if hasattr(queue, what)
    )
    print(
        f"destination deliver: delivering from {where}" + (f" ({names})" if names else ""),
        file=sys.stderr,
        flush=True,
    )
    reason = _wait_for_signal()
    timeout = config.delivery.shutdown_timeout
    print(
        f"destination deliver: {reason}: draining for up to {timeout:g} s",
        file=sys.stderr,
        flush=True,
    )
    runtime.close(timeout=timeout)
    stats = runtime.stats()
    line = (
        f"destination deliver: delivered {stats['delivered']:,}, retried {stats['retried']:,}, "
        f"dead-lettered {stats['dead_lettered']:,}"
    )
    if stats["stopped"]:
        print(f"{line}; delivery stopped: {stats['stop_reason']}", file=sys.stderr)
        return EXIT_STOPPED
    print(line, file=sys.stderr)
    return EXIT_OK


def _wait_for_signal() -> str:
    """Block until SIGTERM or SIGINT; returns which one."""
    received: list[str] = []
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else "stopped"
