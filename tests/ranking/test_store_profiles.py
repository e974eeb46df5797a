"""Users' consent and attributes kept per process: at most ``user_cache_size`` of them; a user
not kept is read from the user store again."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from data.catalog import Catalog
from data.models import User
from ranking.store_profiles import StoreProfiles
from stores import open_stores


class CountingUsers:
    """The embedded user store, counting the reads that reach it."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, user_id: str) -> User | None:
        self.reads += 1
        return self.inner.get(user_id)  # type: ignore[attr-defined, no-any-return]

    def get_many(self, ids: Iterable[str]) -> dict[str, User]:
        self.reads += 1
        return self.inner.get_many(ids)  # type: ignore[attr-defined, no-any-return]

    def erasures(self) -> dict:
        return self.inner.erasures()  # type: ignore[attr-defined, no-any-return]


def test_the_cache_keeps_at_most_its_size(tmp_path: Path) -> None:
    stores = open_stores(None, None, tmp_path)
    try:
        stores.users.upsert([User(user_id=f"u{i}", consent=i != 2) for i in range(5)])
        users = CountingUsers(stores.users)
        profiles = StoreProfiles(users, stores.shopper, Catalog(), cache_size=2)  # type: ignore[arg-type]
        for uid in ("u0", "u1", "u0", "u1"):
            assert profiles.get(uid).consent
        assert users.reads == 2  # the second round came from the cache
        assert not profiles.get("u2").consent  # a third user: u0, the least recent, dropped
        assert len(profiles._cache) == 2
        profiles.get("u1")
        assert users.reads == 3
        profiles.get("u0")
        assert users.reads == 4
    finally:
        stores.close()

