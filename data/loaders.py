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
import functools
import io
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
from data.models import EVENT_TYPES, INT32_MAX, MAX_AMOUNT, Event, EventContext, Item, User
from data.quarantine import set_aside

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
# Fast columnar path (training)


def _json_read_schema() -> pa.Schema:
    import pyarrow as pa

    from data.event_table import CONTEXT_FIELDS, EVENT_SCHEMA

    ctx = pa.struct([EVENT_SCHEMA.field(f).with_nullable(True) for f in CONTEXT_FIELDS])
    fields = [
        EVENT_SCHEMA.field(n).with_nullable(True)
        for n in ("event_id", "user_id", "item_id", "type", "value")
    ]
    return pa.schema([*fields, pa.field("timestamp", pa.string()), pa.field("context", ctx)])


def _jsonl_table_python(data: bytes, source: str) -> pa.Table:
    """Slow but forgiving: parse line by line, skip (and log) lines that do not parse."""
    import pyarrow as pa

    from data.event_table import CONTEXT_FIELDS, EVENT_COLUMNS

    cols: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
    unreadable: list[tuple[int, str, str]] = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            ctx = obj.get("context") or {}
            if not isinstance(ctx, dict):
                raise ValueError("context is not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            unreadable.append((lineno, f"line {lineno}: not a JSON object ({exc})",
                               line.decode("utf-8", "replace")))
            continue
        for c in ("event_id", "user_id", "item_id", "type", "timestamp", "value"):
            v = obj.get(c)
            cols[c].append(None if isinstance(v, (dict, list)) else v)
        for c in CONTEXT_FIELDS:
            v = ctx.get(c)
            cols[c].append(None if isinstance(v, (dict, list)) else v)
    set_aside(source, unreadable)
    arrays = {}
    for c, values in cols.items():
        arrays[c] = _loose_array(values)
    return pa.table(arrays)


def _loose_array(values: list[Any]) -> pa.Array:
    """An Arrow array from Python values of possibly mixed types (unconvertible → null)."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # mixed types or integers beyond int64: text, which the schema cast then checks
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _jsonl_table(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.json as pj

    data = path.read_bytes()
    if not data.strip():
        return pa.table({})
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        log.warning(
            "%s: skipped a torn last line (%d bytes without a newline)", path, len(data) - cut
        )
        data = data[:cut]
        if not data.strip():
            return pa.table({})
    try:
        t = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(block_size=1 << 24),
            parse_options=pj.ParseOptions(
                explicit_schema=_json_read_schema(), unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _jsonl_table_python(data, str(path))
    flat = t.flatten()
    return flat.rename_columns([c.removeprefix("context.") for c in flat.column_names])


def _csv_table(path: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with path.open("r", encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader([f.readline()]), [])
    try:
        # Every column as text; _conform casts (ids stay ids even when they look like numbers).
        return pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(encoding="utf8"),
            convert_options=pcsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise LoaderError(
            f"{path}: unreadable CSV ({exc}); use load_events() to find the bad rows"
        ) from exc


def _parse_timestamps(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Strings/ints/timestamps → timestamp[us, UTC]; unparseable → null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", tz="UTC")
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            return pc.assume_timezone(col.cast(pa.timestamp("us")), "UTC").cast(target)
        return col.cast(target)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        # epoch seconds (or milliseconds when the numbers are that large)
        v = col.cast(pa.float64())
        ms = pc.greater(pc.abs(v), 1e11)
        us = pc.if_else(ms, pc.multiply(v, 1e3), pc.multiply(v, 1e6))
        # beyond what int64 microseconds hold (and non-finite): null, so the row is checked out
        fits = pc.and_(pc.is_finite(us), pc.less(pc.abs(us), 9.2e18))
        us = pc.if_else(pc.fill_null(fits, False), us, pa.scalar(None, pa.float64()))
        return pc.round(us).cast(pa.int64()).cast(target)
    if pa.types.is_date(t):
        return col.cast(pa.timestamp("us")).cast(pa.int64()).cast(target)
    s = col.cast(pa.string())
    has_tz = pc.match_substring_regex(s, r"(Z|z|[+-]\d\d:?\d\d)$")
    fixed = pc.if_else(pc.fill_null(has_tz, True), s, pc.binary_join_element_wise(s, "Z", ""))
    try:
        return fixed.cast(target)
    except pa.ArrowInvalid:
        pass
    out = []
    for v in fixed.to_pylist():
        try:
            out.append(None if v is None else datetime.fromisoformat(v.replace("z", "Z")))
        except ValueError:
            out.append(None)
    return pa.array(out, pa.timestamp("us", tz="UTC"))


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_INT_RANGE = {"int32": (-(2**31), INT32_MAX), "int64": (-(2**63), 2**63 - 1)}


def _cast_value(v: Any, target: pa.DataType) -> Any:
    """One value to ``target``'s Python type; ValueError when it does not fit."""
    import pyarrow as pa

    if target == pa.string():
        return str(v)
    if target == pa.float64():
        return float(v)
    out = int(v)
    if isinstance(v, float) and v != out:
        raise ValueError("not a whole number")
    lo, hi = _INT_RANGE.get(str(target), _INT_RANGE["int64"])
    if not lo <= out <= hi:
        raise ValueError(f"out of range for {target}")
    return out


def _conform(
    table: pa.Table, columns: Sequence[str] | None = None
) -> tuple[pa.Table, dict[int, str]]:
    """Any event table → :data:`EVENT_SCHEMA` columns (missing ones null), values cast.

    ``columns`` keeps only those schema columns (in schema order). Also returns the rows whose
    values could not be cast (row index → reason naming the field and value): those rows are
    unusable and the caller sets them aside.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from data.event_table import CONTEXT_FIELDS, EVENT_SCHEMA

    fields = [f for f in EVENT_SCHEMA if columns is None or f.name in columns]
    problems: dict[int, str] = {}

    if "context" in table.column_names and pa.types.is_struct(table.schema.field("context").type):
        table = table.flatten()
    rename = {}
    for name in table.column_names:
        for prefix in ("context.", "context_"):
            if name.startswith(prefix):
                rename[name] = name[len(prefix) :]
    if rename:
        table = table.rename_columns([rename.get(n, n) for n in table.column_names])
    n = table.num_rows
    arrays = []
    for f in fields:
        if f.name not in table.column_names:
            arrays.append(pa.nulls(n, f.type))
            continue
        col = table.column(f.name)
        if f.name == "timestamp":
            arrays.append(_parse_timestamps(col))
            continue
        if col.type == f.type:
            arrays.append(col)
            continue
        try:
            arrays.append(col.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            # value by value: what does not fit the column becomes null and its row unusable
            vals = []
            for row, v in enumerate(col.to_pylist()):
                try:
                    vals.append(None if v is None else _cast_value(v, f.type))
                except (TypeError, ValueError, OverflowError) as exc:
                    vals.append(None)
                    shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:40] + "…"
                    problems.setdefault(row, f"{_field_name(f.name)}: {shown} ({exc})")
            arrays.append(pa.array(vals, f.type))
    out = pa.Table.from_arrays(arrays, schema=pa.schema([f.with_nullable(True) for f in fields]))
    # Empty strings mean "absent" (CSV cells); most files have none, so look before rewriting.
    text_context = (c for c in CONTEXT_FIELDS if EVENT_SCHEMA.field(c).type == pa.string())
    optional_text = ("item_id", *text_context)
    for name in optional_text:
        if name not in out.column_names:
            continue
        col = out.column(name)
        if col.null_count == len(col):
            continue
        empty = pc.equal(pc.utf8_length(col), 0)
        if pc.any(empty).as_py():
            i = out.column_names.index(name)
            out = out.set_column(i, name, pc.if_else(empty, pa.scalar(None, pa.string()), col))
    return out, problems


def _field_name(column: str) -> str:
    from data.event_table import CONTEXT_FIELDS

    return f"context.{column}" if column in CONTEXT_FIELDS else column


def event_checks(table: pa.Table) -> list[tuple[str, pa.Array]]:
    """Vectorized version of the Event model's rules, as (what is wrong, row passes) pairs.

    Ids present and non-empty, a known type, a timestamp from 1970 to 2200, an item (or a
    query for search), a finite value within ±1e9, a 0–5 rating for ``rate``, a position
    from 0. Id spelling (whitespace, length) is not re-checked here: the row-by-row loaders
    and the API check it on the way in.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = set(table.column_names)
    n = table.num_rows

    def nonempty(name: str) -> pa.Array:
        if name not in names:
            return pa.repeat(True, n)
        col = table.column(name)
        return pc.and_(pc.is_valid(col), pc.greater(pc.utf8_length(pc.fill_null(col, "")), 0))

    typ = table.column("type")
    is_search = pc.fill_null(pc.equal(typ, "search"), False)
    is_rate = pc.fill_null(pc.equal(typ, "rate"), False)
    value = table.column("value")
    rating_ok = pc.and_(pc.greater_equal(value, 0), pc.less_equal(value, 5))
    filled = pc.fill_null(value, 0.0)
    value_ok = pc.and_(pc.is_finite(filled), pc.less_equal(pc.abs(filled), MAX_AMOUNT))
    if "query" in names:
        query_present = pc.greater(
            pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(table.column("query"), ""))), 0
        )
    else:  # not read: a search event cannot be checked, keep it
        query_present = pa.repeat(True, n)
    ts = table.column("timestamp")
    ts_ok = pc.and_(
        pc.greater_equal(ts, pa.scalar(_EARLIEST, ts.type)),
        pc.less(ts, pa.scalar(_LATEST, ts.type)),
    )
    checks = [
        ("event_id: missing", nonempty("event_id")),
        ("user_id: missing", nonempty("user_id")),
        (
            "type: unknown event type",
            pc.fill_null(pc.is_in(typ, value_set=pa.array(EVENT_TYPES)), False),
        ),
        ("timestamp: missing or not between 1970 and 2200", pc.fill_null(ts_ok, False)),
        ("value: not a finite number within ±1e9", value_ok),
        (
            "item_id / context.query: missing for the event type",
            pc.if_else(is_search, query_present, nonempty("item_id")),
        ),
        (
            "value: a rate event needs a rating from 0 to 5",
            pc.if_else(is_rate, pc.fill_null(rating_ok, False), True),
        ),
    ]
    if "position" in names:
        checks.append(("context.position: negative",
                       pc.fill_null(pc.greater_equal(table.column("position"), 0), True)))
    return checks


def _usable_rows(table: pa.Table, problems: dict[int, str], source: Path) -> pa.Table:
    """``table`` without the rows that fail a check or could not be cast; those are set aside
    (quarantined with their reason) and counted in a warning."""
    import pyarrow as pa
    import pyarrow.compute as pc

    checks = event_checks(table)
    mask = functools.reduce(pc.and_, (m for _, m in checks))
    if problems:
        cast_ok = [True] * table.num_rows
        for row in problems:
            cast_ok[row] = False
        mask = pc.and_(mask, pa.array(cast_ok))
    bad = table.num_rows - pc.sum(pc.cast(mask, pa.int64())).as_py()
    if not bad:
        return table
    bad_rows = pc.indices_nonzero(pc.invert(mask)).to_pylist()
    entries = []
    for row in bad_rows:
        reason = problems.get(row) or next(
            (why for why, m in checks if not m[row].as_py()), "invalid"
        )
        raw = json.dumps(table.slice(row, 1).to_pylist()[0], ensure_ascii=False, default=str)
        entries.append((row + 1, reason, raw))
    set_aside(source, entries)
    log.warning("%s: dropped %d unusable event row(s) of %d", source, bad, table.num_rows)
    return table.filter(mask)


def _read_conformed(
    p: Path, columns: Sequence[str] | None
) -> tuple[pa.Table, dict[int, str]]:
    """One events file, unvalidated, conformed to the event schema (or its ``columns``), and
    its rows whose values do not fit a column (see :func:`_conform`)."""
    import pyarrow.parquet as pq

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
        raw = _csv_table(p)
    else:
        raw = _jsonl_table(p)
    return _conform(raw, columns)


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
        tables.append(_usable_rows(t, problems, Path(p)))
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
    from datetime import UTC

    if not isinstance(v, datetime):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
