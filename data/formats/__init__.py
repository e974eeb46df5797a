"""Adapters for public behavior logs as users bring them (MovieLens, RetailRocket).

Each adapter streams :class:`data.models.Event` objects with deterministic ``event_id``s
and reports bad lines as :class:`data.loaders.Reject` (file, line, reason, raw).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from data.errors import LoaderError
from data.loaders import LoadResult, Reject, RejectedRowsError, write_rejects
from data.models import Event

Adapter = Literal["movielens", "retailrocket"]
ADAPTERS: tuple[str, ...] = ("movielens", "retailrocket")


def iter_adapter(
    name: str, path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[Event]:
    """Events of ``path`` read with the named adapter."""
    if name == "movielens":
        from data.formats.movielens import iter_movielens

        return iter_movielens(path, on_reject=on_reject)
    if name == "retailrocket":
        from data.formats.retailrocket import iter_retailrocket

        return iter_retailrocket(path, on_reject=on_reject)
    raise LoaderError(f"unknown format {name!r}; use one of: {', '.join(ADAPTERS)}")


def load_adapter(
    name: str, path: Path | str, *, rejects_path: Path | str | None = None, strict: bool = False
) -> LoadResult[Event]:
    """All events of ``path`` (small files); same reject/strict rules as the loaders."""
    p = Path(path)
    result: LoadResult[Event] = LoadResult(p)
    result.records.extend(iter_adapter(name, p, on_reject=result.rejects.append))
    if rejects_path is not None:
        write_rejects(result.rejects, rejects_path)
    if strict and result.rejects:
        first = result.rejects[0]
        raise RejectedRowsError(
            f"{p}: {len(result.rejects)} bad line(s); first at line {first.line}: {first.reason}"
        )
    return result


def open_text(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines (1-based) of a text file, without line endings; latin-1 fallback."""
    if not path.exists():
        raise LoaderError(f"{path}: no such file")
    if not path.is_file():
        raise LoaderError(f"{path}: not a file")
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            yield n, text.rstrip("\r\n")
