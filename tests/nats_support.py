"""nats-server processes of the tests' own (never the shared one on 4222): ``nats-server -js``
on a free loopback port with its own store directory, stopped by the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["NATS_SERVER", "NatsServer", "free_port"]

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """``nats-server -js`` on a free loopback port with its own store, stopped by the test."""

    def __init__(self, store: Path, *extra: str, port: int | None = None) -> None:
        self.store = store
        self.extra = extra
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert NATS_SERVER is not None
        self.store.mkdir(parents=True, exist_ok=True)
        address = ["-a", "127.0.0.1", "-p", str(self.port)]
        with open(self.store / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [NATS_SERVER, "-js", *address, "-sd", str(self.store), *self.extra],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.store / 'server.log').read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("nats-server did not listen within 10 s")

    def stop(self, *, graceful: bool = False) -> None:
        """Kill it, or with ``graceful`` let it shut down (SIGTERM: its store is flushed)."""
        if self.process is not None and self.process.poll() is None:
            if graceful:
                self.process.terminate()
                try:
                    self.process.wait(10)
                    return
                except subprocess.TimeoutExpired:
                    pass
            self.process.kill()
            self.process.wait(10)
