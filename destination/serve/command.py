"""``destination serve``: parse the command line, build the runtime, run uvicorn, drain.

Everything that can be wrong with the configuration (no write key, no access
token, a bad config file, a port in use) is found before the first request
and reported as one message with exit code 2 (1 for a port that cannot be
bound). Shutdown on SIGTERM or Ctrl-C is uvicorn's graceful one — stop
accepting, finish the requests in flight — followed by the runtime's: deliver
what is due within ``delivery.shutdown_timeout`` and keep the rest queued in
the outbox for the next start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..cli import int_between, port_number
from ..config import Config, load_config
from ..errors import ConfigurationError, DestinationError

__all__ = ["add_parser", "serve"]

EXIT_OK, EXIT_LISTEN, EXIT_CONFIG = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the Segment-compatible ingest server",
        description="Accept Segment tracking-API requests (POST /v1/batch, /v1/track, /v1/page, "
        "/v1/screen, /v1/identify, /v1/group, /v1/alias), store them in the outbox and "
        "deliver them in the background. Needs the serve extra (pip install "
        "'destination[serve]'), at least one write key and an access token (or --sandbox). "
        "See docs/serve.md.",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (YAML)")
    parser.add_argument("--host", help="address to listen on (default: serve.host, 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, help="port; 0 picks a free one (default: serve.port, 8080)"
    )
    parser.add_argument(
        "--write-key",
        action="append",
        metavar="KEY",
        help="accepted write key (repeatable; else DESTINATION_WRITE_KEYS, else serve.write_keys)",
    )
    parser.add_argument("--outbox", metavar="PATH", help="outbox database (SQLite)")
    parser.add_argument(
        "--presets",
        nargs="+",
        metavar="NAME|FILE",
        help="bundle names and preset/mapping files, layered in order (replaces the config's)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="deliver to an embedded local TikTok sandbox instead of TikTok",
    )
    parser.add_argument(
        "--workers",
        type=int_between("workers", 0, 64),
        default=None,
        metavar="N",
        help="processes that decode and store events, for more than one core's worth "
        "(default: the config's serve.workers, else 0: the server process does)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="log level (default: %(default)s)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.set_defaults(handler=serve)


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    print(f"destination serve: {message}", file=sys.stderr)
    return code


def serve(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        return _fail(f"{exc.name or 'starlette/uvicorn'} is missing: install destination[serve]")
    from ..host import Runtime
    from ..sandboxmode import token_configured, use_sandbox
    from .app import build_app
    from .auth import resolve_write_keys
    from .workers import WORKER_POLL_INTERVAL, WorkerPool, put_only_queue

    environ = dict(os.environ)
    with ExitStack() as stack:
        try:
            config = load_config(args.config) if args.config else Config()
            keys = resolve_write_keys(args.write_key, environ, config.serve.write_keys)
            if args.workers is None:
                args.workers = config.serve.workers
            config = _overrides(config, args, stack)
            note = ""
            if args.sandbox:
                config, url = use_sandbox(config, environ, stack)
                note = f"--sandbox: delivering to the embedded TikTok sandbox at {url}"
            elif config.destination == "tiktok" and not token_configured(config, environ):
                return _fail(
                    "no access token: set TIKTOK_ACCESS_TOKEN (or settings.access_token), "
                    "or pass --sandbox to deliver to a local sandbox"
                )
            if args.workers:
                put_only_queue(config).close()  # refuses a queue other than sqlite, early
                poll = min(config.delivery.options.poll_interval, WORKER_POLL_INTERVAL)
                config = config.with_delivery(options={"poll_interval": poll})
            runtime = Runtime(config, track_results=False, environ=environ)
        except DestinationError as exc:
            return _fail(str(exc))
        stack.callback(runtime.close, 0)
        pool = None
        if args.workers:
            try:
                pool = WorkerPool(args.workers, config, environ, keys)
            except Exception as exc:
                return _fail(f"the worker processes did not start: {exc}")
            stack.callback(pool.close)
        host = args.host or config.serve.host
        port = config.serve.port if args.port is None else args.port
        try:
            sock = _bind(host, port)
        except OSError as exc:
            return _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_LISTEN)
        stack.callback(sock.close)
        _setup_logging(args.log_level)
        app = build_app(runtime, keys, pool=pool)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level=args.log_level,
                access_log=args.access_log,
                lifespan="on",
                server_header=False,
                # in-flight requests get the whole budget, then the runtime drains
                timeout_graceful_shutdown=max(1, int(config.delivery.shutdown_timeout)),
            )
        )
        bound_host, bound_port = sock.getsockname()[:2]
        if note:
            print(note, file=sys.stderr)
        print(
            f"destination serve: listening on http://{_url_host(bound_host)}:{bound_port} "
            f"({len(keys)} write key(s) from {keys.source}; outbox {config.delivery.outbox}"
            f"{f'; {args.workers} worker processes' if args.workers else ''})",
            file=sys.stderr,
            flush=True,
        )
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        # uvicorn re-raises the signal that stopped it once it is done; let that be a no-op.
        for sig in previous:
            signal.signal(sig, lambda *_: None)
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        summary = app.state.serve.summary
    if summary:
        print(
            f"destination serve: stopped; {summary.get('received', 0)} events received, "
            f"{summary.get('delivered', 0)} delivered, {summary.get('pending', 0)} still queued",
            file=sys.stderr,
        )
    return EXIT_OK


def _overrides(config: Config, args: argparse.Namespace, stack: ExitStack) -> Config:
    if args.presets:
        config = config.with_overrides(presets=tuple(args.presets))
    if args.outbox and args.sandbox:
        # Stored routes keep their URL: a real outbox's events would go out with the
        # sandbox's token, and sandbox events would wait for a sandbox long gone.
        raise ConfigurationError(
            "--outbox is for deliveries to TikTok; --sandbox uses a temporary outbox of its own"
        )
    if args.outbox:
        config = config.with_delivery(outbox=Path(args.outbox))
    elif args.sandbox:
        # A sandbox server leaves nothing behind unless asked to: its own outbox.
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="destination-serve-"))
        config = config.with_delivery(outbox=Path(folder) / "outbox.db")
    return config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _setup_logging(level: str) -> None:
    logger = logging.getLogger("destination")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    if level != "debug":  # the sandbox logs every request at INFO: too much for a server
        logging.getLogger("destination.sandbox").setLevel(logging.WARNING)
