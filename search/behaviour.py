"""Item vectors learned from the shop's own behaviour, and the items shoppers clicked per query.

Two signals from the event log, built with the other aids of an index generation
(`search.aids`) when the index is built from a catalog *and* its events (``shoprank index``
reads ``DATA_DIR/events.parquet``):

* **Session co-occurrence vectors** (item2vec-like, without training a network): items a
  shopper clicked, viewed, saved, carted or bought in one session co-occur. The item × item
  co-occurrence counts (an item with itself: the sessions that hold it) are turned into
  positive pointwise mutual information (PPMI, context counts smoothed with exponent 0.75,
  as word2vec's negative sampling implicitly does) and factorized by truncated SVD; an
  item's vector is its row of ``U · √S``, L2-normalized.
  Items bought or browsed together (a tent and a hiking backpack) end up close even when
  their titles share no word. Items without events have no vector.
* **Search → click pairs**: for each normalized query text, the items clicked, carted or
  bought from its results, by count. A query whose words the catalog does not hold (a
  shop's own slang) still has the items shoppers chose for it.

`BehaviourIndex.candidates` turns a query into a ranked list: the items clicked for that
text, then the items nearest (cosine, brute force over the vectors) to the centroid of the
seeds — the clicked items, or, for a query never logged, the text neighbours the caller
passes. `search.engine.SearchEngine` fuses that list with the lexical and text-vector lists.
numpy and scipy only; nothing is downloaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from data.text import normalize

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

DIM = 32
EVENT_COLUMNS = ("user_id", "item_id", "type", "timestamp", "session_id", "query")
"""Event columns the behaviour vectors read."""
SESSION_TYPES = ("click", "view", "favorite", "add_to_cart", "purchase")
"""Event types that put an item in a session's basket of interest."""
CLICK_TYPES = ("click", "add_to_cart", "purchase")
"""Event types that count as a shopper choosing an item for the query they searched."""
MAX_SESSION_ITEMS = 100
"""Items of one session kept for co-occurrence (the rest are ignored): pairs grow quadratically."""
MAX_CLICKED = 20
"""Clicked items remembered per query text."""
SMOOTHING = 0.75
SEED = 20261203
_SPACES = re.compile(r"\s+")


def query_key(text: str) -> str:
    """The form a query is remembered under: normalized, runs of spaces as one."""
    return _SPACES.sub(" ", normalize(text)).strip()


def _session_keys(table: pa.Table) -> np.ndarray:
    """One key per row: the session id, else the user and the UTC day."""
    import pyarrow.compute as pc

    micros = pc.cast(table.column("timestamp"), "int64")
    day = pc.cast(pc.divide(micros, 86_400_000_000), "string")  # integer division
    fallback = pc.binary_join_element_wise(table.column("user_id"), day, "|")
    sess = pc.coalesce(table.column("session_id"), fallback)
    return np.asarray(pc.dictionary_encode(sess).combine_chunks().indices)


def ppmi(cooc: sp.csr_matrix) -> sp.csr_matrix:
    """Positive PMI of a symmetric co-occurrence matrix (context counts ^ `SMOOTHING`)."""
    cooc = sp.csr_matrix(cooc, dtype=np.float64)
    total = cooc.sum()
    if total <= 0:
        return sp.csr_matrix(cooc.shape, dtype=np.float32)
    row = np.asarray(cooc.sum(axis=1)).ravel()
    ctx = row**SMOOTHING
    ctx_total = ctx.sum()
    coo = cooc.tocoo()
    pmi = np.log(coo.data * ctx_total / (row[coo.row] * ctx[coo.col]))
    keep = pmi > 0
    out = sp.csr_matrix(
        (pmi[keep].astype(np.float32), (coo.row[keep], coo.col[keep])), shape=cooc.shape
    )
    return out


class BehaviourIndex:
    """Item vectors (``item_ids`` ↔ rows of ``vectors``) and clicked items per query."""

    def __init__(
        self,
        item_ids: list[str],
        vectors: np.ndarray,
        clicks: dict[str, list[tuple[str, int]]],
    ) -> None:
        self.item_ids = item_ids
        self.vectors = vectors
        self.clicks = clicks
        self._row = {item_id: i for i, item_id in enumerate(item_ids)}

    @classmethod
    def build(cls, events: pa.Table, catalog_ids: Sequence[str]) -> BehaviourIndex:
        """From an events table (`data.event_table.EVENT_SCHEMA` columns) and the ids of the
        catalog's searchable items (other items are ignored)."""
        import pyarrow.compute as pc

        known = set(catalog_ids)
        t = events.filter(
            pc.and_(
                pc.is_valid(events.column("item_id")),
                pc.is_in(events.column("type"), value_set=_strings(SESSION_TYPES)),
            )
        )
        t = t.filter(pc.is_in(t.column("item_id"), value_set=_strings(sorted(known))))
        clicks = _clicks(t)
        if t.num_rows == 0:
            return cls([], np.zeros((0, DIM), np.float32), clicks)
        items_enc = pc.dictionary_encode(t.column("item_id")).combine_chunks()
        ids = [str(x) for x in items_enc.dictionary.to_pylist()]
        item_idx = np.asarray(items_enc.indices, dtype=np.int64)
        sess_idx = _session_keys(t).astype(np.int64)
        # one row per (session, item); at most MAX_SESSION_ITEMS items per session
        pairs = np.unique(np.stack([sess_idx, item_idx], axis=1), axis=0)
        starts = np.searchsorted(pairs[:, 0], pairs[:, 0], side="left")
        pairs = pairs[np.arange(len(pairs)) - starts < MAX_SESSION_ITEMS]
        x = sp.csr_matrix(
            (np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])),
            shape=(int(sess_idx.max()) + 1, len(ids)),
        )
        # the diagonal (sessions holding the item) stays: an item is its own context, so
        # two items seen together share contexts even when nothing else links them
        cooc = (x.T @ x).tocsr()
        vectors = _factorize(ppmi(cooc))
        has = np.linalg.norm(vectors, axis=1) > 0
        kept = [i for i, h in zip(ids, has, strict=True) if h]
        log.info(
            "behaviour vectors: %d items from %d sessions, %d query texts with clicks",
            len(kept),
            x.shape[0],
            len(clicks),
        )
        return cls(kept, vectors[has], clicks)

    def __len__(self) -> int:
        return len(self.item_ids)

    def clicked(self, text: str) -> list[tuple[str, int]]:
        """Items clicked (carted, bought) from searches for ``text``, most first."""
        return self.clicks.get(query_key(text), [])

    def neighbours(
        self, seeds: Sequence[tuple[str, float]], k: int, *, exclude: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Up to ``k`` (item id, cosine) nearest the weighted centroid of ``seeds``' vectors
        (seeds without a vector are skipped), best first, without the seeds and ``exclude``."""
        rows = [(self._row[i], w) for i, w in seeds if i in self._row]
        if not rows or k <= 0:
            return []
        centroid = np.zeros(self.vectors.shape[1], np.float32)
        for r, w in rows:
            centroid += w * self.vectors[r]
        norm = float(np.linalg.norm(centroid))
        if norm == 0.0:
            return []
        sims = self.vectors @ (centroid / norm)
        skip = (exclude or set()) | {i for i, _ in seeds}
        take = min(len(sims), k + len(skip) + len(rows))
        top = np.argpartition(-sims, take - 1)[:take] if take < len(sims) else np.arange(len(sims))
        out: list[tuple[str, float]] = []
        for r in top[np.argsort(-sims[top], kind="stable")]:
            item_id = self.item_ids[int(r)]
            if item_id not in skip:
                out.append((item_id, float(sims[r])))
                if len(out) >= k:
                    break
        return out

    def candidates(
        self, text: str, text_neighbours: Sequence[tuple[str, float]], k: int
    ) -> tuple[list[tuple[str, float]], bool]:
        """Items for ``text``, best first (clicked for it, then nearest its seeds), and
        whether the query was in the click log (its candidates come from shoppers, not from
        the text neighbours)."""
        clicked = self.clicked(text)
        if clicked:
            top = float(clicked[0][1])
            seeds = [(i, n / top) for i, n in clicked]
            out = [(i, 1.0) for i, _ in clicked[:k]]
            out += self.neighbours(seeds, k - len(out), exclude={i for i, _ in clicked})
            return out, True
        return self.neighbours(list(text_neighbours), k), False

    # -- storage

    def save(self, folder: Path) -> None:
        queries = sorted(self.clicks)
        offsets = np.cumsum([0] + [len(self.clicks[q]) for q in queries])
        np.savez(
            folder / "behaviour.npz",
            item_ids=np.array(self.item_ids, dtype=str),
            vectors=self.vectors.astype(np.float32),
            queries=np.array(queries, dtype=str),
            offsets=offsets.astype(np.int64),
            clicked=np.array([i for q in queries for i, _ in self.clicks[q]], dtype=str),
            counts=np.array([n for q in queries for _, n in self.clicks[q]], dtype=np.int64),
        )

    @classmethod
    def load(cls, folder: Path) -> BehaviourIndex:
        with np.load(folder / "behaviour.npz", allow_pickle=False) as z:
            offsets = z["offsets"]
            clicked = [str(x) for x in z["clicked"]]
            counts = [int(x) for x in z["counts"]]
            clicks = {
                str(q): list(zip(clicked[a:b], counts[a:b], strict=True))
                for q, a, b in zip(z["queries"], offsets[:-1], offsets[1:], strict=True)
            }
            return cls([str(x) for x in z["item_ids"]], z["vectors"].astype(np.float32), clicks)


def _strings(values: Sequence[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def _clicks(t: pa.Table) -> dict[str, list[tuple[str, int]]]:
    """Normalized query → [(item, clicks)] from the rows of ``CLICK_TYPES`` with a query."""
    import pyarrow.compute as pc

    rows = t.filter(
        pc.and_(
            pc.is_valid(t.column("query")),
            pc.is_in(t.column("type"), value_set=_strings(CLICK_TYPES)),
        )
    )
    if rows.num_rows == 0:
        return {}
    pairs = rows.select(["query", "item_id"])
    grouped = pairs.group_by(["query", "item_id"]).aggregate([([], "count_all")])
    merged: dict[str, dict[str, int]] = {}
    for q, item, n in zip(
        grouped.column("query").to_pylist(),
        grouped.column("item_id").to_pylist(),
        grouped.column("count_all").to_pylist(),
        strict=True,
    ):
        key = query_key(q)
        if key:
            per = merged.setdefault(key, {})
            per[item] = per.get(item, 0) + int(n)
    return {
        q: sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CLICKED]
        for q, per in merged.items()
    }


def _factorize(m: sp.csr_matrix) -> np.ndarray:
    """Rows of ``U · √S`` of a rank-`DIM` truncated SVD of ``m``, L2-normalized (zero rows
    stay zero)."""
    n = m.shape[0]
    out = np.zeros((n, DIM), np.float32)
    k = min(DIM, n - 1)
    if k < 1 or m.nnz == 0:
        return out
    from sklearn.utils.extmath import randomized_svd  # scikit-learn loads slowly: only here
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS threads on small products only add contention
        u, s, _ = randomized_svd(m, k, n_iter=4, random_state=SEED)
    vec = (u * np.sqrt(s)).astype(np.float32)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    out[:, :k] = np.where(norms > 0, vec / np.maximum(norms, 1e-12), 0.0)
    return out
