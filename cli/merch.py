"""Commands of this package for the `shoprank` CLI: ``rules``, ``experiments`` and ``report``.

A thin layer over ``merch.rules``, ``merch.experiments`` and ``analytics.reports``: the same
stores the API uses (``stores.open_stores``, chosen by the settings).
"""

from __future__ import annotations

import atexit
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from analytics.reports import KpiReport
    from core.settings import Settings
    from data.catalog import Catalog
    from merch.experiments import ExperimentService
    from merch.rules.service import RuleService
    from stores.factory import Stores

rules_app = typer.Typer(
    help="Merchandising rules (pin, boost, bury, hide, filter, redirect, rewrite).",
    no_args_is_help=True,
)
experiments_app = typer.Typer(
    help="A/B experiments: create, start, stop, results.", no_args_is_help=True
)


def _settings() -> Settings:
    from core.settings import get_settings

    return get_settings()


def _stores() -> Stores:
    """The stores the settings name, opened once per command (closed at exit)."""
    from cli.support import open_home_stores

    global _OPEN
    if _OPEN is None:
        _OPEN = open_home_stores(_settings())
        atexit.register(_OPEN.close)
    return _OPEN


_OPEN: Stores | None = None


def _catalog(s: Settings) -> Catalog:
    """The catalog store's items (the shop file's before the service first started)."""
    from data.catalog import Catalog

    stores = _stores()
    if stores.catalog.count():
        return Catalog(stores.catalog.iter_items())
    path = s.data_dir / "items.jsonl"
    return Catalog.from_jsonl(path) if path.exists() else Catalog()


def _rules() -> RuleService:
    from merch.rules.service import RuleService
    from merch.store_adapters import DocumentRuleStore

    return RuleService(DocumentRuleStore(_stores().rules), _catalog(_settings()))


def _experiments() -> ExperimentService:
    from merch.experiments import ExperimentService
    from merch.store_adapters import DocumentExperimentStore

    return ExperimentService(DocumentExperimentStore(_stores().experiments))


def _read_json(path: Path) -> object:
    from cli.support import fail

    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        fail(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})")


def _validated(model: type, data: object, where: str):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from cli.support import fail
    from core.errors import describe

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fail(f"{where}: {describe(exc)}")


# ---------------------------------------------------------------------------- rules
@rules_app.command("list")
def rules_list(
    rule_set: Annotated[str | None, typer.Option("--rule-set", help="Only this rule set.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rules in the order they apply (priority, then id)."""
    from cli.support import console, table
    from merch.rules.spec import RuleSpec

    rules = _rules().store.list(rule_set)
    if as_json:
        typer.echo(
            json.dumps(
                [RuleSpec.of(r).model_dump(mode="json") for r in rules],
                ensure_ascii=False,
                indent=1,
            )
        )
        return
    now = datetime.now(UTC)
    rows = [
        [
            n,
            r.rule_id,
            r.name,
            r.rule_set,
            r.priority,
            ", ".join(a.kind for a in r.actions),
            "live" if r.is_active(now) else ("disabled" if not r.enabled else "inactive"),
        ]
        for n, r in enumerate(rules, 1)
    ]
    console.print(
        table(
            "Rules (applied in this order)",
            ["#", "id", "name", "set", "priority", "actions", "status"],
            rows,
        )
    )


@rules_app.command("add")
def rules_add(
    file: Annotated[Path, typer.Argument(help="JSON file: one rule or a list of rules.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite rules with the same id.")
    ] = False,
) -> None:
    """Validate and store rules from a JSON file (rejected with every reason when invalid)."""
    from cli.support import console
    from merch.rules.spec import RuleSpec

    data = _read_json(file)
    specs = [
        _validated(RuleSpec, d, f"{file}[{n}]")
        for n, d in enumerate(data if isinstance(data, list) else [data])
    ]
    svc = _rules()
    for spec in specs:
        if replace and spec.id:
            try:
                svc.store.get(spec.id)
                rule, warnings = svc.update(spec.id, spec)
            except Exception as exc:  # not there yet → create below
                from merch.errors import RuleNotFoundError

                if not isinstance(exc, RuleNotFoundError):
                    raise
                rule, warnings = svc.create(spec)
        else:
            rule, warnings = svc.create(spec)
        console.print(f"saved rule [bold]{rule.rule_id}[/] ({rule.name})", highlight=False)
        for w in warnings:
            console.print(f"  [yellow]warning:[/] {w}", highlight=False)


@rules_app.command("show")
def rules_show(rule_id: str) -> None:
    """Print one rule as JSON."""
    from merch.rules.spec import RuleSpec

    typer.echo(RuleSpec.of(_rules().get(rule_id)).model_dump_json(indent=1, exclude_none=True))


@rules_app.command("enable")
def rules_enable(rule_id: str) -> None:
    _rules().set_enabled(rule_id, True)
    typer.echo(f"enabled {rule_id}")


@rules_app.command("disable")
def rules_disable(rule_id: str) -> None:
    _rules().set_enabled(rule_id, False)
    typer.echo(f"disabled {rule_id}")


@rules_app.command("delete")
def rules_delete(rule_id: str) -> None:
    _rules().delete(rule_id)
    typer.echo(f"deleted {rule_id}")


@rules_app.command("preview")
def rules_preview(
    file: Annotated[Path, typer.Argument(help="JSON file with the draft rule.")],
    query: Annotated[str | None, typer.Option("--query", "-q")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Anchor item (similar).")] = None,
    surface: Annotated[
        str | None, typer.Option("--surface", help="feed, search, similar, bought_together")
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", help="Recent requests to estimate the impact on.")
    ] = 30,
    k: Annotated[int, typer.Option("--k", help="List length to compare.")] = 10,
) -> None:
    """Before/after of a draft rule and its impact on recent traffic (loads models and index)."""
    from cli.support import console, fail, table
    from merch.rules.spec import RuleSpec
    from serving.deps import get_rule_previewer
    from serving.routes.rules import PreviewIn, preview_out
    from serving.state import Services

    spec = _validated(RuleSpec, _read_json(file), str(file))
    body = _validated(
        PreviewIn,
        {
            "rule": spec.model_dump(mode="json"),
            "query": query,
            "user_id": user,
            "item_id": item,
            "surface": surface,
            "sample_size": sample,
            "k": k,
        },
        "preview",
    )
    services = Services.build(_settings())
    try:
        result = get_rule_previewer(services).preview(body.rule, body.target())
        out = preview_out(result, services.catalog)
    finally:
        services.close()
    for p in out.problems:
        console.print(f"[red]rejected:[/] {p}", highlight=False)
    pv = out.preview
    rows = []
    for n in range(max(len(pv.before), len(pv.after))):
        b = pv.before[n] if n < len(pv.before) else None
        a = pv.after[n] if n < len(pv.after) else None
        rows.append(
            [
                n + 1,
                f"{b.item_id} {b.title[:30]}" if b else "",
                f"{a.item_id} {a.title[:30]}" if a else "",
            ]
        )
    title = f"{pv.surface} {pv.query or pv.user_id or pv.item_id or ''}: " + (
        "fires — " + "; ".join(pv.draft_effects)
        if pv.draft_fired
        else f"does not fire ({pv.why_not})"
    )
    console.print(table(title, ["#", "before", "after"], rows))
    if out.impact is not None:
        console.print(out.impact.summary, highlight=False)
    if not out.valid:
        fail("the rule would be rejected (see above)")


# ---------------------------------------------------------------------------- experiments
@experiments_app.command("list")
def experiments_list() -> None:
    from cli.support import console, table

    rows = [
        [
            e.experiment_id,
            e.name,
            e.status,
            ", ".join(e.surfaces) or "all",
            " / ".join(f"{v.name} {v.share:g}" for v in e.variants),
            e.started_at.isoformat(timespec="minutes") if e.started_at else "",
        ]
        for e in _experiments().list()
    ]
    console.print(
        table(
            "Experiments",
            ["id", "name", "status", "surfaces", "variants (shares)", "started"],
            rows,
        )
    )


@experiments_app.command("create")
def experiments_create(
    file: Annotated[Path, typer.Argument(help="JSON file with the experiment.")],
    start: Annotated[bool, typer.Option("--start", help="Start it at once.")] = False,
) -> None:
    """Create an experiment (a draft unless --start)."""
    from merch.experiments import ExperimentSpec

    svc = _experiments()
    e = svc.create(_validated(ExperimentSpec, _read_json(file), str(file)))
    if start:
        e = svc.start(e.experiment_id)
    typer.echo(f"{e.experiment_id}: {e.status}")


@experiments_app.command("start")
def experiments_start(experiment_id: str) -> None:
    typer.echo(f"{experiment_id}: {_experiments().start(experiment_id).status}")


@experiments_app.command("stop")
def experiments_stop(experiment_id: str) -> None:
    typer.echo(f"{experiment_id}: {_experiments().stop(experiment_id).status}")


@experiments_app.command("results")
def experiments_results(
    experiment_id: str,
    metric: Annotated[str, typer.Option("--metric", help="Primary metric of the verdict.")] = "ctr",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for PNG charts.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """KPIs per variant with intervals, lift against control and significance."""
    svc = _experiments()
    e = svc.get(experiment_id)
    _report_out(_build(e.started_at, e.stopped_at, experiment_id, metric), out, as_json)


# ---------------------------------------------------------------------------- report
def _build(
    start: datetime | None, end: datetime | None, experiment: str | None, metric: str
) -> KpiReport:
    from analytics.reports import build_report
    from analytics.statistics import METRICS
    from cli.support import fail
    from merch.store_adapters import StoreRequestLog

    if metric not in METRICS:
        fail(f"--metric: unknown {metric!r}; choose one of {', '.join(METRICS)}")
    s = _settings()
    svc = _experiments()
    exp = svc.get(experiment) if experiment else None
    stores = _stores()
    requests = StoreRequestLog(stores.requests)
    try:
        return build_report(
            stores.events.read_table(since=start, until=end),
            start=start,
            end=end,
            experiment=exp,
            requests=requests,
            catalog=_catalog(s),
            primary_metric=metric,
        )  # type: ignore[arg-type]
    finally:
        requests.close()


def _report_out(report: KpiReport, out: Path | None, as_json: bool) -> None:
    from analytics.statistics import METRIC_LABELS, RATE_METRICS
    from cli.support import console, table

    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    else:
        cols = [
            "slice",
            "users",
            "impressions",
            "clicks",
            "orders",
            "revenue",
            "CTR",
            "conversion",
            "revenue/user",
            "AOV",
            "repurchase",
            "retention",
        ]

        def fmt(row, m):  # type: ignore[no-untyped-def]
            e = row.metrics[m]
            if e.value is None:
                return "–"
            if m in RATE_METRICS:
                return f"{e.value:.2%} [{e.low:.2%}, {e.high:.2%}]"
            return f"{e.value:,.2f} [{e.low:,.2f}, {e.high:,.2f}]"

        def rows(items):  # type: ignore[no-untyped-def]
            return [
                [
                    r.label,
                    r.users,
                    r.impressions,
                    r.clicks,
                    r.orders,
                    f"{r.revenue:,.2f}",
                    *(
                        fmt(r, m)
                        for m in (
                            "ctr",
                            "conversion_rate",
                            "revenue_per_user",
                            "aov",
                            "repurchase_rate",
                            "retention",
                        )
                    ),
                ]
                for r in items
            ]

        console.print(
            table(f"KPIs ({report.events} events, 95% intervals)", cols, rows([report.overall]))
        )
        if report.by_surface:
            console.print(table("Per surface", cols, rows(report.by_surface)))
        if report.by_day:
            console.print(table("Per day", cols, rows(report.by_day)))
        if report.experiment:
            console.print(
                table(
                    f"Experiment {report.experiment} (control: {report.control})",
                    cols,
                    rows(report.by_variant),
                )
            )
            crow = [
                [
                    METRIC_LABELS[c.metric],
                    c.variant,
                    "–" if c.lift is None else f"{c.lift:+.1%}",
                    "–" if c.p_value is None else f"{c.p_value:.3g}",
                    "significant" if c.significant else "not yet significant",
                ]
                for c in report.comparisons
            ]
            console.print(
                table("Against control", ["metric", "variant", "lift", "p", "verdict"], crow)
            )
            console.print(report.verdict, highlight=False)
    if out is not None:
        from analytics.charts import save_charts

        for p in save_charts(report, out):
            console.print(f"wrote {p}", highlight=False)


def report(
    start: Annotated[
        datetime | None, typer.Option("--start", help="ISO date/time, inclusive (UTC).")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--end", help="ISO date/time, exclusive.")] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="Also per variant of this experiment.")
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="Primary metric of the verdict.")] = "ctr",
    out: Annotated[Path | None, typer.Option("--out", help="Folder for PNG charts.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """KPIs from the event log: overall, per surface, per day (and per variant) with intervals."""
    from cli.support import fail

    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    if start is not None and end is not None and end <= start:
        fail("--end must be after --start")
    _report_out(_build(start, end, experiment, metric), out, as_json)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""
    app.add_typer(rules_app, name="rules")
    app.add_typer(experiments_app, name="experiments")
    app.command("report")(report)
