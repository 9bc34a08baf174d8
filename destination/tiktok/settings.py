"""The TikTok destination's settings: validated once, all problems reported together.

Settings come from a config file and from the environment (which wins for the
access token, pixel code, base URL and test event code, so a token can stay
out of files). Every problem is collected and raised in one
:class:`~destination.errors.SettingsError`, sorted by setting name, so an
operator fixes the file once. The token never appears in a message or a repr.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ..errors import SettingsError, redact
from ..schemacheck import Check, compile_check
from .schemas import load_schema

__all__ = [
    "DEFAULT_API_BASE_URL",
    "ENVIRONMENT_OVERRIDES",
    "TRACK_PATH",
    "TikTokSettings",
    "load_settings",
]

DEFAULT_API_BASE_URL = "https://business-api.tiktok.com"
TRACK_PATH = "/open_api/v1.3/event/track/"
#: Environment variable -> setting it overrides (an empty variable counts as unset).
ENVIRONMENT_OVERRIDES: dict[str, str] = {
    "TIKTOK_ACCESS_TOKEN": "access_token",
    "TIKTOK_PIXEL_CODE": "pixel_code",
    "TIKTOK_API_BASE_URL": "api_base_url",
    "TIKTOK_TEST_EVENT_CODE": "test_event_code",
}
#: event_source -> the setting holding its event_source_id
SOURCE_ID_SETTING: dict[str, str] = {
    "web": "pixel_code",
    "offline": "offline_event_set_id",
    "crm": "crm_event_set_id",
}


@dataclass(frozen=True, slots=True)
class TikTokSettings:
    """Validated settings. ``repr`` shows the token as ``[REDACTED]``."""

    access_token: str = field(repr=False)
    pixel_code: str | None = None
    offline_event_set_id: str | None = None
    crm_event_set_id: str | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    event_source: str = "web"
    test_event_code: str | None = None
    limited_data_use: bool = False
    default_phone_region: str = "US"
    partner_name: str | None = None
    stale_events: str = "warn"
    max_event_age_days: int = 28
    max_future_minutes: int = 10

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if name != "access_token"
        )
        return f"TikTokSettings(access_token='[REDACTED]', {shown})"

    @property
    def track_url(self) -> str:
        """``{api_base_url}/open_api/v1.3/event/track/``."""
        return self.api_base_url.rstrip("/") + TRACK_PATH

    def event_source_id(self, event_source: str) -> str | None:
        """The configured id for ``event_source`` (web → pixel_code, …), or None."""
        value: str | None = getattr(self, SOURCE_ID_SETTING[event_source])
        return value


_USERINFO = re.compile(r"(?<=://)[^/?#]*@")


def _without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (it goes into messages)."""
    return _USERINFO.sub("***@", url, count=1)


@cache
def _fast_check() -> Check | None:
    return compile_check(load_schema("tiktok_settings"))


def _schema_problems(values: Mapping[str, Any], token: str | None) -> list[tuple[str, str]]:
    check = _fast_check()
    if check is not None and check(values):
        return []  # vouched for: jsonschema is not even imported (schemacheck.py)
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema("tiktok_settings"))
    problems: list[tuple[str, str]] = []
    for error in validator.iter_errors(values):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            for name in sorted(set(values) - set(validator.schema["properties"])):
                problems.append((name, f"{name}: unknown setting"))
            continue
        if error.validator == "required":
            missing = error.message.split("'")[1]
            problems.append((missing, f"{missing}: required (or set TIKTOK_ACCESS_TOKEN)"))
            continue
        if path == "access_token":
            # jsonschema quotes the value; never show it.
            problems.append((path, "access_token: must be a non-empty string"))
            continue
        if path == "api_base_url" and error.validator == "pattern":
            shown = _without_credentials(error.instance)
            problems.append(
                (path, f"api_base_url: must start with http:// or https:// (got {shown!r})")
            )
            continue
        problems.append((path, redact(f"{path}: {error.message}", [token])))
    return problems


def _known_region(region: str) -> bool:
    """Whether phonenumbers knows ``region`` (imported only when a region is set)."""
    import phonenumbers

    return region in phonenumbers.SUPPORTED_REGIONS


def load_settings(
    raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> TikTokSettings:
    """Validate ``raw`` with the environment's overrides; raise SettingsError listing all.

    ``environ`` defaults to ``os.environ``; pass ``{}`` to ignore it.
    """
    if not isinstance(raw, Mapping):
        raise SettingsError([f"settings must be a mapping, got {type(raw).__name__}"])
    env = os.environ if environ is None else environ
    values = dict(raw)
    for variable, name in ENVIRONMENT_OVERRIDES.items():
        if env.get(variable):
            values[name] = env[variable]
    token = values.get("access_token")
    token_text = token if isinstance(token, str) else None

    problems = _schema_problems(values, token_text)
    failed = {name for name, _ in problems}
    source = values.get("event_source", "web")
    id_setting = SOURCE_ID_SETTING.get(source) if isinstance(source, str) else None
    if id_setting and id_setting not in values and id_setting not in failed:
        hint = " (or set TIKTOK_PIXEL_CODE)" if id_setting == "pixel_code" else ""
        problems.append((id_setting, f"{id_setting}: required when event_source is {source}{hint}"))
    region = values.get("default_phone_region")
    if (
        isinstance(region, str)
        and "default_phone_region" not in failed
        and not _known_region(region)
    ):
        problems.append(
            ("default_phone_region", f"default_phone_region: {region!r} is not a known region")
        )
    base = values.get("api_base_url")
    if isinstance(base, str) and "api_base_url" not in failed and _USERINFO.search(base):
        # It would be sent as Basic auth, stored in the outbox's routes and shown in
        # results; TikTok authenticates by Access-Token only. Never echoed.
        problems.append(
            (
                "api_base_url",
                "api_base_url: must not carry credentials (user:password@); "
                f"got {_without_credentials(base)!r}",
            )
        )
    if isinstance(token_text, str) and token_text != token_text.strip():
        problems.append(("access_token", "access_token: has leading or trailing whitespace"))
    elif isinstance(token_text, str) and token_text.lower().startswith("bearer "):
        problems.append(
            ("access_token", "access_token: must be the bare token, without a 'Bearer' prefix")
        )
    if problems:
        raise SettingsError([message for _, message in sorted(problems)])
    return TikTokSettings(**values)
