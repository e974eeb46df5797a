"""The synthetic shop's catalogue: items drawn from the taxonomy, planted bundles, trending items.

:func:`build_catalog` draws every item's leaf, brand, variant, price, popularity, creation time,
stock and rating from the spec's seed, writes them as ``items.jsonl`` rows, and prepares what the
behaviour simulator samples from: popularity-weighted samplers per leaf (and leaf × variant), a
shop-wide popularity list, bundle partners and the query vocabulary. Random draws come from the
stream ``[seed, 1]`` (brand premiums from ``[seed, 5]``) in a fixed order: the same spec gives
the same catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from data.synthetic.spec import ShopSpec
from data.synthetic.taxonomy import (
    COMPLEMENTS,
    LEAF_INDEX,
    LEAVES,
    MAX_VARIANTS,
    TOPS,
    VARIANTS,
    short_brand,
)


class Sampler:
    """Vectorized weighted sampling of items within groups (leaf, or leaf × variant)."""

    def __init__(self, keys: np.ndarray, weights: np.ndarray, n_keys: int) -> None:
        order = np.lexsort((np.arange(len(keys)), keys))
        self.items = order
        k = keys[order]
        w = weights[order]
        self.count = np.bincount(k, minlength=n_keys)
        totals = np.bincount(k, weights=w, minlength=n_keys)
        cum = np.cumsum(w)
        start = np.concatenate(([0], np.cumsum(self.count)[:-1]))
        before = np.concatenate(([0.0], cum))[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.cdf = k + (cum - before[k]) / totals[k]
        self.start = start

    def sample(self, keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per key; keys must have count > 0."""
        u = keys + rng.random(len(keys)) * (1 - 1e-12)
        pos = np.searchsorted(self.cdf, u, side="right")
        end = self.start[keys] + self.count[keys] - 1
        pos = np.clip(pos, self.start[keys], end)
        return self.items[pos]


@dataclass
class Catalog:
    """The generated catalogue as the simulator needs it (arrays indexed by item number)."""

    leaf: np.ndarray
    brand: np.ndarray
    variant: np.ndarray
    style: np.ndarray
    price: np.ndarray
    relprice: np.ndarray
    pop: np.ndarray
    created: np.ndarray  # seconds relative to spec start
    rating: np.ndarray  # stars, nan when the item has no rating
    ids: pa.Array
    leaf_user_p: np.ndarray
    leaf_nvar: np.ndarray
    leaf_top: np.ndarray
    by_leaf: Sampler
    by_leaf_variant: Sampler
    global_cdf: np.ndarray
    partner: np.ndarray
    bundles: list[tuple[int, int]]
    trending: np.ndarray
    queries: pa.Array
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class _Draws:
    """Every item's random draws, in the order they are drawn."""

    leaf: np.ndarray
    brand_in_top: np.ndarray
    brand: np.ndarray
    variant: np.ndarray
    style: np.ndarray
    price: np.ndarray
    relprice: np.ndarray
    pop: np.ndarray
    new: np.ndarray
    created: np.ndarray
    stock: np.ndarray
    active: np.ndarray
    rating: np.ndarray
    has_rating: np.ndarray
    merchant: np.ndarray
    model_letter: np.ndarray
    model_num: np.ndarray
    tag_hot: np.ndarray
    tag_sale: np.ndarray


def _price(p: np.ndarray) -> np.ndarray:
    """Shop-style prices: …90 or …99 endings."""
    p = np.maximum(p, 30)
    return np.where(p >= 1000, np.round(p / 100) * 100 - 10, np.round(p / 10) * 10 - 1).astype(
        float
    )


def _draw_items(
    spec: ShopSpec, rng: np.random.Generator, leaf_top: np.ndarray, leaf_nvar: np.ndarray
) -> tuple[_Draws, np.ndarray]:
    """The items' attributes and each leaf's share of users' interest."""
    n, n_leaves = spec.n_items, len(LEAVES)
    # Catalogue share per leaf and user interest per leaf (both moderately skewed).
    leaf_size_w = rng.lognormal(0, 0.5, n_leaves)
    ranks = rng.permutation(n_leaves) + 1
    leaf_user_p = 1.0 / ranks**0.8
    leaf_user_p /= leaf_user_p.sum()
    # Every leaf gets at least two items, the rest by share.
    leaf = np.concatenate(
        [
            np.repeat(np.arange(n_leaves), 2),
            rng.choice(n_leaves, n - 2 * n_leaves, p=leaf_size_w / leaf_size_w.sum()),
        ]
    )
    leaf = leaf[rng.permutation(n)]
    top = leaf_top[leaf]
    n_brands = len(TOPS[0].brands)
    brand_in_top = rng.choice(n_brands, n, p=np.array([0.3, 0.22, 0.17, 0.13, 0.1, 0.08]))
    brand = top * n_brands + brand_in_top
    brand_premium = np.exp(
        np.random.default_rng([spec.seed, 5]).normal(0, 0.25, len(TOPS) * n_brands)
    )
    variant = (rng.random(n) * leaf_nvar[leaf]).astype(np.int64)
    style = rng.integers(0, 5, n)
    leaf_price = np.array([leaf_.price for leaf_ in LEAVES])
    raw = leaf_price[leaf] * brand_premium[brand] * rng.lognormal(0, 0.3, n)
    price = _price(raw)
    relprice = price / leaf_price[leaf]
    pop = rng.lognormal(0, 1.2, n)
    horizon = spec.days * 86400
    new = rng.random(n) < 0.08
    created = np.where(
        new, rng.integers(0, int(horizon * 0.9) + 1, n), -rng.integers(86400, 365 * 86400, n)
    )
    pop = np.where(new, pop * 2.0, pop)
    stock = np.where(rng.random(n) < 0.06, 0, rng.geometric(0.02, n))
    active = rng.random(n) >= 0.03
    rating = np.round(rng.uniform(3.2, 4.95, n), 1)
    has_rating = rng.random(n) >= 0.1
    merchant = rng.integers(1, 51, n)
    model_letter = rng.integers(0, 26, n)
    model_num = rng.integers(10, 1000, n)
    tag_hot = pop >= np.quantile(pop, 0.95)
    tag_sale = rng.random(n) < 0.08
    draws = _Draws(
        leaf=leaf,
        brand_in_top=brand_in_top,
        brand=brand,
        variant=variant,
        style=style,
        price=price,
        relprice=relprice,
        pop=pop,
        new=new,
        created=created,
        stock=stock,
        active=active,
        rating=rating,
        has_rating=has_rating,
        merchant=merchant,
        model_letter=model_letter,
        model_num=model_num,
        tag_hot=tag_hot,
        tag_sale=tag_sale,
    )
    return draws, leaf_user_p


def _item_rows(spec: ShopSpec, d: _Draws, ids: list[str]) -> list[dict[str, Any]]:
    """The ``items.jsonl`` records: bilingual titles and descriptions from the taxonomy."""
    rows: list[dict[str, Any]] = []
    start = spec.start_dt
    for i in range(spec.n_items):
        lf = LEAVES[d.leaf[i]]
        tc = TOPS[lf.top]
        vkind = tc.variant
        v_zh, v_en = VARIANTS[vkind][d.variant[i]]
        s_zh, s_en = tc.styles[d.style[i] % len(tc.styles)]
        b = tc.brands[d.brand_in_top[i]]
        b_en = short_brand(b)
        model = f"{chr(65 + d.model_letter[i])}-{d.model_num[i]}"
        title = f"{v_zh}{s_zh}{lf.zh[2]} {v_en} {s_en} {lf.noun} - {b_en} {model}"
        desc = (
            f"{b}{s_zh}{lf.zh[2]}，{v_zh}款，{tc.feature[0]}。"
            f"{b_en} {s_en.lower()} {lf.noun.lower()} in {v_en.lower()}, {tc.feature[1]}."
        )
        tags = []
        if d.new[i]:
            tags.append("新品")
        if d.tag_hot[i]:
            tags.append("熱銷")
        if d.tag_sale[i]:
            tags.append("限時搶購")
        created_at = start + timedelta(seconds=int(d.created[i]))
        rows.append(
            {
                "item_id": ids[i],
                "title": title,
                "description": desc,
                "category": list(lf.zh),
                "brand": b_en,
                "price": float(d.price[i]),
                "currency": "TWD",
                "tags": tags,
                "attributes": {
                    "category_en": " > ".join(lf.en),
                    vkind: v_en.lower(),
                    "style": s_en.lower(),
                },
                "stock": int(d.stock[i]),
                "is_active": bool(d.active[i]),
                "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "merchant_id": f"m{d.merchant[i]}",
                "rating": float(d.rating[i]) if d.has_rating[i] else None,
            }
        )
    return rows


def _plant_bundles(
    rng: np.random.Generator, d: _Draws, gp: np.ndarray, leaf_top: np.ndarray
) -> tuple[np.ndarray, list[tuple[int, int]], set[int]]:
    """Popular old anchors, each with a popular old partner in the complement leaf.

    Returns each item's partner (-1 = none), the (anchor, partner) pairs and the items used."""
    n, leaf, pop = len(d.leaf), d.leaf, d.pop
    old = d.created < 0
    active = d.active
    n_bundles = int(np.clip(n // 100, 5, 500))
    partner = np.full(n, -1, dtype=np.int64)
    bundles: list[tuple[int, int]] = []
    cand = np.flatnonzero(old & active & (d.stock > 0))
    w = gp[cand] ** 1.5
    anchors = rng.choice(cand, size=min(len(cand), n_bundles * 3), replace=False, p=w / w.sum())
    used: set[int] = set()
    for a in anchors:
        if len(bundles) >= n_bundles:
            break
        lname = LEAVES[leaf[a]].zh[2]
        target = LEAF_INDEX.get(COMPLEMENTS.get(lname, ""), -1)
        pool = np.flatnonzero(old & active & (leaf == target)) if target >= 0 else np.array([], int)
        if len(pool) == 0:
            pool = np.flatnonzero(
                old & active & (leaf_top[leaf] == leaf_top[leaf[a]]) & (leaf != leaf[a])
            )
        pool = pool[~np.isin(pool, list(used | {int(a)}))]
        if len(pool) == 0 or int(a) in used:
            continue
        top_pool = pool[np.argsort(-pop[pool], kind="stable")][: max(1, len(pool) // 3)]
        b = int(top_pool[rng.integers(0, len(top_pool))])
        partner[a] = b
        bundles.append((int(a), b))
        used.update((int(a), b))
    return partner, bundles, used


def _pick_trending(
    rng: np.random.Generator, d: _Draws, partner: np.ndarray, used: set[int]
) -> np.ndarray:
    """Mid-popularity old items (not in a bundle) that spike at the end."""
    n, pop = len(d.leaf), d.pop
    old = d.created < 0
    n_trend = int(np.clip(n // 200, 3, 50))
    q40, q80 = np.quantile(pop, [0.4, 0.8])
    tcand = np.flatnonzero(
        old & d.active & (d.stock > 0) & (pop >= q40) & (pop <= q80) & (partner < 0)
    )
    tcand = tcand[~np.isin(tcand, list(used))]
    return np.sort(rng.choice(tcand, size=min(n_trend, len(tcand)), replace=False))


def _query_vocabulary() -> list[str]:
    """Search queries indexed by [leaf, variant + 1 (0 = none), lang (0 en, 1 zh)]."""
    queries: list[str] = []
    for lf in LEAVES:
        variants = VARIANTS[TOPS[lf.top].variant]
        for v in range(MAX_VARIANTS + 1):
            if v == 0:
                queries += [lf.noun.lower(), lf.zh[2]]
            elif v - 1 < len(variants):
                vz, ve = variants[v - 1]
                queries += [
                    f"{ve} {lf.noun}".lower(),
                    f"{lf.zh[2]} {vz}" if v % 2 else f"{vz}{lf.zh[2]}",
                ]
            else:
                queries += ["", ""]
    return queries


def build_catalog(spec: ShopSpec) -> Catalog:
    """The catalogue of ``spec`` (see the module doc)."""
    rng = np.random.default_rng([spec.seed, 1])
    n_leaves = len(LEAVES)
    leaf_top = np.array([leaf.top for leaf in LEAVES])
    leaf_nvar = np.array([len(VARIANTS[TOPS[leaf.top].variant]) for leaf in LEAVES])
    d, leaf_user_p = _draw_items(spec, rng, leaf_top, leaf_nvar)
    ids = [f"i{i}" for i in range(spec.n_items)]
    rows = _item_rows(spec, d, ids)

    by_leaf = Sampler(d.leaf, d.pop, n_leaves)
    by_leaf_variant = Sampler(d.leaf * MAX_VARIANTS + d.variant, d.pop, n_leaves * MAX_VARIANTS)
    # Shop-wide "popular" list: item popularity scaled so leaves get the users' interest share.
    leaf_pop_total = np.bincount(d.leaf, weights=d.pop, minlength=n_leaves)
    gp = d.pop * leaf_user_p[d.leaf] / leaf_pop_total[d.leaf]
    global_cdf = np.cumsum(gp / gp.sum())

    partner, bundles, used = _plant_bundles(rng, d, gp, leaf_top)
    trending = _pick_trending(rng, d, partner, used)
    return Catalog(
        leaf=d.leaf,
        brand=d.brand,
        variant=d.variant,
        style=d.style,
        price=d.price,
        relprice=d.relprice,
        pop=d.pop,
        created=d.created,
        rating=np.where(d.has_rating, d.rating, np.nan),
        ids=pa.array(ids, pa.string()),
        leaf_user_p=leaf_user_p,
        leaf_nvar=leaf_nvar,
        leaf_top=leaf_top,
        by_leaf=by_leaf,
        by_leaf_variant=by_leaf_variant,
        global_cdf=global_cdf,
        partner=partner,
        bundles=bundles,
        trending=trending,
        queries=pa.array(_query_vocabulary(), pa.string()),
        rows=rows,
    )
