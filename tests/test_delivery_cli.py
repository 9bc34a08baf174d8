"""``destination outbox status|dead-letters|replay|flush`` (purge and --config:
test_outbox_commands.py)."""

from __future__ import annotations

import json

import pytest

from destination import hookimpl
from destination.cli import main
from destination.delivery import DeliveryEngine, HttpExecutor, SqliteQueue

from .conftest import registered
from .delivery_support import TOKEN, FakeDestination, FakeServer, item, route


@pytest.fixture
def outbox(tmp_path):
    """An outbox with 3 pending events (one waiting for a retry) and 2 dead letters."""
    path = tmp_path / "outbox.sqlite3"
    q = SqliteQueue(path)
    q.put_many([(route(), item(i), f"e{i}") for i in range(5)], max_items=1)
    entries = q.claim(5)
    q.dead_letter([entries[0].id], "data.0.event: Not a valid event", 40002)
    q.dead_letter([entries[1].id], "gave up after max age", None)
    q.retry([entries[2].id], entries[2].enqueued_at + 3600, "HTTP 503")
    q.release([e.id for e in entries[3:]])
    q.close()
    return str(path)


def test_status(outbox, capsys):
    assert main(["outbox", "status", "--outbox", outbox]) == 0
    out = capsys.readouterr().out
    assert "pending       3 (due now 2, being sent 0)" in out and "dead letters  2" in out
    assert "max attempts  1" in out
    assert "  default/web: pending 3 (due now 2, being sent 0)" in out
    assert "    last error: HTTP 503 (1 event)" in out
    assert main(["outbox", "status", "--json", "--outbox", outbox]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["pending"], data["due"], data["dead_letters"]) == (3, 2, 2)


def test_dead_letters(outbox, capsys):
    assert main(["outbox", "dead-letters", "--outbox", outbox]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "e0\t40002\tdefault/web\tdata.0.event: Not a valid event"
    assert lines[1].startswith("e1\t-\t")
    assert main(["outbox", "dead-letters", "--json", "--limit", "1", "--outbox", outbox]) == 0
    (letter,) = json.loads(capsys.readouterr().out)
    assert letter["event_id"] == "e0" and letter["item"] == item(0) and letter["code"] == 40002


def test_replay(outbox, capsys):
    assert main(["outbox", "replay", "e1", "--outbox", outbox]) == 0
    assert "replayed 1 dead letter" in capsys.readouterr().out
    assert main(["outbox", "replay", "nope", "--outbox", outbox]) == 1
    assert "not dead letters" in capsys.readouterr().err
    assert main(["outbox", "replay", "--outbox", outbox]) == 2
    assert "--all or one or more EVENT_IDs" in capsys.readouterr().err
    assert main(["outbox", "replay", "--all", "--outbox", outbox]) == 0
    assert "replayed 1 dead letter" in capsys.readouterr().out


def test_missing_outbox_is_one_line(tmp_path, capsys):
    assert main(["outbox", "status", "--outbox", str(tmp_path / "nope.sqlite3")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("destination outbox: outbox ") and err.count("\n") == 1
    assert "no such file (use --outbox PATH or --config FILE)" in err
    assert not (tmp_path / "nope.sqlite3").exists()  # inspecting never creates an outbox


#: flush runs DeliveryEngine.drain, which comes with the engine's own branch.
needs_drain = pytest.mark.skipif(
    not hasattr(DeliveryEngine, "drain"), reason="DeliveryEngine.drain is not there yet"
)


class _Plugin:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    @hookimpl
    def register_destinations(self, register):
        register(FakeDestination())

    @hookimpl
    def register_executors(self, register):
        register("mock", lambda **options: HttpExecutor(transport=self.server.transport()))


@needs_drain
def test_flush_sends_everything_now(outbox, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_TOKEN", TOKEN)
    server = FakeServer()
    args = ["outbox", "flush", "--destination", "fake", "--executor", "mock", "--outbox", outbox]
    with registered(_Plugin(server), "fake-plugin"):
        assert main(args) == 0
    assert "delivered 3," in capsys.readouterr().out
    assert sorted(server.received) == ["e2", "e3", "e4"]  # the retry-later one too


@needs_drain
def test_flush_with_bad_token_stops_and_keeps_events(outbox, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_TOKEN", "revoked-token-0000")
    server = FakeServer()
    args = ["outbox", "flush", "--destination", "fake", "--executor", "mock", "--outbox", outbox]
    with registered(_Plugin(server), "fake-plugin"):
        assert main(args) == 3
    err = capsys.readouterr().err
    assert "delivery stopped: Access token is incorrect or revoked" in err
    assert "revoked-token-0000" not in err and err.count("\n") == 1
    assert main(["outbox", "status", "--json", "--outbox", outbox]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 3


def test_flush_unknown_destination(outbox, capsys):
    assert main(["outbox", "flush", "--destination", "nope", "--outbox", outbox]) == 2
    assert "unknown destination 'nope'" in capsys.readouterr().err


def test_flush_refuses_an_outbox_in_use(outbox, capsys):
    q = SqliteQueue(outbox)
    try:
        with registered(_Plugin(FakeServer()), "fake-plugin"):
            assert main(["outbox", "flush", "--destination", "fake", "--outbox", outbox]) == 1
    finally:
        q.close()
    err = capsys.readouterr().err
    assert f"another process is delivering from {outbox}" in err and err.count("\n") == 1
