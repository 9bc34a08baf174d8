"""Segment-style actions destinations, TikTok Events API first.

The public API is exactly ``__all__``; everything else is internal. A CDP
host builds a :class:`Runtime` from a configuration file or dict and hands
it events (docs/api.md).
"""

from __future__ import annotations

from .config import Config, load_config
from .delivery.engine import DeliveryResult, ResultOutcome
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
