"""TikTok settings: defaults, environment overrides, every problem at once, no token leaks."""

from __future__ import annotations

import dataclasses

import pytest

from destination.errors import SettingsError
from destination.tiktok.settings import TikTokSettings, load_settings

TOKEN = "tt-secret-4f9a2c"


def test_defaults():
    s = load_settings({"access_token": TOKEN, "pixel_code": "C1"}, {})
    assert s.api_base_url == "https://business-api.tiktok.com"
    assert s.track_url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert (s.event_source, s.default_phone_region, s.limited_data_use) == ("web", "US", False)
    assert (s.stale_events, s.max_event_age_days, s.max_future_minutes) == ("warn", 28, 10)
    assert s.test_event_code is None and s.partner_name is None


def test_all_settings_accepted():
    raw = {
        "access_token": TOKEN,
        "pixel_code": "C1",
        "offline_event_set_id": "O1",
        "crm_event_set_id": "R1",
        "api_base_url": "http://127.0.0.1:8080/",
        "event_source": "offline",
        "test_event_code": "TEST123",
        "limited_data_use": True,
        "default_phone_region": "GB",
        "partner_name": "Acme",
        "stale_events": "drop",
        "max_event_age_days": 7,
        "max_future_minutes": 0,
    }
    s = load_settings(raw, {})
    assert s.track_url == "http://127.0.0.1:8080/open_api/v1.3/event/track/"
    assert s.event_source_id("web") == "C1"
    assert s.event_source_id("offline") == "O1"
    assert s.event_source_id("crm") == "R1"
    assert dataclasses.asdict(s) == raw


def test_environment_overrides_file():
    env = {
        "TIKTOK_ACCESS_TOKEN": "from-env",
        "TIKTOK_PIXEL_CODE": "PIXENV",
        "TIKTOK_API_BASE_URL": "http://localhost:9000",
        "TIKTOK_TEST_EVENT_CODE": "TESTENV",
    }
    s = load_settings(
        {"access_token": "file", "pixel_code": "PIXFILE", "test_event_code": "T"}, env
    )
    assert s.access_token == "from-env"
    assert s.pixel_code == "PIXENV"
    assert s.api_base_url == "http://localhost:9000"
    assert s.test_event_code == "TESTENV"


def test_environment_alone_is_enough():
    s = load_settings({}, {"TIKTOK_ACCESS_TOKEN": TOKEN, "TIKTOK_PIXEL_CODE": "P"})
    assert (s.access_token, s.pixel_code) == (TOKEN, "P")


def test_empty_environment_variable_does_not_override():
    s = load_settings({"access_token": TOKEN, "pixel_code": "P"}, {"TIKTOK_PIXEL_CODE": ""})
    assert s.pixel_code == "P"


def test_environ_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("TIKTOK_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("TIKTOK_PIXEL_CODE", "OSPIX")
    assert load_settings({}).pixel_code == "OSPIX"


def test_all_problems_listed_at_once_sorted():
    raw = {
        "access_token": 12345,
        "event_source": "offline",
        "api_base_url": "ftp://example.com",
        "default_phone_region": "ZZ",
        "stale_events": "ignore",
        "max_event_age_days": 0,
        "limited_data_use": "yes",
        "colour": "blue",
    }
    with pytest.raises(SettingsError) as info:
        load_settings(raw, {})
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "access_token",
        "api_base_url",
        "colour",
        "default_phone_region",
        "limited_data_use",
        "max_event_age_days",
        "offline_event_set_id",
        "stale_events",
    ]
    assert "12345" not in str(info.value)
    assert "must start with http:// or https://" in problems[1]
    assert "unknown setting" in problems[2]
    assert "'ZZ' is not a known region" in problems[3]


def test_missing_token_and_pixel():
    with pytest.raises(SettingsError) as info:
        load_settings({}, {})
    assert info.value.problems == [
        "access_token: required (or set TIKTOK_ACCESS_TOKEN)",
        "pixel_code: required when event_source is web (or set TIKTOK_PIXEL_CODE)",
    ]


@pytest.mark.parametrize(
    ("source", "setting"), [("offline", "offline_event_set_id"), ("crm", "crm_event_set_id")]
)
def test_source_needs_its_id(source, setting):
    with pytest.raises(SettingsError, match=rf"{setting}: required when event_source is {source}"):
        load_settings({"access_token": TOKEN, "event_source": source}, {})
    load_settings({"access_token": TOKEN, "event_source": source, setting: "X"}, {})


def test_not_a_mapping():
    with pytest.raises(SettingsError, match="must be a mapping"):
        load_settings(["access_token"], {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (f"Bearer {TOKEN}", "without a 'Bearer' prefix"),
        (f" {TOKEN}\n", "leading or trailing whitespace"),
        ("", "must be a non-empty string"),
    ],
)
def test_bad_token_never_shown(token, reason):
    with pytest.raises(SettingsError) as info:
        load_settings({"access_token": token, "pixel_code": "P"}, {})
    assert reason in str(info.value)
    if token:
        assert TOKEN not in str(info.value)


def test_token_in_another_setting_is_redacted():
    with pytest.raises(SettingsError) as info:
        load_settings({"access_token": TOKEN, "pixel_code": "P", "stale_events": TOKEN}, {})
    assert TOKEN not in str(info.value)
    assert "[REDACTED]" in str(info.value)


def test_repr_and_str_hide_token():
    s = load_settings({"access_token": TOKEN, "pixel_code": "P"}, {})
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert TOKEN not in text
        assert "access_token='[REDACTED]'" in text


def test_settings_are_frozen():
    s = TikTokSettings(access_token=TOKEN, pixel_code="P")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.pixel_code = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "url", ["https://proxy-user:hunter2@tiktok.example/", "ftp://proxy-user:hunter2@x.y/"]
)
def test_credentials_in_api_base_url_are_refused_and_never_echoed(url):
    with pytest.raises(SettingsError) as caught:
        load_settings({"access_token": "tok", "pixel_code": "P", "api_base_url": url}, {})
    message = str(caught.value)
    assert "hunter2" not in message and "proxy-user" not in message
    assert "api_base_url" in message and "***@" in message


def test_an_at_sign_in_the_path_of_api_base_url_is_not_a_credential():
    settings = load_settings(
        {"access_token": "tok", "pixel_code": "P", "api_base_url": "https://x.example/a@b"}, {}
    )
    assert settings.track_url.startswith("https://x.example/a@b/")
