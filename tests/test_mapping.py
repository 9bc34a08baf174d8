"""The mapping engine: fast paths equal jmespath, built-in functions, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination import hookimpl
from destination.errors import MappingError, PayloadError
from destination.mapping import (
    BUILTIN_FUNCTIONS,
    MappingFunctions,
    _prune,
    compile_expression,
    compile_mapping,
    fn_cookie,
    fn_epoch_millis,
    fn_epoch_seconds,
    fn_iso_timestamp,
    fn_to_number,
    fn_url_param,
    is_false,
)
from destination.plugins import collect_registry
from destination.presets import load_catalog, resolve_presets

from .conftest import registered
from .segment_samples import SAMPLES


@pytest.fixture(scope="module")
def functions() -> MappingFunctions:
    return MappingFunctions.from_registry(collect_registry())


def _all_builtin_expressions() -> list[tuple[str, str, str]]:
    """(where, field, expression) for every built-in mapping file and preset override."""
    found = []
    catalog = load_catalog()
    for mapping_file in catalog.mapping_files:
        for name, text in mapping_file.fields.items():
            assert text is not None
            found.append((mapping_file.name, name, text))
    for files in catalog.bundles.values():
        for bundle_file in files:
            for entry in bundle_file.entries:
                for name, text in (entry.values.get("mapping") or {}).items():
                    found.append((f"{bundle_file.bundle}/{entry.name}", name, text))
    return found


BUILTIN_EXPRESSIONS = _all_builtin_expressions()


def test_builtin_expressions_found():
    fields = {(where, name) for where, name, _ in BUILTIN_EXPRESSIONS}
    assert ("tiktok/report_web_event", "email") in fields
    assert ("default/Place an Order", "contents") in fields
    assert len(BUILTIN_EXPRESSIONS) > 60


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_fast_paths_equal_jmespath_on_every_sample(functions, sample):
    event = SAMPLES[sample]
    for where, name, text in BUILTIN_EXPRESSIONS:
        expression = compile_expression(text, functions)
        expected = expression.search_slow(event)
        assert expression.search(event) == expected, (where, name, text)
        # search_slow is jmespath's own interpreter with our function table
        if "(" not in text:
            assert expected == jmespath.search(text, event), (where, name, text)


def test_most_builtin_fields_use_a_fast_path(functions):
    fast = [t for _, _, t in BUILTIN_EXPRESSIONS if compile_expression(t, functions).terms]
    assert len(fast) >= 0.8 * len(BUILTIN_EXPRESSIONS)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_compiled_mapping_equals_jmespath_per_preset(sample):
    config = resolve_presets(["default", "extended"])
    functions = MappingFunctions.from_registry(collect_registry())
    for preset in config.presets:
        mapping = compile_mapping(config.mapping_for(preset), functions)
        assert mapping(SAMPLES[sample]) == mapping.apply_slow(SAMPLES[sample]), preset.name


KEYS = st.sampled_from(["a", "b", "c d", "e.f", ""])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["", "x", "0"]),
    st.floats(allow_nan=False, allow_infinity=False),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=4)
    ),
    max_leaves=12,
)


def _path_text(keys: list[str]) -> str:
    return ".".join(json.dumps(k) if not k.isalpha() else k for k in keys)


TERM = st.one_of(
    st.lists(KEYS, min_size=1, max_size=3).map(_path_text),
    st.sampled_from(["'const'", "`0`", "`false`", "`[]`", '`{"k": 1}`', "''"]),
)


@settings(max_examples=300, deadline=None)
@given(event=JSON, terms=st.lists(TERM, min_size=1, max_size=4))
def test_fast_path_property_equals_jmespath_search(functions, event, terms):
    text = " || ".join(terms)
    expression = compile_expression(text, functions)
    assert expression.terms is not None
    assert expression.search(event) == jmespath.search(text, event)


def test_is_false_matches_jmespath_or():
    for value in ["", [], {}, None, False, 0, "0", 0.0, [0], {"a": None}, True]:
        assert is_false(value) == (jmespath.search('a || `"other"`', {"a": value}) == "other")


def test_constant_and_chain_detection(functions):
    constant = compile_expression("'AddToCart'", functions)
    assert constant.is_constant and constant.constant == "AddToCart"
    chain = compile_expression('a.b || integrations."TikTok Conversions".ttclid', functions)
    assert chain.terms == (
        ("path", ("a", "b")),
        ("path", ("integrations", "TikTok Conversions", "ttclid")),
    )
    slow = compile_expression("properties.products[].{id: product_id}", functions)
    assert slow.terms is None and not slow.is_constant


def test_mapping_drops_nulls_and_empty_containers(functions):
    mapping = compile_mapping(
        {
            "a": "x",
            "missing": "nope",
            "items": "p[].{id: id, n: n}",
            "empty": "[q.{id: id}]",
            "falsy": "`false`",
            "zero": "z",
        },
        functions,
    )
    event = {"x": "", "p": [{"id": 1}, {"n": None}], "z": 0}
    assert mapping(event) == {"a": "", "items": [{"id": 1}], "falsy": False, "zero": 0}
    assert event["p"] == [{"id": 1}, {"n": None}]  # the event is never modified


def test_mapping_returns_new_dict_each_time(functions):
    mapping = compile_mapping({"a": "a"}, functions)
    first = mapping({"a": 1})
    first["b"] = 2
    assert mapping({"a": 1}) == {"a": 1}


def test_events_that_are_not_objects_map_to_nothing(functions):
    mapping = compile_mapping({"a": "a.b", "c": "'k'"}, functions)
    for event in (None, [], "text", 5):
        assert mapping(event) == {"c": "k"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("properties.", "invalid JMESPath"),
        ("a ||", "invalid JMESPath"),
        ("'unterminated", "invalid JMESPath"),
        ("nosuch(a)", "unknown function nosuch()"),
        ("lower(a, b)", "lower() takes 1 arguments, got 2"),
        ("url_param(a)", "url_param() takes 2 arguments, got 1"),
        ("", "empty expression"),
    ],
)
def test_bad_expressions_name_field_and_expression(functions, text, message):
    with pytest.raises(MappingError) as info:
        compile_expression(text, functions, field="value", source="my.yaml")
    assert message in str(info.value)
    assert "my.yaml" in str(info.value) and "'value'" in str(info.value)
    assert f"(expression: {text})" in str(info.value)


def test_non_string_expression_rejected(functions):
    with pytest.raises(MappingError, match="must be a string, got int"):
        compile_expression(5, functions, field="value")


def test_parse_error_position(functions):
    with pytest.raises(MappingError) as info:
        compile_expression("a.b ||| c", functions)
    assert info.value.position == 6  # type: ignore[attr-defined]


def test_runtime_type_error_is_a_payload_error(functions):
    mapping = compile_mapping({"n": "abs(properties.x)"}, functions)
    with pytest.raises(PayloadError) as info:
        mapping({"messageId": "m-1", "properties": {"x": "text"}})
    assert info.value.field == "n" and info.value.event_id == "m-1"
    assert "abs(properties.x)" in str(info.value)
    assert "abs() expects number, got string" in str(info.value)


def test_runtime_error_never_quotes_the_value(functions):
    mapping = compile_mapping({"n": "abs(properties.email)"}, functions)
    with pytest.raises(PayloadError) as info:
        mapping({"properties": {"email": "alice@example.com"}})
    assert "alice" not in str(info.value)


# -- built-in functions --------------------------------------------------------


def _eval(functions: MappingFunctions, text: str, event: Any = None) -> Any:
    return compile_expression(text, functions).search(event or {})


def test_builtins_registered_through_the_hook():
    registry = collect_registry()
    for name in BUILTIN_FUNCTIONS:
        assert registry.owners[("mapping function", name)] == "destination.mapping"


def test_coalesce_keeps_false_and_zero(functions):
    assert _eval(functions, "coalesce(a, b, c)", {"b": False, "c": 1}) is False
    assert _eval(functions, "coalesce(a, b)", {"b": 0}) == 0
    assert _eval(functions, "coalesce(a)", {}) is None


def test_string_functions(functions):
    event = {"s": "  MiXed  ", "n": 5}
    assert _eval(functions, "lower(s)", event) == "  mixed  "
    assert _eval(functions, "upper(s)", event) == "  MIXED  "
    assert _eval(functions, "trim(s)", event) == "MiXed"
    assert _eval(functions, "trim(lower(missing))", event) is None
    assert _eval(functions, "lower(n)", event) == 5


def test_to_string_and_to_number(functions):
    assert _eval(functions, "to_string(a)", {"a": 12}) == "12"
    assert _eval(functions, "to_string(a)", {"a": 1.5}) == "1.5"
    assert _eval(functions, "to_string(a)", {"a": True}) == "true"
    assert _eval(functions, "to_string(a)", {}) is None  # never the text "null"
    assert _eval(functions, "to_number(a)", {"a": " 3.45 "}) == 3.45
    assert _eval(functions, "to_number(a)", {"a": "7"}) == 7
    assert _eval(functions, "to_number(a)", {"a": "seven"}) is None
    assert fn_to_number(True) is None and fn_to_number("nan") is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2026-11-20T10:00:00.000Z", 1795168800),
        ("2026-11-20T10:00:00", 1795168800),
        ("2026-11-20T12:00:00+02:00", 1795168800),
        (1795168800, 1795168800),
        (1795168800123, 1795168800),
        ("1795168800", 1795168800),
        (1795168800.9, 1795168800),
    ],
)
def test_timestamps(value, seconds):
    assert fn_epoch_seconds(value) == seconds
    assert fn_epoch_millis(value) // 1000 == seconds
    assert fn_iso_timestamp(value).startswith("2026-11-20T10:00:00")
    assert fn_iso_timestamp(value).endswith("Z")


@pytest.mark.parametrize("value", ["yesterday", "", None, True, [], {}, float("inf"), "2026-13-45"])
def test_unreadable_timestamps_are_null(value):
    assert fn_epoch_seconds(value) is None and fn_iso_timestamp(value) is None


def test_url_param():
    url = "https://shop.example.com/p?x=1&ttclid=E.C.P.abc&ttclid=second&empty="
    assert fn_url_param(url, "ttclid") == "E.C.P.abc"
    assert fn_url_param(url, "empty") is None
    assert fn_url_param(url, "absent") is None
    assert fn_url_param(None, "ttclid") is None
    assert fn_url_param("http://[bad", "x") is None


def test_cookie():
    header = 'a=1; _ttp=2AbC-xyz; quoted="v w"; empty='
    assert fn_cookie(header, "_ttp") == "2AbC-xyz"
    assert fn_cookie(header, "quoted") == "v w"
    assert fn_cookie(header, "empty") is None
    assert fn_cookie(header, "nope") is None
    assert fn_cookie({"_ttp": "from-map"}, "_ttp") == "from-map"
    assert fn_cookie(None, "_ttp") is None


def test_sha256(functions):
    digest = hashlib.sha256(b"alice@example.com").hexdigest()
    assert _eval(functions, "sha256(trim(lower(e)))", {"e": " Alice@Example.com "}) == digest
    assert _eval(functions, "sha256(n)", {"n": 12}) == hashlib.sha256(b"12").hexdigest()
    assert _eval(functions, "sha256(missing)", {}) is None


def test_functions_compose_with_url_and_cookie(functions):
    event = {"context": {"page": {"url": "https://x.test/?ttclid=T1"}, "cookie": "_ttp=P1"}}
    text = "properties.ttclid || url_param(context.page.url, 'ttclid')"
    assert _eval(functions, text, event) == "T1"
    assert _eval(functions, "cookie(context.cookie, '_ttp')", event) == "P1"


def test_plugin_function_usable_in_mappings():
    class Plugin:
        @hookimpl
        def register_mapping_functions(self, register):
            register("cents", lambda value: None if value is None else round(value * 100), None)
            register("shout", lambda s: s.upper() + "!", [{"types": ["string"]}])

    with registered(Plugin(), "cents-plugin"):
        functions = MappingFunctions.from_registry(collect_registry())
        mapping = compile_mapping({"v": "cents(properties.value)", "s": "shout(name)"}, functions)
        assert mapping({"properties": {"value": 12.34}, "name": "hi"}) == {"v": 1234, "s": "HI!"}
        with pytest.raises(PayloadError, match="shout"):
            mapping({"name": 5})
    with pytest.raises(MappingError, match="unknown function cents"):
        compile_expression("cents(a)", MappingFunctions.from_registry(collect_registry()))


@settings(max_examples=200, deadline=None)
@given(event=JSON, chains=st.lists(st.lists(TERM, min_size=1, max_size=3), min_size=1, max_size=6))
def test_whole_mapping_with_shared_prefixes_equals_jmespath(functions, event, chains):
    fields = {f"f{i}": " || ".join(terms) for i, terms in enumerate(chains)}
    mapping = compile_mapping(fields, functions)
    assert mapping(event) == mapping.apply_slow(event)
    for name, text in fields.items():
        expected = jmespath.search(text, event)
        if expected is not None and not isinstance(expected, list | dict):
            assert mapping(event)[name] == expected


def test_shared_prefixes_are_looked_up_once(functions):
    mapping = compile_mapping(
        {"a": "context.traits.email", "b": "context.traits.phone || traits.phone", "c": "x"},
        functions,
    )
    source = mapping._apply.__source__
    assert source.count(".get('context')") == 1 and source.count(".get('traits')") == 2


# -- the general code generator (projections, multi-selects, functions) --------

LEAF = st.sampled_from(["a", "b", '"c d"', "@", "'x'", "`1`", "`null`", "`[]`", "`false`", '`""`'])
NAME = st.sampled_from(["a", "b", '"c d"'])
FUNCTIONS = ["to_string", "to_number", "lower", "trim", "length", "sha256", "epoch_seconds"]


def _grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.tuples(inner, NAME).map(lambda t: f"({t[0]}).{t[1]}"),
        pair.map(lambda t: f"({t[0]}) || ({t[1]})"),
        pair.map(lambda t: f"({t[0]}) && ({t[1]})"),
        inner.map(lambda x: f"({x})[]"),
        st.tuples(inner, NAME).map(lambda t: f"({t[0]})[*].{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]})[].{{k: ({t[1]}), j: a}}"),
        pair.map(lambda t: f'({t[0]}).{{k: ({t[1]}), "x y": b}}'),
        pair.map(lambda t: f"[({t[0]}), ({t[1]})]"),
        st.tuples(st.sampled_from(FUNCTIONS), inner).map(lambda t: f"{t[0]}({t[1]})"),
        pair.map(lambda t: f"coalesce(({t[0]}), ({t[1]}))"),
        st.tuples(inner, st.sampled_from([0, 1, -1, 5])).map(lambda t: f"({t[0]})[{t[1]}]"),
    )


EXPRESSIONS = st.recursive(LEAF, _grow, max_leaves=6)


def _outcome(function: Any, event: Any) -> tuple[str, Any]:
    try:
        return "value", function(event)
    except jmespath.exceptions.JMESPathError as exc:
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None)
@given(event=JSON, text=EXPRESSIONS)
def test_generated_code_equals_jmespath_interpreter(functions, event, text):
    expression = compile_expression(text, functions)
    assert _outcome(expression.search, event) == _outcome(expression.search_slow, event)


@settings(max_examples=400, deadline=None)
@given(event=JSON, text=EXPRESSIONS)
def test_generated_pruned_code_equals_pruning_jmespaths_result(functions, event, text):
    expression = compile_expression(text, functions)
    if expression.search_pruned is None:
        return  # a fast-path chain or an interpreted expression: pruned by the mapping

    def reference(value: Any) -> Any:
        return _prune(expression.search_slow(value))

    assert _outcome(expression.search_pruned, event) == _outcome(reference, event)


def test_generator_covers_the_builtin_contents_expressions(functions):
    for where, name, text in BUILTIN_EXPRESSIONS:
        expression = compile_expression(text, functions)
        assert "interpreter" not in repr(expression.search), (where, name)
        assert hasattr(expression.search, "__source__"), (where, name)


def test_unsupported_nodes_fall_back_to_the_interpreter(functions):
    for text in ("a[?b > `1`]", "a[1:2]", "a | b", "!a", "a == b", "*.a", "sort_by(a, &b)"):
        expression = compile_expression(text, functions)
        assert not hasattr(expression.search, "__source__"), text
        event = {"a": [{"b": 2}, {"b": 0}], "b": 1}
        assert expression.search(event) == jmespath.search(text, event, options=functions.options)


def _example_events() -> list[Any]:
    path = Path(__file__).resolve().parent.parent / "examples" / "events.ndjson"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # the file has deliberately broken lines for `destination run`
    return events


def test_compiled_mappings_equal_jmespath_on_the_example_events(functions):
    events = _example_events()
    assert len(events) > 50
    config = resolve_presets(["default", "extended"])
    mappings = [compile_mapping(config.mapping_for(p), functions) for p in config.presets]
    for event in events:
        for mapping in mappings:
            assert mapping(event) == mapping.apply_slow(event)
