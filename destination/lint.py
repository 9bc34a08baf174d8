"""``destination lint``: every problem in preset and mapping files, at its line and column.

Users keep presets and mappings in their own repositories and run lint in
CI, so it must find everything that would stop (or silently mislead) the
pipeline, all in one run, and point at the exact spot: YAML syntax, schema
violations, triggers and expressions that do not compile, actions and fields
that do not exist, constants that do not fit a field, presets that would send
the same event twice. It is generic: actions, fields, types and enums come
from the plugin registry and each action's ``payload_schema``; custom and
deprecated event names from the action's ``standard_events`` and
``deprecated_events``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MappingError, TriggerSyntaxError
from .mapping import MappingFunctions, compile_expression
from .pipeline import find_action
from .presets import (
    DEFAULT_BUNDLE,
    ConfigFileError,
    MappingFile,
    Preset,
    PresetFile,
    check_document,
    effective_mapping,
    iter_yaml_files,
    layer_mappings,
    layer_presets,
    load_catalog,
    read_document,
    to_config_file,
)
from .schemacheck import FieldChecks, compile_field_checks
from .yamlsource import Document, Problem

__all__ = ["LintReport", "format_json", "format_text", "lint_paths"]


@dataclass
class LintReport:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0


def format_text(report: LintReport) -> str:
    lines = [p.format() for p in report.problems]
    lines.append(
        f"{report.files} file(s) checked: {report.errors} error(s), {report.warnings} warning(s)"
    )
    return "\n".join(lines)


def format_json(report: LintReport) -> str:
    return json.dumps(
        {
            "files": report.files,
            "errors": report.errors,
            "warnings": report.warnings,
            "problems": [p.as_dict() for p in report.problems],
        },
        indent=2,
    )


def _normalise_trigger(text: str) -> str:
    """The canonical text of a trigger, so spacing and redundant parentheses do not count."""
    from .triggers import format_trigger, parse_trigger

    try:
        return format_trigger(parse_trigger(text))
    except TriggerSyntaxError:
        return _squeeze(text)


def _squeeze(text: str) -> str:
    """The trigger without insignificant whitespace (outside string literals)."""
    out: list[str] = []
    quote = False
    escaped = False
    for char in text:
        if quote:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quote = False
        elif char == '"':
            quote = True
            out.append(char)
        elif not char.isspace():
            out.append(char)
        elif out and out[-1] != " ":
            out.append(" ")
    return "".join(out).strip()


class _Linter:
    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.functions = MappingFunctions.from_registry(registry)
        self.problems: list[Problem] = []
        self.validators: dict[str, Any] = {}
        self.field_checks: dict[str, FieldChecks | None] = {}

    # -- fields -------------------------------------------------------------

    def check_fields(
        self, doc: Document, base: tuple[str | int, ...], fields: dict[str, Any], action_name: str
    ) -> None:
        """Each field exists on the action, compiles, and (if constant) fits the schema."""
        action = find_action(self.registry, action_name)
        schema = dict(action.payload_schema) if action is not None else {}
        properties = schema.get("properties") or {}
        for name, text in fields.items():
            path = (*base, name)
            if (
                properties
                and name not in properties
                and schema.get("additionalProperties") is not True
            ):
                self.problems.append(
                    doc.problem(path, f"{action_name} has no field {name!r}", key=True)
                )
            if text is None:
                continue
            try:
                expression = compile_expression(text, self.functions, field=name)
            except MappingError as exc:
                position = getattr(exc, "position", None)
                line, column = (
                    doc.expression_where(path, position)
                    if position is not None
                    else doc.where(path)
                )
                self.problems.append(
                    Problem(doc.source, line, column, "error", f"field {name!r}: {exc.message}")
                )
                continue
            if expression.is_constant and action is not None:
                self.check_constant(doc, path, action_name, schema, name, expression.constant)

    def check_constant(
        self,
        doc: Document,
        path: tuple[str | int, ...],
        action_name: str,
        schema: dict[str, Any],
        name: str,
        value: Any,
    ) -> None:
        if schema and not self.certainly_fits(action_name, schema, name, value):
            validator = self.validators.get(action_name)
            if validator is None:
                import jsonschema

                validator = jsonschema.Draft202012Validator(schema)
                self.validators[action_name] = validator
            for error in validator.iter_errors({name: value}):
                if list(error.absolute_path)[:1] == [name]:
                    self.problems.append(
                        doc.problem(
                            path,
                            f"constant {json.dumps(value)} does not fit field {name!r} "
                            f"of {action_name}: {error.message}",
                        )
                    )
        if name == "event" and isinstance(value, str):
            self.check_event_name(doc, path, action_name, value)

    def certainly_fits(
        self, action_name: str, schema: dict[str, Any], name: str, value: Any
    ) -> bool:
        """Whether the fast check (schemacheck.py) vouches for ``value`` in field ``name``.

        False means "not sure": jsonschema decides, and words the message.
        """
        if action_name not in self.field_checks:
            self.field_checks[action_name] = compile_field_checks(schema)
        fields = self.field_checks[action_name]
        if fields is None:
            return False
        check = fields.of(name)
        if check is None:
            return True
        if isinstance(check, frozenset):
            return type(value) in check
        return check(value)

    def check_event_name(
        self, doc: Document, path: tuple[str | int, ...], action_name: str, event: str
    ) -> None:
        action = find_action(self.registry, action_name)
        deprecated = dict(action.deprecated_events) if action is not None else {}
        standard = set(action.standard_events) if action is not None else set()
        if event in deprecated:
            self.problems.append(
                doc.problem(
                    path,
                    f"event {event!r} is deprecated for {action_name}: {deprecated[event]}",
                    "warning",
                )
            )
        elif standard and event not in standard:
            self.problems.append(
                doc.problem(
                    path,
                    f"event {event!r} is a custom event name, not a standard one of "
                    f"{action_name} (it gets no optimisation; names are case-sensitive)",
                    "warning",
                )
            )

    # -- files --------------------------------------------------------------

    def check_mapping_file(self, item: MappingFile) -> None:
        doc = item.document
        assert doc is not None
        if find_action(self.registry, item.action) is None:
            self.problems.append(doc.problem(("action",), f"unknown action {item.action!r}"))
            return
        self.check_fields(doc, ("fields",), item.fields, item.action)

    def check_trigger(self, doc: Document, path: tuple[str | int, ...], text: str) -> None:
        from .triggers import compile_trigger

        try:
            compile_trigger(text)
        except TriggerSyntaxError as exc:
            line, column = doc.expression_where(path, max(exc.column - 1, 0))
            self.problems.append(
                Problem(doc.source, line, column, "error", f"trigger: {exc.message}")
            )

    def check_preset_file(
        self, item: PresetFile, presets: dict[str, Preset], mappings: dict[str, dict[str, str]]
    ) -> None:
        """Check entries, then layer the file over ``presets`` (the layers before it)."""
        doc = item.document
        assert doc is not None
        for entry in item.entries:
            base = ("presets", entry.index)
            values = entry.values
            if "trigger" in values:
                self.check_trigger(doc, (*base, "trigger"), values["trigger"])
            action_name = values.get("action")
            if action_name is None and entry.name in presets:
                action_name = presets[entry.name].action
            if "action" in values and find_action(self.registry, values["action"]) is None:
                self.problems.append(
                    doc.problem((*base, "action"), f"unknown action {values['action']!r}")
                )
                action_name = None
            if action_name is not None and values.get("mapping"):
                self.check_fields(doc, (*base, "mapping"), values["mapping"], action_name)
        layer_presets(presets, item, self.problems)
        for entry in item.entries:
            preset = presets.get(entry.name)
            if preset is None or not preset.enabled:
                continue
            action = find_action(self.registry, preset.action)
            if action is None:
                continue
            required = (action.payload_schema or {}).get("required") or []
            mapped = effective_mapping(mappings.get(preset.action, {}), preset.mapping)
            missing = [name for name in required if name not in mapped]
            if missing:
                self.problems.append(
                    doc.problem(
                        ("presets", entry.index),
                        f"preset {preset.name!r} maps no {', '.join(map(repr, missing))} "
                        f"(required by {preset.action})",
                    )
                )

    def check_duplicates(
        self,
        presets: dict[str, Preset],
        mappings: dict[str, dict[str, str]],
        positions: dict[str, tuple[Document, int]],
    ) -> None:
        """Warn when two enabled presets send the same event for the same trigger."""
        seen: dict[tuple[str, str, str], str] = {}
        for preset in presets.values():
            if not preset.enabled:
                continue
            text = effective_mapping(mappings.get(preset.action, {}), preset.mapping).get("event")
            try:
                event = compile_expression(text, self.functions).constant if text else None
            except MappingError:
                continue
            if not isinstance(event, str):
                continue
            key = (preset.action, event, _normalise_trigger(preset.trigger))
            first = seen.get(key)
            if first is None:
                seen[key] = preset.name
                continue
            where = positions.get(preset.name) or positions.get(first)
            if where is None:
                continue
            doc, index = where
            self.problems.append(
                doc.problem(
                    ("presets", index),
                    f"presets {first!r} and {preset.name!r} both send {event!r} "
                    f"for trigger {preset.trigger!r}: TikTok would receive the event twice",
                    "warning",
                )
            )


def _expand(paths: Iterable[str | os.PathLike[str]], problems: list[Problem]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(Problem(str(path), 1, 1, "error", "no such file or directory"))
            continue
        found = [Path(str(f)) for f in iter_yaml_files(path)]
        if not found:
            problems.append(Problem(str(path), 1, 1, "warning", "no .yaml or .yml files here"))
        files.extend(found)
    return files


def lint_paths(
    paths: Sequence[str | os.PathLike[str]],
    registry: Any = None,
    *,
    bundles: Sequence[str] = (DEFAULT_BUNDLE,),
) -> LintReport:
    """Lint files and folders; every problem at once, sorted by file, line and column.

    Preset files are layered in the order given over the registered
    ``bundles`` (files being linted themselves are skipped there), so an
    override of a built-in preset is checked against the preset it changes.
    """
    if registry is None:
        from .plugins import collect_registry

        registry = collect_registry()
    linter = _Linter(registry)
    files = _expand(paths, linter.problems)
    items: list[MappingFile | PresetFile] = []
    for path in files:
        doc = read_document(path)
        kind = check_document(doc)
        linter.problems.extend(doc.problems)
        if kind is not None:
            items.append(to_config_file(doc, kind, path))

    linted = {os.path.realpath(str(p)) for p in files}
    presets: dict[str, Preset] = {}
    mappings: dict[str, dict[str, str]] = {}
    try:
        catalog = load_catalog(registry)
    except ConfigFileError as exc:
        linter.problems.extend(p for p in exc.problems if os.path.realpath(p.path) not in linted)
        catalog = None
    if catalog is not None:
        for mapping_file in catalog.mapping_files:
            if os.path.realpath(mapping_file.source) not in linted:
                layer_mappings(mappings, mapping_file)
        for name in bundles:
            if name not in catalog.bundles:
                known = ", ".join(sorted(catalog.bundles)) or "none"
                linter.problems.append(
                    Problem(name, 1, 1, "error", f"unknown preset bundle (known: {known})")
                )
            for bundle_file in catalog.bundles.get(name, []):
                if os.path.realpath(bundle_file.source) not in linted:
                    layer_presets(presets, bundle_file, [])
    for item in items:
        if isinstance(item, MappingFile):
            linter.check_mapping_file(item)
            layer_mappings(mappings, item)
    positions: dict[str, tuple[Document, int]] = {}
    for item in items:
        if isinstance(item, PresetFile):
            linter.check_preset_file(item, presets, mappings)
            assert item.document is not None
            for entry in item.entries:
                positions[entry.name] = (item.document, entry.index)
    linter.check_duplicates(presets, mappings, positions)
    problems = sorted(set(linter.problems), key=lambda p: (p.path, p.line, p.column, p.message))
    return LintReport(problems, len(files))
