"""Errors of the training package; each message says how to fix the problem."""

from __future__ import annotations

from core.errors import ShopRankError


class TrainingError(ShopRankError):
    """Base class for training problems a user can fix."""


class TrainingDataError(TrainingError):
    """The events or catalog cannot be turned into training data."""


class ConfigError(TrainingError):
    """The training configuration is invalid (unknown model, bad parameter, missing file)."""


class RegistryError(TrainingError):
    """The model registry refuses an operation (unknown name/version, corrupt version)."""


class CorruptVersionError(RegistryError):
    """A registered version is incomplete or its files do not match their checksums."""
