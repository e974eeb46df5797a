"""A tiny trained shop for the serving tests (generated, trained and indexed once per session)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from data.catalog import Catalog
from data.models import User
from models import ModelHandle, create_model
from ranking.modelset import ModelSet

MODELS: dict[str, dict[str, object]] = {
    "als": {"factors": 24, "iterations": 8, "num_threads": 1},
    "item_knn": {"neighbors": 50, "num_threads": 1},
    "content": {},
    "trending": {},
    "popularity": {},
    "new_arrivals": {},
    "bought_together": {},
}


def train(
    data_dir: Path, version: str = "v1", only: tuple[str, ...] | None = None
) -> dict[str, ModelHandle]:
    """Fit the serving models on the shop's events (the same path `shoprank train` takes)."""
    from training.interactions import Catalog as TrainCatalog
    from training.interactions import build_interactions, encode_events

    users = [
        User.model_validate_json(line)
        for line in (data_dir / "users.jsonl").read_text().splitlines()
        if line
    ]
    catalog = Catalog.from_jsonl(data_dir / "items.jsonl")
    frame = encode_events(pq.read_table(data_dir / "events.parquet"), users=users)
    inter = build_interactions(frame, catalog=TrainCatalog.from_items(iter(catalog)))
    out = {}
    for name, params in MODELS.items():
        if only is not None and name not in only:
            continue
        out[name] = ModelHandle(create_model(name, **params).fit(inter), version=version)
    return out


def model_set(handles: dict[str, ModelHandle]) -> ModelSet:
    return ModelSet(
        {n: ModelHandle(h.model, h.version or "v1", name=n) for n, h in handles.items()}
    )


def tastes(data_dir: Path) -> dict[str, list[str]]:
    """user_id → hidden taste leaves (category paths joined by ' > ')."""
    truth = json.loads((data_dir / "truth.json").read_text())
    return {u: t["leaves"] for u, t in truth.get("users", {}).items()}
