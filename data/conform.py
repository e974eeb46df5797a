"""Raw event tables conformed to :data:`data.event_table.EVENT_SCHEMA`, checked column-wise.

The columnar reader (:func:`data.loaders.read_events_table`) reads a JSON Lines, CSV or
Parquet file with Arrow (:func:`jsonl_table`, :func:`csv_table`), casts each column to the
schema (:func:`conform`: values that do not fit are noted per row, never raised), runs the
validity checks on whole columns (:func:`event_checks`) and sets aside the rows that fail
(:func:`usable_rows`, quarantined with their reason). No pydantic per row.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj

from data.errors import LoaderError
from data.event_table import CONTEXT_FIELDS, EVENT_COLUMNS, EVENT_SCHEMA
from data.models import EVENT_TYPES, INT32_MAX, MAX_AMOUNT
from data.quarantine import set_aside

log = logging.getLogger(__name__)


def _json_read_schema() -> pa.Schema:
    ctx = pa.struct([EVENT_SCHEMA.field(f).with_nullable(True) for f in CONTEXT_FIELDS])
    fields = [
        EVENT_SCHEMA.field(n).with_nullable(True)
        for n in ("event_id", "user_id", "item_id", "type", "value")
    ]
    return pa.schema([*fields, pa.field("timestamp", pa.string()), pa.field("context", ctx)])


def _jsonl_table_python(data: bytes, source: str) -> pa.Table:
    """Slow but forgiving: parse line by line, skip (and log) lines that do not parse."""
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
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # mixed types or integers beyond int64: text, which the schema cast then checks
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def jsonl_table(path: Path) -> pa.Table:
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


def csv_table(path: Path) -> pa.Table:
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


def conform(
    table: pa.Table, columns: Sequence[str] | None = None
) -> tuple[pa.Table, dict[int, str]]:
    """Any event table → :data:`EVENT_SCHEMA` columns (missing ones null), values cast.

    ``columns`` keeps only those schema columns (in schema order). Also returns the rows whose
    values could not be cast (row index → reason naming the field and value): those rows are
    unusable and the caller sets them aside.
    """
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
    return f"context.{column}" if column in CONTEXT_FIELDS else column


def event_checks(table: pa.Table) -> list[tuple[str, pa.Array]]:
    """Vectorized version of the Event model's rules, as (what is wrong, row passes) pairs.

    Ids present and non-empty, a known type, a timestamp from 1970 to 2200, an item (or a
    query for search), a finite value within ±1e9, a 0–5 rating for ``rate``, a position
    from 0. Id spelling (whitespace, length) is not re-checked here: the row-by-row loaders
    and the API check it on the way in.
    """
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


def usable_rows(table: pa.Table, problems: dict[int, str], source: Path) -> pa.Table:
    """``table`` without the rows that fail a check or could not be cast; those are set aside
    (quarantined with their reason) and counted in a warning."""
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
