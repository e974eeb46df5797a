"""Commands of the data package for the `shoprank` CLI: generate, load, import."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from data.synthetic import GenerateSummary


def print_generate_summary(summary: GenerateSummary) -> None:
    """The rich summary table of a generated shop (also used by `shoprank demo`)."""
    from serving.cli_support import console, table

    s = summary
    console.print(table(
        f"Generated shop → {s.out_dir} ({s.seconds:.1f}s)",
        ["what", "count"],
        [["items", s.n_items], ["users", s.n_users], ["events", s.n_events], ["sessions", s.n_sessions],
         ["leaf categories covered", f"{s.leaves_covered}/{s.n_leaves}"],
         ["planted bundles", s.n_bundles], ["bundle co-purchases", s.bundle_copurchases],
         ["trending items", s.n_trending]],
    ))
    console.print(table("Events by type", ["type", "events", "share"],
                        [[k, v, f"{v / max(s.n_events, 1):.1%}"]
                         for k, v in sorted(s.counts.items(), key=lambda kv: -kv[1])]))
    console.print(table("Funnel", ["step", "rate"], [[k, f"{v:.2%}"] for k, v in s.funnel.items()]))
    console.print("files: " + ", ".join(s.files))


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("generate")
    def generate_cmd(
        users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 2_000,
        items: Annotated[int, typer.Option("--items", min=84, help="Number of items.")] = 1_000,
        events: Annotated[int, typer.Option("--events", min=1, help="About this many events.")] = 100_000,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 42,
        days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 90,
        start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")] = "2026-09-01",
        out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: data dir).")] = None,
        events_format: Annotated[
            str, typer.Option("--format", help="auto (parquet, plus jsonl up to 200k events), parquet, jsonl, both.")
        ] = "auto",
        progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    ) -> None:
        """Generate a synthetic shop (items, users, events, hidden truth)."""
        from data.synthetic import ShopSpec, generate
        from serving.cli_support import fail
        from serving.settings import get_settings

        if events_format not in ("auto", "parquet", "jsonl", "both"):
            fail(f"--format must be auto, parquet, jsonl or both, not {events_format!r}")
        try:
            start_day = date.fromisoformat(start)
        except ValueError:
            fail(f"--start must be a date like 2026-09-01, not {start!r}")
        try:
            spec = ShopSpec(n_users=users, n_items=items, n_events=events, seed=seed, days=days,
                            start=start_day, trend_days=min(3, days))
        except ValueError as exc:
            fail(str(exc))
        fmt: Literal["auto", "parquet", "jsonl", "both"] = events_format  # type: ignore[assignment]
        summary = generate(spec, out or get_settings().data_dir, progress=progress, events_format=fmt)
        print_generate_summary(summary)
