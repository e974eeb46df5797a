"""``shoprank segments`` — a thin layer over :mod:`analytics.segment_runs`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("segments")
    def segments_cmd(
        out: Annotated[Path | None, typer.Option(
            "--out", help="Folder for segments.png (default: <home>/reports/segments-<time>).")]
        = None,
        publish: Annotated[bool, typer.Option(
            "--publish/--no-publish", help="Write the segments as user attributes (where "
            "serving, rules and experiments read them).")] = True,
    ) -> None:
        """Shopper segments: RFM scores, lifecycle stage, top categories and price band per
        shopper; sizes, moves since the last run and KPIs per segment."""
        from analytics.segment_runs import chart_bytes, read_history, run_segments, segments_chart
        from analytics.segments import STAGES, Thresholds
        from cli.support import console, home_stores, table
        from cli.training import _progress
        from core.settings import get_settings

        s = get_settings()
        th = Thresholds(s.segment_new_days, s.segment_at_risk_days, s.segment_churned_days)
        bar, say = _progress()
        try:
            with home_stores(s) as stores:
                run = run_segments(s.data_dir, s.events_dir, s.state_dir, stores.users,
                                   thresholds=th, publish_attributes=publish, progress=say)
        finally:
            bar.close()
        total = sum(run.sizes.values())
        console.print(table(
            f"Segments of {total:,} shoppers as of {run.segments.as_of:%Y-%m-%d %H:%M} UTC "
            f"(new ≤ {th.new_days:g} d since first order; at risk > {th.at_risk_days:g} d, "
            f"churned > {th.churned_days:g} d since the last)",
            ["segment", "shoppers", "share", "ctr", "conversion", "aov", "repurchase",
             "retention"],
            [[st, run.sizes[st], f"{run.sizes[st] / max(total, 1):.1%}",
              *[_pct(run.kpis.get(st, {}).get(m), m != "aov") for m in
                ("ctr", "conversion_rate", "aov", "repurchase_rate", "retention")]]
             for st in STAGES]))
        if run.moves:
            console.print(table("Moves since the previous run", ["from", "to", "shoppers"],
                                [[a, b, k] for a, row in sorted(run.moves.items())
                                 for b, k in sorted(row.items())]))
        folder = out or s.home / "reports" / f"segments-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        folder.mkdir(parents=True, exist_ok=True)
        png = folder / "segments.png"
        png.write_bytes(chart_bytes(segments_chart(read_history(s.state_dir))))
        console.print(f"user attributes updated: {run.published:,}"
                      + ("" if publish else " (--no-publish)"))
        console.print(f"segments: {s.state_dir / 'segments.parquet'}; chart: {png}")


def _pct(v: float | None, rate: bool) -> str:
    if v is None:
        return "—"
    return f"{v:.2%}" if rate else f"{v:,.2f}"
