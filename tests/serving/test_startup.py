"""Start-up state: purchases and recent history come back from the event files and the log."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from data.eventlog import EventLog
from data.journals import UserJournal
from data.models import Event, User
from ranking.history import HISTORY_TYPES, build_snapshot
from serving.app import create_app
from serving.state import Services
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
    withdrawn, erased = sorted(u for u in bought_all if u != buyer)[:2]
    journal = UserJournal(settings.state_dir / "users.jsonl")
    journal.upsert([User(user_id=withdrawn, consent=False)])
    journal.erase(erased)

    for attempt in ("built", "cached"):
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
    assert len(list((settings.state_dir / "profiles").iterdir())) == 2  # the cache + its lock


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
    """The real train job (as `shoprank train` runs it) honours the API's user journal."""
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
    train(cfg, settings.models_dir, events_dir=settings.events_dir, state_dir=settings.state_dir,
          promote=True)
    reg = Registry(settings.models_dir)
    model = load_model(reg.path("popularity", reg.current_version("popularity")))
    assert not model.known_user(erased)
    assert not model.known_user(withdrawn)
    assert model.known_user(kept)
    assert model.known_user(no_consent_in_file)  # consent given over the API counts


def _ids_in_file(path: Path) -> set[str]:
    import json

    return {
        json.loads(line)["item_id"] for line in path.read_text("utf-8").splitlines() if line.strip()
    }


def test_catalog_changes_are_durable_before_items_jsonl_is_written(restart_home: Path) -> None:
    """An acknowledged catalog change is in the journal; a worker starting before items.jsonl
    is written replays it; the file is written once the changes pause, and on shutdown."""
    from serving.catalog_saver import journal_start
    from tests.serving.conftest import ADMIN_KEY, start_live

    items_file = restart_home / "data" / "items.jsonl"
    original = items_file.read_bytes()
    server, live = start_live(restart_home, catalog_save_delay_seconds=3600.0)  # never on its own
    try:
        gone = min(_ids_in_file(items_file))
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
        assert items_file.read_bytes() == original and live.services.catalog_saver is not None
        assert live.services.catalog_saver.saves == 0
        # a worker starting now (or after a crash) replays the journal on top of the file
        other = Services.build(make_settings(restart_home), with_search=False)
        try:
            assert other.catalog.get("durable-1") is not None and other.catalog.get(gone) is None
            assert other.catalog.get("durable-1").title == new["title"]  # type: ignore[union-attr]
            assert other.catalog_saver is not None and other.catalog_saver.saves == 0
        finally:
            other.close()  # it replayed changes the file lacks: it writes them
        assert other.catalog_saver.saves == 1 and "durable-1" in _ids_in_file(items_file)
    finally:
        server.stop()
        live.services.close()  # writes the file: a change was still unwritten
    ids = _ids_in_file(items_file)
    assert "durable-1" in ids and gone not in ids and live.services.catalog_saver.saves == 1
    journal = restart_home / "state" / "catalog.jsonl"
    assert journal_start(restart_home / "state", journal) == (
        journal.stat().st_ino,
        journal.stat().st_size,
    )


def test_catalog_changes_in_a_row_write_items_jsonl_once_they_pause(restart_home: Path) -> None:
    from tests.serving.conftest import ADMIN_KEY, start_live

    items_file = restart_home / "data" / "items.jsonl"
    server, live = start_live(restart_home, catalog_save_delay_seconds=0.5)
    saver = live.services.catalog_saver
    assert saver is not None
    try:
        with live.client(ADMIN_KEY) as admin:
            for k in range(12):
                item = {
                    "item_id": f"burst-{k}",
                    "title": f"Burst Mug {k}",
                    "category": ["Home", "Kitchen"],
                    "price": 10.0 + k,
                    "created_at": "2026-11-01T00:00:00Z",
                }
                assert admin.put(f"/v1/catalog/items/burst-{k}", json=item).status_code == 200
        deadline = time.monotonic() + 30
        # the saver counts a save once its file is in place: wait for both
        while not ({f"burst-{k}" for k in range(12)} <= _ids_in_file(items_file)
                   and saver.saves >= 1):
            assert time.monotonic() < deadline, "items.jsonl was not written"
            time.sleep(0.05)
        assert saver.saves < 12  # written behind the changes, not once per change
    finally:
        server.stop()
        live.services.close()
