"""One code object per distinct generated source, shared by everything that execs it.

mapping.py and schemacheck.py turn expressions and schemas into Python source
and compile it when presets load. Presets repeat the same source many times
(seven presets of one action compile the same thirty field look-ups, the same
payload-schema checks and nearly the same whole-mapping function), and
``compile()`` was the largest part of a start-up. A code object is immutable,
so compiling each distinct source once is enough: every caller still execs it
into a namespace of its own and gets a function of its own.
"""

from __future__ import annotations

import functools
from types import CodeType

__all__ = ["compile_source"]


@functools.lru_cache(maxsize=2048)
def compile_source(source: str, filename: str) -> CodeType:
    """``compile(source, filename, "exec")``, once per distinct (source, filename)."""
    return compile(source, filename, "exec")
