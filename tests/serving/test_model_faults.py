"""A model version that cannot be loaded is never made current, and a server that does not
serve what the registry calls current says so on /readyz."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from models.registry import Registry
from tests.serving.conftest import ADMIN_KEY, start_live


def unloadable_version(reg: Registry, name: str, source: str) -> str:
    """A copy of ``source`` whose arrays are garbage, with a manifest that matches them (a bug,
    or another program's files: checksums say nothing about whether it loads)."""
    version = source[:-6] + "bad000"
    src, dst = reg.path(name, source), reg.path(name, version)
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    (dst / "arrays.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    manifest = json.loads((dst / "manifest.json").read_text())
    for rel, info in manifest["files"].items():
        data = (dst / rel).read_bytes()
        info.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (dst / "manifest.json").write_text(json.dumps(manifest))
    reg.verify(name, version)  # the checksums match
    return version


def test_promote_refuses_an_unloadable_version_and_readyz_tells(restart_home: Path) -> None:
    reg = Registry(restart_home / "models")
    bad = unloadable_version(reg, "als", "v1")
    server, lv = start_live(restart_home)
    try:
        with lv.client(ADMIN_KEY) as admin:
            r = admin.post("/v1/models/als/promote", json={"version": bad})
            assert r.status_code == 409, r.text
            assert "cannot be loaded" in r.json()["message"]
            assert reg.current_version("als") == "v1"
            assert admin.get("/readyz").json()["ready"] is True
            assert admin.get("/v1/recommendations", params={"n": 3}).status_code == 200
    finally:
        server.stop()
        lv.services.close()

    # the pointer moved behind the registry's back (an older version's promote, a hand edit):
    # the server starts, serves what it can, and is not ready
    current = restart_home / "models" / "als" / "current.json"
    pointer = json.loads(current.read_text())
    current.write_text(json.dumps({**pointer, "version": bad}))
    server, lv = start_live(restart_home)
    try:
        with lv.client() as c:
            ready = c.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["models"] is False
            assert c.get("/v1/trending", params={"n": 3}).status_code == 200
    finally:
        server.stop()
        lv.services.close()
