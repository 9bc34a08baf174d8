"""The shared JetStream queue with 1 and 2 producers and 1 and 2 delivering workers.

For each combination a fresh ``nats-server -js`` (on a free loopback port,
its own store) and the TikTok sandbox (another process) are started. Then:

1. **accept**: P producer processes publish N hashed items between them
   through ``JetStreamQueue(deliver=False).put_many`` in chunks of 500 (the
   ingest side of ``serve --queue --no-deliver`` and ``run --queue``, without
   HTTP: bench_serve.py measures that layer); the clock stops when every
   publish is acknowledged.
2. **deliver**: W worker processes, each a ``DeliveryEngine`` over the same
   stream and consumer (what ``destination deliver --queue`` runs), deliver
   everything to the sandbox; the clock stops when all have drained.

Printed per combination: accepted and delivered events/s, CPU per event of
the producers and of the workers (user + system, from the children's
rusage), and duplicates the sandbox saw. The machine has 2 cores, shared by
nats-server, the sandbox and the workers: see docs/performance.md for what
limits the figures.

3. with ``--ingest-nodes 1 2``, first: N ``destination serve --queue URL
   --no-deliver`` processes take ``POST /v1/batch`` requests of 100 events
   (bench_serve.py's realistic mix, 4 connections per node) and publish
   them: accepted events/s through HTTP, parsing, matching, mapping and
   hashing.

    python benchmarks/bench_scale.py                  # 40,000 events, P and W in {1, 2}
    python benchmarks/bench_scale.py --ingest-nodes 1 2 --producers --workers
    python benchmarks/bench_scale.py --events 100000 --producers 1 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sandboxproc import SandboxProcess  # noqa: E402

PIXEL = "CBENCHPIXEL1"

_PRODUCER = """
import json, sys, time
sys.path.insert(0, sys.argv[4])
from benchmarks.bench_delivery import items
from destination.actions import Route
from destination.compactjson import dumps
from destination.delivery.jetstream import JetStreamQueue
url, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
queue = JetStreamQueue(url, deliver=False)
route = Route("tiktok", "web")
events = []
for r, i, e in items(count, route):
    event_id = f"{e}-p{start}"  # each producer's own events: the sandbox counts duplicates
    events.append((r, dumps({**i, "event_id": event_id}).decode(), event_id))
print("ready", flush=True)
sys.stdin.readline()
for at in range(0, count, 500):
    queue.put_many(events[at : at + 500])
queue.close()
print("done", flush=True)
"""

_WORKER = """
import json, sys
sys.path.insert(0, sys.argv[4])
from destination.delivery import DeliveryEngine, DeliveryOptions, HttpExecutor
from destination.delivery.jetstream import JetStreamQueue
from destination.tiktok.destination import TikTokDestination
url, base_url, token = sys.argv[1], sys.argv[2], sys.argv[3]
tiktok = TikTokDestination()
settings = tiktok.load_settings(
    {"access_token": token, "pixel_code": "CBENCHPIXEL1", "api_base_url": base_url}, {}
)
print("ready", flush=True)
sys.stdin.readline()
engine = DeliveryEngine(
    tiktok, settings, queue=JetStreamQueue(url), executor=HttpExecutor(concurrency=4),
    options=DeliveryOptions(linger=0.05, concurrency=4, rate=1000),
)
engine.drain(timeout=600)
stats = engine.stats()
engine.close()
print(json.dumps({"delivered": stats["delivered"]}), flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nats(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    port = free_port()
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"nats://127.0.0.1:{port}"
        time.sleep(0.02)
    process.kill()
    raise SystemExit("nats-server did not start")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_phase(commands: list[list[str]]) -> tuple[float, float, list[str]]:
    """Start the processes, let them get ready, release them at once; (wall s, CPU s, outputs)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for c in commands
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    cpu = children_cpu()
    started = time.perf_counter()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            raise SystemExit(f"a child failed ({process.returncode})")
        outputs.append(out.strip().splitlines()[-1])
    wall = time.perf_counter() - started
    return wall, children_cpu() - cpu, outputs


def one(events: int, producers: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        nats, url = start_nats(Path(tmp))
        sandbox = SandboxProcess(PIXEL)
        try:
            share = events // producers
            wall_in, cpu_in, _ = run_phase(
                [
                    [sys.executable, "-c", _PRODUCER, url, str(p), str(share), str(ROOT)]
                    for p in range(producers)
                ]
            )
            wall_out, cpu_out, outs = run_phase(
                [
                    [sys.executable, "-c", _WORKER, url, sandbox.url, sandbox.token, str(ROOT)]
                    for _ in range(workers)
                ]
            )
        finally:
            received = sandbox.finish()
            nats.kill()
            nats.wait()
    delivered = sum(json.loads(o)["delivered"] for o in outs)
    total = share * producers
    return {
        "producers": producers,
        "workers": workers,
        "events": total,
        "accepted_per_s": round(total / wall_in),
        "producer_cpu_us": round(cpu_in / total * 1e6, 1),
        "delivered_per_s": round(total / wall_out),
        "worker_cpu_us": round(cpu_out / total * 1e6, 1),
        "delivered": delivered,
        "sandbox_events": received["events"],
        "duplicates": received["duplicates"],
    }


def _drain_lines(stream: Any) -> None:
    for _ in stream:
        pass


def start_serve(config: Path, queue: str) -> tuple[subprocess.Popen[str], str]:
    """``destination serve --queue URL --no-deliver`` on a free port; (process, its URL)."""
    import re

    from benchmarks.bench_serve import KEY

    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "destination.cli", "serve", "--config", str(config)),
            *("--port", "0", "--write-key", KEY, "--log-level", "warning"),
            *("--queue", queue, "--no-deliver"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TIKTOK_ACCESS_TOKEN": ""},
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            # Keep reading its stderr, so a chatty server never blocks on a full pipe.
            threading.Thread(target=_drain_lines, args=(process.stderr,), daemon=True).start()
            return process, found.group(1)
    raise SystemExit("destination serve did not start")


def ingest(nodes: int, requests: int, batch: int) -> dict[str, Any]:
    """Accepted events/s through ``nodes`` ingest-only ``serve`` processes (HTTP, parsing,
    matching, mapping, hashing, publishing), 4 connections per node."""
    import asyncio

    from benchmarks.bench_serve import bodies, load

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        nats, url = start_nats(Path(tmp) / "nats")
        config = Path(tmp) / "serve.yaml"
        config.write_text(f"settings: {{pixel_code: {PIXEL}}}\ndelivery: {{linger: 0.05}}\n")
        servers = [start_serve(config, url) for _ in range(nodes)]
        try:
            payloads = bodies(requests, batch, False)
            share = len(payloads) // nodes

            async def all_nodes() -> list[Any]:
                return await asyncio.gather(
                    *(
                        load(node_url, payloads[i * share : (i + 1) * share], 4, 120.0, False)
                        for i, (_, node_url) in enumerate(servers)
                    )
                )

            started = time.perf_counter()
            results = asyncio.run(all_nodes())
            wall = time.perf_counter() - started
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait(30)
            nats.kill()
            nats.wait()
    accepted = sum(statuses.get(200, 0) for _, _, statuses in results) * batch
    return {"nodes": nodes, "accepted": accepted, "accepted_per_s": round(accepted / wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--producers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument(
        "--ingest-nodes",
        type=int,
        nargs="*",
        default=[],
        help="also: accepted events/s through this many `serve --queue --no-deliver` nodes",
    )
    parser.add_argument(
        "--requests", type=int, default=400, help="of 100 events, for --ingest-nodes"
    )
    args = parser.parse_args()
    for nodes in args.ingest_nodes:
        r = ingest(nodes, args.requests, 100)
        print(
            f"# {nodes} ingest node(s): {r['accepted']:,} events accepted, {r['accepted_per_s']:,}/s"
        )
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, 2 cores")
    print(
        f"{'P':>2} {'W':>2} {'events':>7} {'accepted/s':>10} {'µs cpu/ev':>9} "
        f"{'delivered/s':>11} {'µs cpu/ev':>9} {'dups':>5}"
    )
    for producers in args.producers:
        for workers in args.workers:
            r = one(args.events, producers, workers)
            assert r["sandbox_events"] >= r["events"], r
            print(
                f"{producers:>2} {workers:>2} {r['events']:>7} {r['accepted_per_s']:>10} "
                f"{r['producer_cpu_us']:>9} {r['delivered_per_s']:>11} {r['worker_cpu_us']:>9} "
                f"{r['duplicates']:>5}"
            )
    print(f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
