"""`destination lint`: broken files, each with its message, line and column."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination.cli import main
from destination.lint import lint_paths

ROOT = Path(__file__).resolve().parent.parent
M = "action: tiktok.report_web_event\nfields:\n"  # a mapping file's first lines
P = "bundle: mine\npresets:\n"  # a preset file's first lines
NEW = "  - name: New One\n    trigger: 'event = \"New\"'\n    action: tiktok.report_web_event\n"

# (id, file text, severity, line, column or None, message fragment)
BROKEN: list[tuple[str, str | bytes, str, int, int | None, str]] = [
    ("empty", "", "error", 1, 1, "empty file"),
    ("comments-only", "# nothing\n\n# here\n", "error", 1, 1, "empty file"),
    ("syntax-unclosed", M + "  email: [traits.email\n", "error", 4, 1, "YAML syntax"),
    ("syntax-bad-indent", M + "  email: a\n   phone: b\n", "error", 4, 9, "YAML syntax"),
    (
        "duplicate-top-key",
        M + "  email: a\naction: tiktok.report_web_event\n",
        "error",
        4,
        1,
        "duplicate key 'action' (first at line 1)",
    ),
    ("duplicate-field", M + "  email: a\n  email: b\n", "error", 4, 3, "duplicate key 'email'"),
    ("tab", M + "\temail: a\n", "error", 3, 1, "tab character"),
    (
        "two-documents",
        M + "  email: a\n---\nbundle: x\n",
        "error",
        4,
        1,
        "more than one YAML document",
    ),
    ("top-level-list", "- a\n- b\n", "error", 1, 1, "not a preset file"),
    ("top-level-scalar", "just text\n", "error", 1, 1, "not a preset file"),
    (
        "unknown-top-key",
        M + "  email: a\ncomment: hi\n",
        "error",
        4,
        1,
        "unknown key 'comment' in the file",
    ),
    (
        "unknown-preset-key",
        P + "  - name: Search\n    triger: 'event = \"x\"'\n",
        "error",
        4,
        5,
        "unknown key 'triger' in presets[0]",
    ),
    (
        "missing-fields",
        "action: tiktok.report_web_event\n",
        "error",
        1,
        1,
        "lacks required key 'fields'",
    ),
    ("missing-bundle", "presets: []\n", "error", 1, 1, "lacks required key 'bundle'"),
    ("missing-name", P + "  - enabled: false\n", "error", 3, 5, "lacks required key 'name'"),
    (
        "enabled-string",
        P + '  - name: Search\n    enabled: "no"\n',
        "error",
        4,
        14,
        "presets[0].enabled must be boolean, got string",
    ),
    (
        "presets-mapping",
        P + "  name: Search\n",
        "error",
        3,
        3,
        "presets must be a list, got mapping",
    ),
    (
        "expression-number",
        M + "  value: 5\n",
        "error",
        3,
        10,
        "fields.value must be a string or null, got number",
    ),
    (
        "trigger-null",
        P + "  - name: Search\n    trigger:\n",
        "error",
        4,
        13,
        "presets[0].trigger must be a string, got null",
    ),
    ("action-pattern", "action: tiktok\nfields:\n  email: a\n", "error", 1, 9, "does not match"),
    ("numeric-key", M + "  1: a\n", "error", 3, 3, "key '1' is read as a number; quote it"),
    ("merge-key", M + "  <<: {email: a}\n", "error", 3, 3, "merge keys"),
    ("empty-bundle", "bundle: ''\npresets: []\n", "error", 1, 9, "bundle must not be empty"),
    ("empty-fields", M + "  {}\n", "error", 3, 3, "fields must not be empty"),
    ("not-utf8", b"action: \xff\xfe\n", "error", 1, 1, "not UTF-8"),
    (
        "unknown-action",
        "action: tiktok.report_nothing\nfields:\n  email: a\n",
        "error",
        1,
        9,
        "unknown action 'tiktok.report_nothing'",
    ),
    (
        "unknown-field",
        M + "  emial: traits.email\n",
        "error",
        3,
        3,
        "tiktok.report_web_event has no field 'emial'",
    ),
    (
        "bad-expression",
        M + "  value: properties.value ||| x\n",
        "error",
        3,
        29,
        "field 'value': invalid JMESPath at position 20",
    ),
    ("bad-expression-quoted", M + '  value: "properties."\n', "error", 3, 22, "invalid JMESPath"),
    (
        "unknown-function",
        M + "  email: lowercase(traits.email)\n",
        "error",
        3,
        10,
        "unknown function lowercase()",
    ),
    (
        "arity",
        M + "  ttclid: url_param(context.page.url)\n",
        "error",
        3,
        11,
        "url_param() takes 2 arguments, got 1",
    ),
    (
        "constant-enum",
        M + "  content_type: \"'products'\"\n",
        "error",
        3,
        17,
        "constant \"products\" does not fit field 'content_type'",
    ),
    (
        "constant-type",
        M + "  limited_data_use: \"'yes'\"\n",
        "error",
        3,
        21,
        "does not fit field 'limited_data_use'",
    ),
    (
        "constant-number",
        M + "  value: \"'twelve'\"\n",
        "error",
        3,
        10,
        "does not fit field 'value'",
    ),
    (
        "offline-custom-event",
        "action: tiktok.report_offline_event\nfields:\n  event: \"'Visit'\"\n",
        "error",
        3,
        10,
        "constant \"Visit\" does not fit field 'event'",
    ),
    (
        "trigger-syntax",
        P + "  - name: Search\n    trigger: 'event = = \"x\"'\n",
        "error",
        4,
        None,
        "trigger:",
    ),
    (
        "preset-unknown-action",
        P + "  - name: X\n    trigger: 'type = \"page\"'\n    action: tiktok.nothing\n",
        "error",
        5,
        13,
        "unknown action 'tiktok.nothing'",
    ),
    (
        "new-without-action",
        P + "  - name: Brand New\n    trigger: 'type = \"page\"'\n",
        "error",
        3,
        5,
        "needs 'action'",
    ),
    (
        "name-twice",
        P + "  - name: Search\n    enabled: false\n  - name: Search\n",
        "error",
        5,
        5,
        "appears twice",
    ),
    (
        "required-event",
        P + NEW,
        "error",
        3,
        5,
        "maps no 'event' (required by tiktok.report_web_event)",
    ),
    (
        "override-unknown-field",
        P + "  - name: Search\n    mapping:\n      qury: properties.q\n",
        "error",
        5,
        7,
        "has no field 'qury'",
    ),
    (
        "custom-event",
        P + NEW + "    mapping:\n      event: \"'Addtocart'\"\n",
        "warning",
        7,
        14,
        "custom event name",
    ),
    (
        "deprecated-event",
        P + "  - name: Search\n    mapping:\n      event: \"'SubmitForm'\"\n",
        "warning",
        5,
        14,
        "event 'SubmitForm' is deprecated",
    ),
    (
        "duplicate-preset",
        P + "  - name: My Cart\n    trigger: '(event  =  \"Product Added\")'\n"
        "    action: tiktok.report_web_event\n    mapping:\n      event: \"'AddToCart'\"\n",
        "warning",
        3,
        5,
        "'Add to Cart' and 'My Cart' both send 'AddToCart'",
    ),
]


@pytest.fixture(autouse=True)
def _tiktok() -> Iterator[None]:
    yield


def test_enough_broken_files():
    assert len(BROKEN) >= 30
    assert len({case[0] for case in BROKEN}) == len(BROKEN)


@pytest.mark.parametrize(
    ("text", "severity", "line", "column", "fragment"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_file(tmp_path, text, severity, line, column, fragment):
    path = tmp_path / "broken.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    report = lint_paths([path])
    found = [p for p in report.problems if fragment in p.message]
    assert found, "\n".join(p.format() for p in report.problems)
    problem = found[0]
    assert (problem.path, problem.severity, problem.line) == (str(path), severity, line)
    if column is not None:
        assert problem.column == column, problem.format()
    assert report.exit_code == (1 if severity == "error" else 0)


def test_every_problem_reported_at_once(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(
        "action: tiktok.report_web_event\nfields:\n"
        "  emial: traits.email\n"  # unknown field
        "  value: properties.\n"  # bad expression
        "  content_type: \"'x'\"\n"  # enum
        "  email: nosuch(a)\n"  # unknown function
        "  phone: a\n"
        "  phone: b\n"  # duplicate key
    )
    report = lint_paths([path])
    assert [p.line for p in report.problems] == [3, 4, 5, 6, 8]
    assert report.errors == 5


def test_schema_errors_listed_together(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(
        "bundle: mine\nextra: 1\npresets:\n  - name: A\n    enabled: 1\n    colour: red\n"
        "  - description: no name\n"
    )
    messages = [(p.line, p.message) for p in lint_paths([path]).problems]
    assert (
        2,
        "unknown key 'extra' in the file (allowed: bundle, description, presets)",
    ) in messages
    assert (5, "presets[0].enabled must be boolean, got number") in messages
    assert any(line == 6 and "unknown key 'colour'" in m for line, m in messages)
    assert (7, "presets[1] lacks required key 'name'") in messages


def test_builtin_files_lint_clean_but_warn_on_deprecated_events():
    report = lint_paths([ROOT / "presets", ROOT / "mappings"])
    assert report.errors == 0, [p.format() for p in report.problems]
    warnings = {(Path(p.path).name, p.message.split(" is ")[0]) for p in report.problems}
    assert warnings == {
        ("default.yaml", "event 'PlaceAnOrder'"),
        ("extended.yaml", "event 'ClickButton'"),
    }
    assert report.files == 5


def test_docs_example_lints_clean(tmp_path):
    import re

    doc = (ROOT / "docs" / "presets.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "my-shop" in b)
    path = tmp_path / "my-shop.yaml"
    path.write_text(block)
    assert lint_paths([path]).problems == []


def test_disabling_one_duplicate_silences_the_warning(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(
        P + "  - name: My Cart\n    trigger: 'event = \"Product Added\"'\n"
        "    action: tiktok.report_web_event\n    mapping:\n      event: \"'AddToCart'\"\n"
        "  - name: Add to Cart\n    enabled: false\n"
    )
    assert lint_paths([path]).problems == []


def test_missing_path_and_folder_without_yaml(tmp_path):
    (tmp_path / "empty").mkdir()
    report = lint_paths([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert [(p.severity, p.message) for p in report.problems] == [
        ("warning", "no .yaml or .yml files here"),
        ("error", "no such file or directory"),
    ]


def test_cli_text_and_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(M + "  emial: a\n")
    assert main(["lint", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{bad}:3:3: error: tiktok.report_web_event has no field 'emial'"
    assert out[-1] == "1 file(s) checked: 1 error(s), 0 warning(s)"
    good = tmp_path / "good.yaml"
    good.write_text(M + "  email: traits.email\n")
    assert main(["lint", str(good)]) == 0


def test_cli_json(tmp_path, capsys):
    folder = tmp_path / "conf"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "bad.yml").write_text(M + "  value: \"'ten'\"\n")
    (folder / "ignored.txt").write_text("not yaml")
    assert main(["lint", "--format", "json", str(folder)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["files"] == 1 and data["errors"] == 1 and data["warnings"] == 0
    problem = data["problems"][0]
    assert problem["path"].endswith("bad.yml")
    assert (problem["line"], problem["column"], problem["severity"]) == (3, 10, "error")


def test_cli_presets_listing(capsys, tmp_path):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert '[on ] Place an Order (default): event = "Order Completed"' in out
    assert "PlaceAnOrder" in out
    user = tmp_path / "off.yaml"
    user.write_text(P + "  - name: Search\n    enabled: false\n")
    assert main(["presets", "--json", "--presets", "default", "extended", str(user)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 14
    search = next(r for r in rows if r["name"] == "Search")
    assert search == {
        "name": "Search",
        "bundle": "default",
        "enabled": False,
        "trigger": 'event = "Products Searched"',
        "action": "tiktok.report_web_event",
        "event": "Search",
        "description": "The user searched the catalogue",
    }


def test_cli_presets_error_is_one_line(capsys):
    assert main(["presets", "--presets", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("destination presets: unknown preset bundle 'nope'")
    assert "Traceback" not in err


@pytest.mark.slow
def test_cli_subprocess_never_tracebacks(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\x00\x01: [\n\t- x")
    result = subprocess.run(
        [sys.executable, "-m", "destination.cli", "lint", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{path}:" in result.stdout


def test_lint_layers_over_the_bundles_named(tmp_path, capsys):
    path = tmp_path / "viewed.yaml"
    path.write_text(P + "  - name: Product Viewed\n    enabled: false\n")
    assert "needs 'trigger' and 'action'" in lint_paths([path]).problems[0].message
    assert lint_paths([path], bundles=["default", "extended"]).problems == []
    assert main(["lint", str(path), "--presets", "default", "extended"]) == 0
    assert main(["lint", str(path), "--presets", "nope"]) == 1
    assert "nope:1:1: error: unknown preset bundle" in capsys.readouterr().out


YAMLISH = st.lists(
    st.sampled_from(
        [
            *list("ab:-'\"[]{}#&*!|>@`%\t\n ,.=()"),
            "name",
            "presets",
            "bundle",
            "fields",
            "action",
            "trigger",
            "mapping",
            "enabled",
            "tiktok.report_web_event",
            "\n  - ",
            ": ",
            "\n    ",
        ]
    ),
    max_size=60,
).map("".join)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["tiktok.report_web_event", "'AddToCart'", 'event = "x"', "a ||| b"]),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "bundle",
                    "presets",
                    "name",
                    "trigger",
                    "action",
                    "mapping",
                    "enabled",
                    "fields",
                    "event",
                    "value",
                    "x",
                ]
            ),
            c,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=YAMLISH)
def test_lint_never_raises_on_arbitrary_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    report = lint_paths([path])
    assert all(p.path == str(path) and p.line >= 1 and p.column >= 1 for p in report.problems)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=JSONISH)
def test_lint_never_raises_on_arbitrary_structures(tmp_path, value):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(value))
    lint_paths([path])


def test_cli_lint_plugin_error_is_one_line(capsys):
    from destination import hookimpl

    from .conftest import registered

    class Broken:
        @hookimpl
        def register_mapping_functions(self, register):
            register("coalesce", lambda *a: None, None)  # taken by the built-ins

    with registered(Broken(), "broken-functions"):
        assert main(["lint", str(ROOT / "presets")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("destination lint: plugin ")
    assert "'broken-functions'" in err and "'coalesce'" in err and err.count("\n") == 1
