"""Preset bundles and mapping files: the built-ins, layering, merge order, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from destination import hookimpl
from destination.errors import ConfigurationError
from destination.presets import (
    ConfigFileError,
    MappingFile,
    PresetFile,
    load_catalog,
    read_config_file,
    resolve_presets,
)

from .conftest import registered

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = "[properties.{content_id: to_string(product_id)"
PRODUCTS = "properties.products[].{content_id: to_string(product_id)"

DEFAULT = [
    ("Add to Cart", 'event = "Product Added"', "'AddToCart'", PRODUCT),
    ("Place an Order", 'event = "Order Completed"', "'PlaceAnOrder'", PRODUCTS),
    ("Search", 'event = "Products Searched"', "'Search'", None),
    ("Initiate Checkout", 'event = "Checkout Started"', "'InitiateCheckout'", PRODUCTS),
    ("Add Payment Info", 'event = "Payment Info Entered"', "'AddPaymentInfo'", PRODUCTS),
    ("Add to Wishlist", 'event = "Product Added to Wishlist"', "'AddToWishlist'", PRODUCT),
    ("View Content", 'type = "page"', "'ViewContent'", None),
]
EXTENDED = {
    "Product Viewed": "'ViewContent'",
    "Product Clicked": "'ClickButton'",
    "Signed Up": "'CompleteRegistration'",
    "Form Submitted": "'Lead'",
    "Callback Started": "'Contact'",
    "Subscription Created": "'Subscribe'",
    "Download Link Clicked": "'Download'",
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_bundle_is_exactly_seven_presets():
    config = resolve_presets()
    assert config.bundles == ["default"]
    assert [p.name for p in config.presets] == [row[0] for row in DEFAULT]
    for preset, (_, trigger, event, contents) in zip(config.presets, DEFAULT, strict=True):
        mapping = config.mapping_for(preset)
        assert preset.trigger == trigger and preset.enabled
        assert preset.action == "tiktok.report_web_event"
        assert mapping["event"] == event
        if contents is None:
            assert "contents" not in mapping
        else:
            assert mapping["contents"].startswith(contents)
            for part in (
                "content_name: name",
                "content_category: category",
                "price: price",
                "quantity: quantity",
                "brand: brand",
            ):
                assert part in mapping["contents"]


def test_extended_bundle_adds_the_other_standard_events():
    config = resolve_presets(["default", "extended"])
    extended = {
        p.name: config.mapping_for(p)["event"] for p in config.presets if p.bundle == "extended"
    }
    assert extended == EXTENDED
    assert len(config.presets) == 14


def test_naming_a_bundle_replaces_the_implicit_default():
    assert {p.bundle for p in resolve_presets(["extended"]).presets} == {"extended"}


def test_web_mapping_fields():
    fields = resolve_presets().mappings["tiktok.report_web_event"]
    assert fields["event_id"] == "messageId"
    assert fields["email"] == "properties.email || context.traits.email || traits.email"
    assert fields["external_id"] == "userId || anonymousId"
    assert fields["ttclid"] == 'properties.ttclid || integrations."TikTok Conversions".ttclid'
    assert fields["value"] == "properties.value || properties.revenue"
    assert fields["user_agent"] == "context.userAgent"
    assert fields["content_type"] == "'product'"
    assert fields["zip_code"].startswith("context.traits.address.postal_code")
    expected = {
        "event_id",
        "timestamp",
        "email",
        "phone",
        "external_id",
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
        "value",
        "query",
        "description",
        "order_id",
        "shop_id",
        "content_ids",
        "content_type",
        "num_items",
        "search_string",
        "limited_data_use",
        "delivery_category",
        "predicted_ltv",
    }
    assert set(fields) == expected


def test_offline_and_crm_mappings_exist():
    mappings = resolve_presets().mappings
    assert {"email", "phone"} <= set(mappings["tiktok.report_offline_event"])
    assert mappings["tiktok.report_crm_event"]["lead_id"].startswith("properties.lead_id")


def test_docs_example_switches_place_an_order_to_purchase(tmp_path):
    doc = (ROOT / "docs" / "presets.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "my-shop" in b)
    user = _write(tmp_path, "my-shop.yaml", block)
    config = resolve_presets([user])
    by_name = {p.name: p for p in config.presets}
    order = by_name["Place an Order"]
    assert config.mapping_for(order)["event"] == "'Purchase'"
    assert config.mapping_for(order)["contents"].startswith(PRODUCTS)  # other fields kept
    assert order.trigger == 'event = "Order Completed"' and order.bundle == "default"
    assert order.sources[-1] == str(user)
    assert not by_name["View Content"].enabled
    assert "View Content" not in [p.name for p in config.enabled]
    trial = by_name["Trial Started"]
    assert (trial.bundle, config.mapping_for(trial)["value"]) == ("my-shop", "properties.mrr")
    assert config.mapping_for(trial)["email"].startswith("properties.email")


def test_later_files_win_and_null_removes(tmp_path):
    first = _write(
        tmp_path,
        "a.yaml",
        "bundle: a\npresets:\n  - name: Search\n"
        "    trigger: 'event = \"Searched\"'\n    mapping:\n      query: properties.q\n",
    )
    second = _write(
        tmp_path,
        "b.yaml",
        "bundle: b\npresets:\n  - name: Search\n"
        "    mapping:\n      query: properties.text\n      search_string: null\n",
    )
    config = resolve_presets(["default", first, second])
    search = next(p for p in config.presets if p.name == "Search")
    mapping = config.mapping_for(search)
    assert search.trigger == 'event = "Searched"'
    assert mapping["query"] == "properties.text"
    assert "search_string" not in mapping
    assert mapping["event"] == "'Search'"


def test_user_mapping_file_layers_field_by_field(tmp_path):
    user = _write(
        tmp_path,
        "web.yaml",
        "action: tiktok.report_web_event\nfields:\n"
        "  external_id: userId\n  ip: null\n  shop_id: \"'shop-1'\"\n",
    )
    config = resolve_presets(mapping_paths=[user])
    fields = config.mappings["tiktok.report_web_event"]
    assert fields["external_id"] == "userId" and fields["shop_id"] == "'shop-1'"
    assert "ip" not in fields and fields["email"].startswith("properties.email")
    # a mapping file may also be given among the preset files
    assert resolve_presets([user]).mappings == config.mappings


def test_new_preset_needs_trigger_and_action(tmp_path):
    user = _write(
        tmp_path,
        "new.yaml",
        "bundle: mine\npresets:\n  - name: Brand New\n    mapping:\n      event: \"'Lead'\"\n",
    )
    with pytest.raises(ConfigFileError) as info:
        resolve_presets([user])
    assert f"{user}:3:5: error: preset 'Brand New' is not defined by an earlier bundle" in str(
        info.value
    )
    assert "'trigger' and 'action'" in str(info.value)


def test_name_twice_in_one_file(tmp_path):
    user = _write(
        tmp_path,
        "twice.yaml",
        "bundle: mine\npresets:\n  - name: Search\n"
        "    enabled: false\n  - name: Search\n    enabled: true\n",
    )
    with pytest.raises(ConfigFileError, match=r"twice.yaml:5:5: .*appears twice .*line 3"):
        resolve_presets([user])


def test_unknown_bundle_name():
    with pytest.raises(
        ConfigurationError, match=r"unknown preset bundle 'nope'.*default, extended"
    ):
        resolve_presets(["nope"])


def test_missing_file_and_broken_file_listed_together(tmp_path):
    broken = _write(tmp_path, "broken.yaml", "bundle: x\npresets:\n  - name: [unclosed\n")
    with pytest.raises(ConfigFileError) as info:
        resolve_presets([broken, tmp_path / "missing.yaml"])
    text = str(info.value)
    assert "broken.yaml:4:1: error: YAML syntax" in text
    assert "missing.yaml:1:1: error: no such file or directory" in text
    assert len(info.value.problems) == 2


def test_read_config_file_kinds():
    catalog = load_catalog()
    assert {b for b in catalog.bundles} >= {"default", "extended"}
    web = read_config_file(ROOT / "mappings" / "tiktok" / "report_web_event.yaml")
    assert isinstance(web, MappingFile) and web.name == "tiktok/report_web_event"
    bundle = read_config_file(ROOT / "presets" / "default.yaml")
    assert isinstance(bundle, PresetFile) and bundle.bundle == "default"


def test_builtin_files_are_found_as_package_resources():
    from importlib.resources.abc import Traversable

    from destination.plugins import collect_registry

    registry = collect_registry()
    assert any(isinstance(ref, Traversable) for ref in registry.presets)
    assert any(ref.name == "tiktok" for ref in registry.mapping_files)


def test_plugin_bundle_is_selectable(tmp_path):
    bundle = _write(
        tmp_path,
        "partner.yaml",
        "bundle: partner\npresets:\n  - name: Lead Form\n"
        "    trigger: 'event = \"Lead Captured\"'\n    action: tiktok.report_web_event\n"
        "    mapping:\n      event: \"'Lead'\"\n",
    )

    class Plugin:
        @hookimpl
        def register_presets(self, register):
            register(bundle)

    with registered(Plugin(), "partner-presets"):
        config = resolve_presets(["default", "partner"])
        assert config.presets[-1].name == "Lead Form"
