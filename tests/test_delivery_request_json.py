"""Building a request from stored JSON equals building it from the decoded items."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from destination.actions import Route
from destination.tiktok.destination import TikTokDestination

from .delivery_support import FakeDestination, item, route

TIKTOK = TikTokDestination()
ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), min_size=1, max_size=5),
    st.sampled_from([None, "TEST123"]),
    st.sampled_from([None, "Partner é"]),
)
def test_tiktok_splice_is_byte_identical(items: list[dict[str, Any]], test_code, partner):
    raw: dict[str, Any] = {"access_token": "tok", "pixel_code": "CPIX"}
    if test_code:
        raw["test_event_code"] = test_code
    if partner:
        raw["partner_name"] = partner
    config = TIKTOK.load_settings(raw, {})
    where = Route("tiktok", "web")
    decoded = TIKTOK.build_request(config, where, items)
    spliced = TIKTOK.build_request_json(config, where, [ENCODE(i) for i in items])
    assert spliced.body == decoded.body
    assert spliced.headers == decoded.headers and spliced.url == decoded.url
    assert spliced.secret_headers == decoded.secret_headers


def test_default_implementation_decodes():
    fake = FakeDestination()
    items = [item(1), item(2)]
    spliced = fake.build_request_json({"token": "t"}, route(), [ENCODE(i) for i in items])
    assert json.loads(spliced.body)["data"] == items


def test_tiktok_splice_refuses_empty_and_oversized():
    import pytest

    config = TIKTOK.load_settings({"access_token": "tok", "pixel_code": "CPIX"}, {})
    where = Route("tiktok", "web")
    with pytest.raises(ValueError, match="at least one"):
        TIKTOK.build_request_json(config, where, [])
    with pytest.raises(ValueError, match="at most 1000"):
        TIKTOK.build_request_json(config, where, ["{}"] * 1001)
