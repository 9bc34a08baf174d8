"""The sandbox's request validator: TikTok's strictness, by hand, fast.

The sandbox is only useful if it refuses what TikTok refuses, with the same
code (40002) and a message naming the path of the first bad field
(``data.3.user.email: Not a valid SHA-256 hash``), because the delivery engine
splits a rejected batch by reading that path. The checks are hand-written
rather than a JSON Schema: a schema validator per event costs ten times more
than these few ``type()`` tests, and the sandbox must never be the bottleneck
of a throughput test (50,000 events/s in batches of 1000).

Fields the rules below do not name are accepted as TikTok accepts them. A key
that is present with ``null`` is refused ("Field may not be null"): the
destination is meant to omit empty values, so sending ``null`` is a bug worth
seeing here rather than in production.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "EVENT_SOURCES",
    "MAX_BATCH",
    "MILLISECONDS_THRESHOLD",
    "check_event_source_id",
    "validate_body",
    "validate_event",
]

EVENT_SOURCES: Final = frozenset({"web", "app", "offline", "crm"})
MAX_BATCH: Final = 1000
# Unix seconds pass 10**11 in the year 5138; anything larger is milliseconds.
MILLISECONDS_THRESHOLD: Final = 10**11
CONTENT_TYPES: Final = frozenset({"product", "product_group"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}").fullmatch

_MISSING = "Missing data for required field"
_NULL = "Field may not be null"
_NOT_STRING = "Not a valid string"
_NOT_INTEGER = "Not a valid integer"
_NOT_NUMBER = "Not a valid number"
_NOT_BOOLEAN = "Not a valid boolean"
_NOT_OBJECT = "Not a valid object"
_NOT_LIST = "Not a valid list"
_NOT_HASH = "Not a valid SHA-256 hash"

# Identifiers TikTok only accepts hashed (a hex digest or a list of them).
_HASHED_USER_FIELDS: Final = ("email", "phone", "external_id")
# Identifiers TikTok takes unhashed; they must still be strings.
_PLAIN_USER_FIELDS: Final = ("ttclid", "ttp", "ip", "user_agent", "locale")
_STRING_PROPERTIES: Final = ("order_id", "shop_id")
_NUMBER_PROPERTIES: Final = ("value",)


def _is_number(value: object) -> bool:
    cls = type(value)
    return cls is int or cls is float


def _type_error(value: object, expected: str) -> str:
    return _NULL if value is None else expected


def _check_hashed(value: object, path: str) -> str | None:
    if type(value) is str:
        return None if _SHA256_HEX(value) else f"{path}: {_NOT_HASH}"
    if type(value) is list:
        if not value:
            return f"{path}: List may not be empty"
        for index, item in enumerate(value):
            if type(item) is not str or not _SHA256_HEX(item):
                return f"{path}.{index}: {_NOT_HASH}"
        return None
    if value is None:
        return f"{path}: {_NULL}"
    return f"{path}: {_NOT_HASH}"


def _check_user(user: dict[str, Any], path: str) -> str | None:
    for name in _HASHED_USER_FIELDS:
        if name in user:
            problem = _check_hashed(user[name], f"{path}.{name}")
            if problem:
                return problem
    for name in _PLAIN_USER_FIELDS:
        if name in user and type(user[name]) is not str:
            return f"{path}.{name}: {_type_error(user[name], _NOT_STRING)}"
    return None


def _check_contents(contents: object, path: str) -> str | None:
    if type(contents) is not list:
        return f"{path}: {_type_error(contents, _NOT_LIST)}"
    for index, item in enumerate(contents):
        if type(item) is not dict:
            return f"{path}.{index}: {_type_error(item, _NOT_OBJECT)}"
        if "content_id" in item and type(item["content_id"]) is not str:
            return f"{path}.{index}.content_id: {_type_error(item['content_id'], _NOT_STRING)}"
        if "price" in item and not _is_number(item["price"]):
            return f"{path}.{index}.price: {_type_error(item['price'], _NOT_NUMBER)}"
        if "quantity" in item and type(item["quantity"]) is not int:
            return f"{path}.{index}.quantity: {_type_error(item['quantity'], _NOT_INTEGER)}"
    return None


def _check_properties(props: dict[str, Any], path: str) -> str | None:
    if "contents" in props:
        problem = _check_contents(props["contents"], f"{path}.contents")
        if problem:
            return problem
    if "content_ids" in props:
        ids = props["content_ids"]
        if type(ids) is not list:
            return f"{path}.content_ids: {_type_error(ids, _NOT_LIST)}"
        for index, item in enumerate(ids):
            if type(item) is not str:
                return f"{path}.content_ids.{index}: {_type_error(item, _NOT_STRING)}"
    if "content_type" in props and (
        type(props["content_type"]) is not str or props["content_type"] not in CONTENT_TYPES
    ):
        return f"{path}.content_type: Must be one of: product, product_group"
    if "currency" in props:
        currency = props["currency"]
        if type(currency) is not str:
            return f"{path}.currency: {_type_error(currency, _NOT_STRING)}"
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            return f"{path}.currency: Not a valid ISO 4217 currency code"
        if not currency.isupper():
            return f"{path}.currency: Not a valid ISO 4217 currency code (use capital letters)"
    for name in _NUMBER_PROPERTIES:
        if name in props and not _is_number(props[name]):
            return f"{path}.{name}: {_type_error(props[name], _NOT_NUMBER)}"
    for name in _STRING_PROPERTIES:
        if name in props and type(props[name]) is not str:
            return f"{path}.{name}: {_type_error(props[name], _NOT_STRING)}"
    return None


def _check_page(page: dict[str, Any], path: str) -> str | None:
    if "url" in page:
        url = page["url"]
        if type(url) is not str:
            return f"{path}.url: {_type_error(url, _NOT_STRING)}"
        if not url.startswith(("http://", "https://")):
            return f"{path}.url: Not a valid URL (must start with http:// or https://)"
    if "referrer" in page and type(page["referrer"]) is not str:
        return f"{path}.referrer: {_type_error(page['referrer'], _NOT_STRING)}"
    return None


def validate_event(item: object, index: int, event_source: str) -> str | None:
    """Return TikTok's message for the first bad field of ``data[index]``, or None."""
    path = f"data.{index}"
    if type(item) is not dict:
        return f"{path}: {_type_error(item, _NOT_OBJECT)}"
    event = item.get("event", _MISSING)
    if event is _MISSING:
        return f"{path}.event: {_MISSING}"
    if type(event) is not str:
        return f"{path}.event: {_type_error(event, _NOT_STRING)}"
    if not event:
        return f"{path}.event: Field may not be empty"
    event_time = item.get("event_time", _MISSING)
    if event_time is _MISSING:
        return f"{path}.event_time: {_MISSING}"
    if type(event_time) is not int:
        return f"{path}.event_time: {_type_error(event_time, _NOT_INTEGER)}"
    if event_time >= MILLISECONDS_THRESHOLD:
        return f"{path}.event_time: Timestamp looks like milliseconds; send Unix seconds"
    if event_time <= 0:
        return f"{path}.event_time: Must be a positive Unix timestamp in seconds"
    if "event_id" in item and type(item["event_id"]) is not str:
        return f"{path}.event_id: {_type_error(item['event_id'], _NOT_STRING)}"
    if "user" in item:
        user = item["user"]
        if type(user) is not dict:
            return f"{path}.user: {_type_error(user, _NOT_OBJECT)}"
        problem = _check_user(user, f"{path}.user")
        if problem:
            return problem
    if "properties" in item:
        props = item["properties"]
        if type(props) is not dict:
            return f"{path}.properties: {_type_error(props, _NOT_OBJECT)}"
        problem = _check_properties(props, f"{path}.properties")
        if problem:
            return problem
    if "page" in item:
        page = item["page"]
        if type(page) is not dict:
            return f"{path}.page: {_type_error(page, _NOT_OBJECT)}"
        problem = _check_page(page, f"{path}.page")
        if problem:
            return problem
    if "limited_data_use" in item and type(item["limited_data_use"]) is not bool:
        return f"{path}.limited_data_use: {_type_error(item['limited_data_use'], _NOT_BOOLEAN)}"
    if event_source == "crm":
        lead = item.get("lead")
        if type(lead) is not dict or "lead_id" not in lead:
            return f"{path}.lead.lead_id: {_MISSING}"
        if type(lead["lead_id"]) is not str:
            return f"{path}.lead.lead_id: {_type_error(lead['lead_id'], _NOT_STRING)}"
    return None


def check_event_source_id(body: dict[str, Any]) -> str | None:
    """Return the message for a missing or mistyped ``event_source_id``, or None."""
    if "event_source_id" not in body:
        return f"event_source_id: {_MISSING}"
    value = body["event_source_id"]
    if type(value) is not str:
        return f"event_source_id: {_type_error(value, _NOT_STRING)}"
    if not value:
        return "event_source_id: Field may not be empty"
    return None


def validate_body(body: dict[str, Any]) -> str | None:
    """Return the message for the first problem in a track request body, or None.

    ``event_source_id`` is checked by :func:`check_event_source_id` first (the
    permission check needs it); this checks the rest of the envelope, then
    every event in order.
    """
    event_source = body.get("event_source", _MISSING)
    if event_source is _MISSING:
        return f"event_source: {_MISSING}"
    if type(event_source) is not str or event_source not in EVENT_SOURCES:
        return "event_source: Must be one of: web, app, offline, crm"
    for name in ("test_event_code", "partner_name"):
        if name in body and type(body[name]) is not str:
            return f"{name}: {_type_error(body[name], _NOT_STRING)}"
    data = body.get("data", _MISSING)
    if data is _MISSING:
        return f"data: {_MISSING}"
    if type(data) is not list:
        return f"data: {_type_error(data, _NOT_LIST)}"
    if not 1 <= len(data) <= MAX_BATCH:
        return f"data: Length must be between 1 and {MAX_BATCH} (got {len(data)})"
    for index, item in enumerate(data):
        problem = validate_event(item, index, event_source)
        if problem:
            return problem
    return None
