"""The set of trained models online ranking uses, loaded from the model registry.

A :class:`ModelSet` is immutable: serving builds a new one fully (when a new version is
promoted) and then swaps one reference, so a request in flight keeps the set it started with.

Each model is wrapped in a :class:`LoadedModel` that normalizes the facade of ``recsys.base``
(``recommend(user_id=… | history=…, n, exclude)`` / ``similar(item_id, n)``) into lists of
``(item_id, score)``, so candidate sources never depend on one model's return type.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

log = logging.getLogger(__name__)

Scored = list[tuple[str, float]]


class ModelFacade(Protocol):
    """What ``recsys.base`` models offer (id-based)."""

    def recommend(self, *args: object, **kwargs: object) -> object: ...

    def similar(self, *args: object, **kwargs: object) -> object: ...


def _as_pairs(result: object) -> Scored:
    """Accept ``[(id, score)]``, ``[ScoredItem]``, ``(ids, scores)`` or objects with
    ``item_id``/``score`` attributes."""
    if result is None:
        return []
    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result[0], str):
        ids, scores = result
        return [(str(i), float(s)) for i, s in zip(ids, scores, strict=False)]
    out: Scored = []
    for r in result:  # type: ignore[attr-defined]
        if isinstance(r, tuple):
            out.append((str(r[0]), float(r[1])))
        else:
            out.append((str(r.item_id), float(r.score)))
    return out


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One model version, speaking item and user ids (wraps ``recsys.models.ModelHandle``)."""

    name: str
    version: str
    model: ModelFacade

    def knows_user(self, user_id: str) -> bool:
        fn = getattr(self.model, "known_user", None)
        return bool(fn(user_id)) if fn is not None else False

    def recommend_user(
        self,
        user_id: str,
        n: int,
        exclude: Iterable[str] = (),
        *,
        history: Sequence[str] = (),
        category: Sequence[str] | None = None,
        filter_seen: bool = False,
    ) -> Scored:
        """The user's top items. Seen items stay eligible (shops re-show what was viewed);
        callers exclude what must not come back (e.g. purchases)."""
        return _as_pairs(
            self.model.recommend(
                user_id=user_id,
                history=list(history),
                n=n,
                exclude=set(exclude),
                category=category,
                filter_seen=filter_seen,
            )
        )

    def recommend_history(
        self,
        history: Sequence[str],
        n: int,
        exclude: Iterable[str] = (),
        *,
        category: Sequence[str] | None = None,
    ) -> Scored:
        return _as_pairs(
            self.model.recommend(history=list(history), n=n, exclude=set(exclude), category=category)
        )

    def similar(self, item_id: str, n: int, exclude: Iterable[str] = ()) -> Scored:
        return _as_pairs(self.model.similar(item_id, n=n, exclude=set(exclude)))

    def score_items(self, item_ids: Sequence[str], user_id: str | None, history: Sequence[str]) -> dict[str, float]:
        fn = getattr(self.model, "score_items", None)
        if fn is None:
            return {}
        return {str(k): float(v) for k, v in fn(list(item_ids), user_id=user_id, history=list(history)).items()}


@dataclass(frozen=True, slots=True)
class ModelSet:
    """Model name → loaded model; ``signature`` identifies the versions it was built from."""

    models: Mapping[str, LoadedModel] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> LoadedModel | None:
        return self.models.get(name)

    def first(self, names: Iterable[str]) -> LoadedModel | None:
        for n in names:
            m = self.models.get(n)
            if m is not None:
                return m
        return None

    @property
    def versions(self) -> dict[str, str]:
        return {name: m.version for name, m in self.models.items()}

    def __len__(self) -> int:
        return len(self.models)


def current_versions(models_dir: Path) -> dict[str, str]:
    """Model name → current version in the registry (empty when there is none yet)."""
    try:
        from training import registry
    except ImportError:
        return {}
    if not models_dir.exists():
        return {}
    return dict(registry.current_versions(models_dir))  # type: ignore[attr-defined]


def load_model_set(
    models_dir: Path,
    versions: Mapping[str, str] | None = None,
    *,
    previous: ModelSet | None = None,
) -> ModelSet:
    """Load every model's current version (or the given ``versions``).

    Models whose version did not change are reused from ``previous`` instead of being read
    again, so a promotion of one model costs only that model's load.
    """
    wanted = dict(versions) if versions is not None else current_versions(models_dir)
    if not wanted:
        return ModelSet()
    from training import registry

    loaded: dict[str, LoadedModel] = {}
    for name, version in sorted(wanted.items()):
        old = previous.get(name) if previous is not None else None
        if old is not None and old.version == version:
            loaded[name] = old
            continue
        try:
            model = registry.load(models_dir, name, version)  # type: ignore[attr-defined]
        except Exception:  # a broken artifact must not take serving down
            log.exception("cannot load model %s version %s; keeping the previous one", name, version)
            if old is not None:
                loaded[name] = old
            continue
        loaded[name] = LoadedModel(name=name, version=version, model=model)
        log.info("loaded model %s version %s", name, version)
    return ModelSet(MappingProxyType(loaded))
