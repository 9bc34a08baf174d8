"""How many validated events per second the sandbox accepts (target: 50,000).

The sandbox must never be the bottleneck of a delivery throughput test, so
this measures its side only: the sandbox runs in a subprocess (as
``destination sandbox`` would) and this process posts pre-encoded batches of
1000 realistic, valid web events over keep-alive connections with httpx, so
JSON encoding on the client does not share the sandbox's interpreter. Every
accepted event is parsed and validated; the script checks the sandbox's
stats at the end so a fast but wrong run cannot pass.

    python benchmarks/bench_sandbox.py [--seconds 5] [--clients 2] [--inprocess]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from destination.tiktok.sandbox import SANDBOX_TOKEN, TRACK_PATH, Sandbox

EVENTS = ("Purchase", "AddToCart", "ViewContent", "InitiateCheckout", "PageView")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_batch(batch: int, size: int = 1000) -> bytes:
    """One request body: ``size`` distinct, realistic web events."""
    data: list[dict[str, Any]] = []
    for i in range(size):
        n = batch * size + i
        data.append(
            {
                "event": EVENTS[n % len(EVENTS)],
                "event_time": 1_763_800_000 + n,
                "event_id": f"evt-{n}",
                "user": {
                    "email": _sha(f"user{n}@example.com"),
                    "phone": _sha(f"+1555{n:07d}"),
                    "external_id": _sha(f"user-{n}"),
                    "ttclid": f"E.C.P.{n:012d}",
                    "ip": "203.0.113.7",
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                },
                "properties": {
                    "contents": [
                        {"content_id": f"sku-{n % 97}", "price": 19.99, "quantity": 2},
                        {"content_id": f"sku-{n % 89}", "price": 5.0, "quantity": 1},
                    ],
                    "content_type": "product",
                    "currency": "USD",
                    "value": 44.98,
                    "order_id": f"order-{n}",
                },
                "page": {"url": f"https://shop.example.com/p/{n % 500}", "referrer": ""},
                "limited_data_use": False,
            }
        )
    body = {"event_source": "web", "event_source_id": "BENCHPIXEL", "data": data}
    return json.dumps(body).encode()


def _post_loop(base_url: str, bodies: list[bytes], deadline: float, sent: list[int]) -> None:
    headers = {"Access-Token": SANDBOX_TOKEN, "Content-Type": "application/json"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        i = 0
        while time.perf_counter() < deadline:
            answer = client.post(TRACK_PATH, content=bodies[i % len(bodies)], headers=headers)
            if answer.status_code != 200 or answer.json()["code"] != 0:
                raise SystemExit(f"unexpected answer: {answer.status_code} {answer.text[:200]}")
            sent[0] += 1000
            i += 1


def _cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), to measure under contention."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_subprocess() -> tuple[subprocess.Popen[str], str]:
    code = (
        "import signal, sys, threading\n"
        "from destination.tiktok.sandbox import Sandbox\n"
        "box = Sandbox(keep_events=1000).start()\n"
        "print(box.url, flush=True)\n"
        "done = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *a: done.set())\n"
        "done.wait()\n"
        "box.stop()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def bench_pipeline(bodies: list[bytes], rounds: int = 5) -> float:
    """Best ms per request of the sandbox's own work, without HTTP: parse, check, record."""
    from destination.tiktok.sandbox.server import SANDBOX_TOKEN as token
    from destination.tiktok.sandbox.server import _gc_paused, _Request

    box = Sandbox(keep_events=1000)
    requests = [_Request("POST", TRACK_PATH, "", {"access-token": token}, b, True) for b in bodies]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for request in requests:
            with _gc_paused():
                code, message, _ = box._check(request, "bench")
            if code != 0:
                raise SystemExit(f"unexpected answer {code}: {message}")
        best = min(best, (time.perf_counter() - started) / len(requests))
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="concurrent keep-alive clients")
    parser.add_argument("--inprocess", action="store_true", help="run the sandbox in this process")
    args = parser.parse_args()

    bodies = [make_batch(b) for b in range(8)]
    print(f"batch: 1000 events, {len(bodies[0]) / 1024:.0f} KiB of JSON")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {load}")

    pipeline_ms = bench_pipeline(bodies)
    print(
        f"sandbox work alone (parse + validate + record, no HTTP, best of 5): "
        f"{pipeline_ms:.1f} ms per request = {1000 / pipeline_ms * 1000:,.0f} events/s per core"
    )

    box: Sandbox | None = None
    proc: subprocess.Popen[str] | None = None
    if args.inprocess:
        box = Sandbox(keep_events=1000).start()
        url = box.url
    else:
        proc, url = _start_subprocess()
    try:
        _post_loop(url, bodies[:1], time.perf_counter() + 0.5, [0])  # warm up
        httpx.post(url + "/sandbox/reset")
        counters = [[0] for _ in range(args.clients)]
        cpu_before = _cpu_seconds(proc.pid) if proc else None
        start = time.perf_counter()
        deadline = start + args.seconds
        threads = [
            threading.Thread(target=_post_loop, args=(url, bodies, deadline, counter))
            for counter in counters
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        sent = [sum(c[0] for c in counters)]
        cpu_after = _cpu_seconds(proc.pid) if proc else None
        stats = httpx.get(url + "/sandbox/stats").json()
    finally:
        if box is not None:
            box.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    if stats["events"] != sent[0]:
        raise SystemExit(f"sandbox accepted {stats['events']} events, {sent[0]} were sent")
    mode = "in-process" if args.inprocess else "subprocess"
    print(f"sandbox ({mode}), {args.clients} clients, {elapsed:.1f} s:")
    print(f"  {sent[0] / elapsed:,.0f} events/s accepted and validated")
    print(f"  {sent[0] / 1000 / elapsed:,.1f} requests/s of 1000 events")
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        # Throughput depends on what else the 2 cores run; CPU per request does not.
        per_request = (cpu_after - cpu_before) / (sent[0] / 1000)
        print(f"  sandbox CPU: {per_request * 1000:.1f} ms per 1000-event request")
        print(f"  capacity: {1 / per_request * 1000:,.0f} events per CPU-second of the sandbox")


if __name__ == "__main__":
    main()
