"""Online ranking: assign → candidates → blend → filter → rules → diversify → explain.

One :class:`Pipeline` serves every surface (recommendations, feed, similar, bought together,
trending; search personalization lives in ``ranking/personalize.py`` and uses
:meth:`Pipeline.profile`). Each call returns a :class:`Ranked`: the items (each with score,
reasons and score breakdown), the context rules saw, the strategy used and the model versions.

Blending (:mod:`ranking.blend`): every source's list is turned into rank scores and summed
per item; an item found by several sources keeps every reason. Filtering keeps only active,
in-stock catalog items (and the category asked for). The rules hook runs on the filtered list;
diversity runs last so no rule or score can pile one category up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from data.catalog import Catalog
from ranking import candidates as C
from ranking.blend import Blended, BlendedItems, Candidates, blend
from ranking.catalog_index import CatalogIndex
from ranking.diversity import diversity_order, diversity_positions
from ranking.hooks import Assignment, ExperimentHook, RequestLogHook, RulesHook
from ranking.live import LiveCounts
from ranking.modelset import ModelSet, load_model_set
from ranking.profile import ProfileStore, UserProfile
from ranking.types import LazyItems, RankContext, Reason, ScoredItem, Surface

if TYPE_CHECKING:
    from core.settings import Settings
    from ranking.learned import LearnedStage

log = logging.getLogger(__name__)

SLOTS: tuple[str, ...] = ("for_you", "trending", "new_arrivals", "promoted")

Strategy = Literal[
    "personalized", "history", "trending", "non_personalized", "similar", "bought_together", "none"
]


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    slot_weights: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(
            {"for_you": 1.0, "trending": 0.3, "new_arrivals": 0.2, "promoted": 0.3}
        )
    )
    diversity_max_per_category: int = 3
    diversity_window: int = 5
    feed_depth: int = 200
    models_dir: Path | None = None
    derived_dir: Path | None = None
    """Where serving keeps arrays derived from models (see ``models.arrays.shared_array``)."""

    @classmethod
    def from_settings(cls, s: Settings) -> PipelineConfig:
        return cls(
            slot_weights=MappingProxyType(dict(s.feed_slot_weights)),
            diversity_max_per_category=s.diversity_max_per_category,
            diversity_window=s.diversity_window,
            models_dir=s.models_dir,
            derived_dir=s.derived_dir,
        )


@dataclass(frozen=True, slots=True)
class Ranked:
    items: list[ScoredItem] | LazyItems
    """The ranked items (the feed's are built when read: :class:`BlendedItems`, and a stored
    list's, ``serving.feed_pages``)."""
    ctx: RankContext
    strategy: Strategy
    model_versions: Mapping[str, str]
    assignment: Assignment | None = None


class Pipeline:
    def __init__(
        self,
        *,
        catalog: Catalog,
        profiles: ProfileStore,
        live: LiveCounts,
        config: PipelineConfig,
        models: Callable[[], ModelSet],
        rules: Callable[[], RulesHook],
        experiments: Callable[[], ExperimentHook],
        request_log: RequestLogHook | None = None,
    ) -> None:
        self.catalog = catalog
        self.request_log = request_log
        """Where served requests are logged (None: nowhere, e.g. rule previews)."""
        self.profiles = profiles
        self.config = config
        self._models = models
        self._rules = rules
        self._experiments = experiments
        self.index = CatalogIndex(catalog)
        self.globals = C.GlobalSources(catalog, live, self.index)
        self._override_cache: dict[tuple[tuple[str, str], ...], ModelSet] = {}
        self._override_lock = threading.Lock()
        self.learned: LearnedStage | None = None
        """The learned ranker stage (``ranking.learned``): reranks the blend, logs served lists."""

    def catalog_changed(self, item_ids: Iterable[str]) -> None:
        """Items were upserted or deleted: refresh what ranking precomputed about them."""
        self.index.refresh(item_ids)
        self.globals.views.invalidate()
        if self.learned is not None:
            self.learned.catalog_changed(list(item_ids))

    # ----------------------------------------------------------------- context
    def profile(self, user_id: str | None) -> UserProfile:
        return self.profiles.get(user_id) if user_id else UserProfile(user_id="", consent=False)

    def begin(
        self,
        surface: Surface,
        *,
        user_id: str | None = None,
        request_id: str | None = None,
        query: str | None = None,
        category: tuple[str, ...] | None = None,
        item_id: str | None = None,
    ) -> tuple[RankContext, UserProfile, Assignment | None, ModelSet]:
        """Build the context, read the profile, assign the experiment, pick the model set."""
        profile = self.profile(user_id)
        ctx = RankContext(
            surface=surface,
            user_id=user_id,
            user_attributes=dict(profile.attributes),
            query=query,
            category=category,
            item_id=item_id,
            request_id=request_id,
        )
        # the hook puts only users with an id in experiments
        assignment = self._experiments().assign(ctx)
        if assignment is not None:
            ctx = replace(ctx, experiment=assignment.experiment, variant=assignment.variant)
        if self.request_log is not None and request_id:  # every served request, for attribution
            self.request_log.record(
                request_id=request_id, at=ctx.now, surface=surface, user_id=user_id,
                experiment=ctx.experiment, variant=ctx.variant, query=query, item_id=item_id,
            )
        return ctx, profile, assignment, self._models_for(assignment)

    def _models_for(self, assignment: Assignment | None) -> ModelSet:
        current = self._models()
        if assignment is None or not assignment.model_versions or self.config.models_dir is None:
            return current
        wanted = {**current.versions, **assignment.model_versions}
        key = tuple(sorted(wanted.items()))
        with self._override_lock:
            got = self._override_cache.get(key)
            if got is None:
                got = load_model_set(self.config.models_dir, wanted, previous=current,
                                     derived_dir=self.config.derived_dir)
                if len(self._override_cache) >= 8:
                    self._override_cache.pop(next(iter(self._override_cache)))
                self._override_cache[key] = got
        return got

    # ----------------------------------------------------------------- surfaces
    def recommend(
        self,
        *,
        user_id: str | None,
        history: Sequence[str] = (),
        n: int = 10,
        category: tuple[str, ...] | None = None,
        exclude_purchased: bool = True,
        exclude: Iterable[str] = (),
        request_id: str | None = None,
    ) -> Ranked:
        ctx, profile, assignment, models = self.begin(
            "recommend", user_id=user_id, request_id=request_id, category=category
        )
        excl = set(exclude)
        if exclude_purchased and profile.personalizable:
            excl |= profile.purchased
        depth = max(n * (8 if category else 3), 50)
        lists, strategy = self._personal(profile, history, depth, frozenset(excl), models, category)
        weights = {"cf": 1.0, "history": 1.0}
        if not lists:
            req = C.SourceRequest(profile, depth, models, (), frozenset(excl), category)
            lists = {"trending": self.globals.trending(req)}
            weights = {"trending": 1.0}
            strategy = "trending" if profile.personalizable or not user_id else "non_personalized"
        ranked, ranker = self._rerank(
            blend(lists, weights), excl, category, profile, assignment, ctx
        )
        items = self._finish(ranked, ctx, excl, category, assignment, n, limit=n)
        if len(items) < n:  # top up from trending, then popular, in the same category
            items = self._top_up(items, n, excl, category, models, ctx, assignment)
        return self._served(Ranked(items[:n], ctx, strategy, models.versions, assignment), ranker)

    def feed(
        self,
        *,
        user_id: str | None,
        history: Sequence[str] = (),
        category: tuple[str, ...] | None = None,
        request_id: str | None = None,
        depth: int | None = None,
    ) -> Ranked:
        depth = depth or self.config.feed_depth
        ctx, profile, assignment, models = self.begin(
            "feed", user_id=user_id, request_id=request_id, category=category
        )
        excl = set(profile.purchased) if profile.personalizable else set()
        sw = dict(self.config.slot_weights)
        if assignment is not None and assignment.blend_weights:
            sw.update(assignment.blend_weights)
        lists, strategy = self._personal(profile, history, depth, frozenset(excl), models, category)
        if not lists:
            strategy = "trending" if profile.personalizable or not user_id else "non_personalized"
        req = C.SourceRequest(profile, depth, models, (), frozenset(excl), category)
        weights = {"cf": sw.get("for_you", 1.0), "history": sw.get("for_you", 1.0)}
        for slot, fn in (
            ("trending", self.globals.trending),
            ("new_arrivals", self.globals.new_arrivals),
            ("promoted", self.globals.promoted),
        ):
            w = sw.get(slot, 0.0)
            if w > 0:
                lists[slot] = fn(req, packed=True)
                weights[slot] = w
        ranked, ranker = self._rerank(
            blend(lists, weights), excl, category, profile, assignment, ctx
        )
        items = self._finish(ranked, ctx, excl, category, assignment, depth, limit=depth,
                             lazy=True)
        return self._served(Ranked(items, ctx, strategy, models.versions, assignment), ranker)

    def similar(
        self,
        *,
        item_id: str,
        n: int = 10,
        user_id: str | None = None,
        request_id: str | None = None,
    ) -> Ranked:
        ctx, profile, assignment, models = self.begin(
            "similar", user_id=user_id, request_id=request_id, item_id=item_id
        )
        depth = max(3 * n, 30)
        items: list[ScoredItem] = []
        for m in (C.similar_model(models), models.get("content")):
            if m is None:
                continue
            pairs = C._safe(lambda m=m: m.similar(item_id, depth), f"similar({m.name})")
            if pairs:
                reason = Reason(
                    source="similar" if m.name != "content" else "content",
                    detail="similar to this item",
                    model_version=m.version,
                    related_item_id=item_id,
                )
                items = [
                    ScoredItem(i, s, (reason,), {"similar": s}) for i, s in pairs if i != item_id
                ]
                break
        strategy: Strategy = "similar"
        if not items:  # cold item: the trending items of its category
            anchor = self.catalog.get(item_id)
            cat = anchor.category[:-1] or anchor.category if anchor else None
            req = C.SourceRequest(profile, depth, models, (), frozenset({item_id}), cat or None)
            items = self.globals.trending(req)
            strategy = "trending"
        items = self._finish(items, ctx, {item_id}, None, assignment, n, limit=n)
        return Ranked(items[:n], ctx, strategy, models.versions, assignment)

    def bought_together(
        self,
        *,
        item_id: str,
        n: int = 10,
        user_id: str | None = None,
        request_id: str | None = None,
    ) -> Ranked:
        ctx, _, assignment, models = self.begin(
            "bought_together", user_id=user_id, request_id=request_id, item_id=item_id
        )
        m = models.get("bought_together")
        items: list[ScoredItem] = []
        if m is not None:
            pairs = C._safe(lambda: m.similar(item_id, 3 * n + 10), "bought_together")
            reason = Reason(
                source="bought_together",
                detail="often bought together with this item",
                model_version=m.version,
                related_item_id=item_id,
            )
            items = [
                ScoredItem(i, s, (reason,), {"bought_together": s})
                for i, s in pairs
                if i != item_id
            ]
        items = self._finish(items, ctx, {item_id}, None, assignment, n, diversity=False)
        return Ranked(
            items[:n], ctx, "bought_together" if items else "none", models.versions, assignment
        )

    def trending(
        self, *, n: int = 10, category: tuple[str, ...] | None = None, request_id: str | None = None
    ) -> Ranked:
        ctx, profile, assignment, models = self.begin(
            "trending", request_id=request_id, category=category
        )
        req = C.SourceRequest(profile, max(2 * n, 20), models, (), frozenset(), category)
        items = self._finish(
            self.globals.trending(req), ctx, set(), category, assignment, n, diversity=False
        )
        return Ranked(items[:n], ctx, "trending", models.versions, assignment)

    # ----------------------------------------------------------------- stages
    def _personal(
        self,
        profile: UserProfile,
        history: Sequence[str],
        depth: int,
        excl: frozenset[str],
        models: ModelSet,
        category: tuple[str, ...] | None,
    ) -> tuple[dict[str, Candidates], Strategy]:
        if profile.user_id and not profile.personalizable:
            return {}, "non_personalized"
        recent = tuple(dict.fromkeys([*history, *profile.recent_items]))
        req = C.SourceRequest(profile, depth, models, recent, excl, category)
        lists: dict[str, Candidates] = {}
        cf = C.cf_list(req) if profile.user_id else None
        if cf is not None:
            lists["cf"] = cf
        hist = C.history_list(req)
        if hist is not None:
            lists["history"] = hist
        strategy: Strategy = "personalized" if cf is not None else "history"
        return lists, strategy

    def _rerank(
        self,
        blended: Blended,
        excl: set[str] | frozenset[str],
        category: tuple[str, ...] | None,
        profile: UserProfile,
        assignment: Assignment | None,
        ctx: RankContext,
    ) -> tuple[Blended | list[ScoredItem], str | None]:
        """The learned ranker's order of the blend and its version, or the blend unchanged."""
        if self.learned is None:
            return blended, None
        keep = self.index.keep
        got = self.learned.rerank(blended.order, blended.item, lambda i: keep(i, excl, category),
                                  profile, assignment, ctx.request_id)
        return (blended, None) if got is None else got

    def _served(self, ranked: Ranked, ranker: str | None) -> Ranked:
        """Log the list as served; name the ranker version among the model versions."""
        if self.learned is None:
            return ranked
        self.learned.log(ranked.items, ranked.ctx, ranker)
        return ranked if ranker is None else replace(
            ranked, model_versions=self.learned.versions(ranked.model_versions, ranker))

    def _filter(
        self, items: Iterable[ScoredItem], excl: set[str], category: tuple[str, ...] | None
    ) -> list[ScoredItem]:
        keep = self.index.keep
        return [it for it in items if keep(it.item_id, excl, category)]

    def category_key(self, item_id: str) -> str | None:
        return self.index.group(item_id)

    def _finish(
        self,
        items: list[ScoredItem] | Blended,
        ctx: RankContext,
        excl: set[str] | frozenset[str],
        category: tuple[str, ...] | None,
        assignment: Assignment | None,
        n: int,
        *,
        diversity: bool = True,
        limit: int | None = None,
        lazy: bool = False,
    ) -> list[ScoredItem] | BlendedItems:
        """Filter (active, in stock, not excluded, in the category) → rules → head → diversity.

        Only the head can reach the answer: diversity never moves an item up by more than
        the items it skips, so ``3n + 2·window`` candidates are plenty. When no rule can fire
        for this context, items are built only until the head is full; otherwise every
        candidate is built and the rules see them all. ``limit``: how many items the caller
        shows (diversity stops there; None: the whole head). ``lazy``: a blend that no rule
        can change comes back as :class:`BlendedItems`, each item built when first read."""
        head_size = 3 * n + 2 * self.config.diversity_window
        keep = self.index.keep
        hook = self._rules()
        fires = getattr(hook, "fires", None)
        if isinstance(items, Blended):
            order, build = items.order, items.item
        else:
            order, build = None, None
        if fires is not None and not fires(ctx):
            # nothing can change the order: pick the head by id, build only what is shown;
            # the head is filtered lazily, diversity reads only as far as its picks need
            ids = order if order is not None else [it.item_id for it in items]  # type: ignore[union-attr]
            # the head's groups, read only as far as diversity's picks need; head_pos gets
            # their positions in ids
            head_pos: list[int] = []
            groups = self.index.head(ids, excl, category, head_size, head_pos)
            if diversity:
                picked = [head_pos[p] for p in diversity_positions(
                    groups,
                    max_per_window=self.config.diversity_max_per_category,
                    window=self.config.diversity_window,
                    limit=limit,
                )]
            else:
                for _ in groups:
                    pass
                picked = head_pos
            if lazy and isinstance(items, Blended):
                extra: tuple[Reason, ...] = () if assignment is None else (
                    _experiment_reason(assignment),)
                return BlendedItems(items, [ids[p] for p in picked], extra)
            if build is not None:
                items = [build(ids[p]) for p in picked]
            else:
                items = [items[p] for p in picked]  # type: ignore[index]
        else:
            if order is not None and build is not None:
                items = [build(i) for i in order if keep(i, excl, category)]
            else:
                items = self._filter(items, excl, category)  # type: ignore[arg-type]
            items = hook.apply_rules(items, ctx)
            # rules may add pinned items: they must still be recommendable
            ok = self.index.recommendable
            items = [it for it in items if ok(it.item_id)][:head_size]
            if diversity:
                items = [
                    items[p] for p in self._diversity_order([it.item_id for it in items], limit)
                ]
        if assignment is not None:
            reason = _experiment_reason(assignment)
            # built directly: dataclasses.replace per item cost more than the ranking
            items = [ScoredItem(it.item_id, it.score, (*it.reasons, reason), it.breakdown)
                     for it in items]
        return items

    def _diversity_order(self, ids: Iterable[str], limit: int | None) -> list[int]:
        return diversity_order(
            ids,
            self.index.group,
            max_per_window=self.config.diversity_max_per_category,
            window=self.config.diversity_window,
            limit=limit,
        )

    def _top_up(
        self,
        items: list[ScoredItem],
        n: int,
        excl: set[str],
        category: tuple[str, ...] | None,
        models: ModelSet,
        ctx: RankContext,
        assignment: Assignment | None,
    ) -> list[ScoredItem]:
        have = {it.item_id for it in items} | excl
        req = C.SourceRequest(self.profile(None), 3 * n + 20, models, (), frozenset(have), category)
        extra = self.globals.trending(req)
        if len(extra) < n - len(items):
            extra += self.globals.popular(req)
        extra = [
            it.replace(score=min(it.score, items[-1].score) * 0.5 if items else it.score)
            for it in extra
        ]
        more = self._finish(extra, ctx, have, category, assignment, n, diversity=False)
        seen = {it.item_id for it in items}
        for it in more:
            if it.item_id not in seen:
                items.append(it)
                seen.add(it.item_id)
            if len(items) >= n:
                break
        return items


def _experiment_reason(assignment: Assignment) -> Reason:
    return Reason(source="experiment", detail=f"{assignment.experiment}:{assignment.variant}")
