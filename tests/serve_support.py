"""Running the ingest server for tests: uvicorn in a thread, or ``destination serve`` in a process.

Both listen on 127.0.0.1 with a free port and deliver to a sandbox the test
owns, so every check can look at what TikTok would have received.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from destination.host import Runtime
from destination.serve.app import build_app
from destination.serve.auth import WriteKeys
from destination.serve.workers import WorkerPool
from destination.tiktok.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PIXEL = "CSERVETESTPIXEL1"
KEY = "wk_test_1"


def runtime_config(box: Sandbox, outbox: Path, **delivery: Any) -> dict[str, Any]:
    return {
        "settings": {"access_token": box.token, "api_base_url": box.url, "pixel_code": PIXEL},
        "delivery": {"outbox": str(outbox), "linger": 0.02, **delivery},
    }


@contextmanager
def running_server(
    runtime: Runtime, keys: tuple[str, ...] = (KEY,), pool: WorkerPool | None = None
) -> Iterator[str]:
    """Serve ``runtime`` with uvicorn in a thread; yields the base URL; closes the runtime
    (and ``pool``, worker processes that store events)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = build_app(runtime, WriteKeys(keys), shutdown_timeout=5.0, pool=pool)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        runtime.close(0)


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class ServeProcess:
    """``destination serve`` in a subprocess; ``url`` once it listens."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        command = [sys.executable, "-m", "destination.cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=cwd,
        )
        self.lines: list[str] = []
        self.url = ""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            self.kill()
            raise AssertionError("server did not start:\n" + "".join(self.lines))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def messages(client: Any, count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` "Order Completed" tracks made by a real Segment client (not sent: the
    caller posts or flushes them); their messageIds are what a server acknowledges."""
    out = []
    for i in range(start, start + count):
        _, msg = client.track(
            user_id=f"user-{i}",
            event="Order Completed",
            properties={"order_id": f"o{i}", "value": 10, "currency": "USD"},
            context={"ip": "203.0.113.7"},
        )
        out.append(msg)
    return out


def write_settings(
    path: Path,
    box: Any,
    outbox: Path,
    token: str,
    extra: str = "",
    *,
    destination: str | None = None,
) -> None:
    """A serve config delivering to the sandbox ``box`` with ``token``, stopping (no retry of
    its own) when the token is refused; ``extra`` lines go under ``settings:``."""
    path.write_text(
        (f"destination: {destination}\n" if destination else "") + "settings:\n"
        f"  access_token: {token}\n"
        f"  api_base_url: {box.url}\n"
        f"  pixel_code: {PIXEL}\n"
        f"{extra}"
        "delivery:\n"
        f"  outbox: {outbox}\n"
        "  linger: 0.02\n"
        "  stop_retry_interval: 0\n"
    )
