"""User profiles for online ranking: consent, attributes, recent history and affinities.

A :class:`ProfileStore` answers "what do we know about this user now" from three layers,
newest first:

1. live state: users who posted events (or were changed over the API) since start-up, updated
   in real time by ``record`` so the next feed reflects a view made a moment ago (bounded LRU);
2. the :class:`~ranking.history.HistorySnapshot` read at start-up from the event files and the
   event log: the last events and the purchases of every user (flat numpy arrays);
3. the :class:`UserDirectory`: consent and attributes of every user of the users file
   (flat arrays; attributes interned as a few distinct combinations).

A live state is seeded from layers 2 and 3 the first time the user posts an event. Readers
get an immutable :class:`UserProfile` snapshot. Users without consent keep their consent flag
and attributes, but no history is recorded or shown for them and ranking treats them as
anonymous (non-personalized).

Memory at 1M users × 20M events: directory ≈ 40 MB, snapshot ≈ 100 MB (both may be
memory-mapped and shared between worker processes), plus ≈ 1 KB per live user.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from data.catalog import Catalog
from data.lookup import sorted_row
from data.models import CATEGORY_SEPARATOR, AttributeValue, Event, User
from ranking.history import HistorySnapshot

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
    user_factors: bool = True
    """Whether the models' learned factors for this id may score for them: False once the id
    was erased over the API (a model that knows the id learned it from what was erased; one
    trained later knows it only if the shopper came back, and then they start afresh)."""

    @property
    def personalizable(self) -> bool:
        return self.consent

    def top_categories(self, n: int = 3) -> list[str]:
        return [c for c, _ in sorted(self.category_affinity.items(), key=lambda kv: -kv[1])[:n]]


@dataclass(frozen=True, slots=True)
class UserDirectory:
    """Consent and attributes of many users, column-wise. Row ``r`` is ``user_ids[r]`` (sorted)."""

    user_ids: np.ndarray
    consent: np.ndarray
    """bool per row."""
    attr_code: np.ndarray
    """Index into ``attrs`` per row."""
    attrs: tuple[Mapping[str, AttributeValue], ...] = ()

    @classmethod
    def empty(cls) -> UserDirectory:
        return cls(np.array([], dtype="U1"), np.zeros(0, bool), np.zeros(0, np.int32), ())

    @classmethod
    def from_users(cls, users: Iterable[User]) -> UserDirectory:
        """From validated users (small shops, tests); large files use ``serving.bootstrap``."""
        by_id = {u.user_id: u for u in users}
        ids = np.array(sorted(by_id), dtype=str) if by_id else np.array([], dtype="U1")
        combos: dict[tuple[tuple[str, AttributeValue], ...], int] = {}
        codes = np.zeros(len(ids), np.int32)
        consent = np.zeros(len(ids), bool)
        for r, uid in enumerate(ids):
            u = by_id[str(uid)]
            codes[r] = combos.setdefault(tuple(sorted(u.attributes.items())), len(combos))
            consent[r] = u.consent
        attrs = tuple(MappingProxyType(dict(k)) if k else _NO_ATTRS for k in combos)
        return cls(ids, consent, codes, attrs)

    def __len__(self) -> int:
        return len(self.user_ids)

    def row(self, user_id: str) -> int:
        return sorted_row(self.user_ids, user_id)

    def no_consent_ids(self) -> list[str]:
        return [str(u) for u in self.user_ids[~self.consent]]


class _State:
    __slots__ = ("attributes", "brand", "cat", "consent", "pending", "purchased", "recent")

    def __init__(self, history_size: int) -> None:
        self.attributes: Mapping[str, AttributeValue] = _NO_ATTRS
        self.consent = True
        self.recent: deque[str] = deque(maxlen=history_size)
        self.purchased: set[str] = set()
        self.cat: dict[str, float] = {}
        self.brand: dict[str, float] = {}
        self.pending: list[tuple[str, float]] = []
        """Affinity bumps (item, weight) not applied yet, oldest first (see ``_settle``)."""


class _LazyAffinity(Mapping[str, float]):
    """An affinity mapping computed on first read: most requests (recommendations, feed)
    never read affinities, and computing them costs a catalog lookup per history event."""

    __slots__ = ("_data", "_load")

    def __init__(self, load: Callable[[], Mapping[str, float]]) -> None:
        self._load: Callable[[], Mapping[str, float]] | None = load
        self._data: Mapping[str, float] = _EMPTY

    def _get(self) -> Mapping[str, float]:
        if self._load is not None:
            self._data, self._load = self._load(), None
        return self._data

    def __getitem__(self, key: str) -> float:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(dict(self._get()))


class ProfileStore:
    """Thread-safe user profiles: live states (LRU, at most ``max_users``) over the start-up
    snapshot and the user directory."""

    def __init__(
        self,
        *,
        history_size: int = 50,
        max_users: int = 500_000,
        directory: UserDirectory | None = None,
        snapshot: HistorySnapshot | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.history_size = history_size
        self.max_users = max_users
        self.directory = directory or UserDirectory.empty()
        self.snapshot = snapshot or HistorySnapshot.empty()
        self.catalog = catalog
        self._users: OrderedDict[str, _State] = OrderedDict()
        self._overrides: dict[str, tuple[bool, Mapping[str, AttributeValue]]] = {}
        """Consent and attributes changed over the API since the files were written."""
        self._erased: set[str] = set()
        self._forgotten: set[str] = set()
        """Every id erased, also those that came back since: see ``UserProfile.user_factors``."""
        self._interned: dict[
            tuple[tuple[str, AttributeValue], ...], Mapping[str, AttributeValue]
        ] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Users known from the users file and the API (not those only seen in events)."""
        d = self.directory
        return len(d) + sum(1 for u in self._overrides if d.row(u) < 0)

    def __contains__(self, user_id: object) -> bool:
        if not isinstance(user_id, str) or user_id in self._erased:
            return False
        return (
            user_id in self._users
            or user_id in self._overrides
            or self.directory.row(user_id) >= 0
            or self.snapshot.row(user_id) >= 0
        )

    # reading -----------------------------------------------------------------
    def get(self, user_id: str) -> UserProfile:
        """The user's profile; an unknown user gets an empty (but consenting) profile."""
        with self._lock:
            st = self._users.get(user_id)
            if st is None:
                st = self._base_state(user_id, lazy=True)
                if st is None:
                    return UserProfile(user_id=user_id, user_factors=user_id not in self._forgotten)
                return self._profile(user_id, st, lazy=True)
            return self._profile(user_id, st)

    def _profile(self, user_id: str, st: _State, *, lazy: bool = False) -> UserProfile:
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
            category_affinity=_LazyAffinity(lambda: self._affinity(st, "cat")) if lazy
            else MappingProxyType({k: v for k, v in st.cat.items() if v > 0}),
            brand_affinity=_LazyAffinity(lambda: self._affinity(st, "brand")) if lazy
            else MappingProxyType({k: v for k, v in st.brand.items() if v > 0}),
            user_factors=user_id not in self._forgotten,
        )

    def _affinity(self, st: _State, which: str) -> Mapping[str, float]:
        """Affinities of a state no other thread holds (a lazily read one)."""
        self._settle(st)
        d: dict[str, float] = st.cat if which == "cat" else st.brand
        return MappingProxyType({k: v for k, v in d.items() if v > 0})

    def _base_state(self, user_id: str, *, lazy: bool = False) -> _State | None:
        """What the files and API changes say about a user without a live state (or None).
        ``lazy``: affinities are left pending (see ``_settle``)."""
        if user_id in self._erased:
            return None
        over = self._overrides.get(user_id)
        d = self.directory
        drow = d.row(user_id) if over is None else -1
        srow = self.snapshot.row(user_id)
        if over is None and drow < 0 and srow < 0:
            return None
        st = _State(self.history_size)
        if over is not None:
            st.consent, st.attributes = over
        elif drow >= 0:
            st.consent = bool(d.consent[drow])
            st.attributes = d.attrs[int(d.attr_code[drow])] if d.attrs else _NO_ATTRS
        if st.consent and srow >= 0:
            snap = self.snapshot
            for item_id, etype in reversed(snap.recent(srow)):  # oldest first
                self._apply(st, etype, item_id, None, lazy=True)
            st.purchased = set(snap.purchased(srow))
            if not lazy:
                self._settle(st)
        return st

    # writing -----------------------------------------------------------------
    def upsert_users(self, users: Iterable[User]) -> int:
        n = 0
        with self._lock:
            for user in users:
                uid = user.user_id
                attrs = self._intern(user.attributes)
                self._erased.discard(uid)
                self._overrides[uid] = (user.consent, attrs)
                st = self._users.get(uid)
                if st is not None:
                    st.attributes = attrs
                    st.consent = user.consent
                    if not user.consent:
                        self._forget_history(st)
                n += 1
        return n

    def erase(self, user_id: str) -> bool:
        """Forget everything about the user. Returns whether they were known."""
        with self._lock:
            known = user_id in self
            self._users.pop(user_id, None)
            self._overrides.pop(user_id, None)
            self._erased.add(user_id)
            self._forgotten.add(user_id)
            return known

    def record(self, events: Iterable[Event], catalog: Catalog | None = None) -> int:
        """Update histories and affinities from events (in the order given).

        Returns how many events changed a profile. Events of users without consent only mark
        the user as known.
        """
        n = 0
        catalog = catalog or self.catalog
        with self._lock:
            for ev in events:
                st = self._state(ev.user_id)
                if not st.consent or ev.item_id is None:
                    continue
                w = ev.value - 2.5 if ev.type == "rate" and ev.value is not None else None
                self._apply(st, ev.type, ev.item_id, w, catalog)
                n += 1
        return n

    # internals ---------------------------------------------------------------
    def _apply(
        self,
        st: _State,
        etype: str,
        item_id: str,
        weight: float | None,
        catalog: Catalog | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        if etype == "refund":
            st.purchased.discard(item_id)
        elif etype == "purchase":
            st.purchased.add(item_id)
        if etype in HISTORY_TYPES:
            st.recent.append(item_id)
        w = EVENT_WEIGHTS.get(etype, 0.0) if weight is None else weight
        if w:
            st.pending.append((item_id, w))
            if not lazy:
                self._settle(st, catalog)

    def _settle(self, st: _State, catalog: Catalog | None = None) -> None:
        """Apply the pending affinity bumps, oldest first (category path and brand of each item)."""
        catalog = catalog or self.catalog
        pending, st.pending = st.pending, []
        if catalog is None:
            return
        for item_id, w in pending:
            cat, brand = _category_and_brand(catalog, item_id)
            if cat is not None:
                _bump(st.cat, cat, w)
                if brand:
                    _bump(st.brand, brand, w)

    def _state(self, user_id: str) -> _State:
        st = self._users.get(user_id)
        if st is None:
            st = self._base_state(user_id) or _State(self.history_size)
            self._erased.discard(user_id)
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
        st.pending.clear()


def _category_and_brand(catalog: Catalog, item_id: str) -> tuple[str | None, str | None]:
    """(category path, brand) of a catalog item, (None, None) when it is not in the catalog."""
    facts = getattr(catalog, "category_and_brand", None)
    if facts is not None:
        return facts(item_id)  # type: ignore[no-any-return]
    item = catalog.get(item_id)
    if item is None:
        return None, None
    return CATEGORY_SEPARATOR.join(item.category), item.brand


def _bump(d: dict[str, float], key: str, w: float) -> None:
    for k in d:
        d[k] *= AFFINITY_DECAY
    d[key] = d.get(key, 0.0) + w
    if len(d) > 32:  # keep the strongest few
        for k, _ in sorted(d.items(), key=lambda kv: kv[1])[: len(d) - 32]:
            del d[k]
