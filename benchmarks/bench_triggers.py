"""Trigger evaluation speed: nanoseconds per event for compiled triggers.

Why a script and not a timed test: timings depend on the machine and its
load, so they are measured and recorded (docs/performance.md), not asserted.
Run: ``python benchmarks/bench_triggers.py``. Targets: the two-clause
trigger under 1 µs per event, a 20-clause trigger under 5 µs.
"""

from __future__ import annotations

import platform
import timeit
from typing import Any

from destination.triggers import _generate, compile_trigger, parse_trigger

SIMPLE = 'type = "track" and event = "Product Added"'

# Twenty clauses over every kind of test: strings, numbers, null, booleans,
# contains, match, negation, nested paths, a quoted segment and a group.
TWENTY = " and ".join(
    [
        'type = "track"',
        'event != "Order Refunded"',
        "properties.price > 0",
        "properties.price <= 100000",
        'properties.currency = "USD"',
        "properties.quantity >= 1",
        "userId != null",
        'not contains(context.page.url, "/admin")',
        'match(context.page.url, "https://*")',
        "context.ip != null",
        'context.library.name = "analytics.js"',
        'integrations."TikTok Conversions".ttclid != null',
        "properties.coupon = null",
        "properties.in_stock = true",
        'anonymousId != "bot"',
        '(properties.category = "shoes" or properties.category = "bags")',
        "!(properties.test = true)",
        "properties.discount < 50",
        'contains(event, "Added")',
        'match(messageId, "msg-*")',
    ]
)

EVENTS: list[tuple[str, dict[str, Any]]] = [
    (
        "matching track event",
        {
            "type": "track",
            "event": "Product Added",
            "messageId": "msg-1",
            "anonymousId": "a-1",
            "userId": "u-1",
            "properties": {
                "price": 19.99,
                "currency": "USD",
                "quantity": 2,
                "in_stock": True,
                "category": "shoes",
                "discount": 10,
            },
            "context": {
                "ip": "203.0.113.9",
                "page": {"url": "https://shop.example/p/1"},
                "library": {"name": "analytics.js"},
            },
            "integrations": {"TikTok Conversions": {"ttclid": "E.C.P.abc"}},
        },
    ),
    ("non-matching page event", {"type": "page", "name": "Home", "properties": {}}),
]


def measure(expr: str, event: dict[str, Any], number: int = 200_000) -> float:
    """Best of five runs, in nanoseconds per evaluation."""
    fn = compile_trigger(expr)
    best = min(timeit.repeat(lambda: fn(event), number=number, repeat=5))
    return best / number * 1e9


def main() -> None:
    print(f"Python {platform.python_version()} on {platform.machine()}")
    assert compile_trigger(TWENTY)(EVENTS[0][1]) is True
    assert TWENTY.count(" and ") == 19
    empty = min(timeit.repeat(lambda: None, number=200_000, repeat=5)) / 200_000 * 1e9
    print(f"(loop + lambda call overhead included below: {empty:.0f} ns)")
    for label, expr in (("2-clause", SIMPLE), ("20-clause", TWENTY)):
        for name, event in EVENTS:
            print(f"{label:10} {name:25} {measure(expr, event):7.0f} ns/event")
    compile_ns = min(
        timeit.repeat(lambda: _generate(TWENTY, parse_trigger(TWENTY)), number=200, repeat=3)
    )
    print(f"compile 20-clause (uncached): {compile_ns / 200 * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
