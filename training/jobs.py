"""The training jobs behind ``shoprank train | evaluate | tune`` — usable from a notebook.

Each job takes a :class:`~training.config.TrainConfig` and returns a plain result object;
the CLI only formats it. Progress is reported through an optional callback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from models.errors import MissingInputError, TrainingDataError
from models.interactions import MatrixConfig
from models.registry import Registry
from training.config import TrainConfig
from training.errors import ConfigError
from training.evaluate import EvalResult, ModelSpec, compare, evaluate_model, plot_results, prepare
from training.interactions import Catalog, EventFrame, build_interactions, encode_events
from training.store_source import StoreSource

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

TRAINING_COLUMNS = ("event_id", "user_id", "item_id", "type", "timestamp", "value", "session_id")
"""The event columns training reads (Parquet skips the others)."""


@dataclass(frozen=True)
class TrainingInput:
    frame: EventFrame
    catalog: Catalog | None
    sources: list[str]
    bundles: list[tuple[str, str]] | None = None
    seconds: float = 0.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def matrix_config(cfg: TrainConfig) -> MatrixConfig:
    m = cfg.matrix
    kw: dict[str, Any] = m.model_dump(exclude={"weights"})
    if m.weights is not None:
        kw["weights"] = dict(m.weights)
    return MatrixConfig(**kw)


def _adapter_table(fmt: str, path: Path) -> pa.Table:
    from data.event_table import events_to_table
    from data.formats import iter_adapter

    rejects: list[Any] = []
    table = events_to_table(iter_adapter(fmt, path, on_reject=rejects.append))
    if rejects:
        log.warning("%s: %d rows set aside (first: line %s, %s)", path, len(rejects),
                    getattr(rejects[0], "line", "?"), getattr(rejects[0], "reason", ""))
    return table


def load_input(cfg: TrainConfig, events_dir: Path | None = None,
               stores: StoreSource | None = None) -> TrainingInput:
    """Read the events (files + event log), users (consent) and catalog the config names.

    ``stores`` (``cli.support.training_stores``): the event store instead of the event log
    folder ``events_dir``, and the user store: users erased or whose consent was withdrawn
    there are left out; a consent given there overrides ``consent: false`` in the users file;
    and the catalog store, when it holds items, instead of the items file.
    """
    from data.loaders import read_events_table

    t0 = time.perf_counter()
    d = cfg.data
    tables: list[pa.Table] = []
    sources: list[str] = []
    for p in d.events:
        if not p.exists():
            raise ConfigError(f"data.events: no such file: {p}")
    if d.events:
        if d.format == "shoprank":
            tables.append(read_events_table(d.events, columns=TRAINING_COLUMNS,
                                            since=_day(d.since), until=_day(d.until)))
        else:
            tables.extend(_adapter_table(d.format, p) for p in d.events)
        sources += [str(p) for p in d.events]
    if d.event_log and stores is not None:
        table_ = stores.events_table(_day(d.since), _day(d.until), TRAINING_COLUMNS)
        tables.append(table_)
        sources.append("event store")
    elif d.event_log and events_dir is not None and events_dir.is_dir() and any(
        events_dir.glob("*.jsonl")
    ):
        from data.eventlog import EventLog

        elog = EventLog(events_dir)
        try:
            tables.append(elog.read_table(since=_day(d.since), until=_day(d.until))
                          .select(list(TRAINING_COLUMNS)))
        finally:
            elog.close()
        sources.append(f"event log {events_dir}")
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise TrainingDataError(
            "no events found: generate a shop (`shoprank generate`), send events to the API, "
            "or name event files under [data] events in the training config"
        )
    table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    no_consent = _users_without_consent(d.users) if d.users else None
    if stores is not None:
        excluded, consented = stores.consent()
        if excluded or consented:
            no_consent = ((no_consent or set()) - consented) | excluded
    frame = encode_events(table, no_consent=no_consent, types=used_types(cfg))
    catalog = stores.current_catalog() if stores is not None else None
    if catalog is None and d.items:
        catalog = _read_catalog(d.items)
    bundles = None
    if d.truth is not None and d.truth.is_file():
        truth = json.loads(d.truth.read_text("utf-8"))
        bundles = [tuple(b) for b in truth.get("bundles", [])]
    return TrainingInput(frame, catalog, sources, bundles, time.perf_counter() - t0)  # type: ignore[arg-type]


def used_types(cfg: TrainConfig) -> set[str]:
    """Event types training can use: weighted ones, refunds, purchases, relevance types."""
    weights = matrix_config(cfg).weights
    types = {t for t, w in weights.items() if w > 0} | {"refund", "purchase", "add_to_cart"}
    types |= set(cfg.evaluation.relevant_types or ())
    for m in cfg.models:
        types |= set(m.params.get("types", ()))
    return types


def _read_catalog(path: Path) -> Catalog:
    """The items file column-wise (100k items in seconds); other layouts row by row."""
    if not path.exists():
        raise ConfigError(f"data.items: no such file: {path}")
    try:
        if path.suffix in (".jsonl", ".ndjson"):
            import pyarrow.json as pj

            t = pj.read_json(path)
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(path)
        else:
            raise ValueError("not a columnar layout")
        ok = all(pa.types.is_list(t.schema.field(c).type) for c in ("category", "tags")
                 if c in t.column_names)
        if "item_id" not in t.column_names or not ok:
            raise ValueError("unexpected columns")
        return Catalog.from_table(t)
    except (pa.ArrowInvalid, ValueError) as exc:
        from data.loaders import iter_items

        log.info("reading %s row by row (%s)", path, exc)
        return Catalog.from_items(iter_items(path))


def _users_without_consent(path: Path) -> set[str]:
    """Ids of users with ``consent: false``, read column-wise (1M users in about a second)."""
    import pyarrow.compute as pc

    if not path.exists():
        raise ConfigError(f"data.users: no such file: {path}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(path, columns=["user_id", "consent"])
        elif path.suffix == ".csv":
            import pyarrow.csv as pcsv

            t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
                include_columns=["user_id", "consent"]))
        else:
            import pyarrow.json as pj

            t = pj.read_json(path).select(["user_id", "consent"])
        consent = t.column("consent")
        if not pa.types.is_boolean(consent.type):
            raise ValueError("consent is not a boolean column")
        mask = pc.equal(consent, False)
        return {str(u) for u in pc.filter(t.column("user_id"), mask).to_pylist()}
    except (pa.ArrowInvalid, KeyError, ValueError) as exc:
        # Unusual layouts: validate row by row (bad rows are reported by the loader).
        from data.loaders import iter_users

        log.info("reading %s row by row (%s)", path, exc)
        return {u.user_id for u in iter_users(path) if not u.consent}


def _day(v: str | None) -> datetime | None:
    if v is None:
        return None
    try:
        return datetime.fromisoformat(v).replace(tzinfo=UTC) if "T" not in v else \
            datetime.fromisoformat(v)
    except ValueError:
        raise ConfigError(f"data.since/until: {v!r} is not a date (YYYY-MM-DD)") from None


def _split_options(cfg: TrainConfig) -> dict[str, Any]:
    e = cfg.evaluation
    if e.split == "temporal":
        return {"test_fraction": e.test_fraction}
    if e.split == "leave_last_n":
        return {"n": e.leave_n}
    return {"test_fraction": e.test_fraction, "seed": e.seed}


def split_protocol(cfg: TrainConfig) -> dict[str, Any]:
    """The split protocol with its options, as recorded next to results."""
    return {"kind": cfg.evaluation.split, **_split_options(cfg)}


# ---------------------------------------------------------------------------- train
@dataclass(frozen=True)
class TrainedModel:
    name: str
    algorithm: str
    version: str
    promoted: bool
    fit_seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainReport:
    models: list[TrainedModel]
    counts: dict[str, int]
    window: tuple[str, str]
    seconds: dict[str, float]
    bundles: tuple[int, int] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Models left out because their inputs are missing: (name, reason)."""


def train(
    cfg: TrainConfig,
    models_dir: Path,
    *,
    events_dir: Path | None = None,
    promote: bool | None = None,
    only: Sequence[str] | None = None,
    progress: Progress | None = None,
    data: TrainingInput | None = None,
    stores: StoreSource | None = None,
) -> TrainReport:
    """Fit every configured model on all the data, register each, optionally promote."""
    say = progress or (lambda _msg: None)
    promote = cfg.train.promote if promote is None else promote
    specs = cfg.model_specs()
    if only:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ConfigError(f"--model: not in the config: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.name in only]
    seconds: dict[str, float] = {}
    say("reading data")
    inp = data or load_input(cfg, events_dir, stores)
    seconds["read"] = inp.seconds
    mconf = matrix_config(cfg)
    holdout: dict[str, dict[str, float]] = {}
    if cfg.train.holdout_metrics:
        say("holdout evaluation")
        t0 = time.perf_counter()
        try:
            ev = prepare(inp.frame, cfg.evaluation.split, config=mconf, catalog=inp.catalog,
                         relevant_types=cfg.evaluation.relevant_types, **_split_options(cfg))
            for spec in specs:
                say(f"holdout: {spec.name}")
                try:
                    model = spec.create().fit(ev.train)
                except MissingInputError:
                    continue  # reported by the final fit below
                holdout[spec.name] = evaluate_model(model, ev, cfg.evaluation.ks,
                                                    max_users=cfg.evaluation.max_users)
        except TrainingDataError as exc:
            log.warning("no holdout metrics: %s", exc)
        seconds["holdout"] = time.perf_counter() - t0
    say("building the interaction matrix")
    t0 = time.perf_counter()
    full = build_interactions(inp.frame, mconf, catalog=inp.catalog)
    seconds["matrix"] = time.perf_counter() - t0
    registry = Registry(models_dir)
    data_info = {
        "sources": inp.sources,
        "window": [_iso(full.window[0]), _iso(full.window[1])],
        "reference_time": _iso(full.reference_time),
        "counts": full.counts(),
        "matrix": {k: v for k, v in matrix_config(cfg).__dict__.items()},
    }
    out: list[TrainedModel] = []
    skipped: list[tuple[str, str]] = []
    bundles = None
    seconds["fit"] = seconds["register"] = 0.0
    for spec in specs:
        say(f"fitting {spec.name}")
        t0 = time.perf_counter()
        try:
            model = spec.create().fit(full)
        except MissingInputError as exc:
            log.info("%s skipped: %s", spec.name, exc)
            skipped.append((spec.name, str(exc)))
            continue
        fit_s = time.perf_counter() - t0
        seconds["fit"] += fit_s
        if inp.bundles is not None and spec.algorithm == "bought_together":
            from training.evaluate import bundle_recovery

            bundles = bundle_recovery(model, inp.bundles)
        t0 = time.perf_counter()
        version = registry.register(
            spec.name, model, metrics=holdout.get(spec.name, {}), data=data_info,
            extra={"holdout": {"split": cfg.evaluation.split, **_split_options(cfg)},
                   "fit_seconds": round(fit_s, 3)},
        )
        if promote:
            registry.promote(spec.name, version)
        seconds["register"] += time.perf_counter() - t0
        out.append(TrainedModel(spec.name, spec.algorithm, version, promote, fit_s,
                                holdout.get(spec.name, {})))
    if not out:
        raise TrainingDataError("no model could be trained: " +
                                "; ".join(f"{n}: {why}" for n, why in skipped))
    return TrainReport(out, full.counts(), (data_info["window"][0], data_info["window"][1]),
                       seconds, bundles, skipped)


# ---------------------------------------------------------------------------- evaluate
@dataclass(frozen=True)
class EvaluationReport:
    results: list[EvalResult]
    split: str
    counts: dict[str, int]
    n_test_users: int
    plots: list[Path]
    out_dir: Path
    bundles: tuple[int, int] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Models left out because their inputs are missing: (name, reason)."""
    protocol: dict[str, Any] = field(default_factory=dict)
    """The split protocol and its options (recorded in results.json)."""


def evaluate(
    cfg: TrainConfig,
    out_dir: Path,
    *,
    events_dir: Path | None = None,
    progress: Progress | None = None,
    data: TrainingInput | None = None,
    stores: StoreSource | None = None,
) -> EvaluationReport:
    """Compare every configured model (plus the popularity baseline) on one split."""
    say = progress or (lambda _msg: None)
    say("reading data")
    inp = data or load_input(cfg, events_dir, stores)
    specs = cfg.model_specs()
    if not any(s.algorithm == "popularity" for s in specs):
        specs.append(ModelSpec("popularity", "popularity", {}))
    say("splitting")
    ev = prepare(inp.frame, cfg.evaluation.split, config=matrix_config(cfg), catalog=inp.catalog,
                 relevant_types=cfg.evaluation.relevant_types, **_split_options(cfg))
    skipped: list[tuple[str, str]] = []
    results = compare(specs, ev, cfg.evaluation.ks, max_users=cfg.evaluation.max_users,
                      on_model=lambda n: say(f"evaluating {n}"), skipped=skipped)
    bundles = None
    if inp.bundles is not None:
        fbt = [s for s in specs if s.algorithm == "bought_together"
               and s.name not in dict(skipped)]
        if fbt:
            from training.evaluate import bundle_recovery

            say("checking planted bundles")
            full = build_interactions(inp.frame, matrix_config(cfg), catalog=inp.catalog)
            bundles = bundle_recovery(fbt[0].create().fit(full), inp.bundles)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot_results(results, out_dir, cfg.evaluation.ks, title=ev.split.description)
    protocol = split_protocol(cfg)
    report = EvaluationReport(results, ev.split.description, ev.train.counts(),
                              len(ev.users), plots, out_dir, bundles, skipped, protocol)
    (out_dir / "results.json").write_text(json.dumps({
        "split": report.split,
        "protocol": protocol,
        "skipped": [{"name": n, "reason": why} for n, why in skipped],
        "counts": report.counts,
        "test_users": report.n_test_users,
        "bundles_found": None if bundles is None else {"found": bundles[0], "of": bundles[1]},
        "models": [{"name": r.name, "algorithm": r.algorithm, "params": r.params,
                    "fit_seconds": round(r.fit_seconds, 3), "metrics": r.metrics}
                   for r in results],
    }, indent=2, ensure_ascii=False), "utf-8")
    return report


def best_personalized(results: Sequence[EvalResult], metric: str = "ndcg@10") -> EvalResult | None:
    """The best result among personalized models (for the "× popularity" headline)."""
    from models import model_class

    cands = [r for r in results if model_class(r.algorithm).personalized]
    return max(cands, key=lambda r: r.metrics[metric], default=None)
