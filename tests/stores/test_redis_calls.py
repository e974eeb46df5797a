"""The Redis stores' own connections (``stores.redis.calls.Calls``), on a real Redis: replies
in order, a refused command answered in its place, nothing left unread after a timeout, and a
server restart met with a new connection."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from stores import ShopperPolicy
from stores.errors import StoreUnavailableError
from stores.redis.calls import Calls
from stores.redis.hot import RedisShopperState, connect
from tests.servers import ROOT, _start, _stop
from tests.stores.conftest import event

pytestmark = pytest.mark.servers


def _client_id(calls: Calls) -> int:
    return int(calls.run(("CLIENT", "ID"))[0])


def test_replies_come_back_in_order_with_a_refusal_in_its_place(
    redis_server: str, redis_prefix: str
) -> None:
    calls = Calls(connect(redis_server, timeout=1.0))
    k = redis_prefix + "k"
    got = calls.run(("SET", k, "1"), ("LPUSH", k, "x"), ("INCRBY", k, 41), ("GET", k))
    assert got[0] in (True, b"OK")
    assert isinstance(got[1], redis.ResponseError) and "WRONGTYPE" in str(got[1])
    assert got[2:] == [42, b"42"]
    # the connection stays in step and is used again
    first = _client_id(calls)
    assert calls.run(("GET", k), ("EXISTS", k + "nothing")) == [b"42", 0]
    assert _client_id(calls) == first
    calls.close()


def test_a_timed_out_call_leaves_no_reply_for_the_next(
    redis_server: str, redis_prefix: str
) -> None:
    calls = Calls(connect(redis_server, timeout=0.3))
    other = redis.Redis.from_url(redis_server)
    k = redis_prefix + "k"
    calls.run(("SET", k, "before"))
    first = _client_id(calls)
    other.execute_command("CLIENT", "PAUSE", 1500, "ALL")
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="Redis"):
        calls.run(("GET", k))
    assert time.monotonic() - t0 < 1.2  # the budget, not the pause
    deadline = time.monotonic() + 10
    while True:  # the pause ends: a new connection, and the reply to this call
        try:
            assert calls.run(("GET", k + "2"), ("GET", k)) == [None, b"before"]
            break
        except StoreUnavailableError:
            assert time.monotonic() < deadline
    assert _client_id(calls) != first
    other.close()
    calls.close()


@pytest.fixture()
def own_redis(redis_server: str) -> Iterator[tuple[str, Path]]:
    """A Redis of this test's own, which it may restart (the session's must have started)."""
    url, folder, why = _start("redis", "REDIS")
    assert url is not None and folder is not None, why
    yield url, folder
    _stop("redis", "REDIS", folder)


def _script(folder: Path, what: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "redis"), what], check=True, timeout=60,
                   capture_output=True, env=dict(os.environ, REDIS_DIR=str(folder)))


def test_a_restarted_server_is_met_with_a_new_connection(own_redis: tuple[str, Path]) -> None:
    url, folder = own_redis
    shopper = RedisShopperState(connect(url, timeout=1.0), ShopperPolicy(), prefix="r:")
    shopper.record([event(1, item="a", type="purchase")])
    assert shopper.profile("u1").purchased == frozenset({"a"})
    _script(folder, "stop")
    _script(folder, "start")  # same port, same append-only file
    # the connection kept idle died with the server: the call is sent again on a new one
    assert shopper.profile("u1").purchased == frozenset({"a"})
    # its scripts died too: live counts load theirs again
    shopper.record([event(2, item="b", type="purchase")])
    assert [i for i, _ in shopper.live_top(5)][0] == "b"
    # a server that is down is an error, not a wait
    _script(folder, "stop")
    with pytest.raises(StoreUnavailableError):
        shopper.profile("u1")
    _script(folder, "start")
    assert shopper.profile("u1").purchased == frozenset({"a", "b"})
    shopper.close()


def test_threads_share_a_bounded_set_of_connections(redis_server: str, redis_prefix: str) -> None:
    calls = Calls(connect(redis_server, timeout=1.0), keep=2)
    k = redis_prefix + "n"
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                calls.run(("INCR", k), ("GET", k))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert calls.run(("GET", k)) == [b"1200"]
    assert len(calls._idle) <= 2
    calls.close()
