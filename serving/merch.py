"""Merchandising services of the app: rules, experiments, the served-request log, reports.

:func:`install_merchandising` builds them from the settings (SQLite stores under
``settings.state_dir``) and plugs them into a :class:`serving.state.Services` — the rule
engine as ``services.rules``, experiment assignment as ``services.experiments``. Routes and the
console reach them through :func:`merch`, which installs them on first use when a test built
its ``Services`` by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from data.models import Event
from recsys.experiment_store import SqliteExperimentStore, SqliteRequestLog
from recsys.experiments import ExperimentService
from recsys.hooks import NoExperiments, NoRules
from recsys.rule_store import SqliteRuleStore
from recsys.rules.service import RuleService
from recsys.types import RankContext, ScoredItem

if TYPE_CHECKING:
    import pyarrow as pa

    from recsys.pipeline import Pipeline
    from serving.state import Services

log = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Merch:
    rules: RuleService
    experiments: ExperimentService
    requests: SqliteRequestLog


def install_merchandising(services: Services) -> Merch:
    """Open the stores and plug the rule engine and experiment assignment into ``services``."""
    state = services.settings.state_dir
    requests = SqliteRequestLog.in_state_dir(state)
    experiments = ExperimentService(SqliteExperimentStore.in_state_dir(state), requests)
    rules = RuleService(
        SqliteRuleStore.in_state_dir(state), services.catalog, rule_set_for=experiments.rule_set_for
    )
    services.rules = rules
    services.experiments = experiments
    m = Merch(rules, experiments, requests)
    services.extras["merch"] = m
    log.info(
        "merchandising ready: %d rules, %d experiments",
        len(rules.all_rules()),
        len(experiments.list()),
    )
    return m


def merch(services: Services) -> Merch:
    got = services.extras.get("merch")
    if isinstance(got, Merch):
        return got
    with _lock:
        got = services.extras.get("merch")
        if isinstance(got, Merch):
            return got
        return install_merchandising(services)


# ---------------------------------------------------------------------------- events
def read_events(
    services: Services, start: datetime | None = None, end: datetime | None = None
) -> Iterator[Event]:
    """Events of the durable log between ``start`` and ``end`` (both optional)."""
    sink = services.events
    reader = getattr(sink, "iter_events", None)
    if callable(reader):
        it = reader(since=start, until=end)  # data.eventlog.EventLog: day files, inclusive
    else:
        it = _journal_events(services)
    for e in it:
        if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end):
            yield e


def read_events_table(
    services: Services, start: datetime | None = None, end: datetime | None = None
) -> pa.Table:
    """The durable log's events between ``start`` and ``end`` as an Arrow table (the whole
    day files that overlap the window; ``recsys.reports.build_report`` cuts it exactly)."""
    reader = getattr(services.events, "read_table", None)
    if callable(reader):
        return reader(since=start, until=end)  # data.eventlog.EventLog: day files, inclusive
    from data.event_table import events_to_table

    return events_to_table(read_events(services, start, end))


def _journal_events(services: Services) -> Iterator[Event]:
    path = getattr(services.events, "path", None)
    if path is None or not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield Event.model_validate_json(line)


# ---------------------------------------------------------------------------- ranker for previews
def _plain_pipeline(services: Services) -> Pipeline:
    """The app's pipeline without rules or experiments (what lists look like before rules)."""
    from recsys.pipeline import Pipeline

    got = services.extras.get("plain_pipeline")
    if isinstance(got, Pipeline):
        return got
    p = Pipeline(
        catalog=services.catalog,
        profiles=services.profiles,
        live=services.live,
        config=services.pipeline.config,
        models=lambda: services.models,
        rules=NoRules,
        experiments=NoExperiments,
    )
    services.extras["plain_pipeline"] = p
    return p


def preview_ranker(services: Services, depth: int = 60):  # type: ignore[no-untyped-def]
    """A ``recsys.rules.preview.Ranker`` over the app's real pipeline and search backend."""

    def rank(ctx: RankContext, text: str | None) -> list[ScoredItem]:
        pipe = _plain_pipeline(services)
        if ctx.surface == "search":
            if services.search is None or not text:
                return []
            from search.query import SearchRequest

            res = services.search.search(SearchRequest(text=text, size=min(depth, 100)))
            return [ScoredItem(h.item_id, h.score) for h in res.hits]
        if ctx.surface == "similar" and ctx.item_id:
            return pipe.similar(item_id=ctx.item_id, n=depth, user_id=ctx.user_id).items
        if ctx.surface == "bought_together" and ctx.item_id:
            return pipe.bought_together(item_id=ctx.item_id, n=depth, user_id=ctx.user_id).items
        return pipe.feed(user_id=ctx.user_id, category=ctx.category, depth=depth).items

    return rank
