"""The PostgreSQL schema, as numbered migrations applied at start-up (``PgDatabase.migrate``).

Never edit a released migration: add the next number. Each runs in the migrating
transaction with its row in ``schema_version``.
"""

from __future__ import annotations

from stores.postgres.db import Migration
from stores.records import LOG_NAMES, log_table

MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        "events, users, catalog, documents, request log",
        """
        CREATE TABLE events (
            event_id text PRIMARY KEY, user_id text NOT NULL, item_id text, type text NOT NULL,
            ts timestamptz NOT NULL, value double precision, session_id text, query text,
            position integer, request_id text, experiment text, variant text, channel text,
            device text, surface text);
        CREATE INDEX events_ts ON events (ts);
        CREATE INDEX events_user ON events (user_id);

        CREATE TABLE users (
            user_id text PRIMARY KEY, consent boolean NOT NULL, body jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE erasures (user_id text PRIMARY KEY, erased_at timestamptz NOT NULL);

        -- one row per item: its latest version (NULL once deleted) and the number of its
        -- latest change; catalog_head holds the counter, and its row lock orders writers
        CREATE TABLE catalog_items (item_id text PRIMARY KEY, seq bigint NOT NULL, item jsonb);
        CREATE INDEX catalog_items_seq ON catalog_items (seq);
        CREATE TABLE catalog_head (id integer PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL);
        INSERT INTO catalog_head VALUES (1, 0);

        CREATE TABLE documents (
            kind text NOT NULL, doc_id text NOT NULL, grp text NOT NULL, body text NOT NULL,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
            PRIMARY KEY (kind, doc_id));
        CREATE TABLE revisions (kind text PRIMARY KEY, value bigint NOT NULL);

        -- served lists, one partition per UTC day (created on first use, dropped by retention)
        CREATE TABLE requests (
            request_id text NOT NULL, at timestamptz NOT NULL, surface text NOT NULL,
            user_id text, experiment text, variant text, query text, item_id text,
            items text[] NOT NULL DEFAULT '{}', PRIMARY KEY (request_id, at))
            PARTITION BY RANGE (at);
        CREATE INDEX requests_at ON requests (at);
        CREATE INDEX requests_user ON requests (user_id) WHERE user_id IS NOT NULL;
        """,
    ),
    (
        2,
        "telemetry logs: searches and the learned ranker's served lists",
        "".join(
            f"""
        CREATE TABLE IF NOT EXISTS {t} (
            request_id text PRIMARY KEY, at timestamptz NOT NULL, user_id text,
            body jsonb NOT NULL);
        CREATE INDEX IF NOT EXISTS {t}_at ON {t} (at, request_id);
        CREATE INDEX IF NOT EXISTS {t}_user ON {t} (user_id) WHERE user_id IS NOT NULL;
        """
            for t in (log_table(n) for n in LOG_NAMES)
        ),
    ),
    (
        3,
        "telemetry log bodies compressed with lz4",
        # pglz, the default, took half the server's CPU of writing a feed's served list; a
        # server built without lz4 keeps pglz (the migration still counts as applied)
        """
        DO $$
        BEGIN
            ALTER TABLE log_served ALTER COLUMN body SET COMPRESSION lz4;
            ALTER TABLE log_searches ALTER COLUMN body SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'lz4 not supported by this server: log bodies stay pglz';
        END $$;
        """,
    ),
)
