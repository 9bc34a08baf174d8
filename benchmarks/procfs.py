"""Processes read from /proc (Linux): children, resident memory, and a child run to its end.

Shared by bench_serve.py (the CPU its worker processes use),
tests/test_serve_process.py (that the workers start, and die with the server),
bench_run.py and bench_memory.py (a ``destination run`` child's resident set,
sampled while it runs, and its peak from ``wait4``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Measured", "children", "rss_mb", "run_measured", "status_mb"]


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (field 4 of /proc/PID/stat, after the name)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def status_mb(pid: int, key: str) -> float | None:
    """A ``kB`` line of /proc/PID/status in MB (``VmRSS``, ``VmHWM`` = peak), None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    """The resident set of ``pid`` now, in MB (None once it has exited)."""
    return status_mb(pid, "VmRSS")


@dataclass
class Measured:
    """A finished child: exit code, stderr, elapsed seconds, RSS samples and peak (MB)."""

    returncode: int
    stderr: str
    seconds: float
    peak_mb: float
    samples: list[float] = field(default_factory=list)

    def sample_at(self, fraction: float) -> float | None:
        """The RSS sampled ``fraction`` of the way through the run (None: no sample)."""
        if not self.samples:
            return None
        return self.samples[min(len(self.samples) - 1, int(len(self.samples) * fraction))]


def run_measured(command: Sequence[str], *, interval: float = 0.5, **popen: Any) -> Measured:
    """Run ``command`` to its end, sampling its RSS every ``interval`` seconds.

    The peak is ``ru_maxrss`` from ``wait4``: the kernel's own high-water mark
    of the child, so a spike between two samples is not missed. stdout goes
    where ``popen`` says (default /dev/null); stderr is collected.
    """
    popen.setdefault("stdout", subprocess.DEVNULL)
    started = time.monotonic()
    child = subprocess.Popen(list(command), stderr=subprocess.PIPE, **popen)
    assert child.stderr is not None
    os.set_blocking(child.stderr.fileno(), False)
    samples: list[float] = []
    err_parts: list[bytes] = []
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        value = rss_mb(child.pid)
        if value is not None:
            samples.append(value)
        err_parts.append(child.stderr.read() or b"")
        time.sleep(interval)
    elapsed = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    os.set_blocking(child.stderr.fileno(), True)
    err = (b"".join(err_parts) + child.stderr.read()).decode(errors="replace")
    child.stderr.close()
    return Measured(child.returncode, err, elapsed, usage.ru_maxrss / 1024, samples)
