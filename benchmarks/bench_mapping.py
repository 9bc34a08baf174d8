"""How long mapping one event takes: the full default Report Web Event mapping.

Run: python benchmarks/bench_mapping.py [--seconds S]
Prints microseconds per event for the compiled mapping (fast paths), for the
same expressions through jmespath's interpreter, and per-expression costs,
plus one whole preset (Place an Order: default mapping + contents). A plain
script, not a timed test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jmespath

from destination.mapping import MappingFunctions, compile_mapping
from destination.plugins import collect_registry
from destination.presets import resolve_presets

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "ajs-next-1763632800123-4f1a",
    "timestamp": "2026-11-20T10:00:00.123Z",
    "userId": "user_123",
    "anonymousId": "b3c1e2f0-5d4b-4a8e-9e55-0c6a1f2b7d10",
    "properties": {
        "order_id": "50314b8e9bcf000000000000",
        "total": 27.5,
        "revenue": 25.0,
        "currency": "USD",
        "products": [
            {
                "product_id": "507f1f77",
                "name": "Monopoly",
                "category": "Games",
                "price": 19,
                "quantity": 1,
                "brand": "Hasbro",
            },
            {
                "product_id": "505bd76785",
                "name": "Uno",
                "category": "Games",
                "price": 3.45,
                "quantity": 2,
            },
        ],
    },
    "context": {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15",
        "locale": "en-US",
        "page": {
            "url": "https://shop.example.com/checkout?ttclid=E.C.P.abc",
            "referrer": "https://www.tiktok.com/",
        },
        "traits": {
            "email": "alice@example.com",
            "phone": "+12133734253",
            "first_name": "Alice",
            "address": {"city": "Austin", "state": "TX", "country": "US", "postal_code": "78701"},
        },
    },
    "integrations": {"TikTok Conversions": {"ttp": "2AbC-xyz"}},
}


def per_call(function: Any, seconds: float) -> float:
    """Best-of-5 microseconds per call, each round about seconds/5 long."""
    count = 1000
    while True:
        start = time.perf_counter()
        for _ in range(count):
            function(EVENT)
        elapsed = time.perf_counter() - start
        if elapsed > 0.05:
            break
        count *= 4
    rounds = max(int(seconds / 5 / (elapsed / count)), 1000)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            function(EVENT)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    config = resolve_presets()
    functions = MappingFunctions.from_registry(collect_registry())
    fields = config.mappings["tiktok.report_web_event"]
    mapping = compile_mapping(fields, functions)
    fast = sum(1 for e in mapping.expressions.values() if e.terms is not None)
    order = next(p for p in config.presets if p.name == "Place an Order")
    preset_mapping = compile_mapping(config.mapping_for(order), functions)
    assert mapping(EVENT) == mapping.apply_slow(EVENT)

    compiled = [jmespath.compile(text) for text in fields.values()]
    options = jmespath.Options(custom_functions=functions)

    def jmespath_search(event: dict[str, Any]) -> None:
        for expression in compiled:
            expression.search(event, options=options)

    print(f"python {sys.version.split()[0]}, {len(fields)} fields ({fast} on fast paths)")
    full = per_call(mapping, args.seconds)
    print(f"default report_web_event mapping, compiled:   {full:7.2f} us/event")
    slow = per_call(mapping.apply_slow, args.seconds)
    print(f"same expressions, jmespath interpreter:       {slow:7.2f} us/event")
    plain = per_call(jmespath_search, args.seconds)
    print(
        f"same expressions, jmespath.compile().search:  {plain:7.2f} us/event "
        f"({plain / len(fields):.2f} us/expression)"
    )
    whole = per_call(preset_mapping, args.seconds)
    print(f"Place an Order preset (+ event, contents):   {whole:7.2f} us/event")
    print(f"events/second/core (default mapping):        {1e6 / full:9.0f}")


if __name__ == "__main__":
    main()
