"""Per-event cost of every stage of the framework path, and of the hand-written floor.

Run: python benchmarks/bench_pipeline.py [--events N] [--rounds R] [--seed S]

Generated Segment-spec events (benchmarks/events.py, a realistic mix in which
about a quarter match no preset) go through the default bundle. Each stage is
timed on its own over the same events (best of R rounds), then the whole
path: ``Pipeline.match`` → ``action.build`` → ``build_request`` per 1000
items (the JSON request body), against the floor (benchmarks/floor.py) doing
the same with no framework. Every figure is microseconds per *generated*
event. The stages do not quite add up to the whole: the whole path keeps a
batch of items alive, so the cyclic GC has more to walk (the floor pays the
same). A plain script, not a timed test.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.events import NOW, generate_events
from benchmarks.floor import floor_body, floor_items
from destination.pipeline import Pipeline
from destination.plugins import collect_registry
from destination.tiktok.destination import TikTokDestination
from destination.tiktok.protocol import build_request
from destination.tiktok.settings import load_settings

BATCH = 1000
PIXEL = "CBENCHPIXEL1"


def setup() -> tuple[Pipeline, Any, TikTokDestination]:
    registry = collect_registry()
    destination = TikTokDestination(clock=lambda: NOW)
    registry.destinations["tiktok"] = destination
    settings = load_settings({"access_token": "bench-token", "pixel_code": PIXEL}, {})
    return Pipeline.from_presets(registry=registry), settings, destination


def best(function: Callable[[], object], rounds: int) -> float:
    """Best-of-``rounds`` seconds for one call (the machine is shared; the minimum is the cost)."""
    result = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        result = min(result, time.perf_counter() - start)
    return result


def best_pair(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """Best seconds of two functions run in alternation, and the median of the per-round ratios.

    On a shared machine the load changes from one second to the next; a ratio
    of two back-to-back runs is steadier than a ratio of two separate minima.
    """
    a = b = float("inf")
    ratios = []
    for _ in range(rounds):
        one, two = best(first, 1), best(second, 1)
        a, b = min(a, one), min(b, two)
        ratios.append(one / two)
    return a, b, statistics.median(ratios)


def framework(
    pipeline: Pipeline, settings: Any, events: list[dict[str, Any]], keep: bool = True
) -> list[bytes]:
    """The whole framework path; returns the request bodies (only their sizes unless ``keep``)."""
    bodies: list[Any] = []
    batch: list[dict[str, Any]] = []
    route = None
    for event in events:
        for match in pipeline.match(event):
            route, item = match.action.build(match.payload, settings)
            batch.append(item)
            if len(batch) == BATCH:
                body = build_request(settings, route, batch).body
                bodies.append(body if keep else len(body))
                batch = []
    if batch and route is not None:
        body = build_request(settings, route, batch).body
        bodies.append(body if keep else len(body))
    return bodies


def floor(events: list[dict[str, Any]]) -> list[bytes]:
    """The same with the hand-written floor."""
    bodies: list[bytes] = []
    batch: list[dict[str, Any]] = []
    for event in events:
        for item in floor_items(event):
            batch.append(item)
            if len(batch) == BATCH:
                bodies.append(floor_body(batch, PIXEL))
                batch = []
    if batch:
        bodies.append(floor_body(batch, PIXEL))
    return bodies


def stage_inputs(
    pipeline: Pipeline, settings: Any, destination: TikTokDestination, events: list[dict[str, Any]]
) -> tuple[list[Any], list[Any], Any, Any, list[list[dict[str, Any]]]]:
    """What each stage is timed on: (preset, event) pairs whose trigger holds, their
    (preset, payload) pairs, the action, its route, and the items in batches of BATCH."""
    pairs = [
        (c, e)
        for e in events
        for c in pipeline.candidates(e.get("type"), e.get("event"))
        if c.trigger(e)
    ]
    payloads = [(c, c.mapping(e)) for c, e in pairs]
    action = destination.actions["report_web_event"]
    built = [action.build(p, settings) for _, p in payloads]
    items = [b.item for b in built]
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    return pairs, payloads, action, built[0].route, batches


def without_fast_paths(pipeline: Pipeline) -> Pipeline:
    """A copy that evaluates every trigger and validates every payload with jsonschema."""
    slow = Pipeline.__new__(Pipeline)
    slow.__dict__.update(pipeline.__dict__)
    slow._compiled = tuple(
        dataclasses.replace(c, check=None, checked=None, types=None, events=None)
        for c in pipeline._compiled
    )
    slow._index = {}
    return slow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    pipeline, settings, destination = setup()
    events = generate_events(args.events, args.seed)
    # The input is not the path's memory (a host streams it): keep the cyclic GC
    # from walking these ~1M objects at every full collection, which would add
    # a third to every figure below (the path's own garbage is still collected).
    gc.collect()
    gc.freeze()
    compiled = pipeline._compiled
    pairs, payloads, action, route, batches = stage_inputs(pipeline, settings, destination, events)
    items = [item for batch in batches for item in batch]
    assert framework(pipeline, settings, events) == floor(events), "floor and framework differ"
    slow = without_fast_paths(pipeline)
    jsonschema_payloads = payloads[: max(len(payloads) // 10, 1)]
    scale = len(payloads) / len(jsonschema_payloads)

    def all_triggers() -> None:
        for e in events:
            for c in compiled:
                c.trigger(e)

    def indexed_triggers() -> None:
        candidates = pipeline.candidates
        for e in events:
            for c in candidates(e.get("type"), e.get("event")):
                c.trigger(e)

    def mapping() -> None:
        for c, e in pairs:
            c.mapping(e)

    def fused() -> None:
        for c, e in pairs:
            c.checked(e)  # type: ignore[misc]

    def fast_check() -> None:
        for c, p in payloads:
            c.check(p)  # type: ignore[misc]

    def jsonschema_check() -> None:
        for c, p in jsonschema_payloads:
            next(c.validator.iter_errors(p), None)

    def build() -> None:
        for _, p in payloads:
            action.build(p, settings)

    def serialise() -> None:
        for batch in batches:
            build_request(settings, route, batch)

    n = len(events)
    whole, bottom, paired = best_pair(
        lambda: framework(pipeline, settings, events), lambda: floor(events), args.rounds
    )
    per = {
        "triggers, every preset evaluated (before)": best(all_triggers, args.rounds),
        "triggers, indexed by type/event": best(indexed_triggers, args.rounds),
        "mapping (compiled)": best(mapping, args.rounds),
        "payload schema, jsonschema (before)": best(jsonschema_check, args.rounds) * scale,
        "payload schema, fast check of the whole payload": best(fast_check, args.rounds),
        "mapping + schema checks field by field (what match runs)": best(fused, args.rounds),
        "normalise + hash + shape (action.build)": best(build, args.rounds),
        "serialise request bodies (build_request, 1000/request)": best(serialise, args.rounds),
        "whole framework path, fast paths off (before)": best(
            lambda: framework(slow, settings, events), max(args.rounds // 3, 1)
        ),
        "whole framework path": whole,
        "floor (benchmarks/floor.py), same items and bodies": bottom,
    }
    tracemalloc.start()
    framework(pipeline, settings, events, keep=False)  # as a host would: send, then drop
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        f"{time.strftime('%Y-%m-%d')}, python {platform.python_version()}, "
        f"{platform.machine()}, {len(events)} events -> {len(items)} items, "
        f"best of {args.rounds}"
    )
    width = max(map(len, per))
    for name, seconds in per.items():
        print(f"{name:<{width}}  {seconds / n * 1e6:7.2f} us/event")
    whole, bottom = whole / n, bottom / n
    print(f"{'whole framework path':<{width}}  {1 / whole:9,.0f} events/s (one core)")
    print(f"{'ratio framework / floor, of the best runs':<{width}}  {whole / bottom:7.2f}")
    print(f"{'ratio framework / floor, median of paired runs':<{width}}  {paired:7.2f}")
    print(f"{'tracemalloc peak, whole path (events excluded)':<{width}}  {peak / 2**20:7.1f} MiB")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'peak RSS of this process':<{width}}  {rss:7.1f} MiB")


if __name__ == "__main__":
    main()
