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


class TrainingDataError(ModelError):
    """The events or catalog cannot be turned into training data."""


class RegistryError(ModelError):
    """The model registry refuses an operation (unknown name/version, corrupt version)."""


class CorruptVersionError(RegistryError):
    """A registered version is incomplete or its files do not match their checksums."""
