"""Every way a payload can fail or warn: the result names the event, the field and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from destination.errors import PayloadError, SettingsError
from destination.tiktok.destination import TikTokDestination
from destination.tiktok.settings import load_settings

NOW = 1705708800  # 2024-01-20T00:00:00Z
DEST = TikTokDestination(clock=lambda: NOW)
WEB = DEST.actions["report_web_event"]
OFFLINE = DEST.actions["report_offline_event"]
CRM = DEST.actions["report_crm_event"]
SETTINGS = load_settings(
    {
        "access_token": "tok-payload-tests",
        "pixel_code": "P",
        "offline_event_set_id": "O",
        "crm_event_set_id": "C",
    },
    {},
)
BASE: dict[str, Any] = {"event": "Purchase", "event_id": "m-1", "timestamp": "2024-01-15T12:00:00Z"}


def web(**fields: Any) -> dict[str, Any]:
    return {**BASE, "external_id": "u1", **fields}


ERRORS = [
    # (action, payload, field, reason fragment)
    (WEB, {**BASE, "external_id": "u1", "event": None}, "event", "event name is required"),
    (WEB, web(event=""), "event", "event name is required"),
    (WEB, web(event="   "), "event", "event name is required"),
    (WEB, web(event=42), "event", "must be a string, got int"),
    (
        OFFLINE,
        {**BASE, "email": "a@b.co", "event": "Offline Thing"},
        "event",
        "only standard event names",
    ),
    (WEB, web(timestamp=None), "timestamp", "required"),
    (WEB, web(timestamp="yesterday"), "timestamp", "unparseable timestamp 'yesterday'"),
    (WEB, web(timestamp="2024-02-30T00:00:00Z"), "timestamp", "unparseable"),
    (WEB, web(timestamp=True), "timestamp", "a boolean is not a time"),
    (WEB, web(timestamp=[1]), "timestamp", "expected a string or a number"),
    (WEB, web(timestamp=-5), "timestamp", "negative"),
    (
        WEB,
        {**BASE, "phone": "not-a-phone"},
        "phone",
        "not a phone number, and no other usable identifier",
    ),
    (WEB, {**BASE, "phone": ["12", "n/a"]}, "phone", "not a phone number"),
    (
        WEB,
        {**BASE, "email": "nobody"},
        "email",
        "not an email address, and no other usable identifier",
    ),
    (WEB, {**BASE}, "user", "no usable identifier"),
    (WEB, {**BASE, "ip": "1.2.3.4"}, "user", "ip and user_agent"),
    (WEB, {**BASE, "first_name": "Ann", "city": "Paris"}, "user", "no usable identifier"),
    (OFFLINE, {**BASE, "external_id": "u1", "ttclid": "E.C.P.x"}, "user", "need email or phone"),
    (OFFLINE, {**BASE, "phone": "0"}, "phone", "need email or phone"),
    (CRM, {**BASE, "email": "a@b.co"}, "lead_id", "required for CRM events"),
    (CRM, {**BASE, "lead_id": "  "}, "lead_id", "required for CRM events"),
    (WEB, web(url="www.example.com/page"), "url", "must start with http:// or https://"),
    (WEB, web(url="ftp://example.com"), "url", "must start with http:// or https://"),
    (WEB, web(url="https://"), "url", "must start with http:// or https://"),
    (
        WEB,
        web(contents=[{"content_id": "a", "price": "ten"}]),
        "contents[0].price",
        "not a number: 'ten'",
    ),
    (WEB, web(contents=[{"price": "NaN"}]), "contents[0].price", "not a number: 'NaN'"),
    (WEB, web(contents=[{"price": "1e999"}]), "contents[0].price", "not a finite number"),
    (WEB, web(contents=[{"price": "1_000"}]), "contents[0].price", "not a number"),
    (WEB, web(contents=[{"price": "0x10"}]), "contents[0].price", "not a number"),
    (WEB, web(contents=[{"quantity": "\u0661\u0662"}]), "contents[0].quantity", "not a number"),
    (WEB, web(contents=[{"price": float("inf")}]), "contents[0].price", "finite"),
    (WEB, web(contents=[{}, {"price": True}]), "contents[1].price", "got a boolean"),
    (WEB, web(contents=[{"price": [1]}]), "contents[0].price", "must be a number, got a list"),
    (WEB, web(contents=[{"quantity": 2.5}]), "contents[0].quantity", "whole number"),
    (WEB, web(contents=[{"quantity": "two"}]), "contents[0].quantity", "not a number"),
    (WEB, web(contents=[{"content_id": {"id": 1}}]), "contents[0].content_id", "got dict"),
    (WEB, web(contents=["sku-1"]), "contents[0]", "must be an object, got str"),
    (WEB, web(contents={"content_id": "a"}), "contents", "must be a list of objects"),
    (WEB, web(value="12,50"), "value", "not a number: '12,50'"),
    (WEB, web(value=False), "value", "got a boolean"),
    (WEB, web(num_items="3.5"), "num_items", "whole number"),
    (WEB, web(predicted_ltv={}), "predicted_ltv", "must be a number"),
    (WEB, web(content_type="products"), "content_type", "must be one of product, product_group"),
    (WEB, web(delivery_category="drone"), "delivery_category", "must be one of in_store"),
    (WEB, web(currency="US Dollar"), "currency", "ISO 4217"),
    (WEB, web(limited_data_use="yes"), "limited_data_use", "must be true or false"),
    (WEB, web(email={"address": "a@b.co"}), "email", "must be a string, got dict"),
    (WEB, web(email=["a@b.co", None]), "email[1]", "must be a string, got NoneType"),
    (WEB, web(external_id=[True]), "external_id", "got a boolean"),
    (WEB, web(city={"name": "Paris"}), "city", "must be a string or a number, got dict"),
    (WEB, web(cookie=5), "cookie", "cookie header string or an object"),
    (WEB, web(content_ids=[["a"]]), "content_ids[0]", "must be a string, got a list"),
]


@pytest.mark.parametrize(
    ("action", "payload", "field", "reason"),
    ERRORS,
    ids=[f"{i}-{e[2]}" for i, e in enumerate(ERRORS)],
)
def test_payload_error_names_event_field_reason(action, payload, field, reason):
    with pytest.raises(PayloadError) as info:
        action.build(payload, SETTINGS)
    error = info.value
    assert error.field == field
    assert reason in error.reason
    assert error.event_id == "m-1"
    assert str(error).startswith(f"event m-1, field {field}: ")
    assert error.as_dict() == {"event_id": "m-1", "field": field, "reason": error.reason}


def test_payload_not_an_object():
    with pytest.raises(PayloadError) as info:
        WEB.build(["event", "Purchase"], SETTINGS)  # type: ignore[arg-type]
    assert (info.value.field, info.value.event_id) == ("payload", None)


def test_bad_event_id_has_no_event_id():
    with pytest.raises(PayloadError) as info:
        WEB.build(web(event_id={"x": 1}), SETTINGS)
    assert (info.value.field, info.value.event_id) == ("event_id", None)


@pytest.mark.parametrize(
    "value", ["bob@example.com", "+1 (213) 373-4253", "call 2133734253", "x" * 60]
)
def test_bad_values_that_may_be_personal_are_not_echoed(value):
    for payload, field in (
        (web(value=value), "value"),
        (web(timestamp=value), "timestamp"),
        (web(currency=value), "currency"),
        (web(content_type=value), "content_type"),
    ):
        with pytest.raises(PayloadError) as info:
            WEB.build(payload, SETTINGS)
        assert info.value.field == field
        assert value not in str(info.value)
        assert f"a value of {len(value)} characters" in str(info.value)


def test_errors_never_echo_email_or_phone():
    for payload in ({**BASE, "phone": "call me 0800"}, {**BASE, "email": "secret-mailbox"}):
        with pytest.raises(PayloadError) as info:
            WEB.build(payload, SETTINGS)
        assert "0800" not in str(info.value) and "secret-mailbox" not in str(info.value)


def test_one_bad_event_does_not_stop_the_others():
    payloads = [web(event_id="a"), web(event_id="b", timestamp="nope"), web(event_id="c")]
    delivered, failed = [], []
    for payload in payloads:
        try:
            delivered.append(WEB.build(payload, SETTINGS).item["event_id"])
        except PayloadError as error:
            failed.append((error.event_id, error.field))
    assert delivered == ["a", "c"]
    assert failed == [("b", "timestamp")]


# --- warnings ------------------------------------------------------------------------------


def test_dropped_values_warn_and_event_goes_on():
    built = WEB.build(web(email=["nobody", "a@b.co"], phone="n/a", referrer="app://x"), SETTINGS)
    fields = [(w.field, w.event_id) for w in built.warnings]
    assert fields == [("email[0]", "m-1"), ("phone", "m-1"), ("referrer", "m-1")]
    assert "phone" not in built.item["user"]
    assert len(built.item["user"]["email"]) == 1
    assert str(built.warnings[1]).startswith("event m-1, field phone: not a phone number")
    assert built.warnings[1].as_dict()["field"] == "phone"


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("2023-12-22T23:59:59Z", "older than 28 days"),
        ("2024-01-20T00:10:01Z", "more than 10 minutes in the future"),
    ],
)
def test_stale_events_warn_or_drop(timestamp, reason):
    built = WEB.build(web(timestamp=timestamp), SETTINGS)
    assert [(w.field, reason in w.reason) for w in built.warnings] == [("timestamp", True)]
    dropping = load_settings({"access_token": "t", "pixel_code": "P", "stale_events": "drop"}, {})
    with pytest.raises(PayloadError) as info:
        WEB.build(web(timestamp=timestamp), dropping)
    assert info.value.field == "timestamp"
    assert reason in info.value.reason and "stale_events is drop" in info.value.reason


@pytest.mark.parametrize("timestamp", ["2023-12-23T00:00:00Z", "2024-01-20T00:10:00Z"])
def test_events_at_the_limits_do_not_warn(timestamp):
    assert WEB.build(web(timestamp=timestamp), SETTINGS).warnings == ()


def test_age_limits_are_configurable():
    strict = load_settings(
        {"access_token": "t", "pixel_code": "P", "max_event_age_days": 1, "max_future_minutes": 0},
        {},
    )
    assert WEB.build(web(timestamp=NOW - 86401), strict).warnings[0].field == "timestamp"
    assert WEB.build(web(timestamp=NOW + 1), strict).warnings[0].field == "timestamp"


# --- configuration problems are not payload problems -------------------------------------


def test_missing_event_source_id_is_a_settings_error():
    web_only = load_settings({"access_token": "t", "pixel_code": "P"}, {})
    with pytest.raises(SettingsError, match="offline_event_set_id: required by the action"):
        OFFLINE.build({**BASE, "email": "a@b.co"}, web_only)


def test_wrong_settings_type():
    with pytest.raises(TypeError, match="TikTokSettings"):
        WEB.build(web(), {"access_token": "t"})


# --- event_id ----------------------------------------------------------------------------


def test_missing_event_id_is_a_stable_content_hash():
    payload = {"event": "Purchase", "timestamp": "2024-01-15T12:00:00Z", "external_id": "u1"}
    first = WEB.build(dict(payload), SETTINGS).item["event_id"]
    again = WEB.build(dict(payload), SETTINGS).item["event_id"]
    other = WEB.build({**payload, "external_id": "u2"}, SETTINGS).item["event_id"]
    assert first == again != other
    assert len(first) == 32 and isinstance(first, str)


def test_error_without_event_id_names_the_derived_id():
    payload = {"event": "Purchase", "timestamp": "nope", "external_id": "u1"}
    with pytest.raises(PayloadError) as info:
        WEB.build(payload, SETTINGS)
    fixed = {**payload, "timestamp": 1705320000}
    assert info.value.event_id is not None and len(info.value.event_id) == 32
    assert info.value.event_id != WEB.build(fixed, SETTINGS).item["event_id"]


def test_offline_and_crm_ignore_page_fields():
    item = OFFLINE.build({**BASE, "email": "a@b.co", "url": "not checked"}, SETTINGS).item
    assert "page" not in item and "limited_data_use" not in item


# --- derivations and coercions at their edges ----------------------------------------------


@pytest.mark.parametrize(
    ("cookie", "ttp"),
    [
        ('a=1; _ttp="quoted-ttp"; b', "quoted-ttp"),
        ("bad cookie;; _ttp = spaced ;x=[y]", "spaced"),
        ("_ttp=; _ttp=second", "second"),
        ("not_ttp=1; x_ttp=2", None),
        ("a=1; b=2", None),
        ({"other": "1"}, None),
        ({"_ttp": 5}, None),
        ({"_ttp": "  "}, None),
    ],
)
def test_ttp_from_cookie_edges(cookie, ttp):
    item = WEB.build(web(cookie=cookie), SETTINGS).item
    assert item["user"].get("ttp") == ttp


@pytest.mark.parametrize(
    ("url", "ttclid"),
    [
        ("https://a.example/?ttclid=&x=1", None),
        ("https://a.example/?ttclid=%20&ttclid=E.C.P.2", "E.C.P.2"),
        ("https://a.example/#ttclid=frag", None),
        ("HTTPS://A.EXAMPLE/?TTCLID=upper", None),
        ("https://a.example/?x=1&ttclid=E.C.P.%2Fenc", "E.C.P./enc"),
    ],
)
def test_ttclid_from_url_edges(url, ttclid):
    item = WEB.build(web(url=url), SETTINGS).item
    assert item["user"].get("ttclid") == ttclid
    assert item["page"]["url"] == url


def test_number_coercions():
    item = WEB.build(
        web(
            contents=[{"content_id": 12.5, "price": "7", "quantity": "3.0"}, {"content_id": 7.0}],
            num_items=2.0,
            value=" ",
        ),
        SETTINGS,
    ).item
    assert item["properties"]["contents"] == [
        {"content_id": "12.5", "price": 7, "quantity": 3},
        {"content_id": "7"},
    ]
    assert item["properties"]["num_items"] == 2
    assert "value" not in item["properties"]
