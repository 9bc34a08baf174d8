"""``destination serve``: a Segment-compatible ingest server in front of the runtime.

Analytics SDKs (Segment's, RudderStack's) post events to ``/v1/batch`` and
friends; the server checks the write key, reads the body within Segment's
limits, hands the events to :class:`~destination.host.Runtime` and answers
``200 {"success": true}`` only once they are committed to the outbox. The
delivery engine sends them on in the background. See docs/serve.md.

The modules are cut by what they need: :mod:`.ingest` (body decoding and
validation), :mod:`.auth` (write keys) and :mod:`.metrics` use only the
standard library and are unit-tested on their own; :mod:`.app` (starlette)
and :mod:`.command` (uvicorn) import the ``serve`` extra, lazily, so the core
package works without it.
"""

from __future__ import annotations

__all__: list[str] = []
