"""Serving test fixtures: a tiny trained shop and the real app served by uvicorn on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import uvicorn

from core.settings import Settings
from models import ModelHandle
from models.registry import Registry
from serving.app import create_app
from serving.state import Services
from tests.serving import shop

ADMIN_KEY = "test-admin-" + "k" * 16
STOREFRONT_KEY = "test-store-" + "s" * 16


@dataclass
class Live:
    url: str
    services: Services
    home: Path

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


class WorkerPool(NamedTuple):
    base: str
    metrics_dir: Path
    """The Prometheus multiprocess dir."""
    pid: int
    """The parent process (the workers are its children)."""


@contextmanager
def two_worker_server(home: Path, **env_vars: str) -> Iterator[WorkerPool]:
    """``shoprank serve --workers 2`` on ``home`` as its own process, yielded once both
    workers have answered (each writes its own latency file at its first request)."""
    port = free_port()
    metrics_dir = home / "state" / "prometheus"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SHOPRANK_HOME=str(home), SHOPRANK_SEARCH_BACKEND="embedded",
               SHOPRANK_MODEL_POLL_SECONDS="0", SHOPRANK_LOG_LEVEL="WARNING", **env_vars)
    err_path = home / "server.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--workers", "2", "--port", str(port)],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err,
        )

    def why() -> str:
        state = "running" if proc.poll() is None else f"exited {proc.returncode}"
        return f"server {state}; its stderr:\n" + err_path.read_text(errors="replace")[-3000:]

    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness: the socket accepts and /healthz is 200
            assert proc.poll() is None, why()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start; " + why()
            time.sleep(0.2)
        while len({p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("histogram_*.db")}) < 2:
            assert time.monotonic() < deadline, "the second worker did not start; " + why()
            try:  # a new connection each time
                httpx.get(f"{base}/healthz", timeout=5)
            except httpx.HTTPError as exc:  # a listening worker stopped: say why
                raise AssertionError(f"{exc!r}; {why()}") from exc
            time.sleep(0.1)
        yield WorkerPool(base, metrics_dir, proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn in a background thread; `start` returns once the socket accepts requests."""

    def __init__(self, app: object, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.port = port
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def shop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data.synthetic import ShopSpec, generate

    home = tmp_path_factory.mktemp("serving-shop")
    generate(
        ShopSpec(n_users=400, n_items=800, n_events=40_000, seed=11, days=30),
        home / "data",
        progress=False,
    )
    return home


def make_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "environment": "test",
        "admin_api_key": ADMIN_KEY,
        "search_backend": "embedded",
        "model_poll_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def trained(shop_home: Path) -> dict[str, ModelHandle]:
    """The models, fitted once, registered as version v1 and promoted."""
    handles = shop.train(shop_home / "data")
    reg = Registry(shop_home / "models")
    for name, handle in handles.items():
        reg.register(name, handle.model, version="v1")
        reg.promote(name, "v1")
    return handles


@pytest.fixture()
def restart_home(shop_home: Path, trained: dict[str, ModelHandle], tmp_path: Path) -> Path:
    """A copy of the test shop (data + models) that a test may change and restart."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(shop_home / "data", home / "data")
    shutil.copytree(shop_home / "models", home / "models")
    return home


def start_live(home: Path, **overrides: object) -> tuple[ServerThread, Live]:
    settings = make_settings(home, **overrides)
    services = Services.build(settings)
    assert services.search is not None
    if services.search.count() == 0:
        services.search.rebuild(iter(services.catalog))
    server = ServerThread(create_app(settings, services), free_port())
    server.start()
    return server, Live(f"http://127.0.0.1:{server.port}", services, home)


@pytest.fixture(scope="session")
def live(shop_home: Path, trained: dict[str, ModelHandle]) -> Iterator[Live]:
    """The app over HTTP with the registry's models and an embedded index."""
    server, lv = start_live(shop_home)
    assert lv.services.models.versions.get("als") == "v1"
    yield lv
    server.stop()
    lv.services.close()


@pytest.fixture()
def client(live: Live) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c


@pytest.fixture()
def admin(live: Live) -> Iterator[httpx.Client]:
    with live.client(ADMIN_KEY) as c:
        yield c
