"""The training commands end to end, through the real `shoprank` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_LOG_LEVEL": "WARNING",
           "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    env.pop("SHOPRANK_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def shop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data.synthetic import ShopSpec, generate

    home = tmp_path_factory.mktemp("home")
    generate(ShopSpec(n_users=400, n_items=200, n_events=30_000, days=30), home / "data",
             progress=False)
    return home


def test_train_registers_promotes_lists_and_rolls_back(shop_home: Path) -> None:
    r = run(shop_home, "train", "--promote", "-m", "item_knn", "-m", "bought_together")
    assert r.returncode == 0, r.stderr
    assert "Trained 2 models" in r.stdout and "planted bundles found" in r.stdout
    first = json.loads((shop_home / "models" / "item_knn" / "current.json").read_text())["version"]
    manifest = json.loads((shop_home / "models" / "item_knn" / first / "manifest.json").read_text())
    assert manifest["algorithm"] == "item_knn" and "ndcg@10" in manifest["metrics"]
    assert manifest["data"]["counts"]["events"] > 0 and manifest["data"]["window"][0] < \
        manifest["data"]["window"][1]

    r = run(shop_home, "train", "-m", "item_knn", "--no-holdout")
    assert r.returncode == 0, r.stderr and "not promoted" in r.stdout
    r = run(shop_home, "models", "promote", "item_knn")
    assert r.returncode == 0 and "current version is now" in r.stdout
    r = run(shop_home, "models", "list", "item_knn")
    assert r.returncode == 0 and r.stdout.count("item_knn") >= 2
    r = run(shop_home, "models", "rollback", "item_knn")
    assert r.returncode == 0 and first in r.stdout
    r = run(shop_home, "models", "rollback", "item_knn")
    assert r.returncode == 2 and "no previous version" in r.stderr


def test_evaluate_prints_the_table_and_writes_plots(shop_home: Path) -> None:
    cfg = shop_home / "eval.toml"
    cfg.write_text(
        '[data]\nevents = ["data/events.parquet"]\nitems = "data/items.jsonl"\n'
        'users = "data/users.jsonl"\ntruth = "data/truth.json"\n'
        '[[models]]\nname = "knn"\nalgorithm = "item_knn"\n'
        '[[models]]\nname = "ease"\nalgorithm = "ease"\n'
        '[[models]]\nname = "fbt"\nalgorithm = "bought_together"\n'
    )
    r = run(shop_home, "evaluate", "--config", str(cfg), "--out", "report")
    assert r.returncode == 0, r.stderr
    assert "best personalized" in r.stdout and "× popularity" in r.stdout
    res = json.loads((shop_home / "report" / "results.json").read_text())
    names = [m["name"] for m in res["models"]]
    assert names == ["knn", "ease", "fbt", "popularity"]  # the baseline is always added
    for png in ("ndcg_at_k.png", "recall_at_k.png", "precision_at_k.png"):
        assert (shop_home / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tune_reports_the_best_on_validation_and_test(shop_home: Path) -> None:
    r = run(shop_home, "tune", "-a", "item_knn", "--trials", "2")
    assert r.returncode == 0, r.stderr
    assert "Best per algorithm" in r.stdout and "validation" in r.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = run(tmp_path, "train")
    assert r.returncode == 2 and "no events found" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[[models]]\nname = 'x'\nalgorithm = 'magic'\n")
    r = run(tmp_path, "train", "--config", str(bad))
    assert r.returncode == 2 and "unknown algorithm" in r.stderr
    r = run(tmp_path, "models", "promote", "als")
    assert r.returncode == 2 and "no versions" in r.stderr


def test_movielens_layout_trains_and_evaluates_end_to_end(tmp_path: Path) -> None:
    # u.data layout: user item rating timestamp. Two taste groups, like a tiny MovieLens.
    rng = np.random.default_rng(0)
    lines = []
    for u in range(1, 121):
        group = u % 2
        for j, m in enumerate(rng.choice(np.arange(1, 31) + 30 * group, 12, replace=False)):
            lines.append(f"{u}\t{m}\t{rng.integers(3, 6)}\t{880000000 + u * 1000 + j * 60}")
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    (tmp_path / "ml.toml").write_text(
        '[data]\nformat = "movielens"\nevents = ["u.data"]\nevent_log = false\n'
        '[matrix]\nmin_rating = 3.0\nhalf_life_days = 3650\n'
        '[evaluation]\nsplit = "random"\n'
        '[[models]]\nname = "als"\nalgorithm = "als"\nparams = { factors = 8 }\n'
        '[[models]]\nname = "knn"\nalgorithm = "item_knn"\n'
    )
    r = run(tmp_path, "train", "--config", "ml.toml", "--promote")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "var" / "models" / "als" / "current.json").is_file() or \
        (tmp_path / "models" / "als" / "current.json").is_file()
    r = run(tmp_path, "evaluate", "--config", "ml.toml", "--out", "ml-report")
    assert r.returncode == 0, r.stderr
    res = {m["name"]: m["metrics"] for m in
           json.loads((tmp_path / "ml-report" / "results.json").read_text())["models"]}
    # The taste groups are learnable: both models beat the popularity baseline clearly.
    assert res["knn"]["ndcg@10"] > 1.5 * res["popularity"]["ndcg@10"]
    assert res["als"]["ndcg@10"] > 1.5 * res["popularity"]["ndcg@10"]


def test_one_train_run_trains_the_ranker_from_a_generated_shop(tmp_path: Path) -> None:
    """`shoprank train` on a generated shop with no served lists: the models, then simulated
    hand-blend traffic, then the learned ranker from those lists, registered and current."""
    from data.synthetic import ShopSpec, generate

    generate(ShopSpec(n_users=300, n_items=150, n_events=15_000, days=20, seed=3),
             tmp_path / "data", progress=False)
    r = run(tmp_path, "train", "--promote", "--simulate-sessions", "300")
    assert r.returncode == 0, r.stderr
    assert "ranker: not trained" not in r.stdout, r.stdout
    current = json.loads((tmp_path / "models" / "ranker" / "current.json").read_text())
    manifest = json.loads(
        (tmp_path / "models" / "ranker" / current["version"] / "manifest.json").read_text())
    assert manifest["algorithm"] == "lambdarank"
    assert manifest["data"]["lists"] == 300  # one served list per simulated session
    assert "ranker_ndcg@10" in manifest["metrics"] and "| ranker " in r.stdout.replace("│", "|")
