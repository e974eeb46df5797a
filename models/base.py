"""The one contract every recommendation model follows.

Two levels, one class:

* **Index level** (:class:`Recommender`), for training and evaluation: users and items are row
  and column numbers of the interaction matrix; calls are batch-first and return
  ``(ids, scores)`` arrays, like ``implicit``.
* **Id level** (:class:`ModelHandle`, in :mod:`models`), for serving: item and user ids
  in, ``list[(item_id, score)]`` out. See that module's docstring.

Manners (scikit-learn's): ``__init__`` only stores hyperparameters (one frozen dataclass,
``Params``); ``fit`` returns ``self``; learned attributes end in ``_``; using an unfitted model
raises :class:`~models.errors.NotFittedError`. ``save(dir)`` writes ``model.json``
(algorithm, parameters, array names) plus ``arrays.npz`` and the id vocabularies;
``load(dir)`` reads them back with ``allow_pickle=False`` and needs no training data.

A model sees, for each known user, the row of the training matrix it was fitted on
(``user_items_``, saved with the model): it is the "already seen" set to filter, and the
history that item-to-item models score from. A cold user is described by a list of item
indices (recently seen items) instead.

Writing a model: subclass, set ``algorithm`` and ``Params``, list learned arrays in
``_learned``, implement ``_fit`` and either ``_scores`` (dense scores for a batch of history
rows; the base class filters and takes the top n) or ``_top`` (when a library does its own
top-k, e.g. ``implicit``), and ``_similar`` if the model has an item-to-item notion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from abc import ABC
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from models.errors import ModelLoadError, NotFittedError
from models.storage import ModelReader
from models.vocab import Vocabulary

if TYPE_CHECKING:
    from models.fast import ServingIndex
    from models.interactions import Interactions

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
USERS_FILE = "users.json"
ITEMS_FILE = "items.json"
CATEGORIES_FILE = "categories.json"

IdsScores = tuple[np.ndarray, np.ndarray]
"""``(ids, scores)``: item indices (``int64``, ``-1`` pads a short list) and ``float32`` scores."""


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For models without hyperparameters."""


def _csr_to_arrays(name: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{name}.data": m.data,
        f"{name}.indices": m.indices,
        f"{name}.indptr": m.indptr,
        f"{name}.shape": np.asarray(m.shape, dtype=np.int64),
    }


def _csr_from_arrays(name: str, data: Any) -> sp.csr_matrix:
    shape = tuple(int(x) for x in data[f"{name}.shape"])
    return sp.csr_matrix(
        (data[f"{name}.data"], data[f"{name}.indices"], data[f"{name}.indptr"]), shape=shape
    )


class Recommender(ABC):
    """Base class of every model. Subclasses set the class attributes below."""

    algorithm: ClassVar[str] = ""
    """Name in configs, manifests and ``model.json`` (e.g. ``"als"``)."""
    Params: ClassVar[type] = NoParams
    """Frozen dataclass of hyperparameters; the single place they are listed."""
    personalized: ClassVar[bool] = True
    """False for models that rank the same way for everyone (popularity, trending)."""
    positive_only: ClassVar[bool] = False
    """True when a zero score means "no evidence" and such items must not be returned."""
    _learned: ClassVar[tuple[str, ...]] = ()
    """Names of learned attributes (ndarray or CSR) saved in ``arrays.npz``."""

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise ValueError("pass either a Params object or keyword arguments, not both")
        self.params = params if params is not None else self.Params(**kwargs)
        if not isinstance(self.params, self.Params):
            raise TypeError(f"params must be {self.Params.__name__}, got {type(params).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Interactions) -> Self:
        """Learn from the training data; returns ``self``.

        ``data.matrix`` is the users × items CSR matrix of interaction weights; models that
        need more (event times, baskets, the catalog) read it from ``data`` too.
        """
        self.user_ids_ = data.users
        self.item_ids_ = data.items
        self.user_items_ = data.matrix.tocsr().astype(np.float32)
        cats = None
        if data.catalog is not None:
            cats = [" > ".join(c) for c in data.catalog.categories]
        self.item_categories_ = cats
        self.__dict__.pop("_category_cache", None)
        self._fit(data)
        return self

    def _fit(self, data: Interactions) -> None:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "item_ids_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(interactions) "
                "or load(folder) first"
            )

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return len(self.user_ids_)

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_ids_)

    # ------------------------------------------------------------------ recommending
    def recommend(
        self,
        users: int | np.ndarray | Sequence[int],
        n: int = 10,
        *,
        history: sp.csr_matrix | None = None,
        filter_seen: bool = True,
        exclude: np.ndarray | Sequence[int] | None = None,
        candidates: np.ndarray | Sequence[int] | None = None,
    ) -> IdsScores:
        """Top ``n`` items for known users (one index or an array of indices).

        ``history``: extra interactions (one CSR row per user, item columns) added to what
        the model saw at training time, e.g. today's clicks. ``filter_seen`` removes items in
        the user's training row and in ``history``. ``exclude``: item indices never to return.
        ``candidates``: rank only these item indices. Returns ``(ids, scores)`` of shape
        ``(n,)`` for one user, ``(len(users), n)`` for an array; ``-1`` pads a short list.
        """
        self._check_fitted()
        single = np.isscalar(users)
        uidx = np.atleast_1d(np.asarray(users, dtype=np.int64))
        if uidx.size and (uidx.min() < 0 or uidx.max() >= self.n_users):
            raise IndexError(f"user index out of range [0, {self.n_users})")
        rows = self.user_items_[uidx]
        if history is not None:
            if history.shape != (len(uidx), self.n_items):
                raise ValueError(
                    f"history must have shape ({len(uidx)}, {self.n_items}): one row per user"
                )
            rows = (rows + history.tocsr().astype(np.float32)).tocsr()
        ids, scores = self._run(rows, uidx if history is None else None, n, filter_seen,
                                exclude, candidates)
        return (ids[0], scores[0]) if single else (ids, scores)

    def recommend_cold(
        self,
        items: np.ndarray | Sequence[int],
        n: int = 10,
        *,
        weights: np.ndarray | Sequence[float] | None = None,
        filter_seen: bool = True,
        exclude: np.ndarray | Sequence[int] | None = None,
        candidates: np.ndarray | Sequence[int] | None = None,
    ) -> IdsScores:
        """Top ``n`` items for a user unknown at training time, from item indices they saw.

        ``weights`` (default 1 each) say how strongly each item counts. An empty history is
        allowed: personalized models then fall back to their non-personal ordering where
        they have one, or return an empty (all ``-1``) list.
        """
        self._check_fitted()
        rows = self.history_rows([np.asarray(items, dtype=np.int64)],
                                 None if weights is None else [np.asarray(weights)])
        ids, scores = self._run(rows, None, n, filter_seen, exclude, candidates)
        return ids[0], scores[0]

    def history_rows(
        self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None
    ) -> sp.csr_matrix:
        """One CSR row per history (item indices; duplicates add up)."""
        self._check_fitted()
        lens = [len(h) for h in histories]
        cols = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_items):
            raise IndexError(f"item index out of range [0, {self.n_items})")
        if weights is None:
            data = np.ones(cols.size, dtype=np.float32)
        else:
            data = np.concatenate([np.asarray(w, dtype=np.float32) for w in weights])
            if data.size != cols.size:
                raise ValueError("weights must have one value per history item")
        rows = np.repeat(np.arange(len(histories)), lens)
        m = sp.csr_matrix((data, (rows, cols)), shape=(len(histories), self.n_items))
        m.sum_duplicates()
        return m

    def _run(
        self,
        rows: sp.csr_matrix,
        users: np.ndarray | None,
        n: int,
        filter_seen: bool,
        exclude: Any,
        candidates: Any,
    ) -> IdsScores:
        if n <= 0:
            raise ValueError("n must be a positive number of items")
        exc = None if exclude is None else np.unique(np.asarray(exclude, dtype=np.int64))
        cand = None if candidates is None else np.unique(np.asarray(candidates, dtype=np.int64))
        if cand is not None and exc is not None and exc.size:
            cand = np.setdiff1d(cand, exc, assume_unique=True)
            exc = None
        if exc is not None and exc.size == 0:
            exc = None
        no_evidence = users is None and self.personalized and not np.diff(rows.indptr).any()
        if (cand is not None and cand.size == 0) or no_evidence:
            # nothing to rank, or (below) nothing a personalized model may return: skip the
            # scoring (an ALS fold-in of an empty history is the costly part of such a call)
            b = rows.shape[0]
            return np.full((b, n), -1, np.int64), np.full((b, n), -np.inf, np.float32)
        ids, scores = self._top(rows, users, n, filter_seen, exc, cand)
        ids = np.array(ids, dtype=np.int64, ndmin=2)
        if users is None and self.personalized:
            # No history, no evidence: a personalized model returns nothing rather than noise.
            ids[np.diff(rows.indptr) == 0] = -1
        return self._finish(ids, scores, n)

    def _top(
        self,
        rows: sp.csr_matrix,
        users: np.ndarray | None,
        n: int,
        filter_seen: bool,
        exclude: np.ndarray | None,
        candidates: np.ndarray | None,
    ) -> IdsScores:
        """Default top-k: dense scores from ``_scores`` in batches, masked, then argpartition."""
        b = rows.shape[0]
        out_ids = np.full((b, n), -1, np.int64)
        out_scores = np.full((b, n), -np.inf, np.float32)
        batch = max(1, min(b, 2_000_000 // max(1, self.n_items)))
        for start in range(0, b, batch):
            stop = min(b, start + batch)
            chunk = rows[start:stop]
            s = np.asarray(
                self._scores(chunk, None if users is None else users[start:stop]),
                dtype=np.float32,
            )
            if filter_seen:
                r, c = chunk.nonzero()
                s[r, c] = -np.inf
            if exclude is not None:
                s[:, exclude] = -np.inf
            if candidates is not None:
                masked = np.full_like(s, -np.inf)
                masked[:, candidates] = s[:, candidates]
                s = masked
            k = min(n, s.shape[1])
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]
            ps = np.take_along_axis(s, part, axis=1)
            order = np.argsort(-ps, axis=1, kind="stable")
            out_ids[start:stop, :k] = np.take_along_axis(part, order, axis=1)
            out_scores[start:stop, :k] = np.take_along_axis(ps, order, axis=1)
        return out_ids, out_scores

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        """Dense ``(len(rows), n_items)`` scores for a batch of history rows."""
        raise NotImplementedError

    def _finish(self, ids: np.ndarray, scores: np.ndarray, n: int) -> IdsScores:
        ids = np.array(ids, dtype=np.int64, ndmin=2)
        raw = np.array(scores, dtype=np.float64, ndmin=2).reshape(ids.shape)
        # Libraries mark filtered slots with -max(float); keep them out of float32.
        scores = np.where(raw <= -1e30, -np.inf, raw).astype(np.float32)
        bad = ~np.isfinite(scores) | (scores <= -1e30) | (ids < 0)
        if self.positive_only:
            bad |= scores <= 0
        ids = np.where(bad, -1, ids)
        scores = np.where(bad, -np.inf, scores).astype(np.float32)
        if ids.shape[1] < n:
            pad = n - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        # Valid entries first, keeping their order.
        order = np.argsort(ids < 0, axis=1, kind="stable")
        return np.take_along_axis(ids, order, 1)[:, :n], np.take_along_axis(scores, order, 1)[:, :n]

    # ------------------------------------------------------------------ item to item
    def similar_items(
        self, item: int, n: int = 10, *, exclude: np.ndarray | Sequence[int] | None = None
    ) -> IdsScores:
        """The ``n`` items most similar to item index ``item`` (never the item itself)."""
        self._check_fitted()
        if not 0 <= int(item) < self.n_items:
            raise IndexError(f"item index out of range [0, {self.n_items})")
        if n <= 0:
            raise ValueError("n must be a positive number of items")
        exc = np.unique(np.append(np.asarray(exclude if exclude is not None else [],
                                             dtype=np.int64), int(item)))
        ids, scores = self._similar(int(item), n + len(exc))
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        keep = ~np.isin(ids, exc)
        ids, scores = self._finish(ids[keep][None, :], scores[keep][None, :], n)
        return ids[0], scores[0]

    def _similar(self, item: int, n: int) -> IdsScores:
        """Item-to-item default: score the one-item history with the model's own scorer."""
        rows = self.history_rows([np.asarray([item])])
        ids, scores = self._top(rows, None, n, False, None, None)
        return ids[0], scores[0]

    # ------------------------------------------------------------------ categories
    def items_in_category(self, prefix: Sequence[str]) -> np.ndarray:
        """Item indices whose category path starts with ``prefix`` (needs the catalog)."""
        self._check_fitted()
        if self.item_categories_ is None:
            raise ModelLoadError(
                "this model was trained without a catalog, so it cannot filter by category; "
                "train with the items file"
            )
        key = " > ".join(prefix)
        cache = self.__dict__.setdefault("_category_cache", {})
        if key not in cache:
            cats = self.item_categories_
            cache[key] = np.fromiter(
                (i for i, c in enumerate(cats)
                 if not key or c == key or c.startswith(key + " > ")),
                dtype=np.int64,
            )
        return cache[key]

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model into ``folder`` (created if needed); returns the folder."""
        self._check_fitted()
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        kinds: dict[str, str] = {}
        for name in ("user_items_", *self._learned):
            value = getattr(self, name)
            if value is None:
                kinds[name] = "none"
            elif sp.issparse(value):
                arrays.update(_csr_to_arrays(name, sp.csr_matrix(value)))
                kinds[name] = "csr"
            else:
                arr = np.asarray(value)
                if arr.dtype == object:
                    raise TypeError(f"{name}: object arrays cannot be saved without pickle")
                arrays[name] = arr
                kinds[name] = "array"
        with open(path / ARRAYS_FILE, "wb") as fh:
            np.savez(fh, **arrays)
        self.user_ids_.save(path / USERS_FILE)
        self.item_ids_.save(path / ITEMS_FILE)
        if self.item_categories_ is not None:
            (path / CATEGORIES_FILE).write_text(
                json.dumps(self.item_categories_, ensure_ascii=False), "utf-8"
            )
        meta = {
            "format_version": FORMAT_VERSION,
            "algorithm": self.algorithm,
            "params": dataclasses.asdict(self.params),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "arrays": kinds,
            "extra": self._extra_state(),
        }
        (path / MODEL_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False), "utf-8")
        return path

    def _extra_state(self) -> dict[str, Any]:
        """Small JSON-serializable learned state beyond arrays (override when needed)."""
        return {}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of ``_extra_state``."""

    def _after_load(self) -> None:
        """Rebuild derived objects (e.g. an ``implicit`` model) after arrays are set."""

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, reader: ModelReader | None = None) -> Self:
        """Read a model written by :meth:`save`. Raises ``ModelLoadError`` if anything is off.

        ``reader`` says how the files are read (:mod:`models.storage`): into memory by default;
        serving passes a :class:`~models.storage.MappedReader` (arrays memory-mapped, shared
        vocabularies, the user side only when asked for)."""
        path = Path(folder)
        reader = reader if reader is not None else ModelReader()
        meta = read_model_meta(path)
        if cls.algorithm and meta["algorithm"] != cls.algorithm:
            raise ModelLoadError(
                f"{path}: holds a {meta['algorithm']!r} model, not {cls.algorithm!r}; "
                "use models.load_model to load any algorithm"
            )
        try:
            params = cls.Params(**meta["params"])
            model = cls(params)
            items = reader.items(path / ITEMS_FILE)
            with reader.arrays(path / ARRAYS_FILE) as data:
                for name, kind in meta["arrays"].items():
                    if kind == "none":
                        value = None
                    elif name == "user_items_" and not reader.with_users:
                        value = sp.csr_matrix((0, len(items)), dtype=np.float32)
                    elif kind == "csr":
                        value = _csr_from_arrays(name, data)
                    else:
                        value = data[name]
                    setattr(model, name, value)
            model.user_ids_ = (
                reader.users(path / USERS_FILE) if reader.with_users else Vocabulary([])
            )
            model.item_ids_ = items
            model.item_categories_ = reader.categories(path / CATEGORIES_FILE)
            model._set_extra_state(meta.get("extra") or {})
            model._after_load()
        except ModelLoadError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelLoadError(
                f"{path}: cannot read the saved model ({type(exc).__name__}: {exc}); "
                "retrain it or pick another version"
            ) from exc
        if model.user_items_.shape != (len(model.user_ids_), len(model.item_ids_)):
            raise ModelLoadError(f"{path}: vocabularies do not match the saved arrays; retrain")
        return model

    # ------------------------------------------------------------------ serving
    def serving_index(self, cache: Path | None = None) -> ServingIndex | None:
        """Structures that answer the hot serving calls faster, with the model's own answers
        (:mod:`models.fast`); None when the model's own code serves every call.
        ``cache``: a folder for derived arrays every serving process maps."""
        return None


def read_model_meta(path: Path) -> dict[str, Any]:
    """``model.json`` of a saved model, checked for the fields every model has."""
    meta_path = path / MODEL_FILE
    if not meta_path.is_file():
        raise ModelLoadError(f"{path}: no {MODEL_FILE}; this folder does not hold a saved model")
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{meta_path}: unreadable ({exc}); retrain the model") from exc
    missing = {"format_version", "algorithm", "params", "arrays"} - set(meta)
    if missing:
        raise ModelLoadError(f"{meta_path}: missing fields {sorted(missing)}; retrain the model")
    if meta["format_version"] > FORMAT_VERSION:
        raise ModelLoadError(
            f"{meta_path}: format {meta['format_version']} is newer than this code "
            f"understands ({FORMAT_VERSION}); upgrade shoprank"
        )
    return meta
