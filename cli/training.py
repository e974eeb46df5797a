"""``shoprank train | evaluate | tune | models list|promote|rollback`` — a thin layer over
:mod:`training.jobs` and :mod:`models.registry`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from training.config import TrainConfig

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-f", help="Training config (TOML); see training/sample_train.toml."),
]


TUNED_BY_DEFAULT = ("als", "bpr", "item_knn", "ease")
"""What ``shoprank tune`` tunes without ``-a``: every personalized algorithm."""


def _config(path: Path | None) -> TrainConfig:
    from core.settings import get_settings
    from training.config import default_config, load_config

    if path is not None:
        return load_config(path)
    return default_config(get_settings().data_dir)


def _progress():  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar = tqdm(total=None, bar_format="{desc} [{elapsed}]", leave=False)

    def say(msg: str) -> None:
        bar.set_description_str(msg)
        bar.update(1)

    return bar, say


SplitOpt = Annotated[str | None, typer.Option(
    "--split", help="Hold-out protocol: temporal (one cut-off time), leave_last_n (per user) "
    "or random (per user, --test-fraction and --seed).")]
FractionOpt = Annotated[float | None, typer.Option(
    "--test-fraction", help="temporal: share of events after the cut-off; random: share of "
    "each user's items held out.")]
LeaveNOpt = Annotated[int | None, typer.Option("--leave-n", help="leave_last_n: items per user.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="random: the seed of the draw.")]


def _apply_split(cfg: TrainConfig, split: str | None, fraction: float | None,
                 leave_n: int | None, seed: int | None) -> None:
    """Command-line split options over the config's ``[evaluation]`` (exit 2 when invalid)."""
    from cli.support import fail

    e = cfg.evaluation
    if split is not None:
        if split not in ("temporal", "leave_last_n", "random"):
            fail(f"--split must be temporal, leave_last_n or random, not {split!r}")
        e.split = split  # type: ignore[assignment]
    if fraction is not None:
        if not 0 < fraction < 1:
            fail(f"--test-fraction must be between 0 and 1 (exclusive), not {fraction}")
        e.test_fraction = fraction
    if leave_n is not None:
        if leave_n < 1:
            fail(f"--leave-n must be at least 1, not {leave_n}")
        e.leave_n = leave_n
    if seed is not None:
        e.seed = seed


def _train_ranker(s, cfg, versions, promote, sessions):  # type: ignore[no-untyped-def]
    """The ranker step of ``shoprank train``: print its offline table, or why it was skipped."""
    from cli.support import console, table
    from models.errors import TrainingDataError
    from simulate.bootstrap import train_ranker_step

    bar, say = _progress()
    try:
        rep, simulated = train_ranker_step(s, cfg, versions=versions, promote=promote,
                                           bootstrap_sessions=sessions, say=say)
    except TrainingDataError as exc:
        console.print(f"ranker: not trained ({exc})")
        return
    except Exception as exc:  # the models are trained: a ranker failure must not undo that
        logging.getLogger(__name__).exception("ranker step failed")
        console.print(f"ranker: not trained ({type(exc).__name__}: {exc}; see the log)")
        return
    finally:
        bar.close()
    if simulated is not None:
        console.print(f"no served lists yet: simulated hand-blend traffic {simulated}")
    console.print(table(
        f"Ranker {rep.version} ({'promoted' if promote else 'not promoted'}): {rep.n_lists:,} "
        f"lists, {rep.n_rows:,} shown items; held-out later lists (trained on "
        f"{rep.n_train_lists:,} earlier ones)",
        ["order", "ndcg@10", "recall@10", "lists"],
        [[who, m["ndcg@10"], m["recall@10"], int(m["lists"])] for who, m in rep.heldout.items()],
    ))


def _metric_cols(ks: list[int]) -> list[str]:
    k = 10 if 10 in ks else max(ks)
    return [f"ndcg@{k}", f"recall@{k}", f"precision@{k}", f"map@{k}", f"hit_rate@{k}",
            f"coverage@{max(ks)}", f"popularity_bias@{max(ks)}"]


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("train")
    def train_cmd(
        config: ConfigOpt = None,
        promote: Annotated[
            bool | None,
            typer.Option("--promote/--no-promote", help="Make the new versions current."),
        ] = None,
        model: Annotated[
            list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")
        ] = None,
        holdout: Annotated[
            bool | None,
            typer.Option("--holdout/--no-holdout", help="Record holdout metrics in the manifests."),
        ] = None,
        ranker: Annotated[bool, typer.Option(
            "--ranker/--no-ranker", help="Also train the learned ranker from the served lists "
            "(a generated shop without any gets simulated hand-blend traffic first).")] = True,
        simulate_sessions: Annotated[int | None, typer.Option(
            "--simulate-sessions", min=0,
            help="Sessions to simulate when a generated shop has no served lists "
            "(default: 1.5 per shopper, 200 to 3,000).")] = None,
    ) -> None:
        """Train the configured models on all data and register a new version of each."""
        from cli.support import console, table, training_stores
        from core.settings import get_settings
        from training.jobs import train

        s = get_settings()
        cfg = _config(config)
        if holdout is not None:
            cfg.train.holdout_metrics = holdout
        bar, say = _progress()
        try:
            with training_stores(s) as shared:
                rep = train(cfg, s.models_dir, events_dir=s.events_dir,
                            promote=promote, only=model, progress=say, stores=shared)
        finally:
            bar.close()
        cols = _metric_cols(cfg.evaluation.ks)[:3]
        console.print(table(
            f"Trained {len(rep.models)} models on {rep.counts['events']:,} events "
            f"({rep.counts['users']:,} users × {rep.counts['items']:,} items, "
            f"{rep.counts['interactions']:,} interactions; {rep.window[0]} → {rep.window[1]})",
            ["model", "algorithm", "version", "current", "fit s", *[f"holdout {c}" for c in cols]],
            [[m.name, m.algorithm, m.version, "yes" if m.promoted else "no",
              round(m.fit_seconds, 2), *[m.metrics.get(c, float("nan")) for c in cols]]
             for m in rep.models],
        ))
        console.print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in rep.seconds.items()))
        if rep.bundles is not None:
            console.print(f"planted bundles found by bought_together (top-10): "
                          f"{rep.bundles[0]}/{rep.bundles[1]}")
        for name, why in rep.skipped:
            console.print(f"skipped {name}: {why}", highlight=False)
        if not any(m.promoted for m in rep.models):
            console.print(
                "not promoted: run `shoprank models promote <name>` or train with --promote"
            )
        if ranker and not model:
            _train_ranker(s, cfg, {m.name: m.version for m in rep.models},
                          any(m.promoted for m in rep.models), simulate_sessions)

    @app.command("evaluate")
    def evaluate_cmd(
        config: ConfigOpt = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Folder for PNGs and results.json.")
        ] = None,
        split: SplitOpt = None,
        test_fraction: FractionOpt = None,
        leave_n: LeaveNOpt = None,
        seed: SeedOpt = None,
        max_users: Annotated[int | None, typer.Option("--max-users", min=1)] = None,
    ) -> None:
        """Compare every configured model (and the popularity baseline) on one split; models
        whose inputs are missing (no catalog, no baskets) are skipped with a note."""
        from cli.support import console, table, training_stores
        from core.settings import get_settings
        from training.jobs import best_personalized, evaluate

        s = get_settings()
        cfg = _config(config)
        _apply_split(cfg, split, test_fraction, leave_n, seed)
        if max_users is not None:
            cfg.evaluation.max_users = max_users
        out = out or s.home / "reports" / f"evaluate-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        bar, say = _progress()
        try:
            with training_stores(s) as shared:
                rep = evaluate(cfg, out, events_dir=s.events_dir,
                               progress=say, stores=shared)
        finally:
            bar.close()
        cols = _metric_cols(cfg.evaluation.ks)
        console.print(table(
            f"Evaluation — {rep.split}; {rep.n_test_users:,} test users; train "
            f"{rep.counts['users']:,} users × {rep.counts['items']:,} items",
            ["model", *cols, "fit s", "note"],
            [[r.name, *[r.metrics[c] for c in cols], round(r.fit_seconds, 2), ""]
             for r in sorted(rep.results, key=lambda r: -r.metrics[cols[0]])]
            + [[name, *["—"] * len(cols), "—", f"skipped: {why}"] for name, why in rep.skipped],
        ))
        pop = next((r for r in rep.results if r.algorithm == "popularity"), None)
        best = best_personalized(rep.results, cols[0])
        if pop is not None and best is not None:
            base = pop.metrics[cols[0]]
            ratio = best.metrics[cols[0]] / base if base > 0 else float("inf")
            console.print(f"best personalized: {best.name} {cols[0]} = "
                          f"{best.metrics[cols[0]]:.4f}, {ratio:.2f}× popularity ({base:.4f})")
        if rep.bundles is not None:
            console.print(
                f"planted bundles found by bought_together (top-10): "
                f"{rep.bundles[0]}/{rep.bundles[1]} ({rep.bundles[0] / max(rep.bundles[1], 1):.0%})"
            )
        console.print(f"plots and results.json: {rep.out_dir}")

    @app.command("tune")
    def tune_cmd(
        config: ConfigOpt = None,
        algorithm: Annotated[
            list[str] | None,
            typer.Option(
                "--algorithm", "-a", help="Algorithm to tune (repeatable; default: all)."
            ),
        ] = None,
        trials: Annotated[
            int, typer.Option("--trials", min=1, help="Settings tried per algorithm.")
        ] = 8,
        metric: Annotated[str, typer.Option("--metric")] = "ndcg@10",
        max_users: Annotated[int | None, typer.Option("--max-users", min=1)] = None,
        split: SplitOpt = None,
        test_fraction: FractionOpt = None,
        leave_n: LeaveNOpt = None,
        seed: SeedOpt = None,
        save: Annotated[Path | None, typer.Option(
            "--save", help="Write a training config with the chosen settings (TOML) here; "
            "`shoprank train --config` it and each version's manifest records them.")] = None,
    ) -> None:
        """Search hyperparameters on a validation split carved out of the training side."""
        from cli.support import console, fail, table, training_stores
        from core.settings import get_settings
        from training.jobs import _split_options, load_input, matrix_config
        from training.tune import tune

        s = get_settings()
        cfg = _config(config)
        _apply_split(cfg, split, test_fraction, leave_n, seed)
        algs = algorithm or list(TUNED_BY_DEFAULT)
        if metric.split("@")[0] not in ("ndcg", "recall", "precision", "map", "hit_rate") or \
                "@" not in metric:
            fail(
                "--metric must look like ndcg@10 (ndcg, recall, precision, map, hit_rate), "
                f"not {metric!r}"
            )
        if int(metric.split("@")[1]) not in cfg.evaluation.ks:
            fail(f"--metric: k must be one of evaluation.ks {cfg.evaluation.ks}")
        bar, say = _progress()
        try:
            with training_stores(s) as shared:
                inp = load_input(cfg, s.events_dir, shared)
            params = {m.algorithm: m.params for m in cfg.models}
            res = tune(inp.frame, algs, split=cfg.evaluation.split,
                       split_options=_split_options(cfg), config=matrix_config(cfg),
                       catalog=inp.catalog, spaces=cfg.tune or None, base_params=params,
                       trials=trials, metric=metric, ks=cfg.evaluation.ks,
                       max_users=max_users or cfg.evaluation.max_users,
                       on_trial=lambda t: say(f"{t.algorithm} {t.params} → {t.score:.4f}"))
        except ValueError as exc:
            fail(str(exc))
        finally:
            bar.close()
        console.print(table(f"Trials (validation {metric})", ["algorithm", "params", metric],
                            [[t.algorithm, str(t.params), t.score]
                             for t in sorted(res.trials, key=lambda t: -t.score)]))
        console.print(table(f"Best per algorithm — {metric} on validation, then on test",
                            ["algorithm", "params", "validation", "test"],
                            [[a, str(t.params), t.score, res.test[a][metric]]
                             for a, t in res.best.items()]))
        if save is not None:
            from training.tune import write_tuned_config

            write_tuned_config(save, cfg, res)
            console.print(f"chosen settings written to {save}: shoprank train --config {save}")

    models_app = typer.Typer(help="List, promote and roll back registered model versions.",
                             no_args_is_help=True)
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_cmd(
        name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    ) -> None:
        """Versions of every model, with their holdout metrics; the current one marked."""
        from cli.support import console, table
        from core.settings import get_settings
        from models.registry import Registry

        rows = Registry(get_settings().models_dir).list(name)
        if not rows:
            console.print("no models registered yet: run `shoprank train`")
            return
        console.print(
            table(
                "Registered models",
                ["name", "version", "algorithm", "created", "current", "ndcg@10", "status"],
                [
                    [
                        r["name"],
                        r["version"],
                        r["algorithm"],
                        r["created_at"],
                        "*" if r["current"] else "",
                        r["metrics"].get("ndcg@10", float("nan")),
                        "ok" if r["ok"] else r["problem"],
                    ]
                    for r in rows
                ],
            )
        )

    @models_app.command("promote")
    def promote_cmd(
        name: Annotated[str, typer.Argument(help="Model name, e.g. als.")],
        version: Annotated[
            str | None, typer.Argument(help="Version (default: the newest).")
        ] = None,
    ) -> None:
        """Make a version current (after verifying its checksums)."""
        from cli.support import console
        from core.settings import get_settings
        from models.registry import Registry

        v = Registry(get_settings().models_dir).promote(name, version)
        console.print(f"{name}: current version is now {v}")

    @models_app.command("rollback")
    def rollback_cmd(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
        """Return to the previously current version."""
        from cli.support import console
        from core.settings import get_settings
        from models.registry import Registry

        v = Registry(get_settings().models_dir).rollback(name)
        console.print(f"{name}: rolled back to {v}")
