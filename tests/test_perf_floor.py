"""The floor (benchmarks/floor.py) makes exactly the framework's items, so the ratio is honest."""

from __future__ import annotations

import pytest

from benchmarks.events import generate_events
from benchmarks.floor import floor_body, floor_items
from destination.compactjson import dumps_reference
from destination.tiktok.protocol import build_request

from .perf_support import PIXEL, SETTINGS, default_pipeline


@pytest.fixture(scope="module")
def pipeline():
    return default_pipeline()[0]


def test_generator_is_deterministic_and_mixed():
    events = generate_events(2000, seed=7)
    assert events == generate_events(2000, seed=7)
    assert events != generate_events(2000, seed=8)
    kinds = {(e["type"], e.get("event")) for e in events}
    assert ("page", None) in kinds and ("track", "Order Completed") in kinds
    urls = [e["context"]["page"]["url"] for e in events if e["type"] == "page"]
    assert any("ttclid=" in url for url in urls) and not all("ttclid=" in url for url in urls)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_floor_items_and_bodies_equal_the_framework(pipeline, seed):
    events = generate_events(3000, seed)
    framework_items = []
    floor_all = []
    route = None
    for event in events:
        built = [m.action.build(m.payload, SETTINGS) for m in pipeline.match(event)]
        items = [b.item for b in built]
        by_floor = floor_items(event)
        # JSON text, not ==: key order and 19 vs 19.0 must agree too
        assert dumps_reference(by_floor) == dumps_reference(items), event["messageId"]
        framework_items.extend(items)
        floor_all.extend(by_floor)
        route = built[0].route if built else route
    assert len(framework_items) > 2000
    for start in range(0, len(framework_items), 1000):
        batch = framework_items[start : start + 1000]
        body = build_request(SETTINGS, route, batch).body
        assert body == floor_body(floor_all[start : start + 1000], PIXEL)
