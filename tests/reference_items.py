"""The TikTok item builder as it was before its fast paths: the reference they must equal.

A frozen copy of destination/tiktok/items.py at commit 2ef348c (a helper per
field, ``in`` tests before each look-up, jsonschema-like generality), kept
only so that tests/test_perf_fast_paths.py can check that the optimised
``build_item`` gives the same item, the same warnings and the same error for
every payload. Not imported by the package; do not optimise it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from destination.errors import PayloadError
from destination.tiktok.events import is_standard_event
from destination.tiktok.items import PayloadWarning
from destination.tiktok.normalize import (
    hash_email,
    hash_external_id,
    hash_name,
    hash_phone,
    hash_zip,
)
from destination.tiktok.settings import TikTokSettings
from destination.tiktok.timestamps import TimestampError, to_event_time

__all__ = ["build_item"]

CONTENT_TYPES = ("product", "product_group")
DELIVERY_CATEGORIES = ("in_store", "home_delivery", "curbside_pickup")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGIT_RUN = re.compile(r"[0-9]{7}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class _Event:
    """Per-event state while building: its id (for messages) and its warnings."""

    __slots__ = ("event_id", "warnings")

    def __init__(self) -> None:
        self.event_id: str | None = None
        self.warnings: list[PayloadWarning] = []

    def error(self, field: str, reason: str) -> PayloadError:
        return PayloadError(reason, field=field, event_id=self.event_id)

    def warn(self, field: str, reason: str) -> None:
        self.warnings.append(PayloadWarning(field, reason, self.event_id))


# --- coercions ---------------------------------------------------------------------------


def _shown(value: object) -> str:
    """``repr(value)`` for a message, unless it might be personal data (an email, a phone)."""
    text = repr(value)
    if len(text) > 40 or "@" in text or _DIGIT_RUN.search(re.sub(r"[^0-9]", "", text)):
        return f"a value of {len(str(value))} characters"
    return text


def _kind(value: object) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__


def _id_text(ev: _Event, value: object, field: str) -> str | None:
    """An identifier as a string: numbers become their decimal text (12.0 → "12")."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        raise ev.error(field, "must be a string or a number, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise ev.error(field, f"must be a string or a number, got {_kind(value)}")


def _text(ev: _Event, payload: Mapping[str, Any], field: str) -> str | None:
    """A plain string field (numbers accepted and written as text, e.g. a zip code)."""
    value = payload.get(field)
    if type(value) is str:
        return value.strip() or None
    return _id_text(ev, value, field)


def _number(ev: _Event, value: object, field: str) -> int | float | None:
    """A number; numeric strings are read ("10.50" → 10.5, "3" → 3)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ev.error(field, "must be a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ev.error(field, "must be a finite number")
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _INTEGER.fullmatch(text):
            return int(text)
        if not _DECIMAL.fullmatch(text):
            raise ev.error(field, f"not a number: {_shown(value)}")
        number = float(text)
        if not math.isfinite(number):
            raise ev.error(field, f"not a finite number: {_shown(value)}")
        return number
    raise ev.error(field, f"must be a number, got {_kind(value)}")


def _integer(ev: _Event, value: object, field: str) -> int | None:
    number = _number(ev, value, field)
    if number is None or isinstance(number, int):
        return number
    if number.is_integer():
        return int(number)
    raise ev.error(field, f"must be a whole number, got {_shown(value)}")


def _string_list(ev: _Event, value: object, field: str) -> list[str]:
    """A string or a list of strings (numbers allowed) as a list of non-empty strings."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            if item.strip():
                out.append(item)
            continue
        if isinstance(item, dict | list) or item is None:
            where = f"{field}[{index}]" if isinstance(value, list) else field
            raise ev.error(where, f"must be a string, got {_kind(item)}")
        text = _id_text(ev, item, field)
        if text:
            out.append(text)
    return out


def _enum(
    ev: _Event, payload: Mapping[str, Any], field: str, allowed: tuple[str, ...]
) -> str | None:
    value = _text(ev, payload, field)
    if value is not None and value not in allowed:
        raise ev.error(field, f"must be one of {', '.join(allowed)}, got {_shown(value)}")
    return value


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


# --- identifiers -------------------------------------------------------------------------


def _hashed_list(
    ev: _Event,
    payload: Mapping[str, Any],
    field: str,
    hasher: Callable[..., str | None],
    what: str,
    *options: str,
) -> tuple[list[str], bool]:
    """(digests of ``hasher(value, *options)``, whether a value was dropped as unusable)."""
    value = payload.get(field)
    if value is None:
        return [], False
    if type(value) is str:  # the common case, without building lists
        if not value.strip():
            return [], False
        digest = hasher(value, *options)
        if digest is not None:
            return [digest], False
        ev.warn(field, f"not {what} ({len(value)} characters); dropped, not hashed")
        return [], True
    raw = _string_list(ev, value, field)
    digests: list[str] = []
    dropped = False
    for index, item in enumerate(raw):
        digest = hasher(item, *options)
        if digest is None:
            dropped = True
            where = f"{field}[{index}]" if len(raw) > 1 else field
            ev.warn(where, f"not {what} ({len(item)} characters); dropped, not hashed")
        else:
            digests.append(digest)
    return _dedupe(digests), dropped


def _query_param(url: str, name: str) -> str | None:
    if f"{name}=" not in url:
        return None
    for value in parse_qs(urlsplit(url).query).get(name, ()):
        if value.strip():
            return value.strip()
    return None


def _cookie_value(ev: _Event, cookie: object, name: str) -> str | None:
    if cookie is None:
        return None
    if isinstance(cookie, Mapping):
        value = cookie.get(name)
        if not isinstance(value, str):
            return None
        return value.strip() or None
    if not isinstance(cookie, str):
        raise ev.error(
            "cookie", f"must be a cookie header string or an object, got {_kind(cookie)}"
        )
    if name not in cookie:
        return None
    # By hand rather than http.cookies, which drops the whole header at one odd cookie.
    for part in cookie.split(";"):
        key, _, value = part.partition("=")
        if key.strip() == name:
            value = value.strip().strip('"').strip()
            if value:
                return value
    return None


def _user(
    ev: _Event, payload: Mapping[str, Any], settings: TikTokSettings, url: str | None
) -> tuple[dict[str, Any], set[str]]:
    """The ``user`` object and the names of identifier fields whose values were all dropped."""
    user: dict[str, Any] = {}
    dropped: set[str] = set()
    region = settings.default_phone_region

    emails, lost = _hashed_list(ev, payload, "email", hash_email, "an email address")
    if emails:
        user["email"] = emails
    elif lost:
        dropped.add("email")
    phones, lost = _hashed_list(ev, payload, "phone", hash_phone, "a phone number", region)
    if phones:
        user["phone"] = phones
    elif lost:
        dropped.add("phone")
    external_ids, _ = _hashed_list(ev, payload, "external_id", hash_external_id, "an id")
    if external_ids:
        user["external_id"] = external_ids

    ttclid = ("ttclid" in payload and _text(ev, payload, "ttclid")) or (
        _query_param(url, "ttclid") if url else None
    )
    if ttclid:
        user["ttclid"] = ttclid
    ttp = ("ttp" in payload and _text(ev, payload, "ttp")) or (
        _cookie_value(ev, payload["cookie"], "_ttp") if "cookie" in payload else None
    )
    if ttp:
        user["ttp"] = ttp
    # Most of these fields are absent from a given payload: the ``in`` test
    # skips the call for them (``_text`` of a missing field is None anyway).
    for field in ("ip", "user_agent", "locale"):
        if field in payload:
            value = _text(ev, payload, field)
            if value:
                user[field] = value
    for field, hasher in (
        ("first_name", hash_name),
        ("last_name", hash_name),
        ("zip_code", hash_zip),
    ):
        if field in payload:
            value = _text(ev, payload, field)
            if value:
                digest = hasher(value)
                if digest:
                    user[field] = digest
    for field in ("city", "state", "country"):
        if field in payload:
            value = _text(ev, payload, field)
            if value:
                user[field] = value
    return user, dropped


def _require_identifiers(
    ev: _Event, event_source: str, user: Mapping[str, Any], dropped: set[str]
) -> None:
    if event_source == "web":
        # spelled out rather than any(name in user for name in ...): one generator less per event
        if (
            "email" in user
            or "phone" in user
            or "external_id" in user
            or "ttclid" in user
            or "ttp" in user
            or ("ip" in user and "user_agent" in user)
        ):
            return
        need = "email, phone, external_id, ttclid, ttp, or ip and user_agent"
    elif event_source == "offline":
        if "email" in user or "phone" in user:
            return
        need = "email or phone"
    else:
        return
    for field, what in (("phone", "a phone number"), ("email", "an email address")):
        if field in dropped:
            raise ev.error(field, f"not {what}, and no other usable identifier (need {need})")
    raise ev.error("user", f"no usable identifier: need {need}")


# --- properties, page, lead ------------------------------------------------------------


def _contents(ev: _Event, value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ev.error("contents", f"must be a list of objects, got {_kind(value)}")
    contents: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ev.error(f"contents[{index}]", f"must be an object, got {_kind(entry)}")
        content: dict[str, Any] = {}
        # Strings, ints and finite floats are settled inline; anything else (and
        # every error) goes through the shared helpers, whose messages need the
        # field's name, formatted only then.
        for name in ("content_id", "content_name", "content_category", "brand"):
            text = entry.get(name)
            if text is None:
                continue
            if type(text) is str:
                text = text.strip()
            else:
                text = _id_text(ev, text, f"contents[{index}].{name}")
            if text:
                content[name] = text
        price = entry.get("price")
        if price is not None:
            if type(price) is not int and (type(price) is not float or not math.isfinite(price)):
                price = _number(ev, price, f"contents[{index}].price")
            if price is not None:
                content["price"] = price
        quantity = entry.get("quantity")
        if quantity is not None:
            if type(quantity) is not int:
                quantity = _integer(ev, quantity, f"contents[{index}].quantity")
            if quantity is not None:
                content["quantity"] = quantity
        if content:
            contents.append(content)
    return contents


def _properties(ev: _Event, payload: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    contents = _contents(ev, payload["contents"]) if "contents" in payload else []
    if contents:
        props["contents"] = contents
    if "content_ids" in payload:
        content_ids = _dedupe(
            [
                text
                for text in (
                    _id_text(ev, item, "content_ids")
                    for item in _string_list(ev, payload["content_ids"], "content_ids")
                )
                if text
            ]
        )
        if content_ids:
            props["content_ids"] = content_ids
    content_type = _enum(ev, payload, "content_type", CONTENT_TYPES)
    if content_type:
        props["content_type"] = content_type
    currency = _text(ev, payload, "currency") if "currency" in payload else None
    if currency:
        currency = currency.upper()
        if not _CURRENCY.fullmatch(currency):
            raise ev.error("currency", f"must be an ISO 4217 code like USD, got {_shown(currency)}")
        props["currency"] = currency
    value = _number(ev, payload["value"], "value") if "value" in payload else None
    if value is None and contents and all("price" in c and "quantity" in c for c in contents):
        # Rounded so 3 × 10.99 is 32.97, not 32.970000000000006.
        total = sum(c["price"] * c["quantity"] for c in contents)
        value = total if isinstance(total, int) else round(total, 6)
    if value is not None:
        props["value"] = value
    if "num_items" in payload:
        num_items = _integer(ev, payload["num_items"], "num_items")
        if num_items is not None:
            props["num_items"] = num_items
    for name in ("query", "search_string", "description", "order_id", "shop_id"):
        if name in payload:
            text = _text(ev, payload, name)
            if text:
                props[name] = text
    if "delivery_category" in payload:
        delivery = _enum(ev, payload, "delivery_category", DELIVERY_CATEGORIES)
        if delivery:
            props["delivery_category"] = delivery
    if "predicted_ltv" in payload:
        ltv = _number(ev, payload["predicted_ltv"], "predicted_ltv")
        if ltv is not None:
            props["predicted_ltv"] = ltv
    return props


def _is_http_url(url: str) -> bool:
    lower = url[:8].lower()
    return (lower.startswith("http://") and len(url) > 7) or (
        lower.startswith("https://") and len(url) > 8
    )


def _page(ev: _Event, payload: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    page: dict[str, Any] = {}
    if url:
        page["url"] = url
    referrer = _text(ev, payload, "referrer") if "referrer" in payload else None
    if referrer:
        if _is_http_url(referrer):
            page["referrer"] = referrer
        else:
            ev.warn("referrer", "does not start with http:// or https://; dropped")
    return page


def _content_id(payload: Mapping[str, Any]) -> str:
    """An event_id for a payload without one."""
    # No messageId: a content hash is stable, so a replay is still deduplicated.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _check_age(ev: _Event, event_time: int, settings: TikTokSettings, now: float) -> None:
    reason = None
    if event_time < now - settings.max_event_age_days * 86400:
        reason = (
            f"older than {settings.max_event_age_days} days: outside TikTok's attribution window"
        )
    elif event_time > now + settings.max_future_minutes * 60:
        reason = f"more than {settings.max_future_minutes} minutes in the future"
    if reason is None:
        return
    if settings.stale_events == "drop":
        raise ev.error("timestamp", f"{reason} (dropped: stale_events is drop)")
    ev.warn("timestamp", reason)


def build_item(
    payload: Mapping[str, Any],
    settings: TikTokSettings,
    *,
    event_source: str,
    now: float,
) -> tuple[dict[str, Any], list[PayloadWarning]]:
    """One ``data[]`` item for ``event_source`` (web, offline or crm) and its warnings.

    Raises PayloadError naming the event (its event_id/messageId), the field
    and the reason. ``now`` (Unix seconds) is the clock for the age check.
    """
    ev = _Event()
    if not isinstance(payload, Mapping):
        raise ev.error("payload", f"must be an object, got {_kind(payload)}")
    # Results name the event by its messageId, else by the id it would be sent with.
    event_id = _id_text(ev, payload.get("event_id"), "event_id") or _content_id(payload)
    ev.event_id = event_id

    event = payload.get("event")
    if not isinstance(event, str) or not event.strip():
        reason = (
            "is required"
            if event is None or isinstance(event, str)
            else f"must be a string, got {_kind(event)}"
        )
        raise ev.error("event", f"event name {reason}")
    event = event.strip()
    if event_source == "offline" and not is_standard_event(event):
        raise ev.error(
            "event", f"offline events accept only standard event names, got {_shown(event)}"
        )

    if payload.get("timestamp") is None:
        raise ev.error("timestamp", "required: ISO 8601, Unix seconds or Unix milliseconds")
    try:
        event_time = to_event_time(payload["timestamp"])
    except TimestampError as exc:
        shown = _shown(payload["timestamp"])
        raise ev.error("timestamp", f"unparseable timestamp {shown}: {exc}") from None
    _check_age(ev, event_time, settings, now)

    url = _text(ev, payload, "url") if event_source == "web" else None
    if url is not None and not _is_http_url(url):
        raise ev.error("url", "must start with http:// or https://")

    user, dropped = _user(ev, payload, settings, url)
    _require_identifiers(ev, event_source, user, dropped)

    item: dict[str, Any] = {"event": event, "event_time": event_time, "event_id": event_id}
    if user:
        item["user"] = user
    properties = _properties(ev, payload)
    if properties:
        item["properties"] = properties
    if event_source == "web":
        page = _page(ev, payload, url)
        if page:
            item["page"] = page
    if event_source == "crm":
        lead_id = _text(ev, payload, "lead_id")
        if not lead_id:
            raise ev.error("lead_id", "required for CRM events")
        lead = {"lead_id": lead_id}
        source = _text(ev, payload, "lead_event_source")
        if source:
            lead["lead_event_source"] = source
        item["lead"] = lead
    if event_source == "web":
        limited = payload.get("limited_data_use")
        if type(limited) is str and not limited.strip():
            limited = None  # an empty value counts as absent, like every other field
        if limited is not None and not isinstance(limited, bool):
            raise ev.error("limited_data_use", f"must be true or false, got {_kind(limited)}")
        if limited is None and settings.limited_data_use:
            limited = True
        if limited is not None:
            item["limited_data_use"] = limited
    return item, ev.warnings
