"""Reading a Segment tracking-API request body into events, within Segment's limits.

Everything here is a pure function of the bytes received, so every way a
client can get it wrong is tested without a server, and the server never
crashes on input: each problem is an :class:`IngestError` carrying the HTTP
status and a message naming the problem (for a batch, the item's index).
A request is taken whole or not at all — one bad item refuses the request
and nothing of it is stored — so a client's retry after fixing it cannot
duplicate the good half. Problems Segment accepts and only a destination
can judge (a bad timestamp, a missing user id) are not checked here: the
runtime counts them per event.
"""

from __future__ import annotations

import json
import json.scanner
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from ..errors import kind_of

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "SEGMENT_TYPES",
    "IngestError",
    "decode_body",
    "parse_request",
]

#: Segment's limits: 32 KB per event, 500 KB per request (after decompression).
MAX_EVENT_BYTES: Final = 32 * 1024
MAX_REQUEST_BYTES: Final = 500 * 1024
SEGMENT_TYPES: Final = ("alias", "group", "identify", "page", "screen", "track")

_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_ID_FIELDS = ("userId", "anonymousId")
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class IngestError(Exception):
    """A request refused as a whole; ``status`` and ``code`` go into the JSON answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a worker process, read in the server
        return (type(self), (self.status, self.code, self.message))


def too_large(what: str) -> IngestError:
    return IngestError(413, "too_large", what)


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """The body without its content coding, refusing anything over MAX_REQUEST_BYTES.

    Decompression stops one byte past the limit, so a gzip bomb costs at most
    that much memory.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > MAX_REQUEST_BYTES:
            raise too_large(f"request body larger than {MAX_REQUEST_BYTES // 1024} KB")
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise IngestError(
            415, "unsupported_encoding", f"unsupported Content-Encoding {encoding[:40]!r} (gzip)"
        )
    parts: list[bytes] = []
    size = 0
    data = raw
    try:
        while data:
            inflater = zlib.decompressobj(_GZIP_WBITS)
            part = inflater.decompress(data, MAX_REQUEST_BYTES + 1 - size)
            size += len(part)
            parts.append(part)
            if size > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
                raise too_large(
                    f"decompressed request body larger than {MAX_REQUEST_BYTES // 1024} KB"
                )
            if not inflater.eof:
                raise IngestError(400, "invalid_gzip", "truncated gzip body")
            data = inflater.unused_data  # a further gzip member, if any
    except zlib.error as exc:
        raise IngestError(400, "invalid_gzip", f"not a valid gzip body: {exc}") from None
    return b"".join(parts)


def parse_request(
    body: bytes, kind: str | None, *, now: datetime | None = None
) -> tuple[list[Any], str | None]:
    """The events of one request and the body's ``writeKey`` (None when absent).

    ``kind`` is the endpoint's type, None for ``/v1/batch``. Sets
    ``receivedAt`` on every event as Segment does; a batch's top-level
    ``context``, ``integrations`` and ``sentAt`` apply to items lacking them.
    """
    if kind is not None and len(body) > MAX_EVENT_BYTES:
        raise too_large(f"event larger than {MAX_EVENT_BYTES // 1024} KB")
    text = _text(body)
    sizes: list[int] | None = None
    if kind is None and len(body) > MAX_EVENT_BYTES:
        document, sizes = _load_sized(text)
    else:
        document = _load(text)
    if not isinstance(document, dict):
        raise IngestError(
            400, "invalid_request", f"the body must be a JSON object, got {kind_of(document)}"
        )
    write_key = document.pop("writeKey", None)
    if not isinstance(write_key, str):
        write_key = None
    received = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind is not None:
        _check(document, None, kind)
        document["type"] = kind
        document["receivedAt"] = received
        return [document], write_key
    batch = document.get("batch")
    if batch is None:
        raise IngestError(400, "invalid_request", "missing 'batch' (a list of events)")
    if not isinstance(batch, list):
        raise IngestError(400, "invalid_request", f"'batch' must be a list, got {kind_of(batch)}")
    shared = {
        k: document[k] for k in ("context", "integrations") if isinstance(document.get(k), dict)
    }
    sent_at = document.get("sentAt")
    if sizes is None and len(body) > MAX_EVENT_BYTES:
        sizes = [_size(item) for item in batch]
    for index, item in enumerate(batch):
        _check(item, index, None)
        if sizes is not None and sizes[index] > MAX_EVENT_BYTES:
            raise too_large(f"batch[{index}]: event larger than {MAX_EVENT_BYTES // 1024} KB")
        for key, value in shared.items():
            own = item.get(key)
            item[key] = {**value, **own} if isinstance(own, dict) else value
        if sent_at is not None and "sentAt" not in item:
            item["sentAt"] = sent_at
        item["receivedAt"] = received
    return batch, write_key


def _text(body: bytes) -> str:
    # Decoded here: json.loads would guess UTF-16/32 from the first bytes.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise IngestError(400, "invalid_json", "the body is not UTF-8 text") from None


def _load(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            400,
            "invalid_json",
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    except ValueError as exc:
        raise IngestError(400, "invalid_json", f"malformed JSON: {exc}") from None
    except RecursionError:
        raise IngestError(400, "invalid_json", "malformed JSON: nested too deeply") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
#: the C scanner json.loads uses: one JSON value from a position -> (value, end)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]  # typeshed types the C class oddly
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    return match.end() if match else index


class _Unexpected(Exception):
    """The quick reader met something it does not handle; json.loads will say what."""


def _load_sized(text: str) -> tuple[Any, list[int] | None]:
    """The document and the size in bytes of each ``batch`` item, in one parse.

    Sizes come from the items' positions in the text (what the client sent,
    as Segment measures it), which spares encoding every event again. Any
    surprise falls back to the plain parse, which gives the error message.
    """
    try:
        document, spans = _read_object(text)
    except (_Unexpected, StopIteration, ValueError, RecursionError):
        return _load(text), None
    if spans is None:
        return document, None
    if text.isascii():
        return document, [end - start for start, end in spans]
    return document, [len(text[start:end].encode()) for start, end in spans]


def _read_object(text: str) -> tuple[dict[str, Any], list[tuple[int, int]] | None]:
    index = _skip(text, 0)
    if text[index : index + 1] != "{":
        raise _Unexpected
    document: dict[str, Any] = {}
    spans: list[tuple[int, int]] | None = None
    index = _skip(text, index + 1)
    if text[index : index + 1] == "}":
        index += 1
    else:
        while True:
            if text[index : index + 1] != '"':
                raise _Unexpected
            key, index = _SCAN(text, index)
            index = _skip(text, index)
            if text[index : index + 1] != ":":
                raise _Unexpected
            index = _skip(text, index + 1)
            if key == "batch" and text[index : index + 1] == "[":
                value, spans, index = _read_array(text, index)
            else:
                value, index = _SCAN(text, index)
                if key == "batch":
                    spans = None
            document[key] = value  # a repeated key: the last one wins, as in json.loads
            index = _skip(text, index)
            mark = text[index : index + 1]
            index += 1
            if mark == "}":
                break
            if mark != ",":
                raise _Unexpected
            index = _skip(text, index)
    if _skip(text, index) != len(text):
        raise _Unexpected
    return document, spans


def _read_array(text: str, index: int) -> tuple[list[Any], list[tuple[int, int]], int]:
    items: list[Any] = []
    spans: list[tuple[int, int]] = []
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return items, spans, index + 1
    while True:
        value, end = _SCAN(text, index)
        items.append(value)
        spans.append((index, end))
        index = _skip(text, end)
        mark = text[index : index + 1]
        if mark == "]":
            return items, spans, index + 1
        if mark != ",":
            raise _Unexpected
        index = _skip(text, index + 1)


def _check(event: Any, index: int | None, kind: str | None) -> None:
    where = f"batch[{index}]: " if index is not None else ""
    if not isinstance(event, dict):
        raise _invalid(where, f"an event must be a JSON object, got {kind_of(event)}")
    if kind is None:
        kind = event.get("type")
        if kind is None:
            raise _invalid(where, "missing 'type'")
        if not isinstance(kind, str):
            raise _invalid(where, f"'type' must be a string, got {kind_of(kind)}")
        if kind not in SEGMENT_TYPES:
            raise _invalid(
                where, f"unknown type {kind[:40]!r} (expected one of {', '.join(SEGMENT_TYPES)})"
            )
    if kind == "track":
        name = event.get("event")
        if not isinstance(name, str) or not name:
            got = "missing" if name is None else f"got {kind_of(name)}"
            raise _invalid(where, f"a track event needs 'event', a non-empty string ({got})")
    message_id = event.get("messageId")
    if message_id is not None and not isinstance(message_id, str):
        raise _invalid(where, f"'messageId' must be a string, got {kind_of(message_id)}")
    for name in _ID_FIELDS:
        value = event.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            raise _invalid(where, f"'{name}' must be a string or a number, got {kind_of(value)}")
    for name in _OBJECT_FIELDS:
        value = event.get(name)
        if value is not None and not isinstance(value, dict):
            raise _invalid(where, f"'{name}' must be an object, got {kind_of(value)}")


def _invalid(where: str, message: str) -> IngestError:
    return IngestError(400, "invalid_request", where + message)


def _size(event: Any) -> int:
    try:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise IngestError(400, "invalid_json", "malformed JSON: nested too deeply") from None
    return len(text.encode())
