"""The data commands of the `shoprank` CLI, run as a user runs them (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shoprank(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPRANK_HOME": str(home), "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_generate_prints_summary_into_data_dir(tmp_path: Path) -> None:
    r = shoprank(
        tmp_path,
        "generate",
        "--users",
        "200",
        "--items",
        "200",
        "--events",
        "5000",
        "--seed",
        "3",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    data = tmp_path / "data"
    assert {"items.jsonl", "users.jsonl", "events.parquet", "events.jsonl", "truth.json"} <= {
        p.name for p in data.iterdir()
    }
    assert "purchase/add_to_cart" in r.stdout and "42/42" in r.stdout and "impression" in r.stdout
    bad = shoprank(tmp_path, "generate", "--start", "yesterday")
    assert bad.returncode == 2 and "--start" in bad.stderr and "Traceback" not in bad.stderr


def test_load_items_users_merge_and_rejects(tmp_path: Path) -> None:
    src = tmp_path / "items.jsonl"
    src.write_text(
        '{"item_id":"i1","title":"紅色連衣裙 Red Dress","price":1190}\n{bad\n'
        '{"item_id":"i2","title":"B","price":-1}\n',
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.jsonl"
    r = shoprank(tmp_path, "load", "items", str(src), "--rejects", str(rejects))
    assert r.returncode == 0, r.stderr
    assert f"{src}:2: invalid JSON" in r.stderr and f"{src}:3: price" in r.stderr
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == [2, 3]
    strict = shoprank(tmp_path, "load", "items", str(src), "--strict")
    assert strict.returncode == 2 and "2 bad row(s)" in strict.stderr
    update = tmp_path / "more.csv"
    update.write_text(
        "item_id,title,price\ni1,紅色連衣裙 Red Dress,990\ni3,黑色手機 Black Phone,15900\n",
        encoding="utf-8",
    )
    assert shoprank(tmp_path, "load", "items", str(update), "--strict").returncode == 0
    stored = {
        json.loads(x)["item_id"]: json.loads(x)
        for x in (tmp_path / "data" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert set(stored) == {"i1", "i3"} and stored["i1"]["price"] == 990
    users = tmp_path / "users.csv"
    users.write_text("user_id,consent,attributes.tier\nu1,true,gold\nu2,maybe,\n")
    r = shoprank(tmp_path, "load", "users", str(users))
    assert r.returncode == 0 and f"{users}:3: consent" in r.stderr
    missing = shoprank(tmp_path, "load", "users", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert shoprank(tmp_path, "load", "things", str(users)).returncode == 2


def test_load_events_into_the_log_is_idempotent(tmp_path: Path) -> None:
    src = tmp_path / "events.csv"
    src.write_text(
        "event_id,user_id,item_id,type,timestamp,context.query\n"
        "e1,u1,i1,view,2026-11-23T10:00:00Z,\n"
        "e2,u1,,search,2026-11-24T10:00:00Z,手機\n"
        "e3,u1,,view,2026-11-24T10:00:00Z,\n"
    )
    r = shoprank(tmp_path, "load", "events", str(src))
    assert r.returncode == 0, r.stderr
    assert f"{src}:4: (row): item_id is required" in r.stderr
    again = shoprank(tmp_path, "load", "events", str(src))
    assert again.returncode == 0
    from data.eventlog import EventLog

    with EventLog(tmp_path / "events") as log:
        assert sorted(e.event_id for e in log.iter_events()) == ["e1", "e2"]
    strict = shoprank(tmp_path, "load", "events", str(src), "--strict")
    assert strict.returncode == 2 and "nothing loaded" in strict.stderr


def test_import_movielens_and_retailrocket(tmp_path: Path) -> None:
    u = tmp_path / "u.data"
    u.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\nbroken\n")
    r = shoprank(tmp_path, "import", "movielens", str(u), "--out", str(tmp_path / "ml"))
    assert r.returncode == 0, r.stderr
    from data.loaders import read_events_table

    t = read_events_table(tmp_path / "ml" / "events.parquet")
    assert t.column("event_id").to_pylist() == ["ml-196-242-881250949", "ml-186-302-891717742"]
    assert t.column("type").to_pylist() == ["rate", "rate"] and t.column("value").to_pylist() == [
        3.0,
        3.0,
    ]
    assert json.loads((tmp_path / "ml" / "import_rejects.jsonl").read_text())["line"] == 3
    rr = tmp_path / "events.csv"
    rr.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,257597,view,355908,\n"
    )
    r = shoprank(tmp_path, "import", "retailrocket", str(rr))
    assert r.returncode == 0, r.stderr
    assert read_events_table(tmp_path / "data" / "retailrocket" / "events.parquet").num_rows == 1
    bad = shoprank(tmp_path, "import", "lastfm", str(rr))
    assert bad.returncode == 2 and "movielens" in bad.stderr
