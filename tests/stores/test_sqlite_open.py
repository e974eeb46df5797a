"""Embedded store files opened by several processes at once (replicas and schedulers start
together on a fresh home)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from stores.sqlite.logs import open_log_db


def _open(path: str) -> str:
    try:
        open_log_db(Path(path), timeout=5.0).close()
    except Exception as exc:  # reported to the parent, which asserts on it
        return repr(exc)
    return "ok"


def test_processes_opening_a_fresh_file_together_all_succeed(tmp_path: Path) -> None:
    # Switching a fresh file to WAL while another process switches it answers "database is
    # locked" at once (no busy wait); each open must still succeed.
    paths = [str(tmp_path / f"f{k}" / "logs.sqlite") for k in range(40)]
    with multiprocessing.get_context("fork").Pool(6) as pool:
        results = pool.map(_open, [p for p in paths for _ in range(6)], chunksize=1)
    assert [r for r in results if r != "ok"] == []
    db = open_log_db(Path(paths[0]), timeout=5.0)
    try:
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.versions()  # the migrations ran once, whoever applied them
    finally:
        db.close()


def test_log_files_keep_a_small_page_cache(tmp_path: Path) -> None:
    from stores.sqlite.db import LOG_CACHE_KIB, SqliteDb

    log = open_log_db(tmp_path / "logs.sqlite", timeout=5.0)
    plain = SqliteDb(tmp_path / "stores.sqlite", (), timeout=5.0)
    try:
        assert log.conn.execute("PRAGMA cache_size").fetchone()[0] == -LOG_CACHE_KIB
        assert plain.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000  # SQLite's own
    finally:
        log.close()
        plain.close()
