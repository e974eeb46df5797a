"""`shoprank demo` trains models that carry offline metrics (the console's models page and
overview show them instead of empty cells)."""

from __future__ import annotations

from pathlib import Path

from cli.serve import DEMO_MODELS, _train_and_promote
from core.settings import Settings
from data.synthetic import ShopSpec, generate
from models.registry import Registry


def test_demo_training_records_holdout_metrics(tmp_path: Path) -> None:
    generate(ShopSpec(n_users=300, n_items=200, n_events=15_000, seed=3, days=30),
             tmp_path / "data", progress=False)
    settings = Settings(home=tmp_path, environment="test")
    versions = _train_and_promote(settings)
    assert set(versions) == set(DEMO_MODELS)
    rows = {(r["name"], r["version"]): r for r in Registry(settings.models_dir).list()}
    for name, version in versions.items():
        metrics = rows[(name, version)].get("metrics") or {}
        assert "ndcg@10" in metrics and 0.0 <= metrics["ndcg@10"] <= 1.0, (name, metrics)
