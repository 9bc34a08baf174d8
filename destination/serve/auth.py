"""Write keys: which keys the server takes, and checking one without leaking which.

Analytics SDKs send the write key as the user name of HTTP Basic auth with an
empty password; Segment also takes it as ``writeKey`` in the body (what a
browser's ``sendBeacon`` can do). Every configured key is compared with
:func:`hmac.compare_digest`, all of them every time, so the time taken says
nothing about how close a guess was or which key matched. Keys are secrets:
the :class:`WriteKeys` repr shows only how many there are.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable, Mapping

from ..errors import ConfigurationError

__all__ = ["ENV_WRITE_KEYS", "WriteKeys", "basic_user", "resolve_write_keys"]

ENV_WRITE_KEYS = "DESTINATION_WRITE_KEYS"


class WriteKeys:
    """The accepted write keys; ``accepts(key)`` in constant time over all of them."""

    __slots__ = ("_keys", "source")

    def __init__(self, keys: Iterable[str], source: str = "") -> None:
        self._keys = tuple(dict.fromkeys(k.encode() for k in keys if k))
        if not self._keys:
            raise ConfigurationError("no write key given")
        #: where the keys came from, for the start-up message (never the keys)
        self.source = source

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"WriteKeys({len(self._keys)} key(s) from {self.source or 'arguments'})"

    def accepts(self, key: str | None) -> bool:
        candidate = (key or "").encode()
        found = False
        for known in self._keys:
            found |= hmac.compare_digest(candidate, known)
        return found and bool(candidate)


def basic_user(authorization: str | None) -> str | None:
    """The user name of a ``Basic`` Authorization header (the write key), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(":")[0]


def resolve_write_keys(
    arguments: Iterable[str] | None, environ: Mapping[str, str], configured: Iterable[str]
) -> WriteKeys:
    """The first source that gives keys wins: ``--write-key``, the environment, the config."""
    given = [k for k in arguments or () if k]
    if given:
        return WriteKeys(given, "--write-key")
    from_env = [k.strip() for k in environ.get(ENV_WRITE_KEYS, "").split(",") if k.strip()]
    if from_env:
        return WriteKeys(from_env, ENV_WRITE_KEYS)
    configured = [k for k in configured if k]
    if configured:
        return WriteKeys(configured, "serve.write_keys")
    raise ConfigurationError(
        "no write key: give --write-key KEY (repeatable), set "
        f"{ENV_WRITE_KEYS}=KEY1,KEY2 or serve.write_keys in the config file"
    )
