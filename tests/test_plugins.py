"""The plugin host: registration through hooks, errors that name the plugin."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from destination import hookimpl, hookspecs
from destination.actions import Destination, Outcome, Request, Route, Verdict
from destination.errors import PluginError
from destination.plugins import BUILTIN_PLUGINS, ENV_VAR, collect_registry, pm

from .conftest import registered

ROOT = Path(__file__).resolve().parent.parent
HOOK_NAMES = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if inspect.isfunction(obj) and hasattr(obj, "destination_spec")
)


class _Dest(Destination):
    name = "throwaway"

    @property
    def actions(self) -> Mapping[str, Any]:
        return {}

    def load_settings(
        self, raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Any:
        return dict(raw)

    def build_request(
        self, settings: Any, route: Route, items: Sequence[dict[str, Any]]
    ) -> Request:
        return Request(url=route.url, headers={}, body=b"")

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> Verdict:
        return Verdict(Outcome.DELIVERED)


def test_hookspecs_found():
    assert "register_destinations" in HOOK_NAMES
    assert len(HOOK_NAMES) >= 6


def test_every_hook_documented_with_exact_signature():
    doc = (ROOT / "docs" / "hooks.md").read_text()
    for name in HOOK_NAMES:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## {name}({params})" in doc, f"docs/hooks.md lacks '## {name}({params})'"


def test_every_hook_has_a_test():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    for name in HOOK_NAMES:
        assert re.search(rf"def test_hook_{name}\b", sources), f"no test_hook_{name} in tests/"


def test_every_hook_has_a_one_line_docstring():
    for name in HOOK_NAMES:
        doc = getattr(hookspecs, name).__doc__
        assert doc and "\n" not in doc.strip(), name


def test_builtin_plugins_registered_through_hooks():
    collect_registry()
    for module in BUILTIN_PLUGINS:
        assert pm.get_plugin(module) is not None


def test_hook_register_destinations():
    class Plugin:
        @hookimpl
        def register_destinations(self, register):
            register(_Dest())

    with registered(Plugin(), "throwaway-dest"):
        reg = collect_registry()
        assert isinstance(reg.destinations["throwaway"], _Dest)
        assert reg.owners[("destination", "throwaway")] == "throwaway-dest"
    assert "throwaway" not in collect_registry().destinations


def test_register_destination_wrong_type_names_plugin():
    class Plugin:
        @hookimpl
        def register_destinations(self, register):
            register("not a destination")

    with (
        registered(Plugin(), "bad-plugin"),
        pytest.raises(PluginError, match=r"'bad-plugin'.*Destination instance"),
    ):
        collect_registry()


def test_duplicate_name_names_both_plugins():
    class First:
        @hookimpl
        def register_executors(self, register):
            register("dup", lambda **kw: None)

    class Second:
        @hookimpl
        def register_executors(self, register):
            register("dup", lambda **kw: None)

    with (
        registered(First(), "first"),
        registered(Second(), "second"),
        pytest.raises(PluginError) as info,
    ):
        collect_registry()
    message = str(info.value)
    assert "'second'" in message and "'first'" in message and "'dup'" in message


def test_hook_register_mapping_files(tmp_path):
    class Plugin:
        @hookimpl
        def register_mapping_files(self, register):
            register(str(tmp_path))

    with registered(Plugin(), "maps"):
        assert tmp_path in collect_registry().mapping_files


def test_register_path_wrong_type():
    class Plugin:
        @hookimpl
        def register_mapping_files(self, register):
            register(42)

    with (
        registered(Plugin(), "badpath"),
        pytest.raises(PluginError, match=r"'badpath'.*must be a path"),
    ):
        collect_registry()


def test_hook_register_presets(tmp_path):
    class Plugin:
        @hookimpl
        def register_presets(self, register):
            register(tmp_path / "bundle.yaml")

    with registered(Plugin(), "presets"):
        assert tmp_path / "bundle.yaml" in collect_registry().presets


def test_hook_register_mapping_functions():
    def double(x):
        return x * 2

    class Plugin:
        @hookimpl
        def register_mapping_functions(self, register):
            register("double_it", double, [{"types": ["number"]}])

    with registered(Plugin(), "funcs"):
        assert collect_registry().mapping_functions["double_it"] == (
            double,
            [{"types": ["number"]}],
        )


def test_register_mapping_function_not_callable():
    class Plugin:
        @hookimpl
        def register_mapping_functions(self, register):
            register("nope", "not callable")

    with registered(Plugin(), "funcs2"), pytest.raises(PluginError, match="not callable"):
        collect_registry()


def test_hook_register_executors():
    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register("null", lambda **options: "executor")

    with registered(Plugin(), "execs"):
        assert collect_registry().executors["null"]() == "executor"


def test_register_empty_name_rejected():
    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register("", lambda: None)

    with registered(Plugin(), "noname"), pytest.raises(PluginError, match="non-empty string"):
        collect_registry()


def test_hook_register_queues():
    class Plugin:
        @hookimpl
        def register_queues(self, register):
            register("memory", dict)

    with registered(Plugin(), "queues"):
        assert collect_registry().queues["memory"] is dict


def test_implementation_may_take_fewer_arguments():
    calls = []

    class Plugin:
        @hookimpl
        def register_queues(self):
            calls.append(True)

    with registered(Plugin(), "fewer"):
        collect_registry()
    assert calls == [True]


def test_pending_hookimpls_checked():
    collect_registry()
    pm.check_pending()


def _fake_distribution(root: Path) -> None:
    """An installed distribution (dist-info on sys.path) publishing one entry point."""
    (root / "fake_plugin.py").write_text(
        "from destination import hookimpl\n"
        "@hookimpl\n"
        "def register_queues(register):\n"
        "    register('fake', dict)\n"
    )
    info = root / "fake_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[destination]\nfake = fake_plugin\n")


@pytest.mark.parametrize(
    ("env_value", "expected"),
    [(None, "['fake']"), ("fake", "['fake']"), ("", "[]"), ("other", "[]")],
)
def test_entry_points_limited_by_environment(tmp_path, env_value, expected):
    _fake_distribution(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    if env_value is not None:
        env[ENV_VAR] = env_value
    # Only queues from entry points: built-in plugins (e.g. the sqlite queue) always load.
    script = (
        "from destination.plugins import BUILTIN_PLUGINS, collect_registry\n"
        "r = collect_registry()\n"
        "print(sorted(n for n in r.queues if r.owners[('queue', n)] not in BUILTIN_PLUGINS))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert out == expected
