"""The built-in delivery plugin: executors and the SQLite queue, registered like a third party's.

Registering the built-ins through the same hooks proves a plugin can add an
executor (say, a message bus) or a queue (Redis Streams) with nothing more.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from .executors import DryRunExecutor, FileExecutor, HttpExecutor
from .outbox import SqliteQueue


@hookimpl
def register_executors(register: Any) -> None:
    register("http", HttpExecutor)
    register("dry-run", DryRunExecutor)
    register("file", FileExecutor)


@hookimpl
def register_queues(register: Any) -> None:
    register("sqlite", SqliteQueue)
