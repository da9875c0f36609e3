"""An int8 copy of a factor matrix for fast candidate scans, kept fresh row by row.

Scoring every item costs one pass over the item factors; at 100k items x 64 float32 factors
that is 25.6 MB of memory traffic per request, most of the recommendation budget. The int8 copy
is a quarter of that. A scan keeps the ``m`` best approximate scores in a heap, then the caller
re-scores those ``m`` exactly in float32, so the final top-k is exact unless an item's int8
error moves it from the true top-k to below the ``m``-th place.

Each row has its own scale (``max |q| / 127``): the error of one score is at most
``scale * sum|p| / 2``. Rows the learner touched are marked dirty; the learner re-quantises them
right after its micro-batch (``refresh``: the rows are still in the CPU's caches then), and a
scan first re-quantises any row still dirty, so the copy never serves stale factors.

**Most of a scan stops early.** The copy is laid out by decreasing row norm, and ``bound[k]``
is at least the norm of every row from position ``k`` on. No row from ``k`` on can score more
than ``bound[k] * |p|`` (Cauchy-Schwarz), so once the heap holds ``m`` rows and its worst score
beats that, the rest of the copy is skipped: the result is the same as a full scan's. On the
100k-item benchmark engine (2M events) a scan for the 128 best (MF's candidates) reads about
5 % of the rows on average, half of the scans under 0.6 %; 3-4 % of the users still read every
row: their 128th best score is below what the lowest-norm row could score (short histories,
query vectors half the usual length, pointing nowhere in particular). A scan for the 512 best
(MF's own top-k, which re-scores them) reads about 10 % on average. A catalogue of a few
thousand items gains little (128 rows are a large share of it): up to 4,000 items MF scores
every item exactly instead (``OnlineMF.top_k``).

Keeping the order: a re-quantised row stays where it is, and if its norm grew past the bounds
before it, those are raised (a short walk back: the bounds never increase along the copy). The
copy is re-sorted once it has had as many row changes since the last sort as it has rows,
which makes the bounds tight again; new rows are appended at the end until then. An SGD step
moves a row's norm a little, so the bounds it raises are mostly its neighbours' and the order
loosens slowly. On the 100k-item benchmark engine (2M events learned), re-sorting after every
eighth of the rows changed cost the processor 2 µs per event (578 re-sorts of ~7 ms) for no
measurable gain in the scans (162 µs per request against 147 with this rule, 82 re-sorts,
0.45 µs per event; re-sorting four times less often still: 185 µs).

>>> Q = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
>>> rows = QuantisedRows(2)
>>> sorted(rows.top(Q, np.array([1.0, 0.2], dtype=np.float32), 3, 2).tolist())  # unordered
[0, 2]
"""

from __future__ import annotations

import numba
import numpy as np

from freshrec.models.base import _heap_best
from freshrec.state.arrays import grow

RESORT_CHANGES = 1.0  # re-sort after this many row changes per row since the last sort
_CHECK_EVERY = 16  # positions between two looks at the bound during a scan


@numba.njit(cache=True, nogil=True)
def _quantise(Q, r, q8, scale, norm, k):  # pragma: no cover - compiled
    """``q8[k] = rint(Q[r] / s)``, ``scale[k] = s = max |Q[r]| / 127`` (1 for a zero row),
    ``norm[k]`` = the norm of the quantised row (``s * |q8[k]|``)."""
    f = Q.shape[1]
    top = np.float32(0.0)
    for j in range(f):
        a = abs(Q[r, j])
        if a > top:
            top = a
    s = top / np.float32(127.0)
    if s == 0:
        s = np.float32(1.0)
    total = 0  # an integer sum of squares: exact, and it vectorises (a float one does not)
    for j in range(f):
        v = np.int32(np.rint(Q[r, j] / s))
        q8[k, j] = np.int8(v)
        total += v * v
    scale[k] = s
    norm[k] = np.float32(s * np.sqrt(np.float64(total)))


@numba.njit(cache=True, nogil=True)
def _refresh(Q, q8, scale, norm, bound, pos, dirty, rows):  # pragma: no cover - compiled
    """Re-quantise ``rows`` (the dirty ones) in place, raising the bounds before each one its
    new norm exceeds."""
    for r in rows:
        k = pos[r]
        _quantise(Q, r, q8, scale, norm, k)
        dirty[r] = False
        j = k
        while j >= 0 and bound[j] < norm[k]:
            bound[j] = norm[k]
            j -= 1


@numba.njit(cache=True, nogil=True, fastmath=True)
def _scan(q8, scale, bound, row_at, p, n, m):  # pragma: no cover - compiled
    """Rows (``row_at`` of their positions) of the ``m`` best ``scale[k] * q8[k] . p`` over
    positions < n and those scores, best first (ties: the lower row), stopping where ``bound``
    says no later row can enter."""
    heap_s = np.full(m, -np.inf, dtype=np.float32)  # min-heap of the best m
    heap_k = np.full(m, -1, dtype=np.int64)
    f = q8.shape[1]
    p_norm = np.float32(0.0)
    for j in range(f):
        p_norm += p[j] * p[j]
    # a little slack: the scores are float32 sums, the bound is exact arithmetic
    reach = np.float32(np.sqrt(p_norm) * 1.001 + 1e-6)
    filled = 0
    for k in range(n):
        if filled >= m and k % _CHECK_EVERY == 0 and bound[k] * reach < heap_s[0]:
            break
        acc = np.float32(0.0)
        for j in range(f):
            acc += np.float32(q8[k, j]) * p[j]
        s = acc * scale[k]
        if s > heap_s[0]:
            if heap_k[0] < 0:
                filled += 1
            heap_s[0] = s
            heap_k[0] = k
            i = 0  # sift down
            while True:
                left = 2 * i + 1
                if left >= m:
                    break
                child = left
                if left + 1 < m and heap_s[left + 1] < heap_s[left]:
                    child = left + 1
                if heap_s[child] >= heap_s[i]:
                    break
                heap_s[i], heap_s[child] = heap_s[child], heap_s[i]
                heap_k[i], heap_k[child] = heap_k[child], heap_k[i]
                i = child
    kept = heap_k >= 0
    rows = row_at[heap_k[kept]]
    scores = heap_s[kept]
    order = _heap_best(rows, scores, rows.shape[0])  # best first, ties: the lower row
    return rows[order], scores[order]


class QuantisedRows:
    """int8 rows with per-row scales mirroring a float32 matrix, in decreasing norm order,
    refreshed where dirty."""

    def __init__(self, columns: int) -> None:
        # by position in the copy (decreasing norm, up to the rows changed since the sort)
        self.q8 = np.zeros((0, columns), dtype=np.int8)
        self.scale = np.zeros(0, dtype=np.float32)
        self.norm = np.zeros(0, dtype=np.float32)
        self.bound = np.zeros(0, dtype=np.float32)  # >= every norm from this position on
        self.row_at = np.zeros(0, dtype=np.int64)
        # by row of the mirrored matrix
        self.pos = np.zeros(0, dtype=np.int64)
        self.dirty = np.zeros(0, dtype=np.bool_)  # set by the learner, cleared by refresh
        self._n = 0
        self._changed = 0  # rows re-quantised since the last sort

    def ensure(self, n: int) -> None:
        """Room for ``n`` rows; new rows are dirty (quantised by the next refresh or scan)."""
        self.q8 = grow(self.q8, n)
        self.scale = grow(self.scale, n)
        self.norm = grow(self.norm, n)
        self.bound = grow(self.bound, n)
        self.row_at = grow(self.row_at, n)
        self.pos = grow(self.pos, n)
        self.dirty = grow(self.dirty, n, fill=True)

    def refresh(self, Q: np.ndarray, n: int) -> None:
        """Re-quantise the dirty rows of ``Q[:n]`` now: right after learning, while the rows
        the learner changed are still in the CPU's caches (a scan later would fetch them from
        memory again)."""
        self._cover(n)
        rows = np.flatnonzero(self.dirty[:n])
        if rows.size == 0:
            return
        _refresh(Q, self.q8, self.scale, self.norm, self.bound, self.pos, self.dirty, rows)
        self._changed += rows.size
        if self._changed >= RESORT_CHANGES * n:
            self._sort(n)

    def top(self, Q: np.ndarray, p: np.ndarray, n: int, m: int) -> np.ndarray:
        """Up to ``m`` row indices of ``Q[:n]`` with the best approximate scores, best first
        (ties: the lower row); rows still dirty are re-quantised first."""
        return self.best(Q, p, n, m)[0]

    def best(self, Q: np.ndarray, p: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``top``'s rows and their approximate scores (float32)."""
        if n < self._n:  # positions < n would not be the rows < n
            raise ValueError(f"the copy mirrors {self._n} rows: a scan covers them all, not {n}")
        if self._n != n or np.count_nonzero(self.dirty[:n]):
            self.refresh(Q, n)
        if m <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return _scan(self.q8, self.scale, self.bound, self.row_at, p, n, m)

    def row(self, r: int) -> tuple[np.ndarray, float]:
        """Row ``r``'s int8 values and scale."""
        k = int(self.pos[r])
        return self.q8[k], float(self.scale[k])

    def _cover(self, n: int) -> None:
        """Mirror ``n`` rows: rows not mirrored before go at the end of the copy, dirty."""
        if n <= self._n:
            return
        self.ensure(n)
        new = np.arange(self._n, n)
        self.pos[new] = new
        self.row_at[new] = new
        self.norm[new] = 0.0
        self.bound[new] = 0.0  # raised by their refresh
        self.dirty[new] = True
        self._n = n

    def _sort(self, n: int) -> None:
        """Lay the copy out by decreasing norm again: the bounds become the norms themselves."""
        order = np.argsort(-self.norm[:n], kind="stable")
        self.q8[:n] = self.q8[order]
        self.scale[:n] = self.scale[order]
        self.norm[:n] = self.norm[order]
        self.bound[:n] = self.norm[:n]
        self.row_at[:n] = self.row_at[order]
        self.pos[self.row_at[:n]] = np.arange(n)
        self._changed = 0
