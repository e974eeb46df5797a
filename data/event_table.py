"""The columnar (Arrow) shape of events: one schema shared by the generator, loaders and event log.

Training reads events as a ``pyarrow.Table`` with exactly these columns (flat: the
``context`` fields are top-level columns). ``timestamp`` is ``timestamp[us, tz=UTC]``.
Only ``event_id``, ``user_id``, ``type`` and ``timestamp`` are never null.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from data.models import Event

CONTEXT_FIELDS: tuple[str, ...] = (
    "session_id",
    "query",
    "position",
    "request_id",
    "experiment",
    "variant",
    "channel",
    "device",
    "surface",
)

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("type", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("session_id", pa.string()),
        pa.field("query", pa.string()),
        pa.field("position", pa.int32()),
        pa.field("request_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("device", pa.string()),
        pa.field("surface", pa.string()),
    ]
)
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)


def empty_table() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def events_to_table(events: Iterable[Event]) -> pa.Table:
    """Validated events → a table in :data:`EVENT_SCHEMA`."""
    cols: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
    for e in events:
        cols["event_id"].append(e.event_id)
        cols["user_id"].append(e.user_id)
        cols["item_id"].append(e.item_id)
        cols["type"].append(e.type)
        cols["timestamp"].append(e.timestamp)
        cols["value"].append(e.value)
        for f in CONTEXT_FIELDS:
            cols[f].append(getattr(e.context, f))
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def _iso(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


def table_to_dicts(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows as Event-shaped dicts (nested ``context``; null fields left out; ISO-8601 UTC times)."""
    for batch in table.to_batches(max_chunksize=50_000):
        cols = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for i in range(batch.num_rows):
            row: dict[str, Any] = {}
            for name in ("event_id", "user_id", "item_id", "type", "timestamp", "value"):
                v = cols[name][i] if name in cols else None
                if v is not None:
                    row[name] = _iso(v) if name == "timestamp" else v
            ctx = {f: cols[f][i] for f in CONTEXT_FIELDS if f in cols and cols[f][i] is not None}
            if ctx:
                row["context"] = ctx
            yield row


def dumps(row: dict[str, Any]) -> str:
    """One compact JSON line (UTF-8 text kept readable, keys in a fixed order)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def table_to_events(table: pa.Table) -> Iterator[Event]:
    """Rows → validated :class:`Event` objects (slow path; for small tables and tests)."""
    for row in table_to_dicts(table):
        yield Event.model_validate(row)
