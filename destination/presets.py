"""Loading preset bundles and mapping files, and layering users' files over them.

Built-in files and users' files go through one loader so a user file can do
anything a built-in does, and lint checks exactly what runs. Files are found
through the plugin registry (``register_presets`` / ``register_mapping_files``
give folders or files, importlib.resources Traversables for the ones inside
the wheel) plus the paths a user names.

Merge order (docs/presets.md):

1. the registered bundles named in the selection, in the order given
   (``default`` when the selection names none);
2. the user's preset files, in the order given. Each entry whose ``name`` an
   earlier layer defines overrides only the keys it gives — ``mapping``
   field by field, ``enabled: false`` disables — and any other entry adds a
   new preset, which then needs a ``trigger`` and an ``action``;
3. per action, the registered mapping files, then the user's mapping files,
   field by field (``null`` removes a field); then each preset's ``mapping``
   over that.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .yamlsource import Document, Problem, load_schema, parse_yaml, schema_problems

__all__ = [
    "DEFAULT_BUNDLE",
    "ConfigFileError",
    "MappingFile",
    "Preset",
    "PresetConfig",
    "PresetEntry",
    "PresetFile",
    "iter_yaml_files",
    "layer_mappings",
    "layer_presets",
    "load_catalog",
    "read_config_file",
    "resolve_presets",
]

DEFAULT_BUNDLE = "default"
YAML_SUFFIXES = (".yaml", ".yml")
FileRef = Traversable | Path


class ConfigFileError(ConfigurationError):
    """Preset or mapping files are wrong; ``problems`` holds every finding, positioned."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


@dataclass(frozen=True)
class MappingFile:
    """One mapping file: the action it is for and its field expressions."""

    action: str
    fields: dict[str, str | None]
    source: str
    name: str
    description: str = ""
    document: Document | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PresetEntry:
    """One preset as written in a file: only the keys given there."""

    name: str
    values: dict[str, Any]
    index: int
    source: str


@dataclass(frozen=True)
class PresetFile:
    bundle: str
    entries: tuple[PresetEntry, ...]
    source: str
    description: str = ""
    document: Document | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Preset:
    """A preset after layering: when ``trigger`` holds, run ``action`` with its mapping."""

    name: str
    trigger: str
    action: str
    #: overrides over the action's mapping (None removes a field)
    mapping: dict[str, str | None]
    enabled: bool = True
    description: str = ""
    bundle: str = ""
    sources: tuple[str, ...] = ()
    #: the file each ``mapping`` override comes from (for error messages)
    field_sources: dict[str, str] = field(default_factory=dict)


def _display(ref: FileRef) -> str:
    return str(ref)


def iter_yaml_files(ref: FileRef) -> Iterator[FileRef]:
    """``ref`` itself if a file, else every *.yaml/*.yml below it, sorted by name."""
    if ref.is_file():
        yield ref
        return
    if ref.is_dir():
        for child in sorted(ref.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                yield from iter_yaml_files(child)
            elif child.name.endswith(YAML_SUFFIXES):
                yield child


def read_document(ref: FileRef) -> Document:
    """Parse a file; unreadable files become a Document with one problem."""
    source = _display(ref)
    try:
        text = ref.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Document(
            source, problems=[Problem(source, 1, 1, "error", f"not UTF-8 text: {exc.reason}")]
        )
    except OSError as exc:
        return Document(
            source, problems=[Problem(source, 1, 1, "error", f"cannot read: {exc.strerror or exc}")]
        )
    return parse_yaml(text, source)


def file_kind(value: Any) -> str | None:
    """ "presets", "mapping" or None, from the top-level keys."""
    if not isinstance(value, dict):
        return None
    if "presets" in value or "bundle" in value:
        return "presets"
    if "fields" in value or "action" in value:
        return "mapping"
    return None


def check_document(doc: Document) -> str | None:
    """Add schema problems to ``doc``; return its kind if it is usable."""
    if doc.value is None and doc.problems:
        return None
    kind = file_kind(doc.value)
    if kind is None:
        doc.problems.append(
            doc.problem(
                (),
                "not a preset file (keys: bundle, presets) or a mapping file (keys: action, fields)",
            )
        )
        return None
    schema = load_schema("preset_file" if kind == "presets" else "mapping_file")
    found = schema_problems(doc, schema)
    doc.problems.extend(found)
    doc.problems.sort()
    # YAML-level problems (a duplicate key, a tab) still leave a usable value,
    # so lint goes on checking it; read_config_file refuses any error.
    return None if any(p.severity == "error" for p in found) else kind


def _mapping_name(ref: FileRef) -> str:
    stem = ref.name.rsplit(".", 1)[0]
    parent = Path(str(ref)).parent.name
    return f"{parent}/{stem}" if parent else stem


def to_config_file(doc: Document, kind: str, ref: FileRef) -> MappingFile | PresetFile:
    value = doc.value
    if kind == "mapping":
        return MappingFile(
            action=value["action"],
            fields=dict(value["fields"]),
            source=doc.source,
            name=_mapping_name(ref),
            description=value.get("description", ""),
            document=doc,
        )
    entries = tuple(
        PresetEntry(entry["name"], dict(entry), index, doc.source)
        for index, entry in enumerate(value["presets"])
    )
    return PresetFile(value["bundle"], entries, doc.source, value.get("description", ""), doc)


def read_config_file(ref: FileRef) -> MappingFile | PresetFile:
    """Read one preset or mapping file; raise ConfigFileError listing every problem."""
    doc = read_document(ref)
    kind = check_document(doc)
    if kind is None or not doc.ok:
        raise ConfigFileError(doc.problems)
    return to_config_file(doc, kind, ref)


@dataclass
class Catalog:
    """What the plugins registered: bundles by name, mapping files in order."""

    bundles: dict[str, list[PresetFile]] = field(default_factory=dict)
    mapping_files: list[MappingFile] = field(default_factory=list)


def _read_all(refs: Sequence[FileRef]) -> tuple[list[MappingFile | PresetFile], list[Problem]]:
    found: list[MappingFile | PresetFile] = []
    problems: list[Problem] = []
    for root in refs:
        files = list(iter_yaml_files(root))
        if not files and not root.is_dir():
            problems.append(Problem(_display(root), 1, 1, "error", "no such file or directory"))
        for ref in files:
            try:
                found.append(read_config_file(ref))
            except ConfigFileError as exc:
                problems.extend(exc.problems)
    return found, problems


def load_catalog(registry: Any = None) -> Catalog:
    """Read every registered preset and mapping file (ConfigFileError if any is broken)."""
    if registry is None:
        from .plugins import collect_registry

        registry = collect_registry()
    catalog = Catalog()
    found, problems = _read_all([*registry.presets, *registry.mapping_files])
    for item in found:
        if isinstance(item, PresetFile):
            catalog.bundles.setdefault(item.bundle, []).append(item)
        else:
            catalog.mapping_files.append(item)
    if problems:
        raise ConfigFileError(problems)
    return catalog


def layer_presets(
    presets: dict[str, Preset], preset_file: PresetFile, problems: list[Problem] | None = None
) -> dict[str, Preset]:
    """Layer one file's entries over ``presets`` (see the module docstring), in place.

    Problems (a new preset without trigger/action, a name twice in one file)
    are appended to ``problems``, or raised as ConfigFileError when it is None.
    """
    found: list[Problem] = []
    doc = preset_file.document
    seen: dict[str, int] = {}

    def problem(entry: PresetEntry, message: str) -> None:
        if doc is not None:
            found.append(doc.problem(("presets", entry.index), message))
        else:
            found.append(Problem(entry.source, 1, 1, "error", message))

    for entry in preset_file.entries:
        if entry.name in seen:
            first = seen[entry.name]
            line = doc.where(("presets", first))[0] if doc is not None else 0
            problem(
                entry, f"preset {entry.name!r} appears twice in this file (first at line {line})"
            )
            continue
        seen[entry.name] = entry.index
        values = entry.values
        existing = presets.get(entry.name)
        if existing is None:
            missing = [key for key in ("trigger", "action") if key not in values]
            if missing:
                problem(
                    entry,
                    f"preset {entry.name!r} is not defined by an earlier bundle, so it needs "
                    + " and ".join(repr(m) for m in missing),
                )
                continue
            presets[entry.name] = Preset(
                name=entry.name,
                trigger=values["trigger"],
                action=values["action"],
                mapping=dict(values.get("mapping") or {}),
                enabled=values.get("enabled", True),
                description=values.get("description", ""),
                bundle=preset_file.bundle,
                sources=(preset_file.source,),
                field_sources=dict.fromkeys(values.get("mapping") or {}, preset_file.source),
            )
        else:
            presets[entry.name] = replace(
                existing,
                trigger=values.get("trigger", existing.trigger),
                action=values.get("action", existing.action),
                mapping={**existing.mapping, **(values.get("mapping") or {})},
                enabled=values.get("enabled", existing.enabled),
                description=values.get("description", existing.description),
                sources=(*existing.sources, preset_file.source),
                field_sources={
                    **existing.field_sources,
                    **dict.fromkeys(values.get("mapping") or {}, preset_file.source),
                },
            )
    if problems is not None:
        problems.extend(found)
    elif found:
        raise ConfigFileError(found)
    return presets


def layer_mappings(
    mappings: dict[str, dict[str, str]],
    mapping_file: MappingFile,
    sources: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """Layer one mapping file over ``mappings`` (action → field → expression), in place.

    ``sources`` (action → field → file), when given, records where each field came from.
    """
    fields = mappings.setdefault(mapping_file.action, {})
    origins = sources.setdefault(mapping_file.action, {}) if sources is not None else {}
    for name, expression in mapping_file.fields.items():
        if expression is None:
            fields.pop(name, None)
            origins.pop(name, None)
        else:
            fields[name] = expression
            origins[name] = mapping_file.source
    return mappings


def effective_mapping(base: dict[str, str], overrides: dict[str, str | None]) -> dict[str, str]:
    """An action's mapping with a preset's overrides on top (None removes a field)."""
    fields = dict(base)
    for name, expression in overrides.items():
        if expression is None:
            fields.pop(name, None)
        else:
            fields[name] = expression
    return fields


@dataclass
class PresetConfig:
    """The layered result: every preset (enabled or not) and every action's mapping."""

    presets: list[Preset]
    mappings: dict[str, dict[str, str]]
    bundles: list[str] = field(default_factory=list)
    #: action → field → the mapping file it comes from
    field_sources: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def enabled(self) -> list[Preset]:
        return [p for p in self.presets if p.enabled]

    def mapping_for(self, preset: Preset) -> dict[str, str]:
        return effective_mapping(self.mappings.get(preset.action, {}), preset.mapping)

    def source_of(self, preset: Preset, name: str) -> str:
        """The file that set field ``name`` of ``preset``'s mapping ("" if unknown)."""
        return preset.field_sources.get(name) or self.field_sources.get(preset.action, {}).get(
            name, ""
        )


def _is_path(item: str | os.PathLike[str]) -> bool:
    text = os.fspath(item)
    return text.endswith(YAML_SUFFIXES) or os.sep in text or Path(text).exists()


def resolve_presets(
    selection: Sequence[str | os.PathLike[str]] = (),
    *,
    mapping_paths: Sequence[str | os.PathLike[str]] = (),
    registry: Any = None,
) -> PresetConfig:
    """Layer bundles and user files into a PresetConfig (see the module docstring).

    ``selection`` items are registered bundle names or paths of preset or
    mapping files (or folders of them); without any bundle name ``default``
    comes first. ``mapping_paths`` adds mapping files. Raises ConfigFileError
    listing every problem, or ConfigurationError for an unknown bundle name.
    """
    catalog = load_catalog(registry)
    names = [os.fspath(s) for s in selection if not _is_path(s)]
    paths = [Path(os.fspath(s)) for s in selection if _is_path(s)]
    paths += [Path(os.fspath(p)) for p in mapping_paths]
    unknown = [n for n in names if n not in catalog.bundles]
    if unknown:
        known = ", ".join(sorted(catalog.bundles)) or "none"
        raise ConfigurationError(
            f"unknown preset bundle {unknown[0]!r} (known: {known}; a file path must exist)"
        )
    if not names:
        names = [DEFAULT_BUNDLE] if DEFAULT_BUNDLE in catalog.bundles else []
    user_files, problems = _read_all(paths)
    presets: dict[str, Preset] = {}
    for name in names:
        for bundle_file in catalog.bundles[name]:
            layer_presets(presets, bundle_file, problems)
    mappings: dict[str, dict[str, str]] = {}
    sources: dict[str, dict[str, str]] = {}
    for mapping_file in catalog.mapping_files:
        layer_mappings(mappings, mapping_file, sources)
    for item in user_files:
        if isinstance(item, PresetFile):
            layer_presets(presets, item, problems)
        else:
            layer_mappings(mappings, item, sources)
    if problems:
        raise ConfigFileError(problems)
    return PresetConfig(list(presets.values()), mappings, names, sources)
