"""A tiny shop with an obvious structure, shared by the model contract and training tests.

Two groups of six items (a0–a5: dresses, brand X; b0–b5: phones, brand Y). Even users only
touch group a, odd users group b; every user buys items 0 and 1 of their group in one
session (the planted bundle). Newest item: b5. Last events are on b2 (trending).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from data.event_table import events_to_table
from data.models import Event, Item, User
from models.interactions import Interactions
from training.interactions import Catalog, build_interactions, encode_events

T0 = datetime(2025, 3, 1, tzinfo=UTC)
GROUPS = {"a": (("服裝", "女裝", "連衣裙"), "X", "紅色連衣裙 Red Dress"),
          "b": (("電子", "手機"), "Y", "智能手机 Smart Phone")}


def items() -> list[Item]:
    out = []
    for g, (cat, brand, title) in GROUPS.items():
        for k in range(6):
            out.append(Item(item_id=f"{g}{k}", title=f"{title} {k}", category=cat, brand=brand,
                            price=100 + k, tags=(g,),
                            created_at=T0 - timedelta(days=30 - k - (10 if g == "b" else 0))))
    return out


def users(n: int = 20) -> list[User]:
    return [User(user_id=f"u{u}") for u in range(n)]


def events(n_users: int = 20) -> list[Event]:
    out: list[Event] = []

    def add(u: int, item: str, type_: str, day: float, session: str | None = None) -> None:
        out.append(Event(event_id=f"e{len(out)}", user_id=f"u{u}", item_id=item, type=type_,
                         timestamp=T0 + timedelta(days=day),
                         context={"session_id": session} if session else {}))

    for u in range(n_users):
        g = "ab"[u % 2]
        # each user views four items of the group: a rotating window
        for j in range(4):
            add(u, f"{g}{(u // 2 + j) % 6}", "view", 1 + j)
        add(u, f"{g}0", "purchase", 6, f"s{u}")
        add(u, f"{g}1", "purchase", 6, f"s{u}")
    for u in range(0, n_users, 2):  # group-a users glance at one phone lately
        add(u, "b2", "click", 9)
    return out


def interactions(**kw: object) -> Interactions:
    frame = encode_events(events_to_table(events()))
    return build_interactions(frame, catalog=Catalog.from_items(items()), **kw)  # type: ignore[arg-type]
