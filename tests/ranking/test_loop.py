"""The closed loop's mechanics on a tiny shop: simulated shoppers on the live API (in
process), the served lists logged and echoed by their events, the ranker trained from them,
served through an experiment variant with its reason, and the KPI report read back."""

from __future__ import annotations

import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

from core.settings import Settings
from data.synthetic import ShopSpec, generate
from models.registry import Registry
from ranking.learned import EXPLORE
from simulate.bootstrap import profile_factory
from simulate.loop import EXPERIMENT_ID, ab_test, traffic
from simulate.storefront import World, live_api
from stores.factory import open_stores
from stores.served_lists import read_served
from training.config import ModelEntry, default_config
from training.jobs import train
from training.ranker_job import load_events, train_ranker_job

SIZE = 12


def test_closed_loop_mechanics(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, environment="test", search_backend="embedded",
                 model_poll_seconds=0, admin_api_key=SecretStr(secrets.token_hex(16)))
    generate(ShopSpec(n_users=150, n_items=200, n_events=8000, seed=3, days=20), s.data_dir,
             progress=False)
    cfg = default_config(s.data_dir)
    cfg.models = [ModelEntry(name=n, algorithm=n, params={})
                  for n in ("popularity", "trending", "new_arrivals", "item_knn")]
    cfg.train.holdout_metrics = False
    train(cfg, s.models_dir, events_dir=s.events_dir, promote=True)
    world = World.from_shop(s.data_dir)

    with live_api(s) as client:
        st = traffic(client, world, 60, size=SIZE, explore_share=0.5, seed=4)
    assert st.sessions == 60 and st.errors == 0
    assert st.impressions == 60 * SIZE  # every shown item gets its impression
    assert 0 < st.clicks < st.impressions and st.purchases <= st.carts <= st.clicks
    stores = open_stores(None, None, s.home)
    served = read_served(stores.served)
    assert len(served) == 60
    assert {sl.ranker_version for sl in served} == {None, EXPLORE}  # no ranker yet; explored
    # the events echo the lists: request id and position of a logged item
    ev = load_events(cfg, s.events_dir)
    rids = [sl.request_id for sl in served]
    sim = ev.filter(pc.is_in(ev.column("request_id"), pa.array(rids)))
    shown = {(sl.request_id, iid) for sl in served for iid, _ in sl.items}
    imps = sim.filter(pc.equal(sim.column("type"), "impression"))
    pairs = set(zip(imps.column("request_id").to_pylist(), imps.column("item_id").to_pylist(),
                    strict=True))
    assert len(pairs) == 60 * SIZE and pairs <= shown

    rep = train_ranker_job(cfg, s.models_dir, events_dir=s.events_dir, stores=stores,
                           profiles=profile_factory(cfg), promote=True)
    assert rep.n_lists > 0 and Registry(s.models_dir).current_version("ranker") == rep.version

    with live_api(s) as client:
        res = ab_test(client, world, 40, size=SIZE, seed=5)
        variants = {v["label"]: v for v in res.report["by_variant"]}
        assert set(variants) == {"hand_blend", "ranker"}
        assert sum(v["impressions"] for v in variants.values()) == 40 * SIZE
        assert res.report["experiment"] == EXPERIMENT_ID
        assert {c["metric"] for c in res.report["comparisons"]} >= {"ctr", "conversion_rate",
                                                                     "revenue_per_user"}
    by_variant = {sl.variant: sl for sl in read_served(stores.served)
                  if sl.variant in ("hand_blend", "ranker")}
    assert by_variant["ranker"].ranker_version == rep.version
    assert by_variant["hand_blend"].ranker_version is None

    # the registry life cycle seen through the API: a second version, then a rollback
    v1 = rep.version
    v2 = train_ranker_job(cfg, s.models_dir, events_dir=s.events_dir, stores=stores,
                          profiles=profile_factory(cfg), promote=True).version
    assert v2 != v1
    user = world.user_ids[int(world.consent.argmax())]

    def served_by() -> tuple[str | None, dict]:
        body = client.get("/v1/feed", params={"user_id": user, "size": 5, "debug": "true"}).json()
        first = body["items"][0]
        got = [r for r in first["reasons"] if r["source"] == "ranker"]
        return (got[0]["model_version"] if got else None), body

    with live_api(s) as client:
        version, body = served_by()
        assert version == v2 and body["model_versions"]["ranker"] == v2
        assert f"ranker:{v2}" in body["items"][0]["breakdown"]
        assert any(r.get("detail") == f"ranked by the learned model, version {v2}"
                   for r in body["items"][0]["reasons"])
        Registry(s.models_dir).rollback("ranker")
        assert served_by()[0] == v1  # picked up on the next request (poll every 0 s here)
    stores.close()
