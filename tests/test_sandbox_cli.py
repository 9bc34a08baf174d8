"""`destination sandbox`: starts, serves, stops on SIGTERM; bad options are one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from destination.cli import main
from destination.tiktok.sandbox import TRACK_PATH, Sandbox


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "destination.cli", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("Press Ctrl-C"):
            break
        if line.startswith("TikTok Events API sandbox listening on "):
            banner["url"] = line.rsplit(" ", 1)[1].strip()
        elif ":" in line:
            key, _, value = line.strip().partition(":")
            banner[key] = value.strip()
    return proc, banner


@pytest.mark.slow
def test_cli_serves_until_sigterm() -> None:
    proc, banner = _start(
        "--token", "tok-1", "--pixel", "PX", "--fault", "script:503,ok", "--rate-limit", "100"
    )
    try:
        assert banner["access token"] == "tok-1"
        assert banner["pixels"] == "PX"
        assert "script:503,ok" in banner["faults"]
        event = {"event": "Purchase", "event_time": 1_763_800_000, "event_id": "1"}
        body = {"event_source": "web", "event_source_id": "PX", "data": [event]}
        with httpx.Client(base_url=banner["url"], headers={"Access-Token": "tok-1"}) as http:
            assert http.post(TRACK_PATH, json=body).status_code == 503
            assert http.post(TRACK_PATH, json=body).json()["code"] == 0
            assert (
                http.post(TRACK_PATH, json={**body, "event_source_id": "P2"}).json()["code"]
                == 40001
            )
            assert http.get("/sandbox/stats").json()["counts"] == {"Purchase": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "sandbox stopped: 3 requests, 1 events accepted" in out
    assert "Traceback" not in err
    assert "tok-1" not in err  # the request log never shows the token


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "boom"], "unknown fault 'boom'"),
        (["--fault", "500:2"], "not between 0 and 1"),
        (["--rate-limit", "0"], "must be positive"),
        (["--token", ""], "at least one access token"),
    ],
)
def test_bad_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["sandbox", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("destination sandbox: ")


def test_port_in_use_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with Sandbox() as busy:
        assert main(["sandbox", "--port", str(busy.port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"destination sandbox: cannot listen on 127.0.0.1:{busy.port}")
    assert len(err.strip().splitlines()) == 1


def test_bad_port_is_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["sandbox", "--port", "70000"])
    assert caught.value.code == 2
    assert "port 70000 is not between 0 and 65535" in capsys.readouterr().err


def test_help_lists_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "sandbox" in capsys.readouterr().out
