"""Shared users, catalog, rules and experiments in PostgreSQL, and their change feed.

Every write sends ``pg_notify`` in its own transaction, so listeners hear of a change only once
it is committed. The catalog's sequence numbers come from the one row of ``catalog_head``,
updated in the writing transaction: its row lock makes writers take numbers in commit order,
so a reader that saw change ``n`` has seen every change before it (a ``bigserial`` would hand
out numbers in start order, and a reader could skip a slower transaction's smaller number).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from data.models import Item, User
from stores.errors import ConflictError, NotFoundError, StoreUnavailableError
from stores.postgres.db import SLOW_SECONDS, PgDatabase
from stores.records import CatalogChange, CatalogChanges, Change, Document, Topic

log = logging.getLogger(__name__)


_USER_SQL = "SELECT body::text FROM users WHERE user_id = $1"


class PgUsers:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def upsert(self, users: Sequence[User]) -> None:
        if not users:
            return
        latest = {u.user_id: u for u in users}
        with self._db.tx() as conn:
            conn.cursor().executemany(
                "INSERT INTO users (user_id, consent, body, updated_at) VALUES (%s, %s, %s, now()) "
                "ON CONFLICT (user_id) DO UPDATE SET consent = excluded.consent, "
                "body = excluded.body, updated_at = excluded.updated_at",
                # in id order: concurrent writers lock rows in one order (no deadlock)
                [(u.user_id, u.consent, Jsonb(u.model_dump(mode="json")))
                 for _, u in sorted(latest.items())],
            )
            self._db.notify(conn, "users", list(latest))

    def get(self, user_id: str) -> User | None:
        # read on a request's path (a miss of the per-process user cache): prepared, through
        # libpq; the body as text, validated by pydantic's JSON parser (as the embedded store
        # reads it) rather than parsed by psycopg and validated as a dict
        rows = self._db.read_prepared("shoprank_user", _USER_SQL, (user_id,))
        body = rows[0][0] if rows else None
        return User.model_validate_json(body) if body is not None else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, User]:
        ids = list(dict.fromkeys(user_ids))
        rows = self._db.execute("SELECT body::text FROM users WHERE user_id = ANY(%s)", (ids,))
        users = [User.model_validate_json(r[0]) for r in rows]
        return {u.user_id: u for u in users}

    def iter_users(self) -> Iterator[User]:
        with self._db.tx(None) as conn, conn.cursor(name="shoprank_users") as cur:
            cur.execute("SELECT body FROM users ORDER BY user_id")
            while batch := cur.fetchmany(10_000):
                for (body,) in batch:
                    yield User.model_validate(body)

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM users")[0][0])

    def erase(self, user_id: str) -> bool:
        with self._db.tx() as conn:
            existed = conn.execute("DELETE FROM users WHERE user_id = %s", (user_id,)).rowcount > 0
            conn.execute(
                "INSERT INTO erasures VALUES (%s, now()) ON CONFLICT (user_id) DO UPDATE "
                "SET erased_at = excluded.erased_at",
                (user_id,),
            )
            self._db.notify(conn, "users", [user_id])
        return existed

    def erasures(self, since: datetime | None = None) -> dict[str, datetime]:
        if since is None:
            rows = self._db.execute("SELECT user_id, erased_at FROM erasures")
        else:
            rows = self._db.execute(
                "SELECT user_id, erased_at FROM erasures WHERE erased_at >= %s", (since,)
            )
        return {u: t.astimezone(UTC) for u, t in rows}

    def close(self) -> None:
        """The database is closed by its owner."""


class PgCatalog:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def _write(self, rows: list[tuple[str, Any]], *, only_live: bool = False) -> int:
        with self._db.tx(SLOW_SECONDS if len(rows) > 1000 else True) as conn:
            # the row lock on catalog_head orders concurrent writers (module docstring)
            head = int(conn.execute("SELECT seq FROM catalog_head FOR UPDATE").fetchone()[0])  # type: ignore[index]
            if only_live and rows:
                live = {r[0] for r in conn.execute(
                    "SELECT item_id FROM catalog_items "
                    "WHERE item IS NOT NULL AND item_id = ANY(%s)",
                    ([i for i, _ in rows],),
                )}
                rows = [r for r in rows if r[0] in live]
            if not rows:
                return head
            conn.cursor().executemany(
                "INSERT INTO catalog_items (item_id, seq, item) VALUES (%s, %s, %s) "
                "ON CONFLICT (item_id) DO UPDATE SET seq = excluded.seq, item = excluded.item",
                [(item_id, head + 1 + n, body) for n, (item_id, body) in enumerate(rows)],
            )
            head += len(rows)
            conn.execute("UPDATE catalog_head SET seq = %s", (head,))
            self._db.notify(conn, "catalog", [r[0] for r in rows], head)
        return head

    def upsert(self, items: Sequence[Item]) -> int:
        latest = {it.item_id: Jsonb(it.model_dump(mode="json")) for it in items}
        return self._write(list(latest.items()))

    def delete(self, item_ids: Sequence[str]) -> int:
        return self._write([(i, None) for i in dict.fromkeys(item_ids)], only_live=True)

    def get(self, item_id: str) -> Item | None:
        rows = self._db.execute("SELECT item FROM catalog_items WHERE item_id = %s", (item_id,))
        return Item.model_validate(rows[0][0]) if rows and rows[0][0] is not None else None

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Item]:
        rows = self._db.execute(
            "SELECT item FROM catalog_items WHERE item IS NOT NULL AND item_id = ANY(%s)",
            (list(dict.fromkeys(item_ids)),),
        )
        items = [Item.model_validate(r[0]) for r in rows]
        return {it.item_id: it for it in items}

    def iter_items(self) -> Iterator[Item]:
        with self._db.tx(None) as conn, conn.cursor(name="shoprank_items") as cur:
            cur.execute("SELECT item FROM catalog_items WHERE item IS NOT NULL ORDER BY item_id")
            while batch := cur.fetchmany(5_000):
                for (body,) in batch:
                    yield Item.model_validate(body)

    def count(self) -> int:
        return int(
            self._db.execute("SELECT count(*) FROM catalog_items WHERE item IS NOT NULL")[0][0]
        )

    def cursor(self) -> int:
        return int(self._db.execute("SELECT seq FROM catalog_head")[0][0])

    def changes_since(self, cursor: int, limit: int = 1000) -> CatalogChanges:
        rows = self._db.execute(
            "SELECT seq, item_id, item FROM catalog_items WHERE seq > %s ORDER BY seq LIMIT %s",
            (cursor, limit),
        )
        changes = tuple(
            CatalogChange(seq, item_id, Item.model_validate(body) if body is not None else None)
            for seq, item_id, body in rows
        )
        return CatalogChanges(changes, changes[-1].seq if changes else cursor)

    def close(self) -> None:
        """The database is closed by its owner."""


class PgDocuments:
    def __init__(self, db: PgDatabase, kind: str, topic: Topic) -> None:
        self._db = db
        self.kind = kind
        self._topic = topic

    def list(self, group: str | None = None) -> list[Document]:
        sql = "SELECT doc_id, grp, body, created_at, updated_at FROM documents WHERE kind = %s"
        args: tuple[str, ...] = (self.kind,)
        if group is not None:
            sql, args = sql + " AND grp = %s", (self.kind, group)
        return [Document(*r) for r in self._db.execute(sql + " ORDER BY doc_id", args)]

    def get(self, doc_id: str) -> Document:
        rows = self._db.execute(
            "SELECT doc_id, grp, body, created_at, updated_at FROM documents "
            "WHERE kind = %s AND doc_id = %s",
            (self.kind, doc_id),
        )
        if not rows:
            raise NotFoundError(self.kind, doc_id)
        return Document(*rows[0])

    def _bump(self, conn: psycopg.Connection[Any], doc_id: str) -> None:
        conn.execute(
            "INSERT INTO revisions VALUES (%s, 1) ON CONFLICT (kind) "
            "DO UPDATE SET value = revisions.value + 1",
            (self.kind,),
        )
        self._db.notify(conn, self._topic, [doc_id])

    def put(self, doc: Document, *, create: bool = False) -> None:
        now = datetime.now(UTC)
        sql = "INSERT INTO documents VALUES (%s, %s, %s, %s, %s, %s)"
        if not create:
            sql += (
                " ON CONFLICT (kind, doc_id) DO UPDATE SET grp = excluded.grp, "
                "body = excluded.body, updated_at = excluded.updated_at"
            )
        try:
            with self._db.tx() as conn:
                conn.execute(sql, (self.kind, doc.doc_id, doc.group, doc.body,
                                   doc.created_at or now, doc.updated_at or now))
                self._bump(conn, doc.doc_id)
        except psycopg.errors.UniqueViolation:
            raise ConflictError(self.kind, doc.doc_id) from None

    def delete(self, doc_id: str) -> None:
        with self._db.tx() as conn:
            n = conn.execute(
                "DELETE FROM documents WHERE kind = %s AND doc_id = %s", (self.kind, doc_id)
            ).rowcount
            if n == 0:
                raise NotFoundError(self.kind, doc_id)
            self._bump(conn, doc_id)

    def revision(self) -> int:
        rows = self._db.execute("SELECT value FROM revisions WHERE kind = %s", (self.kind,))
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """The database is closed by its owner."""


class PgChangeFeed:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def subscribe(self, topics: Collection[Topic]) -> PgSubscription:
        return PgSubscription(self._db, topics)

    def close(self) -> None:
        """Subscriptions close themselves."""


class PgSubscription:
    """LISTEN on a connection of its own. One consumer at a time (not thread-safe)."""

    def __init__(self, db: PgDatabase, topics: Collection[Topic]) -> None:
        self._db = db
        self._topics = frozenset(topics)
        self._conn: psycopg.Connection[Any] | None = db.listen_connection()

    def _parse(self, payloads: Iterable[str]) -> list[Change]:
        out = []
        for p in payloads:
            try:
                d = json.loads(p)
            except ValueError:
                continue
            if d.get("t") in self._topics:
                keys = tuple(d["k"]) if d.get("k") is not None else None
                out.append(Change(d["t"], keys, d.get("c")))
        return out

    def poll(self, timeout: float = 0.0) -> list[Change]:
        lost = False
        if self._conn is None or self._conn.closed:
            self._conn = self._db.listen_connection()  # raises StoreUnavailableError
            lost = True
        try:
            got = [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]
            if got:
                got += [n.payload for n in self._conn.notifies(timeout=0)]
        except psycopg.OperationalError as exc:
            self._conn.close()
            self._conn = None
            raise StoreUnavailableError(f"change feed lost its connection: {exc}") from None
        changes = self._parse(got)
        return [Change("*"), *changes] if lost else changes

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
