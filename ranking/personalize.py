"""Personalized search: re-rank the top N lexical hits by the user's affinity.

``final = (1 - w) · lexical / max_lexical + w · affinity`` for the top ``top_n`` hits, where
affinity ∈ [0, 1] mixes the user's category affinity (the hit's category path, with half
credit for a shared parent), brand affinity and the collaborative model's score (each
normalized by its maximum over the hits). Hits below ``top_n`` keep their order after the
re-ranked block. Totals and facets are not touched: only the order of hits changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data.models import CATEGORY_SEPARATOR
from ranking.profile import UserProfile
from search.result import SearchHit

CATEGORY_SHARE = 0.5
BRAND_SHARE = 0.2
CF_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class Reranked:
    hit: SearchHit
    score: float
    lexical: float
    affinity: float


def _norm(values: Mapping[str, float]) -> dict[str, float]:
    top = max(values.values(), default=0.0)
    return {k: v / top for k, v in values.items()} if top > 0 else {}


def affinities(
    hits: Sequence[SearchHit], profile: UserProfile, cf_scores: Mapping[str, float]
) -> dict[str, float]:
    """Affinity in [0, 1] of each hit for the user."""
    cats = profile.category_affinity
    raw_cat: dict[str, float] = {}
    for h in hits:
        path = CATEGORY_SEPARATOR.join(h.category)
        v = cats.get(path, 0.0)
        if not v and h.category:
            parent = CATEGORY_SEPARATOR.join(h.category[:-1]) + CATEGORY_SEPARATOR
            v = 0.5 * sum(a for c, a in cats.items() if parent and c.startswith(parent))
        raw_cat[h.item_id] = v
    cat = _norm(raw_cat)
    brand = _norm({h.item_id: profile.brand_affinity.get(h.brand or "", 0.0) for h in hits})
    cf = _norm({k: v for k, v in cf_scores.items() if v > 0})
    shares = (CATEGORY_SHARE, BRAND_SHARE, CF_SHARE if cf else 0.0)
    total = sum(shares) or 1.0
    return {
        h.item_id: (
            shares[0] * cat.get(h.item_id, 0.0)
            + shares[1] * brand.get(h.item_id, 0.0)
            + shares[2] * cf.get(h.item_id, 0.0)
        )
        / total
        for h in hits
    }


def personalize(
    hits: Sequence[SearchHit],
    profile: UserProfile,
    *,
    weight: float,
    top_n: int,
    cf_scores: Mapping[str, float] | None = None,
) -> list[Reranked]:
    """Re-rank the first ``top_n`` hits; the rest follow in their lexical order."""
    weight = min(max(weight, 0.0), 1.0)
    head, tail = list(hits[:top_n]), list(hits[top_n:])
    max_lex = max((h.score for h in head), default=0.0)
    aff = affinities(head, profile, cf_scores or {})
    out = []
    for h in head:
        lex = h.score / max_lex if max_lex > 0 else 0.0
        a = aff.get(h.item_id, 0.0)
        out.append(Reranked(h, (1 - weight) * lex + weight * a, lex, a))
    order = sorted(range(len(out)), key=lambda i: (-out[i].score, i))
    ranked = [out[i] for i in order]
    floor = min((r.score for r in ranked), default=0.0)
    for k, h in enumerate(tail):
        lex = h.score / max_lex if max_lex > 0 else 0.0
        ranked.append(Reranked(h, min(floor, (1 - weight) * lex) - 1e-6 * (k + 1), lex, 0.0))
    return ranked
