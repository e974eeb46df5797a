"""Retraining behind the quality gate, its history, and the one-active scheduler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.config import DataSection, EvaluationSection, ModelEntry, TrainConfig, TrainSection
from training.jobs import train
from training.retrain import Gate, read_runs, retrain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shop_events(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    from data.synthetic import ShopSpec, generate

    out = tmp_path_factory.mktemp("shop")
    generate(ShopSpec(n_users=400, n_items=200, n_events=30_000, days=30), out, progress=False)
    t = pq.read_table(out / "events.parquet")
    return t.take(np.argsort(t.column("timestamp").cast(pa.int64()).to_numpy(), kind="stable"))


def config(path: Path) -> TrainConfig:
    return TrainConfig(data=DataSection(events=[path], event_log=False),
                       models=[ModelEntry(name="item_knn", algorithm="item_knn")],
                       evaluation=EvaluationSection(max_users=None),
                       train=TrainSection(holdout_metrics=False))


def write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def current(models: Path) -> str:
    return json.loads((models / "item_knn" / "current.json").read_text())["version"]


def test_a_retrain_that_raises_ndcg_is_promoted(tmp_path: Path, shop_events: pa.Table) -> None:
    n = shop_events.num_rows
    models = tmp_path / "models"
    # Serving: trained on the first 15 % of the events only.
    train(config(write(shop_events.slice(0, int(n * 0.15)), tmp_path / "old.parquet")), models,
          promote=True)
    before = current(models)
    run = retrain(config(write(shop_events, tmp_path / "all.parquet")), models, gate=Gate())
    [m] = run.models
    assert m.decision == "promoted", m.reason
    assert m.candidate_metric > m.serving_metric  # type: ignore[operator]
    assert m.serving_version == before and current(models) == m.new_version != before
    assert run.protocol["kind"] == "temporal" and "after_serving_window" in run.protocol
    manifest = json.loads((models / "item_knn" / m.new_version / "manifest.json").read_text())
    assert manifest["retrain"]["run_id"] == run.run_id
    assert manifest["metrics"]["ndcg@10"] == pytest.approx(m.candidate_metric)


def corrupt_items(table: pa.Table, lo: int, hi: int, seed: int = 0) -> pa.Table:
    """Rows lo..hi get a random item each (a broken tracker): their co-occurrences are noise."""
    rng = np.random.default_rng(seed)
    items = np.array(table.column("item_id").to_pylist(), dtype=object)
    known = np.unique([i for i in items if i is not None])
    part = items[lo:hi]
    has = np.array([i is not None for i in part])
    part[has] = rng.choice(known, int(has.sum()))
    items[lo:hi] = part
    col = table.schema.get_field_index("item_id")
    return table.set_column(col, "item_id", pa.array(items.tolist(), pa.string()))


def test_a_retrain_that_lowers_ndcg_is_refused_and_recorded(
    tmp_path: Path, shop_events: pa.Table
) -> None:
    n = shop_events.num_rows
    models = tmp_path / "models"
    train(config(write(shop_events.slice(0, n // 2), tmp_path / "old.parquet")), models,
          promote=True)
    serving = current(models)
    # Half of the events are new since the serving version; the gate holds out the newest
    # half of those (75 %..100 %) and the candidate trains on the rest, whose new part
    # (50 %..75 %) is corrupted.
    bad = corrupt_items(shop_events, n // 2, int(n * 0.75))
    run = retrain(config(write(bad, tmp_path / "bad.parquet")), models,
                  gate=Gate(metric="ndcg@10", tolerance=0.05))
    [m] = run.models
    assert m.decision == "kept" and m.new_version is None
    assert m.candidate_metric < m.serving_metric * 0.95  # type: ignore[operator]
    assert "ndcg@10" in m.reason and f"kept {serving}" in m.reason
    assert current(models) == serving and len(list((models / "item_knn").glob("2*"))) == 1
    # The history holds the run with its reason; a looser gate on the same data promotes.
    loose = retrain(config(tmp_path / "bad.parquet"), models, gate=Gate(tolerance=0.9))
    assert loose.models[0].decision == "promoted" and current(models) != serving
    runs = read_runs(models)
    assert [r["run_id"] for r in runs] == [loose.run_id, run.run_id]
    assert runs[1]["models"][0]["decision"] == "kept"
    assert runs[1]["models"][0]["reason"] == m.reason
    protocol = runs[1]["protocol"]
    assert protocol["kind"] == "temporal" and protocol["new_share_held_out"] == 0.5
    assert protocol["after_serving_window"] < protocol["cutoff"]
    assert protocol["new_events"] > 0  # training events (impressions, searches not counted)
    assert "not a clean comparison" not in m.reason


def test_bad_gate_settings_are_refused(tmp_path: Path, shop_events: pa.Table) -> None:
    from training.errors import ConfigError

    cfg = config(write(shop_events.slice(0, 1000), tmp_path / "e.parquet"))
    for gate, word in ((Gate(metric="auc@10"), "metric"), (Gate(metric="ndcg@7"), "k = 7"),
                       (Gate(tolerance=1.5), "tolerance"), (Gate(models=("nope",)), "nope")):
        with pytest.raises(ConfigError, match=word):
            retrain(cfg, tmp_path / "models", gate=gate)


# ---------------------------------------------------------------------------- scheduler
def wait_for(cond: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_two_schedulers_one_retrains_the_other_takes_over(
    tmp_path: Path, shop_events: pa.Table
) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    write(shop_events, home / "data" / "events.parquet")
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT), "SHOPRANK_RETRAIN_SCHEDULE_MINUTES": "60",
           "SHOPRANK_RETRAIN_MODELS": '["item_knn"]', "COLUMNS": "250"}
    env.pop("SHOPRANK_CONFIG", None)
    procs, logs = [], []
    for k in range(2):
        log = tmp_path / f"scheduler-{k}.log"
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "cli.main", "scheduler", "--poll-seconds", "0.2"],
            cwd=home, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
    try:
        def text(k: int) -> str:
            return logs[k].read_text()

        def started() -> bool:
            exited = [k for k in range(2) if procs[k].poll() is not None]
            assert not exited, [text(k) for k in exited]  # a scheduler died at start
            return all("scheduler " in text(k) for k in range(2))

        wait_for(started, 60, "both statuses")
        wait_for(lambda: len(read_runs(home / "models")) == 1, 120, "the first scheduled run")
        active = [k for k in range(2) if "scheduler active" in text(k)]
        assert len(active) == 1, [text(0), text(1)]
        other = 1 - active[0]
        assert "scheduler standby" in text(other)
        run = read_runs(home / "models")[0]
        assert run["trigger"] == "schedule" and run["pid"] == procs[active[0]].pid
        assert run["models"][0]["decision"] == "promoted"  # nothing was serving yet
        # The active one stops: the standby takes the lock, and waits for the next due time
        # (counted from the recorded run) instead of retraining at once.
        procs[active[0]].send_signal(signal.SIGTERM)
        assert procs[active[0]].wait(timeout=60) == 0
        wait_for(lambda: "scheduler active" in text(other), 30, "the standby taking over")
        r = subprocess.run([sys.executable, "-m", "cli.main", "retrain", "--history"],
                           cwd=home, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and run["run_id"] in r.stdout and "promoted" in r.stdout
        assert len(read_runs(home / "models")) == 1
        # A manual retrain beside the scheduler (same data: the gate compares equals).
        r = subprocess.run([sys.executable, "-m", "cli.main", "retrain"], cwd=home, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        manual = read_runs(home / "models")[0]
        assert manual["trigger"] == "manual" and manual["models"][0]["decision"] in r.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)


def test_scheduler_without_a_schedule_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "SHOPRANK_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("SHOPRANK_RETRAIN_SCHEDULE_MINUTES", None)
    env.pop("SHOPRANK_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "cli.main", "scheduler", "--once"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "retrain_schedule_minutes" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
