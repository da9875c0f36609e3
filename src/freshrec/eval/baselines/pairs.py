"""A growable sparse matrix of pair weights ``w[row, col]`` with fast row walks (numba).

Entries live in flat arrays (row, col, weight, next entry of the same row); an open-addressing
hash table maps ``(row, col)`` to its entry, and ``head[row]`` starts the row's linked list. Adds
and row walks are compiled loops; arrays grow geometrically.

>>> m = PairCounts()
>>> m.add(np.array([0, 0, 2, 0]), np.array([1, 3, 1, 1]))
>>> cols, w = m.row(0)
>>> sorted(zip(cols.tolist(), w.tolist()))
[(1, 2.0), (3, 1.0)]
>>> out = np.zeros(4)
>>> m.accumulate(np.array([0, 2]), np.array([1.0, 10.0]), out)
>>> out.tolist()
[0.0, 12.0, 0.0, 1.0]
"""

from __future__ import annotations

import numba
import numpy as np

from freshrec.state.arrays import grow

_EMPTY = -1


@numba.njit(cache=True, nogil=True)
def _slot(table, erow, ecol, r, c):  # pragma: no cover - compiled
    mask = table.shape[0] - 1
    h = ((r * 0x9E3779B1) ^ (c * 0x85EBCA6B)) & mask
    while True:
        e = table[h]
        if e == _EMPTY or (erow[e] == r and ecol[e] == c):
            return h
        h = (h + 1) & mask


@numba.njit(cache=True, nogil=True)
def _add(rows, cols, w, table, erow, ecol, ew, enext, head, meta):  # pragma: no cover
    for k in range(rows.shape[0]):
        r = rows[k]
        c = cols[k]
        h = _slot(table, erow, ecol, r, c)
        e = table[h]
        if e == _EMPTY:
            e = meta[0]
            meta[0] += 1
            table[h] = e
            erow[e] = r
            ecol[e] = c
            ew[e] = w[k]
            enext[e] = head[r]
            head[r] = e
        else:
            ew[e] += w[k]


@numba.njit(cache=True, nogil=True)
def _rehash(table, erow, ecol, n):  # pragma: no cover - compiled
    for e in range(n):
        table[_slot(table, erow, ecol, erow[e], ecol[e])] = e


@numba.njit(cache=True, nogil=True)
def _accumulate(sources, weights, head, ecol, ew, enext, out):  # pragma: no cover
    for s in range(sources.shape[0]):
        e = head[sources[s]]
        ws = weights[s]
        while e != _EMPTY:
            out[ecol[e]] += ws * ew[e]
            e = enext[e]


@numba.njit(cache=True, nogil=True)
def _row(r, head, ecol, ew, enext):  # pragma: no cover - compiled
    n = 0
    e = head[r]
    while e != _EMPTY:
        n += 1
        e = enext[e]
    cols = np.empty(n, dtype=np.int32)
    out = np.empty(n, dtype=np.float64)
    e = head[r]
    for k in range(n):
        cols[k] = ecol[e]
        out[k] = ew[e]
        e = enext[e]
    return cols, out


class PairCounts:
    """Sparse ``rows x cols`` weights: ``add`` pairs, read a ``row``, ``accumulate`` rows."""

    def __init__(self, capacity: int = 1024) -> None:
        self.head = np.full(64, _EMPTY, dtype=np.int32)
        self.erow = np.zeros(capacity, dtype=np.int32)
        self.ecol = np.zeros(capacity, dtype=np.int32)
        self.ew = np.zeros(capacity, dtype=np.float64)
        self.enext = np.zeros(capacity, dtype=np.int32)
        self.table = np.full(2 * capacity, _EMPTY, dtype=np.int32)
        self.meta = np.zeros(1, dtype=np.int64)  # entries used

    def __len__(self) -> int:
        return int(self.meta[0])

    def _reserve(self, extra: int, max_row: int) -> None:
        self.head = grow(self.head, max_row + 1, fill=_EMPTY)
        need = len(self) + extra
        if need > self.erow.shape[0]:
            self.erow = grow(self.erow, need)
            self.ecol = grow(self.ecol, need)
            self.ew = grow(self.ew, need)
            self.enext = grow(self.enext, need)
        if 2 * need > self.table.shape[0]:
            size = self.table.shape[0]
            while 2 * need > size:
                size *= 2
            self.table = np.full(size, _EMPTY, dtype=np.int32)
            _rehash(self.table, self.erow, self.ecol, len(self))

    def add(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray | None = None) -> None:
        """``w[rows[k], cols[k]] += weights[k]`` (1 when ``weights`` is None)."""
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        if rows.size == 0:
            return
        cols = np.ascontiguousarray(cols, dtype=np.int32)
        w = np.ones(rows.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        self._reserve(rows.shape[0], int(rows.max()))
        _add(
            rows,
            cols,
            w,
            self.table,
            self.erow,
            self.ecol,
            self.ew,
            self.enext,
            self.head,
            self.meta,
        )

    def row(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """Columns and weights of row ``r`` (empty for an unknown row)."""
        if not 0 <= r < self.head.shape[0]:
            return np.zeros(0, dtype=np.int32), np.zeros(0)
        return _row(r, self.head, self.ecol, self.ew, self.enext)

    def accumulate(self, sources: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
        """``out[c] += weights[s] * w[sources[s], c]`` over every stored entry of the rows."""
        sources = np.ascontiguousarray(sources, dtype=np.int32)
        keep = sources < self.head.shape[0]
        _accumulate(
            sources[keep],
            np.asarray(weights, dtype=np.float64)[keep],
            self.head,
            self.ecol,
            self.ew,
            self.enext,
            out,
        )


__all__ = ["PairCounts"]
