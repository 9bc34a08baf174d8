"""The error taxonomy, organised by how the caller reacts.

A caller never needs to parse a message to decide what to do: the class says
it. Configuration errors stop before any event is read; payload errors skip
one event and the rest go on; retryable delivery errors put the batch back in
the queue; fatal delivery errors stop the destination with events still
queued; rejected deliveries dead-letter exactly the events TikTok refused.

    DestinationError
    ├── ConfigurationError          fatal at load time: fix the files, then start again
    │   ├── TriggerSyntaxError      a preset's trigger expression does not parse
    │   ├── MappingError            a mapping expression does not compile / bad mapping file
    │   ├── SettingsError           destination settings are missing or wrong (all listed)
    │   └── PluginError             a plugin registered something wrong or a duplicate name
    ├── PayloadError                one event cannot be sent: skip it, report it, go on
    ├── StorageError                the queue cannot store or read (disk full, read-only, locked)
    │   └── QueueFullError          the queue reached its configured cap: refuse, retry later
    └── DeliveryError               sending a batch failed
        ├── RetryableDeliveryError  network, timeout, HTTP 429/5xx, throttle/system codes
        ├── RejectedDeliveryError   TikTok refused the content (40002…): dead-letter, never retry
        └── FatalDeliveryError      auth or permission: stop delivering, keep events queued

No error message ever contains an access token: errors are built from
settings through :func:`redact`, and reprs of settings objects hide secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConfigurationError",
    "DeliveryError",
    "DestinationError",
    "FatalDeliveryError",
    "MappingError",
    "PayloadError",
    "PluginError",
    "QueueFullError",
    "RejectedDeliveryError",
    "RetryableDeliveryError",
    "SettingsError",
    "StorageError",
    "TriggerSyntaxError",
    "kind_of",
    "redact",
]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text


def kind_of(value: object) -> str:
    """What a JSON value is, in words for a message ("a list"), never the value itself
    (it may be an email address)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class DestinationError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigurationError(DestinationError):
    """Something the operator wrote (settings, presets, mappings, plugins) is wrong."""


class TriggerSyntaxError(ConfigurationError):
    """A trigger expression does not parse.

    ``str()`` shows the message, the expression and a caret under ``column``
    (1-based), so a user sees where the problem is without counting.
    """

    def __init__(self, message: str, expression: str, column: int) -> None:
        self.message = message
        self.expression = expression
        self.column = column
        super().__init__(message)

    def __str__(self) -> str:
        # Tabs/newlines would misalign the caret; show them as spaces.
        shown = self.expression.replace("\t", " ").replace("\n", " ")
        caret = " " * (self.column - 1) + "^"
        return f"{self.message} (column {self.column})\n  {shown}\n  {caret}"


class MappingError(ConfigurationError):
    """A mapping file or expression is wrong; names the file, field and expression."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expression: str | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.expression = expression
        self.source = source
        super().__init__(message)

    def __str__(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.field:
            where.append(f"field {self.field!r}")
        prefix = ": ".join(where)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.expression is not None:
            text += f" (expression: {self.expression})"
        return text


class SettingsError(ConfigurationError):
    """Destination settings are wrong; ``problems`` lists every one of them at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in self.problems))


class PluginError(ConfigurationError):
    """A plugin registered something of the wrong type or a name already taken."""

    def __init__(self, message: str, plugin: str | None = None) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message)


class PayloadError(DestinationError):
    """One event cannot be sent. Skippable: the batch goes on.

    Carries the event's id (its messageId), the field at fault and the reason,
    so a summary can count reasons and a user can find the event. A reason
    that shows the event's own value (``unparseable timestamp 'soon'``) comes
    with a ``summary`` without it, which is what a summary counts: one line
    per kind of problem, not one per bad value.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        event_id: str | None = None,
        summary: str | None = None,
    ):
        self.reason = reason
        self.field = field
        self.event_id = event_id
        #: ``reason`` without the event's own values (the same when it shows none)
        self.summary = reason if summary is None else summary
        super().__init__(reason)

    def __str__(self) -> str:
        parts = []
        if self.event_id is not None:
            parts.append(f"event {self.event_id}")
        if self.field:
            parts.append(f"field {self.field}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "field": self.field, "reason": self.reason}


class StorageError(DestinationError):
    """The queue could not store or read events (disk full, read-only, locked, corrupt).

    Nothing was accepted by the call that raised it; what was stored before
    stays stored. The message names the queue and the cause in one line.
    """


class QueueFullError(StorageError):
    """The queue holds as much as it is allowed to (``delivery.max_pending``...)."""


class DeliveryError(DestinationError):
    """Sending a batch failed; ``code`` and ``status`` say how TikTok answered."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class RetryableDeliveryError(DeliveryError):
    """Try again later with the same event_ids (network, 429, 5xx, throttle, system)."""


class RejectedDeliveryError(DeliveryError):
    """TikTok refused the content. ``index`` is the data[] index its message names, if any."""

    def __init__(self, message: str, *, index: int | None = None, **kwargs: Any) -> None:
        self.index = index
        super().__init__(message, **kwargs)


class FatalDeliveryError(DeliveryError):
    """Auth or permission failure: stop this destination; keep its events queued."""
