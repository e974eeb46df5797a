"""Errors of the search package. Each message says how to fix the problem."""

from __future__ import annotations

from core.errors import ShopRankError


class SearchError(ShopRankError):
    """Base class for search problems a user can fix."""


class SearchRequestError(SearchError):
    """A search request is invalid; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class IndexNotFoundError(SearchError):
    """The index does not exist yet."""


class BackendUnavailableError(SearchError):
    """The configured search backend cannot be reached."""


class SynonymsFileError(SearchError):
    """The synonyms file cannot be read or has a bad line."""
