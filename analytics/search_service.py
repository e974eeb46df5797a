"""The search report as a use case: read the search log and the events, build the report
(`analytics.search_report`), draw its charts (`analytics.svg`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa

from analytics.search_log import SearchLog
from analytics.search_report import SearchReport, build_search_report
from analytics.svg import bars

EventsReader = Callable[[datetime | None, datetime | None], pa.Table]


def search_report(
    log: SearchLog,
    read_events: EventsReader,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int = 20,
    min_searches: int = 5,
) -> SearchReport:
    """The report for searches in ``[start, end)``; events from ``start`` on (a purchase
    may come after the window)."""
    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    searches = list(log.between(start, end))
    events = read_events(start, None)
    return build_search_report(
        searches, events, start=start, end=end, limit=limit, min_searches=min_searches
    )


def report_charts(report: SearchReport) -> dict[str, str]:
    """Inline SVG charts: searches and searches without results per day, top queries,
    click-through of the lowest-CTR queries."""
    days = report.days[-30:]
    top = report.top[:10]
    low = report.low_ctr[:10]
    return {
        "days": bars(
            "Searches per day",
            [d.isoformat()[5:] for d, _ in days],
            [
                ("searches", [s.searches for _, s in days], "#4c78a8"),
                ("no results", [s.zero_results for _, s in days], "#e45756"),
            ],
        ),
        "top": bars(
            "Top queries",
            [q.query for q in top],
            [
                ("searches", [q.searches for q in top], "#4c78a8"),
                ("clicked", [q.searches_clicked for q in top], "#54a24b"),
            ],
        ),
        "low_ctr": bars(
            "Lowest click-through (share of searches clicked)",
            [q.query for q in low],
            [("CTR", [q.ctr for q in low], "#f58518")],
        ),
    }
