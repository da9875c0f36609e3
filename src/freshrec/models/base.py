"""The one interface every model implements.

A model learns from micro-batches (``learn``) and scores items for a user (``score``). The
optional abilities -- proposing candidates, explaining, similar items -- have defaults derived
from the required ones or raise ``NotImplementedError``. Parameters are saved as a dict of numpy
arrays (``state_dict``) so snapshots are plain ``.npz`` files, never pickles.
"""

from __future__ import annotations

import abc
from typing import Any

import numba
import numpy as np

from freshrec.errors import FreshrecError
from freshrec.registry.mapped import copied
from freshrec.state import Batch, UserView


def best_first(keys: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best ``scores``, best first, ties broken by the lower key; exact
    at the cut (every tie of the k-th score competes); a NaN score ranks below every other.
    One compiled pass keeping the best ``k`` in a heap, then those sorted (``_heap_best``)."""
    if k <= 0 or keys.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    return _heap_best(keys, scores, min(k, keys.shape[0]))


@numba.njit(inline="always")
def _worse(scores, keys, a, b):  # pragma: no cover - compiled
    """Whether position ``a`` ranks below ``b``: a lower score (NaN lowest), or the same score
    and a higher key."""
    sa, sb = scores[a], scores[b]
    if sa != sa:
        return sb == sb or keys[a] > keys[b]
    if sb != sb:
        return False
    return sa < sb or (sa == sb and keys[a] > keys[b])


@numba.njit(cache=True, nogil=True)
def _sift_down(heap, size, i, scores, keys):  # pragma: no cover - compiled
    """Restore the heap (worst at the root) below ``i``."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and _worse(scores, keys, heap[left + 1], heap[left]):
            child = left + 1
        if not _worse(scores, keys, heap[child], heap[i]):
            return
        heap[i], heap[child] = heap[child], heap[i]
        i = child


@numba.njit(inline="always")
def _sink(hs, hk, hp, size, pos, s, key, p):  # pragma: no cover - compiled
    """Put (score ``s``, ``key``, position ``p``) at ``pos`` of the heap's first ``size``
    entries and sift it down: a child worse than it moves up."""
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and (
            hs[right] < hs[left] or (hs[right] == hs[left] and hk[right] > hk[left])
        ):
            child = right
        cs, ck = hs[child], hk[child]
        if cs < s or (cs == s and ck > key):
            hs[pos] = cs
            hk[pos] = ck
            hp[pos] = hp[child]
            pos = child
        else:
            break
    hs[pos] = s
    hk[pos] = key
    hp[pos] = p


@numba.njit(cache=True, nogil=True)
def _heap_best(keys, scores, k):  # pragma: no cover - compiled
    """``best_first`` for 0 < k <= len(keys): a heap of the best ``k`` seen so far, held as
    its own scores, keys and positions (no indirection), its worst at the root so that a
    position that does not beat it costs one comparison; then emptied worst first from the
    back. NaN scores hand over to ``_heap_select``."""
    n = scores.shape[0]
    hs = np.empty(k, dtype=np.float64)
    hk = np.empty(k, dtype=np.int64)
    hp = np.empty(k, dtype=np.intp)
    for i in range(n):
        if scores[i] != scores[i]:
            return _heap_select(keys, scores, k)
    for i in range(k):
        hs[i] = scores[i]
        hk[i] = keys[i]
        hp[i] = i
    for i in range(k // 2 - 1, -1, -1):  # heapify
        _sink(hs, hk, hp, k, i, hs[i], hk[i], hp[i])
    for i in range(k, n):
        s = np.float64(scores[i])
        key = np.int64(keys[i])
        if not (s < hs[0] or (s == hs[0] and key > hk[0])):
            _sink(hs, hk, hp, k, 0, s, key, i)  # the new one replaces the worst
    out = np.empty(k, dtype=np.intp)
    # the worst to the back, the heap's last entry sifted down from the root
    for last in range(k - 1, -1, -1):
        out[last] = hp[0]
        _sink(hs, hk, hp, last, 0, hs[last], hk[last], hp[last])
    return out


@numba.njit(cache=True, nogil=True)
def _heap_select(keys, scores, k):  # pragma: no cover - compiled
    """``_heap_best`` with NaN scores (ranked below every other): the heap holds positions
    and compares through ``_worse``."""
    heap = np.empty(k, dtype=np.intp)
    for i in range(k):
        heap[i] = i
    for i in range(k // 2 - 1, -1, -1):
        _sift_down(heap, k, i, scores, keys)
    for i in range(k, keys.shape[0]):
        if _worse(scores, keys, heap[0], i):
            heap[0] = i
            _sift_down(heap, k, 0, scores, keys)
    out = np.empty(k, dtype=np.intp)
    for size in range(k, 0, -1):
        out[size - 1] = heap[0]
        heap[0] = heap[size - 1]
        _sift_down(heap, size - 1, 0, scores, keys)
    return out


def best_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest finite ``scores``, best first, ties to the lower
    position, exact at the cut (``best_first`` with the positions as keys)."""
    if scores.shape[0] == 0 or k <= 0:
        return np.zeros(0, dtype=np.intp)
    finite = np.isfinite(scores)
    if finite.all():
        return best_first(np.arange(scores.shape[0]), scores, k)
    at = np.flatnonzero(finite)  # NaN would sort as the largest, -inf compete at the cut
    return at[best_first(at, scores[at], k)]


def dense(array: Any) -> np.ndarray:
    """``array`` as an ndarray (a ``SparseArray`` read in place made dense)."""
    return array if isinstance(array, np.ndarray) else array.dense()


class ModelError(FreshrecError):
    """A model's parameters are unusable (NaN, overflow, wrong shapes)."""


class Model(abc.ABC):
    """Base of every incremental recommender."""

    name: str = "model"

    @abc.abstractmethod
    def learn(self, batch: Batch) -> None:
        """Update the parameters with one micro-batch (events in log order)."""

    @abc.abstractmethod
    def score(self, user: UserView, candidates: np.ndarray) -> np.ndarray:
        """Scores (float64, higher is better) of the ``candidates`` item indices for ``user``."""

    def candidates(self, user: UserView, n: int) -> np.ndarray:
        """Up to ``n`` item indices worth scoring for ``user``, best first."""
        raise NotImplementedError

    def explain(self, user: UserView, items: np.ndarray) -> list[dict[str, int | str]]:
        """Why each of ``items`` was scored by this model; item references are indices."""
        return [{"type": self.reason} for _ in range(items.shape[0])]

    reason: str = "recommended"
    scores_are_logits: bool = False  # True: score differences are log-odds (softmax them)
    # ``load_state_dict`` takes arrays read in place (``freshrec.registry.mapped``), the large
    # sparse ones as ``SparseArray``, and copies them a chunk at a time; else they come dense
    reads_in_place: bool = False

    def similar(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item`` and their scores."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Constructor arguments, to recreate the model exactly."""
        return {}

    @abc.abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned parameters as arrays (trimmed to the items/users seen).

        Large arrays are views of the live parameters, not copies (a snapshot of a million
        users would otherwise hold them twice): copy what must outlive the next ``learn``.
        """

    @abc.abstractmethod
    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` returned."""

    def load_frozen(self, arrays: dict[str, Any]) -> None:
        """Hold a version's ``arrays`` to rank with, never to learn (a gate's frozen copy).
        They may be read in place from the snapshot's file (``freshrec.registry.mapped``), a
        large sparse one as a ``SparseArray``. Here: copied into memory and loaded as usual
        (right for a small model); a large model reads them where they are instead."""
        self.load_state_dict({k: copied(v) for k, v in arrays.items()})

    def check_finite(self) -> None:
        """Raise ``ModelError`` if any learned parameter is NaN or infinite."""
        for key, value in self.state_dict().items():
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ModelError(f"{self.name}: non-finite values in {key!r}")


__all__ = ["Model", "ModelError", "UserView"]
