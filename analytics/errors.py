"""Errors of the analytics package; each message says how to fix the problem."""

from __future__ import annotations

from core.errors import ShopRankError


class AnalyticsError(ShopRankError):
    """Base class for analytics problems a user can fix."""


class SegmentError(AnalyticsError):
    """Segments cannot be computed from these events or settings."""
