"""The default bundle with a fixed clock, shared by the performance-honesty tests."""

from __future__ import annotations

import copy
import random
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


def spoil(event: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy with one value a payload schema or the action refuses (or tolerates)."""
    event = copy.deepcopy(event)
    props = event["properties"]
    traits = event["context"].setdefault("traits", {})
    spoil = rng.choice(
        [
            lambda: props.__setitem__("value", "secret@example.com"),
            lambda: props.__setitem__("value", True),
            lambda: props.__setitem__("currency", 12),
            lambda: props.__setitem__("currency", "dollars"),
            lambda: props.__setitem__("limited_data_use", "yes"),
            lambda: props.__setitem__("price", "ten"),
            lambda: props.__setitem__("quantity", 1.5),
            lambda: props.__setitem__("products", [{"product_id": 1, "price": "x"}]),
            lambda: props.__setitem__("products", [{"product_id": [1], "quantity": "2"}]),
            lambda: props.__setitem__("products", "not-a-list"),
            lambda: props.__setitem__("email", ["a@example.com", 3]),
            lambda: props.__setitem__("query", {"q": 1}),
            lambda: traits.__setitem__("email", 42),
            lambda: traits.__setitem__("phone", "not a phone"),
            lambda: traits.__setitem__("first_name", ["Ada"]),
            lambda: event.__setitem__("timestamp", None),
            lambda: event.__setitem__("timestamp", True),
            lambda: event.__setitem__("timestamp", "yesterday"),
            lambda: event.__setitem__("messageId", 12345),
            lambda: event.__setitem__("userId", 987),
            lambda: event["context"]["page"].__setitem__("url", "ftp://example.com/"),
            lambda: event["context"].__setitem__("ip", 7),
        ]
    )
    spoil()
    return event
