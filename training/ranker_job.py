"""``shoprank train``'s ranker step: served lists + events → a registered LambdaRank version."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from data.catalog import Catalog
from data.loaders import read_events_table
from models.errors import TrainingDataError
from models.lambdarank import RANKER_NAME
from models.ranker_features import ShopperStore
from models.registry import Registry
from stores.factory import Stores
from stores.served_lists import read_served
from training.config import TrainConfig
from training.ranker_data import RankerReport, train_ranker

log = logging.getLogger(__name__)

RANKER_COLUMNS = ("user_id", "item_id", "type", "timestamp", "value", "request_id")


def load_events(cfg: TrainConfig, events_dir: Path | None,
                stores: Stores | None = None) -> pa.Table:
    """The shop's event files and the event store (or the event log folder ``events_dir``),
    the columns the ranker reads."""
    tables = []
    if cfg.data.events:
        tables.append(read_events_table(cfg.data.events, columns=RANKER_COLUMNS))
    if cfg.data.event_log and stores is not None:
        tables.append(stores.events.read_table().select(list(RANKER_COLUMNS)))
    elif cfg.data.event_log and events_dir is not None and any(events_dir.glob("*.jsonl")):
        from data.eventlog import EventLog  # only when there is a log to read

        elog = EventLog(events_dir)
        try:
            tables.append(elog.read_table().select(list(RANKER_COLUMNS)))
        finally:
            elog.close()
    tables = [t for t in tables if t.num_rows]
    if not tables:
        raise TrainingDataError("no events found for the ranker")
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def train_ranker_job(
    cfg: TrainConfig,
    models_dir: Path,
    *,
    events_dir: Path | None,
    stores: Stores,
    profiles: Callable[[Catalog], ShopperStore],
    promote: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RankerReport:
    """Train the ranker on every logged list, register it (offline metrics in the manifest).
    ``profiles``: a new shopper store over the catalog, with the users' consent (the caller
    builds ``ranking.profile.ProfileStore``: training does not import online ranking)."""
    served = read_served(stores.served)
    if not served:
        raise TrainingDataError(
            "no served lists yet: serve the feed (or run `shoprank simulate` on a generated "
            "shop) and send impressions, clicks and purchases back with the request_id")
    if cfg.data.items is None:
        raise TrainingDataError("the ranker needs the catalog: set [data] items")
    # the serving catalog (the catalog store's, with the API's changes): what features read
    catalog = (Catalog(stores.catalog.iter_items()) if stores.catalog.count()
               else Catalog.from_jsonl(cfg.data.items))
    events = load_events(cfg, events_dir, stores)
    try:
        model, rep = train_ranker(served, events, catalog, profiles=profiles, progress=progress)
    except ValueError as exc:
        raise TrainingDataError(f"ranker: {exc}") from exc
    metrics = {f"{who}_{k}": v for who, m in rep.heldout.items() for k, v in m.items()}
    # the headline numbers `shoprank models list` shows: on the explored lists when there are
    # any (their order did not favour the blend), else on every held-out list
    main = rep.heldout.get("ranker (explored lists)") or rep.heldout.get("ranker") or {}
    metrics.update({k: v for k, v in main.items() if k != "lists"})
    reg = Registry(models_dir)
    version = reg.register(
        RANKER_NAME, model, metrics=metrics,  # type: ignore[arg-type]
        data={"lists": rep.n_lists, "rows": rep.n_rows, "train_lists_heldout": rep.n_train_lists},
    )
    if promote:
        reg.promote(RANKER_NAME, version)
    log.info("ranker %s: %d lists, held-out %s", version, rep.n_lists, rep.heldout)
    return replace(rep, version=version)
