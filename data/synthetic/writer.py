"""Writes a synthetic shop to a folder and reads its hidden truth back.

:func:`generate` builds the catalogue, simulates the shoppers one chunk of users at a time
(so memory stays bounded at millions of events), streams each chunk to the output files and
writes the truth and a summary at the end. The files are described in :mod:`data.synthetic`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from data.event_table import EVENT_SCHEMA, dumps, table_to_dicts
from data.synthetic.catalog import Catalog, build_catalog
from data.synthetic.simulator import (
    BEHAVIOUR_TASTES,
    ChunkOut,
    day_weights,
    hour_weights,
    simulate_chunk,
)
from data.synthetic.spec import ShopSpec
from data.synthetic.taxonomy import LEAVES

log = logging.getLogger(__name__)

EventsFormat = Literal["auto", "parquet", "jsonl", "both"]
JSONL_AUTO_LIMIT = 200_000
TRUTH_USERS_IN_JSON_LIMIT = 50_000
EVENTS_PER_CHUNK = 1_000_000

TRUTH_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("leaves", pa.list_(pa.string())),
        ("brands", pa.list_(pa.string())),
        ("price_sensitivity", pa.float64()),
        ("activity", pa.float64()),
        *((k, pa.float64()) for k in BEHAVIOUR_TASTES),
    ]
)


@dataclass(frozen=True)
class GenerateSummary:
    spec: ShopSpec
    out_dir: Path
    n_items: int
    n_users: int
    n_events: int
    n_sessions: int
    counts: dict[str, int]
    leaves_covered: int
    n_leaves: int
    n_bundles: int
    bundle_copurchases: int
    n_trending: int
    files: tuple[str, ...]
    seconds: float
    funnel: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Truth:
    """The hidden truth of a generated shop (see :mod:`data.synthetic`)."""

    spec: dict[str, Any]
    categories: tuple[str, ...]
    bundles: tuple[tuple[str, str], ...]
    trending: tuple[str, ...]
    trend_days: int
    users: pa.Table
    """user_id, leaves, brands, price_sensitivity, activity (one row per user)."""

    def user_tastes(self) -> dict[str, dict[str, Any]]:
        """Per-user tastes as a dict (fine for small shops)."""
        return {r.pop("user_id"): r for r in self.users.to_pylist()}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")


class _ShopFiles:
    """The files a shop's chunks stream into, and the totals counted on the way."""

    def __init__(self, out: Path, spec: ShopSpec, parquet: bool, jsonl: bool) -> None:
        self.small_truth = spec.n_users <= TRUTH_USERS_IN_JSON_LIMIT
        self.counts: Counter[str] = Counter()
        self.n_events = self.n_sessions = self.copurchases = 0
        self.leaves_seen = np.zeros(len(LEAVES), dtype=bool)
        self.truth_users: list[dict[str, list[Any]]] = []
        self.events = (
            pq.ParquetWriter(out / "events.parquet", EVENT_SCHEMA, compression="zstd")
            if parquet
            else None
        )
        self.events_jsonl: IO[str] | None = (
            (out / "events.jsonl").open("w", encoding="utf-8", newline="\n") if jsonl else None
        )
        self.truth = pq.ParquetWriter(out / "truth_users.parquet", TRUTH_SCHEMA, compression="zstd")
        self.users = (out / "users.jsonl").open("w", encoding="utf-8", newline="\n")

    def write(self, ch: ChunkOut, cat: Catalog) -> None:
        """One chunk's users, truth rows and events; counts what it held."""
        for r in ch.users:
            self.users.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
            self.users.write("\n")
        self.truth.write_table(pa.Table.from_pydict(ch.truth, schema=TRUTH_SCHEMA))
        if self.small_truth:
            self.truth_users.append(ch.truth)
        if self.events is not None:
            self.events.write_table(ch.events, row_group_size=max(1, ch.events.num_rows))
        if self.events_jsonl is not None:
            for row in table_to_dicts(ch.events):
                self.events_jsonl.write(dumps(row))
                self.events_jsonl.write("\n")
        vc = pc.value_counts(ch.events.column("type"))
        for entry in vc.to_pylist():
            self.counts[entry["values"]] += entry["counts"]
        items_idx = pc.drop_null(ch.events.column("item_id"))
        seen = np.unique(np.asarray(pc.cast(pc.utf8_slice_codeunits(items_idx, 1), pa.int64())))
        self.leaves_seen[np.unique(cat.leaf[seen])] = True
        self.n_events += ch.events.num_rows
        self.n_sessions += ch.n_sessions
        self.copurchases += ch.bundle_copurchases

    def close(self) -> None:
        for f in (self.events, self.events_jsonl, self.truth, self.users):
            if f is not None:
                f.close()


def _truth_json(spec: ShopSpec, cat: Catalog, files: _ShopFiles) -> dict[str, Any]:
    """The ``truth.json`` document (per-user tastes only for small shops)."""
    item_id = cat.ids.to_pylist()
    truth: dict[str, Any] = {
        "spec": spec.to_json(),
        "categories": [leaf.path for leaf in LEAVES],
        "bundles": [[item_id[a], item_id[b]] for a, b in cat.bundles],
        "trending": [item_id[i] for i in cat.trending],
        "trend_days": spec.trend_days,
        "counts": {
            "items": spec.n_items,
            "users": spec.n_users,
            "events": files.n_events,
            "sessions": files.n_sessions,
            "by_type": dict(sorted(files.counts.items())),
        },
    }
    if files.small_truth:
        keys = ("leaves", "brands", "price_sensitivity", "activity", *BEHAVIOUR_TASTES)
        users_truth: dict[str, Any] = {}
        for t in files.truth_users:
            for i, uid in enumerate(t["user_id"]):
                users_truth[uid] = {k: t[k][i] for k in keys}
        truth["users"] = users_truth
    return truth


def _summary(
    spec: ShopSpec, out: Path, cat: Catalog, files: _ShopFiles, names: list[str], t0: float
) -> GenerateSummary:
    counts, n_sessions = files.counts, files.n_sessions

    def rate(a: str, b: str) -> float:
        return counts[a] / counts[b] if counts[b] else 0.0

    return GenerateSummary(
        spec=spec,
        out_dir=out,
        n_items=spec.n_items,
        n_users=spec.n_users,
        n_events=files.n_events,
        n_sessions=n_sessions,
        counts=dict(counts),
        leaves_covered=int(files.leaves_seen.sum()),
        n_leaves=len(LEAVES),
        n_bundles=len(cat.bundles),
        bundle_copurchases=files.copurchases,
        n_trending=len(cat.trending),
        files=tuple(names),
        seconds=time.perf_counter() - t0,
        funnel={
            "click/impression": rate("click", "impression"),
            "add_to_cart/view": rate("add_to_cart", "view"),
            "purchase/add_to_cart": rate("purchase", "add_to_cart"),
            "purchase/view": rate("purchase", "view"),
            "purchases/session": counts["purchase"] / n_sessions if n_sessions else 0.0,
        },
    )


def generate(
    spec: ShopSpec,
    out_dir: Path | str,
    *,
    progress: bool = True,
    events_format: EventsFormat = "auto",
) -> GenerateSummary:
    """Generate a shop into ``out_dir`` (created if missing; generated files are overwritten)."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet = events_format in ("auto", "parquet", "both")
    write_jsonl = events_format in ("jsonl", "both") or (
        events_format == "auto" and spec.n_events <= JSONL_AUTO_LIMIT
    )

    cat = build_catalog(spec)
    _write_jsonl(out / "items.jsonl", cat.rows)
    day_p, hour_p = day_weights(spec), hour_weights()
    per_user = max(spec.n_events / spec.n_users, 1.0)
    chunk_users = max(1000, int(EVENTS_PER_CHUNK / per_user))
    files = _ShopFiles(out, spec, write_parquet, write_jsonl)
    try:
        with tqdm(
            total=spec.n_events, desc="events", unit="ev", disable=not progress, unit_scale=True
        ) as bar:
            for c, u0 in enumerate(range(0, spec.n_users, chunk_users)):
                u1 = min(spec.n_users, u0 + chunk_users)
                ids_from = (files.n_sessions, files.n_events)
                ch = simulate_chunk(cat, spec, c, (u0, u1), ids_from, day_p, hour_p)
                files.write(ch, cat)
                bar.update(ch.events.num_rows)
            bar.total = files.n_events  # the requested count is approximate
            bar.refresh()
    finally:
        files.close()
    names = ["items.jsonl", "users.jsonl"]
    if write_parquet:
        names.append("events.parquet")
    if write_jsonl:
        names.append("events.jsonl")

    truth = _truth_json(spec, cat, files)
    (out / "truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    names += ["truth.json", "truth_users.parquet"]
    summary = _summary(spec, out, cat, files, names, t_start)
    log.info(
        "generated %d events for %d users and %d items in %.1fs into %s",
        summary.n_events,
        spec.n_users,
        spec.n_items,
        summary.seconds,
        out,
    )
    return summary


def load_truth(out_dir: Path | str) -> Truth:
    """Read the hidden truth written by :func:`generate`."""
    out = Path(out_dir)
    raw = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    users = pq.read_table(out / "truth_users.parquet")
    return Truth(
        spec=raw["spec"],
        categories=tuple(raw["categories"]),
        bundles=tuple((a, b) for a, b in raw["bundles"]),
        trending=tuple(raw["trending"]),
        trend_days=int(raw["trend_days"]),
        users=users,
    )
