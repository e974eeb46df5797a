"""State that cannot be persisted is a 503 that acknowledges nothing, never a silent 201 or a
500: a store file deleted under the server; a read-only state folder (durable writes while
the files are open, a one-line refusal at start-up)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving.state import Services
from stores.errors import StoreConfigError
from tests.serving.conftest import ADMIN_KEY, make_settings, start_live

RULE = {"name": "bury a brand", "condition": {"contexts": ["feed"]},
        "actions": [{"type": "bury", "filter": {"brands": ["nobody"]}, "weight": 0.5}]}


def test_a_deleted_store_file_answers_503_and_keeps_nothing(restart_home: Path) -> None:
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin:
            first = admin.post("/v1/rules", json={**RULE, "id": "kept"})
            assert first.status_code == 201, first.text
            (restart_home / "state" / "stores.sqlite").unlink()  # rules, users, catalog
            r = admin.post("/v1/rules", json={**RULE, "id": "lost"})
            assert r.status_code == 503, r.text
            assert "stores.sqlite was deleted" in r.json()["message"]
            assert admin.get("/v1/rules/kept").status_code == 200  # reads still answer
            r = admin.put("/v1/users/u-lost", json={"attributes": {"tier": "gold"}})
            assert r.status_code == 503, r.text
    finally:
        server.stop()
        lv.services.close()


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` mounted read-only over itself (root writes through file modes, not mounts)."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_state_folder(restart_home: Path) -> None:
    """A running server keeps its store files open, so what it acknowledges while the folder
    is read-only (a read-only bind mount over it) is durable; a server cannot start on a
    read-only folder and says which file and why."""
    assert shutil.which("mount"), "the fault tests need mount(8) (util-linux)"
    state = restart_home / "state"
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin, read_only(state):
            r = admin.put("/v1/users/u-ro", json={"attributes": {"tier": "gold"}})
            assert r.status_code == 200, r.text
    finally:
        server.stop()
        lv.services.close()
    with read_only(state), pytest.raises(StoreConfigError) as refused:
        Services.build(make_settings(restart_home), with_search=False)
    # `shoprank serve` prints this one line and exits 2 (tests/cli)
    assert "stores.sqlite" in str(refused.value) and "permissions" in str(refused.value)
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin:  # writable again: the same calls succeed
            assert admin.get("/v1/users/u-ro").json()["attributes"] == {"tier": "gold"}
    finally:
        server.stop()
        lv.services.close()
