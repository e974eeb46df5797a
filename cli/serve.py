"""Commands of the serving package: ``shoprank serve`` and ``shoprank demo``."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from core.settings import Settings

DEMO_MODELS: dict[str, dict[str, object]] = {
    "item_knn": {"neighbors": 100},
    "als": {"factors": 32, "iterations": 10},
    "content": {},
    "trending": {},
    "popularity": {},
    "new_arrivals": {},
    "bought_together": {},
}


def _demo_key(state_dir: Path) -> str:
    """The demo's admin key: generated once into var/state/demo-admin-key (never committed)."""
    path = state_dir / "demo-admin-key"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(20)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _fresh_workers_dir(settings: Settings) -> Path:
    """The folder the workers of one run share: Prometheus's multiprocess files and each
    worker's count of active connections (``serving.balance``), emptied of an earlier run's."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.state_dir / "prometheus")
    path.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.db", "*.load", "cpu-*.lock"):
        for f in path.glob(pattern):
            f.unlink()
    return path


def _train_and_promote(settings: Settings) -> dict[str, str]:
    """Train, register and promote the demo models with the real train job (as
    ``shoprank train --promote`` does, with demo-sized parameters and a holdout pass on at
    most 2,000 users for the offline metrics)."""
    from tqdm import tqdm

    from cli.support import training_stores
    from training.config import ModelEntry, default_config
    from training.jobs import train

    cfg = default_config(settings.data_dir)
    cfg.models = [ModelEntry(name=n, algorithm=n, params=p) for n, p in DEMO_MODELS.items()]
    # a holdout pass on a sample of users, so the console's models page shows offline metrics
    cfg.train.holdout_metrics = True
    cfg.evaluation.max_users = min(cfg.evaluation.max_users or 2000, 2000)
    with (
        tqdm(total=2 * len(DEMO_MODELS) + 3, desc="train", unit="step", leave=False) as bar,
        training_stores(settings) as stores,
    ):

        def say(msg: str) -> None:
            bar.set_postfix_str(msg)
            bar.update(1)

        rep = train(cfg, settings.models_dir, events_dir=settings.events_dir, promote=True,
                    progress=say, stores=stores)
    return {m.name: m.version for m in rep.models}


def _prepare_stores_in_child(settings: Settings) -> str | None:
    """Migrate the stores and import the shop files into empty ones; the error's one line.
    Then load the serving models once: that compiles the ranking kernels into numba's
    on-disk cache (and writes the derived arrays), which every worker then loads instead of
    compiling them itself at its first start (about 40 MB a worker that stays)."""
    from ranking.modelset import load_model_set
    from serving.storage import check_stores
    from stores.errors import StoreConfigError

    try:
        check_stores(settings)
    except StoreConfigError as exc:
        return str(exc)
    load_model_set(settings.models_dir, derived_dir=settings.derived_dir)
    return None


def _prepare_stores(settings: Settings) -> None:
    """:func:`serving.storage.check_stores` in a child process: a first start's import reads
    whole event tables, and the memory a process has used stays with it, so the server's own
    process (uvicorn's supervisor, or the single worker) would keep it for its lifetime."""
    from cli.support import fail

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        error = pool.apply(_prepare_stores_in_child, (settings,))
    if error is not None:
        fail(error)


def _check_port(host: str, port: int) -> None:
    """Exit 2 with one line when the address is taken (uvicorn would log and exit 1)."""
    from cli.support import fail

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}; stop the program "
                 "using it or pass another --port")


def _check_pinning(workers: int) -> None:
    """Exit 2 with one line when the workers cannot each have a CPU of their own."""
    from cli.support import fail
    from serving.cpus import usable_cpus

    cpus = usable_cpus()
    if not cpus:
        fail("--pin-workers needs the OS to pin processes to CPUs (Linux); leave the workers "
             "unpinned")
    if len(cpus) < workers:
        fail(f"--pin-workers: {workers} workers but this process may run on {len(cpus)} "
             f"CPU(s); pass --workers {len(cpus)} or leave the workers unpinned")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("serve")
    def serve_cmd(
        host: Annotated[str | None, typer.Option("--host", help="Default: settings.host.")] = None,
        port: Annotated[int | None, typer.Option("--port", help="Default: settings.port.")] = None,
        workers: Annotated[
            int, typer.Option("--workers", min=1, help="uvicorn worker processes.")
        ] = 1,
        pin_workers: Annotated[
            bool | None,
            typer.Option("--pin-workers/--no-pin-workers",
                         help="One CPU per worker, for a box that runs nothing else "
                              "(default: settings.pin_workers)."),
        ] = None,
    ) -> None:
        """Serve the HTTP API (recommendations, feed, search, events, admin)."""
        import uvicorn

        from cli.support import fail
        from core.settings import get_settings
        from serving.balance import ENV as WORKERS_ENV
        from serving.http import UVICORN_OPTIONS

        s = get_settings()
        pin = s.pin_workers if pin_workers is None else pin_workers
        if pin_workers and workers < 2:
            fail("--pin-workers pins the workers of --workers N (N ≥ 2); one worker is "
                 "not pinned")
        if pin and workers > 1:
            _check_pinning(workers)
            os.environ["SHOPRANK_PIN_WORKERS"] = "1"  # the workers read their settings
        elif pin_workers is False:
            os.environ["SHOPRANK_PIN_WORKERS"] = "0"
        _check_port(host or s.host, port or s.port)
        _prepare_stores(s)  # a bad store URL or a server that does not answer: one line, exit 2
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")  # the workers are the parallelism (see serving.app)
        if workers > 1:
            shared = str(_fresh_workers_dir(s))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[WORKERS_ENV] = shared
        options: dict[str, Any] = {
            "factory": True, "host": host or s.host, "port": port or s.port, "workers": workers,
            "log_level": s.log_level.lower(), "access_log": False,
            "timeout_keep_alive": s.keep_alive_seconds,
            **UVICORN_OPTIONS,  # a response in one write (serving.http)
        }
        # a worker holds nothing the others need (serving.storage): uvicorn's own workers,
        # which its supervisor replaces when they die
        uvicorn.run("serving.app:app_factory", **options)

    @app.command("demo")
    def demo_cmd(
        port: Annotated[int, typer.Option("--port")] = 8000,
        users: Annotated[int, typer.Option("--users", min=1)] = 2_000,
        items: Annotated[int, typer.Option("--items", min=84)] = 1_000,
        events: Annotated[int, typer.Option("--events", min=1)] = 100_000,
        serve: Annotated[
            bool, typer.Option("--serve/--no-serve", help="Start the API at the end.")
        ] = True,
    ) -> None:
        """Generate a sample shop (if absent), train, index, start the API, print example calls."""

        from cli.support import console
        from core.settings import get_settings

        s = get_settings()
        if not (s.data_dir / "items.jsonl").exists():
            from cli.data import print_generate_summary
            from data.synthetic import ShopSpec, generate

            console.print(f"==> generating a sample shop in {s.data_dir}")
            print_generate_summary(
                generate(ShopSpec(n_users=users, n_items=items, n_events=events), s.data_dir)
            )
        from models.registry import Registry

        if not Registry(s.models_dir).current_versions():
            console.print("==> training and promoting models")
            versions = _train_and_promote(s)
            console.print("    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        from data.erasure import events_file
        from search.factory import open_backend
        from search.indexing import index_catalog

        backend = open_backend(s)
        try:
            if backend.count() == 0:  # with the events: popularity and behaviour vectors
                console.print("==> building the embedded search index")
                summary = index_catalog(backend, s.data_dir / "items.jsonl",
                                        events_path=events_file(s.data_dir), rebuild=True)
                console.print(f"    {summary.indexed} items indexed")
        finally:
            backend.close()
        key = s.admin_api_key.get_secret_value() if s.admin_api_key else _demo_key(s.state_dir)
        base = f"http://127.0.0.1:{port}"
        console.print(f"\n==> shoprank API on {base}  (docs: {base}/docs)")
        console.print(f"    merchandiser console: {base}/console  (log in with the admin key)")
        console.print(
            f"    admin key (generated into {s.state_dir / 'demo-admin-key'}): {key}\n",
            soft_wrap=True,
        )
        examples = [
            f"curl -s '{base}/v1/recommendations?user_id=u1&n=5'",
            f"curl -s '{base}/v1/feed?user_id=u1&size=10&debug=true'",
            f"curl -s '{base}/v1/items/i1/similar?n=5'",
            f"curl -s '{base}/v1/trending?n=5'",
            f"curl -s '{base}/v1/search?q=%E9%80%A3%E8%A1%A3%E8%A3%99&user_id=u1'   # 連衣裙",
            f"curl -s -X POST {base}/v1/events -H 'Content-Type: application/json' "
            "-d '{\"events\":[{\"event_id\":\"demo-1\",\"user_id\":\"u1\",\"item_id\":\"i2\","
            "\"type\":\"view\",\"timestamp\":\"2026-12-01T12:00:00Z\"}]}'",
            f"curl -s {base}/v1/models -H 'X-API-Key: {key}'",
        ]
        for e in examples:
            console.print(e, highlight=False, soft_wrap=True)
        if not serve:
            return
        os.environ["SHOPRANK_ADMIN_API_KEY"] = key
        import uvicorn

        from serving.http import UVICORN_OPTIONS

        console.print("\n(Ctrl-C to stop)")
        uvicorn.run(
            "serving.app:app_factory",
            factory=True,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **UVICORN_OPTIONS,
        )
