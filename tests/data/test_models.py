"""Every field of Item, User and Event rejects a bad value with a message naming it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import describe
from data.models import Event, Item, User

ITEM = {"item_id": "i1", "title": "紅色連衣裙 Red Dress", "price": 199.0}
EVENT = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view",
         "timestamp": "2026-01-02T03:04:05Z"}


def _message(model: type, data: dict) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return describe(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_id", ""), ("item_id", "has space"), ("item_id", "x" * 129),
        ("title", ""), ("price", -1), ("price", "cheap"), ("price", float("nan")),
        ("currency", "yuan"), ("stock", -3), ("rating", 6), ("created_at", "yesterday"),
        ("created_at", "0216-10-16T03:07:39Z"), ("created_at", "2999-01-01T00:00:00Z"),
        ("is_active", "maybe"), ("category", ["服裝", ""]), ("attributes", {"k": [1]}),
        ("unknown_field", 1),
    ],
)
def test_item_field_errors_name_the_field(field: str, value: object) -> None:
    assert field in _message(Item, {**ITEM, field: value})


def test_item_accepts_category_path_string_and_normalizes_time() -> None:
    item = Item.model_validate({**ITEM, "category": "服裝 > 女裝 > 連衣裙", "tags": "新品,限時搶購",
                                "created_at": "2026-01-01T08:00:00+08:00"})
    assert item.category == ("服裝", "女裝", "連衣裙")
    assert item.category_path == "服裝 > 女裝 > 連衣裙"
    assert item.tags == ("新品", "限時搶購")
    assert item.created_at.utcoffset().total_seconds() == 0
    assert item.created_at.hour == 0


@pytest.mark.parametrize(("field", "value"), [("user_id", ""), ("consent", "perhaps"),
                                              ("attributes", {"tier": None})])
def test_user_field_errors_name_the_field(field: str, value: object) -> None:
    assert field in _message(User, {"user_id": "u1", field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", ""), ("user_id", ""), ("type", "like"), ("timestamp", "soon"),
     ("timestamp", "1901-01-01T00:00:00Z"),
     ("value", "much"), ("context", {"position": -1}), ("context", {"colour": "red"})],
)
def test_event_field_errors_name_the_field(field: str, value: object) -> None:
    assert field in _message(Event, {**EVENT, field: value})


def test_event_type_specific_rules() -> None:
    assert "item_id" in _message(Event, {**EVENT, "item_id": None})
    assert "context.query" in _message(Event, {**EVENT, "type": "search", "item_id": None})
    assert "rating" in _message(Event, {**EVENT, "type": "rate", "value": 9})
    ok = Event.model_validate({**EVENT, "type": "search", "item_id": None,
                               "context": {"query": "連衣裙"}})
    assert ok.item_id is None and ok.context.query == "連衣裙"
