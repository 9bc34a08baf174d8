"""The one PluginManager, and the registry built from its registration hooks.

Built-in plugins (the TikTok destination, the executors, the mapping
functions) register through exactly the same hooks as third-party packages,
so a third party can do anything a built-in does. Entry points in the
``destination`` group load once per process; ``DESTINATION_PLUGINS`` limits
which: a comma-separated list of entry-point names, or empty for none.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .actions import Destination
from .errors import PluginError

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "Registry",
    "collect_registry",
    "load_plugins",
    "pm",
]

ENTRY_POINT_GROUP = "destination"
ENV_VAR = "DESTINATION_PLUGINS"
#: Modules of the plugins that ship with the package, in registration order.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "destination.tiktok.plugin",
    "destination.mapping",
    "destination.delivery.plugin",
)

pm = pluggy.PluginManager("destination")
pm.add_hookspecs(hookspecs)

_load_lock = threading.Lock()
_loaded = False


def load_plugins() -> None:
    """Register built-ins and load entry points, once per process."""
    global _loaded
    with _load_lock:
        if _loaded:
            return
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            if not pm.is_registered(module):
                pm.register(module, name=module_name)
        allowed = os.environ.get(ENV_VAR)
        if allowed is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in (n.strip() for n in allowed.split(",")):
                if name:
                    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        _loaded = True


PathLike = str | os.PathLike[str] | Traversable


@dataclass
class Registry:
    """Everything the plugins registered, keyed by name."""

    destinations: dict[str, Destination] = field(default_factory=dict)
    mapping_files: list[Traversable | Path] = field(default_factory=list)
    presets: list[Traversable | Path] = field(default_factory=list)
    mapping_functions: dict[str, tuple[Callable[..., Any], Any]] = field(default_factory=dict)
    executors: dict[str, Callable[..., Any]] = field(default_factory=dict)
    queues: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: which plugin registered each name, for error messages: (kind, name) -> plugin
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def claim(self, kind: str, name: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} name must be a non-empty string, got {name!r}", plugin)
        other = self.owners.get((kind, name))
        if other is not None:
            raise PluginError(f"{kind} {name!r} is already registered by {other!r}", plugin)
        self.owners[(kind, name)] = plugin


def _as_path(value: Any, kind: str, plugin: str) -> Traversable | Path:
    if isinstance(value, Traversable):
        return value
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise PluginError(f"{kind} must be a path, got {type(value).__name__}", plugin)


def _call_registration(hook_name: str, make_register: Callable[[str], Callable[..., None]]) -> None:
    """Call each implementation separately so errors can name its plugin."""
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):  # registration order
        plugin = impl.plugin_name
        kwargs = {"register": make_register(plugin)} if "register" in impl.argnames else {}
        impl.function(**kwargs)


def collect_registry() -> Registry:
    """Ask every plugin to register; raise PluginError naming the first one at fault."""
    load_plugins()
    reg = Registry()

    def destinations(plugin: str) -> Callable[..., None]:
        def register(destination: Any) -> None:
            if not isinstance(destination, Destination):
                raise PluginError(
                    f"register_destinations expects a Destination instance, "
                    f"got {type(destination).__name__}",
                    plugin,
                )
            reg.claim("destination", getattr(destination, "name", None), plugin)
            reg.destinations[destination.name] = destination

        return register

    def paths(kind: str, target: list[Traversable | Path]) -> Callable[[str], Callable[..., None]]:
        def make(plugin: str) -> Callable[..., None]:
            def register(path: Any) -> None:
                target.append(_as_path(path, kind, plugin))

            return register

        return make

    def functions(plugin: str) -> Callable[..., None]:
        def register(name: Any, function: Any, signature: Any = None) -> None:
            if not callable(function):
                raise PluginError(f"mapping function {name!r} is not callable", plugin)
            reg.claim("mapping function", name, plugin)
            reg.mapping_functions[name] = (function, signature)

        return register

    def factories(
        kind: str, target: dict[str, Callable[..., Any]]
    ) -> Callable[[str], Callable[..., None]]:
        def make(plugin: str) -> Callable[..., None]:
            def register(name: Any, factory: Any) -> None:
                if not callable(factory):
                    raise PluginError(f"{kind} {name!r} factory is not callable", plugin)
                reg.claim(kind, name, plugin)
                target[name] = factory

            return register

        return make

    _call_registration("register_destinations", destinations)
    _call_registration("register_mapping_files", paths("mapping file", reg.mapping_files))
    _call_registration("register_presets", paths("preset file", reg.presets))
    _call_registration("register_mapping_functions", functions)
    _call_registration("register_executors", factories("executor", reg.executors))
    _call_registration("register_queues", factories("queue", reg.queues))
    return reg
