"""The default bundle with a fixed clock, shared by the performance-honesty tests."""

from __future__ import annotations

from typing import Any

from benchmarks.events import NOW
from destination.pipeline import Pipeline
from destination.plugins import collect_registry
from destination.tiktok.destination import TikTokDestination
from destination.tiktok.settings import load_settings

PIXEL = "CPERFTESTPIXEL"
SETTINGS = load_settings({"access_token": "tok-perf-tests", "pixel_code": PIXEL}, {})


def default_pipeline() -> tuple[Pipeline, Any]:
    """The default bundle, its actions on the generator's clock (so no event is stale)."""
    registry = collect_registry()
    registry.destinations["tiktok"] = TikTokDestination(clock=lambda: NOW)
    return Pipeline.from_presets(registry=registry), registry
