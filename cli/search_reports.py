"""Commands of the search analytics: ``search-report`` and ``ubi-export``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("search-report")
    def search_report_cmd(
        start: Annotated[
            datetime | None, typer.Option("--start", help="ISO time, inclusive.")
        ] = None,
        end: Annotated[datetime | None, typer.Option("--end", help="ISO time, exclusive.")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
        min_searches: Annotated[int, typer.Option("--min-searches", min=1)] = 5,
    ) -> None:
        """Top queries, queries without results, lowest click-through (from the search log)."""
        from analytics.search_log import SearchLog
        from analytics.search_service import search_report
        from cli.support import console, fail, home_stores, table
        from core.settings import get_settings

        s = get_settings()
        if end is not None and start is not None and end <= start:
            fail("--end must be after --start")
        with home_stores(s) as stores:
            if not stores.searches.count():
                fail("the search log is empty: searches are logged by `shoprank serve`")
            slog = SearchLog(stores.searches)
            try:
                report = search_report(
                    slog,
                    lambda a, b: stores.events.read_table(since=a, until=b),
                    start=start,
                    end=end,
                    limit=limit,
                    min_searches=min_searches,
                )
            finally:
                slog.close()
        cols = [
            "query",
            "searches",
            "no results",
            "relaxed",
            "CTR",
            "avg pos",
            "purchases",
            "revenue",
        ]

        def rows(qs):  # type: ignore[no-untyped-def]
            return [
                [
                    q.query,
                    q.searches,
                    q.zero_results,
                    q.relaxed,
                    q.ctr,
                    q.avg_click_position,
                    q.purchases,
                    q.revenue,
                ]
                for q in qs
            ]

        o = report.overall
        console.print(
            f"{o.searches} searches, {o.zero_results} without results, CTR {o.ctr:.3f}, "
            f"conversion {o.conversion:.3f}, revenue {o.revenue:,.0f}"
        )
        console.print(table("top queries", cols, rows(report.top)))
        console.print(table("queries without results", cols, rows(report.no_results)))
        console.print(table(f"lowest CTR (≥ {min_searches} searches)", cols, rows(report.low_ctr)))

    @app.command("ubi-export")
    def ubi_export_cmd(
        out: Annotated[
            Path, typer.Option("--out", help="Folder for ubi_queries.jsonl and ubi_events.jsonl.")
        ],
        start: Annotated[
            datetime | None, typer.Option("--start", help="ISO time, inclusive.")
        ] = None,
        end: Annotated[datetime | None, typer.Option("--end", help="ISO time, exclusive.")] = None,
    ) -> None:
        """Searches and their events in OpenSearch's User Behavior Insights schema (JSON lines)."""
        from analytics.search_log import SearchLog
        from analytics.ubi import ubi_events, ubi_queries, write_jsonl
        from cli.support import console, fail, home_stores
        from core.settings import get_settings

        s = get_settings()
        with home_stores(s) as stores:
            if not stores.searches.count():
                fail("the search log is empty: searches are logged by `shoprank serve`")
            slog = SearchLog(stores.searches)
            try:
                searches = list(slog.between(start, end))
                nq = write_jsonl(ubi_queries(searches), out / "ubi_queries.jsonl")
                ne = write_jsonl(
                    ubi_events(searches, stores.events.read_table(since=start, until=None)),
                    out / "ubi_events.jsonl",
                )
            finally:
                slog.close()
        console.print(
            f"{nq} queries → {out / 'ubi_queries.jsonl'}; {ne} events → {out / 'ubi_events.jsonl'}"
        )
