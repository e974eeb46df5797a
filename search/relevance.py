"""Search relevance on the synthetic shop: labeled queries from structured fields → NDCG@k.

A query expresses an *intent*: a leaf category, optionally with a variant (colour, flavour,
scent) or a brand. Relevance is read from the items' structured fields, not from their
text: grade 2 when the item has the leaf and every other part of the intent, grade 1 when it
has the leaf only. Queries come in groups: Chinese (traditional, simplified, words run
together or spaced), English, brand + category, and English with one typo.

The synthetic vocabulary (`data.synthetic.LEAVES` and the variant tables) maps a leaf's
Chinese name to its English noun and an English variant to its Chinese name.
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from data.models import Item
from data.text import normalize
from search.analysis import Analyzer
from search.backend import SearchBackend
from search.behaviour import EVENT_COLUMNS as BEHAVIOUR_COLUMNS
from search.engine import SearchEngine
from search.query import SearchRequest
from search.shopper_queries import shopper_queries

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

GROUPS = ("zh", "zh-simplified", "en", "brand", "en-typo")


@dataclass(frozen=True)
class Intent:
    leaf: str
    """Chinese leaf category name, e.g. 連衣裙."""
    variant: str | None = None
    """English variant as in ``item.attributes`` (``red``), or None."""
    brand: str | None = None

    def grade(self, item: Item) -> int:
        if not item.category or item.category[-1] != self.leaf:
            return 0
        if self.variant is not None and _variant_of(item) != self.variant:
            return 1
        if self.brand is not None and item.brand != self.brand:
            return 1
        return 2


@dataclass(frozen=True)
class LabeledQuery:
    text: str
    group: str
    intent: Intent
    relevant: dict[str, int]
    """item_id → grade (1 or 2), over active items."""


class Judged(Protocol):
    """A query with graded relevance: `LabeledQuery` or `search.shopper_queries.ShopperQuery`."""

    text: str
    group: str
    relevant: dict[str, int]


QuerySet = Literal["generated", "shopper"]
"""``generated``: `make_queries` (from the title templates); ``shopper``: the hand-written
`search.shopper_queries` set."""


@dataclass
class RelevanceReport:
    backend: str
    k: int
    n_queries: int
    ndcg: float
    by_group: dict[str, float]
    seconds: float
    worst: list[tuple[str, float]] = field(default_factory=list)
    zero_results: list[str] = field(default_factory=list)
    """Queries that found nothing."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _variant_of(item: Item) -> str | None:
    for key in ("colour", "flavour", "scent"):
        v = item.attributes.get(key)
        if isinstance(v, str):
            return v
    return None


def _vocabulary() -> tuple[dict[str, str], dict[str, str]]:
    """(leaf zh → English noun, variant en lower → zh)."""
    from data.synthetic import COLOURS, FLAVOURS, LEAVES, SCENTS

    nouns = {leaf.zh[2]: leaf.noun for leaf in LEAVES}
    variants = {en.lower(): zh for zh, en in (*COLOURS, *FLAVOURS, *SCENTS)}
    return nouns, variants


def typo(text: str, rng: random.Random) -> str:
    """One edit (drop, double or swap a letter) inside the longest word of ``text``."""
    words = text.split(" ")
    i = max(range(len(words)), key=lambda j: (len(words[j]), -j))
    w = words[i]
    if len(w) < 5:
        return text
    p = rng.randrange(1, len(w) - 2)
    op = rng.choice(("drop", "double", "swap"))
    if op == "drop":
        w = w[:p] + w[p + 1 :]
    elif op == "double":
        w = w[: p + 1] + w[p] + w[p + 1 :]
    else:
        w = w[:p] + w[p + 1] + w[p] + w[p + 2 :]
    words[i] = w
    return " ".join(words)


def make_queries(items: Sequence[Item], n: int = 300, *, seed: int = 7) -> list[LabeledQuery]:
    """``n`` labeled queries (cycling through `GROUPS`) drawn from active items' fields."""
    nouns, variant_zh = _vocabulary()
    active = [i for i in items if i.is_active and i.category and i.category[-1] in nouns]
    if not active:
        raise ValueError("no active synthetic-shop items to draw queries from")
    rng = random.Random(seed)
    out: list[LabeledQuery] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n and attempts < n * 50:
        attempts += 1
        group = GROUPS[len(out) % len(GROUPS)]
        item = rng.choice(active)
        leaf = item.category[-1]
        noun = nouns[leaf].lower()
        variant = _variant_of(item)
        if group in ("zh", "zh-simplified"):
            if variant is None or variant not in variant_zh:
                continue
            vz = variant_zh[variant]
            text = f"{leaf} {vz}" if rng.random() < 0.5 else f"{vz}{leaf}"
            if group == "zh-simplified":
                text = normalize(text)
            intent = Intent(leaf, variant=variant)
        elif group == "en":
            if variant is None:
                continue
            text = f"{variant} {noun}"
            intent = Intent(leaf, variant=variant)
        elif group == "brand":
            if not item.brand:
                continue
            text = f"{item.brand} {leaf}" if rng.random() < 0.5 else f"{item.brand.lower()} {noun}"
            intent = Intent(leaf, brand=item.brand)
        else:
            if variant is None:
                continue
            text = typo(f"{variant} {noun}", rng)
            if text == f"{variant} {noun}":
                continue
            intent = Intent(leaf, variant=variant)
        if text in seen:
            continue
        seen.add(text)
        relevant = {i.item_id: g for i in items if i.is_active and (g := intent.grade(i)) > 0}
        out.append(LabeledQuery(text, group, intent, relevant))
    return out


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """NDCG with gains ``2^grade − 1``; 0 when nothing is relevant."""
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate(
    backend: SearchBackend, queries: Iterable[Judged], *, k: int = 10
) -> RelevanceReport:
    t0 = time.perf_counter()
    scores: list[tuple[Judged, float]] = []
    zero: list[str] = []
    for q in queries:
        hits = backend.search(SearchRequest(text=q.text, size=k)).hits
        if not hits:
            zero.append(q.text)
        scores.append((q, ndcg_at_k([h.item_id for h in hits], q.relevant, k)))
    by_group: dict[str, list[float]] = defaultdict(list)
    for q, s in scores:
        by_group[q.group].append(s)
    mean = sum(s for _, s in scores) / max(len(scores), 1)
    worst = sorted(((q.text, round(s, 4)) for q, s in scores), key=lambda x: x[1])[:10]
    return RelevanceReport(
        backend=backend.name,
        k=k,
        n_queries=len(scores),
        ndcg=round(mean, 4),
        by_group={g: round(sum(v) / len(v), 4) for g, v in sorted(by_group.items())},
        seconds=round(time.perf_counter() - t0, 2),
        worst=worst,
        zero_results=zero,
    )


def evaluate_backends(
    items_path: Path | str,
    kinds: Sequence[str],
    *,
    settings: Settings,
    n_queries: int = 300,
    seed: int = 7,
    k: int = 10,
    query_set: QuerySet = "generated",
    engine: bool = True,
    events_path: Path | str | None = None,
) -> dict[str, RelevanceReport]:
    """Index ``items_path`` into a fresh index per backend kind and evaluate each one on the
    same labeled queries. The embedded index lives in a temporary folder; OpenSearch uses
    the index name ``<opensearch_index>-eval``. ``engine``: search through
    `search.engine.SearchEngine` (price words, relaxation, hybrid) as the API does; False
    measures the bare backend. ``events_path``: the shop's events, for the engine's
    behaviour vectors (`search.behaviour`)."""
    from data.loaders import iter_items, read_events_table

    items = list(iter_items(items_path))
    events = None
    if engine and events_path is not None:
        events = read_events_table(events_path, columns=BEHAVIOUR_COLUMNS)
    queries: Sequence[Judged]
    if query_set == "shopper":
        queries = shopper_queries(items)
    else:
        queries = make_queries(items, n_queries, seed=seed)
    analyzer = Analyzer.from_file(settings.synonyms_file)
    reports: dict[str, RelevanceReport] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="shoprank-eval-") as tmp:
            backend: SearchBackend
            if kind == "embedded":
                from search.tantivy_backend import TantivyBackend

                backend = TantivyBackend(Path(tmp) / "index", analyzer=analyzer)
            else:
                from search.opensearch_backend import OpenSearchBackend

                assert settings.opensearch_url, "OpenSearch URL required"
                backend = OpenSearchBackend(
                    settings.opensearch_url,
                    index=f"{settings.opensearch_index}-eval",
                    analyzer=analyzer,
                )
            if engine:
                backend = SearchEngine(backend, analyzer=analyzer, aids_root=Path(tmp) / "aids")
            try:
                if isinstance(backend, SearchEngine):
                    backend.rebuild(items, events=events)
                else:
                    backend.rebuild(items)
                reports[kind] = evaluate(backend, queries, k=k)
            finally:
                backend.close()
    return reports
