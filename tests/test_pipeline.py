"""The pipeline and the default mappings on Segment-spec sample events of every type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from destination.errors import ConfigurationError, MappingError, PayloadError
from destination.mapping import MappingFunctions, compile_mapping
from destination.pipeline import Pipeline, find_action
from destination.plugins import collect_registry
from destination.presets import resolve_presets

from .segment_samples import CONTEXT, SAMPLES

CONTEXT_USER = {
    "email": "Context@Example.com",
    "phone": "+1 213 373 4253",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "city": "San Francisco",
    "state": "CA",
    "country": "US",
    "zip_code": "94107",
    "ip": "203.0.113.7",
    "user_agent": CONTEXT["userAgent"],
    "locale": "en-US",
    "url": "https://shop.example.com/cart?ttclid=E.C.P.from-url",
    "referrer": "https://www.tiktok.com/",
}
MONOPOLY = {
    "content_id": "507f1f77",
    "content_name": "Monopoly",
    "content_category": "Games",
    "price": 19,
    "quantity": 1,
    "brand": "Hasbro",
}
UNO = {
    "content_id": "505",
    "content_name": "Uno",
    "content_category": "Games",
    "price": "3.45",  # the action coerces numeric strings (and rejects others)
    "quantity": 2,
}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    yield Pipeline.from_presets(["default", "extended"])


@pytest.fixture(scope="module")
def web_mapping():
    config = resolve_presets()
    functions = MappingFunctions.from_registry(collect_registry())
    return compile_mapping(config.mappings["tiktok.report_web_event"], functions)


def _only(pipeline: Pipeline, sample: str) -> tuple[str, dict]:
    matches = pipeline.match(SAMPLES[sample])
    assert len(matches) == 1, [m.preset.name for m in matches]
    return matches[0].preset.name, matches[0].payload


def test_product_added(pipeline):
    name, payload = _only(pipeline, "product_added")
    assert name == "Add to Cart"
    assert payload == {
        **CONTEXT_USER,
        "event": "AddToCart",
        "event_id": "msg-product-added",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "email": "Buyer@Example.com",  # properties before context.traits
        "external_id": "user_123",
        "ttclid": "E.C.P.integration",  # integrations."TikTok Conversions"
        "ttp": "ttp-int",
        "currency": "USD",
        "value": 18.99,
        "content_type": "product",
        "contents": [
            {
                "content_id": "507f1f77bcf86cd799439011",
                "content_name": "Monopoly: 3rd Edition",
                "content_category": "Games",
                "price": 18.99,
                "quantity": 1,
                "brand": "Hasbro",
            }
        ],
    }


def test_order_completed(pipeline):
    name, payload = _only(pipeline, "order_completed")
    assert name == "Place an Order"
    assert payload == {
        "event": "PlaceAnOrder",
        "event_id": "msg-order",
        "timestamp": 1763632800,
        "phone": "2133734253",
        "external_id": "anon-2",  # no userId: anonymousId
        "ttclid": "E.C.P.properties",  # properties before integrations
        "ip": "198.51.100.1",
        "user_agent": "curl/8",
        "currency": "EUR",
        "value": 25.0,  # no value: revenue
        "order_id": "50314b8e9bcf000000000000",
        "content_type": "product",
        "contents": [MONOPOLY, UNO],  # numeric id → string, no null brand
    }


def test_zero_value_is_kept_and_empty_user_id_falls_back(pipeline):
    _, payload = _only(pipeline, "order_completed_zero_value")
    assert payload["value"] == 0
    assert payload["external_id"] == "anon-3"
    assert payload["event_id"] == 42
    assert "contents" not in payload  # empty products: no field at all


def test_search(pipeline):
    name, payload = _only(pipeline, "products_searched")
    assert name == "Search"
    assert payload["query"] == payload["search_string"] == "blue roses"
    assert payload["email"] == "top-level@example.com"  # falls back to top-level traits
    assert "contents" not in payload


def test_checkout_and_payment(pipeline):
    name, payload = _only(pipeline, "checkout_started")
    assert name == "Initiate Checkout"
    assert payload["value"] == 30 and payload["limited_data_use"] is True
    assert payload["contents"] == [MONOPOLY, UNO]
    assert {k: payload[k] for k in CONTEXT_USER} == CONTEXT_USER
    name, payload = _only(pipeline, "payment_info_entered")
    assert name == "Add Payment Info"
    assert payload["contents"] == [{"content_id": "1"}]
    assert payload["delivery_category"] == "home_delivery"
    assert payload["predicted_ltv"] == 120.5


def test_wishlist_viewed_signed_up(pipeline):
    assert _only(pipeline, "product_added_to_wishlist") == (
        "Add to Wishlist",
        {
            "event": "AddToWishlist",
            "event_id": "msg-wishlist",
            "timestamp": "2026-11-20T10:00:00Z",
            "external_id": "anon-4",
            "content_type": "product",
            "contents": [{"content_id": "77", "content_name": "Kite", "price": 12}],
        },
    )
    name, payload = _only(pipeline, "product_viewed")
    assert (name, payload["event"], payload["content_ids"]) == (
        "Product Viewed",
        "ViewContent",
        ["p-5"],
    )
    name, payload = _only(pipeline, "signed_up")
    assert (name, payload["event"]) == ("Signed Up", "CompleteRegistration")
    assert payload["first_name"] == "Grace"  # context.traits.firstName, not properties


def test_page_is_view_content(pipeline):
    name, payload = _only(pipeline, "page")
    assert name == "View Content"
    assert payload == {
        "event": "ViewContent",
        "event_id": "msg-page",
        "timestamp": "2026-11-20T10:00:00Z",
        "external_id": "anon-7",
        "ip": "192.0.2.10",
        "user_agent": "UA",
        "locale": "fr-FR",
        "url": "https://shop.example.com/?ttclid=abc",
        "referrer": "",
        "content_type": "product",
    }


@pytest.mark.parametrize("sample", ["identify", "screen", "group", "alias"])
def test_other_types_trigger_no_default_preset(pipeline, sample):
    assert pipeline.match(SAMPLES[sample]) == []


def test_identify_maps_traits(web_mapping):
    assert web_mapping(SAMPLES["identify"]) == {
        "event_id": "msg-identify",
        "timestamp": "2026-11-20T10:00:00Z",
        "email": "peter@example.com",
        "phone": "555-0100",
        "external_id": "user_8",
        "first_name": "Peter",
        "city": "Berlin",
        "country": "DE",
        "zip_code": "10115",
        "content_type": "product",
    }


@pytest.mark.parametrize(
    ("sample", "user"), [("screen", "user_9"), ("group", "user_10"), ("alias", "user_11")]
)
def test_screen_group_alias_map_identifiers(web_mapping, sample, user):
    payload = web_mapping(SAMPLES[sample])
    assert payload == {
        "event_id": f"msg-{sample}",
        "timestamp": "2026-11-20T10:00:00Z",
        "external_id": user,
        "content_type": "product",
    }


def test_odd_shapes_never_raise(pipeline):
    _, payload = _only(pipeline, "odd_shapes")
    assert payload == {
        "event": "AddToCart",
        "event_id": "msg-odd",
        "timestamp": 1795168800,
        "content_type": "product",
    }


def test_missing_required_field_is_a_payload_error(pipeline):
    event = {**SAMPLES["product_added"], "timestamp": None}
    with pytest.raises(PayloadError) as info:
        pipeline.match(event)
    assert "'timestamp' is a required property" in str(info.value)
    assert info.value.event_id == "msg-product-added" and info.value.field == "timestamp"


def test_event_must_be_an_object(pipeline):
    with pytest.raises(PayloadError, match="JSON object, got list"):
        pipeline.match([])


def test_payload_schema_violation_is_a_payload_error(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text(
        "bundle: mine\npresets:\n  - name: Add to Cart\n    mapping:\n"
        "      value: properties.price\n"
    )
    pipeline = Pipeline.from_presets([user])
    event = {
        "type": "track",
        "event": "Product Added",
        "messageId": "m-9",
        "timestamp": 1795168800,
        "properties": {"price": "secret@example.com"},
    }
    with pytest.raises(PayloadError) as info:
        pipeline.match(event)
    assert info.value.field == "value" and info.value.event_id == "m-9"
    assert "Add to Cart" in str(info.value)
    assert "secret@example.com" not in str(info.value)  # values are never quoted


def test_unknown_action_is_a_configuration_error(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text(
        "bundle: mine\npresets:\n  - name: X\n    trigger: 'type = \"track\"'\n"
        "    action: nowhere.nothing\n"
    )
    with (
        pytest.raises(ConfigurationError, match=r"unknown action 'nowhere\.nothing'"),
    ):
        Pipeline.from_presets([user])


def test_disabled_presets_are_not_compiled(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("bundle: mine\npresets:\n  - name: View Content\n    enabled: false\n")
    pipeline = Pipeline.from_presets([user])
    assert "View Content" not in [p.name for p in pipeline.presets]
    assert pipeline.match(SAMPLES["page"]) == []


def test_find_action():
    registry = collect_registry()
    assert find_action(registry, "tiktok.report_web_event") is not None
    assert find_action(registry, "tiktok") is None
    assert find_action(registry, "tiktok.nope") is None


def test_compile_errors_name_the_file_field_and_expression(tmp_path):
    web = tmp_path / "web.yaml"
    web.write_text("action: tiktok.report_web_event\nfields:\n  ip: context.ip ||\n")
    with pytest.raises(MappingError) as info:
        Pipeline.from_presets(mapping_paths=[web])
    text = str(info.value)
    assert text.startswith(f"{web} (preset 'Add to Cart'): field 'ip': invalid JMESPath")
    assert text.endswith("(expression: context.ip ||)")
    user = tmp_path / "mine.yaml"
    user.write_text(
        "bundle: mine\npresets:\n  - name: Search\n    trigger: 'event = = 1'\n"
        "    mapping:\n      query: nosuch(a)\n"
    )
    with pytest.raises(ConfigurationError) as info:
        Pipeline.from_presets([user])
    assert "preset 'Search'" in str(info.value) and str(user) in str(info.value)
    assert "trigger" in str(info.value)
    user.write_text(
        "bundle: mine\npresets:\n  - name: Search\n    mapping:\n      query: nosuch(a)\n"
    )
    with pytest.raises(MappingError, match=r"mine\.yaml \(preset 'Search'\)"):
        Pipeline.from_presets([user])


def test_match_each_keeps_other_presets_when_one_payload_breaks_its_schema(tmp_path):
    from destination.pipeline import Pipeline

    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "bundle: extra\npresets:\n  - name: Order as Purchase\n"
        "    trigger: 'event = \"Order Completed\"'\n    action: tiktok.report_web_event\n"
        "    mapping:\n      event: \"'Purchase'\"\n      currency: \"'USD'\"\n"
    )
    pipeline = Pipeline.from_presets(["default", extra])
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m1",
        "userId": "u1",
        "timestamp": "2026-11-30T00:00:00Z",
        "properties": {"currency": "dollars"},
    }
    first, second = pipeline.match_each(event)
    assert first.preset.name == "Place an Order" and first.error is not None
    assert first.error.field == "currency" and first.error.event_id == "m1"
    assert str(first.error).endswith("must be a 3-letter ISO 4217 currency code")
    assert second.preset.name == "Order as Purchase" and second.error is None
    with pytest.raises(PayloadError, match="ISO 4217"):
        pipeline.match(event)
