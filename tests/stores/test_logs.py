"""Contract of LogStore (the search log and the ranker's served lists), embedded SQLite and
PostgreSQL: every process's rows in one place, time order, replace by request id, erasure,
retention."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from stores.records import LogRow
from tests.stores.conftest import NOW, Backend


def _row(rid: str, minutes: int, user: str | None = "u1", **body: object) -> LogRow:
    return LogRow(rid, NOW + timedelta(minutes=minutes), user,
                  {"query": f"q {rid}", "total": minutes, **body})


def test_rows_in_time_order_and_replaced_by_request_id(backend: Backend) -> None:
    for log in (backend.open().searches, backend.open().served):
        log.record([_row("b", 2), _row("a", 1), _row("c", 3, hit_ids=["x", "y"])])
        log.record([_row("b", 2, total=99)])  # the same request again: replaced
        got = list(log.read())
        assert [r.request_id for r in got] == ["a", "b", "c"] and log.count() == 3
        assert got[1].body["total"] == 99 and got[2].body["hit_ids"] == ["x", "y"]
        assert got[0].at == NOW + timedelta(minutes=1)
        window = list(log.read(NOW + timedelta(minutes=2), NOW + timedelta(minutes=3)))
        assert [r.request_id for r in window] == ["b"]


def test_another_process_reads_what_one_wrote(backend: Backend) -> None:
    backend.open().searches.record([_row("r1", 1, user="u9")])
    other = backend.open().searches  # its own connection, as another replica has
    assert [(r.request_id, r.user_id) for r in other.read()] == [("r1", "u9")]


def test_an_erasure_keeps_the_rows_without_user_and_query(backend: Backend) -> None:
    log = backend.open().searches
    log.record([_row("r1", 1), _row("r2", 2), _row("r3", 3, user="u2")])
    assert log.forget_user("u1") == 2
    got = {r.request_id: r for r in log.read()}
    assert got["r1"].user_id is None and "query" not in got["r1"].body
    assert got["r1"].body["total"] == 1  # the rest of the row stays, for the counts
    assert got["r3"].user_id == "u2" and got["r3"].body["query"] == "q r3"


def test_retention_drops_old_rows(backend: Backend) -> None:
    log = backend.open().served
    log.record([_row("old", -60 * 24 * 40), _row("new", 0)])  # 40 days before NOW
    assert log.prune(NOW) == 1  # served lists are kept 30 days
    assert [r.request_id for r in log.read()] == ["new"]


def test_a_body_round_trips_unchanged(backend: Backend) -> None:
    # a served list's body holds its items as one pre-encoded JSON text (data.served_log)
    inner = '{"ids":["i\\"1","咖啡 \\\\ x"],"keys":["cf"],"values":[[0.5,null]]}'
    body = {"surface": "feed", "variant": None, "ranker": None, "query": "連衣裙 \"red\"",
            "columns_json": inner, "nested": {"a": [1, 2.5, None, True]}}
    log = backend.open().served
    log.record([LogRow("r1", NOW, "u1", body)])
    (got,) = backend.open().served.read()
    assert got.body == body and got.body["columns_json"] == inner


def test_a_body_with_a_number_for_a_key_reads_back_with_its_text(backend: Backend) -> None:
    # JSON keys are text: the key 7 reads back as "7", as the standard encoder writes it
    log = backend.open().searches
    log.record([LogRow("r1", NOW, "u1", {7: "seven", "big": 2**70})])
    (got,) = backend.open().searches.read()
    assert got.body == {"7": "seven", "big": 2**70}


def test_a_large_batch_keeps_the_last_row_of_each_request(backend: Backend) -> None:
    log = backend.open().served
    rows = [_row(f"r{n % 700:03d}", n % 50, total=n) for n in range(1400)]  # 700 ids twice
    log.record(rows)
    got = {r.request_id: r.body["total"] for r in log.read()}
    assert len(got) == 700 and log.count() == 700
    assert got["r000"] == 700 and got["r699"] == 1399


ODD = ['a"b', "c\\d", "\\u0000", "連衣裙 🙂", "\u2028", "NULL", "e\tf\n", "{[,]}"]


def test_rows_encoded_by_the_appending_thread_round_trip(backend: Backend) -> None:
    # a request encodes its row (LogStore.encode) and the log's thread writes the batch
    import threading

    from stores.log_writer import BufferedLog

    store = backend.open().served
    threads: set[int] = set()
    encode = store.encode

    def spy(row: LogRow) -> object:
        threads.add(threading.get_ident())
        return encode(row)

    store.encode = spy  # type: ignore[method-assign]
    log = BufferedLog(store, name="t", flush_seconds=3600)
    rows = [LogRow(f"r{k}{text}", NOW + timedelta(minutes=k), text, {"query": text, "n": k})
            for k, text in enumerate(ODD)]
    rows.append(LogRow("r0" + ODD[0], NOW, None, {"query": "again", "n": None}))  # replaces
    for r in rows:
        log.append(r)
    assert threads == {threading.get_ident()}
    got = {r.request_id: r for r in log.read()}  # reading flushes first
    assert len(got) == len(ODD)
    for r in rows[1:]:
        assert (got[r.request_id].user_id, dict(got[r.request_id].body)) == (
            r.user_id, dict(r.body))
    log.close()


def test_an_embedded_batch_is_one_insert_and_a_nul_still_round_trips(tmp_path: Path) -> None:
    # the writing thread makes one call for a batch (SQLite reads it with json_each); SQLite's
    # JSON reader would cut a string at a NUL, so such a batch is written row by row
    from stores.sqlite.logs import SqliteLog, open_log_db

    db = open_log_db(tmp_path / "logs.sqlite", timeout=5)
    log = SqliteLog(db, "served", keep_days=30)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    log.record([_row(f"r{n}", n) for n in range(300)])
    assert sum("INSERT" in s for s in statements) == 1 and log.count() == 300
    statements.clear()
    log.record([_row("nul", 1, user="a\x00b", note="x\x00y"), _row("plain", 2)])
    got = {r.request_id: r for r in log.read()}
    assert got["nul"].user_id == "a\x00b" and got["nul"].body["note"] == "x\x00y"
    assert got["plain"].body["total"] == 2
    db.close()
