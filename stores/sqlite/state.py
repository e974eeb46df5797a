"""Embedded users, catalog, rules and experiments, and their change feed: one SQLite file.

They share ``stores.sqlite`` so a change and its row in ``changes`` commit together: a
subscriber in another process sees a change exactly when it is visible. Subscribers poll
``changes`` (every 20 ms, only while a caller waits in :meth:`SqliteSubscription.poll`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from core.memory import small_page_cache
from data.models import Item, User
from stores.errors import ConflictError, NotFoundError, StoreUnavailableError
from stores.records import CHANGE_MAX_KEYS, CatalogChange, CatalogChanges, Change, Document, Topic
from stores.sqlite.db import Migration, SqliteDb

log = logging.getLogger(__name__)

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "users, catalog, documents, changes",
        """
        CREATE TABLE IF NOT EXISTS users (
            user_id TEXT PRIMARY KEY, consent INTEGER NOT NULL, body TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS erasures (user_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS catalog_items (
            item_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, item TEXT);
        CREATE INDEX IF NOT EXISTS catalog_items_seq ON catalog_items (seq);
        CREATE TABLE IF NOT EXISTS catalog_head (id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL);
        INSERT OR IGNORE INTO catalog_head (id, seq) VALUES (1, 0);
        CREATE TABLE IF NOT EXISTS documents (
            kind TEXT NOT NULL, doc_id TEXT NOT NULL, grp TEXT NOT NULL, body TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (kind, doc_id));
        CREATE TABLE IF NOT EXISTS revisions (kind TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, keys TEXT,
            cursor INTEGER, at REAL NOT NULL)
        """,
    ),
)

KEEP_CHANGES_SECONDS = 3600.0
POLL_SECONDS = 0.02
ITER_PAGE = 2000
"""Catalog items read per statement by :meth:`SqliteCatalog.iter_items`."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _publish(
    db: sqlite3.Connection, topic: Topic, keys: Sequence[str], cursor: int | None = None
) -> None:
    """Record a change inside the caller's transaction (pruning old ones now and then)."""
    body = json.dumps(list(keys), ensure_ascii=False) if len(keys) <= CHANGE_MAX_KEYS else None
    seq = db.execute(
        "INSERT INTO changes (topic, keys, cursor, at) VALUES (?, ?, ?, ?)",
        (topic, body, cursor, time.time()),
    ).lastrowid
    if seq is not None and seq % 256 == 0:
        db.execute("DELETE FROM changes WHERE at < ?", (time.time() - KEEP_CHANGES_SECONDS,))


class SqliteUsers:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def upsert(self, users: Sequence[User]) -> None:
        now = _now()
        rows = [(u.user_id, int(u.consent), u.model_dump_json(), now) for u in users]
        if not rows:
            return
        with self._db.tx() as db:
            db.executemany(
                "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                "consent = excluded.consent, body = excluded.body, "
                "updated_at = excluded.updated_at",
                rows,
            )
            _publish(db, "users", [r[0] for r in rows])

    def get(self, user_id: str) -> User | None:
        with self._db.read() as db:
            row = db.execute("SELECT body FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return User.model_validate_json(row[0]) if row else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, User]:
        ids = list(dict.fromkeys(user_ids))
        out: dict[str, User] = {}
        with self._db.read() as db:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = f"SELECT body FROM users WHERE user_id IN ({','.join('?' * len(chunk))})"
                for (body,) in db.execute(q, chunk):
                    u = User.model_validate_json(body)
                    out[u.user_id] = u
        return out

    def iter_users(self) -> Iterator[User]:
        with self._db.read() as db:
            rows = db.execute("SELECT body FROM users ORDER BY user_id").fetchall()
        for (body,) in rows:
            yield User.model_validate_json(body)

    def count(self) -> int:
        with self._db.read() as db:
            return int(db.execute("SELECT count(*) FROM users").fetchone()[0])

    def erase(self, user_id: str) -> bool:
        with self._db.tx() as db:
            existed = db.execute("DELETE FROM users WHERE user_id = ?", (user_id,)).rowcount > 0
            db.execute(
                "INSERT INTO erasures VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE "
                "SET erased_at = excluded.erased_at",
                (user_id, _now()),
            )
            _publish(db, "users", [user_id])
        return existed

    def erasures(self, since: datetime | None = None) -> dict[str, datetime]:
        with self._db.read() as db:
            if since is None:
                rows = db.execute("SELECT user_id, erased_at FROM erasures").fetchall()
            else:
                rows = db.execute(
                    "SELECT user_id, erased_at FROM erasures WHERE erased_at >= ?",
                    (since.astimezone(UTC).isoformat(),),
                ).fetchall()
        return {u: datetime.fromisoformat(t) for u, t in rows}

    def close(self) -> None:
        """The database is closed by its owner (``stores.sqlite.open_embedded``)."""


class SqliteCatalog:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def _write(self, rows: list[tuple[str, str | None]]) -> int:
        """Give each (item id, JSON or None) the next sequence number; returns the cursor."""
        with self._db.tx() as db:
            head = int(db.execute("SELECT seq FROM catalog_head").fetchone()[0])
            if not rows:
                return head
            numbered = [(item_id, head + 1 + n, body) for n, (item_id, body) in enumerate(rows)]
            db.executemany(
                "INSERT INTO catalog_items (item_id, seq, item) VALUES (?, ?, ?) "
                "ON CONFLICT (item_id) DO UPDATE SET seq = excluded.seq, item = excluded.item",
                numbered,
            )
            head += len(rows)
            db.execute("UPDATE catalog_head SET seq = ?", (head,))
            _publish(db, "catalog", [r[0] for r in rows], head)
        return head

    def upsert(self, items: Sequence[Item]) -> int:
        latest = {it.item_id: it.model_dump_json() for it in items}
        return self._write(list(latest.items()))

    def delete(self, item_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(item_ids))
        with self._db.read() as db:
            live = {
                r[0]
                for i in range(0, len(ids), 500)
                for r in db.execute(
                    "SELECT item_id FROM catalog_items WHERE item IS NOT NULL AND item_id IN "
                    f"({','.join('?' * len(ids[i : i + 500]))})",
                    ids[i : i + 500],
                )
            }
        return self._write([(i, None) for i in ids if i in live])

    def get(self, item_id: str) -> Item | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT item FROM catalog_items WHERE item_id = ?", (item_id,)
            ).fetchone()
        return Item.model_validate_json(row[0]) if row and row[0] is not None else None

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Item]:
        ids = list(dict.fromkeys(item_ids))
        out: dict[str, Item] = {}
        with self._db.read() as db:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = (
                    "SELECT item FROM catalog_items WHERE item IS NOT NULL AND item_id IN "
                    f"({','.join('?' * len(chunk))})"
                )
                for (body,) in db.execute(q, chunk):
                    it = Item.model_validate_json(body)
                    out[it.item_id] = it
        return out

    def iter_items(self) -> Iterator[Item]:
        """Every item by id, read a page at a time: the whole catalog's bodies at once were
        ~100 MB of transient memory per process at 100k items, and no read stays open while
        the caller holds the generator."""
        last = ""
        while True:
            with self._db.read() as db:
                rows = db.execute(
                    "SELECT item_id, item FROM catalog_items WHERE item_id > ? "
                    "AND item IS NOT NULL ORDER BY item_id LIMIT ?",
                    (last, ITER_PAGE),
                ).fetchall()
            for _, body in rows:
                yield Item.model_validate_json(body)
            if len(rows) < ITER_PAGE:
                return
            last = rows[-1][0]

    def count(self) -> int:
        with self._db.read() as db:
            q = "SELECT count(*) FROM catalog_items WHERE item IS NOT NULL"
            return int(db.execute(q).fetchone()[0])

    def cursor(self) -> int:
        with self._db.read() as db:
            return int(db.execute("SELECT seq FROM catalog_head").fetchone()[0])

    def changes_since(self, cursor: int, limit: int = 1000) -> CatalogChanges:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT seq, item_id, item FROM catalog_items WHERE seq > ? ORDER BY seq LIMIT ?",
                (cursor, limit),
            ).fetchall()
        changes = tuple(
            CatalogChange(seq, item_id, Item.model_validate_json(body) if body else None)
            for seq, item_id, body in rows
        )
        return CatalogChanges(changes, changes[-1].seq if changes else cursor)

    def close(self) -> None:
        """The database is closed by its owner."""


class SqliteDocuments:
    """Rules (``kind="rule"``) or experiments (``kind="experiment"``)."""

    def __init__(self, db: SqliteDb, kind: str, topic: Topic) -> None:
        self._db = db
        self.kind = kind
        self._topic = topic

    @staticmethod
    def _doc(row: tuple[str, str, str, str, str]) -> Document:
        return Document(
            row[0], row[1], row[2], datetime.fromisoformat(row[3]), datetime.fromisoformat(row[4])
        )

    def list(self, group: str | None = None) -> list[Document]:
        sql = "SELECT doc_id, grp, body, created_at, updated_at FROM documents WHERE kind = ?"
        args: tuple[str, ...] = (self.kind,)
        if group is not None:
            sql, args = sql + " AND grp = ?", (self.kind, group)
        with self._db.read() as db:
            rows = db.execute(sql + " ORDER BY doc_id", args).fetchall()
        return [self._doc(r) for r in rows]

    def get(self, doc_id: str) -> Document:
        with self._db.read() as db:
            row = db.execute(
                "SELECT doc_id, grp, body, created_at, updated_at FROM documents "
                "WHERE kind = ? AND doc_id = ?",
                (self.kind, doc_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(self.kind, doc_id)
        return self._doc(row)

    def _bump(self, db: sqlite3.Connection, doc_id: str) -> None:
        db.execute(
            "INSERT INTO revisions VALUES (?, 1) "
            "ON CONFLICT (kind) DO UPDATE SET value = value + 1",
            (self.kind,),
        )
        _publish(db, self._topic, [doc_id])

    def put(self, doc: Document, *, create: bool = False) -> None:
        now = datetime.now(UTC)
        created = (doc.created_at or now).astimezone(UTC).isoformat()
        updated = (doc.updated_at or now).astimezone(UTC).isoformat()
        with self._db.tx() as db:
            try:
                db.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)"
                    + (
                        ""
                        if create
                        else " ON CONFLICT (kind, doc_id) DO UPDATE SET grp = excluded.grp, "
                        "body = excluded.body, updated_at = excluded.updated_at"
                    ),
                    (self.kind, doc.doc_id, doc.group, doc.body, created, updated),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(self.kind, doc.doc_id) from None
            self._bump(db, doc.doc_id)

    def delete(self, doc_id: str) -> None:
        with self._db.tx() as db:
            n = db.execute(
                "DELETE FROM documents WHERE kind = ? AND doc_id = ?", (self.kind, doc_id)
            ).rowcount
            if n == 0:
                raise NotFoundError(self.kind, doc_id)
            self._bump(db, doc_id)

    def revision(self) -> int:
        with self._db.read() as db:
            row = db.execute("SELECT value FROM revisions WHERE kind = ?", (self.kind,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """The database is closed by its owner."""


class SqliteChangeFeed:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    def subscribe(self, topics: Collection[Topic]) -> SqliteSubscription:
        return SqliteSubscription(self._db, topics)

    def close(self) -> None:
        """Subscriptions close themselves."""


class SqliteSubscription:
    """Reads ``changes`` after the last sequence number it returned, on its own connection."""

    def __init__(self, db: SqliteDb, topics: Collection[Topic]) -> None:
        self._topics = tuple(topics)
        self._timeout = db.conn.execute("PRAGMA busy_timeout").fetchone()[0] / 1000.0
        self._conn = sqlite3.connect(
            db.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        small_page_cache(self._conn)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        last = self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        self._last = int(last[0])

    def poll(self, timeout: float = 0.0) -> list[Change]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                try:
                    rows = self._conn.execute(
                        "SELECT seq, topic, keys, cursor FROM changes WHERE seq > ? ORDER BY seq",
                        (self._last,),
                    ).fetchall()
                    # asked only when something changed: an idle poll (50 a second) is one
                    # statement, one release of the interpreter lock
                    oldest = self._conn.execute(
                        "SELECT min(seq) FROM changes"
                    ).fetchone()[0] if rows else None
                except sqlite3.Error as exc:
                    raise StoreUnavailableError(f"change feed: {exc}") from exc
            out: list[Change] = []
            if oldest is not None and oldest > self._last + 1 and self._last:
                out.append(Change("*"))  # pruned before we read them
            for seq, topic, keys, cursor in rows:
                self._last = seq
                if topic in self._topics:
                    ids = tuple(json.loads(keys)) if keys is not None else None
                    out.append(Change(topic, ids, cursor))
            if out or time.monotonic() >= deadline or self._closed.is_set():
                return out
            self._closed.wait(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._conn.close()
