"""Segment-style actions destinations, TikTok Events API first.

The public API is exactly ``__all__``; everything else is internal.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DeliveryError",
    "DestinationError",
    "FatalDeliveryError",
    "MappingError",
    "PayloadError",
    "PluginError",
    "RejectedDeliveryError",
    "RetryableDeliveryError",
    "SettingsError",
    "TriggerSyntaxError",
    "__version__",
    "hookimpl",
]
