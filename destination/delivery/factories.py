"""Executors and queues by name, as configuration and the CLI refer to them.

Names come from the ``register_executors`` / ``register_queues`` hooks, so a
third-party executor is chosen exactly like ``http``; an unknown name is a
configuration error that lists the known ones. A queue may also be named by
a URL: its scheme names the backend (``nats://…`` and ``tls://…`` the
``nats`` one), which receives the whole URL as ``url``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..plugins import collect_registry
from .executors import Executor
from .outbox import Queue

__all__ = ["make_executor", "make_queue", "queue_name"]


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


def queue_name(spec: str) -> str:
    """A queue spec as messages show it: each URL without the credentials it may hold."""
    if "://" not in spec:
        return spec
    shown = []
    for part in spec.split(","):
        url = urlsplit(part.strip())
        shown.append(f"{url.scheme}://{url.netloc.rpartition('@')[2]}{url.path}")
    return ",".join(shown)


#: URL schemes that name a backend registered under another name
_SCHEMES = {"tls": "nats"}


def make_queue(name: str = "sqlite", **options: Any) -> Queue:
    """Open the queue registered as ``name`` (``sqlite``: ``path=``, ``synchronous=``), or
    the one a URL's scheme names, with ``url=`` the URL (``nats://h1:4222,nats://h2:4222``)."""
    scheme, sep, _ = name.partition("://")
    if sep:
        options = {**options, "url": name}
        name = _SCHEMES.get(scheme, scheme)
    queue: Queue = _make("queue", name, collect_registry().queues, options)
    return queue
