"""The optimised path gives byte-identical request bodies to a straightforward reference.

Reference: every preset's trigger evaluated, every field through
``jmespath.search``, every payload through jsonschema, bodies through
``json.dumps``. Optimised: ``Pipeline.match`` (type/event index, compiled
mapping, fast schema check), ``action.build``, ``build_request``
(compactjson). Events are generated, and one in four is spoiled so that
invalid payloads are compared too: both paths must reject the same events
with the same error.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import jmespath
import jsonschema
import pytest
from jsonschema.exceptions import best_match

from benchmarks.events import generate_events
from destination.compactjson import dumps_reference
from destination.errors import PayloadError
from destination.mapping import MappingFunctions, _prune
from destination.pipeline import find_action
from destination.tiktok.protocol import build_request
from destination.triggers import compile_trigger

from .perf_support import SETTINGS, default_pipeline, spoil
from .segment_samples import SAMPLES


class Reference:
    """The straightforward path, sharing only the presets, the actions and the settings."""

    def __init__(self, pipeline: Any, registry: Any) -> None:
        config = pipeline.config
        options = jmespath.Options(custom_functions=MappingFunctions.from_registry(registry))
        self.presets = []
        for preset in config.enabled:
            action = find_action(registry, preset.action)
            fields = {
                name: jmespath.compile(text) for name, text in config.mapping_for(preset).items()
            }
            validator = jsonschema.Draft202012Validator(dict(action.payload_schema))
            self.presets.append(
                (preset, compile_trigger(preset.trigger), fields, action, validator)
            )
        self.options = options

    def items(self, event: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
        out = []
        for preset, trigger, fields, action, validator in self.presets:
            if not trigger(event):
                continue
            payload = {}
            for name, expression in fields.items():
                value = _prune(expression.search(event, options=self.options))
                if value is not None:
                    payload[name] = value
            error = best_match(validator.iter_errors(payload))
            if error is not None:
                field = ".".join(map(str, error.absolute_path)) or None
                if error.validator == "required":
                    field = error.message.split("'")[1]
                raise PayloadError(f"preset {preset.name!r}: {error.validator}", field=field)
            out.append(action.build(payload, SETTINGS))
        return out


def _outcome(function: Any, event: dict[str, Any]) -> Any:
    """The built items, or which check refused the event and the field it named."""
    try:
        return function(event)
    except PayloadError as exc:
        return ("schema" if "preset" in str(exc) else "action", exc.field)


@pytest.mark.parametrize("seed", [11, 12])
def test_bodies_are_byte_identical_to_the_reference(seed):
    pipeline, registry = default_pipeline()
    reference = Reference(pipeline, registry)
    rng = random.Random(seed)
    events = [spoil(e, rng) if rng.random() < 0.25 else e for e in generate_events(2500, seed)] + [
        copy.deepcopy(s) for s in SAMPLES.values()
    ]

    def optimised(event: dict[str, Any]) -> list[Any]:
        return [m.action.build(m.payload, SETTINGS) for m in pipeline.match(event)]

    rejected = 0
    all_fast: list[dict[str, Any]] = []
    all_slow: list[dict[str, Any]] = []
    for event in events:
        fast, slow = _outcome(optimised, event), _outcome(reference.items, event)
        if isinstance(fast, tuple) or isinstance(slow, tuple):
            assert fast == slow, event
            rejected += 1
            continue
        assert [b.route for b in fast] == [b.route for b in slow]
        for fast_built, slow_built in zip(fast, slow, strict=True):
            one = build_request(SETTINGS, fast_built.route, [fast_built.item]).body
            body = {"event_source": "web", "event_source_id": SETTINGS.pixel_code}
            assert one == dumps_reference({**body, "data": [slow_built.item]})
            assert fast_built.warnings == slow_built.warnings
        all_fast.extend(b.item for b in fast)
        all_slow.extend(b.item for b in slow)
    assert rejected > 100 and len(all_fast) > 1500
    route = pipeline.match(SAMPLES["page"])[0]
    web_route = route.action.build(route.payload, SETTINGS).route
    body = {"event_source": "web", "event_source_id": SETTINGS.pixel_code}
    for start in range(0, len(all_fast), 1000):  # whole batches, as the delivery engine sends
        got = build_request(SETTINGS, web_route, all_fast[start : start + 1000]).body
        assert got == dumps_reference({**body, "data": all_slow[start : start + 1000]})
