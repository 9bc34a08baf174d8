"""``destination run``: NDJSON in, delivered (sandbox / dry run / real endpoint), a summary out."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from destination.cli import main
from destination.tiktok.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "events.ndjson"


pytestmark = pytest.mark.usefixtures("clean_environment")


def example_lines() -> list[str]:
    return EXAMPLES.read_text().splitlines()


def good_examples() -> list[dict[str, Any]]:
    events = []
    for line in example_lines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "type" in event:
            events.append(event)
    return events


def test_examples_are_realistic_and_plentiful():
    events = good_examples()
    assert len(events) >= 60
    kinds = {e["type"] for e in events}
    assert {"track", "page", "identify", "screen"} <= kinds
    names = {e.get("event") for e in events}
    for name in (
        "Product Added",
        "Order Completed",
        "Products Searched",
        "Checkout Started",
        "Payment Info Entered",
        "Product Added to Wishlist",
    ):
        assert name in names
    assert len(example_lines()) - len(events) >= 3  # and a few bad lines


def test_run_without_token_delivers_to_the_embedded_sandbox(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(EXAMPLES)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "embedded TikTok sandbox" in err
    # Bad lines are named by file and line; the run went on.
    assert f"{EXAMPLES}:21: not JSON" in err
    assert f"{EXAMPLES}:41: not a JSON object" in err
    assert f"{EXAMPLES}:56: not a Segment event" in err
    assert "event msg-0066, field timestamp: unparseable timestamp" in err
    summary = _summary(err)
    assert summary["bad lines"] == 3
    assert summary["events"] == len(good_examples())
    assert summary["delivered"] == summary["matched"] - summary["invalid"]
    assert summary["delivered"] > 40 and summary["dead-lettered"] == 0
    assert summary["still queued"] == 0
    assert summary["Add to Cart"] >= 5 and summary["View Content"] >= 5
    assert not (tmp_path / ".destination").exists()  # a sandbox run leaves nothing behind


def _summary(err: str) -> dict[str, int]:
    rows: dict[str, int] = {}
    for line in err.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[1]:
            number = cells[1].split(" ")[0].replace(",", "")
            if number.isdigit():
                rows[cells[0]] = int(number)
    return rows


def test_dry_run_batch_size_one_prints_one_request_per_event(capsys):
    assert main(["run", str(EXAMPLES), "--dry-run", "--batch-size", "1"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    summary = _summary(err)
    assert len(lines) == summary["written (dry run)"] == summary["matched"] - summary["invalid"]
    for line in lines:
        assert line["url"] == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
        assert line["headers"]["Access-Token"] == "[REDACTED]"
        assert len(line["body"]["data"]) == 1
    ids = [line["body"]["data"][0]["event_id"] for line in lines]
    assert len(set(ids)) == len(ids)
    assert "alice.martin@example.com" not in out.lower()


def test_dry_run_batches_by_default(capsys):
    assert main(["run", str(EXAMPLES), "--dry-run"]) == 0
    out, _ = capsys.readouterr()
    requests = [json.loads(line) for line in out.splitlines()]
    assert len(requests) < 5
    assert sum(len(r["body"]["data"]) for r in requests) > 40


def test_stdin_and_presets_option(capsys, monkeypatch):
    events = [
        {
            "type": "track",
            "event": "Signed Up",
            "userId": "u1",
            "messageId": "s1",
            "timestamp": "2026-11-30T10:00:00Z",
        },
        {
            "type": "track",
            "event": "Product Added",
            "userId": "u1",
            "messageId": "s2",
            "timestamp": "2026-11-30T10:00:00Z",
            "properties": {"product_id": "p1", "price": 3},
        },
    ]
    text = "\n".join(json.dumps(e) for e in events) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert main(["run", "-", "--dry-run", "--presets", "default", "extended"]) == 0
    out, _ = capsys.readouterr()
    sent = [d["event"] for line in out.splitlines() for d in json.loads(line)["body"]["data"]]
    assert sorted(sent) == ["AddToCart", "CompleteRegistration"]


def test_real_endpoint_with_outbox_and_revoked_token(capsys, tmp_path):
    box = Sandbox(pixels=["CPIXRUN"]).start()
    try:
        config = tmp_path / "destination.yaml"
        config.write_text(
            "settings:\n  pixel_code: CPIXRUN\n  access_token: revoked-token\n"
            f"  api_base_url: {box.url}\ndelivery:\n  linger: 0\n"
        )
        outbox = tmp_path / "outbox.db"
        code = main(["run", str(EXAMPLES), "--config", str(config), "--outbox", str(outbox)])
        _, err = capsys.readouterr()
        assert code == 3
        assert "delivery stopped" in err and "revoked-token" not in err
        with sqlite3.connect(outbox) as db:
            (pending,) = db.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()
        assert pending > 40  # nothing dropped: every accepted event waits for a fixed token

        # With the right token the next run delivers what waited, and the new events.
        config.write_text(config.read_text().replace("revoked-token", box.token))
        assert main(["run", str(EXAMPLES), "--config", str(config), "--outbox", str(outbox)]) == 0
        capsys.readouterr()
        # What waited was sent once the token was fixed, and the second run's own copies
        # of the same events carry the same event_ids, so TikTok counts each event once.
        assert len(box.events()) == 2 * pending
        assert len(box.duplicates()) == pending and set(box.duplicates().values()) == {2}
    finally:
        box.stop()


def test_configuration_errors_exit_2_before_reading(capsys, tmp_path):
    assert main(["run", str(tmp_path / "missing.ndjson")]) == 2
    assert "no such file" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("delivery:\n  batch_size: 0\n")
    assert main(["run", str(EXAMPLES), "--config", str(config)]) == 2
    assert f"{config}:2:15: error:" in capsys.readouterr().err
    assert main(["run", str(EXAMPLES), "--presets", "no-such-bundle"]) == 2
    assert "unknown preset bundle" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(EXAMPLES), "--batch-size", "5000"])


def test_progress_bar_can_be_forced_and_is_silent_on_a_pipe(capsys):
    assert main(["run", str(EXAMPLES), "--dry-run", "--progress", "always"]) == 0
    assert "reading events" in capsys.readouterr().err
    assert main(["run", str(EXAMPLES), "--dry-run"]) == 0  # auto: stderr is no terminal here
    assert "reading events" not in capsys.readouterr().err


def test_values_json_cannot_carry_are_the_events_problem(capsys, monkeypatch):
    base = '{"type":"track","event":"Product Added","userId":"u","timestamp":"2026-11-30T10:00:00Z"'
    lines = [
        base + ',"messageId":"s1","context":{"userAgent":"bad \\ud800 ua"},'
        '"properties":{"product_id":"p","price":1}}',
        base + ',"messageId":"s2","properties":{"product_id":"p","price":NaN}}',
        base
        + ',"messageId":"s3","properties":{"product_id":"p","price":1,"n":123456789012345678901234567890}}',
    ]
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["run", "-", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "<stdin>:1: event s1: the item cannot be sent as JSON: a lone surrogate" in err
    assert "<stdin>:2: event s2, field contents[0].price: must be a finite number" in err
    (request,) = [json.loads(line) for line in out.splitlines()]
    assert [d["event_id"] for d in request["body"]["data"]] == ["s3"]


def test_absurd_lines_and_outputs_never_give_a_traceback(capsys, tmp_path, monkeypatch):
    deep = tmp_path / "deep.ndjson"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n" + EXAMPLES.read_text().splitlines()[0])
    assert main(["run", str(deep), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert f"{deep}:1: not JSON this program reads: nested too deeply" in err
    assert len(out.splitlines()) == 1  # the good line after it was sent

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["run", str(EXAMPLES), "--dry-run", "--batch-size", "1"]) == 3
    assert "the dry-run output was closed (BrokenPipeError)" in capsys.readouterr().err


def test_outbox_option_is_refused_for_dry_and_sandbox_runs(capsys, tmp_path):
    assert main(["run", str(EXAMPLES), "--dry-run", "--outbox", str(tmp_path / "o.db")]) == 2
    assert "--outbox is for deliveries to TikTok" in capsys.readouterr().err
    assert main(["run", str(EXAMPLES), "--outbox", str(tmp_path / "o.db")]) == 2  # no token
    assert not (tmp_path / "o.db").exists()


def test_an_outbox_that_cannot_be_opened_is_a_configuration_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOK_ACCESS_TOKEN", "tok-not-used")
    monkeypatch.setenv("TIKTOK_PIXEL_CODE", "CPIX")
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    assert main(["run", str(EXAMPLES), "--outbox", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"outbox {folder}: cannot open" in err and "Traceback" not in err
