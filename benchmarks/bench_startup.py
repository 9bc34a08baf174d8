"""Start-up: whole-process wall time of short commands, and where the imports go.

A data engineer runs ``destination run`` on a handful of events, or
``destination lint`` in CI on one small file, many times a day: there the
process start is the whole cost. Each command below is a fresh process,
started as the console script starts it (``from destination.cli import
console_main``), run ``--runs`` times; the figures are min / median / max
wall milliseconds. ``python -c pass`` is the interpreter's own floor on this
machine (site-packages' ``.pth`` files included). Below each tree: the
embedded sandbox's own import + start + stop (what ``run`` without a token
adds), and the milliseconds three of the commands spend importing
(``-X importtime``, steadier than wall time on a loaded machine).

Bytecode is cached as after ``pip install`` (in a temporary
PYTHONPYCACHEPREFIX, warmed first), even where PYTHONDONTWRITEBYTECODE is
set; ``--source`` compiles every module on every start instead.

``--compare DIR`` runs the same commands against another checkout (e.g.
``git archive <commit> | tar -x -C DIR``) interleaved with this one, run by
run, so both see the same machine load: a paired before/after.

    python benchmarks/bench_startup.py
    python benchmarks/bench_startup.py --runs 40 --compare /tmp/before
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

EVENT = (
    '{"type":"track","event":"Product Added","messageId":"startup-1","userId":"user-1",'
    '"timestamp":"2024-05-01T12:00:00Z","properties":{"product_id":"sku-1","price":19.99}}\n'
)
#: docs/presets.md's example of a user's preset file
PRESETS = """bundle: my-shop
presets:
  - name: Place an Order
    mapping:
      event: "'Purchase'"
  - name: View Content
    enabled: false
  - name: Trial Started
    trigger: 'event = "Trial Started"'
    action: tiktok.report_web_event
    mapping:
      event: "'StartTrial'"
      value: properties.mrr
"""
CONSOLE = "import sys; from destination.cli import console_main; sys.exit(console_main())"
#: the sandbox alone, in one process: import, start, stop (what `run` without a token adds)
SANDBOX = (
    "import time; t = time.perf_counter(); "
    "from destination.tiktok.sandbox import Sandbox; "
    "box = Sandbox(pixels=None).start(); box.stop(); "
    "print(round((time.perf_counter() - t) * 1000, 1))"
)


#: commands whose import time (-X importtime) is shown too
IMPORTS = (
    "destination --version",
    "destination run ONE.ndjson --dry-run",
    "destination lint my-shop.yaml",
)


def commands(folder: Path) -> dict[str, list[str]]:
    events, presets = str(folder / "one.ndjson"), str(folder / "my-shop.yaml")
    return {
        "python -c pass": ["-c", "pass"],
        "destination --version": ["-c", CONSOLE, "--version"],
        "destination run ONE.ndjson --dry-run": ["-c", CONSOLE, "run", events, "--dry-run"],
        "destination run ONE.ndjson (sandbox)": ["-c", CONSOLE, "run", events],
        "destination lint my-shop.yaml": ["-c", CONSOLE, "lint", presets],
        "destination lint presets/default.yaml": [
            "-c",
            CONSOLE,
            "lint",
            str(ROOT / "presets" / "default.yaml"),
        ],
    }


def environment(tree: Path, cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_")}
    env["PYTHONPATH"] = str(tree)
    env.pop("DESTINATION_PLUGINS", None)
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=cwd, capture_output=True, check=False
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr.decode()}")
    return elapsed


def import_ms(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    """Milliseconds a command spends importing (-X importtime), best of ``runs``.

    The sum of the top-level imports after the interpreter's own start-up
    (``site``): steadier than wall time on a loaded machine.
    """
    best = float("inf")
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        total, started = 0, False
        for line in done.stderr.splitlines():
            found = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
            if found and started:
                total += int(found.group(1))
            started = started or bool(found and found.group(2) == "site")
        best = min(best, total / 1000)
    return best


def row(label: str, times: list[float]) -> str:
    return (
        f"{label:44s} min {min(times):6.1f}  median {statistics.median(times):6.1f}  "
        f"max {max(times):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per command (default 20)")
    parser.add_argument("--compare", type=Path, help="another checkout, run interleaved")
    parser.add_argument("--source", action="store_true", help="no cached bytecode")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.compare:
        trees = {"compare": args.compare.resolve(), **trees}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        (folder / "one.ndjson").write_text(EVENT)
        (folder / "my-shop.yaml").write_text(PRESETS)
        envs = {
            name: environment(tree, None if args.source else folder / f"pyc-{i}")
            for i, (name, tree) in enumerate(trees.items())
        }
        todo = commands(folder)
        for env in envs.values():  # warm-up: bytecode written, files in the page cache
            for argv in todo.values():
                once(argv, env, folder)
        print(
            f"# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
            f"{os.cpu_count()} cores, {args.runs} runs, "
            f"bytecode {'not cached' if args.source else 'cached'}",
            flush=True,
        )
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.runs):
            for label, argv in todo.items():
                for name, env in envs.items():  # interleaved: paired under the same load
                    times.setdefault((name, label), []).append(once(argv, env, folder))
        for name, env in envs.items():
            print(f"\n{name}: {trees[name]}")
            for label in todo:
                print(row(label, times[(name, label)]))
            sandbox = [
                float(
                    subprocess.run(
                        [sys.executable, "-c", SANDBOX],
                        env=env,
                        cwd=folder,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                for _ in range(args.runs)
            ]
            print(row("  in-process: sandbox import + start + stop", sandbox))
            for label in IMPORTS:
                spent = import_ms(todo[label], env, folder, 10)
                print(f"{'  imports of ' + label.split(' ', 1)[1]:44s} min {spent:6.1f} ms")
        print(f"\n# load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
