"""Executors and queues by name, as configuration and the CLI refer to them.

Names come from the ``register_executors`` / ``register_queues`` hooks, so a
third-party executor is chosen exactly like ``http``; an unknown name is a
configuration error that lists the known ones.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ..plugins import collect_registry
from .executors import Executor
from .outbox import Queue

__all__ = ["make_executor", "make_queue"]


def _make(kind: str, name: str, factories: dict[str, Any], options: dict[str, Any]) -> Any:
    factory = factories.get(name)
    if factory is None:
        known = ", ".join(sorted(factories)) or "none"
        raise ConfigurationError(f"unknown {kind} {name!r} (registered: {known})")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigurationError(f"{kind} {name!r}: bad options: {exc}") from None


def make_executor(name: str = "http", **options: Any) -> Executor:
    """Build the executor registered as ``name`` with ``options``."""
    executor: Executor = _make("executor", name, collect_registry().executors, options)
    return executor


def make_queue(name: str = "sqlite", **options: Any) -> Queue:
    """Open the queue registered as ``name`` (``sqlite``: ``path=``, ``synchronous=``)."""
    queue: Queue = _make("queue", name, collect_registry().queues, options)
    return queue
