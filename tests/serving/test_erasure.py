"""``DELETE /v1/users/{id}`` leaves nothing of the user: not in the shop's users and events
files, the stores (users, shopper state, served-request log, feed pages); the models'
learned factors no longer score for the id; and all of it holds after a restart. Another
process that had served the user shortly before anonymizes its own part of the request log
when the erasure reaches it through the change feed."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pyarrow.parquet as pq

from serving.deps import get_request_log
from serving.state import Services
from stores.factory import Stores
from tests.serving.conftest import ADMIN_KEY, make_settings, start_live


def _events_of(data: Path) -> dict[str, int]:
    """Per events file of the shop: how many rows it has."""
    got = {"parquet": pq.read_metadata(data / "events.parquet").num_rows}
    if (data / "events.jsonl").exists():
        got["jsonl"] = sum(1 for line in (data / "events.jsonl").open() if line.strip())
    return got


def _user_rows(data: Path, user: str) -> int:
    table = pq.read_table(data / "events.parquet", columns=["user_id"])
    n = sum(1 for u in table.column("user_id").to_pylist() if u == user)
    if (data / "events.jsonl").exists():
        n += sum(
            1
            for line in (data / "events.jsonl").open()
            if line.strip() and json.loads(line)["user_id"] == user
        )
    return n


def _sql(path: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def _personal_sources(body: dict[str, object]) -> set[str]:
    return {r["source"] for it in body["items"] for r in it["reasons"]}  # type: ignore[index,union-attr]


def test_an_erasure_leaves_nothing_of_the_user(restart_home: Path) -> None:
    home, data, state = restart_home, restart_home / "data", restart_home / "state"
    server, live = start_live(home)
    try:
        als = live.services.models.get("als")
        assert als is not None
        users = [json.loads(line) for line in (data / "users.jsonl").open() if line.strip()]
        user = next(
            u["user_id"]
            for u in sorted(users, key=lambda u: u["user_id"])
            if u["consent"] and als.knows_user(u["user_id"]) and _user_rows(data, u["user_id"]) > 0
        )
        theirs = _user_rows(data, user)
        before = _events_of(data)
        with live.client() as c, live.client(ADMIN_KEY) as admin:
            recs = c.get("/v1/recommendations", params={"user_id": user}).json()
            assert recs["strategy"] == "personalized" and "cf" in _personal_sources(recs)
            assert c.get("/v1/feed", params={"user_id": user}).status_code == 200
            title = c.get("/v1/trending").json()["items"][0]["title"]
            found = c.get("/v1/search", params={"q": title.split()[0], "user_id": user}).json()
            versions = {r.get("model_version") for it in found["hits"] for r in it["reasons"]
                        if r["source"] == "personalization"}
            assert versions == {"v1"}  # re-ranked with the user's learned factors
            get_request_log(live.services).flush()
            stores = live.services.stores
            served = _served_to(stores, user)
            total = len(stores.requests.recent(limit=1_000_000))
            feeds = _pages_of(state, user)
            assert served >= 3 and len(feeds) == 1
            assert stores.shopper.recent(user)

            r = admin.delete(f"/v1/users/{user}")
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["profile_erased"] is True
            assert out["shop_file_records_erased"] == 1 + theirs  # their users-file line + events
            assert out["served_requests_anonymized"] == served and out["cached_feeds_dropped"] == 1

            # the shop's files: nothing of theirs, everything else kept
            assert user not in {
                json.loads(line)["user_id"]
                for line in (data / "users.jsonl").open()
                if line.strip()
            }
            assert (
                sum(1 for line in (data / "users.jsonl").open() if line.strip()) == len(users) - 1
            )
            assert _user_rows(data, user) == 0
            assert sum(_events_of(data).values()) == sum(before.values()) - theirs
            # the request log keeps the rows (a variant's impressions), without the user
            assert _served_to(stores, user) == 0
            assert len(stores.requests.recent(limit=1_000_000)) == total
            assert not _pages_of(state, user)
            assert not stores.shopper.recent(user) and not stores.shopper.purchased(user)
            assert stores.users.get(user) is None and user in stores.users.erasures()

            # the models still hold their factors (trained before): no longer used for the id
            assert als.knows_user(user)
            recs = c.get("/v1/recommendations", params={"user_id": user}).json()
            assert recs["items"] and "cf" not in _personal_sources(recs)
            found = c.get("/v1/search", params={"q": title.split()[0], "user_id": user}).json()
            assert not {r.get("model_version") for it in found["hits"] for r in it["reasons"]
                        if r["source"] == "personalization"} - {None}
    finally:
        server.stop()
        live.services.close()

    server, live = start_live(home)  # a restart: nothing of them comes back
    try:
        with live.client() as c, live.client(ADMIN_KEY) as admin:
            assert admin.get(f"/v1/users/{user}").status_code == 404
            recs = c.get("/v1/recommendations", params={"user_id": user}).json()
            assert recs["items"] and "cf" not in _personal_sources(recs)
        assert not live.services.stores.shopper.recent(user)
    finally:
        server.stop()
        live.services.close()


def test_another_worker_anonymizes_what_it_served_before_it_read_the_erasure(
    restart_home: Path,
) -> None:
    settings = make_settings(restart_home)
    taker = Services.build(settings, with_search=False)  # the process that takes the DELETE
    other = Services.build(settings, with_search=False)
    try:
        users = [
            json.loads(line)["user_id"] for line in (restart_home / "data" / "users.jsonl").open()
        ]
        user = next(u for u in sorted(users) if other.profiles.get(u).recent_items)
        other.pipeline.recommend(user_id=user, n=5, request_id="served-by-the-other-worker")
        # the taker's part (what the route does): the user store, its own scan of the log
        taker.users.erase(user)
        assert taker.forget_user(user)[0] is True
        # the other's row was in its buffer (unless its flusher, every second, just wrote
        # it); the erasure reaches it through the change feed
        deadline = time.monotonic() + 10
        while True:
            rows = other.stores.requests.lookup(["served-by-the-other-worker"])
            if rows and rows["served-by-the-other-worker"].user_id is None:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
        assert user not in other.profiles and not other.profiles.get(user).user_factors
    finally:
        other.close()
        taker.close()


def _served_to(stores: Stores, user: str) -> int:
    return sum(1 for r in stores.requests.recent(limit=1_000_000) if r.user_id == user)


def _pages_of(state: Path, user: str) -> list[str]:
    return [k for (k,) in _sql(state / "feed_pages.sqlite", "SELECT key FROM feed")
            if f"|{user}|" in k]


def test_the_erasure_counts_what_it_anonymized_when_the_change_feed_is_faster(
    restart_home: Path,
) -> None:
    """The change feed of the process that erases may deliver the erasure before the erasure
    itself anonymizes the request log (a busy host): it must not take the erasure for another
    process's and anonymize the rows first, leaving the answer to count none."""
    server, live = start_live(restart_home)
    try:
        services = live.services
        users = [json.loads(line) for line in (restart_home / "data" / "users.jsonl").open()
                 if line.strip()]
        user = sorted(u["user_id"] for u in users if u["consent"])[0]
        store = services.stores.users
        erase = store.erase

        def erase_then_feed(user_id: str) -> bool:  # the watcher thread wins the race
            done = erase(user_id)
            services.users_changed((user_id,))
            return done

        store.erase = erase_then_feed  # type: ignore[method-assign]
        with live.client() as c, live.client(ADMIN_KEY) as admin:
            for path in ("/v1/recommendations", "/v1/feed", "/v1/recommendations"):
                assert c.get(path, params={"user_id": user}).status_code == 200
            get_request_log(services).flush()
            served = _served_to(services.stores, user)
            assert served >= 3
            r = admin.delete(f"/v1/users/{user}")
            assert r.status_code == 200, r.text
            assert r.json()["served_requests_anonymized"] == served
            assert _served_to(services.stores, user) == 0
    finally:
        server.stop()
        live.services.close()
