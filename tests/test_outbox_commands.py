"""``destination outbox``: --config, purge, status per route, and files that are no outbox.

Loopback only: flush talks to an httpx.MockTransport standing in for TikTok.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from destination import hookimpl
from destination.actions import Route
from destination.cli import main
from destination.delivery import DeliveryEngine, HttpExecutor, SqliteQueue
from destination.delivery.commands import parse_duration

from .conftest import registered
from .delivery_support import item

WEB = Route("tiktok", "web")
OFFLINE = Route("tiktok", "offline")
TOKEN = "tt-SECRET-token-42"
#: flush runs DeliveryEngine.drain, which comes with the engine's own branch.
needs_drain = pytest.mark.skipif(
    not hasattr(DeliveryEngine, "drain"), reason="DeliveryEngine.drain is not there yet"
)


def make_outbox(path: Path, *, waiting: int = 3, dead: int = 2) -> str:
    """``waiting`` events e0… on the web route, then ``dead`` dead letters d0…."""
    q = SqliteQueue(path)
    try:
        q.put_many([(WEB, item(i), f"e{i}") for i in range(waiting)], max_items=1)
        q.put_many([(WEB, item(i), f"d{i}") for i in range(dead)], max_items=1)
        claimed = q.claim(waiting + dead)
        letters = [e.id for e in claimed if e.event_ids[0].startswith("d")]
        q.dead_letter(letters, "data.0.event: Not a valid event", 40002)
        q.release([e.id for e in claimed if e.event_ids[0].startswith("e")])
    finally:
        q.close()
    return str(path)


def write_config(folder: Path, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "destination.yaml"
    path.write_text(text)
    return str(path)


CONFIG = """\
destination: tiktok
settings:
  pixel_code: CONFIGPIXEL
  api_base_url: http://tiktok.test
delivery:
  outbox: state/outbox.sqlite3
  executor: mock
"""


def counts(path: str) -> tuple[int, int]:
    q = SqliteQueue(path, deliver=False, create=False)
    try:
        stats = q.stats()
    finally:
        q.close()
    return stats.pending, stats.dead_letters


# -- --config and the outbox's path --------------------------------------------------------


def test_config_gives_the_outbox_path_relative_to_the_file(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "conf", CONFIG)
    outbox = make_outbox(tmp_path / "conf" / "state" / "outbox.sqlite3")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["outbox", "status", "--json", "--config", config]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outbox"] == outbox and data["pending"] == 3 and data["dead_letters"] == 2
    for command in (["dead-letters"], ["replay", "d0"], ["purge", "--all", "--yes"]):
        assert main(["outbox", *command, "--config", config]) == 0, command
    assert not (elsewhere / ".destination").exists()


def test_outbox_option_wins_over_the_config(tmp_path, capsys):
    config = write_config(tmp_path / "conf", CONFIG)
    make_outbox(tmp_path / "conf" / "state" / "outbox.sqlite3", waiting=3)
    other = make_outbox(tmp_path / "other.sqlite3", waiting=7, dead=0)
    assert main(["outbox", "status", "--json", "--config", config, "--outbox", other]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["outbox"], data["pending"]) == (other, 7)


def test_without_either_the_default_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_outbox(tmp_path / ".destination" / "outbox.sqlite3", waiting=4, dead=0)
    assert main(["outbox", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 4


def test_a_config_without_an_outbox_means_the_default(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "conf", "destination: tiktok\n")
    monkeypatch.chdir(tmp_path)
    make_outbox(tmp_path / ".destination" / "outbox.sqlite3", waiting=5, dead=0)
    assert main(["outbox", "status", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("delivery:\n  outbox: 3\n", "destination.yaml:2:"),
        ("delivery: [\n", "destination.yaml:"),
        ("delivery:\n  queue: nats\n", "delivery.queue is 'nats'"),
    ],
)
def test_a_bad_config_exits_2_in_one_line(tmp_path, capsys, text, expected):
    config = write_config(tmp_path, text)
    for command in (["status"], ["dead-letters"], ["replay", "--all"], ["flush"]):
        assert main(["outbox", *command, "--config", config]) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("destination outbox: ") and expected in err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_a_missing_config_exits_2(tmp_path, capsys):
    assert main(["outbox", "status", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such configuration file" in capsys.readouterr().err


# -- flush: settings from the config, the environment overriding --------------------------


class TikTokStub:
    """Answers like TikTok's track endpoint; keeps each request's body."""

    def __init__(self, status: int = 200, answer: dict | None = None) -> None:
        self.status = status
        self.answer = answer or {"code": 0, "message": "OK", "request_id": "r1"}
        self.bodies: list[dict] = []
        self.tokens: list[str] = []

    @hookimpl
    def register_executors(self, register):
        register("mock", lambda **options: HttpExecutor(transport=self.transport()))

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            self.bodies.append(json.loads(request.read()))
            self.tokens.append(request.headers["access-token"])
            return httpx.Response(self.status, json=self.answer)

        return httpx.MockTransport(handler)

    @property
    def event_ids(self) -> list[str]:
        return sorted(d["event_id"] for body in self.bodies for d in body["data"])


@pytest.fixture
def tiktok_env(clean_environment, monkeypatch):
    monkeypatch.setenv("TIKTOK_ACCESS_TOKEN", TOKEN)


def test_flush_settings_problem_names_the_config_line(tmp_path, tiktok_env, capsys):
    config = write_config(tmp_path, CONFIG.replace("  pixel_code: CONFIGPIXEL\n", ""))
    make_outbox(tmp_path / "state" / "outbox.sqlite3")
    with registered(TikTokStub(), "stub"):
        assert main(["outbox", "flush", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"destination outbox: {config}:2:") and "pixel_code: required" in err
    assert err.count("\n") == 1 and TOKEN not in err


def test_flush_needs_no_pixel_variable_when_the_config_names_it(tmp_path, tiktok_env, capsys):
    """The settings pass (the lock is what stops it), with only the token in the environment."""
    config = write_config(tmp_path, CONFIG)
    outbox = make_outbox(tmp_path / "state" / "outbox.sqlite3")
    delivering = SqliteQueue(outbox, deliver=True)
    try:
        assert main(["outbox", "flush", "--config", config]) == 1
    finally:
        delivering.close()
    assert "another process is delivering from" in capsys.readouterr().err


def test_flush_without_a_config_reads_the_environment(tmp_path, tiktok_env, capsys):
    outbox = make_outbox(tmp_path / "outbox.sqlite3")
    assert main(["outbox", "flush", "--outbox", outbox]) == 2
    err = capsys.readouterr().err
    assert "invalid settings: pixel_code: required" in err and err.count("\n") == 1


def test_flush_refuses_a_nan_timeout(tmp_path, capsys):
    outbox = make_outbox(tmp_path / "outbox.sqlite3")
    assert main(["outbox", "flush", "--outbox", outbox, "--timeout", "nan"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_flush_unknown_executor_is_exit_2(tmp_path, tiktok_env, capsys):
    config = write_config(tmp_path, CONFIG)
    make_outbox(tmp_path / "state" / "outbox.sqlite3")
    assert main(["outbox", "flush", "--config", config, "--executor", "nope"]) == 2
    assert "unknown executor 'nope'" in capsys.readouterr().err
    SqliteQueue(tmp_path / "state" / "outbox.sqlite3").close()  # the lock was released


@needs_drain
def test_flush_takes_settings_from_the_config(tmp_path, tiktok_env, capsys):
    config = write_config(tmp_path / "conf", CONFIG)
    outbox = make_outbox(tmp_path / "conf" / "state" / "outbox.sqlite3")
    stub = TikTokStub()
    with registered(stub, "stub"):
        assert main(["outbox", "flush", "--config", config]) == 0
    assert "delivered 3," in capsys.readouterr().out
    assert stub.event_ids == ["e0", "e1", "e2"]
    assert {b["event_source_id"] for b in stub.bodies} == {"CONFIGPIXEL"}
    assert set(stub.tokens) == {TOKEN}
    assert counts(outbox) == (0, 2)


@needs_drain
def test_flush_environment_overrides_the_config(tmp_path, tiktok_env, monkeypatch, capsys):
    monkeypatch.setenv("TIKTOK_PIXEL_CODE", "ENVPIXEL")
    config = write_config(tmp_path, CONFIG)
    make_outbox(tmp_path / "state" / "outbox.sqlite3")
    stub = TikTokStub()
    with registered(stub, "stub"):
        assert main(["outbox", "flush", "--config", config]) == 0
    assert {b["event_source_id"] for b in stub.bodies} == {"ENVPIXEL"}


@needs_drain
def test_flush_stopped_is_exit_3(tmp_path, tiktok_env, capsys):
    config = write_config(tmp_path, CONFIG)
    outbox = make_outbox(tmp_path / "state" / "outbox.sqlite3")
    stub = TikTokStub(answer={"code": 40105, "message": "Access token is incorrect or revoked"})
    with registered(stub, "stub"):
        assert main(["outbox", "flush", "--config", config]) == 3
    err = capsys.readouterr().err
    assert "Access token is incorrect or revoked" in err and TOKEN not in err
    assert err.count("\n") == 1
    assert counts(outbox) == (3, 2)


@needs_drain
def test_flush_events_left_is_exit_75_with_the_last_error(tmp_path, tiktok_env, capsys):
    config = write_config(tmp_path, CONFIG)
    outbox = make_outbox(tmp_path / "state" / "outbox.sqlite3")
    stub = TikTokStub(status=503, answer={"message": "busy"})
    with registered(stub, "stub"):
        assert main(["outbox", "flush", "--config", config, "--timeout", "0.5"]) == 75
    err = capsys.readouterr().err
    assert "default/web: 3 events waiting, last error: HTTP 503" in err
    assert "3 events still queued in" in err and TOKEN not in err
    assert counts(outbox) == (3, 2)


# -- purge -------------------------------------------------------------------------------


@pytest.fixture
def outbox(tmp_path):
    return make_outbox(tmp_path / "outbox.sqlite3")


@pytest.fixture
def not_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)


@pytest.fixture
def terminal(monkeypatch):
    """A terminal whose user answers with ``answers`` (a list, consumed in order)."""
    prompts: list[str] = []
    answers: list[str] = []

    def ask(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", ask)
    return prompts, answers


def test_purge_all(outbox, capsys):
    assert main(["outbox", "purge", "--all", "--yes", "--outbox", outbox]) == 0
    assert capsys.readouterr().out == "purged 3 waiting event(s) and 2 dead letter(s)\n"
    assert counts(outbox) == (0, 0)


def test_purge_event_ids_takes_waiting_and_dead(outbox, capsys):
    args = ["outbox", "purge", "--event-id", "e1", "d0", "nope", "--yes", "--outbox", outbox]
    assert main(args) == 0
    assert "purged 1 waiting event(s) and 1 dead letter(s)" in capsys.readouterr().out
    assert counts(outbox) == (2, 1)


def age(outbox: str, *event_ids: str, days: float) -> None:
    """Make these events accepted ``days`` earlier."""
    db = sqlite3.connect(outbox)
    marks = ",".join("?" * len(event_ids))
    with db:
        db.execute(
            f"UPDATE dead_letters SET enqueued_at = enqueued_at - ? WHERE event_id IN ({marks})",
            (days * 86400, *event_ids),
        )
        # A waiting event's age is its chunk's (the fixture stores one event per chunk).
        db.execute(
            "UPDATE chunks SET enqueued_at = enqueued_at - ? WHERE id IN (SELECT i.id FROM"
            " chunk_items i, json_each(i.event_ids) e WHERE e.value IN"
            f" ({marks}))",
            (days * 86400, *event_ids),
        )
    db.close()


def test_purge_older_than(outbox, capsys):
    age(outbox, "e0", "d1", days=8)
    assert main(["outbox", "purge", "--older-than", "7d", "--yes", "--outbox", outbox]) == 0
    assert "purged 1 waiting event(s) and 1 dead letter(s)" in capsys.readouterr().out
    assert main(["outbox", "purge", "--older-than", "9d", "--yes", "--outbox", outbox]) == 0
    assert "purged 0 waiting event(s) and 0 dead letter(s)" in capsys.readouterr().out
    assert counts(outbox) == (2, 1)


@pytest.mark.parametrize(
    "selectors",
    [[], ["--all", "--event-id", "e1"], ["--all", "--older-than", "1d"]],
)
def test_purge_needs_exactly_one_selector(outbox, capsys, selectors):
    assert main(["outbox", "purge", *selectors, "--yes", "--outbox", outbox]) == 2
    err = capsys.readouterr().err
    assert "purge needs exactly one of --all, --event-id ID..., --older-than DURATION" in err
    assert counts(outbox) == (3, 2)


def test_purge_event_id_needs_an_id(outbox, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["outbox", "purge", "--event-id", "--yes", "--outbox", outbox])
    assert exit_.value.code == 2
    assert "--event-id: expected at least one argument" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["7w", "-1d", "1.5.h", "d", "", "nan", "inf", "1e3"])
def test_purge_refuses_a_bad_duration(outbox, capsys, text):
    assert main(["outbox", "purge", f"--older-than={text}", "--yes", "--outbox", outbox]) == 2
    err = capsys.readouterr().err
    assert f"--older-than: not a duration: {text!r}" in err and err.count("\n") == 1
    assert counts(outbox) == (3, 2)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("45", 45), ("1.5h", 5400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_purge_without_yes_off_a_terminal_refuses(outbox, not_a_terminal, capsys):
    assert main(["outbox", "purge", "--all", "--outbox", outbox]) == 2
    err = capsys.readouterr().err
    assert "pass --yes" in err and err.count("\n") == 1
    assert counts(outbox) == (3, 2)


@pytest.mark.parametrize("answer", ["y", "YES ", "yes"])
def test_purge_asks_on_a_terminal_yes(outbox, terminal, capsys, answer):
    prompts, answers = terminal
    answers.append(answer)
    assert main(["outbox", "purge", "--all", "--outbox", outbox]) == 0
    (prompt,) = prompts
    assert prompt.startswith("purge 3 waiting events and 2 dead letters from ")
    assert prompt.endswith("? [y/N] ")
    assert counts(outbox) == (0, 0)


@pytest.mark.parametrize("answer", ["", "n", "no", "yy", "sure"])
def test_purge_asks_on_a_terminal_no(outbox, terminal, capsys, answer):
    prompts, answers = terminal
    answers.append(answer)
    args = ["outbox", "purge", "--event-id", "e0", "e1", "d1", "--outbox", outbox]
    assert main(args) == 1
    assert prompts[0].startswith("purge 2 waiting events and 1 dead letter from ")
    assert "purge aborted: nothing removed" in capsys.readouterr().err
    assert counts(outbox) == (3, 2)


def test_purge_asks_with_what_older_than_matches(outbox, terminal, capsys):
    prompts, answers = terminal
    age(outbox, "e0", "e2", "d1", days=2)
    answers.append("n")
    assert main(["outbox", "purge", "--older-than", "36h", "--outbox", outbox]) == 1
    assert prompts[0].startswith("purge 2 waiting events and 1 dead letter from ")
    answers.append("y")
    assert main(["outbox", "purge", "--older-than", "36h", "--outbox", outbox]) == 0
    assert "purged 2 waiting event(s) and 1 dead letter(s)" in capsys.readouterr().out
    assert counts(outbox) == (1, 1)


def test_purge_with_nothing_to_remove_does_not_ask(outbox, terminal, capsys):
    prompts, _ = terminal
    assert main(["outbox", "purge", "--older-than", "1h", "--outbox", outbox]) == 0
    assert prompts == []
    assert "purged 0 waiting event(s) and 0 dead letter(s)" in capsys.readouterr().out


def test_purge_end_of_input_is_no(outbox, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert main(["outbox", "purge", "--all", "--outbox", outbox]) == 1
    assert counts(outbox) == (3, 2)


def test_purge_refuses_while_another_process_delivers(outbox, capsys):
    delivering = SqliteQueue(outbox, deliver=True)
    try:
        assert main(["outbox", "purge", "--all", "--yes", "--outbox", outbox]) == 1
    finally:
        delivering.close()
    err = capsys.readouterr().err
    assert f"another process is delivering from {outbox}" in err and "stop it first" in err
    assert err.count("\n") == 1
    assert counts(outbox) == (3, 2)


def test_purge_works_while_someone_only_inspects(outbox, capsys):
    inspecting = SqliteQueue(outbox, deliver=False)
    try:
        assert main(["outbox", "purge", "--all", "--yes", "--outbox", outbox]) == 0
    finally:
        inspecting.close()


# -- status: per route, dead letters by reason ---------------------------------------------


@pytest.fixture
def busy_outbox(tmp_path):
    """Two routes: web failing with a network error, offline with one waiting event;
    12 kinds of dead letters."""
    path = tmp_path / "outbox.sqlite3"
    q = SqliteQueue(path)
    try:
        q.put_many([(WEB, item(i), f"w{i}") for i in range(5)], max_items=1)
        q.put_many([(OFFLINE, item(i), f"o{i}") for i in range(2)], max_items=1)
        claimed = q.claim(100)
        web = [e for e in claimed if e.route == WEB]
        offline = [e for e in claimed if e.route == OFFLINE]
        # two failed requests on web: the later one's error is the route's last error
        q.retry([e.id for e in web[:2]], web[0].enqueued_at - 10, "HTTP 503: busy")
        q.retry(
            [e.id for e in web[2:]],
            web[0].enqueued_at + 600,
            "network error: ConnectError: [Errno 111] Connection refused",
        )
        q.dead_letter([offline[0].id], "gave up after max age", None)
        q.release([offline[1].id])
        q.put_many([(WEB, item(i), f"x{i}") for i in range(12 * 13 // 2)], max_items=1)
        claimed = q.claim(1000)
        q.release([e.id for e in claimed if not e.event_ids[0].startswith("x")])
        dead = [e for e in claimed if e.event_ids[0].startswith("x")]
        start = 0
        for kind in range(12):
            n = kind + 1
            q.dead_letter(
                [e.id for e in dead[start : start + n]], f"data.0.f{kind}: bad\nvalue", 40002
            )
            start += n
    finally:
        q.close()
    return str(path)


def test_status_text_per_route(busy_outbox, capsys):
    assert main(["outbox", "status", "--outbox", busy_outbox]) == 0
    out = capsys.readouterr().out
    assert f"outbox        {busy_outbox}\n" in out
    assert "pending       6 (due now 3, being sent 0)" in out
    assert "max attempts  1" in out and "dead letters  79" in out
    lines = out.splitlines()
    web = lines.index("  default/web: pending 5 (due now 2, being sent 0), oldest 0s, attempts 1")
    assert lines[web + 1] == (
        "    last error: network error: ConnectError: [Errno 111] Connection refused (3 events)"
    )
    assert "  default/offline: pending 1 (due now 1, being sent 0), oldest 0s, attempts 0" in out
    reasons = lines[lines.index("dead letters by reason (count, code, reason)") + 1 :]
    assert reasons[0] == "         12  40002  data.0.f11: bad value"
    assert reasons[9] == "          3  40002  data.0.f2: bad value"
    assert reasons[10] == "  ... and 3 more reasons (--json lists all)"
    assert len(reasons) == 11  # the one "gave up" letter is among the 3 more


def test_status_json_per_route(busy_outbox, capsys):
    assert main(["outbox", "status", "--json", "--outbox", busy_outbox]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {k: data[k] for k in ("pending", "due", "in_flight", "dead_letters")} == {
        "pending": 6,
        "due": 3,
        "in_flight": 0,
        "dead_letters": 79,
    }
    assert data["oldest_enqueued_at"] and data["next_attempt_at"]
    routes = {r["route"]["event_source"]: r for r in data["routes"]}
    assert routes["web"]["route"] == {
        "destination": "tiktok",
        "event_source": "web",
        "instance": "default",
    }
    assert routes["web"]["last_error"].startswith("network error: ConnectError")
    assert (routes["web"]["last_error_count"], routes["web"]["pending"]) == (3, 5)
    assert routes["offline"]["last_error"] is None and routes["offline"]["max_attempts"] == 0
    reasons = data["dead_letter_reasons"]
    assert len(reasons) == 13
    assert reasons[0] == {"reason": "data.0.f11: bad\nvalue", "code": 40002, "count": 12}
    assert {"reason": "gave up after max age", "code": None, "count": 1} in reasons


def test_status_never_shows_items(busy_outbox, capsys):
    assert main(["outbox", "status", "--outbox", busy_outbox]) == 0
    assert main(["outbox", "status", "--json", "--outbox", busy_outbox]) == 0
    assert main(["outbox", "dead-letters", "--outbox", busy_outbox]) == 0
    assert "a" * 64 not in capsys.readouterr().out  # the stored (hashed) email


def test_status_of_an_empty_outbox(tmp_path, capsys):
    path = make_outbox(tmp_path / "outbox.sqlite3", waiting=0, dead=0)
    assert main(["outbox", "status", "--outbox", path]) == 0
    out = capsys.readouterr().out
    assert "pending       0 (due now 0, being sent 0)" in out and "routes" not in out


# -- files that are no outbox --------------------------------------------------------------


def damaged(tmp_path: Path) -> Path:
    """A real outbox whose pages after the first were overwritten."""
    path = tmp_path / "damaged.sqlite3"
    q = SqliteQueue(path)
    q.put_many([(WEB, item(i, padding="p" * 2000), f"e{i}") for i in range(50)], max_items=1)
    q.close()
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b""), "is an empty file, not an outbox"),
        (lambda p: p.write_text("not a database\n" * 100), "is not an SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000), "is damaged"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["0-byte", "text", "bad-header", "folder"],
)
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["dead-letters"],
        ["replay", "--all"],
        ["purge", "--all", "--yes"],
    ],
)
def test_not_an_outbox_is_one_line_exit_1(tmp_path, capsys, make, expected, command):
    path = tmp_path / "outbox.sqlite3"
    make(path)
    assert main(["outbox", *command, "--outbox", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"destination outbox: outbox {path}")
    assert expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.parametrize("command", [["status"], ["dead-letters"], ["purge", "--all", "--yes"]])
def test_a_damaged_outbox_is_one_line_exit_1(tmp_path, capsys, command):
    path = damaged(tmp_path)
    assert main(["outbox", *command, "--outbox", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("destination outbox: outbox ")
    assert "malformed" in captured.err or "not a database" in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_status_says_when_a_process_is_delivering_from_the_outbox(busy_outbox, capsys):
    """Its claims are in its memory: status says so rather than showing "being sent 0"
    as if nothing were on the way."""
    assert main(["outbox", "status", "--outbox", busy_outbox]) == 0
    assert "a process is delivering from this outbox" not in capsys.readouterr().out
    assert main(["outbox", "status", "--json", "--outbox", busy_outbox]) == 0
    assert json.loads(capsys.readouterr().out)["deliverer_running"] is False
    deliverer = SqliteQueue(busy_outbox)  # holds the delivering lock, as run or serve does
    try:
        assert main(["outbox", "status", "--outbox", busy_outbox]) == 0
        assert "a process is delivering from this outbox" in capsys.readouterr().out
        assert main(["outbox", "status", "--json", "--outbox", busy_outbox]) == 0
        assert json.loads(capsys.readouterr().out)["deliverer_running"] is True
    finally:
        deliverer.close()
