"""Instructions per event of the framework path and of the floor, counted by valgrind.

Run: python benchmarks/bench_instructions.py [--events N] [--only fw,floor,...]

Time on a shared machine moves by 1.5-2x from one minute to the next (the
2-core machine these figures come from was 2.4x slower on 2026-12-01 than on
2026-11-22), so a change worth 5 % cannot be seen in seconds. The number of
machine instructions the interpreter executes for the same events does not
move: this script runs each measurement in a child process under valgrind's
callgrind (``--toggle-collect=functools_reduce``: only the measured loop,
which runs inside ``functools.reduce``, is counted; imports, set-up and event
generation are not) and prints instructions per generated event. It does not
replace the timed figures (cache misses and branch mispredictions are not in
it) but it ranks changes reliably. Needs valgrind (``apt-get install
valgrind``); a plain script, not a test. ``PYTHONHASHSEED=0`` makes runs
repeatable to a few instructions per event.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = ("fw", "floor", "triggers", "mapping", "build", "serialise")
LABELS = {
    "fw": "whole framework path (match -> build -> body per 1000)",
    "floor": "floor (benchmarks/floor.py), same items and bodies",
    "triggers": "triggers, indexed by type/event",
    "mapping": "mapping + schema checks field by field",
    "build": "normalise + hash + shape (action.build)",
    "serialise": "serialise request bodies (build_request, 1000/request)",
}


def _measured(mode: str, count: int) -> Callable[[], object]:
    """The loop for ``mode`` over ``count`` generated events (the events are built here)."""
    from benchmarks.bench_pipeline import floor, framework, setup, stage_inputs
    from benchmarks.events import generate_events
    from destination.tiktok.protocol import build_request

    pipeline, settings, destination = setup()
    events = generate_events(count, 1)
    gc.collect()
    gc.freeze()
    pairs, payloads, action, route, batches = stage_inputs(pipeline, settings, destination, events)
    candidates = pipeline.candidates

    def triggers() -> None:
        for e in events:
            for c in candidates(e.get("type"), e.get("event")):
                c.trigger(e)

    loops: dict[str, Callable[[], object]] = {
        "fw": lambda: framework(pipeline, settings, events),
        "floor": lambda: floor(events),
        "triggers": triggers,
        "mapping": lambda: [c.checked(e) for c, e in pairs],
        "build": lambda: [action.build(p, settings) for _, p in payloads],
        "serialise": lambda: [build_request(settings, route, b) for b in batches],
    }
    return loops[mode]


def child(mode: str, count: int) -> None:
    """Under valgrind: warm up once, then run the loop once inside functools.reduce."""
    loop = _measured(mode, count)
    loop()  # warm caches (lru caches, the preset index), not counted
    functools.reduce(lambda _, __: loop(), range(1), None)


def count(mode: str, events: int) -> int:
    """Instructions per generated event of ``mode``."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            mode,
            "--events",
            str(events),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no count from valgrind for {mode}:\n{done.stderr[-2000:]}")
    return int(found[1]) // events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--only", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.events)
        return
    if shutil.which("valgrind") is None:
        print("skipped: bench_instructions.py needs valgrind (apt-get install valgrind)")
        return
    modes = [m for m in args.only.split(",") if m]
    results = {mode: count(mode, args.events) for mode in modes}
    width = max(len(LABELS[m]) for m in modes)
    print(f"{args.events} events, instructions per generated event (callgrind)")
    for mode, value in results.items():
        print(f"{LABELS[mode]:<{width}}  {value:9,}")
    if "fw" in results and "floor" in results:
        print(f"{'ratio framework / floor':<{width}}  {results['fw'] / results['floor']:9.2f}")


if __name__ == "__main__":
    main()
