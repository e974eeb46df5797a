"""Small helpers shared by every package's CLI module (the CLI's output layer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from stores.errors import StoreConfigError
from stores.factory import Stores, open_configured

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
def training_stores(settings: Settings) -> Iterator[StoreSource]:
    """The event and user stores the settings name (embedded under ``SHOPRANK_HOME``, or
    the database ``SHOPRANK_DATABASE_URL`` names): training reads the events every process
    stored and leaves out users erased or without consent."""
    from training.store_source import StoreSource  # pyarrow: only commands that train load it

    with home_stores(settings) as stores:
        yield StoreSource(stores.events, stores.users, stores.catalog)


def open_home_stores(settings: Settings) -> Stores:
    """The stores the settings name, for a command (a bad URL: exit 2 with one line)."""
    try:
        return open_configured(settings)
    except StoreConfigError as exc:
        fail(str(exc))


@contextmanager
def home_stores(settings: Settings) -> Iterator[Stores]:
    """:func:`open_home_stores`, closed when the block ends."""
    stores = open_home_stores(settings)
    try:
        yield stores
    finally:
        stores.close()
