"""Shared fixtures: throwaway plugins are always unregistered; an environment without
the variables that would point a command elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from destination.plugins import load_plugins, pm
from destination.tiktok.settings import ENVIRONMENT_OVERRIDES


@contextmanager
def registered(plugin: Any, name: str) -> Iterator[Any]:
    """Register ``plugin`` for the duration of a with-block."""
    load_plugins()
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(name=name)


@pytest.fixture
def plugin_registered():
    return registered


@pytest.fixture
def clean_environment(monkeypatch):
    """No TIKTOK_* override and no write keys from the developer's shell reach a command."""
    for name in (*ENVIRONMENT_OVERRIDES, "DESTINATION_WRITE_KEYS"):
        monkeypatch.delenv(name, raising=False)
