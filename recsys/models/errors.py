"""Errors raised by recommendation models (fit, recommend, save, load)."""

from __future__ import annotations

from core.errors import ShopRankError


class ModelError(ShopRankError):
    """Base class for model problems a user can fix."""


class NotFittedError(ModelError):
    """The model was used before ``fit`` (or ``load``)."""


class ModelLoadError(ModelError):
    """A saved model folder is missing files, has an unknown algorithm or a bad format."""


class ModelTooLargeError(ModelError):
    """The data is larger than this algorithm supports (e.g. EASE's item limit)."""


class MissingInputError(ModelError):
    """The training data lacks something this model needs (timestamps, catalog, baskets)."""
