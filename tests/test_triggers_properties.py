"""Property tests for triggers over random expressions and random events.

The table in test_triggers.py pins chosen cases; these check the laws that
must hold for every expression: evaluation never raises, ``not (X)`` is the
negation of ``X``, and/or/not follow Python's boolean logic with ``and``
binding tighter than ``or``, the generated code agrees with a plain
interpreter written here, and printing an AST then parsing it gives it back.
"""

from __future__ import annotations

import math
from fnmatch import fnmatchcase
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination.triggers import (
    And,
    Compare,
    Function,
    Node,
    Not,
    Or,
    Path,
    compile_trigger,
    format_trigger,
    parse_trigger,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["type", "event", "properties", "a", "b", "x y", "0", "and"]
FIRST_KEYS = ["type", "event", "properties", "a", "b"]
TEXT = st.text(alphabet='abAB *?."\\é', max_size=6)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 2.5]),
    TEXT,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)
events = st.one_of(
    st.dictionaries(st.sampled_from(FIRST_KEYS + KEYS), values, max_size=6),
    values,  # not even an object
)

paths = st.builds(
    lambda first, rest: Path((first, *rest)),
    st.sampled_from(FIRST_KEYS),
    st.lists(st.sampled_from(KEYS), max_size=3),
)
numbers = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
)
comparisons = st.one_of(
    st.builds(
        Compare,
        paths,
        st.sampled_from(["=", "!="]),
        st.one_of(st.none(), st.booleans(), numbers, TEXT),
    ),
    st.builds(Compare, paths, st.sampled_from(["<", "<=", ">", ">="]), numbers),
)
functions = st.builds(Function, st.sampled_from(["contains", "match"]), paths, TEXT)
leaves = st.one_of(comparisons, functions)


def _and(parts: list[Node]) -> Node:
    return _flat(And, parts)


def _or(parts: list[Node]) -> Node:
    return _flat(Or, parts)


def _flat(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    flat: list[Node] = []
    for part in parts:
        flat.extend(part.operands if isinstance(part, kind) else [part])
    return kind(tuple(flat))


def _not(node: Node) -> Node:
    return node.operand if isinstance(node, Not) else Not(node)


trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(_not, inner),
        st.builds(_and, st.lists(inner, min_size=2, max_size=3)),
        st.builds(_or, st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=10,
)


# -- an independent interpreter: the semantics table read literally -------------


def lookup(event: Any, segments: tuple[str, ...]) -> Any:
    current = event
    for seg in segments:
        if not isinstance(current, dict) or seg not in current:
            return None
        current = current[seg]
    return current


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def glob(pattern: str, text: str) -> bool:
    # fnmatch treats [ specially and knows no escapes; translate ours to it.
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append("[" + pattern[i + 1] + "]" if pattern[i + 1] in "*?[" else pattern[i + 1])
            i += 2
            continue
        out.append("[[]" if ch == "[" else ch)
        i += 1
    return fnmatchcase(text, "".join(out))


def interpret(node: Node, event: Any) -> bool:
    if isinstance(node, Not):
        return not interpret(node.operand, event)
    if isinstance(node, And):
        return all(interpret(n, event) for n in node.operands)
    if isinstance(node, Or):
        return any(interpret(n, event) for n in node.operands)
    value = lookup(event, node.path.segments)
    if isinstance(node, Function):
        if not isinstance(value, str):
            return False
        return node.argument in value if node.name == "contains" else glob(node.argument, value)
    expected = node.value
    if node.op in ("=", "!="):
        if expected is None:
            equal = value is None
        elif isinstance(expected, bool):
            equal = value is expected
        elif isinstance(expected, str):
            equal = isinstance(value, str) and value == expected
        else:
            equal = is_number(value) and value == expected
        return equal if node.op == "=" else not equal
    if not is_number(value) or (isinstance(value, float) and math.isnan(value)):
        return False
    return {
        "<": value < expected,  # type: ignore[operator]
        "<=": value <= expected,  # type: ignore[operator]
        ">": value > expected,  # type: ignore[operator]
        ">=": value >= expected,  # type: ignore[operator]
    }[node.op]


# -- an independent printer: minimal parentheses, random spelling of not ----------


def render(node: Node, draw: Any) -> str:
    if isinstance(node, Compare | Function):
        text = format_trigger(node)
        return f"({text})" if draw(st.booleans()) and draw(st.booleans()) else text
    if isinstance(node, Not):
        inner = render(node.operand, draw)
        if isinstance(node.operand, And | Or):
            inner = f"({inner})"
        return draw(st.sampled_from(["not ", "!", "! ", "not\t"])) + inner
    if isinstance(node, And):
        parts = [
            f"({render(n, draw)})" if isinstance(n, Or) else render(n, draw) for n in node.operands
        ]
        return " and ".join(parts)
    # Or: operands that are And need no parentheses because and binds tighter.
    return " or ".join(render(n, draw) for n in node.operands)


@SETTINGS
@given(tree=trees, event=events)
def test_random_events_never_raise(tree: Node, event: Any) -> None:
    fn = compile_trigger(format_trigger(tree))
    assert type(fn(event)) is bool


@SETTINGS
@given(tree=trees, event=events)
def test_compiled_code_agrees_with_the_interpreter(tree: Node, event: Any) -> None:
    assert compile_trigger(format_trigger(tree))(event) is interpret(tree, event)


@SETTINGS
@given(tree=trees, event=events)
def test_not_is_negation(tree: Node, event: Any) -> None:
    text = format_trigger(tree)
    positive = compile_trigger(text)(event)
    assert compile_trigger(f"not ({text})")(event) is (not positive)
    assert compile_trigger(f"!({text})")(event) is (not positive)


@SETTINGS
@given(
    operands=st.lists(leaves, min_size=2, max_size=6),
    structure=st.data(),
    event=events,
)
def test_and_or_follow_python_boolean_logic(
    operands: list[Node], structure: Any, event: Any
) -> None:
    """Join leaves with random and/or/not, unparenthesised, and compare with Python."""
    truth = [compile_trigger(format_trigger(leaf))(event) for leaf in operands]
    negate = [structure.draw(st.booleans()) for _ in operands]
    joins = [structure.draw(st.sampled_from(["and", "or"])) for _ in operands[1:]]
    text_parts, py_parts = [], []
    for i, leaf in enumerate(operands):
        if i:
            text_parts.append(joins[i - 1])
            py_parts.append(joins[i - 1])
        text_parts.append(("not " if negate[i] else "") + format_trigger(leaf))
        py_parts.append(("not " if negate[i] else "") + repr(truth[i]))
    expected = eval(" ".join(py_parts))  # Python: not > and > or, like triggers
    assert compile_trigger(" ".join(text_parts))(event) is expected


@SETTINGS
@given(tree=trees, event=events, data=st.data())
def test_any_spelling_of_a_tree_evaluates_like_the_tree(tree: Node, event: Any, data: Any) -> None:
    text = render(tree, data.draw)
    assert parse_trigger(text) == tree
    assert compile_trigger(text)(event) is interpret(tree, event)


@SETTINGS
@given(tree=trees)
def test_format_then_parse_round_trips(tree: Node) -> None:
    assert parse_trigger(format_trigger(tree)) == tree


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='tyep=!<>()"\\ .,andortcsmh*1-', max_size=30))
def test_arbitrary_text_parses_or_raises_a_syntax_error(text: str) -> None:
    from destination.triggers import TriggerSyntaxError

    try:
        fn = compile_trigger(text)
    except TriggerSyntaxError as err:
        assert 1 <= err.column <= len(text) + 1
        assert str(err)
    else:
        assert type(fn({"type": "x"})) is bool


@settings(max_examples=400, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?\\", max_size=8),
    text=st.text(alphabet="ab*?\\", max_size=10),
)
def test_match_agrees_with_a_reference_glob(pattern: str, text: str) -> None:
    node = Function("match", Path(("v",)), pattern)
    assert compile_trigger(format_trigger(node))({"v": text}) is glob(pattern, text)
