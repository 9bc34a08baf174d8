"""Memory stays flat however many events go through (issue 15, item 3), checked without timing.

``benchmarks/bench_memory.py`` measures peak RSS per mode at 100k and 1M
events; these tests guard the causes it found, each by what holds memory:
an error that keeps its batch alive through its traceback, an httpx answer
that keeps its request body in a reference cycle, a sandbox recorder that
keeps one entry per event, reasons counted once per bad value.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import tracemalloc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import destination.tiktok.sandbox as sandbox_module
from destination import Runtime
from destination.actions import Request
from destination.cli import main
from destination.delivery import DryRunExecutor, HttpExecutor
from destination.sandboxmode import EMBEDDED_KEEP_EVENTS
from destination.tiktok.sandbox import Recorder, Sandbox

from .test_host import order
from .test_run import _summary

PIXEL = "CMEMPIXEL01"


class WatchedEvent(dict):  # type: ignore[type-arg]
    """An event a weak reference can watch (a plain dict cannot be)."""


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Only reference counting frees memory inside: what a cycle holds stays held."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _letters(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 26)
        text = chr(ord("a") + digit) + text
        if not number:
            return text


def dry_runtime(tmp_path: Path) -> Runtime:
    config = {
        "settings": {"access_token": "tok-memory-1", "pixel_code": PIXEL},
        "delivery": {"executor": "dry-run", "outbox": str(tmp_path / "o.db"), "linger": 0},
    }
    return Runtime.from_config(
        config, executor=DryRunExecutor(stream=io.StringIO()), environ={}, track_results=False
    )


# -- the host: an invalid event's error -----------------------------------------------------


def test_an_invalid_events_error_does_not_keep_its_batch_alive(tmp_path):
    with dry_runtime(tmp_path) as runtime:
        runtime.process_batch([order(0)])  # imports and caches out of the way
        with no_cyclic_gc():
            batch = [WatchedEvent(order(i, timestamp=f"soon-{_letters(i)}")) for i in range(3)]
            watched = [weakref.ref(event) for event in batch]
            outcomes = runtime.process_batch(batch)
            errors = [error for outcome in outcomes for error in outcome.errors]
            del batch, outcomes
            # The errors are still held (a host may keep them); the events are not.
            assert [weak() for weak in watched] == [None, None, None]
    assert [error.field for error in errors] == ["timestamp"] * 3
    assert all(error.__traceback__ is None for error in errors)


def test_invalid_reasons_are_counted_by_kind_not_by_bad_value(tmp_path):
    with dry_runtime(tmp_path) as runtime:
        outcomes = []
        for start in range(0, 3000, 500):
            batch = [order(i, timestamp=f"soon-{_letters(i)}") for i in range(start, start + 500)]
            outcomes = runtime.process_batch(batch)
        stats = runtime.stats()
    assert stats["invalid"] == 3000
    assert stats["invalid_reasons"] == {
        "timestamp: unparseable timestamp …: not ISO 8601 nor Unix seconds/milliseconds": 3000
    }
    # The event's own message still shows its value, for the user looking for it.
    error = outcomes[-1].errors[0]
    assert error.reason == (
        f"unparseable timestamp 'soon-{_letters(2999)}': not ISO 8601 nor Unix seconds/milliseconds"
    )
    assert error.summary == "unparseable timestamp …: not ISO 8601 nor Unix seconds/milliseconds"


def test_run_counts_bad_lines_by_kind_and_still_shows_each(tmp_path, capsys):
    path = tmp_path / "bad.ndjson"
    lines = [json.dumps({"type": f"custom-{_letters(i)}"}) for i in range(300)]
    lines += ['{"type": "track", "event": ' + "x" * i for i in range(1, 101)]  # not JSON
    path.write_text("\n".join(lines) + "\n")
    assert main(["run", str(path), "--dry-run"]) == 0
    _, err = capsys.readouterr()
    assert f"{path}:1: not a Segment event: unknown type 'custom-a'" in err
    summary = _summary(err)
    assert summary["bad lines"] == 400
    assert summary["not a Segment event: unknown type"] == 300
    assert summary["not JSON"] == 100


# -- the http executor: httpx's answer and its request body --------------------------------


def test_http_executor_frees_the_request_without_the_cyclic_gc():
    sent: list[weakref.ref[httpx.Request]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(weakref.ref(request))
        return httpx.Response(200, content=b'{"code": 0, "message": "OK"}')

    request = Request(url="http://tiktok.invalid/track/", headers={}, body=b"x" * 100_000)

    async def send_twice() -> None:
        executor = HttpExecutor(transport=httpx.MockTransport(handler))
        try:
            for _ in range(2):
                response = await executor.send(request)
                assert response.body == b'{"code": 0, "message": "OK"}'
        finally:
            await executor.aclose()

    with no_cyclic_gc():
        asyncio.run(send_twice())
        # Each httpx request (and the body it holds) went with its answer.
        assert [weak() for weak in sent] == [None, None]


# -- the sandbox's recorder ----------------------------------------------------------------


def _record(recorder: Recorder, batches: int, start: int = 0, size: int = 100) -> None:
    for b in range(start, start + batches):
        data = [{"event": "Purchase", "event_id": f"e-{b}-{i}"} for i in range(size)]
        recorder.accept("web", PIXEL, None, f"req-{b}", data)


def _growth(recorder: Recorder, batches: int) -> int:
    """Bytes the recorder holds after ``batches`` more batches of 100 events than after
    its kept window filled (traced both times, so the window is in both)."""
    tracemalloc.start()
    try:
        _record(recorder, 50)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        _record(recorder, batches, start=50)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_recorder_without_the_duplicate_index_stays_flat():
    recorder = Recorder(keep_events=1000, check_duplicates=False)
    grown = _growth(recorder, 500)  # 50,000 more events
    assert grown < 64 * 1024, grown
    assert recorder.accepted == 55_000 and recorder.counts() == {"Purchase": 55_000}
    assert len(recorder.events()) == 1000
    assert recorder.events()[-1].event_id == "e-549-99"
    stats = recorder.stats()
    assert stats["events"] == 55_000 and stats["stored_events"] == 1000
    assert stats["duplicates"] is None
    with pytest.raises(RuntimeError, match="does not check duplicates"):
        recorder.duplicates()


def test_the_duplicate_index_is_what_grows_and_it_stays_exact():
    recorder = Recorder(keep_events=1000)
    assert _growth(recorder, 500) > 50_000 * 50  # one entry per distinct key
    _record(recorder, 1, start=7)  # batch 7 again: 100 duplicates
    duplicates = recorder.duplicates()
    assert len(duplicates) == 100 and set(duplicates.values()) == {2}


def test_run_without_token_uses_a_bounded_embedded_sandbox(tmp_path, capsys, monkeypatch):
    boxes: list[Sandbox] = []

    class Watched(Sandbox):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            boxes.append(self)

    monkeypatch.setattr(sandbox_module, "Sandbox", Watched)
    monkeypatch.delenv("TIKTOK_ACCESS_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "events.ndjson"
    count = EMBEDDED_KEEP_EVENTS + 500
    with path.open("w") as handle:
        for i in range(count):
            event = order(i, timestamp="2026-11-30T12:00:00Z")
            handle.write(json.dumps(event) + "\n")
    assert main(["run", str(path)]) == 0
    summary = _summary(capsys.readouterr().err)
    (box,) = boxes
    stats = box.stats()
    assert summary["delivered"] == stats["events"] == count
    assert stats["stored_events"] == len(box.events()) == EMBEDDED_KEEP_EVENTS
    assert stats["duplicates"] is None
