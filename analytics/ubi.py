"""Export searches and their events in OpenSearch's User Behavior Insights (UBI 1.x)
schema, as JSON lines that can be bulk-loaded into the ``ubi_queries`` and ``ubi_events``
indices, where OpenSearch Dashboards and the Search Relevance Workbench read them.

* ``ubi_queries``: one document per logged search — ``application``, ``query_id`` (our
  request id), ``client_id`` (the user id, or ``anonymous``), ``user_query``,
  ``query_response_id``, ``query_response_hit_ids`` (the item ids shown, empty when none),
  ``object_id_field`` (``item_id``), ``timestamp`` (ISO 8601), ``query_attributes``
  (``total``, ``relaxed``).
* ``ubi_events``: one document per event that echoes a logged search's request id —
  ``application``, ``action_name`` (the event type), ``query_id``, ``client_id``,
  ``session_id``, ``user_id``, ``timestamp``, ``message_type`` (``INFO``), ``message``,
  ``event_attributes.object`` (``object_id``, ``object_id_field``) and
  ``event_attributes.position.ordinal`` (1-based) when known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from analytics.search_log import LoggedSearch

APPLICATION = "shoprank"


def ubi_queries(searches: Iterable[LoggedSearch]) -> Iterator[dict[str, object]]:
    for s in searches:
        yield {
            "application": APPLICATION,
            "query_id": s.request_id,
            "client_id": s.user_id or "anonymous",
            "user_query": s.query,
            "query_response_id": s.request_id,
            "query_response_hit_ids": list(s.hit_ids),
            "object_id_field": "item_id",
            "timestamp": s.at.isoformat(),
            "query_attributes": {"total": s.total, "relaxed": s.relaxed},
        }


def ubi_events(searches: Iterable[LoggedSearch], events: pa.Table) -> Iterator[dict[str, object]]:
    shown = {s.request_id: s for s in searches}
    if not shown or not events.num_rows:
        return
    cols = events.select(
        [
            "type",
            "request_id",
            "item_id",
            "position",
            "user_id",
            "session_id",
            "timestamp",
            "event_id",
        ]
    ).to_pydict()
    for i, rid in enumerate(cols["request_id"]):
        if rid is None or rid not in shown:
            continue
        item, pos = cols["item_id"][i], cols["position"][i]
        if pos is None and item in shown[rid].hit_ids:
            pos = shown[rid].hit_ids.index(item)
        attrs: dict[str, object] = {"object": {"object_id": item, "object_id_field": "item_id"}}
        if pos is not None:
            attrs["position"] = {"ordinal": int(pos) + 1}
        yield {
            "application": APPLICATION,
            "action_name": cols["type"][i],
            "query_id": rid,
            "client_id": cols["user_id"][i] or "anonymous",
            "user_id": cols["user_id"][i],
            "session_id": cols["session_id"][i],
            "timestamp": cols["timestamp"][i].isoformat(),
            "message_type": "INFO",
            "message": f"{cols['type'][i]} {item} ({cols['event_id'][i]})",
            "event_attributes": attrs,
        }


def write_jsonl(rows: Iterable[dict[str, object]], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
