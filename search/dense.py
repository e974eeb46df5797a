"""Dense retrieval learned from the shop's own catalog: no downloaded weights.

An item's text (title, brand, category path, English category names, tags) is
normalized (`data.text.normalize`), cut into character 2–3-grams (hashed into
2^16 features), weighted by the n-grams' inverse document frequency over the catalog, and
projected on the catalog's `DIM` main latent directions (truncated SVD, i.e. latent
semantic analysis, learned from the catalog at each index build), then L2-normalized. A
query is encoded the same way, so "hiking backpack warm" lands near items whose texts share
its fragments, whatever the word order, spacing or a typo.
Neighbours come from an HNSW graph (hnswlib, inner product on unit vectors) built once
per index generation (`search.aids`).

What it cannot do: know that "warm" means a jacket when no item text says so. Item
embeddings from session co-occurrence or search → click pairs would add that; they are not
built yet.
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
    import hnswlib

log = logging.getLogger(__name__)

DIM = 64
N_FEATURES = 2**16
SVD_SAMPLE = 4_000
NGRAMS = (2, 3)
SEED = 20261202
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64
NEIGHBOUR_MEMO_SIZE = 4096
"""Neighbour lists remembered per query text (shoppers repeat queries); emptied by `add`."""
COMPONENTS_FILE = "dense_components.npy"
"""The n-gram → vector matrix of a saved index, memory-mapped when loaded."""
_SPACES = re.compile(r"\s+")


def _counts(texts: Sequence[str]) -> sp.csr_matrix:
    """Hashed character n-gram counts (``len(texts)`` × `N_FEATURES`), computed with numpy
    over all texts at once (runs of whitespace count as one space)."""
    norm = [_SPACES.sub(" ", normalize(t)).strip() for t in texts]
    n = len(norm)
    if n == 0:
        return sp.csr_matrix((0, N_FEATURES), dtype=np.float32)
    lengths = np.fromiter((len(t) for t in norm), dtype=np.int64, count=n)
    codes = np.frombuffer("\x00".join(norm).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc = np.repeat(np.arange(n), lengths + 1)[: len(codes)]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for g in range(NGRAMS[0], NGRAMS[1] + 1):
        if len(codes) < g:
            continue
        m = len(codes) - g + 1
        h = np.zeros(m, dtype=np.uint64)
        ok = np.ones(m, dtype=bool)
        for j in range(g):
            part = codes[j : j + m]
            h = h * np.uint64(1_000_003) + part  # wraps modulo 2^64, as intended
            ok &= part != 0
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
        rows.append(doc[:m][ok])
        cols.append((h[ok] % np.uint64(N_FEATURES)).astype(np.int64))
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    data = np.ones(len(r), dtype=np.float32)
    out = sp.csr_matrix((data, (r, c)), shape=(n, N_FEATURES), dtype=np.float32)
    out.sum_duplicates()
    return out


def _query_features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """`_counts` of one text as (feature ids, counts), without building a sparse matrix (a
    query is short; the matrix costs more than hashing its few n-grams)."""
    t = _SPACES.sub(" ", normalize(text)).strip()
    codes = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    feats: list[np.ndarray] = []
    for g in range(NGRAMS[0], NGRAMS[1] + 1):
        m = len(codes) - g + 1
        if m <= 0:
            continue
        h = np.zeros(m, dtype=np.uint64)
        for j in range(g):
            h = h * np.uint64(1_000_003) + codes[j : j + m]  # wraps modulo 2^64, as intended
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
        feats.append((h % np.uint64(N_FEATURES)).astype(np.int64))
    if not feats:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx, cnt = np.unique(np.concatenate(feats), return_counts=True)
    return idx, cnt.astype(np.float32)


def encode_query(text: str, idf: np.ndarray, components: np.ndarray) -> np.ndarray | None:
    """The unit vector of one query (1 × `DIM`), or None when it has no n-gram."""
    idx, cnt = _query_features(text)
    if len(idx) == 0:
        return None
    w = np.log1p(cnt) * idf[idx]
    vec = w @ components[idx]
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        return None
    return (vec / norm).astype(np.float32)[None, :]


def fit_idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency of each hashed n-gram (float32)."""
    df = np.bincount(counts.indices, minlength=N_FEATURES).astype(np.float32)
    n = counts.shape[0]
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """log(1 + count) × idf, rows L2-normalized (works on the non-zeros only)."""
    x = counts.astype(np.float32, copy=True)
    x.data = np.log1p(x.data) * idf[x.indices]
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    norms = np.sqrt(np.bincount(rows, weights=x.data**2, minlength=x.shape[0]))
    x.data = (x.data / np.maximum(norms, 1e-9)[rows]).astype(np.float32)
    return x


def fit_components(tfidf: sp.csr_matrix) -> np.ndarray:
    """`DIM` latent directions of the catalog's n-gram space, as an `N_FEATURES` × `DIM`
    projection (C order: a query gathers the rows of its few n-grams):
    truncated SVD (LSA) of at most `SVD_SAMPLE` items' TF-IDF rows. Bilingual titles make
    紅色 and red, 連衣裙 and dress share directions."""
    from sklearn.decomposition import TruncatedSVD  # scikit-learn loads slowly: only here
    from threadpoolctl import threadpool_limits

    n = tfidf.shape[0]
    rows = tfidf
    if n > SVD_SAMPLE:
        pick = np.random.default_rng(SEED).choice(n, SVD_SAMPLE, replace=False)
        rows = tfidf[np.sort(pick)]
    k = max(1, min(DIM, rows.shape[0] - 1, rows.nnz and DIM))
    proj = np.zeros((N_FEATURES, DIM), dtype=np.float32)
    if rows.shape[0] < 2:
        return proj
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=3, random_state=SEED)
    with threadpool_limits(1):  # BLAS threads on small products only add contention
        svd.fit(rows)
    proj[:, :k] = svd.components_.T.astype(np.float32)
    return proj


def encode(
    texts: Sequence[str],
    idf: np.ndarray,
    components: np.ndarray,
    counts: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Unit vectors (``len(texts)`` × `DIM`, float32) of ``texts`` (``counts``: their
    `_counts`, when already made)."""
    if counts is None:
        counts = _counts(texts)
    vecs = np.asarray(_tfidf(counts, idf) @ components, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.maximum(norms, 1e-9)


class DenseIndex:
    """Item vectors in an HNSW graph; labels are row numbers into ``item_ids``."""

    def __init__(
        self, item_ids: list[str], idf: np.ndarray, components: np.ndarray, graph: hnswlib.Index
    ) -> None:
        self.item_ids = item_ids
        self.idf = idf
        self.components = components
        self.graph = graph
        self._memo: dict[tuple[str, int], list[tuple[str, float]]] = {}

    @classmethod
    def build(cls, item_ids: list[str], texts: Sequence[str]) -> DenseIndex:
        import hnswlib

        counts = _counts(texts)
        idf = fit_idf(counts)
        components = fit_components(_tfidf(counts, idf))
        vecs = encode(texts, idf, components, counts) if texts else np.zeros((0, DIM), np.float32)
        graph = hnswlib.Index(space="ip", dim=DIM)
        graph.init_index(
            max_elements=max(len(item_ids), 1),
            ef_construction=HNSW_EF_CONSTRUCTION,
            M=HNSW_M,
            random_seed=SEED,
        )
        graph.set_num_threads(1)  # deterministic graphs; the host has 2 cores for everything
        if len(item_ids):
            graph.add_items(vecs, np.arange(len(item_ids)))
        graph.set_ef(HNSW_EF_SEARCH)
        return cls(item_ids, idf, components, graph)

    def add(self, item_ids: list[str], texts: Sequence[str]) -> None:
        """Add items (or new versions of items) with the current n-gram weights."""
        if not item_ids:
            return
        start = len(self.item_ids)
        need = start + len(item_ids)
        if need > self.graph.get_max_elements():
            self.graph.resize_index(max(need, 2 * self.graph.get_max_elements()))
        self.graph.add_items(encode(texts, self.idf, self.components), np.arange(start, need))
        self.item_ids.extend(item_ids)
        self._memo = {}

    def query(self, text: str, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` (item id, cosine) nearest ``text``, best first; one id once."""
        memo = self._memo
        got = memo.get((text, k))
        if got is not None:
            return list(got)
        n = self.graph.get_current_count()
        if n == 0 or not text.strip():
            return []
        vec = encode_query(text, self.idf, self.components)
        if vec is None:
            return []
        labels, dists = self.graph.knn_query(vec, k=min(k, n))
        out: list[tuple[str, float]] = []
        seen: set[str] = set()
        for label, dist in zip(labels[0], dists[0], strict=True):
            item_id = self.item_ids[int(label)]
            if item_id not in seen:
                seen.add(item_id)
                out.append((item_id, float(1.0 - dist)))
        if len(memo) >= NEIGHBOUR_MEMO_SIZE:
            memo.clear()
        memo[(text, k)] = out
        return list(out)

    def coverage(self, text: str) -> float:
        """Share of ``text``'s n-grams that occur in the catalog (0 for none): nonsense
        (``qqzzxx``) still has nearest neighbours, but few of its n-grams exist."""
        idx, _ = _query_features(text)
        if len(idx) == 0:
            return 0.0
        return float(np.mean(self.idf[idx] < self.idf.max()))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "dense.npz", idf=self.idf, item_ids=np.array(self.item_ids, dtype=str))
        # the n-gram → vector matrix (the largest array, ≈ 17 MB) in its own file, so that
        # every worker maps the same pages instead of reading a copy of it
        np.save(folder / COMPONENTS_FILE, np.ascontiguousarray(self.components, np.float32))
        self.graph.save_index(str(folder / "dense.hnsw"))

    @classmethod
    def load(cls, folder: Path) -> DenseIndex:
        import hnswlib

        with np.load(folder / "dense.npz", allow_pickle=False) as z:
            idf = z["idf"].astype(np.float32)
            item_ids = [str(x) for x in z["item_ids"]]
            if (folder / COMPONENTS_FILE).exists():
                components = np.load(folder / COMPONENTS_FILE, mmap_mode="r", allow_pickle=False)
            else:  # a generation saved before the matrix had its own file
                components = z["components"].astype(np.float32)
        graph = hnswlib.Index(space="ip", dim=DIM)
        graph.load_index(str(folder / "dense.hnsw"), max_elements=max(len(item_ids), 1))
        graph.set_ef(HNSW_EF_SEARCH)
        graph.set_num_threads(1)
        return cls(item_ids, idf, components, graph)


def reciprocal_rank_fusion(
    lists: Sequence[tuple[Sequence[str], float]], *, k: int = 60
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(d) = Σ weight / (k + rank)`` (rank from 1); best first,
    ties in first-seen order."""
    scores: dict[str, float] = {}
    for ids, weight in lists:
        for rank, item_id in enumerate(ids, start=1):
            scores[item_id] = scores.get(item_id, 0.0) + weight / (k + rank)
    order = {d: i for i, d in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
