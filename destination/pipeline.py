"""Event → matched presets → mapped action payloads.

The one place where presets, triggers and mappings meet, compiled once when
the pipeline is built so a configuration error stops the process before any
event is read, and each event then costs only closure calls and dict
look-ups. It knows nothing of TikTok: it finds actions through the plugin
registry and checks payloads against each action's ``payload_schema``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .actions import Action
from .errors import ConfigurationError, PayloadError, TriggerSyntaxError
from .mapping import CompiledMapping, MappingFunctions, compile_expression
from .presets import Preset, PresetConfig, resolve_presets
from .schemacheck import FieldChecks, compile_check, compile_field_checks

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = ["Match", "Pipeline", "find_action"]

_new_tuple = tuple.__new__


def find_action(registry: Any, name: str) -> Action | None:
    """The action ``<destination>.<action>`` in the registry, or None."""
    destination_name, _, action_name = name.partition(".")
    destination = registry.destinations.get(destination_name)
    if destination is None or not action_name:
        return None
    return destination.actions.get(action_name)


class Match(NamedTuple):
    """One preset that fired for an event, its action and the mapped payload.

    ``error`` is set (by ``match_each`` only) when the payload breaks the
    action's schema: the preset matched, but this payload cannot be sent.
    A named tuple: one is made per matched event, and a tuple is the
    cheapest immutable record to make.
    """

    preset: Preset
    action: Action
    payload: dict[str, Any]
    error: PayloadError | None = None

    @property
    def action_name(self) -> str:
        return self.preset.action


class _PayloadValidator:
    """jsonschema's validator of one payload schema, made when first asked.

    Payloads the fast check vouches for (schemacheck.py) never reach it, so a
    run whose payloads are all valid neither builds it nor imports jsonschema.
    """

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._validator: Any = None

    def iter_errors(self, payload: Any) -> Any:
        if self._validator is None:
            import jsonschema

            self._validator = jsonschema.Draft202012Validator(self.schema)
        return self._validator.iter_errors(payload)


@dataclass(frozen=True, slots=True)
class _Compiled:
    preset: Preset
    action: Action
    trigger: Callable[[dict[str, Any]], bool]
    mapping: CompiledMapping
    validator: _PayloadValidator | None
    #: "certainly valid" predicate for the payload schema (schemacheck.py), or None
    check: Callable[[Any], bool] | None = None
    #: the mapping with that check done field by field: event -> (payload, certainly valid)
    checked: Callable[[Any], tuple[dict[str, Any], bool]] | None = None
    #: what ``type`` and ``event`` must be for the trigger to hold (None: anything)
    types: frozenset[str] | None = None
    events: frozenset[str] | None = None


def _event_id(event: Any) -> str | None:
    if isinstance(event, dict):
        message_id = event.get("messageId")
        if isinstance(message_id, str | int) and not isinstance(message_id, bool):
            return str(message_id)
    return None


#: Distinct (type, event) pairs remembered by ``Pipeline.match``; event names are
#: user data, so past this many the candidates are worked out per event instead.
_INDEX_LIMIT = 4096


#: Patterns of the payload schemas, in words (a regex is no message for a data engineer).
_PATTERN_WORDS = {
    r"^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)?\s*$": "a number or a numeric string",
    r"^\s*([+-]?\d+)?\s*$": "a whole number",
    r"^\s*([A-Za-z]{3})?\s*$": "a 3-letter ISO 4217 currency code",
    r"^\s*([Hh][Tt][Tt][Pp][Ss]?://\S.*)?$": "a URL starting with http:// or https://",
    r"\S": "a text that is not blank",
}


def _describe(error: ValidationError) -> str:
    """A schema violation in words that never quote the value (it may be an email)."""
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        return error.message
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return "the mapped value must be " + " or ".join(map(str, types))
    if kind == "enum":
        shown = [v for v in expected if v != ""]
        return "the mapped value must be one of " + ", ".join(map(repr, shown))
    if kind == "pattern" and expected in _PATTERN_WORDS:
        return f"the mapped value must be {_PATTERN_WORDS[expected]}"
    return f"the mapped value breaks the payload schema ({kind}: {expected!r})"


class Pipeline:
    """Compiled presets; ``match(event)`` returns what to send for one event."""

    def __init__(self, config: PresetConfig, registry: Any = None, *, validate: bool = True):
        from .triggers import compile_trigger, parse_trigger, required_equalities

        if registry is None:
            from .plugins import collect_registry

            registry = collect_registry()
        self.config = config
        self.functions = MappingFunctions.from_registry(registry)
        compiled: list[_Compiled] = []
        #: per action (presets of one action share its schema's validator and checks)
        schema_checks: dict[int, tuple[_PayloadValidator, Any, FieldChecks | None]] = {}
        for preset in config.enabled:
            action = find_action(registry, preset.action)
            if action is None:
                raise ConfigurationError(
                    f"preset {preset.name!r}: unknown action {preset.action!r}"
                )
            try:
                trigger = compile_trigger(preset.trigger)
            except TriggerSyntaxError as exc:
                where = ", ".join(preset.sources)
                raise ConfigurationError(
                    f"preset {preset.name!r} ({where}): trigger: {exc}"
                ) from None
            mapping = CompiledMapping(
                {
                    name: compile_expression(
                        text,
                        self.functions,
                        field=name,
                        source=f"{config.source_of(preset, name)} (preset {preset.name!r})",
                    )
                    for name, text in config.mapping_for(preset).items()
                },
                source=f"preset {preset.name!r}",
            )
            validator = check = checked = None
            if validate and action.payload_schema:
                if id(action) not in schema_checks:
                    schema_checks[id(action)] = (
                        _PayloadValidator(dict(action.payload_schema)),
                        compile_check(action.payload_schema),
                        compile_field_checks(action.payload_schema),
                    )
                validator, check, fields = schema_checks[id(action)]
                if fields is not None:
                    checked = mapping.compile_checked(
                        {name: fields.of(name) for name in mapping.expressions},
                        fields.required,
                        [name for name in mapping.expressions if fields.accepts_strings(name)],
                    )
            needs = required_equalities(parse_trigger(preset.trigger))
            compiled.append(
                _Compiled(
                    preset,
                    action,
                    trigger,
                    mapping,
                    validator,
                    check,
                    checked,
                    needs.get(("type",)),
                    needs.get(("event",)),
                )
            )
        self._compiled = tuple(compiled)
        self._index: dict[tuple[str | None, str | None], tuple[_Compiled, ...]] = {}

    @classmethod
    def from_presets(
        cls,
        selection: Sequence[str | os.PathLike[str]] = (),
        *,
        mapping_paths: Sequence[str | os.PathLike[str]] = (),
        registry: Any = None,
        validate: bool = True,
    ) -> Pipeline:
        """Resolve bundles and user files (see ``resolve_presets``), then compile."""
        if registry is None:
            from .plugins import collect_registry

            registry = collect_registry()
        config = resolve_presets(selection, mapping_paths=mapping_paths, registry=registry)
        return cls(config, registry, validate=validate)

    @property
    def presets(self) -> list[Preset]:
        return [c.preset for c in self._compiled]

    def candidates(self, event_type: Any, event_name: Any) -> tuple[_Compiled, ...]:
        """The presets whose trigger can hold for an event of this ``type`` and ``event``.

        Most triggers pin ``type`` or ``event`` to a few strings
        (``triggers.required_equalities``), so for a typical bundle only one
        or two of them need evaluating; the rest are known false. Presets keep
        their order, so matches come out as if every trigger had been tried.
        """
        key = (
            event_type if isinstance(event_type, str) else None,
            event_name if isinstance(event_name, str) else None,
        )
        found = self._index.get(key)
        if found is None:
            found = tuple(
                item
                for item in self._compiled
                if (item.types is None or key[0] in item.types)
                and (item.events is None or key[1] in item.events)
            )
            if len(self._index) < _INDEX_LIMIT:
                self._index[key] = found
        return found

    def match(self, event: Any) -> list[Match]:
        """Every enabled preset whose trigger holds, with its payload.

        Raises PayloadError (naming the event, preset and field) when the
        event is not an object or a mapped payload breaks its action's schema.
        A payload the fast schema check vouches for skips jsonschema
        (schemacheck.py); any other is validated by jsonschema, whose error is
        the one raised.
        """
        for found in (matches := self.match_each(event)):
            if found.error is not None:
                raise found.error
        return matches

    def match_each(self, event: Any) -> list[Match]:
        """Like :meth:`match`, but a payload that breaks its schema comes back as a
        Match with ``error`` set, so the event's other presets still go on.

        Raises PayloadError only when the event is not an object.
        """
        if not isinstance(event, dict):
            raise PayloadError(f"an event must be a JSON object, got {type(event).__name__}")
        matches: list[Match] = []
        for item in self.candidates(event.get("type"), event.get("event")):
            if not item.trigger(event):
                continue
            if item.checked is not None:
                payload, valid = item.checked(event)
            else:
                payload = item.mapping(event)
                valid = item.check is not None and item.check(payload)
            if item.validator is not None and not valid:
                from jsonschema.exceptions import best_match

                error = best_match(item.validator.iter_errors(payload))
                if error is not None:
                    field = ".".join(str(p) for p in error.absolute_path) or None
                    if error.validator == "required" and "'" in error.message:
                        field = error.message.split("'")[1]
                    problem = PayloadError(
                        f"preset {item.preset.name!r}: {_describe(error)}",
                        field=field,
                        event_id=_event_id(event),
                    )
                    matches.append(Match(item.preset, item.action, payload, problem))
                    continue
            matches.append(_new_tuple(Match, (item.preset, item.action, payload, None)))
        return matches
