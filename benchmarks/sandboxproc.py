"""The TikTok sandbox in a process of its own, for the benchmarks that deliver to it.

A benchmark that measures the delivering side must not share its interpreter
(and GIL) with the emulator answering it, so the sandbox runs as a child
process: it prints its URL and token, serves until its stdin closes, then
prints what it received, so the benchmark can check that nothing was lost or
doubled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["SandboxProcess"]

_SCRIPT = """
import json, sys
from destination.tiktok.sandbox import Sandbox
sandbox = Sandbox(pixels=[sys.argv[1]], keep_events=0).start()
print(json.dumps({"url": sandbox.url, "token": sandbox.token}), flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
stats = sandbox.stats()
sandbox.stop()
print(json.dumps({"events": stats["events"], "requests": stats["requests"],
                  "duplicates": len(stats["duplicates"])}), flush=True)
"""


class SandboxProcess:
    """A started sandbox child: ``url``, ``token``, ``pid``; :meth:`finish` stops it."""

    def __init__(self, pixel: str, env: Mapping[str, str] | None = None) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, pixel],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=None if env is None else dict(env),
        )
        assert self._process.stdout is not None
        info = json.loads(self._process.stdout.readline())
        self.url: str = info["url"]
        self.token: str = info["token"]
        self.pid = self._process.pid

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop the sandbox; what it received: ``events``, ``requests``, ``duplicates``."""
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        received: dict[str, Any] = json.loads(process.stdout.readline())
        process.stdout.close()
        process.wait(timeout)
        return received
