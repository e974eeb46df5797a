"""Defaults that hold on a public data set: every personalized algorithm at its default
parameters beats popularity on MovieLens-100K (943 users × 1,682 movies, 100k ratings), read
from the copy RecBole's wheel ships (installed by ``./dev setup`` without its dependencies;
nothing is downloaded at run time), with the usual random 75/25 split of each user's items."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from training.config import DataSection, EvaluationSection, ModelEntry, TrainConfig
from training.jobs import evaluate

PERSONALIZED = ("als", "bpr", "item_knn", "ease")


def ml100k(tmp_path: Path) -> Path:
    """The ratings as MovieLens' own ``u.data`` (RecBole's atomic file less its header)."""
    spec = importlib.util.find_spec("recbole")  # finds the files; never imports recbole
    assert spec is not None and spec.submodule_search_locations, (
        "RecBole's wheel is missing: run ./dev setup (pip install --no-deps recbole==1.2.1)")
    inter = Path(spec.submodule_search_locations[0]) / "dataset_example/ml-100k/ml-100k.inter"
    lines = inter.read_text("utf-8").splitlines()
    assert lines[0].startswith("user_id:token") and len(lines) == 100_001
    out = tmp_path / "u.data"
    out.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    return out


@pytest.mark.slow
def test_every_personalized_default_beats_popularity_on_movielens_100k(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data=DataSection(format="movielens", events=[ml100k(tmp_path)], event_log=False),
        evaluation=EvaluationSection(split="random", test_fraction=0.25, ks=[10], seed=0),
        models=[ModelEntry(name=a, algorithm=a) for a in (*PERSONALIZED, "popularity")],
    )
    cfg.matrix.half_life_days = None  # ratings over seven months: no recency decay
    rep = evaluate(cfg, tmp_path / "report")
    ndcg = {r.algorithm: r.metric("ndcg", 10) for r in rep.results}
    assert ndcg["popularity"] > 0.2  # a real baseline on this set, not a broken one
    for alg in PERSONALIZED:
        assert ndcg[alg] > ndcg["popularity"], ndcg
