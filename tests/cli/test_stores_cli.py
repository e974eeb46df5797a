"""The offline commands work on the stores the service serves from: what `shoprank load`
adds after the first start reaches the stores (and so every API process), training reads
the catalog store with the API's changes, and `shoprank index` indexes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cli.support import training_stores
from core.settings import Settings
from data.models import Item
from data.synthetic import ShopSpec, generate
from serving.storage import check_stores
from stores.factory import open_stores
from tests.cli.test_data import shoprank
from training.config import default_config
from training.jobs import load_input


def _served_shop(home: Path) -> Settings:
    """A generated shop whose stores the service has filled (its first start)."""
    generate(ShopSpec(n_users=60, n_items=90, n_events=1500, seed=5), home / "data")
    settings = Settings(home=home)
    check_stores(settings)  # what `shoprank serve` does before its workers start
    return settings


def test_load_after_the_first_start_reaches_the_stores(tmp_path: Path) -> None:
    _served_shop(tmp_path)
    items = tmp_path / "new-items.jsonl"
    items.write_text(json.dumps({"item_id": "late-1", "title": "Late Kettle 遲來的水壺",
                                 "category": ["家居", "廚房"], "price": 30}) + "\n", "utf-8")
    users = tmp_path / "new-users.jsonl"
    users.write_text(json.dumps({"user_id": "late-u", "attributes": {"tier": "gold"}}) + "\n",
                     "utf-8")
    events = tmp_path / "new-events.jsonl"
    now = datetime.now(UTC).isoformat()
    events.write_text("".join(
        json.dumps({"event_id": f"late-e{k}", "user_id": "late-u", "item_id": "late-1",
                    "type": t, "timestamp": now}) + "\n"
        for k, t in enumerate(("view", "purchase"))), "utf-8")
    for kind, path in (("items", items), ("users", users), ("events", events)):
        r = shoprank(tmp_path, "load", kind, str(path))
        assert r.returncode == 0, r.stderr
    with open_stores(None, None, tmp_path) as stores:
        assert stores.catalog.get("late-1") is not None
        user = stores.users.get("late-u")
        assert user is not None and user.attributes == {"tier": "gold"}
        assert stores.events.contains("late-e1")
        assert stores.shopper.recent("late-u")[0] == ("late-1", "purchase")
        assert stores.shopper.purchased("late-u") == frozenset({"late-1"})
        assert [i for i, _ in stores.shopper.live_top(1)] == ["late-1"]  # fresh: counted live


def test_training_and_indexing_read_the_catalog_store(tmp_path: Path) -> None:
    settings = _served_shop(tmp_path)
    added = Item(item_id="api-1", title="API Teapot 茶壺", category=["家居", "廚房"], price=42.0)
    with open_stores(None, None, tmp_path) as stores:  # as `PUT /v1/catalog/items` stores it
        stores.catalog.upsert([added])
        gone = sorted(it.item_id for it in stores.catalog.iter_items() if it.item_id != "api-1")[0]
        stores.catalog.delete([gone])
    with training_stores(settings) as source:
        inp = load_input(default_config(settings.data_dir), settings.events_dir, source)
    assert inp.catalog is not None
    ids = set(inp.catalog.item_ids)
    assert "api-1" in ids and gone not in ids
    r = shoprank(tmp_path, "index")
    assert r.returncode == 0, r.stderr
    assert "catalog store" in r.stdout
    r = shoprank(tmp_path, "search", "API Teapot")
    assert r.returncode == 0, r.stderr
    assert "api-1" in r.stdout
