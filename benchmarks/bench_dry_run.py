"""``destination run --dry-run`` against the hand-written floor, whole process against whole process.

The issue's target: the whole ``destination run FILE --dry-run`` process over
30,000 realistic events costs at most 2.0× a whole-process floor that reads
the same NDJSON and writes the same request lines (``benchmarks/floor_run.py``:
no triggers, mapping, schema, queue or engine). Both run as fresh processes,
alternately, so a pair shares the machine's state; the ratio is taken per
pair. Cost is CPU time (user + system, from ``wait4``), which a busy second
core disturbs less than wall time; wall time is shown too. Before timing, the
two outputs are checked to carry the same items in the same order.

    python benchmarks/bench_dry_run.py                 # 30,000 events, 5 pairs
    python benchmarks/bench_dry_run.py --pairs 9 --events 30000
    python benchmarks/bench_dry_run.py --callgrind     # instructions, 3,000 events (valgrind)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.events import iter_events  # noqa: E402


def write_events(path: Path, count: int) -> None:
    with path.open("wb") as handle:
        for event in iter_events(count, seed=7):
            handle.write(orjson.dumps(event) + b"\n")


def commands(events: Path) -> dict[str, list[str]]:
    return {
        "framework": [sys.executable, "-m", "destination.cli", "run", str(events), "--dry-run"],
        "floor": [sys.executable, str(ROOT / "benchmarks" / "floor_run.py"), str(events)],
    }


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONHASHSEED"] = "0"
    return env


def timed(command: list[str], out: Path, cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process, stdout to ``out``."""
    with out.open("wb") as sink:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.DEVNULL, env=environment(), cwd=cwd
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed ({os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime


def items_of(path: Path) -> list[bytes]:
    found = []
    for line in path.read_bytes().splitlines():
        for item in orjson.loads(line)["body"]["data"]:
            found.append(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    return found


def callgrind(command: list[str], cwd: Path) -> int:
    """Instructions of the whole process (valgrind's callgrind), the child's included."""
    out = cwd / "callgrind.out"
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--trace-children=no",
            *command,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment(),
        cwd=cwd,
        check=True,
    )
    for line in out.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit("no totals in callgrind's output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        folder = Path(tmp)
        count = 3000 if args.callgrind and args.events == 30_000 else args.events
        events = folder / "events.ndjson"
        write_events(events, count)
        runs = commands(events)
        outputs = {name: folder / f"{name}.out" for name in runs}
        for name, command in runs.items():
            timed(command, outputs[name], folder)
        framework, floor = items_of(outputs["framework"]), items_of(outputs["floor"])
        assert framework == floor, "the framework and the floor wrote different items"
        print(f"{count:,} events, {len(floor):,} items, the same in both outputs")
        if args.callgrind:
            if shutil.which("valgrind") is None:
                print("valgrind not found: skipped")
                return
            counts = {name: callgrind(command, folder) for name, command in runs.items()}
            print(
                f"instructions: framework {counts['framework']:,}, floor {counts['floor']:,}, "
                f"ratio {counts['framework'] / counts['floor']:.2f}"
            )
            return
        ratios_cpu, ratios_wall = [], []
        print(
            f"{'pair':>4} {'framework s (cpu)':>18} {'floor s (cpu)':>14} {'ratio cpu':>9} {'ratio wall':>10}"
        )
        for pair in range(1, args.pairs + 1):
            wall_a, cpu_a = timed(runs["framework"], outputs["framework"], folder)
            wall_b, cpu_b = timed(runs["floor"], outputs["floor"], folder)
            ratios_cpu.append(cpu_a / cpu_b)
            ratios_wall.append(wall_a / wall_b)
            print(
                f"{pair:>4} {wall_a:>8.2f} ({cpu_a:>6.2f}) {wall_b:>6.2f} ({cpu_b:>5.2f})"
                f" {ratios_cpu[-1]:>9.2f} {ratios_wall[-1]:>10.2f}"
            )
        print(
            f"ratio, CPU: median {statistics.median(ratios_cpu):.2f} "
            f"(range {min(ratios_cpu):.2f}-{max(ratios_cpu):.2f}); wall: median "
            f"{statistics.median(ratios_wall):.2f} ({min(ratios_wall):.2f}-{max(ratios_wall):.2f})"
        )
        print(f"load: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
