"""Hold-out protocols: cut an :class:`~training.interactions.EventFrame` into train and test.

* :func:`temporal_split` — one global cut-off time: everything before trains, after tests.
  The realistic one for a shop (the model never sees the future).
* :func:`leave_last_n` — per user, their last ``n`` positive interactions are held out.
* :func:`random_split` — per user, a random share of their (user, item) pairs is held out;
  all events of a pair fall on the same side, so a test item is never also a train item.

Tuning carves its validation split out of the *train* side with the same functions
(``training.tune``), so the test side is never looked at while choosing parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from models.errors import TrainingDataError
from models.interactions import DEFAULT_WEIGHTS, TYPE_CODE
from training.interactions import EventFrame

SplitKind = Literal["temporal", "leave_last_n", "random"]


@dataclass(frozen=True)
class Split:
    train: EventFrame
    test: EventFrame
    kind: SplitKind
    description: str


def _positive(frame: EventFrame) -> np.ndarray:
    ok = np.zeros(len(TYPE_CODE), dtype=bool)
    for name, w in DEFAULT_WEIGHTS.items():
        ok[TYPE_CODE[name]] = w > 0
    return ok[frame.type] & (frame.item >= 0)


def temporal_split(
    frame: EventFrame,
    *,
    cutoff: float | datetime | None = None,
    test_fraction: float = 0.2,
) -> Split:
    """Events at or after ``cutoff`` (default: the time leaving ``test_fraction`` of the
    events after it) are the test side."""
    if len(frame) == 0:
        raise TrainingDataError("cannot split an empty set of events")
    if cutoff is None:
        if not 0 < test_fraction < 1:
            raise TrainingDataError("test_fraction must be between 0 and 1")
        cutoff = float(np.quantile(frame.ts, 1.0 - test_fraction))
    elif isinstance(cutoff, datetime):
        cutoff = cutoff.timestamp()
    test = frame.ts >= cutoff
    if test.all() or not test.any():
        raise TrainingDataError(
            "the cut-off leaves one side of the split empty; choose a time inside the data window"
        )
    when = datetime.fromtimestamp(cutoff).astimezone().isoformat(timespec="seconds")
    return Split(frame.take(~test), frame.take(test), "temporal", f"temporal, cut-off {when}")


def leave_last_n(frame: EventFrame, *, n: int = 1) -> Split:
    """Per user, events at or after the time of their ``n``-th last positive event are test.

    Users with at most ``n`` positive events stay entirely in train.
    """
    if n < 1:
        raise TrainingDataError("n must be at least 1")
    pos = np.flatnonzero(_positive(frame))
    order = pos[np.lexsort((frame.ts[pos], frame.user[pos]))]
    users = frame.user[order]
    n_users = len(frame.user_ids)
    counts = np.bincount(users, minlength=n_users)
    ends = np.cumsum(counts)
    # Index (into `order`) of each user's n-th last positive event.
    idx = ends - n
    eligible = counts > n
    threshold = np.full(n_users, np.inf)
    threshold[eligible] = frame.ts[order[idx[eligible]]]
    test = frame.ts >= threshold[frame.user]
    return Split(frame.take(~test), frame.take(test), "leave_last_n", f"leave last {n} per user")


def random_split(frame: EventFrame, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Per user, a random ``test_fraction`` of their positive (user, item) pairs is test.

    A user keeps at least one pair in train.
    """
    if not 0 < test_fraction < 1:
        raise TrainingDataError("test_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    n_items = max(1, len(frame.item_ids))
    pair = frame.user.astype(np.int64) * (n_items + 1) + (frame.item.astype(np.int64) + 1)
    pos = _positive(frame)
    pairs, inv = np.unique(pair, return_inverse=True)
    pair_user = (pairs // (n_items + 1)).astype(np.int64)
    pair_pos = np.bincount(inv, weights=pos.astype(float), minlength=len(pairs)) > 0
    r = rng.random(len(pairs))
    held = pair_pos & (r < test_fraction)
    # A user whose every positive pair was drawn keeps the one with the highest draw.
    n_users = len(frame.user_ids)
    n_pos = np.bincount(pair_user[pair_pos], minlength=n_users)
    n_held = np.bincount(pair_user[held], minlength=n_users)
    all_held = np.flatnonzero((n_pos > 0) & (n_pos == n_held))
    if all_held.size:
        cand = np.flatnonzero(pair_pos & np.isin(pair_user, all_held))
        o = cand[np.lexsort((-r[cand], pair_user[cand]))]
        first = np.ones(len(o), dtype=bool)
        first[1:] = pair_user[o][1:] != pair_user[o][:-1]
        held[o[first]] = False
    test = held[inv]
    return Split(frame.take(~test), frame.take(test), "random",
                 f"random {test_fraction:.0%} of each user's items, seed {seed}")


def make_split(frame: EventFrame, kind: SplitKind, **options: float | int | None) -> Split:
    """Dispatch by name (for configs and the CLI)."""
    if kind == "temporal":
        return temporal_split(frame, **options)  # type: ignore[arg-type]
    if kind == "leave_last_n":
        return leave_last_n(frame, **options)  # type: ignore[arg-type]
    if kind == "random":
        return random_split(frame, **options)  # type: ignore[arg-type]
    raise TrainingDataError(f"unknown split {kind!r}; choose temporal, leave_last_n or random")
