"""Search analytics and the UBI export on a small hand-written log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analytics.search_log import LoggedSearch, SearchLog
from analytics.search_report import build_search_report
from analytics.ubi import ubi_events, ubi_queries, write_jsonl
from data.event_table import events_to_table
from data.models import Event
from stores.factory import open_stores

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)


def _search(
    rid: str, query: str, total: int, hits: tuple[str, ...], day: int = 0, user: str = "u1"
) -> LoggedSearch:
    return LoggedSearch(rid, T0 + timedelta(days=day), user, query, total, False, hits)


def _event(
    eid: str,
    typ: str,
    item: str,
    rid: str | None,
    position: int | None = None,
    value: float | None = None,
) -> Event:
    return Event.model_validate(
        {
            "event_id": eid,
            "user_id": "u1",
            "item_id": item,
            "type": typ,
            "timestamp": (T0 + timedelta(minutes=5)).isoformat(),
            "value": value,
            "context": {"request_id": rid, "position": position},
        }
    )


SEARCHES = [
    _search("r1", "連衣裙", 30, ("a", "b", "c")),
    _search("r2", "连衣裙", 30, ("a", "b", "c")),  # same query in simplified script
    _search("r3", "連衣裙", 30, ("b", "a", "c"), day=1),
    _search("r4", "zzz", 0, (), day=1),
    _search("r5", "zzz", 0, (), day=1),
    _search("r6", "tent", 4, ("t1", "t2")),
]
EVENTS = events_to_table(
    [
        _event("e1", "click", "b", "r1"),  # no position sent: 2nd of the shown ids
        _event("e2", "click", "c", "r1", position=2),  # position sent (0-based): 3rd
        _event("e3", "purchase", "c", "r1", value=990.0),
        _event("e4", "click", "a", "r3"),
        _event("e5", "click", "x", "elsewhere"),  # not a logged search: ignored
        _event("e6", "click", "t1", None),
    ]
)


def test_queries_group_by_normalized_text_and_attribute_events() -> None:
    r = build_search_report(SEARCHES, EVENTS, limit=10, min_searches=2)
    by = {q.query: q for q in r.queries}
    dress = by["连衣裙"]
    assert (dress.searches, dress.clicks, dress.searches_clicked) == (3, 3, 2)
    assert dress.ctr == round(2 / 3, 4)
    assert dress.avg_click_position == round((2 + 3 + 2) / 3, 2)  # r3 showed a second
    assert (dress.purchases, dress.revenue, dress.conversion) == (1, 990.0, round(1 / 3, 4))
    assert [q.query for q in r.top] == ["连衣裙", "zzz", "tent"]
    assert [(q.query, q.zero_results) for q in r.no_results] == [("zzz", 2)]
    assert [q.query for q in r.low_ctr] == ["zzz", "连衣裙"]  # tent: fewer than 2 searches
    assert r.overall.searches == 6 and r.overall.clicks == 3 and r.overall.zero_results == 2
    assert [(d.isoformat(), s.searches) for d, s in r.days] == [
        ("2026-11-01", 3),
        ("2026-11-02", 3),
    ]
    assert json.dumps(r.as_dict(), ensure_ascii=False)  # the API's JSON


def test_search_log_round_trip_and_erasure(tmp_path: Path) -> None:
    stores = open_stores(None, None, tmp_path)
    log = SearchLog(stores.searches)
    for s in SEARCHES:
        log.record(
            request_id=s.request_id,
            at=s.at,
            user_id=s.user_id,
            query=s.query,
            total=s.total,
            relaxed=s.relaxed,
            hit_ids=s.hit_ids,
        )
    got = list(log.between(T0 + timedelta(hours=12), None))
    assert [s.request_id for s in got] == ["r3", "r4", "r5"]
    assert log.forget_user("u1") == 6
    assert all(s.user_id is None and s.query == "" for s in log.between())
    log.close()
    stores.close()


def test_ubi_export_links_events_to_queries(tmp_path: Path) -> None:
    queries = list(ubi_queries(SEARCHES))
    assert queries[0]["query_id"] == "r1" and queries[0]["query_response_hit_ids"] == [
        "a",
        "b",
        "c",
    ]
    assert queries[3]["query_response_hit_ids"] == []  # no results
    events = list(ubi_events(SEARCHES, EVENTS))
    assert [e["query_id"] for e in events] == ["r1", "r1", "r1", "r3"]
    assert events[0]["action_name"] == "click"
    assert events[0]["event_attributes"] == {
        "object": {"object_id": "b", "object_id_field": "item_id"},
        "position": {"ordinal": 2},
    }
    assert events[1]["event_attributes"]["position"] == {"ordinal": 3}
    n = write_jsonl(events, tmp_path / "ubi_events.jsonl")
    lines = (tmp_path / "ubi_events.jsonl").read_text(encoding="utf-8").splitlines()
    assert n == len(lines) == 4 and json.loads(lines[2])["action_name"] == "purchase"
