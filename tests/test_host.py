"""The host API: a Runtime built from config, events in, per-event outcomes and results out."""

from __future__ import annotations
import __future__

import asyncio
import copy
import inspect
import json
import threading
from pathlib import Path
from typing import Any

import pytest

import destination
from destination import (
    ConfigurationError,
    EventOutcome,
    PayloadError,
    ResultOutcome,
    Runtime,
    hookimpl,
    load_config,
)
from destination.config import Config
from destination.plugins import pm
from destination.tiktok.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PIXEL = "CHOSTPIXEL01"


def order(n: int, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"host-{n}",
        "timestamp": "2026-11-30T12:00:00Z",
        "userId": f"user-{n}",
        "context": {"traits": {"email": f"Buyer{n}@Example.com"}, "ip": "203.0.113.9"},
        "properties": {
            "order_id": f"o-{n}",
            "currency": "USD",
            "products": [{"product_id": 7, "price": 12.5, "quantity": 2}],
        },
    }
    event.update(extra)
    return event


@pytest.fixture
def sandbox():
    box = Sandbox(pixels=[PIXEL]).start()
    try:
        yield box
    finally:
        box.stop()


def config_for(box: Sandbox, tmp_path: Path, **delivery: Any) -> dict[str, Any]:
    return {
        "settings": {"access_token": box.token, "pixel_code": PIXEL, "api_base_url": box.url},
        "delivery": {"outbox": str(tmp_path / "outbox.db"), "linger": 0.01, **delivery},
    }


def test_public_api_is_exactly_all():
    for name in destination.__all__:  # the lazily imported names resolve, and stay
        getattr(destination, name)
    public = {
        name
        for name, value in vars(destination).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)
    }
    assert sorted(destination.__all__) == sorted(public | {"__version__"})
    for name in ("Runtime", "EventOutcome", "ActionOutcome", "load_config", "DeliveryResult"):
        assert name in destination.__all__


def test_process_batch_delivers_and_reports_each_event(sandbox, tmp_path):
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        outcomes = runtime.process_batch(
            [
                order(1),
                order(2),
                {"type": "page", "anonymousId": "a", "timestamp": "2026-11-30T12:00:00Z"},
            ]
        )
        assert [o.matched for o in outcomes] == [
            ("Place an Order",),
            ("Place an Order",),
            ("View Content",),
        ]
        first = outcomes[0]
        assert first.ok and first.accepted == 1 and first.event_id == "host-1"
        item = first.actions[0].item
        assert item is not None and item["event"] == "PlaceAnOrder"
        assert item["user"]["email"] == [
            __import__("hashlib").sha256(b"buyer1@example.com").hexdigest()
        ]
        assert first.actions[0].payload["email"] == "Buyer1@Example.com"  # before hashing
        assert runtime.flush(10)
        results = first.results(timeout=10)
        assert [r.outcome for r in results] == [ResultOutcome.DELIVERED]
        assert first.delivered
        stats = runtime.stats()
    assert stats["received"] == 3 and stats["matched"] == 3 and stats["delivered"] == 3
    assert stats["matched_by_preset"] == {"Place an Order": 2, "View Content": 1}
    assert sorted(e.event_id for e in sandbox.events()) == sorted(
        ["host-1", "host-2", outcomes[2].event_id]
    )
    assert not sandbox.duplicates()


def test_bad_events_never_raise_and_the_rest_goes_on(sandbox, tmp_path):
    events: list[Any] = [
        ["not", "an", "object"],
        order(1, timestamp="yesterday at noon"),
        order(2),
        {"type": "identify", "userId": "u"},  # matches nothing
    ]
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        outcomes = runtime.process_batch(events)
        runtime.flush(10)
        assert outcomes[2].results(10)[0].outcome is ResultOutcome.DELIVERED
        stats = runtime.stats()
    not_object, bad_time, good, unmatched = outcomes
    assert not_object.error is not None and "JSON object" in not_object.error.reason
    assert not bad_time.ok and bad_time.accepted == 0
    (error,) = bad_time.errors
    assert isinstance(error, PayloadError)
    assert error.event_id == "host-1" and error.field == "timestamp"
    assert "unparseable" in error.reason
    assert good.ok and good.accepted == 1
    assert unmatched.ok and unmatched.matched == () and unmatched.delivered
    assert stats["invalid"] == 2 and stats["received"] == 4
    assert any("timestamp" in reason for reason in stats["invalid_reasons"])
    assert [e.event_id for e in sandbox.events()] == ["host-2"]


def test_an_event_without_message_id_gets_a_stable_content_id(sandbox, tmp_path):
    event = order(1)
    del event["messageId"]
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        a = runtime.process(copy.deepcopy(event))
        b = runtime.process({**copy.deepcopy(event), "sentAt": "2026-11-30T12:00:09Z"})
        runtime.flush(10)
    assert a.event_id == b.event_id and a.event_id.startswith("h-")
    assert a.actions[0].item["event_id"] == a.event_id
    # Both were sent with the same event_id, so TikTok deduplicates the second.
    assert list(sandbox.duplicates().values()) == [2]


def test_outcome_repr_and_stats_never_show_the_token_or_raw_email(sandbox, tmp_path):
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        outcome = runtime.process(order(1))
        texts = [repr(runtime), repr(outcome), repr(outcome.actions), json.dumps(runtime.stats())]
    for text in texts:
        assert sandbox.token not in text
        assert "Buyer1@Example.com" not in text


def test_environment_overrides_the_config(sandbox, tmp_path):
    config = config_for(sandbox, tmp_path)
    config["settings"]["access_token"] = "wrong-token"
    environ = {"TIKTOK_ACCESS_TOKEN": sandbox.token}
    with Runtime.from_config(config, environ=environ) as runtime:
        runtime.process(order(1))
        assert runtime.flush(10)
        assert not runtime.stopped
    assert len(sandbox.events()) == 1


def test_a_revoked_token_stops_delivery_and_keeps_events(sandbox, tmp_path):
    config = config_for(sandbox, tmp_path)
    config["settings"]["access_token"] = "revoked-token"
    with Runtime.from_config(config, environ={}) as runtime:
        runtime.process_batch([order(1), order(2)])
        runtime.flush(10)
        assert runtime.stopped
        assert "revoked-token" not in (runtime.stop_reason or "")
        assert runtime.stats()["pending"] == 2


def test_threads_share_one_runtime(sandbox, tmp_path):
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:

        def work(worker: int) -> None:
            for chunk in range(5):
                runtime.process_batch([order(worker * 1000 + chunk * 50 + i) for i in range(50)])

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert runtime.flush(30)
        assert runtime.stats()["delivered"] == 1000
    assert len(sandbox.events()) == 1000 and not sandbox.duplicates()


def test_async_api(sandbox, tmp_path):
    async def main() -> tuple[EventOutcome, list[EventOutcome], list[Any]]:
        async with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
            one = await runtime.aprocess(order(1))
            many = await runtime.aprocess_batch([order(2), order(3)])
            await runtime.aflush(10)
            return one, many, await one.aresults(10)

    one, many, results = asyncio.run(main())
    assert one.accepted == 1 and [o.accepted for o in many] == [1, 1]
    assert [r.event_id for r in results] == ["host-1"]
    assert len(sandbox.events()) == 3


def test_on_result_callback_sees_every_result(sandbox, tmp_path):
    seen: list[str] = []
    with Runtime.from_config(
        config_for(sandbox, tmp_path),
        environ={},
        on_result=lambda r: seen.append(r.event_id),
        track_results=False,
    ) as runtime:
        outcome = runtime.process_batch([order(1), order(2)])[0]
        runtime.flush(10)
    assert sorted(seen) == ["host-1", "host-2"]
    assert outcome.results(0) == []  # not tracked


def test_hook_transform_payload(sandbox, tmp_path):
    calls: list[tuple[str, str]] = []

    class Plugin:
        @hookimpl
        def transform_payload(self, payload, event, preset, action):
            calls.append((preset, action))
            if event.get("userId") == "user-2":
                raise PayloadError("internal test account", field="external_id")
            payload["event"] = "Purchase"

    pm.register(Plugin(), name="test-transform")
    try:
        with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
            first, second = runtime.process_batch([order(1), order(2)])
            runtime.flush(10)
    finally:
        pm.unregister(name="test-transform")
    assert calls == [("Place an Order", "tiktok.report_web_event")] * 2
    assert first.actions[0].item["event"] == "Purchase"
    assert second.errors[0].reason == "internal test account"
    assert second.errors[0].event_id == "host-2"
    assert [e.event for e in sandbox.events()] == ["Purchase"]


def test_dry_run_executor_from_config(tmp_path, capsys):
    config = {
        "settings": {"access_token": "tok-secret-1", "pixel_code": PIXEL},
        "delivery": {"executor": "dry-run", "outbox": str(tmp_path / "o.db"), "linger": 0},
    }
    with Runtime.from_config(config, environ={}) as runtime:
        outcome = runtime.process(order(1))
        runtime.flush(10)
        assert outcome.results(5)[0].outcome is ResultOutcome.DELIVERED
    line = json.loads(capsys.readouterr().out)
    assert line["headers"]["Access-Token"] == "[REDACTED]"
    assert line["body"]["data"][0]["event_id"] == "host-1"


CONFIG_WITH_MISTAKES = """\
destination: tiktok
settings:
  pixel_code: CPIX
  default_phone_region: XX
  colour: blue
presets: default
delivery:
  batch_size: 5000
  executer: http
"""


def test_config_file_errors_are_all_listed_with_lines(tmp_path):
    path = tmp_path / "destination.yaml"
    path.write_text(CONFIG_WITH_MISTAKES)
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    text = str(info.value)
    assert f"{path}:6:10: error: presets must be a list" in text
    assert f"{path}:8:15: error:" in text and "batch_size" in text
    assert f"{path}:9:3: error: unknown key 'executer'" in text


def test_settings_errors_point_at_their_lines(tmp_path):
    path = tmp_path / "destination.yaml"
    path.write_text(
        CONFIG_WITH_MISTAKES.replace("presets: default", "presets: [default]").replace(
            "  batch_size: 5000\n  executer: http\n", "  batch_size: 10\n"
        )
    )
    config = load_config(path)
    with pytest.raises(ConfigurationError) as info:
        Runtime(config, environ={})
    text = str(info.value)
    assert f"{path}:4:3: error: settings: default_phone_region" in text
    assert f"{path}:5:3: error: settings: colour: unknown setting" in text
    assert "access_token: required" in text


def test_unknown_destination_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigurationError, match="unknown destination 'nope'"):
        Runtime(Config(destination="nope"), environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"bad\.yaml:2:1: error: YAML syntax"):
        load_config(bad)
    with pytest.raises(ConfigurationError, match="no such configuration file"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_are_relative_to_the_config_file(tmp_path, sandbox):
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "purchase.yaml").write_text(
        "bundle: mine\npresets:\n  - name: Place an Order\n    mapping:\n"
        "      event: \"'Purchase'\"\n"
    )
    (folder / "destination.yaml").write_text(
        f"settings:\n  access_token: {sandbox.token}\n  pixel_code: {PIXEL}\n"
        f"  api_base_url: {sandbox.url}\n"
        "presets: [default, purchase.yaml]\ndelivery:\n  outbox: state/outbox.db\n  linger: 0\n"
    )
    config = load_config(folder / "destination.yaml")
    assert config.delivery.outbox == folder / "state" / "outbox.db"
    with Runtime(config, environ={}) as runtime:
        outcome = runtime.process(order(1))
        runtime.flush(10)
    assert outcome.actions[0].item["event"] == "Purchase"
    assert (folder / "state" / "outbox.db").exists()


def test_example_config_is_valid():
    config = load_config(ROOT / "examples" / "destination.yaml")
    assert config.destination == "tiktok" and config.settings["pixel_code"]
    assert "access_token" not in config.settings


def test_a_payload_breaking_its_schema_is_that_presets_error(sandbox, tmp_path):
    bad = order(1)
    bad["properties"]["products"][0]["price"] = "twelve"
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        outcome = runtime.process(bad)
        stats = runtime.stats()
    assert outcome.matched == ("Place an Order",) and outcome.error is None
    (action,) = outcome.actions
    assert action.action == "tiktok.report_web_event" and not action.accepted
    (error,) = outcome.errors
    assert (error.event_id, error.field) == ("host-1", "contents.0.price")
    assert str(error) == (
        "event host-1, field contents.0.price: preset 'Place an Order': "
        "the mapped value must be a number or a numeric string"
    )
    assert stats["matched"] == 1 and stats["invalid"] == 1 and stats["accepted"] == 0
    assert stats["matched_by_preset"] == {"Place an Order": 1}


def test_absurd_events_are_their_own_problem(sandbox, tmp_path):
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    nested = order(3)
    del nested["messageId"]
    nested["properties"]["deep"] = deep
    surrogate = order(4)
    del surrogate["messageId"]
    surrogate["context"]["userAgent"] = "bad \ud800 agent"
    with Runtime.from_config(config_for(sandbox, tmp_path), environ={}) as runtime:
        outcomes = runtime.process_batch([nested, surrogate, order(5)])
        assert runtime.flush(float("inf"))  # "no deadline" is accepted
        stats = runtime.stats()
    nested_out, surrogate_out, good = outcomes
    assert nested_out.errors and "nested too deeply" in nested_out.errors[0].reason
    assert surrogate_out.event_id.startswith("h-")  # a stable id even so
    assert "lone surrogate" in surrogate_out.errors[0].reason
    assert good.ok and stats["delivered"] == 1 and stats["invalid"] == 2


def test_serve_workers_come_from_the_config_and_are_checked(tmp_path):
    path = tmp_path / "workers.yaml"
    path.write_text("serve:\n  workers: 3\n")
    assert load_config(path).serve.workers == 3
    assert Config().serve.workers == 0
    path.write_text("serve:\n  workers: 65\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert f"{path}:2:12: error:" in str(info.value) and "65" in str(info.value)
