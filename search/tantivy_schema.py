"""The embedded index's schema and documents: which fields tantivy holds and how a
`search.document.SearchDocument` fills them (text fields as pre-tokenized text, keyword and
numeric fields for filters and facets, suggestion terms, the item's JSON as stored source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.text import normalize
from search.backend import CATEGORY_NAME_FIELD, CHAR_FIELDS, TEXT_FIELDS
from search.document import SearchDocument

if TYPE_CHECKING:
    import tantivy

SCHEMA_VERSION = 2
"""Bumped when the fields change: an index of another version must be rebuilt."""
_KEYWORD_FIELDS = ("category_l1", "category_l2", "category_l3", "brand", "merchant_id")
_MULTI_KEYWORD_FIELDS = ("category", "tags")
SUGGEST_KINDS = ("brand", "category", "title")
SUGGEST_SEP = "\x00"
"""Separates the normalized prefix of a suggestion term from the text shown."""


def schema() -> tantivy.Schema:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("item_id", stored=True, fast=True, tokenizer_name="raw")
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name="whitespace")
    for name in CHAR_FIELDS:
        sb.add_text_field(name, tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field(CATEGORY_NAME_FIELD, tokenizer_name="raw", index_option="basic")
    for name in _KEYWORD_FIELDS + _MULTI_KEYWORD_FIELDS:
        sb.add_text_field(name, fast=True, tokenizer_name="raw")
    sb.add_text_field("suggest", tokenizer_name="raw", index_option="freq")
    sb.add_float_field("price", indexed=True, fast=True)
    sb.add_integer_field("stock", indexed=True, fast=True)
    sb.add_boolean_field("in_stock", indexed=True, fast=True)
    sb.add_boolean_field("is_active", indexed=True, fast=True)
    sb.add_float_field("rating", indexed=True, fast=True)
    sb.add_date_field("created_at", indexed=True, fast=True)
    sb.add_float_field("popularity", indexed=False, fast=True)
    sb.add_bytes_field("source", stored=True)
    return sb.build()


def to_tantivy(doc: SearchDocument, source: bytes) -> tantivy.Document:
    """The tantivy document of ``doc`` (``source``: the item's JSON, stored)."""
    import tantivy

    d = tantivy.Document()
    d.add_text("item_id", doc.item_id)
    for name in TEXT_FIELDS:
        # Tokens never contain spaces, so the whitespace tokenizer gives them back as
        # they are; tantivy leaves a position gap between values (no phrase spans two).
        for value in getattr(doc, name):
            if value:
                d.add_text(name, " ".join(value))
    for name in CHAR_FIELDS:
        chars = getattr(doc, name)
        if chars:
            d.add_text(name, " ".join(chars))
    for key in doc.category_names:
        d.add_text(CATEGORY_NAME_FIELD, key)
    for name in _KEYWORD_FIELDS:
        v = getattr(doc, name)
        if v:
            d.add_text(name, v)
    for name in _MULTI_KEYWORD_FIELDS:
        for v in getattr(doc, name):
            d.add_text(name, v)
    for kind, text in _suggest_entries(doc):
        d.add_text("suggest", f"{kind}:{normalize(text)}{SUGGEST_SEP}{text}")
    d.add_float("price", doc.price)
    d.add_integer("stock", doc.stock)
    d.add_boolean("in_stock", doc.in_stock)
    d.add_boolean("is_active", doc.is_active)
    if doc.rating is not None:
        d.add_float("rating", doc.rating)
    d.add_date("created_at", doc.created_at)
    d.add_float("popularity", doc.popularity)
    d.add_bytes("source", source)
    return d


def _suggest_entries(doc: SearchDocument) -> list[tuple[str, str]]:
    if not doc.is_active:
        return []
    out: list[tuple[str, str]] = []
    if doc.brand:
        out.append(("brand", doc.brand))
    out.extend(("category", c) for c in dict.fromkeys(doc.category_path))
    out.append(("title", doc.title_raw))
    return out
