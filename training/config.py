"""The training configuration file (TOML), validated with pydantic.

See ``training/sample_train.toml`` for a commented example. Relative paths are resolved
against the folder of the config file. Without a file, :func:`default_config` reads the
shop in ``settings.data_dir`` plus the event log in ``settings.events_dir``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import describe
from data.models import EVENT_TYPES
from training.errors import ConfigError

DEFAULT_MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("als", "als", {}),
    ("item_knn", "item_knn", {}),
    ("popularity", "popularity", {}),
    ("trending", "trending", {}),
    ("new_arrivals", "new_arrivals", {}),
    ("bought_together", "bought_together", {}),
    ("content", "content", {}),
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Section):
    format: Literal["shoprank", "movielens", "retailrocket"] = "shoprank"
    """``shoprank``: files in the event schema; others go through ``data.formats`` adapters."""
    events: list[Path] = Field(default_factory=list)
    """Event files (.parquet, .jsonl, .csv, or the adapter's files)."""
    event_log: bool = True
    """Also read the durable event log (settings.events_dir) when it exists."""
    items: Path | None = None
    users: Path | None = None
    since: str | None = None
    until: str | None = None
    truth: Path | None = None
    """Synthetic shops only: truth.json, to report bundle recovery."""


class MatrixSection(_Section):
    weights: dict[str, float] | None = None
    half_life_days: float | None = 30.0
    min_rating: float = 0.0
    refunds_cancel_purchases: bool = True
    transform: Literal["none", "log1p", "binary"] = "none"
    min_user_items: int = 1
    min_item_users: int = 1

    @field_validator("weights")
    @classmethod
    def _known_types(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            bad = set(v) - set(EVENT_TYPES)
            if bad:
                raise ValueError(f"unknown event types {sorted(bad)}")
        return v


class EvaluationSection(_Section):
    split: Literal["temporal", "leave_last_n", "random"] = "temporal"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    leave_n: int = Field(1, ge=1)
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])
    max_users: int | None = 20_000
    """Evaluate on a random sample of this many test users (None: all)."""
    relevant_types: list[str] | None = None
    """Event types that count as relevant in the test period (default: every weighted type)."""
    seed: int = 0


class TrainSection(_Section):
    holdout_metrics: bool = True
    """Before the final fit on all data, fit on a temporal split and record its metrics
    in the manifest (doubles the fitting time)."""
    promote: bool = False


class ModelEntry(_Section):
    name: str
    algorithm: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    data: DataSection = Field(default_factory=DataSection)
    matrix: MatrixSection = Field(default_factory=MatrixSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    train: TrainSection = Field(default_factory=TrainSection)
    models: list[ModelEntry] = Field(
        default_factory=lambda: [ModelEntry(name=n, algorithm=a, params=p)
                                 for n, a, p in DEFAULT_MODELS]
    )
    tune: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    """Search spaces per algorithm, e.g. ``[tune.als] factors = [32, 64]``."""

    def model_specs(self) -> list[Any]:
        from models import model_class
        from models.errors import ModelLoadError
        from training.evaluate import ModelSpec

        specs = []
        seen = set()
        for m in self.models:
            if m.name in seen:
                raise ConfigError(f"models: the name {m.name!r} is used twice")
            seen.add(m.name)
            try:
                cls = model_class(m.algorithm)
            except ModelLoadError as exc:
                raise ConfigError(f"models.{m.name}.algorithm: {exc}") from None
            try:
                cls.Params(**m.params)
            except TypeError as exc:
                raise ConfigError(f"models.{m.name}.params: {exc}") from None
            specs.append(ModelSpec(m.name, m.algorithm, dict(m.params)))
        return specs


def _resolve(cfg: TrainConfig, base: Path) -> TrainConfig:
    d = cfg.data
    fix = (lambda p: p if p is None or p.is_absolute() else base / p)  # noqa: E731
    d.events = [fix(p) for p in d.events]  # type: ignore[misc]
    d.items, d.users, d.truth = fix(d.items), fix(d.users), fix(d.truth)
    return cfg


def load_config(path: Path | str) -> TrainConfig:
    """Read and validate a training config; errors name the offending field."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"training config not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{p}: {describe(exc)}") from None
    return _resolve(cfg, p.parent.resolve())


def default_config(data_dir: Path) -> TrainConfig:
    """The shop in ``data_dir`` (events.parquet or events.jsonl, items, users, truth)."""
    d = DataSection()
    for name in ("events.parquet", "events.jsonl"):
        if (data_dir / name).is_file():
            d.events = [data_dir / name]
            break
    for attr, name in (("items", "items.jsonl"), ("users", "users.jsonl"), ("truth", "truth.json")):
        if (data_dir / name).is_file():
            setattr(d, attr, data_dir / name)
    return TrainConfig(data=d)
