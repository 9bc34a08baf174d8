"""The TikTok destination behind the framework contract, registered like any plugin."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from destination.actions import Action, Destination, Outcome, Route
from destination.plugins import collect_registry
from destination.tiktok import events
from destination.tiktok.actions import Built
from destination.tiktok.destination import TikTokDestination

TOKEN = "tok-destination-91c"


def test_hook_register_destinations_holds_tiktok():
    registry = collect_registry()
    tiktok = registry.destinations["tiktok"]
    assert isinstance(tiktok, TikTokDestination)
    assert registry.owners[("destination", "tiktok")] == "destination.tiktok.plugin"


def test_contract():
    dest = TikTokDestination()
    assert isinstance(dest, Destination) and dest.name == "tiktok"
    assert dest.settings_schema["properties"]["access_token"]["writeOnly"] is True
    assert sorted(dest.actions) == ["report_crm_event", "report_offline_event", "report_web_event"]
    for name, action in dest.actions.items():
        assert isinstance(action, Action) and action.name == name
        assert action.default_mapping == f"tiktok/{name}"
        assert action.payload_schema["$id"].endswith(f"tiktok_{name}.json")
        assert "event" in action.payload_schema["required"]
    crm = dest.actions["report_crm_event"].payload_schema
    assert "lead_id" in crm["required"]
    offline_names = dest.actions["report_offline_event"].payload_schema["properties"]["event"]
    assert set(offline_names["enum"]) == events.STANDARD_EVENTS


def test_end_to_end_from_payload_to_verdict():
    dest = TikTokDestination(clock=lambda: 1705708800)
    settings = dest.load_settings(
        {"pixel_code": "CPIX"},
        {"TIKTOK_ACCESS_TOKEN": TOKEN, "TIKTOK_TEST_EVENT_CODE": "TEST1"},
    )
    built = dest.actions["report_web_event"].build(
        {"event": "ViewContent", "event_id": "m", "timestamp": 1705320000, "external_id": "u"},
        settings,
    )
    assert isinstance(built, Built) and isinstance(built, tuple) and len(built) == 2
    route, item = built
    assert route == Route("tiktok", "web", "default")  # names only: settings decide the rest
    assert TOKEN not in repr(route)
    request = dest.build_request(settings, route, [item])
    assert json.loads(request.body)["test_event_code"] == "TEST1"
    assert request.headers["Access-Token"] == TOKEN
    assert dest.classify(200, {}, b'{"code":0,"message":"OK"}').outcome is Outcome.DELIVERED
    assert dest.secrets(settings) == [TOKEN]
    assert dest.secrets(object()) == []


def test_event_lists():
    assert events.SOFT_DEPRECATED_EVENTS <= events.STANDARD_EVENTS
    assert set(events.RENAMED_EVENTS) <= events.STANDARD_EVENTS
    assert set(events.RENAMED_EVENTS.values()) <= events.STANDARD_EVENTS
    assert events.is_standard_event("Purchase") and not events.is_standard_event("purchase")


def test_built_survives_pickle_and_copy():
    dest = TikTokDestination(clock=lambda: 1705708800)
    settings = dest.load_settings({"access_token": TOKEN, "pixel_code": "P"}, {})
    built = dest.actions["report_web_event"].build(
        {"event": "Lead", "event_id": "m", "timestamp": 1705320000, "email": ["x", "a@b.co"]},
        settings,
    )
    for clone in (pickle.loads(pickle.dumps(built)), copy.copy(built), copy.deepcopy(built)):
        assert isinstance(clone, Built)
        assert tuple(clone) == tuple(built)
        assert clone.warnings == built.warnings and len(clone.warnings) == 1


def test_build_request_needs_tiktok_settings():
    route = Route("tiktok", "web")
    with pytest.raises(TypeError, match="TikTokSettings"):
        TikTokDestination().build_request({"access_token": TOKEN}, route, [{}])
