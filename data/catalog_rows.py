"""The catalog's row layout: the typed per-row columns, the flag bits, the append-only code
tables, and the light views filters and ranking read (:class:`ItemFacts`,
:class:`CatalogColumns`). :class:`data.catalog.Catalog` owns the rows and the seqlock protocol
over them (readers check a row's version around a read; writers serialize); this module only
says what a row holds.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from data.models import CATEGORY_SEPARATOR, Item

if TYPE_CHECKING:
    import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

ACTIVE, IN_STOCK, PROMOTED, LIVE = 1, 2, 4, 8
"""Bits of the per-row flags column."""
RECOMMENDABLE = ACTIVE | IN_STOCK


def created_us(item: Item) -> int:
    return (item.created_at - EPOCH) // MICROSECOND


def is_promoted(item: Item) -> bool:
    """Tagged ``promoted`` or with the attribute ``promoted: true``."""
    return "promoted" in item.tags or item.attributes.get("promoted") is True


@dataclass(frozen=True)
class CatalogColumns:
    """A snapshot of the live items' light columns, in catalog order (numpy arrays)."""

    ids: list[str]
    created_us: np.ndarray
    """int64 microseconds since 1970 (UTC)."""
    rating: np.ndarray
    """float64, NaN where the item has no rating."""
    stock: np.ndarray
    """int64 (clipped to 2**63 - 1)."""
    flags: np.ndarray
    """uint8 bits: ACTIVE, IN_STOCK, PROMOTED (and LIVE, set on every row here)."""

    @property
    def recommendable(self) -> np.ndarray:
        return (self.flags & RECOMMENDABLE) == RECOMMENDABLE

    @property
    def promoted(self) -> np.ndarray:
        return (self.flags & PROMOTED) != 0


class ItemFacts(NamedTuple):
    """What filters read about an item, from the catalog's columns (nothing decoded).

    A named tuple: built for hundreds of candidates per request, it must be cheap to make."""

    item_id: str
    category: tuple[str, ...]
    brand: str | None
    tags: tuple[str, ...]
    price: float
    stock: int
    is_active: bool
    created_us: int
    """``created_at`` in µs since 1970 (UTC)."""
    rating: float | None

    @property
    def created_at(self) -> datetime:
        return EPOCH + timedelta(microseconds=self.created_us)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def category_path(self) -> str:
        return CATEGORY_SEPARATOR.join(self.category)


COLUMNS: tuple[tuple[str, str], ...] = (
    ("ver", "q"),  # row version: unique, 0 while being written or once deleted
    ("created", "q"),  # µs since 1970, UTC
    ("rating", "d"),  # NaN for None
    ("stock", "q"),  # int32 by the data model
    ("price", "d"),
    ("tlen", "q"),  # bytes of the title at the start of the row's text
    ("cat", "i"),  # code into Catalog._cats
    ("brand", "i"),  # code into Catalog._brands, -1 for None
    ("tags", "i"),  # code into Catalog._tags
    ("currency", "i"),  # code into Catalog._currencies
    ("merchant", "i"),  # code into Catalog._merchants, -1 for None
    ("attrs", "i"),  # code into Catalog._attrs (JSON of the attributes)
)
"""The typed per-row columns (besides ``flags`` and ``texts``), one ``array`` each."""

_K = TypeVar("_K", bound=Hashable)


class Codes(Generic[_K]):
    """Values ↔ small ints, append-only (a code once handed out always means its value)."""

    def __init__(self) -> None:
        self.values: list[_K] = []
        self._code: dict[_K, int] = {}

    def __contains__(self, value: object) -> bool:
        return value in self._code

    def code(self, value: _K) -> int:
        c = self._code.get(value)
        if c is None:
            c = len(self.values)
            self.values.append(value)  # before the code can reach a column
            self._code[value] = c
        return c


class Rows:
    """One set of rows. Writers mutate it in place (row by row) or replace it whole."""

    ver: array[int]
    created: array[int]
    rating: array[float]
    stock: array[int]
    price: array[float]
    tlen: array[int]
    cat: array[int]
    brand: array[int]
    tags: array[int]
    currency: array[int]
    merchant: array[int]
    attrs: array[int]

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.texts: list[bytes | None] = []
        """UTF-8 title then description (``tlen`` says where the title ends)."""
        self.flags = bytearray()
        self.set_columns(tuple(array(typecode) for _, typecode in COLUMNS))

    def set_columns(self, cols: tuple[array, ...]) -> None:  # type: ignore[type-arg]
        """The typed columns in ``COLUMNS`` order, each also reachable by its name."""
        self.cols = cols
        for (name, _), col in zip(COLUMNS, cols, strict=True):
            setattr(self, name, col)

    @property
    def dead(self) -> int:
        return len(self.ids) - len(self.rows)
