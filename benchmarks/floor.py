"""The floor: the default bundle written out by hand, with no framework at all.

What would the cheapest honest program that turns a Segment event into the
same TikTok ``data[]`` items cost? This is that program: no triggers (one
dict look-up by event name, one comparison for ``type = "page"``), no
JMESPath, no payload dict, no schema, no Route or Match objects; each field
read straight from the event and written straight into the item. It keeps
the default bundle's semantics (presets/default.yaml, the report_web_event
mapping and destination/tiktok/items.py: JMESPath's ``||`` falsiness,
trimming, numeric strings, ``value`` summed from contents, ttclid from the
page URL, referrers that are not http(s) dropped, key order) and uses the
project's normalise/hash functions, so the framework's cost can be stated
as a ratio to it. tests/test_perf_floor.py checks that it produces exactly
the framework's items and request bodies on generated events.

It is a yardstick, not a second implementation: it covers the values the
generator produces and raises ``NotImplementedError`` where the framework
would take a path the floor does not mirror (errors, warnings, rare
coercions), rather than guessing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from destination import compactjson
from destination.tiktok.normalize import (
    hash_email,
    hash_external_id,
    hash_name,
    hash_phone,
    hash_zip,
)
from destination.tiktok.timestamps import to_event_time

__all__ = ["floor_body", "floor_items"]

#: presets/default.yaml: event name → (TikTok event, where its products are)
_BY_EVENT: dict[str, tuple[str, str | None]] = {
    "Product Added": ("AddToCart", "single"),
    "Order Completed": ("PlaceAnOrder", "list"),
    "Products Searched": ("Search", None),
    "Checkout Started": ("InitiateCheckout", "list"),
    "Payment Info Entered": ("AddPaymentInfo", "list"),
    "Product Added to Wishlist": ("AddToWishlist", "single"),
}
_EMPTY: dict[str, Any] = {}


def _or(*values: Any) -> Any:
    """JMESPath's ``a || b``: the first value that is not null, false, "", [] or {}."""
    for value in values:
        if value is not None and value is not False and value != "" and value != [] and value != {}:
            return value
    return values[-1]


def _is_http(url: str) -> bool:
    lower = url[:8].lower()
    return (lower.startswith("http://") and len(url) > 7) or (
        lower.startswith("https://") and len(url) > 8
    )


def _identifier(value: Any) -> str | None:
    """A string identifier worth hashing; the framework's list/number paths are not mirrored."""
    if type(value) is str:
        return value if value.strip() else None
    if value is None:
        return None
    raise NotImplementedError(f"identifier from {type(value).__name__}")


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else _EMPTY


def _text(value: Any) -> str | None:
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if type(value) is int:
        return str(value)
    raise NotImplementedError(f"text from {type(value).__name__}")


def _number(value: Any) -> int | float | None:
    kind = type(value)
    if kind is int or kind is float or value is None:
        return value
    if kind is str:
        text = value.strip()
        return (int(text) if text.lstrip("+-").isdigit() else float(text)) if text else None
    raise NotImplementedError(f"number from {kind.__name__}")


def _content(product: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    product_id = product.get("product_id")
    if product_id is not None:
        # to_string() in the preset, then trimmed
        text = (product_id if type(product_id) is str else json.dumps(product_id)).strip()
        if text:
            content["content_id"] = text
    for target, source in (("content_name", "name"), ("content_category", "category")):
        text = _text(product.get(source))
        if text:
            content[target] = text
    brand = _text(product.get("brand"))
    if brand:
        content["brand"] = brand
    price = _number(product.get("price"))
    if price is not None:
        content["price"] = price
    quantity = _number(product.get("quantity"))
    if quantity is not None:
        if type(quantity) is not int:
            raise NotImplementedError("fractional quantity")
        content["quantity"] = quantity
    return content


def _item(event: dict[str, Any], name: str, products: str | None) -> dict[str, Any]:
    props = _dict(event.get("properties"))
    context = _dict(event.get("context"))
    ctraits = _dict(context.get("traits"))
    traits = _dict(event.get("traits"))
    page_ctx = _dict(context.get("page"))
    tiktok = _dict(_dict(event.get("integrations")).get("TikTok Conversions"))

    event_id = _text(event.get("messageId"))
    if event_id is None:
        raise NotImplementedError("content-hash event_id")
    timestamp = _or(
        event.get("timestamp"),
        event.get("originalTimestamp"),
        event.get("sentAt"),
        event.get("receivedAt"),
    )
    if timestamp is None:
        raise NotImplementedError("missing timestamp")
    url = _text(page_ctx.get("url"))
    if url is not None and not _is_http(url):
        raise NotImplementedError("url that is not http(s)")

    user: dict[str, Any] = {}
    email = _or(props.get("email"), ctraits.get("email"), traits.get("email"))
    if _identifier(email):
        digest = hash_email(email)
        if digest is None:
            raise NotImplementedError("unusable email")
        user["email"] = [digest]
    phone = _or(props.get("phone"), ctraits.get("phone"), traits.get("phone"))
    if _identifier(phone):
        digest = hash_phone(phone, "US")
        if digest is None:
            raise NotImplementedError("unusable phone")
        user["phone"] = [digest]
    external_id = _or(event.get("userId"), event.get("anonymousId"))
    if _identifier(external_id):
        user["external_id"] = [hash_external_id(external_id)]
    ttclid = _text(_or(props.get("ttclid"), tiktok.get("ttclid")))
    if not ttclid and url and "ttclid=" in url:
        for value in parse_qs(urlsplit(url).query).get("ttclid", ()):
            if value.strip():
                ttclid = value.strip()
                break
    if ttclid:
        user["ttclid"] = ttclid
    ttp = _text(_or(props.get("ttp"), tiktok.get("ttp")))
    if ttp:
        user["ttp"] = ttp
    for target, value in (
        ("ip", context.get("ip")),
        ("user_agent", context.get("userAgent")),
        ("locale", context.get("locale")),
    ):
        text = _text(value)
        if text:
            user[target] = text
    first = _text(
        _or(
            ctraits.get("first_name"),
            ctraits.get("firstName"),
            traits.get("first_name"),
            traits.get("firstName"),
        )
    )
    if first:
        user["first_name"] = hash_name(first)
    last = _text(
        _or(
            ctraits.get("last_name"),
            ctraits.get("lastName"),
            traits.get("last_name"),
            traits.get("lastName"),
        )
    )
    if last:
        user["last_name"] = hash_name(last)
    caddress = _dict(ctraits.get("address"))
    address = _dict(traits.get("address"))
    zip_code = _text(_or(caddress.get("postal_code"), address.get("postal_code")))
    if zip_code:
        user["zip_code"] = hash_zip(zip_code)
    for target in ("city", "state", "country"):
        text = _text(_or(caddress.get(target), address.get(target)))
        if text:
            user[target] = text

    properties: dict[str, Any] = {}
    contents: list[dict[str, Any]] = []
    if products == "single":
        contents = [c for c in (_content(props),) if c]
    elif products == "list":
        listed = props.get("products")
        if type(listed) is list:
            # an element that is not an object maps to nothing, as in JMESPath
            contents = [c for c in (_content(p) for p in listed if type(p) is dict) if c]
    if contents:
        properties["contents"] = contents
    if props.get("content_ids") is not None:
        raise NotImplementedError("content_ids")
    properties["content_type"] = "product"
    currency = _text(props.get("currency"))
    if currency:
        properties["currency"] = currency.upper()
    value = _number(_or(props.get("value"), props.get("revenue")))
    if value is None and contents and all("price" in c and "quantity" in c for c in contents):
        total = sum(c["price"] * c["quantity"] for c in contents)
        value = total if type(total) is int else round(total, 6)
    if value is not None:
        properties["value"] = value
    query = _text(props.get("query"))
    if query:
        properties["query"] = query
        properties["search_string"] = query
    for target in ("description", "order_id", "shop_id"):
        text = _text(props.get(target))
        if text:
            properties[target] = text
    for target in ("num_items", "delivery_category", "predicted_ltv"):
        if props.get(target) is not None:
            raise NotImplementedError(target)

    item: dict[str, Any] = {
        "event": name,
        "event_time": to_event_time(timestamp),
        "event_id": event_id,
    }
    if user:
        item["user"] = user
    item["properties"] = properties
    page: dict[str, Any] = {}
    if url:
        page["url"] = url
    referrer = _text(page_ctx.get("referrer"))
    if referrer and _is_http(referrer):
        page["referrer"] = referrer
    if page:
        item["page"] = page
    limited = props.get("limited_data_use")
    if limited is not None:
        if type(limited) is not bool:
            raise NotImplementedError("limited_data_use that is not a boolean")
        item["limited_data_use"] = limited
    return item


def floor_items(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The TikTok items the default bundle makes of ``event``, in preset order."""
    items = []
    name = event.get("event")
    if type(name) is str:
        preset = _BY_EVENT.get(name)
        if preset is not None:
            items.append(_item(event, *preset))
    if event.get("type") == "page":
        items.append(_item(event, "ViewContent", None))
    return items


def floor_body(items: list[dict[str, Any]], pixel_code: str) -> bytes:
    """The request body for ``items``: what protocol.build_request writes, by hand.

    Through the same serialiser as the framework (``compactjson``, which
    writes json.dumps's bytes): serialising is not framework overhead, and a
    hand-written program would pick the fastest exact encoder too.
    """
    body = {"event_source": "web", "event_source_id": pixel_code, "data": items}
    return compactjson.dumps(body)
