"""Arrays that grow geometrically with the number of users or items (never per event), and
set operations on small index arrays.

numpy's ``unique`` and ``isin`` pay tens of microseconds of overhead each (a hash table, or a
table as long as the value range), several times per request and per live test; a sort and a
binary search do the same for the few hundred indices a request handles in a few.

>>> a = np.zeros((2, 3), dtype=np.int32)
>>> b = grow(a, 5, fill=-1)
>>> b.shape[0] >= 5, b[:2].tolist() == a.tolist(), int(b[4, 0])
(True, True, -1)
>>> grow(b, 3) is b
True
>>> grow(np.ones((2, 3), dtype=np.float32), 5)[[1, 4]].tolist()  # the default fill: zeros
[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
>>> sorted_unique(np.array([5, 1, 5, 3])).tolist(), member_of(np.array([1, 2, 3]), [3, 1]).tolist()
([1, 3, 5], [True, False, True])
"""

from __future__ import annotations

import numpy as np


def capacity_for(n: int, current: int) -> int:
    """Capacity of at least ``n`` rows, growing by 1.5x over ``current``."""
    return max(n, int(current * 1.5) + 16)


def grow(array: np.ndarray, n: int, fill: float | int = 0) -> np.ndarray:
    """``array`` itself if it has ``n`` rows, else a larger copy padded with ``fill``."""
    if array.shape[0] >= n:
        return array
    rows = array.shape[0]
    shape = (capacity_for(n, rows), *array.shape[1:])
    if fill == 0:  # zeroed by the OS on first touch: rows never used cost no memory
        out = np.zeros(shape, dtype=array.dtype)
        out[:rows] = array
        return out
    out = np.empty(shape, dtype=array.dtype)
    out[:rows] = array  # each byte written once: the old rows copied, only the new ones filled
    out[rows:] = fill
    return out


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct ``values``, sorted (``np.unique`` without its overhead)."""
    out = values.reshape(-1).copy()  # ndarray methods: numpy's functions add Python wrappers
    out.sort()
    if out.shape[0] < 2:
        return out
    keep = np.empty(out.shape[0], dtype=np.bool_)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def member_of(values: np.ndarray, of: np.ndarray | list[int]) -> np.ndarray:
    """Per element of ``values``, whether it is in ``of`` (``np.isin`` without its overhead)."""
    table = np.asarray(of).reshape(-1).copy()
    table.sort()
    if table.shape[0] == 0 or values.shape[0] == 0:
        return np.zeros(values.shape, dtype=np.bool_)
    at = table.searchsorted(values)
    np.minimum(at, table.shape[0] - 1, out=at)
    return table[at] == values


class Marks:
    """Scratch int32 arrays over the items for a compiled pass that marks what it meets:
    ``take(n)`` gives a stamp no entry of the first array holds yet, so "item j was met in
    this pass" is ``marks[j] == stamp`` and nothing is ever cleared. The arrays are replaced
    (zeroed) only when the items outgrow them, with room to grow, or when the stamps run out.
    Not thread-safe: one per thread (``threading.local``) where passes run concurrently."""

    STAMP_MAX = 2**31 - 2

    def __init__(self, arrays: int = 1) -> None:
        self.arrays = [np.zeros(0, dtype=np.int32) for _ in range(arrays)]
        self.stamp = 0

    def take(self, n: int) -> tuple[int, list[np.ndarray]]:
        """A fresh stamp and the arrays (each at least ``n`` long)."""
        if self.arrays[0].shape[0] < n or self.stamp >= self.STAMP_MAX:
            size = max(n, 1024) * 5 // 4
            self.arrays = [np.zeros(size, dtype=np.int32) for _ in self.arrays]
            self.stamp = 0
        self.stamp += 1
        return self.stamp, self.arrays
