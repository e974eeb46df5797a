"""The set of trained models online ranking uses, loaded from the model registry.

A :class:`ModelSet` is immutable: serving builds a new one fully (when a new version is
promoted) and then swaps one reference, so a request in flight keeps the set it started with.

Each model is wrapped in a :class:`LoadedModel` that normalizes the facade of ``models.base``
(``recommend(user_id=… | history=…, n, exclude)`` / ``similar(item_id, n)``) into lists of
``(item_id, score)``, so candidate sources never depend on one model's return type.

Serving loads models lean and shared (:func:`load_serving_model`): the arrays of a saved model
are memory-mapped straight out of its uncompressed ``arrays.npz`` (no copy; several worker
processes share the pages), and only the model that serves the ``cf`` source keeps its
user side (user vocabulary, as sorted numpy ids, and training rows) — item-to-item and
non-personal models never look users up. The hot calls have numpy fast paths with the
same results as the models' own code (:class:`FastPaths`): a known user's factor scores, a
neighbour row of a sparse item-item matrix, and cached lists of non-personal models.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from data.lookup import sorted_row

log = logging.getLogger(__name__)

USER_SIDE_MODELS: tuple[str, ...] = ("als", "ease", "bpr", "item_knn")
"""Registry names that may serve the ``cf`` source (same order as ``ranking.candidates``):
the first one present keeps its user side when loaded for serving."""
NO_INDICES = np.zeros(0, np.int64)
"""An empty index array (no exclusions) for the fast paths and their callers; never written."""
_SPARSE_NEIGHBOURS = {"item_knn": "similarity_", "bought_together": "association_"}
_FACTOR_MODELS = ("als", "bpr")

Scored = list[tuple[str, float]]


class ModelFacade(Protocol):
    """What ``models.base`` models offer (id-based)."""

    def recommend(self, *args: object, **kwargs: object) -> object: ...

    def similar(self, *args: object, **kwargs: object) -> object: ...


def _as_pairs(result: object) -> Scored:
    """Accept ``[(id, score)]``, ``[ScoredItem]``, ``(ids, scores)`` or objects with
    ``item_id``/``score`` attributes."""
    if result is None:
        return []
    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result[0], str):
        ids, scores = result
        return [(str(i), float(s)) for i, s in zip(ids, scores, strict=False)]
    out: Scored = []
    for r in result:  # type: ignore[attr-defined]
        if isinstance(r, tuple):
            out.append((str(r[0]), float(r[1])))
        else:
            out.append((str(r.item_id), float(r.score)))
    return out


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """One model version, speaking item and user ids (wraps ``models.ModelHandle``)."""

    name: str
    version: str
    model: ModelFacade
    fast: FastPaths | None = field(default=None, compare=False)

    @property
    def knows_users(self) -> bool:
        """Loaded with its user side (see :func:`load_serving_model`)."""
        inner = getattr(self.model, "model", None)
        return inner is None or len(getattr(inner, "user_ids_", ())) > 0

    def knows_user(self, user_id: str) -> bool:
        fn = getattr(self.model, "known_user", None)
        return bool(fn(user_id)) if fn is not None else False

    def recommend_user(
        self,
        user_id: str,
        n: int,
        exclude: Iterable[str] = (),
        *,
        history: Sequence[str] = (),
        category: Sequence[str] | None = None,
        filter_seen: bool = False,
    ) -> Scored:
        """The user's top items. Seen items stay eligible (shops re-show what was viewed);
        callers exclude what must not come back (e.g. purchases)."""
        if self.fast is not None and not history and not filter_seen:
            got = self.fast.user_top(user_id, n, exclude, category)
            if got is not None:
                return got
        return _as_pairs(
            self.model.recommend(
                user_id=user_id,
                history=list(history),
                n=n,
                exclude=set(exclude),
                category=category,
                filter_seen=filter_seen,
            )
        )

    def recommend_history(
        self,
        history: Sequence[str],
        n: int,
        exclude: Iterable[str] = (),
        *,
        category: Sequence[str] | None = None,
    ) -> Scored:
        excl = set(exclude)
        if self.fast is not None and not history and not excl:
            return self.fast.global_top(
                n, category,
                lambda k: _as_pairs(self.model.recommend(history=[], n=k, category=category)),
            )
        return _as_pairs(
            self.model.recommend(history=list(history), n=n, exclude=excl, category=category)
        )

    def similar(self, item_id: str, n: int, exclude: Iterable[str] = ()) -> Scored:
        if self.fast is not None:
            got = self.fast.neighbours(item_id, n, exclude)
            if got is not None:
                return got
        return _as_pairs(self.model.similar(item_id, n=n, exclude=set(exclude)))

    def score_items(
        self, item_ids: Sequence[str], user_id: str | None, history: Sequence[str]
    ) -> dict[str, float]:
        """Model scores of the given items for the user (search re-ranking). A user the
        factor model knows is scored from the learned factors alone (fast path); their
        real-time history counts through the profile's affinities instead."""
        if self.fast is not None and user_id:
            got = self.fast.user_scores(user_id, item_ids)
            if got is not None:
                return got
        fn = getattr(self.model, "score_items", None)
        if fn is None:
            return {}
        return {
            str(k): float(v)
            for k, v in fn(list(item_ids), user_id=user_id, history=list(history)).items()
        }


@dataclass(frozen=True, slots=True)
class ModelSet:
    """Model name → loaded model; ``signature`` identifies the versions it was built from."""

    models: Mapping[str, LoadedModel] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> LoadedModel | None:
        return self.models.get(name)

    def first(self, names: Iterable[str]) -> LoadedModel | None:
        for n in names:
            m = self.models.get(n)
            if m is not None:
                return m
        return None

    @property
    def versions(self) -> dict[str, str]:
        return {name: m.version for name, m in self.models.items()}

    def __len__(self) -> int:
        return len(self.models)


def current_versions(models_dir: Path) -> dict[str, str]:
    """Model name → current version in the registry (empty when there is none yet)."""
    try:
        from models import registry
    except ImportError:
        return {}
    if not models_dir.exists():
        return {}
    return dict(registry.current_versions(models_dir))  # type: ignore[attr-defined]


def load_model_set(
    models_dir: Path,
    versions: Mapping[str, str] | None = None,
    *,
    previous: ModelSet | None = None,
    derived_dir: Path | None = None,
) -> ModelSet:
    """Load every model's current version (or the given ``versions``).

    Models whose version did not change are reused from ``previous`` instead of being read
    again, so a promotion of one model costs only that model's load. ``derived_dir``: where
    the serving copies derived from a model (its factors sorted by norm and by category) are
    kept as files every worker maps (:func:`shared_array`); None: each process builds its own.
    """
    wanted = dict(versions) if versions is not None else current_versions(models_dir)
    if not wanted:
        return ModelSet()
    from models.registry import Registry

    reg = Registry(models_dir)
    user_side = next((n for n in USER_SIDE_MODELS if n in wanted), None)
    loaded: dict[str, LoadedModel] = {}
    for name, version in sorted(wanted.items()):
        old = previous.get(name) if previous is not None else None
        if old is not None and old.version == version and (name != user_side or old.knows_users):
            loaded[name] = old
            continue
        cache = derived_dir / name / version if derived_dir is not None else None
        try:
            reg.verify(name, version)
            model = load_serving_model(reg.path(name, version), version,
                                       with_users=name == user_side, cache=cache)
        except Exception:  # a broken artifact must not take serving down
            log.exception(
                "cannot load model %s version %s; keeping the previous one", name, version
            )
            if old is not None:
                loaded[name] = old
            continue
        loaded[name] = LoadedModel(
            name=name, version=version, model=model, fast=FastPaths.build(model, cache)
        )
        if cache is not None and cache.is_dir():
            os.utime(cache)  # in use: the most recent
            _forget_old_versions(cache.parent, keep=3)
        log.info(
            "loaded model %s version %s%s",
            name,
            version,
            " (with users)" if name == user_side else "",
        )
    return ModelSet(MappingProxyType(loaded))


# ---------------------------------------------------------------------------- lean loading
def mmap_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, memory-mapped in place when stored uncompressed
    (``np.savez``), else read normally. Mappings are copy-on-write: libraries that ask for
    writable buffers get them, and pages nobody writes stay shared between processes."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            start = (
                info.header_offset
                + 30
                + int.from_bytes(local[26:28], "little")
                + int.from_bytes(local[28:30], "little")
            )
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh, max_header_size=1 << 20)
            if dtype.hasobject:
                raise ValueError(f"{path.name}:{name}: object arrays are not loaded")
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                continue
            out[name] = np.memmap(path, dtype=dtype, mode="c", offset=fh.tell(), shape=shape,
                                  order="F" if fortran else "C")
    return out


class SortedIds:
    """A user vocabulary without a Python object per id: sorted numpy ids + their indices.

    Speaks the part of ``models.vocab.Vocabulary`` the models use on users
    (``len``, ``index``, ``indices``, ``ids``, ``to_ids``)."""

    __slots__ = ("_last", "_order", "_sorted")

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        arr = np.asarray(ids, dtype=str) if len(ids) else np.array([], dtype="U1")
        self._order = np.argsort(arr, kind="stable").astype(np.int64)
        self._sorted = arr[self._order]
        self._last: tuple[str, int] = ("", -1)
        """The last lookup: a request asks for the same user several times in a row."""

    @classmethod
    def shared(cls, folder: Path | None, load: Callable[[], Sequence[str]]) -> SortedIds:
        """The ids ``load`` gives, sorted, as two :func:`shared_array` files in ``folder``:
        every worker maps the same pages instead of keeping its own copy (34 MB per worker
        at 1M users), and a start that finds the files reads neither the JSON nor sorts."""
        if folder is None:
            return cls(load())
        made: list[SortedIds] = []

        def build(part: str) -> np.ndarray:
            if not made:
                made.append(cls(load()))
            return made[0]._sorted if part == "sorted" else made[0]._order

        out = cls.__new__(cls)
        out._sorted = shared_array(folder, "user_ids_sorted", lambda: build("sorted"))
        out._order = shared_array(folder, "user_ids_order", lambda: build("order"))
        out._last = ("", -1)
        if len(out._sorted) != len(out._order):  # files of two different builds: not to be trusted
            return made[0] if made else cls(load())
        return out

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self.index(user_id) >= 0

    def index(self, user_id: str) -> int:
        last = self._last
        if last[0] == user_id and user_id:
            return last[1]
        r = sorted_row(self._sorted, user_id)
        got = int(self._order[r]) if r >= 0 else -1
        self._last = (user_id, got)
        return got

    def indices(self, ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.index(i) for i in ids), dtype=np.int64)

    @property
    def ids(self) -> np.ndarray:
        out = np.empty(len(self._sorted), dtype=object)
        out[self._order] = self._sorted
        return out

    def id(self, index: int) -> str:
        return str(self.ids[index])

    def to_ids(self, indices: np.ndarray) -> list[str]:
        ids = self.ids
        return [str(ids[i]) for i in np.asarray(indices, dtype=np.int64)]


_ITEM_VOCABS: OrderedDict[str, tuple[Any, list[str]]] = OrderedDict()
_ITEM_VOCABS_LOCK = threading.Lock()


def _shared_items(path: Path) -> Any:
    """The item vocabulary, one object for every model trained on the same items (they
    usually all are): saves a dict and a list of 100k ids per model and worker."""
    import hashlib

    from models.vocab import Vocabulary

    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    with _ITEM_VOCABS_LOCK:
        got = _ITEM_VOCABS.get(key)
        if got is not None:
            _ITEM_VOCABS.move_to_end(key)
            return got[0]
    ids = json.loads(raw)
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise ValueError(f"{path.name}: expected a JSON list of id strings")
    vocab = Vocabulary(np.asarray(ids, dtype=object))
    with _ITEM_VOCABS_LOCK:
        _ITEM_VOCABS[key] = (vocab, ids)
        while len(_ITEM_VOCABS) > 16:
            _ITEM_VOCABS.popitem(last=False)
    return vocab


_JSON_LISTS: OrderedDict[str, list[str]] = OrderedDict()


def _shared_json_list(path: Path) -> list[str]:
    """A JSON list of strings (item categories), one list for identical files."""
    import hashlib

    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    with _ITEM_VOCABS_LOCK:
        got = _JSON_LISTS.get(key)
        if got is not None:
            return got
    value = json.loads(raw)
    with _ITEM_VOCABS_LOCK:
        _JSON_LISTS[key] = value
        while len(_JSON_LISTS) > 16:
            _JSON_LISTS.popitem(last=False)
    return value  # type: ignore[no-any-return]


def _item_id_list(vocab: Any) -> list[str]:
    with _ITEM_VOCABS_LOCK:
        for v, ids in _ITEM_VOCABS.values():
            if v is vocab:
                return ids
    return [str(x) for x in vocab.ids]


def load_serving_model(
    folder: Path, version: str, *, with_users: bool, cache: Path | None = None
) -> Any:
    """A saved model as a ``models.ModelHandle``, arrays memory-mapped, user side
    only ``with_users`` (the same attributes ``Recommender.load`` sets). ``cache``: this
    version's folder of derived arrays (:func:`shared_array`), where the sorted user ids go."""
    import scipy.sparse as sp

    from models import ModelHandle, model_class
    from models.base import ARRAYS_FILE, CATEGORIES_FILE, ITEMS_FILE, USERS_FILE, read_model_meta
    from models.vocab import Vocabulary

    meta = read_model_meta(folder)
    cls = model_class(meta["algorithm"])
    model = cls(cls.Params(**meta["params"]))
    arrays = mmap_npz(folder / ARRAYS_FILE)
    items = _shared_items(folder / ITEMS_FILE)
    for name, kind in meta["arrays"].items():
        if kind == "none":
            value: Any = None
        elif name == "user_items_" and not with_users:
            value = sp.csr_matrix((0, len(items)), dtype=np.float32)
        elif kind == "csr":
            shape = tuple(int(x) for x in arrays[f"{name}.shape"])
            value = sp.csr_matrix(
                (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]),
                shape=shape, copy=False)
        else:
            value = arrays[name]
        setattr(model, name, value)
    if with_users:
        model.user_ids_ = SortedIds.shared(
            cache, lambda: json.loads((folder / USERS_FILE).read_text("utf-8")))
    else:
        model.user_ids_ = Vocabulary([])
    model.item_ids_ = items
    cat_path = folder / CATEGORIES_FILE
    model.item_categories_ = _shared_json_list(cat_path) if cat_path.exists() else None
    model._set_extra_state(meta.get("extra") or {})
    model._after_load()
    return ModelHandle(model, version=version)


# ---------------------------------------------------------------------------- fast paths
def _positions(order: np.ndarray) -> np.ndarray:
    """Each original row's position in ``rows[order]``."""
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    return pos


def _forget_old_versions(folder: Path, keep: int) -> None:
    """Delete the derived arrays of all but the ``keep`` most recently made versions of a
    model (a process still serving one keeps its mapping; a later load builds it again)."""
    import shutil

    try:
        versions = sorted(
            (p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
    except OSError:
        return
    for old in versions[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def shared_array(folder: Path | None, name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """An array derived from a model, memory-mapped from ``folder/<name>.npy``: the first
    process to need it builds and writes it, the others (and later starts) map the same file,
    so its pages are counted once however many workers serve (each worker's own copy was
    26 MB per copy at 100k items). Without a folder, or when it cannot be written, the array
    is built in memory."""
    if folder is None:
        return np.ascontiguousarray(build())
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # a damaged file: rebuilt below
        log.warning("%s unreadable (%s); building it again", path, exc)
        path.unlink(missing_ok=True)
    arr = np.ascontiguousarray(build())
    tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.npy"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces: every process maps the first one written
        except FileExistsError:
            pass
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as exc:
        log.warning("cannot keep %s (%s); this process keeps its own copy", path, exc)
        return arr
    finally:
        tmp.unlink(missing_ok=True)


class FastPaths:
    """Numpy versions of the hot model calls, giving the results the models' own code gives.

    * ``user_top``: a known user of a factor model (ALS, BPR): ``item_factors @ user``.
    * ``neighbours``: a row of a sparse item-item matrix (item-kNN, bought together).
    * ``global_top``: lists of non-personal models (trending, popularity, new arrivals),
      computed once per (n, category) and version.
    """

    first_chunk = 4096
    """Items scored in the first step of the pruned top-k before calls have taught it more."""

    def __init__(self, handle: Any, cache: Path | None = None) -> None:
        self.handle = handle
        m = handle.model
        self.item_ids: list[str] = _item_id_list(m.item_ids_)
        self.item_index = m.item_ids_
        self.algorithm: str = m.algorithm
        self.personalized: bool = m.personalized
        self.sparse = (
            getattr(m, _SPARSE_NEIGHBOURS[m.algorithm])
            if m.algorithm in _SPARSE_NEIGHBOURS
            else None
        )
        from ranking import kernels  # numba: imported (and compiled or loaded) with a model

        self._kernels = kernels
        if self.sparse is not None:
            # plain ndarray views of the (memory-mapped) CSR arrays: slicing a np.memmap costs
            # a subclass round trip per call
            self._indptr = np.asarray(self.sparse.indptr)
            self._indices = np.asarray(self.sparse.indices)
            self._data = np.asarray(self.sparse.data)
            # compile now, not in the first request; item-kNN is the one sparse model the
            # history source reads (bought-together would only add a variant never called)
            if m.algorithm == "item_knn" and len(self._indptr) > 1:
                self.history_top(np.zeros(1, np.int64), NO_INDICES, NO_INDICES, 1, 0.5)
        self.factors = ((np.asarray(m.user_factors_), np.asarray(m.item_factors_))
                        if m.algorithm in _FACTOR_MODELS else None)
        self._cat_order: np.ndarray | None = None
        if self.factors is not None:
            # Items by decreasing factor norm: a user's score for item i is at most
            # |u|·|i|, so scoring can stop once the k-th best beats that bound for the rest
            # (exact top-k; item norms are very skewed, so ~10% of the items get scored).
            items = np.asarray(self.factors[1], dtype=np.float32)
            norms = np.linalg.norm(items, axis=1)
            self._order = np.argsort(-norms, kind="stable")
            self._rank = _positions(self._order)
            self._by_norm = shared_array(cache, "items_by_norm", lambda: items[self._order])
            self._norms = norms[self._order]
            self._needed = float(self.first_chunk)
            if len(items):  # compile now, not in the first request
                self._pruned_top(self._by_norm[0], 1, ())
                self._needed = float(self.first_chunk)
            # Items sorted by category path: every category (and every prefix of one) is a
            # contiguous run of rows, scored as a slice instead of gathering its rows first
            # (a top category is ~12k rows: a 3 MB copy per request).
            cats = getattr(m, "item_categories_", None)
            if cats is not None and len(cats) == len(items):
                paths = sorted(set(cats), key=lambda c: tuple(c.split(" > ")))  # a few hundred
                rank = {c: r for r, c in enumerate(paths)}
                cat_order = np.argsort(
                    np.fromiter((rank[c] for c in cats), np.int64, len(cats)), kind="stable"
                )
                self._cat_order = cat_order
                self._cat_pos = _positions(cat_order)
                self._by_cat = shared_array(cache, "items_by_category", lambda: items[cat_order])
        self._spans: dict[tuple[str, ...], tuple[int, int]] = {}
        self._global: OrderedDict[tuple[int, tuple[str, ...] | None], list[tuple[str, float]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    @classmethod
    def build(cls, handle: Any, cache: Path | None = None) -> FastPaths | None:
        return cls(handle, cache) if hasattr(handle, "model") else None

    def _pairs(self, ids: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        names = self.item_ids
        return [(names[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]

    def user_top(
        self, user_id: str, n: int, exclude: Iterable[str], category: Sequence[str] | None
    ) -> list[tuple[str, float]] | None:
        if self.factors is None:
            return None
        m = self.handle.model
        u = m.user_ids_.index(user_id)
        if u < 0:
            return None
        users, items = self.factors
        if not category:
            return self._pruned_top(np.asarray(users[u], dtype=np.float32), n, exclude)
        excl = self.item_index.indices(list(exclude)) if exclude else None
        excl = excl[excl >= 0] if excl is not None else None
        lo, hi = self._span(tuple(category))
        if lo >= 0:  # a slice of the category-sorted copy
            if hi == lo:
                return []
            cand = self._cat_order[lo:hi]
            scores = self._by_cat[lo:hi] @ users[u]
            if excl is not None and excl.size:
                pos = self._cat_pos[excl] - lo
                scores[pos[(pos >= 0) & (pos < hi - lo)]] = -np.inf
        else:
            cand = m.items_in_category(category)
            if cand.size == 0:
                return []
            scores = items[cand] @ users[u]
            if excl is not None and excl.size:
                pos = np.searchsorted(cand, excl)
                pos = pos[(pos < cand.size) & (cand[np.minimum(pos, cand.size - 1)] == excl)]
                scores[pos] = -np.inf
        k = min(n, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        return self._pairs(cand[top], scores[top])

    def _span(self, category: tuple[str, ...]) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of the category in the category-sorted copy; ``(-1, -1)`` when
        there is no such copy (the caller gathers the category's rows instead)."""
        if self._cat_order is None:
            return -1, -1
        got = self._spans.get(category)
        if got is None:
            cand = self.handle.model.items_in_category(category)
            pos = self._cat_pos[cand]
            lo, hi = (int(pos.min()), int(pos.max()) + 1) if cand.size else (0, 0)
            got = (lo, hi) if hi - lo == cand.size else (-1, -1)
            with self._lock:
                if len(self._spans) >= 4096:  # categories asked for that do not exist
                    self._spans.clear()
                self._spans[category] = got
        return got

    def _pruned_top(self, u: np.ndarray, n: int, exclude: Iterable[str]) -> list[tuple[str, float]]:
        """Exact top ``n`` of ``items @ u``, scoring items by decreasing norm until the bound
        ``|u|·|i|`` of the rest cannot beat the current n-th best
        (:func:`ranking.kernels.pruned_top`).

        The first step scores about as many items as recent calls needed (a running average
        of the exact stopping point, plus a margin), so most calls take one matrix-vector
        product of a few thousand rows; each further step adds half as many again."""
        k = min(n, len(self._by_norm))
        if k <= 0:
            return []
        excl = self.item_index.indices(exclude) if exclude else None
        excl_pos = np.sort(self._rank[excl[excl >= 0]]) if excl is not None else NO_INDICES
        step = max(k + excl_pos.size, int(self._needed * 1.25) + 256)
        u = np.array(u, dtype=np.float32)  # always a fresh array: one compiled variant
        items, scores, needed = self._kernels.pruned_top(
            self._by_norm, self._norms, self._order, u, k, excl_pos, step
        )
        if needed >= 0:
            self._needed = 0.95 * self._needed + 0.05 * needed
        return self._pairs(items, scores)

    def user_scores(self, user_id: str, item_ids: Sequence[str]) -> dict[str, float] | None:
        if self.factors is None:
            return None
        u = self.handle.model.user_ids_.index(user_id)
        if u < 0:
            return None
        idx = self.item_index.indices(item_ids)
        ok = idx >= 0
        users, items = self.factors
        scores = items[idx[ok]] @ users[u]
        return {
            i: float(v)
            for i, v in zip(
                [i for i, k in zip(item_ids, ok.tolist(), strict=True) if k],
                scores.tolist(),
                strict=True,
            )
        }

    def history_top(
        self, anchors: np.ndarray, exclude: np.ndarray, seen: np.ndarray, n: int, decay: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """:func:`ranking.kernels.history_top` on this model's rows."""
        return self._kernels.history_top(  # type: ignore[no-any-return]
            self._indptr, self._indices, self._data, anchors, exclude, seen, n, decay
        )

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i`` of the sparse item-item matrix: (item indices, scores), stored order."""
        lo, hi = int(self._indptr[i]), int(self._indptr[i + 1])
        return self._indices[lo:hi], self._data[lo:hi]

    def neighbours(
        self, item_id: str, n: int, exclude: Iterable[str]
    ) -> list[tuple[str, float]] | None:
        if self.sparse is None:
            return None
        i = self.item_index.index(item_id)
        if i < 0:
            return []
        ids, scores = self.row(i)
        ids, scores = ids.astype(np.int64), scores.astype(np.float32, copy=False)
        keep = (ids != i) & (scores > 0)
        excl = set(exclude)
        if excl:
            bad = self.item_index.indices(list(excl))
            keep &= ~np.isin(ids, bad)
        ids, scores = ids[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[:n]
        return self._pairs(ids[order], scores[order])

    def global_top(
        self, n: int, category: Sequence[str] | None, compute: Any
    ) -> list[tuple[str, float]]:
        if self.personalized:
            return compute(n)  # type: ignore[no-any-return]
        depth = max(256, 1 << (max(n, 1) - 1).bit_length())  # one list serves every n below it
        key = (depth, tuple(category) if category else None)
        with self._lock:
            got = self._global.get(key)
            if got is not None:
                self._global.move_to_end(key)
                return got[:n]
        got = compute(depth)
        with self._lock:
            self._global[key] = got
            if len(self._global) > 512:
                self._global.popitem(last=False)
        return got[:n]
