"""Arrays that grow geometrically with the number of users or items (never per event).

>>> a = np.zeros((2, 3), dtype=np.int32)
>>> b = grow(a, 5, fill=-1)
>>> b.shape[0] >= 5, b[:2].tolist() == a.tolist(), int(b[4, 0])
(True, True, -1)
>>> grow(b, 3) is b
True
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
    out = np.empty((capacity_for(n, rows), *array.shape[1:]), dtype=array.dtype)
    out[:rows] = array  # each byte written once: the old rows copied, only the new ones filled
    out[rows:] = fill
    return out
