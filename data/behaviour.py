"""How a synthetic shopper reacts to a list: examination, attraction, cart and purchase.

One behaviour model shared by the shop generator (``data.synthetic``, which writes the
impressions, clicks and purchases of the generated event log) and by the simulated storefront
(``simulate.storefront``, which shows lists the live API returned to the same shoppers). Both
compute the same per (shopper, item) inputs — :class:`Match` — their own way (the generator
from its internal arrays, the storefront from ``items.jsonl`` and the hidden truth) and draw
from the probabilities here, so a learned ranker has the same thing to find in both.

A shopper has hidden tastes (:class:`Tastes`, one row per shopper, saved in the shop's
``truth_users.parquet``):

* favourite leaf categories (1–3) and two brands, as before;
* ``price_sensitivity`` (0–1): how much a price above the leaf's usual price puts them off;
* ``brand_loyalty`` (≥ 0): the pull of their favourite brands;
* ``new_taste``: the pull (or push, when negative) of items created in the last 30 days;
* ``rating_taste`` (≥ 0): the pull of each rating star above 4.1;
* ``position_decay`` (0.7–0.95): the probability of looking at position p is decay ** p —
  position bias, the reason a ranker must not learn "position 0 is good".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEW_DAYS = 30
"""An item created less than this many days before the moment it is shown counts as new."""
RATING_PIVOT = 4.1
"""Rating stars above this attract (below it repel) shoppers with a ``rating_taste``."""
CLICK_BASE = -3.6
"""Log-odds of clicking an examined item nothing about attracts."""


@dataclass(frozen=True, slots=True)
class Tastes:
    """The behaviour-relevant hidden tastes of a group of shoppers (arrays, one per shopper)."""

    price_sensitivity: np.ndarray
    brand_loyalty: np.ndarray
    new_taste: np.ndarray
    rating_taste: np.ndarray
    position_decay: np.ndarray

    @classmethod
    def draw(cls, sens: np.ndarray, rng: np.random.Generator) -> Tastes:
        """New tastes for ``len(sens)`` shoppers whose price sensitivity is already drawn."""
        n = len(sens)
        return cls(
            price_sensitivity=sens,
            brand_loyalty=rng.gamma(2.0, 0.7, n),
            new_taste=rng.normal(0.4, 0.7, n),
            rating_taste=rng.gamma(2.0, 0.6, n),
            position_decay=rng.uniform(0.7, 0.95, n),
        )

    def take(self, rows: np.ndarray) -> Tastes:
        return Tastes(*(getattr(self, f)[rows] for f in self.__slots__))


@dataclass(frozen=True, slots=True)
class Match:
    """What one (shopper, item) pair looks like to the behaviour model (arrays, one per pair)."""

    in_leaf: np.ndarray
    """bool: the item is in one of the shopper's favourite leaves."""
    brand: np.ndarray
    """bool: the item is of one of the shopper's favourite brands."""
    relprice: np.ndarray
    """price / the leaf's usual price."""
    is_new: np.ndarray
    """bool: created less than :data:`NEW_DAYS` before it is shown."""
    rating: np.ndarray
    """stars (nan: no rating)."""


def _appeal(t: Tastes, m: Match) -> np.ndarray:
    """How much the shopper likes the item, in log-odds units (0: indifferent)."""
    stars = np.where(np.isnan(m.rating), RATING_PIVOT, m.rating) - RATING_PIVOT
    return (
        2.0 * m.in_leaf
        + t.brand_loyalty * m.brand
        - 2.0 * t.price_sensitivity * np.clip(m.relprice - 1.0, -0.6, 2.0)
        + t.new_taste * m.is_new
        + t.rating_taste * stars
    )


def examine_prob(t: Tastes, position: np.ndarray) -> np.ndarray:
    """Probability that the shopper looks at all at an item shown at ``position`` (0-based)."""
    return t.position_decay ** np.maximum(position, 0)


def click_prob(
    t: Tastes, m: Match, position: np.ndarray, *, boost: float | np.ndarray = 0.0
) -> np.ndarray:
    """Probability of a click on an item shown at ``position``: examined × attracted.
    ``boost`` adds log-odds for the whole context (a search shopper clicks more)."""
    attract = 1.0 / (1.0 + np.exp(-(CLICK_BASE + boost + _appeal(t, m))))
    return examine_prob(t, position) * attract


def cart_prob(t: Tastes, m: Match) -> np.ndarray:
    """Probability that a viewed item goes into the cart."""
    return np.clip(0.02 * np.exp(0.45 * _appeal(t, m)), 0.0, 0.6)


def buy_prob(t: Tastes, m: Match) -> np.ndarray:
    """Probability that an item in the cart is bought."""
    return np.clip(0.3 * (1.0 + 0.3 * m.brand) * np.exp(0.1 * _appeal(t, m)), 0.0, 0.9)
