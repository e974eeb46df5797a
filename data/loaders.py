"""Read items, users and events from JSON Lines, CSV and Parquet files.

The format is chosen by extension: ``.jsonl``/``.ndjson``/``.json-lines``, ``.csv``,
``.parquet``. Two ways in:

* Validated records, row by row (:func:`load_items`, :func:`load_users`, :func:`load_events`,
  :func:`iter_events`): every row goes through the pydantic model; a bad row becomes a
  :class:`Reject` (file, line, reason, raw text), is optionally written to a rejects file
  (JSON Lines), and the rest of the file still loads. ``strict=True`` raises
  :class:`RejectedRowsError` after the whole file has been read.
* A fast columnar reader for training (:func:`read_events_table`): Arrow all the way, checks
  done on whole columns, invalid rows dropped and counted (logged), never pydantic per row.

Flat files may carry nested fields as prefixed columns: ``context.query`` or ``context_query``
(events), ``attributes.colour`` or ``attributes_colour`` (items, users). A ``context`` or
``attributes`` cell holding a JSON object also works.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import describe
from data.errors import LoaderError
from data.models import Event, EventContext, Item, User

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

FileFormat = Literal["jsonl", "csv", "parquet"]
_EXTENSIONS: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json-lines": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
}
_NESTED = ("context", "attributes")
_LIST_FIELDS = ("category", "tags")
_CHECKED = ("user_id", "item_id", "type", "timestamp", "value")
"""Columns the columnar reader always reads, because the validity checks use them."""

M = TypeVar("M", bound=BaseModel)


class RejectedRowsError(LoaderError):
    """Strict mode found bad rows."""


@dataclass(frozen=True)
class Reject:
    """One row set aside: where it was, why, and its raw text."""

    file: str
    line: int
    """1-based line number (JSON Lines, CSV; the header is line 1) or row number (Parquet)."""
    reason: str
    raw: str

    def to_json(self) -> str:
        return json.dumps(
            {"file": self.file, "line": self.line, "reason": self.reason, "raw": self.raw},
            ensure_ascii=False,
        )


@dataclass(frozen=True)
class LoadResult(Generic[M]):
    path: Path
    records: list[M] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return len(self.records)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


def detect_format(path: Path | str) -> FileFormat:
    """The file format from the extension; :class:`LoaderError` if unknown."""
    p = Path(path)
    name = p.name.lower()
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise LoaderError(f"{p}: unknown file type; use .jsonl (or .ndjson), .csv or .parquet")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    if not path.is_file():
        raise LoaderError(f"{path}: not a file")


# ----------------------------------------------------------------------------------------------
# Raw rows: (line, row or None, raw text, error or None)

RawRow = tuple[int, dict[str, Any] | None, str, str | None]


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with path.open("rb") as f:
        for lineno, raw_bytes in enumerate(f, start=1):
            try:
                raw = raw_bytes.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield (
                    lineno,
                    None,
                    raw_bytes.decode("utf-8", "replace").rstrip("\r\n"),
                    f"not UTF-8: {exc.reason}",
                )
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield lineno, None, raw, f"invalid JSON: {exc.msg} at column {exc.colno}"
                continue
            if not isinstance(obj, dict):
                yield lineno, None, raw, "each line must be a JSON object"
                continue
            yield lineno, obj, raw, None


def _csv_rows(path: Path) -> Iterator[RawRow]:
    try:
        f = path.open("r", encoding="utf-8-sig", newline="")
        header_line = f.readline()
    except UnicodeDecodeError as exc:
        raise LoaderError(f"{path}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from exc
    with f:
        header = next(csv.reader([header_line]), None)
        if not header or not any(h.strip() for h in header):
            raise LoaderError(f"{path}: the first line must be a header naming the columns")
        header = [h.strip() for h in header]
        reader = csv.reader(f)
        prev_end = 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield reader.line_num + 1, None, "", f"unreadable CSV: {exc}"
                prev_end = reader.line_num + 1
                continue
            lineno = prev_end + 1
            prev_end = reader.line_num + 1
            raw = ",".join(values)
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield lineno, None, raw, f"has {len(values)} fields, the header has {len(header)}"
                continue
            yield lineno, dict(zip(header, values, strict=True)), raw, None


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise LoaderError(f"{path}: not a readable Parquet file ({exc})") from exc
    row = 0
    for batch in pf.iter_batches(batch_size=10_000):
        for obj in batch.to_pylist():
            row += 1
            yield row, obj, json.dumps(obj, ensure_ascii=False, default=str), None


def iter_raw_rows(path: Path | str) -> Iterator[RawRow]:
    """Every row of the file as a dict, with its line number and raw text (or a parse error)."""
    p = Path(path)
    fmt = detect_format(p)
    _check_readable(p)
    if fmt == "jsonl":
        return _jsonl_rows(p)
    if fmt == "csv":
        return _csv_rows(p)
    return _parquet_rows(p)


def _maybe_json(v: Any, opener: str) -> Any:
    if isinstance(v, str) and v.strip().startswith(opener):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


_CONTEXT_KEYS = frozenset(EventContext.model_fields)


def normalize_row(row: dict[str, Any], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """Flat/prefixed columns → the models' nested shape; empty cells and nulls dropped.

    For events, bare context columns (``session_id``, ``query``, … as in the columnar
    event schema) also go into ``context``.
    """
    out: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, str) and value == ""):
            continue
        k = key.strip()
        if model is Event and k in _CONTEXT_KEYS:
            nested.setdefault("context", {})[k] = value
            continue
        for prefix in _NESTED:
            if k.startswith(prefix + ".") or k.startswith(prefix + "_"):
                nested.setdefault(prefix, {})[k[len(prefix) + 1 :]] = value
                break
        else:
            if k in _NESTED:
                value = _maybe_json(value, "{")
                if isinstance(value, dict):
                    value = {ck: cv for ck, cv in value.items() if cv is not None}
            elif k in _LIST_FIELDS:
                value = _maybe_json(value, "[")
            out[k] = value
    for prefix, values in nested.items():
        base = out.get(prefix)
        if isinstance(base, dict):
            values = {**base, **values}
        out[prefix] = values
    return out


def iter_records(
    path: Path | str, model: type[M], *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[M]:
    """Validated records of ``model``; bad rows go to ``on_reject`` (or are logged)."""
    p = Path(path)
    for line, row, raw, error in iter_raw_rows(p):
        if row is not None and error is None:
            try:
                yield model.model_validate(normalize_row(row, model))
                continue
            except ValidationError as exc:
                error = describe(exc)
        reject = Reject(str(p), line, error or "unreadable row", raw)
        if on_reject is not None:
            on_reject(reject)
        else:
            log.warning("%s:%d: %s", p, line, reject.reason)


def write_rejects(rejects: Iterable[Reject], path: Path | str) -> int:
    """Write rejects as JSON Lines (file, line, reason, raw); returns how many."""
    n = 0
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for r in rejects:
            f.write(r.to_json() + "\n")
            n += 1
    return n


def _load(
    path: Path | str, model: type[M], rejects_path: Path | str | None, strict: bool
) -> LoadResult[M]:
    p = Path(path)
    result: LoadResult[M] = LoadResult(p)
    result.records.extend(iter_records(p, model, on_reject=result.rejects.append))
    if result.rejects:
        first = result.rejects[0]
        log.warning(
            "%s: %d bad row(s) set aside; first at line %d: %s",
            p,
            len(result.rejects),
            first.line,
            first.reason,
        )
    if rejects_path is not None:
        write_rejects(result.rejects, rejects_path)
    if strict and result.rejects:
        first = result.rejects[0]
        where = f" (all written to {rejects_path})" if rejects_path is not None else ""
        raise RejectedRowsError(
            f"{p}: {len(result.rejects)} bad row(s){where}; "
            f"first at line {first.line}: {first.reason}"
        )
    return result


def load_items(
    path: Path | str, *, rejects_path: Path | str | None = None, strict: bool = False
) -> LoadResult[Item]:
    return _load(path, Item, rejects_path, strict)


def load_users(
    path: Path | str, *, rejects_path: Path | str | None = None, strict: bool = False
) -> LoadResult[User]:
    return _load(path, User, rejects_path, strict)


def load_events(
    path: Path | str, *, rejects_path: Path | str | None = None, strict: bool = False
) -> LoadResult[Event]:
    return _load(path, Event, rejects_path, strict)


def iter_items(
    path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[Item]:
    return iter_records(path, Item, on_reject=on_reject)


def iter_users(
    path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[User]:
    return iter_records(path, User, on_reject=on_reject)


def iter_events(
    path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[Event]:
    """Stream validated events from a file of any size (memory stays flat)."""
    return iter_records(path, Event, on_reject=on_reject)


# ----------------------------------------------------------------------------------------------
def _read_conformed(
    p: Path, columns: Sequence[str] | None
) -> tuple[pa.Table, dict[int, str]]:
    """One events file, unvalidated, conformed to the event schema (or its ``columns``), and
    its rows whose values do not fit a column (see :func:`data.conform.conform`)."""
    import pyarrow.parquet as pq

    from data import conform  # Arrow (~0.5 s to import): only when an event table is read

    fmt = detect_format(p)
    _check_readable(p)
    if fmt == "parquet":
        try:
            names = pq.read_schema(p).names
            # Our own flat layout: read only the needed columns (much faster at scale).
            flat = (
                columns is not None
                and "context" not in names
                and not any(n.startswith(("context.", "context_")) for n in names)
            )
            raw = pq.read_table(p, columns=[c for c in columns if c in names] if flat else None)
        except Exception as exc:
            raise LoaderError(f"{p}: not a readable Parquet file ({exc})") from exc
    elif fmt == "csv":
        raw = conform.csv_table(p)
    else:
        raw = conform.jsonl_table(p)
    return conform.conform(raw, columns)


def read_events_table(
    paths: Path | str | Sequence[Path | str],
    *,
    columns: Sequence[str] | None = None,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
) -> pa.Table:
    """Events from one or more files (any supported format) as one table in ``EVENT_SCHEMA``.

    Checks run on whole columns; invalid rows are dropped and counted in a warning (use
    :func:`load_events` to see each one with its reason). Rows are kept in file order;
    duplicates of an ``event_id`` across files are not removed. ``since``/``until`` (UTC)
    keep ``since <= timestamp < until``. ``columns`` returns only those columns (in that
    order); with Parquet only they (plus user_id, item_id, type, timestamp, value, which the
    checks need) are read, which is several times faster on big files.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from data import conform  # Arrow (~0.5 s to import): only when an event table is read
    from data.event_table import EVENT_COLUMNS, EVENT_SCHEMA

    if columns is not None:
        unknown = [c for c in columns if c not in EVENT_COLUMNS]
        if unknown:
            raise ValueError(
                f"unknown event column(s) {unknown}; choose from {list(EVENT_COLUMNS)}"
            )
        need: list[str] | None = [c for c in EVENT_COLUMNS if c in set(columns) | set(_CHECKED)]
    else:
        need = None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    tables = []
    for p in paths:
        t, problems = _read_conformed(Path(p), need)
        if t.num_rows == 0:
            continue
        tables.append(conform.usable_rows(t, problems, Path(p)))
    schema = EVENT_SCHEMA if need is None else pa.schema([EVENT_SCHEMA.field(c) for c in need])
    if not tables:
        out = schema.empty_table()
    else:
        out = pa.concat_tables(tables).cast(schema)
    if since is not None or until is not None:
        ts = out.column("timestamp")
        m = None
        if since is not None:
            m = pc.greater_equal(ts, pa.scalar(_as_utc(since), pa.timestamp("us", tz="UTC")))
        if until is not None:
            m2 = pc.less(ts, pa.scalar(_as_utc(until), pa.timestamp("us", tz="UTC")))
            m = m2 if m is None else pc.and_(m, m2)
        out = out.filter(m)
    return out if columns is None else out.select(list(columns))


def _as_utc(v: datetime | date) -> datetime:
    if not isinstance(v, datetime):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
