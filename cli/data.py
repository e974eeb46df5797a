"""Commands of the data package for the `shoprank` CLI: generate, load, import."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:

    from data.models import Event
    from data.synthetic import GenerateSummary


def print_generate_summary(summary: GenerateSummary) -> None:
    """The rich summary table of a generated shop (also used by `shoprank demo`)."""
    from cli.support import console, table

    s = summary
    console.print(
        table(
            f"Generated shop → {s.out_dir} ({s.seconds:.1f}s)",
            ["what", "count"],
            [
                ["items", s.n_items],
                ["users", s.n_users],
                ["events", s.n_events],
                ["sessions", s.n_sessions],
                ["leaf categories covered", f"{s.leaves_covered}/{s.n_leaves}"],
                ["planted bundles", s.n_bundles],
                ["bundle co-purchases", s.bundle_copurchases],
                ["trending items", s.n_trending],
            ],
        )
    )
    console.print(
        table(
            "Events by type",
            ["type", "events", "share"],
            [
                [k, v, f"{v / max(s.n_events, 1):.1%}"]
                for k, v in sorted(s.counts.items(), key=lambda kv: -kv[1])
            ],
        )
    )
    console.print(table("Funnel", ["step", "rate"], [[k, f"{v:.2%}"] for k, v in s.funnel.items()]))
    console.print("files: " + ", ".join(s.files))


def _report_rejects(rejects: list, rejects_path: Path | None) -> None:
    from cli.support import err_console

    for r in rejects[:10]:
        err_console.print(
            f"[yellow]rejected[/] {r.file}:{r.line}: {r.reason}", highlight=False, soft_wrap=True
        )
    if len(rejects) > 10:
        err_console.print(f"… and {len(rejects) - 10} more", highlight=False)
    if rejects and rejects_path is not None:
        err_console.print(f"all rejected rows written to {rejects_path}", highlight=False)


def merge_records(target: Path, records: list, key: str) -> tuple[int, int]:
    """Upsert records into a JSON Lines file by ``key``, atomically; returns (added, updated)."""
    import json

    from core.fsutil import atomic_write

    existing: dict[str, str] = {}
    if target.exists():
        with target.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    existing[json.loads(line)[key]] = line.rstrip("\n")
    added = updated = 0
    for r in records:
        rid = getattr(r, key)
        if rid in existing:
            updated += 1
        else:
            added += 1
        existing[rid] = r.model_dump_json(exclude_none=True)
    atomic_write(target, ((line + "\n").encode("utf-8") for line in existing.values()))
    return added, updated


IMPORT_MARKER = "import.json"
"""Written next to an imported events.parquet: which format and file it came from."""


def import_conflicts(folder: Path) -> list[str]:
    """Event files in ``folder`` an import would replace, unless a previous import wrote them."""
    if (folder / IMPORT_MARKER).is_file():
        return []
    return [n for n in ("events.parquet", "events.jsonl") if (folder / n).exists()]


def replace_shop_events(folder: Path, fmt: str, source: Path, n_events: int) -> list[str]:
    """After an import into ``folder``: drop the other events file and the synthetic shop's
    truth (both described the replaced events), record the import; returns what was dropped."""
    import json

    from core.fsutil import atomic_write

    dropped = []
    for name in ("events.jsonl", "truth.json"):
        if (folder / name).exists():
            (folder / name).unlink()
            dropped.append(name)
    record = {"format": fmt, "file": str(source.resolve()), "events": n_events}
    atomic_write(folder / IMPORT_MARKER, json.dumps(record).encode("utf-8"))
    return dropped


def register(app: typer.Typer) -> None:
    """Add this package's commands to the main app."""

    @app.command("generate")
    def generate_cmd(
        users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 2_000,
        items: Annotated[int, typer.Option("--items", min=84, help="Number of items.")] = 1_000,
        events: Annotated[
            int, typer.Option("--events", min=1, help="About this many events.")
        ] = 100_000,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 42,
        days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 90,
        start: Annotated[
            str, typer.Option("--start", help="First day, YYYY-MM-DD.")
        ] = "2026-09-01",
        out: Annotated[
            Path | None, typer.Option("--out", help="Output folder (default: data dir).")
        ] = None,
        events_format: Annotated[
            str,
            typer.Option(
                "--format",
                help="auto (parquet, plus jsonl up to 200k events), parquet, jsonl, both.",
            ),
        ] = "auto",
        progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    ) -> None:
        """Generate a synthetic shop (items, users, events, hidden truth)."""
        from cli.support import fail
        from core.settings import get_settings
        from data.synthetic import ShopSpec, generate

        if events_format not in ("auto", "parquet", "jsonl", "both"):
            fail(f"--format must be auto, parquet, jsonl or both, not {events_format!r}")
        try:
            start_day = date.fromisoformat(start)
        except ValueError:
            fail(f"--start must be a date like 2026-09-01, not {start!r}")
        try:
            spec = ShopSpec(
                n_users=users,
                n_items=items,
                n_events=events,
                seed=seed,
                days=days,
                start=start_day,
                trend_days=min(3, days),
            )
        except ValueError as exc:
            fail(str(exc))
        fmt: Literal["auto", "parquet", "jsonl", "both"] = events_format  # type: ignore[assignment]
        folder = out or get_settings().data_dir
        summary = generate(spec, folder, progress=progress, events_format=fmt)
        (folder / IMPORT_MARKER).unlink(missing_ok=True)  # the events are the generated ones now
        print_generate_summary(summary)

    @app.command("quarantine")
    def quarantine_cmd(
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object a line instead of a table.")
        ] = False,
    ) -> None:
        """List stored records that training and start-up set aside (unreadable or out of range)."""
        import json

        from cli.support import console, table
        from core.settings import get_settings
        from data.quarantine import QUARANTINE_FILE, read_quarantine

        settings = get_settings()
        folders = [settings.data_dir, settings.events_dir, settings.state_dir]
        if settings.data_dir.is_dir():
            folders += [p for p in sorted(settings.data_dir.iterdir()) if p.is_dir()]
        entries = [q for f in folders for q in read_quarantine(f / QUARANTINE_FILE)]
        if as_json:
            for q in entries:
                typer.echo(json.dumps({"file": q.file, "record": q.record, "reason": q.reason,
                                       "raw": q.raw, "at": q.at}, ensure_ascii=False))
            return
        console.print(table(
            f"Quarantined records: {len(entries)}", ["file", "record", "reason", "set aside at"],
            [[q.file, q.record, q.reason, q.at] for q in entries],
        ))

    @app.command("load")
    def load_cmd(
        kind: Annotated[str, typer.Argument(help="items, users or events.")],
        file: Annotated[Path, typer.Argument(help="A .jsonl/.ndjson, .csv or .parquet file.")],
        rejects: Annotated[
            Path | None, typer.Option("--rejects", help="Write rejected rows here (JSON Lines).")
        ] = None,
        strict: Annotated[
            bool, typer.Option("--strict", help="Exit 2 (and load nothing) if any row is bad.")
        ] = False,
    ) -> None:
        """Validate a file and load it: items/users into the data dir's files and the stores,
        events into the event store."""
        from cli.support import console, fail, home_stores, table
        from core.settings import get_settings
        from data.loaders import Reject, iter_events, load_items, load_users

        if kind not in ("items", "users", "events"):
            fail(f"what to load must be items, users or events, not {kind!r}")
        settings = get_settings()
        if kind in ("items", "users"):
            loader = load_items if kind == "items" else load_users
            res = loader(file, rejects_path=rejects)
            _report_rejects(res.rejects, rejects)
            if strict and res.rejects:
                fail(f"{file}: {res.rejected} bad row(s) (--strict); nothing loaded")
            target = settings.data_dir / f"{kind}.jsonl"
            added, updated = merge_records(
                target, res.records, "item_id" if kind == "items" else "user_id"
            )
            with home_stores(settings) as stores:
                # stores the service has filled already take the rows now; empty ones import
                # the merged file at the service's first start
                store = stores.catalog if kind == "items" else stores.users
                if store.count():
                    for i in range(0, len(res.records), 5_000):
                        store.upsert(res.records[i : i + 5_000])  # type: ignore[arg-type]
            console.print(
                table(
                    f"Loaded {kind} → {target}",
                    ["loaded", "new", "updated", "rejected"],
                    [[res.loaded, added, updated, res.rejected]],
                )
            )
            return

        from data.loaders import write_rejects

        bad: list[Reject] = []
        if strict:
            for _ in iter_events(file, on_reject=bad.append):
                pass
            if bad:
                if rejects is not None:
                    write_rejects(bad, rejects)
                _report_rejects(bad, rejects)
                fail(f"{file}: {len(bad)} bad row(s) (--strict); nothing loaded")
        from tqdm import tqdm

        accepted = duplicates = 0
        with (
            home_stores(settings) as stores,
            tqdm(desc="events", unit="ev", unit_scale=True, disable=None) as bar,
        ):
            # a served shop's shopper state takes the new events too; before the first start
            # the service imports the stored events into it
            served = stores.catalog.count() > 0

            def store(batch: list[Event]) -> None:
                nonlocal accepted, duplicates
                r = stores.events.append(batch)
                accepted, duplicates = accepted + len(r.accepted), duplicates + len(r.duplicates)
                if served and r.accepted:
                    new = set(r.accepted)
                    stores.shopper.record([e for e in batch if e.event_id in new])
                bar.update(len(batch))

            batch: list[Event] = []
            for e in iter_events(file, on_reject=bad.append):
                batch.append(e)
                if len(batch) >= 10_000:
                    store(batch)
                    batch = []
            if batch:
                store(batch)
        if rejects is not None:
            write_rejects(bad, rejects)
        _report_rejects(bad, rejects)
        console.print(
            table(
                f"Loaded events → the {stores.durable} event store",
                ["stored", "duplicates", "rejected"],
                [[accepted, duplicates, len(bad)]],
            )
        )

    @app.command("sample-data")
    def sample_data_cmd(
        name: Annotated[str, typer.Argument(help="cdnow: the CDNOW purchases shipped in the "
                                            "lifetimes package.")],
        out: Annotated[Path, typer.Argument(help="The order log to write (CSV).")],
    ) -> None:
        """Write a real data set shipped inside an installed package as an order log that
        `shoprank load events` reads (nothing is downloaded)."""
        from cli.support import console, fail
        from data.formats.cdnow import write_order_log

        if name != "cdnow":
            fail(f"NAME must be cdnow, not {name!r}")
        n = write_order_log(out)
        console.print(f"wrote {n:,} orders to {out}")

    @app.command("import")
    def import_cmd(
        fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="movielens or retailrocket.")],
        file: Annotated[
            Path,
            typer.Argument(help="u.data, ratings.dat, ratings.csv or RetailRocket events.csv."),
        ],
        out: Annotated[
            Path | None,
            typer.Option("--out", help="Folder for events.parquet (default: the data dir, "
                         "where train, evaluate and tune read)."),
        ] = None,
        replace: Annotated[
            bool, typer.Option("--replace", help="Replace the events already in the folder.")
        ] = False,
        strict: Annotated[
            bool, typer.Option("--strict", help="Exit 2 if any line is bad.")
        ] = False,
    ) -> None:
        """Convert a public behavior log into the shop's events.parquet (plus
        import_rejects.jsonl), where `train`, `evaluate` and `tune` read it."""
        import pyarrow.parquet as pq

        from cli.support import console, fail, table
        from core.settings import get_settings
        from data.event_table import EVENT_SCHEMA, events_to_table
        from data.formats import ADAPTERS, iter_adapter
        from data.loaders import Reject, write_rejects

        if fmt not in ADAPTERS:
            fail(f"FORMAT must be one of {', '.join(ADAPTERS)}, not {fmt!r}")
        if not file.is_file():
            fail(f"FILE: no such file: {file}")
        folder = out or get_settings().data_dir
        held = import_conflicts(folder)
        if held and not replace:
            fail(f"{folder} already holds events ({', '.join(held)}); pass --replace to replace "
                 "them, or import into another home (--home)")
        folder.mkdir(parents=True, exist_ok=True)
        bad: list[Reject] = []
        n = 0
        buf = []
        target = folder / "events.parquet"
        tmp = folder / "events.parquet.tmp"
        with pq.ParquetWriter(tmp, EVENT_SCHEMA, compression="zstd") as w:
            for e in iter_adapter(fmt, file, on_reject=bad.append):
                buf.append(e)
                if len(buf) >= 200_000:
                    w.write_table(events_to_table(buf))
                    n += len(buf)
                    buf = []
            if buf:
                w.write_table(events_to_table(buf))
                n += len(buf)
        tmp.replace(target)
        replaced = replace_shop_events(folder, fmt, file, n)
        rejects_path = folder / "import_rejects.jsonl"
        if bad:
            write_rejects(bad, rejects_path)
        else:
            rejects_path.unlink(missing_ok=True)
        _report_rejects(bad, rejects_path if bad else None)
        console.print(table(f"Imported {fmt} → {target}", ["events", "rejected"], [[n, len(bad)]]))
        if replaced:
            console.print("replaced: " + ", ".join(replaced))
        if out is not None and folder != get_settings().data_dir:
            console.print(f"train, evaluate and tune read {get_settings().data_dir}; for this "
                          f"folder name it in a training config: [data] events = [\"{target}\"]")
        if strict and bad:
            fail(f"{file}: {len(bad)} bad line(s) (--strict)")
