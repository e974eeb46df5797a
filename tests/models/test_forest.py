"""The compiled forest gives LightGBM's own scores: every missing-value type, rows exactly on
the thresholds, trees wider than 16 leaves, and a model of one leaf per tree."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from models.forest import Forest


def _data(seed: int, n: int = 400, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.15] = 0.0
    y = np.nan_to_num(x[:, 0]) * 2 - np.nan_to_num(x[:, 1]) + rng.normal(size=n) * 0.3
    return x, y


def _booster(x: np.ndarray, y: np.ndarray, **params: object) -> lgb.Booster:
    base = {"objective": "regression", "num_leaves": 15, "min_data_in_leaf": 5,
            "verbose": -1, "num_threads": 1, "seed": 1, "deterministic": True}
    return lgb.train({**base, **params}, lgb.Dataset(x, label=y), num_boost_round=30)


def _on_thresholds(forest: Forest, booster: lgb.Booster, d: int) -> np.ndarray:
    """Rows whose values sit exactly on (and one float32 step either side of) split points."""
    thresholds = []

    def walk(node: dict) -> None:
        if "threshold" in node:
            thresholds.append((node["split_feature"], float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

    for t in booster.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    rows = []
    for f, thr in thresholds[:60]:
        t32 = np.float32(thr)
        for v in (t32, np.nextafter(t32, np.float32(np.inf)),
                  np.nextafter(t32, np.float32(-np.inf))):
            row = np.zeros(d, np.float32)
            row[f] = v
            rows.append(row)
    assert len(forest.feature) > 0
    return np.asarray(rows, np.float32)


@pytest.mark.parametrize("params", [
    {},  # NaN seen in training: missing type NaN
    {"zero_as_missing": True},  # missing type Zero
    {"use_missing": False},  # missing type None: NaN reads as 0
    {"num_leaves": 24},  # wider than 16 leaves: 32-bit leaf sets
    {"num_leaves": 40},  # wider than 32: 64-bit leaf sets
])
def test_forest_equals_booster(params: dict[str, object]) -> None:
    x, y = _data(3)
    booster = _booster(x, y, **params)
    forest = Forest.from_dump(booster.dump_model())
    test, _ = _data(4, n=300)
    test = np.vstack([test, _on_thresholds(forest, booster, x.shape[1]),
                      np.full((1, x.shape[1]), np.nan, np.float32),
                      np.full((1, x.shape[1]), 1e-36, np.float32)])
    got = forest.predict(test)
    np.testing.assert_allclose(got, booster.predict(test, num_threads=1), rtol=0, atol=1e-9)
    assert np.ptp(got) > 0


def test_forest_of_single_leaf_trees_and_no_rows() -> None:
    x, _ = _data(5)
    booster = _booster(x, np.full(len(x), 2.5))  # nothing to split on: one leaf per tree
    forest = Forest.from_dump(booster.dump_model())
    assert len(forest.feature) == 0
    np.testing.assert_allclose(forest.predict(x[:5]), booster.predict(x[:5]), atol=1e-9)
    assert forest.predict(x[:0]).shape == (0,)
