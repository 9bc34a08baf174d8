"""TikTok's wire protocol: one request per batch, and what each answer means.

Reading an answer is the part that is easy to get wrong: TikTok reports most
failures with HTTP 200 and a non-zero body ``code``, so the status alone says
little. The table is tiktok-events-api.md § "Response"; codes it does not list
are read by their family (4xxxx: the request is wrong, 5xxxx/6xxxx: TikTok's
side) so an unknown code is neither retried forever nor silently dropped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from .. import compactjson
from ..actions import Outcome, Request, Route, Verdict
from ..errors import ConfigurationError
from .settings import SOURCE_ID_SETTING, TikTokSettings

__all__ = [
    "AUTH_CODES",
    "DELIVERED_CODES",
    "MAINTENANCE_MIN_BACKOFF",
    "MAX_BATCH_ITEMS",
    "REJECT_CODES",
    "RETRY_CODES",
    "build_request",
    "build_request_json",
    "classify",
    "parse_retry_after",
]

#: More than this many items and TikTok rejects the whole request.
MAX_BATCH_ITEMS = 1000
DELIVERED_CODES = frozenset({0, 20001})
REJECT_CODES = frozenset({40000, 40002})
AUTH_CODES = frozenset({40001, 40105})
THROTTLE_CODES = frozenset({40016, 40100, 40101, 40102})
TASK_CODES = frozenset({40200, 40201, 40202, 40700})
SYSTEM_CODES = frozenset({50000, 50001, 50002, 51001, 51039, 51305})
MAINTENANCE_CODE = 60001
RETRY_CODES = THROTTLE_CODES | TASK_CODES | SYSTEM_CODES | {MAINTENANCE_CODE}
#: Seconds to wait at least after TikTok says it is in maintenance (60001).
MAINTENANCE_MIN_BACKOFF = 300.0
_DATA_INDEX = re.compile(r"\bdata\.(\d+)\b")
_MESSAGE_LIMIT = 500


def _envelope(settings: TikTokSettings, route: Route) -> dict[str, Any]:
    """The request's fields around ``data``, from the settings in force now.

    The queue stores only the route's names, so a corrected pixel code, test
    code or base URL applies to every queued event; a source the settings
    cannot serve any more stops delivery (a ConfigurationError) rather than
    dead-lettering good events.
    """
    source_id = settings.event_source_id(route.event_source)
    if not source_id:
        setting = SOURCE_ID_SETTING[route.event_source]
        raise ConfigurationError(
            f"{setting}: not set, and {route.event_source} events are queued for it"
        )
    envelope: dict[str, Any] = {
        "event_source": route.event_source,
        "event_source_id": source_id,
    }
    if settings.test_event_code:
        envelope["test_event_code"] = settings.test_event_code
    if settings.partner_name:
        envelope["partner_name"] = settings.partner_name
    return envelope


def build_request(
    settings: TikTokSettings, route: Route, items: Sequence[dict[str, Any]]
) -> Request:
    """The POST for ``items`` (all sharing ``route``); the token goes in a secret header."""
    if not items:
        raise ValueError("a TikTok request needs at least one item")
    if len(items) > MAX_BATCH_ITEMS:
        raise ValueError(
            f"a TikTok request holds at most {MAX_BATCH_ITEMS} items, got {len(items)}"
        )
    body = _envelope(settings, route)
    body["data"] = list(items)
    return Request(
        url=settings.track_url,
        headers={"Access-Token": settings.access_token, "Content-Type": "application/json"},
        # compactjson: json.dumps's bytes exactly, at orjson's speed (10× on a batch)
        body=compactjson.dumps(body),
        secret_headers=frozenset({"Access-Token"}),
    )


def build_request_json(
    settings: TikTokSettings, route: Route, items_json: Sequence[str]
) -> Request:
    """``build_request`` for items already serialised as compact JSON (from the outbox).

    The strings are spliced into the body as they are: byte for byte the body
    ``build_request`` would give for the decoded items, without decoding them.
    """
    if not items_json:
        raise ValueError("a TikTok request needs at least one item")
    if len(items_json) > MAX_BATCH_ITEMS:
        raise ValueError(
            f"a TikTok request holds at most {MAX_BATCH_ITEMS} items, got {len(items_json)}"
        )
    head = json.dumps(_envelope(settings, route), separators=(",", ":"), ensure_ascii=False)
    body = head[:-1] + ',"data":[' + ",".join(items_json) + "]}"
    return Request(
        url=settings.track_url,
        headers={"Access-Token": settings.access_token, "Content-Type": "application/json"},
        body=body.encode("utf-8"),
        secret_headers=frozenset({"Access-Token"}),
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000": UTC by RFC 5322
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _read_body(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _from_code(code: int, message: str, status: int, retry_after: float | None) -> Verdict:
    said = f"TikTok code {code}: {message}" if message else f"TikTok code {code}"
    if code in DELIVERED_CODES:
        return Verdict(Outcome.DELIVERED, said, status=status, code=code)
    if code in AUTH_CODES:
        what = (
            "access token wrong or revoked"
            if code == 40105
            else "no permission for this pixel/advertiser"
        )
        return Verdict(Outcome.STOP, f"{said} ({what})", status=status, code=code)
    if code == MAINTENANCE_CODE:
        return Verdict(
            Outcome.RETRY,
            said,
            status=status,
            code=code,
            retry_after=retry_after,
            min_backoff=MAINTENANCE_MIN_BACKOFF,
        )
    if code in RETRY_CODES or code >= 50000:
        return Verdict(
            Outcome.RETRY,
            said,
            status=status,
            code=code,
            retry_after=retry_after,
            rate_limited=code in THROTTLE_CODES,
        )
    match = _DATA_INDEX.search(message)
    index = int(match.group(1)) if match else None
    return Verdict(Outcome.REJECTED, said, status=status, code=code, index=index)


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
    """Read TikTok's answer: delivered, retry later, rejected (with data index) or stop."""
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    parsed = _read_body(body)
    code = parsed.get("code") if parsed is not None else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    raw_message = parsed.get("message") if parsed is not None else None
    message = _shorten(raw_message) if isinstance(raw_message, str) else ""

    if 200 <= status < 300:
        # A 2xx that is not TikTok's answer comes from something else at that address
        # (a proxy, a captive portal, a wrong api_base_url): stop, keep everything queued.
        if parsed is None:
            return Verdict(
                Outcome.STOP,
                f"HTTP {status} with a body that is not a JSON object: not TikTok's answer "
                "(check api_base_url)",
                status=status,
            )
        if code is None:
            return Verdict(
                Outcome.STOP,
                f"HTTP {status} without a numeric 'code' in the body: not TikTok's answer "
                "(check api_base_url)",
                status=status,
            )
        return _from_code(code, message, status, retry_after)
    if status in (401, 403):
        detail = f" (TikTok code {code}: {message})" if code is not None else ""
        return Verdict(
            Outcome.STOP,
            f"HTTP {status}: authentication or permission refused{detail}",
            status=status,
            code=code,
        )
    if status == 429 or status >= 500:
        return Verdict(
            Outcome.RETRY,
            f"HTTP {status}" + (f": {message}" if message else ""),
            status=status,
            code=code,
            retry_after=retry_after,
            rate_limited=status == 429,
        )
    if status in (404, 405):
        # No Events API at this address: a wrong api_base_url must never dead-letter
        # good events, so it stops delivery like a permission answer.
        return Verdict(
            Outcome.STOP,
            f"HTTP {status}: no TikTok Events API at this address (check api_base_url)",
            status=status,
        )
    if 300 <= status < 400:
        return Verdict(
            Outcome.STOP,
            f"HTTP {status}: unexpected redirect (check api_base_url)",
            status=status,
        )
    if code is not None and code != 0:
        verdict = _from_code(code, message, status, retry_after)
        if verdict.outcome is not Outcome.DELIVERED:
            return verdict
    return Verdict(
        Outcome.REJECTED,
        f"HTTP {status}" + (f": {message}" if message else ""),
        status=status,
        code=code,
    )
