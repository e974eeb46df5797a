"""Commands of the search package: ``index``, ``search``, ``suggest``, ``search-eval``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from core.settings import Settings
    from search.backend import SearchBackend


def parse_filter(spec: str) -> dict[str, object]:
    """``brand=Nike,Adidas`` (terms), ``price=100..500`` / ``price=..99`` (range, inclusive),
    ``in_stock=true`` (bool) → a filter dict for `search.query.SearchRequest`."""
    from search.errors import SearchRequestError
    from search.query import BOOL_FIELDS, RANGE_FIELDS, TERMS_FIELDS

    field, sep, value = spec.partition("=")
    field, value = field.strip(), value.strip()
    if not sep or not field or not value:
        raise SearchRequestError("--filter", f"write FIELD=VALUE, not {spec!r}")
    if field in BOOL_FIELDS:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SearchRequestError(field, f"expects true or false, not {value!r}")
        return {"type": "bool", "field": field, "value": value.lower() in ("true", "1", "yes")}
    if field in RANGE_FIELDS:
        low, dots, high = value.partition("..")
        if not dots:
            low = high = value
        try:
            bounds = {k: float(v) for k, v in (("gte", low), ("lte", high)) if v.strip()}
        except ValueError:
            raise SearchRequestError(field, f"expects LOW..HIGH numbers, not {value!r}") from None
        return {"type": "range", "field": field, **bounds}
    if field in TERMS_FIELDS:
        return {
            "type": "terms",
            "field": field,
            "values": [v.strip() for v in value.split(",") if v.strip()],
        }
    allowed = ", ".join(TERMS_FIELDS + RANGE_FIELDS + BOOL_FIELDS)
    raise SearchRequestError("--filter", f"unknown field {field!r}; allowed: {allowed}")


def _backend(settings: Settings) -> SearchBackend:
    from search.factory import open_backend

    return open_backend(settings)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("index")
    def index_cmd(
        items: Annotated[
            Path | None,
            typer.Option("--items", help="Catalog file (default: the catalog store, or "
                         "DATA_DIR/items.jsonl before the service first started)."),
        ] = None,
        events: Annotated[
            Path | None,
            typer.Option(
                "--events",
                help="Events file for popularity and the behaviour vectors "
                "(default: DATA_DIR/events.parquet if present).",
            ),
        ] = None,
        incremental: Annotated[
            bool,
            typer.Option(
                "--incremental", help="Upsert into the live index instead of an atomic rebuild."
            ),
        ] = False,
    ) -> None:
        """Index the catalog into the configured search backend (embedded or OpenSearch)."""
        from tqdm import tqdm

        from cli.support import console, fail, home_stores, table
        from core.settings import get_settings
        from data.models import Item
        from search.indexing import index_catalog

        s = get_settings()
        stored: list[Item] | None = None
        if items is None:  # the catalog store's items, with every API change
            with home_stores(s) as stores:
                stored = list(stores.catalog.iter_items()) if stores.catalog.count() else None
        path = items or s.data_dir / "items.jsonl"
        if stored is None and not path.is_file():
            fail(f"--items: no such file: {path} (run `shoprank generate` or pass --items)")
        if events is None:
            default_events = s.data_dir / "events.parquet"
            events = default_events if default_events.is_file() else None
        elif not events.is_file():
            fail(f"--events: no such file: {events}")
        backend = _backend(s)
        try:
            with tqdm(desc=f"indexing ({backend.name})", unit=" items") as bar:
                summary = index_catalog(
                    backend, None if stored is not None else path, items=stored,
                    events_path=events, rebuild=not incremental, progress=bar.update,
                )
        finally:
            backend.close()
        console.print(
            table(
                f"Indexed {'the catalog store' if stored is not None else path}",
                ["what", "value"],
                [
                    ["backend", summary.backend],
                    ["items indexed", summary.indexed],
                    ["rows rejected", summary.rejected],
                    ["items with popularity", summary.with_popularity],
                    ["seconds", round(summary.seconds, 2)],
                    ["mode", "upsert" if incremental else "atomic rebuild"],
                ],
            )
        )

    @app.command("search")
    def search_cmd(
        query: Annotated[str, typer.Argument(help="Search text (may be empty to browse).")] = "",
        facet: Annotated[
            list[str] | None,
            typer.Option(
                "--facet", "-f", help="Facet field (repeatable): brand, category_l1, price, …"
            ),
        ] = None,
        filter_: Annotated[
            list[str] | None,
            typer.Option(
                "--filter",
                help="FIELD=VALUE (repeatable): brand=A,B  price=100..500  in_stock=true",
            ),
        ] = None,
        sort: Annotated[
            str, typer.Option("--sort", help="relevance, price_asc, price_desc, newest, popularity")
        ] = "relevance",
        page: Annotated[int, typer.Option("--page")] = 1,
        size: Annotated[int, typer.Option("--size")] = 10,
        typos: Annotated[bool, typer.Option("--typos/--no-typos", help="Typo tolerance.")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Run one search against the configured backend and print hits and facets."""
        from pydantic import ValidationError
        from rich.markup import escape

        from cli.support import console, fail, table
        from core.errors import describe
        from core.settings import get_settings
        from search.query import SearchRequest

        try:
            request = SearchRequest(
                text=query,
                facets=facet or [],
                filters=[parse_filter(f) for f in (filter_ or [])],
                sort=sort,  # type: ignore[arg-type]
                page=page,
                size=size,
                typo_tolerance=typos,
            )
        except ValidationError as exc:
            fail(describe(exc))
        backend = _backend(get_settings())
        try:
            result = backend.search(request)
        finally:
            backend.close()
        if as_json:
            console.print_json(result.model_dump_json())
            return
        rows = [
            [
                result.offset + n + 1,
                h.item_id,
                _em_to_rich(h.highlighted_title),
                h.brand or "",
                " > ".join(h.category),
                f"{h.price:,.0f} {h.currency}",
                h.stock,
                round(h.score, 3),
            ]
            for n, h in enumerate(result.hits)
        ]
        console.print(
            table(
                f"{result.total} hits for {escape(repr(query))} "
                f"({result.backend}, {result.took_ms:.1f} ms)",
                ["#", "item", "title", "brand", "category", "price", "stock", "score"],
                rows,
            )
        )
        for field, values in result.facets.items():
            console.print(
                table(
                    f"facet {field}",
                    ["value", "count", "selected"],
                    [[v.value, v.count, "✓" if v.selected else ""] for v in values],
                )
            )

    @app.command("suggest")
    def suggest_cmd(
        prefix: Annotated[str, typer.Argument(help="What the shopper typed so far.")],
        size: Annotated[int, typer.Option("--size", min=1, max=50)] = 10,
    ) -> None:
        """Autocomplete: brands, categories and titles starting with PREFIX."""
        from cli.support import console, table
        from core.settings import get_settings

        backend = _backend(get_settings())
        try:
            got = backend.suggest(prefix, size)
        finally:
            backend.close()
        console.print(
            table(
                f"suggestions for {prefix!r}",
                ["kind", "text", "items"],
                [[s.kind, s.text, s.count] for s in got],
            )
        )

    @app.command("search-eval")
    def search_eval_cmd(
        items: Annotated[
            Path | None,
            typer.Option("--items", help="Synthetic shop items (default: DATA_DIR/items.jsonl)."),
        ] = None,
        backend: Annotated[
            str,
            typer.Option(
                "--backend",
                help="embedded, opensearch or both (OpenSearch needs SHOPRANK_OPENSEARCH_URL).",
            ),
        ] = "embedded",
        queries: Annotated[
            int, typer.Option("--queries", min=10, help="Labeled queries to generate.")
        ] = 300,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
        k: Annotated[int, typer.Option("--k", min=1, max=100)] = 10,
        out: Annotated[
            Path | None, typer.Option("--out", help="Write the report JSON here.")
        ] = None,
        query_set: Annotated[
            str,
            typer.Option(
                "--set",
                help="generated (from the title templates) or shopper "
                "(hand-written, judged by rules).",
            ),
        ] = "generated",
        bare: Annotated[
            bool,
            typer.Option(
                "--bare", help="Search the backend alone: no price words, relaxation or hybrid."
            ),
        ] = False,
        events: Annotated[
            Path | None,
            typer.Option(
                "--events",
                help="The shop's events, for the behaviour vectors "
                "(default: events.parquet beside --items, if present).",
            ),
        ] = None,
        no_events: Annotated[
            bool, typer.Option("--no-events", help="Leave the behaviour vectors out.")
        ] = False,
    ) -> None:
        """NDCG@k of search on the synthetic shop, per backend and query group."""
        import json

        from cli.support import console, fail, table
        from core.settings import get_settings
        from search.relevance import evaluate_backends

        s = get_settings()
        path = items or s.data_dir / "items.jsonl"
        if not path.is_file():
            fail(f"--items: no such file: {path} (run `shoprank generate` or pass --items)")
        kinds = {
            "embedded": ["embedded"],
            "opensearch": ["opensearch"],
            "both": ["embedded", "opensearch"],
        }
        if backend not in kinds:
            fail(f"--backend must be embedded, opensearch or both, not {backend!r}")
        if "opensearch" in kinds[backend] and not s.opensearch_url:
            fail(
                "--backend opensearch needs SHOPRANK_OPENSEARCH_URL "
                "(start one with scripts/opensearch start)"
            )
        if query_set not in ("generated", "shopper"):
            fail(f"--set must be generated or shopper, not {query_set!r}")
        if events is not None and not events.is_file():
            fail(f"--events: no such file: {events}")
        if events is None and not no_events and (path.parent / "events.parquet").is_file():
            events = path.parent / "events.parquet"
        report = evaluate_backends(
            path,
            kinds[backend],
            settings=s,
            n_queries=queries,
            seed=seed,
            k=k,
            query_set=query_set,
            engine=not bare,
            events_path=None if no_events else events,
        )  # type: ignore[arg-type]
        groups = sorted({g for r in report.values() for g in r.by_group})
        rows = [
            [
                name,
                r.n_queries,
                r.ndcg,
                *[r.by_group.get(g, float("nan")) for g in groups],
                r.seconds,
            ]
            for name, r in report.items()
        ]
        console.print(
            table(
                f"search relevance, NDCG@{k}",
                ["backend", "queries", "all", *groups, "seconds"],
                rows,
            )
        )
        for name, r in report.items():
            console.print(
                f"{name}: {len(r.zero_results)} queries without results"
                + (f" ({', '.join(r.zero_results)})" if r.zero_results else "")
            )
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps(
                    {n: r.to_dict() for n, r in report.items()}, indent=2, ensure_ascii=False
                )
            )
            console.print(f"report: {out}")


def _em_to_rich(highlighted: str) -> str:
    import html

    from rich.markup import escape

    text = escape(html.unescape(highlighted.replace("<em>", "\x01").replace("</em>", "\x02")))
    return text.replace("\x01", "[bold yellow]").replace("\x02", "[/]")
