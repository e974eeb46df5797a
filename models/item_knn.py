"""Item-based nearest neighbours (``implicit``'s cosine, TF-IDF or BM25 item-item models)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from models._implicit import resolve_threads
from models.base import IdsScores, Recommender
from models.fast import NeighbourIndex

if TYPE_CHECKING:
    from models.interactions import Interactions


@dataclass(frozen=True)
class ItemKNNParams:
    similarity: Literal["cosine", "tfidf", "bm25"] = "bm25"
    neighbors: int = 100
    """Neighbours kept per item (``K`` in implicit)."""
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    num_threads: int = 0


class ItemKNN(Recommender):
    """Scores are the user's weighted history times the sparse item-item similarity."""

    algorithm = "item_knn"
    Params = ItemKNNParams
    positive_only = True
    _learned = ("similarity_",)

    def _implicit_model(self) -> Any:
        from implicit import nearest_neighbours as nn

        p = self.params
        threads = resolve_threads(p.num_threads)
        if p.similarity == "cosine":
            return nn.CosineRecommender(K=p.neighbors, num_threads=threads)
        if p.similarity == "tfidf":
            return nn.TFIDFRecommender(K=p.neighbors, num_threads=threads)
        return nn.BM25Recommender(K=p.neighbors, K1=p.bm25_k1, B=p.bm25_b, num_threads=threads)

    def _fit(self, data: Interactions) -> None:
        from implicit import nearest_neighbours as nn

        # The weighting implicit's subclasses apply in their fit, done here so the base
        # fit receives CSR (implicit would otherwise convert COO and warn about it).
        p = self.params
        items_users = data.matrix.T
        if p.similarity == "cosine":
            weighted = nn.normalize(items_users).T
        elif p.similarity == "tfidf":
            weighted = nn.normalize(nn.tfidf_weight(items_users)).T
        else:
            weighted = nn.bm25_weight(items_users, K1=p.bm25_k1, B=p.bm25_b).T
        model = self._implicit_model()
        nn.ItemItemRecommender.fit(model, sp.csr_matrix(weighted, dtype=np.float64),
                                   show_progress=False)
        self._model = model
        self.similarity_ = model.similarity.tocsr()

    def _after_load(self) -> None:
        model = self._implicit_model()
        model.similarity = sp.csr_matrix(self.similarity_)
        # implicit's scorer copies the whole matrix (38 MB at 100k items × 50 neighbours):
        # built at the first ``_top``, which serving's fast paths rarely or never reach
        model.scorer = None
        self._model = model

    def serving_index(self, cache: Path | None = None) -> NeighbourIndex:
        """Neighbour rows of the similarity matrix; the history source reads them, so its
        kernel is compiled at load."""
        return NeighbourIndex(self.similarity_, self.item_ids_, warm=True)

    def _scorer_ready(self) -> Any:
        model = self._model
        if model.scorer is None:
            from implicit.nearest_neighbours import NearestNeighboursScorer

            # two threads racing here build it twice: harmless
            model.scorer = NearestNeighboursScorer(model.similarity)
        return model

    def _top(
        self,
        rows: sp.csr_matrix,
        users: np.ndarray | None,
        n: int,
        filter_seen: bool,
        exclude: np.ndarray | None,
        candidates: np.ndarray | None,
    ) -> IdsScores:
        rows = sp.csr_matrix(rows, dtype=np.float32)
        ids, scores = self._scorer_ready().recommend(
            np.arange(rows.shape[0]), rows, N=n, filter_already_liked_items=filter_seen,
            filter_items=exclude, items=candidates,
        )
        # implicit returns ragged lists for a batch when fewer than n items score.
        return _pad(ids, scores, n)

    def _similar(self, item: int, n: int) -> IdsScores:
        return self._model.similar_items(item, N=n)  # type: ignore[no-any-return]


def _pad(ids: Any, scores: Any, n: int) -> IdsScores:
    ids = np.asarray(ids)
    if ids.dtype != object and ids.ndim == 2:
        return ids, np.asarray(scores)
    b = len(ids)
    out_i = np.full((b, n), -1, np.int64)
    out_s = np.full((b, n), -np.inf, np.float32)
    for r, (i, s) in enumerate(zip(ids, scores, strict=True)):
        k = min(n, len(i))
        out_i[r, :k] = i[:k]
        out_s[r, :k] = s[:k]
    return out_i, out_s
