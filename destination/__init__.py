"""Segment-style actions destinations, TikTok Events API first.

The public API is exactly ``__all__``; everything else is internal. A CDP
host builds a :class:`Runtime` from a configuration file or dict and hands
it events (docs/api.md).

The names that pull in the engine (configuration, runtime, delivery results,
the plugin marker) are imported on first use, so ``import destination`` and
commands that never touch them (``destination --version``, ``lint``) do not
pay for them; ``from destination import Runtime`` works as before.
"""

from __future__ import annotations

import importlib
import typing

from .errors import (
    ConfigurationError,
    DeliveryError,
    DestinationError,
    FatalDeliveryError,
    MappingError,
    PayloadError,
    PluginError,
    RejectedDeliveryError,
    RetryableDeliveryError,
    SettingsError,
    TriggerSyntaxError,
)

if typing.TYPE_CHECKING:
    from .config import Config, load_config
    from .delivery.engine import DeliveryResult, ResultOutcome
    from .hookspecs import hookimpl
    from .host import ActionOutcome, EventOutcome, Runtime

__version__ = "0.1.0"

__all__ = [
    "ActionOutcome",
    "Config",
    "ConfigurationError",
    "DeliveryError",
    "DeliveryResult",
    "DestinationError",
    "EventOutcome",
    "FatalDeliveryError",
    "MappingError",
    "PayloadError",
    "PluginError",
    "RejectedDeliveryError",
    "ResultOutcome",
    "RetryableDeliveryError",
    "Runtime",
    "SettingsError",
    "TriggerSyntaxError",
    "__version__",
    "hookimpl",
    "load_config",
]

#: Public names imported when first asked for: name -> the module that defines it.
_LAZY = {
    "ActionOutcome": ".host",
    "Config": ".config",
    "DeliveryResult": ".delivery.engine",
    "EventOutcome": ".host",
    "ResultOutcome": ".delivery.engine",
    "Runtime": ".host",
    "hookimpl": ".hookspecs",
    "load_config": ".config",
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
