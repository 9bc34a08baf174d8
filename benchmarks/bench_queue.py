"""What the outbox costs per event: store, claim and acknowledge, in instructions and time.

The cycle every delivered event goes through in the queue: ``put_many`` of
500 hashed items (as ``process_batch`` stores them), ``claim`` of a request's
worth (1000), ``ack`` of what was claimed. Run against any checkout: it
detects the queue's API (the per-event outbox before issue 15: ``claim``
returns entries, ``ack`` takes their ``seq``; the chunked one: ``claim``
returns chunks, ``ack`` takes their ``id``), so before and after are measured
by the same script:

    python benchmarks/bench_queue.py                           # this checkout
    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_queue.py --no-path
    python benchmarks/bench_queue.py --callgrind               # instructions (valgrind)

Instructions are counted by callgrind over the measured loop only
(``--toggle-collect=functools_reduce``, as bench_instructions.py does), with
``PYTHONHASHSEED=0``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def items(count: int) -> list[tuple[object, str, str]]:
    from destination.actions import Route
    from destination.compactjson import dumps

    try:
        route = Route("tiktok", "web")
    except TypeError:  # before issue 14: routes held the URL and pixel
        route = Route(  # type: ignore[call-arg]
            destination="tiktok",
            url="https://business-api.tiktok.com/open_api/v1.3/event/track/",
            event_source="web",
            event_source_id="CBENCH",
        )
    out = []
    for i in range(count):
        email = hashlib.sha256(f"user{i % 1000}@example.com".encode()).hexdigest()
        item = {
            "event": "Purchase",
            "event_time": 1733300000,
            "event_id": f"bench-{i}",
            "user": {"email": [email], "ip": "203.0.113.7", "user_agent": "bench/1.0"},
            "properties": {"currency": "USD", "value": 10.5, "content_type": "product"},
            "page": {"url": "https://shop.example/checkout"},
        }
        out.append((route, dumps(item).decode(), f"bench-{i}"))
    return out


def cycle(queue: object, events: list[tuple[object, str, str]]) -> int:
    """put in 500s, claim in 1000s, ack; returns how many were acknowledged."""
    acked = 0
    for start in range(0, len(events), 500):
        queue.put_many(events[start : start + 500])  # type: ignore[attr-defined]
    while True:
        claimed = queue.claim(1000)  # type: ignore[attr-defined]
        if not claimed:
            return acked
        if hasattr(claimed[0], "items"):  # chunks
            queue.ack([c.id for c in claimed])  # type: ignore[attr-defined]
            acked += sum(len(c.items) for c in claimed)
        else:  # entries, one per event
            queue.ack([e.seq for e in claimed])  # type: ignore[attr-defined]
            acked += len(claimed)


def measure(count: int) -> None:
    from destination.delivery.outbox import SqliteQueue

    events = items(count)
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = (
            {"reserve_bytes": 0}
            if "reserve_bytes" in SqliteQueue.__init__.__code__.co_varnames
            else {}
        )
        queue = SqliteQueue(Path(tmp) / "outbox.sqlite3", **kwargs)
        started = time.perf_counter()
        # functools.reduce marks the measured loop for callgrind's --toggle-collect.
        acked = functools.reduce(lambda _, q: cycle(q, events), [queue], 0)
        elapsed = time.perf_counter() - started
        queue.close()
    assert acked == count, (acked, count)
    print(f"{count} events: {elapsed / count * 1e6:.2f} µs per event (put + claim + ack)")


def callgrind(count: int, path_args: list[str]) -> None:
    if shutil.which("valgrind") is None:
        print("valgrind not found: skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--toggle-collect=functools_reduce",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--events",
                str(count),
                *path_args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        total = next(
            int(line.split()[1])
            for line in out.read_text().splitlines()
            if line.startswith(("summary:", "totals:"))
        )
    print(f"{count} events: {total / count:,.0f} instructions per event (put + claim + ack)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument(
        "--no-path", action="store_true", help="import destination from PYTHONPATH, not here"
    )
    args = parser.parse_args()
    if not args.no_path:
        sys.path.insert(0, str(ROOT))
    if args.callgrind:
        callgrind(args.events, ["--no-path"] if args.no_path else [])
    else:
        measure(args.events)


if __name__ == "__main__":
    main()
