"""The mapping engine: JMESPath field expressions compiled once, evaluated fast.

Every payload field is a JMESPath expression so users learn one language for
constants (``'AddToCart'``), fallbacks (``properties.value || properties.revenue``)
and reshaping (``properties.products[].{content_id: product_id}``). jmespath's
tree interpreter costs a few microseconds per expression, too slow for the
thirty-odd fields of a TikTok event, so the common shapes — constants, plain
dotted paths and ``a || b || 'c'`` chains of them — are recognised in the
parsed tree and turned into generated Python code doing direct dict look-ups
with exactly JMESPath's semantics (``||`` treats ``""``, ``[]``, ``{}``,
``false`` and ``null`` as false; a field of a non-object is null). Everything
else is handed to jmespath's interpreter, built once per function table.

The functions JMESPath lacks (coalesce, trimming, timestamps, URL and cookie
look-ups, sha256) are registered through the ``register_mapping_functions``
hook by this very module acting as a built-in plugin, so third-party functions
travel the same road.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import jmespath
from jmespath import exceptions as jmespath_exceptions
from jmespath import functions as jmespath_functions
from jmespath.visitor import Options, TreeInterpreter

from .codecache import compile_source
from .errors import MappingError, PayloadError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .plugins import Registry

__all__ = [
    "CompiledMapping",
    "Expression",
    "MappingFunctions",
    "compile_expression",
    "compile_mapping",
    "is_false",
]

#: JMESPath's signature spec for "any value": an empty type list is not checked.
ANY: dict[str, Any] = {"types": []}


def is_false(value: Any) -> bool:
    """JMESPath falsiness, exactly as jmespath's interpreter tests it."""
    return value == "" or value == [] or value == {} or value is None or value is False


class MappingFunctions(jmespath_functions.Functions):
    """jmespath's built-in functions plus the registered ones, as one table.

    Registered functions are plain callables taking the evaluated arguments;
    their signature (a list of JMESPath argument specs) is checked by jmespath
    before the call, or not at all when it is ``None``. A registered name
    replaces a JMESPath built-in of the same name (documented for
    ``to_string``/``to_number``).
    """

    def __init__(
        self, registered: Mapping[str, tuple[Callable[..., Any], Any]] | None = None
    ) -> None:
        builtin: dict[str, dict[str, Any]] = vars(jmespath_functions.Functions)["FUNCTION_TABLE"]
        table: dict[str, dict[str, Any]] = {
            name: dict(spec, plain=False) for name, spec in builtin.items()
        }
        for name, (function, signature) in dict(registered or {}).items():
            table[name] = {
                "function": function,
                "signature": None if signature is None else tuple(signature),
                "plain": True,
            }
        self.FUNCTION_TABLE = table
        self.options = Options(custom_functions=self)
        self.interpreter = TreeInterpreter(self.options)

    @classmethod
    def from_registry(cls, registry: Registry) -> MappingFunctions:
        return cls(registry.mapping_functions)

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        try:
            spec = self.FUNCTION_TABLE[function_name]
        except KeyError:
            raise jmespath_exceptions.UnknownFunctionError(
                f"Unknown function: {function_name}()"
            ) from None
        signature = spec["signature"]
        if signature is not None:
            self._validate_arguments(resolved_args, signature, function_name)
        if spec["plain"]:
            return spec["function"](*resolved_args)
        return spec["function"](self, *resolved_args)

    def check_call(self, name: str, count: int) -> str | None:
        """Why a call of ``name`` with ``count`` arguments cannot work, or None."""
        spec = self.FUNCTION_TABLE.get(name)
        if spec is None:
            return f"unknown function {name}()"
        signature = spec["signature"]
        if signature is None:
            return None
        if signature and signature[-1].get("variadic"):
            if count < len(signature):
                return f"{name}() takes at least {len(signature)} arguments, got {count}"
        elif count != len(signature):
            return f"{name}() takes {len(signature)} arguments, got {count}"
        return None


# --------------------------------------------------------------------------
# Compiling expressions


def _path_of(node: dict[str, Any]) -> tuple[str, ...] | None:
    """The keys of a plain dotted path (``a."b c".d``), or None for anything else."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression":
        keys: list[str] = []
        for child in node["children"]:
            sub = _path_of(child)
            if sub is None:
                return None
            keys.extend(sub)
        return tuple(keys)
    return None


Term = tuple[str, Any]  # ("path", keys) or ("literal", value)


def _terms_of(node: dict[str, Any]) -> list[Term] | None:
    """Flatten ``a || b || 'c'`` into its terms if each is a path or a literal."""
    if node["type"] == "or_expression":
        left = _terms_of(node["children"][0])
        right = _terms_of(node["children"][1])
        if left is None or right is None:
            return None
        return left + right
    if node["type"] == "literal":
        return [("literal", node["value"])]
    path = _path_of(node)
    if path is None:
        return None
    return [("path", path)]


def _function_calls(node: dict[str, Any]) -> Iterable[tuple[str, int]]:
    if node.get("type") == "function_expression":
        yield node["value"], len(node["children"])
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from _function_calls(child)


def _get(value: Any, key: str) -> Any:
    """A field of a value that is not a plain dict, as jmespath's visit_field does it."""
    try:
        return value.get(key)
    except AttributeError:
        return None


def _lookup_code(source: str, key: str) -> str:
    # A missing key is the common case in CDP events, and ``_get(None, key)`` would
    # raise and catch an AttributeError for it (about 1 µs); None gives None directly.
    return (
        f"{source}.get({key!r}) if type({source}) is dict "
        f"else None if {source} is None else _get({source}, {key!r})"
    )


class _Lookup:
    """``.get`` for a value that is not a dict, exactly as jmespath's visit_field reads it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, key: str) -> Any:
        return _get(self.value, key)


#: What a hoisted prefix that is null looks keys up in: every key is null.
_NO_KEYS: Mapping[str, Any] = MappingProxyType({})


def _term_code(
    term: Term,
    names: dict[str, Any],
    out: str,
    indent: str,
    hoisted: Mapping[tuple[str, ...], str] | None = None,
    direct: Mapping[str, str] | None = None,
) -> list[str]:
    kind, data = term
    if kind == "literal":
        const = f"_c{len(names)}"
        names[const] = data
        return [f"{indent}{out} = {const}"]
    keys: tuple[str, ...] = data
    source, start = "e", 0
    for length in range(len(keys), 0, -1):  # start from the longest precomputed prefix
        if hoisted and keys[:length] in hoisted:
            source, start = hoisted[keys[:length]], length
            break
    if start == len(keys):
        return [f"{indent}{out} = {source}"]
    if direct and source in direct:  # a source whose .get is jmespath's field look-up
        lines = [f"{indent}{out} = {direct[source]}.get({keys[start]!r})"]
    else:
        lines = [f"{indent}{out} = {_lookup_code(source, keys[start])}"]
    for key in keys[start + 1 :]:
        lines.append(f"{indent}{out} = {_lookup_code(out, key)}")
    return lines


def _falsy_code(name: str) -> str:
    """A test for JMESPath falsiness (null, false, "", [], {}; 0 is true).

    ``not v`` first: every JMESPath-false JSON value is false in Python too, so
    a found value (the usual case) is settled by one test instead of five,
    two of which would build an empty list and dict to compare with.
    """
    return (
        f"not {name} and ({name} is None or {name} is False or {name} == '' "
        f"or {name} == [] or {name} == {{}})"
    )


def _chain_code(
    terms: list[Term],
    names: dict[str, Any],
    out: str,
    indent: str,
    hoisted: Mapping[tuple[str, ...], str] | None = None,
    direct: Mapping[str, str] | None = None,
) -> list[str]:
    """Code that leaves JMESPath's value of ``t1 || t2 || ...`` in ``out``."""
    lines = _term_code(terms[0], names, out, indent, hoisted, direct)
    for term in terms[1:]:
        lines.append(f"{indent}if {_falsy_code(out)}:")
        indent += "    "
        lines.extend(_term_code(term, names, out, indent, hoisted, direct))
    return lines


def _shared_prefixes(expressions: Iterable[Expression]) -> list[tuple[str, ...]]:
    """Path prefixes (``context.traits``) that two or more look-ups go through.

    Looking a key up is pure, so computing these once per event up front gives
    the same values as the chained look-ups, with fewer dict probes.
    """
    counts: dict[tuple[str, ...], int] = {}
    for expression in expressions:
        for kind, data in expression.terms or ():
            if kind == "path":
                for length in range(1, len(data)):
                    counts[data[:length]] = counts.get(data[:length], 0) + 1
    return sorted((p for p, n in counts.items() if n >= 2), key=len)


def _compile_function(name: str, body: list[str], names: dict[str, Any]) -> Callable[..., Any]:
    source = f"def {name}(e):\n" + "\n".join(body) + "\n"
    namespace: dict[str, Any] = {"_get": _get, **names}
    exec(compile_source(source, f"<mapping {name}>"), namespace)
    function: Callable[..., Any] = namespace[name]
    function.__source__ = source  # type: ignore[attr-defined]
    return function


class _Unsupported(Exception):
    """A node the code generator leaves to jmespath's interpreter."""


def _flatten(base: Any) -> Any:
    """jmespath's visit_flatten."""
    if not isinstance(base, list):
        return None
    merged: list[Any] = []
    for element in base:
        if isinstance(element, list):
            merged.extend(element)
        else:
            merged.append(element)
    return merged


def _setter(container: str, key: str) -> Callable[[str], str]:
    return lambda value: f"{container}[{key!r}] = {value}"


def _appender(container: str) -> Callable[[str], str]:
    return lambda value: f"{container}.append({value})"


class _Codegen:
    """Python statements for the JMESPath nodes mappings use, mirroring jmespath's visitor.

    Covers fields, sub-expressions, literals, ``@``, ``||``, ``&&``, function
    calls (through the same function table, so the same signature checks and
    errors), multi-select objects and lists, flatten, projections (``a[].b``,
    ``a[*].b``) and integer indexes. Anything else (filters, slices,
    comparisons, pipes, ``!``) raises _Unsupported and the expression runs in
    jmespath's interpreter.
    """

    def __init__(self, functions: MappingFunctions) -> None:
        self.names: dict[str, Any] = {
            "_get": _get,
            "_flatten": _flatten,
            "_prune": _prune,
            "_Lookup": _Lookup,
        }
        self.names["_call"] = functions.call_function
        self.functions = functions
        self.count = 0

    def direct_function(self, name: str) -> str | None:
        """A name to call a registered function by directly, when jmespath would check nothing.

        The arity was checked when the expression compiled; a signature whose
        arguments all accept any type leaves nothing else to check.
        """
        spec = self.functions.FUNCTION_TABLE.get(name)
        if spec is None or not spec["plain"]:
            return None
        signature = spec["signature"]
        if signature is not None and any(arg.get("types") for arg in signature):
            return None
        local = self.fresh("f")
        self.names[local] = spec["function"]
        return local

    def fresh(self, prefix: str = "t") -> str:
        self.count += 1
        return f"_{prefix}{self.count}"

    def compile(self, node: dict[str, Any]) -> Callable[[Any], Any]:
        lines: list[str] = []
        self.emit(node, "e", "r", lines, "    ")
        return _compile_function("search", [*lines, "    return r"], self.names)

    def compile_pruned(self, node: dict[str, Any]) -> Callable[[Any], Any]:
        """``_prune(search(e))`` built directly: what a mapping puts in a payload.

        Nulls are left out of objects and arrays as they are built, so a
        projection of products is not walked a second time by ``_prune``.
        """
        lines: list[str] = []
        self.emit_pruned(node, "e", "r", lines, "    ")
        return _compile_function("search_pruned", [*lines, "    return r"], self.names)

    def emit_pruned(
        self, node: dict[str, Any], src: str, out: str, lines: list[str], ind: str
    ) -> None:
        """Like :meth:`emit`, leaving ``_prune`` of the value in ``out``."""
        if self.emit_kept(node, src, out, lines, ind):
            return
        lines.append(f"{ind}if type({out}) is dict or type({out}) is list:")
        lines.append(f"{ind}    {out} = _prune({out})")

    def emit_kept(
        self, node: dict[str, Any], src: str, out: str, lines: list[str], ind: str
    ) -> bool:
        """Emit ``node``; True if ``out`` is then pruned, False if it is the raw value."""
        kind = node["type"]
        children = node.get("children", [])
        if kind in ("multi_select_dict", "multi_select_list"):
            lines.append(f"{ind}if {src} is None:")
            lines.append(f"{ind}    {out} = None")
            lines.append(f"{ind}else:")
            inner = ind + "    "
            values = (
                [c["children"][0] for c in children] if kind == "multi_select_dict" else children
            )
            if any(value["type"] == "field" for value in values):
                # the fields of src through a twin whose .get is jmespath's look-up
                twin = self.fresh("q")
                lines.append(f"{inner}{twin} = {src} if type({src}) is dict else _Lookup({src})")
            lines.append(
                f"{inner}{out} = {{}}" if kind == "multi_select_dict" else f"{inner}{out} = []"
            )
            for child, value in zip(children, values, strict=True):
                store = (
                    _setter(out, child["value"]) if kind == "multi_select_dict" else _appender(out)
                )
                temp = self.fresh()
                if value["type"] == "field":
                    lines.append(f"{inner}{temp} = {twin}.get({value['value']!r})")
                    kept = False
                else:
                    kept = self.emit_kept(value, src, temp, lines, inner)
                self.store(temp, store, kept, lines, inner)
            lines.append(f"{inner}if not {out}:")
            lines.append(f"{inner}    {out} = None")
            return True
        if kind == "projection":
            element, item = self.projection_head(children[0], src, out, lines, ind)
            body = ind + "        "
            kept = self.emit_kept(children[1], element, item, lines, body)
            self.store(item, _appender(out), kept, lines, body)
            lines.append(f"{ind}    if not {out}:")
            lines.append(f"{ind}        {out} = None")
            lines.append(f"{ind}else:")
            lines.append(f"{ind}    {out} = None")
            return True
        if kind == "subexpression":
            current = src
            for child in children[:-1]:
                temp = self.fresh()
                self.emit(child, current, temp, lines, ind)
                current = temp
            return self.emit_kept(children[-1], current, out, lines, ind)
        self.emit(node, src, out, lines, ind)
        return False

    def projection_head(
        self, base_node: dict[str, Any], src: str, out: str, lines: list[str], ind: str
    ) -> tuple[str, str]:
        """The start of a projection's loop over ``base_node``; (element, item) names."""
        base, element, item = self.fresh(), self.fresh("x"), self.fresh()
        self.emit(base_node, src, base, lines, ind)
        lines.append(f"{ind}if isinstance({base}, list):")
        lines.append(f"{ind}    {out} = []")
        lines.append(f"{ind}    for {element} in {base}:")
        return element, item

    @staticmethod
    def store(
        value: str, store: Callable[[str], str], kept: bool, lines: list[str], ind: str
    ) -> None:
        """The statement ``store(value)`` unless ``value`` is null, pruned first if raw."""
        lines.append(f"{ind}if {value} is not None:")
        if kept:
            lines.append(f"{ind}    {store(value)}")
            return
        # a string first: the commonest value, and never pruned
        lines.append(f"{ind}    if type({value}) is str:")
        lines.append(f"{ind}        {store(value)}")
        lines.append(f"{ind}    elif type({value}) is dict or type({value}) is list:")
        lines.append(f"{ind}        {value} = _prune({value})")
        lines.append(f"{ind}        if {value} is not None:")
        lines.append(f"{ind}            {store(value)}")
        lines.append(f"{ind}    else:")
        lines.append(f"{ind}        {store(value)}")

    def emit(self, node: dict[str, Any], src: str, out: str, lines: list[str], ind: str) -> None:
        kind = node["type"]
        children = node.get("children", [])
        if kind == "field":
            lines.append(f"{ind}{out} = {_lookup_code(src, node['value'])}")
        elif kind in ("subexpression", "index_expression"):
            current = src
            for child in children[:-1]:
                temp = self.fresh()
                self.emit(child, current, temp, lines, ind)
                current = temp
            self.emit(children[-1], current, out, lines, ind)
        elif kind == "literal":
            const = self.fresh("c")
            self.names[const] = node["value"]
            lines.append(f"{ind}{out} = {const}")
        elif kind in ("current", "identity"):
            lines.append(f"{ind}{out} = {src}")
        elif kind in ("or_expression", "and_expression"):
            self.emit(children[0], src, out, lines, ind)
            test = _falsy_code(out)
            lines.append(f"{ind}if {test if kind == 'or_expression' else f'not ({test})'}:")
            self.emit(children[1], src, out, lines, ind + "    ")
        elif kind == "function_expression":
            args = []
            for child in children:
                temp = self.fresh()
                self.emit(child, src, temp, lines, ind)
                args.append(temp)
            direct = self.direct_function(node["value"])
            if direct is not None:
                lines.append(f"{ind}{out} = {direct}({', '.join(args)})")
            else:
                lines.append(f"{ind}{out} = _call({node['value']!r}, [{', '.join(args)}])")
        elif kind in ("multi_select_dict", "multi_select_list"):
            lines.append(f"{ind}if {src} is None:")
            lines.append(f"{ind}    {out} = None")
            lines.append(f"{ind}else:")
            parts = []
            for child in children:
                temp = self.fresh()
                if kind == "multi_select_dict":
                    self.emit(child["children"][0], src, temp, lines, ind + "    ")
                    parts.append(f"{child['value']!r}: {temp}")
                else:
                    self.emit(child, src, temp, lines, ind + "    ")
                    parts.append(temp)
            joined = ", ".join(parts)
            value = f"{{{joined}}}" if kind == "multi_select_dict" else f"[{joined}]"
            lines.append(f"{ind}    {out} = {value}")
        elif kind == "flatten":
            temp = self.fresh()
            self.emit(children[0], src, temp, lines, ind)
            lines.append(f"{ind}{out} = _flatten({temp})")
        elif kind == "projection":
            element, item = self.projection_head(children[0], src, out, lines, ind)
            self.emit(children[1], element, item, lines, ind + "        ")
            lines.append(f"{ind}        if {item} is not None:")
            lines.append(f"{ind}            {out}.append({item})")
            lines.append(f"{ind}else:")
            lines.append(f"{ind}    {out} = None")
        elif kind == "index" and isinstance(node["value"], int):
            index = node["value"]
            lines.append(
                f"{ind}{out} = {src}[{index}] if isinstance({src}, list) "
                f"and -len({src}) <= {index} < len({src}) else None"
            )
        else:
            raise _Unsupported(kind)


@dataclass(frozen=True, eq=False)
class Expression:
    """One compiled JMESPath expression; ``search(event)`` equals jmespath's result."""

    source: str
    parsed: dict[str, Any] = field(repr=False)
    functions: MappingFunctions = field(repr=False)
    #: the fast-path terms (paths and literals joined by ``||``), or None
    terms: tuple[Term, ...] | None = field(repr=False)
    search: Callable[[Any], Any] = field(repr=False)
    #: generated ``_prune(search(e))`` (what a mapping keeps), or None
    search_pruned: Callable[[Any], Any] | None = field(default=None, repr=False)

    @property
    def is_constant(self) -> bool:
        return self.terms is not None and len(self.terms) == 1 and self.terms[0][0] == "literal"

    @property
    def constant(self) -> Any:
        """The value of a constant expression (``'AddToCart'``); None otherwise."""
        return self.terms[0][1] if self.terms is not None and self.is_constant else None

    def search_slow(self, event: Any) -> Any:
        """Always jmespath's interpreter (the reference the fast paths are tested against)."""
        return self.functions.interpreter.visit(self.parsed, event)


def parse_error_column(exc: Exception) -> int | None:
    """0-based position in the expression a jmespath parse/lex error points at."""
    for attr in ("lex_position", "lexer_position"):
        pos = getattr(exc, attr, None)
        if isinstance(pos, int):
            return pos
    return None


def _error_text(exc: Exception) -> str:
    if isinstance(exc, jmespath_exceptions.ParseError):
        token = exc.token_value
        if exc.token_type == "eof":
            return "expression ends too early"
        return f"unexpected {token!r}" + (
            f": {exc.msg}" if exc.msg and "Invalid" not in exc.msg else ""
        )
    if isinstance(exc, jmespath_exceptions.LexerError):
        return f"cannot read {exc.lexer_value!r}: {exc.message}"
    return str(exc).splitlines()[0]


def compile_expression(
    text: Any,
    functions: MappingFunctions,
    *,
    field: str | None = None,
    source: str | None = None,
) -> Expression:
    """Compile once; raise MappingError naming the source, field and expression."""
    if not isinstance(text, str):
        raise MappingError(
            f"an expression must be a string, got {type(text).__name__}",
            field=field,
            expression=repr(text),
            source=source,
        )
    if not text.strip():
        raise MappingError("empty expression", field=field, expression=text, source=source)
    try:
        parsed = jmespath.compile(text).parsed
    except jmespath_exceptions.JMESPathError as exc:
        column = parse_error_column(exc)
        where = f" at position {column + 1}" if column is not None else ""
        error = MappingError(
            f"invalid JMESPath{where}: {_error_text(exc)}",
            field=field,
            expression=text,
            source=source,
        )
        error.position = column  # type: ignore[attr-defined]
        raise error from None
    for name, count in _function_calls(parsed):
        problem = functions.check_call(name, count)
        if problem:
            raise MappingError(problem, field=field, expression=text, source=source)
    terms = _terms_of(parsed)
    search: Callable[[Any], Any]
    pruned = None
    if terms is not None:
        names: dict[str, Any] = {}
        body = [*_chain_code(terms, names, "v", "    "), "    return v"]
        search = _compile_function("search", body, names)
    else:
        try:
            search = _Codegen(functions).compile(parsed)
            pruned = _Codegen(functions).compile_pruned(parsed)
        except _Unsupported:
            interpreter, tree = functions.interpreter, parsed

            def search(event: Any) -> Any:
                return interpreter.visit(tree, event)

    return Expression(
        text, parsed, functions, tuple(terms) if terms is not None else None, search, pruned
    )


# --------------------------------------------------------------------------
# Whole mappings


def _prune(value: Any) -> Any:
    """Drop nulls inside objects/arrays, and objects/arrays left empty; new containers."""
    if type(value) is dict:
        kept = {}
        for k, v in value.items():
            if type(v) is dict or type(v) is list:
                v = _prune(v)
            if v is not None:
                kept[k] = v
        return kept or None
    if type(value) is list:
        items = []
        for v in value:
            if type(v) is dict or type(v) is list:
                v = _prune(v)
            if v is not None:
                items.append(v)
        return items or None
    return value


class _FieldFailure:
    """Turns a jmespath error raised while mapping one field into its PayloadError."""

    __slots__ = ("expression", "name")

    def __init__(self, name: str, expression: Expression) -> None:
        self.name = name
        self.expression = expression

    def __call__(self, exc: jmespath_exceptions.JMESPathError, event: Any) -> PayloadError:
        return PayloadError(
            f"mapping expression {self.expression.source!r} failed: {_failure(exc)}",
            field=self.name,
            event_id=_event_id(event),
        )


def _failure(exc: Exception) -> str:
    """Why evaluation failed, never quoting the value (it may be an email or phone)."""
    if isinstance(exc, jmespath_exceptions.JMESPathTypeError):
        expected = " or ".join(exc.expected_types)
        return f"{exc.function_name}() expects {expected}, got {exc.actual_type}"
    if isinstance(exc, jmespath_exceptions.ArityError | jmespath_exceptions.UnknownFunctionError):
        return str(exc).splitlines()[0]
    return type(exc).__name__


def _event_id(event: Any) -> str | None:
    if isinstance(event, dict):
        message_id = event.get("messageId")
        if isinstance(message_id, str | int) and not isinstance(message_id, bool):
            return str(message_id)
    return None


def _base_names() -> dict[str, Any]:
    return {
        "_prune": _prune,
        "_Lookup": _Lookup,
        "_NO_KEYS": _NO_KEYS,
        "_JMESPathError": jmespath_exceptions.JMESPathError,
    }


class CompiledMapping:
    """A whole mapping (field → expression) compiled into one Python function.

    Calling it returns the payload: a new dict holding every field whose value
    is not null; nulls inside objects and arrays are dropped too, so a product
    without a brand yields no ``brand`` key rather than ``"brand": null``.
    The function is generated on the first call: the pipeline calls the
    checked variant (:meth:`compile_checked`) instead, and generating both
    for every preset was a tenth of a start-up.
    """

    def __init__(self, expressions: Mapping[str, Expression], *, source: str | None = None) -> None:
        self.expressions = dict(expressions)
        self.source = source
        self._function: Callable[[Any], dict[str, Any]] | None = None

    @property
    def _apply(self) -> Callable[[Any], dict[str, Any]]:
        if self._function is None:
            names = _base_names()
            self._function = _compile_function("apply_mapping", self._body(names), names)
        return self._function

    def compile_checked(
        self,
        checks: Mapping[str, Callable[[Any], bool] | frozenset[type] | None],
        required: Sequence[str] = (),
        strings_pass: Collection[str] = (),
    ) -> Callable[[Any], tuple[dict[str, Any], bool]]:
        """A variant returning ``(payload, ok)``: ok only if every field passed its check.

        ``checks[name]`` is a predicate, or the exact types allowed, for the
        value mapped into ``name`` (absent or None: anything goes); ``required``
        fields must be present. Checking each value where it is produced saves
        a second walk over the payload (the pipeline's schema check,
        schemacheck.FieldChecks); False means "not sure", as there.
        ``strings_pass`` names fields whose check every ``str`` passes
        (schemacheck.accepts_every_string): a string there, the commonest value,
        is not tested at all.
        """
        names = _base_names()
        tests: dict[str, str] = {}
        untested_strings = set(strings_pass)
        for index, (name, expression) in enumerate(self.expressions.items()):
            check = checks.get(name)
            if check is not None and expression.is_constant:
                # A constant ('AddToCart') is checked once, here, not once per event.
                value = expression.constant
                if type(value) is dict or type(value) is list:
                    value = _prune(value)
                if value is None:
                    continue  # never in the payload
                passed = type(value) in check if isinstance(check, frozenset) else check(value)
                if not passed:
                    tests[name] = "True"
                continue
            if isinstance(check, frozenset):
                names[f"_t{index}"] = check
                tests[name] = f"type(v) not in _t{index}"
                if str in check:
                    untested_strings.add(name)
            elif check is not None:
                names[f"_f{index}"] = check
                tests[name] = f"not _f{index}(v)"
        body = self._body(names, tests, untested_strings)
        present = " and ".join(f"{name!r} in out" for name in required)
        body[-1] = f"    return out, ok and {present}" if present else "    return out, ok"
        function: Callable[[Any], tuple[dict[str, Any], bool]] = _compile_function(
            "apply_checked", ["    ok = True", *body], names
        )
        return function

    def _body(
        self,
        names: dict[str, Any],
        tests: Mapping[str, str] | None = None,
        untested_strings: Collection[str] = (),
    ) -> list[str]:
        """The generated function's lines (constants go into ``names``).

        ``tests`` (field → condition under which its value fails) clear ``ok``;
        a ``str`` mapped into a field of ``untested_strings`` skips its test.
        """
        # The event and every hoisted prefix get a twin ("q…") whose .get is
        # jmespath's field look-up: the value itself when it is a dict (nearly
        # always), else _NO_KEYS for null or a _Lookup. Each field then costs one
        # .get instead of a type test and a conditional per look-up.
        twin = "{q} = {p} if type({p}) is dict else _NO_KEYS if {p} is None else _Lookup({p})"
        body = ["    out = {}", "    " + twin.format(q="qe", p="e")]
        hoisted: dict[tuple[str, ...], str] = {}
        direct = {"e": "qe"}
        for prefix in _shared_prefixes(self.expressions.values()):
            local = f"p{len(hoisted)}"
            body.extend(_term_code(("path", prefix), names, local, "    ", hoisted, direct))
            body.append("    " + twin.format(q=f"q{len(hoisted)}", p=local))
            direct[local] = f"q{len(hoisted)}"
            hoisted[prefix] = local
        for index, (name, expression) in enumerate(self.expressions.items()):
            test = (tests or {}).get(name)
            if expression.is_constant:
                # Known now: pruned once, and written (or not) without any test.
                value = expression.constant
                if type(value) is dict or type(value) is list:
                    value = _prune(value)
                if value is not None:
                    names[f"_k{index}"] = value
                    body.append(f"    out[{name!r}] = _k{index}")
                    if test:  # compile_checked found that the constant fails its check
                        body.append("    ok = False")
                continue
            if expression.terms is not None:
                body.extend(
                    _chain_code(list(expression.terms), names, "v", "    ", hoisted, direct)
                )
            else:
                # Called in place, not through a wrapper (one call less per event);
                # a jmespath error still becomes the field's PayloadError.
                pruned = expression.search_pruned
                names[f"_s{index}"] = pruned or expression.search
                names[f"_x{index}"] = _FieldFailure(name, expression)
                body.append("    try:")
                body.append(f"        v = _s{index}(e)")
                body.append("    except _JMESPathError as exc:")
                body.append(f"        raise _x{index}(exc, e) from None")
                if pruned is not None:  # the value is final: no _prune, no container test
                    body.append("    if v is not None:")
                    body.append(f"        out[{name!r}] = v")
                    if test and name not in untested_strings:
                        body.append(f"        if {test}: ok = False")
                    elif test:
                        body.append(f"        if type(v) is not str and {test}: ok = False")
                    continue
            # null first: it is the commonest value, and needs no pruning; then
            # a string (the next commonest), which needs no pruning either
            body.append("    if v is not None:")
            body.append("        if type(v) is str:")
            body.append(f"            out[{name!r}] = v")
            if test and name not in untested_strings:
                body.append(f"            if {test}: ok = False")
            body.append("        elif type(v) is dict or type(v) is list:")
            body.append("            v = _prune(v)")
            body.append("            if v is not None:")
            body.append(f"                out[{name!r}] = v")
            if test:
                body.append(f"                if {test}: ok = False")
            body.append("        else:")
            body.append(f"            out[{name!r}] = v")
            if test:
                body.append(f"            if {test}: ok = False")
        body.append("    return out")
        return body

    def __call__(self, event: Any) -> dict[str, Any]:
        return (self._function or self._apply)(event)

    def apply(self, event: Any) -> dict[str, Any]:
        """Map one event to a payload (see the class docstring)."""
        return self(event)

    def apply_slow(self, event: Any) -> dict[str, Any]:
        """The same through jmespath's interpreter only (reference for tests)."""
        out = {}
        for name, expression in self.expressions.items():
            value = expression.search_slow(event)
            if type(value) is dict or type(value) is list:
                value = _prune(value)
            if value is not None:
                out[name] = value
        return out

    def __repr__(self) -> str:
        return f"CompiledMapping({len(self.expressions)} fields, source={self.source!r})"


def compile_mapping(
    fields: Mapping[str, Any], functions: MappingFunctions, *, source: str | None = None
) -> CompiledMapping:
    """Compile every field; raise MappingError for the first bad one (lint lists all)."""
    return CompiledMapping(
        {
            name: compile_expression(text, functions, field=name, source=source)
            for name, text in fields.items()
        },
        source=source,
    )


# --------------------------------------------------------------------------
# The built-in functions (registered through the hook, like any plugin's)


def fn_coalesce(*values: Any) -> Any:
    """The first argument that is not null (``false``, ``0`` and ``""`` count)."""
    for value in values:
        if value is not None:
            return value
    return None


def fn_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def fn_upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def fn_trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def fn_to_string(value: Any) -> Any:
    """JMESPath's to_string, except that null stays null (never the text "null")."""
    if value is None or isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)  # what json.dumps writes, without its overhead
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def fn_to_number(value: Any) -> Any:
    """A number from a number or numeric string; null for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


#: Numbers at or above this are read as Unix milliseconds (year 5138 in seconds).
_MILLIS_THRESHOLD = 100_000_000_000


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 (no zone = UTC), Unix seconds or milliseconds; None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        number = fn_to_number(text)
        if number is None:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        value = number
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) >= _MILLIS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def fn_epoch_seconds(value: Any) -> int | None:
    moment = parse_timestamp(value)
    return None if moment is None else math.floor(moment.timestamp())


def fn_epoch_millis(value: Any) -> int | None:
    moment = parse_timestamp(value)
    return None if moment is None else math.floor(moment.timestamp() * 1000)


def fn_iso_timestamp(value: Any) -> str | None:
    moment = parse_timestamp(value)
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fn_url_param(url: Any, name: Any) -> str | None:
    """The first non-empty value of query parameter ``name`` in ``url``."""
    if not isinstance(url, str) or not isinstance(name, str):
        return None
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for value in parse_qs(query, keep_blank_values=False).get(name, ()):
        if value:
            return value
    return None


def fn_cookie(cookies: Any, name: Any) -> str | None:
    """A cookie's value from a ``Cookie`` header string or an object of cookies."""
    if not isinstance(name, str):
        return None
    if isinstance(cookies, dict):
        value = cookies.get(name)
        return value if isinstance(value, str) and value else None
    if not isinstance(cookies, str):
        return None
    for part in cookies.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def fn_sha256(value: Any) -> str | None:
    """Lowercase hex SHA-256 of the UTF-8 text (non-strings via to_string); null stays null."""
    text = fn_to_string(value)
    if text is None:
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _spec(*types: str) -> dict[str, Any]:
    return {"types": list(types)}


BUILTIN_FUNCTIONS: dict[str, tuple[Callable[..., Any], list[dict[str, Any]]]] = {
    "coalesce": (fn_coalesce, [{"types": [], "variadic": True}]),
    "lower": (fn_lower, [ANY]),
    "upper": (fn_upper, [ANY]),
    "trim": (fn_trim, [ANY]),
    "to_string": (fn_to_string, [ANY]),
    "to_number": (fn_to_number, [ANY]),
    "epoch_seconds": (fn_epoch_seconds, [ANY]),
    "epoch_millis": (fn_epoch_millis, [ANY]),
    "iso_timestamp": (fn_iso_timestamp, [ANY]),
    "url_param": (fn_url_param, [ANY, ANY]),
    "cookie": (fn_cookie, [ANY, ANY]),
    "sha256": (fn_sha256, [ANY]),
}


@hookimpl
def register_mapping_functions(register: Any) -> None:
    for name, (function, signature) in BUILTIN_FUNCTIONS.items():
        register(name, function, signature)
