"""The three TikTok actions: report a web, an offline or a CRM (lead) event.

They differ only in their event source, the setting holding its
event_source_id, and what each requires (items.py holds the shared rules).
``build`` returns the ``(route, item)`` pair the framework contract asks for;
the pair is a :class:`Built`, which also carries the event's warnings, so a
caller that wants them reads ``built.warnings`` and one that does not simply
unpacks two values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from ..actions import Action, Route
from ..errors import SettingsError
from .events import RENAMED_EVENTS, SOFT_DEPRECATED_EVENTS, STANDARD_EVENTS
from .items import PayloadWarning, build_item
from .schemas import load_schema
from .settings import SOURCE_ID_SETTING, TikTokSettings

__all__ = [
    "Built",
    "ReportCrmEvent",
    "ReportOfflineEvent",
    "ReportWebEvent",
    "TikTokAction",
]

Clock = Callable[[], float]
_new_tuple = tuple.__new__


class Built(tuple[Route, dict[str, Any]]):
    """``(route, item)``, plus ``warnings``: what was dropped or doubtful in this event."""

    #: Set on the instance only when there are any (most events have none).
    warnings: tuple[PayloadWarning, ...] = ()

    def __new__(
        cls, route: Route, item: dict[str, Any], warnings: Iterable[PayloadWarning] = ()
    ) -> Built:
        built = super().__new__(cls, (route, item))
        warnings = tuple(warnings)
        if warnings:
            built.warnings = warnings
        return built

    def __getnewargs__(self) -> tuple[Any, ...]:
        # pickle/copy rebuild through __new__; keep the warnings with the pair.
        return (self[0], self[1], self.warnings)

    @property
    def route(self) -> Route:
        return self[0]

    @property
    def item(self) -> dict[str, Any]:
        return self[1]


class TikTokAction(Action):
    """Shared by the three actions; subclasses set the event source."""

    event_source: ClassVar[str]
    schema_name: ClassVar[str]
    #: Read by ``destination lint`` to flag custom and deprecated event names.
    standard_events: ClassVar[frozenset[str]] = STANDARD_EVENTS
    deprecated_events: ClassVar[Mapping[str, str]] = {
        **{name: "soft-deprecated by TikTok, sunset 2027" for name in SOFT_DEPRECATED_EVENTS},
        **{old: f"renamed {new}" for old, new in RENAMED_EVENTS.items()},
    }

    def __init__(self, clock: Clock = time.time) -> None:
        #: Unix-seconds clock for the age check; tests inject a fixed one.
        self.clock = clock
        # The last settings seen and their route. Settings are frozen, and a host
        # passes the same object for every event, so the route (a frozen
        # dataclass whose construction costs about as much as hashing an email)
        # is built once instead of once per event.
        self._route_for: tuple[TikTokSettings, Route] | None = None

    def build(self, payload: dict[str, Any], settings: Any) -> Built:
        """Normalise, hash and shape ``payload``; raise PayloadError naming event and field.

        Raises SettingsError when the event_source_id for this action's source
        is not configured (that is the operator's problem, not the event's).
        """
        cached = self._route_for
        if cached is not None and cached[0] is settings:
            route = cached[1]
        else:
            route = self._route(settings)
            self._route_for = (settings, route)
        item, warnings = build_item(
            payload, settings, event_source=self.event_source, now=self.clock()
        )
        # tuple.__new__ directly: Built.__new__ is one Python call more per event
        built: Built = _new_tuple(Built, (route, item))
        if warnings:
            built.warnings = tuple(warnings)
        return built

    def _route(self, settings: Any) -> Route:
        if not isinstance(settings, TikTokSettings):
            raise TypeError(f"expected TikTokSettings, got {type(settings).__name__}")
        source_id = settings.event_source_id(self.event_source)
        if not source_id:
            setting = SOURCE_ID_SETTING[self.event_source]
            raise SettingsError([f"{setting}: required by the action tiktok.{self.name}"])
        # Names only: the URL, pixel and test code in force when sending are looked up then.
        return Route(destination="tiktok", event_source=self.event_source)


def _schema(name: str) -> Mapping[str, Any]:
    return load_schema(f"tiktok_{name}")


class ReportWebEvent(TikTokAction):
    """A website conversion (event_source web, event_source_id = pixel_code)."""

    name = "report_web_event"
    title = "Report Web Event"
    event_source = "web"
    payload_schema = _schema("report_web_event")
    default_mapping = "tiktok/report_web_event"


class ReportOfflineEvent(TikTokAction):
    """An in-store or phone-order conversion: standard names only, email or phone needed."""

    name = "report_offline_event"
    title = "Report Offline Event"
    event_source = "offline"
    payload_schema = _schema("report_offline_event")
    default_mapping = "tiktok/report_offline_event"


class ReportCrmEvent(TikTokAction):
    """A lead's progress in a CRM (event_source crm): lead_id needed."""

    name = "report_crm_event"
    title = "Report CRM Event"
    event_source = "crm"
    payload_schema = _schema("report_crm_event")
    default_mapping = "tiktok/report_crm_event"
