"""Small helpers shared by every package's CLI module (the CLI's output layer)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

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
