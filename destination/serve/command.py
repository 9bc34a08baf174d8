"""``destination serve``: parse the command line, build the runtime, run uvicorn, drain.

Everything that can be wrong with the configuration (no write key, no access
token, a bad config file, a port in use) is found before the first request
and reported as one message with exit code 2 (1 for a port that cannot be
bound). Shutdown on SIGTERM or Ctrl-C is uvicorn's graceful one — stop
accepting, finish the requests in flight — followed by the runtime's: deliver
what is due within ``delivery.shutdown_timeout`` and keep the rest queued in
the outbox for the next start.

SIGHUP reloads the destination's settings (from ``--config`` again, with the
environment over it as at start-up) and resumes a stopped delivery: fix a
revoked token or a wrong ``api_base_url`` without a restart. The reload runs
in a thread of its own, never in the signal handler; a bad file is logged
and the settings in force stay.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cli import int_between, port_number
from ..errors import ConfigurationError, DestinationError, SettingsError

if TYPE_CHECKING:  # the config, the presets and the engine load only when serve starts
    from ..config import Config
    from ..host import Runtime
    from .workers import WorkerPool

__all__ = ["add_parser", "serve"]

log = logging.getLogger("destination.serve")

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
        "--queue",
        metavar="URL",
        help="a shared queue instead of the outbox: nats://host:4222[,nats://host2:4222...] "
        "(JetStream; else delivery.queue). Answers 200 only after JetStream's publish ack. "
        "See docs/scale-out.md",
    )
    parser.add_argument(
        "--no-deliver",
        action="store_true",
        help="ingest only: publish to the shared queue (--queue) and deliver nothing; "
        "other nodes deliver",
    )
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
    from ..delivery.factories import queue_name
    from ..host import Runtime
    from ..sandboxmode import token_configured, use_sandbox, without_token
    from .app import build_app
    from .auth import resolve_write_keys
    from .workers import WORKER_POLL_INTERVAL, WorkerPool, put_only_queue, shared_queue

    environ = dict(os.environ)
    with ExitStack() as stack:
        try:
            from ..config import Config, load_config

            config = load_config(args.config) if args.config else Config()
            keys = resolve_write_keys(args.write_key, environ, config.serve.write_keys)
            if args.workers is None:
                args.workers = config.serve.workers
            config = _overrides(config, args, stack)
            shared = shared_queue(config.delivery.queue)
            note = ""
            if args.sandbox:
                config, url = use_sandbox(config, environ, stack)
                note = f"--sandbox: delivering to the embedded TikTok sandbox at {url}"
            elif args.no_deliver:
                # An ingest-only node never sends: it needs the settings that shape items
                # (pixel, phone region), not the token.
                config = without_token(config, environ)
            elif config.destination == "tiktok" and not token_configured(config, environ):
                return _fail(
                    "no access token: set TIKTOK_ACCESS_TOKEN (or settings.access_token), "
                    "or pass --sandbox to deliver to a local sandbox"
                )
            if args.workers:
                put_only_queue(config).close()  # refuses a queue it cannot share, early
                if not shared:  # the engine finds the workers' entries by polling the outbox
                    poll = min(config.delivery.options.poll_interval, WORKER_POLL_INTERVAL)
                    config = config.with_delivery(options={"poll_interval": poll})
            # --no-deliver: a put-only view of the shared queue; its engine claims nothing.
            queue = put_only_queue(config, "--no-deliver") if args.no_deliver else None
            runtime = Runtime(config, queue=queue, track_results=False, environ=environ)
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
        reloader = Reloader(lambda: reload_settings(args, config, runtime, pool, environ))
        stack.callback(reloader.close)  # before the runtime closes (callbacks run in reverse)
        hangup = getattr(signal, "SIGHUP", None)
        if hangup is not None:
            # Before the start-up line: a SIGHUP sent once it shows reloads, never kills.
            before = signal.signal(hangup, reloader.request)
            if before is not None:
                stack.callback(signal.signal, hangup, before)
        bound_host, bound_port = sock.getsockname()[:2]
        if note:
            print(note, file=sys.stderr)
        where = (
            f"queue {queue_name(config.delivery.queue)}"
            + ("; ingest only" if args.no_deliver else "")
            if shared
            else f"outbox {config.delivery.outbox}"
        )
        print(
            f"destination serve: listening on http://{_url_host(bound_host)}:{bound_port} "
            f"({len(keys)} write key(s) from {keys.source}; {where}"
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


class Reloader:
    """Runs ``reload`` in a thread of its own each time :meth:`request` is called.

    ``request`` is the SIGHUP handler: it only sets an event, so a slow file
    system or a slow start of worker processes never runs inside the handler
    (that is, in the middle of the server's event loop). Signals that come
    while a reload runs make one more reload, not one each.
    """

    def __init__(self, reload: Callable[[], object]) -> None:
        self._reload = reload
        self._wanted = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="destination-reload", daemon=True)
        self._thread.start()

    def request(self, *_: object) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                self._reload()
            except Exception:  # a bug: the server must go on all the same
                log.exception("serve: SIGHUP: reloading failed")

    def close(self, timeout: float = 30.0) -> None:
        self._closing = True
        self._wanted.set()
        self._thread.join(timeout)


def reload_settings(
    args: argparse.Namespace,
    config: Config,
    runtime: Runtime,
    pool: WorkerPool | None,
    environ: Mapping[str, str],
) -> bool:
    """SIGHUP: the settings from ``--config`` again, delivery resumed; True when reloaded.

    Logs one line either way. On any problem the settings in force stay.
    Worker processes are started again when the settings changed: they shape
    the items the workers store (``default_phone_region``, ``limited_data_use``).
    """
    try:
        fresh = None
        if args.sandbox:
            # The embedded sandbox's settings are the server's own: nothing to read.
            runtime.engine.resume()
        elif args.config:
            from ..config import load_config

            fresh = load_config(args.config)
            if fresh.destination != runtime.config.destination:
                raise ConfigurationError(
                    f"destination changed from {runtime.config.destination!r} to "
                    f"{fresh.destination!r}: that needs a restart"
                )
            try:  # checked here first, so problems point at the file as it is now
                runtime.destination.load_settings(fresh.settings, environ)
            except SettingsError as exc:
                raise fresh.settings_error(exc) from None
            runtime.reload_settings(fresh.settings, environ)
        else:
            runtime.reload_settings(None, environ)
    except DestinationError as exc:
        log.error("serve: SIGHUP: settings not reloaded, the old ones stay: %s", _one_line(exc))
        return False
    log.info("serve: SIGHUP: settings reloaded; delivery resumed")
    if pool is not None and fresh is not None:
        try:
            pool.reload(config.with_overrides(settings=fresh.settings))
        except Exception as exc:
            log.error(
                "serve: SIGHUP: the worker processes did not start again; they go on with "
                "the old settings: %s",
                _one_line(exc),
            )
    return True


def _one_line(exc: BaseException) -> str:
    """An error's message on one log line (config errors list one problem a line)."""
    if isinstance(exc, SettingsError):
        return "invalid settings: " + "; ".join(exc.problems)
    from ..presets import ConfigFileError

    if isinstance(exc, ConfigFileError):
        return "; ".join(problem.format() for problem in exc.problems)
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _overrides(config: Config, args: argparse.Namespace, stack: ExitStack) -> Config:
    from .workers import shared_queue

    if args.presets:
        config = config.with_overrides(presets=tuple(args.presets))
    if args.queue:
        config = config.with_delivery(queue=args.queue)
    if shared_queue(config.delivery.queue):
        if args.sandbox:
            # Other nodes deliver what this one publishes, with their own settings: the
            # events would reach whatever TikTok they point at, or wait for a sandbox that
            # exists only in this process.
            raise ConfigurationError(
                "--sandbox cannot use a shared queue (--queue, delivery.queue): other nodes "
                "would deliver its events to their own TikTok, not to this process's sandbox"
            )
        if args.outbox:
            raise ConfigurationError(
                "--outbox is the SQLite outbox; with a shared queue (--queue, delivery.queue) "
                "events wait in the queue"
            )
        return config
    if args.no_deliver:
        raise ConfigurationError(
            "--no-deliver needs a shared queue (--queue nats://...): events stored in this "
            "process's outbox would never be delivered"
        )
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
