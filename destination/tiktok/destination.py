"""The TikTok destination object the framework talks to.

It only assembles the pieces (settings.py, actions.py, protocol.py) behind the
``Destination`` contract, so the framework sees one object per destination and
a test can inject a clock into every action at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..actions import Destination, Request, Route, Verdict
from .actions import Clock, ReportCrmEvent, ReportOfflineEvent, ReportWebEvent, TikTokAction
from .protocol import build_request, build_request_json, classify
from .schemas import load_schema
from .settings import TikTokSettings, load_settings

__all__ = ["TikTokDestination"]


class TikTokDestination(Destination):
    """TikTok Events API 2.0: web, offline and CRM events."""

    name = "tiktok"
    title = "TikTok Events API"
    settings_schema = load_schema("tiktok_settings")

    def __init__(self, clock: Clock = time.time) -> None:
        actions: list[TikTokAction] = [
            ReportWebEvent(clock),
            ReportOfflineEvent(clock),
            ReportCrmEvent(clock),
        ]
        self._actions: dict[str, TikTokAction] = {action.name: action for action in actions}

    @property
    def actions(self) -> Mapping[str, TikTokAction]:
        return self._actions

    def load_settings(
        self, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> TikTokSettings:
        return load_settings(raw, environ)

    def build_request(
        self, settings: Any, route: Route, items: Sequence[dict[str, Any]]
    ) -> Request:
        if not isinstance(settings, TikTokSettings):
            raise TypeError(f"expected TikTokSettings, got {type(settings).__name__}")
        return build_request(settings, route, items)

    def build_request_json(self, settings: Any, route: Route, items_json: Sequence[str]) -> Request:
        if not isinstance(settings, TikTokSettings):
            raise TypeError(f"expected TikTokSettings, got {type(settings).__name__}")
        return build_request_json(settings, route, items_json)

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        return classify(status, headers, body)

    def secrets(self, settings: Any) -> list[str]:
        token = getattr(settings, "access_token", None)
        return [token] if isinstance(token, str) and token else []
