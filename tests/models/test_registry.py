from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from models import ModelHandle
from models import registry as reg_mod
from models.errors import CorruptVersionError, RegistryError
from models.popularity import Popularity
from models.registry import Registry


def test_register_writes_a_complete_version_with_checksums(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    v = reg.register("pop", small_model, metrics={"ndcg@10": 0.5}, data={"events": 3})
    m = reg.verify("pop", v)
    assert m["algorithm"] == "popularity" and m["metrics"] == {"ndcg@10": 0.5}
    assert m["data"] == {"events": 3} and m["code_version"]
    assert "arrays.npz" in m["files"] and len(m["files"]["arrays.npz"]["sha256"]) == 64
    assert reg.versions("pop") == [v]
    assert not [p for p in (tmp_path / "pop").iterdir() if p.name.startswith(".tmp")]
    assert reg.current_version("pop") is None  # registering does not promote


def test_promote_and_rollback_walk_the_history(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    v1 = reg.register("pop", small_model)
    v2 = reg.register("pop", small_model)
    reg.promote("pop", v1)
    reg.promote("pop", v2)
    assert reg.current_version("pop") == v2 and reg.history("pop") == [v1]
    assert reg_mod.current_versions(tmp_path) == {"pop": v2}
    assert reg.rollback("pop") == v1
    assert reg.current_version("pop") == v1
    with pytest.raises(RegistryError, match="no previous version"):
        reg.rollback("pop")


def test_corrupt_version_is_refused_and_current_stays(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    good = reg.register("pop", small_model)
    reg.promote("pop", good)
    bad = reg.register("pop", small_model)
    arrays = reg.path("pop", bad) / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[-10] ^= 0xFF
    arrays.write_bytes(bytes(data))
    with pytest.raises(CorruptVersionError, match="does not match its checksum"):
        reg.promote("pop", bad)
    assert reg.current_version("pop") == good
    rows = {r["version"]: r for r in reg.list("pop")}
    assert rows[good]["current"] and rows[good]["ok"]


def test_incomplete_version_is_refused(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    v = reg.register("pop", small_model)
    (reg.path("pop", v) / "manifest.json").unlink()
    with pytest.raises(CorruptVersionError, match="incomplete: no manifest.json"):
        reg.promote("pop", v)
    v2 = reg.register("pop", small_model)
    (reg.path("pop", v2) / "items.json").unlink()
    with pytest.raises(CorruptVersionError, match="items.json is missing"):
        reg.promote("pop", v2)
    assert reg.current_version("pop") is None
    ok = {r["version"]: r["ok"] for r in reg.list("pop")}
    assert ok == {v: False, v2: True}  # list reads manifests only; promote checks files


def test_failed_save_leaves_no_version(tmp_path: Path, small_model) -> None:
    class Broken(Popularity):
        def save(self, folder):  # type: ignore[no-untyped-def]
            super().save(folder)
            raise OSError("disk full")

    broken = Broken()
    broken.__dict__.update(small_model.__dict__)
    reg = Registry(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        reg.register("pop", broken)
    assert reg.versions("pop") == []
    assert list((tmp_path / "pop").glob(".tmp*")) == []


def test_unknown_names_and_versions_have_clear_errors(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="not valid"):
        reg.register("../evil", small_model)
    with pytest.raises(RegistryError, match="no version"):
        reg.promote("pop", "20250101T000000Z-abcdef")
    with pytest.raises(RegistryError, match="no current version"):
        reg.load("pop")


def test_readers_never_see_half_a_promotion(tmp_path: Path, small_model) -> None:
    reg = Registry(tmp_path)
    versions = [reg.register("pop", small_model) for _ in range(3)]
    reg.promote("pop", versions[0])
    seen: set[str] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                v = reg_mod.current_version(tmp_path, "pop")
                assert v is not None
                h = reg_mod.load(tmp_path, "pop", v)
                assert isinstance(h, ModelHandle) and h.version == v
                seen.add(v)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(60):
        reg.promote("pop", versions[i % 3])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert seen <= set(versions) and seen
    json.loads((tmp_path / "pop" / "current.json").read_text())


def test_versions_made_in_the_same_second_sort_in_time_order() -> None:
    """The newest version is the last by name (promote's default), also within one second."""
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 23, 23, 59, 59, 1000, tzinfo=UTC)
    for _ in range(50):  # random suffixes: whole seconds got this order right half the time
        made = [reg_mod.new_version(t0 + timedelta(milliseconds=k)) for k in (0, 5, 998)]
        assert sorted(made) == made
    assert reg_mod.new_version(t0) < reg_mod.new_version(t0 + timedelta(seconds=1))
