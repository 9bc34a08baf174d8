"""Reading request bodies (limits, gzip, malformed input), write keys and the metrics text."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.errors import ConfigurationError
from destination.serve.auth import ENV_WRITE_KEYS, WriteKeys, basic_user, resolve_write_keys
from destination.serve.ingest import (
    MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
    IngestError,
    _load_sized,
    decode_body,
    parse_request,
)
from destination.serve.metrics import RequestMetrics, render

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def body(value) -> bytes:
    return json.dumps(value).encode()


def refused(raw: bytes, kind: str | None = None) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse_request(raw, kind, now=NOW)
    return info.value


# -- bodies -------------------------------------------------------------------------------


def test_plain_and_gzip_bodies_decode_to_the_same_bytes():
    raw = body({"batch": [{"type": "track", "event": "A"}]})
    assert decode_body(raw, None) == raw
    assert decode_body(raw, "identity") == raw
    assert decode_body(gzip.compress(raw), "gzip") == raw
    assert decode_body(gzip.compress(raw), " GZIP ") == raw
    assert decode_body(gzip.compress(raw[:10]) + gzip.compress(raw[10:]), "gzip") == raw


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"{" + b" " * (50 * MAX_REQUEST_BYTES) + b"}")
    assert len(bomb) < MAX_REQUEST_BYTES // 10
    with pytest.raises(IngestError) as info:
        decode_body(bomb, "gzip")
    assert info.value.status == 413 and "decompressed" in info.value.message


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"not gzip at all", "not a valid gzip"), (gzip.compress(b'{"a": 1}')[:-6], "truncated")],
)
def test_bad_gzip_is_a_400(raw, words):
    with pytest.raises(IngestError) as info:
        decode_body(raw, "gzip")
    assert info.value.status == 400 and words in info.value.message


def test_unknown_content_encoding_is_a_415():
    with pytest.raises(IngestError) as info:
        decode_body(zlib.compress(b"{}"), "br")
    assert info.value.status == 415 and "'br'" in info.value.message


def test_a_body_over_the_request_limit_is_a_413():
    with pytest.raises(IngestError) as info:
        decode_body(b" " * (MAX_REQUEST_BYTES + 1), None)
    assert info.value.status == 413


# -- events -------------------------------------------------------------------------------


def test_single_endpoint_sets_the_type_from_the_path_and_received_at():
    events, key = parse_request(
        body({"event": "A", "type": "page", "writeKey": "k"}), "track", now=NOW
    )
    assert events == [{"event": "A", "type": "track", "receivedAt": "2026-12-01T12:00:00.000Z"}]
    assert key == "k"


def test_batch_items_get_the_shared_context_integrations_and_sent_at():
    raw = body(
        {
            "batch": [
                {"type": "identify", "userId": "u", "context": {"ip": "1.2.3.4"}},
                {"type": "page", "anonymousId": 7, "sentAt": "own"},
            ],
            "context": {"ip": "9.9.9.9", "library": {"name": "x"}},
            "integrations": {"All": True},
            "sentAt": "2026-12-01T11:59:59Z",
        }
    )
    events, key = parse_request(raw, None, now=NOW)
    assert key is None
    assert events[0]["context"] == {"ip": "1.2.3.4", "library": {"name": "x"}}
    assert events[1]["context"] == {"ip": "9.9.9.9", "library": {"name": "x"}}
    assert events[0]["integrations"] == {"All": True}
    assert events[0]["sentAt"] == "2026-12-01T11:59:59Z" and events[1]["sentAt"] == "own"
    assert {e["receivedAt"] for e in events} == {"2026-12-01T12:00:00.000Z"}


def test_an_empty_batch_is_fine():
    assert parse_request(body({"batch": []}), None) == ([], None)


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        (b"{", None, "malformed JSON"),
        (b'{"batch": [1,]}', None, "malformed JSON: Expecting value (line 1, column 14)"),
        (b'{"batch": [NaN]}', None, "NaN is not valid JSON"),
        (b"\xff\xfe{}", None, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
        (b"[]", None, "must be a JSON object, got a list"),
        (b'"track"', "track", "must be a JSON object, got a string"),
        (b"{}", None, "missing 'batch'"),
        (b'{"batch": {}}', None, "'batch' must be a list, got an object"),
        (
            b'{"batch": [{"type": "track", "event": "A"}, 3]}',
            None,
            "batch[1]: an event must be a JSON object",
        ),
        (b'{"batch": [{"event": "A"}]}', None, "batch[0]: missing 'type'"),
        (b'{"batch": [{"type": 1}]}', None, "batch[0]: 'type' must be a string, got a number"),
        (b'{"batch": [{"type": "purchase"}]}', None, "batch[0]: unknown type 'purchase'"),
        (b'{"batch": [{"type": "track"}]}', None, "batch[0]: a track event needs 'event'"),
        (b'{"event": ""}', "track", "needs 'event', a non-empty string (got a string)"),
        (b'{"messageId": 5}', "page", "'messageId' must be a string, got a number"),
        (b'{"userId": true}', "identify", "'userId' must be a string or a number, got a boolean"),
        (b'{"anonymousId": {}}', "screen", "'anonymousId' must be a string or a number"),
        (b'{"properties": []}', "page", "'properties' must be an object, got a list"),
        (b'{"traits": "x"}', "identify", "'traits' must be an object, got a string"),
        (b'{"context": 1}', "group", "'context' must be an object, got a number"),
        (b'{"integrations": true}', "alias", "'integrations' must be an object"),
    ],
)
def test_malformed_requests_are_400_naming_the_problem(raw, kind, words):
    error = refused(raw, kind)
    assert error.status == 400
    assert words in error.message


def test_bad_timestamps_and_missing_ids_are_left_to_the_runtime():
    events, _ = parse_request(body({"event": "A", "timestamp": "yesterday"}), "track")
    assert events[0]["timestamp"] == "yesterday"


def test_an_event_over_32_kb_is_a_413_naming_its_index():
    big = {"type": "track", "event": "A", "properties": {"x": "y" * MAX_EVENT_BYTES}}
    small = {"type": "track", "event": "A"}
    error = refused(body({"batch": [small, small, big]}))
    assert error.status == 413 and error.message.startswith("batch[2]: event larger than 32 KB")
    assert refused(body(big), "track").status == 413


def test_events_just_under_32_kb_pass_in_a_large_batch():
    item = {"type": "track", "event": "A", "properties": {"x": "y" * (MAX_EVENT_BYTES - 200)}}
    events, _ = parse_request(body({"batch": [item] * 10}), None)
    assert len(events) == 10


# -- write keys ---------------------------------------------------------------------------


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_user_reads_the_write_key():
    assert basic_user(basic("wk_1")) == "wk_1"
    assert basic_user(basic("wk_1", "ignored")) == "wk_1"
    assert basic_user("basic " + base64.b64encode(b"k:").decode()) == "k"
    for bad in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"\xff").decode()):
        assert basic_user(bad) is None


def test_write_keys_accept_only_their_keys_and_hide_them():
    keys = WriteKeys(["alpha", "beta", "alpha", ""], "--write-key")
    assert len(keys) == 2
    assert keys.accepts("alpha") and keys.accepts("beta")
    for bad in ("", None, "alph", "alphaa", "ALPHA"):
        assert not keys.accepts(bad)
    assert "alpha" not in repr(keys) and "beta" not in repr(keys)


def test_write_keys_come_from_the_first_source_that_has_some():
    env = {ENV_WRITE_KEYS: " e1, e2 ,"}
    assert resolve_write_keys(["a"], env, ["c"]).source == "--write-key"
    from_env = resolve_write_keys(None, env, ["c"])
    assert from_env.source == ENV_WRITE_KEYS and from_env.accepts("e2") and len(from_env) == 2
    assert resolve_write_keys([], {}, ["c"]).accepts("c")
    with pytest.raises(ConfigurationError, match="no write key"):
        resolve_write_keys([], {ENV_WRITE_KEYS: " , "}, [])


# -- metrics ------------------------------------------------------------------------------


def test_metrics_render_counters_gauges_and_a_histogram():
    requests = RequestMetrics()
    requests.observe("batch", 200, 0.003, events=100)
    requests.observe("batch", 200, 0.02, events=100)
    requests.observe("batch", 400, 0.0001)
    stats = {
        "received": 201,
        "matched": 150,
        "invalid": 1,
        "delivered": 120,
        "pending": 30,
        "dead_letters": 2,
        "stopped": False,
        "matched_by_preset": {'Say "hi"': 3},
    }
    text = render(stats, requests)
    lines = text.splitlines()
    assert "destination_events_received_total 201" in lines
    assert "destination_events_retried_total 0" in lines
    assert "destination_outbox_pending 30" in lines
    assert 'destination_events_matched_by_preset_total{preset="Say \\"hi\\""} 3' in lines
    assert 'destination_serve_requests_total{endpoint="batch",status="200"} 2' in lines
    assert 'destination_serve_requests_total{endpoint="batch",status="400"} 1' in lines
    assert 'destination_serve_events_total{endpoint="batch"} 200' in lines
    name = "destination_serve_request_duration_seconds"
    assert f'{name}_bucket{{endpoint="batch",le="0.001"}} 1' in lines
    assert f'{name}_bucket{{endpoint="batch",le="0.005"}} 2' in lines
    assert f'{name}_bucket{{endpoint="batch",le="+Inf"}} 3' in lines
    assert f'{name}_count{{endpoint="batch"}} 3' in lines
    for line in lines:  # every sample line is "name{labels} number"
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    assert text.endswith("\n")


# -- the one-pass reader of large batches -------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(
    items=st.lists(st.dictionaries(st.text(), json_values, max_size=5), max_size=6),
    extra=st.dictionaries(st.text(), json_values, max_size=3),
    indent=st.sampled_from([None, 1, "\t"]),
    ascii_only=st.booleans(),
)
def test_the_sized_reader_equals_json_loads_and_measures_each_item_as_sent(
    items, extra, indent, ascii_only
):
    document = {**extra, "batch": items}
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)
    parsed, sizes = _load_sized(text)
    assert parsed == json.loads(text)
    assert sizes is not None and len(sizes) == len(items)
    if indent is None:
        expected = [len(json.dumps(i, ensure_ascii=ascii_only).encode()) for i in items]
        assert sizes == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"batch": [1, 2], "batch": [3]}',
        '  {"a": 1, "batch": []}  ',
        '{"batch": {"not": "a list"}}',
        '{"batch": [1 2]}',
        '{"batch": [NaN]}',
        '{"batch": [1]} trailing',
        "[1, 2]",
        '{"batch": ["\\ud800"]}',
    ],
)
def test_the_sized_reader_agrees_with_json_loads_on_odd_documents(text):
    try:
        expected = json.loads(text, parse_constant=lambda name: 1 / 0)
    except (ValueError, ZeroDivisionError):
        with pytest.raises(IngestError):
            _load_sized(text)
        return
    parsed, sizes = _load_sized(text)
    assert parsed == expected
    if isinstance(expected, dict) and isinstance(expected.get("batch"), list):
        assert sizes is not None and len(sizes) == len(expected["batch"])


def test_a_pretty_printed_batch_is_measured_with_its_spaces():
    item = {"type": "track", "event": "A", "properties": {"x": "y" * (MAX_EVENT_BYTES - 100)}}
    compact = json.dumps({"batch": [item, item]}).encode()
    assert parse_request(compact, None)[0][1]["event"] == "A"
    wide = json.dumps({"batch": [item, item]}, indent=60).encode()
    assert refused(wide).status == 413
