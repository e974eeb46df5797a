"""Embedded store files opened by several processes at once (replicas and schedulers start
together on a fresh home)."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
from pathlib import Path

from core.memory import SQLITE_PAGE_CACHE_KIB, small_page_cache, sqlite_heap_bytes
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


def test_every_store_file_keeps_a_small_page_cache(tmp_path: Path) -> None:
    from stores.sqlite.db import SqliteDb

    log = open_log_db(tmp_path / "logs.sqlite", timeout=5.0)
    plain = SqliteDb(tmp_path / "stores.sqlite", (), timeout=5.0)
    try:
        for db in (log, plain):
            assert db.conn.execute("PRAGMA cache_size").fetchone()[0] == -SQLITE_PAGE_CACHE_KIB
    finally:
        log.close()
        plain.close()


def _heap_after_random_reads(path: Path, cache_kib: int | None) -> int:
    """SQLite's heap growth in this process after 4,000 random point reads of ``path``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if cache_kib is not None:
            small_page_cache(conn, cache_kib)
        before = sqlite_heap_bytes()
        rng = random.Random(7)
        for _ in range(4000):
            key = f"k{rng.randrange(40_000)}"
            conn.execute("SELECT body FROM t WHERE k = ?", (key,)).fetchone()
        after = sqlite_heap_bytes()
    finally:
        conn.close()
    assert before is not None and after is not None
    return after - before


def test_random_reads_of_a_large_file_stay_within_the_page_cache(tmp_path: Path) -> None:
    # a worker reads users and shoppers at random: its heap must stop at the bound, not fill
    # SQLite's default 2,000 KiB per file
    path = tmp_path / "big.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)",
                         ((f"k{i}", "x" * 200) for i in range(40_000)))  # ≈ 10 MB
    default = _heap_after_random_reads(path, None)
    bounded = _heap_after_random_reads(path, SQLITE_PAGE_CACHE_KIB)
    assert default > 1_500_000  # the default cache fills far past the bound
    assert bounded < (SQLITE_PAGE_CACHE_KIB + 256) * 1024
