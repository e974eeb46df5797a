"""Search analytics for merchandisers, from the search log and the events that echo a
search's request id.

Definitions (per query and per day):

* ``searches``: logged searches; the query is grouped by its normalized text
  (`data.text.normalize`: 連衣裙 and 连衣裙 are one query).
* ``zero_results``: searches that answered no item; ``relaxed``: searches answered by a
  relaxed query (`search.relax`).
* ``clicks``: click or view events carrying the search's request id; ``ctr``: the share of
  searches with at least one of them (click-through rate per search).
* ``avg_click_position``: mean 1-based position of the clicked items (the event's
  ``position`` + 1 when sent, else the item's place among the ids the search showed).
* ``purchases`` / ``conversion``: purchase events with the request id, and the share of
  searches with at least one; ``revenue``: the sum of their ``value``.

``low_ctr`` lists queries searched at least ``min_searches`` times, lowest CTR first.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

import pyarrow as pa

from analytics.search_log import LoggedSearch
from data.text import normalize

CLICK_TYPES = frozenset({"click", "view"})
_SPACES = re.compile(r"\s+")


def query_key(text: str) -> str:
    return _SPACES.sub(" ", normalize(text)).strip()


@dataclass
class QueryStats:
    query: str
    searches: int = 0
    zero_results: int = 0
    relaxed: int = 0
    clicks: int = 0
    searches_clicked: int = 0
    purchases: int = 0
    searches_converted: int = 0
    revenue: float = 0.0
    avg_click_position: float | None = None
    ctr: float = 0.0
    conversion: float = 0.0
    _positions: list[int] = field(default_factory=list, repr=False)

    def finish(self) -> None:
        self.ctr = round(self.searches_clicked / self.searches, 4) if self.searches else 0.0
        self.conversion = (
            round(self.searches_converted / self.searches, 4) if self.searches else 0.0
        )
        if self._positions:
            self.avg_click_position = round(sum(self._positions) / len(self._positions), 2)
        self.revenue = round(self.revenue, 2)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("_positions", None)
        return d


@dataclass
class SearchReport:
    start: datetime | None
    end: datetime | None
    overall: QueryStats
    days: list[tuple[date, QueryStats]]
    queries: list[QueryStats]
    """Every query, most searched first."""
    limit: int = 20
    min_searches: int = 5

    @property
    def top(self) -> list[QueryStats]:
        return self.queries[: self.limit]

    @property
    def no_results(self) -> list[QueryStats]:
        rows = [q for q in self.queries if q.zero_results > 0]
        return sorted(rows, key=lambda q: (-q.zero_results, q.query))[: self.limit]

    @property
    def low_ctr(self) -> list[QueryStats]:
        rows = [q for q in self.queries if q.searches >= self.min_searches]
        return sorted(rows, key=lambda q: (q.ctr, -q.searches, q.query))[: self.limit]

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "overall": self.overall.as_dict(),
            "days": [{"day": d.isoformat(), **s.as_dict()} for d, s in self.days],
            "top_queries": [q.as_dict() for q in self.top],
            "no_result_queries": [q.as_dict() for q in self.no_results],
            "low_ctr_queries": [q.as_dict() for q in self.low_ctr],
            "min_searches": self.min_searches,
        }


def build_search_report(
    searches: Iterable[LoggedSearch],
    events: pa.Table,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 20,
    min_searches: int = 5,
) -> SearchReport:
    """The report over ``searches`` (already cut to the window) and the ``events`` that may
    echo their request ids (events of any time: a purchase may come days later)."""
    logged = {s.request_id: s for s in searches}
    clicks: dict[str, list[tuple[str | None, int | None]]] = defaultdict(list)
    buys: dict[str, list[float]] = defaultdict(list)
    if events.num_rows and logged:
        cols = events.select(["type", "request_id", "item_id", "position", "value"]).to_pydict()
        for typ, rid, item, pos, value in zip(
            cols["type"],
            cols["request_id"],
            cols["item_id"],
            cols["position"],
            cols["value"],
            strict=True,
        ):
            if rid is None or rid not in logged:
                continue
            if typ in CLICK_TYPES:
                clicks[rid].append((item, pos))
            elif typ == "purchase":
                buys[rid].append(float(value or 0.0))
    overall = QueryStats("*")
    by_query: dict[str, QueryStats] = {}
    by_day: dict[date, QueryStats] = {}
    for rid, s in logged.items():
        key = query_key(s.query)
        day = s.at.date()
        for st in (
            overall,
            by_query.setdefault(key, QueryStats(key)),
            by_day.setdefault(day, QueryStats(day.isoformat())),
        ):
            st.searches += 1
            st.zero_results += s.total == 0
            st.relaxed += s.relaxed
            got = clicks.get(rid, [])
            st.clicks += len(got)
            st.searches_clicked += bool(got)
            for item, pos in got:
                if pos is not None:
                    st._positions.append(int(pos) + 1)
                elif item in s.hit_ids:
                    st._positions.append(s.hit_ids.index(item) + 1)
            paid = buys.get(rid, [])
            st.purchases += len(paid)
            st.searches_converted += bool(paid)
            st.revenue += sum(paid)
    for st in (overall, *by_query.values(), *by_day.values()):
        st.finish()
    queries = sorted(by_query.values(), key=lambda q: (-q.searches, q.query))
    days = sorted(by_day.items())
    return SearchReport(start, end, overall, days, queries, limit, min_searches)
