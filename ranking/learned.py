"""The learned ranker as the pipeline's last scoring stage, and the log of what was served.

``Pipeline`` (``ranking/pipeline.py``) blends its candidate sources, then hands the blended
order to :meth:`LearnedStage.rerank`: the top :attr:`LearnedStage.top_n` candidates that can
be shown are scored by the ranker version in force (the registry's current ``ranker``, or the
one an experiment variant names) and put in its order; filters, rules and diversity follow as
before. Each reranked item carries the reason ``{"source": "ranker", "model_version": v}``
("ranked by the learned model, version v") and ``ranker:v`` in its breakdown.

Whichever ordered the list, :meth:`LearnedStage.log` records the first ``log_depth`` items
with their blend breakdowns in the served log (``data.served_log``): the ranker's training
lists. An experiment variant switches the stage per request with
``model_versions: {"ranker": "off" | "current" | <version>}``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np

from data.catalog import Catalog
from data.served_log import ServedList
from models.errors import ModelLoadError
from models.lambdarank import RANKER_NAME, LambdaRanker
from models.ranker_features import ItemTable, Shopper, feature_matrix
from models.registry import Registry
from ranking.blend import BlendedItems
from ranking.hooks import Assignment
from ranking.types import RankContext, Reason, ScoredItem
from stores.served_lists import ServedLog

log = logging.getLogger(__name__)

class _PlusScore(Mapping[str, float]):
    """A blend breakdown plus the ranker's entry, without copying the breakdown (200 copies
    per request were a third of the stage's reorder cost)."""

    __slots__ = ("_base", "_key", "_value")

    def __init__(self, base: Mapping[str, float], key: str, value: float) -> None:
        self._base, self._key, self._value = base, key, value

    def __getitem__(self, k: str) -> float:
        return self._value if k == self._key else self._base[k]

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield self._key

    def __len__(self) -> int:
        return len(self._base) + 1

    def __repr__(self) -> str:
        return repr(dict(self))


def search_breakdown(it: ScoredItem) -> dict[str, float]:
    """A search hit's breakdown in the sources' terms the features read: ``search`` (the
    lexical score), ``personalization`` (the affinity) and the blend share (its score)."""
    bd = it.breakdown
    if "search" in bd:  # already in these terms (a reranked hit)
        return {k: v for k, v in bd.items() if not k.startswith("ranker:")}
    out = {"search": bd.get("lexical", it.score), "blend:search": it.score}
    if "affinity" in bd:
        out["personalization"] = bd["affinity"]
    return out


OFF = "off"
CURRENT = "current"
EXPLORE = "explore"
"""A variant override that shows the blend's first ``explore_k`` candidates in a random order
(seeded by the request id): lists whose order did not depend on any model, so an offline
comparison of two orders on them is not tilted by position bias towards the order served."""


@dataclass
class LearnedStage:
    """Reranks blended candidates with the learned ranker; logs served lists."""

    models_dir: Path
    catalog: Catalog
    served_log: ServedLog | None = None
    top_n: int = 200
    log_depth: int = 50
    poll_seconds: float = 5.0
    enabled: bool = True
    """Whether the current ranker serves the feed and recommendations when no experiment says
    otherwise."""
    search_enabled: bool = False
    """The same for search re-ranking: off unless an experiment variant names a ranker (until
    rankers are trained on search lists, the feed's lists are all they learned from)."""
    explore_k: int = 20
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _loaded: dict[str, tuple[LambdaRanker, ItemTable]] = field(default_factory=dict)
    _current: str | None = None
    _polled: float = -1e18
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ versions
    def current_version(self) -> str | None:
        now = time.monotonic()
        if now - self._polled >= self.poll_seconds:
            try:
                self._current = Registry(self.models_dir).current_version(RANKER_NAME)
            except Exception:  # an unreadable pointer must not fail requests
                log.exception("cannot read the current ranker version")
            self._polled = now
        return self._current

    def catalog_changed(self, item_ids: Sequence[str]) -> None:
        """Items were upserted or deleted: read them again into every loaded model's table."""
        for _model, table in list(self._loaded.values()):
            table.refresh(list(item_ids))

    def _model(self, version: str) -> tuple[LambdaRanker, ItemTable] | None:
        got = self._loaded.get(version)
        if got is not None:
            return got
        with self._lock:
            got = self._loaded.get(version)
            if got is None:
                reg = Registry(self.models_dir)
                try:
                    reg.verify(RANKER_NAME, version)
                    model = LambdaRanker.load(reg.path(RANKER_NAME, version))
                    got = (model, ItemTable(self.catalog, model.stats_))
                except (ModelLoadError, OSError, ValueError) as exc:
                    log.error("cannot load ranker %s: %s; serving the hand blend", version, exc)
                    return None
                except Exception:
                    log.exception("cannot load ranker %s; serving the hand blend", version)
                    return None
                if len(self._loaded) >= 4:
                    self._loaded.pop(next(iter(self._loaded)))
                self._loaded[version] = got
                log.info("loaded ranker %s", version)
        return got

    def serving_ok(self) -> bool:
        """The registry's current ranker (if any) is the one this process can serve."""
        version = self.current_version()
        return version is None or self._model(version) is not None

    def choose(self, assignment: Assignment | None, *, search: bool = False) -> str | None:
        """The ranker version for this request (None: the hand blend)."""
        wanted = assignment.model_versions.get(RANKER_NAME) if assignment is not None else None
        if wanted == OFF:
            return None
        if wanted is None and not (self.search_enabled if search else self.enabled):
            return None
        if wanted in (None, CURRENT):
            return self.current_version()
        return wanted

    # ------------------------------------------------------------------ ranking
    def rerank(
        self,
        order: Sequence[str],
        build: Callable[[str], ScoredItem],
        keep: Callable[[str], bool],
        profile: Shopper,
        assignment: Assignment | None,
        request_id: str | None = None,
    ) -> tuple[list[ScoredItem], str] | None:
        """The candidates in the ranker's order (the first ``top_n`` that ``keep`` lets
        through, then the rest in blend order), and the version; None: no ranker applies."""
        version = self.choose(assignment)
        if version is None:
            return None
        if version == EXPLORE:
            return self._explore(order, build, keep, request_id), EXPLORE
        loaded = self._model(version)
        if loaded is None:
            return None
        head: list[ScoredItem] = []
        rest: list[str] = []
        for iid in order:
            if len(head) < self.top_n and keep(iid):
                head.append(build(iid))
            elif len(head) >= self.top_n:
                rest.append(iid)
        if not head:
            return None
        return self.score(head, profile, *loaded, version) + [build(i) for i in rest], version

    def rerank_search(
        self, items: Sequence[ScoredItem], profile: Shopper, assignment: Assignment | None,
        request_id: str | None, top_n: int,
    ) -> tuple[list[ScoredItem], str | None]:
        """Search hits (breakdown ``lexical`` and, when personalized, ``affinity``) with the
        first ``top_n`` in the ranker's order, and the version (None: unchanged)."""
        version = self.choose(assignment, search=True)
        loaded = self._model(version) if version not in (None, EXPLORE) else None
        if loaded is None or not items:
            return list(items), None
        head = [ScoredItem(it.item_id, it.score, it.reasons, MappingProxyType(search_breakdown(it)))
                for it in items[:top_n]]
        return self.score(head, profile, *loaded, version) + list(items[top_n:]), version  # type: ignore[arg-type]

    def _explore(self, order: Sequence[str], build: Callable[[str], ScoredItem],
                 keep: Callable[[str], bool], request_id: str | None) -> list[ScoredItem]:
        head: list[str] = []
        rest: list[str] = []
        for iid in order:
            (head if len(head) < self.explore_k and keep(iid) else rest).append(iid)
        seed = zlib.crc32((request_id or "").encode())
        random.Random(seed).shuffle(head)
        reason = Reason(source="experiment", detail="exploration: shown in a random order")
        return [build(i).with_reason(reason) for i in head] + [build(i) for i in rest]

    def score(
        self, items: Sequence[ScoredItem], profile: Shopper, model: LambdaRanker,
        table: ItemTable, version: str,
    ) -> list[ScoredItem]:
        """``items`` in the ranker's order, each with its score, reason and breakdown entry."""
        x = feature_matrix([it.item_id for it in items], [it.breakdown for it in items],
                           profile, table, self.clock())
        scores = model.predict(x)
        reason = Reason(source="ranker", detail=f"ranked by the learned model, version {version}",
                        model_version=version)
        key = f"ranker:{version}"
        order = np.argsort(-scores, kind="stable").tolist()  # ties keep the blend's order
        values = scores.tolist()
        out = []
        for i in order:
            it = items[i]
            s = values[i]
            out.append(ScoredItem(it.item_id, s, (*it.reasons, reason),
                                  _PlusScore(it.breakdown, key, s)))
        return out

    # ------------------------------------------------------------------ logging
    def log(self, items: Sequence[ScoredItem], ctx: RankContext, version: str | None) -> None:
        """Record the list as served (the first ``log_depth`` items and their blend breakdowns)."""
        if self.served_log is None or not ctx.request_id or not items:
            return
        shown: Sequence[tuple[str, Mapping[str, float]]]
        if isinstance(items, BlendedItems):  # the hand blend's: no item needs building
            shown = (items.breakdown_columns(self.log_depth)
                     or tuple(items.breakdowns(self.log_depth)))
        elif version is None or version == EXPLORE:  # no ranker scored them: nothing to drop
            shown = tuple((it.item_id, it.breakdown) for it in items[: self.log_depth])
        else:
            head = items[: self.log_depth]
            shown = tuple(
                (it.item_id, {k: v for k, v in it.breakdown.items()
                              if not k.startswith("ranker:")})
                for it in head
            )
        self.served_log.record(ServedList(
            request_id=ctx.request_id, at=self.clock(), surface=ctx.surface, user_id=ctx.user_id,
            items=shown, variant=ctx.variant, ranker_version=version, query=ctx.query,
        ))

    def log_search(
        self, items: Sequence[ScoredItem], ctx: RankContext, version: str | None
    ) -> None:
        """Record a search list as served, its breakdowns in the sources' terms."""
        self.log([ScoredItem(it.item_id, it.score, it.reasons,
                             MappingProxyType(search_breakdown(it)))
                  for it in items[: self.log_depth]], ctx, version)

    def versions(self, base: Mapping[str, str], version: str | None) -> Mapping[str, str]:
        return {**base, RANKER_NAME: version} if version else base

    def close(self) -> None:
        if self.served_log is not None:
            self.served_log.close()
