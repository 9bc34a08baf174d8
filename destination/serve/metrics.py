"""``GET /metrics``: the runtime's counters and the server's requests in Prometheus text format.

Written by hand (the exposition format is a few lines of text) rather than
through ``prometheus_client``, so the serve extra stays two packages. Event
counters come from :meth:`Runtime.stats` at scrape time, so they cannot
drift from what ``destination run`` and the host API report; the server adds
only what it alone sees: requests by endpoint and status, their latency, and
whether it is refusing events (storage failing, queue full).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["BUCKETS", "CONTENT_TYPE", "MAX_LABEL_CHARS", "RequestMetrics", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: upper bounds (seconds) of the request-latency histogram
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: a label value taken from a message (the stop reason) is cut to this many characters
MAX_LABEL_CHARS: Final = 200

_EVENT_COUNTERS = (
    ("received", "events taken in (good and invalid)"),
    ("matched", "events that matched at least one preset"),
    ("invalid", "events with a payload error (counted, not delivered)"),
    ("accepted", "items stored in the outbox for delivery"),
    ("delivered", "items the destination acknowledged"),
    ("retried", "items put back for a retry"),
    ("rejected", "items the destination refused (dead-lettered with its message)"),
    ("dead_lettered", "items dead-lettered (refused or too old)"),
)

#: the shared queue's figures (JetStream), in messages (a message is a chunk of events)
_QUEUE_GAUGES = (
    (
        "destination_queue_lag_messages",
        "num_pending",
        "messages in the shared queue no worker took yet (the consumer's lag)",
    ),
    (
        "destination_queue_ack_pending",
        "num_ack_pending",
        "messages taken by workers, or given back with a delay, not acknowledged yet",
    ),
    (
        "destination_queue_redelivered",
        "num_redelivered",
        "of those, messages delivered more than once (a worker died, retries)",
    ),
    ("destination_queue_stream_messages", "messages", "messages stored in the stream"),
    ("destination_queue_stream_bytes", "bytes", "bytes stored in the stream"),
)


class RequestMetrics:
    """Requests by (endpoint, status) and a latency histogram per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, int]] = Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self.ingested: Counter[str] = Counter()

    def observe(self, endpoint: str, status: int, seconds: float, events: int = 0) -> None:
        with self._lock:
            self._requests[endpoint, status] += 1
            counts = self._buckets.get(endpoint)
            if counts is None:
                counts = self._buckets[endpoint] = [0] * (len(BUCKETS) + 1)
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[endpoint] = self._sums.get(endpoint, 0.0) + seconds
            if events:
                self.ingested[endpoint] += events

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "buckets": {k: list(v) for k, v in self._buckets.items()},
                "sums": dict(self._sums),
                "ingested": dict(self.ingested),
            }


def render(
    stats: Mapping[str, Any],
    requests: RequestMetrics,
    *,
    draining: bool = False,
    storage_failing: bool = False,
    queue_full: bool = False,
    queue: Mapping[str, int] | None = None,
) -> str:
    """The exposition text for one scrape.

    A gauge whose figure ``stats`` lacks (the outbox could not be read) has
    no sample rather than a made-up 0. ``queue``: the shared queue's figures
    (:meth:`JetStreamQueue.consumer_info`), whose gauges appear only with it.
    """
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    for key, help_text in _EVENT_COUNTERS:
        name = f"destination_events_{key}_total"
        family(name, "counter", help_text)
        out.append(f"{name} {int(stats.get(key, 0))}")
    family("destination_events_matched_by_preset_total", "counter", "events matched, per preset")
    for preset, count in sorted(stats.get("matched_by_preset", {}).items()):
        out.append(
            f'destination_events_matched_by_preset_total{{preset="{_label(preset)}"}} {count}'
        )
    gauges = (
        ("destination_outbox_pending", "pending", "items waiting in the outbox (queue depth)"),
        ("destination_outbox_due", "due", "pending items due to be sent now"),
        ("destination_outbox_dead_letters", "dead_letters", "dead letters kept in the outbox"),
        ("destination_delivery_in_memory", "in_memory", "items claimed, batching or in flight"),
    )
    for name, key, help_text in gauges:
        family(name, "gauge", help_text)
        if key in stats:
            out.append(f"{name} {int(stats.get(key) or 0)}")
    stop_reason = stats.get("stop_reason") if stats.get("stopped") else None
    family(
        "destination_delivery_stopped",
        "gauge",
        "1 when delivery stopped (credentials, permission, no TikTok API at the address)",
    )
    out.append(f"destination_delivery_stopped {int(bool(stats.get('stopped')))}")
    family(
        "destination_delivery_stop_info",
        "gauge",
        "why delivery stopped (a sample only when it did)",
    )
    if stop_reason:
        out.append(f'destination_delivery_stop_info{{reason="{_label(_cut(str(stop_reason)))}"}} 1')
    family("destination_storage_failing", "gauge", "1 while the outbox cannot store events")
    out.append(f"destination_storage_failing {int(storage_failing)}")
    family(
        "destination_queue_full",
        "gauge",
        "1 while events are refused at the outbox's configured cap",
    )
    out.append(f"destination_queue_full {int(queue_full)}")
    family("destination_serve_draining", "gauge", "1 while the server shuts down")
    out.append(f"destination_serve_draining {int(draining)}")
    if queue is not None:
        for name, key, help_text in _QUEUE_GAUGES:
            if key in queue:
                family(name, "gauge", help_text)
                out.append(f"{name} {int(queue[key])}")

    snap = requests.snapshot()
    family(
        "destination_serve_events_total", "counter", "events in requests answered 200, per endpoint"
    )
    for endpoint, count in sorted(snap["ingested"].items()):
        out.append(f'destination_serve_events_total{{endpoint="{endpoint}"}} {count}')
    family("destination_serve_requests_total", "counter", "HTTP requests by endpoint and status")
    for (endpoint, status), count in sorted(snap["requests"].items()):
        out.append(
            f'destination_serve_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
        )
    name = "destination_serve_request_duration_seconds"
    family(name, "histogram", "time from request received to answer, per endpoint")
    for endpoint, counts in sorted(snap["buckets"].items()):
        running = 0
        for bound, count in zip((*BUCKETS, math.inf), counts, strict=True):
            running += count
            le = "+Inf" if bound == math.inf else repr(bound)
            out.append(f'{name}_bucket{{endpoint="{endpoint}",le="{le}"}} {running}')
        out.append(f'{name}_sum{{endpoint="{endpoint}"}} {snap["sums"][endpoint]:.6f}')
        out.append(f'{name}_count{{endpoint="{endpoint}"}} {running}')
    return "\n".join(out) + "\n"


def _cut(text: str) -> str:
    """A message short enough for a label value (a series per long text is costly)."""
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
