"""Faults the sandbox can inject, and the small spec language that names them.

A delivery engine is only proven by watching it survive TikTok misbehaving:
5xx and 429 answers, throttle and system codes in a 200 body, slow answers,
connections reset or left hanging, one poisoned event in a batch, a per-pixel
rate limit. Tests need those deterministically (a scripted sequence), soak
runs need them at random (probabilities with a seed), and the CLI needs them
as short strings. One parser serves all three, so what docs/sandbox.md
describes is exactly what ``--fault`` and :meth:`FaultPlan.parse` accept.

Spec grammar (one ``--fault`` each)::

    STATUS[:P][:retry-after=S]   HTTP status 400-599 (429 gets Retry-After, default 1)
    CODE[:P]                     a TikTok body code with HTTP 200 (5 digits: 40100, 50000 ...)
    latency[:P]:ms=N             answer N ms late (then answer normally)
    reset[:P]                    reset the TCP connection instead of answering
    hang[:P]                     never answer; hold the connection until the client leaves
    reject-event-id:ID           40002 for any batch containing that event_id
    script:STEP,STEP,...         one step per track request, in arrival order
    STEP := ok | STATUS[=S] | CODE | reset | hang | latency=MS

P is a probability in [0, 1] (default 1).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from ...errors import ConfigurationError

__all__ = ["Fault", "FaultPlan", "FaultSpecError", "RateLimiter", "parse_fault"]

FaultKind = Literal["ok", "http", "code", "latency", "reset", "hang", "reject-event-id"]
DEFAULT_RETRY_AFTER: Final = 1.0


class FaultSpecError(ConfigurationError):
    """A ``--fault`` spec does not parse; the message quotes the spec."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault. ``value`` is the HTTP status, the body code, the latency in ms or the event_id."""

    kind: FaultKind
    probability: float = 1.0
    value: int | str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError(f"probability {self.probability} is not between 0 and 1")

    @classmethod
    def http(cls, status: int, probability: float = 1.0, retry_after: float | None = None) -> Fault:
        if not 400 <= status <= 599:
            raise FaultSpecError(f"HTTP status {status} is not between 400 and 599")
        if status == 429 and retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER
        return cls("http", probability, status, retry_after)

    @classmethod
    def code(cls, code: int, probability: float = 1.0) -> Fault:
        if not 10000 <= code <= 99999:
            raise FaultSpecError(f"TikTok code {code} is not a 5-digit code")
        return cls("code", probability, code)

    @classmethod
    def latency(cls, ms: int, probability: float = 1.0) -> Fault:
        if ms < 0:
            raise FaultSpecError(f"latency {ms} ms is negative")
        return cls("latency", probability, ms)

    @classmethod
    def reset(cls, probability: float = 1.0) -> Fault:
        return cls("reset", probability)

    @classmethod
    def hang(cls, probability: float = 1.0) -> Fault:
        return cls("hang", probability)

    @classmethod
    def ok(cls) -> Fault:
        return cls("ok")

    @classmethod
    def reject_event_id(cls, event_id: str) -> Fault:
        if not event_id:
            raise FaultSpecError("reject-event-id needs an event_id")
        return cls("reject-event-id", 1.0, event_id)


def _number(text: str, spec: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {what} {text!r} is not a number") from None


def _integer(text: str, spec: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: {what} {text!r} is not an integer") from None


def _split_options(parts: list[str], spec: str) -> tuple[float, dict[str, str]]:
    """Read ``[:P][:key=value...]``: the probability then named options."""
    probability = 1.0
    options: dict[str, str] = {}
    for index, part in enumerate(parts):
        if "=" in part:
            key, _, value = part.partition("=")
            options[key.strip().lower()] = value.strip()
        elif index == 0:
            probability = _number(part, spec, "probability")
        else:
            raise FaultSpecError(f"fault {spec!r}: unexpected {part!r}")
    return probability, options


def _no_options(options: dict[str, str], spec: str, allowed: Iterable[str] = ()) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise FaultSpecError(f"fault {spec!r}: unknown option {extra[0]!r}")


def _parse_step(step: str, spec: str) -> Fault:
    name, _, arg = step.strip().partition("=")
    name = name.strip().lower()
    try:
        if name == "ok" and not arg:
            return Fault.ok()
        if name == "reset" and not arg:
            return Fault.reset()
        if name == "hang" and not arg:
            return Fault.hang()
        if name == "latency" and arg:
            return Fault.latency(_integer(arg, spec, "latency"))
        if name.isdigit() and len(name) == 3:
            retry = _number(arg, spec, "retry-after") if arg else None
            return Fault.http(int(name), retry_after=retry)
        if name.isdigit() and len(name) == 5 and not arg:
            return Fault.code(int(name))
    except FaultSpecError as exc:
        raise FaultSpecError(f"fault {spec!r}: step {step!r}: {exc}") from None
    raise FaultSpecError(
        f"fault {spec!r}: unknown step {step!r} "
        "(expected ok, STATUS[=retry-after], CODE, reset, hang or latency=MS)"
    )


def parse_fault(spec: str) -> Fault | list[Fault]:
    """Parse one ``--fault`` spec: a :class:`Fault`, or a list of steps for ``script:``."""
    text = spec.strip()
    if not text:
        raise FaultSpecError("empty fault spec")
    head, _, rest = text.partition(":")
    head = head.strip().lower()
    if head == "script":
        steps = [s for s in rest.split(",") if s.strip()]
        if not steps:
            raise FaultSpecError(f"fault {spec!r}: script needs at least one step")
        return [_parse_step(step, spec) for step in steps]
    if head == "reject-event-id":
        if not rest:
            raise FaultSpecError(f"fault {spec!r}: reject-event-id needs an event_id")
        return Fault.reject_event_id(rest)
    parts = rest.split(":") if rest else []
    probability, options = _split_options(parts, spec)
    try:
        if head.isdigit() and len(head) == 3:
            _no_options(options, spec, ("retry-after",))
            retry = options.get("retry-after")
            return Fault.http(
                int(head),
                probability,
                _number(retry, spec, "retry-after") if retry is not None else None,
            )
        if head.isdigit() and len(head) == 5:
            _no_options(options, spec)
            return Fault.code(int(head), probability)
        if head == "latency":
            _no_options(options, spec, ("ms",))
            if "ms" not in options:
                raise FaultSpecError("latency needs ms=N")
            return Fault.latency(_integer(options["ms"], spec, "ms"), probability)
        if head in ("reset", "hang"):
            _no_options(options, spec)
            return Fault.reset(probability) if head == "reset" else Fault.hang(probability)
    except FaultSpecError as exc:
        if str(exc).startswith("fault "):
            raise
        raise FaultSpecError(f"fault {spec!r}: {exc}") from None
    raise FaultSpecError(
        f"fault {spec!r}: unknown fault {head!r} (expected an HTTP status, a 5-digit code, "
        "latency, reset, hang, reject-event-id or script)"
    )


@dataclass(eq=False)  # it carries state; two plans are never "equal"
class FaultPlan:
    """Which faults to inject, and the state (script position, random stream) to do it.

    For each track request: a remaining ``script`` step is used first, and while
    the script lasts nothing random happens. After it, a ``latency`` fault is
    rolled (it delays, then the request goes on), then the other faults are
    rolled in order, each with its own probability; the first that fires is
    the answer. ``reject_event_ids`` apply to every request that is otherwise
    accepted. ``seed`` makes the random rolls repeatable.
    """

    faults: Sequence[Fault] = ()
    script: Sequence[Fault] = ()
    seed: int | None = None
    _position: int = field(default=0, init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        for fault in self.faults:
            if fault.kind == "ok":
                raise FaultSpecError("'ok' is only a script step")
        for step in self.script:
            if step.kind == "reject-event-id":
                raise FaultSpecError("reject-event-id cannot be a script step")
        self.reject_event_ids: frozenset[str] = frozenset(
            str(f.value) for f in self.faults if f.kind == "reject-event-id"
        )
        self._latency = [f for f in self.faults if f.kind == "latency"]
        self._terminal = [f for f in self.faults if f.kind not in ("latency", "reject-event-id")]

    @classmethod
    def parse(cls, specs: Iterable[str], seed: int | None = None) -> FaultPlan:
        """Build a plan from ``--fault`` specs; several ``script:`` specs are concatenated."""
        faults: list[Fault] = []
        script: list[Fault] = []
        for spec in specs:
            parsed = parse_fault(spec)
            if isinstance(parsed, list):
                script.extend(parsed)
            else:
                faults.append(parsed)
        return cls(faults=tuple(faults), script=tuple(script), seed=seed)

    @property
    def script_remaining(self) -> int:
        return max(0, len(self.script) - self._position)

    def next_faults(self) -> tuple[int, Fault | None]:
        """Decide the next track request's fate: (latency in ms, terminal fault or None).

        A terminal fault of kind ``ok`` never comes back: it is reported as None.
        """
        with self._lock:
            if self._position < len(self.script):
                step = self.script[self._position]
                self._position += 1
                if step.kind == "latency":
                    return int(step.value or 0), None
                return 0, (None if step.kind == "ok" else step)
            delay = 0
            for fault in self._latency:
                if self._roll(fault.probability):
                    delay += int(fault.value or 0)
            for fault in self._terminal:
                if self._roll(fault.probability):
                    return delay, fault
            return delay, None

    def _roll(self, probability: float) -> bool:
        if probability >= 1.0:
            return True
        if probability <= 0.0:
            return False
        return self._random.random() < probability


class RateLimiter:
    """A token bucket per event_source_id: ``rps`` per second, bursts of ``max(1, rps)``.

    Refused requests take no token, like TikTok's QPS limiter: a client that
    backs off gets through again as the bucket refills.
    """

    def __init__(self, rps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rps <= 0:
            raise FaultSpecError(f"rate limit {rps} must be positive")
        self.rps = float(rps)
        self.burst = max(1.0, self.rps)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rps)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return True
        self._buckets[key] = (tokens, now)
        return False
