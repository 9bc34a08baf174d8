"""The installed wheel (not the source tree) finds its built-in files and runs the quickstart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import json, sys
import destination
from destination.plugins import collect_registry
from destination.presets import resolve_presets
from destination.lint import lint_paths
from destination.yamlsource import load_schema

config = resolve_presets(["default", "extended"])
registry = collect_registry()
print(json.dumps({
    "file": destination.__file__,
    "presets": [p.name for p in config.presets],
    "actions": sorted(config.mappings),
    "schemas": [load_schema("preset_file")["title"], load_schema("mapping_file")["title"]],
    "mapping_refs": [str(r) for r in registry.mapping_files],
}))
"""


@pytest.mark.slow
def test_installed_wheel_finds_builtin_files(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("destination", "mappings", "presets"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("destination-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The dependencies come from this interpreter's site-packages, appended
    # after the new venv's own (a .pth line), so the wheel's package wins.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    deps = Path(jsonschema.__file__).resolve().parent.parent
    Path(site, "zz_test_deps.pth").write_text(f"{deps}\n{sysconfig.get_paths()['purelib']}\n")

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DESTINATION_PLUGINS")}
    result = subprocess.run(
        [str(python), "-c", CHECK], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    data = json.loads(result.stdout)
    assert Path(data["file"]).resolve().is_relative_to(env_dir.resolve())
    assert len(data["presets"]) == 14 and data["presets"][0] == "Add to Cart"
    assert data["actions"] == [
        "tiktok.report_crm_event",
        "tiktok.report_offline_event",
        "tiktok.report_web_event",
    ]
    assert data["schemas"] == ["Preset file", "Mapping file"]
    assert all(str(env_dir.resolve()) in str(Path(r).resolve()) for r in data["mapping_refs"])

    cli = env_dir / ("Scripts" if os.name == "nt" else "bin") / "destination"
    listing = subprocess.run(
        [str(cli), "presets", "--json"], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert [row["name"] for row in json.loads(listing.stdout)][-1] == "View Content"

    # The README quickstart's main job, from outside the source tree: the example
    # events go to the embedded sandbox and the summary counts them.
    shutil.copytree(ROOT / "examples", cwd / "examples")
    quickstart = subprocess.run(
        [str(cli), "run", "examples/events.ndjson"],
        cwd=cwd,
        env={k: v for k, v in env.items() if not k.startswith("TIKTOK_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quickstart.returncode == 0, quickstart.stderr
    assert "embedded TikTok sandbox" in quickstart.stderr
    delivered = [line for line in quickstart.stderr.splitlines() if "delivered" in line]
    assert delivered and int(delivered[0].strip("│ ").split("│")[1].strip()) > 40
