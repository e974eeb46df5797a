"""What the search engine learns from the catalog besides the index, one set per index
generation: the Latin vocabulary with document frequencies (spelling suggestions), the
brands (the relaxation's brand step), the dense index of item texts (`search.dense`) and,
when the index was built with the shop's events, the behaviour vectors and clicked items per
query (`search.behaviour`).

Stored in ``<aids root>/<generation>/`` (``lexicon.json``, ``dense.npz``,
``dense_components.npy``, ``dense.hnsw``, ``behaviour.npz``),
written when `search.engine.SearchEngine` builds or adds to an index, read by every process
that searches that generation. Upserts between rebuilds update a process's copy in memory
only; the next `shoprank index` writes a fresh set.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.fsutil import atomic_write
from data.models import Item
from data.text import edit_distance, is_cjk, normalize, stem
from search.behaviour import BehaviourIndex
from search.dense import DenseIndex

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def item_text(item: Item) -> str:
    """The text an item's dense vector is made from."""
    parts = [item.title, item.brand or "", " ".join(item.category), " ".join(item.tags)]
    en = item.attributes.get("category_en")
    if isinstance(en, str):
        parts.append(en)
    return " ".join(p for p in parts if p)


_LATIN = re.compile(r"[a-z]+")


def _latin_words(item: Item) -> set[str]:
    """Latin words of title, brand, categories and tags, stemmed as the index holds them."""
    text = " ".join((item.title, item.brand or "", *item.category, *item.tags))
    folded = unicodedata.normalize("NFKC", text).lower()
    return {stem(w) for w in _LATIN.findall(folded)}


@dataclass
class CatalogAids:
    lexicon: Counter[str] = field(default_factory=Counter)
    """Latin word (stemmed, as indexed) → number of active items whose title, brand,
    categories or tags hold it."""
    brands: set[str] = field(default_factory=set)
    """Normalized brand names of active items."""
    dense: DenseIndex | None = None
    behaviour: BehaviourIndex | None = None

    @classmethod
    def build(
        cls, items: Iterable[Item], *, dense: bool = True, events: pa.Table | None = None
    ) -> CatalogAids:
        """The aids of ``items``; ``events`` (the shop's event log) adds the behaviour
        vectors."""
        aids = cls()
        ids: list[str] = []
        texts: list[str] = []
        for item in items:
            if not item.is_active:
                continue
            aids._count(item)
            ids.append(item.item_id)
            texts.append(item_text(item))
        if dense:
            aids.dense = DenseIndex.build(ids, texts)
        if events is not None:
            aids.behaviour = BehaviourIndex.build(events, ids)
        return aids

    def _count(self, item: Item) -> None:
        self.lexicon.update(_latin_words(item))
        if item.brand:
            self.brands.add(normalize(item.brand))

    def add(self, items: Iterable[Item]) -> None:
        """Add new items or versions (counts only grow until the next rebuild)."""
        active = [i for i in items if i.is_active]
        for item in active:
            self._count(item)
        if self.dense is not None:
            self.dense.add([i.item_id for i in active], [item_text(i) for i in active])

    def correct(self, word: str) -> str | None:
        """The catalog word closest to a Latin ``word`` absent from the catalog (at most 1
        edit up to 5 letters, else 2; the most frequent wins ties), or None."""
        if not word.isalpha() or is_cjk(word) or word in self.lexicon or len(word) < 3:
            return None
        limit = 1 if len(word) <= 5 else 2
        best: tuple[int, int, str] | None = None
        for cand, n in self.lexicon.items():
            if abs(len(cand) - len(word)) > limit or cand[0] != word[0] and limit == 1:
                continue
            d = edit_distance(word, cand, limit)
            if d <= limit and (best is None or (d, -n, cand) < best):
                best = (d, -n, cand)
        return best[2] if best is not None else None

    # -- storage

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.dense is not None:
            self.dense.save(tmp)
        if self.behaviour is not None:
            self.behaviour.save(tmp)
        meta = {
            "version": FORMAT_VERSION,
            "lexicon": dict(self.lexicon),
            "brands": sorted(self.brands),
            "dense": self.dense is not None,
            "behaviour": self.behaviour is not None,
        }
        atomic_write(tmp / "lexicon.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> CatalogAids | None:
        """The aids in ``folder``, or None when there are none (or of another format)."""
        try:
            meta = json.loads((folder / "lexicon.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("version") != FORMAT_VERSION:
            return None
        dense = DenseIndex.load(folder) if meta.get("dense") else None
        behaviour = BehaviourIndex.load(folder) if meta.get("behaviour") else None
        return cls(Counter(meta["lexicon"]), set(meta["brands"]), dense, behaviour)
