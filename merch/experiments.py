"""A/B experiments: variants with traffic shares, deterministic assignment, overrides.

Assignment: a user's bucket is ``sha256(experiment_id + "\\x1f" + user_id)`` read as a
number in [0, 1); variants own consecutive ranges of that interval in the order they are
listed, sized by their shares. The same user always gets the same variant while the shares
are unchanged; changing shares only moves users near the changed boundaries. Requests without
a user id are not in any experiment.

At most one experiment runs per surface, so a request has at most one (experiment, variant);
the variant may override the model version, the blend weights, the search personalization
weight and the rule set.

Attribution: the ranking pipeline logs every served request — request id, time, surface,
user, experiment, variant — in its request log (``Pipeline.request_log``, a
:class:`merch.request_log.RequestLog`; assignment itself records nothing). Reports attribute
an event to a variant by its own ``context.experiment``/``variant`` if the storefront echoed
them, else by its ``request_id`` looked up in that log, else by its user's assignment (for
purchases made away from a list).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import StorageUnavailableError
from data.models import stored_records, valid_text_inside
from merch.errors import ExperimentError, ExperimentNotFoundError
from ranking.hooks import Assignment
from ranking.types import RankContext, Surface

log = logging.getLogger(__name__)


@runtime_checkable
class ExperimentStore(Protocol):
    def list(self) -> list[Experiment]: ...

    def get(self, experiment_id: str) -> Experiment: ...

    def put(self, experiment: Experiment, *, create: bool = False) -> None: ...

    def delete(self, experiment_id: str) -> None: ...

    def revision(self) -> int: ...


ExperimentStatus = Literal["draft", "running", "stopped"]
EXPERIMENT_SURFACES: tuple[Surface, ...] = (
    "feed",
    "recommend",
    "search",
    "similar",
    "bought_together",
    "trending",
)


# ---------------------------------------------------------------------------- data
@dataclass(frozen=True, slots=True)
class VariantOverrides:
    model_versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    blend_weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    personalization_weight: float | None = None
    rule_set: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    share: float
    overrides: VariantOverrides = field(default_factory=VariantOverrides)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    variants: tuple[Variant, ...]
    control: str
    surfaces: tuple[Surface, ...] = ()
    """Surfaces the experiment runs on; empty = all."""
    status: ExperimentStatus = "draft"
    description: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    audience: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """User attributes a user must have to take part (each listed attribute one of its
    values, e.g. ``lifecycle`` in ``at_risk``); empty = everyone. Others get no variant."""

    def covers(self, surface: str) -> bool:
        return not self.surfaces or surface in self.surfaces

    def targets(self, attributes: Mapping[str, object]) -> bool:
        return all(str(attributes.get(k)) in allowed for k, allowed in self.audience)

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def variant_for(self, user_id: str) -> Variant:
        return assign_variant(self, user_id)


def bucket(experiment_id: str, user_id: str) -> float:
    """The user's stable position in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(experiment: Experiment, user_id: str) -> Variant:
    total = sum(v.share for v in experiment.variants)
    point = bucket(experiment.experiment_id, user_id) * total
    acc = 0.0
    for v in experiment.variants:
        acc += v.share
        if point < acc:
            return v
    return experiment.variants[-1]


# ---------------------------------------------------------------------------- JSON form
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # free text anywhere in a spec (names, query texts, audiences): valid Unicode, no NUL
    _valid_text = field_validator("*")(valid_text_inside)


class OverridesSpec(_Spec):
    model_versions: dict[str, str] = Field(
        default_factory=dict, description="Model name → version, e.g. {'als': '20250101-1200'}."
    )
    blend_weights: dict[str, float] = Field(
        default_factory=dict, description="Candidate source / feed slot → weight."
    )
    personalization_weight: float | None = Field(default=None, ge=0, le=10, allow_inf_nan=False)
    rule_set: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")

    @field_validator("blend_weights")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in v.items() if not (w >= 0 and w < float("inf"))]
        if bad:
            raise ValueError(f"weights must be finite and >= 0 (bad: {', '.join(bad)})")
        return v


class VariantSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    share: float = Field(gt=0, le=100, allow_inf_nan=False, description="Relative traffic share.")
    overrides: OverridesSpec = Field(default_factory=OverridesSpec)
    description: str = Field(default="", max_length=500)


class ExperimentSpec(_Spec):
    """An experiment as sent to the API. Example::

    {"id": "blend-test", "name": "More CF in the feed", "surfaces": ["feed"],
     "variants": [{"name": "control", "share": 50},
                  {"name": "cf-heavy", "share": 50,
                   "overrides": {"blend_weights": {"cf": 0.9, "trending": 0.1}}}]}
    """

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    surfaces: list[Surface] = Field(default_factory=list, description="Empty = every surface.")
    control: str | None = Field(default=None, description="Defaults to the first variant.")
    variants: list[VariantSpec] = Field(min_length=2, max_length=10)
    audience: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Only users with these attributes take part, e.g. "
        '{"lifecycle": ["at_risk", "churned"]} (segments from `shoprank segments`).')

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: names must be unique")
        if self.control is not None and self.control not in names:
            raise ValueError(
                f"control: {self.control!r} is not one of the variants ({', '.join(names)})"
            )
        return self

    def to_experiment(self, experiment_id: str | None = None) -> Experiment:
        eid = experiment_id or self.id or ("exp-" + secrets.token_hex(4))
        return Experiment(
            experiment_id=eid,
            name=self.name,
            description=self.description,
            surfaces=tuple(dict.fromkeys(self.surfaces)),
            control=self.control or self.variants[0].name,
            audience=tuple((k, (v,) if isinstance(v, str) else tuple(v))
                           for k, v in sorted(self.audience.items())),
            variants=tuple(
                Variant(
                    name=v.name,
                    share=v.share,
                    description=v.description,
                    overrides=VariantOverrides(
                        model_versions=MappingProxyType(dict(v.overrides.model_versions)),
                        blend_weights=MappingProxyType(dict(v.overrides.blend_weights)),
                        personalization_weight=v.overrides.personalization_weight,
                        rule_set=v.overrides.rule_set,
                    ),
                )
                for v in self.variants
            ),
        )

    @classmethod
    @stored_records()  # an experiment held passed the checks when it came in
    def of(cls, e: Experiment) -> ExperimentSpec:
        return cls(
            id=e.experiment_id,
            name=e.name,
            description=e.description,
            surfaces=list(e.surfaces),
            control=e.control,
            audience={k: list(v) for k, v in e.audience},
            variants=[
                VariantSpec(
                    name=v.name,
                    share=v.share,
                    description=v.description,
                    overrides=OverridesSpec(
                        model_versions=dict(v.overrides.model_versions),
                        blend_weights=dict(v.overrides.blend_weights),
                        personalization_weight=v.overrides.personalization_weight,
                        rule_set=v.overrides.rule_set,
                    ),
                )
                for v in e.variants
            ],
        )


def experiment_as_dict(e: Experiment) -> dict[str, object]:
    total = sum(v.share for v in e.variants)
    d = ExperimentSpec.of(e).model_dump(mode="json")
    d.update(
        status=e.status,
        created_at=e.created_at.isoformat() if e.created_at else None,
        started_at=e.started_at.isoformat() if e.started_at else None,
        stopped_at=e.stopped_at.isoformat() if e.stopped_at else None,
        traffic={v.name: v.share / total for v in e.variants},
    )
    return d


# ---------------------------------------------------------------------------- service
_ID_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class ExperimentService:
    """Experiments' life cycle and the pipeline's experiment hook (``assign``)."""

    def __init__(
        self,
        store: ExperimentStore,
        *,
        reload_check_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self._reload_check = reload_check_seconds
        self._lock = threading.Lock()
        self._running: list[Experiment] = []
        self._by_id: dict[str, Experiment] = {}
        self._revision = -1
        self._checked_at = 0.0

    # ------------------------------------------------------------------ cache
    def _refresh(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._revision >= 0 and now - self._checked_at < self._reload_check:
                return
            self._checked_at = now
            try:
                rev = self.store.revision()
                if rev != self._revision:
                    all_ = self.store.list()
                    self._by_id = {e.experiment_id: e for e in all_}
                    self._running = [e for e in all_ if e.status == "running"]
                    self._revision = rev
            except StorageUnavailableError as exc:
                if self._revision < 0:
                    raise  # nothing read yet: what needs experiments answers 503
                log.warning("experiments store unavailable (%s): keeping those read last", exc)

    def _changed(self) -> None:
        self._checked_at = 0.0
        self._revision = -1

    def invalidate(self) -> None:
        """Experiments changed in another process: the next read checks the revision."""
        with self._lock:
            self._checked_at = float("-inf")

    # ------------------------------------------------------------------ life cycle
    def list(self) -> list[Experiment]:
        return self.store.list()

    def get(self, experiment_id: str) -> Experiment:
        return self.store.get(experiment_id)

    def create(self, spec: ExperimentSpec) -> Experiment:
        e = spec.to_experiment()
        e = Experiment(**{**_fields(e), "created_at": datetime.now(UTC)})
        self.store.put(e, create=True)
        self._changed()
        return e

    def update(self, experiment_id: str, spec: ExperimentSpec) -> Experiment:
        """Change a draft, or the shares and overrides of a running experiment (same variants)."""
        old = self.store.get(experiment_id)
        new = spec.to_experiment(experiment_id)
        if old.status == "stopped":
            raise ExperimentError(f"experiment {experiment_id!r} is stopped; create a new one")
        if old.status == "running" and [v.name for v in new.variants] != [
            v.name for v in old.variants
        ]:
            raise ExperimentError(
                "variants: a running experiment keeps its variants (names and order); "
                "stop it and create a new one to change them"
            )
        e = Experiment(
            **{
                **_fields(new),
                "status": old.status,
                "created_at": old.created_at,
                "started_at": old.started_at,
                "stopped_at": old.stopped_at,
            }
        )
        if e.status == "running":
            self._check_overlap(e)
        self.store.put(e)
        self._changed()
        return e

    def start(self, experiment_id: str, *, now: datetime | None = None) -> Experiment:
        e = self.store.get(experiment_id)
        if e.status == "running":
            return e
        if e.status == "stopped":
            raise ExperimentError(
                f"experiment {experiment_id!r} was stopped; results would mix two periods — "
                "create a new experiment instead"
            )
        self._check_overlap(e)
        e = Experiment(
            **{**_fields(e), "status": "running", "started_at": now or datetime.now(UTC)}
        )
        self.store.put(e)
        self._changed()
        log.info("experiment %s started", experiment_id)
        return e

    def stop(self, experiment_id: str, *, now: datetime | None = None) -> Experiment:
        e = self.store.get(experiment_id)
        if e.status != "running":
            raise ExperimentError(f"experiment {experiment_id!r} is {e.status}, not running")
        e = Experiment(
            **{**_fields(e), "status": "stopped", "stopped_at": now or datetime.now(UTC)}
        )
        self.store.put(e)
        self._changed()
        log.info("experiment %s stopped", experiment_id)
        return e

    def delete(self, experiment_id: str) -> None:
        e = self.store.get(experiment_id)
        if e.status == "running":
            raise ExperimentError(f"experiment {experiment_id!r} is running; stop it first")
        self.store.delete(experiment_id)
        self._changed()

    def _check_overlap(self, e: Experiment) -> None:
        for other in self.store.list():
            if other.experiment_id == e.experiment_id or other.status != "running":
                continue
            a = set(e.surfaces or EXPERIMENT_SURFACES)
            b = set(other.surfaces or EXPERIMENT_SURFACES)
            if a & b:
                raise ExperimentError(
                    f"experiment {other.experiment_id!r} already runs on "
                    f"{', '.join(sorted(a & b))}; stop it first or pick other surfaces"
                )

    # ------------------------------------------------------------------ hooks
    def running_for(self, surface: str) -> Experiment | None:
        self._refresh()
        return next((e for e in self._running if e.covers(surface)), None)

    def assignment(self, ctx: RankContext) -> Assignment | None:
        """The request's variant and its overrides, recording nothing (previews use this)."""
        exp = self.running_for(ctx.surface) if ctx.user_id else None
        if exp is not None and not exp.targets(ctx.user_attributes):
            exp = None  # outside the experiment's audience
        variant = exp.variant_for(ctx.user_id) if exp is not None and ctx.user_id else None
        if exp is None or variant is None:
            return None
        o = variant.overrides
        return Assignment(
            experiment=exp.experiment_id,
            variant=variant.name,
            model_versions=o.model_versions,
            blend_weights=o.blend_weights,
            personalization_weight=o.personalization_weight,
            rule_set=o.rule_set,
        )

    def assign(self, ctx: RankContext) -> Assignment | None:
        """The pipeline's experiment hook (the pipeline logs the served request itself)."""
        return self.assignment(ctx)

    def rule_set_for(self, ctx: RankContext) -> str | None:
        """The rule set a request's variant selects (for ``RuleService(rule_set_for=…)``)."""
        if not ctx.experiment or not ctx.variant:
            return None
        self._refresh()
        e = self._by_id.get(ctx.experiment)
        v = e.variant(ctx.variant) if e is not None else None
        return v.overrides.rule_set if v is not None else None


def _fields(e: Experiment) -> dict[str, object]:
    return {f: getattr(e, f) for f in Experiment.__slots__}  # type: ignore[attr-defined]


__all__ = [
    "Experiment",
    "ExperimentNotFoundError",
    "ExperimentService",
    "ExperimentSpec",
    "Variant",
    "VariantOverrides",
    "assign_variant",
    "bucket",
]
