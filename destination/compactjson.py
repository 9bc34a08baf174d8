"""Compact JSON, exactly the bytes ``json.dumps`` writes, at orjson's speed.

Request bodies and stored items are written as
``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` in UTF-8.
On the 2-core benchmark machine that costs 11–17 µs per TikTok item, more
than triggers, mapping and the payload check together; orjson writes the
same JSON in about 1.4 µs (docs/performance.md). Its output is not always
the same *bytes*, though, and the project promises byte-identical bodies
(the outbox splices stored items into requests, tests compare bodies), so
orjson's output is used only where it provably equals json's:

- orjson refuses (and json is used) for what it would write differently or
  json would not write at all: subclasses of str/int/float/dict/list,
  dataclasses, dates, integers beyond 64 bits, non-string keys, nesting
  deeper than 254 (``OPT_PASSTHROUGH_*`` and a ``default`` that raises).
- Every finite float of magnitude 1e-4 or more is written as ``repr``
  writes it by both libraries (a hypothesis test checks it). Smaller ones
  (Python: ``1e-05``, orjson: ``0.00001``) and NaN/Infinity (orjson:
  ``null``) can only show up in orjson's output as ``0.0000``, a digit
  followed by ``e-``, or ``null``; when any of those is in the output at all
  (even inside a string), json writes the value instead.
  A false alarm costs time, never a different byte.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_reference"]

_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def dumps_reference(value: Any) -> bytes:
    """What :func:`dumps` must equal: the standard library's compact JSON in UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dumps(value: Any) -> bytes:
    """``dumps_reference(value)``, byte for byte, usually through orjson.

    Raises what ``json.dumps`` raises (TypeError, ValueError) for values it
    cannot write, and UnicodeEncodeError for lone surrogates, as before.
    """
    try:
        out: bytes = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return dumps_reference(value)
    if b"0.0000" in out or b"null" in out or _small_exponent(out):
        return dumps_reference(value)
    return out


def _small_exponent(out: bytes) -> bool:
    """Whether a digit is followed by ``e-`` anywhere (orjson's 1e-7 or 9.3e-9).

    ``bytes.find`` rather than a regex: a regex scan of a 700 KB body took
    longer than orjson's whole encoding; "e-" itself is common in text
    ("de-DE") but rarely after a digit.
    """
    at = out.find(b"e-")
    while at > 0:
        if 48 <= out[at - 1] <= 57:
            return True
        at = out.find(b"e-", at + 2)
    return False
