"""The child processes of a process, read from /proc (Linux).

Shared by bench_serve.py (the CPU its worker processes use) and
tests/test_serve_process.py (that the workers start, and die with the server).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["children"]


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
