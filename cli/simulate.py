"""``shoprank simulate``: a generated shop's shoppers use the live API (``simulate``)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("simulate")
    def simulate_cmd(
        sessions: Annotated[int, typer.Option(
            "--sessions", min=1, help="Storefront sessions.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 1,
        explore: Annotated[float, typer.Option(
            "--explore", min=0.0, max=0.5, help="Share of shoppers shown random orders.")] = 0.0,
    ) -> None:
        """Synthetic shoppers of a generated shop use the live API (in process) and send back
        impressions, clicks, carts and purchases drawn from their hidden tastes."""
        from cli.support import console, fail
        from core.settings import get_settings
        from simulate.bootstrap import simulate_traffic

        s = get_settings()
        if not (s.data_dir / "truth_users.parquet").exists():
            fail(f"--sessions: {s.data_dir} holds no generated shop (run `shoprank generate`)")
        try:
            st = simulate_traffic(s, sessions, seed=seed, explore_share=explore,
                                  say=lambda m: console.print(m))
        except ValueError as exc:
            fail(str(exc))
        console.print(f"simulated: {st}")
