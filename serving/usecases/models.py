"""Model administration over the registry: list versions, promote, roll back, reload, and
whether what serves is what the registry calls current (``/v1/models``, ``/readyz``, the
console's models page).

Promote and rollback move the registry's ``current`` pointer (atomic, verified) and then
reload at once, so the answer shows the versions now serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.registry import Registry
from ranking.learned import LearnedStage
from ranking.modelset import NOT_RECOMMENDERS, ModelSet
from serving.errors import NotFound
from serving.schemas import ModelOut, ModelVersionOut


class ServingModels(Protocol):
    """The models this process serves and how it reloads them (``serving.state.Services``)."""

    @property
    def models(self) -> ModelSet: ...

    def reload_models(self, versions: dict[str, str] | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class ModelAdmin:
    registry: Registry
    serving: ServingModels
    learned: LearnedStage | None = None
    """The learned ranker's stage (it loads its model itself)."""

    @property
    def versions(self) -> dict[str, str]:
        """The version of each model this process serves now."""
        return self.serving.models.versions

    def list(self) -> list[ModelOut]:
        """Every model of the registry with its versions, current and serving ones marked."""
        serving = self.versions
        by_name: dict[str, list[ModelVersionOut]] = {}
        for row in self.registry.list():
            by_name.setdefault(row["name"], []).append(
                ModelVersionOut(
                    version=row["version"],
                    current=bool(row["current"]),
                    serving=serving.get(row["name"]) == row["version"],
                    created_at=row.get("created_at") or None,
                    metrics={k: float(v) for k, v in (row.get("metrics") or {}).items()},
                )
            )
        return [
            ModelOut(
                name=name,
                current_version=self.registry.current_version(name),
                serving_version=serving.get(name),
                versions=versions,
            )
            for name, versions in sorted(by_name.items())
        ]

    def _check_name(self, name: str) -> None:
        if name not in self.registry.names():
            raise NotFound(f"name: no model named {name!r} in the registry", field="name")

    def promote(self, name: str, version: str) -> str:
        """Make ``version`` current and serve it; returns the current version."""
        self._check_name(name)
        if version not in self.registry.versions(name):
            raise NotFound(f"version: {name} has no version {version!r}", field="version")
        current = self.registry.promote(name, version)
        self.serving.reload_models()
        return current

    def rollback(self, name: str) -> str:
        """Go back to the previous version and serve it; returns the current version."""
        self._check_name(name)
        current = self.registry.rollback(name)
        self.serving.reload_models()
        return current

    def reload(self) -> bool:
        """Load the registry's current versions now; whether anything changed."""
        return self.serving.reload_models()

    def ready(self) -> bool:
        """Models serve, and every version the registry calls current is the one this process
        serves (a promoted version that failed to load, or a model missing at start-up, makes
        it not ready)."""
        return len(self.serving.models) > 0 and self._promoted_are_serving()

    def _promoted_are_serving(self) -> bool:
        try:
            promoted = self.registry.current_versions()
        except Exception:  # an unreadable registry: what serves is all there is
            return True
        if self.learned is not None and not self.learned.serving_ok():
            return False
        serving = self.versions
        return all(serving.get(name) == version for name, version in promoted.items()
                   if name not in NOT_RECOMMENDERS)
