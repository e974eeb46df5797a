"""The error base of every package, and one-line descriptions of validation failures."""

from __future__ import annotations

from pydantic import ValidationError


class ShopRankError(Exception):
    """Base of every error a user can fix; the message says how.

    The CLI turns it into one line and exit code 2; ``serving/errors.py`` into an HTTP 4xx.
    Every package's own errors subclass it.
    """


class StorageUnavailableError(ShopRankError):
    """Durable state cannot be written now (its file was deleted or replaced, the folder is
    read-only, the disk is full): nothing was acknowledged; the message says what to fix."""


def describe(exc: ValidationError) -> str:
    """One line naming each bad field: ``price: Input should be greater than or equal to 0``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(row)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
