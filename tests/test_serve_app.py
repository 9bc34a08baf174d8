"""The ingest server over real HTTP (uvicorn on loopback) with the sandbox behind it."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from segment.analytics import Client

from destination.host import Runtime
from destination.serve.ingest import MAX_EVENT_BYTES, MAX_REQUEST_BYTES
from destination.tiktok.sandbox import Sandbox

from .serve_support import KEY, PIXEL, running_server, runtime_config, wait_for

AUTH = (KEY, "")


@dataclass
class Served:
    url: str
    runtime: Runtime
    box: Sandbox
    http: httpx.Client

    def post(
        self, path: str, payload: Any = None, *, auth: Any = AUTH, **kwargs: Any
    ) -> httpx.Response:
        if payload is not None:
            kwargs["json"] = payload
        return self.http.post(self.url + path, auth=auth, **kwargs)

    def received(self) -> int:
        return int(self.runtime.stats()["received"])


@pytest.fixture
def sandbox():
    with Sandbox(pixels=[PIXEL]) as box:
        yield box


@pytest.fixture
def served(sandbox, tmp_path):
    runtime = Runtime.from_config(
        runtime_config(sandbox, tmp_path / "outbox.db"), environ={}, track_results=False
    )
    with running_server(runtime, keys=(KEY, "wk_other")) as url, httpx.Client() as http:
        yield Served(url, runtime, sandbox, http)


def order(message_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event": "Order Completed",
        "messageId": message_id or str(uuid.uuid4()),
        "userId": "user-1",
        "timestamp": "2026-11-30T10:00:00Z",
        "properties": {"order_id": "o1", "value": 25, "currency": "USD"},
        "context": {"ip": "203.0.113.7", "traits": {"email": "a@example.com"}},
        **extra,
    }


OK = {"success": True}


# -- endpoints ----------------------------------------------------------------------------


def test_track_is_stored_before_the_answer_and_delivered(served):
    answer = served.post("/v1/track", order("m-track-1"))
    assert answer.status_code == 200 and answer.json() == OK
    assert answer.headers["content-type"] == "application/json"
    stats = served.runtime.stats()
    assert stats["received"] == 1 and stats["accepted"] == 1  # committed when we got the 200
    assert wait_for(lambda: served.box.events())
    (event,) = served.box.events()
    assert event.event_id == "m-track-1" and event.event == "PlaceAnOrder"


@pytest.mark.parametrize("kind", ["page", "screen", "identify", "group", "alias"])
def test_every_single_event_endpoint_takes_its_type_from_the_path(served, kind):
    payload = {"userId": "u1", "name": "Home", "traits": {"email": "x@example.com"}}
    if kind == "group":
        payload["groupId"] = "g1"
    if kind == "alias":
        payload["previousId"] = "old"
    answer = served.post(f"/v1/{kind}", {**payload, "type": "track"})
    assert answer.status_code == 200 and answer.json() == OK
    assert served.received() == 1


def test_batch_takes_every_type_in_one_request(served):
    batch = [order("b-1"), {**order("b-2"), "event": "Product Added"}]
    batch = [{**e, "type": "track"} for e in batch]
    batch += [
        {"type": kind, "userId": "u"} for kind in ("page", "screen", "identify", "group", "alias")
    ]
    answer = served.post("/v1/batch", {"batch": batch})
    assert answer.status_code == 200 and answer.json() == OK
    assert served.received() == 7
    assert wait_for(lambda: {"b-1", "b-2"} <= {e.event_id for e in served.box.events()})


def test_gzip_bodies_are_read(served):
    raw = json.dumps({"batch": [{**order("gz-1"), "type": "track"}]}).encode()
    answer = served.post(
        "/v1/batch", content=gzip.compress(raw), headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200
    assert wait_for(lambda: [e.event_id for e in served.box.events()] == ["gz-1"])


def test_a_bad_timestamp_is_accepted_and_counted_as_invalid(served):
    answer = served.post("/v1/track", order("bad-ts", timestamp="not a time"))
    assert answer.status_code == 200
    stats = served.runtime.stats()
    assert stats["received"] == 1 and stats["invalid"] == 1 and stats["accepted"] == 0
    assert "destination_events_invalid_total 1" in served.http.get(served.url + "/metrics").text


# -- write keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth", [None, ("wrong", ""), ("", KEY), (KEY.upper(), ""), (KEY + "x", "")]
)
def test_requests_without_a_known_write_key_are_401(served, auth):
    answer = served.post("/v1/track", order(), auth=auth)
    assert answer.status_code == 401
    assert answer.json()["success"] is False and answer.json()["code"] == "unauthorized"
    assert served.received() == 0


def test_a_bearer_token_or_garbage_header_is_401(served):
    for header in ("Bearer " + KEY, "Basic not-base64!", KEY):
        answer = served.post("/v1/track", order(), auth=None, headers={"Authorization": header})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_every_configured_key_works_and_a_body_write_key_is_taken(served):
    assert served.post("/v1/track", order(), auth=("wk_other", "")).status_code == 200
    assert served.post("/v1/track", order(writeKey=KEY), auth=None).status_code == 200
    refused = served.post("/v1/track", order(writeKey="nope"), auth=None)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    # A header, when sent, decides: a good body key does not rescue a bad header.
    assert served.post("/v1/track", order(writeKey=KEY), auth=("bad", "")).status_code == 401
    assert served.received() == 2


# -- limits and malformed input -----------------------------------------------------------


def test_a_request_over_500_kb_is_413(served):
    batch = [{**order(), "type": "track", "properties": {"x": "y" * 20_000}} for _ in range(30)]
    answer = served.post("/v1/batch", {"batch": batch})
    assert answer.status_code == 413 and answer.json()["code"] == "too_large"

    def chunks():
        for _ in range(MAX_REQUEST_BYTES // 1000 + 2):
            yield b" " * 1000

    assert served.post("/v1/batch", content=chunks()).status_code == 413  # no Content-Length
    assert served.received() == 0


def test_an_event_over_32_kb_is_413_and_nothing_of_the_request_is_stored(served):
    big = {**order(), "type": "track", "properties": {"x": "y" * MAX_EVENT_BYTES}}
    answer = served.post("/v1/batch", {"batch": [{**order(), "type": "track"}, big]})
    assert answer.status_code == 413 and "batch[1]" in answer.json()["message"]
    assert served.post("/v1/track", big).status_code == 413
    assert served.received() == 0


def test_a_gzip_bomb_is_413(served):
    bomb = gzip.compress(b'{"batch": [' + b" " * (100 * MAX_REQUEST_BYTES) + b"]}")
    answer = served.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "decompressed" in answer.json()["message"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "malformed JSON"),
        (
            b'{"batch": [{"type": "track", "event": "A"}, {"event": "B"}]}',
            "batch[1]: missing 'type'",
        ),
        (b'{"batch": "x"}', "'batch' must be a list"),
        (b"[" * 50_000, "malformed JSON"),
    ],
)
def test_malformed_bodies_are_400_with_a_message(served, content, words):
    answer = served.post("/v1/batch", content=content)
    assert answer.status_code == 400
    assert words in answer.json()["message"]
    assert served.received() == 0


def test_odd_requests_get_json_errors(served):
    assert served.http.get(served.url + "/v1/track").status_code == 405
    missing = served.post("/v1/purchase", order())
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    answer = served.post("/v1/track", content=b"{}", headers={"Content-Encoding": "br"})
    assert answer.status_code == 415


# -- health and metrics -------------------------------------------------------------------


def test_healthz_and_metrics(served):
    health = served.http.get(served.url + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    served.post("/v1/batch", {"batch": [{**order(f"mx-{i}"), "type": "track"} for i in range(3)]})
    served.post("/v1/track", order(), auth=None)
    assert wait_for(lambda: len(served.box.events()) == 3)
    text = served.http.get(served.url + "/metrics").text
    lines = text.splitlines()
    assert "destination_events_received_total 3" in lines
    assert "destination_events_matched_total 3" in lines
    assert wait_for(
        lambda: (
            "destination_events_delivered_total 3"
            in served.http.get(served.url + "/metrics").text.splitlines()
        )
    )
    assert "destination_outbox_pending 0" in served.http.get(served.url + "/metrics").text
    assert 'destination_serve_requests_total{endpoint="batch",status="200"} 1' in lines
    assert 'destination_serve_requests_total{endpoint="track",status="401"} 1' in lines
    assert 'destination_serve_events_total{endpoint="batch"} 3' in lines
    assert any(
        line.startswith('destination_serve_request_duration_seconds_count{endpoint="batch"}')
        for line in lines
    )
    for gauge in ("delivery_stopped", "storage_failing", "queue_full", "serve_draining"):
        assert f"destination_{gauge} 0" in lines
    assert not any(line.startswith("destination_delivery_stop_info{") for line in lines)
    assert KEY not in text
    # Delivery stopped, storage failing or a full queue: see test_serve_degraded.py.


# -- the real Segment client --------------------------------------------------------------


@pytest.mark.slow
def test_10000_events_from_the_segment_client_arrive_once_each(sandbox, tmp_path):
    runtime = Runtime.from_config(
        runtime_config(sandbox, tmp_path / "outbox.db"), environ={}, track_results=False
    )
    errors: list[Any] = []
    with running_server(runtime) as url:
        client = Client(
            write_key=KEY,
            host=url,
            gzip=True,
            upload_size=100,
            max_queue_size=20_000,
            on_error=lambda exc, batch: errors.append(exc),
        )
        sent = []
        for i in range(10_000):
            ok, message = client.track(
                user_id=f"user-{i % 500}",
                event="Order Completed" if i % 2 else "Product Added",
                properties={"order_id": f"o{i}", "value": i % 100 + 1, "currency": "USD"},
                context={"ip": "203.0.113.7", "traits": {"email": f"u{i % 500}@example.com"}},
            )
            assert ok
            sent.append(message["messageId"])
        client.shutdown()
        assert errors == []
        assert runtime.stats()["received"] == 10_000
        assert wait_for(lambda: len(sandbox.events()) >= 10_000, timeout=30)
    ids = [e.event_id for e in sandbox.events()]
    assert len(ids) == 10_000 and set(ids) == set(sent)
    assert sandbox.duplicates() == {}
