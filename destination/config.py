"""The configuration file of ``destination run``, ``destination serve`` and the host API.

One YAML file (or the same shape as a dict) says which destination, its
settings, which preset bundles and user files, and how to deliver. It is read
with :mod:`destination.yamlsource` so that every problem — a schema error, a
wrong setting, a bad delivery option — is reported at once with its line and
column, and the process stops before reading a single event. Secrets belong
in the environment (``TIKTOK_ACCESS_TOKEN``); the destination's own
``load_settings`` lets the environment win.

Relative paths (preset and mapping files, the outbox) are relative to the
configuration file, so a config works from any working directory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .delivery.engine import DeliveryOptions
from .delivery.outbox import DEFAULT_OUTBOX_PATH
from .delivery.retry import RetryPolicy
from .errors import ConfigurationError, SettingsError
from .presets import YAML_SUFFIXES, ConfigFileError
from .yamlsource import Document, Problem, load_schema, parse_yaml, schema_problems

__all__ = ["Config", "DeliveryConfig", "ServeConfig", "load_config"]

DEFAULT_DESTINATION = "tiktok"

#: Options of :class:`DeliveryOptions` taken from ``delivery:`` as they are.
_ENGINE_OPTIONS = (
    "batch_size",
    "max_bytes",
    "linger",
    "concurrency",
    "rate",
    "burst",
    "window",
    "poll_interval",
    "rate_limit_pause_after",
    "rate_limit_pause",
    "stop_retry_interval",
    "max_pending",
    "max_queue_bytes",
)
#: ``delivery:`` key -> RetryPolicy field.
_RETRY_OPTIONS = {"max_age": "max_age", "retry_base": "base", "retry_cap": "cap"}


@dataclass(frozen=True)
class DeliveryConfig:
    """How accepted events wait (queue, outbox) and leave (executor, engine options)."""

    executor: str = "http"
    executor_options: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "sqlite"
    queue_options: Mapping[str, Any] = field(default_factory=dict)
    outbox: Path = DEFAULT_OUTBOX_PATH
    options: DeliveryOptions = field(default_factory=DeliveryOptions)
    #: seconds ``close()`` spends flushing before it keeps the rest queued
    shutdown_timeout: float = 10.0


@dataclass(frozen=True)
class ServeConfig:
    """``serve:`` — where the ingest server listens, which write keys it accepts, and
    how many worker processes decode and store events (0: the server process)."""

    host: str = "127.0.0.1"
    port: int = 8080
    write_keys: tuple[str, ...] = field(default=(), repr=False)
    workers: int = 0


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``settings`` is raw: the destination validates it."""

    destination: str = DEFAULT_DESTINATION
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    presets: tuple[str, ...] = ()
    mappings: tuple[str, ...] = ()
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    #: the file it came from (None for a dict)
    source: str | None = None
    _doc: Document | None = field(default=None, repr=False, compare=False)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with top-level fields replaced (the CLI's ``--presets`` and friends)."""
        return replace(self, **changes)

    def with_delivery(self, **changes: Any) -> Config:
        """A copy with delivery fields replaced; ``options`` keys go to DeliveryOptions."""
        options = changes.pop("options", None)
        delivery = replace(self.delivery, **changes)
        if options:
            delivery = replace(delivery, options=replace(delivery.options, **options))
        return replace(self, delivery=delivery)

    def settings_error(self, error: SettingsError) -> ConfigurationError:
        """``error`` with each problem placed at its line in the file, when there is one."""
        if self._doc is None:
            return error
        problems = []
        for text in error.problems:
            name = text.split(":", 1)[0].strip()
            path: tuple[str, ...] = ("settings", name) if name.isidentifier() else ("settings",)
            if path not in self._doc.marks and path not in self._doc.key_marks:
                path = ("settings",)
            problems.append(self._doc.problem(path, f"settings: {text}", key=True))
        return ConfigFileError(sorted(problems))


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Read a configuration file (or validate a dict); raise ConfigFileError listing all problems.

    ``None`` gives the defaults. For a dict, relative paths are relative to
    ``base_dir`` (default: the working directory).
    """
    if source is None:
        return Config()
    if isinstance(source, Mapping):
        doc = Document("<config>", value=dict(source))
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return _from_document(doc, base, None)
    path = Path(os.fspath(source))
    label = os.fspath(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{label}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigurationError(f"{label}: is a folder, not a configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{label}: cannot read: {exc}") from None
    doc = parse_yaml(text, label)
    if not doc.ok:
        raise ConfigFileError(doc.problems)
    return _from_document(doc, path.parent, label)


def _from_document(doc: Document, base: Path, source: str | None) -> Config:
    value = doc.value
    if not isinstance(value, dict):
        raise ConfigFileError([doc.problem((), "the configuration must be a mapping")])
    problems = schema_problems(doc, load_schema("config"))
    if problems:
        raise ConfigFileError(problems)

    def resolve(text: str, *, bundle_names: bool = False) -> str:
        # A bundle name ("default") stays a name; anything that looks like a path is resolved.
        looks_like_path = text.endswith(YAML_SUFFIXES) or "/" in text or os.sep in text
        if bundle_names and not looks_like_path and not (base / text).exists():
            return text
        return os.fspath(base / text) if not os.path.isabs(text) else text

    delivery_raw: dict[str, Any] = value.get("delivery", {})
    delivery, delivery_problems = _delivery(doc, delivery_raw, resolve)
    if delivery_problems:
        raise ConfigFileError(sorted(delivery_problems))
    serve_raw: dict[str, Any] = value.get("serve", {})
    serve = ServeConfig(
        host=serve_raw.get("host", ServeConfig.host),
        port=serve_raw.get("port", ServeConfig.port),
        write_keys=tuple(serve_raw.get("write_keys", ())),
        workers=serve_raw.get("workers", ServeConfig.workers),
    )
    return Config(
        destination=value.get("destination", DEFAULT_DESTINATION),
        settings=dict(value.get("settings", {})),
        presets=tuple(resolve(p, bundle_names=True) for p in value.get("presets", ())),
        mappings=tuple(resolve(p) for p in value.get("mappings", ())),
        delivery=delivery,
        serve=serve,
        source=source,
        _doc=doc if source is not None else None,
    )


def _delivery(
    doc: Document, raw: Mapping[str, Any], resolve: Any
) -> tuple[DeliveryConfig, list[Problem]]:
    problems: list[Problem] = [
        doc.problem(("delivery", key), f"delivery.{key} must be a finite number")
        for key, value in raw.items()
        if isinstance(value, float) and not math.isfinite(value)  # .nan passes the schema
    ]
    if problems:
        return DeliveryConfig(), problems
    engine = {k: raw[k] for k in _ENGINE_OPTIONS if k in raw}
    retry_fields = {field: raw[key] for key, field in _RETRY_OPTIONS.items() if key in raw}
    retry = RetryPolicy()
    try:
        retry = RetryPolicy(**retry_fields) if retry_fields else retry
    except ConfigurationError as exc:
        where = next((k for k in ("retry_cap", "retry_base", "max_age") if k in raw), None)
        problems.append(doc.problem(("delivery", where) if where else ("delivery",), str(exc)))
    options = DeliveryOptions()
    try:
        options = DeliveryOptions(retry=retry, **engine)
    except ConfigurationError as exc:
        problems.append(doc.problem(("delivery",), str(exc)))
    outbox = raw.get("outbox")
    config = DeliveryConfig(
        executor=raw.get("executor", "http"),
        executor_options=dict(raw.get("executor_options", {})),
        queue=raw.get("queue", "sqlite"),
        queue_options=dict(raw.get("queue_options", {})),
        outbox=Path(resolve(outbox)) if outbox else DEFAULT_OUTBOX_PATH,
        options=options,
        shutdown_timeout=float(raw.get("shutdown_timeout", 10.0)),
    )
    return config, problems
