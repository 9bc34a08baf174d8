"""Peak resident memory of ``destination run`` in every mode, at two input sizes.

Issue 15's promise: memory is flat however large the input, in every mode,
not only the clean dry run ``bench_run.py`` measures. For each mode the
whole ``destination run`` process runs over a small and a large NDJSON file
(100,000 and 1,000,000 events; ``--quick``: 10,000 and 100,000) and its peak
RSS comes from ``wait4`` (``benchmarks/procfs.py``). The target per mode:
peak at the large size ≤ 1.2 × the peak at the small size, and < 150 MB.

    dry          --dry-run, stdout to /dev/null
    embedded     no access token: the embedded sandbox, in the same process
    sandbox      a ``destination sandbox --quiet`` process of its own, reached
                 through --config (token, pixel, api_base_url, outbox)
    bad-times    --dry-run, 1 % of events with an unparseable timestamp,
                 each a different value (so a reason quoting it is new each time)
    bad-lines    --dry-run, 5 % of lines not JSON, not an object, or an
                 unknown or missing type (each different)

The files are written once into a temporary folder (events from
``benchmarks/events.py``, cycled, messageIds unique) and removed at the end.
The child runs this checkout's code (PYTHONPATH), whatever is installed.

    python benchmarks/bench_memory.py                 # 100k and 1M, every mode
    python benchmarks/bench_memory.py --quick         # 10k and 100k
    python benchmarks/bench_memory.py --modes dry,bad-times --sizes 20000,200000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.events import generate_events
from benchmarks.procfs import Measured, run_measured, status_mb

ROOT = Path(__file__).resolve().parent.parent
DISTINCT = 10_000
PIXEL = "CBENCHMEMORY01"
#: the large run may peak at most this many times the small one
MAX_RATIO = 1.2
MAX_PEAK_MB = 150.0
MODES = ("dry", "embedded", "sandbox", "bad-times", "bad-lines")
#: mode -> the input file it reads
INPUT = {
    "dry": "clean",
    "embedded": "clean",
    "sandbox": "clean",
    "bad-times": "bad-times",
    "bad-lines": "bad-lines",
}


def _letters(number: int) -> str:
    """``number`` in base 26 as letters: distinct, never a run of digits (which the
    action would hide as possible personal data instead of quoting)."""
    text = ""
    while True:
        number, digit = divmod(number, 26)
        text = chr(ord("a") + digit) + text
        if not number:
            return text


def _bad_time(line: str, i: int) -> str:
    event = json.loads(line)
    event["timestamp"] = f"soon-{_letters(i)}"
    return json.dumps(event, separators=(",", ":"))


def _bad_line(line: str, i: int) -> str:
    kind = i % 4
    if kind == 0:
        return line[: len(line) // 2]  # cut short: not JSON
    if kind == 1:
        return json.dumps([i, "not an object"])
    event = json.loads(line)
    if kind == 2:
        event["type"] = f"custom-{_letters(i)}"  # unknown type, each different
    else:
        del event["type"]
    return json.dumps(event, separators=(",", ":"))


#: input -> (every how many lines one is spoiled, how)
SPOIL: dict[str, tuple[int, Callable[[str, int], str]] | None] = {
    "clean": None,
    "bad-times": (100, _bad_time),
    "bad-lines": (20, _bad_line),
}


def _lines(count: int, kind: str) -> Iterator[str]:
    base = []
    for event in generate_events(DISTINCT, seed=7):
        event = dict(event, messageId="{id}")
        base.append(json.dumps(event, separators=(",", ":")))
    spoil = SPOIL[kind]
    for i in range(count):
        line = base[i % DISTINCT].replace('"{id}"', f'"mem-{i}"', 1)
        if spoil is not None and i % spoil[0] == spoil[0] // 2:
            line = spoil[1](line, i)
        yield line + "\n"


def write_input(folder: Path, count: int, kind: str) -> Path:
    path = folder / f"{kind}-{count}.ndjson"
    if not path.exists():
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(_lines(count, kind))
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the sandbox exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the sandbox did not listen on port {port}")


def _run_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "destination.cli", "run", str(path), "--progress", "never"]


def run_mode(mode: str, path: Path, folder: Path) -> tuple[Measured, float | None]:
    """One ``destination run``; its measurement and, in sandbox mode, the sandbox's peak."""
    env = _env()
    command = _run_command(path)
    if mode != "embedded" and mode != "sandbox":
        return run_measured([*command, "--dry-run"], env=env, cwd=folder), None
    if mode == "embedded":
        return run_measured(command, env=env, cwd=folder), None
    port = _free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "destination.cli", "sandbox", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        env=env,
        cwd=folder,
    )
    try:
        _wait_listening(port, sandbox)
        config = folder / "sandbox-run.yaml"
        outbox = folder / f"outbox-{port}.sqlite3"
        config.write_text(
            f"settings:\n  pixel_code: {PIXEL}\n  access_token: sandbox-token\n"
            f"  api_base_url: http://127.0.0.1:{port}\n"
            f"delivery:\n  outbox: {outbox}\n"
        )
        measured = run_measured([*command, "--config", str(config)], env=env, cwd=folder)
        sandbox_peak = status_mb(sandbox.pid, "VmHWM")
    finally:
        sandbox.terminate()
        sandbox.wait(30)
    for leftover in folder.glob(f"outbox-{port}.sqlite3*"):
        leftover.unlink()
    return measured, sandbox_peak


def _summary_count(stderr: str, label: str) -> int | None:
    for line in stderr.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0] == label:
            return int(cells[1].replace(",", ""))
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 events")
    parser.add_argument("--sizes", help="small,large (default 100000,1000000)")
    parser.add_argument("--modes", help="comma-separated: " + ", ".join(MODES))
    parser.add_argument("--keep", metavar="DIR", help="write (and keep) the inputs in DIR")
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(size) for size in args.sizes.split(",")]
    else:
        sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    modes = args.modes.split(",") if args.modes else list(MODES)
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(unknown)}")

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M')}, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        header = f"{'mode':<10} {'events':>9} {'peak RSS MB':>11} {'ratio':>6}  target   notes"
        print(header, flush=True)
        met_all = True
        for mode in modes:
            peaks: list[float] = []
            for count in sizes:
                path = write_input(folder, count, INPUT[mode])
                measured, sandbox_peak = run_mode(mode, path, folder)
                if measured.returncode != 0:
                    print(measured.stderr, file=sys.stderr)
                    raise SystemExit(f"{mode} at {count}: exit {measured.returncode}")
                peaks.append(measured.peak_mb)
                notes = [f"{measured.seconds:.0f} s"]
                for label in ("written (dry run)", "delivered", "invalid", "bad lines"):
                    value = _summary_count(measured.stderr, label)
                    if value:
                        notes.append(f"{label} {value:,}")
                if sandbox_peak is not None:
                    notes.append(f"sandbox process peak {sandbox_peak:.1f} MB")
                ratio = target = ""
                if len(peaks) > 1:
                    value = peaks[-1] / peaks[0]
                    met = value <= MAX_RATIO and peaks[-1] < MAX_PEAK_MB
                    met_all &= met
                    ratio, target = f"{value:.2f}", "met" if met else "NOT MET"
                print(
                    f"{mode:<10} {count:>9,} {measured.peak_mb:>11.1f} {ratio:>6}  "
                    f"{target:<7}  {', '.join(notes)}",
                    flush=True,
                )
        if not args.keep:
            for leftover in folder.glob("*.ndjson"):
                leftover.unlink()
    print(
        f"{'every target met' if met_all else 'some targets NOT MET'}; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
