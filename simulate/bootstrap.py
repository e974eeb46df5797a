"""The ranker step of ``shoprank train`` (which may simulate a generated shop's first
traffic) and ``shoprank simulate``'s traffic (``cli/simulate.py``). Above serving: it runs
the live app in process."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from stores.factory import open_configured

if TYPE_CHECKING:
    from core.settings import Settings
    from data.catalog import Catalog
    from ranking.profile import ProfileStore
    from training.config import TrainConfig
    from training.ranker_data import RankerReport

BOOTSTRAP_SESSIONS = 3000
EXPLORE_SHARE = 0.2
"""Share of the shoppers whose simulated first lists are shown in a random order: the
ranker's offline evaluation reads those (see docs/decisions.md)."""


def _with_key(s: Settings) -> Settings:
    """The settings with an admin key (a random one for this process when none is set)."""
    if s.admin_api_key is not None:
        return s
    from pydantic import SecretStr

    return s.model_copy(update={"admin_api_key": SecretStr(secrets.token_hex(16))})


def has_served_lists(s: Settings) -> bool:
    with open_configured(s) as stores:
        return stores.served.count() > 0


def simulate_traffic(s: Settings, sessions: int, *, versions: Mapping[str, str] | None = None,
                     seed: int = 1, explore_share: float = 0.0,
                     say: Callable[[str], None] | None = None) -> object:
    """``sessions`` storefront sessions of a generated shop's shoppers on the live app."""
    from simulate.loop import traffic
    from simulate.storefront import World, live_api

    world = World.from_shop(s.data_dir)
    every = max(1, sessions // 20)

    def tick(k: int) -> None:
        if say is not None and k % every == 0:
            say(f"simulated sessions {k:,}/{sessions:,}")

    with live_api(_with_key(s), versions) as client:
        return traffic(client, world, sessions, seed=seed, explore_share=explore_share,
                       progress=tick)


def profile_factory(cfg: TrainConfig) -> Callable[[Catalog], ProfileStore]:
    """New profile stores (serving's) with the consent of the config's users file."""
    from data.loaders import load_users
    from ranking.profile import ProfileStore, UserDirectory

    directory = None
    if cfg.data.users is not None and cfg.data.users.exists():
        directory = UserDirectory.from_users(load_users(cfg.data.users).records)

    def make(catalog: Catalog) -> ProfileStore:
        return ProfileStore(catalog=catalog, directory=directory, max_users=10_000_000)

    return make


def bootstrap_size(data_dir: Path) -> int:
    """Simulated sessions for a generated shop's first served lists: 1.5 per shopper, at
    least 200 and at most :data:`BOOTSTRAP_SESSIONS`."""
    import pyarrow.parquet as pq

    users = pq.read_metadata(data_dir / "truth_users.parquet").num_rows
    return int(min(BOOTSTRAP_SESSIONS, max(200, 1.5 * users)))


def train_ranker_step(
    s: Settings, cfg: TrainConfig, *, versions: Mapping[str, str], promote: bool,
    bootstrap_sessions: int | None = None, say: Callable[[str], None] | None = None,
) -> tuple[RankerReport, object | None]:
    """Train the ranker from the served lists; a generated shop without any first gets
    ``bootstrap_sessions`` (default :func:`bootstrap_size`) simulated sessions served by
    ``versions`` (the hand blend)."""
    from training.ranker_job import train_ranker_job

    simulated = None
    if bootstrap_sessions is None and (s.data_dir / "truth_users.parquet").exists():
        bootstrap_sessions = bootstrap_size(s.data_dir)
    if (bootstrap_sessions and not has_served_lists(s)
            and (s.data_dir / "truth_users.parquet").exists()):
        simulated = simulate_traffic(s, bootstrap_sessions, versions=versions,
                                     explore_share=EXPLORE_SHARE, say=say)
    with open_configured(s) as stores:
        rep = train_ranker_job(cfg, s.models_dir, events_dir=s.events_dir, stores=stores,
                               profiles=profile_factory(cfg), promote=promote, progress=say)
    return rep, simulated

