"""Every validation rule of the sandbox, through real HTTP, plus the fast/strict agreement."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.tiktok.sandbox import SANDBOX_TOKEN, TRACK_PATH, Sandbox
from destination.tiktok.sandbox.validation import validate_body, validate_event

HASH = hashlib.sha256(b"alice@example.com").hexdigest()
HASH2 = hashlib.sha256(b"+12133734253").hexdigest()


def good_event(n: int = 0) -> dict[str, Any]:
    return {
        "event": "Purchase",
        "event_time": 1_763_800_000 + n,
        "event_id": f"evt-{n}",
        "user": {"email": HASH, "phone": HASH2, "external_id": HASH, "ip": "203.0.113.7"},
        "properties": {
            "contents": [{"content_id": "sku-1", "price": 5.0, "quantity": 2}],
            "content_ids": ["sku-1"],
            "content_type": "product",
            "currency": "USD",
            "value": 10,
            "order_id": "o-1",
            "shop_id": "s-1",
        },
        "page": {"url": "https://shop.example.com/p/1", "referrer": "https://google.com/"},
        "limited_data_use": False,
    }


def body(data: list[Any], **envelope: Any) -> dict[str, Any]:
    return {"event_source": "web", "event_source_id": "PIXEL1", "data": data, **envelope}


def put(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with value=DELETE, remove) a dotted path in a copy of ``event``."""
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = event
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return event


DELETE = object()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    sandbox.reset()
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def post(client: httpx.Client, payload: Any, token: str | None = SANDBOX_TOKEN) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Access-Token"] = token
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    answer = client.post(TRACK_PATH, content=content, headers=headers)
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    assert set(result) == {"code", "message", "request_id", "data"}
    return result


# (path inside data[3], bad value, expected message after "data.3.")
EVENT_RULES = [
    ("event", DELETE, "event: Missing data for required field"),
    ("event", 123, "event: Not a valid string"),
    ("event", None, "event: Field may not be null"),
    ("event", "", "event: Field may not be empty"),
    ("event_time", DELETE, "event_time: Missing data for required field"),
    ("event_time", 1_763_800_000_000, "event_time: Timestamp looks like milliseconds"),
    ("event_time", "1763800000", "event_time: Not a valid integer"),
    ("event_time", 1_763_800_000.5, "event_time: Not a valid integer"),
    ("event_time", True, "event_time: Not a valid integer"),
    ("event_time", -5, "event_time: Must be a positive Unix timestamp"),
    ("event_id", 42, "event_id: Not a valid string"),
    ("event_id", None, "event_id: Field may not be null"),
    ("user", [], "user: Not a valid object"),
    ("user.email", "alice@example.com", "user.email: Not a valid SHA-256 hash"),
    ("user.email", HASH.upper(), "user.email: Not a valid SHA-256 hash"),
    ("user.email", HASH[:63], "user.email: Not a valid SHA-256 hash"),
    ("user.email", HASH[:63] + "g", "user.email: Not a valid SHA-256 hash"),
    ("user.email", [HASH, "x"], "user.email.1: Not a valid SHA-256 hash"),
    ("user.email", [], "user.email: List may not be empty"),
    ("user.email", None, "user.email: Field may not be null"),
    ("user.phone", "+12133734253", "user.phone: Not a valid SHA-256 hash"),
    ("user.external_id", "user_123", "user.external_id: Not a valid SHA-256 hash"),
    ("user.external_id", 123, "user.external_id: Not a valid SHA-256 hash"),
    ("user.ip", 203, "user.ip: Not a valid string"),
    ("properties", "x", "properties: Not a valid object"),
    ("properties.contents", {}, "properties.contents: Not a valid list"),
    ("properties.contents.0", "sku", "properties.contents.0: Not a valid object"),
    ("properties.contents.0.content_id", 1, "properties.contents.0.content_id: Not a valid string"),
    ("properties.contents.0.price", "5.00", "properties.contents.0.price: Not a valid number"),
    ("properties.contents.0.price", True, "properties.contents.0.price: Not a valid number"),
    ("properties.contents.0.quantity", 1.5, "properties.contents.0.quantity: Not a valid integer"),
    ("properties.contents.0.quantity", "2", "properties.contents.0.quantity: Not a valid integer"),
    ("properties.content_ids", "sku-1", "properties.content_ids: Not a valid list"),
    ("properties.content_ids.0", 1, "properties.content_ids.0: Not a valid string"),
    ("properties.content_type", "products", "properties.content_type: Must be one of"),
    ("properties.content_type", ["product"], "properties.content_type: Must be one of"),
    ("properties.currency", "usd", "properties.currency: Not a valid ISO 4217 currency code"),
    ("properties.currency", "US", "properties.currency: Not a valid ISO 4217 currency code"),
    ("properties.currency", "USDD", "properties.currency: Not a valid ISO 4217 currency code"),
    ("properties.currency", "U$D", "properties.currency: Not a valid ISO 4217 currency code"),
    ("properties.currency", 840, "properties.currency: Not a valid string"),
    ("properties.value", "10.00", "properties.value: Not a valid number"),
    ("properties.value", None, "properties.value: Field may not be null"),
    ("properties.order_id", 1001, "properties.order_id: Not a valid string"),
    ("properties.shop_id", 7, "properties.shop_id: Not a valid string"),
    ("page", "https://x", "page: Not a valid object"),
    ("page.url", "shop.example.com/p/1", "page.url: Not a valid URL"),
    ("page.url", "ftp://shop.example.com/", "page.url: Not a valid URL"),
    ("page.url", 5, "page.url: Not a valid string"),
    ("page.referrer", 5, "page.referrer: Not a valid string"),
    ("limited_data_use", "true", "limited_data_use: Not a valid boolean"),
    ("limited_data_use", 1, "limited_data_use: Not a valid boolean"),
]


@pytest.mark.parametrize(("path", "value", "message"), EVENT_RULES)
def test_each_event_rule_is_40002_naming_the_path(
    client: httpx.Client, sandbox: Sandbox, path: str, value: Any, message: str
) -> None:
    data = [good_event(n) for n in range(5)]
    data[3] = put(data[3], path, value)
    answer = post(client, body(data))
    assert answer["code"] == 40002
    assert answer["message"].startswith(f"data.3.{message}"), answer["message"]
    assert sandbox.events() == []  # the whole request is rejected


def test_a_valid_batch_is_accepted_and_recorded(client: httpx.Client, sandbox: Sandbox) -> None:
    data = [good_event(n) for n in range(3)]
    data[1]["user"]["email"] = [HASH, HASH2]  # a list of hashes is fine
    data[2] = {"event": "CustomThing", "event_time": 1_763_800_000}  # minimal, custom name
    answer = post(client, body(data, test_event_code="TEST123", partner_name="Segment"))
    assert answer["code"] == 0
    assert answer["message"] == "OK"
    assert answer["data"] == {}
    events = sandbox.events()
    assert [e.data for e in events] == data
    assert {e.test_event_code for e in events} == {"TEST123"}
    assert {e.event_source_id for e in events} == {"PIXEL1"}
    assert {e.request_id for e in events} == {answer["request_id"]}


def test_request_ids_are_unique(client: httpx.Client) -> None:
    ids = {post(client, body([good_event()]))["request_id"] for _ in range(5)}
    assert len(ids) == 5


def test_the_first_bad_field_in_order_is_named(client: httpx.Client) -> None:
    data = [good_event(n) for n in range(5)]
    data[1] = put(data[1], "properties.value", "1")
    data[3] = put(data[3], "user.email", "x")
    data[1] = put(data[1], "user.email", "y")  # within one event: user before properties
    answer = post(client, body(data))
    assert answer["message"] == "data.1.user.email: Not a valid SHA-256 hash"


def test_an_event_that_is_not_an_object(client: httpx.Client) -> None:
    answer = post(client, body([good_event(), "Purchase"]))
    assert (answer["code"], answer["message"]) == (40002, "data.1: Not a valid object")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"event_source_id": "PIXEL1", "data": [good_event()]}, "event_source: Missing"),
        (body([good_event()], event_source="server"), "event_source: Must be one of"),
        (body([good_event()], event_source=["web"]), "event_source: Must be one of"),
        ({"event_source": "web", "data": [good_event()]}, "event_source_id: Missing"),
        (body([good_event()], event_source_id=12), "event_source_id: Not a valid string"),
        (body([good_event()], event_source_id=""), "event_source_id: Field may not be empty"),
        (body([good_event()], test_event_code=1), "test_event_code: Not a valid string"),
        ({"event_source": "web", "event_source_id": "P"}, "data: Missing data"),
        (body({"event": "Purchase"}), "data: Not a valid list"),
        (body([]), "data: Length must be between 1 and 1000 (got 0)"),
        (body([good_event(n) for n in range(1001)]), "data: Length must be between 1 and 1000"),
        ([good_event()], "Request body must be a JSON object"),
    ],
)
def test_envelope_rules(client: httpx.Client, payload: Any, message: str) -> None:
    answer = post(client, payload)
    assert answer["code"] == 40002
    assert answer["message"].startswith(message), answer["message"]


def test_exactly_1000_events_are_accepted(client: httpx.Client, sandbox: Sandbox) -> None:
    assert post(client, body([good_event(n) for n in range(1000)]))["code"] == 0
    assert sandbox.counts() == {"Purchase": 1000}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"data": [}', b'{"event_source": NaN}', b"\xff\xfe", b'{"a": Infinity}'],
)
def test_malformed_json_is_40002(client: httpx.Client, raw: bytes) -> None:
    answer = post(client, raw)
    assert answer["code"] == 40002
    assert answer["message"].startswith("Invalid JSON"), answer["message"]


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "Access-Token header is missing"),
        ("wrong-token", "Access token is incorrect or has been revoked"),
        (f"Bearer {SANDBOX_TOKEN}", "without a 'Bearer ' prefix"),
        ("", "Access token is incorrect"),
    ],
)
def test_access_token_rules_are_40105(
    client: httpx.Client, sandbox: Sandbox, token: str | None, message: str
) -> None:
    answer = post(client, body([good_event()]), token=token)
    assert answer["code"] == 40105
    assert message in answer["message"]
    assert SANDBOX_TOKEN not in answer["message"]
    assert sandbox.events() == []


def test_auth_is_checked_before_the_body(client: httpx.Client) -> None:
    assert post(client, b"{not json", token="nope")["code"] == 40105


def test_unknown_pixel_is_40001_and_known_ones_pass() -> None:
    with (
        Sandbox(pixels=["PIXEL1", "APPID"], tokens=["t1", "t2"]) as box,
        httpx.Client(base_url=box.url) as http,
    ):
        answer = post(http, body([good_event()], event_source_id="OTHER"), token="t2")
        assert answer["code"] == 40001
        assert "OTHER" in answer["message"]
        assert post(http, body([good_event()]), token="t2")["code"] == 0
        assert post(http, body([good_event()], event_source_id="APPID"), token="t1")["code"] == 0
        assert post(http, body([good_event()]), token=SANDBOX_TOKEN)["code"] == 40105


def test_crm_events_need_a_lead_id(client: httpx.Client) -> None:
    event = {"event": "Lead", "event_time": 1_763_800_000, "user": {"email": HASH}}
    answer = post(client, body([event], event_source="crm"))
    assert answer["message"] == "data.0.lead.lead_id: Missing data for required field"
    answer = post(client, body([{**event, "lead": {"lead_id": 5}}], event_source="crm"))
    assert answer["message"] == "data.0.lead.lead_id: Not a valid string"
    assert (
        post(client, body([{**event, "lead": {"lead_id": "L1"}}], event_source="crm"))["code"] == 0
    )


@pytest.mark.parametrize("source", ["web", "app", "offline", "crm"])
def test_every_event_source_is_accepted(client: httpx.Client, source: str) -> None:
    event = {**good_event(), "lead": {"lead_id": "L1"}}
    assert post(client, body([event], event_source=source))["code"] == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", TRACK_PATH, 405),
        ("PUT", TRACK_PATH, 405),
        ("POST", "/open_api/v1.3/event/track", 404),
        ("POST", "/open_api/v1.2/event/track/", 404),
        ("GET", "/", 404),
    ],
)
def test_wrong_method_or_path(client: httpx.Client, method: str, path: str, status: int) -> None:
    answer = client.request(method, path, headers={"Access-Token": SANDBOX_TOKEN})
    assert answer.status_code == status
    if status == 405:
        assert answer.headers["allow"] == "POST"


# -- the fast path never accepts what the strict checks refuse ---------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=2 * 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["", "USD", "usd", "product", "product_group", "https://a.b/", "x", HASH, HASH.upper()]
    ),
    st.lists(st.sampled_from([HASH, "x", 1]), max_size=2),
    st.just({}),
)
PATHS = [path for path, _, _ in EVENT_RULES if not path.endswith(".0")] + [
    "user.ttclid",
    "lead",
]


@st.composite
def mutated_batches(draw: st.DrawFn) -> dict[str, Any]:
    data = []
    for n in range(draw(st.integers(1, 4))):
        event = good_event(n)
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):  # a known-bad value for its field
                path, value, _ = draw(st.sampled_from(EVENT_RULES))
            else:  # anything anywhere
                path = draw(st.sampled_from(PATHS))
                value = draw(st.one_of(VALUES, st.just(DELETE)))
            # The parent may have been replaced by a non-container earlier.
            with contextlib.suppress(KeyError, TypeError, IndexError, ValueError):
                event = put(event, path, value)
        data.append(event)
    return body(data, event_source=draw(st.sampled_from(["web", "crm"])))


@settings(max_examples=300, deadline=None)
@given(mutated_batches())
def test_fast_path_agrees_with_the_strict_checks(payload: dict[str, Any]) -> None:
    strict = next(
        (
            problem
            for index, item in enumerate(payload["data"])
            if (problem := validate_event(item, index, payload["event_source"]))
        ),
        None,
    )
    assert validate_body(payload) == strict
