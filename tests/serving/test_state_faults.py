"""State that cannot be persisted is a 503 that acknowledges nothing, never a silent 201 or a
500: a state file deleted under the server, a read-only state folder."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serving.conftest import ADMIN_KEY, start_live

RULE = {"name": "bury a brand", "condition": {"contexts": ["feed"]},
        "actions": [{"type": "bury", "filter": {"brands": ["nobody"]}, "weight": 0.5}]}


def test_a_deleted_rules_file_answers_503_and_keeps_nothing(restart_home: Path) -> None:
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin:
            first = admin.post("/v1/rules", json={**RULE, "id": "kept"})
            assert first.status_code == 201, first.text
            (restart_home / "state" / "rules.sqlite").unlink()
            r = admin.post("/v1/rules", json={**RULE, "id": "lost"})
            assert r.status_code == 503, r.text
            assert "rules.sqlite was deleted" in r.json()["message"]
            assert admin.get("/v1/rules/kept").status_code == 200  # reads still answer
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


def test_a_read_only_state_folder_answers_503_naming_the_problem(restart_home: Path) -> None:
    assert shutil.which("mount"), "the fault tests need mount(8) (util-linux)"
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin, read_only(restart_home / "state"):
            r = admin.put("/v1/users/u-ro", json={"attributes": {"tier": "gold"}})
            assert r.status_code == 503, r.text
            assert "Read-only file system" in r.json()["message"]
            item = {"item_id": "i-ro", "title": "read only", "price": 1.0}
            r = admin.put("/v1/catalog/items", json={"items": [item]})
            assert r.status_code == 503, r.text
            assert lv.services.catalog.get("i-ro") is None  # not applied either
        with lv.client(ADMIN_KEY) as admin:  # writable again: the same calls succeed
            assert admin.put("/v1/users/u-ro", json={"attributes": {}}).status_code == 200
    finally:
        server.stop()
        lv.services.close()
