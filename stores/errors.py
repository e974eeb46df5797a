"""Errors of the stores package.

``StoreConfigError`` is a setting a user must fix (a bad URL, a server that is not there at
start-up): the CLI prints it on one line and exits 2. ``StoreUnavailableError`` is a store
that went away or did not answer within its time budget while running: serving maps it to
HTTP 503 (it is a ``core.errors.StorageUnavailableError``), so what needs the store says
"try again" and what does not keeps answering. ``NotFoundError`` maps to 404 and
``ConflictError`` to 409 by serving's name rules.
"""

from __future__ import annotations

from core.errors import ShopRankError, StorageUnavailableError


class StoreError(ShopRankError):
    """Base of every error raised by a store."""


class StoreConfigError(StoreError):
    """A store setting is wrong or names a server that cannot be reached at start-up.

    ``setting`` names the setting to fix (``SHOPRANK_DATABASE_URL``, ``SHOPRANK_REDIS_URL``).
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class StoreUnavailableError(StoreError, StorageUnavailableError):
    """A store did not answer, failed or timed out during a call; retrying later may work.

    A ``StorageUnavailableError``: serving already answers it with 503 ``storage_unavailable``."""


class NotFoundError(StoreError):
    """The record asked for does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} with id {key!r}")
        self.kind = kind
        self.key = key


class ConflictError(StoreError):
    """A record with that id already exists (a create that must not replace)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"a {kind} with id {key!r} already exists; pick another id")
        self.kind = kind
        self.key = key
