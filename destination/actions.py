"""The contract between the framework and a destination plugin.

A destination (TikTok is the first) is a plugin object that knows three
things the framework must not: how to turn a mapped payload into one wire
item (normalising and hashing on the way), how to put many items into one
HTTP request, and what an answer means. Everything else — triggers, mapping,
batching, retries, the outbox — is the framework's and is shared by every
destination. Keeping the boundary in one small module lets the delivery
engine and the actions evolve separately.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["Action", "Destination", "Outcome", "Request", "Route", "Verdict"]


@dataclass(frozen=True, slots=True)
class Route:
    """Which items may share one request: a destination instance and an event source.

    This is what the queue stores with each item, so it holds names only:
    the URL, the token, the pixel (event_source_id) and the test code are
    looked up in the settings in force when the request is built. Fixing a
    wrong setting therefore un-sticks what is already queued, and no secret
    or frozen address ever reaches disk.
    """

    destination: str
    event_source: str
    #: the destination instance whose settings serve this route (``default`` until named
    #: instances exist)
    instance: str = "default"

    @property
    def label(self) -> str:
        """``instance/event_source``, for messages and tables."""
        return f"{self.instance}/{self.event_source}"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request ready to send; ``secret_headers`` are redacted on display."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    secret_headers: frozenset[str] = field(default_factory=frozenset)

    def redacted_headers(self) -> dict[str, str]:
        return {
            k: ("[REDACTED]" if k in self.secret_headers else v) for k, v in self.headers.items()
        }

    def __repr__(self) -> str:
        return f"Request(url={self.url!r}, headers={self.redacted_headers()!r}, body=<{len(self.body)} bytes>)"


class Outcome(enum.Enum):
    """What to do with a batch after the destination answered."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A destination's reading of one answer (or of a transport failure)."""

    outcome: Outcome
    message: str = ""
    status: int | None = None
    code: int | None = None
    retry_after: float | None = None
    index: int | None = None  # for REJECTED: the data[] index the message names
    min_backoff: float | None = None  # e.g. TikTok maintenance asks for a longer wait
    #: for RETRY: the destination said "too many requests" (repeated, the route pauses)
    rate_limited: bool = False


class Action(ABC):
    """One kind of thing a destination can do with an event (e.g. report a web event)."""

    #: Stable identifier used in presets (``action: tiktok.report_web_event``).
    name: ClassVar[str]
    title: ClassVar[str] = ""
    #: JSON Schema of the mapped payload this action accepts.
    payload_schema: ClassVar[Mapping[str, Any]] = {}
    #: Name of the default mapping file, e.g. ``"tiktok/report_web_event"``.
    default_mapping: ClassVar[str | None] = None
    #: Event names the destination knows (lint warns about any other ``event``
    #: constant); empty means "no opinion".
    standard_events: ClassVar[frozenset[str]] = frozenset()
    #: Event names still accepted but on their way out → advice (lint warns).
    deprecated_events: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def build(self, payload: dict[str, Any], settings: Any) -> tuple[Route, dict[str, Any]]:
        """Normalise and shape one payload into (route, wire item); raise PayloadError."""


class Destination(ABC):
    """A destination plugin: its settings, its actions, its wire protocol."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    settings_schema: ClassVar[Mapping[str, Any]] = {}

    @property
    @abstractmethod
    def actions(self) -> Mapping[str, Action]:
        """The actions by name."""

    @abstractmethod
    def load_settings(
        self, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Any:
        """Validate settings (environment overriding ``raw``); raise SettingsError listing all."""

    @abstractmethod
    def build_request(
        self, settings: Any, route: Route, items: Sequence[dict[str, Any]]
    ) -> Request:
        """Put items that share ``route`` into one request."""

    def build_request_json(self, settings: Any, route: Route, items_json: Sequence[str]) -> Request:
        """Like ``build_request``, from items already serialised as compact JSON.

        The outbox keeps items as JSON; a destination whose body embeds them
        verbatim overrides this to splice the strings in without decoding
        them (the delivery engine's hot path). The default decodes.
        """
        return self.build_request(settings, route, [json.loads(text) for text in items_json])

    @abstractmethod
    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        """Read an HTTP answer into a Verdict."""

    def secrets(self, settings: Any) -> list[str]:
        """Values that must never be shown (used to redact messages)."""
        return []
