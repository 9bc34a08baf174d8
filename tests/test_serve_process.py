"""``destination serve`` as a process: start-up errors, SIGTERM drain, SIGKILL and restart."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client
from segment.analytics.request import APIError, post

from benchmarks.procfs import children
from destination.tiktok.sandbox import Sandbox

from .serve_support import KEY, PIXEL, ROOT, ServeProcess, messages, wait_for, write_settings

SECRET_KEY = "wk_secret_never_logged_5f2c"


pytestmark = pytest.mark.usefixtures("clean_environment")


def write_config(tmp_path: Path, **delivery: object) -> Path:
    options = {"outbox": str(tmp_path / "outbox.db"), "linger": 0.02, **delivery}
    text = "settings:\n  pixel_code: " + PIXEL + "\ndelivery:\n"
    text += "".join(f"  {k}: {v}\n" for k, v in options.items())
    path = tmp_path / "serve.yaml"
    path.write_text(text)
    return path


def box_env(box: Sandbox) -> dict[str, str]:
    return {"TIKTOK_ACCESS_TOKEN": box.token, "TIKTOK_API_BASE_URL": box.url}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "destination.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


# -- start-up -----------------------------------------------------------------------------


def test_no_write_key_is_exit_2(tmp_path):
    result = run_cli("--sandbox", "--port", "0")
    assert result.returncode == 2
    assert "no write key" in result.stderr and "--write-key" in result.stderr


def test_no_access_token_is_exit_2_unless_sandbox(tmp_path):
    result = run_cli("--write-key", KEY, "--config", str(write_config(tmp_path)))
    assert result.returncode == 2
    assert "no access token" in result.stderr and "--sandbox" in result.stderr


def test_a_bad_config_is_exit_2_with_its_position(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("serve:\n  port: lots\n")
    result = run_cli("--write-key", KEY, "--config", str(config))
    assert result.returncode == 2 and "bad.yaml:2:" in result.stderr


def test_without_the_serve_extra_the_message_says_what_to_install():
    code = (
        "import sys; sys.modules['uvicorn'] = None; from destination.cli import main; "
        "sys.exit(main(['serve', '--write-key', 'k', '--sandbox']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2 and "install destination[serve]" in result.stderr


def test_sandbox_mode_with_keys_from_the_environment_never_logs_them(tmp_path):
    server = ServeProcess(
        "--sandbox", "--access-log", env={"DESTINATION_WRITE_KEYS": f"other,{SECRET_KEY}"}
    )
    try:
        with httpx.Client() as http:
            answer = http.post(
                server.url + "/v1/track",
                json={"event": "Order Completed", "userId": "u", "properties": {"value": 1}},
                auth=(SECRET_KEY, ""),
            )
            assert answer.status_code == 200
            assert (
                http.post(server.url + "/v1/track", json={}, auth=("nope", "")).status_code == 401
            )
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()
    assert "embedded TikTok sandbox" in server.output
    assert "2 write key(s) from DESTINATION_WRITE_KEYS" in server.output
    assert SECRET_KEY not in server.output


# -- shutdown -----------------------------------------------------------------------------


def test_sigterm_drains_what_it_can_and_keeps_the_rest_queued(tmp_path):
    with Sandbox(pixels=[PIXEL], faults=["latency:ms=400"]) as box:
        config = write_config(tmp_path, shutdown_timeout=1, batch_size=50, concurrency=1)
        server = ServeProcess("--config", str(config), "--write-key", KEY, env=box_env(box))
        try:
            client = Client(write_key=KEY, host=server.url, sync_mode=True)
            sent = messages(client, 20)  # one request each, answered once stored
            batch = messages(Client(write_key=KEY, host=server.url, send=False), 480, 20)
            post(KEY, host=server.url, batch=batch)
            started = time.monotonic()
            os.kill(server.proc.pid, signal.SIGTERM)
            assert server.wait() == 0
            took = time.monotonic() - started
        finally:
            server.kill()
        delivered = {e.event_id for e in box.events()}
    # ~400 ms per request of 50, one at a time, within a 1 s budget: some sent, the rest kept.
    assert took < 8
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        kept = {
            event_id
            for (ids,) in db.execute("SELECT event_ids FROM chunk_items")
            for event_id in json.loads(ids)
        }
    assert 0 < len(delivered) < 500 and kept
    assert delivered | kept == {m["messageId"] for m in sent + batch}
    assert "still queued" in server.output


def test_sigterm_with_nothing_in_flight_delivers_everything_and_refuses_new_connections(tmp_path):
    with Sandbox(pixels=[PIXEL]) as box:
        server = ServeProcess(
            "--config", str(write_config(tmp_path, linger=5)), "--write-key", KEY, env=box_env(box)
        )
        try:
            batch = messages(Client(write_key=KEY, host=server.url, send=False), 300)
            post(KEY, host=server.url, gzip=True, batch=batch)
            os.kill(server.proc.pid, signal.SIGTERM)  # linger 5 s: the drain must flush
            assert server.wait() == 0
            with pytest.raises(httpx.ConnectError):
                httpx.get(server.url + "/healthz")
        finally:
            server.kill()
        ids = [e.event_id for e in box.events()]
    assert sorted(ids) == sorted(m["messageId"] for m in batch)
    assert "300 delivered, 0 still queued" in server.output


# -- SIGKILL ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_loses_no_acknowledged_event(tmp_path):
    with Sandbox(pixels=[PIXEL], faults=["latency:ms=200"]) as box:
        config = write_config(tmp_path, batch_size=100, concurrency=1)
        args = ("--config", str(config), "--write-key", KEY)
        server = ServeProcess(*args, env=box_env(box))
        maker = Client(write_key=KEY, host=server.url, send=False)
        acked: list[str] = []
        failed: list[str] = []
        stop = threading.Event()

        def send() -> None:
            n = 0
            while not stop.is_set():
                batch = messages(maker, 50, n)
                n += 50
                try:
                    post(KEY, host=server.url, gzip=True, timeout=5, batch=batch)
                except (APIError, OSError, Exception):  # the server died under us
                    failed.extend(m["messageId"] for m in batch)
                    return
                acked.extend(m["messageId"] for m in batch)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            assert wait_for(lambda: len(acked) >= 3000 and box.events(), timeout=40)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.wait()
        finally:
            stop.set()
            sender.join(20)
            server.kill()
        before = {e.event_id for e in box.events()}
        assert len(before) < len(acked), "killed after everything was delivered: not mid-stream"
        box.set_faults(None)
        restarted = ServeProcess(*args, env=box_env(box))
        try:
            assert wait_for(lambda: set(acked) <= {e.event_id for e in box.events()}, timeout=40)
            os.kill(restarted.proc.pid, signal.SIGTERM)
            assert restarted.wait() == 0
        finally:
            restarted.kill()
        received = {e.event_id for e in box.events()}
    assert set(acked) <= received
    # A batch in flight at the kill may be sent again (same event_ids: TikTok deduplicates);
    # nothing else is.
    assert all(count <= 2 for count in box.duplicates().values())


# -- worker processes ---------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_store_deliver_count_and_die_with_a_killed_server(tmp_path):
    with Sandbox(pixels=[PIXEL]) as box:
        args = ("--config", str(write_config(tmp_path)), "--write-key", KEY, "--workers", "2")
        server = ServeProcess(*args, env=box_env(box))
        try:
            assert "2 worker processes" in server.output
            maker = Client(write_key=KEY, host=server.url, send=False)
            sent = []
            with httpx.Client() as http:
                for n in range(0, 1000, 100):
                    batch = messages(maker, 100, n)
                    sent += [m["messageId"] for m in batch]
                    post(KEY, host=server.url, gzip=bool(n % 200), batch=batch)
                bad = http.post(
                    server.url + "/v1/batch", json={"batch": [{"event": "x"}]}, auth=(KEY, "")
                )
                assert bad.status_code == 400 and "batch[0]: missing 'type'" in bad.text
                body_key = http.post(
                    server.url + "/v1/track", json={"writeKey": "no", "event": "x"}
                )
                assert body_key.status_code == 401
                assert wait_for(lambda: len(box.events()) >= 1000)
                text = http.get(server.url + "/metrics").text.splitlines()
            assert "destination_events_received_total 1000" in text
            assert "destination_events_accepted_total 1000" in text
            assert (
                'destination_events_matched_by_preset_total{preset="Place an Order"} 1000' in text
            )
            assert wait_for(lambda: "destination_events_delivered_total 1000" in text)
            workers = children(server.proc.pid)
            spawned = [
                p for p in workers if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
            ]
            assert len(spawned) == 2
            os.kill(spawned[0], signal.SIGKILL)  # a worker dies: one 503, then a fresh pool
            assert wait_for(lambda: not alive(spawned[0]))
            extra = messages(maker, 1, 5000)
            answers = []
            for _ in range(3):
                try:
                    post(KEY, host=server.url, batch=extra)
                    answers.append(200)
                except APIError as exc:
                    answers.append(exc.status)
            assert answers[-1] == 200 and set(answers) <= {200, 503}
            sent += [m["messageId"] for m in extra]
            assert wait_for(lambda: len(box.events()) >= 1001)
            workers = children(server.proc.pid)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.wait()
            assert wait_for(lambda: not any(alive(p) for p in workers), timeout=10)
        finally:
            server.kill()
        assert sorted({e.event_id for e in box.events()}) == sorted(set(sent))


def test_sandbox_refuses_a_real_outbox(tmp_path):
    result = run_cli("--sandbox", "--write-key", "k", "--outbox", str(tmp_path / "o.db"))
    assert result.returncode == 2
    assert "--outbox is for deliveries to TikTok" in result.stderr
    assert not (tmp_path / "o.db").exists()


@pytest.mark.slow
def test_the_config_sets_the_workers_and_the_command_line_wins(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "serve:\n  workers: 1\n")
    with Sandbox(pixels=[PIXEL]) as box:
        for extra, expected in (((), "1 worker processes"), (("--workers", "0"), None)):
            server = ServeProcess(
                "--config", str(config), "--write-key", KEY, *extra, env=box_env(box)
            )
            try:
                if expected:
                    assert expected in server.output
                else:
                    assert "worker processes" not in server.output
            finally:
                server.kill()


# -- SIGHUP -------------------------------------------------------------------------------

RIGHT_TOKEN = "right-token-sighup-3b7d"
WRONG_TOKEN = "wrong-token-sighup-9c2e"


def health(http: httpx.Client, url: str) -> tuple[int, str]:
    answer = http.get(url + "/healthz")
    return answer.status_code, answer.json()["status"]


def test_sighup_reloads_the_settings_and_delivers_what_waited(tmp_path):
    with Sandbox(pixels=[PIXEL], tokens=[RIGHT_TOKEN]) as box:
        config, outbox = tmp_path / "serve.yaml", tmp_path / "outbox.db"
        write_settings(config, box, outbox, WRONG_TOKEN)  # no TIKTOK_ACCESS_TOKEN: the file's
        server = ServeProcess("--config", str(config), "--write-key", KEY)
        try:
            client = Client(write_key=KEY, host=server.url, sync_mode=True)
            sent = messages(client, 10)
            with httpx.Client() as http:
                assert wait_for(lambda: health(http, server.url)[1].startswith("degraded: "))
                code, status = health(http, server.url)
                assert code == 200 and status.startswith("degraded: delivery stopped: ")
                assert "40105" in status and box.events() == []

                # A bad file: one line naming the problem where it is; the old settings stay.
                write_settings(config, box, outbox, RIGHT_TOKEN, "  pixle_code: typo\n")
                os.kill(server.proc.pid, signal.SIGHUP)
                assert wait_for(lambda: "settings not reloaded" in server.output)
                assert "serve.yaml:5:" in server.output and "pixle_code" in server.output
                sent += messages(client, 5, 10)  # still taking events, still stopped
                assert health(http, server.url)[1].startswith("degraded: delivery stopped: ")

                write_settings(config, box, outbox, RIGHT_TOKEN)
                os.kill(server.proc.pid, signal.SIGHUP)
                assert wait_for(lambda: len(box.events()) == 15)
                assert health(http, server.url) == (200, "ok")
            os.kill(server.proc.pid, signal.SIGTERM)
            assert server.wait() == 0
        finally:
            server.kill()
        delivered = Counter(e.event_id for e in box.events())
        assert delivered == Counter(m["messageId"] for m in sent)  # each once
    output = server.output
    assert output.count("settings reloaded; delivery resumed") == 1
    assert output.count("settings not reloaded") == 1
    assert "Traceback" not in output
    assert WRONG_TOKEN not in output and RIGHT_TOKEN not in output
    assert "15 delivered, 0 still queued" in output


def test_sighup_in_sandbox_mode_resumes_and_the_server_goes_on(tmp_path):
    server = ServeProcess("--sandbox", "--write-key", KEY)
    try:
        os.kill(server.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: "settings reloaded; delivery resumed" in server.output)
        with httpx.Client() as http:
            assert health(http, server.url) == (200, "ok")
            answer = http.post(
                server.url + "/v1/track",
                json={"event": "Order Completed", "userId": "u", "properties": {"value": 1}},
                auth=(KEY, ""),
            )
            assert answer.status_code == 200
        os.kill(server.proc.pid, signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()


@pytest.mark.slow
def test_sighup_starts_the_workers_again_with_the_new_settings(tmp_path):
    with Sandbox(pixels=[PIXEL], tokens=[RIGHT_TOKEN]) as box:
        config, outbox = tmp_path / "serve.yaml", tmp_path / "outbox.db"
        write_settings(config, box, outbox, WRONG_TOKEN)
        server = ServeProcess("--config", str(config), "--write-key", KEY, "--workers", "1")
        try:
            client = Client(write_key=KEY, host=server.url, sync_mode=True)
            sent = messages(client, 5)
            with httpx.Client() as http:
                assert wait_for(lambda: health(http, server.url)[1].startswith("degraded: "))
                before = children(server.proc.pid)
                write_settings(config, box, outbox, RIGHT_TOKEN, "  default_phone_region: DE\n")
                os.kill(server.proc.pid, signal.SIGHUP)
                assert wait_for(lambda: len(box.events()) == 5)
                assert wait_for(lambda: "settings reloaded" in server.output)
                sent += messages(client, 5, 5)  # stored by the new worker
                assert wait_for(lambda: len(box.events()) == 10)
                assert health(http, server.url) == (200, "ok")
                workers = children(server.proc.pid)
                assert wait_for(lambda: not any(alive(p) for p in set(before) - set(workers)))
            os.kill(server.proc.pid, signal.SIGTERM)
            assert server.wait() == 0
        finally:
            server.kill()
        delivered = Counter(e.event_id for e in box.events())
        assert delivered == Counter(m["messageId"] for m in sent)  # each once
    assert "did not start again" not in server.output and "Traceback" not in server.output
