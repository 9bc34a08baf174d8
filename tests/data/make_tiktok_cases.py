"""Writes tiktok_cases.json: mapped payload -> the exact TikTok data[] item expected.

Expected digests are computed here with hashlib from normalised strings
written out by hand (never by the code under test), so the table is an
independent statement of the rules in tiktok-events-api.md. Regenerate with
``python tests/data/make_tiktok_cases.py`` after editing a case.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

NOW = 1705708800  # 2024-01-20T00:00:00Z, the clock every case runs with
SETTINGS = {
    "access_token": "case-token-not-secret",
    "pixel_code": "CPIXEL123",
    "offline_event_set_id": "OFFSET456",
    "crm_event_set_id": "CRMSET789",
}


def H(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
T = "2024-01-15T12:00:00.000Z"
T_S = 1705320000

CASES: list[dict[str, Any]] = []


def case(name: str, payload: dict[str, Any], expected: dict[str, Any], **extra: Any) -> None:
    CASES.append(
        {
            "name": name,
            "action": extra.pop("action", "report_web_event"),
            "payload": payload,
            "expected": expected,
            **extra,
        }
    )


# 1 Product Added -> AddToCart
case(
    "Product Added: AddToCart with all identifiers",
    {
        "event": "AddToCart",
        "event_id": "ajs-next-1705320000000-3f1c",
        "timestamp": T,
        "email": "Peter.Gibbons@Initech.com",
        "phone": "+14155550123",
        "external_id": "user-1009",
        "ip": "203.0.113.7",
        "user_agent": UA,
        "url": "https://shop.example.com/products/red-stapler",
        "contents": [
            {
                "content_id": "507f1f77bcf86cd799439011",
                "content_name": "Red Stapler",
                "content_category": "Office",
                "brand": "Swingline",
                "price": 18.99,
                "quantity": 1,
            }
        ],
        "content_type": "product",
        "currency": "USD",
        "value": 18.99,
    },
    {
        "event": "AddToCart",
        "event_time": T_S,
        "event_id": "ajs-next-1705320000000-3f1c",
        "user": {
            "email": [H("peter.gibbons@initech.com")],
            "phone": [H("+14155550123")],
            "external_id": [H("user-1009")],
            "ip": "203.0.113.7",
            "user_agent": UA,
        },
        "properties": {
            "contents": [
                {
                    "content_id": "507f1f77bcf86cd799439011",
                    "content_name": "Red Stapler",
                    "content_category": "Office",
                    "brand": "Swingline",
                    "price": 18.99,
                    "quantity": 1,
                }
            ],
            "content_type": "product",
            "currency": "USD",
            "value": 18.99,
        },
        "page": {"url": "https://shop.example.com/products/red-stapler"},
    },
)
# 2 Order Completed -> Purchase with numeric order id
case(
    "Order Completed: Purchase, numeric order_id sent as string",
    {
        "event": "Purchase",
        "event_id": "a1b2c3d4-order-50314b8e",
        "timestamp": "2024-01-18T09:30:12Z",
        "email": "jane.doe@example.org",
        "external_id": "u_77",
        "contents": [
            {"content_id": "sku-1", "price": 19.99, "quantity": 2},
            {"content_id": "sku-2", "price": 5, "quantity": 1},
        ],
        "currency": "EUR",
        "value": 44.98,
        "order_id": 50314,
    },
    {
        "event": "Purchase",
        "event_time": 1705570212,
        "event_id": "a1b2c3d4-order-50314b8e",
        "user": {"email": [H("jane.doe@example.org")], "external_id": [H("u_77")]},
        "properties": {
            "contents": [
                {"content_id": "sku-1", "price": 19.99, "quantity": 2},
                {"content_id": "sku-2", "price": 5, "quantity": 1},
            ],
            "currency": "EUR",
            "value": 44.98,
            "order_id": "50314",
        },
    },
)
# 3 value computed from contents
case(
    "Order Completed without total: value = sum(price x quantity)",
    {
        "event": "Purchase",
        "event_id": "msg-0003",
        "timestamp": T,
        "email": "a@b.co",
        "contents": [
            {"content_id": "sku-1", "price": 19.99, "quantity": 2},
            {"content_id": "sku-2", "price": 5, "quantity": 1},
        ],
        "currency": "USD",
    },
    {
        "event": "Purchase",
        "event_time": T_S,
        "event_id": "msg-0003",
        "user": {"email": [H("a@b.co")]},
        "properties": {
            "contents": [
                {"content_id": "sku-1", "price": 19.99, "quantity": 2},
                {"content_id": "sku-2", "price": 5, "quantity": 1},
            ],
            "currency": "USD",
            "value": 44.98,
        },
    },
)
# 4 Search with ip + user_agent only
case(
    "Products Searched: Search matched by ip + user_agent",
    {
        "event": "Search",
        "event_id": "msg-0004",
        "timestamp": T,
        "ip": "198.51.100.23",
        "user_agent": UA,
        "query": "blue suede shoes",
    },
    {
        "event": "Search",
        "event_time": T_S,
        "event_id": "msg-0004",
        "user": {"ip": "198.51.100.23", "user_agent": UA},
        "properties": {"query": "blue suede shoes"},
    },
)
# 5 Product Viewed with content_ids
case(
    "Product Viewed: ViewContent with content_ids",
    {
        "event": "ViewContent",
        "event_id": "msg-0005",
        "timestamp": T,
        "external_id": "user-5",
        "content_ids": ["sku-9", 1234],
        "content_type": "product",
        "currency": "gbp",
        "value": "12.50",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0005",
        "user": {"external_id": [H("user-5")]},
        "properties": {
            "content_ids": ["sku-9", "1234"],
            "content_type": "product",
            "currency": "GBP",
            "value": 12.5,
        },
    },
)
# 6 ttclid from URL
case(
    "Page: PageView, ttclid taken from the page URL",
    {
        "event": "PageView",
        "event_id": "msg-0006",
        "timestamp": T,
        "url": "https://www.example.com/landing?utm_source=tiktok&ttclid=E.C.P.CvQBkLp7&x=1",
        "referrer": "https://www.tiktok.com/",
        "ip": "203.0.113.9",
        "user_agent": UA,
    },
    {
        "event": "PageView",
        "event_time": T_S,
        "event_id": "msg-0006",
        "user": {"ttclid": "E.C.P.CvQBkLp7", "ip": "203.0.113.9", "user_agent": UA},
        "page": {
            "url": "https://www.example.com/landing?utm_source=tiktok&ttclid=E.C.P.CvQBkLp7&x=1",
            "referrer": "https://www.tiktok.com/",
        },
    },
)
# 7 mapped ttclid wins
case(
    "Mapped ttclid wins over the URL parameter",
    {
        "event": "PageView",
        "event_id": "msg-0007",
        "timestamp": T,
        "ttclid": "E.C.P.mapped",
        "url": "https://www.example.com/?ttclid=E.C.P.fromurl",
    },
    {
        "event": "PageView",
        "event_time": T_S,
        "event_id": "msg-0007",
        "user": {"ttclid": "E.C.P.mapped"},
        "page": {"url": "https://www.example.com/?ttclid=E.C.P.fromurl"},
    },
)
# 8 ttp from cookie header
case(
    "ttp from the _ttp cookie of a cookie header",
    {
        "event": "ViewContent",
        "event_id": "msg-0008",
        "timestamp": T,
        "cookie": "_ga=GA1.2.3; _ttp=2Xy9bL0aT7; theme=dark",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0008",
        "user": {"ttp": "2Xy9bL0aT7"},
    },
)
# 9 ttp from cookie object
case(
    "ttp from a cookie object",
    {
        "event": "ViewContent",
        "event_id": "msg-0009",
        "timestamp": T,
        "cookie": {"_ttp": "cookieObjTtp", "_fbp": "fb.1.2"},
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0009",
        "user": {"ttp": "cookieObjTtp"},
    },
)
# 10 mapped ttp wins
case(
    "Mapped ttp wins over the cookie",
    {
        "event": "ViewContent",
        "event_id": "msg-0010",
        "timestamp": T,
        "ttp": "mappedTtp",
        "cookie": "_ttp=cookieTtp",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0010",
        "user": {"ttp": "mappedTtp"},
    },
)
# 11 emails normalised + deduped
case(
    "Email list trimmed, lowercased, deduplicated",
    {
        "event": "CompleteRegistration",
        "event_id": "msg-0011",
        "timestamp": T,
        "email": ["  Bob@Example.COM ", "bob@example.com", "bob.work@corp.example"],
    },
    {
        "event": "CompleteRegistration",
        "event_time": T_S,
        "event_id": "msg-0011",
        "user": {"email": [H("bob@example.com"), H("bob.work@corp.example")]},
    },
)
# 12 hashed email passthrough (uppercase)
case(
    "Email already SHA-256: passed through lowercased",
    {
        "event": "Lead",
        "event_id": "msg-0012",
        "timestamp": T,
        "email": H("carol@example.com").upper(),
    },
    {
        "event": "Lead",
        "event_time": T_S,
        "event_id": "msg-0012",
        "user": {"email": [H("carol@example.com")]},
    },
)
# 13 local US phone
case(
    "Local US phone with punctuation -> E.164 with default region",
    {
        "event": "Contact",
        "event_id": "msg-0013",
        "timestamp": T,
        "phone": "(213) 373-4253",
    },
    {
        "event": "Contact",
        "event_time": T_S,
        "event_id": "msg-0013",
        "user": {"phone": [H("+12133734253")]},
    },
)
# 14 GB default region
case(
    "UK national phone with default_phone_region GB",
    {
        "event": "Contact",
        "event_id": "msg-0014",
        "timestamp": T,
        "phone": "07911 123456",
    },
    {
        "event": "Contact",
        "event_time": T_S,
        "event_id": "msg-0014",
        "user": {"phone": [H("+447911123456")]},
    },
    settings={"default_phone_region": "GB"},
)
# 15 E.164 phone as is
case(
    "E.164 phone hashed as is",
    {
        "event": "Contact",
        "event_id": "msg-0015",
        "timestamp": T,
        "phone": "+447911123456",
    },
    {
        "event": "Contact",
        "event_time": T_S,
        "event_id": "msg-0015",
        "user": {"phone": [H("+447911123456")]},
    },
)
# 16 hashed phone passthrough
case(
    "Phone already SHA-256: passed through",
    {
        "event": "Contact",
        "event_id": "msg-0016",
        "timestamp": T,
        "phone": H("+12133734253"),
    },
    {
        "event": "Contact",
        "event_time": T_S,
        "event_id": "msg-0016",
        "user": {"phone": [H("+12133734253")]},
    },
)
# 17 one invalid phone dropped with a warning
case(
    "A non-phone among phones is dropped with a warning",
    {
        "event": "Lead",
        "event_id": "msg-0017",
        "timestamp": T,
        "phone": ["n/a", "+1 213 373 4253"],
    },
    {
        "event": "Lead",
        "event_time": T_S,
        "event_id": "msg-0017",
        "user": {"phone": [H("+12133734253")]},
    },
    warnings=["phone[0]"],
)
# 18 numeric external_id
case(
    "Numeric userId as external_id",
    {
        "event": "AddToWishlist",
        "event_id": "msg-0018",
        "timestamp": T,
        "external_id": 12345,
    },
    {
        "event": "AddToWishlist",
        "event_time": T_S,
        "event_id": "msg-0018",
        "user": {"external_id": [H("12345")]},
    },
)
# 19 unix seconds
case(
    "Timestamp in Unix seconds",
    {
        "event": "ViewContent",
        "event_id": "msg-0019",
        "timestamp": 1705600000,
        "external_id": "u19",
    },
    {
        "event": "ViewContent",
        "event_time": 1705600000,
        "event_id": "msg-0019",
        "user": {"external_id": [H("u19")]},
    },
)
# 20 unix ms
case(
    "Timestamp in Unix milliseconds -> seconds",
    {
        "event": "ViewContent",
        "event_id": "msg-0020",
        "timestamp": 1705600000999,
        "external_id": "u20",
    },
    {
        "event": "ViewContent",
        "event_time": 1705600000,
        "event_id": "msg-0020",
        "user": {"external_id": [H("u20")]},
    },
)
# 21 ISO with offset
case(
    "ISO 8601 timestamp with an offset",
    {
        "event": "ViewContent",
        "event_id": "msg-0021",
        "timestamp": "2024-01-15T14:00:00+02:00",
        "external_id": "u21",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0021",
        "user": {"external_id": [H("u21")]},
    },
)
# 22 ISO without zone
case(
    "ISO 8601 timestamp without zone is UTC",
    {
        "event": "ViewContent",
        "event_id": "msg-0022",
        "timestamp": "2024-01-15 12:00:00",
        "external_id": "u22",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0022",
        "user": {"external_id": [H("u22")]},
    },
)
# 23 numeric event_id
case(
    "Numeric event_id sent as a string",
    {
        "event": "ViewContent",
        "event_id": 9007199254740993,
        "timestamp": T,
        "external_id": "u23",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "9007199254740993",
        "user": {"external_id": [H("u23")]},
    },
)
# 24 names, zip, address
case(
    "Identify traits: names and zip hashed, address plain",
    {
        "event": "CompleteRegistration",
        "event_id": "msg-0024",
        "timestamp": T,
        "email": "mary@example.com",
        "first_name": " Mary Ann ",
        "last_name": "O'Neil",
        "zip_code": "SW1A 1AA",
        "city": "London",
        "state": "England",
        "country": "GB",
    },
    {
        "event": "CompleteRegistration",
        "event_time": T_S,
        "event_id": "msg-0024",
        "user": {
            "email": [H("mary@example.com")],
            "first_name": H("maryann"),
            "last_name": H("o'neil"),
            "zip_code": H("sw1a1aa"),
            "city": "London",
            "state": "England",
            "country": "GB",
        },
    },
)
# 25 numeric zip
case(
    "Numeric zip code",
    {
        "event": "Lead",
        "event_id": "msg-0025",
        "timestamp": T,
        "email": "z@example.com",
        "zip_code": 94107,
    },
    {
        "event": "Lead",
        "event_time": T_S,
        "event_id": "msg-0025",
        "user": {"email": [H("z@example.com")], "zip_code": H("94107")},
    },
)
# 26 locale
case(
    "Locale sent unhashed",
    {
        "event": "PageView",
        "event_id": "msg-0026",
        "timestamp": T,
        "external_id": "u26",
        "locale": "en-US",
        "url": "https://example.com/",
    },
    {
        "event": "PageView",
        "event_time": T_S,
        "event_id": "msg-0026",
        "user": {"external_id": [H("u26")], "locale": "en-US"},
        "page": {"url": "https://example.com/"},
    },
)
# 27 limited data use in payload
case(
    "limited_data_use from the payload",
    {
        "event": "Purchase",
        "event_id": "msg-0027",
        "timestamp": T,
        "email": "ldu@example.com",
        "limited_data_use": True,
        "value": 10,
        "currency": "USD",
    },
    {
        "event": "Purchase",
        "event_time": T_S,
        "event_id": "msg-0027",
        "user": {"email": [H("ldu@example.com")]},
        "properties": {"currency": "USD", "value": 10},
        "limited_data_use": True,
    },
)
# 28 limited data use from settings
case(
    "limited_data_use from the settings default",
    {
        "event": "Purchase",
        "event_id": "msg-0028",
        "timestamp": T,
        "email": "ldu@example.com",
    },
    {
        "event": "Purchase",
        "event_time": T_S,
        "event_id": "msg-0028",
        "user": {"email": [H("ldu@example.com")]},
        "limited_data_use": True,
    },
    settings={"limited_data_use": True},
)
# 29 empty values omitted
case(
    "Empty values are omitted, never sent as '' or []",
    {
        "event": "ViewContent",
        "event_id": "msg-0029",
        "timestamp": T,
        "email": "",
        "phone": [],
        "external_id": ["", "  "],
        "ttclid": "",
        "ttp": " ",
        "ip": "203.0.113.1",
        "user_agent": UA,
        "first_name": "",
        "city": "",
        "contents": [],
        "content_ids": [],
        "query": "",
        "url": "",
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0029",
        "user": {"ip": "203.0.113.1", "user_agent": UA},
    },
)
# 30 numeric strings
case(
    "Price and quantity as numeric strings",
    {
        "event": "AddToCart",
        "event_id": "msg-0030",
        "timestamp": T,
        "external_id": "u30",
        "contents": [{"content_id": "sku-30", "price": "10.99", "quantity": "3"}],
        "currency": "USD",
    },
    {
        "event": "AddToCart",
        "event_time": T_S,
        "event_id": "msg-0030",
        "user": {"external_id": [H("u30")]},
        "properties": {
            "contents": [{"content_id": "sku-30", "price": 10.99, "quantity": 3}],
            "currency": "USD",
            "value": 32.97,
        },
    },
)
# 31 numeric content_id
case(
    "Numeric product_id sent as a string content_id",
    {
        "event": "ViewContent",
        "event_id": "msg-0031",
        "timestamp": T,
        "external_id": "u31",
        "contents": [{"content_id": 123, "content_name": "Mug", "price": 8}],
    },
    {
        "event": "ViewContent",
        "event_time": T_S,
        "event_id": "msg-0031",
        "user": {"external_id": [H("u31")]},
        "properties": {"contents": [{"content_id": "123", "content_name": "Mug", "price": 8}]},
    },
)
# 32 checkout started
case(
    "Checkout Started: InitiateCheckout with num_items and shop_id",
    {
        "event": "InitiateCheckout",
        "event_id": "msg-0032",
        "timestamp": T,
        "email": "shopper@example.com",
        "num_items": "3",
        "shop_id": 7001,
        "value": 59.5,
        "currency": "USD",
    },
    {
        "event": "InitiateCheckout",
        "event_time": T_S,
        "event_id": "msg-0032",
        "user": {"email": [H("shopper@example.com")]},
        "properties": {"currency": "USD", "value": 59.5, "num_items": 3, "shop_id": "7001"},
    },
)
# 33 custom event name
case(
    "Custom web event name is allowed",
    {
        "event": "SignUpStep2",
        "event_id": "msg-0033",
        "timestamp": T,
        "external_id": "u33",
    },
    {
        "event": "SignUpStep2",
        "event_time": T_S,
        "event_id": "msg-0033",
        "user": {"external_id": [H("u33")]},
    },
)
# 34 signed up
case(
    "Signed Up: CompleteRegistration with email only",
    {
        "event": "CompleteRegistration",
        "event_id": "msg-0034",
        "timestamp": T,
        "email": "new.user@example.net",
    },
    {
        "event": "CompleteRegistration",
        "event_time": T_S,
        "event_id": "msg-0034",
        "user": {"email": [H("new.user@example.net")]},
    },
)
# 35 old event warning
case(
    "Event older than 28 days: sent with a warning",
    {
        "event": "Purchase",
        "event_id": "msg-0035",
        "timestamp": "2023-12-01T00:00:00Z",
        "email": "old@example.com",
    },
    {
        "event": "Purchase",
        "event_time": 1701388800,
        "event_id": "msg-0035",
        "user": {"email": [H("old@example.com")]},
    },
    warnings=["timestamp"],
)
# 36 subscribe
case(
    "Subscription Started: Subscribe with predicted_ltv and description",
    {
        "event": "Subscribe",
        "event_id": "msg-0036",
        "timestamp": T,
        "external_id": "u36",
        "predicted_ltv": "240",
        "description": "Annual plan",
        "value": 20,
        "currency": "USD",
    },
    {
        "event": "Subscribe",
        "event_time": T_S,
        "event_id": "msg-0036",
        "user": {"external_id": [H("u36")]},
        "properties": {
            "currency": "USD",
            "value": 20,
            "description": "Annual plan",
            "predicted_ltv": 240,
        },
    },
)
# 37 offline purchase
case(
    "Offline Purchase in store with email and phone",
    {
        "event": "Purchase",
        "event_id": "pos-2024-000123",
        "timestamp": "2024-01-19T17:45:00Z",
        "email": "walkin@example.com",
        "phone": "+1 (415) 555-0199",
        "order_id": "R-000123",
        "contents": [{"content_id": "sku-7", "price": 30, "quantity": 2}],
        "currency": "USD",
        "delivery_category": "in_store",
    },
    {
        "event": "Purchase",
        "event_time": 1705686300,
        "event_id": "pos-2024-000123",
        "user": {"email": [H("walkin@example.com")], "phone": [H("+14155550199")]},
        "properties": {
            "contents": [{"content_id": "sku-7", "price": 30, "quantity": 2}],
            "currency": "USD",
            "value": 60,
            "order_id": "R-000123",
            "delivery_category": "in_store",
        },
    },
    action="report_offline_event",
)
# 38 offline phone only
case(
    "Offline event identified by phone only",
    {
        "event": "Contact",
        "event_id": "call-88",
        "timestamp": T,
        "phone": "213-373-4253",
    },
    {
        "event": "Contact",
        "event_time": T_S,
        "event_id": "call-88",
        "user": {"phone": [H("+12133734253")]},
    },
    action="report_offline_event",
)
# 39 crm lead
case(
    "CRM lead qualified with lead_id and source",
    {
        "event": "Lead",
        "event_id": "crm-evt-501",
        "timestamp": T,
        "lead_id": "7212345678901234567",
        "lead_event_source": "HubSpot",
        "email": "lead@example.com",
    },
    {
        "event": "Lead",
        "event_time": T_S,
        "event_id": "crm-evt-501",
        "user": {"email": [H("lead@example.com")]},
        "lead": {"lead_id": "7212345678901234567", "lead_event_source": "HubSpot"},
    },
    action="report_crm_event",
)
# 40 crm numeric lead id, custom stage
case(
    "CRM custom stage with a numeric lead_id",
    {
        "event": "MeetingBooked",
        "event_id": "crm-evt-502",
        "timestamp": T,
        "lead_id": 88001,
    },
    {
        "event": "MeetingBooked",
        "event_time": T_S,
        "event_id": "crm-evt-502",
        "lead": {"lead_id": "88001"},
    },
    action="report_crm_event",
)
# 41 search string
case(
    "Search with search_string and content_type product_group",
    {
        "event": "Search",
        "event_id": "msg-0041",
        "timestamp": T,
        "external_id": "u41",
        "search_string": "running shoes",
        "content_type": "product_group",
    },
    {
        "event": "Search",
        "event_time": T_S,
        "event_id": "msg-0041",
        "user": {"external_id": [H("u41")]},
        "properties": {"content_type": "product_group", "search_string": "running shoes"},
    },
)
# 42 value zero kept
case(
    "A value of 0 is a real value and is sent",
    {
        "event": "StartTrial",
        "event_id": "msg-0042",
        "timestamp": T,
        "email": "trial@example.com",
        "value": 0,
        "currency": "USD",
    },
    {
        "event": "StartTrial",
        "event_time": T_S,
        "event_id": "msg-0042",
        "user": {"email": [H("trial@example.com")]},
        "properties": {"currency": "USD", "value": 0},
    },
)
# 43 partial contents: no computed value
case(
    "No value computed when a content lacks a price",
    {
        "event": "AddToCart",
        "event_id": "msg-0043",
        "timestamp": T,
        "external_id": "u43",
        "contents": [
            {"content_id": "a", "price": 2, "quantity": 1},
            {"content_id": "b", "quantity": 1},
        ],
    },
    {
        "event": "AddToCart",
        "event_time": T_S,
        "event_id": "msg-0043",
        "user": {"external_id": [H("u43")]},
        "properties": {
            "contents": [
                {"content_id": "a", "price": 2, "quantity": 1},
                {"content_id": "b", "quantity": 1},
            ]
        },
    },
)
# 44 referrer not http dropped with warning
case(
    "A non-http referrer is dropped with a warning",
    {
        "event": "PageView",
        "event_id": "msg-0044",
        "timestamp": T,
        "external_id": "u44",
        "url": "https://m.example.com/",
        "referrer": "android-app://com.zhiliaoapp.musically/",
    },
    {
        "event": "PageView",
        "event_time": T_S,
        "event_id": "msg-0044",
        "user": {"external_id": [H("u44")]},
        "page": {"url": "https://m.example.com/"},
    },
    warnings=["referrer"],
)
# 45 several external ids and phones list with E.164 & local
case(
    "Lists of external ids and phones",
    {
        "event": "AddPaymentInfo",
        "event_id": "msg-0045",
        "timestamp": T,
        "external_id": ["user-45", "crm-45"],
        "phone": ["+12133734253", "(213) 373-4253", "+447911123456"],
    },
    {
        "event": "AddPaymentInfo",
        "event_time": T_S,
        "event_id": "msg-0045",
        "user": {
            "external_id": [H("user-45"), H("crm-45")],
            "phone": [H("+12133734253"), H("+447911123456")],
        },
    },
)

if __name__ == "__main__":
    out = Path(__file__).with_name("tiktok_cases.json")
    document = {"now": NOW, "settings": SETTINGS, "cases": CASES}
    out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(CASES)} cases to {out}")
