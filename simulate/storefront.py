"""A simulated storefront: the synthetic shop's shoppers use the live API and react to it.

Each session: a shopper (drawn by activity) opens the home feed — ``GET /v1/feed`` of the
live app, served over HTTP by uvicorn in a thread of this process — and looks
at the ``size`` items returned; the storefront sends back (``POST /v1/events``, every event
echoing the list's ``request_id`` and its position) an impression per item, and the clicks,
add-to-carts and purchases drawn from the shopper's hidden tastes by ``data.behaviour`` — the
model that generated the shop's history. What is learned from those lists can therefore be
checked against what the shoppers really like.

Used by ``shoprank simulate`` (hand-blend traffic: the learned ranker's first training lists)
and by ``bench/ab_loop.py`` (an A/B test: hand blend vs learned ranker, read with the
project's KPI report).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import uvicorn

from core.settings import Settings
from data.behaviour import NEW_DAYS, Match, Tastes, buy_prob, cart_prob, click_prob
from data.catalog import Catalog
from data.loaders import load_users
from data.models import CATEGORY_SEPARATOR
from data.synthetic import BEHAVIOUR_TASTES, LEAVES
from serving.app import create_app
from serving.schemas import MAX_BATCH
from serving.state import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """The shop as the behaviour model sees it: item facts and every shopper's hidden tastes."""

    item_index: dict[str, int]
    leaf: list[str]
    brand: list[str | None]
    relprice: np.ndarray
    created: np.ndarray
    """µs since 1970."""
    rating: np.ndarray
    price: np.ndarray
    user_ids: list[str]
    user_leaves: list[frozenset[str]]
    user_brands: list[frozenset[str]]
    tastes: Tastes
    activity: np.ndarray
    consent: np.ndarray

    @classmethod
    def from_shop(cls, data_dir: Path) -> World:
        """From a generated shop's ``items.jsonl``, ``users.jsonl`` and hidden truth."""
        usual = {CATEGORY_SEPARATOR.join(lf.zh): lf.price for lf in LEAVES}
        index: dict[str, int] = {}
        leaf, brand, rel, created, rating, price = [], [], [], [], [], []
        catalog = Catalog.from_jsonl(data_dir / "items.jsonl")  # validated; bad rows set aside
        for iid in catalog.ids():
            f = catalog.facts(iid)
            if f is None:
                continue
            index[iid] = len(leaf)
            path = f.category_path
            leaf.append(path)
            brand.append(f.brand)
            rel.append(f.price / usual.get(path, f.price) if f.price > 0 else 1.0)
            price.append(f.price)
            created.append(float(f.created_us))
            rating.append(np.nan if f.rating is None else f.rating)
        truth = pq.read_table(data_dir / "truth_users.parquet")
        missing = [c for c in BEHAVIOUR_TASTES if c not in truth.column_names]
        if missing:
            raise ValueError(
                f"{data_dir}: the truth lacks {', '.join(missing)}; generate the shop again")
        consent = {u.user_id: u.consent for u in load_users(data_dir / "users.jsonl").records}
        col = truth.column
        uids = col("user_id").to_pylist()
        return cls(
            item_index=index, leaf=leaf, brand=brand, relprice=np.array(rel),
            created=np.array(created), rating=np.array(rating, dtype=float),
            price=np.array(price), user_ids=uids,
            user_leaves=[frozenset(v) for v in col("leaves").to_pylist()],
            user_brands=[frozenset(v) for v in col("brands").to_pylist()],
            tastes=Tastes(
                price_sensitivity=np.asarray(col("price_sensitivity")),
                **{k: np.asarray(col(k)) for k in BEHAVIOUR_TASTES},
            ),
            activity=np.asarray(col("activity")),
            consent=np.array([consent.get(u, True) for u in uids]),
        )

    def react(self, u: int, item_ids: list[str], now: datetime, rng: np.random.Generator
              ) -> list[tuple[int, str, str]]:
        """(position, item id, event type) of the shopper's reaction to the list shown."""
        rows = np.array([self.item_index.get(i, -1) for i in item_ids])
        ok = rows >= 0
        pos = np.flatnonzero(ok)
        rows = rows[ok]
        if not len(rows):
            return []
        m = Match(
            in_leaf=np.array([self.leaf[r] in self.user_leaves[u] for r in rows]),
            brand=np.array([self.brand[r] in self.user_brands[u] for r in rows]),
            relprice=self.relprice[rows],
            is_new=(now.timestamp() * 1e6 - self.created[rows]) < NEW_DAYS * 86_400e6,
            rating=self.rating[rows],
        )
        t = self.tastes.take(np.full(len(rows), u))
        out = [(int(p), item_ids[p], "impression") for p in pos]
        click = rng.random(len(rows)) < click_prob(t, m, pos)
        cart = click & (rng.random(len(rows)) < cart_prob(t, m))
        buy = cart & (rng.random(len(rows)) < buy_prob(t, m))
        for k in np.flatnonzero(click):
            p = int(pos[k])
            out.append((p, item_ids[p], "click"))
            if cart[k]:
                out.append((p, item_ids[p], "add_to_cart"))
            if buy[k]:
                out.append((p, item_ids[p], "purchase"))
        return out


@dataclass
class LoopStats:
    sessions: int = 0
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    errors: int = 0


class LiveClient(httpx.Client):
    """An HTTP client of the app served by :func:`live_api`, with that app's services (for
    reports drawn in process, such as the KPI charts)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], services: Services) -> None:
        super().__init__(base_url=base_url, headers=dict(headers), timeout=60.0)
        self.services = services


@contextmanager
def live_api(settings: Settings, versions: Mapping[str, str] | None = None, *,
             search: bool = False) -> Iterator[LiveClient]:
    """The app of ``settings`` served over HTTP by uvicorn on a free local port, in a thread
    of this process (start-up and shut-down run), and a client of it sending the admin key.
    ``versions``: serve these model versions instead of the current; ``search``: open the
    search backend too (an index must exist)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    services = Services.build(settings, with_search=search)
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    try:
        if versions:
            services.reload_models(dict(versions))
        headers = {}
        if settings.admin_api_key is not None:
            headers["X-API-Key"] = settings.admin_api_key.get_secret_value()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(
            create_app(settings, services), log_level="warning", access_log=False,
            lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="live-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process API server did not start (see the log)")
            time.sleep(0.01)
        with LiveClient(f"http://127.0.0.1:{port}", headers, services) as client:
            yield client
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=60)
        services.close()


def run_sessions(
    client: httpx.Client,
    world: World,
    n_sessions: int,
    *,
    seed: int = 0,
    size: int = 20,
    users: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    batch: int = 20,
) -> LoopStats:
    """``n_sessions`` feed sessions of shoppers drawn by activity (from ``users`` rows).

    Events are posted ``batch`` sessions at a time (one durable write per post instead of one
    per session), and always before the same shopper's next feed request, so each shopper's
    feed sees everything they did before; other shoppers' events (live counts) may reach the
    server up to ``batch`` sessions late."""
    rng = np.random.default_rng([seed, 17])
    pool = np.flatnonzero(world.consent) if users is None else users
    w = world.activity[pool] / world.activity[pool].sum()
    stats = LoopStats()
    pending: list[dict[str, Any]] = []
    waiting: set[str] = set()  # shoppers with events not yet posted
    held = 0

    def post() -> None:
        nonlocal held
        if pending:
            got = client.post("/v1/events", json={"events": pending})
            if got.status_code >= 300:
                stats.errors += 1
                log.warning("events refused: %s %s", got.status_code, got.text[:200])
        pending.clear()
        waiting.clear()
        held = 0

    for s in range(n_sessions):
        u = int(rng.choice(pool, p=w))
        uid = world.user_ids[u]
        if uid in waiting:
            post()
        r = client.get("/v1/feed", params={"user_id": uid, "size": size})
        if r.status_code != 200:
            stats.errors += 1
            continue
        body = r.json()
        rid = body["request_id"]
        ids = [it["item_id"] for it in body["items"]]
        now = datetime.now(UTC)
        for k, (pos, iid, etype) in enumerate(world.react(u, ids, now, rng)):
            ev: dict[str, Any] = {
                "event_id": f"sim-{rid}-{k}", "user_id": uid, "item_id": iid, "type": etype,
                # in order, µs apart: all past by the next call (an experiment stopped right
                # after the last session still counts its events)
                "timestamp": (now + timedelta(microseconds=k)).isoformat(),
                "context": {"request_id": rid, "position": pos, "surface": "feed",
                            "session_id": f"sim-{seed}-{s}"},
            }
            if etype == "purchase":
                ev["value"] = float(world.price[world.item_index[iid]])
            pending.append(ev)
            waiting.add(uid)
            stats.impressions += etype == "impression"
            stats.clicks += etype == "click"
            stats.carts += etype == "add_to_cart"
            stats.purchases += etype == "purchase"
        stats.sessions += 1
        held += 1
        if held >= batch or len(pending) > MAX_BATCH - 4 * size:  # a session adds ≤ 4 × size
            post()
        if progress is not None:
            progress(s + 1)
    post()
    return stats
