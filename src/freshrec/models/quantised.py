"""An int8 copy of a factor matrix for fast candidate scans, kept fresh row by row.

Scoring every item costs one pass over the item factors; at 100k items x 64 float32 factors
that is 25.6 MB of memory traffic per request, most of the recommendation budget. The int8 copy
is a quarter of that. A scan keeps the ``m`` best approximate scores in a heap (one pass, no
score array), then the caller re-scores those ``m`` exactly in float32, so the final top-k is
exact unless an item's int8 error moves it from the true top-k to below the ``m``-th place.

Each row has its own scale (``max |q| / 127``): the error of one score is at most
``scale * sum|p| / 2``. Rows the learner touched are marked dirty; the
learner re-quantises them right after its micro-batch (``refresh``: the rows are still in the
CPU's caches then), and a scan re-quantises any dirty row it meets, so the copy never serves stale
factors.

>>> Q = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
>>> rows = QuantisedRows(2)
>>> sorted(rows.top(Q, np.array([1.0, 0.2], dtype=np.float32), 3, 2).tolist())  # unordered
[0, 2]
"""

from __future__ import annotations

import numba
import numpy as np

from freshrec.state.arrays import grow


@numba.njit(cache=True, nogil=True)
def _quantise_row(Q, r, q8, scale):  # pragma: no cover - compiled
    """``q8[r] = rint(Q[r] / scale[r])``, ``scale[r] = max |Q[r]| / 127`` (1 for a zero row)."""
    f = Q.shape[1]
    top = np.float32(0.0)
    for j in range(f):
        top = max(top, abs(Q[r, j]))
    s = top / np.float32(127.0)
    if s == 0:
        s = np.float32(1.0)
    for j in range(f):
        q8[r, j] = np.int8(np.rint(Q[r, j] / s))
    scale[r] = s


@numba.njit(cache=True, nogil=True)
def _refresh(Q, q8, scale, dirty, rows):  # pragma: no cover - compiled
    """Re-quantise ``rows`` (the dirty ones)."""
    for i in rows:
        _quantise_row(Q, i, q8, scale)
        dirty[i] = False


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scan(Q, Q8, scale, dirty, p, n, m):  # pragma: no cover - compiled
    """Indices of the ``m`` best ``scale[i] * Q8[i] . p`` over rows < n; a dirty row is
    re-quantised from ``Q`` on the way (one sequential pass instead of a gather of the dirty
    rows before the scan)."""
    heap_s = np.full(m, -np.inf, dtype=np.float32)  # min-heap of the best m
    heap_i = np.full(m, -1, dtype=np.int64)
    f = Q8.shape[1]
    for i in range(n):
        if dirty[i]:
            _quantise_row(Q, i, Q8, scale)
            dirty[i] = False
        acc = np.float32(0.0)
        for j in range(f):
            acc += np.float32(Q8[i, j]) * p[j]
        s = acc * scale[i]
        if s > heap_s[0]:
            heap_s[0] = s
            heap_i[0] = i
            k = 0  # sift down
            while True:
                left = 2 * k + 1
                if left >= m:
                    break
                child = left
                if left + 1 < m and heap_s[left + 1] < heap_s[left]:
                    child = left + 1
                if heap_s[child] >= heap_s[k]:
                    break
                heap_s[k], heap_s[child] = heap_s[child], heap_s[k]
                heap_i[k], heap_i[child] = heap_i[child], heap_i[k]
                k = child
    return heap_i[heap_i >= 0]


class QuantisedRows:
    """int8 rows with per-row scales mirroring a float32 matrix, refreshed where dirty."""

    def __init__(self, columns: int) -> None:
        self.q8 = np.zeros((0, columns), dtype=np.int8)
        self.scale = np.zeros(0, dtype=np.float32)
        self.dirty = np.zeros(0, dtype=np.bool_)  # set by the learner, cleared by refresh/scan
        self._n = 0

    def ensure(self, n: int) -> None:
        """Room for ``n`` rows; new rows are dirty (quantised by the next refresh or scan)."""
        self.q8 = grow(self.q8, n)
        self.scale = grow(self.scale, n)
        self.dirty = grow(self.dirty, n, fill=True)

    def refresh(self, Q: np.ndarray, n: int) -> None:
        """Re-quantise the dirty rows of ``Q[:n]`` now: right after learning, while the rows
        the learner changed are still in the CPU's caches (a scan later would fetch them from
        memory again)."""
        self._cover(n)
        _refresh(Q, self.q8, self.scale, self.dirty, np.flatnonzero(self.dirty[:n]))

    def top(self, Q: np.ndarray, p: np.ndarray, n: int, m: int) -> np.ndarray:
        """Up to ``m`` row indices of ``Q[:n]`` with the best approximate scores (unordered);
        dirty rows are re-quantised by the scan itself."""
        self._cover(n)
        return _scan(Q, self.q8, self.scale, self.dirty, p, n, m)

    def _cover(self, n: int) -> None:
        """Mirror ``n`` rows: rows not mirrored before are dirty."""
        self.ensure(n)
        self.dirty[self._n : n] = True
        self._n = n
