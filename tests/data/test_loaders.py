"""Loaders: every format, malformed rows reported with line and reason, the rest loaded."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data.errors import LoaderError
from data.loaders import (
    RejectedRowsError,
    iter_events,
    load_events,
    load_items,
    load_users,
    read_events_table,
)

ITEMS_JSONL = (
    "\n".join(
        [
            json.dumps(
                {
                    "item_id": "i1",
                    "title": "紅色連衣裙 Red Dress - Lumière",
                    "price": 1190,
                    "category": ["服裝", "女裝", "連衣裙"],
                    "attributes": {"colour": "red"},
                },
                ensure_ascii=False,
            ),
            "{not json",
            json.dumps({"item_id": "i2", "title": "Black Phone", "price": -5}),
            "",
            "[1, 2]",
            json.dumps(
                {"item_id": "i3", "title": "黑色手機 Black Phone", "price": 15900, "stock": 3},
                ensure_ascii=False,
            ),
            json.dumps({"item_id": "bad id", "title": "x", "price": 1}),
        ]
    )
    + "\n"
)


def test_jsonl_items_bad_rows_reported_with_line_and_reason(tmp_path: Path) -> None:
    src = tmp_path / "items.jsonl"
    src.write_text(ITEMS_JSONL, encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    res = load_items(src, rejects_path=rejects)
    assert [i.item_id for i in res.records] == ["i1", "i3"]
    assert res.records[0].category == ("服裝", "女裝", "連衣裙")
    assert [(r.line, r.file) for r in res.rejects] == [
        (2, str(src)),
        (3, str(src)),
        (5, str(src)),
        (7, str(src)),
    ]
    reasons = [r.reason for r in res.rejects]
    assert "invalid JSON" in reasons[0]
    assert reasons[1].startswith("price:")
    assert "JSON object" in reasons[2]
    assert reasons[3].startswith("item_id:")
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [w["line"] for w in written] == [2, 3, 5, 7]
    assert written[0]["raw"] == "{not json" and set(written[0]) == {"file", "line", "reason", "raw"}


def test_strict_raises_after_writing_rejects(tmp_path: Path) -> None:
    src = tmp_path / "items.jsonl"
    src.write_text(ITEMS_JSONL, encoding="utf-8")
    rejects = tmp_path / "r.jsonl"
    with pytest.raises(RejectedRowsError, match=r"4 bad row.*line 2"):
        load_items(src, rejects_path=rejects, strict=True)
    assert len(rejects.read_text().splitlines()) == 4
    ok = tmp_path / "ok.jsonl"
    ok.write_text(ITEMS_JSONL.splitlines()[0] + "\n", encoding="utf-8")
    assert load_items(ok, strict=True).loaded == 1


def test_csv_items_with_path_tags_and_attribute_columns(tmp_path: Path) -> None:
    src = tmp_path / "items.csv"
    src.write_text(
        "item_id,title,price,category,tags,attributes.colour,attributes_size,stock,is_active\n"
        "i1,紅色連衣裙 Red Dress,1190,服裝 > 女裝 > 連衣裙,新品|熱銷,red,M,5,true\n"
        'i2,"Dress, long",abc,服裝,,,,1,true\n'
        "i3,Too,1,2,3\n"
        "i4,Sneaker,2490,鞋靴 > 運動鞋,,black,,0,false\n",
        encoding="utf-8",
    )
    res = load_items(src)
    assert [i.item_id for i in res.records] == ["i1", "i4"]
    i1 = res.records[0]
    assert i1.category == ("服裝", "女裝", "連衣裙") and i1.tags == ("新品", "熱銷")
    assert i1.attributes == {"colour": "red", "size": "M"} and i1.stock == 5
    assert res.records[1].is_active is False and res.records[1].brand is None
    assert [(r.line, r.reason.split(":")[0]) for r in res.rejects] == [
        (3, "price"),
        (4, "has 5 fields, the header has 9"),
    ]


def test_csv_events_context_columns_both_spellings(tmp_path: Path) -> None:
    src = tmp_path / "events.csv"
    src.write_text(
        "event_id,user_id,item_id,type,timestamp,value,context.query,context_position,context.session_id\n"
        "e1,u1,,search,2026-01-02T03:04:05Z,,紅色 連衣裙,,s1\n"
        "e2,u1,i1,click,2026-01-02T03:04:09+08:00,,紅色 連衣裙,3,s1\n"
        "e3,u1,i1,rate,2026-01-02T03:05:00Z,9,,,s1\n"
        "e4,u1,,view,2026-01-02T03:05:00Z,,,,s1\n",
        encoding="utf-8",
    )
    res = load_events(src)
    assert [e.event_id for e in res.records] == ["e1", "e2"]
    e1, e2 = res.records
    assert (
        e1.context.query == "紅色 連衣裙" and e1.item_id is None and e1.context.session_id == "s1"
    )
    assert e2.context.position == 3 and e2.timestamp == datetime(2026, 1, 1, 19, 4, 9, tzinfo=UTC)
    assert [(r.line, r.reason) for r in res.rejects] == [
        (4, "(row): value must be a rating between 0 and 5 for a rate event"),
        (5, "(row): item_id is required for a view event"),
    ]
    table = read_events_table(src)
    assert table.column("event_id").to_pylist() == ["e1", "e2"]
    assert table.column("query").to_pylist() == ["紅色 連衣裙"] * 2
    assert table.column("position").to_pylist() == [None, 3]


def test_parquet_items_users_events(tmp_path: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "user_id": ["u1", "", "u3"],
                "consent": [True, True, False],
                "attributes.tier": ["gold", "x", None],
            }
        ),
        tmp_path / "users.parquet",
    )
    res = load_users(tmp_path / "users.parquet")
    assert [u.user_id for u in res.records] == ["u1", "u3"]
    assert res.records[0].attributes == {"tier": "gold"} and res.records[1].consent is False
    assert [r.line for r in res.rejects] == [2] and "user_id" in res.rejects[0].reason

    pq.write_table(
        pa.table({"item_id": ["i1", "i2"], "title": ["A", "B"], "price": [1.0, None]}),
        tmp_path / "items.parquet",
    )
    res = load_items(tmp_path / "items.parquet")
    assert [i.item_id for i in res.records] == ["i1"] and res.rejects[0].line == 2

    ts = pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("ms", tz="UTC"))
    pq.write_table(
        pa.table(
            {
                "event_id": ["e1", "e2", "e3"],
                "user_id": ["u1", "u1", "u2"],
                "item_id": ["i1", None, "i2"],
                "type": ["view", "view", "purchase"],
                "timestamp": ts,
                "value": [None, None, 99.0],
                "context": [
                    {"session_id": "s1", "position": 0},
                    None,
                    {"session_id": "s2", "position": None},
                ],
            }
        ),
        tmp_path / "events.parquet",
    )
    res = load_events(tmp_path / "events.parquet")
    assert [e.event_id for e in res.records] == ["e1", "e3"] and res.rejects[0].line == 2
    assert res.records[0].context.session_id == "s1"
    t = read_events_table(tmp_path / "events.parquet")
    assert t.column("event_id").to_pylist() == ["e1", "e3"]
    assert t.column("session_id").to_pylist() == ["s1", "s2"]
    assert t.column("timestamp").to_pylist()[0] == datetime(2026, 1, 1, tzinfo=UTC)


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="no such file"):
        load_items(tmp_path / "nope.jsonl")
    (tmp_path / "items.xlsx").write_text("x")
    with pytest.raises(LoaderError, match="unknown file type"):
        load_items(tmp_path / "items.xlsx")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(LoaderError, match="Parquet"):
        read_events_table(tmp_path / "broken.parquet")


def test_read_events_table_jsonl_drops_invalid_and_torn_rows(tmp_path: Path, caplog) -> None:
    rows = [
        {
            "event_id": "e1",
            "user_id": "u1",
            "item_id": "i1",
            "type": "view",
            "timestamp": "2026-01-02T00:00:00Z",
        },
        {
            "event_id": "e2",
            "user_id": "u1",
            "item_id": "i1",
            "type": "teleport",
            "timestamp": "2026-01-02T00:00:00Z",
        },
        {
            "event_id": "e3",
            "user_id": "u1",
            "type": "search",
            "timestamp": "2026-01-02 08:00:00",
            "context": {"query": "手機"},
        },
        {"event_id": "e4", "user_id": "u1", "type": "search", "timestamp": "2026-01-02T00:00:00Z"},
        {
            "event_id": "e5",
            "user_id": "u1",
            "item_id": "i2",
            "type": "rate",
            "value": 4.5,
            "timestamp": "2026-01-03T00:00:00+08:00",
        },
    ]
    src = tmp_path / "events.ndjson"
    src.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + '{"event_id": "e6", "us',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING):
        t = read_events_table(src)
    assert t.column("event_id").to_pylist() == ["e1", "e3", "e5"]
    assert t.column("timestamp").to_pylist()[1] == datetime(2026, 1, 2, 8, tzinfo=UTC)
    assert t.column("timestamp").to_pylist()[2] == datetime(2026, 1, 2, 16, tzinfo=UTC)
    assert "torn" in caplog.text and "dropped 2 unusable" in caplog.text
    from data.quarantine import QUARANTINE_FILE, read_quarantine

    held = {q.record: q.reason for q in read_quarantine(tmp_path / QUARANTINE_FILE)}
    assert held == {2: "type: unknown event type",
                    4: "item_id / context.query: missing for the event type"}
    since = read_events_table(src, since=datetime(2026, 1, 2, 1, tzinfo=UTC))
    assert since.column("event_id").to_pylist() == ["e3", "e5"]
    # the row-by-row path sees the same rows, with reasons
    bad = []
    good = [e.event_id for e in iter_events(src, on_reject=bad.append)]
    assert good == ["e1", "e3", "e5"] and [r.line for r in bad] == [2, 4, 6]


def test_read_events_table_from_several_files_and_formats(tmp_path: Path, small_shop) -> None:
    shop, summary = small_shop
    t = read_events_table([shop / "events.parquet", shop / "events.jsonl"])
    assert t.num_rows == 2 * summary.n_events
    half = t.num_rows // 2
    assert t.slice(0, half).equals(t.slice(half))


def test_read_events_table_selected_columns(small_shop) -> None:
    shop, summary = small_shop
    cols = ["user_id", "item_id", "type", "timestamp"]
    for f in ("events.parquet", "events.jsonl"):
        t = read_events_table(shop / f, columns=cols)
        assert t.column_names == cols and t.num_rows == summary.n_events
    full = read_events_table(shop / "events.parquet")
    assert read_events_table(shop / "events.parquet", columns=cols).equals(full.select(cols))
    with pytest.raises(ValueError, match="unknown event column"):
        read_events_table(shop / "events.parquet", columns=["user", "item"])
