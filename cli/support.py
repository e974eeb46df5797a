"""Small helpers shared by every package's CLI module (the CLI's output layer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from core.settings import Settings
    from training.store_source import StoreSource

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Stop the command with exit code 2 and a one-line reason."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def table(title: str, columns: list[str], rows: list[list[object]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(
            c,
            justify="right"
            if rows and isinstance(rows[0][columns.index(c)], (int, float))
            else "left",
        )
    for r in rows:
        t.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r])
    return t


@contextmanager
def training_stores(settings: Settings) -> Iterator[StoreSource | None]:
    """The shared event and user stores when ``SHOPRANK_DATABASE_URL`` names a database
    (training then reads the events every replica wrote), else None (the embedded files)."""
    if not settings.database_url:
        yield None
        return
    from stores.factory import open_stores  # only a shared deployment loads the drivers
    from training.store_source import StoreSource

    stores = open_stores(settings.database_url, None, settings.home)
    try:
        yield StoreSource(stores.events, stores.users)
    finally:
        stores.close()
