"""Embedded stores: SQLite in WAL mode and files under one folder."""
