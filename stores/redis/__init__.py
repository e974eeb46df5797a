"""Shared hot state in Redis (redis-py)."""
