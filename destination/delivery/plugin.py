"""The built-in delivery plugin: executors and the queues, registered like a third party's.

Registering the built-ins through the same hooks proves a plugin can add an
executor (say, a message bus) or a queue (Redis Streams) with nothing more.
The JetStream queue is imported only when one is opened, so nats-py (the
``serve`` extra) is needed only by those who use it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ..hookspecs import hookimpl
from .executors import DryRunExecutor, FileExecutor, HttpExecutor
from .outbox import SqliteQueue


@hookimpl
def register_executors(register: Any) -> None:
    register("http", HttpExecutor)
    register("dry-run", DryRunExecutor)
    register("file", FileExecutor)


def _jetstream(url: str, **options: Any) -> Any:
    try:
        from .jetstream import JetStreamQueue
    except ImportError as exc:
        raise ConfigurationError(
            f"the nats queue needs nats-py ({exc}): pip install 'destination[serve]'"
        ) from None
    return JetStreamQueue(url, **options)


@hookimpl
def register_queues(register: Any) -> None:
    register("sqlite", SqliteQueue)
    register("nats", _jetstream)
