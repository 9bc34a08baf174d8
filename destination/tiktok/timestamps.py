"""Reading an event's time into the integer Unix seconds TikTok requires.

CDPs send ISO 8601 strings, Unix seconds or Unix milliseconds, sometimes as
numeric strings; TikTok accepts only integer seconds and silently misreads
milliseconds as a date thousands of years ahead. So every form is accepted
here and anything else is an error: an event is never sent with a guessed or
``null`` time (tiktok-events-api.md § "Deriving identifiers").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["MILLISECONDS_THRESHOLD", "TimestampError", "to_event_time"]

#: Numbers at or above this are milliseconds (1e11 s would be the year 5138).
MILLISECONDS_THRESHOLD = 100_000_000_000
#: Beyond this even milliseconds make no sense (the year 5138 in ms): reject.
_MAX_MILLISECONDS = 100_000_000_000_000
_NUMERIC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class TimestampError(ValueError):
    """The value is not a time this module can read; the message says why."""


def _from_number(number: float) -> int:
    if not math.isfinite(number):
        raise TimestampError("not a finite number")
    if number < 0:
        raise TimestampError("negative Unix time")
    if number >= _MAX_MILLISECONDS:
        raise TimestampError("too large for Unix seconds or milliseconds")
    if number >= MILLISECONDS_THRESHOLD:
        return int(number // 1000)
    return int(number)


def _from_iso(text: str) -> int:
    # Python 3.11's fromisoformat reads ISO 8601 (with "Z", offsets, fractions,
    # date only); a time without zone is UTC, as Segment and TikTok mean it.
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError("not ISO 8601 nor Unix seconds/milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = math.floor(moment.timestamp())
    if seconds < 0:
        raise TimestampError("before 1970")
    return seconds


def to_event_time(value: object) -> int:
    """Integer Unix seconds from ISO 8601, Unix seconds or Unix milliseconds.

    Numbers (and numeric strings) of 1e11 or more are milliseconds. Raises
    :class:`TimestampError` for anything else (booleans, empty strings, dates
    before 1970, non-finite numbers).
    """
    if isinstance(value, bool):
        raise TimestampError("a boolean is not a time")
    if isinstance(value, int | float):
        return _from_number(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise TimestampError("empty")
        # A "T" or ":" (every ISO 8601 time has them) is never numeric; testing for
        # them first spares an ISO string the regex, which costs more than the parse.
        if "T" not in text and ":" not in text and _NUMERIC.fullmatch(text):
            return _from_number(float(text))
        return _from_iso(text)
    raise TimestampError(f"expected a string or a number, got {type(value).__name__}")
