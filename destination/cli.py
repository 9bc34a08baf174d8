"""The ``destination`` command: one subcommand per job, each a thin shell over the library.

Subcommands parse arguments, call library functions and turn errors into a
message on stderr and an exit code; they never print a traceback for bad
input or bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="destination",
        description="Deliver Segment-spec CDP events to the TikTok Events API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_lint(sub)
    _add_presets(sub)
    return parser


def _add_lint(subparsers: Any) -> None:
    lint = subparsers.add_parser(
        "lint",
        help="check preset and mapping files",
        description="Check preset and mapping YAML files (or folders of them); "
        "print every problem as path:line:col: error|warning: message; exit 1 on any error.",
    )
    lint.add_argument("paths", nargs="+", metavar="PATH", help="a file or a folder")
    lint.add_argument("--format", choices=("text", "json"), default="text")
    lint.add_argument(
        "--presets",
        nargs="+",
        default=["default"],
        metavar="NAME",
        help="built-in bundles the preset files layer over (default: default)",
    )
    lint.set_defaults(handler=_run_lint)


def _run_lint(args: argparse.Namespace) -> int:
    from .errors import ConfigurationError
    from .lint import format_json, format_text, lint_paths

    try:
        report = lint_paths(args.paths, bundles=args.presets)
    except ConfigurationError as exc:
        print(f"destination lint: {exc}", file=sys.stderr)
        return 1
    print(format_json(report) if args.format == "json" else format_text(report))
    return report.exit_code


def _add_presets(subparsers: Any) -> None:
    presets = subparsers.add_parser(
        "presets",
        help="list the loaded presets",
        description="List presets after layering bundles and user files (default: the "
        "'default' bundle).",
    )
    presets.add_argument(
        "--presets",
        nargs="+",
        default=[],
        metavar="NAME|FILE",
        help="bundle names and preset/mapping files, layered in order",
    )
    presets.add_argument("--json", action="store_true", help="print JSON")
    presets.set_defaults(handler=_run_presets)


def _run_presets(args: argparse.Namespace) -> int:
    import json

    from .errors import ConfigurationError
    from .mapping import MappingFunctions, compile_expression
    from .plugins import collect_registry
    from .presets import resolve_presets

    try:
        registry = collect_registry()
        config = resolve_presets(args.presets, registry=registry)
        functions = MappingFunctions.from_registry(registry)
        rows = []
        for preset in config.presets:
            text = config.mapping_for(preset).get("event", "")
            constant = compile_expression(text, functions).constant if text else None
            rows.append(_preset_row(preset, constant if isinstance(constant, str) else text))
    except ConfigurationError as exc:
        print(f"destination presets: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "on " if row["enabled"] else "off"
        print(
            f"[{state}] {row['name']} ({row['bundle']}): {row['trigger']} "
            f"-> {row['action']} {row['event']}"
        )
    return 0


def _preset_row(preset: Any, event: str) -> dict[str, Any]:
    return {
        "name": preset.name,
        "bundle": preset.bundle,
        "enabled": preset.enabled,
        "trigger": preset.trigger,
        "action": preset.action,
        "event": event,
        "description": preset.description,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
