"""The `shoprank` command. A thin layer: each package registers its own commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.support import err_console
from core.errors import ShopRankError
from core.logging_setup import configure_logging

app = typer.Typer(
    name="shoprank",
    help="Personalized recommendations and product search for e-commerce.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="Folder for data, events, models and index.")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
) -> None:
    if config is not None:
        if not config.is_file():
            from cli.support import fail

            fail(f"--config: no such file: {config}")
        os.environ["SHOPRANK_CONFIG"] = str(config)
    if home is not None:
        os.environ["SHOPRANK_HOME"] = str(home)
    if log_level is not None:
        os.environ["SHOPRANK_LOG_LEVEL"] = log_level
    from core.settings import get_settings

    s = get_settings()
    configure_logging(s.log_level, s.log_format)


def _register() -> None:
    # Each module keeps heavy imports inside its command functions.
    from cli import data as data_cli
    from cli import merch as merch_cli
    from cli import search as search_cli
    from cli import serve as app_cli
    from cli import training as training_cli

    for module in (data_cli, training_cli, search_cli, merch_cli, app_cli):
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except ShopRankError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
