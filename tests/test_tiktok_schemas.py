"""The payload schemas and the hand-written builder know exactly the same fields."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from destination.tiktok.destination import TikTokDestination
from destination.tiktok.settings import load_settings

DEST = TikTokDestination(clock=lambda: 1705708800)
SETTINGS = load_settings(
    {"access_token": "t", "pixel_code": "P", "offline_event_set_id": "O", "crm_event_set_id": "C"},
    {},
)
BASE = {"event": "Purchase", "event_id": "m", "timestamp": 1705320000}

# field -> (a valid value, where it shows in the data[] item)
SAMPLES: dict[str, tuple[Any, tuple[str, ...]]] = {
    "event": ("Purchase", ("event",)),
    "event_id": ("m", ("event_id",)),
    "timestamp": (1705320000, ("event_time",)),
    "email": ("a@b.co", ("user", "email")),
    "phone": ("+12133734253", ("user", "phone")),
    "external_id": ("u", ("user", "external_id")),
    "first_name": ("Ann", ("user", "first_name")),
    "last_name": ("Lee", ("user", "last_name")),
    "zip_code": ("94107", ("user", "zip_code")),
    "city": ("Paris", ("user", "city")),
    "state": ("IDF", ("user", "state")),
    "country": ("FR", ("user", "country")),
    "ttclid": ("E.C.P.x", ("user", "ttclid")),
    "ttp": ("ttp", ("user", "ttp")),
    "cookie": ("_ttp=abc", ("user", "ttp")),
    "ip": ("203.0.113.1", ("user", "ip")),
    "user_agent": ("UA", ("user", "user_agent")),
    "locale": ("fr-FR", ("user", "locale")),
    "url": ("https://a.example/", ("page", "url")),
    "referrer": ("https://b.example/", ("page", "referrer")),
    "contents": ([{"content_id": "1", "price": 2, "quantity": 1}], ("properties", "contents")),
    "content_ids": (["1"], ("properties", "content_ids")),
    "content_type": ("product", ("properties", "content_type")),
    "currency": ("EUR", ("properties", "currency")),
    "value": (3, ("properties", "value")),
    "num_items": (2, ("properties", "num_items")),
    "query": ("q", ("properties", "query")),
    "search_string": ("s", ("properties", "search_string")),
    "description": ("d", ("properties", "description")),
    "order_id": ("o1", ("properties", "order_id")),
    "shop_id": ("s1", ("properties", "shop_id")),
    "delivery_category": ("home_delivery", ("properties", "delivery_category")),
    "predicted_ltv": (99.5, ("properties", "predicted_ltv")),
    "limited_data_use": (True, ("limited_data_use",)),
    "lead_id": ("L1", ("lead", "lead_id")),
    "lead_event_source": ("HubSpot", ("lead", "lead_event_source")),
}
REQUIRED_BY_SOURCE: dict[str, dict[str, Any]] = {
    "report_web_event": {},
    "report_offline_event": {"email": "x@y.z"},
    "report_crm_event": {"lead_id": "L0"},
}


@pytest.mark.parametrize("action_name", sorted(REQUIRED_BY_SOURCE))
def test_every_schema_field_reaches_the_item(action_name):
    action = DEST.actions[action_name]
    properties = action.payload_schema["properties"]
    assert set(properties) <= set(SAMPLES)
    validator = jsonschema.Draft202012Validator(action.payload_schema)
    for field in properties:
        value, path = SAMPLES[field]
        payload = {**BASE, "external_id": "base", **REQUIRED_BY_SOURCE[action_name]}
        payload[field] = value
        if field == "cookie":
            payload.pop("external_id")
        assert list(validator.iter_errors(payload)) == [], field
        node: Any = action.build(payload, SETTINGS).item
        for key in path:
            assert key in node, (field, path)
            node = node[key]


def test_web_schema_covers_all_but_lead_fields():
    web = set(DEST.actions["report_web_event"].payload_schema["properties"])
    assert web == set(SAMPLES) - {"lead_id", "lead_event_source"}


@pytest.mark.parametrize("action_name", sorted(REQUIRED_BY_SOURCE))
def test_schema_rejects_what_build_rejects(action_name):
    action = DEST.actions[action_name]
    validator = jsonschema.Draft202012Validator(action.payload_schema)
    for bad in (
        {"value": "ten"},
        {"content_type": "products"},
        {"contents": [{"price": "x"}]},
        {"timestamp": True},
        {"event": ""},
    ):
        payload = {**BASE, "email": "a@b.co", **REQUIRED_BY_SOURCE[action_name], **bad}
        assert list(validator.iter_errors(payload)), bad
