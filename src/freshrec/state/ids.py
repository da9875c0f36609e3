"""External string ids to dense integer indices, growing as new ids arrive.

>>> ids = IdMap()
>>> ids.indices(["a", "b", "a"]).tolist(), ids.get("b"), ids.get("zz"), ids.key(1), len(ids)
([0, 1, 0], 1, None, 'b', 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class IdMap:
    """A bijection between string ids and ``0..n-1`` (append-only)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: str) -> int | None:
        return self._index.get(key)

    def key(self, index: int) -> str:
        return self._keys[index]

    def keys(self) -> list[str]:
        return self._keys

    def add(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._keys)
            self._keys.append(key)
        return index

    def indices(self, keys: Sequence[str], add: bool = True) -> np.ndarray:
        """Indices of ``keys`` (int32), adding unknown ones when ``add``; else -1 for them.

        One C-level pass looks every key up; Python runs only for the unknown ones (found by
        ``list.index``, also C-level), so a batch with a few new ids costs what one without does.
        """
        found: list[int | None] = list(map(self._index.get, keys))
        if None in found:
            index, keys_list = self._index, self._keys
            at = found.index(None)
            while True:
                key = keys[at]
                if not add:
                    found[at] = -1
                elif (i := index.get(key)) is not None:  # added earlier in this batch
                    found[at] = i
                else:
                    found[at] = index[key] = len(keys_list)
                    keys_list.append(key)
                try:
                    at = found.index(None, at + 1)
                except ValueError:
                    break
        return np.asarray(found, dtype=np.int32)

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Indices of the known ``keys`` (unknown ones are skipped)."""
        get = self._index.get
        return np.asarray([i for i in (get(k) for k in keys) if i is not None], dtype=np.int32)
