"""The trigger language: lexer, parser, AST and compiler for presets' ``trigger:``.

Why a language of our own rather than Segment's parser: Segment's
subscription syntax is what users already write, but its parser ignores
precedence (the last ``and``/``or`` decides a whole group), ends a group at the
first ``)`` and drops ``!`` before anything but a function. We read the same
syntax with a real grammar (docs/triggers.md has it in EBNF, with every
difference from Segment), so a trigger means what it says.

Why generated code: a trigger runs once per event per action, so it must be
cheap. Each expression is parsed once into a small AST of frozen dataclasses,
then compiled into one Python function whose source is built from the AST
(literals through ``repr``) and ``exec``-ed once. That is several times faster
than walking the AST or nesting closures. The generated code treats anything
that is not a dict on a path (lists, strings, None, missing keys) as
"missing", checks types before comparing and is wrapped in a guard, so
evaluating a trigger never raises whatever the event holds.

Why iterative parsing and code generation: "nesting to any depth" includes
thousands of parentheses. The parser is a shunting-yard over an explicit
stack, and the code generator folds the AST bottom-up without recursion,
hoisting every few levels into a helper function so the generated source
never nests deeper than CPython's parser allows.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from .errors import TriggerSyntaxError

__all__ = [
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

Literal: TypeAlias = str | int | float | bool | None
"""A literal in a trigger: a string, a number, ``true``/``false`` or ``null``."""

MAX_DEPTH = 2000
"""The deepest and/or/not nesting a trigger may have once redundant parentheses
and double negations are removed. Deeper expressions are rejected with a
:class:`TriggerSyntaxError` rather than risking Python's recursion limit."""

FUNCTIONS = ("contains", "match")
_ORDERING = frozenset({"<", "<=", ">", ">="})
_KEYWORDS = frozenset({"and", "or", "not", "true", "false", "null"})
_KEYWORD_VALUES: dict[str, Literal] = {"true": True, "false": False, "null": None}


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Path:
    """A dotted path into the event: ``properties.a.b`` is ``("properties", "a", "b")``."""

    segments: tuple[str, ...]
    column: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return _format_path(self.segments)


@dataclass(frozen=True, slots=True)
class Compare:
    """``path op value``; ``op`` is one of ``= != < <= > >=``."""

    path: Path
    op: str
    value: Literal
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Function:
    """``contains(path, "s")`` or ``match(path, "glob")``."""

    name: str
    path: Path
    argument: str
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    """``!x`` / ``not x``: true exactly when ``operand`` is false."""

    operand: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    """True when every operand is; nested ``and`` groups are flattened into one."""

    operands: tuple[Node, ...]
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    """True when any operand is; nested ``or`` groups are flattened into one."""

    operands: tuple[Node, ...]
    column: int = field(default=0, compare=False)


Node: TypeAlias = Compare | Function | Not | And | Or


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, And | Or):
        return node.operands
    if isinstance(node, Not):
        return (node.operand,)
    return ()


def _fold(root: Node, visit: Callable[[Node, list[Any]], Any]) -> Any:
    """Post-order fold without recursion: ``visit(node, child_results)``."""
    results: list[Any] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        children = _children(node)
        if expanded or not children:
            count = len(children)
            taken = results[len(results) - count :] if count else []
            if count:
                del results[len(results) - count :]
            results.append(visit(node, taken))
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
    return results[0]


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*")
_SEGMENT = re.compile(r"[A-Za-z0-9_$\-]+")


def _format_path(segments: tuple[str, ...]) -> str:
    parts = []
    for i, seg in enumerate(segments):
        plain = _IDENT if i == 0 else _SEGMENT
        if plain.fullmatch(seg):
            parts.append(seg)
        else:
            parts.append(_quote(seg))
    return ".".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ------------------------------------------------------------------------- lexer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # path string number keyword op bang ( ) , end
    text: str  # the source text, for messages
    column: int
    value: Any = None


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$-.")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_WHITESPACE = frozenset(" \t\n\r")


def _lex(expr: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        col = i + 1
        if ch in _WHITESPACE:
            i += 1
        elif ch == "(" or ch == ")" or ch == ",":
            tokens.append(_Token(ch, ch, col))
            i += 1
        elif ch == '"':
            value, i = _lex_string(expr, i)
            tokens.append(_Token("string", expr[col - 1 : i], col, value))
        elif ch == "!":
            if expr.startswith("!=", i):
                tokens.append(_Token("op", "!=", col))
                i += 2
            else:
                tokens.append(_Token("bang", "!", col))
                i += 1
        elif ch in "<>":
            op = expr[i : i + 2] if expr.startswith("=", i + 1) else ch
            tokens.append(_Token("op", op, col))
            i += len(op)
        elif ch == "=":
            if expr.startswith("==", i):
                raise TriggerSyntaxError("'==' is not an operator; use '='", expr, col)
            tokens.append(_Token("op", "=", col))
            i += 1
        elif ch == "-" or ch.isdigit():
            m = _NUMBER.match(expr, i)
            end = m.end() if m else i + 1
            if m is None or (end < n and expr[end] in _WORD_CHARS):
                bad = end
                while bad < n and expr[bad] in _WORD_CHARS:
                    bad += 1
                raise TriggerSyntaxError(f"malformed number {expr[i:bad]!r}", expr, col)
            tokens.append(_Token("number", m.group(), col, _number(m.group(), expr, col)))
            i = end
        elif _IDENT.match(expr, i):
            token, i = _lex_path(expr, i)
            tokens.append(token)
        elif ch == "'":
            raise TriggerSyntaxError("strings use double quotes", expr, col)
        elif ch in "&|":
            word = "and" if ch == "&" else "or"
            raise TriggerSyntaxError(f"unexpected {ch!r}; write '{word}'", expr, col)
        else:
            raise TriggerSyntaxError(f"unexpected character {ch!r}", expr, col)
    tokens.append(_Token("end", "end of expression", n + 1))
    return tokens


def _number(text: str, expr: str, col: int) -> int | float:
    try:
        if "." in text or "e" in text or "E" in text:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        return int(text)
    except ValueError:
        raise TriggerSyntaxError(f"number {text[:20]!r} is out of range", expr, col) from None


def _lex_string(expr: str, start: int) -> tuple[str, int]:
    """Read a double-quoted string starting at ``start``; return (value, index after it)."""
    out: list[str] = []
    i, n = start + 1, len(expr)
    while i < n:
        ch = expr[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            nxt = expr[i + 1 : i + 2]
            if nxt in _ESCAPES and nxt:
                out.append(_ESCAPES[nxt])
                i += 2
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", expr[i + 2 : i + 6]):
                out.append(chr(int(expr[i + 2 : i + 6], 16)))
                i += 6
            elif nxt == "":
                break
            else:
                raise TriggerSyntaxError(f"invalid escape '\\{nxt}' in string", expr, i + 1)
        else:
            out.append(ch)
            i += 1
    raise TriggerSyntaxError("unterminated string", expr, start + 1)


def _lex_path(expr: str, start: int) -> tuple[_Token, int]:
    """Read ``ident {"." (segment | "string")}`` as one token (no spaces around dots)."""
    m = _IDENT.match(expr, start)
    assert m is not None
    segments = [m.group()]
    i, n = m.end(), len(expr)
    while i < n and expr[i] == ".":
        if i + 1 < n and expr[i + 1] == '"':
            value, i = _lex_string(expr, i + 1)
            segments.append(value)
            continue
        seg = _SEGMENT.match(expr, i + 1)
        if seg is None:
            raise TriggerSyntaxError("expected a key after '.'", expr, i + 2)
        segments.append(seg.group())
        i = seg.end()
    text = expr[start:i]
    if len(segments) == 1 and segments[0] in _KEYWORDS:
        return _Token("keyword", text, start + 1, segments[0]), i
    return _Token("path", text, start + 1, tuple(segments)), i


# ------------------------------------------------------------------------ parser


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "end of expression"
    text = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
    return f"{text!r}"


class _Parser:
    """Shunting-yard over an explicit stack: nesting depth costs no Python recursion."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _lex(expr)
        self.pos = 0

    def error(self, message: str, column: int) -> TriggerSyntaxError:
        return TriggerSyntaxError(message, self.expr, column)

    def next(self) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != "end":
            self.pos += 1
        return tok

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty trigger expression", 1)
        operands: list[Node] = []
        # Pending operators: ("(", col), ("not", col), ("and", col), ("or", col).
        ops: list[tuple[str, int]] = []
        previous: _Token | None = None  # the last operator token, for messages
        while True:
            # Expecting an operand.
            tok = self.next()
            if tok.kind == "bang" or (tok.kind == "keyword" and tok.value == "not"):
                ops.append(("not", tok.column))
                previous = tok
                continue
            if tok.kind == "(":
                ops.append(("(", tok.column))
                previous = tok
                continue
            if tok.kind in ("path", "string", "number") or (
                tok.kind == "keyword" and tok.value in _KEYWORD_VALUES
            ):
                operands.append(self.atom(tok))
            else:
                raise self.error(
                    self.missing_operand(tok, previous), self.operand_column(tok, previous)
                )
            # An operand is complete: apply the negations right before it, then
            # read operators (and closing parentheses) until the next operand.
            self.apply_nots(ops, operands)
            while True:
                tok = self.next()
                if tok.kind == ")":
                    while ops and ops[-1][0] != "(":
                        self.reduce(ops, operands)
                    if not ops:
                        raise self.error("unbalanced ')': no '(' to close", tok.column)
                    ops.pop()
                    self.apply_nots(ops, operands)
                    continue
                if tok.kind == "keyword" and tok.value in ("and", "or"):
                    binds = ("and",) if tok.value == "and" else ("and", "or")
                    while ops and ops[-1][0] in binds:
                        self.reduce(ops, operands)
                    ops.append((tok.value, tok.column))
                    previous = tok
                    break
                if tok.kind == "end":
                    while ops:
                        if ops[-1][0] == "(":
                            raise self.error("unbalanced '(': never closed", ops[-1][1])
                        self.reduce(ops, operands)
                    return operands[0]
                raise self.error(self.trailing(tok), tok.column)

    def missing_operand(self, tok: _Token, previous: _Token | None) -> str:
        after = f" after {previous.text!r}" if previous is not None else ""
        if tok.kind == "end" and previous is not None and previous.kind == "(":
            return "unbalanced '(': never closed"
        if tok.kind == "end" and previous is not None:
            return f"{previous.text!r} is missing a condition after it"
        if tok.kind == ")" and previous is not None and previous.kind == "(":
            return "empty parentheses: expected a condition"
        return f"expected a condition{after}, found {_describe(tok)}"

    @staticmethod
    def operand_column(tok: _Token, previous: _Token | None) -> int:
        # A dangling operator at the very end: point at the operator itself.
        if tok.kind == "end" and previous is not None:
            return previous.column
        return tok.column

    @staticmethod
    def trailing(tok: _Token) -> str:
        if tok.kind == "path" and tok.text.lower() in ("and", "or", "not"):
            return f"unexpected {tok.text!r}: keywords are lower-case ({tok.text.lower()!r})"
        if tok.kind == "op":
            return f"unexpected {tok.text!r}: only a path can be compared"
        return f"expected 'and', 'or', ')' or the end, found {_describe(tok)}"

    @staticmethod
    def apply_nots(ops: list[tuple[str, int]], operands: list[Node]) -> None:
        while ops and ops[-1][0] == "not":
            _, col = ops.pop()
            operand = operands.pop()
            # not not x is x: keeps the tree shallow whatever the expression says.
            operands.append(operand.operand if isinstance(operand, Not) else Not(operand, col))

    @staticmethod
    def reduce(ops: list[tuple[str, int]], operands: list[Node]) -> None:
        op, _ = ops.pop()
        right = operands.pop()
        left = operands.pop()
        kind = And if op == "and" else Or
        parts: list[Node] = []
        for side in (left, right):
            if isinstance(side, kind):
                parts.extend(side.operands)
            else:
                parts.append(side)
        operands.append(kind(tuple(parts), left.column))

    # -- atoms: a comparison or a function call; they never nest.

    def atom(self, first: _Token) -> Node:
        if first.kind != "path":
            return self.literal_first(first)
        segments: tuple[str, ...] = first.value
        following = self.peek()
        if following.kind == "(":
            return self.function(first)
        if following.kind != "op":
            if following.kind in ("end", ")") or (
                following.kind == "keyword" and following.value in ("and", "or")
            ):
                raise self.error(
                    f"bare word {first.text!r} is not a condition: compare it "
                    f"({first.text} = ...) or call contains()/match() on it",
                    first.column,
                )
            raise self.error(
                f"expected a comparison operator after {first.text!r}, found {_describe(following)}",
                following.column,
            )
        op = self.next()
        value_tok = self.next()
        path = Path(segments, first.column)
        value = self.literal(value_tok, op)
        if op.text in _ORDERING and value_tok.kind != "number":
            raise self.error(
                f"{op.text!r} compares numbers; found {_describe(value_tok)}", value_tok.column
            )
        return Compare(path, op.text, value, first.column)

    def literal(self, tok: _Token, op: _Token) -> Literal:
        if tok.kind in ("string", "number"):
            return tok.value
        if tok.kind == "keyword" and tok.value in _KEYWORD_VALUES:
            return _KEYWORD_VALUES[tok.value]
        if tok.kind == "path":
            raise self.error(
                f"expected a value after {op.text!r}, found the path {tok.text!r}; "
                f'to compare with a string, quote it: "{tok.text}"',
                tok.column,
            )
        if tok.kind == "end":
            raise self.error(f"{op.text!r} is missing a value after it", op.column)
        raise self.error(f"expected a value after {op.text!r}, found {_describe(tok)}", tok.column)

    def literal_first(self, first: _Token) -> Node:
        following = self.peek()
        if following.kind == "op":
            other = self.tokens[self.pos + 1]
            if other.kind == "path":
                raise self.error(
                    f"the path goes on the left: write {other.text} {following.text} {first.text}",
                    first.column,
                )
            if other.kind in ("string", "number") or (
                other.kind == "keyword" and other.value in _KEYWORD_VALUES
            ):
                raise self.error(
                    "comparison of two literals: the left side must be a path", first.column
                )
            raise self.error("the left side of a comparison must be a path", first.column)
        raise self.error(f"a literal alone is not a condition: {_describe(first)}", first.column)

    def function(self, name_tok: _Token) -> Node:
        name = name_tok.text
        if name not in FUNCTIONS:
            known = ", ".join(f"{f}()" for f in FUNCTIONS)
            raise self.error(f"unknown function {name!r} (known: {known})", name_tok.column)
        open_paren = self.next()
        args: list[_Token] = []
        while True:
            tok = self.next()
            if tok.kind == ")" and not args:
                break
            if tok.kind not in ("path", "string", "number", "keyword"):
                if tok.kind == "end":
                    raise self.error(f"unbalanced '(': {name}() is never closed", open_paren.column)
                raise self.error(
                    f"expected an argument of {name}(), found {_describe(tok)}", tok.column
                )
            if len(args) == 2:
                raise self.error(
                    f"{name}() takes 2 arguments (a path and a string), got more", tok.column
                )
            args.append(tok)
            sep = self.next()
            if sep.kind == ")":
                break
            if sep.kind == "end":
                raise self.error(f"unbalanced '(': {name}() is never closed", open_paren.column)
            if sep.kind != ",":
                raise self.error(
                    f"expected ',' or ')' in {name}(), found {_describe(sep)}", sep.column
                )
        if len(args) != 2:
            closing = self.tokens[self.pos - 1]
            raise self.error(
                f"{name}() takes 2 arguments (a path and a string), got {len(args)}", closing.column
            )
        path_tok, arg_tok = args
        if path_tok.kind != "path":
            raise self.error(f"the first argument of {name}() must be a path", path_tok.column)
        if arg_tok.kind != "string":
            raise self.error(f"the second argument of {name}() must be a string", arg_tok.column)
        return Function(name, Path(path_tok.value, path_tok.column), arg_tok.value, name_tok.column)


def parse_trigger(expr: str) -> Node:
    """Parse ``expr`` into its AST; raise :class:`TriggerSyntaxError` if it is malformed."""
    if not isinstance(expr, str):
        raise TriggerSyntaxError(
            f"a trigger must be a string, not {type(expr).__name__}", repr(expr), 1
        )
    return _Parser(expr).parse()


# ---------------------------------------------------------------------- matching


def _glob_pieces(pattern: str) -> list[list[str | None]]:
    """Split a glob at its unescaped stars; ``None`` stands for a ``?``."""
    pieces: list[list[str | None]] = [[]]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pieces[-1].append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            pieces.append([])
        else:
            pieces[-1].append(None if ch == "?" else ch)
        i += 1
    return pieces


class _Glob:
    """A glob (``*`` any run, ``?`` one character, ``\\`` escapes) matched in linear time.

    The pattern is split at its stars; the first piece must be a prefix, the
    last a suffix, and the middle pieces are found left to right. Unlike a
    backtracking regex this cannot go quadratic on a huge string.
    """

    __slots__ = ("first", "last", "middle", "minimum", "single")

    def __init__(self, pattern: str) -> None:
        pieces = _glob_pieces(pattern)
        compiled = [self._piece(p) for p in pieces]
        self.single = len(compiled) == 1
        self.first = compiled[0]
        self.last = compiled[-1]
        self.middle = compiled[1:-1]
        self.minimum = sum(len(p) for p in pieces)

    @staticmethod
    def _piece(chars: list[str | None]) -> tuple[int, str | re.Pattern[str]]:
        if None not in chars:
            return len(chars), "".join(c for c in chars if c is not None)
        regex = "".join("." if c is None else re.escape(c) for c in chars)
        return len(chars), re.compile(regex, re.DOTALL)

    @staticmethod
    def _at(piece: tuple[int, str | re.Pattern[str]], text: str, pos: int) -> bool:
        length, matcher = piece
        if isinstance(matcher, str):
            return text.startswith(matcher, pos)
        return matcher.match(text, pos, pos + length) is not None

    def __call__(self, text: str) -> bool:
        if len(text) < self.minimum:
            return False
        if self.single:
            return len(text) == self.first[0] and self._at(self.first, text, 0)
        if not self._at(self.first, text, 0):
            return False
        end = len(text) - self.last[0]
        if not self._at(self.last, text, end):
            return False
        pos = self.first[0]
        for length, matcher in self.middle:
            if isinstance(matcher, str):
                found = text.find(matcher, pos, end)
            else:
                m = matcher.search(text, pos, end)
                found = -1 if m is None else m.start()
            if found < 0:
                return False
            pos = found + length
        return True


def _lookup(event: Any, segments: tuple[str, ...]) -> Any:
    """Follow ``segments`` through nested dicts; anything else on the way is missing."""
    value = event
    for seg in segments:
        if not isinstance(value, dict):
            return None
        value = value.get(seg)
    return value


# ---------------------------------------------------------------------- compiler

_INLINE_PATH = 6  # longer paths call _lookup instead of an inline chain
_HOIST_EVERY = 12  # AST levels per generated function (CPython nests ~200 parens)


class _Codegen:
    """Builds the source of one Python function from an AST, bottom-up."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.namespace: dict[str, Any] = {
            "_N": frozenset({int, float}),
            "_lookup": _lookup,
            "_Exception": Exception,
        }
        self.helpers: list[str] = []

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def path(self, path: Path) -> str:
        segs = path.segments
        if len(segs) > _INLINE_PATH:
            return f"_lookup(e, {segs!r})"
        code = f"e.get({segs[0]!r})"
        for seg in segs[1:]:
            code = f"(_t.get({seg!r}) if isinstance(_t := {code}, dict) else None)"
        return code

    def leaf(self, node: Compare | Function) -> str:
        value = self.path(node.path)
        if isinstance(node, Function):
            if node.name == "contains":
                return f"(isinstance(_v := {value}, str) and {node.argument!r} in _v)"
            return f"(isinstance(_v := {value}, str) and {self.glob(node.argument)})"
        op, literal = node.op, node.value
        negate = op == "!="
        if literal is None:
            return f"({value} is {'not ' if negate else ''}None)"
        if isinstance(literal, bool):
            return f"({value} is {'not ' if negate else ''}{literal!r})"
        if isinstance(literal, str):
            test = f"(isinstance(_v := {value}, str) and _v == {literal!r})"
        else:
            py_op = "==" if op in ("=", "!=") else op
            test = f"(type(_v := {value}) in _N and _v {py_op} {literal!r})"
        return f"(not {test})" if negate else test

    def glob(self, pattern: str) -> str:
        """A test of ``_v`` against a glob: string methods for the common shapes
        (``abc*``, ``*abc``, ``*abc*``, ``a*b``), one C-level regex when there is
        at most one star (no backtracking blow-up), else the linear matcher."""
        pieces = _glob_pieces(pattern)
        if not any(None in piece for piece in pieces):
            texts = ["".join(c for c in piece if c is not None) for piece in pieces]
            if len(texts) == 1:
                return f"_v == {texts[0]!r}"
            if len(texts) == 2:
                head, tail = texts
                tests = [
                    f"_v.startswith({head!r})" if head else "",
                    f"_v.endswith({tail!r})" if tail else "",
                ]
                if head and tail:
                    tests.insert(0, f"len(_v) >= {len(head) + len(tail)}")
                return "(" + " and ".join(t for t in tests if t) + ")" if any(tests) else "True"
            if len(texts) == 3 and not texts[0] and not texts[2]:
                return f"{texts[1]!r} in _v"
        if len(pieces) <= 2:
            regex = ".*".join(
                "".join("." if c is None else re.escape(c) for c in piece) for piece in pieces
            )
            matcher = self.constant(re.compile(regex, re.DOTALL).fullmatch)
            return f"({matcher}(_v) is not None)"
        return f"{self.constant(_Glob(pattern))}(_v)"

    def build(self, root: Node) -> str:
        def visit(node: Node, children: list[tuple[str, int]]) -> tuple[str, int]:
            if isinstance(node, Compare | Function):
                return self.leaf(node), 1
            depth = 1 + max(d for _, d in children)
            if depth > MAX_DEPTH:
                raise TriggerSyntaxError(
                    f"the expression nests more than {MAX_DEPTH} levels deep",
                    self.expr,
                    node.column,
                )
            if isinstance(node, Not):
                code = f"(not {children[0][0]})"
            else:
                joiner = " and " if isinstance(node, And) else " or "
                code = "(" + joiner.join(c for c, _ in children) + ")"
            if depth % _HOIST_EVERY == 0:
                code = self.hoist(code)
            return code, depth

        code, _ = _fold(root, visit)
        return code

    def hoist(self, code: str) -> str:
        name = f"_f{len(self.helpers)}"
        self.helpers.append(f"def {name}(e):\n    return {code}\n")
        return f"{name}(e)"


def _generate(expr: str, root: Node) -> Callable[[Any], bool]:
    gen = _Codegen(expr)
    body = gen.build(root)
    source = "".join(gen.helpers) + (
        "def trigger(e):\n"
        "    if not isinstance(e, dict):\n"
        "        e = {}\n"
        "    try:\n"
        f"        return {body}\n"
        "    except _Exception:\n"
        "        return False\n"
    )
    code = compile(source, "<trigger>", "exec")
    exec(code, gen.namespace)
    fn: Callable[[Any], bool] = gen.namespace["trigger"]
    fn.__qualname__ = fn.__name__ = "trigger"
    fn.__doc__ = f"Compiled trigger: {expr}"
    return fn


@functools.lru_cache(maxsize=1024)
def _compile_cached(expr: str) -> Callable[[Any], bool]:
    return _generate(expr, parse_trigger(expr))


def compile_trigger(expr: str) -> Callable[[dict[str, Any]], bool]:
    """Compile ``expr`` once into a predicate over events.

    The predicate returns ``True`` when the event matches and never raises:
    missing keys, lists or scalars where an object was expected, ``None`` and
    non-dict events all read as "missing". Identical expressions share one
    compiled function. Raises :class:`TriggerSyntaxError` for a malformed
    expression.
    """
    if not isinstance(expr, str):
        parse_trigger(expr)  # raises the error naming the wrong type
    return _compile_cached(expr)


# ----------------------------------------------------------------- static analysis

_Constraints: TypeAlias = dict[tuple[str, ...], frozenset[str]]


def _all_of(parts: list[_Constraints]) -> _Constraints:
    merged: _Constraints = {}
    for part in parts:
        for path, values in part.items():
            merged[path] = merged[path] & values if path in merged else values
    return merged


def _any_of(parts: list[_Constraints]) -> _Constraints:
    if not parts:
        return {}
    common = set(parts[0]).intersection(*parts[1:])
    return {path: frozenset().union(*(p[path] for p in parts)) for path in common}


def required_equalities(node: Node) -> dict[tuple[str, ...], frozenset[str]]:
    """What string values some paths must hold for ``node`` to match.

    ``{("type",): {"track"}, ("event",): {"Order Completed", "Product Added"}}``
    means: the trigger can only be true when ``type`` is the string ``track``
    and ``event`` is one of those two strings. A path that is absent is not
    constrained; an empty set means the trigger can never match. Used to
    index triggers by ``type``/``event`` so most are never evaluated.
    """

    def visit(n: Node, children: list[tuple[_Constraints, _Constraints]]) -> Any:
        # Each result is (constraints when n is true, constraints when n is false).
        if isinstance(n, Compare):
            if isinstance(n.value, str) and n.op in ("=", "!="):
                known = {n.path.segments: frozenset({n.value})}
                return (known, {}) if n.op == "=" else ({}, known)
            return ({}, {})
        if isinstance(n, Function):
            return ({}, {})
        if isinstance(n, Not):
            true_, false_ = children[0]
            return (false_, true_)
        trues = [c[0] for c in children]
        falses = [c[1] for c in children]
        if isinstance(n, And):
            return (_all_of(trues), _any_of(falses))
        return (_any_of(trues), _all_of(falses))

    result: tuple[_Constraints, _Constraints] = _fold(node, visit)
    return result[0]


def iter_paths(node: Node) -> Iterator[Path]:
    """Every path the expression reads, left to right (for lint and docs)."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Compare | Function):
            yield current.path
        stack.extend(reversed(_children(current)))


def format_trigger(node: Node) -> str:
    """The canonical text of an AST; parsing it gives back an equal AST."""

    def visit(n: Node, children: list[tuple[str, int]]) -> tuple[str, int]:
        # Result: (text, precedence) with 3 = atom/not, 2 = and, 1 = or.
        if isinstance(n, Compare):
            return f"{n.path} {n.op} {_format_literal(n.value)}", 3
        if isinstance(n, Function):
            return f"{n.name}({n.path}, {_quote(n.argument)})", 3
        if isinstance(n, Not):
            text, _ = children[0]
            return f"not ({text})", 3
        level = 2 if isinstance(n, And) else 1
        joiner = " and " if level == 2 else " or "
        return joiner.join(t if p > level else f"({t})" for t, p in children), level

    text: str = _fold(node, visit)[0]
    return text


def _format_literal(value: Literal) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    return repr(value)
