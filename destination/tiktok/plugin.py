"""The built-in TikTok plugin: registers through the same hooks as third parties."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from ..hookspecs import hookimpl
from .destination import TikTokDestination


@hookimpl
def register_destinations(register: Any) -> None:
    register(TikTokDestination())


@hookimpl
def register_mapping_files(register: Any) -> None:
    register(files("destination._mappings") / "tiktok")


@hookimpl
def register_presets(register: Any) -> None:
    register(files("destination._presets"))
