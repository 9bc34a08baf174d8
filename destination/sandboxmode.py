"""Delivering to the embedded TikTok sandbox instead of TikTok, for commands that offer it.

``destination run`` falls back to the sandbox when no access token is
configured; ``destination serve`` only with ``--sandbox``, because a server
silently acknowledging events that never leave the machine is a production
incident. Both need the same three steps — start the sandbox on loopback,
point the settings at it, make sure the environment cannot point them back
at TikTok — so they live here once.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextlib import ExitStack

from .config import Config

__all__ = [
    "EMBEDDED_KEEP_EVENTS",
    "SANDBOX_PIXEL",
    "SENDS_NOTHING_TOKEN",
    "token_configured",
    "use_sandbox",
    "without_token",
]

SANDBOX_PIXEL = "CSANDBOXPIXEL0001"
#: Events the embedded sandbox keeps for ``GET /sandbox/events``: the latest few, for a
#: look during a run. What the run reports comes from the delivery engine's counters,
#: so the sandbox keeps no duplicate index either, and stays flat over millions.
EMBEDDED_KEEP_EVENTS = 1000
#: The access token of a process that never sends (a dry run, a producer, an ingest-only
#: node) when none is configured: its settings still validate, and it is never used.
SENDS_NOTHING_TOKEN = "this-process-sends-nothing"
#: Environment variables that would send sandbox-mode events elsewhere.
_OVERRIDES = ("TIKTOK_ACCESS_TOKEN", "TIKTOK_API_BASE_URL")


def token_configured(config: Config, environ: Mapping[str, str]) -> bool:
    """True when an access token comes from the environment or the config's settings."""
    token = config.settings.get("access_token")
    return bool(environ.get("TIKTOK_ACCESS_TOKEN") or (isinstance(token, str) and token))


def without_token(config: Config, environ: Mapping[str, str]) -> Config:
    """``config`` for a process that sends nothing: a placeholder token when none is
    configured, so the settings that shape items (pixel, phone region) still validate."""
    if token_configured(config, environ):
        return config
    return config.with_overrides(settings={**config.settings, "access_token": SENDS_NOTHING_TOKEN})


def use_sandbox(
    config: Config, environ: MutableMapping[str, str], stack: ExitStack, *, linger: float = 0.05
) -> tuple[Config, str]:
    """Start a sandbox (stopped when ``stack`` closes) and deliver ``config`` to it.

    Removes the token and base-URL overrides from ``environ`` (pass a copy of
    ``os.environ``) and returns the new config and the sandbox's URL.
    """
    from .tiktok.sandbox import Sandbox

    box = Sandbox(pixels=None, keep_events=EMBEDDED_KEEP_EVENTS, check_duplicates=False).start()
    stack.callback(box.stop)
    for variable in _OVERRIDES:
        environ.pop(variable, None)
    settings = dict(config.settings)
    settings.update(access_token=box.token, api_base_url=box.url)
    settings.setdefault("pixel_code", environ.get("TIKTOK_PIXEL_CODE") or SANDBOX_PIXEL)
    config = config.with_overrides(settings=settings).with_delivery(
        executor="http", executor_options={}, options={"linger": linger}
    )
    return config, box.url
