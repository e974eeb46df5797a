"""The set of trained models online ranking uses, loaded from the model registry.

A :class:`ModelSet` is immutable: serving builds a new one fully (when a new version is
promoted) and then swaps one reference, so a request in flight keeps the set it started with.

Each model is an id-level :class:`models.ModelHandle` built for serving
(:meth:`~models.ModelHandle.for_serving`): loaded lean (:class:`models.storage.MappedReader`:
arrays memory-mapped, vocabularies shared, and only the model that serves the ``cf`` source
keeps its user side), with the model's own serving index for the hot calls.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from models import ModelHandle, model_class
from models.base import read_model_meta
from models.registry import Registry
from models.registry import current_versions as registry_versions
from models.storage import MappedReader

log = logging.getLogger(__name__)

USER_SIDE_MODELS: tuple[str, ...] = ("als", "ease", "bpr", "item_knn")
"""Registry names that may serve the ``cf`` source, in order of preference
(``ranking.candidates.CF_MODELS``): the first one present keeps its user side when loaded."""
NOT_RECOMMENDERS = frozenset({"ranker"})
"""Registry names that are not candidate models (the learned ranker: ``ranking.learned``)."""
KEEP_DERIVED_VERSIONS = 3
"""Versions per model whose derived arrays stay on disk (the one loaded among them)."""


@dataclass(frozen=True, slots=True)
class ModelSet:
    """Model name → loaded model."""

    models: Mapping[str, ModelHandle] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> ModelHandle | None:
        return self.models.get(name)

    def first(self, names: Iterable[str]) -> ModelHandle | None:
        for n in names:
            m = self.models.get(n)
            if m is not None:
                return m
        return None

    @property
    def versions(self) -> dict[str, str]:
        return {name: m.version or "" for name, m in self.models.items()}

    def __len__(self) -> int:
        return len(self.models)


def current_versions(models_dir: Path) -> dict[str, str]:
    """Model name → current version in the registry (empty when there is none yet)."""
    if not models_dir.exists():
        return {}
    versions = registry_versions(models_dir)
    return {k: v for k, v in versions.items() if k not in NOT_RECOMMENDERS}


def load_serving_model(
    folder: Path, name: str, version: str, *, with_users: bool, cache: Path | None = None
) -> ModelHandle:
    """A saved model as serving uses it (see the module doc). ``cache``: this version's folder
    of derived arrays (:func:`models.arrays.shared_array`)."""
    meta = read_model_meta(folder)
    reader = MappedReader(with_users=with_users, cache=cache)
    model = model_class(meta["algorithm"]).load(folder, reader=reader)
    return ModelHandle.for_serving(model, name=name, version=version, cache=cache)


def load_model_set(
    models_dir: Path,
    versions: Mapping[str, str] | None = None,
    *,
    previous: ModelSet | None = None,
    derived_dir: Path | None = None,
) -> ModelSet:
    """Load every model's current version (or the given ``versions``).

    Models whose version did not change are reused from ``previous`` instead of being read
    again, so a promotion of one model costs only that model's load. ``derived_dir``: where
    the serving copies derived from a model (its factors sorted by norm and by category) are
    kept as files every worker maps (:func:`models.arrays.shared_array`); None: each process
    builds its own.
    """
    wanted = dict(versions) if versions is not None else current_versions(models_dir)
    wanted = {k: v for k, v in wanted.items() if k not in NOT_RECOMMENDERS}
    if not wanted:
        return ModelSet()
    reg = Registry(models_dir)
    user_side = next((n for n in USER_SIDE_MODELS if n in wanted), None)
    loaded: dict[str, ModelHandle] = {}
    for name, version in sorted(wanted.items()):
        old = previous.get(name) if previous is not None else None
        if old is not None and old.version == version and (name != user_side or old.knows_users):
            loaded[name] = old
            continue
        cache = derived_dir / name / version if derived_dir is not None else None
        try:
            reg.verify(name, version)
            loaded[name] = load_serving_model(
                reg.path(name, version), name, version, with_users=name == user_side, cache=cache
            )
        except Exception:  # a broken artifact must not take serving down
            log.exception(
                "cannot load model %s version %s; keeping the previous one", name, version
            )
            if old is not None:
                loaded[name] = old
            continue
        if cache is not None and cache.is_dir():
            os.utime(cache)  # in use: the most recent
            _forget_old_versions(cache.parent, keep=KEEP_DERIVED_VERSIONS)
        log.info(
            "loaded model %s version %s%s",
            name,
            version,
            " (with users)" if name == user_side else "",
        )
    return ModelSet(MappingProxyType(loaded))


def _forget_old_versions(folder: Path, keep: int) -> None:
    """Delete the derived arrays of all but the ``keep`` most recently made versions of a
    model (a process still serving one keeps its mapping; a later load builds it again)."""
    try:
        versions = sorted(
            (p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
    except OSError:
        return
    for old in versions[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
