"""Training over the shared stores: the events replicas wrote to PostgreSQL, without the
users erased or without consent in the user store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from data.models import Event, User
from stores import open_stores
from training.config import default_config
from training.jobs import load_input
from training.store_source import StoreSource


def test_load_input_reads_the_event_store_and_the_user_store(pg_url: str, tmp_path: Path) -> None:
    stores = open_stores(pg_url, None, tmp_path)
    try:
        t0 = datetime.now(UTC) - timedelta(days=1)
        events = [
            Event(event_id=f"e{u}{i}", type="purchase", user_id=f"u{u}", item_id=f"i{i}",
                  timestamp=t0 + timedelta(minutes=u * 10 + i))
            for u in range(4) for i in range(3)
        ]
        stores.events.append(events)
        stores.users.upsert([User(user_id="u1", consent=False), User(user_id="u2")])
        stores.users.erase("u3")
        cfg = default_config(tmp_path / "no-shop-files")
        cfg.data.events = []
        inp = load_input(cfg, None, StoreSource(stores.events, stores.users))
        users = {str(inp.frame.user_ids[c]) for c in set(inp.frame.user.tolist())}
        assert users == {"u0", "u2"}  # u1: no consent; u3: erased
        assert "event store" in inp.sources
        assert len(inp.frame.user) == 6
    finally:
        stores.close()
