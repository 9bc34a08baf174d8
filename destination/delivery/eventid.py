"""Stable event ids, so a retry or a replay is deduplicated by the destination.

TikTok drops a second event with the same event_source_id, event and event_id
within 48 hours. The id must therefore be the same every time the same
input event is processed: the Segment ``messageId`` when there is one, else a
hash of the event's content (without the fields a CDP rewrites on every
transmission, ``sentAt`` and ``receivedAt``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["event_id_for"]

_VOLATILE = frozenset({"sentAt", "receivedAt", "_metadata"})


def event_id_for(event: Mapping[str, Any]) -> str:
    """``messageId`` as a string when present, else ``"h-"`` + SHA-256 of the content."""
    message_id = event.get("messageId")
    if isinstance(message_id, str) and message_id.strip():
        return message_id.strip()
    if isinstance(message_id, int | float) and not isinstance(message_id, bool):
        return str(message_id)
    content = {k: v for k, v in event.items() if k not in _VOLATILE and k != "messageId"}
    canonical = json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    # surrogatepass: a lone surrogate (valid JSON, "\ud800") still gives a stable id.
    return "h-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]
