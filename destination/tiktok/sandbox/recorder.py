"""What the sandbox received, kept so a test can prove nothing was lost or doubled.

TikTok deduplicates on (event_source_id, event, event_id); the sandbox does
not drop duplicates (a delivery test wants to see them) but counts them, so
"every event arrived exactly once" is one assertion: the counts match and
:meth:`Recorder.duplicates` is empty. Events are recorded only when their
whole request was accepted, as TikTok rejects the whole request on 40002.

The recorder is written by the server thread and read by the test thread,
so one lock guards it; it is taken once per request, never per event.
Stored events are capped (oldest dropped) so a long-running sandbox does
not grow without bound; the counters are exact regardless. The duplicate
index is the one part that grows with what was received (one entry per
distinct key): a sandbox nobody will ask about duplicates — the one
``destination run`` and ``serve --sandbox`` embed — is built with
``check_duplicates=False`` and stays flat over any number of events.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ReceivedEvent", "Recorder"]


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One accepted ``data[]`` item with the envelope it came in."""

    event_source: str
    event_source_id: str
    test_event_code: str | None
    request_id: str
    data: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.data["event"])

    @property
    def event_id(self) -> str | None:
        value = self.data.get("event_id")
        return value if isinstance(value, str) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_source": self.event_source,
            "event_source_id": self.event_source_id,
            "test_event_code": self.test_event_code,
            "request_id": self.request_id,
            "data": self.data,
        }


DuplicateKey = tuple[str, str, str]
# (event_source, event_source_id, test_event_code, request_id, data[])
_Batch = tuple[str, str, str | None, str, Sequence[dict[str, Any]]]


class Recorder:
    """Accepted events, counts by event name, duplicate keys, and answers given."""

    def __init__(self, keep_events: int | None = 100_000, *, check_duplicates: bool = True) -> None:
        self.keep_events = keep_events
        self.check_duplicates = check_duplicates
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            # Whole accepted requests are kept (one tuple each, not one object
            # per event): cheap to append, expanded only when someone asks.
            self._batches: deque[_Batch] = deque()
            self._stored = 0
            self._counts: dict[str, int] = {}
            self._seen: dict[DuplicateKey, int] = {}
            self._answers: Counter[str] = Counter()
            self._requests = 0
            self._accepted = 0

    def count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def answer(self, outcome: str) -> None:
        """Count one answer: ``"0"``, ``"40002"``, ``"http_503"``, ``"reset"``, ``"hang"`` …"""
        with self._lock:
            self._answers[outcome] += 1

    def accept(
        self,
        event_source: str,
        event_source_id: str,
        test_event_code: str | None,
        request_id: str,
        data: Sequence[dict[str, Any]],
    ) -> None:
        with self._lock:
            self._answers["0"] += 1
            self._accepted += len(data)
            counts = self._counts
            if self.check_duplicates:
                seen = self._seen
                for item in data:
                    name = item["event"]
                    counts[name] = counts.get(name, 0) + 1
                    event_id = item.get("event_id")
                    if event_id is not None:
                        key = (event_source_id, name, event_id)
                        seen[key] = seen.get(key, 0) + 1
            else:
                for item in data:
                    name = item["event"]
                    counts[name] = counts.get(name, 0) + 1
            keep = self.keep_events
            if keep == 0:
                return
            batches = self._batches
            batches.append((event_source, event_source_id, test_event_code, request_id, data))
            self._stored += len(data)
            if keep is not None:
                while self._stored - len(batches[0][4]) >= keep:
                    self._stored -= len(batches.popleft()[4])

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def accepted(self) -> int:
        with self._lock:
            return self._accepted

    def events(self, event_source_id: str | None = None) -> list[ReceivedEvent]:
        """The accepted events still kept (the latest ``keep_events``), oldest first."""
        with self._lock:
            batches = list(self._batches)
            excess = 0 if self.keep_events is None else max(0, self._stored - self.keep_events)
        events = [
            ReceivedEvent(source, source_id, test_code, request_id, item)
            for source, source_id, test_code, request_id, data in batches
            for item in data
        ][excess:]
        if event_source_id is None:
            return events
        return [e for e in events if e.event_source_id == event_source_id]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def duplicates(self) -> dict[DuplicateKey, int]:
        """(event_source_id, event, event_id) received more than once → times received.

        Raises RuntimeError when built with ``check_duplicates=False``: an empty
        answer would claim that nothing was doubled.
        """
        if not self.check_duplicates:
            raise RuntimeError("this sandbox does not check duplicates (check_duplicates=False)")
        with self._lock:
            return {key: n for key, n in self._seen.items() if n > 1}

    def answers(self) -> dict[str, int]:
        with self._lock:
            return dict(self._answers)

    def stats(self) -> dict[str, Any]:
        """The JSON served by ``GET /sandbox/stats`` (``duplicates`` is null when not checked)."""
        duplicates = self.duplicates() if self.check_duplicates else None
        with self._lock:
            return {
                "requests": self._requests,
                "events": self._accepted,
                "stored_events": min(
                    self._stored, self._stored if self.keep_events is None else self.keep_events
                ),
                "counts": dict(self._counts),
                "answers": dict(self._answers),
                "duplicates": None
                if duplicates is None
                else [
                    {"event_source_id": s, "event": e, "event_id": i, "count": n}
                    for (s, e, i), n in sorted(duplicates.items())
                ],
            }
