"""User profiles for online ranking: consent, attributes, recent history and affinities.

A :class:`ProfileStore` is updated in real time from posted events (``record``), so the next
feed reflects a view made a moment ago. It keeps, per user, the last ``history_size``
interactions, the purchased items, and decayed category / brand affinities. Readers get an
immutable :class:`UserProfile` snapshot.

Users without consent keep their consent flag and attributes, but no history is recorded for
them and ranking treats them as anonymous (non-personalized).

Memory: attributes are interned (users share few distinct attribute combinations) and only
users that posted events since start-up (or were bootstrapped) carry a history, so a shop with
1M users costs a few hundred MB at most here.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR, AttributeValue, Event, User

log = logging.getLogger(__name__)

EVENT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "impression": 0.0,
        "view": 1.0,
        "click": 1.5,
        "add_to_cart": 3.0,
        "remove_from_cart": -1.0,
        "favorite": 3.0,
        "purchase": 5.0,
        "refund": -5.0,
        "rate": 0.0,  # uses (rating - 2.5)
        "share": 2.0,
        "search": 0.0,
    }
)
"""How strongly one event of each type moves a user's affinities."""

HISTORY_TYPES = frozenset({"view", "click", "add_to_cart", "favorite", "purchase", "share", "rate"})
"""Event types that put an item into the recent history (impressions do not)."""

AFFINITY_DECAY = 0.97
"""Each new event multiplies older affinities by this, so recent taste dominates."""

_EMPTY: Mapping[str, float] = MappingProxyType({})
_NO_ATTRS: Mapping[str, AttributeValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What ranking knows about one user at one moment."""

    user_id: str
    known: bool = False
    """The user exists (upserted, loaded or has posted events)."""
    consent: bool = True
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: _NO_ATTRS)
    recent_items: tuple[str, ...] = ()
    """Distinct recently interacted items, most recent first."""
    purchased: frozenset[str] = frozenset()
    category_affinity: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    """Category path (``A > B > C``) → affinity; only positive entries."""
    brand_affinity: Mapping[str, float] = field(default_factory=lambda: _EMPTY)

    @property
    def personalizable(self) -> bool:
        return self.consent

    def top_categories(self, n: int = 3) -> list[str]:
        return [c for c, _ in sorted(self.category_affinity.items(), key=lambda kv: -kv[1])[:n]]


class _State:
    __slots__ = ("attributes", "consent", "recent", "purchased", "cat", "brand")

    def __init__(self, history_size: int) -> None:
        self.attributes: Mapping[str, AttributeValue] = _NO_ATTRS
        self.consent = True
        self.recent: deque[str] = deque(maxlen=history_size)
        self.purchased: set[str] = set()
        self.cat: dict[str, float] = {}
        self.brand: dict[str, float] = {}


class ProfileStore:
    """Thread-safe user profiles, bounded to `max_users` active histories (LRU)."""

    def __init__(self, *, history_size: int = 50, max_users: int = 2_000_000) -> None:
        self.history_size = history_size
        self.max_users = max_users
        self._users: OrderedDict[str, _State] = OrderedDict()
        self._interned: dict[tuple[tuple[str, AttributeValue], ...], Mapping[str, AttributeValue]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    # reading -----------------------------------------------------------------
    def get(self, user_id: str) -> UserProfile:
        """The user's profile; an unknown user gets an empty (but consenting) profile."""
        with self._lock:
            st = self._users.get(user_id)
            if st is None:
                return UserProfile(user_id=user_id)
            recent: list[str] = []
            seen: set[str] = set()
            for item_id in reversed(st.recent):
                if item_id not in seen:
                    seen.add(item_id)
                    recent.append(item_id)
            return UserProfile(
                user_id=user_id,
                known=True,
                consent=st.consent,
                attributes=st.attributes,
                recent_items=tuple(recent),
                purchased=frozenset(st.purchased),
                category_affinity=MappingProxyType({k: v for k, v in st.cat.items() if v > 0}),
                brand_affinity=MappingProxyType({k: v for k, v in st.brand.items() if v > 0}),
            )

    # writing -----------------------------------------------------------------
    def upsert_users(self, users: Iterable[User]) -> int:
        n = 0
        with self._lock:
            for user in users:
                st = self._state(user.user_id)
                st.attributes = self._intern(user.attributes)
                st.consent = user.consent
                if not user.consent:
                    self._forget_history(st)
                n += 1
        return n

    def erase(self, user_id: str) -> bool:
        """Forget everything about the user. Returns whether they were known."""
        with self._lock:
            return self._users.pop(user_id, None) is not None

    def record(self, events: Iterable[Event], catalog: Catalog) -> int:
        """Update histories and affinities from events (in the order given).

        Returns how many events changed a profile. Events of users without consent only mark
        the user as known.
        """
        n = 0
        with self._lock:
            for ev in events:
                st = self._state(ev.user_id)
                if not st.consent or ev.item_id is None:
                    continue
                if ev.type == "refund":
                    st.purchased.discard(ev.item_id)
                elif ev.type == "purchase":
                    st.purchased.add(ev.item_id)
                if ev.type in HISTORY_TYPES:
                    st.recent.append(ev.item_id)
                w = EVENT_WEIGHTS.get(ev.type, 0.0)
                if ev.type == "rate" and ev.value is not None:
                    w = ev.value - 2.5
                if w:
                    item = catalog.get(ev.item_id)
                    if item is not None:
                        _bump(st.cat, CATEGORY_SEPARATOR.join(item.category), w)
                        if item.brand:
                            _bump(st.brand, item.brand, w)
                n += 1
        return n

    # internals ---------------------------------------------------------------
    def _state(self, user_id: str) -> _State:
        st = self._users.get(user_id)
        if st is None:
            st = _State(self.history_size)
            self._users[user_id] = st
            if len(self._users) > self.max_users:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(user_id)
        return st

    def _intern(self, attrs: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue]:
        if not attrs:
            return _NO_ATTRS
        key = tuple(sorted(attrs.items()))
        got = self._interned.get(key)
        if got is None:
            got = MappingProxyType(dict(key))
            self._interned[key] = got
        return got

    @staticmethod
    def _forget_history(st: _State) -> None:
        st.recent.clear()
        st.purchased.clear()
        st.cat.clear()
        st.brand.clear()


def _bump(d: dict[str, float], key: str, w: float) -> None:
    for k in d:
        d[k] *= AFFINITY_DECAY
    d[key] = d.get(key, 0.0) + w
    if len(d) > 32:  # keep the strongest few
        for k, _ in sorted(d.items(), key=lambda kv: kv[1])[: len(d) - 32]:
            del d[k]
