"""The floor as a whole program: NDJSON in, the dry run's request lines out, no framework.

``python benchmarks/floor_run.py EVENTS.ndjson > requests.ndjson`` reads the
file line by line (orjson, as ``destination run`` does), turns each event
into the default bundle's TikTok items with :func:`benchmarks.floor.floor_items`
(hand-written, no triggers, mapping, schema, queue or engine), and writes one
``{"url", "headers", "body"}`` line per request of up to 1000 items, the
token shown as ``[REDACTED]``: the same lines ``destination run FILE
--dry-run`` writes (the framework may cut batches at other places; the items,
in order, are the same). bench_dry_run.py times it against the framework,
process against process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.floor import floor_body, floor_items

URL = "https://business-api.tiktok.com/open_api/v1.3/event/track/"
HEAD = orjson.dumps(
    {"url": URL, "headers": {"Access-Token": "[REDACTED]", "Content-Type": "application/json"}}
).decode()[:-1]
SEGMENT_TYPES = frozenset({"track", "page", "screen", "identify", "group", "alias"})


def main(path: str, pixel: str) -> int:
    out = sys.stdout
    items: list[dict[str, object]] = []
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                event = orjson.loads(raw)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("type") not in SEGMENT_TYPES:
                continue
            try:
                items.extend(floor_items(event))
            except (NotImplementedError, ValueError):
                continue  # the framework reports these; the floor only skips them
            if len(items) >= 1000:
                out.write(f'{HEAD},"body":{floor_body(items[:1000], pixel).decode()}}}\n')
                del items[:1000]
    if items:
        out.write(f'{HEAD},"body":{floor_body(items, pixel).decode()}}}\n')
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "CSANDBOXPIXEL0001"))
