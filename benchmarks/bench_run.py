"""``destination run --dry-run`` over large NDJSON files: throughput and resident memory.

The issue's promise is that ``run`` streams: memory stays flat however large
the input (1,000,000 events under 150 MB resident). Each size is written to a
temporary NDJSON file first (generated events of the realistic mix from
``benchmarks/events.py``, messageIds made unique per copy), then one
``destination run FILE --dry-run`` process reads it with stdout to /dev/null.
The child's resident set is sampled from /proc while it runs (so a reader can
see it is flat, not only its peak), and its peak comes from ``wait4``.

    python benchmarks/bench_run.py                    # 100k and 1M events
    python benchmarks/bench_run.py --events 200000    # one size
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.events import generate_events
from benchmarks.procfs import run_measured

ROOT = Path(__file__).resolve().parent.parent
DISTINCT = 10_000


def write_events(path: Path, count: int) -> int:
    """``count`` events cycled from DISTINCT generated ones; returns the file's size."""
    base = generate_events(DISTINCT, seed=7)
    encoded = []
    for event in base:
        event = dict(event)
        event["messageId"] = "{id}"
        encoded.append(json.dumps(event, separators=(",", ":")))
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(encoded[i % DISTINCT].replace('"{id}"', f'"bench-{i}"', 1) + "\n")
    return path.stat().st_size


def run_one(count: int, folder: Path) -> dict[str, object]:
    path = folder / f"events-{count}.ndjson"
    size = write_events(path, count)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_")}
    # The child runs this checkout's code, not whatever `destination` is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    measured = run_measured(
        [sys.executable, "-m", "destination.cli", "run", str(path), "--dry-run"],
        env=env,
        cwd=folder,
    )
    if measured.returncode != 0:
        raise SystemExit(f"run failed ({measured.returncode}):\n{measured.stderr}")
    written = next(
        int(line.strip("│ ").split("│")[1].replace(",", ""))
        for line in measured.stderr.splitlines()
        if "written (dry run)" in line
    )
    samples = measured.samples
    tenth = max(1, len(samples) // 10)
    return {
        "events": count,
        "input_mb": round(size / 1e6, 1),
        "seconds": round(measured.seconds, 1),
        "events_per_s": round(count / measured.seconds),
        "items_written": written,
        "rss_mb_at_10%": round(samples[tenth - 1], 1) if samples else None,
        "rss_mb_at_50%": round(samples[len(samples) // 2], 1) if samples else None,
        "rss_mb_at_90%": round(samples[-tenth], 1) if samples else None,
        "peak_rss_mb": round(measured.peak_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, action="append", help="sizes (repeatable)")
    args = parser.parse_args()
    sizes = args.events or [100_000, 1_000_000]
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        for count in sizes:
            result = run_one(count, Path(tmp))
            print(json.dumps(result), flush=True)
            (Path(tmp) / f"events-{count}.ndjson").unlink()


if __name__ == "__main__":
    main()
