"""A saved dense index is mapped, not copied, when a process loads it; older files still load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.dense import COMPONENTS_FILE, DenseIndex
from tests.search.catalog import items


def test_a_loaded_index_maps_its_matrix_and_answers_as_the_built_one(tmp_path: Path) -> None:
    shop = items()
    built = DenseIndex.build([i.item_id for i in shop], [i.title for i in shop])
    built.save(tmp_path / "g1")
    loaded = DenseIndex.load(tmp_path / "g1")
    assert isinstance(loaded.components, np.memmap)
    assert not loaded.components.flags.writeable
    np.testing.assert_array_equal(np.asarray(loaded.components), built.components)
    for q in ("hiking backpack", "紅色連衣裙", "wireless headphones"):
        assert loaded.query(q, 5) == built.query(q, 5)
    # items added later (an upsert) are encoded with the mapped matrix
    loaded.add(["new1"], ["Red Summer Dress"])
    assert "new1" in {i for i, _ in loaded.query("red summer dress", 10)}

    # a generation saved before the matrix had its own file
    folder = tmp_path / "old"
    built.save(folder)
    (folder / COMPONENTS_FILE).unlink()
    np.savez(folder / "dense.npz", idf=built.idf, components=built.components,
             item_ids=np.array(built.item_ids, dtype=str))
    old = DenseIndex.load(folder)
    assert not isinstance(old.components, np.memmap)
    assert old.query("hiking backpack", 5) == built.query("hiking backpack", 5)
