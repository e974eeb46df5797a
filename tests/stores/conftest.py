"""Fixtures for the store contract tests: every test runs on the embedded stores (SQLite and
files in a temporary home) and on the shared ones (a real PostgreSQL schema and Redis prefix
of its own, from tests/servers.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from data.models import Event
from stores import StoreOptions, Stores, open_stores

KINDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("shared", id="shared", marks=pytest.mark.servers),
]

NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Backend:
    """Where one test's stores live; :meth:`open` opens another bundle on the same data."""

    kind: str
    database_url: str | None
    redis_url: str | None
    home: Path
    prefix: str
    opened: list[Stores] = field(default_factory=list)

    def open(self, **options: Any) -> Stores:
        opts = dataclasses.replace(StoreOptions(), **options)
        s = open_stores(self.database_url, self.redis_url, self.home, options=opts,
                        redis_prefix=self.prefix)
        self.opened.append(s)
        return s

    def close_all(self) -> None:
        for s in self.opened:
            s.close()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "shared":
        b = Backend("shared", request.getfixturevalue("pg_url"),
                    request.getfixturevalue("redis_server"), tmp_path,
                    request.getfixturevalue("redis_prefix"))
    else:
        b = Backend("embedded", None, None, tmp_path, "")
    yield b
    b.close_all()


@pytest.fixture
def stores(backend: Backend) -> Stores:
    return backend.open()


def event(n: int | str, *, user: str = "u1", item: str | None = "i1", type: str = "view",
          at: datetime | None = None, **context: Any) -> Event:
    """A valid event with id ``e<n>``."""
    return Event(event_id=f"e{n}", user_id=user, item_id=item, type=type,  # type: ignore[arg-type]
                 timestamp=at or NOW - timedelta(minutes=1), context=context)
