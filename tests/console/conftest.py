"""Fixtures for the merchandising API and console tests: a small synthetic shop, trained and
indexed, served by the real app under uvicorn on a free port; a storefront simulator that
sends traffic through the public API."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from serving.app import create_app
from serving.state import Services
from tests.serving import shop
from tests.serving.conftest import ServerThread, free_port

ADMIN_KEY = "merch-admin-" + "m" * 20
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
MODELS = ("als", "item_knn", "trending", "popularity", "new_arrivals", "bought_together")


@dataclass
class MerchLive:
    url: str
    services: Services
    home: Path
    tastes: dict[str, list[str]]

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": ADMIN_KEY}, timeout=60.0)

    def storefront(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0)


@pytest.fixture(scope="session")
def merch_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MerchLive]:
    from data.synthetic import ShopSpec, generate

    home = tmp_path_factory.mktemp("merch-shop")
    generate(
        ShopSpec(n_users=300, n_items=500, n_events=25_000, seed=5, days=30),
        home / "data",
        progress=False,
    )
    trained = shop.train(home / "data", only=MODELS)
    settings = Settings(
        home=home,
        environment="test",
        admin_api_key=ADMIN_KEY,  # type: ignore[arg-type]
        search_backend="embedded",
        model_poll_seconds=0,
    )
    services = Services.build(settings)
    assert services.search is not None
    services.search.rebuild(iter(services.catalog))
    services.models = shop.model_set(trained)
    server = ServerThread(create_app(settings, services), free_port())
    server.start()
    port = server.server.config.port
    yield MerchLive(f"http://127.0.0.1:{port}", services, home, shop.tastes(home / "data"))
    server.stop()
    services.close()


def simulate_feed_traffic(
    live: MerchLive, users: list[str], *, requests_per_user: int = 2, size: int = 10, seed: int = 1
) -> dict[str, int]:
    """Shoppers open the feed and click what matches their hidden tastes.

    The storefront echoes only the response's ``request_id`` in its events (no experiment or
    variant), so attribution has to come from the served-request log. A click happens with
    probability 0.03, or 0.30 when the item's category is one of the user's hidden taste
    leaves — so the variant whose ranking follows tastes better is truly better. A click leads
    to an add-to-cart 30 % of the time, and that to a purchase at the item's price half the time.
    """
    rng = random.Random(seed)
    counts = {"requests": 0, "impressions": 0, "clicks": 0, "purchases": 0}
    batch: list[dict[str, object]] = []
    with live.storefront() as http:

        def send() -> None:
            if batch:
                r = http.post("/v1/events", json={"events": batch})
                assert r.status_code in (200, 207), r.text
                batch.clear()

        for uid in users:
            taste = set(live.tastes.get(uid, []))
            for _ in range(requests_per_user):
                r = http.get("/v1/feed", params={"user_id": uid, "size": size})
                assert r.status_code == 200, r.text
                body = r.json()
                counts["requests"] += 1
                rid = body["request_id"]
                now = datetime.now(UTC).isoformat()
                for pos, it in enumerate(body["items"]):
                    ctx = {"request_id": rid, "position": pos}
                    batch.append(
                        {
                            "event_id": uuid.uuid4().hex,
                            "user_id": uid,
                            "item_id": it["item_id"],
                            "type": "impression",
                            "timestamp": now,
                            "context": ctx,
                        }
                    )
                    counts["impressions"] += 1
                    leaf = " > ".join(it["category"])
                    if rng.random() < (0.30 if leaf in taste else 0.03):
                        batch.append(
                            {
                                "event_id": uuid.uuid4().hex,
                                "user_id": uid,
                                "item_id": it["item_id"],
                                "type": "click",
                                "timestamp": now,
                                "context": ctx,
                            }
                        )
                        counts["clicks"] += 1
                        if rng.random() < 0.3:
                            batch.append(
                                {
                                    "event_id": uuid.uuid4().hex,
                                    "user_id": uid,
                                    "item_id": it["item_id"],
                                    "type": "add_to_cart",
                                    "timestamp": now,
                                    "context": ctx,
                                }
                            )
                            if rng.random() < 0.5:
                                batch.append(
                                    {
                                        "event_id": uuid.uuid4().hex,
                                        "user_id": uid,
                                        "item_id": it["item_id"],
                                        "type": "purchase",
                                        "timestamp": now,
                                        "value": it["price"],
                                        "context": ctx,
                                    }
                                )
                                counts["purchases"] += 1
                if len(batch) > 500:
                    send()
        send()
    return counts


def save_json(name: str, data: object) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
