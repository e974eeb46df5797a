"""Hyperparameter search on a validation split carved out of the training side.

The data is split once as for evaluation (train | test). The *train* side is split again
the same way (train' | validation); every candidate is fitted on train' and scored on
validation. The test side is only touched afterwards, to report how the chosen parameters
do on data the search never saw.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.interactions import MatrixConfig
from training.evaluate import EvalData, ModelSpec, evaluate_model, prepare
from training.interactions import Catalog, EventFrame
from training.split import Split, SplitKind, make_split

if TYPE_CHECKING:
    from training.config import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_SPACES: Mapping[str, Mapping[str, Sequence[Any]]] = {
    "als": {"factors": [32, 64, 128], "regularization": [0.01, 0.05, 0.2, 1.0],
            "alpha": [1.0, 2.0, 5.0, 10.0], "iterations": [10, 15, 25]},
    "bpr": {"factors": [32, 64, 128], "learning_rate": [0.01, 0.05, 0.1],
            "regularization": [0.001, 0.01, 0.05], "iterations": [50, 100, 200]},
    "item_knn": {"similarity": ["cosine", "bm25", "tfidf"], "neighbors": [20, 50, 100, 200]},
    "ease": {"l2": [10.0, 50.0, 200.0, 500.0, 1000.0]},
    "content": {"popularity_weight": [0.0, 0.3, 1.0, 2.0], "max_df": [0.2, 0.5]},
    "bought_together": {"min_support": [1, 2, 3, 5], "measure": ["lift", "confidence"]},
    "trending": {"half_life_days": [1.0, 3.0, 7.0, 14.0]},
}


@dataclass(frozen=True)
class Trial:
    algorithm: str
    params: dict[str, Any]
    score: float
    metrics: dict[str, float]


@dataclass(frozen=True)
class TuneResult:
    metric: str
    trials: list[Trial]
    best: dict[str, Trial]
    """Best trial per algorithm (on validation)."""
    test: dict[str, dict[str, float]]
    """Metrics of each best setting refitted on the whole train side, scored on test."""


def candidates(
    space: Mapping[str, Sequence[Any]], trials: int, seed: int = 0
) -> list[dict[str, Any]]:
    """The whole grid if it has at most ``trials`` points, else a seeded random sample."""
    keys = sorted(space)
    grid = [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(space[k] for k in keys))]
    if len(grid) <= trials:
        return grid
    pick = np.random.default_rng(seed).choice(len(grid), size=trials, replace=False)
    return [grid[i] for i in sorted(pick)]


def tune(
    frame: EventFrame,
    algorithms: Sequence[str],
    *,
    split: SplitKind = "temporal",
    split_options: Mapping[str, Any] | None = None,
    config: MatrixConfig | None = None,
    catalog: Catalog | None = None,
    spaces: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    base_params: Mapping[str, Mapping[str, Any]] | None = None,
    trials: int = 8,
    metric: str = "ndcg@10",
    ks: Sequence[int] = (1, 5, 10, 20),
    max_users: int | None = 20_000,
    seed: int = 0,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Search each algorithm's space; return every trial, the best ones and their test scores."""
    opts = dict(split_options or {})
    outer: Split = make_split(frame, split, **opts)
    inner: EvalData = prepare(outer.train, split, config=config, catalog=catalog, **opts)
    spaces = {**DEFAULT_SPACES, **(spaces or {})}
    all_trials: list[Trial] = []
    best: dict[str, Trial] = {}
    for alg in algorithms:
        space = spaces.get(alg)
        if not space:
            raise ValueError(f"no search space for {alg!r}; add [tune.{alg}] to the config")
        for params in candidates(space, trials, seed):
            full = {**dict((base_params or {}).get(alg, {})), **params}
            model = ModelSpec(alg, alg, full).create().fit(inner.train)
            m = evaluate_model(model, inner, ks, max_users=max_users, seed=seed)
            t = Trial(alg, full, m[metric], m)
            all_trials.append(t)
            if on_trial is not None:
                on_trial(t)
            if alg not in best or t.score > best[alg].score:
                best[alg] = t
    test: dict[str, dict[str, float]] = {}
    final = prepare(frame, outer, config=config, catalog=catalog)
    for alg, t in best.items():
        model = ModelSpec(alg, alg, t.params).create().fit(final.train)
        test[alg] = evaluate_model(model, final, ks, max_users=max_users, seed=seed)
    return TuneResult(metric, all_trials, best, test)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        inner = ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def write_tuned_config(path: Path, cfg: TrainConfig, res: TuneResult) -> None:
    """``cfg`` with each tuned algorithm's models set to its best settings, as TOML that
    ``training.config.load_config`` reads (``shoprank train --config`` then records the
    settings in every version's manifest, ``params``)."""
    raw = cfg.model_dump(mode="json")
    data = raw.get("data", {})
    for k in ("events", "items", "users", "truth"):  # absolute: the file may live elsewhere
        v = data.get(k)
        if isinstance(v, list):
            data[k] = [str(Path(x).resolve()) for x in v]
        elif isinstance(v, str):
            data[k] = str(Path(v).resolve())
    for m in raw["models"]:
        best = res.best.get(m["algorithm"])
        if best is not None:
            m["params"] = dict(best.params)
    have = {m["algorithm"] for m in raw["models"]}
    raw["models"] += [{"name": a, "algorithm": a, "params": dict(t.params)}
                      for a, t in res.best.items() if a not in have]
    lines = [f"# Written by `shoprank tune` ({res.metric} on validation, then on test):"]
    lines += [f"#   {a}: {t.params} → validation {t.score:.4f}, test "
              f"{res.test[a].get(res.metric, float('nan')):.4f}" for a, t in res.best.items()]
    for section, body in raw.items():
        if isinstance(body, dict):
            lines.append(f"\n[{section}]")
            for k, v in body.items():
                if v is not None and not isinstance(v, dict):
                    lines.append(f"{k} = {_toml_value(v)}")
            for k, v in body.items():
                if isinstance(v, dict):
                    lines.append(f"\n[{section}.{k}]")
                    lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items() if vv is not None]
        elif isinstance(body, list):
            for entry in body:
                lines.append(f"\n[[{section}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items() if v is not None]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
