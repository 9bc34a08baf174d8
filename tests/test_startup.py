"""Start-up stays cheap: commands do not import what they do not use (issue 15, item 4).

Timing a start-up in a test would be flaky on a shared machine, so these
tests guard the cause instead: each runs a command in a fresh interpreter
and lists which heavy libraries ended up in ``sys.modules``. The figures
themselves come from ``benchmarks/bench_startup.py`` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import destination

ROOT = Path(__file__).resolve().parent.parent

#: Imported on first use only, each for the one thing that needs it.
LAZY = {
    "httpx": "the http executor (its first instance)",
    "httpcore": "httpx's client",
    "jsonschema": "a file, setting or payload the fast schema check is not sure of",
    "referencing": "jsonschema",
    "phonenumbers": "the first phone number, or a default_phone_region setting",
    "rich": "run's summary and progress bar",
    "click": "httpx's own command line",
    "pygments": "httpx's own command line",
    "starlette": "destination serve",
    "uvicorn": "destination serve",
}
EVENT = {
    "type": "track",
    "event": "Product Added",
    "messageId": "startup-1",
    "userId": "user-1",
    "timestamp": "2024-05-01T12:00:00Z",
    "properties": {"product_id": "sku-1", "price": 19.99},
}
PRESETS = """bundle: my-shop
presets:
  - name: Place an Order
    mapping:
      event: "'Purchase'"
  - name: Trial Started
    trigger: 'event = "Trial Started"'
    action: tiktok.report_web_event
    mapping:
      event: "'StartTrial'"
      value: properties.mrr
"""

PROBE = """
import json, sys
from destination.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --version exits through argparse
    code = exc.code
lazy = {lazy!r}
loaded = sorted(name for name in lazy if name in sys.modules)
print(json.dumps({{"code": code, "loaded": loaded}}), file=sys.stderr)
"""


def imported_by(*argv: str, cwd: Path) -> tuple[int, set[str], str]:
    """Run ``main(argv)`` in a fresh interpreter: exit code, LAZY modules it imported, stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("DESTINATION_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(lazy=sorted(LAZY)), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
        timeout=120,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], set(report["loaded"]), done.stdout


@pytest.mark.slow
def test_version_imports_none_of_the_heavy_libraries(tmp_path):
    code, loaded, out = imported_by("--version", cwd=tmp_path)
    assert code == 0 and out.strip() == f"destination {destination.__version__}"
    assert loaded == set(), {name: LAZY[name] for name in loaded}


@pytest.mark.slow
def test_a_dry_run_of_one_event_loads_no_http_client_server_or_validator(tmp_path):
    events = tmp_path / "one.ndjson"
    events.write_text(json.dumps(EVENT) + "\n")
    code, loaded, out = imported_by("run", str(events), "--dry-run", cwd=tmp_path)
    assert code == 0
    request = json.loads(out)
    assert request["body"]["data"][0]["event"] == "AddToCart"
    # rich draws the summary; nothing else of LAZY is needed to map and write one event
    assert loaded == {"rich"}, {name: LAZY[name] for name in loaded - {"rich"}}


@pytest.mark.slow
def test_lint_of_a_valid_preset_file_loads_none_of_them(tmp_path):
    presets = tmp_path / "my-shop.yaml"
    presets.write_text(PRESETS)
    code, loaded, out = imported_by("lint", str(presets), cwd=tmp_path)
    assert code == 0 and "0 error(s)" in out
    assert loaded == set(), {name: LAZY[name] for name in loaded}


@pytest.mark.slow
def test_lint_of_a_broken_file_still_words_its_problems_with_jsonschema(tmp_path):
    presets = tmp_path / "broken.yaml"
    presets.write_text(PRESETS.replace("bundle: my-shop", "bundle: my-shop\ncolour: blue"))
    code, loaded, out = imported_by("lint", str(presets), cwd=tmp_path)
    assert code == 1
    assert "unknown key 'colour'" in out
    assert "jsonschema" in loaded  # the fallback that words the message


def test_the_lazily_exported_names_are_the_public_ones():
    assert set(destination._LAZY) <= set(destination.__all__)
    assert set(destination.__all__) <= set(dir(destination))
    for name in destination._LAZY:
        assert getattr(destination, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        destination.nope  # noqa: B018
    from destination.host import Runtime

    assert destination.Runtime is Runtime


@pytest.mark.slow
def test_deliver_refusing_to_start_loads_none_of_them(tmp_path):
    code, loaded, _ = imported_by("deliver", cwd=tmp_path)
    assert code == 2  # no shared queue
    assert loaded == set(), {name: LAZY[name] for name in loaded}
