"""Loading the TikTok JSON Schemas that ship in ``destination.schemas``.

The schemas are data files (lint and docs read them too), so they are read
once through importlib.resources, which works from a wheel as well as from a
source checkout.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = ["load_schema"]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``destination/schemas/<name>.json`` (cached; do not mutate)."""
    text = (files("destination.schemas") / f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
