"""Errors of the training package; each message says how to fix the problem."""

from __future__ import annotations

from core.errors import ShopRankError


class TrainingError(ShopRankError):
    """Base class for training problems a user can fix."""



class ConfigError(TrainingError):
    """The training configuration is invalid (unknown model, bad parameter, missing file)."""


