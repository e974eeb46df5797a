from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from data.event_table import events_to_table
from data.models import Event
from models.errors import TrainingDataError
from training.interactions import encode_events
from training.split import leave_last_n, make_split, random_split, temporal_split

T = datetime(2025, 5, 1, tzinfo=UTC)


def frame(rows: list[tuple[str, str, str, int]]):  # type: ignore[no-untyped-def]
    return encode_events(events_to_table([
        Event(event_id=f"e{n}", user_id=u, item_id=i, type=t, timestamp=T + timedelta(days=d))
        for n, (u, i, t, d) in enumerate(rows)
    ]))


def pairs(f) -> set[tuple[str, str, int]]:  # type: ignore[no-untyped-def]
    return {(str(f.user_ids[u]), str(f.item_ids[i]), int((t - T.timestamp()) // 86400))
            for u, i, t in zip(f.user, f.item, f.ts, strict=True)}


def test_temporal_split_cuts_at_one_time() -> None:
    f = frame([("u1", "a", "view", 0), ("u1", "b", "view", 5), ("u2", "c", "view", 3),
               ("u2", "d", "view", 7)])
    s = temporal_split(f, cutoff=T + timedelta(days=4))
    assert pairs(s.train) == {("u1", "a", 0), ("u2", "c", 3)}
    assert pairs(s.test) == {("u1", "b", 5), ("u2", "d", 7)}
    by_share = temporal_split(f, test_fraction=0.25)
    assert len(by_share.test) == 1 and by_share.test.ts.min() >= by_share.train.ts.max()
    with pytest.raises(TrainingDataError, match="empty"):
        temporal_split(f, cutoff=T + timedelta(days=30))


def test_leave_last_n_per_user() -> None:
    f = frame([("u1", "a", "view", 0), ("u1", "b", "view", 1), ("u1", "c", "purchase", 2),
               ("u1", "x", "impression", 3),  # not positive, but after the cut: test side
               ("u2", "a", "view", 0)])  # only one positive event: stays in train
    s = leave_last_n(f, n=1)
    assert pairs(s.test) == {("u1", "c", 2), ("u1", "x", 3)}
    assert ("u2", "a", 0) in pairs(s.train)
    s2 = leave_last_n(f, n=2)
    assert {p[:2] for p in pairs(s2.test)} == {("u1", "b"), ("u1", "c"), ("u1", "x")}


def test_random_split_keeps_pairs_together_and_one_train_pair_per_user() -> None:
    rows = [(f"u{u}", f"i{i}", "view", d) for u in range(30) for i in range(6) for d in (0, 1)]
    f = frame(rows)
    s = random_split(f, test_fraction=0.3, seed=1)
    train = {(u, i) for u, i, _ in pairs(s.train)}
    test = {(u, i) for u, i, _ in pairs(s.test)}
    assert not train & test
    assert {u for u, _ in train} == {f"u{u}" for u in range(30)}
    share = len(test) / (len(test) + len(train))
    assert 0.15 < share < 0.4
    again = random_split(f, test_fraction=0.3, seed=1)
    assert np.array_equal(again.test.ts, s.test.ts)
    with pytest.raises(TrainingDataError, match="unknown split"):
        make_split(f, "weird")  # type: ignore[arg-type]
