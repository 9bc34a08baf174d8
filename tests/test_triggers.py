"""The trigger language's semantics, one (expression, event, expected) row at a time.

The table is the executable form of the semantics table in docs/triggers.md:
every operator, literal, function and precedence rule appears with events
that should and should not match, including the odd ones (missing keys,
wrong types, lists where objects were expected).
"""

from __future__ import annotations

from typing import Any

import pytest

from destination import triggers
from destination.triggers import (
    And,
    Compare,
    Function,
    Not,
    Or,
    Path,
    TriggerSyntaxError,
    compile_trigger,
    format_trigger,
    iter_paths,
    parse_trigger,
    required_equalities,
)

TRACK = {
    "type": "track",
    "event": "Product Added",
    "userId": "u-1",
    "anonymousId": "a-1",
    "messageId": "msg-42",
    "properties": {
        "price": 10,
        "revenue": 10.5,
        "currency": "USD",
        "name": "Blue Shoe",
        "in_stock": True,
        "gift": False,
        "coupon": None,
        "zero": 0,
        "one": 1,
        "negative": -3,
        "big": 10**20,
        "text_num": "10",
        "empty": "",
        "items": [{"sku": "A"}],
        "nested": {"deep": {"value": 7, "label": "x.y"}},
        "with space": "yes",
        "dotted.key": "dot",
        "hyphen-key": "h",
        "unicode": "Größe ✓",
        "quote": 'say "hi"',
        "star": "a*b",
        "1": "digit key",
    },
    "context": {"page": {"url": "https://shop.example/cart?x=1"}, "ip": "203.0.113.9"},
    "integrations": {"TikTok Conversions": {"ttclid": "E.C.P.abc"}, "All": False},
}
IDENTIFY = {"type": "identify", "userId": "u-2", "traits": {"email": "a@b.c", "age": 30}}
ODD = {
    "type": None,
    "event": ["Product Added"],
    "properties": ["not", "an", "object"],
    "context": "a string",
    "traits": {"age": "30", "vip": 1, "score": 1.0},
}

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # -- string equality: strict type, case-sensitive
    ('type = "track"', TRACK, True),
    ('type = "Track"', TRACK, False),
    ('type = "track "', TRACK, False),
    ('type = "identify"', TRACK, False),
    ('type = "identify"', IDENTIFY, True),
    ('event = "Product Added"', TRACK, True),
    ('event = "product added"', TRACK, False),
    ('event = "Product Added"', ODD, False),  # a list is not a string
    ('type = "track"', ODD, False),  # null is not a string
    ('properties.text_num = "10"', TRACK, True),
    ('properties.price = "10"', TRACK, False),  # 10 is not "10"
    ('properties.empty = ""', TRACK, True),
    ('properties.name = ""', TRACK, False),
    ('properties.unicode = "Größe ✓"', TRACK, True),
    ('properties.quote = "say \\"hi\\""', TRACK, True),
    ('properties.unicode = "Gr\\u00f6\\u00dfe \\u2713"', TRACK, True),
    # -- string inequality: true when missing, null or another type
    ('type != "page"', TRACK, True),
    ('type != "track"', TRACK, False),
    ('event != "x"', IDENTIFY, True),  # missing
    ('type != "track"', ODD, True),  # null
    ('properties.price != "10"', TRACK, True),  # a number is not the string
    ('properties.text_num != "10"', TRACK, False),
    ('properties.missing.deeper != "a"', TRACK, True),
    # -- numbers: int and float compare numerically, bool is not a number
    ("properties.price = 10", TRACK, True),
    ("properties.price = 10.0", TRACK, True),
    ("properties.revenue = 10.5", TRACK, True),
    ("properties.revenue = 10", TRACK, False),
    ("properties.text_num = 10", TRACK, False),  # "10" is not 10
    ("properties.one = 1", TRACK, True),
    ("properties.in_stock = 1", TRACK, False),  # True is not 1
    ("properties.gift = 0", TRACK, False),  # False is not 0
    ("properties.zero = 0", TRACK, True),
    ("properties.zero = -0", TRACK, True),
    ("properties.negative = -3", TRACK, True),
    ("properties.big = 100000000000000000000", TRACK, True),
    ("properties.big = 1e20", TRACK, True),
    ("properties.price = 1e1", TRACK, True),
    ("properties.price != 10", TRACK, False),
    ("properties.price != 11", TRACK, True),
    ("properties.text_num != 10", TRACK, True),
    ("properties.in_stock != 1", TRACK, True),
    ("properties.missing != 0", TRACK, True),
    ("traits.vip = 1", ODD, True),
    ("traits.score = 1", ODD, True),
    # -- ordering: only numbers, never strings, booleans or null
    ("properties.price > 9", TRACK, True),
    ("properties.price > 10", TRACK, False),
    ("properties.price >= 10", TRACK, True),
    ("properties.price >= 10.01", TRACK, False),
    ("properties.price < 10.5", TRACK, True),
    ("properties.price < 10", TRACK, False),
    ("properties.price <= 10", TRACK, True),
    ("properties.price <= 9.99", TRACK, False),
    ("properties.revenue > 10", TRACK, True),
    ("properties.negative < 0", TRACK, True),
    ("properties.negative > -3.5", TRACK, True),
    ("properties.negative >= -2", TRACK, False),
    ("properties.big > 99999999999999999999", TRACK, True),
    ("properties.big < 1.5e20", TRACK, True),
    ("properties.text_num > 5", TRACK, False),  # "10" is a string
    ("properties.text_num < 50", TRACK, False),
    ("properties.in_stock < 5", TRACK, False),  # True is not a number
    ("properties.in_stock > 0", TRACK, False),
    ("properties.gift < 1", TRACK, False),
    ("properties.coupon < 1", TRACK, False),  # null
    ("properties.missing < 1", TRACK, False),
    ("properties.missing >= 0", TRACK, False),
    ("properties.items > 0", TRACK, False),  # a list
    ("traits.age > 18", IDENTIFY, True),
    ("traits.age > 18", ODD, False),  # "30"
    # -- null: "= null" is missing or null, "!= null" present and not null
    ("properties.coupon = null", TRACK, True),
    ("properties.missing = null", TRACK, True),
    ("properties.price = null", TRACK, False),
    ("properties.empty = null", TRACK, False),
    ("properties.gift = null", TRACK, False),
    ("properties.zero = null", TRACK, False),
    ("properties.coupon != null", TRACK, False),
    ("properties.missing != null", TRACK, False),
    ("properties.price != null", TRACK, True),
    ("properties.gift != null", TRACK, True),
    ("properties.empty != null", TRACK, True),
    ("type = null", ODD, True),
    ("userId != null", IDENTIFY, True),
    ("event = null", IDENTIFY, True),
    # -- booleans: only true/false, never 1/0 or "true"
    ("properties.in_stock = true", TRACK, True),
    ("properties.in_stock = false", TRACK, False),
    ("properties.gift = false", TRACK, True),
    ("properties.gift = true", TRACK, False),
    ("properties.one = true", TRACK, False),
    ("properties.zero = false", TRACK, False),
    ("properties.missing = false", TRACK, False),
    ("properties.in_stock != true", TRACK, False),
    ("properties.one != true", TRACK, True),
    ("properties.missing != false", TRACK, True),
    ("integrations.All = false", TRACK, True),
    ("traits.vip = true", ODD, False),
    # -- contains(): substring of a string, case-sensitive; nothing else matches
    ('contains(event, "Added")', TRACK, True),
    ('contains(event, "added")', TRACK, False),
    ('contains(event, "")', TRACK, True),
    ('contains(context.page.url, "/cart")', TRACK, True),
    ('contains(properties.price, "1")', TRACK, False),  # a number
    ('contains(properties.items, "A")', TRACK, False),  # a list
    ('contains(event, "Product")', ODD, False),  # a list containing the string
    ('contains(properties.missing, "")', TRACK, False),
    ('contains(properties.unicode, "ß")', TRACK, True),
    ('!contains(event, "Removed")', TRACK, True),
    ('not contains(event, "Added")', TRACK, False),
    ('!contains(properties.missing, "x")', TRACK, True),
    # -- match(): glob with * and ? anywhere, case-sensitive, whole string
    ('match(event, "Product*")', TRACK, True),
    ('match(event, "*Added")', TRACK, True),
    ('match(event, "*duct Add*")', TRACK, True),
    ('match(event, "Product")', TRACK, False),  # must match the whole string
    ('match(event, "Product Added")', TRACK, True),
    ('match(event, "product*")', TRACK, False),
    ('match(event, "P?oduct Added")', TRACK, True),
    ('match(event, "P?duct Added")', TRACK, False),
    ('match(event, "Pr*ct*Ad?ed")', TRACK, True),
    ('match(event, "Pr*ct*Ad?ex")', TRACK, False),
    ('match(event, "*")', TRACK, True),
    ('match(properties.empty, "*")', TRACK, True),
    ('match(properties.empty, "?")', TRACK, False),
    ('match(event, "P*A*d*d")', TRACK, True),
    ('match(event, "P*A*x*d")', TRACK, False),
    ('match(properties.star, "a\\\\*b")', TRACK, True),  # escaped star is literal
    ('match(properties.name, "a\\\\*b")', TRACK, False),
    ('match(context.page.url, "https://*.example/*")', TRACK, True),
    ('match(context.page.url, "http://*")', TRACK, False),
    ('match(messageId, "msg-??")', TRACK, True),
    ('match(messageId, "msg-?")', TRACK, False),
    ('match(properties.price, "*")', TRACK, False),  # not a string
    ('match(properties.missing, "*")', TRACK, False),
    ('!match(event, "Order*")', TRACK, True),
    # -- paths: nested, quoted segments, any top-level key, never through lists
    ("properties.nested.deep.value = 7", TRACK, True),
    ('properties.nested.deep.label = "x.y"', TRACK, True),
    ('properties."with space" = "yes"', TRACK, True),
    ('properties."dotted.key" = "dot"', TRACK, True),
    ('properties.dotted.key = "dot"', TRACK, False),
    ('properties.hyphen-key = "h"', TRACK, True),
    ('properties.1 = "digit key"', TRACK, True),
    ('integrations."TikTok Conversions".ttclid = "E.C.P.abc"', TRACK, True),
    ('integrations."TikTok Conversions".ttclid != null', IDENTIFY, False),
    ('anonymousId = "a-1"', TRACK, True),
    ('messageId = "msg-42"', TRACK, True),
    ('context.ip = "203.0.113.9"', TRACK, True),
    ('properties.items.0.sku = "A"', TRACK, False),  # lists are not traversed
    ('properties.items.sku = "A"', TRACK, False),
    ("properties.name.length = 9", TRACK, False),  # a string has no keys
    ('context.page.url = "x"', ODD, False),  # context is a string
    ("context.page.url = null", ODD, True),
    ("properties.anything != null", ODD, False),  # properties is a list
    (
        "properties.a.b.c.d.e.f.g.h = 1",
        {"properties": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}},
        True,
    ),
    (
        "properties.a.b.c.d.e.f.g.h = 1",
        {"properties": {"a": {"b": {"c": {"d": {"e": [1]}}}}}},
        False,
    ),
    ("properties.a.b.c.d.e.f.g.h = null", {"properties": {"a": {"b": 5}}}, True),
    ("true.x = 1", {"true": {"x": 1}}, True),  # a keyword followed by a dot is a path
    ('$meta.source = "web"', {"$meta": {"source": "web"}}, True),
    ("_private = 1", {"_private": 1}, True),
    # -- and / or / not, precedence and grouping
    ('type = "track" and event = "Product Added"', TRACK, True),
    ('type = "track" and event = "Order Completed"', TRACK, False),
    ('type = "page" or event = "Product Added"', TRACK, True),
    ('type = "page" or event = "Nope"', TRACK, False),
    # and binds tighter than or: a or (b and c)
    ('type = "track" or type = "page" and event = "Nope"', TRACK, True),
    ('type = "page" and event = "Nope" or type = "track"', TRACK, True),
    ('(type = "track" or type = "page") and event = "Nope"', TRACK, False),
    ('type = "page" or type = "track" and event = "Nope"', TRACK, False),
    ('type = "x" or type = "y" or type = "track"', TRACK, True),
    ('type = "track" and userId != null and properties.price > 5', TRACK, True),
    ('type = "track" and userId != null and properties.price > 50', TRACK, False),
    # not binds tighter than and/or; negates a comparison, a function or a group
    ('not type = "page"', TRACK, True),
    ('! type = "track"', TRACK, False),
    ('!type = "track"', TRACK, False),
    ('not type = "track" or event = "Product Added"', TRACK, True),
    ('not (type = "track" or event = "x")', TRACK, False),
    ('!(type = "page" and event = "x")', TRACK, True),
    ('not not type = "track"', TRACK, True),
    ('not !not type = "track"', TRACK, False),
    ("not properties.missing = 1", TRACK, True),
    ("not properties.price < 5", TRACK, True),
    ("not properties.text_num < 5", TRACK, True),  # negation of a non-match
    ('not (not (type = "track"))', TRACK, True),
    # nesting to any depth
    ('((type = "track"))', TRACK, True),
    ('(((((((((((type = "track")))))))))))', TRACK, True),
    (
        '(type = "track" and (event = "x" or (properties.price = 10 and (userId = "u-1"))))',
        TRACK,
        True,
    ),
    (
        '(type = "track" and (event = "x" or (properties.price = 10 and (userId = "u-9"))))',
        TRACK,
        False,
    ),
    ('((type = "a" or (type = "b" or (type = "track"))) and not (event = "x"))', TRACK, True),
    # whitespace is free
    ('type="track"and event="Product Added"', TRACK, True),
    ('  type\t=\n"track"  ', TRACK, True),
    ('contains ( event , "Added" )', TRACK, True),
    ("properties.price>=10 and(properties.price<=10)", TRACK, True),
    # keywords inside strings and paths are just text
    ('event = "and or not"', {"event": "and or not"}, True),
    ('properties.and = "x"', {"properties": {"and": "x"}}, True),
    ("properties.null = null", {"properties": {}}, True),
    ("contains = 1", {"contains": 1}, True),  # a key named like a function
    ('match = "x" and match(match, "x")', {"match": "x"}, True),
    # non-dict events read as empty: = null and != match, the rest do not
    ('type = "track"', {}, False),
    ("type = null", {}, True),
    ('type != "track"', {}, True),
]


@pytest.mark.parametrize(("expr", "event", "expected"), CASES)
def test_trigger_table(expr: str, event: dict[str, Any], expected: bool) -> None:
    result = compile_trigger(expr)(event)
    assert result is expected


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 120
    assert len({c[0] for c in CASES}) >= 120


@pytest.mark.parametrize("event", [None, [], "track", 42, 3.5, True, object(), ["type"]])
def test_non_dict_events_read_as_empty(event: Any) -> None:
    assert compile_trigger('type = "track"')(event) is False
    assert compile_trigger("type = null")(event) is True
    assert compile_trigger('type != "track"')(event) is True
    assert compile_trigger('contains(type, "")')(event) is False


def test_dict_subclass_events_are_read() -> None:
    class Event(dict):  # type: ignore[type-arg]
        pass

    assert compile_trigger('properties.a = "x"')(Event(properties=Event(a="x"))) is True


def test_hostile_values_never_raise() -> None:
    class Hostile(dict):  # type: ignore[type-arg]
        def get(self, *args: Any) -> Any:
            raise RuntimeError("boom")

    class BadEq:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    fn = compile_trigger('type = "track" or properties.a = 1')
    assert fn(Hostile()) is False
    assert fn({"properties": Hostile()}) is False
    assert fn({"properties": {"a": BadEq()}}) is False


def test_huge_strings_are_fine() -> None:
    huge = "ab" * 2_000_000
    event = {"event": huge, "properties": {"x": huge}}
    assert compile_trigger('match(event, "a*b*a*c")')(event) is False
    assert compile_trigger('match(event, "a*b*a*b")')(event) is True
    assert compile_trigger('contains(properties.x, "ba")')(event) is True
    assert compile_trigger('event = "x"')(event) is False


def test_result_is_always_a_bool() -> None:
    fn = compile_trigger('properties.a = 1 or (contains(event, "x") and not type = null)')
    for event in ({}, {"properties": {"a": 1}}, {"event": "x", "type": "t"}, {"event": "y"}):
        assert type(fn(event)) is bool


def test_identical_expressions_share_one_compiled_function() -> None:
    assert compile_trigger('type = "track"') is compile_trigger('type = "track"')


def test_compiled_function_describes_its_expression() -> None:
    fn = compile_trigger('type = "track"')
    assert fn.__name__ == "trigger"
    assert fn.__doc__ is not None and 'type = "track"' in fn.__doc__


def test_deep_nesting_compiles_and_evaluates() -> None:
    # Alternate and/or so no level can be flattened away: 1500 real levels.
    expr = 'type = "track"'
    for i in range(1500):
        joiner = "and" if i % 2 else "or"
        expr = f"(properties.p{i} = {i} {joiner} {expr})"
    fn = compile_trigger(expr)
    assert fn({"type": "track", "properties": {f"p{i}": i for i in range(1500)}}) is True
    assert fn({"type": "page"}) is False
    assert len(expr) > 30_000


def test_many_redundant_parentheses() -> None:
    expr = "(" * 20_000 + 'type = "track"' + ")" * 20_000
    assert compile_trigger(expr)({"type": "track"}) is True
    assert parse_trigger(expr) == parse_trigger('type = "track"')


def test_too_deep_is_a_syntax_error_not_a_crash() -> None:
    expr = "properties.x = 0"
    for i in range(triggers.MAX_DEPTH + 5):
        expr = f"(properties.p = {i} {'and' if i % 2 else 'or'} {expr})"
    with pytest.raises(TriggerSyntaxError, match="nests more than"):
        compile_trigger(expr)


def test_long_and_chains_are_flat() -> None:
    expr = " and ".join(f"properties.k{i} = {i}" for i in range(3000))
    node = parse_trigger(expr)
    assert isinstance(node, And) and len(node.operands) == 3000
    event = {"properties": {f"k{i}": i for i in range(3000)}}
    assert compile_trigger(expr)(event) is True
    event["properties"]["k2999"] = -1
    assert compile_trigger(expr)(event) is False


# -- the AST -------------------------------------------------------------------


def test_ast_shapes() -> None:
    node = parse_trigger('type = "track" or not contains(event, "x") and properties.v > 1')
    assert node == Or(
        (
            Compare(Path(("type",)), "=", "track"),
            And(
                (
                    Not(Function("contains", Path(("event",)), "x")),
                    Compare(Path(("properties", "v")), ">", 1),
                )
            ),
        )
    )


def test_ast_columns() -> None:
    node = parse_trigger('type = "a" and  not contains(properties.x, "b")')
    assert isinstance(node, And)
    first, second = node.operands
    assert isinstance(first, Compare) and first.column == 1 and first.path.column == 1
    assert isinstance(second, Not) and second.column == 17
    assert isinstance(second.operand, Function) and second.operand.column == 21
    assert second.operand.path.column == 30


def test_literal_types_in_ast() -> None:
    values = [
        parse_trigger(f"x = {text}").value  # type: ignore[union-attr]
        for text in ('"s"', "1", "1.5", "-2", "2e3", "true", "false", "null")
    ]
    assert values == ["s", 1, 1.5, -2, 2000.0, True, False, None]
    assert [type(v) for v in values[:5]] == [str, int, float, int, float]


def test_double_negation_collapses() -> None:
    assert parse_trigger('not not type = "a"') == parse_trigger('type = "a"')
    assert parse_trigger('not !not type = "a"') == parse_trigger('not type = "a"')


@pytest.mark.parametrize(
    "expr",
    [
        'type = "track" and event = "Product Added"',
        "a = 1 or b = 2 and c = 3",
        "(a = 1 or b = 2) and c = 3",
        "not (a = 1 or b = 2)",
        'integrations."TikTok Conversions".ttclid != null',
        'properties."a\\"b".c = "q\\"uote\\\\"',
        'match(event, "x*?") and !contains(context.page.url, "a")',
        "x >= -1.5e-3 and y < 100000000000000000000 and z = true and w != false",
    ],
)
def test_format_round_trips(expr: str) -> None:
    node = parse_trigger(expr)
    assert parse_trigger(format_trigger(node)) == node


def test_iter_paths() -> None:
    node = parse_trigger(
        'type = "a" and (contains(context.page.url, "b") or not properties.x.y = 1)'
    )
    assert [p.segments for p in iter_paths(node)] == [
        ("type",),
        ("context", "page", "url"),
        ("properties", "x", "y"),
    ]
    assert str(Path(("integrations", "TikTok Conversions", "ttclid"))) == (
        'integrations."TikTok Conversions".ttclid'
    )


# -- required_equalities ---------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('type = "track"', {("type",): {"track"}}),
        ('type = "track" and event = "A"', {("type",): {"track"}, ("event",): {"A"}}),
        (
            'type = "track" and (event = "A" or event = "B")',
            {("type",): {"track"}, ("event",): {"A", "B"}},
        ),
        ('event = "A" or type = "page"', {}),
        (
            '(type = "track" and event = "A") or (type = "track" and event = "B")',
            {("type",): {"track"}, ("event",): {"A", "B"}},
        ),
        ('type = "track" and type = "page"', {("type",): set()}),
        ('not type != "track"', {("type",): {"track"}}),
        ('not (type != "track" or event != "A")', {("type",): {"track"}, ("event",): {"A"}}),
        ('not (type = "track")', {}),
        ('type != "track"', {}),
        ("properties.price = 10", {}),
        ('contains(type, "track")', {}),
        ('match(event, "A*") and properties.x.y = "z"', {("properties", "x", "y"): {"z"}}),
    ],
)
def test_required_equalities(expr: str, expected: dict[tuple[str, ...], set[str]]) -> None:
    assert required_equalities(parse_trigger(expr)) == expected


def test_public_surface() -> None:
    assert triggers.TriggerSyntaxError is __import__("destination").TriggerSyntaxError
    assert sorted(triggers.__all__) == sorted(
        [
            "MAX_DEPTH",
            "And",
            "Compare",
            "Function",
            "Literal",
            "Node",
            "Not",
            "Or",
            "Path",
            "TriggerSyntaxError",
            "compile_trigger",
            "format_trigger",
            "iter_paths",
            "parse_trigger",
            "required_equalities",
        ]
    )
    for name in triggers.__all__:
        assert hasattr(triggers, name), name
