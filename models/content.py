"""Content similarity: TF-IDF over title, brand, category and tags (scikit-learn).

Text goes through ``data.text`` — the same normalization as search (NFKC, lower case,
traditional → simplified Chinese) and the same tokens (CJK character bigrams, stemmed Latin
words) — plus whole-field tokens for the brand, each category level and each tag, so that
"same brand" and "same category" count even when titles share no words. Works for items
nobody has interacted with yet (cold items), which is what it is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from data.text import normalize, tokens
from models.base import IdsScores, Recommender
from models.errors import MissingInputError

if TYPE_CHECKING:
    from models.interactions import Interactions


@dataclass(frozen=True)
class ContentParams:
    min_df: int = 1
    max_df: float = 0.5
    """Tokens in more than this share of items carry no signal and are dropped."""
    sublinear_tf: bool = True
    popularity_weight: float = 1.0
    """Added to a shopper's similarity to each item: this × log1p(the item's shoppers) / the
    largest such value, so that among items about as close to the shopper's history the ones
    more shoppers chose come first. 0: text alone. Items without shoppers (the cold items
    this model is for) get nothing added, so their similarity still places them."""


def item_tokens(
    title: str, brand: str, category: tuple[str, ...], tags: tuple[str, ...]
) -> list[str]:
    """The analyzed tokens of one item."""
    out = tokens(title)
    if brand:
        out.append("brand:" + normalize(brand))
    for k in range(1, len(category) + 1):
        out.append("cat:" + normalize(" > ".join(category[:k])))
    if category:
        out.extend(tokens(category[-1]))
    for t in tags:
        out.append("tag:" + normalize(t))
        out.extend(tokens(t))
    return out


class ContentSimilarity(Recommender):
    algorithm = "content"
    Params = ContentParams
    positive_only = True
    _learned = ("tfidf_", "popularity_")
    popularity_: np.ndarray | None = None
    """Per item: log1p(its shoppers) / the largest (None in models saved before it existed)."""

    def _fit(self, data: Interactions) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        cat = data.catalog
        if cat is None:
            raise MissingInputError("content similarity needs the catalog (items file)")
        docs = [
            item_tokens(t, b, c, g)
            for t, b, c, g in zip(cat.titles, cat.brands, cat.categories, cat.tags, strict=True)
        ]
        n_docs = sum(1 for d in docs if d)
        vec = TfidfVectorizer(
            analyzer=lambda d: d,
            min_df=self.params.min_df,
            max_df=self.params.max_df if n_docs > 10 else 1.0,
            sublinear_tf=self.params.sublinear_tf,
            dtype=np.float32,
        )
        try:
            self.tfidf_ = sp.csr_matrix(vec.fit_transform(docs), dtype=np.float32)
        except ValueError as exc:  # empty vocabulary
            raise MissingInputError(
                f"content similarity: the catalog has no usable text ({exc})"
            ) from exc
        shoppers = np.log1p(np.bincount(data.matrix.indices, minlength=data.matrix.shape[1]))
        self.popularity_ = (shoppers / max(float(shoppers.max(initial=0.0)), 1.0)).astype(
            np.float32)

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        profile = sp.csr_matrix(rows, dtype=np.float32) @ self.tfidf_
        norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1))).ravel()
        norms[norms == 0] = 1.0
        profile = sp.diags(1.0 / norms) @ profile
        scores = (profile @ self.tfidf_.T).toarray()
        w = self.params.popularity_weight
        if w and self.popularity_ is not None:
            scores += w * self.popularity_
        return scores

    def _similar(self, item: int, n: int) -> IdsScores:
        s = (self.tfidf_[item] @ self.tfidf_.T).toarray().ravel()
        k = min(n, len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return top.astype(np.int64), s[top].astype(np.float32)
