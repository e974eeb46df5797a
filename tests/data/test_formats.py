"""MovieLens and RetailRocket adapters on small files in their exact layouts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.errors import LoaderError
from data.formats import load_adapter
from data.formats.movielens import iter_movielens
from data.formats.retailrocket import iter_retailrocket
from data.loaders import RejectedRowsError


def test_movielens_u_data_tab_separated(tmp_path: Path) -> None:
    src = tmp_path / "u.data"
    src.write_text(
        "196\t242\t3\t881250949\n"
        "186\t302\t3\t891717742\n"
        "22\t377\tone\t878887116\n"
        "244\t51\t2\n"
        "\n"
        "166\t346\t1\t886397596\n"
        "298\t474\t7\t884182806\n"
    )
    res = load_adapter("movielens", src, rejects_path=tmp_path / "rej.jsonl")
    assert [(e.user_id, e.item_id, e.value) for e in res.records] == [
        ("196", "242", 3.0),
        ("186", "302", 3.0),
        ("166", "346", 1.0),
    ]
    e = res.records[0]
    assert e.type == "rate" and e.timestamp == datetime.fromtimestamp(881250949, UTC)
    assert e.event_id == "ml-196-242-881250949"
    assert [(r.line, r.reason) for r in res.rejects] == [
        (3, "rating 'one' is not a number"),
        (4, "expected 4 fields (user item rating timestamp), found 3"),
        (7, "(row): value must be a rating between 0 and 5 for a rate event"),
    ]
    assert len((tmp_path / "rej.jsonl").read_text().splitlines()) == 3
    # deterministic ids: a second read gives the same events
    assert [x.event_id for x in iter_movielens(src, on_reject=lambda r: None)] == [
        x.event_id for x in res.records
    ]


def test_movielens_ratings_csv_with_header_and_dat(tmp_path: Path) -> None:
    src = tmp_path / "ratings.csv"
    src.write_text(
        "userId,movieId,rating,timestamp\n1,307,3.5,1256677221\n1,481,3.5,1256677456\n"
        "1,1091,x,1256677471\n1,1257,4.5,12566774xx\n"
    )
    res = load_adapter("movielens", src)
    assert [(e.item_id, e.value) for e in res.records] == [("307", 3.5), ("481", 3.5)]
    assert [r.line for r in res.rejects] == [4, 5]
    assert "timestamp" in res.rejects[1].reason
    with pytest.raises(RejectedRowsError, match="2 bad line"):
        load_adapter("movielens", src, strict=True)
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    assert [e.event_id for e in load_adapter("movielens", dat).records] == [
        "ml-1-1193-978300760",
        "ml-1-661-978302109",
    ]
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("userId,itemId,score\n1,2,3\n")
    with pytest.raises(LoaderError, match="header"):
        load_adapter("movielens", bad_header)


def test_retailrocket_events_csv(tmp_path: Path) -> None:
    src = tmp_path / "events.csv"
    src.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,356475,4000\n"
        "1433221999827,111016,purchase,356475,\n"
        "abc,1,view,2,\n"
        "1433221999827,111016,transaction,356475,\n"
        "1433221999827,111016,view\n"
        "1433222276276,483717,view,,\n"
    )
    bad = []
    events = list(iter_retailrocket(src, on_reject=bad.append))
    assert [(e.user_id, e.item_id, e.type) for e in events] == [
        ("257597", "355908", "view"),
        ("992329", "248676", "add_to_cart"),
        ("111016", "356475", "purchase"),
    ]
    assert events[0].timestamp == datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)
    assert events[2].event_id == "rr-111016-356475-transaction-1433221999827-4000"
    assert [r.line for r in bad] == [5, 6, 7, 8, 9]
    reasons = [r.reason for r in bad]
    assert "'purchase' is not one of view, addtocart, transaction" in reasons[0]
    assert "milliseconds" in reasons[1] and "transactionid" in reasons[2]
    assert "found 3" in reasons[3] and reasons[4].startswith("item_id")


def test_retailrocket_needs_its_header(tmp_path: Path) -> None:
    src = tmp_path / "events.csv"
    src.write_text("ts,visitor,event\n1,2,view\n")
    with pytest.raises(LoaderError, match="timestamp,visitorid,event,itemid,transactionid"):
        load_adapter("retailrocket", src)
    with pytest.raises(LoaderError, match="no such file"):
        load_adapter("retailrocket", tmp_path / "missing.csv")
    with pytest.raises(LoaderError, match="unknown format"):
        load_adapter("lastfm", src)
