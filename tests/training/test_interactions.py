from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from data.event_table import events_to_table
from data.models import Event, Item, User
from models.errors import TrainingDataError
from models.interactions import MatrixConfig
from models.vocab import Vocabulary
from training.interactions import Catalog, build_interactions, encode_events, relevance_matrix

T = datetime(2025, 5, 1, tzinfo=UTC)
NO_DECAY = MatrixConfig(half_life_days=None)


def ev(n: int, user: str, item: str | None, type_: str, days_ago: float = 0.0,
       value: float | None = None, session: str | None = None, eid: str | None = None) -> Event:
    ctx: dict[str, str] = {"session_id": session} if session else {}
    if type_ == "search":
        ctx["query"] = "dress"
    return Event(event_id=eid or f"e{n}", user_id=user, item_id=item, type=type_,
                 timestamp=T - timedelta(days=days_ago), value=value, context=ctx)


def build(events: list[Event], config: MatrixConfig = NO_DECAY, **kw):  # type: ignore[no-untyped-def]
    frame = encode_events(events_to_table(events), **{k: kw.pop(k) for k in ("users",) if k in kw})
    return build_interactions(frame, config, **kw)


def weight(data, user: str, item: str) -> float:  # type: ignore[no-untyped-def]
    return float(data.matrix[data.users.index(user), data.items.index(item)])


def test_weights_per_event_type_add_up() -> None:
    d = build([ev(1, "u1", "i1", "view"), ev(2, "u1", "i1", "purchase"),
               ev(3, "u1", "i2", "click"), ev(4, "u1", "i3", "impression"),
               ev(5, "u1", None, "search")])
    assert weight(d, "u1", "i1") == 9.0  # view 1 + purchase 8
    assert weight(d, "u1", "i2") == 2.0
    assert "i3" not in d.items  # impressions weigh 0 by default
    assert d.matrix.dtype == np.float32 and d.matrix.format == "csr"


def test_custom_weights_and_ratings_scaled_by_value() -> None:
    cfg = MatrixConfig(weights={"view": 0.5, "rate": 2.0}, half_life_days=None, min_rating=3.5)
    d = build([ev(1, "u1", "i1", "view"), ev(2, "u1", "i2", "rate", value=4.0),
               ev(3, "u1", "i3", "rate", value=3.0), ev(4, "u1", "i4", "purchase")], cfg)
    assert weight(d, "u1", "i1") == 0.5
    assert weight(d, "u1", "i2") == 8.0  # 2 × rating 4
    assert "i3" not in d.items and "i4" not in d.items  # rating below 3.5; purchase not weighted
    with pytest.raises(TrainingDataError, match="unknown event types"):
        MatrixConfig(weights={"like": 1.0})


def test_time_decay_halves_per_half_life() -> None:
    cfg = MatrixConfig(half_life_days=2.0)
    d = build([ev(1, "u1", "i1", "view", days_ago=0), ev(2, "u1", "i1", "view", days_ago=2),
               ev(3, "u1", "i2", "view", days_ago=4)], cfg)
    assert weight(d, "u1", "i1") == pytest.approx(1.5)
    assert weight(d, "u1", "i2") == pytest.approx(0.25)
    later = build([ev(1, "u1", "i1", "view", days_ago=0)], cfg,
                  reference_time=T + timedelta(days=2))
    assert weight(later, "u1", "i1") == pytest.approx(0.5)


def test_refunds_cancel_purchases() -> None:
    d = build([
        ev(1, "u1", "i1", "purchase"), ev(2, "u1", "i1", "purchase"), ev(3, "u1", "i1", "refund"),
        ev(4, "u1", "i2", "view"), ev(5, "u1", "i2", "purchase"), ev(6, "u1", "i2", "refund"),
        ev(7, "u2", "i3", "purchase"), ev(8, "u2", "i3", "refund"),
        ev(9, "u2", "i1", "purchase"),  # another user's refund of i1 does not touch this
    ])
    assert weight(d, "u1", "i1") == 8.0  # two purchases, one refunded
    assert weight(d, "u1", "i2") == 1.0  # the view stays, the purchase is cancelled
    assert weight(d, "u2", "i1") == 8.0
    assert "i3" not in d.items  # only a refunded purchase: nothing left
    kept = build([ev(1, "u1", "i1", "purchase"), ev(2, "u1", "i1", "refund")],
                 MatrixConfig(half_life_days=None, refunds_cancel_purchases=False))
    assert weight(kept, "u1", "i1") == 8.0


def test_users_without_consent_are_left_out() -> None:
    events = [ev(1, "u1", "i1", "view"), ev(2, "u2", "i1", "purchase"), ev(3, "u2", "i2", "view")]
    d = build(events, users=[User(user_id="u1"), User(user_id="u2", consent=False)])
    assert "u1" in d.users and "u2" not in d.users
    assert "i2" not in d.items  # only the non-consenting user touched it
    assert d.n_events == 1


def test_duplicate_event_ids_count_once() -> None:
    d = build([ev(1, "u1", "i1", "purchase", eid="x"), ev(2, "u1", "i1", "purchase", eid="x"),
               ev(3, "u1", "i1", "view")])
    assert weight(d, "u1", "i1") == 9.0


def test_minimum_counts_filter_users_and_items() -> None:
    events = [ev(1, "u1", "i1", "view"), ev(2, "u1", "i2", "view"), ev(3, "u2", "i1", "view"),
              ev(4, "u2", "i2", "view"), ev(5, "u3", "i1", "view"), ev(6, "u4", "i3", "view")]
    d = build(events, MatrixConfig(half_life_days=None, min_user_items=2))
    assert list(d.users.ids) == ["u1", "u2"]
    d2 = build(events, MatrixConfig(half_life_days=None, min_item_users=2))
    assert set(d2.items.ids) == {"i1", "i2"} and "u4" not in d2.users


def test_catalog_items_without_events_become_cold_columns() -> None:
    items = [Item(item_id=i, title=f"t {i}", price=1.0, category=("A", "B")) for i in ("i1", "i9")]
    d = build([ev(1, "u1", "i1", "view")], catalog=Catalog.from_items(items))
    assert list(d.items.ids) == ["i1", "i9"] and d.matrix.shape == (1, 2)
    assert d.matrix[0, 1] == 0 and d.catalog is not None
    assert d.catalog.categories[1] == ("A", "B")


def test_events_are_kept_in_index_space_for_models() -> None:
    d = build([ev(1, "u1", "i1", "view", session="s"), ev(2, "u2", "i2", "purchase", session="s2")])
    assert d.events is not None
    assert sorted(zip(d.events.user.tolist(), d.events.item.tolist(), strict=True)) == [
        (d.users.index("u1"), d.items.index("i1")), (d.users.index("u2"), d.items.index("i2"))]


def test_relevance_matrix_uses_train_index_and_drops_train_items() -> None:
    train = build([ev(1, "u1", "i1", "view"), ev(2, "u1", "i2", "view"), ev(3, "u2", "i2", "view")])
    test = encode_events(events_to_table([
        ev(4, "u1", "i1", "purchase"),  # already in train: not relevant
        ev(5, "u1", "i2", "view"), ev(6, "u2", "i1", "click"),
        ev(7, "u3", "i1", "view"),  # unknown user
        ev(8, "u2", "i7", "view"),  # unknown item
        ev(9, "u2", "i1", "impression"),  # weight 0: not relevant
    ]))
    rel = relevance_matrix(test, train)
    assert rel.shape == train.shape
    assert rel.nnz == 1 and rel[train.users.index("u2"), train.items.index("i1")] == 1


def test_no_events_is_a_clear_error() -> None:
    with pytest.raises(TrainingDataError, match="no events"):
        build([ev(1, "u1", "i1", "view")], users=[User(user_id="u1", consent=False)])


def test_vocabulary_round_trip(tmp_path: Path) -> None:
    v = Vocabulary(["a", "連衣裙", "c"])
    v.save(tmp_path / "v.json")
    w = Vocabulary.load(tmp_path / "v.json")
    assert w == v and w.index("連衣裙") == 1 and w.index("zz") == -1
    assert w.indices(["c", "nope"]).tolist() == [2, -1]


def test_same_time_different_ids_are_not_duplicates() -> None:
    d = build([ev(1, "u1", "i1", "purchase", eid="a"), ev(2, "u1", "i1", "purchase", eid="b"),
               ev(3, "u1", "i1", "purchase", eid="a"), ev(4, "u2", "i1", "view", eid="c"),
               ev(5, "u2", "i1", "view", eid="c")])
    assert weight(d, "u1", "i1") == 16.0  # a and b count, the repeated a does not
    assert weight(d, "u2", "i1") == 1.0
