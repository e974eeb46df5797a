"""Strict JSON types for request bodies, checked against the body's JSON schema.

FastAPI validates bodies with pydantic's lax mode, which takes ``"consent": 0`` as false,
``"created_at": 0`` as 1970-01-01 and ``"price": "12"`` as 12. The models are shared with the
file loaders (CSV cells are text and need those conversions), so the API checks the JSON
types itself, before the models: a JSON value whose kind (boolean, number, string) is not one
the schema allows at that place (a text for a list as well) is refused with the 422 naming
the field. Anything the schema leaves open (no type, ``additionalProperties`` without one) is
left to the model, and so is a scalar where an object may stand: the search's facet shorthand
(``"facets": ["brand"]``) is expanded by its model.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails

from data.models import Event

Schema = dict[str, Any]
_SCALARS = {"boolean", "integer", "number", "string", "null"}


def _kind(value: object) -> str | None:
    """The JSON kind of a scalar (None for arrays and objects)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


class StrictTypes:
    """Checks JSON values against one JSON schema (with its ``$defs``)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.defs: dict[str, Schema] = schema.get("$defs", {})

    def _resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema

    def _branches(self, schema: Schema) -> list[Schema]:
        schema = self._resolve(schema)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                return [b for s in schema[key] for b in self._branches(s)]
        return [schema]

    @staticmethod
    def _tagged(value: dict[str, Any], branches: list[Schema]) -> list[Schema]:
        """The one object branch a tagged value names (``{"type": "range", …}``: a property
        with a constant, or a required one with a list of values), else none."""
        hits = []
        for b in branches:
            required = set(b.get("required", ()))
            tags = {k: [p["const"]] if "const" in p else p["enum"]
                    for k, p in b.get("properties", {}).items()
                    if ("const" in p or "enum" in p) and (k in required or "const" in p)}
            if tags and all(value.get(k) in allowed for k, allowed in tags.items()):
                hits.append(b)
        return hits if len(hits) == 1 else []

    def errors(self, value: Any) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
        """(location, expected kinds, given kind) of each value of the wrong kind."""
        yield from self._check(value, self.schema, ())

    def _check(self, value: Any, schema: Schema, loc: tuple[str | int, ...]
               ) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
        branches = self._branches(schema)
        kind = _kind(value)
        if kind is not None:
            allowed: set[str] = set()
            for b in branches:
                t = b.get("type")
                if t is None and "const" not in b and "enum" not in b:
                    return  # open: anything goes here
                types = {t} if isinstance(t, str) else set(t or ())
                types |= {_kind(v) or "" for v in ([b["const"]] if "const" in b else [])}
                types |= {_kind(v) or "" for v in b.get("enum", ())}
                allowed |= types
            if "number" in allowed:
                allowed.add("integer")
            if kind == "number" and value.is_integer():
                kind = "integer"  # JSON Schema: 2.0 is an integer
            if "object" in allowed:
                return  # shorthands the models expand (a facet named by its field: "brand")
            if kind not in allowed:
                yield loc, " or ".join(sorted(allowed)), kind
            return
        if isinstance(value, dict) and len(branches) > 1:
            branches = self._tagged(value, branches)
        for b in branches:
            if isinstance(value, list) and b.get("type") == "array":
                items = b.get("items")
                if isinstance(items, dict):
                    for i, v in enumerate(value):
                        yield from self._check(v, items, (*loc, i))
                return
            if isinstance(value, dict) and b.get("type") == "object" and len(branches) == 1:
                props: dict[str, Schema] = b.get("properties", {})
                extra = b.get("additionalProperties")
                for k, v in value.items():
                    sub = props.get(k, extra if isinstance(extra, dict) else None)
                    if sub is not None:
                        yield from self._check(v, sub, (*loc, k))
                return


M = TypeVar("M", bound=BaseModel)

_ERROR_TYPES = {"number": "float_type", "integer": "int_type", "boolean": "bool_type",
                "string": "string_type", "array": "list_type", "object": "dict_type",
                "null": "none_required"}
"""Pydantic's error for each JSON kind expected, the first that applies in this order."""


def _error_type(expected: str) -> str:
    kinds = expected.split(" or ")
    return next((_ERROR_TYPES[k] for k in _ERROR_TYPES if k in kinds), "model_type")


def strict_validate(model: type[M], value: Any) -> M:
    """``model.model_validate(value)`` after checking the JSON kinds of ``value`` against the
    model's schema: a value of the wrong kind raises the :class:`ValidationError` pydantic's
    strict mode would, naming the field."""
    errors: list[InitErrorDetails] = [
        {"type": _error_type(expected), "loc": loc, "input": given}  # type: ignore[typeddict-item]
        for loc, expected, given in _checker(model).errors(value)
    ]
    if errors:
        raise ValidationError.from_exception_data(model.__name__, errors)
    return model.model_validate(value)


@cache
def _checker(model: type[BaseModel]) -> StrictTypes:
    return StrictTypes(model.model_json_schema())


def strict_event(raw: Any) -> Event:
    """An event as the API takes it: JSON kinds checked (``"timestamp": 0`` is refused), then
    :class:`data.models.Event` (which the loaders use with their own conversions)."""
    return strict_validate(Event, raw)
