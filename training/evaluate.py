"""Offline evaluation: fit models on the train side of a split, rank for the test users,
score with :mod:`training.metrics`, compare, and plot.

Test users are those known at training time with at least one relevant test item (new
users cannot be ranked by a matrix model and would only measure the fallback). Items the
user already had in training are not relevant (every model filters them out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from models import create_model
from models.base import Recommender
from models.interactions import Interactions, MatrixConfig
from training import metrics as M
from training.interactions import Catalog, EventFrame, build_interactions, relevance_matrix
from training.split import Split, SplitKind, make_split

log = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: a registry name, an algorithm and its parameters."""

    name: str
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)

    def create(self) -> Recommender:
        return create_model(self.algorithm, **self.params)


@dataclass(frozen=True)
class EvalData:
    """A split made ready: training data and the relevance matrix of the test side."""

    train: Interactions
    relevant: sp.csr_matrix
    split: Split

    @property
    def users(self) -> np.ndarray:
        return M.evaluable_users(self.relevant)


@dataclass(frozen=True)
class EvalResult:
    name: str
    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float
    n_users: int

    def metric(self, name: str, k: int) -> float:
        return self.metrics[f"{name}@{k}"]


def prepare(
    frame: EventFrame,
    split: Split | SplitKind = "temporal",
    *,
    config: MatrixConfig | None = None,
    catalog: Catalog | None = None,
    relevant_types: Iterable[str] | None = None,
    **split_options: Any,
) -> EvalData:
    """Split ``frame`` (or take a ready split), build the train matrix and test relevance."""
    sp_ = split if isinstance(split, Split) else make_split(frame, split, **split_options)
    train = build_interactions(sp_.train, config, catalog=catalog)
    rel = relevance_matrix(sp_.test, train, types=relevant_types)
    if rel.nnz == 0:
        log.warning("the test side has no relevant items for known users")
    return EvalData(train=train, relevant=rel, split=sp_)


def rank(
    model: Recommender,
    users: np.ndarray,
    n: int,
    *,
    batch: int = 2_000,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Top-``n`` item indices for ``users`` (seen items filtered), in batches."""
    out = np.full((len(users), n), -1, dtype=np.int64)
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        ids, _ = model.recommend(chunk, n)
        out[start:start + len(chunk)] = ids
        if progress is not None:
            progress(len(chunk))
    return out


def score(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    item_popularity: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Every metric at every k, plus coverage and popularity bias at the largest k."""
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in M.RANKING_METRICS.items():
            out[f"{name}@{k}"] = fn(recommended, relevant, k)
    kmax = max(ks)
    out[f"coverage@{kmax}"] = M.catalog_coverage(recommended, relevant.shape[1], kmax)
    out[f"popularity_bias@{kmax}"] = M.popularity_bias(recommended, item_popularity, kmax)
    return out


def evaluate_model(
    model: Recommender,
    data: EvalData,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    max_users: int | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Metrics of a fitted model on ``data`` (optionally on a random sample of users)."""
    users = data.users
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    rec = rank(model, users, max(ks), progress=progress)
    pop = np.bincount(data.train.matrix.indices, minlength=data.train.shape[1])
    return score(rec, data.relevant[users], pop, ks)


def compare(
    specs: Sequence[ModelSpec],
    data: EvalData,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    max_users: int | None = None,
    on_model: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[EvalResult]:
    """Fit and evaluate each spec on the same split."""
    results = []
    n_users = len(data.users) if max_users is None else min(max_users, len(data.users))
    for spec in specs:
        if on_model is not None:
            on_model(spec.name)
        model = spec.create()
        t0 = time.perf_counter()
        model.fit(data.train)
        fit_s = time.perf_counter() - t0
        m = evaluate_model(model, data, ks, max_users=max_users, progress=progress)
        log.info("%s: ndcg@%d = %.4f (fit %.1fs)", spec.name, max(ks), m[f"ndcg@{max(ks)}"], fit_s)
        results.append(EvalResult(spec.name, spec.algorithm, dict(spec.params), m, fit_s, n_users))
    return results


def plot_results(
    results: Sequence[EvalResult],
    out_dir: Path,
    ks: Sequence[int] = DEFAULT_KS,
    metrics: Sequence[str] = tuple(M.RANKING_METRICS),
    title: str = "",
) -> list[Path]:
    """One PNG per metric: the metric against k, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric in metrics:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for r in results:
            ax.plot(list(ks), [r.metric(metric, k) for k in ks], marker="o", label=r.name)
        ax.set_xlabel("k")
        ax.set_ylabel(f"{metric}@k")
        ax.set_xticks(list(ks))
        ax.set_title(f"{metric}@k{' — ' + title if title else ''}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{metric}_at_k.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def bundle_recovery(
    model: Recommender, bundles: Iterable[tuple[str, str]], k: int = 10
) -> tuple[int, int]:
    """How many planted (a, b) pairs have b in a's top-k similar items (or a in b's).

    Returns ``(found, checked)``; pairs with an item unknown to the model count as missed.
    """
    found = checked = 0
    for a, b in bundles:
        checked += 1
        ia, ib = model.item_ids_.index(a), model.item_ids_.index(b)
        if ia < 0 or ib < 0:
            continue
        top_a, _ = model.similar_items(ia, k)
        top_b, _ = model.similar_items(ib, k)
        if ib in top_a or ia in top_b:
            found += 1
    return found, checked
