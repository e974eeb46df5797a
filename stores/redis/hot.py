"""Shared hot state in Redis: shopper state, live counts and feed pages.

Keys (under a prefix, default ``shoprank:``; one Redis may hold several shops):

* ``h:<user>``  list of ``item\\ttype``, newest first, trimmed to ``history_size``;
* ``p:<user>``  set of purchased items; both expire ``idle_days`` after the user's last event;
* ``live``      sorted set item → log of its decayed live count (``records.log_add``), so one
  Lua script adds to it atomically with no shared epoch; trimmed to ``live_max_items``;
* ``f:<key>``   a feed page, ``SET NX GET EX ttl`` (write-once until it expires, one round trip);
  ``fu:<user>`` the set of a user's feed keys, for erasure.

Every call has the store's budget as socket and connect timeout; a Redis error or timeout is a
:class:`StoreUnavailableError`. What a request sends goes out in one write per call on the
store's own connections (``stores.redis.calls``), not through redis-py's client.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import redis

from data.models import Event
from stores.errors import StoreConfigError, StoreUnavailableError
from stores.records import ShopperPolicy, ShopperProfile
from stores.redis.calls import Calls, Command

SETTING = "SHOPRANK_REDIS_URL"
_T = TypeVar("_T")

# ARGV: max_items, then (item, log score) pairs; KEYS[1] the live sorted set
_LIVE_ADD = """
for i = 2, #ARGV, 2 do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  local s = tonumber(ARGV[i + 1])
  if cur then
    local a, b = tonumber(cur), s
    if a < b then a, b = b, a end
    s = a + math.log(1 + math.exp(b - a))
  end
  redis.call('ZADD', KEYS[1], s, ARGV[i])
end
local n = redis.call('ZCARD', KEYS[1])
local max = tonumber(ARGV[1])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1) end
return n
"""


def connect(url: str, *, timeout: float) -> redis.Redis:
    """A client for ``url`` that answered PING, or a :class:`StoreConfigError`."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=0
        )
    except ValueError as exc:
        raise StoreConfigError(SETTING, f"not a Redis URL: {exc}") from exc
    try:
        client.ping()
    except redis.RedisError as exc:
        where = client.connection_pool.connection_kwargs
        raise StoreConfigError(
            SETTING,
            f"cannot reach Redis at {where.get('host', where.get('path'))}:{where.get('port', '')} "
            f"({exc}); start the server (scripts/redis start) or fix the URL",
        ) from None
    return client


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _texts(values: Iterable[bytes | str]) -> list[str]:
    """Replies as text, decoded in one pass (a function call per value cost as much as the
    round trip's parsing for a 50-event history)."""
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def _history(raw: Iterable[bytes | str]) -> list[tuple[str, str]]:
    """``item\ttype`` entries as (item, type) pairs."""
    return [(item, etype) for item, _, etype in (v.partition("\t") for v in _texts(raw))]


def _bytes(v: bytes | str) -> bytes:
    return v if isinstance(v, bytes) else v.encode()


def _call(fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except redis.RedisError as exc:
        raise StoreUnavailableError(f"Redis: {exc}") from None


def _score(rows: list[Any]) -> float:
    """The first score of a raw ``ZRANGE … WITHSCORES`` reply: RESP2 gives a flat list
    (member, score as text, …), RESP3 a list of (member, score) pairs."""
    first = rows[0]
    return float(first[1]) if isinstance(first, list | tuple) else float(rows[1])


def _raise_errors(replies: list[Any]) -> list[Any]:
    for r in replies:
        if isinstance(r, Exception):
            raise StoreUnavailableError(f"Redis: {r}")
    return replies


class RedisShopperState:
    def __init__(self, client: redis.Redis, policy: ShopperPolicy, *, prefix: str) -> None:
        self.policy = policy
        self._r = client
        self._calls = Calls(client)
        self._p = prefix
        self._live = prefix + "live"
        self._live_add = _call(lambda: client.script_load(_LIVE_ADD))
        self._idle = max(1, int(policy.idle_days * 86400))

    def record(self, events: Sequence[Event], *, live: bool = True) -> None:
        p = self.policy
        now = time.time()
        cmds: list[Command] = []
        users: set[str] = set()
        counts: list[Any] = [p.live_max_items]
        for e in events:
            if e.item_id is None:
                continue
            if e.type in p.history_types:
                cmds.append(("LPUSH", f"{self._p}h:{e.user_id}", f"{e.item_id}\t{e.type}"))
                users.add(e.user_id)
            if e.type == "purchase":
                cmds.append(("SADD", f"{self._p}p:{e.user_id}", e.item_id))
                users.add(e.user_id)
            elif e.type == "refund":
                cmds.append(("SREM", f"{self._p}p:{e.user_id}", e.item_id))
            w = p.live_weights.get(e.type) if live else None
            if w and w > 0:
                counts += [e.item_id,
                           repr(math.log(w) + p.rate * min(e.timestamp.timestamp(), now))]
        for u in users:
            cmds.append(("LTRIM", f"{self._p}h:{u}", 0, p.history_size - 1))
            cmds.append(("EXPIRE", f"{self._p}h:{u}", self._idle))
            cmds.append(("EXPIRE", f"{self._p}p:{u}", self._idle))
        if len(counts) > 1:
            cmds.append(("EVALSHA", self._live_add, 1, self._live, *counts))
        if not cmds:
            return
        results = []
        for i in range(0, len(cmds), 10_000):  # a large import: bounded writes and replies
            results += self._calls.run(*cmds[i : i + 10_000])
        if len(counts) > 1 and isinstance(results[-1], redis.exceptions.NoScriptError):
            # the server lost its scripts (restart, SCRIPT FLUSH): load it again, rerun it alone
            self._live_add = _call(lambda: self._r.script_load(_LIVE_ADD))
            results[-1] = self._calls.run(("EVALSHA", self._live_add, 1, self._live, *counts))[0]
        _raise_errors(results)

    def recent(self, user_id: str, limit: int | None = None) -> list[tuple[str, str]]:
        n = self.policy.history_size if limit is None else min(limit, self.policy.history_size)
        if n <= 0:
            return []
        (raw,) = _raise_errors(self._calls.run(("LRANGE", f"{self._p}h:{user_id}", 0, n - 1)))
        return _history(raw)

    def purchased(self, user_id: str) -> frozenset[str]:
        (got,) = _raise_errors(self._calls.run(("SMEMBERS", f"{self._p}p:{user_id}")))
        return frozenset(_texts(got))

    def profile(self, user_id: str, limit: int | None = None) -> ShopperProfile:
        n = self.policy.history_size if limit is None else min(limit, self.policy.history_size)
        cmds: list[Command] = [("SMEMBERS", f"{self._p}p:{user_id}")]
        if n > 0:
            cmds.append(("LRANGE", f"{self._p}h:{user_id}", 0, n - 1))
        bought, *rest = _raise_errors(self._calls.run(*cmds))
        raw = rest[0] if rest else []
        return ShopperProfile(tuple(_history(raw)), frozenset(_texts(bought)))

    def forget_user(self, user_id: str) -> None:
        _call(lambda: self._r.delete(f"{self._p}h:{user_id}", f"{self._p}p:{user_id}"))

    def live_top(self, n: int) -> list[tuple[str, float]]:
        rows: list[tuple[bytes, float]] = _call(
            lambda: self._r.zrevrange(self._live, 0, n - 1, withscores=True)  # type: ignore[arg-type,return-value]
        )
        if not rows:
            return []
        top = float(rows[0][1])
        return [(_text(i), math.exp(float(s) - top)) for i, s in rows]

    def live_scores(self, item_ids: Sequence[str]) -> dict[str, float]:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        top_rows, scores = _raise_errors(self._calls.run(
            ("ZRANGE", self._live, 0, 0, "REV", "WITHSCORES"), ("ZMSCORE", self._live, *ids)))
        if not top_rows:
            return {}
        top = _score(top_rows)
        return {i: math.exp(float(s) - top) for i, s in zip(ids, scores, strict=True)
                if s is not None}

    def forget_items(self, item_ids: Iterable[str]) -> None:
        ids = list(item_ids)
        if ids:
            _call(lambda: self._r.zrem(self._live, *ids))

    def close(self) -> None:
        """Closes this store's connections (the client is closed by its owner)."""
        self._calls.close()


class RedisFeedPages:
    def __init__(self, client: redis.Redis, *, ttl_seconds: float, prefix: str) -> None:
        self.ttl = ttl_seconds
        self._r = client
        self._calls = Calls(client)
        self._p = prefix
        self._ttl_ms = max(1, int(ttl_seconds * 1000))

    def get(self, key: str) -> bytes | None:
        (got,) = _raise_errors(self._calls.run(("GET", f"{self._p}f:{key}")))
        return _bytes(got) if got is not None else None

    def put(self, key: str, body: bytes, *, user_id: str | None = None) -> bytes:
        cmds: list[Command] = [("SET", f"{self._p}f:{key}", body, "NX", "GET", "PX", self._ttl_ms)]
        if user_id is not None:
            cmds.append(("SADD", f"{self._p}fu:{user_id}", key))
            cmds.append(("PEXPIRE", f"{self._p}fu:{user_id}", self._ttl_ms))
        before = _raise_errors(self._calls.run(*cmds))[0]
        return body if before is None else _bytes(before)

    def forget_user(self, user_id: str) -> int:
        index = f"{self._p}fu:{user_id}"
        keys = [_text(k) for k in _call(lambda: self._r.smembers(index))]
        if not keys:
            return 0
        n = _call(lambda: self._r.delete(*(f"{self._p}f:{k}" for k in keys)))
        _call(lambda: self._r.delete(index))
        return int(n)

    def close(self) -> None:
        """Closes this store's connections (the client is closed by its owner)."""
        self._calls.close()
