"""One configuration object for every command and the API.

Values come, highest priority first, from: keyword arguments, environment variables
prefixed ``SHOPRANK_`` (nested with ``__``), a TOML file (``SHOPRANK_CONFIG`` or
``./shoprank.toml``), then the defaults below.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_PLACEHOLDER_KEYS = {"changeme", "change-me", "secret", "password", "admin", "test"}


def _toml_path() -> Path:
    return Path(os.environ.get("SHOPRANK_CONFIG", "shoprank.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHOPRANK_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    home: Path = Path("var")
    """Root folder for generated data, the event log, the model registry and the embedded index."""

    # search
    search_backend: Literal["auto", "embedded", "opensearch"] = "auto"
    opensearch_url: str | None = None
    opensearch_index: str = "shoprank-items"
    synonyms_file: Path | None = None

    # stores (see stores.factory): empty = embedded under `home`
    database_url: str = ""
    """Durable shared state (events, users, catalog, rules, experiments, request log):
    ``postgresql://user@host:port/db``. Set it (and ``redis_url``) on every replica."""
    redis_url: str = ""
    """Hot shared state (recent history, purchases, live counts, feed pages):
    ``redis://host:port/db``."""
    redis_prefix: str = "shoprank:"
    """Prefix of every Redis key (several shops may share one Redis)."""
    model_registry: Path | None = None
    """The model registry folder (default ``home/models``); replicas share one."""

    # serving
    host: str = "127.0.0.1"
    port: int = 8000
    admin_api_key: SecretStr | None = None
    storefront_api_key: SecretStr | None = None
    model_poll_seconds: float = 2.0
    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    """How long the server keeps an idle keep-alive connection open. Longer than a load
    balancer's or client pool's idle time (HAProxy's and nginx's defaults are shorter), so the
    client closes first: a server closing as the client reuses the connection fails that
    request (uvicorn's own default is 5 s)."""
    keep_alive_requests: int = Field(default=1000, ge=0, le=1_000_000)
    """Requests a keep-alive connection serves before the response says ``Connection: close``
    (nginx's ``keepalive_requests``, and its default); 0: no limit. The client reconnects,
    and the worker that is idle at that moment accepts, so a long-lived connection does not
    stay for good on the worker a burst of connects put it on."""
    pin_workers: bool = False
    """Pin each worker of ``shoprank serve --workers N`` to a CPU of its own
    (``serving/cpus.py``): for a box that runs nothing else. ``N`` may not exceed the CPUs."""
    malloc_arenas: int = Field(default=2, ge=0, le=64)
    """malloc arenas (glibc) an API process may create; 0: the C library's default (8 per
    core). Two keep a worker's memory flat under a steady load (``core/memory.py``)."""
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024)
    """Largest request body (8 MiB): a larger one is refused with 413 before it is read.
    Batches are bounded too: 1,000 events or items per request."""
    search_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    """Budget for one call to OpenSearch: past it the request answers 503 instead of waiting."""
    search_write_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Budget for one write to OpenSearch (a bulk chunk of up to 1,000 items, a refresh, an
    index or alias change): past it the write fails and a catalog change is queued for retry
    (``serving.index_retry``) instead of holding the request."""
    # online ranking (serving/ranking): weights and limits the API uses
    feed_slot_weights: dict[str, float] = {
        "for_you": 1.0, "trending": 0.3, "new_arrivals": 0.2, "promoted": 0.3,
    }
    """Relative weight of each named feed slot (for_you, trending, new_arrivals, promoted)."""
    diversity_max_per_category: int = 3
    diversity_window: int = 5
    """At most `diversity_max_per_category` items of one category in any `diversity_window`
    in a row."""
    search_personalization_weight: float = 0.3
    search_personalization_top_n: int = 50
    history_size: int = 50
    """Recent interactions kept per user for real-time signals."""
    user_cache_size: int = Field(default=4_096, ge=0, le=10_000_000)
    """Users' consent and attributes each API process keeps (about 160 bytes a user, least
    recently used dropped, invalidated by the change feed). A miss reads the user store: tens
    of µs from SQLite, about 0.2 ms of CPU from PostgreSQL (client and server). Over shared
    stores, size it to the shoppers active within a few minutes."""
    bootstrap_history: int = Field(default=20, ge=0)
    """History events per user the first start imports from the shop's files and the stored
    events (the last ones; purchases are imported whole). Past browsing is not recent: a
    shopper's history fills up to ``history_size`` with what they do while served."""
    feed_cache_size: int = 20_000
    feed_cache_ttl_seconds: float = 900.0
    """Ranked feeds kept per request_id so page 2 never repeats page 1 (oldest dropped first;
    ≈ 8 KB each in the feed page store, which every process reads)."""

    # retraining (`shoprank retrain`, `shoprank scheduler`; see training.retrain)
    retrain_schedule_minutes: float = 0.0
    """`shoprank scheduler` retrains this often (0: no schedule). Runs are counted from the
    last one in the registry's history, so a restarted or replacement scheduler keeps time."""
    retrain_metric: str = "ndcg@10"
    retrain_tolerance: float = 0.01
    """A candidate is promoted unless the metric drops by more than this share (0.01 = 1 %)."""
    retrain_models: list[str] = []
    """Registry names to retrain (empty: every model of the training config)."""
    retrain_config: Path | None = None
    """Training config (TOML) for retraining; default: the shop in ``data_dir``."""

    # shopper segments (`shoprank segments`; see analytics.segments)
    segment_new_days: float = 30.0
    """A shopper whose first order is this recent is ``new``."""
    segment_at_risk_days: float = 60.0
    """No order for this long: ``at_risk`` (before: ``active``)."""
    segment_churned_days: float = 120.0
    """No order for this long: ``churned``."""

    # logging
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )

    @field_validator("admin_api_key", "storefront_api_key")
    @classmethod
    def _no_placeholder_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and v.get_secret_value().strip().lower() in _PLACEHOLDER_KEYS:
            raise ValueError("is a placeholder; generate one with `openssl rand -hex 24`")
        return v

    # Derived locations: one place decides the layout under `home`.
    @cached_property
    def data_dir(self) -> Path:
        return self.home / "data"

    @cached_property
    def events_dir(self) -> Path:
        return self.home / "events"

    @cached_property
    def models_dir(self) -> Path:
        return self.model_registry or self.home / "models"

    @cached_property
    def index_dir(self) -> Path:
        return self.home / "index"

    @cached_property
    def state_dir(self) -> Path:
        """Rules, experiments and other small durable state (SQLite)."""
        return self.home / "state"

    @cached_property
    def derived_dir(self) -> Path:
        """Arrays serving derives from model versions, shared by every worker (rebuildable)."""
        return self.state_dir / "derived"

    @property
    def effective_search_backend(self) -> Literal["embedded", "opensearch"]:
        if self.search_backend == "auto":
            return "opensearch" if self.opensearch_url else "embedded"
        return self.search_backend


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
