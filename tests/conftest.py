"""Shared fixtures: throwaway plugins are always unregistered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from destination.plugins import load_plugins, pm


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
