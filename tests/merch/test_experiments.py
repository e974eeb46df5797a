"""Experiments: hash stability, share changes, life cycle, overrides, request-log attribution."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from merch.errors import ExperimentError, ExperimentNotFoundError
from merch.experiment_store import SqliteExperimentStore
from merch.experiments import ExperimentService, ExperimentSpec, assign_variant, bucket
from merch.request_log import SqliteRequestLog
from ranking.types import RankContext

NOW = datetime(2025, 3, 1, tzinfo=UTC)


def spec(
    eid: str = "blend",
    shares: tuple[float, ...] = (50, 50),
    surfaces: list[str] | None = None,
    **kw: object,
) -> ExperimentSpec:
    variants = [{"name": n, "share": s} for n, s in zip(("A", "B", "C"), shares, strict=False)]
    variants[-1]["overrides"] = {
        "blend_weights": {"cf": 0.9, "trending": 0.1},
        "rule_set": "holiday",
        "personalization_weight": 0.7,
        "model_versions": {"als": "v2"},
    }
    return ExperimentSpec.model_validate(
        {
            "id": eid,
            "name": "blend test",
            "variants": variants,
            "surfaces": surfaces or ["feed"],
            **kw,
        }
    )


@pytest.fixture
def svc(tmp_path: Path) -> ExperimentService:
    return ExperimentService(SqliteExperimentStore(tmp_path / "e.sqlite"), reload_check_seconds=0)


def test_bucket_is_deterministic_uniform_and_per_experiment() -> None:
    assert bucket("e1", "u1") == bucket("e1", "u1")
    assert bucket("e1", "u1") != bucket("e2", "u1")
    e = spec(shares=(20, 80)).to_experiment()
    counts = Counter(assign_variant(e, f"user{i}").name for i in range(20_000))
    assert counts["A"] / 20_000 == pytest.approx(0.2, abs=0.015)


def test_assignment_is_stable_and_share_changes_move_few_users() -> None:
    users = [f"u{i}" for i in range(5000)]
    e = spec(shares=(50, 50)).to_experiment()
    first = {u: assign_variant(e, u).name for u in users}
    again = spec(shares=(50, 50)).to_experiment()  # reloaded from its spec: same answers
    assert {u: assign_variant(again, u).name for u in users} == first
    scaled = spec(shares=(1, 1)).to_experiment()  # same proportions, other numbers
    assert {u: assign_variant(scaled, u).name for u in users} == first
    shifted = spec(shares=(60, 40)).to_experiment()
    moved = [u for u in users if assign_variant(shifted, u).name != first[u]]
    assert 0.07 < len(moved) / len(users) < 0.13  # only ~10 % (the boundary slice) move
    assert all(first[u] == "B" for u in moved)  # and only from B to the grown A


def test_life_cycle_overlap_and_errors(svc: ExperimentService) -> None:
    svc.create(spec("one"))
    with pytest.raises(ExperimentError, match="already exists"):
        svc.create(spec("one"))
    svc.start("one", now=NOW)
    svc.create(spec("two", surfaces=["feed", "search"]))
    with pytest.raises(ExperimentError, match="already runs on feed"):
        svc.start("two")
    svc.create(spec("three", surfaces=["search"]))
    svc.start("three")
    with pytest.raises(ExperimentError, match="keeps its variants"):
        svc.update("one", spec("one", shares=(30, 30, 40)))
    svc.update("one", spec("one", shares=(70, 30)))
    assert svc.get("one").variants[0].share == 70 and svc.get("one").status == "running"
    stopped = svc.stop("one", now=NOW + timedelta(days=3))
    assert stopped.started_at == NOW and stopped.stopped_at == NOW + timedelta(days=3)
    with pytest.raises(ExperimentError, match="was stopped"):
        svc.start("one")
    with pytest.raises(ExperimentNotFoundError):
        svc.get("nope")
    with pytest.raises(ExperimentError, match="stop it first"):
        svc.delete("three")


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(ValidationError, match="variants"):
        ExperimentSpec.model_validate({"name": "x", "variants": [{"name": "A", "share": 1}]})
    with pytest.raises(ValidationError, match="share"):
        ExperimentSpec.model_validate(
            {"name": "x", "variants": [{"name": "A", "share": 0}, {"name": "B", "share": 1}]}
        )
    with pytest.raises(ValidationError, match="control"):
        ExperimentSpec.model_validate(
            {
                "name": "x",
                "control": "Z",
                "variants": [{"name": "A", "share": 1}, {"name": "B", "share": 1}],
            }
        )
    with pytest.raises(ValidationError, match="unique"):
        ExperimentSpec.model_validate(
            {"name": "x", "variants": [{"name": "A", "share": 1}, {"name": "A", "share": 1}]}
        )


def test_assign_hook_overrides(svc: ExperimentService) -> None:
    svc.create(spec("blend"))
    ctx = RankContext(surface="feed", user_id="u1", request_id="req-1", now=NOW)
    assert svc.assign(ctx) is None  # draft: nobody is in it
    svc.start("blend")
    got = {
        svc.assign(
            RankContext(surface="feed", user_id=f"u{i}", request_id=f"q{i}", now=NOW)
        ).variant  # type: ignore[union-attr]
        for i in range(50)
    }
    assert got == {"A", "B"}
    uid = next(f"u{i}" for i in range(100) if assign_variant(svc.get("blend"), f"u{i}").name == "B")
    a = svc.assign(RankContext(surface="recommend", user_id=uid, request_id="r-rec", now=NOW))
    assert a is None  # another surface
    a = svc.assign(RankContext(surface="feed", user_id=uid, request_id="r-b", now=NOW))
    assert a is not None and (a.experiment, a.variant) == ("blend", "B")
    assert dict(a.blend_weights) == {"cf": 0.9, "trending": 0.1} and a.rule_set == "holiday"
    assert a.personalization_weight == 0.7 and dict(a.model_versions) == {"als": "v2"}
    assert svc.assign(RankContext(surface="feed", request_id="anon", now=NOW)) is None  # no user
    assert (
        svc.rule_set_for(RankContext(surface="feed", experiment="blend", variant="B")) == "holiday"
    )
    assert svc.rule_set_for(RankContext(surface="feed", experiment="blend", variant="A")) is None


def test_store_is_durable_across_handles(tmp_path: Path) -> None:
    a = ExperimentService(SqliteExperimentStore(tmp_path / "e.sqlite"))
    a.create(spec("keep"))
    a.start("keep", now=NOW)
    b = SqliteExperimentStore(tmp_path / "e.sqlite").get("keep")
    assert b.status == "running" and b.started_at == NOW
    assert b.variants == spec("keep").to_experiment().variants


def test_request_log_keeps_rows_until_pruned_and_reads_them_column_wise(tmp_path: Path) -> None:

    log = SqliteRequestLog(tmp_path / "r.sqlite", keep_days=30)
    old = NOW - timedelta(days=40)
    for n in range(12):
        log.record(
            request_id=f"r{n}",
            at=old if n < 4 else NOW,
            surface="search" if n % 2 else "feed",
            user_id=f"u{n}" if n % 3 else None,
            experiment="x" if n > 8 else None,
            variant="B" if n > 8 else None,
        )
    assert len(log.lookup([f"r{n}" for n in range(12)])) == 12  # a fresh log prunes nothing
    for ids in (["r1", "r9", "nope"], [f"r{n}" for n in range(12)] + ["nope"]):  # join, scan
        cols = log.lookup_columns(ids)
        rows = sorted(zip(*(cols[c] for c in cols), strict=True))
        want = sorted(
            (s.request_id, s.surface, s.user_id, s.experiment, s.variant)
            for s in log.lookup(ids).values()
        )
        assert rows == want and len(rows) == len(ids) - 1
    assert log.prune(now=NOW) == 4 and set(log.lookup(["r0", "r5"])) == {"r5"}
