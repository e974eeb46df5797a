"""An in-memory view of the catalog, shared by ranking, rules and the API.

Loaded from ``items.jsonl`` (or any loader format); upserts and deletes from the API keep it
current and are written back with :meth:`Catalog.save` (atomic replace).

Storage (≈ 45 MB at 100k items — 11 MB of it the compressed items, the rest ids, the id → row
dict, columns and category sets — instead of ≈ 228 MB of pydantic objects):

- each item is kept as JSON text that validates to exactly that item (the line it was loaded
  from, or ``Item.model_dump_json``) compressed with raw deflate against a shared dictionary
  learnt from a sample of the catalog (:class:`ItemCodec`); small records compress well only
  against such a dictionary (to about a fifth of their size);
- :meth:`Catalog.get` decodes on a miss (inflate + ``model_validate_json``, ~20 µs) and keeps a
  bounded LRU of materialized items for hot ids (a hit is a few dict reads);
- the facts ranking reads per request or per refresh (active, in stock, promoted, category,
  brand, tags, price, created_at, rating) live in light per-row columns maintained on upsert,
  so filters (:meth:`keep`, :meth:`facts`) and catalog-wide views never decode items;
  :meth:`columns` hands out a numpy snapshot of them.

Readers take no lock: a reader uses one consistent store snapshot, every blob is replaced as a
whole, and a cached item is used only while its blob is still the stored one, so ``get`` never
returns a half-written item. Writers serialize on one lock.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from data.models import CATEGORY_SEPARATOR, Item

if TYPE_CHECKING:
    import numpy as np

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT64_MAX = 2**63 - 1

ACTIVE, IN_STOCK, PROMOTED, LIVE = 1, 2, 4, 8
"""Bits of the per-row flags column."""
_RECOMMENDABLE = ACTIVE | IN_STOCK

_WBITS = -14
"""Raw deflate with a 16 KB window: the dictionary's size, and a cheap state to copy per item."""
_ZDICT_SIZE = 16_384
_TRAIN_MIN, _TRAIN_MAX, _TRAIN_SAMPLE = 64, 4096, 64
_SKELETON = (
    b'{"item_id":"","title":"","description":"","category":[],"brand":"","price":.0,'
    b'"currency":"CNY","tags":[],"attributes":{},"stock":0,"is_active":true,'
    b'"created_at":"T00:00:00Z","merchant_id":"","rating":null}'
)
"""Field names and fixed values every record repeats: the end of every dictionary."""


def _created_us(item: Item) -> int:
    return (item.created_at - _EPOCH) // _MICROSECOND


def is_promoted(item: Item) -> bool:
    """Tagged ``promoted`` or with the attribute ``promoted: true``."""
    return "promoted" in item.tags or item.attributes.get("promoted") is True


def _with_text(item: Item, line: bytes) -> tuple[Item, bytes]:
    """The line itself when it validates to the same item every time (it names ``created_at``,
    the one field whose default changes); else the item's canonical JSON."""
    if "created_at" in item.model_fields_set:
        return item, line
    return item, item.model_dump_json().encode()


class ItemCodec:
    """Items ↔ compact bytes: canonical JSON deflated against a shared dictionary."""

    def __init__(self, zdict: bytes = _SKELETON) -> None:
        self.zdict = zdict
        self._base = zlib.compressobj(6, zlib.DEFLATED, _WBITS, 5, zlib.Z_DEFAULT_STRATEGY, zdict)

    @classmethod
    def learn(cls, texts: Iterable[bytes]) -> ItemCodec:
        """A codec whose dictionary is a sample of records (most common strings last)."""
        sample = b"".join(texts)[-(_ZDICT_SIZE - len(_SKELETON)):]
        return cls(sample + _SKELETON)

    def pack(self, text: bytes) -> bytes:
        c = self._base.copy()
        return c.compress(text) + c.flush()

    def text(self, blob: bytes) -> bytes:
        """The item's JSON text (as written to items.jsonl)."""
        return zlib.decompressobj(_WBITS, self.zdict).decompress(blob)

    def encode(self, item: Item) -> bytes:
        return self.pack(item.model_dump_json().encode())

    def decode(self, blob: bytes) -> Item:
        return Item.model_validate_json(self.text(blob))


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
        return (self.flags & _RECOMMENDABLE) == _RECOMMENDABLE

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
    """Clipped to 2**63 - 1."""
    is_active: bool
    created_us: int
    """``created_at`` in µs since 1970 (UTC)."""
    rating: float | None

    @property
    def created_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.created_us)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def category_path(self) -> str:
        return CATEGORY_SEPARATOR.join(self.category)


_COLUMNS: tuple[tuple[str, str], ...] = (
    ("created", "q"),  # µs since 1970, UTC
    ("rating", "d"),  # NaN for None
    ("stock", "q"),  # clipped to int64
    ("price", "d"),
    ("cat", "i"),  # code into Catalog._cats
    ("brand", "i"),  # code into Catalog._brands, -1 for None
    ("tags", "i"),  # code into Catalog._tags
)
"""The typed per-row columns (besides ``flags``), one ``array`` each."""

_K = TypeVar("_K", bound=Hashable)


class _Codes(Generic[_K]):
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


class _Store:
    """One consistent set of rows. Writers mutate it in place (row by row) or replace it."""

    created: array[int]
    rating: array[float]
    stock: array[int]
    price: array[float]
    cat: array[int]
    brand: array[int]
    tags: array[int]

    def __init__(self, codec: ItemCodec) -> None:
        self.codec = codec
        self.rows: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.blobs: list[bytes | None] = []
        self.flags = bytearray()
        self.set_columns(tuple(array(typecode) for _, typecode in _COLUMNS))

    def set_columns(self, cols: tuple[array, ...]) -> None:  # type: ignore[type-arg]
        """The typed columns in ``_COLUMNS`` order, each also reachable by its name."""
        self.cols = cols
        for (name, _), col in zip(_COLUMNS, cols, strict=True):
            setattr(self, name, col)

    @property
    def dead(self) -> int:
        return len(self.ids) - len(self.rows)


class Catalog:
    """Items by id, stored compactly (see the module doc); same API as a dict of items."""

    def __init__(self, items: Iterable[Item] = (), *, hot_items: int = 4096) -> None:
        self.hot_items = hot_items
        self._lock = threading.RLock()
        self._st = _Store(ItemCodec())
        self._trained_on = 0
        self._hot: OrderedDict[str, tuple[bytes, Item]] = OrderedDict()
        # code tables (append-only) and what upsert / delete maintain besides the rows
        self._cats: _Codes[tuple[str, ...]] = _Codes()
        self._cat_paths = self._cats.values
        self._cat_groups: list[str | None] = []
        """``" > "``-joined path per category code (None for the empty path)."""
        self._brands: _Codes[str] = _Codes()
        self._brand_names = self._brands.values
        self._tags: _Codes[tuple[str, ...]] = _Codes()
        self._brand_count: dict[str, int] = {}
        self._by_leaf: dict[tuple[str, ...], set[str]] = {}
        self.upsert(items)

    # reading -----------------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        st = self._st
        row = st.rows.get(item_id)
        if row is None:
            return None
        blob = st.blobs[row]
        if blob is None:  # deleted meanwhile
            return None
        hot = self._hot
        hit = hot.get(item_id)
        if hit is not None and hit[0] is blob:
            try:
                hot.move_to_end(item_id)
            except KeyError:  # evicted by another thread meanwhile
                pass
            return hit[1]
        item = st.codec.decode(blob)
        if self.hot_items > 0:
            hot[item_id] = (blob, item)
            while len(hot) > self.hot_items:
                try:
                    hot.popitem(last=False)
                except KeyError:
                    break
        return item

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._st.rows

    def __len__(self) -> int:
        return len(self._st.rows)

    def __iter__(self) -> Iterator[Item]:
        """Every item, decoded (a snapshot taken at the call; the hot cache is left alone)."""
        st = self._st
        blobs = list(st.blobs)
        codec = st.codec
        return (codec.decode(b) for b in blobs if b is not None)

    def ids(self) -> list[str]:
        """All item ids in catalog order (a snapshot)."""
        return list(self._st.rows)

    @property
    def hot_count(self) -> int:
        """Materialized items currently cached (at most ``hot_items``)."""
        return len(self._hot)

    def is_recommendable(self, item_id: str) -> bool:
        """Active and in stock: the only items a list may show."""
        st = self._st
        row = st.rows.get(item_id)
        return row is not None and st.flags[row] & _RECOMMENDABLE == _RECOMMENDABLE

    def in_category(self, item_id: str, prefix: tuple[str, ...]) -> bool:
        st = self._st
        row = st.rows.get(item_id)
        return row is not None and self._cat_paths[st.cat[row]][: len(prefix)] == prefix

    def category_group(self, item_id: str) -> str | None:
        """The item's category path joined with `` > `` (None when unknown or uncategorized)."""
        st = self._st
        row = st.rows.get(item_id)
        return None if row is None else self._cat_groups[st.cat[row]]

    def category_and_brand(self, item_id: str) -> tuple[str | None, str | None]:
        """(category path joined with `` > ``, brand) without decoding the item; (None, None)
        when it is not in the catalog. An uncategorized item's path is ``""``."""
        st = self._st
        row = st.rows.get(item_id)
        if row is None:
            return None, None
        brand = st.brand[row]
        group = self._cat_groups[st.cat[row]]
        return ("" if group is None else group), (None if brand < 0 else self._brand_names[brand])

    def facts(self, item_id: str) -> ItemFacts | None:
        """Category, brand, tags, price, stock, active, created_at and rating, not decoded.

        Read column by column without a lock: while the same item is being upserted the
        fields may mix its old and new values (``get`` never does)."""
        st = self._st
        row = st.rows.get(item_id)
        if row is None:
            return None
        brand, rating = st.brand[row], st.rating[row]
        return ItemFacts(
            item_id,
            self._cat_paths[st.cat[row]],
            None if brand < 0 else self._brand_names[brand],
            self._tags.values[st.tags[row]],
            st.price[row],
            st.stock[row],
            bool(st.flags[row] & ACTIVE),
            st.created[row],
            None if rating != rating else rating,  # NaN: no rating
        )

    def keep(
        self, item_id: str, exclude: set[str] | frozenset[str], category: tuple[str, ...] | None
    ) -> bool:
        """Recommendable, not excluded and under ``category`` (when given)."""
        if item_id in exclude:
            return False
        st = self._st
        row = st.rows.get(item_id)
        if row is None or st.flags[row] & _RECOMMENDABLE != _RECOMMENDABLE:
            return False
        return category is None or self._cat_paths[st.cat[row]][: len(category)] == category

    def items_in_category(self, prefix: tuple[str, ...]) -> set[str]:
        with self._lock:
            out: set[str] = set()
            for leaf, ids in self._by_leaf.items():
                if leaf[: len(prefix)] == prefix:
                    out |= ids
            return out

    def categories(self) -> list[tuple[str, ...]]:
        """Category paths that have at least one item, sorted."""
        with self._lock:
            return sorted(leaf for leaf, ids in self._by_leaf.items() if ids)

    def brands(self) -> frozenset[str]:
        """Brand names that have at least one item (as written on the items)."""
        with self._lock:
            return frozenset(self._brand_count)

    def columns(self) -> CatalogColumns:
        """A numpy snapshot of the live items' light columns (no item is decoded)."""
        import numpy as np

        with self._lock:  # writers cannot resize the arrays while numpy reads them
            st = self._st
            flags = np.frombuffer(st.flags, dtype=np.uint8).copy()
            live = (flags & LIVE) != 0
            return CatalogColumns(
                ids=[i for i in st.ids if i is not None],
                created_us=np.frombuffer(st.created, dtype=np.int64)[live],
                rating=np.frombuffer(st.rating, dtype=np.float64)[live],
                stock=np.frombuffer(st.stock, dtype=np.int64)[live],
                flags=flags[live],
            )

    # writing -----------------------------------------------------------------
    def upsert(self, items: Iterable[Item]) -> int:
        return self._upsert((item, item.model_dump_json().encode()) for item in items)

    def _upsert(self, pairs: Iterable[tuple[Item, bytes]]) -> int:
        """Store items with their JSON text: any text that validates to exactly that item."""
        n = 0
        with self._lock:
            for item, text in pairs:
                self._put(item, text)
                n += 1
                if len(self._st.rows) >= 2 * self._trained_on and self._trained_on < _TRAIN_MAX:
                    self._maybe_learn()
        return n

    def delete(self, item_ids: Iterable[str]) -> int:
        n = 0
        with self._lock:
            st = self._st
            for item_id in item_ids:
                row = st.rows.pop(item_id, None)
                if row is None:
                    continue
                st.blobs[row] = None
                st.ids[row] = None
                st.flags[row] = 0
                self._unindex(item_id, st.cat[row], st.brand[row])
                self._hot.pop(item_id, None)
                n += 1
            if st.dead > 1024 and st.dead > len(st.rows):
                self._rebuild(st.codec)
        return n

    def _put(self, item: Item, text: bytes) -> None:
        st = self._st
        blob = st.codec.pack(text)
        if item.category not in self._cats:
            self._cat_groups.append(CATEGORY_SEPARATOR.join(item.category) or None)
        cat = self._cats.code(item.category)
        brand = -1 if item.brand is None else self._brands.code(item.brand)
        flags = LIVE | (ACTIVE if item.is_active else 0) | (IN_STOCK if item.stock > 0 else 0)
        flags |= PROMOTED if is_promoted(item) else 0
        values = (  # in _COLUMNS order
            _created_us(item),
            math.nan if item.rating is None else item.rating,
            min(item.stock, _INT64_MAX),
            item.price,
            cat,
            brand,
            self._tags.code(item.tags),
        )
        item_id = item.item_id
        row = st.rows.get(item_id)
        if row is None:
            # columns first, the id last: a reader that finds the row finds its columns
            st.ids.append(item_id)
            st.blobs.append(blob)
            st.flags.append(flags)
            for col, v in zip(st.cols, values):
                col.append(v)
            st.rows[item_id] = len(st.ids) - 1
        else:
            self._unindex(item_id, st.cat[row], st.brand[row])
            st.blobs[row] = blob
            st.flags[row] = flags
            for col, v in zip(st.cols, values):
                col[row] = v
        self._by_leaf.setdefault(item.category, set()).add(item_id)
        if item.brand is not None:
            self._brand_count[item.brand] = self._brand_count.get(item.brand, 0) + 1

    def _unindex(self, item_id: str, cat: int, brand: int) -> None:
        ids = self._by_leaf.get(self._cat_paths[cat])
        if ids is not None:
            ids.discard(item_id)
        if brand >= 0:
            name = self._brand_names[brand]
            left = self._brand_count.get(name, 0) - 1
            if left > 0:
                self._brand_count[name] = left
            else:
                self._brand_count.pop(name, None)

    def _maybe_learn(self) -> None:
        """Learn a compression dictionary from a sample once the catalog has doubled."""
        st = self._st
        n = len(st.rows)
        if n < _TRAIN_MIN:
            return
        live = [b for b in st.blobs if b is not None]
        step = max(1, len(live) // _TRAIN_SAMPLE)
        codec = ItemCodec.learn(st.codec.text(b) for b in live[::step][:_TRAIN_SAMPLE])
        self._trained_on = n
        self._rebuild(codec)

    def _rebuild(self, codec: ItemCodec) -> None:
        """A fresh store without dead rows (re-encoded when the codec changes), swapped in."""
        old = self._st
        new = _Store(codec)
        live = [r for r, i in enumerate(old.ids) if i is not None]
        new.ids = [old.ids[r] for r in live]
        blobs = [old.blobs[r] for r in live]
        if codec is not old.codec:
            blobs = [codec.pack(old.codec.text(b)) for b in blobs if b is not None]
        new.blobs = list(blobs)
        new.flags = bytearray(old.flags[r] for r in live)
        new.set_columns(tuple(array(typecode, [col[r] for r in live])
                              for (_, typecode), col in zip(_COLUMNS, old.cols, strict=True)))
        new.rows = {i: r for r, i in enumerate(new.ids) if i is not None}
        self._st = new

    # files -------------------------------------------------------------------
    @classmethod
    def from_jsonl(cls, path: Path) -> Catalog:
        """Read a clean items.jsonl (as written by :meth:`save` or the generator)."""
        catalog = cls()
        with open(path, "rb") as fh:
            catalog._upsert(_with_text(Item.model_validate_json(line), line.strip())
                            for line in fh if line.strip())
        return catalog

    def save(self, path: Path) -> None:
        """Write all items to `path` atomically (temp file, fsync, rename), one JSON a line."""
        st = self._st
        blobs = list(st.blobs)
        codec = st.codec
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                for blob in blobs:
                    if blob is not None:
                        fh.write(codec.text(blob) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
