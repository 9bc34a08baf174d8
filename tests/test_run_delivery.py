"""``destination run`` against an endpoint that fails: batches survive retries, operator
mistakes have a way back, failure is loud (exit codes, causes) and the summary is true.

Every endpoint is the TikTok sandbox on loopback, or a port nobody listens on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from destination.cli import main
from destination.tiktok.sandbox import Sandbox

from .test_run import _summary

pytestmark = pytest.mark.usefixtures("clean_environment")

PIXEL = "CPIXFAULTS"
TOKEN = "run-delivery-token-1234"


def write_events(path: Path, n: int, start: int = 0) -> Path:
    now = datetime.now(UTC).isoformat()
    with path.open("w") as handle:
        for i in range(start, start + n):
            event = {
                "type": "track",
                "event": "Product Added",
                "messageId": f"m{i}",
                "userId": f"user-{i % 97}",
                "timestamp": now,
                "properties": {"product_id": f"p{i % 13}", "price": 3, "currency": "USD"},
            }
            handle.write(json.dumps(event) + "\n")
    return path


def write_config(path: Path, *, base_url: str, pixel: str = PIXEL, token: str = TOKEN) -> Path:
    path.write_text(
        f"settings:\n  pixel_code: {pixel}\n  access_token: {token}\n"
        f"  api_base_url: {base_url}\n"
        "delivery:\n  outbox: state/outbox.sqlite3\n"
    )
    return path


def queued(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        (count,) = db.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()
    return int(count)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_thirty_percent_faults_all_delivered_in_whole_batches(tmp_path, capsys):
    """Acceptance (issue 14): 3,000 events, --batch-size 200, 30 % of requests failing,
    default --wait: everything arrives and a failed request comes back whole."""
    events = write_events(tmp_path / "events.ndjson", 3000)
    faults = ["500:0.06", "503:0.06", "429:0.06:retry-after=0", "40100:0.06", "reset:0.06"]
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        box.set_faults(faults, seed=7)
        config = write_config(tmp_path / "destination.yaml", base_url=box.url)
        code = main(["run", str(events), "--config", str(config), "--batch-size", "200"])
        _, err = capsys.readouterr()
        received = {e.event_id for e in box.events()}
        requests, answers = box.requests, box.answers()
    assert code == 0, err
    assert received == {f"m{i}" for i in range(3000)}
    assert answers["0"] == 15  # 15 full batches of 200, each accepted once, none split
    failed = requests - answers["0"]
    assert failed >= 3  # the faults did happen
    print(f"requests {requests}: {answers}")
    assert requests / 15 <= 1.6, answers
    summary = _summary(err)
    assert summary["delivered"] == 3000 and summary["still queued"] == 0


def test_wrong_pixel_stops_with_exit_3_then_the_fixed_setting_delivers_all(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 300)
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        config = write_config(tmp_path / "destination.yaml", base_url=box.url, pixel="CWRONG")
        code = main(["run", str(events), "--config", str(config)])
        _, err = capsys.readouterr()
        assert code == 3
        assert "40001" in err and "delivery stopped" in err
        outbox = tmp_path / "state" / "outbox.sqlite3"
        # Stopped, but the whole input was read and stored: nothing to re-read.
        assert queued(outbox) == 300 and not box.events()

        write_config(config, base_url=box.url)  # the operator fixes the pixel
        code = main(["outbox", "flush", "--config", str(config)])
        _, err = capsys.readouterr()
        assert code == 0, err
        assert {e.event_id for e in box.events(PIXEL)} == {f"m{i}" for i in range(300)}
        assert queued(outbox) == 0


def test_wrong_url_404_stops_without_dead_letters_then_fixed(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 120)
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        config = write_config(tmp_path / "destination.yaml", base_url=box.url + "/wrong/prefix")
        code = main(["run", str(events), "--config", str(config)])
        _, err = capsys.readouterr()
        assert code == 3
        assert "HTTP 404" in err and "check api_base_url" in err
        summary = _summary(err)
        assert summary["dead-lettered"] == 0 and summary["still queued"] == 120

        write_config(config, base_url=box.url)
        more = write_events(tmp_path / "more.ndjson", 30, start=120)
        assert main(["run", str(more), "--config", str(config)]) == 0
        capsys.readouterr()
        assert {e.event_id for e in box.events()} == {f"m{i}" for i in range(150)}


def test_a_refused_connection_exits_75_naming_the_cause(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 50)
    config = write_config(tmp_path / "destination.yaml", base_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    code = main(["run", str(events), "--config", str(config), "--wait", "1"])
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 75
    assert "50 event(s) still queued" in err
    assert "default/web: 50 queued; last error: network error" in err
    assert "(50 events)" in err
    assert elapsed < 1 + 1 + 3  # --wait plus a second, plus start-up on a slow machine
    # outbox status shows the same cause, from the file alone
    assert main(["outbox", "status", "--config", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (route,) = status["routes"]
    assert route["pending"] == 50 and route["last_error"].startswith("network error")


def test_summary_counts_what_the_endpoint_received(tmp_path, capsys):
    """Counts are read after the engine closed, so nothing delivered while closing is lost
    from the summary."""
    events = write_events(tmp_path / "events.ndjson", 2000)
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        box.set_faults(["503:0.3", "latency:0.5:ms=200"], seed=3)
        config = write_config(tmp_path / "destination.yaml", base_url=box.url)
        code = main(["run", str(events), "--config", str(config), "--wait", "0.5"])
        _, err = capsys.readouterr()
        received = {e.event_id for e in box.events()}
    summary = _summary(err)
    outbox = tmp_path / "state" / "outbox.sqlite3"
    assert summary["delivered"] == len(received)
    assert summary["still queued"] == queued(outbox) == 2000 - len(received)
    assert code == (75 if summary["still queued"] else 0)


def test_wait_bounds_the_run_even_when_the_endpoint_hangs(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 40)
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        box.set_faults(["hang"])
        config = write_config(tmp_path / "destination.yaml", base_url=box.url)
        started = time.monotonic()
        code = main(["run", str(events), "--config", str(config), "--wait", "2"])
        elapsed = time.monotonic() - started
        capsys.readouterr()
    assert code == 75
    assert elapsed < 2 + 1 + 2  # --wait + 1 s, plus start-up
    started = time.monotonic()
    with Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box:
        box.set_faults(["hang"])
        write_config(tmp_path / "destination.yaml", base_url=box.url)
        assert main(["run", str(events), "--config", str(config), "--wait", "0"]) == 75
    assert time.monotonic() - started < 1 + 2
    # nothing lost meanwhile: both runs' copies wait (the same event_ids: TikTok dedups)
    assert queued(tmp_path / "state" / "outbox.sqlite3") == 80


def test_stopped_run_reads_every_line(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 1700)  # several chunks of 500
    with Sandbox(tokens=["another-token-5678"], pixels=[PIXEL]) as box:
        config = write_config(tmp_path / "destination.yaml", base_url=box.url)
        assert main(["run", str(events), "--config", str(config)]) == 3
        _, err = capsys.readouterr()
    assert "40105" in err
    summary: dict[str, Any] = _summary(err)
    assert summary["events"] == 1700 and summary["still queued"] == 1700


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path``; skips the test where mounting is not allowed."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_stops_reading_with_one_line_and_resends_nothing_delivered(tmp_path, capsys):
    events = write_events(tmp_path / "events.ndjson", 30_000)
    (tmp_path / "none.ndjson").write_text("")
    with (
        small_disk(tmp_path / "small", "12m") as disk,
        Sandbox(tokens=[TOKEN], pixels=[PIXEL]) as box,
    ):
        ballast = disk / "ballast"
        ballast.write_bytes(b"\0" * 1_000_000)  # room to give back afterwards
        config = write_config(tmp_path / "destination.yaml", base_url=box.url)
        outbox = disk / "outbox.sqlite3"
        code = main(
            ["run", str(events), "--config", str(config), "--outbox", str(outbox), "--wait", "5"]
        )
        _, err = capsys.readouterr()
        assert code == 75
        assert "Traceback" not in err
        assert "disk is full" in err and "stopped reading at" in err
        assert err.count("disk is full") <= 6, err  # one line per failure, not thousands
        summary = _summary(err)
        assert summary["not stored (outbox)"] == 500  # the chunk that could not be stored
        delivered = {e.event_id for e in box.events()}
        assert delivered and not box.duplicates()

        ballast.unlink()  # the operator frees space; what was stored goes out, once
        code = main(
            ["run", str(tmp_path / "none.ndjson"), "--config", str(config), "--outbox", str(outbox)]
        )
        assert code == 0
        capsys.readouterr()
        assert not box.duplicates(), "an acknowledged event was sent again"
        stored = {e.event_id for e in box.events()}
    # Everything before the line where reading stopped arrived; nothing after it was taken.
    stopped_at = int(err.split("stopped reading at ")[1].split(":")[1].split()[0].rstrip(";"))
    assert stored == {f"m{i}" for i in range(stopped_at - 1)}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_still_acknowledges_what_was_delivered(tmp_path):
    """The outbox keeps space in reserve: on a full disk, delivered entries are still
    removed (never sent again), and new events are refused until there is room."""
    from destination.actions import Route
    from destination.delivery import SqliteQueue
    from destination.errors import StorageError

    with small_disk(tmp_path / "small", "12m") as disk:
        queue = SqliteQueue(disk / "outbox.sqlite3", reserve_bytes=2 << 20)
        route = Route("tiktok", "web")
        queue.put_many(
            [(route, {"event_id": f"e{i}", "pad": "x" * 400}, f"e{i}") for i in range(3000)]
        )
        claimed = queue.claim(1000)
        filler = disk / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        with pytest.raises(StorageError, match="full"):
            queue.put_many([(route, {"event_id": "late"}, "late")])
        queue.ack([c.id for c in claimed])  # the reserve makes room for this
        assert queue.stats().pending == 2000
        with pytest.raises(StorageError, match="disk is full"):
            queue.put_many([(route, {"event_id": "late"}, "late")])
        filler.unlink()
        assert queue.put_many([(route, {"event_id": "late"}, "late")]) == 1  # room again
        queue.close()
