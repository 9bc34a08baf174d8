"""A fast yes/no JSON Schema check for payloads, with jsonschema kept as the judge.

``jsonschema`` takes 100–200 µs to validate one TikTok payload (it builds a
validator object per keyword and per property), several times what the
rest of an event costs. Nearly every payload is valid, and for a valid one the only
thing the pipeline needs to know is *that* it is valid. So a schema is
compiled once into a predicate that answers "certainly valid" or "not sure";
only "not sure" runs jsonschema, whose verdict and error message are used
unchanged. The predicate therefore never decides that a payload is invalid:
a wrong "not sure" costs time, a wrong "valid" would let a bad payload
through, and a hypothesis test checks that it never says "valid" when
jsonschema does not agree.

It understands the keywords the payload schemas use (``type``, ``enum``,
``const``, ``pattern``, ``minLength``, ``maxLength``, ``anyOf``, ``items``,
``properties``, ``required``, ``additionalProperties``) and those of the
framework's own file schemas (``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``minProperties``, ``propertyNames``, and ``$ref`` to a
place in the same schema such as ``#/$defs/preset``), and is strict about
Python types (``type(x) is str``, not subclasses; integral floats are
"not sure" for ``integer``), while applying ``pattern``, ``items`` and
``properties`` to exactly the instances jsonschema applies them to. A
schema with any other keyword gets no predicate, and the pipeline validates
every payload with jsonschema as before.

The same holds for preset, mapping, configuration and settings files: a
file the check vouches for has no schema problem, so loading valid files
does not even import jsonschema (a noticeable part of a command's start-up);
only a file it is not sure of is validated by jsonschema, for the messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .codecache import compile_source

__all__ = [
    "Check",
    "FieldCheck",
    "FieldChecks",
    "accepts_every_string",
    "compile_check",
    "compile_field_checks",
]

Check = Callable[[Any], bool]
#: A property's check: a predicate, or the exact Python types it allows (tested inline).
FieldCheck = Check | frozenset[type]

#: Keywords that never change whether an instance is valid (``$defs`` only holds
#: subschemas for ``$ref``; a ``$id`` below the root is refused by ``_Codegen.resolve``).
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


class _Unsupported(Exception):
    """The schema uses something this module does not mirror exactly."""


#: Bounds on numbers: keyword -> the comparison a valid number passes.
_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
#: The types jsonschema does not count as numbers: bounds do not apply to them.
_NOT_NUMBERS = frozenset({str, bool, type(None), list, dict})

_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "anyOf",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "minProperties",
        "propertyNames",
        "$ref",
        *_BOUNDS,
    }
)


def _types(value: Any) -> frozenset[type]:
    names = value if isinstance(value, list) else [value]
    out: set[type] = set()
    for name in names:
        if name not in _TYPES:
            raise _Unsupported(f"type {name!r}")
        out.update(_TYPES[name])
    return frozenset(out)


class _Codegen:
    """Builds one Python boolean expression per schema, like triggers.py and mapping.py.

    Generated code rather than nested closures: a closure call per keyword
    per field cost more than the rest of the check (≈10 µs per payload).
    """

    def __init__(self, root: Any = None) -> None:
        self.names: dict[str, Any] = {}
        #: the schema being compiled: what a ``$ref`` like ``#/$defs/x`` points into
        self.root = root
        self.following: set[str] = set()

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def function(self, source: str) -> Check:
        namespace = dict(self.names)
        exec(compile_source(source, "<schema check>"), namespace)
        check: Check = namespace["check"]
        return check

    def check(self, schema: Any) -> Check:
        """One predicate for ``schema``: an object schema's own function, else a compiled expr."""
        if _is_plain_object(schema):
            return self.object(schema, exact=True)
        return self.function(f"def check(x):\n    return {self.expr(schema, 'x')}\n")

    def expr(self, schema: Any, x: str) -> str:
        """Source of an expression true only when the value in ``x`` is valid."""
        if schema is True:
            return "True"
        if schema is False:
            return "False"
        if not isinstance(schema, Mapping):
            raise _Unsupported(type(schema).__name__)
        unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
        if unknown:
            raise _Unsupported(", ".join(sorted(unknown)))
        parts: list[str] = []
        allowed = _types(schema["type"]) if "type" in schema else None
        is_object = _OBJECT_KEYWORDS & set(schema)
        if _is_plain_object(schema):
            # "an object with these properties": one function, its own type test first
            return f"{self.const(self.object(schema, exact=True))}({x})"
        if allowed is not None:
            if len(allowed) == 1:
                parts.append(f"type({x}) is {self.const(next(iter(allowed)))}")
            else:
                parts.append(f"type({x}) in {self.const(allowed)}")
        if "enum" in schema or "const" in schema:
            options = schema["enum"] if "enum" in schema else [schema["const"]]
            if not all(type(option) is str for option in options):
                raise _Unsupported("enum of non-strings")  # jsonschema's equality is subtler
            parts.append(f"(type({x}) is str and {x} in {self.const(frozenset(options))})")
        on_strings: list[str] = []
        if "pattern" in schema:
            # jsonschema applies it with re.search too
            search = self.const(re.compile(schema["pattern"]).search)
            on_strings.append(f"{search}({x}) is not None")
        if "minLength" in schema:
            on_strings.append(f"len({x}) >= {int(schema['minLength'])}")
        if "maxLength" in schema:
            on_strings.append(f"len({x}) <= {int(schema['maxLength'])}")
        if on_strings:
            if allowed == {str}:  # already known to be a str
                parts.extend(on_strings)
            else:  # the keywords constrain strings only (str subclasses included)
                parts.append(f"(not isinstance({x}, str) or ({' and '.join(on_strings)}))")
        if "anyOf" in schema:
            branches = [self.expr(branch, x) for branch in schema["anyOf"]]
            parts.append("(" + (" or ".join(branches) or "False") + ")")
        on_numbers = [
            f"{x} {operator} {self.const(_bound(schema, keyword))}"
            for keyword, operator in _BOUNDS.items()
            if keyword in schema
        ]
        if on_numbers:
            if allowed is not None and allowed <= {int, float}:  # already known to be one
                parts.extend(on_numbers)
            else:  # bounds constrain numbers only; a type of unknown kind is "not sure"
                numeric = f"(type({x}) in {self.const(frozenset({int, float}))} and "
                parts.append(
                    f"({numeric}{' and '.join(on_numbers)}) "
                    f"or type({x}) in {self.const(_NOT_NUMBERS)})"
                )
        if "items" in schema:
            # one function per item, called by map() without a generator frame
            every = f"all(map({self.const(self.check(schema['items']))}, {x}))"
            parts.append(every if allowed == {list} else f"(not isinstance({x}, list) or {every})")
        on_objects: list[str] = []
        if "minProperties" in schema:
            on_objects.append(f"len({x}) >= {_count(schema['minProperties'])}")
        if "propertyNames" in schema:
            # keys are what propertyNames validates (jsonschema iterates the object)
            on_objects.append(f"all(map({self.const(self.check(schema['propertyNames']))}, {x}))")
        if on_objects:
            if allowed == {dict}:
                parts.extend(on_objects)
            else:
                parts.append(f"(not isinstance({x}, dict) or ({' and '.join(on_objects)}))")
        if is_object:
            parts.append(f"{self.const(self.object(schema))}({x})")
        if "$ref" in schema:  # applies beside the other keywords (2020-12)
            ref = schema["$ref"]
            if ref in self.following:
                raise _Unsupported("recursive $ref")
            self.following.add(ref)
            try:
                parts.append(f"({self.expr(self.resolve(ref), x)})")
            finally:
                self.following.discard(ref)
        return " and ".join(parts) or "True"

    def resolve(self, ref: Any) -> Any:
        """The subschema a ``$ref`` to a place in the root schema (``#/$defs/x``) points at.

        Anything else (another document, an anchor, a root with a ``$id`` below
        it, which would change what ``#`` means) is beyond this module.
        """
        if not isinstance(ref, str) or not ref.startswith("#") or "%" in ref:
            raise _Unsupported(f"$ref {ref!r}")
        if self.root is None or _nested_ids(self.root):
            raise _Unsupported(f"$ref {ref!r} outside a plain root schema")
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise _Unsupported(f"$ref {ref!r}")
        target = self.root
        for token in pointer.split("/")[1:] if pointer else ():
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise _Unsupported(f"$ref {ref!r} points nowhere")
        return target

    def field(self, schema: Any) -> FieldCheck:
        """A property's check: its types when that is all it says, else a predicate."""
        if isinstance(schema, Mapping) and set(schema) - _ANNOTATIONS == {"type"}:
            return _types(schema["type"])
        return self.check(schema)

    def object(self, schema: Mapping[str, Any], exact: bool = False) -> Check:
        """One function per object schema: required keys, then one loop over the keys present.

        Each key costs one look-up of the types that pass its property outright
        (``_quick_types``: an int ``price``, a str ``content_name``); only a
        value of another type calls the property's predicate. ``exact``: the
        schema also says ``"type": "object"``, tested here first (``type(v) is
        dict``, strict like every type test of this module).
        """
        properties = schema.get("properties", {})
        required = tuple(schema.get("required", ()))
        extra = schema.get("additionalProperties", True)
        quick: dict[str, frozenset[type]] = {}
        slow: dict[str, Check] = {}
        for name, sub in properties.items():
            quick[name] = _quick_types(sub)
            if not (isinstance(sub, Mapping) and set(sub) - _ANNOTATIONS == {"type"}):
                slow[name] = self.check(sub)
        lines = [
            "def check(v):",
            "    if type(v) is not dict: return False"
            if exact
            else "    if not isinstance(v, dict): return True",  # only "type" constrains others
            *(f"    if {name!r} not in v: return False" for name in required),
            f"    q = {self.const(quick)}",
            f"    s = {self.const(slow)}",
        ]
        on_type = [
            "        if type(x) not in a:",
            "            f = s.get(k)",
            "            if f is None or not f(x): return False",
        ]
        if extra is False:
            lines += [
                "    try:",
                "        for k, x in v.items():",
                "            a = q[k]",
                *("    " + line for line in on_type),
                "    except KeyError:",  # a key the schema does not list
                "        return False",
            ]
        else:
            if extra is True:
                on_extra = "continue"
            else:
                extra_check = self.check(extra)
                on_extra = (
                    f"if not {self.const(extra_check)}(x): return False\n            continue"
                )
            lines += [
                "    for k, x in v.items():",
                "        a = q.get(k)",
                "        if a is None:",
                f"            {on_extra}",
                *on_type,
            ]
        lines.append("    return True")
        return self.function("\n".join(lines) + "\n")


_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})
#: Keywords ``_Codegen.object`` does not apply: a schema with one is not a plain object.
_NOT_PLAIN = frozenset(
    {"enum", "const", "anyOf", "items", "minProperties", "propertyNames", "$ref", *_BOUNDS}
)


def _bound(schema: Mapping[str, Any], keyword: str) -> int | float:
    value = schema[keyword]
    if type(value) not in (int, float):
        raise _Unsupported(f"{keyword} {value!r}")
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise _Unsupported(f"count {value!r}")
    return value


def _nested_ids(root: Any) -> bool:
    """Whether a subschema below ``root`` has a ``$id`` (it would rebase ``#`` refs)."""
    stack = list(root.values()) if isinstance(root, Mapping) else []
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            if "$id" in value:
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _is_plain_object(schema: Any) -> bool:
    """An object schema (``"type": "object"`` and properties) that needs nothing else."""
    if not isinstance(schema, Mapping) or "type" not in schema:
        return False
    keys = set(schema)
    if keys - _ANNOTATIONS - _KEYWORDS:
        return False  # a keyword this module does not mirror: expr() refuses it
    if not _OBJECT_KEYWORDS & keys or _NOT_PLAIN & keys:
        return False
    try:
        return _types(schema["type"]) == {dict}
    except _Unsupported:
        return False


def _quick_types(schema: Any) -> frozenset[type]:
    """Types every value of which ``schema`` accepts, whatever the value (may be empty).

    ``{"type": "number"}`` → int and float; an ``anyOf`` → the union over its
    branches; a schema with any other keyword → none (its predicate decides).
    """
    if not isinstance(schema, Mapping):
        return frozenset()
    keys = set(schema) - _ANNOTATIONS
    if keys == {"type"}:
        return _types(schema["type"])
    if keys == {"anyOf"} and isinstance(schema["anyOf"], list):
        return frozenset().union(*map(_quick_types, schema["anyOf"]))
    return frozenset()


def accepts_every_string(schema: Any) -> bool:
    """True only if ``schema`` accepts every ``str`` whatever its text (False: not sure).

    Most mapped values are strings, and most properties allow any string
    (``{"type": "string"}``, or an ``anyOf`` with such a branch): for those the
    mapping skips the test of a string value altogether.
    """
    if schema is True:
        return True
    if not isinstance(schema, Mapping) or set(schema) - _ANNOTATIONS - {"type", "anyOf"}:
        return False
    if "type" in schema:
        try:
            if str not in _types(schema["type"]):
                return False
        except _Unsupported:
            return False
    if "anyOf" in schema:
        branches = schema["anyOf"]
        if not isinstance(branches, list) or not any(map(accepts_every_string, branches)):
            return False
    return True


@dataclass(frozen=True)
class FieldChecks:
    """An object schema cut into one check per property, to run as each field is mapped.

    A mapping knows which field it is producing, so checking the value right
    there (``mapping.CompiledMapping.compile_checked``) saves walking the
    finished payload again. Together the parts are exactly the object check
    ``compile_check`` builds: ``fields[name]`` for a listed property,
    ``other`` for any other name (None: anything goes), and ``required``.
    """

    fields: Mapping[str, FieldCheck]
    other: FieldCheck | None
    required: tuple[str, ...]
    #: the listed properties every string passes (accepts_every_string)
    strings: frozenset[str] = frozenset()
    #: whether every string passes ``other``
    other_strings: bool = False

    def of(self, name: str) -> FieldCheck | None:
        """The check for property ``name`` (None: every value is allowed)."""
        return self.fields.get(name, self.other)

    def accepts_strings(self, name: str) -> bool:
        """Whether every ``str`` value passes the check of property ``name``."""
        return name in self.strings if name in self.fields else self.other_strings


def compile_field_checks(schema: Mapping[str, Any]) -> FieldChecks | None:
    """``schema`` as FieldChecks, if it is a plain object schema this module mirrors; else None."""
    if not isinstance(schema, Mapping) or set(schema) - _ANNOTATIONS - {
        "type",
        "properties",
        "required",
        "additionalProperties",
    }:
        return None
    if schema.get("type", "object") != "object":
        return None
    codegen = _Codegen(schema)
    try:
        fields: dict[str, FieldCheck] = {}
        properties = schema.get("properties", {})
        for name, sub in properties.items():
            fields[name] = codegen.field(sub)
        extra = schema.get("additionalProperties", True)
        other = None if extra is True else codegen.field(extra)
    except _Unsupported:
        return None
    return FieldChecks(
        fields,
        other,
        tuple(schema.get("required", ())),
        frozenset(name for name, sub in properties.items() if accepts_every_string(sub)),
        accepts_every_string(extra),
    )


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """A predicate true only for instances ``schema`` accepts; None if the schema is beyond it.

    False means "not sure": validate with jsonschema to know, and to say why.
    """
    codegen = _Codegen(schema)
    try:
        source = f"def check(x):\n    return {codegen.expr(schema, 'x')}\n"
    except _Unsupported:
        return None
    return codegen.function(source)
