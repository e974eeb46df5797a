"""The `shoprank` command. A thin layer: each package registers its own commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from data.errors import ShopRankError
from serving.cli_support import err_console
from serving.logging_setup import configure_logging

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
            from serving.cli_support import fail

            fail(f"--config: no such file: {config}")
        os.environ["SHOPRANK_CONFIG"] = str(config)
    if home is not None:
        os.environ["SHOPRANK_HOME"] = str(home)
    if log_level is not None:
        os.environ["SHOPRANK_LOG_LEVEL"] = log_level
    from serving.settings import get_settings

    s = get_settings()
    configure_logging(s.log_level, s.log_format)


def _register() -> None:
    # Each module keeps heavy imports inside its command functions.
    from analytics import cli as analytics_cli
    from data import cli as data_cli
    from recsys import cli as recsys_cli
    from search import cli as search_cli
    from serving import app_cli
    from training import cli as training_cli

    for module in (data_cli, training_cli, search_cli, recsys_cli, analytics_cli, app_cli):
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
