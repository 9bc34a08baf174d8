"""event_time: every accepted form becomes integer Unix seconds; anything else is an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination.tiktok.timestamps import MILLISECONDS_THRESHOLD, TimestampError, to_event_time

T = 1705320000  # 2024-01-15T12:00:00Z


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15T12:00:00Z",
        "2024-01-15T12:00:00.000Z",
        "2024-01-15T12:00:00.999Z",
        "2024-01-15T12:00:00+00:00",
        "2024-01-15T07:00:00-05:00",
        "2024-01-15T12:00:00",
        "2024-01-15 12:00:00",
        " 2024-01-15T12:00:00Z ",
        T,
        float(T),
        T + 0.75,
        T * 1000,
        T * 1000 + 999,
        str(T),
        str(T * 1000),
        f"{T}.5",
    ],
)
def test_accepted_forms(value):
    assert to_event_time(value) == T


def test_date_only_is_midnight_utc():
    assert to_event_time("2024-01-15") == T - 12 * 3600


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("yesterday", "not ISO 8601"),
        ("2024-13-01T00:00:00Z", "not ISO 8601"),
        ("15/01/2024", "not ISO 8601"),
        (True, "boolean"),
        (None, "expected a string or a number"),
        ([T], "expected a string or a number"),
        (-1, "negative"),
        ("-1", "negative"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (10**17, "too large"),
        ("1969-12-31T23:59:59Z", "before 1970"),
    ],
)
def test_rejected(value, reason):
    with pytest.raises(TimestampError, match=reason):
        to_event_time(value)


# Milliseconds are told from seconds by size, which is unambiguous from 1973-03-04 on.
@given(st.datetimes(min_value=datetime(1973, 3, 4), max_value=datetime(2400, 1, 1)))
def test_iso_seconds_and_milliseconds_agree(moment):
    moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp() // 1)
    assert to_event_time(moment.isoformat()) == seconds
    assert to_event_time(seconds) == seconds
    assert to_event_time(seconds * 1000 + moment.microsecond // 1000) == seconds
    assert to_event_time(moment.astimezone(UTC).replace(tzinfo=None).isoformat()) == seconds
    shifted = moment.astimezone(timezone(timedelta(hours=-7)))
    assert to_event_time(shifted.isoformat()) == seconds


def test_threshold():
    assert to_event_time(MILLISECONDS_THRESHOLD - 1) == MILLISECONDS_THRESHOLD - 1
    assert to_event_time(MILLISECONDS_THRESHOLD) == MILLISECONDS_THRESHOLD // 1000
