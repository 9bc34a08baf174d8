"""Turning one mapped payload into one TikTok ``data[]`` item, the wire format exactly.

This is the hot path (once per event), so payloads are checked by hand rather
than by jsonschema; the checks agree with destination/schemas/tiktok_*.json
(a test runs valid payloads through both). Coercions are the ones CDP data
needs: a scalar where a list is expected, numbers sent as strings, ids sent as
numbers. Anything else that is wrong raises a :class:`PayloadError` naming the
event, the field and the reason, and never echoes a raw email or phone.
Problems that do not stop the event (an unusable phone value among others, an
old timestamp) become :class:`PayloadWarning` objects returned with the item.
Rules: tiktok-events-api.md § "Request", "Normalisation", "Deriving identifiers".
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import isfinite
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import PayloadError
from .events import is_standard_event
from .normalize import hash_email, hash_external_id, hash_name, hash_phone, hash_zip
from .settings import TikTokSettings
from .timestamps import TimestampError, to_event_time

__all__ = ["CONTENT_TYPES", "DELIVERY_CATEGORIES", "PayloadWarning", "build_item"]

CONTENT_TYPES = ("product", "product_group")
DELIVERY_CATEGORIES = ("in_store", "home_delivery", "curbside_pickup")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGIT_RUN = re.compile(r"[0-9]{7}")
_CURRENCY = re.compile(r"[A-Z]{3}")
#: ``user`` fields sent as trimmed text (before the hashed ones, and after), and hashed.
_USER_TEXTS_BEFORE = ("ip", "user_agent", "locale")
_USER_HASHED = (("first_name", hash_name), ("last_name", hash_name), ("zip_code", hash_zip))
_USER_TEXTS_AFTER = ("city", "state", "country")
_DROPPED = "dropped, not hashed"
#: ``_Event.error`` without a value to show
_NO_VALUE = object()
#: a content's fields sent as trimmed text, in TikTok's order
_CONTENT_TEXTS = ("content_id", "content_name", "content_category", "brand")
#: ``properties`` fields sent as trimmed text, in TikTok's order.
_PROPERTY_TEXTS = ("query", "search_string", "description", "order_id", "shop_id")


@dataclass(frozen=True, slots=True)
class PayloadWarning:
    """Something about one event worth telling, though the event is still sent."""

    field: str
    reason: str
    event_id: str | None = None

    def __str__(self) -> str:
        prefix = f"event {self.event_id}, " if self.event_id is not None else ""
        return f"{prefix}field {self.field}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "field": self.field, "reason": self.reason}


class _Event:
    """Per-event state while building: its id (for messages) and its warnings."""

    __slots__ = ("event_id", "warnings")

    def __init__(self) -> None:
        self.event_id: str | None = None
        self.warnings: list[PayloadWarning] = []

    def error(self, field: str, reason: str, value: object = _NO_VALUE) -> PayloadError:
        """The error; ``value`` is shown where ``reason`` says ``{value}``, and left out
        of its summary (so a run counts one reason, not one per bad value)."""
        if value is _NO_VALUE:
            return PayloadError(reason, field=field, event_id=self.event_id)
        return PayloadError(
            reason.replace("{value}", _shown(value)),
            field=field,
            event_id=self.event_id,
            summary=reason.replace("{value}", "…"),
        )

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
            raise ev.error(field, "not a number: {value}", value)
        number = float(text)
        if not math.isfinite(number):
            raise ev.error(field, "not a finite number: {value}", value)
        return number
    raise ev.error(field, f"must be a number, got {_kind(value)}")


def _integer(ev: _Event, value: object, field: str) -> int | None:
    number = _number(ev, value, field)
    if number is None or isinstance(number, int):
        return number
    if number.is_integer():
        return int(number)
    raise ev.error(field, "must be a whole number, got {value}", value)


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
        raise ev.error(field, f"must be one of {', '.join(allowed)}, got {{value}}", value)
    return value


def _copy_texts(
    ev: _Event, get: Callable[[str], Any], names: tuple[str, ...], target: dict[str, Any]
) -> None:
    """``target[name]``: the trimmed text of each field in ``names`` that has one."""
    for name in names:
        value = get(name)
        if value is not None:
            value = value.strip() if type(value) is str else _id_text(ev, value, name)
            if value:
                target[name] = value


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


def _require_identifiers(
    ev: _Event, event_source: str, user: Mapping[str, Any], dropped: tuple[str, ...]
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


def _content_text(ev: _Event, value: object, index: int, name: str) -> str | None:
    """A content's string field that is not a str (a number, or an error naming it)."""
    return _id_text(ev, value, f"contents[{index}].{name}")


def _contents(ev: _Event, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ev.error("contents", f"must be a list of objects, got {_kind(value)}")
    contents: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise ev.error(f"contents[{index}]", f"must be an object, got {_kind(entry)}")
        content: dict[str, Any] = {}
        get = entry.get
        # Strings, ints and finite floats are settled inline; anything else (and
        # every error) goes through the shared helpers, whose messages need the
        # field's name, formatted only then.
        for name in _CONTENT_TEXTS:
            text = get(name)
            if text is not None:
                text = text.strip() if type(text) is str else _content_text(ev, text, index, name)
                if text:
                    content[name] = text
        price = get("price")
        if price is not None:
            if type(price) is not int and (type(price) is not float or not isfinite(price)):
                price = _number(ev, price, f"contents[{index}].price")
            if price is not None:
                content["price"] = price
        quantity = get("quantity")
        if quantity is not None:
            if type(quantity) is not int:
                quantity = _integer(ev, quantity, f"contents[{index}].quantity")
            if quantity is not None:
                content["quantity"] = quantity
        if content:
            contents.append(content)
    return contents


def _properties(ev: _Event, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The ``properties`` object; each field is looked up once and most are absent."""
    get = payload.get
    props: dict[str, Any] = {}
    contents = get("contents")
    if contents is not None:
        contents = _contents(ev, contents)
        if contents:
            props["contents"] = contents
    else:
        contents = ()
    if (content_ids := get("content_ids")) is not None:
        content_ids = _dedupe(
            [
                text
                for text in (
                    _id_text(ev, item, "content_ids")
                    for item in _string_list(ev, content_ids, "content_ids")
                )
                if text
            ]
        )
        if content_ids:
            props["content_ids"] = content_ids
    content_type = get("content_type")
    if content_type is not None:
        content_type = (
            content_type.strip() or None
            if type(content_type) is str
            else _id_text(ev, content_type, "content_type")
        )
        if content_type is not None and content_type not in CONTENT_TYPES:
            raise ev.error(
                "content_type",
                f"must be one of {', '.join(CONTENT_TYPES)}, got {{value}}",
                content_type,
            )
        if content_type:
            props["content_type"] = content_type
    currency = get("currency")
    if currency is not None:
        currency = currency.strip() if type(currency) is str else _id_text(ev, currency, "currency")
        if currency:
            currency = currency.upper()
            if not _CURRENCY.fullmatch(currency):
                raise ev.error(
                    "currency", "must be an ISO 4217 code like USD, got {value}", currency
                )
            props["currency"] = currency
    value = get("value")
    if (
        value is not None
        and type(value) is not int
        and (type(value) is not float or not isfinite(value))
    ):
        value = _number(ev, value, "value")
    if value is None and contents and all("price" in c and "quantity" in c for c in contents):
        # Rounded so 3 × 10.99 is 32.97, not 32.970000000000006.
        total = sum(c["price"] * c["quantity"] for c in contents)
        value = total if isinstance(total, int) else round(total, 6)
    if value is not None:
        props["value"] = value
    if (num_items := get("num_items")) is not None:
        num_items = _integer(ev, num_items, "num_items")
        if num_items is not None:
            props["num_items"] = num_items
    _copy_texts(ev, get, _PROPERTY_TEXTS, props)
    if get("delivery_category") is not None:
        delivery = _enum(ev, payload, "delivery_category", DELIVERY_CATEGORIES)
        if delivery:
            props["delivery_category"] = delivery
    if (ltv := get("predicted_ltv")) is not None:
        ltv = _number(ev, ltv, "predicted_ltv")
        if ltv is not None:
            props["predicted_ltv"] = ltv
    return props


def _is_http_url(url: str) -> bool:
    if url.startswith("https://"):  # nearly every URL: no lowercased copy needed
        return len(url) > 8
    if url.startswith("http://"):
        return len(url) > 7
    lower = url[:8].lower()
    return (lower.startswith("http://") and len(url) > 7) or (
        lower.startswith("https://") and len(url) > 8
    )


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


def _user(
    ev: _Event, payload: Mapping[str, Any], settings: TikTokSettings, url: str | None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ``user`` object and the names of identifier fields whose values were all dropped.

    Each field is looked up once; a plain string (nearly every value) is
    handled inline, anything else through the helpers that know lists,
    numbers and the errors.
    """
    get = payload.get
    user: dict[str, Any] = {}
    dropped: tuple[str, ...] = ()

    value = get("email")
    if value is not None:
        if type(value) is str:
            if value.strip():
                digest = hash_email(value)
                if digest is not None:
                    user["email"] = [digest]
                else:
                    ev.warn("email", f"not an email address ({len(value)} characters); {_DROPPED}")
                    dropped = ("email",)
        else:
            digests, lost = _hashed_list(ev, payload, "email", hash_email, "an email address")
            if digests:
                user["email"] = digests
            elif lost:
                dropped = ("email",)
    value = get("phone")
    if value is not None:
        region = settings.default_phone_region
        if type(value) is str:
            if value.strip():
                digest = hash_phone(value, region)
                if digest is not None:
                    user["phone"] = [digest]
                else:
                    ev.warn("phone", f"not a phone number ({len(value)} characters); {_DROPPED}")
                    dropped += ("phone",)
        else:
            digests, lost = _hashed_list(ev, payload, "phone", hash_phone, "a phone number", region)
            if digests:
                user["phone"] = digests
            elif lost:
                dropped += ("phone",)
    value = get("external_id")
    if value is not None:
        if type(value) is str:
            digest = hash_external_id(value)  # None only for a blank value
            if digest is not None:
                user["external_id"] = [digest]
        else:
            digests, _ = _hashed_list(ev, payload, "external_id", hash_external_id, "an id")
            if digests:
                user["external_id"] = digests

    value = get("ttclid")
    if value is not None:
        value = value.strip() if type(value) is str else _id_text(ev, value, "ttclid")
    if not value and url:
        value = _query_param(url, "ttclid")
    if value:
        user["ttclid"] = value
    value = get("ttp")
    if value is not None:
        value = value.strip() if type(value) is str else _id_text(ev, value, "ttp")
    if not value and "cookie" in payload:
        value = _cookie_value(ev, payload["cookie"], "_ttp")
    if value:
        user["ttp"] = value
    _copy_texts(ev, get, _USER_TEXTS_BEFORE, user)
    for field, hasher in _USER_HASHED:
        value = get(field)
        if value is not None:
            value = value.strip() if type(value) is str else _id_text(ev, value, field)
            if value:
                digest = hasher(value)
                if digest:
                    user[field] = digest
    _copy_texts(ev, get, _USER_TEXTS_AFTER, user)
    return user, dropped


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
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise ev.error("payload", f"must be an object, got {_kind(payload)}")
    get = payload.get
    # Results name the event by its messageId, else by the id it would be sent with.
    event_id = get("event_id")
    if type(event_id) is str:
        event_id = event_id.strip() or None
    elif event_id is not None:
        event_id = _id_text(ev, event_id, "event_id")
    if event_id is None:
        event_id = _content_id(payload)
    ev.event_id = event_id

    event = get("event")
    if not isinstance(event, str) or not (event := event.strip()):
        reason = (
            "is required"
            if event is None or isinstance(event, str)
            else f"must be a string, got {_kind(event)}"
        )
        raise ev.error("event", f"event name {reason}")
    if event_source == "offline" and not is_standard_event(event):
        raise ev.error(
            "event", "offline events accept only standard event names, got {value}", event
        )

    timestamp = get("timestamp")
    if timestamp is None:
        raise ev.error("timestamp", "required: ISO 8601, Unix seconds or Unix milliseconds")
    try:
        event_time = to_event_time(timestamp)
    except TimestampError as exc:
        raise ev.error("timestamp", f"unparseable timestamp {{value}}: {exc}", timestamp) from None
    if not (
        now - settings.max_event_age_days * 86400
        <= event_time
        <= now + settings.max_future_minutes * 60
    ):
        _check_age(ev, event_time, settings, now)

    url = None
    if event_source == "web":
        url = get("url")
        if url is not None:
            url = url.strip() or None if type(url) is str else _id_text(ev, url, "url")
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
        page: dict[str, Any] = {"url": url} if url else {}
        referrer = get("referrer")
        if referrer is not None:
            referrer = (
                referrer.strip() if type(referrer) is str else _id_text(ev, referrer, "referrer")
            )
            if referrer:
                if _is_http_url(referrer):
                    page["referrer"] = referrer
                else:
                    ev.warn("referrer", "does not start with http:// or https://; dropped")
        if page:
            item["page"] = page
        limited = get("limited_data_use")
        if type(limited) is str and not limited.strip():
            limited = None  # an empty value counts as absent, like every other field
        if limited is not None and not isinstance(limited, bool):
            raise ev.error("limited_data_use", f"must be true or false, got {_kind(limited)}")
        if limited is None and settings.limited_data_use:
            limited = True
        if limited is not None:
            item["limited_data_use"] = limited
    elif event_source == "crm":
        lead_id = _text(ev, payload, "lead_id")
        if not lead_id:
            raise ev.error("lead_id", "required for CRM events")
        lead = {"lead_id": lead_id}
        source = _text(ev, payload, "lead_event_source")
        if source:
            lead["lead_event_source"] = source
        item["lead"] = lead
    return item, ev.warnings
