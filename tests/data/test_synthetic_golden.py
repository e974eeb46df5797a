"""The synthetic shop of a seed is the one recorded before its generator was split up.

``GOLDEN`` was computed by :func:`shop_digest` from the output of ``data/synthetic.py`` at commit
bcfa281 (one module, before the split into taxonomy, catalog, behaviour and writer). Text files
are hashed byte for byte; Parquet files by their schema, row-group sizes and rows, so a new
pyarrow (whose writer stamps its version into the file) does not change the digest. That the
Parquet bytes themselves repeat is checked by generating twice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import data.synthetic.writer as writer
from data.synthetic import ShopSpec, generate

ONE_CHUNK = ShopSpec(n_users=150, n_items=200, n_events=4_000, seed=11, days=30, trend_days=4)
THREE_CHUNKS = ShopSpec(n_users=2_500, n_items=200, n_events=5_000, seed=3, days=20)
"""With ``EVENTS_PER_CHUNK`` lowered to 2,000, chunks are 1,000 users: three of them."""

GOLDEN = {
    "one_chunk": "c59618929e4ed1288437dc12ea8f5bca9efb10ea7d8170d742132ff195815995",
    "three_chunks": "adaba4b8cf7747ec1bab02996151b2da8cf8ce167059d98d1913b1518de9ff95",
}


def shop_digest(folder: Path) -> str:
    """SHA-256 over every generated file, in name order (see the module doc)."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        h.update(path.name.encode() + b"\0")
        if path.suffix == ".parquet":
            f = pq.ParquetFile(path)
            h.update(str(f.schema_arrow).encode())
            groups = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
            h.update(repr(groups).encode())
            rows = f.read().to_pylist()
            h.update(json.dumps(rows, ensure_ascii=False, default=str).encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


def test_one_chunk_shop_is_unchanged_and_repeats_byte_for_byte(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(ONE_CHUNK, a, progress=False, events_format="both")
    generate(ONE_CHUNK, b, progress=False, events_format="both")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert shop_digest(a) == GOLDEN["one_chunk"]


def test_three_chunk_shop_is_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "EVENTS_PER_CHUNK", 2_000)
    generate(THREE_CHUNKS, tmp_path, progress=False, events_format="parquet")
    assert pq.ParquetFile(tmp_path / "events.parquet").num_row_groups == 3
    assert shop_digest(tmp_path) == GOLDEN["three_chunks"]
