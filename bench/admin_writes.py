"""Benchmark: what the admin writes cost — a catalog change, and erasing one user from the
shop's own files.

    python bench/admin_writes.py                 # the 1M-user bench shop's data folder
    python bench/admin_writes.py --data var/data # any shop folder (items, users, events)

Catalog: one upsert appended to the catalog journal (``CatalogJournal.upsert``: what an API
change costs before it is acknowledged, fsync included) against writing the whole
``items.jsonl`` (``Catalog.save``: what every API change cost before ``serving.catalog_saver``).
Erasure: ``data.erasure.erase_from_shop_files`` on a copy of the shop's users and events
files, for a user who is in them (the files are rewritten) and for one who is not (only
scanned). Prints a table and writes bench/results/admin_writes.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def catalog_costs(data: Path, appends: int, saves: int) -> dict[str, float]:
    from data.catalog import Catalog
    from data.journals import CatalogJournal

    catalog = Catalog.from_jsonl(data / "items.jsonl")
    item = next(iter(catalog))
    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        journal = CatalogJournal(Path(tmp) / "catalog.jsonl")
        times = []
        for _ in range(appends):
            t = time.perf_counter()
            journal.upsert([item])
            times.append(time.perf_counter() - t)
        save = []
        for _ in range(saves):
            t = time.perf_counter()
            catalog.save(Path(tmp) / "items.jsonl")
            save.append(time.perf_counter() - t)
    times.sort()
    return {
        "items": len(catalog),
        "journal_append_median_ms": statistics.median(times) * 1e3,
        "journal_append_p90_ms": times[int(len(times) * 0.9)] * 1e3,
        "catalog_save_median_s": statistics.median(save),
    }


def erasure_costs(data: Path) -> dict[str, float]:
    import pyarrow.parquet as pq

    from data.erasure import EVENTS_FILES, USERS_FILE, erase_from_shop_files

    with tempfile.TemporaryDirectory(dir=ROOT / "var") as tmp:
        shop = Path(tmp)
        for name in (USERS_FILE, *EVENTS_FILES):
            if (data / name).is_file():
                shutil.copy(data / name, shop / name)
        if (shop / "events.parquet").is_file():
            first = pq.ParquetFile(shop / "events.parquet").read_row_group(0, columns=["user_id"])
            user = first.column(0)[0].as_py()
        else:
            user = json.loads((shop / USERS_FILE).open().readline())["user_id"]
        t = time.perf_counter()
        present = erase_from_shop_files(shop, user)
        with_user = time.perf_counter() - t
        t = time.perf_counter()
        erase_from_shop_files(shop, user)
        without = time.perf_counter() - t
    return {"user_records": present.users + present.events, "erase_present_s": with_user,
            "erase_absent_s": without}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=ROOT / "var" / "bench-serve-1000000x100000" / "data")
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--results", type=Path,
                    default=ROOT / "bench" / "results" / "admin_writes.json")
    args = ap.parse_args()
    if not (args.data / "items.jsonl").is_file():
        raise SystemExit(f"{args.data}: no items.jsonl "
                         "(prepare the shop with python bench/serve.py --prepare-only)")
    (ROOT / "var").mkdir(exist_ok=True)
    cat = catalog_costs(args.data, args.appends, args.saves)
    era = erasure_costs(args.data)

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"admin writes: {cat['items']:,} items, shop files in {args.data}")
    t.add_column("what")
    t.add_column("cost", justify="right")
    t.add_row("catalog change: journal append (median / p90)",
              f"{cat['journal_append_median_ms']:.2f} / {cat['journal_append_p90_ms']:.2f} ms")
    t.add_row("catalog change before: write items.jsonl (median)",
              f"{cat['catalog_save_median_s']:.2f} s")
    t.add_row(f"erase a user from the shop files ({era['user_records']} records)",
              f"{era['erase_present_s']:.1f} s")
    t.add_row("erase a user the shop files do not hold", f"{era['erase_absent_s']:.1f} s")
    Console(width=120).print(t)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    command = "python bench/admin_writes.py " + " ".join(sys.argv[1:])
    args.results.write_text(json.dumps({**cat, **era, "data": str(args.data), "command": command},
                                       indent=2))


if __name__ == "__main__":
    main()
