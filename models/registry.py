"""The model registry: versioned model folders and an atomic "current" pointer per name.

Layout under ``models_dir``::

    <name>/<version>/           the saved model (model.json, arrays.npz, users.json, …)
    <name>/<version>/manifest.json
                                algorithm, params, data window, counts, metrics, time,
                                code version, and the sha256 of every artifact
    <name>/current.json         {"version": …, "history": [previous versions, newest first]}

Guarantees:

* A version appears complete or not at all: it is written into a hidden temporary folder
  and renamed into place (one ``rename`` on the same file system).
* ``promote`` first verifies the version (manifest present, every file's checksum matches),
  then replaces ``current.json`` with ``os.replace``: a reader sees the old pointer or the
  new one, never half of either. A corrupt or incomplete version is refused and the
  pointer stays where it was.
* ``rollback`` moves the pointer back to the previous version of its history.
* :meth:`Registry.current_version` reads one small file — cheap enough to poll.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.fsutil import atomic_write, fsync_dir
from models.errors import CorruptVersionError, RegistryError

if TYPE_CHECKING:
    from models import ModelHandle
    from models.base import Recommender

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CURRENT = "current.json"
MANIFEST_FORMAT = 1
HISTORY_LIMIT = 50
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RegistryError(
            f"model name {name!r} is not valid: use lower-case letters, digits, '_' or '-'"
        )
    return name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


def code_version() -> str:
    """``git describe`` of the source tree if available, else the installed package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here, capture_output=True, text=True, timeout=5, check=True,
        )
        if out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return version("shoprank")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "unknown"


def new_version(now: datetime | None = None) -> str:
    """Sortable: ``20250301T120000123Z-3fa2c1`` (UTC time to the millisecond + a random
    suffix). The newest version is the last by name: with whole seconds, two versions
    trained in the same second were ordered by their random suffixes."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


class Registry:
    """Versions of named models under one folder. Safe for several processes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def path(self, name: str, version: str) -> Path:
        return self.root / _check_name(name) / version

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        folder = self.root / _check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ writing
    def register(
        self,
        name: str,
        model: Recommender,
        *,
        metrics: Mapping[str, float] | None = None,
        data: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> str:
        """Save ``model`` as a new version of ``name``; returns the version. Not promoted."""
        import dataclasses

        _check_name(name)
        version = version or new_version()
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / version
        if final.exists():
            raise RegistryError(f"{name} {version} already exists; versions are immutable")
        tmp = folder / f".tmp-{version}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            model.save(tmp)
            files = {}
            for p in sorted(tmp.rglob("*")):
                if p.is_file():
                    files[p.relative_to(tmp).as_posix()] = {
                        "sha256": _sha256(p), "bytes": p.stat().st_size,
                    }
                    with open(p, "rb") as fh:
                        os.fsync(fh.fileno())
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "version": version,
                "algorithm": model.algorithm,
                "params": dataclasses.asdict(model.params),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "code_version": code_version(),
                "data": dict(data or {}),
                "counts": {"users": model.n_users, "items": model.n_items},
                "metrics": {k: float(v) for k, v in (metrics or {}).items()},
                "files": files,
                **dict(extra or {}),
            }
            _write_json_atomic(tmp / MANIFEST, manifest)
            os.rename(tmp, final)
            fsync_dir(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("registered %s %s", name, version)
        return version

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name))

    def versions(self, name: str) -> list[str]:
        """Every version folder of ``name`` (complete or not), oldest first."""
        folder = self.root / _check_name(name)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _pointer(self, name: str) -> dict[str, Any]:
        path = self.root / _check_name(name) / CURRENT
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {"version": None, "history": []}
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}: unreadable ({exc}); promote a version again") from exc
        return {"version": data.get("version"), "history": list(data.get("history") or [])}

    def current_version(self, name: str) -> str | None:
        """The promoted version of ``name`` (``None`` if none): one small file read."""
        return self._pointer(name)["version"]  # type: ignore[no-any-return]

    def current_versions(self) -> dict[str, str]:
        """Name → current version, for every name that has one."""
        out = {}
        for name in self.names():
            v = self.current_version(name)
            if v is not None:
                out[name] = v
        return out

    def history(self, name: str) -> list[str]:
        """Previously current versions, newest first (what ``rollback`` walks back through)."""
        return self._pointer(name)["history"]  # type: ignore[no-any-return]

    def manifest(self, name: str, version: str) -> dict[str, Any]:
        path = self.path(name, version)
        if not path.is_dir():
            known = ", ".join(self.versions(name)[-5:]) or "none"
            raise RegistryError(
                f"{name} has no version {version!r} (latest: {known}); see `shoprank models list`"
            )
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise CorruptVersionError(
                f"{name} {version} is incomplete: no {MANIFEST}; it cannot be used — delete the "
                "folder and train again"
            )
        try:
            manifest = json.loads(mpath.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptVersionError(
                f"{name} {version}: {MANIFEST} is unreadable ({exc})"
            ) from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise CorruptVersionError(f"{name} {version}: {MANIFEST} lacks the file checksums")
        return manifest

    def verify(self, name: str, version: str) -> dict[str, Any]:
        """The manifest, after checking every artifact against its sha256."""
        manifest = self.manifest(name, version)
        folder = self.path(name, version)
        for rel, info in manifest["files"].items():
            p = folder / rel
            if not p.is_file():
                raise CorruptVersionError(
                    f"{name} {version} is incomplete: {rel} is missing; train again"
                )
            if p.stat().st_size != info.get("bytes") or _sha256(p) != info.get("sha256"):
                raise CorruptVersionError(
                    f"{name} {version} is corrupt: {rel} does not match its checksum; train again"
                )
        return manifest

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """One row per version: name, version, algorithm, created_at, metrics, current, ok."""
        rows = []
        for n in [name] if name else self.names():
            cur = self.current_version(n)
            for v in self.versions(n):
                try:
                    m = self.manifest(n, v)
                    ok, problem = True, ""
                except CorruptVersionError as exc:
                    m, ok, problem = {}, False, str(exc)
                rows.append({
                    "name": n, "version": v, "algorithm": m.get("algorithm", "?"),
                    "created_at": m.get("created_at", ""), "metrics": m.get("metrics", {}),
                    "current": v == cur, "ok": ok, "problem": problem,
                })
        return rows

    # ------------------------------------------------------------------ pointer moves
    def promote(self, name: str, version: str | None = None) -> str:
        """Make ``version`` (default: the newest) current, after verifying it."""
        with self._lock(name):
            if version is None:
                versions = self.versions(name)
                if not versions:
                    raise RegistryError(f"{name} has no versions; train one first")
                version = versions[-1]
            self.verify(name, version)
            self._check_loads(name, version)
            ptr = self._pointer(name)
            if ptr["version"] == version:
                return version
            history = ([ptr["version"]] if ptr["version"] else []) + ptr["history"]
            _write_json_atomic(
                self.root / name / CURRENT,
                {"version": version, "history": history[:HISTORY_LIMIT],
                 "updated_at": datetime.now(UTC).isoformat(timespec="seconds")},
            )
        log.info("promoted %s %s", name, version)
        return version

    def rollback(self, name: str) -> str:
        """Make the previous current version current again; returns it."""
        with self._lock(name):
            ptr = self._pointer(name)
            if not ptr["history"]:
                raise RegistryError(f"{name} has no previous version to roll back to")
            target, rest = ptr["history"][0], ptr["history"][1:]
            self.verify(name, target)
            self._check_loads(name, target)
            _write_json_atomic(
                self.root / name / CURRENT,
                {"version": target, "history": rest,
                 "updated_at": datetime.now(UTC).isoformat(timespec="seconds")},
            )
        log.info("rolled %s back to %s", name, target)
        return target  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ loading
    def _check_loads(self, name: str, version: str) -> None:
        """Load the version once before it becomes current: files whose checksums match what
        training wrote can still be unloadable (a bug, a version from other code), and a
        current version that no server can load would leave every server without the model."""
        try:
            self.load(name, version, verify=False)
        except Exception as exc:  # any failure to load means the version must not be current
            raise CorruptVersionError(
                f"{name} {version} cannot be loaded ({type(exc).__name__}: {exc}); it was not "
                "made current — train again"
            ) from exc

    def load(self, name: str, version: str | None = None, *, verify: bool = True) -> ModelHandle:
        """A verified version (default: current) as an id-based :class:`ModelHandle`."""
        from models import load_model

        version = version or self.current_version(name)
        if version is None:
            raise RegistryError(f"{name} has no current version; run `shoprank train --promote`")
        if verify:
            self.verify(name, version)
        else:
            self.manifest(name, version)
        return load_model(self.path(name, version), version=version)


# Module-level shortcuts (what serving calls).
def current_version(models_dir: Path | str, name: str) -> str | None:
    return Registry(models_dir).current_version(name)


def current_versions(models_dir: Path | str) -> dict[str, str]:
    return Registry(models_dir).current_versions()


def load(models_dir: Path | str, name: str, version: str | None = None) -> ModelHandle:
    return Registry(models_dir).load(name, version)
