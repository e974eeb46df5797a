"""Errors of the data package."""

from __future__ import annotations

from core.errors import ShopRankError


class DataError(ShopRankError):
    """Base class for problems with input data."""


class LoaderError(DataError):
    """A file cannot be read at all (missing, unknown format, unreadable header)."""


class EventLogError(DataError):
    """The event log cannot be written or read."""
