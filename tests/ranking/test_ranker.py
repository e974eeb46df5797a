"""The learned ranker: persistence, feature parity, registry life cycle, experiment override,
and that it learns the synthetic shoppers' tastes better than a popularity blend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pytest

from data.catalog import Catalog
from data.event_table import EVENT_SCHEMA
from data.served_log import ServedList
from data.synthetic import ShopSpec, generate
from models.lambdarank import RANKER_NAME, LambdaRanker, RankerParams
from models.ranker_features import FEATURES, Candidate, ItemStats, ItemTable, features
from models.registry import Registry
from ranking.hooks import Assignment
from ranking.learned import LearnedStage
from ranking.profile import ProfileStore
from ranking.types import Reason, ScoredItem
from simulate.storefront import World
from stores.factory import open_stores
from stores.served_lists import ServedLog
from training.ranker_data import _Ev, build_dataset, item_stats, train_ranker

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ranker-shop")
    generate(ShopSpec(n_users=300, n_items=400, n_events=20_000, seed=5, days=30), d,
             progress=False)
    return d


@pytest.fixture(scope="module")
def catalog(shop: Path) -> Catalog:
    return Catalog.from_jsonl(shop / "items.jsonl")


def _profiles(catalog: Catalog) -> ProfileStore:
    return ProfileStore(catalog=catalog)


def _small_model(catalog: Catalog, seed: int = 0) -> LambdaRanker:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan  # missing values, as real lists have
    y = np.clip((np.nan_to_num(x[:, 0]) + rng.normal(size=600) > 1).astype(int)
                + (np.nan_to_num(x[:, 1]) > 1.5), 0, 3)
    stats = ItemStats({i: 1.0 for i in catalog.ids()[:50]}, {}, {})
    return LambdaRanker(RankerParams(num_trees=20, seed=seed)).fit(
        x, y, np.full(30, 20), np.tile(np.arange(20), 30), stats=stats)


def test_save_load_round_trip_without_pickle(tmp_path: Path, catalog: Catalog) -> None:
    m = _small_model(catalog)
    m.save(tmp_path / "r")
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["model.txt", "ranker.json"]
    assert not any(b"pickle" in (tmp_path / "r" / f).read_bytes()[:2] for f in files)
    back = LambdaRanker.load(tmp_path / "r")
    x = np.random.default_rng(9).normal(size=(50, len(FEATURES))).astype(np.float32)
    assert np.array_equal(m.predict(x), back.predict(x))
    assert back.stats_ == m.stats_ and back.n_lists_ == 30


def test_forest_scores_equal_lightgbm(catalog: Catalog) -> None:
    """The compiled tree walk serving uses gives LightGBM's own scores, NaNs and zeros too."""
    m = _small_model(catalog)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.1] = 0.0
    np.testing.assert_allclose(m.predict(x), m.predict_booster(x), rtol=0, atol=1e-9)
    assert np.ptp(m.predict(x)) > 0


def _events(rows: list[tuple[str, str | None, str, datetime, str | None]]) -> pa.Table:
    n = len(rows)
    cols = {f.name: [None] * n for f in EVENT_SCHEMA}
    for k, (user, item, ty, at, rid) in enumerate(rows):
        cols["event_id"][k] = f"e{k}"
        cols["user_id"][k], cols["item_id"][k], cols["type"][k] = user, item, ty
        cols["timestamp"][k], cols["request_id"][k] = at, rid
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def test_features_offline_equal_online(catalog: Catalog) -> None:
    """The dataset builder (events replayed up to the request) and serving (the live profile
    the same events built) give the same feature rows for the same list."""
    ids = catalog.ids()
    history = [("u1", ids[k], ty, NOW - timedelta(minutes=60 - k), None)
               for k, ty in enumerate(["view", "view", "add_to_cart", "purchase", "view"])]
    shown = [(ids[10 + k], MappingProxyType({"cf": 1.0 / (k + 1), "blend:cf": 0.9 ** k}))
             for k in range(5)]
    shown.append((ids[15], MappingProxyType({"search": 7.5, "blend:search": 0.4})))  # a hit
    later = [("u1", iid, "impression", NOW + timedelta(seconds=1), "r1") for iid, _ in shown]
    later.append(("u1", shown[2][0], "click", NOW + timedelta(seconds=5), "r1"))
    events = _events(history + later)
    stats = item_stats(events, catalog)
    served = [ServedList("r1", NOW, "feed", "u1", tuple(shown))]
    data = build_dataset(served, events, catalog, stats, profiles=_profiles)
    live = ProfileStore(catalog=catalog)
    live.record([_Ev(u, i, t, None) for u, i, t, _, _ in history])
    online = features([Candidate(i, bd) for i, bd in shown], live.get("u1"),
                      ItemTable(catalog, stats), NOW)
    assert data.n_lists == 1 and list(data.labels) == [0, 0, 1, 0, 0, 0]
    np.testing.assert_array_equal(data.x, online)
    assert not np.isnan(online[:, FEATURES.index("cat_affinity")]).all()
    lexical = online[:, FEATURES.index("lexical_score")]
    assert lexical[5] == 7.5 and np.isnan(lexical[:5]).all()


def _items(catalog: Catalog, n: int = 30) -> list[ScoredItem]:
    r = Reason(source="cf", model_version="v1")
    return [ScoredItem(i, 1.0 / (k + 1), (r,), MappingProxyType({"cf": 1.0 / (k + 1),
                                                                "blend:cf": 0.96 ** k}))
            for k, i in enumerate(catalog.ids()[:n])]


def test_registry_life_cycle_and_experiment_override(tmp_path: Path, catalog: Catalog) -> None:
    reg = Registry(tmp_path / "models")
    v1 = reg.register(RANKER_NAME, _small_model(catalog, 1))  # type: ignore[arg-type]
    v2 = reg.register(RANKER_NAME, _small_model(catalog, 2))  # type: ignore[arg-type]
    stores = open_stores(None, None, tmp_path)
    log = ServedLog(stores.served)
    stage = LearnedStage(tmp_path / "models", catalog, log, poll_seconds=0)
    items = _items(catalog)
    by_id = {it.item_id: it for it in items}
    profile = ProfileStore(catalog=catalog).get("u1")

    def run(assignment: Assignment | None = None) -> tuple[list[ScoredItem], str] | None:
        return stage.rerank([it.item_id for it in items], by_id.__getitem__, lambda _i: True,
                            profile, assignment)

    assert run() is None  # nothing promoted: the hand blend
    reg.promote(RANKER_NAME, v1)
    got = run()
    assert got is not None and got[1] == v1
    reasons = [r for r in got[0][0].reasons if r.source == "ranker"]
    assert reasons and reasons[0].model_version == v1
    assert reasons[0].detail == f"ranked by the learned model, version {v1}"
    assert f"ranker:{v1}" in got[0][0].breakdown
    assert sorted(it.item_id for it in got[0]) == sorted(by_id)
    scores = [it.score for it in got[0]]
    assert scores == sorted(scores, reverse=True)
    reg.promote(RANKER_NAME, v2)
    assert run()[1] == v2  # type: ignore[index]
    reg.rollback(RANKER_NAME)
    assert run()[1] == v1  # type: ignore[index]
    # per-request switches through an experiment variant
    assert run(Assignment("e", "control", model_versions={"ranker": "off"})) is None
    assert run(Assignment("e", "t", model_versions={"ranker": v2}))[1] == v2  # type: ignore[index]
    assert run(Assignment("e", "t", model_versions={"ranker": "current"}))[1] == v1  # type: ignore[index]
    # what was served is logged, with the blend breakdown and not the ranker's score
    from ranking.types import RankContext

    stage.log(got[0], RankContext(surface="feed", user_id="u1", request_id="r9"), v1)
    [row] = list(log.lists())
    assert row.request_id == "r9" and row.ranker_version == v1 and len(row.items) == len(items)
    assert all(not k.startswith("ranker:") for _, bd in row.items for k in bd)
    assert log.forget_user("u1") == 1  # an erasure: the list stays, without the user
    assert [sl.user_id for sl in log.lists()] == [None]
    log.close()
    stores.close()


def test_ranker_beats_hand_blend_offline_on_a_generated_shop(shop: Path, catalog: Catalog) -> None:
    """Lists with popularity blend scores shown to the shop's shoppers in a random order (an
    exploration bucket: offline metrics on lists shown in the blend's own order favour the
    blend through position bias), who react by their hidden tastes (data.behaviour); the
    ranker learned from the earlier lists must order the later ones better than the blend
    (graded NDCG@10)."""
    world = World.from_shop(shop)
    rng = np.random.default_rng(4)
    pop = item_stats(_events([]), catalog)  # leaf prices only
    ids = [i for i in catalog.ids() if catalog.facts(i) and catalog.facts(i).is_active]  # type: ignore[union-attr]
    popularity = rng.lognormal(0, 1, len(ids))
    served, rows = [], []
    users = np.flatnonzero(world.consent)
    for k in range(700):
        u = int(rng.choice(users))
        at = NOW + timedelta(minutes=k)
        cand = rng.choice(len(ids), 20, replace=False)
        shown = tuple((ids[c], MappingProxyType({"popular": float(popularity[c]),
                                                 "blend:popular": float(popularity[c])}))
                      for c in cand)
        rid = f"r{k}"
        served.append(ServedList(rid, at, "feed", world.user_ids[u], shown))
        for pos, iid, ty in world.react(u, [i for i, _ in shown], at, rng):
            rows.append((world.user_ids[u], iid, ty, at + timedelta(seconds=pos + 1), rid))
    events = _events(rows)
    _, rep = train_ranker(served, events, catalog, profiles=_profiles, holdout_fraction=0.3)
    assert rep.n_train_lists > 300
    ranker, blend = rep.heldout["ranker"], rep.heldout["hand_blend"]
    assert ranker["lists"] > 50
    assert ranker["ndcg@10"] > blend["ndcg@10"] + 0.03, rep.heldout
    assert pop.leaf_price  # the usual prices were read from the catalog


def test_search_hits_reranked_only_when_a_variant_asks(tmp_path: Path, catalog: Catalog) -> None:
    reg = Registry(tmp_path / "models")
    v = reg.register(RANKER_NAME, _small_model(catalog, 3))  # type: ignore[arg-type]
    reg.promote(RANKER_NAME, v)
    stage = LearnedStage(tmp_path / "models", catalog, poll_seconds=0)
    r = Reason(source="search")
    hits = [ScoredItem(i, 10.0 - k, (r,), MappingProxyType({"lexical": 10.0 - k}))
            for k, i in enumerate(catalog.ids()[:25])]
    profile = ProfileStore(catalog=catalog).get("u1")
    same, none = stage.rerank_search(hits, profile, None, "q1", 20)
    assert none is None and same == hits  # search keeps its order by default
    got, version = stage.rerank_search(hits, profile, Assignment("e", "t", model_versions={
        "ranker": "current"}), "q1", 20)
    assert version == v and [it.item_id for it in got[20:]] == [it.item_id for it in hits[20:]]
    assert sorted(it.item_id for it in got[:20]) == sorted(it.item_id for it in hits[:20])
    assert all(it.breakdown["search"] == it.breakdown["blend:search"] for it in got[:20])
    assert any(x.source == "ranker" for x in got[0].reasons)
