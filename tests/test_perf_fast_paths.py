"""The fast paths never decide differently from what they replace.

- schemacheck: "valid" only when jsonschema agrees (it may say "not sure").
- compactjson: the bytes of ``json.dumps(separators=(",", ":"), ensure_ascii=False)``.
- Pipeline.candidates: never leaves out a preset whose trigger holds.
"""

from __future__ import annotations

import math
import random

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.events import generate_events
from destination.compactjson import dumps, dumps_reference
from destination.errors import PayloadError
from destination.pipeline import Pipeline
from destination.schemacheck import compile_check
from destination.tiktok.schemas import load_schema

from .perf_support import default_pipeline, spoil
from .segment_samples import SAMPLES

SCHEMAS = ["tiktok_report_web_event", "tiktok_report_offline_event", "tiktok_report_crm_event"]
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        ["", " ", "x", "USD", "usd", "10.5", " 3 ", "product", "https://a.b/", "ftp:"]
    )
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _payloads(schema_name: str) -> st.SearchStrategy[dict]:
    names = [*load_schema(schema_name)["properties"], "unknown"]
    content = st.dictionaries(
        st.sampled_from(["content_id", "price", "quantity", "brand", "content_name", "x"]),
        scalars,
        max_size=4,
    )
    value = json_values | st.lists(content, max_size=2) | st.lists(st.text(max_size=4), max_size=2)
    return st.dictionaries(st.sampled_from(names), value, max_size=8)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_check_compiles_for_every_payload_schema(name):
    assert compile_check(load_schema(name)) is not None


@pytest.mark.parametrize("name", SCHEMAS)
@SLOW
@given(data=st.data())
def test_schema_check_says_valid_only_when_jsonschema_does(name, data):
    schema = load_schema(name)
    check = compile_check(schema)
    payload = data.draw(_payloads(name))
    if check(payload):
        assert jsonschema.Draft202012Validator(dict(schema)).is_valid(payload)


def test_schema_check_vouches_for_every_generated_payload():
    pipeline = default_pipeline()[0]
    checked = 0
    for event in generate_events(2000, seed=5):
        for item in pipeline.candidates(event.get("type"), event.get("event")):
            if item.trigger(event):
                assert item.check(item.mapping(event)), event["messageId"]
                checked += 1
    assert checked > 1000


def test_schema_check_refuses_unknown_keywords():
    assert compile_check({"type": "object", "properties": {"a": {"format": "email"}}}) is None
    assert compile_check({"$ref": "#/x"}) is None
    assert compile_check({"enum": [1, 2]}) is None


@SLOW
@given(json_values)
def test_compactjson_equals_json_dumps(value):
    try:
        expected = dumps_reference(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            dumps(value)
        return
    assert dumps(value) == expected


@SLOW
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_compactjson_floats(number):
    assert dumps({"v": [number, -number]}) == dumps_reference({"v": [number, -number]})


def test_compactjson_edges():
    class Text(str):
        pass

    for value in [
        1e-5,
        -1.5e-9,
        0.0001,
        1e16,
        math.nan,
        -math.inf,
        2**64,
        {1: 2},
        {"s": Text("x")},
        {"k": '\x00\x1f\u2028é😀"\\'},
        ("a", 1),
        [None, "null", "0.00001", "9e-9"],
    ]:
        assert dumps(value) == dumps_reference(value), value
    with pytest.raises(UnicodeEncodeError):
        dumps({"s": "\ud800"})
    with pytest.raises(TypeError):
        dumps({"when": object()})


def test_candidates_never_leave_out_a_matching_preset():
    pipeline = default_pipeline()[0]
    events = generate_events(1000, seed=9) + list(SAMPLES.values())
    events += [
        {"type": "page", "event": "Product Added"},  # both a page and a named event
        {"type": 3, "event": ["Order Completed"]},
        {},
    ]
    for event in events:
        candidates = pipeline.candidates(event.get("type"), event.get("event"))
        expected = [c for c in pipeline._compiled if c.trigger(event)]
        assert [c for c in candidates if c.trigger(event)] == expected
    assert [
        m.preset.name
        for m in pipeline.match(
            {
                "type": "page",
                "event": "Product Added",
                "messageId": "m",
                "timestamp": 1795168800,
                "anonymousId": "a",
            }
        )
    ] == ["Add to Cart", "View Content"]


def test_field_by_field_check_equals_the_whole_payload_check():
    pipeline = default_pipeline()[0]
    rng = random.Random(4)
    events = [spoil(e, rng) if rng.random() < 0.5 else e for e in generate_events(2000, 4)]
    verdicts = set()
    for event in events:
        for item in pipeline._compiled:
            assert item.checked is not None and item.check is not None
            payload, ok = item.checked(event)
            assert payload == item.mapping(event)
            assert ok == item.check(payload)
            if ok:
                assert jsonschema.Draft202012Validator(item.action.payload_schema).is_valid(payload)
            verdicts.add(ok)
    assert verdicts == {True, False}


def test_a_constant_that_breaks_the_schema_is_still_refused(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text(
        "bundle: mine\npresets:\n  - name: Search\n    mapping:\n      content_type: \"'service'\"\n"
    )
    with pytest.raises(PayloadError) as info:
        Pipeline.from_presets([user]).match(SAMPLES["products_searched"])
    assert info.value.field == "content_type" and "Search" in str(info.value)
