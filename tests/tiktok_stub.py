"""A stand-in TikTok destination for tests while the real one is not registered.

Its payload schemas follow the shared payload contract (docs/mappings.md), so
lint and pipeline tests exercise real field/type/enum checks. When the real
TikTok plugin registers ``tiktok``, the fixture uses that instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from destination import hookimpl
from destination.actions import Action, Destination, Outcome, Request, Route, Verdict
from destination.plugins import collect_registry

from .conftest import registered

STANDARD = frozenset(
    [
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "ApplicationApproval",
        "ClickButton",
        "CompletePayment",
        "CompleteRegistration",
        "Contact",
        "CustomizeProduct",
        "Download",
        "FindLocation",
        "InitiateCheckout",
        "Lead",
        "PageView",
        "PlaceAnOrder",
        "Purchase",
        "Schedule",
        "Search",
        "StartTrial",
        "SubmitApplication",
        "SubmitForm",
        "Subscribe",
        "ViewContent",
    ]
)
DEPRECATED = {
    "PlaceAnOrder": "soft-deprecated, sunset 2027; use Purchase",
    "ClickButton": "soft-deprecated, sunset 2027",
    "CompletePayment": "renamed Purchase",
    "SubmitForm": "renamed Lead",
}
STRINGS = [
    "first_name",
    "last_name",
    "city",
    "state",
    "country",
    "zip_code",
    "ttclid",
    "ttp",
    "ip",
    "user_agent",
    "locale",
    "url",
    "referrer",
    "currency",
    "query",
    "description",
    "order_id",
    "shop_id",
    "search_string",
    "lead_id",
    "lead_event_source",
]
NUMERIC_STRING = {"type": "string", "pattern": "^\\s*[+-]?(\\d+\\.?\\d*|\\.\\d+)\\s*$"}
IDS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
CONTENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "content_id": {"type": "string"},
        "content_name": {"type": "string"},
        "content_category": {"type": "string"},
        "brand": {"type": "string"},
        "price": {"type": "number"},
        "quantity": {"type": "integer"},
    },
}


def payload_schema(
    required: Sequence[str] = ("event", "timestamp"), events: Sequence[str] | None = None
) -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"type": "string"} for name in STRINGS}
    properties.update(
        {
            "event": {"type": "string", "minLength": 1},
            "event_id": {"type": ["string", "number"]},
            "timestamp": {"type": ["string", "number"]},
            "email": IDS,
            "phone": IDS,
            "external_id": IDS,
            "cookie": {"type": ["string", "object"]},
            "contents": {"type": "array", "items": CONTENT},
            "content_ids": {"type": "array", "items": {"type": "string"}},
            "content_type": {"enum": ["product", "product_group"]},
            "value": {"anyOf": [{"type": "number"}, NUMERIC_STRING]},
            "currency": {"type": "string", "pattern": "^\\s*[A-Za-z]{3}\\s*$"},
            "num_items": {"type": "integer"},
            "limited_data_use": {"type": "boolean"},
            "delivery_category": {"enum": ["in_store", "home_delivery", "curbside_pickup"]},
            "predicted_ltv": {"type": "number"},
        }
    )
    if events is not None:
        properties["event"] = {"enum": sorted(events)}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(required),
        "properties": properties,
    }


class _Action(Action):
    standard_events: ClassVar[frozenset[str]] = STANDARD
    deprecated_events: ClassVar[Mapping[str, str]] = DEPRECATED

    def build(self, payload: dict[str, Any], settings: Any) -> tuple[Route, dict[str, Any]]:
        return Route("tiktok", "http://127.0.0.1/", "web", "PIXEL"), dict(payload)


class WebAction(_Action):
    name = "report_web_event"
    payload_schema: ClassVar[Mapping[str, Any]] = payload_schema()


class OfflineAction(_Action):
    name = "report_offline_event"
    payload_schema: ClassVar[Mapping[str, Any]] = payload_schema(events=STANDARD)


class CrmAction(_Action):
    name = "report_crm_event"
    payload_schema: ClassVar[Mapping[str, Any]] = payload_schema(("event", "timestamp", "lead_id"))


class StubTikTok(Destination):
    name = "tiktok"

    @property
    def actions(self) -> Mapping[str, Action]:
        return {a.name: a for a in (WebAction(), OfflineAction(), CrmAction())}

    def load_settings(
        self, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Any:
        return dict(raw)

    def build_request(
        self, settings: Any, route: Route, items: Sequence[dict[str, Any]]
    ) -> Request:
        return Request(url=route.url, headers={}, body=b"")

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        return Verdict(Outcome.DELIVERED)


class StubPlugin:
    @hookimpl
    def register_destinations(self, register: Any) -> None:
        register(StubTikTok())


@contextmanager
def tiktok_available() -> Iterator[None]:
    """Make sure a ``tiktok`` destination is registered for the with-block."""
    if "tiktok" in collect_registry().destinations:
        yield
        return
    with registered(StubPlugin(), "tiktok-stub"):
        yield
