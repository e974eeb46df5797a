"""Fixtures of the data tests: one small generated shop shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.synthetic import GenerateSummary, ShopSpec, generate

SMALL = ShopSpec(n_users=400, n_items=300, n_events=30_000, seed=7, days=60)


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("shop")
    return out, generate(SMALL, out, progress=False)
