"""Delivery throughput end to end into the sandbox, and memory as the input grows.

Each size runs in a fresh process (so peak RSS is its own): hashed TikTok
items are submitted to a DeliveryEngine with a SQLite outbox in chunks of
1000, and the clock stops when the sandbox (another process on the same
machine) has acknowledged every one. The engine holds a bounded window, so
peak memory should not grow with the number of events.

    python benchmarks/bench_delivery.py                 # 100k and 300k events
    python benchmarks/bench_delivery.py --events 50000  # one size
    python benchmarks/bench_delivery.py --prebuilt      # items built before the clock
                                                        # starts: the engine alone, with CPU
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.sandboxproc import SandboxProcess

PIXEL = "CBENCHPIXEL1"


def items(count: int, route: Any) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """Distinct hashed items, made cheaply (hashing is bench_normalize's subject, not ours)."""
    now = int(time.time()) - 60
    emails = [hashlib.sha256(f"user{i}@example.com".encode()).hexdigest() for i in range(1000)]
    users = [{"email": [e], "ip": "203.0.113.7", "user_agent": "bench/1.0"} for e in emails]
    template = {
        "event": "Purchase",
        "event_time": now,
        "properties": {"currency": "USD", "value": 10.5, "content_type": "product"},
        "page": {"url": "https://shop.example/checkout"},
    }
    for i in range(count):
        event_id = f"bench-{i}"
        yield route, {**template, "event_id": event_id, "user": users[i % 1000]}, event_id


def run_one(count: int, prebuilt: bool = False) -> dict[str, Any]:
    from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor, SqliteQueue
    from destination.tiktok.destination import TikTokDestination

    sandbox = SandboxProcess(PIXEL)
    tiktok = TikTokDestination()
    settings = tiktok.load_settings(
        {"access_token": sandbox.token, "pixel_code": PIXEL, "api_base_url": sandbox.url}, {}
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = DeliveryEngine(
            tiktok,
            settings,
            queue=SqliteQueue(Path(tmp) / "outbox.sqlite3"),
            executor=HttpExecutor(concurrency=4),
            options=DeliveryOptions(linger=0.05, concurrency=4, rate=1000),
        )
        route, _ = tiktok.actions["report_web_event"].build(
            {"event": "Purchase", "timestamp": int(time.time()), "external_id": "u1"}, settings
        )
        source: Any = list(items(count, route)) if prebuilt else items(count, route)
        start = time.perf_counter()
        cpu = time.process_time()
        chunk: list[tuple[Any, dict[str, Any], str]] = []
        for triple in source:
            chunk.append(triple)
            if len(chunk) == 1000:
                engine.submit_many(chunk)
                chunk = []
        if chunk:
            engine.submit_many(chunk)
        submitted = time.perf_counter() - start
        while not (engine.flush(timeout=60) and engine.stats()["pending"] == 0):
            pass
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        stats = engine.stats()
        engine.close()
    received = sandbox.finish()
    return {
        "events": count,
        "delivered": stats["delivered"],
        "sandbox_events": received["events"],
        "requests": received["requests"],
        "duplicates": received["duplicates"],
        "submit_s": round(submitted, 2),
        "total_s": round(elapsed, 2),
        "events_per_s": round(count / elapsed),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[100_000, 300_000])
    parser.add_argument("--prebuilt", action="store_true", help="build the items first")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.prebuilt)))
        return
    print(
        f"{'events':>8} {'e2e ev/s':>9} {'total s':>8} {'submit s':>9} {'cpu s':>6} "
        f"{'peak RSS MB':>12}"
    )
    for count in args.events:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(count)]
            + (["--prebuilt"] if args.prebuilt else []),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        assert r["sandbox_events"] == r["delivered"] == count, r
        print(
            f"{r['events']:>8} {r['events_per_s']:>9} {r['total_s']:>8} "
            f"{r['submit_s']:>9} {r['cpu_s']:>6} {r['peak_rss_mb']:>12}"
            f"   ({r['requests']} requests, {r['duplicates']} duplicates)"
        )


if __name__ == "__main__":
    main()
