"""Writes segment_cases.json: raw Segment-spec event -> the exact TikTok data[] items expected.

End to end through the real framework: presets (triggers) of the ``default``
bundle (and, where a case says so, ``default`` + ``extended``), the default
mapping ``mappings/tiktok/report_web_event.yaml``, then the TikTok web action.
Each case lists, for every preset that fires, the route (event_source,
event_source_id), the exact ``data[]`` item and the fields of its warnings, or
the payload error (its field and event_id) that stops it. A case with an
empty ``expected`` list is an event that matches nothing.

Expected values are written by hand: digests are computed here with hashlib
from normalised strings written out by hand (phones as the E.164 string
worked out by hand), event times as integers worked out by hand, never by
the code under test, so the table is an independent statement of the rules
in tiktok-events-api.md. Regenerate with
``python tests/data/make_segment_cases.py`` after editing a case.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

NOW = 1705708800  # 2024-01-20T00:00:00Z, the clock every case runs with
SETTINGS = {"access_token": "segment-case-token-not-secret", "pixel_code": "CPIXEL123"}
ROUTE = {"event_source": "web", "event_source_id": "CPIXEL123"}
DEFAULT = ["default"]
EXTENDED = ["default", "extended"]

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
IP = "203.0.113.7"
T = "2024-01-15T12:00:00.000Z"
T_S = 1705320000  # T in Unix seconds


def H(normalised: str) -> str:
    """SHA-256 hex of a value already normalised by hand."""
    return hashlib.sha256(normalised.encode()).hexdigest()


def content_hash_event_id(event: dict[str, Any]) -> str:
    """The documented fallback id: "h-" + sha256(canonical JSON without volatile keys)[:32]."""
    content = {
        k: v
        for k, v in event.items()
        if k not in ("messageId", "sentAt", "receivedAt", "_metadata")
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def track(name: str, message_id: str | None, properties: dict[str, Any] | None = None, **extra):
    """A Segment track call at T (``timestamp=None`` drops it); ``extra`` adds top-level keys."""
    event: dict[str, Any] = {"type": "track", "event": name}
    if message_id is not None:
        event["messageId"] = message_id
    event["timestamp"] = T
    if properties is not None:
        event["properties"] = properties
    event.update(extra)
    for key in [k for k, v in event.items() if v is None]:
        del event[key]  # ``timestamp=None`` / ``userId=None`` remove the key
    return event


def props(**fields: Any) -> dict[str, Any]:
    """An item's properties: the default mapping sends content_type 'product' on every event."""
    return {"content_type": "product", **fields}


def item(event: str, event_id: str, user: dict[str, Any] | None, **rest: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"event": event, "event_time": rest.pop("event_time", T_S)}
    out["event_id"] = event_id
    if user:
        out["user"] = user
    out["properties"] = rest.pop("properties", props())
    out.update(rest)
    return out


def sent(preset: str, data_item: dict[str, Any], warnings: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"preset": preset, "route": ROUTE, "item": data_item, "warnings": list(warnings)}


def refused(preset: str, field: str, event_id: str) -> dict[str, Any]:
    """The action raises PayloadError(field=...) for this preset's payload."""
    return {"preset": preset, "error": {"field": field, "event_id": event_id}}


CASES: list[dict[str, Any]] = []


def case(name: str, event: dict[str, Any], expected: list[dict[str, Any]], **extra: Any) -> None:
    CASES.append(
        {
            "name": name,
            "bundles": extra.pop("bundles", DEFAULT),
            "event": copy.deepcopy(event),
            "expected": expected,
            **extra,
        }
    )


PRODUCTS = [
    {
        "product_id": "507f1f77",
        "sku": "45790-32",
        "name": "Monopoly",
        "category": "Games",
        "brand": "Hasbro",
        "price": 19,
        "quantity": 1,
    },
    {"product_id": 505, "name": "Uno", "category": "Games", "price": "3.45", "quantity": 2},
]
CONTENTS = [
    {
        "content_id": "507f1f77",
        "content_name": "Monopoly",
        "content_category": "Games",
        "brand": "Hasbro",
        "price": 19,
        "quantity": 1,
    },
    {
        "content_id": "505",
        "content_name": "Uno",
        "content_category": "Games",
        "price": 3.45,
        "quantity": 2,
    },
]

# --- the default bundle, one preset at a time -------------------------------------------

case(
    "Product Added: AddToCart with full context, value computed from the product",
    track(
        "Product Added",
        "msg-001",
        {
            "cart_id": "skdjsidjsdkdj29j",
            "product_id": "507f1f77bcf86cd799439011",
            "sku": "G-32",
            "category": "Office",
            "name": "Red Stapler",
            "brand": "Swingline",
            "variant": "red",
            "price": 18.99,
            "quantity": 1,
            "currency": "USD",
        },
        userId="user-1001",
        anonymousId="anon-1001",
        context={
            "ip": IP,
            "userAgent": UA,
            "locale": "en-US",
            "page": {
                "url": "https://shop.example.com/products/red-stapler",
                "referrer": "https://www.tiktok.com/",
            },
            "traits": {"email": " Peter.Gibbons@Initech.com "},
        },
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-001",
                {
                    "email": [H("peter.gibbons@initech.com")],
                    "external_id": [H("user-1001")],
                    "ip": IP,
                    "user_agent": UA,
                    "locale": "en-US",
                },
                properties=props(
                    contents=[
                        {
                            "content_id": "507f1f77bcf86cd799439011",
                            "content_name": "Red Stapler",
                            "content_category": "Office",
                            "brand": "Swingline",
                            "price": 18.99,
                            "quantity": 1,
                        }
                    ],
                    currency="USD",
                    value=18.99,
                ),
                page={
                    "url": "https://shop.example.com/products/red-stapler",
                    "referrer": "https://www.tiktok.com/",
                },
            ),
        )
    ],
)
case(
    "Product Added: numeric product_id sent as a string, numeric-string price read",
    track(
        "Product Added",
        "msg-002",
        {"product_id": 505, "name": "Uno", "price": "3.45", "quantity": 2},
        anonymousId="anon-2002",
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-002",
                {"external_id": [H("anon-2002")]},
                properties=props(
                    contents=[
                        {"content_id": "505", "content_name": "Uno", "price": 3.45, "quantity": 2}
                    ],
                    value=6.9,
                ),
            ),
        )
    ],
)
case(
    "Product Added to Wishlist: AddToWishlist, no quantity so no computed value",
    track(
        "Product Added to Wishlist",
        "msg-003",
        {"wishlist_id": "w-1", "product_id": "sku-77", "name": "Throw Pillow", "price": 25},
        userId="user-1003",
    ),
    [
        sent(
            "Add to Wishlist",
            item(
                "AddToWishlist",
                "msg-003",
                {"external_id": [H("user-1003")]},
                properties=props(
                    contents=[{"content_id": "sku-77", "content_name": "Throw Pillow", "price": 25}]
                ),
            ),
        )
    ],
)
case(
    "Order Completed: PlaceAnOrder, numeric order_id as string, revenue as value, currency uppercased",
    track(
        "Order Completed",
        "msg-004",
        {
            "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
            "order_id": 50314,
            "total": 27.5,
            "revenue": 25.0,
            "shipping": 3,
            "tax": 2,
            "currency": "usd",
            "products": PRODUCTS,
        },
        userId="user-1004",
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-004",
                {"external_id": [H("user-1004")]},
                properties=props(contents=CONTENTS, currency="USD", value=25.0, order_id="50314"),
            ),
        )
    ],
)
case(
    "Order Completed: properties.value wins over revenue",
    track(
        "Order Completed",
        "msg-005",
        {"order_id": "o-5", "value": 30, "revenue": 25, "currency": "EUR"},
        userId="user-1005",
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-005",
                {"external_id": [H("user-1005")]},
                properties=props(currency="EUR", value=30, order_id="o-5"),
            ),
        )
    ],
)
case(
    "Order Completed: no value nor revenue, value = sum(price x quantity) (total is not mapped)",
    track(
        "Order Completed",
        "msg-006",
        {"order_id": "o-6", "total": 27.5, "currency": "USD", "products": PRODUCTS},
        userId="user-1006",
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-006",
                {"external_id": [H("user-1006")]},
                # 19 x 1 + 3.45 x 2
                properties=props(contents=CONTENTS, currency="USD", value=25.9, order_id="o-6"),
            ),
        )
    ],
)
case(
    "Order Completed: a value of 0 is a real value (kept over revenue)",
    track(
        "Order Completed",
        "msg-007",
        {"order_id": "o-7", "value": 0, "revenue": 12, "currency": "USD"},
        userId="user-1007",
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-007",
                {"external_id": [H("user-1007")]},
                properties=props(currency="USD", value=0, order_id="o-7"),
            ),
        )
    ],
)
case(
    "Products Searched: Search with query and search_string",
    track("Products Searched", "msg-008", {"query": "blue hotpants"}, userId="user-1008"),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-008",
                {"external_id": [H("user-1008")]},
                properties=props(query="blue hotpants", search_string="blue hotpants"),
            ),
        )
    ],
)
case(
    "Checkout Started: InitiateCheckout, anonymous user, string prices and quantities",
    track(
        "Checkout Started",
        "msg-009",
        {
            "order_id": "50314",
            "value": 30,
            "revenue": 25,
            "currency": "EUR",
            "products": [
                {"product_id": "p-1", "price": "10.50", "quantity": "2"},
                {"product_id": "p-2", "price": 9, "quantity": 1},
            ],
        },
        anonymousId="anon-2009",
    ),
    [
        sent(
            "Initiate Checkout",
            item(
                "InitiateCheckout",
                "msg-009",
                {"external_id": [H("anon-2009")]},
                properties=props(
                    contents=[
                        {"content_id": "p-1", "price": 10.5, "quantity": 2},
                        {"content_id": "p-2", "price": 9, "quantity": 1},
                    ],
                    currency="EUR",
                    value=30,
                    order_id="50314",
                ),
            ),
        )
    ],
)
case(
    "Payment Info Entered: AddPaymentInfo without products",
    track(
        "Payment Info Entered",
        "msg-010",
        {"checkout_id": "c-10", "order_id": "o-10", "step": 2, "payment_method": "Visa"},
        userId="user-1010",
    ),
    [
        sent(
            "Add Payment Info",
            item(
                "AddPaymentInfo",
                "msg-010",
                {"external_id": [H("user-1010")]},
                properties=props(order_id="o-10"),
            ),
        )
    ],
)
case(
    "Checkout Started: content_ids numbers as strings (deduplicated), num_items read",
    track(
        "Checkout Started",
        "msg-011",
        {"content_ids": [101, "102", 101], "num_items": "3", "currency": "USD", "value": 42},
        userId="user-1011",
    ),
    [
        sent(
            "Initiate Checkout",
            item(
                "InitiateCheckout",
                "msg-011",
                {"external_id": [H("user-1011")]},
                properties=props(content_ids=["101", "102"], currency="USD", value=42, num_items=3),
            ),
        )
    ],
)
case(
    "Page: ViewContent with url, referrer and ttclid from the page URL query",
    {
        "type": "page",
        "name": "Red Stapler",
        "messageId": "msg-012",
        "timestamp": T,
        "anonymousId": "anon-2012",
        "properties": {
            "title": "Red Stapler",
            "url": "https://shop.example.com/p/red-stapler?utm_source=tiktok&ttclid=E.C.P.CqQBabc123",
        },
        "context": {
            "ip": IP,
            "userAgent": UA,
            "page": {
                "url": "https://shop.example.com/p/red-stapler?utm_source=tiktok&ttclid=E.C.P.CqQBabc123",
                "referrer": "https://www.tiktok.com/",
            },
        },
    },
    [
        sent(
            "View Content",
            item(
                "ViewContent",
                "msg-012",
                {
                    "external_id": [H("anon-2012")],
                    "ttclid": "E.C.P.CqQBabc123",
                    "ip": IP,
                    "user_agent": UA,
                },
                page={
                    "url": "https://shop.example.com/p/red-stapler?utm_source=tiktok&ttclid=E.C.P.CqQBabc123",
                    "referrer": "https://www.tiktok.com/",
                },
            ),
        )
    ],
)
case(
    "Page without context.page: properties.url is not mapped, no page object",
    {
        "type": "page",
        "name": "Home",
        "messageId": "msg-013",
        "timestamp": T,
        "userId": "user-1013",
        "properties": {"url": "https://shop.example.com/", "title": "Home"},
    },
    [sent("View Content", item("ViewContent", "msg-013", {"external_id": [H("user-1013")]}))],
)

# --- events that match nothing ------------------------------------------------------------

case(
    "Screen call matches nothing",
    {
        "type": "screen",
        "name": "Home",
        "messageId": "msg-014",
        "timestamp": T,
        "userId": "user-1014",
        "properties": {"variation": "blue signup button"},
    },
    [],
)
case(
    "Identify call matches nothing (even with an email trait)",
    {
        "type": "identify",
        "messageId": "msg-015",
        "timestamp": T,
        "userId": "user-1015",
        "traits": {"email": "peter@example.com", "name": "Peter Gibbons"},
    },
    [],
)
case(
    "Identify call matches nothing with the extended bundle either",
    {
        "type": "identify",
        "messageId": "msg-016",
        "timestamp": T,
        "userId": "user-1016",
        "traits": {"email": "peter@example.com"},
    },
    [],
    bundles=EXTENDED,
)
case(
    "Group call matches nothing",
    {
        "type": "group",
        "messageId": "msg-017",
        "timestamp": T,
        "userId": "user-1017",
        "groupId": "0e8c78ea9d97a7b8185e8632",
        "traits": {"name": "Initech", "industry": "Technology"},
    },
    [],
)
case(
    "Alias call matches nothing",
    {
        "type": "alias",
        "messageId": "msg-018",
        "timestamp": T,
        "previousId": "anon-2018",
        "userId": "user-1018",
    },
    [],
)
case(
    "Track event without a preset (Cart Viewed) matches nothing",
    track("Cart Viewed", "msg-019", {"cart_id": "c-19"}, userId="user-1019"),
    [],
)
case(
    "Trigger is case-sensitive: 'product added' matches nothing",
    track("product added", "msg-020", {"product_id": "p-20"}, userId="user-1020"),
    [],
)
case(
    "Extended event (Signed Up) with the default bundle only matches nothing",
    track("Signed Up", "msg-021", {"type": "organic"}, userId="user-1021"),
    [],
)
case(
    "Extended event (Product Viewed) with the default bundle only matches nothing",
    track("Product Viewed", "msg-022", {"product_id": "sku-22"}, userId="user-1022"),
    [],
)

# --- the extended bundle --------------------------------------------------------------------

case(
    "extended Product Viewed: ViewContent with contents and computed value",
    track(
        "Product Viewed",
        "msg-023",
        {"product_id": "sku-1", "name": "Lamp", "category": "Home", "price": 5, "quantity": 3},
        userId="user-1023",
    ),
    [
        sent(
            "Product Viewed",
            item(
                "ViewContent",
                "msg-023",
                {"external_id": [H("user-1023")]},
                properties=props(
                    contents=[
                        {
                            "content_id": "sku-1",
                            "content_name": "Lamp",
                            "content_category": "Home",
                            "price": 5,
                            "quantity": 3,
                        }
                    ],
                    value=15,
                ),
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Product Clicked: ClickButton with contents",
    track(
        "Product Clicked",
        "msg-024",
        {"product_id": "sku-2", "name": "Desk", "brand": "Acme", "price": 120.5},
        userId="user-1024",
    ),
    [
        sent(
            "Product Clicked",
            item(
                "ClickButton",
                "msg-024",
                {"external_id": [H("user-1024")]},
                properties=props(
                    contents=[
                        {
                            "content_id": "sku-2",
                            "content_name": "Desk",
                            "brand": "Acme",
                            "price": 120.5,
                        }
                    ]
                ),
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Signed Up: CompleteRegistration with names, zip hashed and address plain",
    track(
        "Signed Up",
        "msg-025",
        {"type": "organic"},
        userId="user-1025",
        context={
            "traits": {
                "email": "Mary@Example.com",
                "firstName": " Mary Ann ",
                "last_name": "O'Neil",
                "address": {
                    "city": "London",
                    "state": "England",
                    "country": "GB",
                    "postal_code": "SW1A 1AA",
                },
            }
        },
    ),
    [
        sent(
            "Signed Up",
            item(
                "CompleteRegistration",
                "msg-025",
                {
                    "email": [H("mary@example.com")],
                    "external_id": [H("user-1025")],
                    "first_name": H("maryann"),
                    "last_name": H("o'neil"),
                    "zip_code": H("sw1a1aa"),
                    "city": "London",
                    "state": "England",
                    "country": "GB",
                },
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Form Submitted: Lead with email and phone from the form properties",
    track(
        "Form Submitted",
        "msg-026",
        {"form_id": "contact-us", "email": "LEAD@Example.org", "phone": "+44 7911 123456"},
        anonymousId="anon-2026",
    ),
    [
        sent(
            "Form Submitted",
            item(
                "Lead",
                "msg-026",
                {
                    "email": [H("lead@example.org")],
                    "phone": [H("+447911123456")],
                    "external_id": [H("anon-2026")],
                },
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Callback Started: Contact with a local US phone made E.164",
    track(
        "Callback Started",
        "msg-027",
        {},
        userId="user-1027",
        context={"traits": {"phone": "(213) 373-4253"}},
    ),
    [
        sent(
            "Callback Started",
            item(
                "Contact",
                "msg-027",
                {"phone": [H("+12133734253")], "external_id": [H("user-1027")]},
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Subscription Created: Subscribe with value string, currency, predicted_ltv",
    track(
        "Subscription Created",
        "msg-028",
        {"plan": "annual", "value": "9.99", "currency": "usd", "predicted_ltv": 120},
        userId="user-1028",
    ),
    [
        sent(
            "Subscription Created",
            item(
                "Subscribe",
                "msg-028",
                {"external_id": [H("user-1028")]},
                properties=props(currency="USD", value=9.99, predicted_ltv=120),
            ),
        )
    ],
    bundles=EXTENDED,
)
case(
    "extended Download Link Clicked: Download with description",
    track(
        "Download Link Clicked",
        "msg-029",
        {"description": "Pricing whitepaper (PDF)", "link_url": "https://example.com/w.pdf"},
        userId="user-1029",
    ),
    [
        sent(
            "Download Link Clicked",
            item(
                "Download",
                "msg-029",
                {"external_id": [H("user-1029")]},
                properties=props(description="Pricing whitepaper (PDF)"),
            ),
        )
    ],
    bundles=EXTENDED,
)
PAGE_WITH_EVENT = {
    "type": "page",
    "event": "Product Viewed",
    "name": "Lamp",
    "messageId": "msg-030",
    "timestamp": T,
    "userId": "user-1030",
    "properties": {"product_id": "sku-30", "name": "Lamp"},
}
case(
    "Two presets fire: a page call carrying event 'Product Viewed' (View Content + Product Viewed)",
    PAGE_WITH_EVENT,
    [
        sent("View Content", item("ViewContent", "msg-030", {"external_id": [H("user-1030")]})),
        sent(
            "Product Viewed",
            item(
                "ViewContent",
                "msg-030",
                {"external_id": [H("user-1030")]},
                properties=props(contents=[{"content_id": "sku-30", "content_name": "Lamp"}]),
            ),
        ),
    ],
    bundles=EXTENDED,
)
case(
    "The same page call with the default bundle only: one item",
    {**PAGE_WITH_EVENT, "messageId": "msg-031"},
    [sent("View Content", item("ViewContent", "msg-031", {"external_id": [H("user-1030")]}))],
)

# --- identifiers: where they come from and in which order -----------------------------------

ALL_EMAILS = {
    "properties": {"query": "stapler", "email": "Form@Example.com"},
    "context": {"traits": {"email": "Ctx@Example.com"}},
    "traits": {"email": "Top@Example.com"},
}


def search_event(message_id: str, sources: dict[str, Any], **extra: Any) -> dict[str, Any]:
    event = track("Products Searched", message_id, **extra)
    event.update(copy.deepcopy(sources))
    return event


SEARCH_PROPS = props(query="stapler", search_string="stapler")
case(
    "email: properties.email wins over context.traits and traits",
    search_event("msg-032", ALL_EMAILS, userId="user-1032"),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-032",
                {"email": [H("form@example.com")], "external_id": [H("user-1032")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "email: context.traits wins over top-level traits",
    search_event(
        "msg-033",
        {
            "properties": {"query": "stapler"},
            "context": {"traits": {"email": "Ctx@Example.com"}},
            "traits": {"email": "Top@Example.com"},
        },
        userId="user-1033",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-033",
                {"email": [H("ctx@example.com")], "external_id": [H("user-1033")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "email: top-level traits used when nothing else has one",
    search_event(
        "msg-034",
        {"properties": {"query": "stapler"}, "traits": {"email": "Top@Example.com"}},
        userId="user-1034",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-034",
                {"email": [H("top@example.com")], "external_id": [H("user-1034")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "email: an empty properties.email falls back to context.traits",
    search_event(
        "msg-035",
        {
            "properties": {"query": "stapler", "email": ""},
            "context": {"traits": {"email": "Ctx@Example.com"}},
        },
        userId="user-1035",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-035",
                {"email": [H("ctx@example.com")], "external_id": [H("user-1035")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "email: already a SHA-256 digest in uppercase hex, passed through lowercased",
    search_event(
        "msg-036",
        {
            "properties": {"query": "stapler"},
            "context": {"traits": {"email": H("alice@example.com").upper()}},
        },
        userId="user-1036",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-036",
                {"email": [H("alice@example.com")], "external_id": [H("user-1036")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "phone: context.traits wins over traits; local US number made +1 E.164",
    search_event(
        "msg-037",
        {
            "properties": {"query": "stapler"},
            "context": {"traits": {"phone": "(415) 555-0123"}},
            "traits": {"phone": "+44 7911 123456"},
        },
        userId="user-1037",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-037",
                {"phone": [H("+14155550123")], "external_id": [H("user-1037")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "phone: properties.phone wins, spaces removed from an E.164 number",
    search_event(
        "msg-038",
        {
            "properties": {"query": "stapler", "phone": "+44 7911 123456"},
            "context": {"traits": {"phone": "(415) 555-0123"}},
        },
        userId="user-1038",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-038",
                {"phone": [H("+447911123456")], "external_id": [H("user-1038")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
)
case(
    "phone: national number with default_phone_region GB loses its leading 0",
    search_event(
        "msg-039",
        {"properties": {"query": "stapler"}, "context": {"traits": {"phone": "07911 123456"}}},
        userId="user-1039",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-039",
                {"phone": [H("+447911123456")], "external_id": [H("user-1039")]},
                properties=SEARCH_PROPS,
            ),
        )
    ],
    settings={"default_phone_region": "GB"},
)
case(
    "phone: not a phone number, dropped with a warning (event still sent by external_id)",
    search_event(
        "msg-040",
        {"properties": {"query": "stapler"}, "context": {"traits": {"phone": "n/a"}}},
        userId="user-1040",
    ),
    [
        sent(
            "Search",
            item("Search", "msg-040", {"external_id": [H("user-1040")]}, properties=SEARCH_PROPS),
            warnings=("phone",),
        )
    ],
)
case(
    "external_id: userId wins over anonymousId",
    search_event(
        "msg-041", {"properties": {"query": "stapler"}}, userId="user-1041", anonymousId="anon-2041"
    ),
    [
        sent(
            "Search",
            item("Search", "msg-041", {"external_id": [H("user-1041")]}, properties=SEARCH_PROPS),
        )
    ],
)
case(
    "external_id: an empty userId falls back to anonymousId",
    search_event(
        "msg-042", {"properties": {"query": "stapler"}}, userId="", anonymousId="anon-2042"
    ),
    [
        sent(
            "Search",
            item("Search", "msg-042", {"external_id": [H("anon-2042")]}, properties=SEARCH_PROPS),
        )
    ],
)
case(
    "external_id: a numeric userId is hashed as its decimal text",
    search_event("msg-043", {"properties": {"query": "stapler"}}, userId=12345),
    [
        sent(
            "Search",
            item("Search", "msg-043", {"external_id": [H("12345")]}, properties=SEARCH_PROPS),
        )
    ],
)

# --- ttclid and ttp -----------------------------------------------------------------------

URL_WITH_TTCLID = "https://shop.example.com/?ttclid=E.C.P.fromurl"
case(
    "ttclid: properties.ttclid wins over the page URL query",
    track(
        "Products Searched",
        "msg-044",
        {"query": "lamp", "ttclid": "E.C.P.fromprops"},
        userId="user-1044",
        context={"page": {"url": URL_WITH_TTCLID}},
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-044",
                {"external_id": [H("user-1044")], "ttclid": "E.C.P.fromprops"},
                properties=props(query="lamp", search_string="lamp"),
                page={"url": URL_WITH_TTCLID},
            ),
        )
    ],
)
case(
    "ttclid and ttp from integrations.'TikTok Conversions'",
    track(
        "Product Added",
        "msg-045",
        {"product_id": "p-45"},
        userId="user-1045",
        integrations={"TikTok Conversions": {"ttclid": "E.C.P.fromint", "ttp": "ttp-from-int"}},
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-045",
                {
                    "external_id": [H("user-1045")],
                    "ttclid": "E.C.P.fromint",
                    "ttp": "ttp-from-int",
                },
                properties=props(contents=[{"content_id": "p-45"}]),
            ),
        )
    ],
)
case(
    "ttclid: an empty properties.ttclid falls back to the page URL query",
    track(
        "Product Added",
        "msg-046",
        {"product_id": "p-46", "ttclid": ""},
        userId="user-1046",
        context={"page": {"url": URL_WITH_TTCLID}},
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-046",
                {"external_id": [H("user-1046")], "ttclid": "E.C.P.fromurl"},
                properties=props(contents=[{"content_id": "p-46"}]),
                page={"url": URL_WITH_TTCLID},
            ),
        )
    ],
)
case(
    "ttp from properties.ttp, the only identifier",
    track("Product Added", "msg-047", {"product_id": "p-47", "ttp": "2Qx9ttpvalue"}, userId=None),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-047",
                {"ttp": "2Qx9ttpvalue"},
                properties=props(contents=[{"content_id": "p-47"}]),
            ),
        )
    ],
)
COOKIE = "_ga=GA1.1.1; _ttp=ttp-from-cookie; theme=dark"
COOKIE_MAPPING = {"cookie": "context.cookie"}
case(
    "_ttp cookie: the default mapping maps no cookie, so no ttp",
    track(
        "Product Added",
        "msg-048",
        {"product_id": "p-48"},
        userId="user-1048",
        context={"cookie": COOKIE},
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-048",
                {"external_id": [H("user-1048")]},
                properties=props(contents=[{"content_id": "p-48"}]),
            ),
        )
    ],
)
case(
    "_ttp cookie: with a user mapping 'cookie: context.cookie', ttp read from the cookie",
    track(
        "Product Added",
        "msg-049",
        {"product_id": "p-49"},
        userId="user-1049",
        context={"cookie": COOKIE},
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-049",
                {"external_id": [H("user-1049")], "ttp": "ttp-from-cookie"},
                properties=props(contents=[{"content_id": "p-49"}]),
            ),
        )
    ],
    mapping_fields=COOKIE_MAPPING,
)
case(
    "_ttp cookie: a mapped ttp wins over the cookie",
    track(
        "Product Added",
        "msg-050",
        {"product_id": "p-50", "ttp": "ttp-from-props"},
        userId="user-1050",
        context={"cookie": {"_ttp": "ttp-from-cookie"}},
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-050",
                {"external_id": [H("user-1050")], "ttp": "ttp-from-props"},
                properties=props(contents=[{"content_id": "p-50"}]),
            ),
        )
    ],
    mapping_fields=COOKIE_MAPPING,
)

# --- timestamps -----------------------------------------------------------------------------


def timed(message_id: str, **times: Any) -> dict[str, Any]:
    return track("Products Searched", message_id, {"query": "x"}, userId="user-ts", **times)


def timed_item(message_id: str, event_time: int) -> dict[str, Any]:
    return item(
        "Search",
        message_id,
        {"external_id": [H("user-ts")]},
        event_time=event_time,
        properties=props(query="x", search_string="x"),
    )


case(
    "timestamp: ISO 8601 without zone is UTC",
    timed("msg-051", timestamp="2024-01-15T12:00:00"),
    [sent("Search", timed_item("msg-051", T_S))],
)
case(
    "timestamp: ISO 8601 with a -05:00 offset",
    timed("msg-052", timestamp="2024-01-15T07:00:00-05:00"),
    [sent("Search", timed_item("msg-052", T_S))],
)
case(
    "timestamp: milliseconds are truncated, never rounded up",
    timed("msg-053", timestamp="2024-01-15T12:00:00.999Z"),
    [sent("Search", timed_item("msg-053", T_S))],
)
case(
    "timestamp: originalTimestamp is used when timestamp is absent (before sentAt)",
    timed(
        "msg-054",
        timestamp=None,
        originalTimestamp="2024-01-16T00:00:00.000Z",
        sentAt="2024-01-17T00:00:00.000Z",
    ),
    [sent("Search", timed_item("msg-054", 1705363200))],  # 2024-01-16T00:00:00Z
)
case(
    "timestamp: sentAt is used when timestamp and originalTimestamp are absent",
    timed("msg-055", timestamp=None, sentAt="2024-01-17T00:00:00.000Z"),
    [sent("Search", timed_item("msg-055", 1705449600))],  # 2024-01-17T00:00:00Z
)
case(
    "timestamp: Unix milliseconds (a number) sent as seconds",
    timed("msg-056", timestamp=1705320000123),
    [sent("Search", timed_item("msg-056", T_S))],
)
case(
    "timestamp: older than 28 days, sent with a warning",
    timed("msg-057", timestamp="2023-12-01T00:00:00Z"),
    [sent("Search", timed_item("msg-057", 1701388800), warnings=("timestamp",))],
)

# --- limited_data_use, empty values, page ---------------------------------------------------

case(
    "limited_data_use: true from properties",
    track(
        "Order Completed", "msg-058", {"order_id": "o-58", "limited_data_use": True}, userId="u58"
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-058",
                {"external_id": [H("u58")]},
                properties=props(order_id="o-58"),
                limited_data_use=True,
            ),
        )
    ],
)
case(
    "limited_data_use: true from the settings default",
    track("Order Completed", "msg-059", {"order_id": "o-59"}, userId="u59"),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-059",
                {"external_id": [H("u59")]},
                properties=props(order_id="o-59"),
                limited_data_use=True,
            ),
        )
    ],
    settings={"limited_data_use": True},
)
case(
    "limited_data_use: false in properties wins over the setting",
    track(
        "Order Completed", "msg-060", {"order_id": "o-60", "limited_data_use": False}, userId="u60"
    ),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-060",
                {"external_id": [H("u60")]},
                properties=props(order_id="o-60"),
                limited_data_use=False,
            ),
        )
    ],
    settings={"limited_data_use": True},
)
case(
    "Empty strings are omitted, never sent as ''",
    track(
        "Products Searched",
        "msg-061",
        {"query": "", "order_id": "", "description": "", "email": "", "value": ""},
        userId="user-1061",
        context={
            "ip": "",
            "userAgent": "",
            "locale": "",
            "page": {"url": "", "referrer": ""},
            "traits": {"email": "", "phone": "", "firstName": "", "address": {"city": ""}},
        },
        integrations={"TikTok Conversions": {"ttclid": "", "ttp": ""}},
    ),
    [sent("Search", item("Search", "msg-061", {"external_id": [H("user-1061")]}))],
)
# Empty values count as absent (tiktok-events-api.md: "Omit empty values").
case(
    "Empty currency '' is omitted and the event sent",
    track("Products Searched", "msg-073", {"query": "lamp", "currency": ""}, userId="user-1073"),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-073",
                {"external_id": [H("user-1073")]},
                properties=props(query="lamp", search_string="lamp"),
            ),
        )
    ],
)
case(
    "Empty num_items, delivery_category, predicted_ltv, limited_data_use '' are omitted",
    track(
        "Products Searched",
        "msg-076",
        {
            "query": "tent",
            "currency": "  ",
            "num_items": "",
            "delivery_category": "",
            "predicted_ltv": " ",
            "limited_data_use": "",
        },
        userId="user-1076",
    ),
    [
        sent(
            "Search",
            item(
                "Search",
                "msg-076",
                {"external_id": [H("user-1076")]},
                properties=props(query="tent", search_string="tent"),
            ),
        )
    ],
)
case(
    "Empty revenue '' is omitted and the event sent",
    track("Order Completed", "msg-074", {"order_id": "o-74", "revenue": ""}, userId="user-1074"),
    [
        sent(
            "Place an Order",
            item(
                "PlaceAnOrder",
                "msg-074",
                {"external_id": [H("user-1074")]},
                properties=props(order_id="o-74"),
            ),
        )
    ],
)
case(
    "Empty product price and quantity '' are omitted and the event sent",
    track(
        "Product Added",
        "msg-075",
        {"product_id": "p-75", "price": "", "quantity": ""},
        userId="user-1075",
    ),
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                "msg-075",
                {"external_id": [H("user-1075")]},
                properties=props(contents=[{"content_id": "p-75"}]),
            ),
        )
    ],
)
case(
    "A non-http referrer is dropped with a warning",
    {
        "type": "page",
        "messageId": "msg-062",
        "timestamp": T,
        "userId": "user-1062",
        "context": {
            "page": {
                "url": "https://m.example.com/",
                "referrer": "android-app://com.zhiliaoapp.musically/",
            }
        },
    },
    [
        sent(
            "View Content",
            item(
                "ViewContent",
                "msg-062",
                {"external_id": [H("user-1062")]},
                page={"url": "https://m.example.com/"},
            ),
            warnings=("referrer",),
        )
    ],
)

# --- event_id without a messageId -----------------------------------------------------------

NO_MESSAGE_ID = track(
    "Product Added",
    None,
    {"product_id": "p-63", "price": 4, "quantity": 2},
    userId="user-1063",
    sentAt="2024-01-15T12:00:01.000Z",
    receivedAt="2024-01-15T12:00:02.000Z",
)
case(
    "No messageId: event_id is the content hash of the event (event_id_for)",
    NO_MESSAGE_ID,
    [
        sent(
            "Add to Cart",
            item(
                "AddToCart",
                content_hash_event_id(NO_MESSAGE_ID),
                {"external_id": [H("user-1063")]},
                properties=props(
                    contents=[{"content_id": "p-63", "price": 4, "quantity": 2}], value=8
                ),
            ),
        )
    ],
)

# --- payload errors: the event is refused, naming the field ---------------------------------

case(
    "Unparseable timestamp: payload error naming timestamp",
    timed("msg-064", timestamp="yesterday"),
    [refused("Search", "timestamp", "msg-064")],
)
case(
    "Impossible date (month 13): payload error naming timestamp",
    timed("msg-065", timestamp="2024-13-45T00:00:00Z"),
    [refused("Search", "timestamp", "msg-065")],
)
case(
    "No timestamp of any kind: the payload schema refuses it, naming timestamp",
    timed("msg-066", timestamp=None),
    [],
    match_error={"field": "timestamp", "event_id": "msg-066", "preset": "Search"},
)
case(
    "Price not a number: the payload schema refuses it, naming contents.0.price",
    track("Product Added", "msg-067", {"product_id": "p-67", "price": "abc"}, userId="u67"),
    [],
    match_error={"field": "contents.0.price", "event_id": "msg-067", "preset": "Add to Cart"},
)
case(
    "Second product's price '12,99' not a number: naming contents.1.price",
    track(
        "Order Completed",
        "msg-068",
        {
            "order_id": "o-68",
            "products": [
                {"product_id": "a", "price": 1, "quantity": 1},
                {"product_id": "b", "price": "12,99", "quantity": 1},
            ],
        },
        userId="u68",
    ),
    [],
    match_error={"field": "contents.1.price", "event_id": "msg-068", "preset": "Place an Order"},
)
case(
    "Price '1e999' overflows to infinity: payload error naming contents[0].price",
    track("Product Added", "msg-069", {"product_id": "p-69", "price": "1e999"}, userId="u69"),
    [refused("Add to Cart", "contents[0].price", "msg-069")],
)
case(
    "Page URL not http(s): the payload schema refuses it, naming url",
    {
        "type": "page",
        "messageId": "msg-070",
        "timestamp": T,
        "userId": "user-1070",
        "context": {"page": {"url": "ftp://files.example.com/catalog"}},
    },
    [],
    match_error={"field": "url", "event_id": "msg-070", "preset": "View Content"},
)
case(
    "No identifier at all (no userId, anonymousId or traits): payload error naming user",
    track("Product Added", "msg-071", {"product_id": "p-71"}),
    [refused("Add to Cart", "user", "msg-071")],
)
case(
    "Only identifier an unusable email: payload error naming email",
    track("Signed Up", "msg-072", {"email": "not-an-email"}),
    [refused("Signed Up", "email", "msg-072")],
    bundles=EXTENDED,
)


def render() -> str:
    document = {"now": NOW, "settings": SETTINGS, "cases": CASES}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    out = Path(__file__).with_name("segment_cases.json")
    out.write_text(render())
    print(f"wrote {len(CASES)} cases to {out}")
