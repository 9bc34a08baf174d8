"""The host API: what a CDP process (or ``destination run`` / ``serve``) calls per event.

A :class:`Runtime` is one configured destination: presets compiled, settings
validated, the outbox open and the delivery engine running, all decided
before the first event so a configuration error stops the host at start-up.
Each event then goes through the same steps everywhere:

    event ─► Pipeline.match (triggers, mappings, payload schema)
          ─► transform_payload hook ─► Action.build (normalise, hash)
          ─► DeliveryEngine.submit_many (stored in the outbox = accepted)

and comes back as an :class:`EventOutcome` saying which presets matched,
what was built, which payload errors and warnings it had, and — when they
arrive — its delivery results. A bad event never raises: its problem is in
the outcome and the rest go on. ``process_batch`` stores a whole batch in one
outbox transaction, which is what makes a high event rate cheap.

Every method is safe to call from several threads; the ``a``-prefixed ones
run the same work in a worker thread for asyncio hosts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import compactjson
from .actions import Route
from .config import Config, load_config
from .delivery.engine import DeliveryEngine, DeliveryResult
from .delivery.eventid import event_id_for
from .delivery.executors import Executor
from .delivery.factories import make_executor, make_queue
from .delivery.outbox import Queue, StoredItem
from .errors import ConfigurationError, PayloadError, SettingsError, kind_of, redact
from .pipeline import Match, Pipeline
from .plugins import collect_registry, load_plugins, pm

__all__ = ["ActionOutcome", "EventOutcome", "Runtime"]

log = logging.getLogger("destination")

#: distinct payload-error reasons counted before the rest are lumped together
_MAX_REASONS = 1000


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """One preset that fired for an event, and what became of it.

    ``payload`` is the mapped payload before normalisation (it may hold raw
    personal data, so it is never shown in a repr); ``item`` is the hashed
    wire item that was stored for delivery, None when ``error`` stopped it.
    """

    preset: str
    action: str
    payload: Mapping[str, Any] = field(repr=False)
    item: dict[str, Any] | None = field(default=None, repr=False)
    route: Route | None = None
    warnings: tuple[Any, ...] = ()
    error: PayloadError | None = None
    #: ``item`` as the compact JSON text that was stored
    item_json: str | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.item is not None and self.error is None


class EventOutcome:
    """What happened to one event; :meth:`results` waits for its delivery results."""

    __slots__ = ("_done", "_expected", "_results", "actions", "error", "event_id", "index")

    def __init__(
        self,
        event_id: str | None,
        index: int | None = None,
        actions: tuple[ActionOutcome, ...] = (),
        error: PayloadError | None = None,
        *,
        tracked: bool = True,
    ) -> None:
        self.event_id = event_id
        #: position in the batch given to ``process_batch`` (None for ``process``)
        self.index = index
        self.actions = actions
        #: an error about the whole event (not an object, a payload breaking its schema)
        self.error = error
        self._expected = sum(1 for a in actions if a.accepted)
        self._results: list[DeliveryResult] = []
        # Only an outcome that will receive results pays for an Event (run makes millions).
        self._done = threading.Event() if tracked and self._expected else None

    @property
    def matched(self) -> tuple[str, ...]:
        """Names of the presets whose trigger held."""
        return tuple(a.preset for a in self.actions)

    @property
    def accepted(self) -> int:
        """How many items were stored for delivery."""
        return self._expected

    @property
    def errors(self) -> list[PayloadError]:
        """Every payload error of this event (the event's own, then per preset)."""
        found = [self.error] if self.error is not None else []
        return found + [a.error for a in self.actions if a.error is not None]

    @property
    def warnings(self) -> list[Any]:
        return [w for a in self.actions for w in a.warnings]

    @property
    def ok(self) -> bool:
        """True when nothing about this event was refused before delivery."""
        return not self.errors

    @property
    def delivered(self) -> bool:
        """True once every stored item has a result (see :meth:`results`)."""
        return self._done.is_set() if self._done is not None else not self._expected

    def results(self, timeout: float | None = None) -> list[DeliveryResult]:
        """Delivery results of this event's items, waiting up to ``timeout`` seconds.

        Returns what has arrived by then (all of them when ``delivered``).
        Needs a runtime built with ``track_results=True`` (the default).
        """
        if self._done is not None:
            self._done.wait(timeout)
        return list(self._results)

    async def aresults(self, timeout: float | None = None) -> list[DeliveryResult]:
        """``results`` for asyncio callers."""
        return await asyncio.to_thread(self.results, timeout)

    def _add(self, result: DeliveryResult) -> None:
        # Called only from the delivery thread, under the runtime's lock.
        self._results.append(result)
        if self._done is not None and len(self._results) >= self._expected:
            self._done.set()

    def __repr__(self) -> str:
        state = "error" if self.error else f"matched={list(self.matched)}"
        return f"EventOutcome(event_id={self.event_id!r}, {state}, accepted={self.accepted})"


def _without_frames(error: PayloadError) -> PayloadError:
    """``error`` without the frames it was raised through (nor its causes' frames).

    An outcome outlives its batch; a traceback would tie the frames of
    ``process_batch`` to it, and with them the batch's events and outcomes, in
    a reference cycle that only a full garbage collection frees. With a few
    invalid events per batch that was hundreds of MB held at once
    (docs/performance.md, "Memory per mode").
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    return error


class Runtime:
    """A configured destination taking events. Use as a (sync or async) context manager.

    Build it with :meth:`from_config` (a file path, a dict or a
    :class:`~destination.config.Config`). ``on_result`` is called for every
    delivery result on the engine's thread; keep it quick.
    ``track_results=False`` skips the per-event bookkeeping behind
    :meth:`EventOutcome.results` (``destination run`` does, to stay flat in
    memory over millions of events).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        executor: Executor | None = None,
        queue: Queue | None = None,
        on_result: Callable[[DeliveryResult], Any] | None = None,
        track_results: bool = True,
        environ: Mapping[str, str] | None = None,
        registry: Any = None,
    ) -> None:
        config = config or Config()
        self.config = config
        load_plugins()
        registry = registry or collect_registry()
        destination = registry.destinations.get(config.destination)
        if destination is None:
            known = ", ".join(sorted(registry.destinations)) or "none"
            raise ConfigurationError(
                f"unknown destination {config.destination!r} (registered: {known})"
            )
        self.destination = destination
        try:
            self.settings = destination.load_settings(
                config.settings, os.environ if environ is None else environ
            )
        except SettingsError as exc:
            raise config.settings_error(exc) from None
        self._secrets = [s for s in destination.secrets(self.settings) if s]
        self.pipeline = Pipeline.from_presets(
            config.presets, mapping_paths=config.mappings, registry=registry
        )
        self._user_on_result = on_result
        self._track = track_results
        self._waiting: dict[str, deque[EventOutcome]] = {}
        self._lock = threading.Lock()
        self._by_preset: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._transform = pm.hook.transform_payload
        delivery = config.delivery
        if queue is None:
            options = dict(delivery.queue_options)
            if delivery.queue == "sqlite":
                options.setdefault("path", Path(delivery.outbox))
            queue = make_queue(delivery.queue, **options)
        try:
            if executor is None:
                executor = make_executor(delivery.executor, **delivery.executor_options)
            self.engine = DeliveryEngine(
                destination,
                self.settings,
                queue=queue,
                executor=executor,
                options=delivery.options,
                on_result=self._on_result,
            )
        except BaseException:
            queue.close()
            raise
        self._closed = False

    @classmethod
    def from_config(
        cls,
        config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
        **kwargs: Any,
    ) -> Runtime:
        """A runtime from a YAML file, a dict of the same shape, or a Config."""
        if not isinstance(config, Config):
            config = load_config(config)
        return cls(config, **kwargs)

    # -- events ---------------------------------------------------------------------------

    def process(self, event: Any) -> EventOutcome:
        """Match, build and store one event; never raises for a bad event."""
        return self.process_batch([event])[0]

    def process_batch(self, events: Iterable[Any]) -> list[EventOutcome]:
        """Like :meth:`process` for many events, stored in one outbox transaction."""
        outcomes: list[EventOutcome] = []
        triples: list[tuple[Route, StoredItem, str]] = []
        matched = invalid = 0
        for index, event in enumerate(events):
            kept = len(triples)
            try:
                outcome = self._prepare(event, index, triples)
            except Exception as exc:  # a bug or an absurd event: this event's problem only
                del triples[kept:]
                outcome = self._unexpected(event, index, exc)
            outcomes.append(outcome)
            matched += bool(outcome.actions)
            invalid += not outcome.ok
        counters = self.engine.counters
        counters.add(received=len(outcomes), matched=matched, invalid=invalid)
        if triples:
            if self._track:
                self._register(outcomes)
            try:
                self.engine.submit_many(triples)
            except BaseException:
                if self._track:
                    self._unregister(outcomes)
                raise
        return outcomes

    async def aprocess(self, event: Any) -> EventOutcome:
        """``process`` for asyncio hosts (runs in a worker thread)."""
        return await asyncio.to_thread(self.process, event)

    async def aprocess_batch(self, events: Iterable[Any]) -> list[EventOutcome]:
        """``process_batch`` for asyncio hosts (runs in a worker thread)."""
        return await asyncio.to_thread(self.process_batch, list(events))

    def _unexpected(self, event: Any, index: int, exc: Exception) -> EventOutcome:
        """An outcome for an event whose processing raised what nothing expected."""
        message_id = event.get("messageId") if isinstance(event, dict) else None
        event_id = message_id if isinstance(message_id, str) else None
        if isinstance(exc, RecursionError):
            reason = "the event is nested too deeply to process"
        else:
            reason = f"could not process the event ({type(exc).__name__})"
            log.error("%s: %s", reason, self._redact(repr(exc)))
        error = PayloadError(reason, event_id=event_id)
        self._count_error(error)
        return EventOutcome(event_id, index, error=error, tracked=False)

    def _prepare(
        self, event: Any, index: int, triples: list[tuple[Route, StoredItem, str]]
    ) -> EventOutcome:
        if not isinstance(event, dict):
            error = PayloadError(f"an event must be a JSON object, got {kind_of(event)}")
            self._count_error(error)
            return EventOutcome(None, index, error=error, tracked=False)
        event_id = event_id_for(event)
        matches = self.pipeline.match_each(event)
        if not matches:
            return EventOutcome(event_id, index, tracked=False)
        actions = []
        for match in matches:
            if match.error is not None:
                if match.error.event_id is None:
                    match.error.event_id = event_id
                self._count_error(match.error)
                actions.append(
                    ActionOutcome(
                        match.preset.name, match.preset.action, match.payload, error=match.error
                    )
                )
                continue
            outcome = self._build(event, event_id, match)
            item, text = outcome.item, outcome.item_json
            if item is not None and text is not None and outcome.route is not None:
                triples.append((outcome.route, text, str(item["event_id"])))
            actions.append(outcome)
        with self._lock:
            self._by_preset.update(a.preset for a in actions)
        return EventOutcome(event_id, index, tuple(actions), tracked=self._track)

    def _build(self, event: dict[str, Any], event_id: str, match: Match) -> ActionOutcome:
        preset, name, payload = match.preset.name, match.preset.action, match.payload
        if payload.get("event_id") in (None, ""):
            payload["event_id"] = event_id
        try:
            if self._transform.get_hookimpls():
                self._transform(payload=payload, event=event, preset=preset, action=name)
            built = match.action.build(payload, self.settings)
        except PayloadError as exc:
            if exc.event_id is None:
                exc.event_id = event_id
            self._count_error(exc)
            return ActionOutcome(preset, name, payload, error=_without_frames(exc))
        except SettingsError as exc:
            # An action the settings cannot serve (say, offline without its event set id).
            error = PayloadError(self._redact(str(exc)), field="settings", event_id=event_id)
            self._count_error(error)
            return ActionOutcome(preset, name, payload, error=error)
        route, item = built
        if not item.get("event_id"):
            item["event_id"] = event_id
        try:
            # Encoded once here: a value JSON cannot carry is this event's problem, not the
            # batch's, and the outbox stores the text as it is.
            text = compactjson.dumps(item).decode("utf-8")
        except (ValueError, RecursionError) as exc:  # a lone surrogate; NaN; deep nesting
            what = "a lone surrogate in a text value" if isinstance(exc, UnicodeError) else exc
            error = PayloadError(f"the item cannot be sent as JSON: {what}", event_id=event_id)
            self._count_error(error)
            return ActionOutcome(preset, name, payload, error=error)
        return ActionOutcome(
            preset, name, payload, item, route, tuple(getattr(built, "warnings", ())), None, text
        )

    def _count_error(self, error: PayloadError) -> None:
        reason = f"{error.field}: {error.summary}" if error.field else error.summary
        with self._lock:
            if reason in self._reasons or len(self._reasons) < _MAX_REASONS:
                self._reasons[reason] += 1
            else:
                self._reasons["(other reasons)"] += 1

    # -- results --------------------------------------------------------------------------

    def _register(self, outcomes: list[EventOutcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                if outcome.accepted and outcome.event_id is not None:
                    for action in outcome.actions:
                        if action.accepted and action.item is not None:
                            key = str(action.item["event_id"])
                            self._waiting.setdefault(key, deque()).append(outcome)

    def _unregister(self, outcomes: list[EventOutcome]) -> None:
        ids = {id(o) for o in outcomes}
        with self._lock:
            for key in list(self._waiting):
                kept = deque(o for o in self._waiting[key] if id(o) not in ids)
                if kept:
                    self._waiting[key] = kept
                else:
                    del self._waiting[key]

    def _on_result(self, result: DeliveryResult) -> None:
        if self._track:
            with self._lock:
                queue = self._waiting.get(result.event_id)
                if queue:
                    queue.popleft()._add(result)
                    if not queue:
                        del self._waiting[result.event_id]
        if self._user_on_result is not None:
            self._user_on_result(result)

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything due now; True when nothing due is left unsent."""
        return self.engine.flush(timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Deliver until nothing waits, retrying as the backoff says, for up to ``timeout``
        seconds; True when the queue is empty. What is left stays queued."""
        return self.engine.drain(timeout)

    def reload_settings(
        self,
        raw: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Validate new settings and deliver with them from now on, resuming a stop.

        ``raw`` defaults to the config's settings; the environment overrides it
        as at start-up. Queued events go where the new settings say (the queue
        holds only the instance's name). On a settings error nothing changes.
        """
        source = self.config.settings if raw is None else raw
        try:
            settings = self.destination.load_settings(
                source, os.environ if environ is None else environ
            )
        except SettingsError as exc:
            raise self.config.settings_error(exc) from None
        self.settings = settings
        self._secrets = [s for s in self.destination.secrets(settings) if s]
        self.engine.resume(settings)

    async def aflush(self, timeout: float | None = None) -> bool:
        return await self.engine.aflush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush for up to ``timeout`` seconds (default: the config's shutdown_timeout),
        keep the rest queued in the outbox and stop. Safe to call twice."""
        if self._closed:
            return True
        self._closed = True
        return self.engine.close(
            self.config.delivery.shutdown_timeout if timeout is None else timeout
        )

    async def aclose(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def presets(self) -> list[Any]:
        """The enabled presets, in evaluation order."""
        return self.pipeline.presets

    @property
    def stopped(self) -> bool:
        """True when delivery stopped on an auth or permission answer."""
        return self.engine.stopped

    @property
    def stop_reason(self) -> str | None:
        return self.engine.stop_reason

    @property
    def storage_error(self) -> str | None:
        """The last failure of the queue's storage (disk full...), until it works again."""
        return self.engine.storage_error

    def stats(self, *, routes: bool = False) -> dict[str, Any]:
        """Counters, outbox figures, matches per preset and the payload-error reasons.

        ``routes=True`` adds what waits per route with its last error, and the
        dead letters by reason. After :meth:`close`: the figures at the end.
        """
        data = self.engine.stats(routes=routes)
        with self._lock:
            data["matched_by_preset"] = dict(self._by_preset)
            data["invalid_reasons"] = dict(self._reasons.most_common())
        return data

    def __repr__(self) -> str:
        return (
            f"Runtime(destination={self.destination.name!r}, "
            f"presets={len(self.pipeline.presets)}, queue={self.engine.queue!r})"
        )

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)
