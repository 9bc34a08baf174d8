"""Every hook a plugin can implement: the whole extension surface on one page.

Registration hooks receive a ``register`` callback instead of returning
values, so the host decides what a duplicate name or a wrong type means and
names the plugin at fault. Per-event hooks are called with keyword arguments
only; new arguments are added, never renamed, so implementations may accept
fewer. docs/hooks.md documents each with its exact signature (a test checks).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("destination")
hookimpl = pluggy.HookimplMarker("destination")


@hookspec
def register_destinations(register: Any) -> None:
    """Register destinations: ``register(destination)`` with a ``Destination`` instance."""


@hookspec
def register_mapping_files(register: Any) -> None:
    """Register folders or files of mapping YAML: ``register(path)``."""


@hookspec
def register_presets(register: Any) -> None:
    """Register folders or files of preset-bundle YAML: ``register(path)``."""


@hookspec
def register_mapping_functions(register: Any) -> None:
    """Register JMESPath functions: ``register(name, function, signature)``."""


@hookspec
def register_executors(register: Any) -> None:
    """Register executors that send requests: ``register(name, factory)``."""


@hookspec
def register_queues(register: Any) -> None:
    """Register stores where accepted events wait: ``register(name, factory)``."""


@hookspec
def transform_payload(payload: Any, event: Any, preset: Any, action: Any) -> None:
    """Change a mapped payload in place before its action builds it; raise PayloadError to skip it."""


@hookspec
def delivery_result(result: Any) -> None:
    """Observe one event's delivery result: a ``destination.delivery.DeliveryResult``."""
