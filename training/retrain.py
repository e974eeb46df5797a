"""Retraining behind a quality gate, and the history of retrain runs.

:func:`retrain` reads the latest events, cuts them with the configured hold-out protocol
(``[evaluation]`` of the training config; temporal by default) and, for each gated model:

1. fits a *candidate* (the configured algorithm and parameters) on the train side;
2. scores the candidate and the *serving* version (the registry's current one, as it was
   trained) on the same test users and the same held-out events. The serving model is asked
   by id, each test user ranked from their train-side items (as serving ranks a shopper from
   their recent events);
3. promotes when the chosen metric (default ``ndcg@10``) does not drop by more than the
   tolerance (relative: ``0.01`` allows 1 %); the promoted version is fitted on all events
   and registered with the candidate's held-out metrics. Otherwise the serving version stays
   and the run records why.

Every run, promoted or not, is one line of ``<models_dir>/runs.jsonl`` (next to the
registry, so every replica and the scheduler read the same history); :func:`read_runs`
returns them. One retrain at a time: ``<models_dir>/.retrain.lock``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from core.errors import ShopRankError
from core.fsutil import append_jsonl
from models.base import Recommender
from models.errors import MissingInputError, TrainingDataError
from models.registry import Registry
from training.config import TrainConfig
from training.errors import ConfigError, TrainingError
from training.evaluate import EvalData, evaluate_model, prepare, score
from training.interactions import build_interactions
from training.jobs import (
    TrainingInput,
    _iso,
    _split_options,
    load_input,
    matrix_config,
    split_protocol,
)
from training.split import temporal_split
from training.store_source import StoreSource

log = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
LOCK_FILE = ".retrain.lock"
METRIC_NAMES = ("ndcg", "recall", "precision", "map", "hit_rate")

Decision = Literal["promoted", "kept", "skipped"]
Trigger = Literal["manual", "schedule"]


class RetrainBusyError(TrainingError):
    """Another retrain holds the lock."""


@dataclass(frozen=True)
class Gate:
    """What a candidate must reach: ``metric`` no lower than serving × (1 − ``tolerance``)."""

    metric: str = "ndcg@10"
    tolerance: float = 0.01
    models: tuple[str, ...] = ()
    """Registry names to retrain (empty: every configured model)."""
    new_share: float = 0.5
    """Of the events newer than the serving versions' training window, the newest this share
    is held out (the rest trains the candidate); see :func:`gate_split`."""

    def check(self, ks: Sequence[int]) -> None:
        name, _, k = self.metric.partition("@")
        if name not in METRIC_NAMES or not k.isdigit():
            raise ConfigError(f"metric: {self.metric!r} is not like ndcg@10 "
                              f"({', '.join(METRIC_NAMES)})")
        if int(k) not in ks:
            raise ConfigError(f"metric: k = {k} is not one of evaluation.ks {list(ks)}")
        if not 0 <= self.tolerance < 1:
            raise ConfigError(f"tolerance: {self.tolerance} must be in [0, 1) (0.01 = 1 %)")
        if not 0 < self.new_share < 1:
            raise ConfigError(f"new_share: {self.new_share} must be between 0 and 1")

    def passes(self, candidate: float, serving: float | None) -> bool:
        return serving is None or candidate >= serving * (1.0 - self.tolerance)


@dataclass(frozen=True)
class ModelOutcome:
    name: str
    algorithm: str
    decision: Decision
    reason: str
    serving_version: str | None = None
    new_version: str | None = None
    candidate_metric: float | None = None
    serving_metric: float | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    serving_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainRun:
    run_id: str
    trigger: Trigger
    started_at: str
    finished_at: str
    status: Literal["ok", "failed"]
    metric: str
    tolerance: float
    protocol: dict[str, Any]
    held_out: dict[str, Any]
    data: dict[str, Any]
    models: list[ModelOutcome]
    host: str
    pid: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def retrain_lock(models_dir: Path) -> Iterator[None]:
    """Exclusive, non-blocking: a second retrain (of any process) fails at once."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainBusyError(
                "another retrain is running on this registry; try later") from None
        yield


def evaluate_registered(
    model: Recommender,
    data: EvalData,
    ks: Sequence[int],
    *,
    max_users: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of an already trained model (its own ids) on a split made without it.

    The same test users as :func:`training.evaluate.evaluate_model` (same sample); each user
    is ranked from their train-side items (which are filtered out, as for the candidate), as
    serving ranks a shopper from their recent events.
    """
    users = data.users
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    n = max(ks)
    train = data.train
    to_model = model.item_ids_.indices(list(train.items.ids))
    back = np.full(model.n_items + 1, -1, dtype=np.int64)  # last slot: -1 pads stay -1
    known_items = np.flatnonzero(to_model >= 0)
    back[to_model[known_items]] = known_items
    rows = train.matrix[users].tocoo()
    keep = to_model[rows.col] >= 0
    hist = sp.csr_matrix((rows.data[keep], (rows.row[keep], to_model[rows.col[keep]])),
                         shape=(len(users), model.n_items), dtype=np.float32)
    rec = np.full((len(users), n), -1, dtype=np.int64)
    # Every user is ranked from their train-side items alone, not from the row the model
    # learned for them: a model trained on events of the held-out side would otherwise filter
    # exactly the held-out items out as "seen" and score zero.
    for r in range(len(users)):
        row = hist[r]
        ids, _ = model.recommend_cold(row.indices, n, weights=row.data)
        rec[r] = back[np.where(ids >= 0, ids, model.n_items)]
    pop = np.bincount(train.matrix.indices, minlength=train.shape[1])
    return score(rec, data.relevant[users], pop, ks)


def _serving_end(registry: Registry, specs: Sequence[Any]) -> float | None:
    """The latest end of the serving versions' training windows (None: nothing serves)."""
    ends = []
    for spec in specs:
        version = registry.current_version(spec.name)
        if version is None:
            continue
        end = ((registry.manifest(spec.name, version).get("data") or {}).get("window")
               or [None, None])[1]
        if end:
            ends.append(datetime.fromisoformat(end).timestamp())
    return max(ends, default=None)


def gate_split(cfg: TrainConfig, inp: TrainingInput, serving_end: float | None,
               new_share: float = 0.5) -> tuple[EvalData, dict[str, Any]]:
    """The held-out data of a retrain, and its protocol.

    When events newer than the serving versions' training window exist, the newest
    ``new_share`` of them are held out: the candidate trains on everything before (so it
    learns from — or is spoiled by — the first part of the new events) and the serving
    versions never saw the held-out events. Otherwise (nothing serves yet, or no new events
    with test users) the training config's split is used.
    """
    frame = inp.frame
    kw: dict[str, Any] = {"config": matrix_config(cfg), "catalog": inp.catalog,
                          "relevant_types": cfg.evaluation.relevant_types}
    if serving_end is not None:
        new = frame.ts > serving_end
        if new.sum() >= 2:
            cutoff = float(np.quantile(frame.ts[new], 1.0 - new_share))
            try:
                ev = prepare(frame, temporal_split(frame, cutoff=cutoff), **kw)
            except TrainingDataError:
                ev = None
            if ev is not None and len(ev.users):
                return ev, {"kind": "temporal", "cutoff": _iso(cutoff),
                            "after_serving_window": _iso(serving_end),
                            "new_events": int(new.sum()), "new_share_held_out": new_share}
        log.info("too few events after the serving versions' window: the config's split")
    ev = prepare(frame, cfg.evaluation.split, **kw, **_split_options(cfg))
    return ev, split_protocol(cfg)


def _held_out(data: EvalData) -> dict[str, Any]:
    test = data.split.test
    out: dict[str, Any] = {"description": data.split.description,
                           "test_users": len(data.users), "test_events": len(test)}
    if len(test):
        out["test_window"] = [_iso(float(test.ts.min())), _iso(float(test.ts.max()))]
    return out


def _leak_note(manifest: dict[str, Any], data: EvalData) -> str:
    """A note when the serving version was trained on events of the held-out side."""
    if data.split.kind != "temporal" or not len(data.split.test):
        return ""
    end = (manifest.get("data") or {}).get("window", [None, None])[1]
    start = _iso(float(data.split.test.ts.min()))
    if end and end > start:
        return (f"; the serving version was trained on events up to {end}, after the held-out "
                f"events begin ({start}), so its score is not a clean comparison")
    return ""


def retrain(
    cfg: TrainConfig,
    models_dir: Path,
    *,
    gate: Gate | None = None,
    events_dir: Path | None = None,
    trigger: Trigger = "manual",
    progress: Callable[[str], None] | None = None,
    data: TrainingInput | None = None,
    stores: StoreSource | None = None,
) -> RetrainRun:
    """Train candidates on the latest events, gate each against its serving version, promote
    the ones that pass; the run (also a failed one) is appended to ``runs.jsonl``."""
    gate = gate or Gate()
    gate.check(cfg.evaluation.ks)
    say = progress or (lambda _msg: None)
    specs = cfg.model_specs()
    if gate.models:
        unknown = set(gate.models) - {s.name for s in specs}
        if unknown:
            raise ConfigError(f"models: not in the training config: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.name in gate.models]
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%dT%H%M%S}{started.microsecond // 1000:03d}Z-{os.getpid()}"
    registry = Registry(models_dir)
    outcomes: list[ModelOutcome] = []
    held: dict[str, Any] = {}
    protocol: dict[str, Any] = split_protocol(cfg)
    info: dict[str, Any] = {}
    error: str | None = None
    with retrain_lock(models_dir):
        try:
            say("reading the latest events")
            inp = data or load_input(cfg, events_dir, stores)
            say("splitting")
            ev, protocol = gate_split(cfg, inp, _serving_end(registry, specs), gate.new_share)
            held = _held_out(ev)
            full = None
            for spec in specs:
                say(f"{spec.name}: candidate")
                outcome, full = _gate_one(spec, cfg, gate, registry, inp, ev, full, run_id, say)
                outcomes.append(outcome)
            if full is not None:
                info = {"counts": full.counts(),
                        "window": [_iso(full.window[0]), _iso(full.window[1])]}
        except ShopRankError as exc:  # no events, a corrupt version, …: recorded as a failed run
            error = str(exc)
            log.warning("retrain %s failed: %s", run_id, exc)
        run = RetrainRun(
            run_id=run_id, trigger=trigger, started_at=started.isoformat(timespec="seconds"),
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            status="failed" if error else "ok", metric=gate.metric, tolerance=gate.tolerance,
            protocol=protocol, held_out=held, data=info, models=outcomes,
            host=socket.gethostname(), pid=os.getpid(), error=error,
        )
        append_jsonl(models_dir / RUNS_FILE, [run.to_json()])
    return run


def _gate_one(spec: Any, cfg: TrainConfig, gate: Gate, registry: Registry,
              inp: TrainingInput, ev: EvalData, full: Any, run_id: str,
              say: Callable[[str], None]) -> tuple[ModelOutcome, Any]:
    ks, max_users = cfg.evaluation.ks, cfg.evaluation.max_users
    serving_version = registry.current_version(spec.name)
    try:
        candidate = spec.create().fit(ev.train)
    except MissingInputError as exc:
        return ModelOutcome(spec.name, spec.algorithm, "skipped", str(exc),
                            serving_version=serving_version), full
    cand = evaluate_model(candidate, ev, ks, max_users=max_users)
    serv: dict[str, float] = {}
    note = ""
    if serving_version is not None:
        say(f"{spec.name}: serving version {serving_version}")
        handle = registry.load(spec.name, serving_version)
        serv = evaluate_registered(handle.model, ev, ks, max_users=max_users)
        note = _leak_note(registry.manifest(spec.name, serving_version), ev)
    c, s = cand[gate.metric], serv.get(gate.metric)
    if not gate.passes(c, s):
        floor = s * (1.0 - gate.tolerance)  # type: ignore[operator]
        reason = (f"{gate.metric} {c:.4f} < {floor:.4f} (serving {s:.4f} less "
                  f"{gate.tolerance:.1%} tolerance): kept {serving_version}{note}")
        return ModelOutcome(spec.name, spec.algorithm, "kept", reason, serving_version, None,
                            c, s, cand, serv), full
    say(f"{spec.name}: fitting on all events")
    if full is None:
        full = build_interactions(inp.frame, matrix_config(cfg), catalog=inp.catalog)
    t0 = time.perf_counter()
    model = spec.create().fit(full)
    version = registry.register(
        spec.name, model, metrics=cand,
        data={"sources": inp.sources, "window": [_iso(full.window[0]), _iso(full.window[1])],
              "reference_time": _iso(full.reference_time), "counts": full.counts()},
        extra={"holdout": split_protocol(cfg), "fit_seconds": round(time.perf_counter() - t0, 3),
               "retrain": {"run_id": run_id, "metric": gate.metric,
                           "serving_version": serving_version, "serving_metric": s}},
    )
    registry.promote(spec.name, version)
    reason = ("no serving version yet" if s is None else
              f"{gate.metric} {c:.4f} vs serving {s:.4f} (tolerance {gate.tolerance:.1%})") + note
    return ModelOutcome(spec.name, spec.algorithm, "promoted", reason, serving_version, version,
                        c, s, cand, serv), full


def read_runs(models_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Retrain runs, newest first (a torn or unreadable line is skipped with a warning)."""
    path = models_dir / RUNS_FILE
    if not path.is_file():
        return []
    runs = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                runs.append(json.loads(line))
            except ValueError:
                log.warning("%s line %d is unreadable; skipped", path, lineno)
    runs.reverse()
    return runs[:limit] if limit is not None else runs
