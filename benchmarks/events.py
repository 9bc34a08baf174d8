"""Deterministic Segment-spec events in a realistic mix, for benchmarks and equivalence tests.

Benchmarks on one hand-picked event flatter whatever that event exercises;
a CDP stream is mostly page views and a long tail of track events, many of
which no preset wants, with identifiers present in some events and not in
others. ``generate_events(n, seed)`` gives the same list for the same
arguments on every machine (its own ``random.Random``), so figures and the
floor-equivalence test are reproducible.

The mix, by weight: page 45 %, Product Viewed 12 % (no default preset),
Product Added 10 %, Order Completed 6 %, Checkout Started 5 %, Products
Searched 5 %, Payment Info Entered 3 %, Product Added to Wishlist 3 %,
identify 6 %, Signed Up 5 % (no preset). Identifiers: userId in 40 %, email
in 35 % (context.traits, traits or properties), E.164 phone in 20 %, names and
address in some, ttclid in 15 % of page URLs, ttp in 10 %; every event has ip
and user agent; timestamps are ISO 8601 strings or Unix seconds/milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

__all__ = ["MIX", "NOW", "generate_events", "iter_events"]

_BASE_TIME = 1_795_168_800  # 2026-11-20T10:00:00Z
#: The clock the benchmarks pass to the actions: just after every generated timestamp
#: (events spread over one hour), so none is stale or in the future.
NOW = _BASE_TIME + 3600 + 60

MIX: tuple[tuple[str, str | None, int], ...] = (
    ("page", None, 45),
    ("track", "Product Viewed", 12),
    ("track", "Product Added", 10),
    ("track", "Order Completed", 6),
    ("track", "Checkout Started", 5),
    ("track", "Products Searched", 5),
    ("track", "Payment Info Entered", 3),
    ("track", "Product Added to Wishlist", 3),
    ("identify", None, 6),
    ("track", "Signed Up", 5),
)

_CATEGORIES = ("Games", "Books", "Shoes", "Kitchen", "Garden", "Toys")
_BRANDS = ("Hasbro", "Acme", "Nike", "Tefal", None)
_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Linus", "Margaret")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Torvalds")
_CITIES = (("Austin", "TX", "78701"), ("San Francisco", "CA", "94107"), ("Boston", "MA", "02110"))
_PATHS = ("/", "/cart", "/products/monopoly", "/search", "/checkout", "/blog/spring-sale")
_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.1 Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
_QUERIES = ("red shoes", "monopoly", "kettle", "garden hose", "lego")


def _product(rng: random.Random, index: int) -> dict[str, Any]:
    product: dict[str, Any] = {
        # ids are strings mostly, numbers sometimes (to_string in the presets)
        "product_id": f"sku-{rng.randrange(100_000)}"
        if rng.random() < 0.8
        else rng.randrange(10**6),
        "sku": f"G-{index}{rng.randrange(100)}",
        "name": f"Product {rng.randrange(1000)}",
        "category": rng.choice(_CATEGORIES),
        "price": rng.choice((19, 3.45, 12.99, 100, "7.50")),
        "quantity": rng.choice((1, 1, 1, 2, 3)),
    }
    brand = rng.choice(_BRANDS)
    if brand is not None:
        product["brand"] = brand
    return product


def _timestamp(rng: random.Random, offset: int) -> Any:
    seconds = _BASE_TIME + offset % 3600
    roll = rng.random()
    if roll < 0.8:
        hours, rest = divmod(seconds % 86_400, 3600)
        return f"2026-11-20T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{rng.randrange(1000):03d}Z"
    if roll < 0.9:
        return seconds
    return seconds * 1000 + rng.randrange(1000)


def _traits(rng: random.Random, user: int) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    if rng.random() < 0.35:
        traits["email"] = f"User.{user}@Example.com"
    if rng.random() < 0.2:
        traits["phone"] = f"+1415{user % 10_000_000:07d}"
    if rng.random() < 0.25:
        traits["first_name" if rng.random() < 0.5 else "firstName"] = rng.choice(_NAMES)
        traits["last_name" if rng.random() < 0.5 else "lastName"] = rng.choice(_LAST)
    if rng.random() < 0.2:
        city, state, zip_code = rng.choice(_CITIES)
        traits["address"] = {
            "city": city,
            "state": state,
            "country": "US",
            "postal_code": zip_code,
        }
    return traits


def _event(rng: random.Random, index: int, kind: str, name: str | None) -> dict[str, Any]:
    user = rng.randrange(1_000_000)
    path = rng.choice(_PATHS)
    url = f"https://shop.example.com{path}"
    if kind == "page" and rng.random() < 0.15:
        url += f"?utm_source=tiktok&ttclid=E.C.P.{rng.randrange(10**9):x}"
    context: dict[str, Any] = {
        "ip": f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(_AGENTS),
        "locale": rng.choice(("en-US", "en-GB", "de-DE")),
        "library": {"name": "analytics.js", "version": "2.11.1"},
        "page": {
            "path": path,
            "url": url,
            "title": "Shop",
            # an app referrer is kept by Segment, and dropped (with a warning) by the action
            "referrer": rng.choices(
                ("https://www.tiktok.com/", "https://www.google.com/", "", "android-app://x", None),
                (35, 20, 15, 5, 25),
            )[0],
        },
    }
    if context["page"]["referrer"] is None:
        del context["page"]["referrer"]
    traits = _traits(rng, user)
    event: dict[str, Any] = {
        "type": kind,
        "messageId": f"ajs-{index:08d}-{rng.randrange(16**8):08x}",
        "timestamp": _timestamp(rng, index),
        "anonymousId": f"anon-{user:x}",
        "context": context,
        "integrations": {},
    }
    if rng.random() < 0.4:
        event["userId"] = f"user_{user}"
    if rng.random() < 0.1:
        event["integrations"]["TikTok Conversions"] = {"ttp": f"ttp-{user:x}"}
    properties: dict[str, Any] = {}
    if kind == "page":
        event["name"] = "Shop"
        properties = {"path": path, "url": url, "title": "Shop"}
    elif kind == "identify":
        event["traits"] = traits
        traits = {}
    else:
        event["event"] = name
        if name in ("Product Added", "Product Viewed", "Product Added to Wishlist"):
            properties = _product(rng, 0)
            properties["currency"] = "USD"
            if rng.random() < 0.5:
                properties["value"] = properties["price"]
        elif name in ("Order Completed", "Checkout Started", "Payment Info Entered"):
            products = [_product(rng, i) for i in range(rng.choice((1, 2, 2, 3, 5)))]
            properties = {
                "order_id": f"order-{rng.randrange(10**9)}",
                "currency": rng.choice(("USD", "usd", "EUR")),
                "products": products,
            }
            if rng.random() < 0.7:
                properties["revenue"] = round(rng.uniform(5, 500), 2)
        elif name == "Products Searched":
            properties = {"query": rng.choice(_QUERIES)}
        if rng.random() < 0.1:
            properties["email"] = f"Buyer.{user}@Example.com"
    if traits:
        context["traits"] = traits
    event["properties"] = properties
    return event


def iter_events(count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """The events of ``generate_events(count, seed)`` one at a time, for inputs too big to hold."""
    rng = random.Random(seed)
    kinds = [(kind, name) for kind, name, _ in MIX]
    weights = [weight for _, _, weight in MIX]
    for index in range(count):
        yield _event(rng, index, *rng.choices(kinds, weights)[0])


def generate_events(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` events of the mix above; equal arguments give equal events everywhere."""
    return list(iter_events(count, seed))


if __name__ == "__main__":
    import json
    import sys

    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for generated in iter_events(total, int(sys.argv[2]) if len(sys.argv) > 2 else 0):
        sys.stdout.write(json.dumps(generated, separators=(",", ":")) + "\n")
