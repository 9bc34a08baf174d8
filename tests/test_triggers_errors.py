"""Malformed triggers: each raises TriggerSyntaxError at the column of the fault.

A preset author sees the message, the expression and a caret, so the column
is part of the contract: these rows pin it for every kind of mistake.
"""

from __future__ import annotations

from typing import Any

import pytest

from destination.errors import ConfigurationError
from destination.triggers import TriggerSyntaxError, compile_trigger, parse_trigger

# (expression, expected column, a fragment of the message)
MALFORMED: list[tuple[str, int, str]] = [
    # empty
    ("", 1, "empty"),
    ("   \t ", 1, "empty"),
    # unterminated string: points at its opening quote
    ('type = "track', 8, "unterminated string"),
    ('event = "Product \\"Added\\"', 9, "unterminated string"),
    ('contains(event, "abc)', 17, "unterminated string"),
    ('properties."with space = 1', 12, "unterminated string"),
    ('type = "a\\', 8, "unterminated string"),
    # bad escapes and characters inside the lexer
    ('type = "a\\qb"', 10, "invalid escape"),
    ("type = 'track'", 8, "double quotes"),
    ('type = "a" && event = "b"', 12, "write 'and'"),
    ('type = "a" || event = "b"', 12, "write 'or'"),
    ('type = "a" # comment', 12, "unexpected character"),
    ('type == "track"', 6, "use '='"),
    # numbers
    ("properties.price > 10and x = 1", 20, "malformed number"),
    ("properties.price > 1.", 20, "malformed number"),
    ("properties.price > 1.2.3", 20, "malformed number"),
    ("properties.price > -", 20, "malformed number"),
    ("properties.price > 1e999", 20, "out of range"),
    # unbalanced parentheses
    ('(type = "track"', 1, "unbalanced '('"),
    ('((type = "track") and (event = "x")', 1, "unbalanced '('"),
    ('type = "a" and (event = "b" or (userId = "c")', 16, "unbalanced '('"),
    ('type = "track")', 15, "unbalanced ')'"),
    ('(type = "a")) and event = "b"', 13, "unbalanced ')'"),
    (")", 1, "expected a condition"),
    ("(", 1, "unbalanced '('"),
    ("()", 2, "empty parentheses"),
    ('contains(event, "a"', 9, "never closed"),
    # dangling operators
    ('type = "track" and', 16, "'and' is missing a condition"),
    ('type = "track" or', 16, "'or' is missing a condition"),
    ('type = "track" and not', 20, "'not' is missing a condition"),
    ("!", 1, "'!' is missing a condition"),
    ('and type = "track"', 1, "expected a condition, found 'and'"),
    ('or type = "track"', 1, "expected a condition, found 'or'"),
    ('type = "a" or or event = "b"', 15, "expected a condition after 'or', found 'or'"),
    ('type = "a" and )', 16, "found ')'"),
    ('(type = "a" and) or event = "b"', 16, "found ')'"),
    ("type =", 6, "'=' is missing a value"),
    ("properties.price >=", 18, "'>=' is missing a value"),
    ('type = "a" and event !=', 22, "'!=' is missing a value"),
    ('type = = "a"', 8, "expected a value after '=', found '='"),
    ('type = and event = "b"', 8, "expected a value after '=', found 'and'"),
    ('= "track"', 1, "expected a condition, found '='"),
    # unknown function
    ('foo(event, "a")', 1, "unknown function 'foo'"),
    ('type = "a" and startsWith(event, "P")', 16, "unknown function 'startsWith'"),
    ('properties.contains(event, "a")', 1, "unknown function 'properties.contains'"),
    ('Contains(event, "a")', 1, "unknown function 'Contains'"),
    # wrong argument count / kinds
    ("contains()", 10, "takes 2 arguments (a path and a string), got 0"),
    ("contains(event)", 15, "got 1"),
    ('match("Product*")', 17, "got 1"),
    ('contains(event, "a", "b")', 22, "got more"),
    ('match(event, "a", event, "b")', 19, "got more"),
    ("contains(event, )", 17, "expected an argument"),
    ('contains(event "a")', 16, "expected ',' or ')'"),
    ('contains("Product Added", "a")', 10, "first argument of contains() must be a path"),
    ("contains(event, 1)", 17, "second argument of contains() must be a string"),
    ("match(event, other.path)", 14, "second argument of match() must be a string"),
    ('contains(event, "a") = true', 22, "only a path can be compared"),
    # trailing tokens
    ('type = "track" event = "x"', 16, "found 'event'"),
    ('type = "track" "extra"', 16, "found '\"extra\"'"),
    ('type = "track" 42', 16, "found '42'"),
    ('type = "track" (event = "x")', 16, "found '('"),
    ('type = "track" AND event = "x"', 16, "keywords are lower-case ('and')"),
    ('type = "track" not event = "x"', 16, "found 'not'"),
    ('type = "track" = "page"', 16, "only a path can be compared"),
    # bare words
    ("type", 1, "bare word 'type'"),
    ("track", 1, "bare word 'track'"),
    ('type = "a" and properties.in_stock', 16, "bare word 'properties.in_stock'"),
    ('not properties.in_stock or type = "a"', 5, "bare word 'properties.in_stock'"),
    ("(userId)", 2, "bare word 'userId'"),
    ('type "track"', 6, "expected a comparison operator after 'type'"),
    ("type = track", 8, 'quote it: "track"'),
    ('type = "a" and event = Product', 24, "found the path 'Product'"),
    # literals where a path belongs
    ('"track" = "track"', 1, "comparison of two literals"),
    ("1 = 1", 1, "comparison of two literals"),
    ("true != false", 1, "comparison of two literals"),
    ('type = "a" or null = null', 15, "comparison of two literals"),
    ('"track" = type', 1, 'the path goes on the left: write type = "track"'),
    ('"track" =', 1, "the left side of a comparison must be a path"),
    ("42 > (", 1, "the left side of a comparison must be a path"),
    ('"track"', 1, "a literal alone is not a condition"),
    ("true", 1, "a literal alone is not a condition"),
    # ordering needs a number
    ('properties.price > "10"', 20, "'>' compares numbers"),
    ("properties.price < true", 20, "'<' compares numbers"),
    ("properties.price <= null", 21, "'<=' compares numbers"),
    # paths
    ("properties. = 1", 12, "expected a key after '.'"),
    ("properties..x = 1", 12, "expected a key after '.'"),
    ("properties.x. = 1", 14, "expected a key after '.'"),
    ("properties.", 12, "expected a key after '.'"),
    (".x = 1", 1, "unexpected character '.'"),
]


@pytest.mark.parametrize(("expr", "column", "fragment"), MALFORMED)
def test_malformed_expression(expr: str, column: int, fragment: str) -> None:
    with pytest.raises(TriggerSyntaxError) as info:
        parse_trigger(expr)
    err = info.value
    assert err.column == column, str(err)
    assert fragment in err.message, str(err)
    assert err.expression == expr
    # compile_trigger reports the same error.
    with pytest.raises(TriggerSyntaxError) as again:
        compile_trigger(expr)
    assert (again.value.column, again.value.message) == (column, err.message)


def test_there_are_enough_malformed_rows() -> None:
    assert len(MALFORMED) >= 25


def test_str_shows_message_expression_and_caret() -> None:
    with pytest.raises(TriggerSyntaxError) as info:
        parse_trigger('type = "track" and\tevent = Product')
    text = str(info.value)
    lines = text.splitlines()
    assert lines[0] == (
        "expected a value after '=', found the path 'Product'; "
        'to compare with a string, quote it: "Product" (column 28)'
    )
    assert lines[1] == '  type = "track" and event = Product'
    assert lines[2] == "  " + " " * 27 + "^"
    assert lines[1][lines[2].index("^")] == "P"


def test_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        compile_trigger("type")


@pytest.mark.parametrize("value", [None, 42, b'type = "track"', ["type"]])
def test_non_string_expression(value: Any) -> None:
    with pytest.raises(TriggerSyntaxError, match="must be a string"):
        compile_trigger(value)
    with pytest.raises(TriggerSyntaxError, match="must be a string"):
        parse_trigger(value)


def test_long_bad_token_is_shortened_in_the_message() -> None:
    word = "x" * 200
    with pytest.raises(TriggerSyntaxError) as info:
        parse_trigger(f'type = "a" {word} = 1')
    assert len(info.value.message) < 120
    assert info.value.column == 12
