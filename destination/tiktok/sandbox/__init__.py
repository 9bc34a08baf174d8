"""A local, faithful emulator of TikTok's Events API track endpoint.

TikTok cannot be reached from tests or from a laptop without a token, yet the
delivery engine must be proven against TikTok's strictness and its failures.
The sandbox answers ``POST /open_api/v1.3/event/track/`` as TikTok does,
records what it accepted, and injects faults on demand. It uses only the
standard library, so it ships in the core package. See docs/sandbox.md.

    with Sandbox(pixels=["PIXEL1"], faults=["script:503,ok"]) as sandbox:
        ...  # point the client at sandbox.url with sandbox.token
        assert sandbox.duplicates() == {}
"""

from __future__ import annotations

from .faults import Fault, FaultPlan, FaultSpecError, RateLimiter, parse_fault
from .recorder import ReceivedEvent, Recorder
from .server import SANDBOX_TOKEN, TRACK_PATH, Sandbox
from .validation import validate_body, validate_event

__all__ = [
    "SANDBOX_TOKEN",
    "TRACK_PATH",
    "Fault",
    "FaultPlan",
    "FaultSpecError",
    "RateLimiter",
    "ReceivedEvent",
    "Recorder",
    "Sandbox",
    "parse_fault",
    "validate_body",
    "validate_event",
]
