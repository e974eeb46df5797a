"""What the first start imports into shopper state: each user's last history events, every
purchase and refund, nobody erased, each user's oldest first
(``serving.storage.past_shopper_events``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from serving.storage import past_shopper_events

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _table(rows: list[tuple[str, str | None, str, int]]) -> pa.Table:
    users, items, types, minutes = zip(*rows, strict=True)
    return pa.table({
        "user_id": list(users), "item_id": list(items), "type": list(types),
        "timestamp": pa.array([T0 + timedelta(minutes=m) for m in minutes],
                              pa.timestamp("us", tz="UTC")),
    })


def test_last_history_events_purchases_and_no_erased_user() -> None:
    hist = {"view", "purchase"}
    a = [("a", f"v{k}", "view", 10 + k) for k in range(6)]
    older = [("a", "p0", "purchase", 1), ("a", "p0", "refund", 2), ("a", "p1", "purchase", 3)]
    other = [("b", "x", "view", 5), ("b", None, "search", 6), ("gone", "y", "purchase", 7)]
    store = [("b", "late", "view", 100)]  # the event store's, after the file's
    got = [e for batch in past_shopper_events(
        [_table(a + older + other), _table(store)], {"gone"}, 3, hist, batch_size=4)
        for e in batch]
    a_got = [(e.item_id, e.type) for e in got if e.user_id == "a"]
    # the last 3 views; the purchases and the refund in time order, though older
    assert a_got == [("p0", "purchase"), ("p0", "refund"), ("p1", "purchase"),
                     ("v3", "view"), ("v4", "view"), ("v5", "view")]
    assert [(e.item_id, e.type) for e in got if e.user_id == "b"] == [("x", "view"),
                                                                         ("late", "view")]
    assert not [e for e in got if e.user_id == "gone"]
    for user in ("a", "b"):  # each user's events oldest first
        times = [e.timestamp for e in got if e.user_id == user]
        assert times == sorted(times)


def test_nothing_to_import() -> None:
    empty = _table([("a", "i", "view", 0)]).slice(0, 0)
    assert list(past_shopper_events([empty], set(), 20, {"view"})) == []
