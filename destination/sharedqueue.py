"""A shared queue (``--queue nats://…``) for the commands that take one: run, deliver, outbox.

``--queue URL`` replaces the config's ``delivery.queue``; the config's
``delivery.queue_options`` still apply (``ack_wait``, ``replicas``, names…),
except the SQLite outbox's own (``path``, ``synchronous``, ``create``,
``reserve_bytes``) when the config's queue is the outbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .config import Config
    from .delivery.queue import Queue

__all__ = ["is_shared", "open_shared", "with_queue"]

_SQLITE_OPTIONS = frozenset({"path", "synchronous", "create", "reserve_bytes"})


def is_shared(config: Config) -> bool:
    """True when the config's queue is named by a URL (a shared queue), not the outbox."""
    return "://" in config.delivery.queue


def with_queue(config: Config, url: str) -> Config:
    """``config`` delivering through the shared queue at ``url`` (``--queue``)."""
    from .delivery.factories import queue_name

    if "://" not in url:
        raise ConfigurationError(
            f"--queue takes a URL (nats://host:4222[,nats://…]), got {queue_name(url)!r}"
        )
    options: dict[str, Any] = dict(config.delivery.queue_options)
    if not is_shared(config):
        options = {k: v for k, v in options.items() if k not in _SQLITE_OPTIONS}
    return config.with_delivery(queue=url, queue_options=options)


def open_shared(config: Config, *, deliver: bool) -> Queue:
    """The config's shared queue, connected. ``deliver=False``: a put-only and inspection
    view that claims nothing. A StorageError (the servers unreachable) names the servers,
    never the credentials a URL holds."""
    from .delivery.factories import make_queue

    return make_queue(
        config.delivery.queue, **{**config.delivery.queue_options, "deliver": deliver}
    )
