"""Shared durable stores in PostgreSQL (psycopg 3)."""
