"""Profiles and live counts read from the stores, for replicas that share state.

:class:`StoreProfiles` has the surface of :class:`~ranking.profile.ProfileStore` the pipeline
and the routes use (``get``, ``record``, ``upsert_users``, ``erase``, ``in``), but keeps no
shopper state in the process: consent and attributes come from a ``UserStore``, recent
history and purchases from a ``ShopperStateStore`` (Redis or SQLite), on every request. What
it keeps is bounded and invalidated by the change feed: a small LRU of users (consent and
attributes, rarely changed) and the set of erased ids (read at start, refreshed on every users
change). :class:`StoreLive` does the same for live popularity (``ranking.live.LiveCounts``).

Affinities are derived from the stored recent history (the last ``history_size`` events), in
order, with the weights and decay of ``ranking.profile``, when first read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import MappingProxyType

from core.errors import StorageUnavailableError
from data.catalog import Catalog
from data.models import AttributeValue, Event, User
from ranking.profile import (
    EVENT_WEIGHTS,
    UserProfile,
    _bump,
    _category_and_brand,
    _LazyAffinity,
)
from stores.protocols import ShopperStateStore, UserStore
from stores.records import ShopperProfile

log = logging.getLogger(__name__)

_NO_ATTRS: Mapping[str, AttributeValue] = MappingProxyType({})
_MISSING = object()
_Known = tuple[bool, Mapping[str, AttributeValue]]


class StoreProfiles:
    """User profiles over a ``UserStore`` and a ``ShopperStateStore`` (nothing per shopper
    held here beyond a bounded cache of users' consent and attributes)."""

    def __init__(
        self,
        users: UserStore,
        shopper: ShopperStateStore,
        catalog: Catalog,
        *,
        history_size: int = 50,
        cache_size: int = 4_096,
    ) -> None:
        self.users = users
        self.shopper = shopper
        self.catalog = catalog
        self.history_size = history_size
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _Known | None] = OrderedDict()
        """User id → (consent, interned attributes), None for an unknown user: about 150
        bytes an entry; 4,096 fill within a minute of traffic, so memory is flat soon after
        start (20k were still filling after 10 minutes of a soak over 20k users). A miss is
        one read of the user store."""
        self._interned: dict[tuple[tuple[str, AttributeValue], ...],
                             Mapping[str, AttributeValue]] = {}
        self._lock = threading.Lock()
        self._erased: dict[str, datetime] = dict(users.erasures())

    # the change feed -----------------------------------------------------------
    def invalidate(self, user_ids: Iterable[str] | None) -> dict[str, datetime]:
        """Users changed in another process (None: any may have): drop them from the cache
        and read the erasures again. Returns the erasures this process did not know of
        (user id → when), so it can forget what it holds of them."""
        erasures = self.users.erasures()
        with self._lock:
            if user_ids is None:
                self._cache.clear()
            else:
                for uid in user_ids:
                    self._cache.pop(uid, None)
            new = {u: at for u, at in erasures.items() if u not in self._erased}
            self._erased = dict(erasures)
        return new

    # reading ---------------------------------------------------------------------
    def _user(self, user_id: str) -> _Known | None:
        with self._lock:
            got = self._cache.get(user_id, _MISSING)
            if got is not _MISSING:
                self._cache.move_to_end(user_id)
                return got  # type: ignore[return-value]
        user = self.users.get(user_id)
        return self._remember(user_id, user)

    def _remember(self, user_id: str, user: User | None) -> _Known | None:
        known: _Known | None = None
        with self._lock:
            if user is not None:
                attrs: Mapping[str, AttributeValue] = _NO_ATTRS
                if user.attributes:
                    key = tuple(sorted(user.attributes.items()))
                    attrs = self._interned.get(key) or MappingProxyType(dict(key))
                    if len(self._interned) < 10_000:  # a shop has few distinct combinations
                        self._interned.setdefault(key, attrs)
                known = (user.consent, attrs)
            self._cache[user_id] = known
            self._cache.move_to_end(user_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return known

    def __contains__(self, user_id: object) -> bool:
        if not isinstance(user_id, str):
            return False
        if self._user(user_id) is not None:
            return True
        return bool(self.shopper.recent(user_id, 1))

    def __len__(self) -> int:
        return self.users.count()

    def ids(self) -> list[str]:
        """Some user ids (the console's user picker): the first 200 by id."""
        out: list[str] = []
        for u in self.users.iter_users():
            out.append(u.user_id)
            if len(out) >= 200:
                break
        return out

    def get(self, user_id: str) -> UserProfile:
        """The user's profile now; an unknown user gets an empty (but consenting) profile.

        When the user store does not answer, consent is unknown: the profile is an anonymous
        one (non-personalized answers, never personalization against a withdrawn consent).
        When only the shopper store does not answer, the profile has no recent history."""
        try:
            user = self._user(user_id)
        except StorageUnavailableError as exc:
            _warn("users", exc)
            return UserProfile(user_id=user_id, consent=False, user_factors=False)
        factors = user_id not in self._erased
        consent, attrs = user if user is not None else (True, _NO_ATTRS)
        if not consent:
            return UserProfile(user_id=user_id, known=True, consent=False, attributes=attrs,
                               user_factors=factors)
        try:
            state = self.shopper.profile(user_id, self.history_size)
        except StorageUnavailableError as exc:
            _warn("shopper state", exc)
            state = ShopperProfile()
        if user is None and not state.recent and not state.purchased:
            return UserProfile(user_id=user_id, user_factors=factors)
        recent: list[str] = []
        seen: set[str] = set()
        for item_id, _ in state.recent:
            if item_id not in seen:
                seen.add(item_id)
                recent.append(item_id)
        history = state.recent
        affinity = _Affinities(history, self.catalog)
        return UserProfile(
            user_id=user_id,
            known=True,
            consent=True,
            attributes=attrs,
            recent_items=tuple(recent),
            purchased=state.purchased,
            category_affinity=_LazyAffinity(affinity.categories),
            brand_affinity=_LazyAffinity(affinity.brands),
            user_factors=factors,
        )

    # writing ---------------------------------------------------------------------
    def record(self, events: Iterable[Event], catalog: Catalog | None = None) -> int:
        """Record events of consenting users (and of unknown users, who consent by default)
        in the shopper state; returns how many were recorded."""
        evs = [e for e in events if e.item_id is not None]
        if not evs:
            return 0
        ids = sorted({e.user_id for e in evs})
        known = self.users.get_many([u for u in ids if not self._cached_consent(u)])
        refused = {u for u in ids if self._cached_consent(u) is False}
        refused |= {u for u, user in known.items() if not user.consent}
        for uid, user in known.items():
            self._remember(uid, user)
        keep = [e for e in evs if e.user_id not in refused]
        if keep:
            self.shopper.record(keep)
        return len(keep)

    def _cached_consent(self, user_id: str) -> bool | None:
        with self._lock:
            got = self._cache.get(user_id, _MISSING)
        if got is _MISSING or got is None:
            return None
        return got[0]  # type: ignore[index]

    def upsert_users(self, users: Iterable[User]) -> int:
        """Users changed through this process (already written to the user store): withdrawn
        consent drops their history."""
        n = 0
        for user in users:
            self._remember(user.user_id, user)
            if not user.consent:
                self.shopper.forget_user(user.user_id)
            n += 1
        return n

    @contextmanager
    def erasing(self, user_id: str) -> Iterator[None]:
        """Around this process's own erasure of ``user_id``: the change feed then does not
        report it as another process's (whose requests this process would anonymize on its
        own, racing the erasure that counts them). Undone when the block fails."""
        with self._lock:
            had = self._erased.get(user_id)
            self._erased[user_id] = datetime.now()
        try:
            yield
        except BaseException:
            with self._lock:
                if had is None:
                    self._erased.pop(user_id, None)
                else:
                    self._erased[user_id] = had
            raise

    def erase(self, user_id: str) -> bool:
        """Forget the user's shopper state (the user store records the erasure itself).
        Returns whether the user was known."""
        known = user_id in self
        self.shopper.forget_user(user_id)
        with self._lock:
            self._cache.pop(user_id, None)
            self._erased[user_id] = datetime.now()
        return known


_warned: dict[str, float] = {}


def _warn(what: str, exc: Exception) -> None:
    """One warning per store per minute while it does not answer."""
    now = time.monotonic()
    if now - _warned.get(what, -1e9) >= 60.0:
        _warned[what] = now
        log.warning("%s store unavailable (%s): answering without it", what, exc)


class _Affinities:
    """Category and brand affinities of a stored history, computed once when first read."""

    __slots__ = ("_brand", "_cat", "_catalog", "_history")

    def __init__(self, history: Sequence[tuple[str, str]], catalog: Catalog) -> None:
        self._history = history
        self._catalog = catalog
        self._cat: Mapping[str, float] | None = None
        self._brand: Mapping[str, float] = MappingProxyType({})

    def _compute(self) -> None:
        cat: dict[str, float] = {}
        brand: dict[str, float] = {}
        for item_id, etype in reversed(self._history):  # oldest first
            w = EVENT_WEIGHTS.get(etype, 0.0)
            if not w:
                continue
            c, b = _category_and_brand(self._catalog, item_id)
            if c is None:
                continue
            _bump(cat, c, w)
            if b:
                _bump(brand, b, w)
        self._cat = MappingProxyType({k: v for k, v in cat.items() if v > 0})
        self._brand = MappingProxyType({k: v for k, v in brand.items() if v > 0})

    def categories(self) -> Mapping[str, float]:
        if self._cat is None:
            self._compute()
        assert self._cat is not None
        return self._cat

    def brands(self) -> Mapping[str, float]:
        if self._cat is None:
            self._compute()
        return self._brand


class StoreLive:
    """Live popularity over a ``ShopperStateStore`` (the surface of
    :class:`~ranking.live.LiveCounts`). The hottest items are read at most once per
    ``refresh_seconds`` per process: trending need not move within a second."""

    def __init__(
        self,
        shopper: ShopperStateStore,
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shopper = shopper
        self._refresh = refresh_seconds
        self._clock = clock
        self._top: tuple[float, int, list[tuple[str, float]]] = (-1e18, 0, [])
        self._lock = threading.Lock()

    def record(self, events: Iterable[Event]) -> None:
        """Nothing to do: :meth:`StoreProfiles.record` writes live counts with the history
        (the shopper store updates both from one batch)."""

    def top(self, n: int, *, allowed: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The ``n`` hottest items (the hottest scored 1.0), optionally among ``allowed``."""
        try:
            return self._top_n(n, allowed)
        except StorageUnavailableError as exc:  # trending falls back to the models
            _warn("live counts", exc)
            return []

    def _top_n(self, n: int, allowed: Iterable[str] | None) -> list[tuple[str, float]]:
        if allowed is not None:
            scores = self.shopper.live_scores(list(allowed))
            best = sorted(scores.items(), key=lambda kv: -kv[1])[:n]
            if not best:
                return []
            top = best[0][1] or 1.0
            return [(i, s / top) for i, s in best]
        now = self._clock()
        with self._lock:
            at, size, pairs = self._top
            if now - at < self._refresh and size >= n:
                return pairs[:n]
        pairs = self.shopper.live_top(max(n, 100))
        with self._lock:
            self._top = (now, max(n, 100), pairs)
        return pairs[:n]

    def forget(self, item_ids: Iterable[str]) -> None:
        ids = list(item_ids)
        if ids:
            self.shopper.forget_items(ids)
        with self._lock:
            self._top = (-1e18, 0, [])

    def __len__(self) -> int:
        return len(self.shopper.live_top(100))
