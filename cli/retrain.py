"""``shoprank retrain [--history]`` and ``shoprank scheduler`` — thin layers over
:mod:`training.retrain` and :mod:`training.scheduler`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from core.settings import Settings
    from training.config import TrainConfig
    from training.retrain import Gate, RetrainRun


def _config(s: Settings, path: Path | None) -> TrainConfig:
    from training.config import default_config, load_config

    path = path or s.retrain_config
    return load_config(path) if path is not None else default_config(s.data_dir)


def _gate(s: Settings, metric: str | None, tolerance: float | None,
          models: list[str] | None) -> Gate:
    from training.retrain import Gate

    return Gate(metric=metric or s.retrain_metric,
                tolerance=s.retrain_tolerance if tolerance is None else tolerance,
                models=tuple(models or s.retrain_models))


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4f}"


def print_run(run: RetrainRun) -> None:
    from cli.support import console, table

    title = (f"Retrain {run.run_id} ({run.trigger}) — {run.metric} on "
             f"{run.held_out.get('description', '?')}, {run.held_out.get('test_users', 0):,} "
             f"test users; tolerance {run.tolerance:.1%}")
    console.print(table(title, ["model", "decision", "serving", run.metric + " serving",
                                run.metric + " candidate", "new version", "reason"],
                        [[m.name, m.decision, m.serving_version or "—", _fmt(m.serving_metric),
                          _fmt(m.candidate_metric), m.new_version or "—", m.reason]
                         for m in run.models]))
    if run.error:
        console.print(f"run failed: {run.error}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the retrain and scheduler commands to the main app."""

    @app.command("retrain")
    def retrain_cmd(
        config: Annotated[Path | None, typer.Option(
            "--config", "-f", help="Training config (TOML); default: settings.retrain_config "
            "or the shop in the data dir.")] = None,
        metric: Annotated[str | None, typer.Option(
            "--metric", help="Gate metric (default settings.retrain_metric, ndcg@10).")] = None,
        tolerance: Annotated[float | None, typer.Option(
            "--tolerance", help="Allowed relative drop (0.01 = 1 %).")] = None,
        model: Annotated[list[str] | None, typer.Option(
            "--model", "-m", help="Only this model (repeatable).")] = None,
        history: Annotated[bool, typer.Option(
            "--history", help="Show the recorded runs instead of retraining.")] = False,
        limit: Annotated[int, typer.Option("--limit", min=1, help="Runs shown by --history.")] = 20,
    ) -> None:
        """Train on the latest events; promote each model only if it does not score worse
        than the serving version on the same held-out data (beyond the tolerance)."""
        from cli.support import console, table, training_stores
        from cli.training import _progress
        from core.settings import get_settings
        from training.retrain import read_runs, retrain

        s = get_settings()
        if history:
            runs = read_runs(s.models_dir, limit=limit)
            if not runs:
                console.print("no retrain runs yet: run `shoprank retrain`")
                return
            rows = []
            for r in runs:
                for m in r["models"] or [{}]:
                    rows.append([r["run_id"], r["trigger"], r["status"], m.get("name", "—"),
                                 m.get("decision", r.get("error") or "—"),
                                 _fmt(m.get("serving_metric")), _fmt(m.get("candidate_metric")),
                                 m.get("new_version") or m.get("serving_version") or "—"])
            console.print(table(f"Retrain runs (newest first; metric {runs[0]['metric']})",
                                ["run", "trigger", "status", "model", "decision", "serving",
                                 "candidate", "version now"], rows))
            return
        cfg = _config(s, config)
        gate = _gate(s, metric, tolerance, model)
        gate.check(cfg.evaluation.ks)  # bad options: exit 2 before any work
        bar, say = _progress()
        try:
            with training_stores(s) as shared:
                run = retrain(cfg, s.models_dir, gate=gate, events_dir=s.events_dir,
                              progress=say, stores=shared)
        finally:
            bar.close()
        print_run(run)

    @app.command("scheduler")
    def scheduler_cmd(
        once: Annotated[bool, typer.Option(
            "--once", help="Run if due (and if no other scheduler is active), then exit.")] = False,
        poll: Annotated[float, typer.Option(
            "--poll-seconds", min=0.05, help="How often a standby scheduler retries the lock.")]
        = 30.0,
    ) -> None:
        """Retrain every settings.retrain_schedule_minutes; with several replicas, one
        scheduler retrains and the others stand by (a lock next to the registry)."""
        import signal
        import threading

        from cli.support import console, training_stores
        from core.settings import get_settings
        from training.scheduler import Schedule, next_due, run_scheduler

        s = get_settings()
        schedule = Schedule.from_minutes(s.retrain_schedule_minutes, _gate(s, None, None, None))
        schedule.gate.check(_config(s, None).evaluation.ks)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

        def status(st: str) -> None:
            console.print(f"scheduler {st} (every {s.retrain_schedule_minutes:g} min; next run "
                          f"due {next_due(s.models_dir, schedule.every):%Y-%m-%d %H:%M:%S} UTC)",
                          highlight=False)

        with training_stores(s) as shared:
            n = run_scheduler(lambda: _config(s, None), s.models_dir, schedule,
                              events_dir=s.events_dir, stop=stop,
                              once=once, poll_seconds=poll, on_status=status,
                              on_run=print_run, stores=shared)
        console.print(f"scheduler stopped after {n} run(s)")
