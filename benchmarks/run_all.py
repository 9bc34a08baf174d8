"""Every benchmark, one after the other: ``python benchmarks/run_all.py`` or ``python -m benchmarks``.

Each script runs in its own process, so one's imports, caches and peak RSS
do not colour the next, and the output is each script's own, under a header
naming the command (copy a figure into docs/performance.md with the line
that produced it). ``--quick`` shortens the long ones for a smoke run;
``--only pipeline,mapping`` picks scripts by name.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: name -> (arguments for a full run, arguments for --quick)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "pipeline": ([], ["--events", "5000", "--rounds", "3"]),
    "instructions": ([], ["--events", "300", "--only", "fw,floor"]),
    "triggers": ([], []),
    "mapping": ([], ["--seconds", "0.5"]),
    "normalize": ([], []),
    "sandbox": ([], ["--seconds", "2"]),
    "delivery": ([], ["--events", "20000"]),
    "run": ([], ["--events", "20000"]),
    "memory": ([], ["--quick"]),
    "serve": (
        ["--requests", "800", "--connections", "8", "--gzip", "--workers", "2"],
        ["--requests", "100"],
    ),
    "startup": ([], ["--runs", "3"]),
    "queue": ([], ["--events", "5000"]),
    "dry_run": ([], ["--pairs", "1"]),
    "scale": ([], ["--events", "10000", "--producers", "1", "--workers", "1"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(SCRIPTS))
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SCRIPTS)
    unknown = [name for name in names if name not in SCRIPTS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}, python {platform.python_version()}, "
        f"{platform.machine()}, {platform.system()} {platform.release()}",
        flush=True,
    )
    failed = []
    for name in names:
        full, quick = SCRIPTS[name]
        command = [sys.executable, str(HERE / f"bench_{name}.py"), *(quick if args.quick else full)]
        print(
            f"\n## {' '.join(['python', f'benchmarks/bench_{name}.py', *command[2:]])}", flush=True
        )
        if subprocess.run(command, cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
