"""What to generate: :class:`ShopSpec`. Every byte of a generated shop is a function of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from data.synthetic.taxonomy import LEAVES


@dataclass(frozen=True)
class ShopSpec:
    """What to generate. Every output byte is a function of this."""

    n_users: int = 2_000
    n_items: int = 1_000
    n_events: int = 100_000
    seed: int = 42
    start: date = date(2026, 9, 1)
    days: int = 90
    trend_days: int = 3

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_events", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.n_items < 2 * len(LEAVES):
            raise ValueError(f"n_items must be at least {2 * len(LEAVES)} (two per leaf category)")
        if not 1 <= self.trend_days <= self.days:
            raise ValueError("trend_days must be between 1 and days")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @property
    def start_dt(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_dt(self) -> datetime:
        return self.start_dt + timedelta(days=self.days)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return d
