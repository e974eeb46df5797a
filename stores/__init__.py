"""Shared state behind one interface per kind, embedded (SQLite, files) or shared
(PostgreSQL, Redis), chosen by URL: see ``stores.factory`` and ``stores.protocols``."""

from stores.errors import (
    ConflictError,
    NotFoundError,
    StoreConfigError,
    StoreError,
    StoreUnavailableError,
)
from stores.factory import Stores, open_stores
from stores.records import (
    Change,
    Document,
    ServedList,
    ShopperPolicy,
    StoreOptions,
)

__all__ = [
    "Change",
    "ConflictError",
    "Document",
    "NotFoundError",
    "ServedList",
    "ShopperPolicy",
    "StoreConfigError",
    "StoreError",
    "StoreOptions",
    "StoreUnavailableError",
    "Stores",
    "open_stores",
]
