"""YAML documents that remember where every value came from.

Users write presets and mappings by hand, so every complaint about them must
point at a line and column of their file, and a file with five mistakes must
show five messages, not one traceback. PyYAML's composer keeps a mark on every
node; this module builds plain JSON-like values from the nodes itself so it
can record each value's (and each key's) position, refuse duplicate keys
(PyYAML silently keeps the last), keep dates as strings, and turn syntax
errors, tabs and empty files into :class:`Problem` objects. JSON Schema errors
are mapped back to those positions by :func:`schema_problems`.

Files are read by libyaml (PyYAML's C parser) when it is installed: the
pure-Python reader takes about 2 ms per preset or mapping file, a tenth of a
dry run's start. libyaml's nodes carry the same marks and styles, and only a
file it reads without any problem is taken from it; anything else (a syntax
error, a tab, a duplicate key, a character YAML forbids) is read again by the
pure-Python reader, so every message and position is exactly its own. A
test compares the two on generated documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from .schemacheck import Check, compile_check

__all__ = [
    "Document",
    "Problem",
    "load_schema",
    "parse_yaml",
    "path_label",
    "schema_problems",
]

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One finding, positioned in a file (1-based line and column)."""

    path: str
    line: int
    column: int
    severity: str  # "error" | "warning"
    message: str

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass
class Document:
    """A parsed YAML file: its value, the position of each value and key, its problems."""

    source: str
    value: Any = None
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: for scalars: (quote style or None, whether it spans one line)
    styles: dict[Path_, tuple[str | None, bool]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Position of the value at ``path``, or of its nearest recorded parent."""
        path = tuple(path)
        while path and path not in self.marks:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def key_where(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Position of the key naming ``path`` (falls back to the value's)."""
        path = tuple(path)
        return self.key_marks.get(path) or self.where(path)

    def expression_where(self, path: Sequence[str | int], offset: int) -> tuple[int, int]:
        """Position of character ``offset`` of the string scalar at ``path``."""
        line, column = self.where(path)
        style, single_line = self.styles.get(tuple(path), (None, False))
        if not single_line or style in ("|", ">"):
            return line, column
        return line, column + offset + (1 if style in ("'", '"') else 0)

    def problem(
        self, path: Sequence[str | int], message: str, severity: str = "error", *, key: bool = False
    ) -> Problem:
        line, column = self.key_where(path) if key else self.where(path)
        return Problem(self.source, line, column, severity, message)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: dates stay the strings users typed."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _libyaml_loader() -> Any:
    """libyaml's parser with _Loader's resolvers (dates stay strings); None without libyaml."""
    base = getattr(yaml, "CSafeLoader", None)
    if base is None:  # pragma: no cover - PyYAML built without libyaml
        return None
    return type("_CLoader", (base,), {"yaml_implicit_resolvers": _Loader.yaml_implicit_resolvers})


_CLoader = _libyaml_loader()
#: What PyYAML's pure-Python reader refuses (libyaml's own test may differ).
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


def path_label(path: Iterable[str | int]) -> str:
    """``("presets", 2, "enabled")`` → ``presets[2].enabled``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "the file"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


class _Builder:
    def __init__(self, loader: _Loader, doc: Document) -> None:
        self.loader = loader
        self.doc = doc
        self.active: set[int] = set()

    def mark(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.marks[path] = self.mark(node)
        if id(node) in self.active:
            self.doc.problems.append(
                Problem(self.doc.source, *self.mark(node), "error", "recursive YAML alias")
            )
            return None
        if isinstance(node, yaml.ScalarNode):
            # a plain scalar's style is None from PyYAML, "" from libyaml
            style = node.style or None
            self.doc.styles[path] = (style, node.start_mark.line == node.end_mark.line)
            return self.loader.construct_object(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self.build_mapping(node, path)
        finally:
            self.active.discard(id(node))
        return None  # pragma: no cover - the composer yields only these three kinds

    def build_mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            where = self.mark(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.problems.append(
                    Problem(self.doc.source, *where, "error", "a key must be a plain string")
                )
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.doc.problems.append(
                    Problem(
                        self.doc.source, *where, "error", "YAML merge keys (<<) are not supported"
                    )
                )
                continue
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                self.doc.problems.append(
                    Problem(
                        self.doc.source,
                        *where,
                        "error",
                        f"key {key_node.value!r} is read as a {_json_type(key)}; quote it",
                    )
                )
                key = str(key_node.value)
            if key in result:
                first = self.doc.key_marks.get((*path, key), where)
                self.doc.problems.append(
                    Problem(
                        self.doc.source,
                        *where,
                        "error",
                        f"duplicate key {key!r} (first at line {first[0]})",
                    )
                )
                continue
            self.doc.key_marks[(*path, key)] = where
            result[key] = self.build(value_node, (*path, key))
        return result


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def parse_yaml(text: str, source: str) -> Document:
    """Parse one YAML document; never raises for bad input (see ``Document.problems``)."""
    return _parse_fast(text, source) or _parse_python(text, source)


def _parse_fast(text: str, source: str) -> Document | None:
    """libyaml's reading of a file without a single problem; None for any other file."""
    if _CLoader is None or "\t" in text or _NON_PRINTABLE.search(text):
        return None
    doc = Document(source)
    loader = _CLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:  # empty, or only comments: the pure-Python reader says so
            return None
        doc.value = _Builder(loader, doc).build(node, ())
    except Exception:  # whatever went wrong, _parse_python finds it and words it
        return None
    finally:
        loader.dispose()
    return None if doc.problems else doc


def _parse_python(text: str, source: str) -> Document:
    """PyYAML's pure-Python reading, with every problem at its position."""
    doc = Document(source)
    tab_lines: set[int] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        column = raw.find("\t")
        if column >= 0:
            tab_lines.add(number)
            doc.problems.append(
                Problem(source, number, column + 1, "error", "tab character; indent with spaces")
            )
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        doc.problems.append(Problem(source, 1, 1, "error", "empty file"))
        return doc
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line, column = _offset_position(text, exc.position)
        doc.problems.append(
            Problem(
                source,
                line,
                column,
                "error",
                f"YAML syntax: character #x{exc.character:04x} is not allowed",
            )
        )
        return doc
    try:
        node = loader.get_single_node()
        if node is None:  # pragma: no cover - only comments/blank, handled above
            doc.problems.append(Problem(source, 1, 1, "error", "empty file"))
            return doc
        doc.value = _Builder(loader, doc).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if line not in tab_lines:
            what = exc.problem or "invalid YAML"
            if exc.context and "expected a single document" in exc.context:
                what = "more than one YAML document in the file"
            doc.problems.append(Problem(source, line, column, "error", f"YAML syntax: {what}"))
        doc.value = None
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(source, 1, 1, "error", f"YAML syntax: {exc}"))
        doc.value = None
    finally:
        loader.dispose()
    doc.problems.sort()
    return doc


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``destination/schemas`` (``name`` without ``.json``)."""
    text = (files("destination.schemas") / f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _types_text(types: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string"}
    if isinstance(types, str):
        types = [types]
    return " or ".join(names.get(t, t) for t in types)


#: id(schema) -> (schema, its fast check): the schemas are load_schema's cached dicts.
_CHECKS: dict[int, tuple[Any, Check | None]] = {}


def _fast_check(schema: dict[str, Any]) -> Check | None:
    found = _CHECKS.get(id(schema))
    if found is None or found[0] is not schema:
        found = _CHECKS[id(schema)] = (schema, compile_check(schema))
    return found[1]


def schema_problems(doc: Document, schema: dict[str, Any]) -> list[Problem]:
    """Every JSON Schema violation of ``doc.value``, each at its YAML position.

    A value the fast check vouches for (schemacheck.py) has none; only the
    others are validated by jsonschema, which is imported for them alone.
    """
    check = _fast_check(schema)
    if check is not None and check(doc.value):
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in validator.iter_errors(doc.value):
        path = tuple(error.absolute_path)
        label = path_label(path)
        kind = error.validator
        if kind == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    hint = ", ".join(sorted(allowed))
                    problems.append(
                        doc.problem(
                            (*path, key),
                            f"unknown key {key!r} in {label} (allowed: {hint})",
                            key=True,
                        )
                    )
            continue
        if kind == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            message = f"{label} lacks required key {missing!r}"
        elif kind == "type":
            message = (
                f"{label} must be {_types_text(error.validator_value)}, "
                f"got {_json_type(error.instance)}"
            )
        elif kind == "enum":
            options = ", ".join(json.dumps(v) for v in error.validator_value)
            message = f"{label} must be one of {options}, got {json.dumps(error.instance)}"
        elif kind == "minLength":
            message = f"{label} must not be empty"
        elif kind == "minItems":
            message = f"{label} needs at least {error.validator_value} item(s)"
        elif kind == "minProperties":
            message = f"{label} must not be empty"
        elif kind == "pattern":
            message = f"{label} {json.dumps(error.instance)} does not match {error.validator_value}"
        else:
            message = f"{label}: {error.message}"
        problems.append(doc.problem(path, message))
    return sorted(set(problems))
