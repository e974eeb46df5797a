"""Start-up state: purchases and recent history come back from the event files and the log."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from data.eventlog import EventLog
from data.models import Event, User
from ranking.history import HISTORY_TYPES, build_snapshot
from serving.app import create_app
from serving.state import Services
from stores.factory import open_stores
from tests.serving.conftest import ServerThread, free_port, make_settings


def _brute_force(path: Path, per_user: int) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    rows = pq.read_table(path, columns=["user_id", "item_id", "type", "timestamp"]).to_pylist()
    rows.sort(key=lambda r: r["timestamp"])  # stable: file order breaks ties, as in the snapshot
    recent: dict[str, list[str]] = defaultdict(list)
    bought: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r["item_id"] is None:
            continue
        if r["type"] in HISTORY_TYPES:
            recent[r["user_id"]].append(r["item_id"])
        if r["type"] == "purchase":
            bought[r["user_id"]].add(r["item_id"])
        elif r["type"] == "refund":
            bought[r["user_id"]].discard(r["item_id"])
    return {u: v[::-1][:per_user] for u, v in recent.items()}, bought


def test_snapshot_matches_a_plain_replay(shop_home: Path) -> None:
    path = shop_home / "data" / "events.parquet"
    snap = build_snapshot([pq.read_table(path)], per_user=7)
    recent, bought = _brute_force(path, 7)
    assert len(snap) == len(recent)
    checked_purchases = 0
    for user, items in recent.items():
        row = snap.row(user)
        assert row >= 0
        got = [i for i, _ in snap.recent(row)]
        # equal timestamps may be ordered either way; the multiset and the order of distinct
        # timestamps must match
        assert sorted(got) == sorted(items), user
        assert set(snap.purchased(row)) == bought.get(user, set()), user
        checked_purchases += len(bought.get(user, ()))
    assert checked_purchases > 0
    assert snap.row("nobody") == -1


def _buyer(home: Path) -> tuple[str, set[str]]:
    _, bought = _brute_force(home / "data" / "events.parquet", 20)
    user = max(sorted(bought), key=lambda u: len(bought[u]))
    return user, bought[user]


def test_restart_remembers_purchases_history_consent_and_erasure(restart_home: Path) -> None:
    home = restart_home
    buyer, bought = _buyer(home)
    settings = make_settings(home)
    # what the API did before the restart: events in the log, a withdrawn consent, an erasure
    now = datetime.now(UTC)
    fresh_view, refunded = "i5", sorted(bought)[0]
    with EventLog(settings.events_dir) as elog:
        elog.append(
            [
                Event(
                    event_id="st-1", user_id=buyer, item_id=fresh_view, type="view", timestamp=now
                ),
                Event(
                    event_id="st-2", user_id=buyer, item_id=refunded, type="refund", timestamp=now
                ),
                Event(
                    event_id="st-3",
                    user_id="newcomer",
                    item_id="i7",
                    type="purchase",
                    timestamp=now,
                ),
            ]
        )
    _, bought_all = _brute_force(home / "data" / "events.parquet", 20)
    withdrawn, erased, kept = sorted(u for u in bought_all if u != buyer)[:3]
    with open_stores(None, None, home) as stores:  # as `shoprank load users` or the API would
        stores.users.upsert([User(user_id=withdrawn, consent=False)])
        stores.users.erase(erased)

    # the first start imports the shop files and the stored events; the second reads the
    # stores it filled
    for attempt in ("first start", "restart"):
        services = Services.build(settings, with_search=False)
        try:
            p = services.profiles.get(buyer)
            assert p.recent_items[0] == fresh_view, attempt
            assert p.purchased == frozenset(bought - {refunded}), attempt
            assert p.category_affinity, attempt  # affinities replayed from the history
            assert services.profiles.get("newcomer").purchased == {"i7"}
            assert not services.profiles.get(withdrawn).consent
            assert services.profiles.get(withdrawn).recent_items == ()
            assert erased not in services.profiles
            ranked = services.pipeline.recommend(user_id=buyer, n=30)
            assert ranked.items and not {it.item_id for it in ranked.items} & p.purchased
        finally:
            services.close()


def test_exclude_purchased_after_restart_over_http(restart_home: Path) -> None:
    """A purchase in the shop's history is never recommended back, right after start-up."""
    buyer, bought = _buyer(restart_home)
    settings = make_settings(restart_home)
    services = Services.build(settings, with_search=False)
    server = ServerThread(create_app(settings, services), free_port())
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as c:
            got = c.get("/v1/recommendations", params={"user_id": buyer, "n": 50}).json()
            ids = {it["item_id"] for it in got["items"]}
            assert ids and not ids & bought
            got = c.get("/v1/recommendations",
                        params={"user_id": buyer, "n": 50, "exclude_purchased": "false"}).json()
            assert got["items"]
    finally:
        server.stop()
        services.close()


def test_training_leaves_out_users_erased_or_withdrawn_over_the_api(restart_home: Path) -> None:
    """The real train job (as `shoprank train` runs it) honours the user store."""
    from cli.support import training_stores
    from models import load_model
    from models.registry import Registry
    from tests.serving.conftest import ADMIN_KEY
    from training.config import ModelEntry, default_config
    from training.jobs import train

    home = restart_home
    data = home / "data"
    _, bought = _brute_force(data / "events.parquet", 20)
    active = sorted(bought)
    erased, withdrawn, kept = active[0], active[1], active[2]
    no_consent_in_file = next(
        u.user_id
        for u in (User.model_validate_json(line) for line in (data / "users.jsonl").open())
        if not u.consent and u.user_id in bought
    )
    settings = make_settings(home)
    services = Services.build(settings, with_search=False)
    server = ServerThread(create_app(settings, services), free_port())
    server.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}", headers={"X-API-Key": ADMIN_KEY}
        ) as c:
            assert c.delete(f"/v1/users/{erased}").status_code == 200
            assert c.put(f"/v1/users/{withdrawn}", json={"consent": False}).status_code == 200
            assert (
                c.put(f"/v1/users/{no_consent_in_file}", json={"consent": True}).status_code == 200
            )
    finally:
        server.stop()
        services.close()

    cfg = default_config(data)
    cfg.models = [ModelEntry(name="popularity", algorithm="popularity")]
    cfg.train.holdout_metrics = False
    with training_stores(settings) as stores:  # as `shoprank train` opens them
        train(cfg, settings.models_dir, events_dir=settings.events_dir, promote=True,
              stores=stores)
    reg = Registry(settings.models_dir)
    model = load_model(reg.path("popularity", reg.current_version("popularity")))
    assert not model.known_user(erased)
    assert not model.known_user(withdrawn)
    assert model.known_user(kept)
    assert model.known_user(no_consent_in_file)  # consent given over the API counts


def test_catalog_changes_reach_a_restart_and_the_other_processes(restart_home: Path) -> None:
    """An acknowledged catalog change is in the catalog store: a process started afterwards
    has it, and a process already running gets it from the change feed."""
    from tests.serving.conftest import ADMIN_KEY, start_live

    other = Services.build(make_settings(restart_home), with_search=False)  # already running
    server, live = start_live(restart_home)
    try:
        gone = min(it.item_id for it in live.services.catalog)
        new = {
            "item_id": "durable-1",
            "title": "Durable Teapot 耐用茶壺",
            "category": ["Home", "Kitchen"],
            "price": 42.0,
            "brand": "Kiln",
            "created_at": "2026-11-01T00:00:00Z",
        }
        with live.client(ADMIN_KEY) as admin:
            assert admin.put("/v1/catalog/items/durable-1", json=new).status_code == 200
            assert admin.delete(f"/v1/catalog/items/{gone}").status_code == 200
        deadline = time.monotonic() + 10
        while other.catalog.get("durable-1") is None or other.catalog.get(gone) is not None:
            assert time.monotonic() < deadline, "the running process did not follow the change"
            time.sleep(0.05)
        assert other.catalog.get("durable-1").title == new["title"]  # type: ignore[union-attr]
    finally:
        server.stop()
        live.services.close()
        other.close()
    restarted = Services.build(make_settings(restart_home), with_search=False)
    try:
        assert restarted.catalog.get("durable-1") is not None
        assert restarted.catalog.get(gone) is None
    finally:
        restarted.close()
