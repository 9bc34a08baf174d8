"""Events per second accepted by ``destination serve``, with delivery running.

Three processes on loopback: the TikTok sandbox, ``destination serve``
(delivering to it) and this load generator, which keeps ``--connections``
requests in flight, each a ``POST /v1/batch`` of ``--batch`` events (gzip
with ``--gzip``), until ``--requests`` were answered or ``--seconds``
passed. "Accepted" is events in requests answered 200 — stored in the
outbox — per second of the run; the run then waits for the sandbox to have
every event and reports the end-to-end rate and the server's latency.

    python benchmarks/bench_serve.py                       # 400 requests of 100 events
    python benchmarks/bench_serve.py --requests 1000 --connections 8 --gzip
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.procfs import children
from benchmarks.sandboxproc import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
PIXEL = "CBENCHPIXEL1"
KEY = "bench-write-key"


def event(i: int) -> dict[str, Any]:
    """A realistic mix: orders, cart adds, product views and pages, with hashed PII."""
    user = i % 5000
    context = {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (bench)",
        "page": {"url": f"https://shop.example.com/p/{i % 300}?ttclid=E.C.{user}"},
        "traits": {"email": f"User{user}@Example.com", "phone": "+1 213 373 4253"},
    }
    base = {
        "messageId": str(uuid.uuid4()),
        "userId": f"user-{user}",
        "anonymousId": f"anon-{user}",
        "timestamp": "2026-11-30T10:00:00.000Z",
        "context": context,
    }
    product = {"product_id": f"sku-{i % 300}", "price": 19.99, "quantity": 1, "category": "Games"}
    kind = i % 4
    if kind == 0:
        props = {"order_id": f"o{i}", "value": 39.98, "currency": "USD", "products": [product] * 2}
        return {**base, "type": "track", "event": "Order Completed", "properties": props}
    if kind == 1:
        return {
            **base,
            "type": "track",
            "event": "Product Added",
            "properties": {**product, "currency": "USD"},
        }
    if kind == 2:
        return {
            **base,
            "type": "track",
            "event": "Product Viewed",
            "properties": {**product, "currency": "USD"},
        }
    return {**base, "type": "page", "name": "Home", "properties": {"url": context["page"]["url"]}}


def bodies(count: int, batch: int, compress: bool) -> list[bytes]:
    out = []
    for r in range(count):
        raw = json.dumps({"batch": [event(r * batch + i) for i in range(batch)]}).encode()
        out.append(gzip.compress(raw) if compress else raw)
    return out


async def load(url: str, payloads: list[bytes], connections: int, seconds: float, compress: bool):
    headers = {"Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(payloads))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(auth=(KEY, ""), limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue and time.monotonic() < deadline:
                body = queue.pop()
                started = time.perf_counter()
                answer = await client.post(url + "/v1/batch", content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    return elapsed, latencies, statuses


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="stop sending after this")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="destination serve --workers")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sandbox = SandboxProcess(PIXEL, env)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "serve.yaml"
        config.write_text(
            f"settings: {{pixel_code: {PIXEL}}}\n"
            f"delivery: {{outbox: {folder}/outbox.db, linger: 0.05}}\n"
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "destination.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                "0",
                "--write-key",
                KEY,
                "--log-level",
                "warning",
                "--workers",
                str(args.workers),
            ],
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "TIKTOK_ACCESS_TOKEN": sandbox.token, "TIKTOK_API_BASE_URL": sandbox.url},
        )
        assert server.stderr is not None
        url = ""
        seen = []
        for line in server.stderr:
            seen.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        if not url:
            sandbox.finish()
            sys.exit("destination serve did not start:\n" + "".join(seen))
        # Keep reading its stderr, so a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda: seen.extend(server.stderr or ()), daemon=True).start()
        try:
            payloads = bodies(args.requests, args.batch, args.gzip)
            own_cpu = time.process_time()
            elapsed, latencies, statuses = asyncio.run(
                load(url, payloads, args.connections, args.seconds, args.gzip)
            )
            accepted = statuses.get(200, 0) * args.batch
            deadline = time.monotonic() + 120
            with httpx.Client() as http:
                while time.monotonic() < deadline:
                    text = http.get(url + "/metrics").text
                    done = metric(text, "destination_events_delivered_total")
                    stored = metric(text, "destination_events_accepted_total")
                    if done >= stored and metric(text, "destination_outbox_pending") == 0:
                        break
                    time.sleep(0.05)
            total = time.monotonic() - deadline + 120 + elapsed
            cpu = {
                "server": cpu_seconds(server.pid),
                "workers": sum(cpu_seconds(c) for c in children(server.pid)),
                "sandbox": cpu_seconds(sandbox.pid),
                "load generator": time.process_time() - own_cpu,
            }
        finally:
            server.terminate()
            server.wait(30)
            sandbox_stats = sandbox.finish(10)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"{accepted:,} events in {statuses.get(200, 0)} requests of {args.batch} "
        f"({args.connections} connections, {args.workers} workers"
        f"{', gzip' if args.gzip else ''}): "
        f"accepted {accepted / elapsed:,.0f} events/s ({elapsed:.2f} s), "
        f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms, statuses {statuses}; "
        f"delivered to the sandbox: {sandbox_stats['events']:,} items "
        f"({sandbox_stats['events'] / total:,.0f}/s end to end, {total:.2f} s), "
        f"{sandbox_stats['requests']} requests, duplicates {sandbox_stats['duplicates']}"
    )
    per_event = ", ".join(f"{k} {v / max(accepted, 1) * 1e6:.0f}" for k, v in cpu.items())
    print(f"CPU µs per event: {per_event}")


if __name__ == "__main__":
    main()
