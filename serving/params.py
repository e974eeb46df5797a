"""Query parameters shared by several routes, and their parsing beyond types.

A route declares its query as one pydantic model, ``q: Annotated[Model, Query()]`` (FastAPI's
query-parameter models): FastAPI reads, validates and documents it, and a bad value gets the
422 naming the parameter. Lists (``history``, ``exclude``) take repeated parameters; item ids
inside one value may also be separated by commas (:func:`parse_ids`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from data.models import CATEGORY_SEPARATOR
from serving.errors import BadRequest

_ID = re.compile(r"^[^\s/\\]{1,128}$")
MAX_IDS = 100

OptionalUser = Annotated[
    str | None,
    Field(
        min_length=1, max_length=128, pattern=r"^[^\s/\\]+$", description="The shopper's user id."
    ),
]
CategoryPath = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=500,
        description="Category path prefix, levels separated by ' > ' or '/', e.g. `服裝 > 女裝`.",
    ),
]
IdList = Annotated[
    list[str] | None,
    Field(description="Item ids: repeat the parameter or separate with commas (at most 100)."),
]
Debug = Annotated[bool, Field(description="Add each item's score breakdown.")]

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _iso_only(value: object) -> object:
    if isinstance(value, str) and _NUMBER.match(value):
        raise PydanticCustomError(  # a type error (422), not a rule of the service (400)
            "datetime_type", "give an ISO 8601 time such as 2026-01-31T00:00:00Z, not a number"
        )
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""An ISO 8601 time parameter (pydantic alone would also take a number as seconds since 1970,
which the schema's ``date-time`` does not allow)."""


class QueryModel(BaseModel):
    """A route's query parameters as one model, declared ``Annotated[Model, Query()]``.
    Unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def parse_category(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    parts = tuple(p.strip() for p in value.replace("/", ">").split(">") if p.strip())
    if not parts:
        raise BadRequest("category: give a category path such as '服裝 > 女裝'", field="category")
    return parts


def parse_ids(values: list[str] | None, field: str) -> list[str]:
    out: list[str] = []
    for v in values or []:
        for part in v.split(","):
            part = part.strip()
            if not part:
                continue
            if not _ID.match(part):
                raise BadRequest(f"{field}: {part[:40]!r} is not an item id", field=field)
            out.append(part)
    if len(out) > MAX_IDS:
        raise BadRequest(f"{field}: at most {MAX_IDS} ids", field=field)
    return out


def category_label(category: tuple[str, ...] | None) -> str | None:
    return CATEGORY_SEPARATOR.join(category) if category else None
