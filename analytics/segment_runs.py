"""``shoprank segments`` as a library job: read the shop's events, compute segments and
profiles, publish them as user attributes, record sizes, moves and per-segment KPIs.

Where things go (under ``settings.state_dir``):

* ``segments.parquet`` — the latest run, one row per shopper (``analytics.segments``);
* ``segments.jsonl`` — one line per run: time, ``as_of``, sizes per stage, moves since the
  previous run, KPIs per stage;
And into the user store (``stores.protocols.UserStore``): an upsert for each user whose
segment attributes changed: ``lifecycle``, ``rfm``, ``r_score``/``f_score``/``m_score``,
``top_category``, ``top_categories``, ``price_band``, merged over the user's other attributes
and consent. Serving reads user attributes from there (its caches follow the store's change
feed), so rules can condition on ``lifecycle`` (or ``price_band``, ``top_category``, ``rfm``)
at once. The shop's own ``segment`` is untouched.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.errors import SegmentError
from analytics.reports import REPORT_COLUMNS, build_report
from analytics.segments import (
    SEGMENT_COLUMNS,
    STAGES,
    Segments,
    Thresholds,
    compute_segments,
    moves,
)
from core.fsutil import append_jsonl, atomic_replace
from data.catalog import Catalog
from data.eventlog import EventLog
from data.loaders import read_events_table
from data.models import User
from stores.protocols import UserStore
from stores.users_view import consent_changes, current_users

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.parquet"
HISTORY_FILE = "segments.jsonl"
ATTRIBUTES = ("lifecycle", "rfm", "r_score", "f_score", "m_score", "top_category",
              "top_categories", "price_band")
"""User attributes a segments run owns (rewritten by every run). The shop's own attributes,
``segment`` included, are left as they are."""
KPI_METRICS = ("ctr", "conversion_rate", "aov", "repurchase_rate", "retention")


@dataclass(frozen=True)
class SegmentRun:
    segments: Segments
    sizes: dict[str, int]
    moves: dict[str, dict[str, int]]
    kpis: dict[str, dict[str, float | int | None]]
    published: int
    computed_at: str
    sources: list[str] = field(default_factory=list)


def read_shop_events(data_dir: Path, events_dir: Path | None) -> tuple[pa.Table, list[str]]:
    """The shop's events file (as training picks it) plus the durable event log."""
    columns = sorted(set(SEGMENT_COLUMNS) | set(REPORT_COLUMNS))
    tables, sources = [], []
    for name in ("events.parquet", "events.jsonl"):
        if (data_dir / name).is_file():
            tables.append(read_events_table(data_dir / name, columns=columns))
            sources.append(str(data_dir / name))
            break
    if events_dir is not None and events_dir.is_dir() and any(events_dir.glob("*.jsonl")):
        with EventLog(events_dir) as elog:
            tables.append(elog.read_table().select(columns))
        sources.append(f"event log {events_dir}")
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise SegmentError("no events found: generate or import a shop, or send events to the API")
    return pa.concat_tables(tables, promote_options="permissive"), sources


def excluded_users(data_dir: Path, store: UserStore) -> set[str]:
    """Users not to profile: ``consent: false`` (users file, then the user store) or erased."""
    users = current_users(data_dir / "users.jsonl", store)
    out = {u for u, rec in users.items() if not rec.consent}
    excluded, _ = consent_changes(store)
    return out | excluded


def segment_kpis(events: pa.Table, segs: Segments,
                 catalog: Catalog | None = None) -> dict[str, dict[str, float | int | None]]:
    """CTR, conversion, AOV, repurchase and retention of each stage's shoppers (the KPI
    report's definitions, ``analytics.reports``), over all their events."""
    out: dict[str, dict[str, float | int | None]] = {}
    user_col = events.column("user_id")
    for stage in STAGES:
        ids = segs.table.filter(pc.equal(segs.table.column("lifecycle"), stage)).column("user_id")
        if len(ids) == 0:
            continue
        sub = events.filter(pc.fill_null(pc.is_in(user_col, ids.combine_chunks()), False))
        row = build_report(sub.select(list(REPORT_COLUMNS)), catalog=catalog).overall
        out[stage] = {"users": len(ids),
                      **{m: row.metrics[m].value for m in KPI_METRICS}}
    return out


def attributes_of(row: dict[str, object]) -> dict[str, str | int]:
    """The user attributes of one segments row (empty profile fields left out)."""
    top = str(row.get("top_categories") or "")
    attrs: dict[str, str | int] = {"lifecycle": str(row["lifecycle"])}
    if row.get("rfm"):
        attrs["rfm"] = str(row["rfm"])
        for key in ("r_score", "f_score", "m_score"):
            attrs[key] = int(str(row[key]))
    if top:
        attrs.update(top_category=top.split("|")[0], top_categories=top)
    if row.get("price_band"):
        attrs["price_band"] = str(row["price_band"])
    return attrs


def publish(segs: Segments, data_dir: Path, store: UserStore) -> int:
    """Upsert the changed users' segment attributes into the user store; returns how many.
    Users no longer segmented (consent withdrawn) lose the attributes a run owns."""
    users = current_users(data_dir / "users.jsonl", store)
    changed: list[User] = []
    seen: set[str] = set()
    for row in segs.table.to_pylist():
        uid = str(row["user_id"])
        seen.add(uid)
        old = users.get(uid)
        base = {k: v for k, v in (old.attributes if old else {}).items() if k not in ATTRIBUTES}
        new = {**base, **attributes_of(row)}
        if old is None or new != old.attributes:
            changed.append(User(user_id=uid, attributes=new,
                                consent=old.consent if old is not None else True))
    for uid, old in users.items():
        if uid not in seen and any(k in old.attributes for k in ATTRIBUTES):
            changed.append(User(user_id=uid, consent=old.consent, attributes={
                k: v for k, v in old.attributes.items() if k not in ATTRIBUTES}))
    for i in range(0, len(changed), 5_000):
        store.upsert(changed[i : i + 5_000])
    return len(changed)


def previous(state_dir: Path) -> pa.Table | None:
    path = state_dir / SEGMENTS_FILE
    return pq.read_table(path) if path.is_file() else None


def run_segments(
    data_dir: Path,
    events_dir: Path | None,
    state_dir: Path,
    users: UserStore,
    *,
    thresholds: Thresholds | None = None,
    catalog: Catalog | None = None,
    publish_attributes: bool = True,
    progress: Callable[[str], None] | None = None,
) -> SegmentRun:
    """Compute, publish and record one run (see the module doc)."""
    say = progress or (lambda _msg: None)
    say("reading events")
    events, sources = read_shop_events(data_dir, events_dir)
    if catalog is None and (data_dir / "items.jsonl").is_file():
        catalog = Catalog.from_jsonl(data_dir / "items.jsonl")
    segs = compute_segments(events, catalog=catalog, thresholds=thresholds,
                            exclude=excluded_users(data_dir, users), progress=say)
    say("KPIs per segment")
    kpis = segment_kpis(events, segs, catalog)
    before = previous(state_dir)
    moved = moves(before, segs.table)
    published = 0
    if publish_attributes:
        say("publishing user attributes")
        published = publish(segs, data_dir, users)
    state_dir.mkdir(parents=True, exist_ok=True)
    with atomic_replace(state_dir / SEGMENTS_FILE) as tmp:
        pq.write_table(segs.table, tmp)
    run = SegmentRun(segs, segs.sizes(), moved, kpis, published,
                     datetime.now(UTC).isoformat(timespec="seconds"), sources)
    append_jsonl(state_dir / HISTORY_FILE, [{
        "computed_at": run.computed_at, "as_of": segs.as_of.isoformat(timespec="seconds"),
        "thresholds": segs.thresholds.__dict__, "sizes": run.sizes, "moves": moved,
        "kpis": kpis, "published": published, "sources": sources,
    }])
    return run


def read_history(state_dir: Path) -> list[dict[str, object]]:
    """Segment runs, oldest first."""
    path = state_dir / HISTORY_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text("utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            log.warning("%s: an unreadable line skipped", path)
    return out


def segments_chart(history: list[dict[str, object]]) -> Figure:
    """Segment sizes of the latest run (bars) and per run over time (lines)."""
    import matplotlib  # heavy: only charts need it

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.6])
    if not history:
        ax1.text(0.5, 0.5, "no segments run yet", ha="center", transform=ax1.transAxes)
        return fig
    last = history[-1]["sizes"]
    assert isinstance(last, dict)
    ax1.bar(list(STAGES), [last.get(s, 0) for s in STAGES],
            color=[f"C{k}" for k in range(len(STAGES))])
    ax1.set_title("shoppers per stage (latest run)")
    ax1.tick_params(axis="x", rotation=30)
    times = [datetime.fromisoformat(str(h["computed_at"])) for h in history]
    for k, s in enumerate(STAGES):
        ax2.plot(times, [h["sizes"].get(s, 0) for h in history],  # type: ignore[union-attr]
                 marker="o", color=f"C{k}", label=s)
    ax2.set_title("stage sizes per run")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def chart_bytes(fig: Figure, fmt: Literal["png", "svg"] = "png") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()
