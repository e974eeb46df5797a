"""An in-memory view of the catalog, shared by ranking, rules and the API.

Loaded from the catalog store (or ``items.jsonl`` and any loader format, for tools and
tests); serving keeps it current from the store's change feed
(``serving.storage.CatalogFollower``). :meth:`Catalog.save` writes ``items.jsonl`` (atomic
replace) for tools and tests; serving never calls it.

Storage (a fraction of what pydantic objects take; docs/decisions.md): one row per item in
typed columns (``array``s) — price, stock, created_at (µs), rating, flags (active, in stock,
promoted) and codes into small append-only tables for category, brand, tags, currency,
merchant and attributes (interned by their JSON) — plus the title and description as one UTF-8
``bytes`` per item. Nothing is compressed: zlib and the like release the GIL on every call,
and in a busy server each release waits up to a switch interval (5 ms) to get it back.

- :meth:`Catalog.get` builds the item from its row (``Item.model_construct``: the values were
  validated on the way in and are stored exactly) and keeps a bounded LRU of built items for
  hot ids;
- filters (:meth:`keep`, :meth:`facts`, :meth:`category_and_brand`) and catalog-wide views
  (:meth:`columns`, a numpy snapshot) read the columns and build nothing.

Readers take no lock. Each row carries a version, unique over the catalog's life and 0 while
a writer is on the row; a reader that sees the same non-zero version before and after reading
a row read one whole version of the item (a seqlock; the GIL orders the steps), so ``get``
never returns a half-written item, and a cached item is used only while its version is the
row's. Writers serialize on one lock.

The row layout (columns, flag bits, code tables) is :mod:`data.catalog_rows`; the seqlock
protocol over the rows — how readers and writers use them — stays whole in this module.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from core.errors import describe
from core.fsutil import atomic_write
from data.catalog_rows import (
    ACTIVE,
    COLUMNS,
    EPOCH,
    IN_STOCK,
    LIVE,
    PROMOTED,
    RECOMMENDABLE,
    CatalogColumns,
    Codes,
    ItemFacts,
    Rows,
    created_us,
    is_promoted,
)
from data.models import CATEGORY_SEPARATOR, AttributeValue, Item
from data.quarantine import set_aside

T = TypeVar("T")


class Catalog:
    """Items by id, stored compactly (see the module doc); same API as a dict of items."""

    def __init__(self, items: Iterable[Item] = (), *, hot_items: int = 4096) -> None:
        self.hot_items = hot_items
        self._lock = threading.RLock()
        self._st = Rows()
        self._versions = itertools.count(1)
        self._hot: OrderedDict[str, tuple[int, Item]] = OrderedDict()
        # code tables (append-only) and what upsert / delete maintain besides the rows
        self._cats: Codes[tuple[str, ...]] = Codes()
        self._cat_paths = self._cats.values
        self._cat_groups: list[str | None] = []
        """``" > "``-joined path per category code (None for the empty path)."""
        self._brands: Codes[str] = Codes()
        self._brand_names = self._brands.values
        self._tags: Codes[tuple[str, ...]] = Codes()
        self._currencies: Codes[str] = Codes()
        self._merchants: Codes[str] = Codes()
        self._attrs: Codes[str] = Codes()
        self._attr_pairs: list[tuple[tuple[str, AttributeValue], ...]] = []
        """The parsed attributes per code (each item gets its own dict of them)."""
        self._brand_count: dict[str, int] = {}
        self._by_leaf: dict[tuple[str, ...], set[str]] = {}
        self.upsert(items)

    # reading -----------------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        hot = self._hot

        def read(st: Rows, row: int) -> tuple[int, Item, bool] | None:
            ver = st.ver[row]
            hit = hot.get(item_id)
            if hit is not None and hit[0] == ver:
                return ver, hit[1], True
            item = self._build(st, row, item_id)
            return None if item is None else (ver, item, False)

        got = self._read_row(item_id, read)
        if got is None:
            return None
        ver, item, cached = got
        if cached:
            try:
                hot.move_to_end(item_id)
            except KeyError:  # evicted by another thread meanwhile
                pass
        elif self.hot_items > 0:
            hot[item_id] = (ver, item)
            while len(hot) > self.hot_items:
                try:
                    hot.popitem(last=False)
                except KeyError:
                    break
        return item

    def _read(self, item_id: str) -> Item | None:
        """The item, built from its row (one whole version), without the hot cache."""
        return self._read_row(item_id, lambda st, row: self._build(st, row, item_id))

    def _build(self, st: Rows, row: int, item_id: str) -> Item | None:
        values = self._values(st, row, item_id)
        return None if values is None else Item.model_construct(**values)

    def _values(self, st: Rows, row: int, item_id: str) -> dict[str, object] | None:
        """The item's field values from its row (None if deleted meanwhile); callers check
        the row's version around it."""
        text = st.texts[row]
        if text is None:
            return None
        n, brand, merchant, rating = st.tlen[row], st.brand[row], st.merchant[row], st.rating[row]
        stock = st.stock[row]
        return {
            "item_id": item_id,
            "title": text[:n].decode(),
            "description": text[n:].decode(),
            "category": self._cat_paths[st.cat[row]],
            "brand": None if brand < 0 else self._brand_names[brand],
            "price": st.price[row],
            "currency": self._currencies.values[st.currency[row]],
            "tags": self._tags.values[st.tags[row]],
            "attributes": dict(self._attr_pairs[st.attrs[row]]),
            "stock": stock,
            "is_active": bool(st.flags[row] & ACTIVE),
            "created_at": EPOCH + timedelta(microseconds=st.created[row]),
            "merchant_id": None if merchant < 0 else self._merchants.values[merchant],
            "rating": None if rating != rating else rating,  # NaN: no rating
        }

    def _json_lines(self) -> Iterator[bytes]:
        """Each item as one JSON line (what :meth:`save` writes), without building items."""
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for item_id in self.ids():
            while True:
                st = self._st
                row = st.rows.get(item_id)
                if row is None:
                    break
                ver = st.ver[row]
                values = self._values(st, row, item_id) if ver else None
                if values is not None and st.ver[row] == ver:
                    created: datetime = values["created_at"]  # type: ignore[assignment]
                    values["created_at"] = created.isoformat().replace("+00:00", "Z")
                    yield dumps(values).encode() + b"\n"
                    break
                time.sleep(0)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._st.rows

    def __len__(self) -> int:
        return len(self._st.rows)

    def __iter__(self) -> Iterator[Item]:
        """Every item in catalog order (ids taken at the call; the hot cache is left alone)."""
        return (it for it in map(self._read, self.ids()) if it is not None)

    def ids(self) -> list[str]:
        """All item ids in catalog order (a snapshot)."""
        return list(self._st.rows)

    @property
    def hot_count(self) -> int:
        """Built items currently cached (at most ``hot_items``)."""
        return len(self._hot)

    def is_recommendable(self, item_id: str) -> bool:
        """Active and in stock: the only items a list may show."""
        st = self._st
        row = st.rows.get(item_id)
        return row is not None and st.flags[row] & RECOMMENDABLE == RECOMMENDABLE

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

    def _read_row(self, item_id: str, read: Callable[[Rows, int], T | None]) -> T | None:
        """``read(store, row)`` of one whole version of the item (None: not in the catalog):
        read again while a writer is on the row or when ``read`` found it deleted meanwhile."""
        while True:
            st = self._st
            row = st.rows.get(item_id)
            if row is None:
                return None
            ver = st.ver[row]
            if ver:
                got = read(st, row)
                if got is not None and st.ver[row] == ver:
                    return got
            time.sleep(0)  # a writer is on this row: let it finish

    def facts(self, item_id: str) -> ItemFacts | None:
        """Category, brand, tags, price, stock, active, created_at and rating, not decoded
        (read as one version of the item, like :meth:`get`)."""

        def read(st: Rows, row: int) -> ItemFacts:
            brand, rating, stock = st.brand[row], st.rating[row], st.stock[row]
            return ItemFacts(
                item_id,
                self._cat_paths[st.cat[row]],
                None if brand < 0 else self._brand_names[brand],
                self._tags.values[st.tags[row]],
                st.price[row],
                stock,
                bool(st.flags[row] & ACTIVE),
                st.created[row],
                None if rating != rating else rating,  # NaN: no rating
            )

        return self._read_row(item_id, read)

    def keep(
        self, item_id: str, exclude: set[str] | frozenset[str], category: tuple[str, ...] | None
    ) -> bool:
        """Recommendable, not excluded and under ``category`` (when given)."""
        if item_id in exclude:
            return False
        st = self._st
        row = st.rows.get(item_id)
        if row is None or st.flags[row] & RECOMMENDABLE != RECOMMENDABLE:
            return False
        return category is None or self._cat_paths[st.cat[row]][: len(category)] == category

    def head(
        self,
        item_ids: Iterable[str],
        exclude: set[str] | frozenset[str],
        category: tuple[str, ...] | None,
        size: int,
        positions: list[int],
    ) -> Iterator[str | None]:
        """The :meth:`category_group` of each of the first ``size`` items of ``item_ids`` that
        :meth:`keep` accepts, read lazily; their positions in ``item_ids`` are appended to
        ``positions`` as they are read. A ranked feed's filter and diversity groups in one
        loop: diversity reads a few hundred candidates, each a dictionary look-up that misses
        the CPU's caches in a large catalog, so reading no further than needed counts most."""
        st = self._st  # one set of rows for the whole loop (a compaction replaces it whole)
        get, flags, cats = st.rows.get, st.flags, st.cat
        groups, paths = self._cat_groups, self._cat_paths
        depth = 0 if category is None else len(category)
        if size <= 0:
            return
        for p, iid in enumerate(item_ids):
            if iid in exclude:
                continue
            row = get(iid)
            if row is None or flags[row] & RECOMMENDABLE != RECOMMENDABLE:
                continue
            c = cats[row]
            if depth and paths[c][:depth] != category:
                continue
            positions.append(p)
            yield groups[c]
            if len(positions) >= size:
                return

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

    def card(self, item_id: str) -> tuple[str, str | None, list[str], float, str, bool] | None:
        """What a ranked list shows of an item — title, brand, category path, price, currency,
        in stock — from the columns (only the title's bytes are decoded), one version of it."""

        def read(st: Rows, row: int) -> tuple[str, str | None, list[str], float, str, bool]:
            text, brand = st.texts[row] or b"", st.brand[row]
            return (
                text[: st.tlen[row]].decode(),
                None if brand < 0 else self._brand_names[brand],
                list(self._cat_paths[st.cat[row]]),
                st.price[row],
                self._currencies.values[st.currency[row]],
                st.stock[row] > 0,
            )

        return self._read_row(item_id, read)

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
        n = 0
        with self._lock:
            for item in items:
                self._put(item)
                n += 1
        return n

    def delete(self, item_ids: Iterable[str]) -> int:
        n = 0
        with self._lock:
            st = self._st
            for item_id in item_ids:
                row = st.rows.pop(item_id, None)
                if row is None:
                    continue
                st.ver[row] = 0
                st.texts[row] = None
                st.ids[row] = None
                st.flags[row] = 0
                self._unindex(item_id, st.cat[row], st.brand[row])
                self._hot.pop(item_id, None)
                n += 1
            if st.dead > 1024 and st.dead > len(st.rows):
                self._compact()
        return n

    def _put(self, item: Item) -> None:
        st = self._st
        title = item.title.encode()
        if item.category not in self._cats:
            self._cat_groups.append(CATEGORY_SEPARATOR.join(item.category) or None)
        cat = self._cats.code(item.category)
        attrs_json = json.dumps(item.attributes, ensure_ascii=False, separators=(",", ":"))
        if attrs_json not in self._attrs:
            self._attr_pairs.append(tuple(json.loads(attrs_json).items()))
        flags = LIVE | (ACTIVE if item.is_active else 0) | (IN_STOCK if item.stock > 0 else 0)
        flags |= PROMOTED if is_promoted(item) else 0
        values = (  # in COLUMNS order
            next(self._versions),
            created_us(item),
            math.nan if item.rating is None else item.rating,
            item.stock,
            item.price,
            len(title),
            cat,
            -1 if item.brand is None else self._brands.code(item.brand),
            self._tags.code(item.tags),
            self._currencies.code(item.currency),
            -1 if item.merchant_id is None else self._merchants.code(item.merchant_id),
            self._attrs.code(attrs_json),
        )
        text = title + item.description.encode()
        item_id = item.item_id
        row = st.rows.get(item_id)
        if row is None:
            # the whole row first, the id last: a reader that finds the row finds it complete
            st.ids.append(item_id)
            st.texts.append(text)
            st.flags.append(flags)
            for col, v in zip(st.cols, values, strict=False):
                col.append(v)
            st.rows[item_id] = len(st.ids) - 1
        else:
            st.ver[row] = 0  # readers of this row wait until the new version is complete
            self._unindex(item_id, st.cat[row], st.brand[row])
            st.texts[row] = text
            st.flags[row] = flags
            for col, v in zip(st.cols[1:], values[1:], strict=False):
                col[row] = v
            st.ver[row] = values[0]
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

    def _compact(self) -> None:
        """A fresh store without the deleted rows, swapped in (the old one is left as it was
        for readers still on it)."""
        old = self._st
        new = Rows()
        live = [r for r, i in enumerate(old.ids) if i is not None]
        new.ids = [old.ids[r] for r in live]
        new.texts = [old.texts[r] for r in live]
        new.flags = bytearray(old.flags[r] for r in live)
        new.set_columns(tuple(array(typecode, [col[r] for r in live])
                              for (_, typecode), col in zip(COLUMNS, old.cols, strict=True)))
        new.rows = {i: r for r, i in enumerate(new.ids) if i is not None}
        self._st = new

    # files -------------------------------------------------------------------
    @classmethod
    def from_jsonl(cls, path: Path) -> Catalog:
        """Read items.jsonl (as written by :meth:`save` or the generator). A line that is not a
        valid item (a hand edit, a file from an older version) is skipped and set aside in the
        folder's quarantine, so it cannot stop start-up."""
        bad: list[tuple[int, str, str]] = []

        def items() -> Iterator[Item]:
            with open(path, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        yield Item.model_validate_json(line)
                    except ValidationError as exc:
                        bad.append((lineno, describe(exc), line.decode("utf-8", "replace")))

        catalog = cls(items())
        set_aside(path, bad)
        return catalog

    def save(self, path: Path) -> None:
        """Write all items to `path` atomically (temp file, fsync, rename), one JSON a line."""
        atomic_write(path, self._json_lines())
