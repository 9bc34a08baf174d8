"""The TikTok request for a batch and the reading of TikTok's answers (the spec's table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from destination.actions import Outcome, Route
from destination.tiktok.protocol import (
    MAINTENANCE_MIN_BACKOFF,
    MAX_BATCH_ITEMS,
    build_request,
    classify,
    parse_retry_after,
)
from destination.tiktok.settings import load_settings

TOKEN = "tok-protocol-7f3e"
SETTINGS = load_settings({"access_token": TOKEN, "pixel_code": "CPIX"}, {})
ROUTE = Route(destination="tiktok", event_source="web")
TRACK_URL = "https://business-api.tiktok.com/open_api/v1.3/event/track/"
ITEM = {"event": "Purchase", "event_time": 1705320000, "event_id": "m-1", "user": {"ttp": "é"}}


def body(code: int, message: str = "msg") -> bytes:
    return json.dumps({"code": code, "message": message, "request_id": "r1", "data": {}}).encode()


def test_request_shape():
    request = build_request(SETTINGS, ROUTE, [ITEM, ITEM])
    assert request.url == TRACK_URL
    assert request.headers == {"Access-Token": TOKEN, "Content-Type": "application/json"}
    assert request.secret_headers == frozenset({"Access-Token"})
    assert json.loads(request.body) == {
        "event_source": "web",
        "event_source_id": "CPIX",
        "data": [ITEM, ITEM],
    }
    assert b", " not in request.body and b": " not in request.body  # compact separators
    assert request.body.startswith(b'{"event_source":"web","event_source_id":"CPIX",')
    assert "é".encode() in request.body


def test_request_with_test_event_code_and_partner_name():
    settings = load_settings(
        {
            "access_token": TOKEN,
            "pixel_code": "CPIX",
            "offline_event_set_id": "OFF1",
            "test_event_code": "TEST42",
            "partner_name": "Acme",
        },
        {},
    )
    route = Route("tiktok", "offline")
    decoded = json.loads(build_request(settings, route, [ITEM]).body)
    assert list(decoded) == [
        "event_source",
        "event_source_id",
        "test_event_code",
        "partner_name",
        "data",
    ]
    assert (decoded["event_source"], decoded["event_source_id"]) == ("offline", "OFF1")
    assert (decoded["test_event_code"], decoded["partner_name"]) == ("TEST42", "Acme")


def test_token_only_in_its_header():
    request = build_request(SETTINGS, ROUTE, [ITEM])
    assert TOKEN not in repr(request)
    assert TOKEN.encode() not in request.body
    assert TOKEN not in request.url
    assert request.redacted_headers()["Access-Token"] == "[REDACTED]"


def test_batch_limits():
    with pytest.raises(ValueError, match="at least one item"):
        build_request(SETTINGS, ROUTE, [])
    with pytest.raises(ValueError, match="at most 1000 items, got 1001"):
        build_request(SETTINGS, ROUTE, [ITEM] * (MAX_BATCH_ITEMS + 1))
    assert len(json.loads(build_request(SETTINGS, ROUTE, [ITEM] * 1000).body)["data"]) == 1000


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.DELIVERED),
        (20001, Outcome.DELIVERED),
        (40000, Outcome.REJECTED),
        (40002, Outcome.REJECTED),
        (40001, Outcome.STOP),
        (40105, Outcome.STOP),
        *[(c, Outcome.RETRY) for c in (40016, 40100, 40101, 40102)],
        *[(c, Outcome.RETRY) for c in (40200, 40201, 40202, 40700)],
        *[(c, Outcome.RETRY) for c in (50000, 50001, 50002, 51001, 51039, 51305)],
        (60001, Outcome.RETRY),
        (40999, Outcome.REJECTED),  # unknown 4xxxx: the request is wrong
        (59999, Outcome.RETRY),  # unknown 5xxxx: TikTok's side
        (12345, Outcome.REJECTED),
    ],
)
def test_body_codes_on_http_200(code, outcome):
    verdict = classify(200, {}, body(code, "something"))
    assert verdict.outcome is outcome
    assert (verdict.status, verdict.code) == (200, code)
    assert verdict.message.startswith(f"TikTok code {code}: something")


def test_rejection_names_the_data_index():
    verdict = classify(
        200, {}, body(40002, "data.3.properties.contents.0.content_id: Not a valid string")
    )
    assert verdict.outcome is Outcome.REJECTED
    assert verdict.index == 3
    assert "content_id: Not a valid string" in verdict.message


def test_rejection_without_index():
    verdict = classify(200, {}, body(40000, "Invalid parameter: event_source_id"))
    assert (verdict.outcome, verdict.index) == (Outcome.REJECTED, None)


def test_auth_messages():
    assert "access token" in classify(200, {}, body(40105)).message
    assert "no permission" in classify(200, {}, body(40001)).message


def test_maintenance_waits_longer():
    verdict = classify(200, {"Retry-After": "30"}, body(60001))
    assert verdict.min_backoff == MAINTENANCE_MIN_BACKOFF >= 60
    assert verdict.retry_after == 30.0
    assert classify(200, {}, body(40100)).min_backoff is None


@pytest.mark.parametrize(
    "payload",
    [
        b"<html>gateway</html>",
        b"",
        b"[1, 2]",
        b'{"message": "no code"}',
        b'{"code": "0"}',
        b'{"code": true}',
    ],
)
def test_a_200_that_is_not_tiktoks_answer_stops(payload):
    # A proxy, a captive portal or a wrong api_base_url: never retried forever in
    # silence, never dead-lettered; delivery stops and says where to look.
    verdict = classify(200, {}, payload)
    assert verdict.outcome is Outcome.STOP
    assert "not TikTok's answer (check api_base_url)" in verdict.message


def test_rate_limited_answers_are_marked():
    assert classify(429, {}, b"").rate_limited
    for code in (40016, 40100, 40101, 40102):
        assert classify(200, {}, body(code)).rate_limited
    for status, payload in ((503, b""), (200, body(50000)), (200, body(40200))):
        verdict = classify(status, {}, payload)
        assert verdict.outcome is Outcome.RETRY and not verdict.rate_limited


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (401, Outcome.STOP),
        (403, Outcome.STOP),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (400, Outcome.REJECTED),
        (404, Outcome.STOP),  # no Events API there: a wrong api_base_url
        (405, Outcome.STOP),
        (413, Outcome.REJECTED),
        (301, Outcome.STOP),
    ],
)
def test_http_status_without_body(status, outcome):
    verdict = classify(status, {}, b"")
    assert verdict.outcome is outcome
    assert verdict.status == status
    assert str(status) in verdict.message


def test_http_4xx_uses_body_code():
    verdict = classify(400, {}, body(40002, "data.7.event_time: invalid"))
    assert (verdict.outcome, verdict.index, verdict.code) == (Outcome.REJECTED, 7, 40002)
    assert classify(400, {}, body(40105)).outcome is Outcome.STOP
    assert classify(400, {}, body(40100)).outcome is Outcome.RETRY
    assert classify(400, {}, body(0)).outcome is Outcome.REJECTED


def test_retry_after_on_429_and_503():
    assert classify(429, {"retry-after": "12"}, b"").retry_after == 12.0
    assert classify(503, {"Retry-After": "1.5"}, b"").retry_after == 1.5
    assert classify(429, {}, b"").retry_after is None


def test_parse_retry_after_forms():
    now = datetime(2024, 1, 20, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2024, 1, 20, 0, 2, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 120.0
    assert parse_retry_after("Sat, 01 Jan 2000 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("Sat, 20 Jan 2024 00:01:00 -0000", now=now) == 60.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


def test_long_messages_are_shortened():
    verdict = classify(200, {}, body(40002, "x" * 5000))
    assert len(verdict.message) < 600
