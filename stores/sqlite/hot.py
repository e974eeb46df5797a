"""Embedded hot state: shopper state (``shopper.sqlite``) and feed pages (``feed_pages.sqlite``).

Both are SQLite files shared by the processes of one machine. Shopper state is
``synchronous=NORMAL`` (a power cut may lose the last moments; the events store holds the
truth), feed pages ``synchronous=OFF`` (a lost page only re-ranks).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from data.models import Event
from stores.records import ShopperPolicy, ShopperProfile, log_add
from stores.sqlite.db import Migration, SqliteDb

SHOPPER_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "history, purchases, live counts",
        """
        CREATE TABLE IF NOT EXISTS history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
            type TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS history_user ON history (user_id, seq);
        CREATE TABLE IF NOT EXISTS purchases (
            user_id TEXT NOT NULL, item_id TEXT NOT NULL, PRIMARY KEY (user_id, item_id));
        CREATE TABLE IF NOT EXISTS seen (user_id TEXT PRIMARY KEY, at REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
        CREATE TABLE IF NOT EXISTS live (item_id TEXT PRIMARY KEY, score REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS live_score ON live (score)
        """,
    ),
)

FEED_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "feed pages",
        """
        CREATE TABLE IF NOT EXISTS feed (
            key TEXT PRIMARY KEY, user_id TEXT, created REAL NOT NULL, body BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS feed_created ON feed (created);
        CREATE INDEX IF NOT EXISTS feed_user ON feed (user_id)
        """,
    ),
)

_PRUNE_EVERY = 256
"""Writes between two prunes (idle users, surplus live items, expired pages)."""


def live_score(policy: ShopperPolicy, etype: str, ts: float, now: float) -> float | None:
    """The logarithm of an event's weight decayed to absolute time (None: not counted)."""
    w = policy.live_weights.get(etype)
    if not w or w <= 0:
        return None
    return math.log(w) + policy.rate * min(ts, now)


class SqliteShopperState:
    def __init__(self, path: Path, policy: ShopperPolicy, *, timeout: float) -> None:
        self.policy = policy
        self._db = SqliteDb(path, SHOPPER_MIGRATIONS, timeout=timeout, synchronous="NORMAL")
        self._db.conn.create_function("log_add", 2, log_add, deterministic=True)
        self._writes = 0

    def record(self, events: Sequence[Event], *, live: bool = True) -> None:
        p = self.policy
        now = time.time()
        history: list[tuple[str, str, str]] = []
        counts: list[tuple[str, float]] = []
        users: set[str] = set()
        for e in events:
            if e.item_id is None:
                continue
            users.add(e.user_id)
            if e.type in p.history_types:
                history.append((e.user_id, e.item_id, e.type))
            s = live_score(p, e.type, e.timestamp.timestamp(), now) if live else None
            if s is not None:
                counts.append((e.item_id, s))
        if not users:
            return
        with self._db.tx() as db:
            db.executemany("INSERT INTO history (user_id, item_id, type) VALUES (?, ?, ?)", history)
            # purchases and refunds in event order: apply them one by one
            for e in events:
                if e.item_id is not None and e.type == "purchase":
                    db.execute(
                        "INSERT OR IGNORE INTO purchases VALUES (?, ?)", (e.user_id, e.item_id)
                    )
                elif e.item_id is not None and e.type == "refund":
                    db.execute(
                        "DELETE FROM purchases WHERE user_id = ? AND item_id = ?",
                        (e.user_id, e.item_id),
                    )
            db.executemany(
                "INSERT INTO live VALUES (?, ?) ON CONFLICT (item_id) DO UPDATE "
                "SET score = log_add(score, excluded.score)",
                counts,
            )
            touched = list({h[0] for h in history})
            for i in range(0, len(touched), 500):  # one statement per 500 users, not per user
                chunk = touched[i : i + 500]
                db.execute(
                    "DELETE FROM history WHERE seq IN (SELECT seq FROM (SELECT seq, "
                    "row_number() OVER (PARTITION BY user_id ORDER BY seq DESC) AS k "
                    f"FROM history WHERE user_id IN ({','.join('?' * len(chunk))})) "
                    "WHERE k > ?)",
                    (*chunk, p.history_size),
                )
            db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?)", [(u, now) for u in users])
            self._writes += 1
            if self._writes % _PRUNE_EVERY == 0:
                self._prune(db, now)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        cutoff = now - self.policy.idle_days * 86400.0
        idle = "SELECT user_id FROM seen WHERE at < ?"
        db.execute(f"DELETE FROM history WHERE user_id IN ({idle})", (cutoff,))
        db.execute(f"DELETE FROM purchases WHERE user_id IN ({idle})", (cutoff,))
        db.execute("DELETE FROM seen WHERE at < ?", (cutoff,))
        n = int(db.execute("SELECT count(*) FROM live").fetchone()[0])
        if n > self.policy.live_max_items:
            db.execute(
                "DELETE FROM live WHERE item_id IN (SELECT item_id FROM live ORDER BY score "
                "LIMIT ?)",
                (n - self.policy.live_max_items,),
            )

    def recent(self, user_id: str, limit: int | None = None) -> list[tuple[str, str]]:
        n = self.policy.history_size if limit is None else min(limit, self.policy.history_size)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT item_id, type FROM history WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                (user_id, n),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def purchased(self, user_id: str) -> frozenset[str]:
        with self._db.read() as db:
            rows = db.execute("SELECT item_id FROM purchases WHERE user_id = ?", (user_id,))
            return frozenset(r[0] for r in rows)

    def profile(self, user_id: str, limit: int | None = None) -> ShopperProfile:
        with self._db.read():  # one lock: both reads see the same commits
            return ShopperProfile(tuple(self.recent(user_id, limit)), self.purchased(user_id))

    def forget_user(self, user_id: str) -> None:
        with self._db.tx() as db:
            for table in ("history", "purchases", "seen"):
                db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))

    def live_top(self, n: int) -> list[tuple[str, float]]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT item_id, score FROM live ORDER BY score DESC, item_id LIMIT ?", (n,)
            ).fetchall()
        if not rows:
            return []
        top = rows[0][1]
        return [(i, math.exp(s - top)) for i, s in rows]

    def live_scores(self, item_ids: Sequence[str]) -> dict[str, float]:
        ids = list(dict.fromkeys(item_ids))
        out: dict[str, float] = {}
        with self._db.read() as db:
            top = db.execute("SELECT max(score) FROM live").fetchone()[0]
            if top is None:
                return out
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT item_id, score FROM live WHERE item_id IN ({marks})"
                out.update((r[0], math.exp(r[1] - top)) for r in db.execute(q, chunk))
        return out

    def forget_items(self, item_ids: Iterable[str]) -> None:
        with self._db.tx() as db:
            db.executemany("DELETE FROM live WHERE item_id = ?", [(i,) for i in item_ids])

    def close(self) -> None:
        self._db.close()


class SqliteFeedPages:
    def __init__(self, path: Path, *, ttl_seconds: float, max_entries: int, timeout: float) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._db = SqliteDb(path, FEED_MIGRATIONS, timeout=timeout, synchronous="OFF")
        self._writes = 0
        # the table exceeds max_entries by less than a tenth of it between two prunes
        self._prune_every = max(1, min(_PRUNE_EVERY, max_entries // 10))

    def get(self, key: str) -> bytes | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT body FROM feed WHERE key = ? AND created >= ?",
                (key, time.time() - self.ttl),
            ).fetchone()
        return bytes(row[0]) if row else None

    def put(self, key: str, body: bytes, *, user_id: str | None = None) -> bytes:
        now = time.time()
        with self._db.tx() as db:
            # write-once: replace only an expired row; RETURNING answers only when this body
            # was written, else the live row (another worker's) is read back
            written = db.execute(
                "INSERT INTO feed VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "user_id = excluded.user_id, created = excluded.created, body = excluded.body "
                "WHERE feed.created < ? RETURNING 1",
                (key, user_id, now, body, now - self.ttl),
            ).fetchone()
            stored = body if written else db.execute(
                "SELECT body FROM feed WHERE key = ?", (key,)
            ).fetchone()[0]
            self._writes += 1
            if self._writes % self._prune_every == 0:
                db.execute("DELETE FROM feed WHERE created < ?", (now - self.ttl,))
                db.execute(
                    "DELETE FROM feed WHERE created <= (SELECT created FROM feed "
                    "ORDER BY created DESC LIMIT 1 OFFSET ?)",
                    (self.max_entries,),
                )
        return bytes(stored)

    def forget_user(self, user_id: str) -> int:
        with self._db.tx() as db:
            return int(db.execute("DELETE FROM feed WHERE user_id = ?", (user_id,)).rowcount)

    def __len__(self) -> int:
        with self._db.read() as db:
            return int(db.execute("SELECT count(*) FROM feed").fetchone()[0])

    def close(self) -> None:
        self._db.close()
