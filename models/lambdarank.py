"""The learned ranker: LightGBM LambdaRank over :data:`models.ranker_features.FEATURES`.

Not a :class:`~models.base.Recommender` (it orders given candidates, it does not retrieve),
but it has the registry's duck type — ``algorithm``, ``params``, ``n_users``, ``n_items``,
``save`` — so ``models.registry.Registry`` versions, promotes and rolls it back like the
others, under the name :data:`RANKER_NAME`. Saved without pickle: LightGBM's own text model
(``model.txt``) and ``ranker.json`` (feature names, parameters, item statistics).

Position bias: LightGBM's position-debiased LambdaRank (``Dataset(position=…)``, see
docs/decisions.md) learns one bias factor per logged position next to the trees, so clicks
the top positions got for being on top are not credited to the items' features; serving needs
no position at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelLoadError
from models.forest import Forest
from models.ranker_features import FEATURES, ItemStats

RANKER_NAME = "ranker"
"""The registry name of the learned ranker."""
MODEL_FILE = "model.txt"
META_FILE = "ranker.json"


@dataclass(frozen=True)
class RankerParams:
    num_trees: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    seed: int = 7


class LambdaRanker:
    """Scores candidate lists with a LightGBM LambdaRank booster."""

    algorithm = "lambdarank"

    def __init__(self, params: RankerParams | None = None) -> None:
        self.params = params or RankerParams()
        self.booster_: Any = None
        self.forest_: Forest | None = None
        """The booster's trees as arrays: what :meth:`predict` walks (see ``forest``)."""
        self.features_: tuple[str, ...] = FEATURES
        self.stats_: ItemStats = ItemStats()
        self.n_lists_: int = 0
        self.n_items: int = 0
        self.n_users: int = 0

    # ------------------------------------------------------------------ training
    def fit(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        groups: np.ndarray,
        positions: np.ndarray | None = None,
        *,
        stats: ItemStats | None = None,
    ) -> LambdaRanker:
        """``x``: rows of :data:`FEATURES`; ``groups``: list sizes in row order; ``labels``:
        0 impression … 3 purchase; ``positions``: where each row was shown (debiasing)."""
        import lightgbm as lgb  # heavy: only training and serving a ranker need it

        if len(groups) == 0 or x.shape[0] != int(np.sum(groups)):
            raise ValueError("groups must be the list sizes of the rows of x (and not empty)")
        p = self.params
        ds = lgb.Dataset(x, label=labels, group=groups, position=positions,
                         feature_name=list(FEATURES), free_raw_data=True)
        self.booster_ = lgb.train(
            {
                "objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [10],
                "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
                "min_data_in_leaf": p.min_data_in_leaf, "feature_fraction": p.feature_fraction,
                "lambdarank_truncation_level": 20, "label_gain": [0, 1, 3, 7],
                "seed": p.seed, "deterministic": True, "num_threads": 1, "verbose": -1,
            },
            ds, num_boost_round=p.num_trees,
        )
        self.features_ = FEATURES
        self.forest_ = Forest.from_dump(self.booster_.dump_model())
        self.stats_ = stats or ItemStats()
        self.n_lists_ = len(groups)
        self.n_items = len(self.stats_.popularity)
        return self

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if self.booster_ is None:
            raise ModelLoadError("the ranker is not fitted; call fit() or load() first")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """One score per row (higher is better)."""
        self._check_fitted()
        if x.shape[1] != len(self.features_):
            raise ValueError(f"expected {len(self.features_)} features, got {x.shape[1]}")
        return self.forest_.predict(x)  # type: ignore[union-attr]

    def predict_booster(self, x: np.ndarray) -> np.ndarray:
        """The same scores from LightGBM's own predict (slower per call; for checks)."""
        self._check_fitted()
        return np.asarray(self.booster_.predict(x, num_threads=1), dtype=np.float64)

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> None:
        self._check_fitted()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(out / MODEL_FILE))
        meta = {"algorithm": self.algorithm, "params": asdict(self.params),
                "features": list(self.features_), "n_lists": self.n_lists_,
                "stats": self.stats_.to_json()}
        (out / META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> LambdaRanker:
        import lightgbm as lgb  # heavy: only a ranker needs it

        src = Path(folder)
        try:
            meta = json.loads((src / META_FILE).read_text("utf-8"))
            booster = lgb.Booster(model_file=str(src / MODEL_FILE))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ModelLoadError(f"{src}: not a saved ranker ({exc})") from exc
        if tuple(meta["features"]) != FEATURES:
            raise ModelLoadError(
                f"{src}: trained on other features than this code computes; train the ranker again"
            )
        m = cls(RankerParams(**meta["params"]))
        m.booster_ = booster
        m.forest_ = Forest.from_dump(booster.dump_model())
        m.features_ = tuple(meta["features"])
        m.stats_ = ItemStats.from_json(meta["stats"])
        m.n_lists_ = int(meta["n_lists"])
        m.n_items = len(m.stats_.popularity)
        return m
