"""The interaction matrix models fit on, and how events are weighted into it.

Training builds :class:`Interactions` (``training.interactions.build_interactions``); models
read it (``models.base.Recommender.fit``). The types live here, below both, so neither imports
the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

import numpy as np
import scipy.sparse as sp

from data.models import EVENT_TYPES
from models.errors import TrainingDataError
from models.vocab import Vocabulary

TYPE_CODE: Mapping[str, int] = MappingProxyType({t: i for i, t in enumerate(EVENT_TYPES)})

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "impression": 0.0,
        "view": 1.0,
        "click": 2.0,
        "favorite": 3.0,
        "share": 2.0,
        "add_to_cart": 4.0,
        "remove_from_cart": 0.0,
        "purchase": 8.0,
        "refund": 0.0,
        "rate": 1.0,  # multiplied by the rating value (0–5)
        "search": 0.0,
    }
)


@dataclass(frozen=True)
class MatrixConfig:
    """How events become interaction weights."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Weight per event type; missing types count 0. A ``rate`` event weighs ``weight × value``."""
    half_life_days: float | None = 30.0
    """Exponential time decay: an event this many days before the reference time counts half.
    ``None`` disables decay."""
    min_rating: float = 0.0
    """Ratings below this are ignored (e.g. 3.5 to keep only liked movies)."""
    refunds_cancel_purchases: bool = True
    """Each refund of (user, item) cancels one purchase of it."""
    transform: Literal["none", "log1p", "binary"] = "none"
    """Applied to the summed weights of each (user, item)."""
    min_user_items: int = 1
    """Users with fewer distinct items are dropped (after weighting)."""
    min_item_users: int = 1
    """Items with fewer distinct users are dropped (catalog items come back as cold columns)."""

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(EVENT_TYPES)
        if unknown:
            raise TrainingDataError(
                f"weights: unknown event types {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}"
            )
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise TrainingDataError("half_life_days must be positive (or null for no decay)")
        if self.min_user_items < 1 or self.min_item_users < 1:
            raise TrainingDataError("min_user_items and min_item_users must be at least 1")

    def weight_vector(self) -> np.ndarray:
        """Weights indexed by type code."""
        w = np.zeros(len(EVENT_TYPES), dtype=np.float32)
        for name, value in self.weights.items():
            w[TYPE_CODE[name]] = value
        return w


@dataclass(frozen=True)
class ItemFeatures:
    """Catalog fields the models use, one entry per item of a vocabulary, in its order."""

    titles: tuple[str, ...]
    brands: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    tags: tuple[tuple[str, ...], ...]
    created_at: np.ndarray  # float64 epoch seconds, NaN if unknown


@dataclass(frozen=True)
class TrainEvents:
    """The weighted events behind a matrix, in its index space (for trending, baskets)."""

    user: np.ndarray  # int32 user index
    item: np.ndarray  # int32 item index
    type: np.ndarray  # int8 type code
    weight: np.ndarray  # float32 type weight (no decay)
    ts: np.ndarray  # float64 seconds
    basket: np.ndarray  # int32, -1 if none


@dataclass(frozen=True)
class Interactions:
    """What models fit on. ``matrix`` is users × items, CSR, float32."""

    matrix: sp.csr_matrix
    users: Vocabulary
    items: Vocabulary
    reference_time: float
    window: tuple[float, float]
    config: MatrixConfig = field(default_factory=MatrixConfig)
    events: TrainEvents | None = None
    catalog: ItemFeatures | None = None
    n_events: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[no-any-return]

    def counts(self) -> dict[str, int]:
        return {
            "users": self.matrix.shape[0],
            "items": self.matrix.shape[1],
            "interactions": int(self.matrix.nnz),
            "events": self.n_events,
        }

    def with_matrix(self, matrix: sp.csr_matrix, events: TrainEvents | None) -> Interactions:
        return replace(self, matrix=matrix.tocsr(), events=events)
