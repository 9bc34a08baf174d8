"""The fast paths never decide differently from what they replace.

- schemacheck: "valid" only when jsonschema agrees (it may say "not sure").
- compactjson: the bytes of ``json.dumps(separators=(",", ":"), ensure_ascii=False)``.
- Pipeline.candidates: never leaves out a preset whose trigger holds.
- tiktok.items.build_item: the same item, warnings and error as its straightforward
  predecessor (tests/reference_items.py) for any payload.
- yamlsource.parse_yaml: libyaml's reading equals the pure-Python reader's (values,
  positions, styles), and every file with a problem is left to the latter.
"""

from __future__ import annotations

import math
import random

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.events import NOW, generate_events
from destination import compactjson
from destination.compactjson import dumps, dumps_reference
from destination.errors import PayloadError
from destination.pipeline import Pipeline
from destination.schemacheck import accepts_every_string, compile_check
from destination.tiktok.items import build_item
from destination.tiktok.schemas import load_schema
from destination.tiktok.settings import load_settings
from destination.yamlsource import _parse_fast, _parse_python, parse_yaml

from . import reference_items
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
    product = {"type": "object", "properties": {"a": {"type": "string"}}, "maxProperties": 2}
    assert compile_check(product) is None
    assert compile_check({"type": "array", "items": product}) is None
    assert compile_check({"minimum": True}) is None
    assert compile_check({"minProperties": -1}) is None


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "other.json#/$defs/a", "$defs": {"a": {}}},  # another document
        {"$ref": "#a", "$defs": {"a": {"$anchor": "a"}}},  # an anchor
        {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}},  # a cycle
        {"$ref": "#", "type": "object"},  # the root itself: a cycle too
        {"$ref": "#/$defs/a%20b", "$defs": {"a b": {}}},  # percent-encoded
        # a $id below the root changes what "#" means: left to jsonschema
        {"$ref": "#/$defs/a", "$defs": {"a": {"$id": "https://x.test/a", "type": "string"}}},
    ],
)
def test_schema_check_refuses_refs_it_cannot_follow_exactly(schema):
    assert compile_check(schema) is None


def test_schema_check_follows_refs_into_the_same_schema():
    schema = {
        "type": "array",
        "items": {"$ref": "#/$defs/thing", "minLength": 2},
        "$defs": {"thing": {"type": "string", "pattern": "^a"}, "a/b~c": {"enum": ["x"]}},
    }
    check = compile_check(schema)
    assert check is not None
    assert check(["ab", "abc"]) and not check(["a"]) and not check(["bb"]) and not check([1])
    escaped = compile_check({**schema, "items": {"$ref": "#/$defs/a~1b~0c"}})
    assert escaped is not None and escaped(["x"]) and not escaped(["y"])


@pytest.mark.parametrize(
    ("keyword", "bound", "inside", "outside"),
    [
        ("minimum", 1, [1, 1.0, 2, 1e300], [0, 0.5, -(2**70)]),
        ("exclusiveMinimum", 0, [1, 0.1, 2**70], [0, 0.0, -1]),
        ("maximum", 10.5, [10, 10.5, -3], [11, 10.6]),
        ("exclusiveMaximum", 3, [2, 2.9], [3, 3.0, 4]),
    ],
)
def test_number_bounds_apply_to_numbers_only(keyword, bound, inside, outside):
    check = compile_check({keyword: bound})
    assert check is not None
    validator = jsonschema.Draft202012Validator({keyword: bound})
    for value in inside:
        assert check(value) and validator.is_valid(value), value
    for value in outside:
        assert not check(value) and not validator.is_valid(value), value
    # not numbers to jsonschema (bool included): the bound does not apply
    for value in ["0", True, False, None, [], {}]:
        assert check(value) and validator.is_valid(value), value
    # NaN and number types of other classes: "not sure", jsonschema decides
    assert not check(math.nan)
    assert not compile_check({"type": "number", keyword: bound})(math.nan)


def test_object_keywords_apply_to_objects_only():
    check = compile_check({"minProperties": 1, "propertyNames": {"pattern": "^[a-z]+$"}})
    assert check is not None
    assert check({"ab": 1}) and check("x") and check([]) and check(None)
    assert not check({}) and not check({"A": 1})


#: The framework's own schemas: preset and mapping files, the configuration, the settings.
FILE_SCHEMAS = ["preset_file", "mapping_file", "config", "tiktok_settings"]


def _near(schema, root):
    """Values shaped like ``schema`` (its keys, types, patterns and bounds) and strays.

    Seven draws in eight follow the schema, so many values are valid and the
    check's "valid" is exercised, not only its "not sure".
    """
    if not isinstance(schema, dict):
        return json_values
    if "$ref" in schema:
        return _near(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root)
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if not types and ("properties" in schema or "additionalProperties" in schema):
        types = ["object"]
    shaped = [st.sampled_from(schema["enum"])] if "enum" in schema else []
    for kind in types:
        if kind == "string":
            pattern = schema.get("pattern")
            shaped.append(st.from_regex(pattern) if pattern else st.text(max_size=4))
        elif kind in ("integer", "number"):
            edges = [schema[k] for k in _BOUND_KEYWORDS if k in schema] or [0]
            shaped.append(
                st.sampled_from(edges).flatmap(
                    lambda b: st.sampled_from([b, b - 1, b + 1, b - 0.5, b + 0.5, float(b)])
                )
            )
        elif kind == "boolean":
            shaped.append(st.booleans())
        elif kind == "null":
            shaped.append(st.none())
        elif kind == "array":
            shaped.append(st.lists(_near(schema.get("items", {}), root), max_size=3))
        elif kind == "object":
            shaped.append(_near_object(schema, root))
    if not shaped:
        return json_values
    follow = st.one_of(shaped)
    return st.integers(0, 7).flatmap(lambda i: follow if i else json_values)


_BOUND_KEYWORDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


@st.composite
def _near_object(draw, schema, root):
    properties = schema.get("properties", {})
    required = list(schema.get("required", []))
    optional = [name for name in properties if name not in required]
    keys = [name for name in required if draw(st.integers(0, 9))]  # one in ten left out
    if optional:
        keys += draw(st.lists(st.sampled_from(optional), max_size=4, unique=True))
    if not properties or draw(st.integers(0, 7)) == 0:
        keys += draw(st.lists(st.sampled_from(["unknown", "9x", "ok_name", ""]), max_size=2))
    extra = _near(schema.get("additionalProperties", {}), root)
    return {key: draw(_near(properties[key], root) if key in properties else extra) for key in keys}


@pytest.mark.parametrize("name", FILE_SCHEMAS)
@SLOW
@given(data=st.data())
def test_file_schema_check_says_valid_only_when_jsonschema_does(name, data):
    schema = load_schema(name)
    check = compile_check(schema)
    assert check is not None
    value = data.draw(_near(schema, schema))
    if check(value):
        assert jsonschema.Draft202012Validator(dict(schema)).is_valid(value)


def test_file_schema_check_vouches_for_the_shipped_files():
    """So that loading them (every run, serve and lint) never imports jsonschema."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    kinds = {"presets": "preset_file", "mappings": "mapping_file"}
    seen = 0
    for folder, schema_name in kinds.items():
        check = compile_check(load_schema(schema_name))
        for path in sorted((root / folder).rglob("*.yaml")):
            assert check(yaml.safe_load(path.read_text())), path
            seen += 1
    assert seen >= 5
    config = yaml.safe_load((root / "examples" / "destination.yaml").read_text())
    assert compile_check(load_schema("config"))(config)
    settings = {"access_token": "t", "pixel_code": "P", "default_phone_region": "GB"}
    assert compile_check(load_schema("tiktok_settings"))(settings)


# --- YAML: libyaml's reading against PyYAML's pure-Python one ----------------------------


def _typed(value):
    """``value`` with every scalar's type beside it (``1 == 1.0 == True`` in Python)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, repr(value))


def _same_reading(text):
    """parse_yaml (libyaml when it can) reads ``text`` exactly as the pure-Python reader."""
    fast, slow = parse_yaml(text, "f.yaml"), _parse_python(text, "f.yaml")
    assert _typed(fast.value) == _typed(slow.value)
    assert (fast.marks, fast.key_marks, fast.styles) == (slow.marks, slow.key_marks, slow.styles)
    assert fast.problems == slow.problems
    return _parse_fast(text, "f.yaml") is not None


yaml_keys = st.text(max_size=6) | st.sampled_from(["event", "on", "yes", "1", "null", "<<", "a b"])
yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["2024-05-01", "0x1f", "1_000", "~", "'q'", "a: b", "- x", "#c", "é😀"])
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(yaml_keys, inner, max_size=3),
    max_leaves=10,
)


@SLOW
@given(
    value=st.dictionaries(yaml_keys, yaml_values, min_size=1, max_size=4),
    flow=st.sampled_from([None, True, False]),
    style=st.sampled_from([None, '"', "'", "|", ">"]),
    unicode=st.booleans(),
    width=st.sampled_from([20, 80]),
    crlf=st.booleans(),
)
def test_libyaml_reads_documents_as_the_python_reader_does(
    value, flow, style, unicode, width, crlf
):
    text = yaml.dump(
        value, default_flow_style=flow, default_style=style, allow_unicode=unicode, width=width
    )
    _same_reading(text.replace("\n", "\r\n") if crlf else text)


def test_libyaml_reads_the_shipped_files_and_leaves_every_problem_to_the_python_reader():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    shipped = [*root.glob("presets/*.yaml"), *root.glob("mappings/*/*.yaml")]
    shipped.append(root / "examples" / "destination.yaml")
    for path in shipped:
        assert _same_reading(path.read_text()), path  # taken from libyaml
    broken = [
        "",
        "# only a comment\n",
        "a: 1\na: 2\n",  # duplicate key
        "a:\n\t- b\n",  # tab
        "a: [1, 2\n",  # unclosed
        "a: b: c\n",
        "--- 1\n--- 2\n",  # two documents
        "a: &x [*x]\n",  # recursive alias
        "<<: {a: 1}\n",  # merge key
        "? [1]\n: x\n",  # a key that is not a string
        "1: x\n",
        "a: \x07\n",  # a character YAML forbids
        "a: !!binary 'not base64!'\n",
        "a: !custom x\n",
        "a: 'x\n",
        'a: "\\q"\n',
    ]
    for text in broken:
        assert not _same_reading(text), repr(text)  # read again by the pure-Python reader
        assert parse_yaml(text, "f.yaml").problems


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


# --- the item builder against its straightforward predecessor --------------------------

_IDENTIFIER_TEXTS = st.sampled_from(
    [
        "Ada@Example.com ",
        "not-an-email",
        "@x",
        "+14155550123",
        "(415) 555-0123",
        "+44 20 7946 0958",
        "12",
        "  ",
        "A" * 64,
        "ab" * 32,
        "https://shop.example.com/p?ttclid=E.C.P.1&x=2",
        "HTTP://Example.com",
        "http://",
        "ftp://x",
        "android-app://x",
        "2026-11-20T10:00:00.123Z",
        "2026-11-20",
        "1795168800",
        "1795168800123",
        "_ttp=abc; other=1",
        "SW1A 1AA",
        "usd",
        "USD",
        "dollars",
        "10.50",
        " 3 ",
        "1e3",
        "product_group",
        "in_store",
        "AddToCart",
        "Purchase",
    ]
)
_good_text = _IDENTIFIER_TEXTS | st.text(max_size=6)
# mostly well-typed values, so that payloads get past the first checks to the later fields
_item_values = st.one_of(
    _good_text,
    _good_text,
    _good_text,
    scalars,
    st.lists(scalars | _IDENTIFIER_TEXTS, max_size=3),
    st.dictionaries(st.sampled_from(["_ttp", "x"]), scalars | _IDENTIFIER_TEXTS, max_size=2),
)
_item_contents = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["content_id", "content_name", "content_category", "brand", "price", "quantity", "x"]
        ),
        st.one_of(_good_text, st.integers(-5, 5), st.floats(), scalars),
        max_size=6,
    )
    | scalars,
    max_size=3,
)


def _item_payloads() -> st.SearchStrategy[dict]:
    names = sorted(
        {name for schema in SCHEMAS for name in load_schema(schema)["properties"]} | {"unknown"}
    )
    good_names = ["AddToCart", "Purchase", "CustomThing", "Lead", "ViewContent"]
    good_times = ["2026-11-20T10:00:00.123Z", 1795168800, 1795168800123]
    base = st.fixed_dictionaries(
        {
            "event": st.one_of(st.sampled_from(good_names), st.sampled_from(good_names), scalars),
            "timestamp": st.one_of(
                st.sampled_from(good_times),
                st.sampled_from(good_times),
                st.sampled_from([1, 4102444800, " ", "soon"]) | scalars,
            ),
        },
        optional={"event_id": st.sampled_from(["ajs-1", " ajs-2 ", 17, 12.0]) | scalars},
    )
    rest = st.dictionaries(
        st.sampled_from(names),
        st.one_of(_item_values, _item_values, _item_values, _item_contents),
        max_size=12,
    )
    return st.builds(lambda a, b: {**b, **a}, base, rest)


def _built(function, payload, settings, source):
    try:
        item, warnings = function(payload, settings, event_source=source, now=NOW)
    except PayloadError as exc:
        return ("error", str(exc), exc.field, exc.event_id)
    return (compactjson.dumps(item), [w.as_dict() for w in warnings])


_ITEM_SETTINGS = [
    load_settings({"access_token": "t", "pixel_code": "P"}, {}),
    load_settings(
        {
            "access_token": "t",
            "pixel_code": "P",
            "limited_data_use": True,
            "stale_events": "drop",
            "default_phone_region": "GB",
        },
        {},
    ),
]


@pytest.mark.parametrize("source", ["web", "offline", "crm"])
@SLOW
@given(payload=_item_payloads(), which=st.sampled_from([0, 1]))
def test_build_item_equals_its_straightforward_predecessor(source, payload, which):
    tiktok = _ITEM_SETTINGS[which]
    expected = _built(reference_items.build_item, payload, tiktok, source)
    assert _built(build_item, payload, tiktok, source) == expected


def test_build_item_equals_its_predecessor_on_generated_payloads():
    pipeline = default_pipeline()[0]
    rng = random.Random(3)
    compared = errors = 0
    for event in generate_events(2000, seed=11):
        if rng.random() < 0.25:
            event = spoil(event, rng)
        for item in pipeline.candidates(event.get("type"), event.get("event")):
            if item.trigger(event):
                payload = item.mapping(event)
                for tiktok in _ITEM_SETTINGS:
                    expected = _built(reference_items.build_item, payload, tiktok, "web")
                    assert _built(build_item, payload, tiktok, "web") == expected
                    compared += 1
                    errors += expected[0] == "error"
    assert compared > 2000 and errors > 50


_BASE = {"event": "Purchase", "timestamp": 1795168800, "event_id": "ajs-1"}


@pytest.mark.parametrize("source", ["web", "offline", "crm"])
@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not-an-email"},
        {"phone": "12"},
        {"email": "nope", "phone": "12"},
        {"email": ["nope", " "], "phone": ["12", 3]},
        {"email": "nope", "external_id": " "},
        {"email": "a@b.c", "phone": "12", "lead_id": 7},
        {"phone": "+14155550123", "ip": "1.2.3.4"},
        {"ip": "1.2.3.4", "user_agent": "UA", "url": "HTTPS://x.y/?ttclid=1"},
        {"cookie": {"_ttp": " t "}, "referrer": "ftp://x", "url": "https://x"},
        {"ttclid": " ", "url": "https://x/?ttclid=%20&ttclid=b"},
        {"external_id": 12.5, "contents": [{"price": "1.5", "quantity": "2"}], "value": ""},
    ],
)
def test_build_item_equals_its_predecessor_on_identifier_edges(source, fields):
    for tiktok in _ITEM_SETTINGS:
        payload = {**_BASE, **fields}
        expected = _built(reference_items.build_item, payload, tiktok, source)
        assert _built(build_item, payload, tiktok, source) == expected


@SLOW
@given(text=st.text(max_size=12) | _IDENTIFIER_TEXTS)
def test_a_property_that_accepts_every_string_accepts_this_one(text):
    vouched = 0
    for name in SCHEMAS:
        for sub in load_schema(name)["properties"].values():
            if accepts_every_string(sub):
                vouched += 1
                assert jsonschema.Draft202012Validator(dict(sub)).is_valid(text)
    assert vouched > 20


def test_accepts_every_string_is_false_when_unsure():
    for schema in [
        {"type": "string", "pattern": "x"},
        {"type": "number"},
        {"enum": ["a"]},
        {"anyOf": [{"type": "number"}, {"type": "string", "minLength": 1}]},
        {"type": "string", "format": "email"},
        {"not": {"type": "string"}},
        False,
    ]:
        assert not accepts_every_string(schema), schema
    assert accepts_every_string({"anyOf": [{"type": "array"}, {"type": ["string", "null"]}]})
